//! `routes`: no daemon. host-gw and vxlan program the pod routes (or a VXLAN mesh) into each node's
//! kernel from a rendered script, re-applied at boot by a oneshot unit (the hard-way guides lose
//! them on reboot); gce and aws create one cloud route per node from the operator's machine.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::needs::{Iface, Needs, Proto, Traffic, BRIDGE_CHAIN};
use super::{
    node_prereqs, sh_quote, BackendChange, Blob, ClusterFile, ClusterPlan, LocalCheck,
    LocalCommand, NodeFile, NodePlan, RouteCheck, Step, Unit,
};
use crate::network::Network;
use crate::profile::{Cluster, Node, RoutesBackend, SharedBytes};
use crate::template::{template, template_plain};

/// Route protocol number marking netctl's routes, so re-applies can find and remove stale ones.
pub const ROUTE_PROTO: u8 = 211;
pub const SCRIPT: &str = "/usr/local/lib/netctl/routes.sh";
/// The peer table every node's script reads (see `peer_table`), next to the script.
pub const PEERS: &str = "/usr/local/lib/netctl/routes-peers";
pub const UNIT: &str = "netctl-routes.service";
pub const VXLAN_DEV: &str = "netctl-vxlan";
/// The bridge plugin's config, in cniConfDir.
pub const CNI_CONFIG: &str = "10-bridge.conf";
/// The bridge and the CNI network name that config (templates/cni/10-bridge.conf) names.
pub const BRIDGE: &str = "cni0";
pub const CNI_NETWORK: &str = "bridge";
/// The routes come from the profile's podCIDRs, not the Node objects.
pub const NEEDS_ALLOCATED_POD_CIDRS: bool = false;
/// What `netctl profile new` offers, the default first. The cloud backends (gce, aws) need more
/// fields than the wizard asks: edit the profile for them.
pub const WIZARD_BACKENDS: [&str; 2] = ["host-gw", "vxlan"];
/// VXLAN adds 50 bytes of headers; with no MTU in the profile, assume a 1500-byte underlay.
pub const DEFAULT_VXLAN_MTU: u32 = 1450;
/// VXLAN's outer headers: IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const VXLAN_OVERHEAD: u32 = 50;
/// A veth's MTU when the CNI config sets none (the bridge plugin leaves it to the kernel).
pub const VETH_DEFAULT_MTU: u32 = 1500;

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

/// The MTU new pods get from this backend's CNI config: vxlan's, or the kernel's veth default
/// (host-gw and the cloud backends set none). routes.sh pins the bridge to it, verify wants it.
pub fn pod_mtu(cluster: &Cluster) -> u32 {
    match cluster.profile.networking.routes.backend {
        RoutesBackend::Vxlan => vxlan_mtu(cluster),
        RoutesBackend::HostGw | RoutesBackend::Gce | RoutesBackend::Aws => VETH_DEFAULT_MTU,
    }
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
    /// The peer table's path: every node's podCIDR, address, VTEP and MAC, read at run time
    /// (None for the cloud backends: the cloud routes, the node has no peers to program).
    peers: Option<&'a str>,
    /// The node's podCIDR and the cluster CIDR: pod traffic leaving the cluster is masqueraded,
    /// pod to pod is not.
    pod_cidr: Option<String>,
    cluster_cidr: String,
    bridge: &'a str,
    pod_mtu: u32,
}

/// The peer table: one line per node with a podCIDR, `podCIDR node-address vtep mac`, the same
/// on every node (each node's script skips its own line), so a node's own files do not grow with
/// the cluster and a node added or removed changes only this file on the others. The columns
/// serve both backends (host-gw routes via the address, vxlan via the VTEP), so a switch between
/// them leaves it unchanged.
pub fn peer_table(cluster: &Cluster) -> String {
    use std::fmt::Write;
    let mut t = String::from(
        "# Rendered by netctl: every node with a podCIDR, the same file on every node.\n\
         # podCIDR node-address vtep mac\n",
    );
    for n in &cluster.nodes {
        if let Some(cidr) = n.pod_cidr {
            let _ = writeln!(
                t,
                "{cidr} {} {} {}",
                n.address,
                cidr.network(),
                vtep_mac(n.address)
            );
        }
    }
    t
}

/// The table as every node's plan holds it: made once per cluster (on first use), its bytes
/// and sha256 shared.
fn peer_table_file(cluster: &Cluster) -> NodeFile {
    let shared = cluster
        .peer_table
        .get_or_init(|| SharedBytes::new(peer_table(cluster).into_bytes()));
    NodeFile {
        path: PEERS.into(),
        mode: 0o644,
        content: String::new(),
        services: vec![],
        blob: Some(Blob {
            sha256: shared.sha256.clone(),
            size: Some(shared.bytes.len() as u64),
            field: "nodes",
            shared: true,
            bytes: Some(shared.bytes.clone()),
        }),
    }
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
            path: format!("{conf_dir}/{CNI_CONFIG}"),
            mode: 0o644,
            content: template(
                "cni/10-bridge.conf",
                &BridgeCtx {
                    pod_cidr: pod_cidr.to_string(),
                    mtu: vxlan.then(|| vxlan_mtu(cluster)),
                },
            ),
            services: vec![],
            blob: None,
        });
        plan.files.push(NodeFile {
            path: format!("{conf_dir}/99-loopback.conf"),
            mode: 0o644,
            content: template_plain("cni/99-loopback.conf"),
            services: vec![],
            blob: None,
        });
    }

    // Cloud backends route in the VPC: the node only forwards; the kernel backends read the table.
    if in_kernel {
        plan.files.push(peer_table_file(cluster));
    }
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
        peers: in_kernel.then_some(PEERS),
        pod_cidr: node.pod_cidr.map(|c| c.to_string()),
        cluster_cidr: cluster.cluster_cidr.to_string(),
        bridge: BRIDGE,
        pod_mtu: pod_mtu(cluster),
    };
    plan.files.push(NodeFile {
        path: SCRIPT.into(),
        mode: 0o755,
        content: template("routes/routes.sh", &ctx),
        services: vec![],
        blob: None,
    });
    plan.files.push(NodeFile {
        path: format!("/etc/systemd/system/{UNIT}"),
        mode: 0o644,
        content: template(
            "routes/netctl-routes.service",
            &serde_json::json!({"backend": backend.as_str(), "script": SCRIPT}),
        ),
        services: vec![],
        blob: None,
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
    // What the bridge plugin made from 10-bridge.conf, which routes.sh does not know of: the
    // bridge and host-local's reservations of gone pods.
    if node.pod_cidr.is_some() {
        plan.teardown.push(super::delete_link(BRIDGE));
        plan.teardown.push(super::teardown::ipam(CNI_NETWORK));
    }
    plan
}

/// gce: `kubernetes-route-10-200-0-0-24`, the hard-way guide's naming.
pub fn gce_route_name(cidr: &ipnetwork::Ipv4Network) -> String {
    format!(
        "kubernetes-route-{}",
        cidr.to_string().replace(['.', '/'], "-")
    )
}

/// gce: the instance named as the node must forward IP. `list` with a name filter needs no zone
/// (`describe` does); the exact name is matched in the output, not trusted to the filter.
pub fn gce_can_ip_forward(instance: &str) -> LocalCommand {
    LocalCommand {
        title: format!("check that {instance} forwards IP"),
        program: "gcloud".into(),
        args: vec![
            "compute".into(),
            "instances".into(),
            "list".into(),
            format!("--filter=name={instance}"),
            "--format=value(name,canIpForward)".into(),
        ],
        check: Some(LocalCheck::Expect {
            line: format!("{instance}\tTrue"),
            hint: format!(
                "GCE instance {instance} must forward IP (canIpForward), or GCE drops pod traffic routed to it: \
                 create instances with --can-ip-forward, or stop it and update it from an exported config \
                 (gcloud compute instances export / update-from-file) with canIpForward: true"
            ),
        }),
    }
}

/// aws: the node's instance with its source/destination check off.
pub fn aws_no_source_dest_check(node: &str, instance: &str) -> LocalCommand {
    LocalCommand {
        title: format!("turn off {node}'s source/destination check"),
        program: "aws".into(),
        args: vec![
            "ec2".into(),
            "modify-instance-attribute".into(),
            "--instance-id".into(),
            instance.into(),
            "--no-source-dest-check".into(),
        ],
        check: Some(LocalCheck::Ensure {
            query: vec![
                "ec2".into(),
                "describe-instance-attribute".into(),
                "--instance-id".into(),
                instance.into(),
                "--attribute".into(),
                "sourceDestCheck".into(),
                "--query".into(),
                "SourceDestCheck.Value".into(),
                "--output".into(),
                "text".into(),
            ],
            line: "False".into(),
        }),
    }
}

/// What routes.sh needs between nodes: its VXLAN port (vxlan) or peers on one segment (host-gw:
/// `ip route replace <podCIDR> via <peer>`); it takes the profile's address itself.
pub fn needs(cluster: &Cluster) -> Needs {
    let r = &cluster.profile.networking.routes;
    let vxlan = r.backend == RoutesBackend::Vxlan;
    Needs {
        traffic: if vxlan {
            vec![Traffic {
                check: "vxlan",
                proto: Proto::Udp(r.port as u16),
                what: "netctl-vxlan",
            }]
        } else {
            vec![]
        },
        layer2: r.backend == RoutesBackend::HostGw,
        pod_mtu: Some(pod_mtu(cluster)),
        overhead: if vxlan { VXLAN_OVERHEAD } else { 0 },
        overlay: vxlan,
        felix: false,
        iface: Iface::ProfileAddress,
        node_plugins: BRIDGE_CHAIN.to_vec(),
    }
}

/// vxlan's device needs its module; host-gw routes and the cloud backends need none.
pub fn modules(cluster: &Cluster) -> Vec<node_prereqs::Module> {
    match cluster.profile.networking.routes.backend {
        RoutesBackend::Vxlan => vec![node_prereqs::VXLAN],
        RoutesBackend::HostGw | RoutesBackend::Gce | RoutesBackend::Aws => vec![],
    }
}

/// What verify's `node.routes` looks for: netctl's own routes, or none on the node (cloud).
pub fn route_check(cluster: &Cluster) -> RouteCheck {
    match cluster.profile.networking.routes.backend {
        RoutesBackend::HostGw => RouteCheck::HostGw,
        RoutesBackend::Vxlan => RouteCheck::Vxlan,
        b @ (RoutesBackend::Gce | RoutesBackend::Aws) => RouteCheck::Cloud(b),
    }
}

/// The script run from stdin with its argument set first: nothing is installed to prepare.
fn script_step(title: &str, script: &str, arg: &str) -> Step {
    Step {
        title: title.to_string(),
        command: format!("set -- {arg}\n{script}"),
    }
}

/// Between two backends the change is split so no packet is lost: every node first learns to
/// receive the new way (`prepare`, with the new script), then nodes send the new way one by one
/// (`converge` instead of `up`), and only then is the old way removed (`cleanup`). None when the
/// target has no script on the node (the cloud backends).
pub fn change_backend(
    from: &Network,
    to: &Network,
    old: &NodePlan,
    new: &mut NodePlan,
) -> Option<BackendChange> {
    let script = |p: &NodePlan| {
        p.files
            .iter()
            .find(|f| f.path == SCRIPT)
            .map(|f| f.content.clone())
    };
    let new_script = script(new)?;
    for c in new
        .commands
        .iter_mut()
        .filter(|c| c.command == format!("/bin/sh {SCRIPT} up"))
    {
        c.command = format!("/bin/sh {SCRIPT} converge");
    }
    Some(BackendChange {
        prepare: vec![script_step(
            &format!("prepare {to}"),
            &new_script,
            "prepare",
        )],
        cleanup: vec![Step {
            title: format!("remove what {from} needed"),
            command: format!("/bin/sh {SCRIPT} cleanup"),
        }],
        // Undone with the old script, which knows what the old way has.
        unprepare: script(old)
            .map(|s| vec![script_step(&format!("undo prepare of {to}"), &s, "cleanup")])
            .unwrap_or_default(),
    })
}

/// The routes section of a new profile.
pub fn wizard_section(backend: &str) -> String {
    format!(
        "  # netctl programs the routes itself, no daemon (gce/aws backends: see docs/profile.md).\n  \
         routes: {{ backend: {backend} }}\n"
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
            // GCE drops packets to or from addresses that are not the instance's own unless
            // the instance forwards IP, which only instance creation (or an update from an
            // exported config) sets: check it, and fail with what to do.
            for (n, _) in routed() {
                plan.local.push(gce_can_ip_forward(&n.name));
            }
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
                    check: None,
                });
            }
        }
        RoutesBackend::Aws => {
            let table = opts.aws_route_table_id.clone().unwrap_or_default();
            let instance = |name: &str| {
                cluster
                    .profile
                    .nodes
                    .iter()
                    .find(|s| s.name == name)
                    .and_then(|s| s.instance_id.clone())
                    .unwrap_or_default()
            };
            // EC2 drops traffic an instance neither sends from nor receives at its own address
            // while its source/destination check is on: turn it off where it is on.
            for (n, _) in routed() {
                plan.local
                    .push(aws_no_source_dest_check(&n.name, &instance(&n.name)));
            }
            for (n, cidr) in routed() {
                let instance = instance(&n.name);
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
                    check: None,
                });
            }
        }
    }
    let mut script = String::from(
        "#!/bin/sh\n# Rendered by netctl: every node forwards IP, then one cloud route per node's podCIDR.\nset -eu\n",
    );
    let words = |program: &str, args: &[String]| {
        std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .map(sh_quote)
            .collect::<Vec<_>>()
            .join(" ")
    };
    for c in &plan.local {
        let cmd = words(&c.program, &c.args);
        let line = match &c.check {
            None => cmd,
            Some(LocalCheck::Expect { line, hint }) => format!(
                "{cmd} | grep -qxF \"$(printf {})\" || {{ echo {} >&2; exit 1; }}",
                sh_quote(&line.replace('\t', "\\t")),
                sh_quote(hint)
            ),
            Some(LocalCheck::Ensure { query, line }) => format!(
                "[ \"$({})\" = {} ] || {cmd}",
                words(&c.program, query),
                sh_quote(line)
            ),
        };
        script.push_str(&line);
        script.push('\n');
    }
    plan.files.push(ClusterFile {
        path: "routes.sh".into(),
        content: script,
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kube::testkit::cluster as profile;

    /// A routes cluster of `n` workers: node addresses 172.16.x.y, podCIDRs from 10.64.0.0/14.
    fn workers(n: usize, backend: &str) -> Cluster {
        let mut text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.64.0.0/14\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes\n  routes: {{ backend: {backend} }}\nnodes:\n"
        );
        for i in 0..n {
            text.push_str(&format!(
                "  - {{ name: worker-{i}, address: 172.16.{}.{}, roles: [worker] }}\n",
                i / 250,
                i % 250 + 1
            ));
        }
        crate::profile::load_str(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    fn file<'a>(plan: &'a NodePlan, path: &str) -> &'a NodeFile {
        plan.files.iter().find(|f| f.path == path).unwrap()
    }

    /// Item 12.1: a node's own files do not grow with the cluster: worker-0's script is the same
    /// text in a cluster of 10 and of 1,000 nodes; only the shared table grows.
    #[test]
    fn the_node_script_does_not_grow_with_the_cluster() {
        for backend in ["host-gw", "vxlan"] {
            let (small, large) = (workers(10, backend), workers(1000, backend));
            let plan = |c: &Cluster| node(c, c.node("worker-0").unwrap());
            let (a, b) = (plan(&small), plan(&large));
            assert_eq!(
                file(&a, SCRIPT).content,
                file(&b, SCRIPT).content,
                "{backend}"
            );
            let table = |p: &NodePlan| file(p, PEERS).blob.clone().unwrap();
            assert_eq!(table(&a).size, Some(peer_table(&small).len() as u64));
            assert!(
                table(&b).size > Some(50 * 1000),
                "{backend}: {:?}",
                table(&b).size
            );
            assert!(peer_table(&large)
                .contains("10.67.231.0/24 172.16.3.250 10.67.231.0 0e:6e:ac:10:03:fa\n"));
        }
    }

    /// The table is made once per cluster: every node's plan holds the same bytes (one
    /// allocation) and the same sha256, which is the sha256 of those bytes.
    #[test]
    fn the_peer_table_is_made_once_and_shared() {
        let c = workers(50, "vxlan");
        let tables: Vec<Blob> = c
            .nodes
            .iter()
            .map(|n| file(&node(&c, n), PEERS).blob.clone().unwrap())
            .collect();
        let first = tables[0].bytes.clone().unwrap();
        for t in &tables {
            assert!(t.shared);
            assert!(std::sync::Arc::ptr_eq(t.bytes.as_ref().unwrap(), &first));
            assert_eq!(t.sha256, crate::profile::sha256_hex(&first));
        }
        assert_eq!(c.peer_table.get().unwrap().bytes.as_ptr(), first.as_ptr());
    }

    /// routes.sh pins the bridge 10-bridge.conf names to the MTU that config gives new pods.
    #[test]
    fn the_script_pins_the_configs_bridge_to_the_new_pods_mtu() {
        for (backend, mtu) in [("host-gw", 1500), ("vxlan", 1450)] {
            let c = workers(2, backend);
            let plan = node(&c, c.node("worker-0").unwrap());
            let conf: serde_json::Value =
                serde_json::from_str(&file(&plan, &format!("/etc/cni/net.d/{CNI_CONFIG}")).content)
                    .unwrap();
            assert_eq!(conf["bridge"], BRIDGE, "{backend}");
            let veth = conf["mtu"].as_u64().map_or(VETH_DEFAULT_MTU, |m| m as u32);
            assert_eq!((veth, pod_mtu(&c)), (mtu, mtu), "{backend}");
            let script = &file(&plan, SCRIPT).content;
            assert!(
                script.contains(&format!("\nBRIDGE={BRIDGE}\nPOD_MTU={mtu}\n")),
                "{script}"
            );
            assert!(
                script.contains("converge() {\n    prepare\n    pin_bridge_mtu\n"),
                "{script}"
            );
        }
    }

    /// The cloud backends route in the VPC: no table on the node, and the script reads none.
    #[test]
    fn cloud_backends_have_no_peer_table() {
        let c = gce();
        let plan = node(&c, c.node("worker-0").unwrap());
        assert!(plan.files.iter().all(|f| f.path != PEERS));
        assert!(!file(&plan, SCRIPT).content.contains("PEERS"));
    }

    fn gce() -> Cluster {
        profile(
            "1.30",
            "",
            "  provider: routes\n  routes: { backend: gce, gceNetwork: k8s-net }\n",
        )
    }

    /// Item 11: every routed instance is checked for IP forwarding before its route is made.
    #[test]
    fn gce_checks_ip_forwarding_before_routes() {
        let plan = cluster(&gce());
        let titles: Vec<&str> = plan.local.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "check that worker-0 forwards IP",
                "check that worker-1 forwards IP",
                "route 10.200.0.0/24 to worker-0",
                "route 10.200.1.0/24 to worker-1"
            ]
        );
        assert_eq!(
            plan.local[0].args,
            [
                "compute",
                "instances",
                "list",
                "--filter=name=worker-0",
                "--format=value(name,canIpForward)"
            ]
        );
    }

    /// routes.sh, the same steps for an operator to run by hand, stops at an instance that does
    /// not forward and runs the routes when all do (with the gcloud stand-in of tests/cloud.rs).
    #[test]
    fn routes_sh_checks_forwarding_with_gcloud() {
        let plan = cluster(&gce());
        let script = &plan.files[0].content;
        let dir = tempfile::tempdir().unwrap();
        let path = format!(
            "{}/tests/standin/cloud:{}",
            env!("CARGO_MANIFEST_DIR"),
            std::env::var("PATH").unwrap_or_default()
        );
        let run = || {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("PATH", &path)
                .env("NETCTL_STANDIN_DIR", dir.path())
                .output()
                .unwrap()
        };
        std::fs::write(dir.path().join("no-forward"), "worker-1\n").unwrap();
        let o = run();
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("GCE instance worker-1 must forward IP"),
            "{o:?}"
        );
        assert!(
            !dir.path().join("routes").exists(),
            "no route before the checks pass"
        );
        std::fs::remove_file(dir.path().join("no-forward")).unwrap();
        let o = run();
        assert!(o.status.success(), "{o:?}");
        let routes = std::fs::read_to_string(dir.path().join("routes")).unwrap();
        assert_eq!(
            routes,
            "kubernetes-route-10-200-0-0-24\nkubernetes-route-10-200-1-0-24\n"
        );
    }

    #[test]
    fn aws_turns_the_source_dest_check_off_only_when_on() {
        let text = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes\n  routes: { backend: aws, awsRouteTableId: rtb-1 }\nnodes:\n  - { name: worker-0, address: 10.240.0.20, instanceId: i-0abc }\n";
        let c = crate::profile::load_str(text, std::path::Path::new("t.yaml")).unwrap();
        let plan = cluster(&c);
        let first = &plan.local[0];
        assert_eq!(first.args[1], "modify-instance-attribute");
        assert!(first.args.contains(&"--no-source-dest-check".to_string()));
        match &first.check {
            Some(LocalCheck::Ensure { query, line }) => {
                assert_eq!(query[1], "describe-instance-attribute");
                assert_eq!(line, "False");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            plan.files[0]
                .content
                .contains("[ \"$(aws ec2 describe-instance-attribute --instance-id i-0abc --attribute sourceDestCheck --query SourceDestCheck.Value --output text)\" = False ] || aws ec2 modify-instance-attribute --instance-id i-0abc --no-source-dest-check"),
            "{}",
            plan.files[0].content
        );
    }
}
