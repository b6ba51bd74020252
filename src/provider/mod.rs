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
pub mod needs;
pub mod node_prereqs;
pub mod routes;
pub mod teardown;
pub mod unitfile;
pub mod weave;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::certs::Pki;
use crate::network::Network;
use crate::profile::{Cluster, FlannelBackend, Node, ProviderKind, RoutesBackend};

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
    /// A program copied from the operator's machine (flanneld), or a file that is the same on every
    /// node (the routes peer table): its bytes are shared, not copied per node, and everything but
    /// the write itself (gather, diff, state.json, plan.json) uses its sha256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<Blob>,
}

/// A binary file's identity and, when a run that writes nodes loaded it, its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blob {
    pub sha256: String,
    pub size: Option<u64>,
    /// The profile field that names it (`networking.flannel.flanneld`), or for a shared file the
    /// part of the profile it is made from (`nodes`).
    pub field: &'static str,
    /// Made by netctl, the same on every node (the routes peer table), rather than a program
    /// copied in: render writes it once under shared/, and a diff calls it shared, not binary.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
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

/// What a run brings to node plans beyond the profile: the certificates it prepared
/// (`certs::prepare`) and the binaries it read and checked (`profile::binaries::load`). The
/// default, nothing, gives `render`'s plans: binaries by sha256 only, no certificates.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// flanneld's CA and credentials (flanneld as a systemd unit).
    pub pki: Option<Arc<Pki>>,
    /// The bytes of the binaries nodes get (flanneld, flannel's CNI plugin), by sha256.
    pub binaries: BTreeMap<String, Arc<Vec<u8>>>,
}

/// The node plan for the cluster's provider, plus the Kubernetes units that provider needs and
/// the node's certificates from the run's `inputs`, so every command that plans a node (init,
/// verify, switch on both sides, render) sees the same files.
pub fn node_plan(cluster: &Cluster, node: &Node, inputs: &Inputs) -> NodePlan {
    let provider = cluster.provider();
    let mut plan = match provider {
        ProviderKind::Routes => routes::node(cluster, node),
        ProviderKind::Kubenet => kubenet::node(cluster, node),
        ProviderKind::Flannel => flannel::node(cluster, node, &inputs.binaries),
        ProviderKind::Calico => calico::node(cluster, node),
        ProviderKind::Canal => canal::node(cluster, node),
        ProviderKind::Weave => weave::node(cluster, node),
    };
    kube::add_units(cluster, node, provider, &mut plan);
    flannel::attach(inputs.pki.as_deref(), cluster, node, &mut plan);
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

/// Providers whose daemons take each node's podCIDR from the Node object, so the controller-manager
/// must allocate them (flannel and canal: kube-subnet-mgr; kubenet: the kubelet reads spec.podCIDR).
pub fn needs_allocated_pod_cidrs(provider: ProviderKind) -> bool {
    match provider {
        ProviderKind::Routes => routes::NEEDS_ALLOCATED_POD_CIDRS,
        ProviderKind::Kubenet => kubenet::NEEDS_ALLOCATED_POD_CIDRS,
        ProviderKind::Flannel => flannel::NEEDS_ALLOCATED_POD_CIDRS,
        ProviderKind::Calico => calico::NEEDS_ALLOCATED_POD_CIDRS,
        ProviderKind::Canal => canal::NEEDS_ALLOCATED_POD_CIDRS,
        ProviderKind::Weave => weave::NEEDS_ALLOCATED_POD_CIDRS,
    }
}

/// The kernel modules the cluster's backend needs on every node (node_prereqs adds
/// br_netfilter). weave's container loads what its fast datapath needs itself; kubenet bridges
/// only.
pub fn backend_modules(cluster: &Cluster) -> Vec<node_prereqs::Module> {
    match cluster.provider() {
        ProviderKind::Routes => routes::modules(cluster),
        ProviderKind::Flannel => flannel::modules(cluster),
        ProviderKind::Calico => calico::modules(cluster),
        ProviderKind::Canal => canal::MODULES.to_vec(),
        ProviderKind::Kubenet | ProviderKind::Weave => vec![],
    }
}

/// The kubelet's network flags (below 1.24) of a provider that is a kubelet network plugin
/// itself; None: the kubelet runs CNI.
pub fn kubelet_plugin_flags(
    cluster: &Cluster,
    node: &Node,
    provider: ProviderKind,
) -> Option<Vec<String>> {
    match provider {
        ProviderKind::Kubenet => Some(kubenet::kubelet_flags(cluster, node)),
        ProviderKind::Routes
        | ProviderKind::Flannel
        | ProviderKind::Calico
        | ProviderKind::Canal
        | ProviderKind::Weave => None,
    }
}

/// The CNI config file (in cniConfDir) the runtime should pick on a node of this provider; None:
/// the provider configures no CNI (kubenet is the kubelet's own).
pub fn cni_config(cluster: &Cluster) -> Option<&'static str> {
    match cluster.provider() {
        ProviderKind::Routes => Some(routes::CNI_CONFIG),
        ProviderKind::Kubenet => None,
        ProviderKind::Flannel => Some(flannel::CONFLIST),
        ProviderKind::Calico => Some(calico::CNI_CONFIG),
        ProviderKind::Canal => Some(canal::CNI_CONFIG),
        ProviderKind::Weave => Some(weave::CNI_CONFIG),
    }
}

/// The bridge the provider's CNI config puts pods on and the MTU new pods get there, where netctl
/// decides both (verify names the pods that keep another MTU); None where the provider's own
/// daemon or plugin sets the pods' MTU.
pub fn pod_bridge(cluster: &Cluster) -> Option<(&'static str, u32)> {
    match cluster.provider() {
        ProviderKind::Routes => Some((routes::BRIDGE, routes::pod_mtu(cluster))),
        ProviderKind::Kubenet
        | ProviderKind::Flannel
        | ProviderKind::Calico
        | ProviderKind::Canal
        | ProviderKind::Weave => None,
    }
}

/// The provider's DaemonSet (namespace, name), or why it runs none.
pub fn daemonset(cluster: &Cluster) -> Result<(&'static str, &'static str), String> {
    match cluster.provider() {
        ProviderKind::Flannel => flannel::daemonset(cluster),
        ProviderKind::Calico => Ok(calico::DAEMONSET),
        ProviderKind::Canal => Ok(canal::DAEMONSET),
        ProviderKind::Weave => Ok(weave::DAEMONSET),
        p @ (ProviderKind::Routes | ProviderKind::Kubenet) => {
            Err(format!("{} runs no DaemonSet", p.as_str()))
        }
    }
}

/// What a node's pod routes look like, for verify's `node.routes` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteCheck {
    /// netctl's host-gw routes: each peer's podCIDR via its address.
    HostGw,
    /// netctl's VXLAN device with a neighbour, FDB entry and route per peer.
    Vxlan,
    /// The routes are in the cloud's route table, not on the node.
    Cloud(RoutesBackend),
    /// flanneld's lease (subnet.env): its backend, and the pod MTU the profile sets, if any.
    FlannelLease {
        backend: FlannelBackend,
        mtu: Option<u32>,
    },
    /// The provider programs its own routes (checked by the data plane).
    Own,
}

pub fn route_check(cluster: &Cluster) -> RouteCheck {
    match cluster.provider() {
        ProviderKind::Routes => routes::route_check(cluster),
        ProviderKind::Flannel => flannel::route_check(cluster),
        ProviderKind::Canal => canal::ROUTE_CHECK,
        ProviderKind::Kubenet | ProviderKind::Calico | ProviderKind::Weave => RouteCheck::Own,
    }
}

/// How a switch between two backends of one provider happens without a gap, per node; None when
/// the nodes switch the plain way (the old provider's files out, the new one's in).
pub fn change_backend(
    from: &Network,
    to: &Network,
    old: &NodePlan,
    new: &mut NodePlan,
) -> Option<BackendChange> {
    match (from.provider(), to.provider()) {
        (ProviderKind::Routes, ProviderKind::Routes) => routes::change_backend(from, to, old, new),
        _ => None,
    }
}

/// The steps of a gapless backend change on one node (see migrate.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendChange {
    /// Run on every node before any node switches: receive the new way too.
    pub prepare: Vec<Step>,
    /// Run on every node after all switched: remove the old way.
    pub cleanup: Vec<Step>,
    /// Undo `prepare` on a rollback.
    pub unprepare: Vec<Step>,
}

/// The backends `netctl profile new` offers for a provider, its default first (none: the
/// provider has no backend to choose).
pub fn wizard_backends(provider: ProviderKind) -> &'static [&'static str] {
    match provider {
        ProviderKind::Routes => &routes::WIZARD_BACKENDS,
        ProviderKind::Flannel => &flannel::WIZARD_BACKENDS,
        ProviderKind::Kubenet
        | ProviderKind::Calico
        | ProviderKind::Canal
        | ProviderKind::Weave => &[],
    }
}

/// What a new profile (`netctl profile new`) says for a provider beyond its name: a line for the
/// kubernetes section, and the provider's own section under networking, with comments.
pub fn wizard_profile(provider: ProviderKind, backend: Option<&str>) -> (&'static str, String) {
    match (provider, backend) {
        (ProviderKind::Kubenet, _) => (kubenet::WIZARD_KUBERNETES, String::new()),
        (ProviderKind::Flannel, Some(b)) => ("", flannel::wizard_section(b)),
        (ProviderKind::Routes, Some(b)) => ("", routes::wizard_section(b)),
        _ => ("", String::new()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(p: ProviderKind) -> Cluster {
        // kubenet exists only below 1.24, inside dockershim.
        let k = match p {
            ProviderKind::Kubenet => "version: \"1.23\", containerRuntime: docker",
            _ => "version: \"1.30\"",
        };
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: {{ {k}, clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }}\nnetworking:\n  provider: {p}\nnodes:\n  - {{ name: w1, address: 10.0.0.11 }}\n"
        );
        crate::profile::load_str(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    /// The config verify expects is the one the provider writes, or (a DaemonSet's) the one its
    /// teardown removes: the name lives in one place.
    #[test]
    fn the_expected_cni_config_is_the_providers_own() {
        for p in ProviderKind::ALL {
            let c = cluster(p);
            let plan = node_plan(&c, &c.nodes[0], &Inputs::default());
            let Some(name) = cni_config(&c) else {
                assert_eq!(p, ProviderKind::Kubenet, "only kubenet has no CNI config");
                continue;
            };
            let path = format!("/etc/cni/net.d/{name}");
            let written = plan.files.iter().any(|f| f.path == path);
            let removed = plan.teardown.iter().any(|t| t.command.contains(&path));
            assert!(
                written || removed,
                "{p}: {path} is neither written nor removed"
            );
            assert_eq!(
                daemonset(&c).is_ok(),
                removed,
                "{p}: a DaemonSet installs the config, netctl does not"
            );
        }
    }

    #[test]
    fn route_checks_follow_the_backend() {
        let mut c = cluster(ProviderKind::Routes);
        assert_eq!(route_check(&c), RouteCheck::HostGw);
        c.profile.networking.routes.backend = RoutesBackend::Gce;
        assert_eq!(route_check(&c), RouteCheck::Cloud(RoutesBackend::Gce));
        let mut c = cluster(ProviderKind::Flannel);
        c.profile.networking.flannel.mtu = Some(1400);
        assert_eq!(
            route_check(&c),
            RouteCheck::FlannelLease {
                backend: FlannelBackend::Vxlan,
                mtu: Some(1400)
            }
        );
        assert_eq!(route_check(&cluster(ProviderKind::Calico)), RouteCheck::Own);
    }

    /// Only routes changes backend in place; every other pair switches the plain way.
    #[test]
    fn only_routes_changes_backend_without_a_gap() {
        for (from, to, gapless) in [
            ("routes:host-gw", "routes:vxlan", true),
            ("flannel:host-gw", "flannel:vxlan", false),
            ("routes:host-gw", "flannel:host-gw", false),
        ] {
            let (from, to): (Network, Network) = (from.parse().unwrap(), to.parse().unwrap());
            let mut c = cluster(from.provider());
            from.apply_to(&mut c.profile.networking);
            let old = node_plan(&c, &c.nodes[0], &Inputs::default());
            let mut new = old.clone();
            assert_eq!(
                change_backend(&from, &to, &old, &mut new).is_some(),
                gapless,
                "{from} -> {to}"
            );
        }
    }
}
