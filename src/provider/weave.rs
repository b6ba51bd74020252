//! weave: the pinned upstream weave-daemonset-k8s.yaml (a v1 List, which kustomize flattens) or the
//! profile's local copy, applied through a kustomization that sets the weave container's
//! IPALLOC_RANGE (the cluster CIDR unless the profile narrows it) and WEAVE_MTU. Weave allocates
//! addresses itself, so no controller-manager change.

use serde::Serialize;

use super::needs::{Iface, Needs, Proto, Traffic};
use super::teardown::{self, Firewall};
use super::{daemonset_teardown, delete_link, kustomize_plan, ClusterPlan, NodePlan};
use crate::profile::{Cluster, Node, ProviderKind};

/// Printed by `profile check`, `render`, `plan` and `init` for a weave profile (docs/providers.md).
pub const DEPRECATED: &str = "networking.provider: weave is deprecated: Weaveworks shut down and \
weaveworks/weave is archived (v2.8.1, 2021, is its last release; kops dropped weave in 1.23, kubespray \
too). netctl still renders it; move the cluster with `netctl switch --networking flannel` (or calico, canal)";

/// What the weave container writes into cniConfDir.
pub const CNI_CONFIG: &str = "10-weave.conflist";
/// weave-net (namespace, name).
pub const DAEMONSET: (&str, &str) = ("kube-system", "weave-net");
/// weave allocates addresses itself.
pub const NEEDS_ALLOCATED_POD_CIDRS: bool = false;

/// weave's router: tcp 6783 between peers, udp 6783 (sleeve) and udp 6784 (fast datapath);
/// pods get WEAVE_MTU (1376 unless the profile sets it), which leaves room for either
/// encapsulation in a 1500-byte uplink. Peers are dialled at their addresses.
pub fn needs(cluster: &Cluster) -> Needs {
    let t = |proto, what| Traffic {
        check: "weave",
        proto,
        what,
    };
    Needs {
        traffic: vec![
            t(Proto::Tcp(6783), "weave's control connections"),
            t(Proto::Udp(6783), "weave's sleeve"),
            t(Proto::Udp(6784), "weave's fast datapath"),
        ],
        layer2: false,
        pod_mtu: Some(cluster.profile.networking.weave.mtu.unwrap_or(DEFAULT_MTU)),
        overhead: 50,
        overlay: true,
        felix: false,
        iface: Iface::RouteToPeers,
        node_plugins: vec![],
    }
}

/// WEAVE_MTU's default at v2.8.1.
pub const DEFAULT_MTU: u32 = 1376;

pub fn upstream_url(version: &str) -> String {
    format!(
        "https://github.com/weaveworks/weave/releases/download/{version}/weave-daemonset-k8s.yaml"
    )
}

/// Context of templates/weave/weave-net.yaml.
#[derive(Serialize)]
struct PatchCtx {
    ipalloc_range: String,
    mtu: Option<u32>,
}

/// weave's links at v2.8.1 (net/bridge.go; `vxlan-6784` is the fast datapath's vport).
pub const LINKS: [&str; 6] = [
    "weave",
    "datapath",
    "vethwe-bridge",
    "vethwe-datapath",
    "vethwe-pcap",
    "vxlan-6784",
];
/// weave's chains all start `WEAVE` (WEAVE, WEAVE-EXPOSE, WEAVE-CANARY, WEAVE-NPC*, WEAVE-IPSEC-*);
/// its rules in the built-in chains name its bridge (`-i weave`, `-o weave`) or, for the control
/// port, carry its comment.
pub const FIREWALL: Firewall<'static> = Firewall {
    chains: "^WEAVE",
    comments: "^Block non-local access to Weave Net control port$",
    ifaces: "^weave$",
    nft_tables: &[],
};

/// Nothing to write; leaving weave removes its CNI config, links, chains and rules (`weave reset`
/// needs the weave script, which the DaemonSet never installs on the host). weave's IPAM is its
/// own (in /var/lib/weave), not host-local's.
pub fn node(cluster: &Cluster, node: &Node) -> NodePlan {
    let mut steps = vec![teardown::firewall("weave", &FIREWALL)];
    steps.extend(LINKS.map(delete_link));
    daemonset_teardown(cluster, node, "weave", &[CNI_CONFIG], steps)
}

pub fn cluster(cluster: &Cluster) -> ClusterPlan {
    let w = &cluster.profile.networking.weave;
    let patch = crate::template::template(
        "weave/weave-net.yaml",
        &PatchCtx {
            ipalloc_range: w
                .ipalloc_range
                .clone()
                .unwrap_or_else(|| cluster.cluster_cidr.to_string()),
            mtu: w.mtu,
        },
    );
    let mut patches = vec![("weave-net.yaml".to_string(), patch)];
    if let Some(dirs) = super::custom_cni_dirs(cluster) {
        patches.push((
            "cni-dirs.yaml".to_string(),
            crate::template::template("weave/cni-dirs.yaml", &dirs),
        ));
    }
    kustomize_plan(
        ProviderKind::Weave,
        &upstream_url(&w.version),
        w.manifest_file.as_deref(),
        patches,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kube::testkit::{
        check_manifest, cluster as profile, env, env_value, find, fixture, kustomize,
    };
    use crate::provider::kube::CONTROLLER_MANAGER_UNIT;
    use crate::provider::node_plan;

    fn with_fixture(opts: &str) -> Cluster {
        profile(
            "1.30",
            "",
            &format!(
                "  provider: weave\n  weave: {{ manifestFile: {}{opts} }}\n",
                fixture("weave.yaml")
            ),
        )
    }

    #[test]
    fn kustomization_points_at_the_pinned_upstream() {
        let c = profile("1.30", "", "  provider: weave\n");
        let plan = cluster(&c);
        let k: serde_yaml::Value = serde_yaml::from_str(&plan.files[0].content).unwrap();
        assert_eq!(
            k["resources"][0].as_str(),
            Some("https://github.com/weaveworks/weave/releases/download/v2.8.1/weave-daemonset-k8s.yaml")
        );
        let docs = check_manifest(&plan.files[1].content);
        assert_eq!(
            env(&docs[0], "weave"),
            [("IPALLOC_RANGE".to_string(), "10.200.0.0/16".to_string())]
        );
        assert_eq!(plan.kubectl[0].args, ["apply", "-k", "weave"]);
        assert_eq!(
            plan.kubectl_teardown[0].args,
            ["delete", "-k", "weave", "--ignore-not-found"]
        );
    }

    #[test]
    fn kustomize_applies_the_profile() {
        let c = with_fixture(", ipallocRange: 10.200.64.0/18, mtu: 1376");
        let Some(docs) = kustomize(&cluster(&c), "weave") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "weave-net");
        assert_eq!(
            env_value(ds, "weave", "IPALLOC_RANGE").as_deref(),
            Some("10.200.64.0/18")
        );
        assert_eq!(env_value(ds, "weave", "WEAVE_MTU").as_deref(), Some("1376"));
        assert_eq!(
            env_value(ds, "weave", "INIT_CONTAINER").as_deref(),
            Some("true")
        );
        assert_eq!(
            env_value(ds, "weave", "HOSTNAME").as_deref(),
            Some("<valueFrom>")
        );
        assert_eq!(env(ds, "weave").len(), 4);
        // weave-npc untouched.
        assert_eq!(env(ds, "weave-npc").len(), 1);
        find(&docs, "ServiceAccount", "weave-net");
    }

    #[test]
    fn kustomize_defaults_range_to_cluster_cidr() {
        let c = with_fixture("");
        let Some(docs) = kustomize(&cluster(&c), "weave") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "weave-net");
        assert_eq!(
            env_value(ds, "weave", "IPALLOC_RANGE").as_deref(),
            Some("10.200.0.0/16")
        );
        assert_eq!(env_value(ds, "weave", "WEAVE_MTU"), None);
    }

    #[test]
    fn no_controller_manager_for_weave() {
        let c = profile("1.30", "", "  provider: weave\n");
        let ctl = node_plan(&c, c.node("controller-0").unwrap(), &Default::default());
        assert!(!ctl.files.iter().any(|f| f.path == CONTROLLER_MANAGER_UNIT));
    }

    /// Item 6: weave-init writes under /host/opt/cni/bin and /host/etc/cni/net.d (its /opt and
    /// /etc mounts): the profile's directories are mounted over those two paths.
    #[test]
    fn kustomize_moves_the_cni_dirs() {
        let c = profile(
            "1.30",
            "",
            &format!(
                "  provider: weave\n  cniBinDir: /usr/lib/cni\n  cniConfDir: /etc/cni/alt.d\n  weave: {{ manifestFile: {} }}\n",
                fixture("weave.yaml")
            ),
        );
        let Some(docs) = kustomize(&cluster(&c), "weave") else {
            return;
        };
        let ds = find(&docs, "DaemonSet", "weave-net");
        let spec = &ds["spec"]["template"]["spec"];
        let init = &spec["initContainers"][0];
        assert_eq!(init["name"].as_str(), Some("weave-init"));
        let mounts: Vec<(&str, &str)> = init["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap(),
                    m["mountPath"].as_str().unwrap(),
                )
            })
            .collect();
        for want in [
            ("cni-bin", "/host/opt"),
            ("cni-conf", "/host/etc"),
            ("netctl-cni-bin", "/host/opt/cni/bin"),
            ("netctl-cni-conf", "/host/etc/cni/net.d"),
        ] {
            assert!(mounts.contains(&want), "{want:?} in {mounts:?}");
        }
        let paths: Vec<(&str, &str)> = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap(),
                    v["hostPath"]["path"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            paths.contains(&("netctl-cni-bin", "/usr/lib/cni")),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("netctl-cni-conf", "/etc/cni/alt.d")),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("cni-conf", "/etc")),
            "upstream's kept: {paths:?}"
        );
    }
}
