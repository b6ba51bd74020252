//! Programs netctl copies from the operator's machine to nodes, as the hard-way guides do:
//! flanneld and flannel's CNI plugin when flanneld runs as a systemd unit (the DaemonSet's init
//! container installs the plugin otherwise). The profile pins each by sha256; a run that touches
//! nodes reads and checks them before the first node is reached. `render` never reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{expand_home, BinaryFile, Cluster, Problem, ProfileError};

/// Far above flanneld (about 40 MB) and the CNI plugin; a bound so a wrong path cannot fill memory.
pub const LIMIT: u64 = 256 * 1024 * 1024;

pub const FLANNELD: &str = "networking.flannel.flanneld";
pub const CNI_PLUGIN: &str = "networking.flannel.cniPlugin";

/// The binaries this cluster installs, by profile field; None where the field is not set.
pub fn wanted(cluster: &Cluster) -> Vec<(&'static str, Option<&BinaryFile>)> {
    let needed = cluster.nodes.iter().any(|n| cluster.runs_flanneld_unit(n));
    if !needed {
        return vec![];
    }
    let f = &cluster.profile.networking.flannel;
    vec![
        (FLANNELD, f.flanneld.as_ref()),
        (CNI_PLUGIN, f.cni_plugin.as_ref()),
    ]
}

/// Read every binary the cluster installs and check it against its sha256: the bytes, by sha256.
/// A missing field, an unreadable file or a wrong checksum is bad input naming the field.
pub fn load(
    cluster: &Cluster,
    profile_path: &Path,
) -> Result<BTreeMap<String, Arc<Vec<u8>>>, ProfileError> {
    let mut problems = Vec::new();
    let mut loaded = BTreeMap::new();
    for (field, binary) in wanted(cluster) {
        let mut bad = |field: String, message: String| problems.push(Problem::new(field, message));
        let Some(b) = binary else {
            bad(
                field.to_string(),
                "flanneld as a systemd unit needs it: { file: PATH, sha256: HEX } (docs/profile.md)"
                    .into(),
            );
            continue;
        };
        let path = relative_to(&b.file, profile_path);
        let bytes = match crate::input::read_bounded_bytes(&path, LIMIT) {
            Ok(bytes) => bytes,
            Err(e) => {
                bad(format!("{field}.file"), e.to_string());
                continue;
            }
        };
        let sha = super::sha256_hex(&bytes);
        if sha != b.sha256 {
            bad(
                format!("{field}.sha256"),
                format!(
                    "{} has sha256 {sha}, not {}: the file changed, or the profile names the wrong one",
                    path.display(),
                    b.sha256
                ),
            );
            continue;
        }
        loaded.insert(sha, Arc::new(bytes));
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(ProfileError::Invalid {
            path: profile_path.to_path_buf(),
            problems,
        })
    }
}

/// A profile's local path: relative to the profile's directory unless absolute (`~/` expanded).
fn relative_to(p: &str, profile_path: &Path) -> PathBuf {
    let p = expand_home(p);
    if p.is_absolute() {
        return p;
    }
    match profile_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(p),
        _ => p,
    }
}
