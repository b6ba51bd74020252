//! Node prerequisites every provider shares: the kernel modules and sysctls pod networking needs,
//! in files netctl owns (a modules-load.d and a sysctl.d file, so they survive a reboot) and in two
//! idempotent commands that apply them at once. One list feeds both the files and the commands, so
//! what a node gets now is what it gets at boot; verify's node.forwarding and node.br-netfilter
//! check the same keys.

use serde::Serialize;

use super::{NodeFile, NodePlan, Step};
use crate::profile::Cluster;
use crate::template::template;

/// Read by systemd-modules-load at boot.
pub const MODULES_FILE: &str = "/etc/modules-load.d/netctl.conf";
/// Read by systemd-sysctl at boot (ordered after systemd-modules-load, so br_netfilter's keys exist).
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-netctl.conf";
/// br_netfilter's switch. flanneld (v0.26+) stats exactly this path and exits when it is missing;
/// its presence is also how a built-in br_netfilter shows (no /sys/module entry without parameters).
pub const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// A kernel module and the path that shows it is there (loaded or built in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    pub name: &'static str,
    /// Tested before modprobe, so a node without modprobe (a container) passes when the kernel
    /// already has the module.
    pub present: &'static str,
    pub why: &'static str,
    /// Loading now must succeed. Only br_netfilter: nothing loads it on demand, and its sysctl is
    /// set next. A backend's module is loaded by the kernel when its device is created
    /// (request_module "rtnl-link-<kind>"), and a node may show it nowhere it can test (a
    /// container sees no /sys/module; a kernel without loadable modules has no modprobe to ask),
    /// so loading it now is best effort and the boot list is what persists it.
    #[serde(skip)]
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    pub key: &'static str,
    pub value: &'static str,
    pub why: &'static str,
}

const BR_NETFILTER: Module = Module {
    name: "br_netfilter",
    present: BRIDGE_NF_CALL_IPTABLES,
    why: "bridged pod traffic passes iptables (kube-proxy's Service rules); flanneld exits without it",
    required: true,
};
pub const VXLAN: Module = Module {
    name: "vxlan",
    present: "/sys/module/vxlan",
    why: "the VXLAN backend's device",
    required: false,
};
pub const WIREGUARD: Module = Module {
    name: "wireguard",
    present: "/sys/module/wireguard",
    why: "flannel's wireguard backend's device",
    required: false,
};
pub const IPIP: Module = Module {
    name: "ipip",
    present: "/sys/module/ipip",
    why: "calico's IP-in-IP tunnel (tunl0)",
    required: false,
};

/// The sysctls, in the order they are written and applied.
pub const SYSCTLS: [Sysctl; 2] = [
    Sysctl {
        key: "net.ipv4.ip_forward",
        value: "1",
        why: "pod traffic is routed through this node",
    },
    Sysctl {
        key: "net.bridge.bridge-nf-call-iptables",
        value: "1",
        why: "bridged pod traffic passes iptables, so Services work between pods on one bridge",
    },
];

/// br_netfilter on every node, plus the modules of the cluster's backend.
pub fn modules(cluster: &Cluster) -> Vec<Module> {
    let mut m = vec![BR_NETFILTER];
    m.extend(super::backend_modules(cluster));
    m
}

/// Add the prerequisite files and commands to a node's plan; the commands run first, before the
/// provider's own (a bridge-nf key must exist before it is set, and flanneld must find it).
pub fn add(cluster: &Cluster, plan: &mut NodePlan) {
    let modules = modules(cluster);
    plan.files.push(NodeFile {
        path: MODULES_FILE.into(),
        mode: 0o644,
        content: template(
            "prereqs/netctl-modules.conf",
            &serde_json::json!({ "modules": modules }),
        ),
        services: vec![],
        blob: None,
    });
    plan.files.push(NodeFile {
        path: SYSCTL_FILE.into(),
        mode: 0o644,
        content: template(
            "prereqs/90-netctl.conf",
            &serde_json::json!({ "sysctls": SYSCTLS }),
        ),
        services: vec![],
        blob: None,
    });
    let names: Vec<&str> = modules.iter().map(|m| m.name).collect();
    let load: Vec<String> = modules
        .iter()
        .map(|m| match m.required {
            true => format!("{{ [ -e {} ] || modprobe {}; }}", m.present, m.name),
            false => format!(
                "{{ [ -e {} ] || modprobe -q {} || true; }}",
                m.present, m.name
            ),
        })
        .collect();
    let set: Vec<String> = SYSCTLS
        .iter()
        .map(|s| format!("{}={}", s.key, s.value))
        .collect();
    plan.commands.splice(
        0..0,
        [
            Step {
                title: format!("load kernel modules ({})", names.join(", ")),
                command: load.join(" && "),
            },
            Step {
                title: "apply sysctls (ip_forward, bridge-nf-call-iptables)".into(),
                command: format!("sysctl -q -w {}", set.join(" ")),
            },
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kube::testkit::cluster;
    use crate::provider::node_plan;

    fn module_names(networking: &str) -> Vec<&'static str> {
        // kubenet exists only below 1.24.
        let version = if networking.contains("kubenet") {
            "1.23"
        } else {
            "1.30"
        };
        modules(&cluster(version, "", networking))
            .iter()
            .map(|m| m.name)
            .collect()
    }

    #[test]
    fn every_provider_gets_br_netfilter_and_its_backend_modules() {
        let cases: [(&str, &[&str]); 10] = [
            ("  provider: routes\n", &["br_netfilter"]),
            (
                "  provider: routes\n  routes: { backend: vxlan }\n",
                &["br_netfilter", "vxlan"],
            ),
            ("  provider: kubenet\n", &["br_netfilter"]),
            ("  provider: flannel\n", &["br_netfilter", "vxlan"]),
            (
                "  provider: flannel\n  flannel: { backend: wireguard }\n",
                &["br_netfilter", "wireguard"],
            ),
            (
                "  provider: flannel\n  flannel: { backend: host-gw }\n",
                &["br_netfilter"],
            ),
            ("  provider: calico\n", &["br_netfilter", "ipip"]),
            (
                "  provider: calico\n  calico: { ipipMode: Never, vxlanMode: Always }\n",
                &["br_netfilter", "vxlan"],
            ),
            ("  provider: canal\n", &["br_netfilter", "vxlan"]),
            ("  provider: weave\n", &["br_netfilter"]),
        ];
        for (net, want) in cases {
            assert_eq!(module_names(net), want, "{net}");
        }
    }

    #[test]
    fn files_and_commands_agree_and_run_first() {
        let c = cluster("1.30", "", "  provider: flannel\n");
        for node in ["controller-0", "worker-0"] {
            let plan = node_plan(&c, c.node(node).unwrap(), &Default::default());
            let file = |p: &str| {
                plan.files
                    .iter()
                    .find(|f| f.path == p)
                    .unwrap_or_else(|| panic!("{node}: no {p}"))
            };
            let modules = file(MODULES_FILE);
            let listed: Vec<&str> = modules
                .content
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect();
            assert_eq!(listed, ["br_netfilter", "vxlan"]);
            let sysctl = file(SYSCTL_FILE);
            let keys: Vec<&str> = sysctl
                .content
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect();
            assert_eq!(
                keys,
                [
                    "net.ipv4.ip_forward = 1",
                    "net.bridge.bridge-nf-call-iptables = 1"
                ]
            );
            assert_eq!(sysctl.mode, 0o644);
            assert_eq!(
                plan.commands[0].command,
                "{ [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter; } \
                 && { [ -e /sys/module/vxlan ] || modprobe -q vxlan || true; }"
            );
            assert_eq!(
                plan.commands[1].command,
                "sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1"
            );
        }
    }

    #[test]
    fn routes_has_the_shared_prerequisites_once() {
        let c = cluster("1.30", "", "  provider: routes\n");
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        for p in [SYSCTL_FILE, MODULES_FILE] {
            assert_eq!(
                plan.files.iter().filter(|f| f.path == p).count(),
                1,
                "{p}: {:?}",
                plan.files
            );
        }
        assert!(plan.commands[0].title.starts_with("load kernel modules"));
    }
}
