//! Providers answer one question: for this cluster and node, which files, units and commands, and
//! which cluster-level manifests and commands? They are plain functions returning plain data; the
//! diffing, pushing, restarting and rollback around them is shared and knows no provider.

pub mod calico;
pub mod canal;
pub mod containerd;
pub mod controller_manager;
pub mod edit;
pub mod flannel;
pub mod kube;
pub mod kubelet;
pub mod kubenet;
pub mod node_prereqs;
pub mod pins;
pub mod routes;
pub mod unitfile;
pub mod weave;

use serde::Serialize;

use crate::profile::{Cluster, Node, ProviderKind};

/// A file netctl owns on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeFile {
    /// Absolute path on the node.
    pub path: String,
    pub mode: u32,
    /// Text files; empty when `blob` is set.
    pub content: String,
    /// Units restarted when this file changes.
    pub services: Vec<String>,
    /// A program copied from the operator's machine (flanneld): its bytes are shared, not copied
    /// per node, and everything but the write itself (diff, state.json, render) uses its sha256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<Blob>,
}

/// A binary file's identity and, when a run that writes nodes loaded it, its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blob {
    pub sha256: String,
    pub size: Option<u64>,
    /// The profile field that names it (`networking.flannel.flanneld`).
    pub field: &'static str,
    /// None in `render` (offline: the bytes are not read).
    #[serde(skip)]
    pub bytes: Option<std::sync::Arc<Vec<u8>>>,
}

impl NodeFile {
    /// What the node holds when the file is in place: its sha256.
    pub fn sha256(&self) -> String {
        match &self.blob {
            Some(b) => b.sha256.clone(),
            None => crate::profile::sha256_hex(self.content.as_bytes()),
        }
    }

    /// The bytes to write. A blob whose bytes were not loaded is a bug in the command (the run
    /// start loads them before any node is touched), and writing nothing would break the node.
    pub fn bytes(&self) -> &[u8] {
        match &self.blob {
            Some(b) => b
                .bytes
                .as_deref()
                .expect("binary files are loaded when the run starts"),
            None => self.content.as_bytes(),
        }
    }
}

/// A systemd unit netctl manages on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    pub name: String,
    /// `systemctl enable` it (start at boot).
    pub enable: bool,
    /// Restart it when one of its input files changed (oneshot boot units are re-applied by a
    /// command instead, so a re-apply does not tear routes down first).
    pub restart: bool,
}

/// A shell command run on the node, in order, after files are in place. Commands are idempotent:
/// running one twice leaves the node as running it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Step {
    pub title: String,
    pub command: String,
}

/// Everything one node needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    pub files: Vec<NodeFile>,
    pub units: Vec<Unit>,
    pub commands: Vec<Step>,
    /// Run by `reset` (and by `switch` when leaving this provider) before the files are removed:
    /// undo what the commands did (routes, links).
    pub teardown: Vec<Step>,
    /// Files the operator may already have, of which netctl changes only what networking needs;
    /// `edit::resolve` turns them into `files` once the gather has read the node.
    pub edits: Vec<edit::NodeEdit>,
}

/// A file written under the render output's cluster/ directory, applied with kubectl or run locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterFile {
    /// Relative to cluster/: `kube-flannel.yaml`, `calico/kustomization.yaml`, `routes.sh`.
    pub path: String,
    pub content: String,
}

/// A kubectl invocation, with paths relative to the render output's cluster/ directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubectlStep {
    pub title: String,
    pub args: Vec<String>,
}

/// A command run on the operator's machine with a cloud CLI (gcloud, aws).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalCommand {
    pub title: String,
    /// The program, found with `which` when the step runs.
    pub program: String,
    pub args: Vec<String>,
    /// How the result is judged; None: the command makes a change ("already exists": unchanged).
    pub check: Option<LocalCheck>,
}

/// A local command that checks, or changes only when a query says it must (see cloud.rs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LocalCheck {
    /// `args` is a read-only query; one line of its output must be `line`, or the step fails
    /// with `hint` (what the operator has to do: netctl cannot fix it).
    Expect { line: String, hint: String },
    /// Run `query` first: when its output is `line`, the change is there already (unchanged);
    /// otherwise run `args`.
    Ensure { query: Vec<String>, line: String },
}

/// What the cluster as a whole needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterPlan {
    pub files: Vec<ClusterFile>,
    pub kubectl: Vec<KubectlStep>,
    pub local: Vec<LocalCommand>,
    /// kubectl steps that remove this provider's cluster objects (used by `switch`).
    pub kubectl_teardown: Vec<KubectlStep>,
    /// Local files copied into the output (a profile's `manifestFile` for air-gapped sites).
    pub copies: Vec<CopiedFile>,
}

/// A local file copied into cluster/ when the render is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedFile {
    /// Relative to cluster/.
    pub path: String,
    /// The local path as the profile gives it (`~/` expanded when copied).
    pub source: String,
    /// The profile field that named it, for the error when it cannot be read.
    pub field: String,
}

/// The node plan for the cluster's provider, plus the Kubernetes units that provider needs and
/// the node's certificates. (`switch` plans both sides from clusters retargeted by migrate.rs.)
pub fn node_plan(cluster: &Cluster, node: &Node) -> NodePlan {
    let provider = cluster.provider();
    let mut plan = match provider {
        ProviderKind::Routes => routes::node(cluster, node),
        ProviderKind::Kubenet => kubenet::node(cluster, node),
        ProviderKind::Flannel => flannel::node(cluster, node),
        ProviderKind::Calico => calico::node(cluster, node),
        ProviderKind::Canal => canal::node(cluster, node),
        ProviderKind::Weave => weave::node(cluster, node),
    };
    kube::add_units(cluster, node, provider, &mut plan);
    crate::certs::attach(cluster.pki.as_deref(), cluster, node, &mut plan);
    node_prereqs::add(cluster, &mut plan);
    plan.files.sort_by(|a, b| a.path.cmp(&b.path));
    plan
}

pub fn cluster_plan(cluster: &Cluster) -> ClusterPlan {
    match cluster.provider() {
        ProviderKind::Routes => routes::cluster(cluster),
        ProviderKind::Kubenet => ClusterPlan::default(),
        ProviderKind::Flannel => flannel::cluster(cluster),
        ProviderKind::Calico => calico::cluster(cluster),
        ProviderKind::Canal => canal::cluster(cluster),
        ProviderKind::Weave => weave::cluster(cluster),
    }
}

/// Warnings about the profile's provider that do not stop a run (a deprecated provider).
pub fn warnings(cluster: &Cluster) -> Vec<&'static str> {
    match cluster.provider() {
        ProviderKind::Weave => vec![weave::DEPRECATED],
        _ => vec![],
    }
}

/// A kustomization under cluster/<dir>/: `resources` is the pinned upstream manifest, or the
/// profile's local copy (copied in as upstream.yaml, since kustomize refuses files outside its
/// directory); `patches` are (file name, content) pairs of strategic-merge patches written next to
/// it, listed as `patchesStrategicMerge`: kustomize v5 still reads it (with a deprecation note),
/// and the kustomize v2 inside kubectl 1.14-1.20, which the older clusters in profiles/ run
/// with, knows no other form. Shared by calico, canal and weave, which never carry their
/// upstream manifests.
pub fn kustomize_plan(
    provider: ProviderKind,
    upstream_url: &str,
    manifest_file: Option<&str>,
    patches: Vec<(String, String)>,
) -> ClusterPlan {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Kustomization<'a> {
        api_version: &'a str,
        kind: &'a str,
        resources: Vec<&'a str>,
        patches_strategic_merge: Vec<&'a str>,
    }
    const LOCAL: &str = "upstream.yaml";
    let dir = provider.as_str();
    let mut copies = Vec::new();
    let resource = match manifest_file {
        Some(source) => {
            copies.push(CopiedFile {
                path: format!("{dir}/{LOCAL}"),
                source: source.to_string(),
                field: format!("networking.{dir}.manifestFile"),
            });
            LOCAL
        }
        None => upstream_url,
    };
    let doc = Kustomization {
        api_version: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: vec![resource],
        patches_strategic_merge: patches.iter().map(|(name, _)| name.as_str()).collect(),
    };
    let mut files = vec![ClusterFile {
        path: format!("{dir}/kustomization.yaml"),
        content: format!(
            "# Rendered by netctl ({dir}): the upstream manifest, patched with the profile.\n{}",
            serde_yaml::to_string(&doc).expect("kustomization serialises")
        ),
    }];
    files.extend(patches.into_iter().map(|(name, content)| ClusterFile {
        path: format!("{dir}/{name}"),
        content,
    }));
    ClusterPlan {
        files,
        kubectl: vec![KubectlStep {
            title: format!("apply {dir}"),
            args: vec!["apply".into(), "-k".into(), dir.into()],
        }],
        local: vec![],
        kubectl_teardown: vec![KubectlStep {
            title: format!("delete {dir}"),
            args: vec![
                "delete".into(),
                "-k".into(),
                dir.into(),
                "--ignore-not-found".into(),
            ],
        }],
        copies,
    }
}

/// The upstream DaemonSets (calico, canal, weave) install their CNI plugin and config here.
pub const UPSTREAM_CNI_BIN_DIR: &str = "/opt/cni/bin";
pub const UPSTREAM_CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// The profile's CNI directories, when either differs from where the upstream DaemonSets install:
/// then their hostPath volumes must move, or the runtime looks where nothing was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniDirs {
    pub bin_dir: String,
    pub conf_dir: String,
}

pub fn custom_cni_dirs(cluster: &Cluster) -> Option<CniDirs> {
    // Validation keeps both normal absolute paths (no trailing /), so a string compare is exact.
    let net = &cluster.profile.networking;
    (net.cni_bin_dir != UPSTREAM_CNI_BIN_DIR || net.cni_conf_dir != UPSTREAM_CNI_CONF_DIR).then(
        || CniDirs {
            bin_dir: net.cni_bin_dir.clone(),
            conf_dir: net.cni_conf_dir.clone(),
        },
    )
}

/// Delete a link if it exists (teardown runs again after a partial failure, so it must be idempotent).
pub fn delete_link(link: &str) -> Step {
    Step {
        title: format!("delete link {link}"),
        command: format!(
            "if ip link show {l} >/dev/null 2>&1; then ip link delete {l}; fi",
            l = sh_quote(link)
        ),
    }
}

/// Teardown of a DaemonSet provider on a worker: what its pods installed on the host, which
/// outlives the DaemonSet. Its CNI config above all: it sorts before 10-flannel.conflist and
/// would keep winning over the next provider's.
pub fn daemonset_teardown(
    cluster: &Cluster,
    node: &Node,
    provider: &str,
    cni_files: &[&str],
    host_state: Vec<Step>,
) -> NodePlan {
    let mut plan = NodePlan::default();
    if !node.is_worker() {
        return plan;
    }
    let dir = &cluster.profile.networking.cni_conf_dir;
    let files: Vec<String> = cni_files
        .iter()
        .map(|f| sh_quote(&format!("{dir}/{f}")))
        .collect();
    plan.teardown.push(Step {
        title: format!("remove {provider}'s CNI config"),
        command: format!("rm -f {}", files.join(" ")),
    });
    plan.teardown.extend(host_state);
    plan
}

// Quoting lives with the script builder (shell.rs); providers keep calling it from here.
pub use crate::shell::sh_quote;
