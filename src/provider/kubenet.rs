//! kubenet: the kubelet's built-in network plugin (kops' default). It is kubelet flags only, so
//! there is nothing to write but the kubelet unit (kube.rs takes the flags from here); the
//! controller-manager allocates podCIDRs and something outside the node (a cloud route table,
//! or the routes provider's cloud backends) routes them. It only exists below Kubernetes 1.24:
//! validation refuses it above.

use super::needs::{Iface, Needs, BRIDGE_CHAIN};
use super::teardown::{self, Firewall};
use super::{delete_link, ClusterPlan, NodePlan};
use crate::profile::{Cluster, Node};

/// The kubelet's kubenet uses the Node object's spec.podCIDR.
pub const NEEDS_ALLOCATED_POD_CIDRS: bool = true;
/// kubenet runs inside the kubelet's dockershim only (validation refuses it elsewhere): a new
/// profile says so in its kubernetes section.
pub const WIZARD_KUBERNETES: &str =
    "  containerRuntime: docker              # kubenet runs inside the kubelet's dockershim only\n";

/// The bridge kubenet creates on every node.
pub const BRIDGE: &str = "cbr0";

/// The kubelet's network flags for kubenet on `node`.
pub fn kubelet_flags(cluster: &Cluster, node: &Node) -> Vec<String> {
    let opts = &cluster.profile.networking.kubenet;
    let mut flags = vec!["--network-plugin=kubenet".to_string()];
    if let Some(cidr) = node.pod_cidr {
        flags.push(format!("--pod-cidr={cidr}"));
    }
    let non_masq = opts
        .non_masquerade_cidr
        .clone()
        .unwrap_or_else(|| cluster.cluster_cidr.to_string());
    flags.push(format!("--non-masquerade-cidr={non_masq}"));
    if let Some(mtu) = opts.mtu {
        flags.push(format!("--network-plugin-mtu={mtu}"));
    }
    // kubenet runs the bridge, host-local and loopback plugins from here.
    flags.push(format!(
        "--cni-bin-dir={}",
        cluster.profile.networking.cni_bin_dir
    ));
    flags
}

/// kubenet's CNI network name (its host-local reservations live under it).
pub const CNI_NETWORK: &str = "kubenet";
/// kubenet's one rule of its own (kubenet_linux.go, ensureMasqRule), by its comment; its hostport
/// chains are KUBE-*, which no teardown touches.
pub const FIREWALL: Firewall<'static> = Firewall {
    chains: "",
    comments: "^kubenet: SNAT for outbound traffic from cluster$",
    ifaces: "",
    nft_tables: &[],
};

/// Nothing to write (the kubelet unit comes from kube.rs); leaving kubenet removes its bridge, which
/// would otherwise keep the old podCIDR address when another provider creates its own, its
/// masquerade rule and host-local's reservations of gone pods.
/// The kubelet bridges pods itself; the routes between nodes are the cloud's or the operator's.
pub fn needs(_cluster: &Cluster) -> Needs {
    Needs {
        traffic: vec![],
        layer2: false,
        pod_mtu: None,
        overhead: 0,
        overlay: false,
        felix: false,
        iface: Iface::None,
        node_plugins: BRIDGE_CHAIN.to_vec(),
    }
}

pub fn node(_cluster: &Cluster, node: &Node) -> NodePlan {
    let mut plan = NodePlan::default();
    if node.is_worker() {
        plan.teardown.push(teardown::firewall("kubenet", &FIREWALL));
        plan.teardown.push(delete_link(BRIDGE));
        plan.teardown.push(teardown::ipam(CNI_NETWORK));
    }
    plan
}

/// kubenet has no cluster objects.
pub fn cluster(_cluster: &Cluster) -> ClusterPlan {
    ClusterPlan::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kube::testkit::cluster as profile;
    use crate::provider::kube::KUBELET_UNIT;
    use crate::provider::node_plan;

    #[test]
    fn flags_carry_pod_cidr_and_defaults() {
        let c = profile("1.23", "", "  provider: kubenet\n");
        let w1 = c.node("worker-1").unwrap();
        assert_eq!(
            kubelet_flags(&c, w1),
            [
                "--network-plugin=kubenet",
                "--pod-cidr=10.200.1.0/24",
                "--non-masquerade-cidr=10.200.0.0/16",
                "--cni-bin-dir=/opt/cni/bin"
            ]
        );
        let unit = node_plan(&c, w1, &Default::default())
            .files
            .into_iter()
            .find(|f| f.path == KUBELET_UNIT)
            .unwrap()
            .content;
        assert!(unit.contains("--network-plugin=kubenet \\\n"), "{unit}");
        assert!(unit.contains("--pod-cidr=10.200.1.0/24 \\\n"), "{unit}");
        assert!(!unit.contains("--network-plugin=cni"), "{unit}");
    }

    #[test]
    fn options_override_defaults() {
        let c = profile(
            "1.22",
            "",
            "  provider: kubenet\n  kubenet: { mtu: 1460, nonMasqueradeCidr: 10.0.0.0/8 }\n",
        );
        let flags = kubelet_flags(&c, c.node("worker-0").unwrap());
        assert!(
            flags.contains(&"--non-masquerade-cidr=10.0.0.0/8".to_string()),
            "{flags:?}"
        );
        assert!(
            flags.contains(&"--network-plugin-mtu=1460".to_string()),
            "{flags:?}"
        );
        assert!(
            flags.contains(&"--pod-cidr=10.200.0.0/24".to_string()),
            "{flags:?}"
        );
    }

    #[test]
    fn teardown_on_workers_only() {
        let c = profile("1.23", "", "  provider: kubenet\n");
        let titles: Vec<_> = node(&c, c.node("worker-0").unwrap())
            .teardown
            .into_iter()
            .map(|s| s.title)
            .collect();
        assert_eq!(
            titles,
            [
                "remove kubenet's iptables and nftables rules",
                "delete link cbr0",
                "remove host-local reservations of gone pods (kubenet)"
            ]
        );
        assert!(node(&c, c.node("controller-0").unwrap())
            .teardown
            .is_empty());
        assert_eq!(cluster(&c), ClusterPlan::default());
    }
}
