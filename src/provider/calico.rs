//! calico: the pinned upstream calico.yaml (or the profile's local copy) applied through a
//! kustomization whose patches carry the profile's IPv4 pool and MTU. Its DaemonSet installs the CNI
//! plugin and config itself, so nodes get only the Kubernetes units.

use serde::Serialize;

use super::needs::{Iface, Needs, Proto, Traffic};
use super::teardown::{self, Firewall};
use super::{
    custom_cni_dirs, daemonset_teardown, delete_link, kustomize_plan, node_prereqs, ClusterPlan,
    NodePlan, Step,
};
use crate::profile::{Cluster, EncapMode, Node, ProviderKind};

/// What calico-node's install-cni writes into cniConfDir.
pub const CNI_CONFIG: &str = "10-calico.conflist";
/// calico-node (namespace, name).
pub const DAEMONSET: (&str, &str) = ("kube-system", "calico-node");
/// calico's IPAM hands out blocks itself.
pub const NEEDS_ALLOCATED_POD_CIDRS: bool = false;

pub fn upstream_url(version: &str) -> String {
    format!(
        "https://raw.githubusercontent.com/projectcalico/calico/{version}/manifests/calico.yaml"
    )
}

/// Context of templates/calico/calico-node.yaml.
#[derive(Serialize)]
struct NodeCtx {
    /// Must lie inside --cluster-cidr (validated); unset, calico would pick 192.168.0.0/16.
    pool_cidr: String,
    ipip_mode: &'static str,
    vxlan_mode: &'static str,
    block_size: u8,
    /// A VXLAN pool: felix routes it, BIRD is not run (see `vxlan_backend`).
    vxlan: bool,
}

/// Context of templates/calico/calico-config.yaml.
#[derive(Serialize)]
struct ConfigCtx {
    mtu: Option<u32>,
    vxlan: bool,
}

/// A VXLAN pool (Always or CrossSubnet; validation keeps IP-in-IP off then) needs no BGP: upstream's
/// manifests/calico-vxlan.yaml sets calico_backend "vxlan" and drops BIRD from the probes, or
/// calico-node waits on BGP sessions nobody wants (and a firewall may block).
fn vxlan_backend(c: &crate::profile::CalicoOptions) -> bool {
    c.vxlan_mode != EncapMode::Never && c.ipip_mode == EncapMode::Never
}

/// calico-node's traffic: BGP (tcp 179) unless the pool is VXLAN-only (no BIRD), IP-in-IP and
/// VXLAN (udp 4789, felix's default VXLANPort) as the pool uses them; without either, routes point
/// at peers directly (one segment, or routers that peer BGP). The interface is IP_AUTODETECTION's
/// default, first-found, which the pinned manifest does not set. Felix refuses loose rp_filter.
/// install-cni copies the plugins calico's conflist chains.
pub fn needs(cluster: &Cluster) -> Needs {
    let c = &cluster.profile.networking.calico;
    let mut traffic = Vec::new();
    if !vxlan_backend(c) {
        traffic.push(Traffic {
            check: "bgp",
            proto: Proto::Tcp(179),
            what: "calico's BGP (BIRD)",
        });
    }
    if c.ipip_mode != EncapMode::Never {
        traffic.push(Traffic {
            check: "ipip",
            proto: Proto::Ipip,
            what: "calico's IP-in-IP",
        });
    }
    if c.vxlan_mode != EncapMode::Never {
        traffic.push(Traffic {
            check: "vxlan",
            proto: Proto::Udp(4789),
            what: "calico's VXLAN",
        });
    }
    let overhead = if c.vxlan_mode != EncapMode::Never {
        50
    } else if c.ipip_mode != EncapMode::Never {
        20
    } else {
        0
    };
    Needs {
        traffic,
        layer2: overhead == 0,
        pod_mtu: c.mtu,
        overhead,
        overlay: overhead > 0,
        felix: true,
        iface: Iface::FirstFound,
        node_plugins: vec![],
    }
}

/// The tunnels the pool's encapsulation uses.
pub fn modules(cluster: &Cluster) -> Vec<node_prereqs::Module> {
    let c = &cluster.profile.networking.calico;
    let mut m = Vec::new();
    if c.ipip_mode != EncapMode::Never {
        m.push(node_prereqs::IPIP);
    }
    if c.vxlan_mode != EncapMode::Never {
        m.push(node_prereqs::VXLAN);
    }
    m
}

/// calico-node's links (felix's dataplanedefs and config at the pinned version).
pub const LINKS: [&str; 4] = [
    "vxlan.calico",
    "vxlan-v6.calico",
    "wireguard.cali",
    "wg-v6.cali",
];
/// felix's chains all start `cali-` (rules.ChainNamePrefix) and every rule it inserts elsewhere
/// carries a `cali:<hash>` comment (rules.RuleHashPrefix); in nftables mode it owns table
/// `calico` in both families.
pub const FIREWALL: Firewall<'static> = Firewall {
    chains: "^cali-",
    comments: "^cali:",
    ifaces: "",
    nft_tables: &[("ip", "calico"), ("ip6", "calico")],
};
/// Who programs calico's routes: BIRD (`proto bird`, kept after it exits: its kernel protocol
/// says `persist`), and felix (`DefaultRouteProto` 80) for its per-block blackholes and VXLAN
/// routes.
pub const ROUTE_PROTOCOLS: [&str; 2] = ["bird", "80"];

/// Nothing to write; leaving calico removes what its DaemonSet installed on the node: its CNI
/// config and kubeconfig, its links, its chains, rules and nftables tables, and the routes BIRD
/// and felix made inside the pool (the per-block blackholes among them). calico-ipam keeps its
/// addresses in the datastore, not in host-local's files.
pub fn node(cluster: &Cluster, node: &Node) -> NodePlan {
    let mut steps: Vec<Step> = LINKS.iter().map(|l| delete_link(l)).collect();
    // tunl0 belongs to the ipip module and cannot be deleted; its address can.
    steps.push(Step {
        title: "flush tunl0's address".into(),
        command: "if ip link show tunl0 >/dev/null 2>&1; then ip addr flush dev tunl0; fi".into(),
    });
    steps.push(teardown::firewall("calico", &FIREWALL));
    steps.push(teardown::routes_by_protocol(
        "calico",
        &pool_cidr(cluster),
        &ROUTE_PROTOCOLS,
    ));
    daemonset_teardown(
        cluster,
        node,
        "calico",
        &[CNI_CONFIG, "calico-kubeconfig"],
        steps,
    )
}

/// The IPv4 pool: the profile's, or the cluster CIDR.
fn pool_cidr(cluster: &Cluster) -> String {
    cluster
        .profile
        .networking
        .calico
        .pool_cidr
        .clone()
        .unwrap_or_else(|| cluster.cluster_cidr.to_string())
}

/// The patch moving install-cni's and calico-node's CNI directories to the profile's (calico and
/// canal share the DaemonSet's volume names and the install-cni container).
pub(crate) fn cni_dirs_patch(cluster: &Cluster, daemonset: &str) -> Option<(String, String)> {
    let dirs = custom_cni_dirs(cluster)?;
    Some((
        "cni-dirs.yaml".to_string(),
        crate::template::template(
            "calico/cni-dirs.yaml",
            &serde_json::json!({
                "daemonset": daemonset,
                "bin_dir": dirs.bin_dir,
                "conf_dir": dirs.conf_dir,
            }),
        ),
    ))
}

pub fn cluster(cluster: &Cluster) -> ClusterPlan {
    let c = &cluster.profile.networking.calico;
    let pool_cidr = pool_cidr(cluster);
    let mut patches = vec![(
        "calico-node.yaml".to_string(),
        crate::template::template(
            "calico/calico-node.yaml",
            &NodeCtx {
                pool_cidr,
                ipip_mode: c.ipip_mode.as_str(),
                vxlan_mode: c.vxlan_mode.as_str(),
                block_size: c.block_size,
                vxlan: vxlan_backend(c),
            },
        ),
    )];
    if c.mtu.is_some() || vxlan_backend(c) {
        patches.push((
            "calico-config.yaml".to_string(),
            crate::template::template(
                "calico/calico-config.yaml",
                &ConfigCtx {
                    mtu: c.mtu,
                    vxlan: vxlan_backend(c),
                },
            ),
        ));
    }
    if let Some(p) = cni_dirs_patch(cluster, "calico-node") {
        patches.push(p);
    }
    kustomize_plan(
        ProviderKind::Calico,
        &upstream_url(&c.version),
        c.manifest_file.as_deref(),
        patches,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kube::testkit::{
        check_manifest, cluster as profile, env, env_value, find, fixture, host_path, init_env,
        kustomize,
    };
    use crate::provider::{node_plan, CopiedFile};

    fn with_fixture(opts: &str) -> Cluster {
        profile(
            "1.30",
            "",
            &format!(
                "  provider: calico\n  calico: {{ manifestFile: {}{opts} }}\n",
                fixture("calico.yaml")
            ),
        )
    }

    #[test]
    fn kustomization_points_at_the_pinned_upstream() {
        let c = profile("1.30", "", "  provider: calico\n");
        let plan = cluster(&c);
        let k: serde_yaml::Value = serde_yaml::from_str(&plan.files[0].content).unwrap();
        assert_eq!(plan.files[0].path, "calico/kustomization.yaml");
        assert_eq!(
            k["resources"][0].as_str(),
            Some("https://raw.githubusercontent.com/projectcalico/calico/v3.31.0/manifests/calico.yaml")
        );
        assert_eq!(
            k["patchesStrategicMerge"][0].as_str(),
            Some("calico-node.yaml")
        );
        assert_eq!(
            k["patchesStrategicMerge"].as_sequence().unwrap().len(),
            1,
            "no MTU, no ConfigMap patch"
        );
        assert!(plan.copies.is_empty());
        assert_eq!(plan.kubectl[0].args, ["apply", "-k", "calico"]);
        assert_eq!(
            plan.kubectl_teardown[0].args,
            ["delete", "-k", "calico", "--ignore-not-found"]
        );
        for f in &plan.files[1..] {
            check_manifest(&f.content);
        }
    }

    #[test]
    fn manifest_file_is_copied_and_used() {
        let c = with_fixture("");
        let plan = cluster(&c);
        assert_eq!(
            plan.copies,
            [CopiedFile {
                path: "calico/upstream.yaml".into(),
                source: fixture("calico.yaml"),
                field: "networking.calico.manifestFile".into(),
            }]
        );
        let k: serde_yaml::Value = serde_yaml::from_str(&plan.files[0].content).unwrap();
        assert_eq!(k["resources"][0].as_str(), Some("upstream.yaml"));
    }

    #[test]
    fn kustomize_applies_the_profile() {
        let c = with_fixture(", poolCIDR: 10.200.128.0/17, ipipMode: Never, vxlanMode: CrossSubnet, blockSize: 24, mtu: 1410");
        let Some(docs) = kustomize(&cluster(&c), "calico") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "calico-node");
        let get = |n| env_value(ds, "calico-node", n);
        assert_eq!(
            get("CALICO_IPV4POOL_CIDR").as_deref(),
            Some("10.200.128.0/17")
        );
        assert_eq!(get("CALICO_IPV4POOL_IPIP").as_deref(), Some("Never"));
        assert_eq!(get("CALICO_IPV4POOL_VXLAN").as_deref(), Some("CrossSubnet"));
        assert_eq!(get("CALICO_IPV4POOL_BLOCK_SIZE").as_deref(), Some("24"));
        // Everything else is as upstream.
        assert_eq!(get("CLUSTER_TYPE").as_deref(), Some("k8s,bgp"));
        assert_eq!(get("CALICO_IPV6POOL_VXLAN").as_deref(), Some("Never"));
        assert_eq!(get("FELIX_IPINIPMTU").as_deref(), Some("<valueFrom>"));
        assert_eq!(get("NODENAME").as_deref(), Some("<valueFrom>"));
        assert_eq!(
            env(ds, "calico-node").len(),
            17,
            "{:?}",
            env(ds, "calico-node")
        );
        let cm = find(&docs, "ConfigMap", "calico-config");
        assert_eq!(cm["data"]["veth_mtu"].as_str(), Some("1410"));
        // A CrossSubnet VXLAN pool needs no BGP (upstream's calico-vxlan.yaml).
        assert_eq!(cm["data"]["calico_backend"].as_str(), Some("vxlan"));
    }

    #[test]
    fn kustomize_defaults_pool_to_cluster_cidr() {
        let c = with_fixture("");
        let Some(docs) = kustomize(&cluster(&c), "calico") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "calico-node");
        assert_eq!(
            env_value(ds, "calico-node", "CALICO_IPV4POOL_CIDR").as_deref(),
            Some("10.200.0.0/16")
        );
        assert_eq!(
            env_value(ds, "calico-node", "CALICO_IPV4POOL_IPIP").as_deref(),
            Some("Always")
        );
        assert_eq!(
            env_value(ds, "calico-node", "CALICO_IPV4POOL_BLOCK_SIZE").as_deref(),
            Some("26")
        );
        let cm = find(&docs, "ConfigMap", "calico-config");
        assert_eq!(
            cm["data"]["veth_mtu"].as_str(),
            Some("0"),
            "MTU left to calico when unset"
        );
    }

    #[test]
    fn nodes_get_only_kubernetes_units_and_forwarding() {
        let c = profile("1.30", "", "  provider: calico\n");
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let paths: Vec<_> = plan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/containerd/config.toml",
                "/etc/modules-load.d/netctl.conf",
                "/etc/sysctl.d/90-netctl.conf",
                "/etc/systemd/system/kubelet.service"
            ]
        );
        assert!(plan.teardown[0]
            .command
            .contains("/etc/cni/net.d/10-calico.conflist"));
    }

    /// Item 6: a profile's cniBinDir / cniConfDir move install-cni's hostPath volumes, and
    /// install-cni names the moved kubeconfig in the conflist (CNI_NET_DIR).
    #[test]
    fn kustomize_moves_the_cni_dirs() {
        let c = profile(
            "1.30",
            "",
            &format!(
                "  provider: calico\n  cniBinDir: /usr/lib/cni\n  cniConfDir: /etc/cni/alt.d\n  calico: {{ manifestFile: {} }}\n",
                fixture("calico.yaml")
            ),
        );
        let Some(docs) = kustomize(&cluster(&c), "calico") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "calico-node");
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
                (
                    "CNI_CONF_NAME".to_string(),
                    "10-calico.conflist".to_string()
                )
            ]
        );
    }

    #[test]
    fn default_cni_dirs_leave_the_volumes_alone() {
        let c = profile("1.30", "", "  provider: calico\n");
        assert!(!cluster(&c)
            .files
            .iter()
            .any(|f| f.path.ends_with("cni-dirs.yaml")));
    }

    fn probe(ds: &serde_yaml::Value, which: &str) -> Vec<String> {
        let c = ds["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some("calico-node"))
            .unwrap();
        assert_eq!(
            c[which]["periodSeconds"].as_u64(),
            Some(10),
            "upstream's timing kept"
        );
        c[which]["exec"]["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    /// Item 12: a VXLAN pool runs calico without BIRD, as upstream's calico-vxlan.yaml.
    #[test]
    fn kustomize_vxlan_pool_runs_without_bird() {
        for mode in ["Always", "CrossSubnet"] {
            let c = with_fixture(&format!(", ipipMode: Never, vxlanMode: {mode}"));
            let Some(docs) = kustomize(&cluster(&c), "calico") else {
                return;
            };
            let cm = find(&docs, "ConfigMap", "calico-config");
            assert_eq!(
                cm["data"]["calico_backend"].as_str(),
                Some("vxlan"),
                "{mode}"
            );
            assert_eq!(cm["data"]["veth_mtu"].as_str(), Some("0"), "MTU untouched");
            let ds = find(&docs, "DaemonSet", "calico-node");
            assert_eq!(
                env_value(ds, "calico-node", "CALICO_NETWORKING_BACKEND").as_deref(),
                Some("<valueFrom>"),
                "read from calico-config, as upstream"
            );
            assert_eq!(
                probe(ds, "livenessProbe"),
                ["/bin/calico-node", "-felix-live"]
            );
            assert_eq!(
                probe(ds, "readinessProbe"),
                ["/bin/calico-node", "-felix-ready"]
            );
        }
    }

    #[test]
    fn kustomize_ipip_pool_keeps_bird() {
        let c = with_fixture("");
        let Some(docs) = kustomize(&cluster(&c), "calico") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "calico-node");
        assert_eq!(
            probe(ds, "livenessProbe"),
            ["/bin/calico-node", "-felix-live", "-bird-live"]
        );
        assert_eq!(
            probe(ds, "readinessProbe"),
            ["/bin/calico-node", "-felix-ready", "-bird-ready"]
        );
        let cm = find(&docs, "ConfigMap", "calico-config");
        assert_eq!(cm["data"]["calico_backend"].as_str(), Some("bird"));
    }
}
