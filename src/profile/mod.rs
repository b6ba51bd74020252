//! The cluster profile: parsed from YAML (`model`), checked (`validate`), and resolved into a
//! `Cluster` with every node's pod CIDR planned (`cidr`). Everything after this module works on
//! `Cluster`, never on raw YAML, so nothing unvalidated reaches a node.

pub mod binaries;
pub mod cidr;
pub mod jump;
pub mod model;
pub mod nesting;
pub mod rewrite;
pub mod validate;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;
use sha2::{Digest, Sha256};

pub use model::*;
pub use validate::is_sha256_hex;

/// One problem found in a profile: the field path (e.g. `nodes[2].podCIDR`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read, or is not a regular file of a sane size.
    #[error("profile: {0}")]
    Read(#[from] crate::input::ReadError),
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// A Kubernetes minor version: rendering depends on it (CNI flags left kubelet in 1.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubeVersion {
    pub fn parse(s: &str) -> Option<KubeVersion> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        if let Some(patch) = parts.next() {
            patch.parse::<u32>().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(KubeVersion { major, minor })
    }
    /// Kubernetes 1.24 removed dockershim and the kubelet's --network-plugin flags.
    pub fn kubelet_has_network_plugin(self) -> bool {
        self < KubeVersion {
            major: 1,
            minor: 24,
        }
    }
}

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A node after validation and CIDR planning.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Node {
    pub name: String,
    pub address: Ipv4Addr,
    pub roles: Vec<Role>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<Ipv4Network>,
    /// true when the profile gave the podCIDR, false when netctl allocated it.
    #[serde(skip)]
    pub pod_cidr_given: bool,
    #[serde(skip)]
    pub init: InitSystem,
    #[serde(skip)]
    pub ssh_port: u16,
}

impl Node {
    pub fn is_worker(&self) -> bool {
        self.roles.contains(&Role::Worker)
    }
    pub fn is_controller(&self) -> bool {
        self.roles.contains(&Role::Controller)
    }
    pub fn has_systemd(&self) -> bool {
        self.init == InitSystem::Systemd
    }
}

/// A validated profile with its plan: the only input the rest of netctl takes from the profile.
/// Pure: what a run prepares besides (certificates, binaries) is `provider::Inputs`.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub profile: Profile,
    pub version: KubeVersion,
    pub cluster_cidr: Ipv4Network,
    pub service_cidr: Ipv4Network,
    pub cluster_dns: Ipv4Addr,
    pub nodes: Vec<Node>,
    /// sha256 of the profile as parsed (defaults filled in), recorded on nodes.
    pub hash: String,
    /// The file the profile was read from (empty when built from text in memory).
    pub source: PathBuf,
    /// The routes provider's peer table, the same on every node: made on first use, then every
    /// node's plan shares these bytes and this sha256 (provider::routes), so a run builds it once.
    pub peer_table: std::sync::OnceLock<SharedBytes>,
}

/// Bytes made once and shared by every node's plan, with their sha256 computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBytes {
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub sha256: String,
}

impl SharedBytes {
    pub fn new(bytes: Vec<u8>) -> SharedBytes {
        SharedBytes {
            sha256: sha256_hex(&bytes),
            bytes: std::sync::Arc::new(bytes),
        }
    }
}

impl Cluster {
    pub fn provider(&self) -> ProviderKind {
        self.profile.networking.provider
    }
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    /// Nodes that carry pods: they get a podCIDR, CNI config and kubelet.
    pub fn workers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_worker())
    }
    /// Whether `node` runs flanneld as a systemd unit: then it needs flanneld's credentials and
    /// the binaries the profile names. A fact of the profile alone, asked by the flannel
    /// provider, the PKI and the binary loader alike.
    pub fn runs_flanneld_unit(&self, node: &Node) -> bool {
        self.provider() == ProviderKind::Flannel
            && self.profile.networking.flannel.deploy == FlannelDeploy::Systemd
            && node.is_worker()
    }
}

/// Read, parse, validate and plan a profile file.
pub fn load(path: &Path) -> Result<Cluster, ProfileError> {
    let text = crate::input::read_bounded(path, crate::input::DEFAULT_LIMIT)?;
    load_str(&text, path)
}

/// Parse, validate and plan profile text; `path` only names it in errors.
pub fn load_str(text: &str, path: &Path) -> Result<Cluster, ProfileError> {
    let profile = parse(text, path)?;
    let mut cluster = resolve(profile).map_err(|problems| ProfileError::Invalid {
        path: path.to_path_buf(),
        problems,
    })?;
    cluster.source = path.to_path_buf();
    Ok(cluster)
}

/// YAML to `Profile`; syntax, type and unknown-key errors carry line and column.
pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
    nesting::check(text, nesting::MAX_FLOW_DEPTH).map_err(|e| ProfileError::Syntax {
        path: path.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    serde_yaml::from_str::<Profile>(text).map_err(|e| match e.location() {
        Some(loc) => ProfileError::Syntax {
            path: path.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message: strip_location(&e.to_string()),
        },
        None => ProfileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    })
}

/// serde_yaml appends " at line L column C"; the location is printed separately.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Validate and plan: every problem found, or the `Cluster`.
pub fn resolve(profile: Profile) -> Result<Cluster, Vec<Problem>> {
    let checked = validate::validate(&profile)?;
    let nodes = cidr::plan(&profile, &checked).map_err(|p| vec![p])?;
    let hash = {
        let canonical = serde_json::to_vec(&profile).expect("profile serialises");
        hex(&Sha256::digest(&canonical))
    };
    Ok(Cluster {
        version: checked.version,
        cluster_cidr: checked.cluster_cidr,
        service_cidr: checked.service_cidr,
        cluster_dns: checked.cluster_dns,
        nodes,
        hash,
        profile,
        source: PathBuf::new(),
        peer_table: Default::default(),
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Expand a leading `~/` with $HOME, as ssh and kubectl do.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest);
        }
    }
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(networking: &str) -> Cluster {
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  kubeconfig: /root/.kube/config\nnetworking:\n{networking}nodes:\n  - {{name: c1, address: 10.0.0.10, roles: [controller]}}\n  - {{name: w1, address: 10.0.0.11}}\n"
        );
        load_str(&text, Path::new("t.yaml")).unwrap()
    }

    /// flanneld runs as a unit on the workers of a flannel `deploy: systemd` cluster only: the
    /// nodes that get its credentials and binaries.
    #[test]
    fn flanneld_runs_as_a_unit_on_systemd_flannel_workers_only() {
        let runs = |c: &Cluster| -> Vec<bool> {
            c.nodes.iter().map(|n| c.runs_flanneld_unit(n)).collect()
        };
        let systemd = cluster("  provider: flannel\n  flannel: { deploy: systemd }\n");
        assert_eq!(runs(&systemd), [false, true]);
        let daemonset = cluster("  provider: flannel\n  flannel: { deploy: daemonset }\n");
        assert_eq!(runs(&daemonset), [false, false]);
        let routes = cluster("  provider: routes\n");
        assert_eq!(runs(&routes), [false, false]);
    }
}
