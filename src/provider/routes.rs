//! `routes`: no daemon. host-gw and vxlan program the pod routes (or a VXLAN mesh) into each node's
//! kernel from a rendered script, re-applied at boot by a oneshot unit (the hard-way guides lose
//! them on reboot); gce and aws create one cloud route per node from the operator's machine.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::{sh_quote, ClusterFile, ClusterPlan, LocalCommand, NodeFile, NodePlan, Step, Unit};
use crate::profile::{Cluster, Node, RoutesBackend};
use crate::render::{template, template_plain};

/// Route protocol number marking netctl's routes, so re-applies can find and remove stale ones.
pub const ROUTE_PROTO: u8 = 211;
pub const SCRIPT: &str = "/usr/local/lib/netctl/routes.sh";
pub const UNIT: &str = "netctl-routes.service";
pub const VXLAN_DEV: &str = "netctl-vxlan";
/// VXLAN adds 50 bytes of headers; with no MTU in the profile, assume a 1500-byte underlay.
pub const DEFAULT_VXLAN_MTU: u32 = 1450;

/// A locally administered unicast MAC derived from the node address: stable across re-renders
/// and unique per node, so peers can be programmed without asking the node.
pub fn vtep_mac(addr: Ipv4Addr) -> String {
    let o = addr.octets();
    format!("0e:6e:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

pub fn vxlan_mtu(cluster: &Cluster) -> u32 {
    cluster
        .profile
        .networking
        .routes
        .mtu
        .unwrap_or(DEFAULT_VXLAN_MTU)
}

#[derive(Serialize)]
struct Peer {
    pod_cidr: String,
    via: String,
    address: String,
    vtep: String,
    mac: String,
}

#[derive(Serialize)]
struct ScriptCtx<'a> {
    node: &'a str,
    backend: &'a str,
    address: String,
    proto: u8,
    dev: &'a str,
    vni: u32,
    port: u32,
    mtu: u32,
    mac: String,
    vtep: String,
    peers: Vec<Peer>,
}

#[derive(Serialize)]
struct BridgeCtx {
    pod_cidr: String,
    mtu: Option<u32>,
}

pub fn node(cluster: &Cluster, node: &Node) -> NodePlan {
    let opts = &cluster.profile.networking.routes;
    let backend = opts.backend;
    let in_kernel = matches!(backend, RoutesBackend::HostGw | RoutesBackend::Vxlan);
    let vxlan = backend == RoutesBackend::Vxlan;
    let conf_dir = &cluster.profile.networking.cni_conf_dir;
    let mut plan = NodePlan::default();

    if let Some(pod_cidr) = node.pod_cidr {
        plan.files.push(NodeFile {
            path: format!("{conf_dir}/10-bridge.conf"),
            mode: 0o644,
            content: template(
                "cni/10-bridge.conf",
                &BridgeCtx {
                    pod_cidr: pod_cidr.to_string(),
                    mtu: vxlan.then(|| vxlan_mtu(cluster)),
                },
            ),
            services: vec![],
        });
        plan.files.push(NodeFile {
            path: format!("{conf_dir}/99-loopback.conf"),
            mode: 0o644,
            content: template_plain("cni/99-loopback.conf"),
            services: vec![],
        });
    }

    // Cloud backends route in the VPC: the node only forwards.
    let peers: Vec<Peer> = if in_kernel {
        cluster
            .nodes
            .iter()
            .filter(|p| p.name != node.name)
            .filter_map(|p| {
                let cidr = p.pod_cidr?;
                let vtep = cidr.network().to_string();
                Some(Peer {
                    pod_cidr: cidr.to_string(),
                    via: if vxlan {
                        vtep.clone()
                    } else {
                        p.address.to_string()
                    },
                    address: p.address.to_string(),
                    vtep,
                    mac: vtep_mac(p.address),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let ctx = ScriptCtx {
        node: &node.name,
        backend: backend.as_str(),
        address: node.address.to_string(),
        proto: ROUTE_PROTO,
        dev: VXLAN_DEV,
        vni: opts.vni,
        port: opts.port,
        mtu: vxlan_mtu(cluster),
        mac: vtep_mac(node.address),
        // A node without pods still needs a VTEP address to route replies; use its own address.
        vtep: node
            .pod_cidr
            .map(|c| c.network().to_string())
            .unwrap_or_else(|| node.address.to_string()),
        peers,
    };
    plan.files.push(NodeFile {
        path: SCRIPT.into(),
        mode: 0o755,
        content: template("routes/routes.sh", &ctx),
        services: vec![],
    });
    plan.files.push(NodeFile {
        path: format!("/etc/systemd/system/{UNIT}"),
        mode: 0o644,
        content: template(
            "routes/netctl-routes.service",
            &serde_json::json!({"backend": backend.as_str(), "script": SCRIPT}),
        ),
        services: vec![],
    });
    plan.units.push(Unit {
        name: UNIT.into(),
        enable: true,
        // The script is re-run below instead: a restart would not remove routes first anyway.
        restart: false,
    });
    plan.commands.push(Step {
        title: format!("apply {} routes", backend.as_str()),
        command: format!("/bin/sh {SCRIPT} up"),
    });
    plan.teardown.push(Step {
        title: format!("remove {} routes", backend.as_str()),
        command: format!("/bin/sh {SCRIPT} down"),
    });
    plan
}

/// gce: `kubernetes-route-10-200-0-0-24`, the hard-way guide's naming.
pub fn gce_route_name(cidr: &ipnetwork::Ipv4Network) -> String {
    format!(
        "kubernetes-route-{}",
        cidr.to_string().replace(['.', '/'], "-")
    )
}

pub fn cluster(cluster: &Cluster) -> ClusterPlan {
    let opts = &cluster.profile.networking.routes;
    let mut plan = ClusterPlan::default();
    let routed = || {
        cluster
            .nodes
            .iter()
            .filter_map(|n| n.pod_cidr.map(|c| (n, c)))
    };
    match opts.backend {
        RoutesBackend::HostGw | RoutesBackend::Vxlan => return plan,
        RoutesBackend::Gce => {
            let network = opts.gce_network.clone().unwrap_or_default();
            for (n, cidr) in routed() {
                plan.local.push(LocalCommand {
                    title: format!("route {cidr} to {}", n.name),
                    program: "gcloud".into(),
                    args: vec![
                        "compute".into(),
                        "routes".into(),
                        "create".into(),
                        gce_route_name(&cidr),
                        "--network".into(),
                        network.clone(),
                        "--next-hop-address".into(),
                        n.address.to_string(),
                        "--destination-range".into(),
                        cidr.to_string(),
                    ],
                });
            }
        }
        RoutesBackend::Aws => {
            let table = opts.aws_route_table_id.clone().unwrap_or_default();
            for (n, cidr) in routed() {
                let instance = cluster
                    .profile
                    .nodes
                    .iter()
                    .find(|s| s.name == n.name)
                    .and_then(|s| s.instance_id.clone())
                    .unwrap_or_default();
                plan.local.push(LocalCommand {
                    title: format!("route {cidr} to {}", n.name),
                    program: "aws".into(),
                    args: vec![
                        "ec2".into(),
                        "create-route".into(),
                        "--route-table-id".into(),
                        table.clone(),
                        "--destination-cidr-block".into(),
                        cidr.to_string(),
                        "--instance-id".into(),
                        instance,
                    ],
                });
            }
        }
    }
    let mut script = String::from(
        "#!/bin/sh\n# Rendered by netctl: one cloud route per node's podCIDR.\nset -eu\n",
    );
    for c in &plan.local {
        script.push_str(&sh_quote(&c.program));
        for a in &c.args {
            script.push(' ');
            script.push_str(&sh_quote(a));
        }
        script.push('\n');
    }
    plan.files.push(ClusterFile {
        path: "routes.sh".into(),
        content: script,
    });
    plan
}
