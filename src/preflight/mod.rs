//! `netctl preflight`, and the first phase of `init` and `switch`: everything the chosen network
//! needs, checked on every node and between node pairs before anything changes. One remote
//! execution per node, in three rounds, each over every node before the next starts:
//! 1. facts (one read-only script: interfaces, kernel, sysctls, plugins, the clock), whose end
//!    execs the agent on the same channel: a listener per port or protocol the network uses;
//! 2. probes from each node to its peers (`pairs`), asked of its agent over that channel: echoes
//!    off the other agents, don't-fragment pings of the backend's packet size, the route and
//!    neighbour to each peer, the API server;
//! 3. each agent's stdin closed: it ends, and leaves nothing on the node (`preflight.cleanup`).
//!
//! Nothing else on a node is changed, so no lock is taken. The report is verify's.

pub mod agent;
pub mod node;
pub mod pairs;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Mutex};

use crate::fleet;
use crate::printer::{NodeLine, Progress};
use crate::profile::{Cluster, Node};
use crate::provider::needs::{Needs, Traffic};
use crate::remote::{Conversation, Remote};
use crate::run::Run;
use crate::verify::{Check, Report};
use agent::{Listen, ListenState, Outcome, Probe};
use pairs::{Pair, Verdict};

/// How long a node's agent has for a probe request (its probes take about 2 s, the routes up to
/// 4 s more; it kills a prober after 15 s), and to end once its stdin is closed.
const ANSWER_LIMIT: std::time::Duration = std::time::Duration::from_secs(12);
const END_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One node after the first round.
struct Reached {
    node: Node,
    remote: Arc<Remote>,
    line: NodeLine,
    facts: Option<node::Facts>,
    listening: BTreeMap<Listen, ListenState>,
    /// Its agent, or why it has none (no python3, the script failed), and its pid.
    agent: Result<Conversation, String>,
    pid: Option<u32>,
    checks: Vec<Check>,
}

/// A reached node in rounds 2 and 3: its agent, taken by each probe round in turn and then by
/// the end, and what the end needs to kill one that does not end.
struct Live {
    line: NodeLine,
    remote: Arc<Remote>,
    pid: Option<u32>,
    agent: Mutex<Result<Conversation, String>>,
}

type Agents = Arc<BTreeMap<usize, Live>>;

fn epoch_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// "preflight: 2 check(s) failed: preflight.vxlan on n2 (udp 8472 from no peer arrives ...), ..."
pub fn failures(r: &Report) -> String {
    let f: Vec<&Check> = r.failures().collect();
    let shown: Vec<String> = f
        .iter()
        .take(5)
        .map(|c| format!("{} on {} ({})", c.id, c.subject, c.detail))
        .collect();
    let more = if f.len() > shown.len() {
        format!(" and {} more", f.len() - shown.len())
    } else {
        String::new()
    };
    format!(
        "preflight: {} check(s) failed: {}{more}",
        f.len(),
        shown.join("; ")
    )
}

/// The API server's host and port from `kubernetes.apiServer` (`https://host[:port][/...]`).
pub fn api_endpoint(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, if scheme == "http" { 80 } else { 443 }),
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then(|| (host.to_string(), port))
}

/// Preflight over new sessions (the command), closed at the end.
pub async fn run(run: &Run, cluster: Arc<Cluster>) -> Report {
    preflight(run, cluster, BTreeMap::new()).await
}

/// Preflight over sessions the caller holds and keeps (init, switch), of the nodes it holds them
/// for: a node the caller could not reach is the caller's failure already, and the others are
/// checked among themselves.
pub async fn run_on(run: &Run, cluster: Arc<Cluster>, open: &[Arc<Remote>]) -> Report {
    let mut among = (*cluster).clone();
    among
        .nodes
        .retain(|n| open.iter().any(|r| r.node == n.name));
    let open = open.iter().map(|r| (r.node.clone(), r.clone())).collect();
    preflight(run, Arc::new(among), open).await
}

async fn preflight(
    run: &Run,
    cluster: Arc<Cluster>,
    open: BTreeMap<String, Arc<Remote>>,
) -> Report {
    let started = Instant::now();
    // Ctrl-C is ours from here: the listeners started are stopped before netctl exits (a listener
    // left behind would hold its port, and the next preflight would take it for the network's).
    let (tx, rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    let needs = Arc::new(crate::provider::needs::needs(&cluster));
    let progress = Progress::new(run.quiet);
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let n = names.len();
    let listens: Vec<Listen> = {
        let mut l: Vec<Listen> = needs.traffic.iter().map(|t| t.proto).collect();
        l.sort();
        l.dedup();
        l
    };

    // Round 1: connect, facts, listeners.
    let jobs: Vec<(usize, Node, NodeLine)> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (i, node.clone(), progress.node(&node.name)))
        .collect();
    let open = Arc::new(open);
    // What every node's first round reads, shared by its tasks.
    let shared = Arc::new((
        run.clone(),
        cluster.clone(),
        needs.clone(),
        listens.clone(),
        open,
    ));
    let reached = fleet::run(jobs, run.concurrency, move |(i, node, line)| {
        let shared = shared.clone();
        async move {
            let (run, cluster, needs, listens, open) = &*shared;
            first_round(run, cluster, needs, i, node, line, listens, open).await
        }
    })
    .await;
    let mut refused = false;
    let mut checks = Vec::new();
    let mut up: Vec<Option<Reached>> = Vec::with_capacity(n);
    for r in reached {
        match r {
            Ok(r) => up.push(Some(r)),
            Err((c, refusal)) => {
                refused |= refusal;
                checks.extend(c);
                up.push(None);
            }
        }
    }

    // Round 2: probes, each node to its peers.
    let addr = |i: usize| cluster.nodes[i].address;
    let mut plans: Vec<(usize, Vec<Probe>)> = Vec::new();
    // (check, pair) not probed: the peer's listener is not there.
    let mut skipped: Vec<(&'static str, Pair)> = Vec::new();
    for (i, r) in up.iter().enumerate() {
        let Some(r) = r else { continue };
        let mut probes = Vec::new();
        let uplink = uplink_mtu(&needs, r);
        for j in pairs::peers(n, i) {
            let Some(peer) = &up[j] else {
                continue;
            };
            for t in &needs.traffic {
                let l = t.proto;
                match peer.listening.get(&l) {
                    Some(ListenState::Listening) => probes.push(Probe::Echo(l, addr(j))),
                    other => skipped.push((
                        t.check,
                        Pair {
                            from: i,
                            to: j,
                            verdict: Verdict::Skip(not_listening(t, &peer.node.name, other)),
                        },
                    )),
                }
            }
            probes.push(Probe::Ping(addr(j), 0));
            probes.push(Probe::Ping(addr(j), needs.wire_size(uplink)));
            if needs.layer2 {
                probes.push(Probe::Path(addr(j)));
            }
        }
        if let Some((host, port)) = cluster
            .profile
            .kubernetes
            .api_server
            .as_deref()
            .and_then(api_endpoint)
        {
            probes.push(Probe::Connect(host, port));
        }
        probes.sort();
        probes.dedup();
        plans.push((i, probes));
    }
    let run_id = run.id.clone();
    let agents: Agents = Arc::new(
        up.iter_mut()
            .enumerate()
            .filter_map(|(i, r)| {
                let r = r.as_mut()?;
                let agent = std::mem::replace(&mut r.agent, Err(String::new()));
                let live = Live {
                    line: r.line.clone(),
                    remote: r.remote.clone(),
                    pid: r.pid,
                    agent: Mutex::new(agent),
                };
                Some((i, live))
            })
            .collect(),
    );
    // Round 1 always finishes (each node's script is bounded): every agent it started is known,
    // so round 3 reaches it. The probes stop at a Ctrl-C.
    let mut interrupted = *rx.borrow();
    let mut outcomes = Vec::new();
    if !interrupted {
        tokio::select! {
            o = probe_round(&agents, plans, n) => outcomes = o,
            _ = ctrl_c_seen(rx.clone()) => interrupted = true,
        }
    }
    // A probe that failed is sent once more before it counts (as verify's pings): on a loaded
    // machine one lost answer is not a firewall. Only the failed ones, so a clean run pays nothing.
    let again: Vec<(usize, Vec<Probe>)> = outcomes
        .iter()
        .map(|(i, got)| {
            let failed = got
                .iter()
                .filter(|(p, o)| {
                    matches!(o, Outcome::Failed(_)) && !matches!(p, Probe::Connect(..))
                })
                .map(|(p, _)| p.clone())
                .collect::<Vec<_>>();
            (*i, failed)
        })
        .filter(|(_, failed)| !failed.is_empty())
        .collect();
    if !again.is_empty() && !interrupted {
        tokio::select! {
            second = probe_round(&agents, again, n) => {
                for (i, second) in second {
                    let got = &mut outcomes
                        .iter_mut()
                        .find(|(j, _)| *j == i)
                        .expect("probed")
                        .1;
                    for (p, o) in second {
                        if !matches!(o, Outcome::Failed(_)) {
                            got.insert(p, o);
                        }
                    }
                }
            }
            _ = ctrl_c_seen(rx.clone()) => interrupted = true,
        }
    }

    // Round 3: every agent's stdin closed; it ends, and with it its listeners. One that does not
    // (stopped, stuck) is killed by its pid, through a script of its own.
    let ends = fleet::run(agents.keys().copied().collect(), n, {
        let (agents, run_id) = (agents.clone(), run_id.clone());
        move |i| {
            let (agents, run_id) = (agents.clone(), run_id.clone());
            async move {
                let live = &agents[&i];
                live.line.phase("end the agent");
                let agent = std::mem::replace(&mut *live.agent.lock().await, Err(String::new()));
                let res = match agent {
                    Err(_) => Ok(()),
                    Ok(c) => match c.finish(END_LIMIT).await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(kill(live, &run_id, e.to_string()).await),
                    },
                };
                live.line.done("checked");
                (i, res)
            }
        }
    })
    .await;

    // Judge.
    let by_node: BTreeMap<usize, BTreeMap<Probe, Outcome>> = outcomes.into_iter().collect();
    for (i, r) in up.iter_mut().enumerate() {
        let Some(r) = r else { continue };
        checks.append(&mut r.checks);
        checks.push(api_server(&cluster, &r.node, by_node.get(&i)));
    }
    for (i, res) in ends {
        let name = &names[i];
        checks.push(match res {
            Ok(()) => Check::pass("preflight.cleanup", name, "the agent and its listeners ended; nothing was written on the node"),
            Err(e) => Check::fail(
                "preflight.cleanup",
                name,
                e,
                format!("see why on the node: a stopped or stuck python3; a python3 with `netctl-pf-{run_id}` in its command line that still runs there exits by itself within {} s of its start", agent::LISTEN_LIFETIME_S),
            ),
        });
    }
    if interrupted || *rx.borrow() {
        checks.push(Check::fail(
            "preflight.interrupted",
            crate::verify::CLUSTER,
            "interrupted (Ctrl-C): the probes did not finish; every agent started was ended",
            "re-run netctl preflight",
        ));
    } else {
        checks.extend(pair_checks(
            &needs, &names, &cluster, &up, &by_node, skipped,
        ));
    }
    watcher.abort();
    // Its remotes are clones of the nodes': the last holder closes each connection.
    drop(agents);
    for r in up.into_iter().flatten() {
        drop(r.line);
        if let Ok(remote) = Arc::try_unwrap(r.remote) {
            remote.close().await;
        }
    }
    let order: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    checks.sort_by_key(|c| order.get(c.subject.as_str()).copied().unwrap_or(usize::MAX));
    Report::new(run_id, checks, refused)
        .of("preflight")
        .took(started)
}

/// Returns once Ctrl-C has been seen.
async fn ctrl_c_seen(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Kill an agent that did not end (`why`), by its pid; what the cleanup row says.
async fn kill(live: &Live, run_id: &str, why: String) -> String {
    let Some(pid) = live.pid else {
        return format!("the agent did not end ({why}), and it gave no pid to kill it by");
    };
    match live.remote.probe(&agent::kill_script(run_id, pid)).await {
        Ok(o) if agent::parse_kill(&String::from_utf8_lossy(&o.stdout)) => {
            format!("the agent did not end within {} s of its stdin closing ({why}); killed (pid {pid})", END_LIMIT.as_secs())
        }
        Ok(_) => format!("the agent did not end within {} s of its stdin closing ({why}); it was gone when netctl came to kill it (pid {pid})", END_LIMIT.as_secs()),
        Err(e) => format!("the agent did not end ({why}), and killing it failed: {e}"),
    }
}

/// One round of probes: each node's asked of its agent, all nodes at once (a request on an open
/// channel costs the node a fork of its agent, not a connection or a shell).
async fn probe_round(
    agents: &Agents,
    plans: Vec<(usize, Vec<Probe>)>,
    at_once: usize,
) -> Vec<(usize, BTreeMap<Probe, Outcome>)> {
    fleet::run(plans, at_once, {
        let agents = agents.clone();
        move |(i, probes)| {
            let agents = agents.clone();
            async move {
                agents[&i].line.phase("probe peers");
                let mut agent = agents[&i].agent.lock().await;
                let failed = |why: String| {
                    probes
                        .iter()
                        .map(|p| (p.clone(), Outcome::Failed(why.clone())))
                        .collect()
                };
                let parsed = match &mut *agent {
                    Err(why) => failed(why.clone()),
                    Ok(c) => match c
                        .ask(&agent::probe_request(&probes), agent::END, ANSWER_LIMIT)
                        .await
                    {
                        Ok(out) => agent::parse_probe(&out, &probes),
                        Err(e) => failed(format!("no answer from the agent: {e}")),
                    },
                };
                (i, parsed)
            }
        }
    })
    .await
}

/// The uplink's MTU on a reached node: the interface the network uses, else the one holding the
/// node's address, else 1500.
fn uplink_mtu(needs: &Needs, r: &Reached) -> u32 {
    let Some(f) = &r.facts else { return 1500 };
    let dev = node::chosen_iface(needs, &r.node, f)
        .ok()
        .map(|(d, _)| d)
        .or_else(|| f.dev_of(r.node.address).map(String::from));
    dev.and_then(|d| f.mtu.get(&d).copied()).unwrap_or(1500)
}

fn not_listening(t: &Traffic, peer: &str, state: Option<&ListenState>) -> String {
    let what = t.proto.describe();
    match state {
        Some(ListenState::Busy) => format!(
            "{what} is in use on {peer} (the running network's own socket): not probed; verify checks the running network"
        ),
        Some(ListenState::Failed(e)) => format!("no listener for {what} on {peer}: {e}"),
        _ => format!("no listener for {what} on {peer}"),
    }
}

/// Connect, read the facts and start the listeners on one node; Err: its rows when it cannot be
/// reached (and whether that was a refusal).
#[allow(clippy::too_many_arguments)]
async fn first_round(
    run: &Run,
    cluster: &Cluster,
    needs: &Needs,
    i: usize,
    node: Node,
    line: NodeLine,
    listens: &[Listen],
    open: &BTreeMap<String, Arc<Remote>>,
) -> Result<Reached, (Vec<Check>, bool)> {
    let start = Instant::now();
    line.phase("connect");
    let remote = match open.get(&node.name) {
        Some(r) => r.clone(),
        None => match run.connect(&node).await {
            Ok(r) => Arc::new(r),
            Err(e) => {
                line.done("unreachable");
                let mut rows = vec![crate::verify::unreachable(&node, &e).took(start)];
                rows.extend(
                    node::IDS
                        .iter()
                        .chain(["preflight.clock", "preflight.api-server"].iter())
                        .map(|id| Check::skip(id, &node.name, "node unreachable (node.ssh)")),
                );
                return Err((rows, e.is_refusal()));
            }
        },
    };
    let mut checks = vec![Check::pass(
        "node.ssh",
        &node.name,
        format!("connected to {}:{}", node.address, node.ssh_port),
    )
    .took(start)];
    line.phase("facts");
    let plan = crate::provider::node_plan(cluster, &node, &run.inputs);
    let n = cluster.nodes.len();
    // The route to a few peers shows the interface of a daemon that just dials them (weave).
    let peer_addrs: Vec<Ipv4Addr> = if needs.iface == crate::provider::needs::Iface::RouteToPeers {
        pairs::peers(n, i)
            .into_iter()
            .take(2)
            .map(|j| cluster.nodes[j].address)
            .collect()
    } else {
        vec![]
    };
    let start = Instant::now();
    let before = SystemTime::now();
    // The facts and the agent in one execution: the script's end execs the agent, which binds
    // the listeners, says `READY` and stays on the channel for rounds 2 and 3.
    let mut script = node::script(cluster, &peer_addrs);
    script.push('\n');
    script.push_str(&agent::serve_script(&run.id, listens));
    let limit = std::time::Duration::from_secs(cluster.profile.ssh.command_timeout);
    let got = async {
        let mut c = remote.converse(&script, limit).await?;
        let out = c.until(agent::READY, limit).await?;
        Ok::<_, crate::remote::RemoteError>((c, out))
    }
    .await
    .map_err(|e| format!("the script failed: {e}"));
    let after = SystemTime::now();
    // What the node printed (none when the script failed), its agent or why it has none, and
    // what the agent bound.
    let (out, agent, listening) = match got {
        Ok((c, out)) => {
            let agent = if !c.ended() && out.lines().any(|l| l == agent::READY) {
                Ok(c)
            } else {
                Err(agent::node_error(&out)
                    .unwrap_or_else(|| "the preflight agent did not start".into()))
            };
            let listening = agent::parse_listen(&out, listens);
            (Some(out), agent, listening)
        }
        Err(e) => {
            let listening = listens
                .iter()
                .map(|l| (*l, ListenState::Failed(e.clone())))
                .collect();
            (None, Err(e), listening)
        }
    };
    let pid = out.as_deref().and_then(agent::parse_pid);
    let facts = out.as_deref().map(node::parse).filter(|f| f.done);
    if let Some(f) = &facts {
        let (t0, t1) = (epoch_s(before), epoch_s(after));
        let skew = f.clock.map(|c| (c - (t0 + t1) / 2.0, (t1 - t0) / 2.0));
        checks.extend(
            node::checks(cluster, needs, &node, &plan, f)
                .into_iter()
                .chain([node::clock(&node, skew)])
                .map(|c| c.took(start)),
        );
    }
    if facts.is_none() {
        let (why, hint) = match (&out, &agent) {
            (None, Err(e)) => (e.clone(), "fix what it names, then re-run"),
            _ => (
                "the preflight facts script did not run to its end".to_string(),
                "re-run; if it persists, raise ssh.commandTimeout",
            ),
        };
        checks.extend(
            node::IDS
                .iter()
                .chain(["preflight.clock"].iter())
                .map(|id| Check::fail(id, &node.name, why.clone(), hint)),
        );
    }
    Ok(Reached {
        node,
        remote,
        line,
        facts,
        listening,
        agent,
        pid,
        checks,
    })
}

fn api_server(
    cluster: &Cluster,
    node: &Node,
    outcomes: Option<&BTreeMap<Probe, Outcome>>,
) -> Check {
    const ID: &str = "preflight.api-server";
    let Some(url) = cluster.profile.kubernetes.api_server.as_deref() else {
        return Check::skip(ID, &node.name, "no kubernetes.apiServer in the profile");
    };
    let Some((host, port)) = api_endpoint(url) else {
        return Check::skip(
            ID,
            &node.name,
            format!("kubernetes.apiServer {url:?} names no host and port to try"),
        );
    };
    match outcomes.and_then(|o| o.get(&Probe::Connect(host.clone(), port))) {
        Some(Outcome::Ok { ms }) => Check::pass(ID, &node.name, format!("tcp {host}:{port} answers ({ms} ms)")),
        Some(Outcome::Failed(e)) => Check::fail(
            ID,
            &node.name,
            format!("tcp {host}:{port}: {e}"),
            format!("the kubelet and the network's daemons on every node talk to the API server: open tcp {port} from the nodes to {host}"),
        ),
        _ => Check::skip(ID, &node.name, "not probed"),
    }
}

/// The pair checks: per traffic check id, the MTU and layer 2.
fn pair_checks(
    needs: &Needs,
    names: &[String],
    cluster: &Cluster,
    up: &[Option<Reached>],
    by_node: &BTreeMap<usize, BTreeMap<Probe, Outcome>>,
    skipped: Vec<(&'static str, Pair)>,
) -> Vec<Check> {
    let addr = |j: usize| cluster.nodes[j].address;
    let outcome = |i: usize, p: &Probe| by_node.get(&i).and_then(|o| o.get(p));
    let mut rows = Vec::new();
    let mut ids: Vec<&str> = needs.traffic.iter().map(|t| t.check).collect();
    ids.dedup();
    for id in ids {
        let traffic: Vec<&Traffic> = needs.traffic.iter().filter(|t| t.check == id).collect();
        let what = traffic
            .iter()
            .map(|t| t.proto.describe())
            .collect::<Vec<_>>()
            .join(", ");
        let mut ps: Vec<Pair> = Vec::new();
        for (i, j) in probed(names.len(), up) {
            // A pair fails when any of the check's probes failed; skipped where none was sent.
            let mut verdict = None;
            for t in &traffic {
                let l = t.proto;
                match outcome(i, &Probe::Echo(l, addr(j))) {
                    Some(Outcome::Ok { .. }) => {
                        verdict.get_or_insert(Verdict::Pass);
                    }
                    Some(Outcome::Failed(e)) => {
                        // The check names its protocol; several (weave) name the one that failed.
                        verdict = Some(Verdict::Fail(if traffic.len() > 1 {
                            format!("{}: {e}", l.describe())
                        } else {
                            e.clone()
                        }));
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(v) = verdict {
                ps.push(Pair {
                    from: i,
                    to: j,
                    verdict: v,
                });
            }
        }
        let not_sent: Vec<Pair> = skipped
            .iter()
            .filter(|(check, p)| {
                *check == id && !ps.iter().any(|q| q.from == p.from && q.to == p.to)
            })
            .map(|(_, p)| p.clone())
            .collect();
        for p in not_sent {
            if !ps.iter().any(|q| q.from == p.from && q.to == p.to) {
                ps.push(p);
            }
        }
        let whom = traffic[0].what;
        rows.extend(pairs::judge(
            &format!("preflight.{id}"),
            &what,
            names,
            &ps,
            &format!("{whom} needs {what} between every pair of nodes: open it in the nodes' firewalls (and any between them)"),
        ));
    }
    // MTU: a don't-fragment packet of the size the backend sends; a peer that does not answer a
    // plain ping is not judged (ICMP filtered).
    let mut mtu = Vec::new();
    for (i, j) in probed(names.len(), up) {
        let size = needs.wire_size(up[i].as_ref().map_or(1500, |r| uplink_mtu(needs, r)));
        let verdict = match (
            outcome(i, &Probe::Ping(addr(j), 0)),
            outcome(i, &Probe::Ping(addr(j), size)),
        ) {
            (_, Some(Outcome::Ok { .. })) => Verdict::Pass,
            (Some(Outcome::Ok { .. }), Some(Outcome::Failed(e))) => {
                Verdict::Fail(format!("{size} bytes: {e}"))
            }
            _ => Verdict::Skip(format!(
                "{} does not answer ping: the path MTU is not measured",
                names[j]
            )),
        };
        mtu.push(Pair {
            from: i,
            to: j,
            verdict,
        });
    }
    let what = match needs.pod_mtu {
        Some(m) => format!(
            "don't-fragment packets of {} bytes (pod MTU {m} + {})",
            m + needs.overhead,
            needs.overhead
        ),
        None => "don't-fragment packets of the sender's uplink MTU".into(),
    };
    rows.extend(pairs::judge(
        "preflight.mtu",
        &what,
        names,
        &mtu,
        "a link on the path has a smaller MTU than the pods' packets need: lower the pod MTU in the profile (networking.<provider>.mtu) or raise the link's MTU",
    ));
    if needs.layer2 {
        let mut l2 = Vec::new();
        for (i, j) in probed(names.len(), up) {
            let own = up[i]
                .as_ref()
                .and_then(|r| {
                    r.facts
                        .as_ref()
                        .and_then(|f| node::chosen_iface(needs, &r.node, f).ok())
                })
                .map(|(d, _)| d);
            let verdict = match outcome(i, &Probe::Path(addr(j))) {
                Some(Outcome::Path {
                    via: Some(g), dev, ..
                }) => Verdict::Fail(format!(
                    "reached through the gateway {g} on {dev}, not on the uplink's segment"
                )),
                Some(Outcome::Path { dev, .. }) if own.as_ref().is_some_and(|o| o != dev) => {
                    Verdict::Fail(format!(
                        "reached on {dev}, not on the interface the network uses ({})",
                        own.unwrap_or_default()
                    ))
                }
                // On-link and answering a ping: the kernel resolved it on the segment (its
                // neighbour entry may be gone by now where the table is under pressure).
                Some(Outcome::Path { lladdr: None, .. })
                    if matches!(
                        outcome(i, &Probe::Ping(addr(j), 0)),
                        Some(Outcome::Ok { .. })
                    ) =>
                {
                    Verdict::Pass
                }
                Some(Outcome::Path {
                    lladdr: None, dev, ..
                }) => Verdict::Fail(format!("its address does not resolve by ARP on {dev}")),
                Some(Outcome::Path { .. }) => Verdict::Pass,
                Some(Outcome::Failed(e)) => Verdict::Fail(e.clone()),
                _ => Verdict::Skip("not probed".into()),
            };
            l2.push(Pair {
                from: i,
                to: j,
                verdict,
            });
        }
        rows.extend(pairs::judge(
            "preflight.layer2",
            "one layer-2 segment",
            names,
            &l2,
            &format!(
                "{} sends pod traffic straight to each peer's address, which needs every node on one layer-2 segment: use the vxlan backend (or flannel's DirectRouting, which falls back to VXLAN across subnets)",
                cluster.provider().as_str()
            ),
        ));
    }
    rows
}

/// The (from, to) pairs whose both ends were reached.
fn probed(n: usize, up: &[Option<Reached>]) -> Vec<(usize, usize)> {
    (0..n)
        .filter(|i| up[*i].is_some())
        .flat_map(|i| pairs::peers(n, i).into_iter().map(move |j| (i, j)))
        .filter(|(_, j)| up[*j].is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_endpoints() {
        assert_eq!(
            api_endpoint("https://10.0.0.10:6443"),
            Some(("10.0.0.10".into(), 6443))
        );
        assert_eq!(
            api_endpoint("https://api.example.com"),
            Some(("api.example.com".into(), 443))
        );
        assert_eq!(
            api_endpoint("10.0.0.10:6443/"),
            Some(("10.0.0.10".into(), 6443))
        );
        assert_eq!(api_endpoint("https://[::1]:6443"), None);
        assert_eq!(api_endpoint("https://a;b:6443"), None);
    }
}
