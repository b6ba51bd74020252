//! canal: flannel for the network, calico for policy. The pinned upstream canal.yaml (or the
//! profile's local copy) is applied through a kustomization that patches ConfigMap canal-config:
//! flannel's Network must equal the controller-manager's --cluster-cidr (its kube-subnet-mgr reads
//! allocated podCIDRs, so kube.rs turns allocation on for canal).

use serde::Serialize;

use super::needs::{Iface, Needs, Proto, Traffic};
use super::teardown::{self, Firewall};
use super::{
    daemonset_teardown, delete_link, kustomize_plan, node_prereqs, ClusterPlan, NodePlan,
    RouteCheck, Step,
};
use crate::profile::{Cluster, FlannelBackend, Node, ProviderKind};

/// What canal's install-cni writes into cniConfDir.
pub const CNI_CONFIG: &str = "10-canal.conflist";
/// canal's flannel runs the vxlan backend (`cluster` writes it into net-conf.json).
pub const MODULES: [node_prereqs::Module; 1] = [node_prereqs::VXLAN];
/// canal (namespace, name).
pub const DAEMONSET: (&str, &str) = ("kube-system", "canal");
/// canal's flannel leases the Node objects' podCIDRs (kube-subnet-mgr).
pub const NEEDS_ALLOCATED_POD_CIDRS: bool = true;
/// canal's flannel runs the vxlan backend (`cluster` writes it into net-conf.json), and its MTU is
/// not `networking.flannel`'s.
pub const ROUTE_CHECK: RouteCheck = RouteCheck::FlannelLease {
    backend: FlannelBackend::Vxlan,
    mtu: None,
};

/// canal's flannel: vxlan on 8472 (net-conf.json names no port), its interface `canal_iface` or
/// the default route's; its calico-node is Felix (no BGP: CALICO_NETWORKING_BACKEND none).
pub fn needs(cluster: &Cluster) -> Needs {
    Needs {
        traffic: vec![Traffic {
            check: "vxlan",
            proto: Proto::Udp(8472),
            what: "canal's flannel VXLAN",
        }],
        layer2: false,
        pod_mtu: None,
        overhead: 50,
        overlay: true,
        felix: true,
        iface: cluster
            .profile
            .networking
            .canal
            .iface
            .clone()
            .map_or(Iface::DefaultRoute, Iface::Named),
        node_plugins: vec![],
    }
}

pub fn upstream_url(version: &str) -> String {
    format!("https://raw.githubusercontent.com/projectcalico/calico/{version}/manifests/canal.yaml")
}

/// canal's net-conf.json: upstream's, with the cluster's network.
#[derive(Serialize)]
struct NetConf {
    #[serde(rename = "Network")]
    network: String,
    #[serde(rename = "Backend")]
    backend: Backend,
}

#[derive(Serialize)]
struct Backend {
    #[serde(rename = "Type")]
    kind: &'static str,
}

/// Context of templates/canal/canal-config.yaml.
#[derive(Serialize)]
struct ConfigCtx<'a> {
    /// None leaves upstream's "" (flannel picks the default-route interface).
    iface: Option<&'a str>,
    masquerade: bool,
    /// JSON indented four spaces for the block scalar.
    net_conf: String,
}

/// canal's CNI network (the calico plugin, with host-local handing out the node's podCIDR).
pub const CNI_NETWORK: &str = "k8s-pod-network";
/// canal runs flannel v0.24.4 (iptables only: its nftables mode came later) beside felix:
/// flannel's two chains and comments, felix's `cali-` chains, `cali:` comments and nftables
/// tables (calico.rs).
pub const FIREWALL: Firewall<'static> = Firewall {
    chains: "^(FLANNEL-POSTRTG|FLANNEL-FWD)$|^cali-",
    comments: "^flanneld (masq|forward)$|^cali:",
    ifaces: "",
    nft_tables: super::calico::FIREWALL.nft_tables,
};

/// Nothing to write; leaving canal removes what its DaemonSet installed: its CNI config, its
/// kubeconfig, flannel's vxlan link and lease, both daemons' chains and rules, and host-local's
/// reservations of gone pods.
pub fn node(cluster: &Cluster, node: &Node) -> NodePlan {
    let lease = Step {
        title: "remove flannel's lease".into(),
        command: "rm -f /run/flannel/subnet.env".into(),
    };
    daemonset_teardown(
        cluster,
        node,
        "canal",
        &[CNI_CONFIG, "calico-kubeconfig"],
        vec![
            teardown::firewall("canal", &FIREWALL),
            delete_link("flannel.1"),
            lease,
            teardown::ipam(CNI_NETWORK),
        ],
    )
}

pub fn cluster(cluster: &Cluster) -> ClusterPlan {
    let c = &cluster.profile.networking.canal;
    let net_conf = NetConf {
        network: cluster.cluster_cidr.to_string(),
        backend: Backend { kind: "vxlan" },
    };
    let net_conf = serde_json::to_string_pretty(&net_conf).expect("net-conf serialises");
    let config = crate::template::template(
        "canal/canal-config.yaml",
        &ConfigCtx {
            iface: c.iface.as_deref(),
            masquerade: c.masquerade,
            net_conf: net_conf
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        },
    );
    let mut patches = vec![("canal-config.yaml".to_string(), config)];
    if !c.masquerade {
        patches.push((
            "kube-flannel.yaml".to_string(),
            crate::template::template_plain("canal/kube-flannel.yaml"),
        ));
    }
    patches.extend(super::calico::cni_dirs_patch(cluster, "canal"));
    kustomize_plan(
        ProviderKind::Canal,
        &upstream_url(&c.version),
        c.manifest_file.as_deref(),
        patches,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::kube::testkit::{
        check_manifest, cluster as profile, env, find, fixture, host_path, init_env, kustomize,
    };
    use crate::provider::kube::CONTROLLER_MANAGER_UNIT;
    use crate::provider::node_plan;

    fn with_fixture(opts: &str) -> Cluster {
        profile(
            "1.30",
            "",
            &format!(
                "  provider: canal\n  canal: {{ manifestFile: {}{opts} }}\n",
                fixture("canal.yaml")
            ),
        )
    }

    #[test]
    fn kustomization_points_at_the_pinned_upstream() {
        let c = profile("1.30", "", "  provider: canal\n");
        let plan = cluster(&c);
        let k: serde_yaml::Value = serde_yaml::from_str(&plan.files[0].content).unwrap();
        assert_eq!(
            k["resources"][0].as_str(),
            Some("https://raw.githubusercontent.com/projectcalico/calico/v3.31.0/manifests/canal.yaml")
        );
        assert_eq!(plan.files[1].path, "canal/canal-config.yaml");
        check_manifest(&plan.files[1].content);
        assert_eq!(plan.kubectl[0].args, ["apply", "-k", "canal"]);
        assert_eq!(
            plan.kubectl_teardown[0].args,
            ["delete", "-k", "canal", "--ignore-not-found"]
        );
    }

    #[test]
    fn kustomize_applies_the_profile() {
        let c = with_fixture(", iface: enp0s8, masquerade: false");
        assert_eq!(cluster(&c).copies[0].path, "canal/upstream.yaml");
        let Some(docs) = kustomize(&cluster(&c), "canal") else {
            return;
        };
        let cm = find(&docs, "ConfigMap", "canal-config");
        let net: serde_json::Value =
            serde_json::from_str(cm["data"]["net-conf.json"].as_str().unwrap()).unwrap();
        assert_eq!(
            net,
            json!({"Network": "10.200.0.0/16", "Backend": {"Type": "vxlan"}})
        );
        assert_eq!(cm["data"]["canal_iface"].as_str(), Some("enp0s8"));
        assert_eq!(cm["data"]["masquerade"].as_str(), Some("false"));
        assert_eq!(
            cm["data"]["veth_mtu"].as_str(),
            Some("0"),
            "other keys untouched"
        );
        // flannel reads the ConfigMap; env is as upstream.
        let ds = find(&docs, "DaemonSet", "canal");
        assert_eq!(env(ds, "kube-flannel").len(), 4);
        assert_eq!(env(ds, "calico-node").len(), 7);
        // Item 10: --ip-masq on the command line would win over FLANNELD_IP_MASQ=false.
        assert_eq!(
            flannel_command(ds),
            ["/opt/bin/flanneld", "--kube-subnet-mgr"]
        );
    }

    fn flannel_command(ds: &serde_yaml::Value) -> Vec<String> {
        ds["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some("kube-flannel"))
            .unwrap()["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn kustomize_keeps_upstream_iface_when_unset() {
        let c = with_fixture("");
        let Some(docs) = kustomize(&cluster(&c), "canal") else {
            return;
        };
        let cm = find(&docs, "ConfigMap", "canal-config");
        assert_eq!(cm["data"]["canal_iface"].as_str(), Some(""));
        assert_eq!(cm["data"]["masquerade"].as_str(), Some("true"));
        let ds = find(&docs, "DaemonSet", "canal");
        assert_eq!(
            flannel_command(ds),
            ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"],
            "masquerading is upstream's command"
        );
    }

    #[test]
    fn nodes_get_units_and_controllers_allocate_pod_cidrs() {
        let c = profile("1.30", "", "  provider: canal\n");
        let w = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        assert!(
            !w.files.iter().any(|f| f.path.contains("/cni/")),
            "{:?}",
            w.files
        );
        let ctl = node_plan(&c, c.node("controller-0").unwrap(), &Default::default());
        assert!(ctl.files.iter().any(|f| f.path == CONTROLLER_MANAGER_UNIT));
    }

    /// Item 6: a profile's cniBinDir / cniConfDir move install-cni's hostPath volumes, and
    /// install-cni names the moved kubeconfig in the conflist (CNI_NET_DIR).
    #[test]
    fn kustomize_moves_the_cni_dirs() {
        let c = profile(
            "1.30",
            "",
            &format!(
                "  provider: canal\n  cniBinDir: /usr/lib/cni\n  cniConfDir: /etc/cni/alt.d\n  canal: {{ manifestFile: {} }}\n",
                fixture("canal.yaml")
            ),
        );
        let Some(docs) = kustomize(&cluster(&c), "canal") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "canal");
        assert_eq!(
            host_path(ds, "cni-bin-dir"),
            (
                "/usr/lib/cni".to_string(),
                Some("DirectoryOrCreate".to_string())
            )
        );
        assert_eq!(
            host_path(ds, "cni-net-dir"),
            ("/etc/cni/alt.d".to_string(), None)
        );
        assert_eq!(
            init_env(ds, "install-cni"),
            [
                ("CNI_NET_DIR".to_string(), "/etc/cni/alt.d".to_string()),
                ("CNI_CONF_NAME".to_string(), "10-canal.conflist".to_string())
            ]
        );
    }

    #[test]
    fn default_cni_dirs_leave_the_volumes_alone() {
        let c = profile("1.30", "", "  provider: canal\n");
        assert!(!cluster(&c)
            .files
            .iter()
            .any(|f| f.path.ends_with("cni-dirs.yaml")));
    }
}
