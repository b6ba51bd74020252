//! Templates (built into the binary from templates/) and the render output tree.
//! Each template takes a typed, serialisable context; an undefined variable is a template error,
//! and a template error is a bug in netctl (golden tests render every template).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::profile::Cluster;
use crate::provider::{self, ClusterPlan, NodePlan};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

fn engine() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(vec![]);
        t.register_filter("yaml_str", yaml_str_filter);
        t.add_raw_templates(embedded::TEMPLATES.iter().copied())
            .unwrap_or_else(|e| panic!("netctl bug: a built-in template does not parse: {e:?}"));
        t
    })
}

/// `{{ value | yaml_str }}`: a string as a YAML scalar that reads back as the same string. Plain
/// when that is unambiguous (so ordinary values render as before), else a JSON string (a valid
/// YAML double-quoted scalar). Strings already in quotes in a template use `json_encode`.
fn yaml_str_filter(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let s = value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("yaml_str takes a string, not {value}")))?;
    Ok(tera::Value::String(if is_plain_yaml(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }))
}

/// A conservative test: safe characters only, no indicator first or `:` last, and nothing
/// YAML 1.1 or 1.2 would read as null, a bool or a number (anything starting with a digit,
/// a sign or a dot is quoted unless it holds a character no number has, like `/`).
fn is_plain_yaml(s: &str) -> bool {
    const RESERVED: [&str; 16] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~", ".inf", "-.inf", "+.inf",
        ".nan", "<<", "=",
    ];
    let safe = |c: char| c.is_ascii_alphanumeric() || "-._/:=+@~".contains(c);
    let first_ok = s.chars().next().is_some_and(|c| {
        c.is_ascii_alphanumeric() || "/._".contains(c) || (c == '-' && s.len() > 1)
    });
    let numeric_start = s
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    let maybe_number = numeric_start
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoO._:+-".contains(c));
    first_ok
        && s.chars().all(safe)
        && !s.ends_with(':')
        && !maybe_number
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// Render the built-in template `id` (its path under templates/) with `ctx`.
pub fn template(id: &str, ctx: &impl Serialize) -> String {
    let ctx = tera::Context::from_serialize(ctx)
        .unwrap_or_else(|e| panic!("netctl bug: context for {id} does not serialise: {e}"));
    engine().render(id, &ctx).unwrap_or_else(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        panic!("netctl bug: template {id} failed to render: {msg}")
    })
}

/// Render a template that takes no variables.
pub fn template_plain(id: &str) -> String {
    template(id, &serde_json::json!({}))
}

/// Every artifact for a cluster: per node, and cluster-wide.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub nodes: BTreeMap<String, NodePlan>,
    pub cluster: ClusterPlan,
}

pub fn render_all(cluster: &Cluster) -> Rendered {
    Rendered {
        nodes: cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), provider::node_plan(cluster, n)))
            .collect(),
        cluster: provider::cluster_plan(cluster),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists and is not a netctl render output (no plan.json); refusing to overwrite it"
    )]
    NotOurs { path: PathBuf },
    #[error("{field}: cannot read {path}: {source}")]
    Source {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize)]
struct PlanFile<'a> {
    path: &'a str,
    mode: String,
    sha256: String,
    services: &'a [String],
}

#[derive(Serialize)]
struct PlanNode<'a> {
    name: &'a str,
    files: Vec<PlanFile<'a>>,
    units: &'a [provider::Unit],
    commands: Vec<&'a str>,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    name: &'a str,
    provider: &'a str,
    profile_sha256: &'a str,
    nodes: Vec<PlanNode<'a>>,
    kubectl: &'a [provider::KubectlStep],
    local: &'a [provider::LocalCommand],
}

/// plan.json: per node the files (path, mode, sha256, services) and commands in order.
pub fn plan_json(cluster: &Cluster, r: &Rendered) -> String {
    let nodes = cluster
        .nodes
        .iter()
        .map(|n| {
            let p = &r.nodes[&n.name];
            PlanNode {
                name: &n.name,
                files: p
                    .files
                    .iter()
                    .map(|f| PlanFile {
                        path: &f.path,
                        mode: format!("{:04o}", f.mode),
                        sha256: crate::profile::sha256_hex(f.content.as_bytes()),
                        services: &f.services,
                    })
                    .collect(),
                units: &p.units,
                commands: p.commands.iter().map(|c| c.command.as_str()).collect(),
            }
        })
        .collect();
    let doc = PlanJson {
        name: &cluster.profile.name,
        provider: cluster.provider().as_str(),
        profile_sha256: &cluster.hash,
        nodes,
        kubectl: &r.cluster.kubectl,
        local: &r.cluster.local,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serialises");
    s.push('\n');
    s
}

/// Every output file, relative to the output directory, in a stable order.
pub fn output_files(cluster: &Cluster, r: &Rendered) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    for n in &cluster.nodes {
        for f in &r.nodes[&n.name].files {
            out.push((
                format!("nodes/{}{}", n.name, f.path),
                f.content.clone(),
                f.mode,
            ));
        }
    }
    for f in &r.cluster.files {
        let mode = if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        out.push((format!("cluster/{}", f.path), f.content.clone(), mode));
    }
    out.push(("plan.json".into(), plan_json(cluster, r), 0o644));
    out
}

/// Write the render output to `dir`, replacing an earlier render there (and nothing else).
pub fn write_tree(cluster: &Cluster, r: &Rendered, dir: &Path) -> Result<usize, WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_some();
        if non_empty {
            if !dir.join("plan.json").exists() {
                return Err(WriteError::NotOurs {
                    path: dir.to_path_buf(),
                });
            }
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
    }
    // Local manifests first: a missing one is the profile's fault, found before anything is written.
    let mut copies = Vec::new();
    for c in &r.cluster.copies {
        let src = crate::profile::expand_home(&c.source);
        let content = std::fs::read(&src).map_err(|source| WriteError::Source {
            field: c.field.clone(),
            path: src.clone(),
            source,
        })?;
        copies.push((format!("cluster/{}", c.path), content));
    }
    let files = output_files(cluster, r);
    for (rel, content, mode) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        // Created with its mode, so a key is never readable by others, not even briefly.
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(*mode)
                .open(&path)
                .map_err(io(&path))?;
            f.write_all(content.as_bytes()).map_err(io(&path))?;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(io(&path))?;
    }
    for (rel, content) in &copies {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    Ok(files.len() + copies.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values YAML would misread when spliced: a comment, a key, quotes, a line break, an alias
    /// or anchor, a bool, a number, an empty string.
    const HOSTILE: [&str; 10] = [
        "a: #b",
        "x'y\"z",
        "line\nbreak: 1",
        "*alias",
        "&anchor",
        "yes",
        "1.30",
        "",
        " lead",
        "- x",
    ];

    fn parses_back(
        id: &str,
        ctx: serde_json::Value,
        pick: impl Fn(&serde_yaml::Value) -> &serde_yaml::Value,
        want: &str,
    ) {
        let out = template(id, &ctx);
        let doc: serde_yaml::Value = serde_yaml::from_str(&out)
            .unwrap_or_else(|e| panic!("{id} with {want:?} is not YAML ({e}):\n{out}"));
        assert_eq!(pick(&doc).as_str(), Some(want), "{id}:\n{out}");
    }

    #[test]
    fn profile_strings_in_yaml_templates_are_encoded() {
        for v in HOSTILE {
            parses_back(
                "flannel/kubeconfig",
                serde_json::json!({"ca": v, "server": v, "cert": "c", "key": "k"}),
                |d| &d["clusters"][0]["cluster"]["server"],
                v,
            );
            parses_back(
                "calico/calico-node.yaml",
                serde_json::json!({"pool_cidr": v, "ipip_mode": "Always", "vxlan_mode": "Never", "block_size": 26}),
                |d| &d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
                v,
            );
            parses_back(
                "weave/weave-net.yaml",
                serde_json::json!({"ipalloc_range": v, "mtu": null}),
                |d| &d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
                v,
            );
            // An empty iface leaves canal_iface out.
            if !v.is_empty() {
                parses_back(
                    "canal/canal-config.yaml",
                    serde_json::json!({"iface": v, "masquerade": true, "net_conf": "    {}"}),
                    |d| &d["data"]["canal_iface"],
                    v,
                );
            }
            let out = template(
                "cni/10-bridge.conf",
                &serde_json::json!({"pod_cidr": v, "mtu": null}),
            );
            let doc: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
            assert_eq!(doc["ipam"]["ranges"][0][0]["subnet"], v);
        }
    }
}
