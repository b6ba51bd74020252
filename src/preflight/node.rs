//! Preflight's checks of one node: one read-only script (`templates/preflight/facts.sh`) prints
//! the facts, then pure functions judge them against what the network needs (`provider::needs`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::profile::{Cluster, Node};
use crate::provider::needs::{Iface, Needs};
use crate::provider::{self, node_prereqs, NodePlan};
use crate::shell::{self, script_file, Script, Tagged};
use crate::verify::Check;

/// A clock further off than this fails `preflight.clock`: Kubernetes' token and certificate
/// checks allow about a minute (netctl's own certificates start an hour before they are issued).
pub const MAX_SKEW_S: f64 = 60.0;
/// `preflight.conntrack` fails when the table is fuller than this (per cent).
pub const CONNTRACK_FULL_PCT: u64 = 90;

/// One IPv4 address of an interface, in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub dev: String,
    pub addr: Ipv4Addr,
    pub scope: String,
}

/// A module: whether the kernel has it, and an `install` line that replaces loading it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    /// loaded, builtin, available (under /lib/modules), works (no module list to read, as in a
    /// container, but a device of its kind can be made) or missing.
    pub state: String,
    /// (file, command) of an `install NAME COMMAND` line.
    pub install: Option<(String, String)>,
}

/// A route lookup from the node: (dev, src, via), None where the kernel said nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteGet {
    pub dev: Option<String>,
    pub src: Option<Ipv4Addr>,
    pub via: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The node's clock, seconds since the epoch.
    pub clock: Option<f64>,
    pub addrs: Vec<Addr>,
    pub mtu: BTreeMap<String, u32>,
    /// The default route's (dev, gateway).
    pub default: Option<(String, String)>,
    pub rp_filter: BTreeMap<String, u8>,
    pub forward: Option<u8>,
    pub conntrack: Option<(u64, u64)>,
    pub bins: Vec<String>,
    pub containerd: Option<String>,
    pub python: bool,
    pub modules: BTreeMap<String, Module>,
    /// key -> (file, value) in the order the files were found.
    pub sysctls: BTreeMap<String, Vec<(String, String)>>,
    pub routes: BTreeMap<Ipv4Addr, RouteGet>,
    /// The script ran to its end.
    pub done: bool,
}

impl Facts {
    /// The interface that holds `addr`.
    pub fn dev_of(&self, addr: Ipv4Addr) -> Option<&str> {
        self.addrs
            .iter()
            .find(|a| a.addr == addr)
            .map(|a| a.dev.as_str())
    }
    /// The first global IPv4 address of `dev` (what flanneld takes from an interface).
    pub fn first_addr(&self, dev: &str) -> Option<Ipv4Addr> {
        self.addrs
            .iter()
            .find(|a| a.dev == dev && a.scope == "global")
            .map(|a| a.addr)
    }
}

/// The facts script for `node`; `peers` are a few peers whose routes show the interface weave
/// would use.
pub fn script(cluster: &Cluster, peers: &[Ipv4Addr]) -> String {
    let modules = node_prereqs::modules(cluster)
        .into_iter()
        .map(|m| format!("mod:{}:{}", m.name, m.present));
    // A sysctl file may write a key with dots or slashes.
    let keys: Vec<String> = node_prereqs::SYSCTLS
        .iter()
        .map(|s| s.key.replace('.', "[./]"))
        .collect();
    let peers = peers.iter().map(|p| format!("peer:{p}"));
    Script::new(script_file!("preflight/facts.sh"))
        .var("BIN", &cluster.profile.networking.cni_bin_dir)
        .var("CONTAINERD", provider::kube::CONTAINERD_CONFIG)
        .var("KEYS", keys.join("|"))
        .args(modules.chain(peers))
        .build()
}

fn ip(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

pub fn parse(out: &str) -> Facts {
    let mut f = Facts::default();
    let (mut count, mut max) = (None, None);
    for Tagged { tag, rest, .. } in shell::tagged(out) {
        let w: Vec<&str> = rest.split_whitespace().collect();
        match (tag, w.as_slice()) {
            ("clock", [t]) => f.clock = t.parse().ok(),
            ("addr", [i, d, a, scope]) => {
                if let (Ok(index), Some(addr)) = (i.parse(), a.split('/').next().and_then(ip)) {
                    f.addrs.push(Addr {
                        index,
                        dev: d.to_string(),
                        addr,
                        scope: scope.to_string(),
                    });
                }
            }
            ("link", [d, m]) => {
                if let Ok(m) = m.parse() {
                    f.mtu.insert(d.to_string(), m);
                }
            }
            ("default", [d, gw]) if f.default.is_none() => {
                f.default = Some((d.to_string(), gw.to_string()))
            }
            ("rp", [d, v]) => {
                if let Ok(v) = v.parse() {
                    f.rp_filter.insert(d.to_string(), v);
                }
            }
            ("forward", [v]) => f.forward = v.parse().ok(),
            ("ctcount", [c]) => count = c.parse().ok(),
            ("ctmax", [m]) => max = m.parse().ok(),
            ("bin", [b]) => f.bins.push(b.to_string()),
            ("containerd", [b64]) => {
                use base64::Engine;
                f.containerd = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
            }
            ("python", [v]) => f.python = *v == "1",
            ("mod", [m, s]) => f.modules.entry(m.to_string()).or_default().state = s.to_string(),
            ("modinstall", [m, file, cmd]) => {
                let e = f.modules.entry(m.to_string()).or_default();
                // modprobe takes the first file that says it, in its reading order.
                if e.install.is_none() {
                    e.install = Some((file.to_string(), cmd.to_string()));
                }
            }
            ("sysctl", [k, file, v]) => f
                .sysctls
                .entry(k.to_string())
                .or_default()
                .push((file.to_string(), v.to_string())),
            ("routeget", [p, dev, src, via]) => {
                if let Some(p) = ip(p) {
                    f.routes.insert(
                        p,
                        RouteGet {
                            dev: Some(dev.to_string()).filter(|d| d != "-"),
                            src: ip(src),
                            via: ip(via),
                        },
                    );
                }
            }
            ("done", []) => f.done = true,
            _ => {}
        }
    }
    f.conntrack = count.zip(max);
    f
}

/// The interface the provider's daemon will use on this node, and its address; Err: why none.
pub fn chosen_iface(needs: &Needs, node: &Node, f: &Facts) -> Result<(String, Ipv4Addr), String> {
    let named = |dev: &str, how: &str| match f.first_addr(dev) {
        Some(a) => Ok((dev.to_string(), a)),
        None if f.mtu.contains_key(dev) => Err(format!("{how} {dev} has no IPv4 address")),
        None => Err(format!("{how} {dev} does not exist on the node")),
    };
    match &needs.iface {
        Iface::None => Err("no daemon between nodes".into()),
        Iface::ProfileAddress => f
            .dev_of(node.address)
            .map(|d| (d.to_string(), node.address))
            .ok_or_else(|| format!("no interface holds the profile's address {}", node.address)),
        Iface::Named(name) => match name.parse::<Ipv4Addr>() {
            Ok(a) => f
                .dev_of(a)
                .map(|d| (d.to_string(), a))
                .ok_or_else(|| format!("no interface holds the configured address {a}")),
            Err(_) => named(name, "the configured interface"),
        },
        Iface::DefaultRoute => match &f.default {
            Some((dev, _)) => named(dev, "the default route's interface"),
            None => Err("the node has no default route, so no interface to pick".into()),
        },
        Iface::FirstFound => {
            let mut addrs: Vec<&Addr> = f
                .addrs
                .iter()
                .filter(|a| a.scope == "global" && !calico_skips(&a.dev))
                .collect();
            addrs.sort_by_key(|a| a.index);
            addrs
                .first()
                .map(|a| (a.dev.clone(), a.addr))
                .ok_or_else(|| "no interface with a global IPv4 address".into())
        }
        Iface::RouteToPeers => {
            let mut seen = f.routes.values().filter_map(|r| r.dev.clone().zip(r.src));
            match seen.next() {
                Some(first) => Ok(first),
                None => f
                    .dev_of(node.address)
                    .map(|d| (d.to_string(), node.address))
                    .ok_or_else(|| "no route to the peers".into()),
            }
        }
    }
}

/// calico-node's first-found skips these interface names (autodetection's default exclusions at
/// the pinned version).
fn calico_skips(dev: &str) -> bool {
    const PREFIXES: [&str; 17] = [
        "docker",
        "cbr",
        "dummy",
        "virbr",
        "lxcbr",
        "veth",
        "cali",
        "tunl",
        "flannel",
        "kube-ipvs",
        "cni",
        "vxlan.calico",
        "vxlan-v6.calico",
        "wireguard.cali",
        "wg-v6.cali",
        "nodelocaldns",
        "podman",
    ];
    dev == "lo" || PREFIXES.iter().any(|p| dev.starts_with(p))
}

fn how(needs: &Needs) -> &'static str {
    match needs.iface {
        Iface::ProfileAddress => "netctl configures the profile's address",
        Iface::Named(_) => "the configured interface",
        Iface::DefaultRoute => "no interface configured: the default route's",
        Iface::FirstFound => "calico's autodetection, first-found",
        Iface::RouteToPeers => "the route to the peers",
        Iface::None => "",
    }
}

/// `preflight.interface`: the interface the daemon picks holds the profile's address.
pub fn interface(cluster: &Cluster, needs: &Needs, node: &Node, f: &Facts) -> Check {
    const ID: &str = "preflight.interface";
    let what = cluster.provider().as_str();
    let fix = match needs.iface {
        Iface::DefaultRoute | Iface::Named(_) => match cluster.provider() {
            crate::profile::ProviderKind::Canal => "set networking.canal.iface to the interface that holds the node's address",
            _ => "set networking.flannel.iface to the interface (or the address) the nodes reach each other on",
        },
        Iface::FirstFound => "calico takes the first interface: give calico-node IP_AUTODETECTION_METHOD (e.g. can-reach=<a peer> or cidr=<the nodes' subnet>) through a kustomization of its manifest, or correct the node's address in the profile",
        _ => "correct the node's address in the profile, or the node's interfaces",
    };
    match chosen_iface(needs, node, f) {
        Err(_) if needs.iface == Iface::None => {
            Check::skip(ID, &node.name, format!("{what}: no daemon between nodes"))
        }
        Err(e) => Check::fail(ID, &node.name, format!("{what} ({}): {e}", how(needs)), fix),
        Ok((dev, addr)) if addr == node.address => Check::pass(
            ID,
            &node.name,
            format!("{what} uses {dev} ({addr}): {}", how(needs)),
        ),
        Ok((dev, addr)) => Check::fail(
            ID,
            &node.name,
            format!(
                "{what} would use {dev} ({addr}), not the profile's address {} ({})",
                node.address,
                how(needs)
            ),
            fix,
        ),
    }
}

/// `preflight.modules`: the modules netctl loads at boot are there and not replaced by an
/// `install` line (which makes the boot-time load do nothing).
pub fn modules(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    const ID: &str = "preflight.modules";
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for m in node_prereqs::modules(cluster) {
        let got = f.modules.get(m.name).cloned().unwrap_or_default();
        if let Some((file, cmd)) = &got.install {
            if matches!(cmd.as_str(), "false" | "true") {
                bad.push(format!(
                    "{}: {file} says `install {} {cmd}`, so loading it does nothing ({})",
                    m.name, m.name, m.why
                ));
                continue;
            }
        }
        match got.state.as_str() {
            "loaded" | "builtin" | "available" => good.push(format!("{} {}", m.name, got.state)),
            "works" => good.push(format!("{} (its device can be made)", m.name)),
            _ => bad.push(format!(
                "{}: neither loaded nor under /lib/modules for the running kernel ({})",
                m.name, m.why
            )),
        }
    }
    if bad.is_empty() {
        Check::pass(ID, &node.name, good.join(", "))
    } else {
        Check::fail(
            ID,
            &node.name,
            bad.join("; "),
            "remove the install line (or install the kernel's modules package) so the module loads",
        )
    }
}

/// `preflight.rp-filter`: the kernel's reverse-path filter on the uplink (the larger of `all`
/// and the interface's value) lets the network's traffic in.
pub fn rp_filter(needs: &Needs, node: &Node, f: &Facts) -> Check {
    const ID: &str = "preflight.rp-filter";
    let all = f.rp_filter.get("all").copied().unwrap_or(0);
    let dev = chosen_iface(needs, node, f)
        .ok()
        .map(|(d, _)| d)
        .or_else(|| f.dev_of(node.address).map(String::from));
    let on_dev = dev
        .as_ref()
        .and_then(|d| f.rp_filter.get(d))
        .copied()
        .unwrap_or(0);
    let effective = all.max(on_dev);
    let at = dev.as_deref().unwrap_or("the uplink");
    if needs.overlay && effective == 1 {
        return Check::fail(
            ID,
            &node.name,
            format!("strict rp_filter on {at} (all={all}, {at}={on_dev}): packets from other nodes' pods to this node arrive on {at} while the route back to them leads into the tunnel, and are dropped"),
            format!("set net.ipv4.conf.all.rp_filter and net.ipv4.conf.{at}.rp_filter to 2 (loose) or 0, in /etc/sysctl.d too"),
        );
    }
    if needs.felix && all == 2 {
        return Check::fail(
            ID,
            &node.name,
            "net.ipv4.conf.all.rp_filter is 2 (loose): calico-node's Felix refuses to start with loose reverse-path filtering",
            "set net.ipv4.conf.all.rp_filter to 1 or 0 (keep the uplink's own value loose for the tunnel), or set FELIX_IGNORELOOSERPF=true",
        );
    }
    Check::pass(
        ID,
        &node.name,
        format!("rp_filter all={all}, {at}={on_dev}"),
    )
}

/// The file that wins for a sysctl at boot among `found` (systemd-sysctl and `sysctl --system`
/// order: by file name, a name in an earlier directory hiding the same name later;
/// /etc/sysctl.conf last).
pub fn winner(found: &[(String, String)]) -> Option<&(String, String)> {
    let mut by_name: BTreeMap<(bool, &str), &(String, String)> = BTreeMap::new();
    for entry in found {
        let file = entry.0.as_str();
        let last = file == "/etc/sysctl.conf";
        let name = file.rsplit('/').next().unwrap_or(file);
        // The first directory in the list wins for a name: keep the first seen.
        by_name.entry((last, name)).or_insert(entry);
    }
    by_name.into_values().next_back()
}

/// `preflight.forwarding`: the sysctls netctl sets (ip_forward, bridge-nf-call-iptables) are not
/// set back by a file read after netctl's own at boot.
pub fn forwarding(node: &Node, f: &Facts) -> Check {
    const ID: &str = "preflight.forwarding";
    let mut bad = Vec::new();
    for s in node_prereqs::SYSCTLS {
        let found = f.sysctls.get(s.key).map(Vec::as_slice).unwrap_or_default();
        let mut with_ours = found.to_vec();
        with_ours.retain(|(file, _)| file != node_prereqs::SYSCTL_FILE);
        with_ours.push((node_prereqs::SYSCTL_FILE.to_string(), s.value.to_string()));
        if let Some((file, v)) = winner(&with_ours) {
            if v != s.value {
                bad.push(format!(
                    "{file} sets {} = {v} and is read after {}, so it wins at boot ({})",
                    s.key,
                    node_prereqs::SYSCTL_FILE,
                    s.why
                ));
            }
        }
    }
    if !bad.is_empty() {
        return Check::fail(
            ID,
            &node.name,
            bad.join("; "),
            "remove the setting from that file, or set it to 1 there",
        );
    }
    let now = match f.forward {
        Some(1) => "ip_forward is on",
        _ => "ip_forward is off now; netctl init turns it on",
    };
    Check::pass(
        ID,
        &node.name,
        format!("{now}; no sysctl file read after netctl's sets it back"),
    )
}

/// `preflight.conntrack`: headroom in the connection-tracking table.
pub fn conntrack(node: &Node, f: &Facts) -> Check {
    const ID: &str = "preflight.conntrack";
    match f.conntrack {
        None => Check::pass(ID, &node.name, "no connection tracking loaded yet"),
        Some((count, max)) if max > 0 && count * 100 > max * CONNTRACK_FULL_PCT => Check::fail(
            ID,
            &node.name,
            format!("the conntrack table holds {count} of {max} entries: new connections, pods' included, are dropped when it is full"),
            "raise net.netfilter.nf_conntrack_max (kube-proxy's --conntrack-min), or find what opens so many connections",
        ),
        Some((count, max)) => Check::pass(ID, &node.name, format!("{count} of {max} entries")),
    }
}

/// `preflight.clock`: the node's clock against this machine's, measured over the facts round
/// trip (`skew` the node's minus ours at the round trip's middle, `within` half the round trip).
pub fn clock(node: &Node, skew: Option<(f64, f64)>) -> Check {
    const ID: &str = "preflight.clock";
    match skew {
        None => Check::fail(
            ID,
            &node.name,
            "the node did not tell its time",
            "re-run; `date +%s.%N` must work on the node",
        ),
        Some((s, within)) if s.abs() - within > MAX_SKEW_S => Check::fail(
            ID,
            &node.name,
            format!(
                "the node's clock is {:.0} s {} this machine's",
                s.abs(),
                if s > 0.0 { "ahead of" } else { "behind" }
            ),
            "run time synchronisation (chrony or systemd-timesyncd) on the nodes and here: certificates and tokens are refused across skewed clocks",
        ),
        Some((s, within)) => Check::pass(
            ID,
            &node.name,
            format!("within {:.1} s of this machine (+/- {:.2} s)", s.abs(), within),
        ),
    }
}

/// `preflight.cni-plugins`: the plugins the network's CNI config calls from the node are in
/// cniBinDir, where neither netctl nor the provider installs them.
pub fn cni_plugins(
    cluster: &Cluster,
    needs: &Needs,
    node: &Node,
    plan: &NodePlan,
    f: &Facts,
) -> Check {
    const ID: &str = "preflight.cni-plugins";
    let bin = &cluster.profile.networking.cni_bin_dir;
    if !node.is_worker() {
        return Check::skip(ID, &node.name, "not a worker: no pods here");
    }
    if needs.node_plugins.is_empty() {
        return Check::pass(
            ID,
            &node.name,
            format!(
                "{}'s DaemonSet installs its CNI plugins",
                cluster.provider().as_str()
            ),
        );
    }
    let installs = |p: &str| {
        plan.files
            .iter()
            .any(|file| file.path == format!("{}/{p}", bin.trim_end_matches('/')))
    };
    let missing: Vec<&str> = needs
        .node_plugins
        .iter()
        .copied()
        .filter(|p| !installs(p) && !f.bins.iter().any(|b| b == p))
        .collect();
    if missing.is_empty() {
        Check::pass(
            ID,
            &node.name,
            format!("{} in {bin}", needs.node_plugins.join(", ")),
        )
    } else {
        Check::fail(
            ID,
            &node.name,
            format!(
                "{} missing from {bin}: pods cannot start",
                missing.join(", ")
            ),
            format!(
                "install containernetworking-plugins, or set networking.cniBinDir to where they live ({})",
                missing.join(", ")
            ),
        )
    }
}

/// `preflight.runtime-cni`: containerd reads the CNI directories netctl writes, where netctl does
/// not set them itself.
pub fn runtime_cni(cluster: &Cluster, node: &Node, plan: &NodePlan, f: &Facts) -> Check {
    const ID: &str = "preflight.runtime-cni";
    let path = provider::kube::CONTAINERD_CONFIG;
    let net = &cluster.profile.networking;
    let sets = plan.files.iter().any(|file| file.path == path)
        || plan.edits.iter().any(|e| e.path == path);
    if sets {
        return Check::pass(
            ID,
            &node.name,
            format!(
                "netctl sets containerd's CNI directories ({path}) to {} and {}",
                net.cni_conf_dir, net.cni_bin_dir
            ),
        );
    }
    let mut c = crate::verify::runtime_cni::check(
        &node.name,
        path,
        f.containerd.as_deref(),
        &net.cni_bin_dir,
        &net.cni_conf_dir,
    );
    c.id = ID.to_string();
    c
}

/// Every check of one node that its facts answer, in report order (`interface` first).
pub fn checks(
    cluster: &Cluster,
    needs: &Needs,
    node: &Node,
    plan: &NodePlan,
    f: &Facts,
) -> Vec<Check> {
    vec![
        interface(cluster, needs, node, f),
        modules(cluster, node, f),
        rp_filter(needs, node, f),
        forwarding(node, f),
        conntrack(node, f),
        cni_plugins(cluster, needs, node, plan, f),
        runtime_cni(cluster, node, plan, f),
    ]
}

/// The ids `checks` answers, for a node the script could not read.
pub const IDS: [&str; 7] = [
    "preflight.interface",
    "preflight.modules",
    "preflight.rp-filter",
    "preflight.forwarding",
    "preflight.conntrack",
    "preflight.cni-plugins",
    "preflight.runtime-cni",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Status;

    fn cluster(networking: &str) -> Cluster {
        crate::profile::load_str(
            &format!(
                "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: {{ version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }}\nnetworking:\n{networking}nodes:\n  - {{ name: w1, address: 192.168.56.11 }}\n  - {{ name: w2, address: 192.168.56.12 }}\n"
            ),
            std::path::Path::new("t.yaml"),
        )
        .expect("profile")
    }

    /// A Vagrant box: the NAT interface first and on the default route, the profile's address on
    /// the second.
    const VAGRANT: &str = "@@clock 1700000000.5\n@@addr 1 lo 127.0.0.1/8 host\n@@addr 2 eth0 10.0.2.15/24 global\n@@addr 3 eth1 192.168.56.11/24 global\n@@link lo 65536\n@@link eth0 1500\n@@link eth1 1500\n@@default eth0 10.0.2.2\n@@rp all 0\n@@rp eth0 2\n@@rp eth1 2\n@@forward 0\n@@ctcount 10\n@@ctmax 262144\n@@bin bridge\n@@bin host-local\n@@bin loopback\n@@bin portmap\n@@python 1\n@@mod br_netfilter loaded\n@@mod vxlan available\n@@done\n";

    fn check(c: &Check) -> (Status, &str) {
        (c.status, c.detail.as_str())
    }

    #[test]
    fn flannel_without_iface_on_a_vagrant_box_picks_the_nat_address() {
        let c = cluster("  provider: flannel\n  flannel: { backend: vxlan }\n");
        let needs = crate::provider::needs::needs(&c);
        let f = parse(VAGRANT);
        assert!(f.done);
        let r = interface(&c, &needs, &c.nodes[0], &f);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.detail
                .contains("eth0 (10.0.2.15), not the profile's address 192.168.56.11"),
            "{}",
            r.detail
        );
        assert!(r.hint.as_deref().unwrap().contains("flannel.iface"));
        // Named, it is right.
        let c = cluster("  provider: flannel\n  flannel: { backend: vxlan, iface: eth1 }\n");
        let needs = crate::provider::needs::needs(&c);
        assert_eq!(interface(&c, &needs, &c.nodes[0], &f).status, Status::Pass);
        // calico's first-found takes eth0 too; routes takes the profile's address.
        let c = cluster("  provider: calico\n");
        let needs = crate::provider::needs::needs(&c);
        assert_eq!(interface(&c, &needs, &c.nodes[0], &f).status, Status::Fail);
        let c = cluster("  provider: routes\n");
        let needs = crate::provider::needs::needs(&c);
        let r = interface(&c, &needs, &c.nodes[0], &f);
        assert_eq!(
            check(&r),
            (
                Status::Pass,
                "routes uses eth1 (192.168.56.11): netctl configures the profile's address"
            )
        );
    }

    #[test]
    fn no_default_route_and_no_address_are_named() {
        let c = cluster("  provider: flannel\n");
        let needs = crate::provider::needs::needs(&c);
        let f = parse(&VAGRANT.replace("@@default eth0 10.0.2.2\n", ""));
        let r = interface(&c, &needs, &c.nodes[0], &f);
        assert!(r.detail.contains("no default route"), "{}", r.detail);
        let c = cluster("  provider: routes\n");
        let needs = crate::provider::needs::needs(&c);
        let f = parse(&VAGRANT.replace("@@addr 3 eth1 192.168.56.11/24 global\n", ""));
        let r = interface(&c, &needs, &c.nodes[0], &f);
        assert_eq!(r.status, Status::Fail);
        assert!(r
            .detail
            .contains("no interface holds the profile's address 192.168.56.11"));
    }

    #[test]
    fn a_module_replaced_by_install_false_fails_even_when_loaded() {
        let c = cluster("  provider: routes\n  routes: { backend: vxlan }\n");
        let f = parse(&format!(
            "{VAGRANT}@@modinstall vxlan /etc/modprobe.d/cis.conf false\n"
        ));
        let r = modules(&c, &c.nodes[0], &f);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.detail
                .contains("/etc/modprobe.d/cis.conf says `install vxlan false`"),
            "{}",
            r.detail
        );
        assert_eq!(
            modules(&c, &c.nodes[0], &parse(VAGRANT)).status,
            Status::Pass
        );
        let f = parse(&VAGRANT.replace("@@mod vxlan available", "@@mod vxlan missing"));
        assert_eq!(modules(&c, &c.nodes[0], &f).status, Status::Fail);
        // host-gw needs no vxlan module.
        let c = cluster("  provider: routes\n  routes: { backend: host-gw }\n");
        assert_eq!(modules(&c, &c.nodes[0], &f).status, Status::Pass);
    }

    #[test]
    fn strict_rp_filter_fails_overlays_and_loose_fails_felix() {
        let vxlan = cluster("  provider: routes\n  routes: { backend: vxlan }\n");
        let hostgw = cluster("  provider: routes\n  routes: { backend: host-gw }\n");
        // The kernel takes the larger of `all` and the interface's: strict only when neither is loose.
        let strict = parse(
            &VAGRANT
                .replace("@@rp all 0", "@@rp all 1")
                .replace("@@rp eth1 2", "@@rp eth1 0"),
        );
        let loose_dev = parse(&VAGRANT.replace("@@rp all 0", "@@rp all 1"));
        let n = &vxlan.nodes[0];
        let needs = crate::provider::needs::needs(&vxlan);
        let r = rp_filter(&needs, n, &strict);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.detail
                .starts_with("strict rp_filter on eth1 (all=1, eth1=0)"),
            "{}",
            r.detail
        );
        assert_eq!(rp_filter(&needs, n, &loose_dev).status, Status::Pass);
        let needs = crate::provider::needs::needs(&hostgw);
        assert_eq!(rp_filter(&needs, n, &strict).status, Status::Pass);
        let calico =
            cluster("  provider: calico\n  calico: { ipipMode: Never, vxlanMode: Never }\n");
        let needs = crate::provider::needs::needs(&calico);
        let loose = parse(&VAGRANT.replace("@@rp all 0", "@@rp all 2"));
        assert!(rp_filter(&needs, n, &loose)
            .detail
            .contains("Felix refuses"));
        assert_eq!(rp_filter(&needs, n, &parse(VAGRANT)).status, Status::Pass);
    }

    #[test]
    fn a_sysctl_file_read_after_netctls_wins() {
        let w = |files: &[(&str, &str)]| {
            let v: Vec<(String, String)> = files
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect();
            winner(&v).map(|(f, _)| f.clone())
        };
        assert_eq!(
            w(&[
                ("/etc/sysctl.d/90-netctl.conf", "1"),
                ("/usr/lib/sysctl.d/99-x.conf", "0")
            ])
            .as_deref(),
            Some("/usr/lib/sysctl.d/99-x.conf")
        );
        // A name in /etc hides the same name in /usr/lib.
        assert_eq!(
            w(&[
                ("/etc/sysctl.d/99-x.conf", "1"),
                ("/usr/lib/sysctl.d/99-x.conf", "0")
            ])
            .as_deref(),
            Some("/etc/sysctl.d/99-x.conf")
        );
        // /etc/sysctl.conf comes last.
        assert_eq!(
            w(&[("/etc/sysctl.conf", "0"), ("/etc/sysctl.d/99-z.conf", "1")]).as_deref(),
            Some("/etc/sysctl.conf")
        );
        let c = cluster("  provider: routes\n");
        let f = parse(&format!(
            "{VAGRANT}@@sysctl net.ipv4.ip_forward /etc/sysctl.d/99-hardening.conf 0\n"
        ));
        let r = forwarding(&c.nodes[0], &f);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.detail
                .starts_with("/etc/sysctl.d/99-hardening.conf sets net.ipv4.ip_forward = 0"),
            "{}",
            r.detail
        );
        let f = parse(&format!(
            "{VAGRANT}@@sysctl net.ipv4.ip_forward /etc/sysctl.d/10-early.conf 0\n"
        ));
        assert_eq!(forwarding(&c.nodes[0], &f).status, Status::Pass);
    }

    #[test]
    fn conntrack_clock_and_plugins() {
        let c = cluster("  provider: routes\n");
        let n = &c.nodes[0];
        let full = parse(&VAGRANT.replace("@@ctcount 10\n", "@@ctcount 250000\n"));
        assert_eq!(conntrack(n, &full).status, Status::Fail);
        assert_eq!(conntrack(n, &parse(VAGRANT)).status, Status::Pass);
        assert_eq!(clock(n, Some((75.0, 0.1))).status, Status::Fail);
        assert_eq!(clock(n, Some((-0.4, 0.1))).status, Status::Pass);
        assert!(clock(n, Some((-90.0, 0.1))).detail.contains("behind"));
        let needs = crate::provider::needs::needs(&c);
        let plan = crate::provider::node_plan(&c, n, &Default::default());
        assert_eq!(
            cni_plugins(&c, &needs, n, &plan, &parse(VAGRANT)).status,
            Status::Pass
        );
        let f = parse(&VAGRANT.replace("@@bin host-local\n", ""));
        let r = cni_plugins(&c, &needs, n, &plan, &f);
        assert_eq!(
            check(&r),
            (
                Status::Fail,
                "host-local missing from /opt/cni/bin: pods cannot start"
            )
        );
    }

    /// The script itself, run read-only on this machine: it ends, tells the clock and the
    /// addresses, and its every line parses.
    #[test]
    fn the_facts_script_runs_here() {
        let c = cluster("  provider: routes\n  routes: { backend: vxlan }\n");
        let script = script(&c, &["127.0.0.1".parse().unwrap()]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        let f = parse(&text);
        assert!(f.done, "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((f.clock.unwrap() - now).abs() < 5.0);
        assert!(f
            .addrs
            .iter()
            .any(|a| a.dev == "lo" && a.addr == Ipv4Addr::LOCALHOST));
        assert_eq!(f.routes[&Ipv4Addr::LOCALHOST].dev.as_deref(), Some("lo"));
        assert!(f.modules.contains_key("vxlan") && f.modules.contains_key("br_netfilter"));
        assert!(f.rp_filter.contains_key("all"));
        // Values whole, as the kernel has them (dash's `read` of /proc took only their first
        // byte: a conntrack table of 262144 read as 2, and every node failed preflight.conntrack).
        let proc = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|v| v.trim().to_string())
        };
        if let Some(max) = proc("/proc/sys/net/netfilter/nf_conntrack_max") {
            assert_eq!(f.conntrack.map(|(_, m)| m.to_string()), Some(max));
        }
        assert_eq!(
            f.forward.map(|v| v.to_string()),
            proc("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            f.rp_filter.get("all").map(|v| v.to_string()),
            proc("/proc/sys/net/ipv4/conf/all/rp_filter")
        );
    }
}

#[cfg(test)]
mod planted {
    use super::*;

    /// The script over planted modprobe.d and sysctl.d files (tmpfs over /etc's directories in a
    /// mount namespace of its own, so this machine's files are untouched): an `install` line and
    /// a later sysctl file are found, with the key as the checks read it. Needs root.
    #[test]
    fn planted_install_lines_and_sysctl_files_are_found() {
        if std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            != Some("0")
        {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI runs as root"
            );
            eprintln!("SKIP planted_install_lines_and_sysctl_files_are_found: needs root (mount namespaces)");
            return;
        }
        let c = crate::profile::load_str(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: { version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }\nnetworking:\n  provider: routes\n  routes: { backend: vxlan }\nnodes:\n  - { name: w1, address: 10.0.0.11 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let script = script(&c, &[]);
        let plant = "set -e; mount -t tmpfs none /etc/modprobe.d; mount -t tmpfs none /etc/sysctl.d; \
            printf '# CIS\\ninstall vxlan /bin/false\\n' > /etc/modprobe.d/cis.conf; \
            printf 'net.ipv4.ip_forward = 0\\n-net.bridge.bridge-nf-call-iptables=0\\n' > /etc/sysctl.d/99-hardening.conf; \
            printf 'net/ipv4/ip_forward=1\\n' > /etc/sysctl.d/10-early.conf; \
            exec sh -c \"$1\"";
        let out = std::process::Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                plant,
                "sh",
                &script,
            ])
            .output()
            .expect("unshare");
        let text = String::from_utf8_lossy(&out.stdout);
        let f = parse(&text);
        assert!(f.done, "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            f.modules["vxlan"].install,
            Some(("/etc/modprobe.d/cis.conf".into(), "false".into()))
        );
        assert_eq!(
            f.sysctls["net.ipv4.ip_forward"],
            [
                ("/etc/sysctl.d/10-early.conf".to_string(), "1".to_string()),
                (
                    "/etc/sysctl.d/99-hardening.conf".to_string(),
                    "0".to_string()
                )
            ]
        );
        assert_eq!(
            f.sysctls["net.bridge.bridge-nf-call-iptables"],
            [(
                "/etc/sysctl.d/99-hardening.conf".to_string(),
                "0".to_string()
            )]
        );
        let n = &c.nodes[0];
        assert_eq!(modules(&c, n, &f).status, crate::verify::Status::Fail);
        let fw = forwarding(n, &f);
        assert!(
            fw.detail
                .contains("99-hardening.conf sets net.ipv4.ip_forward = 0"),
            "{}",
            fw.detail
        );
        assert!(
            fw.detail.contains("net.bridge.bridge-nf-call-iptables = 0"),
            "{}",
            fw.detail
        );
    }
}
