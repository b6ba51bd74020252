//! The data plane, for real: two test pods per worker made with the node's own CNI config and
//! plugin binaries (one remote exec per plugin invocation, chained by `cni`), then one ping script
//! per node (background pings, one round trip) for pod-to-pod on the node, pod-to-pod across
//! nodes (full mesh or ring), node-to-pod and don't-fragment pings at the pod MTU.
//! Every pod is registered before its ADD starts, so `teardown` removes it whatever happens
//! (a failure, a timeout, Ctrl-C), and puts back what the plugins changed on the node (the
//! bridge they created, host-local's state directory, ip_forward).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use super::cni::{self, ConfList, NetworkName};
use super::node::{self, Active, Facts};
use super::{Check, Mesh};
use crate::fleet;
use crate::profile::{Cluster, Node};
use crate::remote::Remote;
use crate::shell::{script_file, File, Script};

pub const IDS: [&str; 5] = [
    "dataplane.pods",
    "dataplane.pod-to-pod-local",
    "dataplane.pod-to-pod",
    "dataplane.node-to-pod",
    "dataplane.mtu",
];
/// host-local's state directory (its default dataDir): one directory per network.
pub const CNI_NETWORKS: &str = "/var/lib/cni/networks";
/// `cursors ROOT`: the allocation cursors under ROOT as `@@cursor` lines (the node script's).
pub const CURSORS: File = script_file!("verify/cursors.sh");
/// `del_empty_bridge NAME`.
const BRIDGE: File = script_file!("verify/bridge.sh");

/// The same skip for every data-plane check of a node.
pub fn skip_all(node: &str, reason: &str) -> Vec<Check> {
    IDS.iter().map(|id| Check::skip(id, node, reason)).collect()
}

/// Whether verify can make test pods on this node, or why not.
pub fn runnable(cluster: &Cluster, node: &Node, facts: &Facts) -> Result<ConfList, String> {
    let bin = &cluster.profile.networking.cni_bin_dir;
    if !node.is_worker() {
        return Err("not a worker: no pods here".into());
    }
    match node::active(facts) {
        Active::None => Err("no CNI config on the node (see node.cni-config)".into()),
        // The error names the file and the bad value: kubenet and non-workers skip node.cni-config.
        Active::Broken(_, e) => Err(format!("{e} (see node.cni-config)")),
        Active::Ok(list) => {
            let missing = node::missing_binaries(&list, facts);
            if !missing.is_empty() {
                return Err(format!(
                    "the active config {} uses {}, whose binary is not in {bin} on this node",
                    list.file,
                    missing.join(", ")
                ));
            }
            if let Some(why) = needs_a_real_pod(&list) {
                return Err(why);
            }
            Ok(list)
        }
    }
}

/// Plugins that cannot serve a pod the API server does not know: calico's (calico and canal)
/// reads the pod and writes its WorkloadEndpoint through the Kubernetes datastore, so a bare
/// test pod would fail for reasons that say nothing about the network. Their data plane is
/// what `verify --smoke` tests, with real pods.
fn needs_a_real_pod(list: &ConfList) -> Option<String> {
    list.binaries().iter().find(|b| *b == "calico").map(|_| {
        format!(
            "{} uses calico's CNI plugin, which needs a pod the API server knows: run verify --smoke for its data plane",
            list.file
        )
    })
}

/// What an invocation does with the pod's network namespace besides calling the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns {
    Keep,
    /// Make it first (the pod's first ADD).
    Add,
    /// Remove it after (the pod's last DEL).
    Del,
}

/// One plugin invocation (templates/verify/cni-invoke.sh): the config on stdin, CNI_* in the env.
pub fn invoke_script(
    command: &str,
    list: &ConfList,
    i: usize,
    pod: &str,
    bin_dir: &str,
    prev: Option<&Value>,
    netns: Netns,
) -> String {
    let conf = serde_json::to_string(&list.plugin_config(i, prev)).expect("json");
    let bin = format!("{}/{}", bin_dir.trim_end_matches('/'), list.plugin_type(i));
    let flag = |on: bool| if on { "1" } else { "" };
    let mut script = Script::new(script_file!("verify/cni-invoke.sh"))
        .var("POD", pod)
        .var("PLUGIN", bin)
        .var("CONFIG", conf)
        .var("MAKE_NETNS", flag(netns == Netns::Add))
        .var("DROP_NETNS", flag(netns == Netns::Del));
    for (k, v) in cni::env(command, pod, &netns_path(pod), "eth0", bin_dir) {
        script = script.var(&k, v);
    }
    script.build()
}

fn netns_path(pod: &str) -> String {
    format!("/var/run/netns/{pod}")
}

/// What verify made on a node, so teardown can remove exactly that.
pub struct Made {
    pub remote: Arc<Remote>,
    pub list: ConfList,
    pub bin_dir: String,
    /// Pod name and its final ADD result (None while ADD runs or when it failed).
    pub pods: [(String, Option<Value>); 2],
    /// The bridge the config creates did not exist before verify.
    pub bridge_new: Option<String>,
    /// host-local's /var/lib/cni/networks/<name> did not exist before verify.
    pub ipam_dir_new: Option<String>,
    /// Otherwise, its allocation cursors as they were (every ADD moves them): put back with
    /// their mtimes, so verify leaves host-local's state as it found it. None: not read.
    pub cursors: Option<Vec<Cursor>>,
    /// Directories host-local creates (/var/lib/cni/networks and its parent) that were not there.
    pub cni_dirs_new: Vec<String>,
    /// ip_forward was 0: the bridge plugin (isGateway) turns it on; put it back.
    pub forward_was_off: bool,
}

pub type Registry = Arc<Mutex<BTreeMap<String, Made>>>;

/// host-local's `last_reserved_ip.<range>` file: its path, mtime (seconds.nanoseconds) and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub path: String,
    pub mtime: String,
    pub content: String,
}

/// host-local's cursor files are `last_reserved_ip.<range index>`.
const CURSOR_PREFIX: &str = "last_reserved_ip.";

/// The cursors of the network directory `dir`, from the node script's `@@cursor` lines. None
/// when one of them is not `<dir>/last_reserved_ip.<range index> mtime ip`: the path and
/// values are written back as root, so an odd line means the cursors are not touched at all.
fn parse_cursors(dir: &str, lines: &[String]) -> Option<Vec<Cursor>> {
    let prefix = format!("{dir}/");
    lines
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            let mut w = l.splitn(3, ' ');
            let (path, mtime, content) = (w.next()?, w.next()?, w.next()?);
            let index = path.strip_prefix(&prefix)?.strip_prefix(CURSOR_PREFIX)?;
            let ok = !index.is_empty()
                && index.bytes().all(|b| b.is_ascii_digit())
                && !content.is_empty()
                && content
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
                && mtime.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            ok.then(|| Cursor {
                path: path.to_string(),
                mtime: mtime.to_string(),
                content: content.to_string(),
            })
        })
        .collect()
}

/// Put the cursors of `dir` back as they were: the ones the pods created go, the others get
/// their content and mtime back (arguments of templates/verify/pods-left.sh).
fn restore_cursors(dir: &str, cursors: &[Cursor]) -> Vec<String> {
    let mut steps = vec!["cursors".to_string(), dir.to_string()];
    for c in cursors {
        steps.extend(["cursor", &c.path, &c.mtime, &c.content].map(String::from));
    }
    steps
}

/// The script that removes what the test pods left (templates/verify/pods-left.sh).
pub fn pods_left_script(steps: &[String]) -> String {
    Script::new(script_file!("verify/pods-left.sh"))
        .include(BRIDGE)
        .args(steps)
        .build()
}

/// A node taking part in the data-plane checks.
pub struct Participant {
    pub node: Node,
    pub remote: Arc<Remote>,
    pub facts: Facts,
}

async fn add_pod(
    remote: &Remote,
    list: &ConfList,
    bin_dir: &str,
    pod: &str,
) -> Result<(Ipv4Addr, Value), String> {
    let mut prev: Option<Value> = None;
    for i in 0..list.plugins.len() {
        let netns = if i == 0 { Netns::Add } else { Netns::Keep };
        let script = invoke_script("ADD", list, i, pod, bin_dir, prev.as_ref(), netns);
        let out = remote
            .change(&format!("CNI ADD {} ({pod})", list.plugin_type(i)), &script)
            .await
            .map_err(|e| e.to_string())?;
        let result =
            cni::parse_result(&out).map_err(|e| format!("{} ADD: {e}", list.plugin_type(i)))?;
        prev = Some(result);
    }
    let result = prev.unwrap_or(Value::Null);
    let ip =
        cni::first_ipv4(&result).ok_or_else(|| "the CNI result has no IPv4 address".to_string())?;
    Ok((ip, result))
}

async fn del_pod(m: &Made, pod: &str, result: Option<&Value>) -> Result<(), String> {
    let mut errors = Vec::new();
    let order = cni::del_order(&m.list);
    for (n, i) in order.iter().enumerate() {
        // The namespace goes with the last DEL: one exec per plugin invocation still.
        let netns = if n + 1 == order.len() {
            Netns::Del
        } else {
            Netns::Keep
        };
        let script = invoke_script("DEL", &m.list, *i, pod, &m.bin_dir, result, netns);
        if let Err(e) = m
            .remote
            .change(
                &format!("CNI DEL {} ({pod})", m.list.plugin_type(*i)),
                &script,
            )
            .await
        {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Remove every registered pod, then what the plugins left on the node. Returns the nodes where
/// something could not be removed.
pub async fn teardown(registry: Registry, concurrency: usize) -> Vec<Check> {
    let made: Vec<(String, Made)> = std::mem::take(&mut *registry.lock().unwrap())
        .into_iter()
        .collect();
    let results = fleet::run(made, concurrency, |(node, m)| async move {
        let start = Instant::now();
        let mut errors = Vec::new();
        // The pods' DELs side by side (one channel each), then what the plugins left behind.
        let [(pa, ra), (pb, rb)] = &m.pods;
        let (da, db) = tokio::join!(del_pod(&m, pa, ra.as_ref()), del_pod(&m, pb, rb.as_ref()));
        for (pod, r) in [(pa, da), (pb, db)] {
            if let Err(e) = r {
                errors.push(format!("{pod}: {e}"));
            }
        }
        let mut steps: Vec<String> = Vec::new();
        // The node's neighbour entries for the test pods' addresses go with the pods: host-local's
        // cursor is put back, so the next pod gets the same address with a new MAC, and a stale
        // entry would make it unreachable until the kernel gives up on it.
        for ip in [ra, rb].into_iter().flatten().filter_map(cni::first_ipv4) {
            steps.extend(["neigh".into(), ip.to_string()]);
        }
        if let Some(br) = &m.bridge_new {
            steps.extend(["bridge".into(), br.clone()]);
        }
        match (&m.ipam_dir_new, &m.cursors) {
            (Some(d), _) => steps.extend(["rmrf".into(), d.clone()]),
            (None, Some(c)) => steps.extend(restore_cursors(&network_dir(&m.list.name), c)),
            (None, None) => {}
        }
        for d in &m.cni_dirs_new {
            // rmdir: only if empty, so nothing but what the pods made goes.
            steps.extend(["rmdir".into(), d.clone()]);
        }
        if m.forward_was_off {
            steps.push("forward-off".into());
        }
        if !steps.is_empty() {
            let script = pods_left_script(&steps);
            if let Err(e) = m.remote.change("remove what the test pods left", &script).await {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            None
        } else {
            Some(
                Check::fail(
                    "dataplane.cleanup",
                    &node,
                    format!("test pods not fully removed: {}", errors.join("; ")),
                    "ip netns list on the node shows what is left; ip netns del netctl-* removes it",
                )
                .took(start),
            )
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Remove test pods a killed run left on a node (SIGKILL skips teardown): every namespace named
/// like `pod_names` makes (their veths go with them), host-local's reservations for them, and
/// then any bridge named in a CNI config under `conf_dir` that has nothing attached: the first
/// test pod's ADD may have created it, and the plugin makes it again on the next ADD. Run only
/// while holding the node's lock for an interrupted run's recovery, when no other netctl run can
/// have pods there. Bridge names are read from the configs by the script itself, so it checks
/// them as `cni::check_ifname` does (charset, length, not `.`, `..` or `-x`) and deletes only
/// bridges.
pub fn sweep_script(conf_dir: &str) -> String {
    Script::new(script_file!("verify/sweep.sh"))
        .include(BRIDGE)
        .var("CONF", conf_dir)
        .build()
}

/// host-local's state for a network (its default dataDir): one path component below it, as
/// `NetworkName` guarantees.
fn network_dir(network: &NetworkName) -> String {
    format!("{CNI_NETWORKS}/{network}")
}

/// Pod names for this run: unique per run, recognisable as netctl's.
pub fn pod_names(suffix: &str) -> [String; 2] {
    [format!("netctl-{suffix}-a"), format!("netctl-{suffix}-b")]
}

/// A node's ping targets, by kind: (kind, label, address, extra ping args).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static str,
    pub label: String,
    pub ip: Ipv4Addr,
    pub df_size: Option<u32>,
}

/// Whom each node pings: its own pod b (local), the other nodes' pod a (those its mesh picks),
/// its own pod a and the next node's pod a from the host (node-to-pod), and the next node's pod
/// a with don't-fragment at the pod MTU (every node sends once and receives once at full size).
pub fn targets(
    me: usize,
    pods: &[(String, Ipv4Addr, Ipv4Addr)],
    mesh: Mesh,
    mtu: u32,
) -> (Vec<Target>, Vec<Target>) {
    let (name, a, b) = &pods[me];
    let n = pods.len();
    let next = (n > 1).then(|| &pods[(me + 1) % n]);
    let t = |kind, label: &str, ip: Ipv4Addr, df: Option<u32>| Target {
        kind,
        label: label.to_string(),
        ip,
        df_size: df,
    };
    let mut from_pod = vec![t("local", name, *b, None)];
    from_pod.extend(mesh.offsets(n).into_iter().map(|o| {
        let (pn, pa, _) = &pods[(me + o) % n];
        t("pod", pn, *pa, None)
    }));
    let size = mtu.saturating_sub(28);
    match next {
        Some((pn, pa, _)) => from_pod.push(t("mtu", pn, *pa, Some(size))),
        None => from_pod.push(t("mtu", name, *b, Some(size))),
    }
    let mut from_host = vec![t("node", name, *a, None)];
    from_host.extend(next.map(|(pn, pa, _)| t("node", pn, *pa, None)));
    (from_host, from_pod)
}

/// One script (templates/verify/ping.sh): every ping at once in the background, the pod's from
/// inside its network namespace, all waited for. A failed ping is retried once with a longer wait
/// before it counts.
pub fn ping_script(pod: &str, from_host: &[Target], from_pod: &[Target]) -> String {
    let args = |place: &'static str, ts: &[Target]| -> Vec<String> {
        ts.iter()
            .flat_map(|t| {
                [
                    place.to_string(),
                    t.kind.to_string(),
                    t.label.clone(),
                    t.ip.to_string(),
                    t.df_size.unwrap_or(0).to_string(),
                ]
            })
            .collect()
    };
    Script::new(script_file!("verify/ping.sh"))
        .var("POD", pod)
        .args(args("host", from_host))
        .args(args("pod", from_pod))
        .build()
}

/// (kind, label, ip, ok) per line of the ping script's output.
pub fn parse_pings(out: &str) -> Vec<(String, String, String, bool)> {
    out.lines()
        .filter_map(|l| {
            let (ok, rest) = if let Some(r) = l.strip_prefix("@@ok ") {
                (true, r)
            } else {
                (false, l.strip_prefix("@@fail ")?)
            };
            let mut w = rest.split_whitespace();
            Some((w.next()?.into(), w.next()?.into(), w.next()?.into(), ok))
        })
        .collect()
}

fn summarise(
    id: &str,
    node: &str,
    results: &[(String, String, String, bool)],
    kind: &str,
    what: &str,
    hint: &str,
) -> Check {
    let of: Vec<_> = results.iter().filter(|r| r.0 == kind).collect();
    if of.is_empty() {
        return Check::skip(id, node, format!("no {what} to test"));
    }
    let failed: Vec<String> = of
        .iter()
        .filter(|r| !r.3)
        .map(|r| format!("{} ({})", r.1, r.2))
        .collect();
    if failed.is_empty() {
        let detail = if of.len() == 1 {
            format!("{what}: {} ({}) answers", of[0].1, of[0].2)
        } else {
            format!("{what}: {}/{} answer", of.len(), of.len())
        };
        Check::pass(id, node, detail)
    } else {
        let shown: Vec<&str> = failed.iter().take(6).map(String::as_str).collect();
        let more = if failed.len() > shown.len() {
            format!(" and {} more", failed.len() - shown.len())
        } else {
            String::new()
        };
        Check::fail(
            id,
            node,
            format!(
                "{what}: no reply from {}/{}: {}{more}",
                failed.len(),
                of.len(),
                shown.join(", ")
            ),
            hint,
        )
    }
}

/// Judge one node's ping results.
pub fn judge(node: &str, results: &[(String, String, String, bool)], mtu: u32) -> Vec<Check> {
    vec![
        summarise("dataplane.pod-to-pod-local", node, results, "local", "pod to pod on the node",
            "pods on one bridge cannot talk: check the bridge (ip link show cni0) and that nothing filters bridged traffic (br_netfilter + iptables FORWARD)"),
        summarise("dataplane.pod-to-pod", node, results, "pod", "pod to other nodes' pods",
            "check node.routes on both nodes, ip_forward on both, and that nothing between the nodes drops the traffic (FORWARD policy DROP, security groups, VXLAN port)"),
        summarise("dataplane.node-to-pod", node, results, "node", "node to pods",
            "the node has no route to the pod network: check node.routes and the bridge's gateway address"),
        summarise("dataplane.mtu", node, results, "mtu", &format!("don't-fragment {mtu}-byte packets"),
            "a link on the path has a smaller MTU than the pods: lower the pod MTU (e.g. networking.routes.mtu) or fix the device MTU (node.routes)"),
    ]
}

/// The MTU new pods get: the one the node's config asks for; without one, what netctl knows the
/// provider's pods get (routes host-gw: the kernel's veth default, whatever the uplink's MTU);
/// else the node's uplink MTU.
pub fn pod_mtu(cluster: &Cluster, list: &ConfList, facts: &Facts) -> u32 {
    let known = || crate::provider::pod_bridge(cluster).map(|(_, mtu)| mtu);
    list.mtu().or_else(known).unwrap_or_else(|| {
        facts
            .node_dev
            .as_ref()
            .and_then(|d| facts.links.get(d))
            .map(|(_, m)| *m)
            .filter(|m| *m > 0)
            .unwrap_or(1500)
    })
}

/// A node whose two test pods are up, waiting for the ping stage.
pub struct Ready {
    node: String,
    remote: Arc<Remote>,
    pod: String,
    mtu: u32,
    a: Ipv4Addr,
    b: Ipv4Addr,
}

/// Make a node's two test pods (or say why not). Runs right after the node's own checks, so
/// nodes do not wait for each other until the pings, which need every pod's address.
pub async fn make_pods(
    cluster: &Cluster,
    p: Participant,
    suffix: &str,
    registry: Registry,
) -> Result<(Check, Ready), Vec<Check>> {
    let list = runnable(cluster, &p.node, &p.facts).map_err(|why| skip_all(&p.node.name, &why))?;
    let start = Instant::now();
    let bin_dir = cluster.profile.networking.cni_bin_dir.clone();
    let names = pod_names(suffix);
    let bridge_new = list.bridge().filter(|b| !p.facts.links.contains_key(b));
    let dir = network_dir(&list.name);
    let ipam_dir_new = (!p.facts.cni_networks.contains(&list.name)).then(|| dir.clone());
    let cursors = match &ipam_dir_new {
        Some(_) => None,
        None => parse_cursors(&dir, &p.facts.cursors),
    };
    // Registered before ADD starts: teardown removes even a half-made pod.
    registry.lock().unwrap().insert(
        p.node.name.clone(),
        Made {
            remote: p.remote.clone(),
            list: list.clone(),
            bin_dir: bin_dir.clone(),
            pods: names.clone().map(|n| (n, None)),
            bridge_new,
            ipam_dir_new,
            cursors,
            forward_was_off: p.facts.forward == "0",
            cni_dirs_new: ["/var/lib/cni/networks", "/var/lib/cni"]
                .into_iter()
                .filter(|d| !p.facts.cni_dirs.contains(*d))
                .map(String::from)
                .collect(),
        },
    );
    // Both pods at once: two channels on the node's one connection.
    let (ra, rb) = tokio::join!(
        add_pod(&p.remote, &list, &bin_dir, &names[0]),
        add_pod(&p.remote, &list, &bin_dir, &names[1])
    );
    if let Some(m) = registry.lock().unwrap().get_mut(&p.node.name) {
        for (i, r) in [&ra, &rb].into_iter().enumerate() {
            if let Ok((_, res)) = r {
                m.pods[i].1 = Some(res.clone());
            }
        }
    }
    match (ra, rb) {
        (Ok((a, _)), Ok((b, _))) => {
            let c = Check::pass(
                "dataplane.pods",
                &p.node.name,
                format!("{} {a} and {} {b} from {}", names[0], names[1], list.file),
            )
            .took(start);
            let mtu = pod_mtu(cluster, &list, &p.facts);
            let [pod, _] = names;
            Ok((
                c,
                Ready {
                    node: p.node.name.clone(),
                    remote: p.remote,
                    pod,
                    mtu,
                    a,
                    b,
                },
            ))
        }
        (ra, rb) => {
            let e = [ra.err(), rb.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            let mut out = vec![Check::fail(
                "dataplane.pods",
                &p.node.name,
                format!("cannot make a test pod with {}: {e}", list.file),
                "the runtime would fail the same way: fix the CNI config or plugins (node.cni-config)",
            )
            .took(start)];
            out.extend(
                skip_all(&p.node.name, "no test pods on this node")
                    .into_iter()
                    .filter(|c| c.id != "dataplane.pods"),
            );
            Err(out)
        }
    }
}

/// Every node with pods pings its targets (one script per node), and the results are judged.
pub async fn ping_all(ready: Vec<Ready>, mesh: Mesh, concurrency: usize) -> Vec<Check> {
    let pods: Arc<Vec<(String, Ipv4Addr, Ipv4Addr)>> =
        Arc::new(ready.iter().map(|r| (r.node.clone(), r.a, r.b)).collect());
    let pinged = fleet::run(
        ready.into_iter().enumerate().collect(),
        concurrency,
        |(i, r)| {
            let pods = pods.clone();
            async move {
                let start = Instant::now();
                let (host, in_pod) = targets(i, &pods, mesh, r.mtu);
                let script = ping_script(&r.pod, &host, &in_pod);
                match r.remote.probe(&script).await {
                    Ok(out) => {
                        let results = parse_pings(&String::from_utf8_lossy(&out.stdout));
                        judge(&r.node, &results, r.mtu)
                            .into_iter()
                            .map(|c| c.took(start))
                            .collect::<Vec<_>>()
                    }
                    Err(e) => IDS[1..]
                        .iter()
                        .map(|id| {
                            Check::fail(
                                id,
                                &r.node,
                                format!("the ping script failed: {e}"),
                                "check the node's SSH connection and re-run",
                            )
                            .took(start)
                        })
                        .collect(),
                }
            }
        },
    )
    .await;
    pinged.into_iter().flatten().collect()
}

/// One node's data plane on its own: its two test pods, pod to pod on the node, node to pod and
/// the MTU, then the pods removed. What `switch` gates each node on: other nodes may still run the
/// old provider, so pods across nodes are left to the full verify at the end.
pub async fn node_alone(cluster: &Cluster, p: Participant, suffix: &str) -> Vec<Check> {
    let registry = Registry::default();
    let mut checks = match make_pods(cluster, p, suffix, registry.clone()).await {
        Ok((made, ready)) => {
            // The node's test pods are up: where the fault matrix kills a switch's gate.
            crate::fault::point("gate");
            let mut c = vec![made];
            c.extend(ping_all(vec![ready], Mesh::Full, 1).await);
            c
        }
        Err(c) => c,
    };
    checks.extend(teardown(registry, 1).await);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> ConfList {
        cni::parse(
            "10-x.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap()
    }

    /// The don't-fragment ping judges the MTU new pods get: on a jumbo-frame underlay a host-gw
    /// pod is still a 1500-byte veth (a ping at the uplink's 9001 could never pass); where netctl
    /// does not know the provider's pods, the uplink's.
    #[test]
    fn the_mtu_gate_uses_the_mtu_new_pods_get() {
        let profile = |net: &str| {
            crate::profile::load_str(
                &format!("apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: {{ version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24, manageUnits: false }}\nnetworking:\n{net}nodes:\n  - {{ name: node-1, address: 10.240.0.11, podCIDR: 10.200.1.0/24 }}\n"),
                std::path::Path::new("t.yaml"),
            )
            .unwrap()
        };
        let mut facts = Facts {
            node_dev: Some("eth0".into()),
            ..Facts::default()
        };
        facts.links.insert("eth0".into(), ("<UP>".into(), 9001));
        let host_gw = profile("  provider: routes\n  routes: { backend: host-gw }\n");
        assert_eq!(pod_mtu(&host_gw, &list(), &facts), 1500);
        let flannel = profile("  provider: flannel\n");
        assert_eq!(pod_mtu(&flannel, &list(), &facts), 9001);
        let vxlan = profile("  provider: routes\n  routes: { backend: vxlan, mtu: 8951 }\n");
        let conf = cni::parse(
            "10-bridge.conf",
            r#"{"cniVersion":"1.0.0","name":"bridge","type":"bridge","mtu":8951,"ipam":{"type":"host-local"}}"#,
        )
        .unwrap();
        assert_eq!(pod_mtu(&vxlan, &conf, &facts), 8951);
    }

    /// A stand-in plugin that echoes its env and stdin proves the quoting end to end.
    fn stand_in_plugin(dir: &std::path::Path, name: &str) {
        let plugin = dir.join(name);
        std::fs::write(&plugin, "#!/bin/sh\necho \"$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME $CNI_PATH\"\ncat\n").unwrap();
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn run(script: &str) -> (Option<i32>, String) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    }

    #[test]
    fn an_invocation_puts_the_config_on_stdin_and_cni_in_the_env() {
        let dir = tempfile::tempdir().unwrap();
        stand_in_plugin(dir.path(), "portmap");
        let bin = dir.path().to_str().unwrap();
        let prev = serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"10.200.0.2/24"}],"note":"it's $(id)"});
        let s = invoke_script(
            "ADD",
            &list(),
            1,
            "netctl-ab12-a",
            bin,
            Some(&prev),
            Netns::Keep,
        );
        let (rc, out) = run(&s);
        assert_eq!(rc, Some(0), "{out}");
        let mut lines = out.lines();
        assert_eq!(
            lines.next().unwrap(),
            format!("ADD netctl-ab12-a /var/run/netns/netctl-ab12-a eth0 {bin}")
        );
        let conf: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(conf["prevResult"], prev);
        assert_eq!(conf["name"], "net");
        assert_eq!(conf["runtimeConfig"]["portMappings"], serde_json::json!([]));
        assert_eq!(lines.next(), None, "the config and one newline on stdin");
    }

    #[test]
    fn an_invocation_exits_with_the_plugins_status_and_owns_the_namespace_only_when_told() {
        let dir = tempfile::tempdir().unwrap();
        stand_in_plugin(dir.path(), "bridge");
        let bin = dir.path().to_str().unwrap();
        let (rc, out) = run(&invoke_script(
            "DEL",
            &list(),
            0,
            "p1",
            bin,
            None,
            Netns::Keep,
        ));
        assert_eq!(rc, Some(0));
        assert!(
            out.starts_with(&format!("DEL p1 /var/run/netns/p1 eth0 {bin}\n")),
            "{out}"
        );
        let conf: Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
        assert_eq!(conf["type"], "bridge");
        assert_eq!(conf["cniVersion"], "1.0.0");
        let failing = invoke_script("DEL", &list(), 1, "p1", bin, None, Netns::Keep);
        assert_eq!(run(&failing).0, Some(127), "portmap is missing: its status");
        let add = invoke_script("ADD", &list(), 0, "p1", bin, None, Netns::Add);
        let del = invoke_script("DEL", &list(), 0, "p1", bin, None, Netns::Del);
        assert!(
            add.contains("MAKE_NETNS=1\n") && add.contains("DROP_NETNS=''\n"),
            "{add}"
        );
        assert!(
            del.contains("MAKE_NETNS=''\n") && del.contains("DROP_NETNS=1\n"),
            "{del}"
        );
    }

    fn pods(n: u8) -> Vec<(String, Ipv4Addr, Ipv4Addr)> {
        (0..n)
            .map(|i| {
                (
                    format!("node-{i}"),
                    Ipv4Addr::new(10, 200, i, 2),
                    Ipv4Addr::new(10, 200, i, 3),
                )
            })
            .collect()
    }

    /// The cursor scripts, run by a real shell on a temporary directory: saved, moved (as an ADD
    /// does), restored with content and mtime; a cursor the pods created goes. A file name with
    /// a newline (which would forge a line of output) and a symlink are never saved.
    #[test]
    fn host_local_cursors_are_put_back() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_str().unwrap();
        let sh = |script: &str| {
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        };
        let net = format!("{dir}/net");
        const SAVE: File = File {
            path: "test/save-cursors.sh",
            body: "cursors \"$ROOT\"\n",
        };
        let saved_now = || {
            let out = sh(&Script::new(SAVE).include(CURSORS).var("ROOT", dir).build());
            let lines: Vec<String> = out
                .lines()
                .filter_map(|l| l.strip_prefix("@@cursor "))
                .map(String::from)
                .collect();
            parse_cursors(&net, &lines)
        };
        sh(&format!(
            "mkdir {net} && printf 10.200.0.7 > {net}/last_reserved_ip.0 && touch -d @1700000000.5 {net}/last_reserved_ip.0"
        ));
        sh(&format!(
            "printf 10.0.0.1 > '{net}/last_reserved_ip.9\n@@cursor {net}/last_reserved_ip.8 1 1'; \
             printf 10.0.0.1 > {dir}/target; ln -s {dir}/target {net}/last_reserved_ip.7"
        ));
        let saved = saved_now().unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].path, format!("{net}/last_reserved_ip.0"));
        assert_eq!(saved[0].content, "10.200.0.7");
        assert_eq!(saved[0].mtime, "1700000000.500000000");
        sh(&format!(
            "printf 10.200.0.9 > {net}/last_reserved_ip.0; printf 10.1.0.2 > {net}/last_reserved_ip.1"
        ));
        sh(&pods_left_script(&restore_cursors(&net, &saved)));
        assert_eq!(saved_now(), Some(saved));
        assert_eq!(
            std::fs::read_to_string(format!("{dir}/target")).unwrap(),
            "10.0.0.1"
        );
        let lines = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let good = "/x/last_reserved_ip.0 1.5 10.0.0.1";
        for odd in [
            "/x/last_reserved_ip.1 1.5 $(rm -rf /)",
            "/x/last_reserved_ip.1 $(reboot) 10.0.0.1",
            "/x/../etc/last_reserved_ip.1 1.5 10.0.0.1",
            "/x/last_reserved_ip.0/../../etc/shadow 1.5 10.0.0.1",
            "/x/sub/last_reserved_ip.0 1.5 10.0.0.1",
            "/x/last_reserved_ip. 1.5 10.0.0.1",
            "/x/last_reserved_ip.0",
        ] {
            assert_eq!(
                parse_cursors("/x", &lines(&[good, odd])),
                None,
                "one odd line, hands off: {odd}"
            );
        }
        assert_eq!(
            parse_cursors(
                "/x",
                &lines(&[good, "/y/last_reserved_ip.0 1.5 $(rm -rf /)"])
            )
            .map(|c| c.len()),
            Some(1),
            "other networks' cursors are not this one's"
        );
        assert_eq!(parse_cursors("/x", &[]), Some(vec![]));
    }

    #[test]
    fn calico_configs_are_left_to_the_smoke_test() {
        let calico = cni::parse(
            "10-calico.conflist",
            r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico","ipam":{"type":"calico-ipam"}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        let why = needs_a_real_pod(&calico).unwrap();
        assert!(
            why.contains("10-calico.conflist") && why.contains("--smoke"),
            "{why}"
        );
        assert_eq!(needs_a_real_pod(&list()), None);
    }

    #[test]
    fn strided_and_auto_targets() {
        let p = pods(40);
        let peers = |me, mesh| {
            let (_, pod) = targets(me, &p, mesh, 1500);
            pod.iter()
                .filter(|t| t.kind == "pod")
                .map(|t| t.label.clone())
                .collect::<Vec<_>>()
        };
        let want = ["node-1", "node-2", "node-4", "node-8", "node-16", "node-32"];
        assert_eq!(peers(0, Mesh::Strided), want);
        assert_eq!(peers(0, Mesh::Auto), want, "40 nodes: auto is strided");
        assert_eq!(
            peers(30, Mesh::Strided),
            ["node-31", "node-32", "node-34", "node-38", "node-6", "node-22"],
            "the offsets wrap"
        );
        let p = pods(5);
        let (_, pod) = targets(2, &p, Mesh::Auto, 1500);
        assert_eq!(
            pod.iter().filter(|t| t.kind == "pod").count(),
            4,
            "5 nodes: auto is full"
        );
    }

    #[test]
    fn full_mesh_and_ring_targets() {
        let p = pods(4);
        let (host, pod) = targets(1, &p, Mesh::Full, 1450);
        assert_eq!(pod.iter().filter(|t| t.kind == "pod").count(), 3);
        assert_eq!(pod.iter().filter(|t| t.kind == "local").count(), 1);
        let mtu: Vec<_> = pod.iter().filter(|t| t.kind == "mtu").collect();
        assert_eq!(mtu.len(), 1);
        assert_eq!(mtu[0].label, "node-2");
        assert_eq!(mtu[0].df_size, Some(1422));
        assert_eq!(
            host.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
            ["node-1", "node-2"]
        );
        let (_, pod) = targets(3, &p, Mesh::Ring, 1500);
        let peers: Vec<_> = pod
            .iter()
            .filter(|t| t.kind == "pod")
            .map(|t| t.label.as_str())
            .collect();
        assert_eq!(peers, ["node-0"], "the ring wraps");
        let (_, pod) = targets(0, &pods(1), Mesh::Full, 1500);
        assert_eq!(pod.iter().filter(|t| t.kind == "pod").count(), 0);
        assert_eq!(
            pod.iter().find(|t| t.kind == "mtu").unwrap().label,
            "node-0"
        );
    }

    /// The ping script, run with stand-ins for ping (answers only 10.0.0.1) and ip (records
    /// which namespace a ping ran in, then runs it).
    #[test]
    fn the_ping_script_reports_each_target() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("netns");
        let stand_in = |name: &str, body: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        stand_in(
            "ping",
            "#!/bin/sh\nfor a; do last=$a; done\n[ \"$last\" = 10.0.0.1 ]\n".into(),
        );
        stand_in(
            "ip",
            format!(
                "#!/bin/sh\n[ \"$1 $2\" = 'netns exec' ] || exit 9\necho \"$3 $*\" >> {}\nshift 3\nexec \"$@\"\n",
                log.display()
            ),
        );
        let t = |kind, label: &str, ip: &str, df_size| Target {
            kind,
            label: label.into(),
            ip: ip.parse().unwrap(),
            df_size,
        };
        let host = [t("node", "n0", "10.0.0.3", None)];
        let pod = [
            t("pod", "n1", "10.0.0.1", None),
            t("mtu", "n2", "10.0.0.2", Some(1422)),
        ];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(ping_script("netctl-x-a", &host, &pod))
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        let mut r = parse_pings(&String::from_utf8(out.stdout).unwrap());
        r.sort();
        assert_eq!(
            r,
            vec![
                ("mtu".into(), "n2".into(), "10.0.0.2".into(), false),
                ("node".into(), "n0".into(), "10.0.0.3".into(), false),
                ("pod".into(), "n1".into(), "10.0.0.1".into(), true),
            ]
        );
        let mut netns: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        netns.sort();
        netns.dedup();
        assert_eq!(
            netns,
            [
                "netctl-x-a netns exec netctl-x-a ping -n -q -c1 -W1 -M do -s 1422 10.0.0.2",
                "netctl-x-a netns exec netctl-x-a ping -n -q -c1 -W1 10.0.0.1",
                "netctl-x-a netns exec netctl-x-a ping -n -q -c1 -W2 -M do -s 1422 10.0.0.2",
            ],
            "the pod's pings, and only those, from its namespace"
        );
        let checks = judge("n0", &r, 1450);
        let by = |id: &str| checks.iter().find(|c| c.id == id).unwrap().clone();
        assert_eq!(
            by("dataplane.pod-to-pod").status,
            super::super::Status::Pass
        );
        assert_eq!(by("dataplane.mtu").status, super::super::Status::Fail);
        assert!(by("dataplane.mtu").detail.contains("n2 (10.0.0.2)"));
        assert_eq!(
            by("dataplane.pod-to-pod-local").status,
            super::super::Status::Skip
        );
    }
}
