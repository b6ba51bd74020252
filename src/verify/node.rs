//! Node checks: one read-only script per node prints everything the checks need (sysctls, CNI
//! configs and binaries, addresses, links, netctl's routes and VXLAN entries, flannel's lease,
//! managed-file hashes, unit states) in one round trip; pure functions then judge it, so each
//! check is unit-tested without a node.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use ipnetwork::Ipv4Network;

use super::cni::{self, ConfList, NetworkName};
use super::{Check, Status};
use crate::profile::{Cluster, Node};
use crate::provider::{self, node_prereqs, routes, NodePlan};
use crate::shell::{self, script_file, Script, Tagged};
use crate::state::{NodeState, STATE_FILE};

pub use super::routes::env_file;
use super::routes::routes_check;

/// Everything the node script found.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub forward: String,
    pub br_module: bool,
    pub br_call_iptables: String,
    /// CNI config files in the conf dir (name -> content).
    pub confs: BTreeMap<String, String>,
    pub bins: BTreeSet<String>,
    /// IPv4 addresses per device.
    pub addrs: Vec<(String, Ipv4Network)>,
    /// `ip -o link` per device name: (flags, mtu).
    pub links: BTreeMap<String, (String, u32)>,
    /// The device that holds the node's address.
    pub node_dev: Option<String>,
    pub routes: Vec<String>,
    pub neigh: Vec<String>,
    pub fdb: Vec<String>,
    pub subnet_env: Option<String>,
    pub state: Option<Result<NodeState, String>>,
    /// sha256 per path, for files that exist.
    pub sha: BTreeMap<String, String>,
    pub systemd: bool,
    /// Unit -> (is-active, is-enabled).
    pub units: BTreeMap<String, (String, String)>,
    /// Directories under /var/lib/cni/networks (host-local's per-network state). Only names a
    /// CNI network can have: verify asks about its own network's, never acts on the others.
    pub cni_networks: BTreeSet<NetworkName>,
    /// Which of /var/lib/cni and /var/lib/cni/networks existed.
    pub cni_dirs: BTreeSet<String>,
    /// host-local's allocation cursors, `path mtime content` (see dataplane::cursors_script).
    pub cursors: Vec<String>,
    /// containerd's config file, when the node has one (its CNI section: `runtime_cni`).
    pub containerd_config: Option<String>,
    /// The ports of the provider's pod bridge (`provider::pod_bridge`).
    pub ports: Vec<Port>,
}

/// A port of the pods' bridge: one pod's host end. The pod is named only where the node script
/// found its network namespace (and the container host-local reserved its address for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub dev: String,
    pub mtu: u32,
    pub netns: Option<String>,
    pub container: Option<String>,
}

impl Port {
    /// How the report names the pod: its namespace, with the container where that differs (a
    /// runtime's `cni-<uuid>` namespace says less than its sandbox id); else the host's device.
    pub fn name(&self) -> String {
        let short = |c: &str| c.chars().take(12).collect::<String>();
        match (&self.netns, &self.container) {
            (Some(n), Some(c)) if n == c => n.clone(),
            (Some(n), Some(c)) => format!("{n} (container {})", short(c)),
            (Some(n), None) => n.clone(),
            (None, Some(c)) => format!("container {}", short(c)),
            (None, None) => format!("the pod on {}", self.dev),
        }
    }
}

/// A name the node printed, kept only in the shapes the script lets through (`-` is none).
fn node_word(w: Option<&&str>) -> Option<String> {
    w.filter(|w| {
        **w != "-"
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    })
    .map(|w| w.to_string())
}

/// The one read-only script (templates/verify/node-checks.sh). Every value it prints is tagged;
/// nothing it prints is run, and names found on the node cannot forge a tagged line.
pub fn script(cluster: &Cluster, node: &Node, plan: &NodePlan) -> String {
    let net = &cluster.profile.networking;
    let files = plan.files.iter().map(|f| format!("sha:{}", f.path));
    let units = plan.units.iter().map(|u| format!("unit:{}", u.name));
    let bridge = provider::pod_bridge(cluster);
    Script::new(script_file!("verify/node-checks.sh"))
        .include(super::dataplane::CURSORS)
        .var("CONF", &net.cni_conf_dir)
        .var("BIN", &net.cni_bin_dir)
        .var("ADDR", node.address.to_string())
        .var("DEV", routes::VXLAN_DEV)
        .var("BRNF", node_prereqs::BRIDGE_NF_CALL_IPTABLES)
        .var("CONTAINERD", provider::kube::CONTAINERD_CONFIG)
        .var("CURSORS", super::dataplane::CNI_NETWORKS)
        .var("STATE", STATE_FILE)
        .var("BRIDGE", bridge.map(|(b, _)| b).unwrap_or(""))
        .var(
            "POD_MTU",
            bridge.map(|(_, m)| m.to_string()).unwrap_or_default(),
        )
        .args(files.chain(units))
        .build()
}

fn b64(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub fn parse(out: &str) -> Facts {
    let mut f = Facts::default();
    for Tagged { tag, rest, .. } in shell::tagged(out) {
        let words: Vec<&str> = rest.split_whitespace().collect();
        match tag {
            "forward" => f.forward = rest.trim().to_string(),
            "brnf" => {
                f.br_module = words.first() == Some(&"1");
                f.br_call_iptables = words.get(1).unwrap_or(&"-").to_string();
            }
            "conf" => {
                let (name, data) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some(name) = b64(name).filter(|n| !n.is_empty()) {
                    f.confs.insert(name, b64(data).unwrap_or_default());
                }
            }
            "bin" => {
                f.bins.insert(rest.trim().to_string());
            }
            "cnidir" => {
                f.cni_dirs.insert(rest.trim().to_string());
            }
            "cninet" => {
                // Any other directory there is not a network verify could make pods on.
                if let Ok(n) = NetworkName::new(rest.trim()) {
                    f.cni_networks.insert(n);
                }
            }
            "cursor" => f.cursors.push(rest.trim_end().to_string()),
            "nodedev" => f.node_dev = Some(rest.trim().to_string()).filter(|d| !d.is_empty()),
            "addr" => {
                if let (Some(d), Some(a)) = (words.first(), words.get(1)) {
                    if let Ok(n) = a.parse() {
                        f.addrs.push((d.to_string(), n));
                    }
                }
            }
            "link" => {
                if let (Some(d), Some(flags), Some(mtu)) =
                    (words.first(), words.get(1), words.get(2))
                {
                    let name = d.split('@').next().unwrap_or(d).to_string();
                    f.links
                        .insert(name, (flags.to_string(), mtu.parse().unwrap_or(0)));
                }
            }
            "port" => {
                let mtu = words.get(1).and_then(|m| m.parse().ok());
                if let (Some(dev), Some(mtu)) = (node_word(words.first()), mtu) {
                    f.ports.push(Port {
                        dev,
                        mtu,
                        netns: node_word(words.get(2)),
                        container: node_word(words.get(3)),
                    });
                }
            }
            "route" => f.routes.push(rest.trim().to_string()),
            "neigh" => f.neigh.push(rest.trim().to_string()),
            "fdb" => f.fdb.push(rest.trim().to_string()),
            "subnetenv" => f.subnet_env = b64(rest),
            "containerd" => f.containerd_config = b64(rest),
            "state" => {
                f.state = Some(
                    b64(rest)
                        .ok_or_else(|| "not readable".to_string())
                        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())),
                )
            }
            "sha" => {
                if let (Some(h), Some(p)) = (words.first(), words.get(1)) {
                    f.sha.insert(p.to_string(), h.to_string());
                }
            }
            "systemd" => f.systemd = true,
            "unit" => {
                if let Some(u) = words.first() {
                    let word = |i: usize| words.get(i).unwrap_or(&"unknown").to_string();
                    f.units.insert(u.to_string(), (word(1), word(2)));
                }
            }
            _ => {}
        }
    }
    f
}

/// What the node script found about the config the runtime will use.
pub enum Active {
    /// No config file at all.
    None,
    /// The winning file does not parse, or holds a name that cannot be used (cni::BadName).
    Broken(String, String),
    Ok(ConfList),
}

pub fn active(facts: &Facts) -> Active {
    match cni::active_file(facts.confs.keys().map(String::as_str)) {
        None => Active::None,
        Some(name) => match cni::parse(name, &facts.confs[name]) {
            Ok(l) => Active::Ok(l),
            Err(e) => Active::Broken(name.to_string(), e.to_string()),
        },
    }
}

/// Binaries the config needs that are not in cniBinDir.
pub fn missing_binaries(list: &ConfList, facts: &Facts) -> Vec<String> {
    list.binaries()
        .into_iter()
        .filter(|b| !facts.bins.contains(b))
        .collect()
}

/// All node checks for one node, from its facts.
pub fn checks(cluster: &Cluster, node: &Node, plan: &NodePlan, f: &Facts) -> Vec<Check> {
    let all = vec![
        forwarding(node, f),
        br_netfilter(cluster, node, f),
        cni_config(cluster, node, f),
        runtime_cni(cluster, node, f),
        stale_cni(cluster, node, plan, f),
        files(node, f),
        services(node, plan, f),
        routes_check(cluster, node, f),
        pod_mtu(cluster, node, f),
    ];
    recorded_network(cluster, node, f, all)
}

/// `node.provider`: the node runs the network the profile names. When it records another, that
/// is the one failure; the checks that judge the node by the profile's provider (its CNI config,
/// units and routes; with only the backend different, its routes) are skipped, since they would
/// only repeat it.
fn recorded_network(cluster: &Cluster, node: &Node, f: &Facts, all: Vec<Check>) -> Vec<Check> {
    const ID: &str = "node.provider";
    let Some(Ok(state)) = &f.state else {
        let mut out = vec![Check::skip(
            ID,
            &node.name,
            "no readable state.json: netctl has not set up this node (node.files)",
        )];
        out.extend(all);
        return out;
    };
    let Some(m) = crate::recorded::mismatch(cluster, state) else {
        let mut out = vec![Check::pass(
            ID,
            &node.name,
            format!(
                "runs {}, as the profile names",
                crate::network::Network::of(cluster)
            ),
        )];
        out.extend(all);
        return out;
    };
    let follows: &[&str] = if m.provider_differs() {
        &[
            "node.cni-config",
            "node.stale-cni",
            "node.services",
            "node.routes",
            POD_MTU,
        ]
    } else {
        &["node.routes", POD_MTU]
    };
    let profile = cluster.source.display().to_string();
    let mut out = vec![Check::fail(
        ID,
        &node.name,
        m.describe(),
        m.ways_out(&profile),
    )];
    out.extend(all.into_iter().map(|c| {
        if follows.contains(&c.id.as_str()) {
            Check::skip(
                &c.id,
                &c.subject,
                format!("the node runs {} (node.provider)", m.recorded),
            )
        } else {
            c
        }
    }));
    out
}

/// `node.pod-mtu`: the pods on the bridge whose MTU is not the one new pods get, named. Smaller
/// (made on a backend with encapsulation) still works, at the old MTU, until recreated; larger
/// sends packets the path drops, so only path MTU discovery (ICMP "fragmentation needed" from
/// the node) gets them across.
fn pod_mtu(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    const ID: &str = POD_MTU;
    let Some((bridge, want)) = provider::pod_bridge(cluster) else {
        return Check::skip(
            ID,
            &node.name,
            format!("{} sets its pods' MTU itself", cluster.provider().as_str()),
        );
    };
    if !node.is_worker() {
        return Check::skip(ID, &node.name, "not a worker: no pods here");
    }
    let others: BTreeMap<u32, Vec<String>> =
        f.ports
            .iter()
            .filter(|p| p.mtu != want)
            .fold(BTreeMap::new(), |mut by, p| {
                by.entry(p.mtu).or_default().push(p.name());
                by
            });
    if others.is_empty() {
        let detail = match f.ports.len() {
            0 => format!("no pods on {bridge}; new pods get MTU {want}"),
            1 => format!("1 pod on {bridge}, at MTU {want}"),
            n => format!("{n} pods on {bridge}, all at MTU {want}"),
        };
        return Check::pass(ID, &node.name, detail);
    }
    let groups: Vec<String> = others
        .iter()
        .map(|(mtu, names)| {
            let n = names.len();
            let (pods, them) = if n == 1 { ("pod keeps", "it") } else { ("pods keep", "them") };
            let why = if *mtu > want {
                format!(", above {want}: packets to other nodes larger than that get there only by path MTU discovery")
            } else {
                String::new()
            };
            let shown = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
            let more = if n > SHOWN { format!(" and {} more", n - SHOWN) } else { String::new() };
            format!("{n} {pods} MTU {mtu}{why} (recreate {them} for {want}): {shown}{more}")
        })
        .collect();
    Check::pass(ID, &node.name, groups.join("; "))
}

/// Pods named per MTU in node.pod-mtu's detail; the rest are counted.
const SHOWN: usize = 10;

/// node.pod-mtu's id.
pub const POD_MTU: &str = "node.pod-mtu";

/// The nodes' pods that keep another MTU than new pods get, one line per node naming them, from
/// a report's checks: what a switch reports after its last gate.
pub fn pods_to_recreate(checks: &[Check]) -> impl Iterator<Item = String> + '_ {
    checks
        .iter()
        .filter(|c| c.id == POD_MTU && c.status == Status::Pass && c.detail.contains(" keep"))
        .map(|c| format!("{}: {}", c.subject, c.detail))
}

fn forwarding(node: &Node, f: &Facts) -> Check {
    const ID: &str = "node.forwarding";
    if f.forward == "1" {
        Check::pass(ID, &node.name, "net.ipv4.ip_forward = 1")
    } else {
        Check::fail(
            ID,
            &node.name,
            format!(
                "net.ipv4.ip_forward = {}: the node does not route pod traffic",
                f.forward
            ),
            format!(
                "sysctl -w net.ipv4.ip_forward=1 (netctl init sets it and persists it in {})",
                node_prereqs::SYSCTL_FILE
            ),
        )
    }
}

fn br_netfilter(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    const ID: &str = "node.br-netfilter";
    if !cluster.profile.kubernetes.manage_units {
        return Check::skip(
            ID,
            &node.name,
            "kubernetes.manageUnits: false: no kubelet or kube-proxy on this node by design",
        );
    }
    if !node.is_worker() {
        return Check::skip(
            ID,
            &node.name,
            "not a worker: kube-proxy's bridged traffic is on workers",
        );
    }
    if !f.br_module {
        return Check::fail(
            ID,
            &node.name,
            "br_netfilter is not loaded: kube-proxy's iptables rules miss bridged pod traffic",
            format!(
                "modprobe br_netfilter (netctl init loads it and lists it in {} for boot)",
                node_prereqs::MODULES_FILE
            ),
        );
    }
    if f.br_call_iptables != "1" {
        return Check::fail(
            ID,
            &node.name,
            format!(
                "net.bridge.bridge-nf-call-iptables = {}",
                f.br_call_iptables
            ),
            format!("sysctl -w net.bridge.bridge-nf-call-iptables=1 (netctl init sets it and persists it in {})", node_prereqs::SYSCTL_FILE),
        );
    }
    Check::pass(
        ID,
        &node.name,
        "br_netfilter loaded, bridge-nf-call-iptables = 1",
    )
}

fn cni_config(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    const ID: &str = "node.cni-config";
    let dir = &cluster.profile.networking.cni_conf_dir;
    let bin = &cluster.profile.networking.cni_bin_dir;
    let Some(want) = provider::cni_config(cluster) else {
        return Check::skip(
            ID,
            &node.name,
            "kubenet: the kubelet configures pods itself, no CNI config",
        );
    };
    if !node.is_worker() {
        return Check::skip(ID, &node.name, "not a worker: no pods here");
    }
    match active(f) {
        Active::None => Check::fail(
            ID,
            &node.name,
            format!("no CNI config in {dir}: pods cannot start"),
            format!("run netctl init (it writes {dir}/{want})"),
        ),
        Active::Broken(name, e) => Check::fail(
            ID,
            &node.name,
            format!("{dir}/{name} is picked first but is not usable: {e}"),
            format!("fix or remove {dir}/{name}; netctl init rewrites {want}"),
        ),
        Active::Ok(list) if list.file != want => Check::fail(
            ID,
            &node.name,
            format!(
                "the runtime picks {dir}/{} (first in order), not netctl's {want}",
                list.file
            ),
            format!(
                "remove or rename {dir}/{} (the lexicographically first config wins)",
                list.file
            ),
        ),
        Active::Ok(list) => {
            let missing = missing_binaries(&list, f);
            if missing.is_empty() {
                Check::pass(
                    ID,
                    &node.name,
                    format!(
                        "{want} is picked; plugins {} in {bin}",
                        list.binaries().join(", ")
                    ),
                )
            } else {
                let hint = if missing
                    .iter()
                    .any(|m| m == "flannel" || m.starts_with("calico") || m == "weave-net")
                {
                    format!("the provider's DaemonSet installs {} into {bin}: check its pods (cluster.provider-pods)", missing.join(", "))
                } else {
                    format!("install containernetworking-plugins, or set networking.cniBinDir to where {} live", missing.join(", "))
                };
                Check::fail(
                    ID,
                    &node.name,
                    format!("{want} is picked, but {bin} has no {}", missing.join(", ")),
                    hint,
                )
            }
        }
    }
}

fn runtime_cni(cluster: &Cluster, node: &Node, f: &Facts) -> Check {
    let net = &cluster.profile.networking;
    if provider::cni_config(cluster).is_none() {
        return Check::skip(
            super::runtime_cni::ID,
            &node.name,
            "kubenet: the kubelet configures pods itself, no CNI config",
        );
    }
    if !node.is_worker() {
        return Check::skip(
            super::runtime_cni::ID,
            &node.name,
            "not a worker: no pods here",
        );
    }
    super::runtime_cni::check(
        &node.name,
        provider::kube::CONTAINERD_CONFIG,
        f.containerd_config.as_deref(),
        &net.cni_bin_dir,
        &net.cni_conf_dir,
    )
}

/// Config files that are netctl's for this provider (the one that should win, and files the
/// provider's plan writes into the conf dir, such as 99-loopback.conf).
fn own_configs(cluster: &Cluster, plan: &NodePlan) -> BTreeSet<String> {
    let dir = format!(
        "{}/",
        cluster
            .profile
            .networking
            .cni_conf_dir
            .trim_end_matches('/')
    );
    let mut own: BTreeSet<String> = plan
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix(&dir).map(str::to_string))
        .collect();
    own.extend(provider::cni_config(cluster).map(str::to_string));
    own
}

fn stale_cni(cluster: &Cluster, node: &Node, plan: &NodePlan, f: &Facts) -> Check {
    const ID: &str = "node.stale-cni";
    let own = own_configs(cluster, plan);
    let mut problems = Vec::new();
    for (name, text) in &f.confs {
        if own.contains(name) {
            continue;
        }
        // A loopback-only config is harmless wherever it sorts.
        let loopback_only = cni::parse(name, text)
            .map(|l| l.binaries() == ["loopback"])
            .unwrap_or(false);
        if !loopback_only {
            problems.push(format!("foreign config {name}"));
        }
    }
    for (dev, addr) in &f.addrs {
        if dev != "cni0" && dev != "flannel.1" {
            continue;
        }
        let inside = node.pod_cidr.is_some_and(|c| c.contains(addr.ip()));
        if !inside {
            problems.push(format!(
                "{dev} has {addr}, outside the node's podCIDR {}",
                node.pod_cidr
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "(none)".into())
            ));
        }
    }
    if problems.is_empty() {
        Check::pass(ID, &node.name, "no configs or links of other providers")
    } else {
        Check::fail(
            ID,
            &node.name,
            problems.join("; "),
            format!(
                "remove leftovers of the previous provider (rm the config from {}; ip link del the old bridge/vxlan device)",
                cluster.profile.networking.cni_conf_dir
            ),
        )
    }
}

fn files(node: &Node, f: &Facts) -> Check {
    const ID: &str = "node.files";
    let state = match &f.state {
        None => {
            return Check::fail(
                ID,
                &node.name,
                format!("no {STATE_FILE}: netctl has not set up this node"),
                "run netctl init",
            )
        }
        Some(Err(e)) => {
            return Check::fail(
                ID,
                &node.name,
                format!("{STATE_FILE} does not parse: {e}"),
                "move it aside and run netctl init",
            )
        }
        Some(Ok(s)) => s,
    };
    let mut drift = Vec::new();
    for (path, want) in &state.files {
        match f.sha.get(path) {
            None => drift.push(format!("{path} missing")),
            Some(h) if *h != want.sha256 => drift.push(format!("{path} edited")),
            Some(_) => {}
        }
    }
    if drift.is_empty() {
        Check::pass(
            ID,
            &node.name,
            format!("{} managed files match state.json", state.files.len()),
        )
    } else {
        Check::fail(
            ID,
            &node.name,
            format!("drift: {}", drift.join(", ")),
            "netctl plan shows the diff; netctl init puts the files back",
        )
    }
}

fn services(node: &Node, plan: &NodePlan, f: &Facts) -> Check {
    const ID: &str = "node.services";
    if !node.has_systemd() {
        return Check::skip(
            ID,
            &node.name,
            "init: none: no systemd on this node to run units",
        );
    }
    if plan.units.is_empty() {
        return Check::skip(ID, &node.name, "netctl manages no units on this node");
    }
    if !f.systemd {
        return Check::fail(
            ID,
            &node.name,
            "systemd is not running on the node",
            "set init: none on this node in the profile, or boot it with systemd",
        );
    }
    // Daemons must run; a boot-time oneshot (restart: false, e.g. netctl-routes) must be enabled:
    // init re-runs its script instead of starting it, so it is inactive until the next boot.
    let unknown = ("unknown".to_string(), "unknown".to_string());
    let down: Vec<String> = plan
        .units
        .iter()
        .filter_map(|u| {
            let (active, enabled) = f.units.get(&u.name).unwrap_or(&unknown);
            if u.restart && active != "active" {
                Some(format!("{} is {active}", u.name))
            } else if !u.restart && u.enable && enabled != "enabled" {
                Some(format!("{} is {enabled}, not enabled", u.name))
            } else if !u.restart && active == "failed" {
                Some(format!("{} failed", u.name))
            } else {
                None
            }
        })
        .collect();
    if down.is_empty() {
        Check::pass(
            ID,
            &node.name,
            format!(
                "running or enabled: {}",
                plan.units
                    .iter()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        Check::fail(
            ID,
            &node.name,
            down.join(", "),
            "journalctl -u UNIT on the node says why; systemctl restart UNIT",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::FlannelBackend;
    use crate::provider::RouteCheck;
    use crate::verify::routes::flannel_lease;
    use crate::verify::Status;

    fn cluster(extra: &str) -> Cluster {
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  manageUnits: false\nnetworking:\n  provider: routes\n  cniBinDir: /usr/lib/cni\n{extra}nodes:\n  - {{ name: node-1, address: 10.240.0.11, roles: [worker], init: none }}\n  - {{ name: node-2, address: 10.240.0.12, roles: [worker], init: none }}\n"
        );
        crate::profile::load_str(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    fn healthy(c: &Cluster) -> Facts {
        let n1 = &c.nodes[0];
        let plan = provider::node_plan(c, n1, &Default::default());
        let mut f = Facts {
            forward: "1".into(),
            ..Facts::default()
        };
        for file in &plan.files {
            if let Some(name) = file.path.strip_prefix("/etc/cni/net.d/") {
                f.confs.insert(name.into(), file.content.clone());
            }
        }
        f.bins
            .extend(["bridge", "host-local", "loopback"].map(String::from));
        let peer = c.nodes[1].pod_cidr.unwrap();
        f.routes
            .push(format!("{peer} via 10.240.0.12 dev eth0 proto 211"));
        f
    }

    fn by_id<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn a_healthy_host_gw_node_passes() {
        let c = cluster("  routes: { backend: host-gw }\n");
        let n = &c.nodes[0];
        let plan = provider::node_plan(&c, n, &Default::default());
        let cs = checks(&c, n, &plan, &healthy(&c));
        for id in [
            "node.forwarding",
            "node.cni-config",
            "node.stale-cni",
            "node.routes",
        ] {
            assert_eq!(by_id(&cs, id).status, Status::Pass, "{:?}", by_id(&cs, id));
        }
        assert_eq!(by_id(&cs, "node.br-netfilter").status, Status::Skip);
        assert_eq!(by_id(&cs, "node.services").status, Status::Skip);
        // No state.json yet: files fail, with a hint.
        assert_eq!(by_id(&cs, "node.files").status, Status::Fail);
        assert!(by_id(&cs, "node.files").hint.is_some());
    }

    /// A node that records another network than the profile: one failure, node.provider, naming
    /// the record's network and run and the two ways out; the route check that would only repeat
    /// it is skipped. The same node against a profile naming its network passes.
    #[test]
    fn a_node_on_another_network_fails_node_provider_alone() {
        let host_gw = cluster("  routes: { backend: host-gw }\n");
        let mut f = healthy(&host_gw);
        f.state = Some(Ok(NodeState {
            provider: "routes".into(),
            backend: "host-gw".into(),
            run_id: "20261130T050000Z-ab12".into(),
            ..NodeState::default()
        }));
        let vxlan = cluster("  routes: { backend: vxlan }\n");
        let n = &vxlan.nodes[0];
        let plan = provider::node_plan(&vxlan, n, &Default::default());
        let cs = checks(&vxlan, n, &plan, &f);
        let failed: Vec<&Check> = cs.iter().filter(|c| c.status == Status::Fail).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        let p = failed[0];
        assert_eq!(p.id, "node.provider");
        assert_eq!(
            p.detail,
            "records routes (host-gw) (set by run 20261130T050000Z-ab12); the profile names routes (vxlan)"
        );
        let hint = p.hint.as_deref().unwrap();
        assert!(hint.contains("`netctl switch -p t.yaml`"), "{hint}");
        assert!(
            hint.contains("change the profile to say routes (host-gw)"),
            "{hint}"
        );
        let r = by_id(&cs, "node.routes");
        assert_eq!(r.status, Status::Skip);
        assert_eq!(r.detail, "the node runs routes (host-gw) (node.provider)");
        assert_eq!(
            by_id(&cs, "node.cni-config").status,
            Status::Pass,
            "same provider: judged"
        );

        let plan = provider::node_plan(&host_gw, n, &Default::default());
        let cs = checks(&host_gw, n, &plan, &f);
        assert_eq!(by_id(&cs, "node.provider").status, Status::Pass);
        assert_eq!(by_id(&cs, "node.routes").status, Status::Pass);

        // Another provider: its CNI config, units and routes follow from it too.
        let st = f.state.as_mut().unwrap().as_mut().unwrap();
        (st.provider, st.backend) = ("canal".into(), String::new());
        let cs = checks(&host_gw, n, &plan, &f);
        for id in [
            "node.cni-config",
            "node.stale-cni",
            "node.services",
            "node.routes",
        ] {
            assert_eq!(by_id(&cs, id).status, Status::Skip, "{id}");
        }
        assert_eq!(by_id(&cs, "node.forwarding").status, Status::Pass);
    }

    #[test]
    fn faults_fail_their_own_check() {
        let c = cluster("  routes: { backend: host-gw }\n");
        let n = &c.nodes[0];
        let plan = provider::node_plan(&c, n, &Default::default());
        let mut f = healthy(&c);
        f.forward = "0".into();
        f.routes.clear();
        f.confs.insert(
            "00-foreign.conflist".into(),
            r#"{"name":"x","cniVersion":"1.0.0","plugins":[{"type":"flannel"}]}"#.into(),
        );
        f.addrs
            .push(("cni0".into(), "10.88.0.1/16".parse().unwrap()));
        let cs = checks(&c, n, &plan, &f);
        let fw = by_id(&cs, "node.forwarding");
        assert_eq!(fw.status, Status::Fail);
        let cni = by_id(&cs, "node.cni-config");
        assert_eq!(cni.status, Status::Fail);
        assert!(cni.detail.contains("00-foreign.conflist"), "{cni:?}");
        let stale = by_id(&cs, "node.stale-cni");
        assert!(
            stale.detail.contains("foreign config 00-foreign.conflist"),
            "{stale:?}"
        );
        assert!(stale.detail.contains("cni0 has 10.88.0.1/16"), "{stale:?}");
        let r = by_id(&cs, "node.routes");
        assert!(r.detail.contains("no route to node-2"), "{r:?}");
    }

    #[test]
    fn missing_plugin_binaries_are_named() {
        let c = cluster("  routes: { backend: host-gw }\n");
        let n = &c.nodes[0];
        let plan = provider::node_plan(&c, n, &Default::default());
        let mut f = healthy(&c);
        f.bins.remove("host-local");
        let cs = checks(&c, n, &plan, &f);
        let cni = by_id(&cs, "node.cni-config");
        assert_eq!(cni.status, Status::Fail);
        assert!(cni.detail.contains("has no host-local"), "{cni:?}");
    }

    #[test]
    fn vxlan_checks_device_mtu_neighbours_and_fdb() {
        let c = cluster("  routes: { backend: vxlan }\n");
        let n = &c.nodes[0];
        let plan = provider::node_plan(&c, n, &Default::default());
        let peer = c.nodes[1].pod_cidr.unwrap();
        let mac = routes::vtep_mac("10.240.0.12".parse().unwrap());
        let mut f = healthy(&c);
        f.routes = vec![format!(
            "{peer} via {} dev netctl-vxlan proto 211 onlink",
            peer.network()
        )];
        f.links.insert(
            "netctl-vxlan".into(),
            ("<BROADCAST,MULTICAST,UP,LOWER_UP>".into(), 1450),
        );
        f.neigh
            .push(format!("{} lladdr {mac} PERMANENT", peer.network()));
        f.fdb.push(format!("{mac} dst 10.240.0.12 self permanent"));
        assert_eq!(
            routes_check(&c, n, &f).status,
            Status::Pass,
            "{:?}",
            routes_check(&c, n, &f)
        );
        f.links.insert(
            "netctl-vxlan".into(),
            ("<BROADCAST,MULTICAST,UP,LOWER_UP>".into(), 1400),
        );
        f.fdb.clear();
        let r = routes_check(&c, n, &f);
        assert!(r.detail.contains("MTU 1400, want 1450"), "{r:?}");
        assert!(r.detail.contains("no FDB"), "{r:?}");
        let _ = plan;
    }

    fn port(dev: &str, mtu: u32, netns: Option<&str>, container: Option<&str>) -> Port {
        Port {
            dev: dev.into(),
            mtu,
            netns: netns.map(String::from),
            container: container.map(String::from),
        }
    }

    /// Issue 17 item 4: after vxlan -> host-gw the pods made on vxlan keep 1450 and are named
    /// (they work, at their MTU); new pods get 1500; the switch's report carries the names.
    #[test]
    fn pods_that_keep_another_mtu_are_named() {
        let c = cluster(
            "  routes: { backend: host-gw }
",
        );
        let n = &c.nodes[0];
        let mut f = healthy(&c);
        f.ports = vec![
            port("veth1", 1450, Some("pa"), Some("pa")),
            port("veth2", 1500, Some("new"), None),
            port(
                "veth3",
                1450,
                Some("cni-5f0e"),
                Some("0123456789abcdef0123"),
            ),
            port("veth4", 1450, None, None),
        ];
        let r = pod_mtu(&c, n, &f);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(
            r.detail,
            "3 pods keep MTU 1450 (recreate them for 1500): pa, cni-5f0e (container 0123456789ab), the pod on veth4"
        );
        let plan = provider::node_plan(&c, n, &Default::default());
        let all = checks(&c, n, &plan, &f);
        assert_eq!(
            pods_to_recreate(&all).collect::<Vec<_>>(),
            [format!("node-1: {}", r.detail)]
        );
        f.ports.retain(|p| p.mtu == 1500);
        let r = pod_mtu(&c, n, &f);
        assert_eq!(r.detail, "1 pod on cni0, at MTU 1500");
        assert_eq!(pods_to_recreate(&[r]).count(), 0);
    }

    /// Pods made on host-gw keep 1500 on vxlan's 1450: named with what that costs.
    #[test]
    fn pods_above_the_backends_mtu_are_named_with_the_cost() {
        let c = cluster(
            "  routes: { backend: vxlan }
",
        );
        let mut f = healthy(&c);
        f.ports = (0..12)
            .map(|i| port(&format!("veth{i}"), 1500, Some(&format!("p{i:02}")), None))
            .collect();
        let r = pod_mtu(&c, &c.nodes[0], &f);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(
            r.detail.starts_with("12 pods keep MTU 1500, above 1450: packets to other nodes larger than that get there only by path MTU discovery (recreate them for 1450): p00, p01,"),
            "{}",
            r.detail
        );
        assert!(r.detail.ends_with("p09 and 2 more"), "{}", r.detail);
    }

    #[test]
    fn providers_that_set_the_pod_mtu_themselves_are_skipped() {
        let c = crate::profile::load_str(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: { version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24, manageUnits: false }\nnetworking:\n  provider: flannel\nnodes:\n  - { name: node-1, address: 10.240.0.11, podCIDR: 10.200.1.0/24 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let f = Facts {
            ports: vec![port("veth1", 1400, Some("pa"), None)],
            ..Facts::default()
        };
        let r = pod_mtu(&c, &c.nodes[0], &f);
        assert_eq!(r.status, Status::Skip, "{r:?}");
    }

    /// Only names of the shapes a namespace or container id can have come through the parse.
    #[test]
    fn bridge_ports_parse_and_odd_names_are_dropped() {
        let f = parse("@@port veth1 1450 pa pa\n@@port veth2 1500 - -\n@@port veth3 1450 a/b c;d\n@@port ve$th 1450 - -\n@@port veth5 x - -\n");
        assert_eq!(
            f.ports,
            [
                port("veth1", 1450, Some("pa"), Some("pa")),
                port("veth2", 1500, None, None),
                port("veth3", 1450, None, None),
            ]
        );
    }

    #[test]
    fn drift_is_found_from_state_hashes() {
        let c = cluster("");
        let n = &c.nodes[0];
        let mut f = Facts::default();
        let mut st = NodeState::default();
        for (p, h) in [("/a", "11"), ("/b", "22"), ("/c", "33")] {
            st.files.insert(
                p.into(),
                crate::state::ManagedFile {
                    sha256: h.into(),
                    mode: 0o644,
                    original: false,
                    binary: false,
                },
            );
        }
        f.state = Some(Ok(st));
        f.sha.insert("/a".into(), "11".into());
        f.sha.insert("/b".into(), "99".into());
        let r = files(n, &f);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.detail, "drift: /b edited, /c missing");
    }

    #[test]
    fn flannel_lease_is_checked_against_the_profile() {
        let c = cluster("  routes: { backend: host-gw }\n");
        let n = &c.nodes[0];
        let mut f = Facts {
            node_dev: Some("eth0".into()),
            ..Facts::default()
        };
        f.links.insert("eth0".into(), ("<UP>".into(), 1500));
        f.subnet_env = Some(format!("FLANNEL_NETWORK=10.200.0.0/16\nFLANNEL_SUBNET={}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", n.pod_cidr.unwrap().iter().nth(1).unwrap().to_string() + "/24"));
        assert_eq!(
            flannel_lease(&c, n, &f, FlannelBackend::Vxlan, None).status,
            Status::Pass
        );
        let r = flannel_lease(&c, n, &f, FlannelBackend::HostGw, None);
        assert!(
            r.detail.contains("FLANNEL_MTU 1450 but host-gw wants 1500"),
            "{r:?}"
        );
        f.subnet_env = Some(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\n"
                .into(),
        );
        let r = flannel_lease(&c, n, &f, FlannelBackend::Vxlan, None);
        assert!(r.detail.contains("not the cluster CIDR"), "{r:?}");
        assert!(r.detail.contains("not inside the node's podCIDR"), "{r:?}");
    }

    /// flannel reads net-conf's Backend MTU as the underlay's and writes FLANNEL_MTU = MTU minus
    /// its encapsulation (v0.28 vxlan_network.go encapOverhead 50, wireguard_network.go overhead
    /// 80): what netctl renders for `mtu` must come back as that pod MTU, which verify wants.
    #[test]
    fn the_rendered_flannel_mtu_is_the_pod_mtu_verify_wants() {
        for (backend, overhead) in [("vxlan", 50), ("wireguard", 80)] {
            let c = crate::profile::load_str(
                &format!("apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: {{ version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24, manageUnits: false }}\nnetworking:\n  provider: flannel\n  flannel: {{ backend: {backend}, mtu: 1400 }}\nnodes:\n  - {{ name: node-1, address: 10.240.0.11, podCIDR: 10.200.1.0/24 }}\n"),
                std::path::Path::new("t.yaml"),
            )
            .unwrap();
            let n = &c.nodes[0];
            let conf = serde_json::to_value(provider::flannel::net_conf(&c)).unwrap();
            let underlay = conf["Backend"]["MTU"].as_u64().unwrap() as u32;
            let f = Facts {
                subnet_env: Some(format!(
                    "FLANNEL_NETWORK=10.200.0.0/16\nFLANNEL_SUBNET=10.200.1.1/24\nFLANNEL_MTU={}\nFLANNEL_IPMASQ=true\n",
                    underlay - overhead
                )),
                ..Facts::default()
            };
            let RouteCheck::FlannelLease { backend: b, mtu } = provider::route_check(&c) else {
                panic!("flannel checks its lease");
            };
            let r = flannel_lease(&c, n, &f, b, mtu);
            assert_eq!(r.status, Status::Pass, "{backend}: {r:?}");
        }
    }

    /// canal's flannel is not configured by `networking.flannel`: its MTU is not wanted there.
    #[test]
    fn canal_ignores_the_flannel_mtu() {
        let c = crate::profile::load_str(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: { version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24, manageUnits: false }\nnetworking:\n  provider: canal\n  flannel: { mtu: 1400 }\nnodes:\n  - { name: node-1, address: 10.240.0.11, podCIDR: 10.200.1.0/24 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let mut f = Facts {
            node_dev: Some("eth0".into()),
            subnet_env: Some(
                "FLANNEL_NETWORK=10.200.0.0/16\nFLANNEL_SUBNET=10.200.1.1/24\nFLANNEL_MTU=1450\n"
                    .into(),
            ),
            ..Facts::default()
        };
        f.links.insert("eth0".into(), ("<UP>".into(), 1500));
        let r = routes_check(&c, &c.nodes[0], &f);
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }

    #[test]
    fn the_script_output_parses() {
        let out = "@@forward 1\n@@brnf 0 -\n@@conf MTAtYnJpZGdlLmNvbmY= eyJhIjoxfQ==\n@@bin bridge\n@@cninet cbr0\n@@cninet ..\n@@cninet a b\n@@nodedev eth0\n@@addr cni0 10.200.0.1/24\n@@link netctl-vxlan@NONE: <UP> 1450\n@@link eth0@if7: <UP,LOWER_UP> 1500\n@@route 10.200.1.0/24 via 10.240.0.12 dev eth0 proto 211\n@@sha abc /etc/x\n@@systemd\n@@unit netctl-routes.service active enabled\n";
        let f = parse(out);
        assert_eq!(f.forward, "1");
        assert!(!f.br_module);
        assert_eq!(f.confs["10-bridge.conf"], "{\"a\":1}");
        assert_eq!(
            f.cni_networks
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>(),
            ["cbr0"],
            "only names a network can have"
        );
        assert_eq!(f.links["eth0"].1, 1500);
        assert_eq!(f.links["netctl-vxlan"].1, 1450);
        assert_eq!(f.addrs[0].0, "cni0");
        assert_eq!(f.routes.len(), 1);
        assert_eq!(f.sha["/etc/x"], "abc");
        assert!(f.systemd);
        assert_eq!(
            f.units["netctl-routes.service"],
            ("active".into(), "enabled".into())
        );
    }

    /// Names on the node are data: the script, run by a real shell, keeps a config file name
    /// with newlines whole (the runtime may pick that file) and lets no name forge a tagged line.
    #[test]
    fn names_on_the_node_cannot_forge_facts() {
        let mut c = cluster("");
        let conf = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        c.profile.networking.cni_conf_dir = conf.path().to_str().unwrap().into();
        c.profile.networking.cni_bin_dir = bin.path().to_str().unwrap().into();
        let forged = "00-x\n@@forward 7\n@@bin forged\n.conf";
        std::fs::write(conf.path().join(forged), "{}").unwrap();
        let plugin = bin.path().join("p\n@@forward 7\n@@bin forged");
        std::fs::write(&plugin, "").unwrap();
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let n = &c.nodes[0];
        let plan = provider::node_plan(&c, n, &Default::default());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(&c, n, &plan))
            .output()
            .unwrap();
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        assert_ne!(f.forward, "7", "a file name set a fact");
        assert!(f.bins.is_empty(), "{:?}", f.bins);
        assert_eq!(f.confs.keys().collect::<Vec<_>>(), [forged]);
    }

    /// br_netfilter is judged by the sysctl netctl sets and flanneld stats, not by /sys/module
    /// (absent for a built-in br_netfilter, as on the lab's kernel): verify agrees with init.
    #[test]
    fn br_netfilter_is_judged_by_the_path_init_and_flanneld_use() {
        let c = cluster("  routes: { backend: host-gw }\n");
        let n = &c.nodes[0];
        let plan = provider::node_plan(&c, n, &Default::default());
        let s = script(&c, n, &plan);
        assert!(
            s.contains("\nBRNF=/proc/sys/net/bridge/bridge-nf-call-iptables\n")
                && s.contains("m=0; [ -e \"$BRNF\" ] && m=1"),
            "{s}"
        );
        assert!(!s.contains("/sys/module/br_netfilter"), "{s}");
        let load = &plan.commands[0].command;
        assert!(
            load.contains(
                "[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter"
            ),
            "{load}"
        );
    }
}
