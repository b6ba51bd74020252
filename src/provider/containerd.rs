//! containerd's CNI directories. netctl changes the two settings pod networking needs in the CRI
//! plugin's `cni` table and keeps every other byte of the operator's config (comments, registry
//! mirrors, runtimes); only where no config exists does it write a minimal one of its own.
//!
//! Where the table lives (checked against containerd's CRI config types): containerd 1.x reads
//! `[plugins."io.containerd.grpc.v1.cri".cni]` in a `version = 2` config and `[plugins.cri.cni]`
//! in a version 1 config (pkg/cri/config/config.go, v1.7); containerd 2.x reads
//! `[plugins."io.containerd.cri.v1.runtime".cni]` in a `version = 3` config and migrates version 2
//! configs on load (internal/cri/config/config.go, v2.0). containerd 2.1 adds `bin_dirs`, a
//! list: where the config already has it, netctl puts its directory first and keeps the others.

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use crate::profile::ContainerRuntime;

pub const CONFIG: &str = "/etc/containerd/config.toml";

/// Why a containerd config cannot be edited safely; the node fails and nothing changes there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{CONFIG} does not parse as TOML ({0}); fix it or move it aside")]
    Parse(String),
    #[error("{CONFIG}: `version` is {0}, which no containerd reads")]
    UnknownVersion(String),
    #[error(
        "{CONFIG} is a version {found} config, which containerd {runtime} does not read; set kubernetes.containerRuntime to the containerd the node runs"
    )]
    WrongVersion { found: i64, runtime: &'static str },
    #[error("{CONFIG}: `{key}` is not a table, so netctl cannot set the CNI directories under it")]
    NotATable { key: String },
    #[error("{CONFIG}: `{key}` is not a string or list of strings")]
    NotAString { key: String },
    #[error("the {0} runtime has no containerd config")]
    NotContainerd(&'static str),
}

/// The CRI plugin's `cni` table for this config version, as dotted-key parts.
fn cni_table(version: i64, runtime: ContainerRuntime) -> Result<[&'static str; 3], EditError> {
    match (runtime, version) {
        (ContainerRuntime::Containerd, 1) => Ok(["plugins", "cri", "cni"]),
        (ContainerRuntime::Containerd, 2) | (ContainerRuntime::Containerd2, 2) => {
            Ok(["plugins", "io.containerd.grpc.v1.cri", "cni"])
        }
        (ContainerRuntime::Containerd2, 3) => {
            Ok(["plugins", "io.containerd.cri.v1.runtime", "cni"])
        }
        (ContainerRuntime::Docker, _) => Err(EditError::NotContainerd("docker")),
        (r, found) => Err(EditError::WrongVersion {
            found,
            runtime: match r {
                ContainerRuntime::Containerd2 => "2.x",
                _ => "1.x",
            },
        }),
    }
}

/// Set the CRI plugin's CNI `bin_dir` and `conf_dir` in `existing` (a containerd config), keeping
/// every other byte. Pure and idempotent: an edited config edited again is unchanged. An empty
/// config is containerd's defaults and gets the table of the runtime's own config version.
pub fn set_cni_dirs(
    existing: &str,
    version: ContainerRuntime,
    bin_dir: &str,
    conf_dir: &str,
) -> Result<String, EditError> {
    let mut doc: DocumentMut = existing
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse(e.message().to_string()))?;
    let config_version = match doc.get("version") {
        None => {
            if doc.as_table().is_empty() {
                // Nothing set: write the version this runtime reads natively.
                let v = match version {
                    ContainerRuntime::Containerd2 => 3,
                    _ => 2,
                };
                doc.insert("version", toml_edit::value(v));
                v
            } else {
                1
            }
        }
        Some(v) => v
            .as_integer()
            .ok_or_else(|| EditError::UnknownVersion(v.to_string().trim().to_string()))?,
    };
    if !(1..=3).contains(&config_version) {
        return Err(EditError::UnknownVersion(config_version.to_string()));
    }
    let path = cni_table(config_version, version)?;
    // Comments after the last table belong where they are: a new table goes after them.
    let trailing = doc.trailing().as_str().unwrap_or("").to_string();
    let mut created = false;
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    let mut key = String::new();
    for part in path {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(part);
        if !table.contains_key(part) {
            let mut t = Table::new();
            // Parents that only hold other tables stay implicit: no empty `[plugins]` header.
            t.set_implicit(part != "cni");
            if part == "cni" {
                t.decor_mut().set_prefix(format!("{trailing}\n"));
                created = true;
            }
            table.insert(part, Item::Table(t));
        }
        table = table
            .get_mut(part)
            .and_then(|i| i.as_table_like_mut())
            .ok_or_else(|| EditError::NotATable { key: key.clone() })?;
    }
    set_string(table, "conf_dir", conf_dir, &key)?;
    if table.contains_key("bin_dirs") {
        let dirs = table.get_mut("bin_dirs").expect("checked");
        let Some(arr) = dirs.as_array_mut() else {
            return Err(EditError::NotAString {
                key: format!("{key}.bin_dirs"),
            });
        };
        let mut rest: Vec<String> = Vec::new();
        for v in arr.iter() {
            let s = v.as_str().ok_or_else(|| EditError::NotAString {
                key: format!("{key}.bin_dirs"),
            })?;
            if s != bin_dir {
                rest.push(s.to_string());
            }
        }
        if arr.get(0).and_then(|v| v.as_str()) != Some(bin_dir) {
            let mut new = Array::new();
            new.push(bin_dir);
            for s in rest {
                new.push(s);
            }
            // Keep the operator's spacing around the value.
            *new.decor_mut() = arr.decor().clone();
            *arr = new;
        }
        if table.contains_key("bin_dir") {
            set_string(table, "bin_dir", bin_dir, &key)?;
        }
    } else {
        set_string(table, "bin_dir", bin_dir, &key)?;
    }
    if created {
        doc.set_trailing("");
    }
    Ok(doc.to_string())
}

/// Set `name` to `value` unless it already is: an unchanged value keeps its quoting and comments.
fn set_string(
    table: &mut dyn toml_edit::TableLike,
    name: &str,
    value: &str,
    key: &str,
) -> Result<(), EditError> {
    match table.get_mut(name) {
        Some(item) => {
            let Some(v) = item.as_value_mut() else {
                return Err(EditError::NotAString {
                    key: format!("{key}.{name}"),
                });
            };
            if v.as_str().is_none() {
                return Err(EditError::NotAString {
                    key: format!("{key}.{name}"),
                });
            }
            if v.as_str() != Some(value) {
                let decor = v.decor().clone();
                *v = Value::from(value);
                *v.decor_mut() = decor;
            }
        }
        None => {
            table.insert(name, toml_edit::value(value));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerRuntime::{Containerd, Containerd2};

    /// An operator's containerd 1.7 config with settings netctl does not know.
    pub const OPERATOR_V2: &str = r#"# Managed by the platform team: ask #infra before changing.
version = 2
root = "/data/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.internal/pause:3.9"   # mirrored
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
    runtime_type = "io.containerd.kata.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/libexec/cni"  # the distro's plugins
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.internal"]
"#;

    #[test]
    fn only_the_cni_dirs_change_and_every_other_byte_stays() {
        let out = set_cni_dirs(OPERATOR_V2, Containerd, "/opt/cni/bin", "/etc/cni/conf.d").unwrap();
        let want = OPERATOR_V2
            .replace(
                "bin_dir = \"/usr/libexec/cni\"  # the distro's plugins",
                "bin_dir = \"/opt/cni/bin\"  # the distro's plugins",
            )
            .replace(
                "conf_dir = \"/etc/cni/net.d\"",
                "conf_dir = \"/etc/cni/conf.d\"",
            );
        assert_eq!(out, want);
        // Idempotent.
        assert_eq!(
            set_cni_dirs(&out, Containerd, "/opt/cni/bin", "/etc/cni/conf.d").unwrap(),
            out
        );
        // Already right: byte for byte the same.
        assert_eq!(
            set_cni_dirs(
                OPERATOR_V2,
                Containerd,
                "/usr/libexec/cni",
                "/etc/cni/net.d"
            )
            .unwrap(),
            OPERATOR_V2
        );
    }

    #[test]
    fn a_missing_cni_table_is_added_at_the_end() {
        let text = "version = 2\n# mirrors\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";
        let out = set_cni_dirs(text, Containerd, "/opt/cni/bin", "/etc/cni/net.d").unwrap();
        assert_eq!(
            out,
            format!("{text}\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nconf_dir = \"/etc/cni/net.d\"\nbin_dir = \"/opt/cni/bin\"\n")
        );
        let again = set_cni_dirs(&out, Containerd, "/opt/cni/bin", "/etc/cni/net.d").unwrap();
        assert_eq!(again, out);
        let v: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(
            v["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"].as_str(),
            Some("/opt/cni/bin")
        );
    }

    #[test]
    fn comments_at_the_end_stay_before_a_new_table() {
        let text = "version = 2\n# mine\n";
        let out = set_cni_dirs(text, Containerd, "/b", "/c").unwrap();
        assert_eq!(
            out,
            "version = 2\n# mine\n\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nconf_dir = \"/c\"\nbin_dir = \"/b\"\n"
        );
    }

    #[test]
    fn each_version_gets_its_own_table() {
        // Version 1 (no version key): containerd 1.x's [plugins.cri].
        let v1 = "[plugins.cri]\n  stream_server_address = \"127.0.0.1\"\n";
        let out = set_cni_dirs(v1, Containerd, "/b", "/c").unwrap();
        assert!(out.starts_with(v1), "{out}");
        assert!(
            out.contains("[plugins.cri.cni]\nconf_dir = \"/c\"\nbin_dir = \"/b\"\n"),
            "{out}"
        );
        // containerd 2 with its own version 3 config.
        let v3 = "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dir = '/usr/lib/cni'\n  conf_dir = '/etc/cni/net.d'\n";
        let out = set_cni_dirs(v3, Containerd2, "/opt/cni/bin", "/etc/cni/net.d").unwrap();
        assert_eq!(out, v3.replace("'/usr/lib/cni'", "\"/opt/cni/bin\""));
        // containerd 2 migrates version 2 configs: the version 2 table is the one it reads.
        let out = set_cni_dirs(OPERATOR_V2, Containerd2, "/b", "/c").unwrap();
        assert!(out.contains("bin_dir = \"/b\""), "{out}");
        // An empty config gets the runtime's native version.
        assert_eq!(
            set_cni_dirs("", Containerd2, "/b", "/c").unwrap(),
            "version = 3\n\n[plugins.\"io.containerd.cri.v1.runtime\".cni]\nconf_dir = \"/c\"\nbin_dir = \"/b\"\n"
        );
    }

    #[test]
    fn bin_dirs_on_containerd_2_1_put_netctls_dir_first_and_keep_the_rest() {
        let text = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\"]\n  conf_dir = \"/etc/cni/net.d\"\n";
        let out = set_cni_dirs(text, Containerd2, "/opt/cni/bin", "/etc/cni/net.d").unwrap();
        assert!(
            out.contains("  bin_dirs = [\"/opt/cni/bin\", \"/usr/lib/cni\"]\n"),
            "{out}"
        );
        assert!(!out.contains("bin_dir ="), "no deprecated key added: {out}");
        assert_eq!(
            set_cni_dirs(&out, Containerd2, "/opt/cni/bin", "/etc/cni/net.d").unwrap(),
            out
        );
    }

    #[test]
    fn configs_it_cannot_edit_safely_are_refused() {
        let bad = |text: &str, rt| set_cni_dirs(text, rt, "/b", "/c").unwrap_err();
        assert!(matches!(
            bad("version = 2\n[plugins\n", Containerd),
            EditError::Parse(_)
        ));
        assert!(matches!(
            bad("version = \"2\"\n", Containerd),
            EditError::UnknownVersion(_)
        ));
        assert!(matches!(
            bad("version = 7\n", Containerd),
            EditError::UnknownVersion(_)
        ));
        assert_eq!(
            bad("version = 3\n", Containerd),
            EditError::WrongVersion {
                found: 3,
                runtime: "1.x"
            }
        );
        assert!(matches!(
            bad("[plugins.cri]\n", Containerd2),
            EditError::WrongVersion { found: 1, .. }
        ));
        assert!(matches!(
            bad("version = 2\nplugins = 5\n", Containerd),
            EditError::NotATable { .. }
        ));
        assert!(matches!(
            bad(
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = 1\n",
                Containerd
            ),
            EditError::NotAString { .. }
        ));
        let msg = bad("version = 2\n[plugins\n", Containerd).to_string();
        assert!(
            msg.contains("/etc/containerd/config.toml does not parse"),
            "{msg}"
        );
    }

    #[test]
    fn dotted_keys_and_inline_tables_are_edited_where_they_are() {
        let text = "version = 2\nplugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir = \"/x\"\n";
        let out = set_cni_dirs(text, Containerd, "/b", "/c").unwrap();
        let v: toml_edit::DocumentMut = out.parse().unwrap();
        let cni = &v["plugins"]["io.containerd.grpc.v1.cri"]["cni"];
        assert_eq!(cni["bin_dir"].as_str(), Some("/b"), "{out}");
        assert_eq!(cni["conf_dir"].as_str(), Some("/c"), "{out}");
        assert_eq!(set_cni_dirs(&out, Containerd, "/b", "/c").unwrap(), out);
    }
}
