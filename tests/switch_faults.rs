//! The switch fault matrix (issue 17): netctl SIGKILLed at every fault point of a switch, of a
//! `--resume` and of a `--rollback` (`NETCTL_FAULT=POINT[@N]`, src/fault.rs), a systemd node
//! rebooted mid-switch, and a node whose port 22 goes dark mid-switch. After each, the documented
//! recovery command alone must leave the cluster whole (docs/switch.md "Recovery"): every node on
//! one backend with no switch record and no lock, the VXLAN device iff vxlan, netctl's peer routes
//! those of the backend, no test pod left, and every resident pod (one per node) reaching every
//! other. Long-lived TCP connections between the first and last node's pods run through every
//! killed switch and its recovery, and must survive.
//!
//! One lab per kind serves every case (each recovery returns it whole); a case that leaves it
//! broken is reported and the lab rebuilt, so one failure does not hide the others. The figures
//! print on `FAULT-CASE` lines: `sudo cargo nextest run --no-capture --test switch_faults`.
//! `NETCTL_FAULT_CASES=name,name` runs only the cases named.

mod labkit;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use labkit::conn::{Conns, Pod};
use labkit::{can_run, text, Lab};

/// The runs, as an operator types them: the profile names the target (`Cluster::want`), so
/// none of them names a network.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Run {
    /// `switch`
    Switch,
    /// `switch --resume`
    Resume,
    /// `switch --rollback`
    Rollback,
}

impl Run {
    fn args(self) -> Vec<String> {
        let a: &[&str] = match self {
            // Preflight would pass on these labs (tests/preflight.rs and tests/switch.rs run it
            // in switches); here it only lengthens 33 cases about recovery.
            Run::Switch => &["switch", "--yes", "--skip-preflight"],
            Run::Resume => &["switch", "--yes", "--resume"],
            Run::Rollback => &["switch", "--yes", "--rollback"],
        };
        a.iter().map(|s| s.to_string()).collect()
    }
}

/// One case: netctl runs each killed at a fault point (the first is the switch), then the one
/// recovery command, which must succeed and leave the cluster whole on the start backend
/// (`--rollback`) or the target (`--resume`).
struct Case {
    name: &'static str,
    killed: &'static [(Run, &'static str)],
    recover: Run,
    /// A node's own gate made to fail (its pods' ICMP to it dropped) so the switch rolls back by
    /// itself; the rule goes before the recovery.
    gate_fails: bool,
}

const fn case(name: &'static str, killed: &'static [(Run, &'static str)], recover: Run) -> Case {
    Case {
        name,
        killed,
        recover,
        gate_fails: false,
    }
}

use Run::{Resume, Rollback, Switch};

/// Every point of a switch with both ways out.
const NETNS_POINTS: &[Case] = &[
    case("prepare-rollback", &[(Switch, "prepare")], Rollback),
    case("prepare-resume", &[(Switch, "prepare")], Resume),
    case("wave-rollback", &[(Switch, "wave@2")], Rollback),
    case("wave-resume", &[(Switch, "wave@2")], Resume),
    case("gate-rollback", &[(Switch, "gate@2")], Rollback),
    case("gate-resume", &[(Switch, "gate@2")], Resume),
    case("between-rollback", &[(Switch, "between-waves")], Rollback),
    case("between-resume", &[(Switch, "between-waves")], Resume),
    case("lastgate-rollback", &[(Switch, "last-gate")], Rollback),
    case("lastgate-resume", &[(Switch, "last-gate")], Resume),
    case("cleanup-rollback", &[(Switch, "cleanup")], Rollback),
    case("cleanup-resume", &[(Switch, "cleanup")], Resume),
    case("finish-rollback", &[(Switch, "finish")], Rollback),
    case("finish-resume", &[(Switch, "finish")], Resume),
];

/// The runs that continue a switch killed: its automatic rollback, a `--resume`, a `--rollback`.
const NETNS_CONTINUATIONS: &[Case] = &[
    Case {
        gate_fails: true,
        ..case("autorollback-rollback", &[(Switch, "rollback")], Rollback)
    },
    Case {
        gate_fails: true,
        ..case("autorollback-resume", &[(Switch, "rollback")], Resume)
    },
    case(
        "killedresume-rollback",
        &[(Switch, "wave"), (Resume, "wave")],
        Rollback,
    ),
    case(
        "killedresume-resume",
        &[(Switch, "wave"), (Resume, "last-gate")],
        Resume,
    ),
    case(
        "killedrollback-resume",
        &[(Switch, "between-waves"), (Rollback, "rollback")],
        Resume,
    ),
    case(
        "killedrollback-rollback",
        &[(Switch, "last-gate"), (Rollback, "rollback@2")],
        Rollback,
    ),
];

/// Every point once on real systemd, the two ways out taken in turn.
const SYSTEMD_CASES: &[Case] = &[
    case("prepare-resume", &[(Switch, "prepare")], Resume),
    case("wave-rollback", &[(Switch, "wave")], Rollback),
    case("gate-resume", &[(Switch, "gate")], Resume),
    case("between-rollback", &[(Switch, "between-waves")], Rollback),
    case("lastgate-resume", &[(Switch, "last-gate")], Resume),
    case("cleanup-rollback", &[(Switch, "cleanup")], Rollback),
    case("finish-resume", &[(Switch, "finish")], Resume),
    Case {
        gate_fails: true,
        ..case("autorollback-rollback", &[(Switch, "rollback")], Rollback)
    },
    case(
        "killedresume-rollback",
        &[(Switch, "wave"), (Resume, "gate")],
        Rollback,
    ),
    case(
        "killedrollback-resume",
        &[(Switch, "wave"), (Rollback, "rollback")],
        Resume,
    ),
];

fn other(backend: &str) -> &'static str {
    if backend == "vxlan" {
        "host-gw"
    } else {
        "vxlan"
    }
}

fn selected(name: &str) -> bool {
    match std::env::var("NETCTL_FAULT_CASES") {
        Ok(v) if !v.is_empty() => v.split(',').any(|c| c.trim() == name),
        _ => true,
    }
}

/// A lab set up with `init`, a resident pod on every node, and the backend it is whole on.
struct Cluster {
    lab: Lab,
    pods: Vec<Pod>,
    backend: String,
}

impl Cluster {
    fn up(name: &str, kind: &str, nodes: usize, octet: u8) -> Cluster {
        let lab = Lab::up(name, kind, nodes, octet);
        let o = lab.netctl(&["init", "--yes"], &lab.profile);
        assert!(o.status.success(), "init: {}", text(&o));
        let pods = (1..=nodes)
            .map(|i| Pod::make(&lab, &lab.node(i), "res"))
            .collect();
        let c = Cluster {
            lab,
            pods,
            backend: "host-gw".into(),
        };
        c.assert_whole("host-gw");
        c
    }

    /// The profile names `backend`: the network the next `switch` moves to (the profile is the
    /// desired network, docs/switch.md).
    fn want(&self, backend: &str) {
        let mut v: serde_yaml::Value = serde_yaml::from_str(&self.lab.profile_text()).unwrap();
        v["networking"]["routes"]["backend"] = backend.into();
        std::fs::write(&self.lab.profile, serde_yaml::to_string(&v).unwrap()).unwrap();
    }

    fn netctl(&self, args: &[String], fault: Option<&str>) -> Output {
        let mut c = labkit::netctl();
        c.args(args).arg("-p").arg(&self.lab.profile);
        if let Some(f) = fault {
            c.env("NETCTL_FAULT", f);
        }
        c.output().expect("netctl")
    }

    /// Every way the cluster is not whole on `backend`; empty when it is.
    fn not_whole(&self, backend: &str) -> Vec<String> {
        let mut bad = Vec::new();
        for i in 1..=self.lab.nodes {
            let node = self.lab.node(i);
            let out = self.lab.exec(&node, GATHER);
            let facts = String::from_utf8_lossy(&out.stdout).into_owned();
            bad.extend(
                node_problems(&facts, backend)
                    .into_iter()
                    .map(|p| format!("{node}: {p}")),
            );
        }
        bad.extend(self.mesh(&self.pods));
        bad
    }

    fn assert_whole(&self, backend: &str) {
        let bad = self.not_whole(backend);
        assert!(
            bad.is_empty(),
            "not whole on {backend}:\n{}",
            bad.join("\n")
        );
    }

    /// Every pod of `pods` pings every other (one process per pod, in parallel); the pairs that fail.
    fn mesh(&self, pods: &[Pod]) -> Vec<String> {
        let children: Vec<_> = pods
            .iter()
            .map(|p| {
                let ips: Vec<&str> = pods
                    .iter()
                    .filter(|q| q.ip != p.ip)
                    .map(|q| q.ip.as_str())
                    .collect();
                let script = format!(
                    "for ip in {}; do ip netns exec {} ping -q -c 2 -i 0.2 -W 2 $ip >/dev/null 2>&1 || echo $ip; done",
                    ips.join(" "),
                    p.name
                );
                let child = labkit::netctl()
                    .args(["lab", "exec", "--name", &self.lab.name, &p.node, "--"])
                    .args(["sh", "-c", &script])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("lab exec");
                (p, child)
            })
            .collect();
        let mut dead = Vec::new();
        for (p, child) in children {
            let o = child.wait_with_output().expect("mesh");
            for ip in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                dead.push(format!("pod {}/{} cannot reach {ip}", p.node, p.name));
            }
            if !o.status.success() {
                dead.push(format!("mesh from {}: {}", p.node, text(&o)));
            }
        }
        dead
    }

    /// A pod lost with its node (a reboot) is made again, as the kubelet would.
    fn remake_pod(&mut self, node: &str) {
        let i = self.pods.iter().position(|p| p.node == node).unwrap();
        self.lab.remove_pod(node, "res");
        self.pods[i] = Pod::make(&self.lab, node, "res");
    }
}

/// One round trip per node: its record, locks, VXLAN device, test pods left (namespaces and
/// host-local reservations), the peer table, its routes of protocol 211, its addresses.
const GATHER: &str = "echo @@state; cat /var/lib/netctl/state.json; \
    echo @@locks; find /run/netctl -name '*lock*' 2>/dev/null; \
    echo @@vxlan; ip -o link show netctl-vxlan 2>/dev/null; \
    echo @@testpods; ip netns list | grep '^netctl-'; \
    grep -rl '^netctl-' /var/lib/cni/networks 2>/dev/null; \
    echo @@peers; cat /usr/local/lib/netctl/routes-peers; \
    echo @@routes; ip -4 -o route show proto 211; \
    echo @@addrs; ip -4 -o addr show | awk '{print $4}'; echo @@end";

fn section<'a>(facts: &'a str, tag: &str) -> Vec<&'a str> {
    let start = format!("@@{tag}");
    facts
        .lines()
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| !l.starts_with("@@"))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// What keeps one node from being whole on `backend`, from `GATHER`'s output.
fn node_problems(facts: &str, backend: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let state = section(facts, "state").join("\n");
    match serde_json::from_str::<serde_json::Value>(&state) {
        Ok(st) => {
            if st["provider"] != "routes" || st["backend"] != backend {
                bad.push(format!(
                    "records {}/{}, not routes/{backend}",
                    st["provider"], st["backend"]
                ));
            }
            if !st["switch"].is_null() {
                bad.push(format!("a switch record is left: {}", st["switch"]));
            }
        }
        Err(e) => bad.push(format!("state.json unreadable ({e}): {state}")),
    }
    for l in section(facts, "locks") {
        bad.push(format!("lock left: {l}"));
    }
    let vxlan = !section(facts, "vxlan").is_empty();
    if vxlan != (backend == "vxlan") {
        bad.push(format!("VXLAN device present: {vxlan}"));
    }
    for l in section(facts, "testpods") {
        bad.push(format!("test pod left: {l}"));
    }
    let addrs: BTreeSet<&str> = section(facts, "addrs")
        .iter()
        .filter_map(|a| a.split('/').next())
        .collect();
    // podCIDR node-address vtep mac, one per node: the other nodes are the peers.
    let want: BTreeSet<String> = section(facts, "peers")
        .iter()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 3 && !addrs.contains(f[1]))
        .map(|f| match backend {
            "vxlan" => format!("{} via {} dev netctl-vxlan", f[0], f[2]),
            _ => format!("{} via {}", f[0], f[1]),
        })
        .collect();
    if want.is_empty() {
        bad.push("no peers in the peer table".into());
    }
    let have: BTreeSet<String> = section(facts, "routes")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| f.iter().position(|x| *x == k).and_then(|i| f.get(i + 1));
            let via = after("via").copied().unwrap_or("-");
            match after("dev") {
                Some(&"netctl-vxlan") => format!("{} via {via} dev netctl-vxlan", f[0]),
                _ => format!("{} via {via}", f[0]),
            }
        })
        .collect();
    for r in want.difference(&have) {
        bad.push(format!("route missing: {r}"));
    }
    for r in have.difference(&want) {
        bad.push(format!("route not of {backend}: {r}"));
    }
    bad
}

/// Killed by the fault it was given (SIGKILL, and netctl said which point), or why not.
fn killed_at(o: &Output, point: &str) -> Result<(), String> {
    let name = point.split('@').next().unwrap();
    let said = String::from_utf8_lossy(&o.stderr).contains(&format!("fault point {name} reached"));
    if o.status.signal() == Some(9) && said {
        Ok(())
    } else {
        Err(format!("not killed at {point}: {}", text(o)))
    }
}

/// The node's own pods' pings to it dropped: its gate (node-to-pod) fails, the mesh does not.
fn gate_rule(pod: &Pod) -> String {
    let net = pod.ip.rsplit_once('.').unwrap().0;
    format!("INPUT -s {net}.0/24 -p icmp -m comment --comment netctl-fault-test -j DROP")
}

/// Run one case from a whole cluster; the figures line, or what went wrong.
fn run_case(c: &mut Cluster, case: &Case) -> Result<String, String> {
    let start = c.backend.clone();
    let target = other(&start);
    let started = Instant::now();
    let (first, last) = (&c.pods[0], &c.pods[c.pods.len() - 1]);
    let conns = Conns::start(&c.lab, &[(first, last)], 2);
    let victim = &c.pods[1];
    if case.gate_fails {
        c.lab
            .exec_ok(&victim.node, &format!("iptables -I {}", gate_rule(victim)));
    }
    c.want(target);
    let mut killed = Vec::new();
    for (run, point) in case.killed {
        let o = c.netctl(&run.args(), Some(point));
        killed.push(killed_at(&o, point));
    }
    if case.gate_fails {
        c.lab
            .exec_ok(&victim.node, &format!("iptables -D {}", gate_rule(victim)));
    }
    let rec = Instant::now();
    let o = c.netctl(&case.recover.args(), None);
    let rec = rec.elapsed();
    let tcp = conns.stop();
    let end = match case.recover {
        Rollback => start.clone(),
        _ => target.to_string(),
    };
    let mut bad: Vec<String> = killed.into_iter().filter_map(Result::err).collect();
    if !o.status.success() {
        bad.push(format!("{:?} failed: {}", case.recover, text(&o)));
    }
    let not_whole = c.not_whole(&end);
    if !not_whole.is_empty() {
        bad.push(format!("not whole on {end}:\n  {}", not_whole.join("\n  ")));
    }
    if tcp.broken > 0 {
        bad.push(format!("connections broke: {tcp}"));
    }
    if bad.is_empty() {
        c.backend = end.clone();
        Ok(format!(
            "{start} -> {target}, killed at {:?}, {:?} to {end} in {:.1} s (case {:.1} s); {tcp}",
            case.killed,
            case.recover,
            rec.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ))
    } else {
        Err(bad.join("\n"))
    }
}

/// One lab and the cases run on it: each case starts from a whole cluster; one that fails is
/// reported and the lab rebuilt, and `finish` panics naming every failed case.
struct Bench {
    kind: &'static str,
    name: &'static str,
    nodes: usize,
    octet: u8,
    cluster: Option<Cluster>,
    ran: usize,
    failed: Vec<&'static str>,
    started: Instant,
}

impl Bench {
    fn up(kind: &'static str, name: &'static str, nodes: usize, octet: u8) -> Bench {
        Bench {
            kind,
            name,
            nodes,
            octet,
            cluster: Some(Cluster::up(name, kind, nodes, octet)),
            ran: 0,
            failed: Vec::new(),
            started: Instant::now(),
        }
    }

    fn case(&mut self, name: &'static str, f: impl FnOnce(&mut Cluster) -> Result<String, String>) {
        if !selected(name) {
            return;
        }
        self.ran += 1;
        match f(self.cluster.as_mut().unwrap()) {
            Ok(line) => eprintln!("FAULT-CASE {} {name} ok: {line}", self.kind),
            Err(why) => {
                eprintln!("FAULT-CASE {} {name} FAILED:\n{why}", self.kind);
                self.failed.push(name);
                // The old lab down first: a new one of the same name would otherwise be torn
                // down by the old one's drop.
                drop(self.cluster.take());
                self.cluster = Some(Cluster::up(self.name, self.kind, self.nodes, self.octet));
            }
        }
    }

    fn cases(&mut self, cases: &[Case]) {
        for c in cases {
            self.case(c.name, |cl| run_case(cl, c));
        }
    }

    fn finish(self) {
        eprintln!(
            "FAULT-MATRIX {} {} nodes: {} cases in {:.0} s, failed: {:?}",
            self.kind,
            self.nodes,
            self.ran,
            self.started.elapsed().as_secs_f64(),
            self.failed
        );
        assert!(
            self.failed.is_empty(),
            "{}: cases failed: {:?}",
            self.kind,
            self.failed
        );
    }
}

/// The switch to the other backend with `extra` flags, started in the background.
fn spawn_switch(c: &Cluster, extra: &[&str]) -> std::process::Child {
    c.want(other(&c.backend));
    labkit::netctl()
        .args(Switch.args())
        .args(extra)
        .arg("-p")
        .arg(&c.lab.profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netctl switch")
}

/// Wait until `node`'s record says `phase` (the switch running in `child`); Err if the switch
/// ended first or it took a minute.
fn wait_for_phase(
    c: &Cluster,
    node: &str,
    phase: &str,
    child: &mut std::process::Child,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The running switch's record, not `last_switch` (the record an earlier switch settled).
        let st = c.lab.exec(node, "cat /var/lib/netctl/state.json");
        let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
        if st["switch"]["phase"] == phase {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the switch ended ({status}) before {node} was {phase}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("{node} was never {phase}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A failed run's error line (what the report said went wrong and where the cluster is).
fn error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines()
        .filter(|l| {
            l.starts_with("error:") || l.contains("does not answer") || l.contains("back after")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The recovery command a failed run's report names; `--rollback` when it names both.
fn named_recovery(o: &Output) -> Option<Run> {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    match (
        all.contains("switch --rollback"),
        all.contains("switch --resume"),
    ) {
        (true, _) => Some(Rollback),
        (false, true) => Some(Resume),
        _ => None,
    }
}

/// After a run that could not finish by itself: the command its report names, run once, must
/// leave the cluster whole. Ok(what was run, how long it took).
fn recover_as_told(c: &mut Cluster, o: &Output, start: &str) -> Result<String, String> {
    let target = other(start);
    let Some(run) = named_recovery(o) else {
        return Err(format!("the report names no recovery command: {}", text(o)));
    };
    let t = Instant::now();
    let r = c.netctl(&run.args(), None);
    let took = t.elapsed().as_secs_f64();
    if !r.status.success() {
        return Err(format!("{run:?}, as the report said, failed: {}", text(&r)));
    }
    let end = if run == Rollback { start } else { target };
    let bad = c.not_whole(end);
    if !bad.is_empty() {
        return Err(format!(
            "after {run:?}, not whole on {end}:\n  {}",
            bad.join("\n  ")
        ));
    }
    c.backend = end.to_string();
    Ok(format!("{run:?} to {end} in {took:.1} s"))
}

/// A systemd node rebooted mid-switch (`lab restart`: a clean halt, boot, sshd back), once its
/// record says `phase`. The run either finishes or names the command that makes the cluster
/// whole; the rebooted node's pod is made again, as the kubelet would.
fn reboot_case(c: &mut Cluster, node: &str, phase: &str) -> Result<String, String> {
    let start = c.backend.clone();
    let target = other(&start);
    // Between the first and last node: the reboot is not on their path, so they must survive.
    let (first, last) = (&c.pods[0], &c.pods[c.pods.len() - 1]);
    let conns = Conns::start(&c.lab, &[(first, last)], 2);
    let t = Instant::now();
    let mut child = spawn_switch(c, &[]);
    let seen = wait_for_phase(c, node, phase, &mut child);
    let restart = seen.as_ref().ok().map(|()| {
        let r = labkit::netctl()
            .args(["lab", "restart", "--name", &c.lab.name, node])
            .output()
            .expect("lab restart");
        (r.status.success(), t.elapsed().as_secs_f64())
    });
    let o = child.wait_with_output().expect("switch");
    let took = t.elapsed().as_secs_f64();
    seen?;
    match restart {
        Some((true, at)) => eprintln!("  {node} rebooted, back at {at:.1} s"),
        _ => return Err(format!("lab restart {node} failed")),
    }
    c.remake_pod(node);
    let how = if o.status.success() || named_recovery(&o).is_none() {
        // Finished, or (the node back within the wait) rolled back by itself: nothing to run.
        let (end, how) = match o.status.success() {
            true => (target, "the switch finished"),
            false => (start.as_str(), "the run rolled back by itself"),
        };
        let bad = c.not_whole(end);
        if !bad.is_empty() {
            return Err(format!(
                "{how}, but not whole on {end}:\n  {}\nrun: {}",
                bad.join("\n  "),
                text(&o)
            ));
        }
        c.backend = end.to_string();
        how.to_string()
    } else {
        recover_as_told(c, &o, &start)?
    };
    let tcp = conns.stop();
    if tcp.broken > 0 {
        return Err(format!("connections between the other nodes broke: {tcp}"));
    }
    Ok(format!(
        "{start} -> {target}, {node} rebooted when {phase}: run {took:.1} s (exit {:?}: {}); {how}; {tcp}",
        o.status.code(),
        error_line(&o)
    ))
}

/// How long the dark-port case's switch waits for the dark node (`--wait-for-node`; the default,
/// 60 s, would make this one case a minute longer: the cost is this wait plus noticing the dead
/// connection).
const DARK_WAIT: &str = "10";

/// Port 22 of node-2 dark (a DROP in its namespace) once node-1 has switched: the run must end
/// with every reachable node whole and name the command that, once the port is back, makes the
/// cluster whole. What the dark port costs is the run's time against a clean switch's, measured
/// first on the same lab (with long-lived connections through it).
fn dark_port_case(c: &mut Cluster) -> Result<String, String> {
    let clean_to = other(&c.backend).to_string();
    let (first, last) = (&c.pods[0], &c.pods[c.pods.len() - 1]);
    let conns = Conns::start(&c.lab, &[(first, last)], 2);
    c.want(&clean_to);
    let t = Instant::now();
    let o = c.netctl(&Switch.args(), None);
    let clean = t.elapsed().as_secs_f64();
    let tcp = conns.stop();
    if !o.status.success() {
        return Err(format!("the clean switch failed: {}", text(&o)));
    }
    if tcp.broken > 0 {
        return Err(format!("the clean switch broke connections: {tcp}"));
    }
    c.backend = clean_to;
    let start = c.backend.clone();
    let target = other(&start);
    let rule = "INPUT -p tcp --dport 22 -m comment --comment netctl-fault-test -j DROP";
    let (first, last) = (&c.pods[0], &c.pods[c.pods.len() - 1]);
    let conns = Conns::start(&c.lab, &[(first, last)], 2);
    let t = Instant::now();
    let mut child = spawn_switch(c, &["--wait-for-node", DARK_WAIT]);
    let seen = wait_for_phase(c, "node-1", "switched", &mut child);
    if seen.is_ok() {
        c.lab.exec_ok("node-2", &format!("iptables -I {rule}"));
    }
    let o = child.wait_with_output().expect("switch");
    let dark = t.elapsed().as_secs_f64();
    let reachable: Vec<Pod> = c
        .pods
        .iter()
        .filter(|p| p.node != "node-2")
        .cloned()
        .collect();
    let mut bad = Vec::new();
    let mut left_on = None;
    for b in [start.as_str(), target] {
        let mut problems = Vec::new();
        for p in &reachable {
            let facts = c.lab.exec(&p.node, GATHER);
            let facts = String::from_utf8_lossy(&facts.stdout).into_owned();
            problems.extend(
                node_problems(&facts, b)
                    .into_iter()
                    .map(|x| format!("{}: {x}", p.node)),
            );
        }
        if problems.is_empty() {
            left_on = Some(b);
        } else {
            bad.push(format!(
                "reachable nodes not whole on {b}:\n  {}",
                problems.join("\n  ")
            ));
        }
    }
    c.lab.exec_ok("node-2", &format!("iptables -D {rule}"));
    seen?;
    if left_on.is_none() {
        return Err(format!("{}\nrun: {}", bad.join("\n"), text(&o)));
    }
    let dead = c.mesh(&reachable);
    if !dead.is_empty() {
        return Err(format!("reachable pods: {}", dead.join("; ")));
    }
    if o.status.success() {
        return Err(format!("the run succeeded with node-2 dark: {}", text(&o)));
    }
    let how = recover_as_told(c, &o, &start)?;
    let dark_tcp = conns.stop();
    if dark_tcp.broken > 0 {
        return Err(format!(
            "connections between reachable nodes broke: {dark_tcp}"
        ));
    }
    Ok(format!(
        "clean switch to {} {clean:.1} s ({tcp}); {start} -> {target} with node-2 dark (--wait-for-node {DARK_WAIT}): {dark:.1} s (exit {:?}: {}), reachable nodes left on {}; port back, {how}; through both: {dark_tcp}",
        start,
        o.status.code(),
        error_line(&o),
        left_on.unwrap()
    ))
}

#[test]
fn every_fault_point_is_recovered_on_netns_nodes() {
    if !can_run("every_fault_point_is_recovered_on_netns_nodes") {
        return;
    }
    let mut b = Bench::up("netns", "flt1", 4, 220);
    b.cases(NETNS_POINTS);
    b.finish();
}

/// A second netns lab, so the matrix runs in two halves beside the systemd one.
#[test]
fn killed_continuations_and_a_dark_port_are_recovered_on_netns_nodes() {
    if !can_run("killed_continuations_and_a_dark_port_are_recovered_on_netns_nodes") {
        return;
    }
    let mut b = Bench::up("netns", "flt3", 4, 222);
    b.cases(NETNS_CONTINUATIONS);
    b.case("dark-port", dark_port_case);
    b.finish();
}

#[test]
fn every_fault_point_is_recovered_on_systemd_nodes() {
    if !can_run("every_fault_point_is_recovered_on_systemd_nodes") {
        return;
    }
    let mut b = Bench::up("systemd", "flt2", 3, 221);
    b.cases(SYSTEMD_CASES);
    b.case("reboot-after-switch", |c| {
        reboot_case(c, "node-2", "switched")
    });
    b.case("reboot-while-switching", |c| {
        reboot_case(c, "node-2", "switching")
    });
    b.finish();
}
