//! `node.routes`: the node's routes as its provider programs them - netctl's own (host-gw
//! routes, the VXLAN mesh's device, neighbours and FDB entries, cloud routes) or flannel's lease
//! and the routes flanneld derives from it - judged from the node script's facts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::node::Facts;
use super::Check;
use crate::profile::{Cluster, FlannelBackend, Node};
use crate::provider::{self, routes, RouteCheck};

pub(super) fn routes_check(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    const ID: &str = "node.routes";
    let name = &node.name;
    match provider::route_check(cluster) {
        RouteCheck::HostGw => host_gw(cluster, node, f),
        RouteCheck::Vxlan => vxlan(cluster, node, f),
        RouteCheck::Cloud(b) => Check::skip(
            ID,
            name,
            format!("backend {}: routes live in the cloud route table (netctl render writes cluster/routes.sh)", b.as_str()),
        ),
        RouteCheck::FlannelLease { backend, mtu } => flannel_lease(cluster, node, f, backend, mtu),
        RouteCheck::Own => Check::skip(
            ID,
            name,
            format!("{} programs its own routes; the data-plane checks cover them", cluster.provider().as_str()),
        ),
    }
}

fn peers<'a>(
    cluster: &'a Cluster,
    node: &'a Node,
) -> impl Iterator<Item = (&'a Node, Ipv4Network)> {
    cluster
        .nodes
        .iter()
        .filter(move |p| p.name != node.name)
        .filter_map(|p| p.pod_cidr.map(|c| (p, c)))
}

fn route_via(f: &Facts, cidr: &Ipv4Network, via: Ipv4Addr) -> bool {
    let want = format!("{cidr} via {via} ");
    f.routes.iter().any(|r| format!("{r} ").starts_with(&want))
}

fn routes_fail(node: &Node, problems: Vec<String>) -> Check {
    Check::fail(
        "node.routes",
        &node.name,
        problems.join("; "),
        format!("re-run netctl init (or {} up on the node)", routes::SCRIPT),
    )
}

fn host_gw(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    let mut problems = Vec::new();
    let mut n = 0;
    for (p, cidr) in peers(cluster, node) {
        n += 1;
        if !route_via(f, &cidr, p.address) {
            problems.push(format!("no route to {} ({cidr} via {})", p.name, p.address));
        }
    }
    if problems.is_empty() {
        Check::pass(
            "node.routes",
            &node.name,
            format!("host-gw: {n} peer routes"),
        )
    } else {
        routes_fail(node, problems)
    }
}

fn vxlan(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    let dev = routes::VXLAN_DEV;
    let mtu = routes::vxlan_mtu(cluster);
    let Some((flags, have_mtu)) = f.links.get(dev) else {
        return routes_fail(node, vec![format!("no {dev} device")]);
    };
    let mut problems = Vec::new();
    if !flags
        .trim_matches(|c| c == '<' || c == '>')
        .split(',')
        .any(|x| x == "UP")
    {
        problems.push(format!("{dev} is down"));
    }
    if *have_mtu != mtu {
        problems.push(format!("{dev} MTU {have_mtu}, want {mtu}"));
    }
    let mut n = 0;
    for (p, cidr) in peers(cluster, node) {
        n += 1;
        let vtep = cidr.network();
        let mac = routes::vtep_mac(p.address);
        if !f
            .neigh
            .iter()
            .any(|l| l.starts_with(&format!("{vtep} ")) && l.contains(&mac))
        {
            problems.push(format!("no neighbour {vtep} -> {mac} for {}", p.name));
        }
        if !f.fdb.iter().any(|l| {
            l.starts_with(&format!("{mac} ")) && l.contains(&format!("dst {} ", p.address))
        }) {
            problems.push(format!("no FDB {mac} -> {} for {}", p.address, p.name));
        }
        if !route_via(f, &cidr, vtep) {
            problems.push(format!("no route to {} ({cidr} via {vtep})", p.name));
        }
    }
    if problems.is_empty() {
        Check::pass(
            "node.routes",
            &node.name,
            format!("vxlan: {dev} up, MTU {mtu}, {n} peers (neighbour, FDB, route)"),
        )
    } else {
        routes_fail(node, problems)
    }
}

/// Parse KEY=VALUE lines.
pub fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// `profile_mtu`: the pod MTU the profile sets, which flanneld writes as FLANNEL_MTU itself.
pub(super) fn flannel_lease(
    cluster: &Cluster,
    node: &Node,
    f: &Facts,
    backend: FlannelBackend,
    profile_mtu: Option<u32>,
) -> Check {
    const ID: &str = "node.routes";
    let Some(text) = &f.subnet_env else {
        return Check::fail(
            ID,
            &node.name,
            "no /run/flannel/subnet.env: flanneld has not started (or has no lease)",
            "check flanneld (its pod in kube-flannel, or flanneld.service): it needs the node's spec.podCIDR and a kubeconfig",
        );
    };
    let env = env_file(text);
    let mut problems = Vec::new();
    let network = env.get("FLANNEL_NETWORK").cloned().unwrap_or_default();
    if network != cluster.cluster_cidr.to_string() {
        problems.push(format!(
            "FLANNEL_NETWORK {network} is not the cluster CIDR {}",
            cluster.cluster_cidr
        ));
    }
    let subnet = env.get("FLANNEL_SUBNET").cloned().unwrap_or_default();
    let sub: Option<Ipv4Network> = subnet.parse().ok();
    match (sub, node.pod_cidr) {
        (Some(s), Some(c)) if c.contains(s.ip()) => {}
        (_, None) => {}
        _ => problems.push(format!(
            "FLANNEL_SUBNET {subnet} is not inside the node's podCIDR {}",
            node.pod_cidr.map(|c| c.to_string()).unwrap_or_default()
        )),
    }
    let overhead = backend.encap_overhead().unwrap_or(0);
    let want = profile_mtu.or_else(|| {
        f.node_dev
            .as_ref()
            .and_then(|d| f.links.get(d))
            .map(|(_, m)| m - overhead)
    });
    let have: Option<u32> = env.get("FLANNEL_MTU").and_then(|m| m.parse().ok());
    if let Some(w) = want {
        if have != Some(w) {
            problems.push(format!(
                "FLANNEL_MTU {} but {} wants {w}",
                have.map(|m| m.to_string())
                    .unwrap_or_else(|| "unset".into()),
                backend.as_str()
            ));
        }
    }
    if problems.is_empty() {
        Check::pass(
            ID,
            &node.name,
            format!(
                "flannel lease {subnet} in {network}, MTU {}",
                have.unwrap_or(0)
            ),
        )
    } else {
        Check::fail(
            ID,
            &node.name,
            problems.join("; "),
            "flanneld's net-conf.json Network must equal clusterCIDR and the node's podCIDR must be allocated from it; restart flanneld after fixing",
        )
    }
}
