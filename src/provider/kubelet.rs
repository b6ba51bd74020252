//! The kubelet: how it finds CNI. Below Kubernetes 1.24 that is its network flags
//! (`--network-plugin`, `--cni-conf-dir`, `--cni-bin-dir`; kubenet's own), which netctl edits in
//! the operator's unit where they are; from 1.24 the kubelet has no network flags and netctl
//! leaves an existing kubelet alone. Only where no kubelet unit exists (or `kubernetes.units:
//! own`) does netctl write one, with a KubeletConfiguration that is secure by default.
//!
//! Checked against the kubelet's config types (staging/src/k8s.io/kubelet/config/v1beta1/
//! types.go, 1.30 and 1.31): authentication.anonymous.enabled, authentication.webhook.enabled,
//! authentication.x509.clientCAFile, authorization.mode, readOnlyPort, cgroupDriver, clusterDNS,
//! clusterDomain, containerRuntimeEndpoint (added in 1.27).

use serde::Serialize;

use super::edit::{Change, NodeEdit};
use super::unitfile::FlagEdit;
use super::{NodeFile, NodePlan, Unit};
use crate::profile::{Cluster, ContainerRuntime, KubeVersion, Node, ProviderKind, UnitPolicy};

pub const UNIT: &str = "/etc/systemd/system/kubelet.service";
pub const CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const CONTAINERD_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// Paths of the hard-way layout (kubernetes-the-hard-way's worker: /var/lib/kubelet/).
const KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";
const CLIENT_CA: &str = "/var/lib/kubelet/ca.crt";

/// Every flag netctl owns on the kubelet: the CNI flags and kubenet's.
const NETWORK_FLAGS: [&str; 6] = [
    "--network-plugin",
    "--cni-conf-dir",
    "--cni-bin-dir",
    "--pod-cidr",
    "--non-masquerade-cidr",
    "--network-plugin-mtu",
];

fn v(major: u32, minor: u32) -> KubeVersion {
    KubeVersion { major, minor }
}

/// The network flags for this provider (below 1.24), as (`--name`, value).
fn network_flags(cluster: &Cluster, node: &Node, provider: ProviderKind) -> Vec<(String, String)> {
    let net = &cluster.profile.networking;
    let flags: Vec<String> = if let Some(own) = super::kubelet_plugin_flags(cluster, node, provider)
    {
        own
    } else {
        vec![
            "--network-plugin=cni".to_string(),
            format!("--cni-conf-dir={}", net.cni_conf_dir),
            format!("--cni-bin-dir={}", net.cni_bin_dir),
        ]
    };
    flags
        .into_iter()
        .map(|f| {
            let (n, v) = f.split_once('=').expect("flags are --name=value");
            (n.to_string(), v.to_string())
        })
        .collect()
}

/// The edit of the operator's kubelet: below 1.24 the network flags (the ones this provider does
/// not use are removed; `--pod-cidr` stays the operator's unless kubenet sets it), from 1.24
/// nothing.
fn flag_edit(cluster: &Cluster, node: &Node, provider: ProviderKind) -> FlagEdit {
    if !cluster.version.kubelet_has_network_plugin() {
        return FlagEdit::default();
    }
    let set = network_flags(cluster, node, provider);
    let remove = NETWORK_FLAGS
        .iter()
        .filter(|n| **n != "--pod-cidr" && !set.iter().any(|(s, _)| s == *n))
        .map(|n| n.to_string())
        .collect();
    FlagEdit {
        set,
        remove,
        keep_if_present: vec![],
    }
}

/// Context of templates/kube/kubelet.service and kube-controller-manager.service.
#[derive(Serialize)]
pub(crate) struct UnitCtx<'a> {
    pub provider: &'a str,
    pub bin_dir: &'a str,
    /// The runtime's unit the kubelet starts after (the controller manager's template has none).
    pub runtime_unit: &'a str,
    /// One `--flag=value` per line, already safe (validated values, no spaces).
    pub flags: Vec<String>,
}

#[derive(Serialize)]
struct ConfigCtx<'a> {
    provider: &'a str,
    client_ca_file: &'a str,
    cgroup_driver: &'a str,
    cluster_dns: String,
    cluster_domain: &'a str,
    container_runtime_endpoint: Option<&'a str>,
}

/// The cgroup driver of the runtime netctl configures: containerd with netctl's config runs runc
/// with SystemdCgroup = true; docker defaults to cgroupfs.
pub fn cgroup_driver(runtime: ContainerRuntime) -> &'static str {
    match runtime {
        ContainerRuntime::Docker => "cgroupfs",
        _ => "systemd",
    }
}

/// netctl's own kubelet unit and, where the kubelet reads one (1.10+), its config file.
fn whole(cluster: &Cluster, node: &Node, provider: ProviderKind) -> (String, Vec<NodeFile>) {
    let k = &cluster.profile.kubernetes;
    let version = cluster.version;
    let docker = k.container_runtime == ContainerRuntime::Docker;
    // The config file field replaces the endpoint flag from 1.27.
    let endpoint_in_config = !docker && version >= v(1, 27);
    let mut flags = Vec::new();
    let mut companions = Vec::new();
    if version >= v(1, 10) {
        flags.push(format!("--config={CONFIG}"));
        let config = crate::template::template(
            "kube/kubelet-config.yaml",
            &ConfigCtx {
                provider: provider.as_str(),
                client_ca_file: CLIENT_CA,
                cgroup_driver: cgroup_driver(k.container_runtime),
                cluster_dns: cluster.cluster_dns.to_string(),
                cluster_domain: &k.cluster_domain,
                container_runtime_endpoint: endpoint_in_config.then_some(CONTAINERD_SOCKET),
            },
        );
        companions.push(NodeFile {
            path: CONFIG.into(),
            mode: 0o644,
            content: config,
            services: vec!["kubelet".into()],
            blob: None,
        });
    } else {
        // 1.9 has no config file: the same settings as flags.
        flags.extend([
            "--anonymous-auth=false".to_string(),
            "--authentication-token-webhook=true".to_string(),
            "--authorization-mode=Webhook".to_string(),
            format!("--client-ca-file={CLIENT_CA}"),
            "--read-only-port=0".to_string(),
            format!("--cgroup-driver={}", cgroup_driver(k.container_runtime)),
            format!("--cluster-dns={}", cluster.cluster_dns),
            format!("--cluster-domain={}", k.cluster_domain),
        ]);
    }
    flags.extend([
        format!("--kubeconfig={KUBECONFIG}"),
        // The Node object must carry the profile's name and address: flanneld finds its node by
        // NODE_NAME, and on multi-NIC hosts (Vagrant) the kubelet would otherwise pick the NAT address.
        format!("--hostname-override={}", node.name),
        format!("--node-ip={}", node.address),
        "--register-node=true".to_string(),
    ]);
    if !docker {
        if version < v(1, 24) {
            // Below 1.24 the kubelet defaults to dockershim.
            flags.push("--container-runtime=remote".to_string());
        }
        if !endpoint_in_config {
            flags.push(format!("--container-runtime-endpoint={CONTAINERD_SOCKET}"));
        }
    }
    if version.kubelet_has_network_plugin() {
        flags.extend(
            network_flags(cluster, node, provider)
                .into_iter()
                .map(|(n, v)| format!("{n}={v}")),
        );
    }
    flags.push("--v=2".to_string());
    let unit = crate::template::template(
        "kube/kubelet.service",
        &UnitCtx {
            provider: provider.as_str(),
            bin_dir: &k.bin_dir,
            runtime_unit: if docker {
                "docker.service"
            } else {
                "containerd.service"
            },
            flags,
        },
    );
    (unit, companions)
}

/// The kubelet of a worker: netctl's whole unit (and config file) where the node has none, else
/// the edit of the operator's.
pub fn add(cluster: &Cluster, node: &Node, provider: ProviderKind, plan: &mut NodePlan) {
    let (unit, companions) = whole(cluster, node, provider);
    plan.files.push(NodeFile {
        path: UNIT.into(),
        mode: 0o644,
        content: unit,
        services: vec!["kubelet".into()],
        blob: None,
    });
    plan.edits.push(NodeEdit {
        path: UNIT.into(),
        change: Change::UnitFlags {
            unit: "kubelet.service".into(),
            flags: flag_edit(cluster, node, provider),
        },
        companions,
        own: cluster.profile.kubernetes.units == UnitPolicy::Own,
        services: vec![],
    });
}

pub fn unit() -> Unit {
    Unit {
        name: "kubelet".into(),
        enable: true,
        restart: true,
    }
}
