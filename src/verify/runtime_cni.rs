//! `node.runtime-cni`: the container runtime looks for CNI plugins and configs where netctl put
//! them. The CNI checks read the profile's cniBinDir and cniConfDir; containerd reads its own
//! config, and when that points elsewhere every pod fails ("failed to find plugin ... in path")
//! while the files netctl wrote are all correct. Seen on the lab's real containerd (tests/runtime.rs).
//!
//! The CNI section is read where containerd reads it: `[plugins."io.containerd.grpc.v1.cri".cni]`
//! (config version 2, containerd 1.x) and `[plugins.'io.containerd.cri.v1.runtime'.cni]` (version
//! 3, containerd 2.x; `bin_dirs` from 2.1). Without the section containerd uses its defaults,
//! /opt/cni/bin and /etc/cni/net.d.

use super::Check;

pub const ID: &str = "node.runtime-cni";

/// containerd's defaults on Linux when its config says nothing.
const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// The CNI directories a containerd config gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCni {
    pub bin_dirs: Vec<String>,
    pub conf_dir: String,
}

/// A table header with quotes and blanks removed: `plugins.io.containerd.grpc.v1.cri.cni`.
fn table(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    Some(
        inner
            .chars()
            .filter(|c| !matches!(c, '"' | '\'' | ' ' | '\t'))
            .collect(),
    )
}

/// The quoted strings on a line (TOML basic or literal strings; escapes are not expected in
/// paths).
fn strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find(['"', '\'']) {
        let q = rest[start..].chars().next().expect("found a quote");
        let after = &rest[start + 1..];
        let Some(end) = after.find(q) else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// The CNI directories from a containerd config (single-line values; a key outside the CNI table
/// is not containerd's CNI setting).
pub fn parse(config: &str) -> RuntimeCni {
    const TABLES: [&str; 2] = [
        "plugins.io.containerd.grpc.v1.cri.cni",
        "plugins.io.containerd.cri.v1.runtime.cni",
    ];
    let mut in_cni = false;
    let (mut bin_dirs, mut bin_dir, mut conf_dir) = (None::<Vec<String>>, None, None);
    for raw in config.lines() {
        let line = raw.trim();
        if line.starts_with('[') {
            in_cni = table(line).is_some_and(|t| TABLES.contains(&t.as_str()));
            continue;
        }
        if !in_cni {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = strings(value);
        match key.trim() {
            "bin_dirs" => bin_dirs = Some(value),
            "bin_dir" => bin_dir = value.into_iter().next(),
            "conf_dir" => conf_dir = value.into_iter().next(),
            _ => {}
        }
    }
    RuntimeCni {
        // containerd 2.1+ refuses a config that sets both bin_dir and bin_dirs.
        bin_dirs: bin_dirs
            .or(bin_dir.map(|d| vec![d]))
            .unwrap_or_else(|| vec![DEFAULT_BIN_DIR.to_string()]),
        conf_dir: conf_dir.unwrap_or_else(|| DEFAULT_CONF_DIR.to_string()),
    }
}

fn same_dir(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The check for one node: `config` is containerd's config file as found on the node (None: no
/// file there, e.g. another runtime or none yet).
pub fn check(node: &str, path: &str, config: Option<&str>, bin: &str, conf: &str) -> Check {
    let Some(text) = config else {
        return Check::skip(ID, node, format!("no containerd config at {path}"));
    };
    let rt = parse(text);
    let bin_ok = rt.bin_dirs.iter().any(|d| same_dir(d, bin));
    let conf_ok = same_dir(&rt.conf_dir, conf);
    if bin_ok && conf_ok {
        return Check::pass(
            ID,
            node,
            format!("containerd ({path}) reads CNI configs from {conf} and plugins from {bin}"),
        );
    }
    let mut wrong = Vec::new();
    if !bin_ok {
        wrong.push(format!(
            "looks for CNI plugins in {} (not {bin}): pods fail with \"failed to find plugin\"",
            rt.bin_dirs.join(", ")
        ));
    }
    if !conf_ok {
        wrong.push(format!(
            "reads CNI configs from {} (not {conf}): the runtime reports NetworkReady false",
            rt.conf_dir
        ));
    }
    Check::fail(
        ID,
        node,
        format!("containerd ({path}) {}", wrong.join("; ")),
        format!(
            "set bin_dir/conf_dir in containerd's CNI section to {bin} and {conf} and restart containerd \
             (netctl init does both where it manages containerd), or set networking.cniBinDir/cniConfDir to containerd's"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Status;

    const V2: &str = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"x\"\n  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/usr/lib/cni\"  # ours\n    conf_dir = \"/etc/cni/net.d\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";

    #[test]
    fn reads_the_v2_cni_section() {
        assert_eq!(
            parse(V2),
            RuntimeCni {
                bin_dirs: vec!["/usr/lib/cni".into()],
                conf_dir: "/etc/cni/net.d".into()
            }
        );
    }

    #[test]
    fn reads_the_v3_section_and_bin_dirs() {
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dirs = ['/opt/cni/bin', \"/usr/lib/cni\"]\n  conf_dir = '/etc/cni/conf.d'\n";
        let rt = parse(v3);
        assert_eq!(rt.bin_dirs, ["/opt/cni/bin", "/usr/lib/cni"]);
        assert_eq!(rt.conf_dir, "/etc/cni/conf.d");
    }

    #[test]
    fn defaults_without_a_section_and_keys_elsewhere_do_not_count() {
        let other = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  bin_dir = \"/usr/lib/cni\"\n";
        assert_eq!(
            parse(other),
            RuntimeCni {
                bin_dirs: vec![DEFAULT_BIN_DIR.into()],
                conf_dir: DEFAULT_CONF_DIR.into()
            }
        );
    }

    #[test]
    fn a_wrong_bin_dir_fails_and_names_both_directories() {
        let path = "/etc/containerd/config.toml";
        let ok = check("n1", path, Some(V2), "/usr/lib/cni/", "/etc/cni/net.d");
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        let wrong = V2.replace("/usr/lib/cni", "/usr/lib/no-cni-here");
        let c = check("n1", path, Some(&wrong), "/usr/lib/cni", "/etc/cni/net.d");
        assert_eq!(c.status, Status::Fail);
        let text = format!("{c:?}");
        assert!(
            text.contains("/usr/lib/no-cni-here") && text.contains("failed to find plugin"),
            "{text}"
        );
        let c = check("n1", path, Some(V2), "/usr/lib/cni", "/etc/cni/conf.d");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(check("n1", path, None, "/a", "/b").status, Status::Skip);
    }
}
