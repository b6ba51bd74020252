//! The node's side of preflight's pair probes: a listener on every node and the probes other
//! nodes send it, with real packets of the kinds the chosen network uses (UDP, TCP, IP-in-IP,
//! don't-fragment ICMP), so a firewalled port or a smaller MTU shows before anything changes. The
//! work is done by templates/preflight/agent.py (nothing else on a node can listen on a port),
//! carried inside round 1's script as a quoted variable, never written to a file on the node.
//! The script ends by exec'ing the agent in the foreground of its SSH channel
//! (`Remote::converse`): it prints what it bound and `READY`, answers the other nodes' echoes,
//! does its own node's probes when asked on stdin (`probe_request`, answered up to `END`), and
//! ends when netctl closes its stdin, when the connection goes, or after `LISTEN_LIFETIME_S`.
//! So nothing is started that outlives netctl's channel, and nothing is left to find and stop.
//!
//! Output is parsed strictly: every spec or probe asked for gets an entry, a missing or
//! unreadable line becomes a failure that says so, and nothing read from the node becomes a path
//! or a shell word.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::shell::{self, script_file, File, Script};

/// Seconds an agent lives at most if netctl never closes its channel (a hung netctl).
pub const LISTEN_LIFETIME_S: u32 = 120;
/// The line the agent prints once it has bound its specs and reads requests.
pub const READY: &str = "@@ready";
/// The line that ends the answer to a request.
pub const END: &str = "end";

const AGENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/preflight/agent.py"
));
const SERVE: File = script_file!("preflight/serve.sh");
const KILL: File = script_file!("preflight/kill.sh");
/// What a node says for every spec or probe when it has no python3.
pub const NO_PYTHON: &str = "python3 not found on the node";

/// What an agent listens on: the traffic a network needs between nodes.
pub use crate::provider::needs::Proto as Listen;

impl Listen {
    /// The agent's name for it: "udp:8472", "tcp:179", "ipip".
    pub fn spec(self) -> String {
        match self {
            Listen::Udp(port) => format!("udp:{port}"),
            Listen::Tcp(port) => format!("tcp:{port}"),
            Listen::Ipip => "ipip".into(),
        }
    }

    /// For people: "udp 8472", "tcp 179", "IP-in-IP (protocol 4)".
    pub fn describe(self) -> String {
        match self {
            Listen::Udp(port) => format!("udp {port}"),
            Listen::Tcp(port) => format!("tcp {port}"),
            Listen::Ipip => "IP-in-IP (protocol 4)".into(),
        }
    }
}

/// How a listener started, per spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenState {
    Listening,
    /// The port is taken (EADDRINUSE): something on the node already serves it.
    Busy,
    Failed(String),
}

/// One probe from a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// To our listener on that node: it must answer (echo).
    Echo(Listen, Ipv4Addr),
    /// A plain TCP connect to a service (the API server); the host may be a DNS name.
    Connect(String, u16),
    /// ICMP echo; the whole IP packet's size with don't-fragment set, 0 for a plain small ping.
    Ping(Ipv4Addr, u32),
    /// After the other probes to that address: the route and the neighbour entry.
    Path(Ipv4Addr),
}

impl Probe {
    /// The agent's name for it, its argument and the key of its output line.
    fn spec(&self) -> String {
        match self {
            Probe::Echo(l, addr) => format!("echo:{}:{addr}", l.spec()),
            Probe::Connect(host, port) => format!("connect:{host}:{port}"),
            Probe::Ping(addr, size) => format!("ping:{addr}:{size}"),
            Probe::Path(addr) => format!("path:{addr}"),
        }
    }

    /// A host the profile let through that is not `[A-Za-z0-9.-]+` is not sent to the node.
    fn valid(&self) -> Result<(), String> {
        match self {
            Probe::Connect(host, _)
                if host.is_empty()
                    || !host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                Err(format!("an invalid host name: {host:?}"))
            }
            _ => Ok(()),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok {
        ms: u64,
    },
    /// A short reason, as the agent words it: "no answer in 2 s", "connected, no answer in
    /// 2 s", "refused", "unreachable", "no route", "closed without an answer", "a wrong answer",
    /// "too big: path MTU 1450" (this node's own route knows it) or "too big: path MTU 1400 from
    /// 10.0.0.1" (a hop said so; `Outcome::path_mtu` reads the number), "prohibited by a filter
    /// from HOP", "cannot resolve HOST: ...", or the node's own trouble: NO_PYTHON, "ip not
    /// found on the node", "cannot open a socket: not permitted".
    Failed(String),
    /// A `Probe::Path`'s facts; `lladdr` when the neighbour entry has one (it resolved by ARP).
    Path {
        dev: String,
        via: Option<Ipv4Addr>,
        src: Option<Ipv4Addr>,
        lladdr: Option<String>,
    },
}

impl Outcome {
    /// The path MTU a don't-fragment ping was refused with (`too big: path MTU N`).
    pub fn path_mtu(&self) -> Option<u32> {
        let Outcome::Failed(why) = self else {
            return None;
        };
        let rest = why.strip_prefix("too big: path MTU ")?;
        rest.split(' ').next()?.parse().ok()
    }
}

fn token(run_id: &str) -> String {
    // Run ids come from netctl itself; the charset keeps the token one word and the
    // directory one path component.
    assert!(
        !run_id.is_empty()
            && run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "preflight run id {run_id:?} is not [0-9A-Za-z-]+"
    );
    format!("netctl-pf-{run_id}")
}

/// The end of round 1's script: the agent of run `run_id` takes over the channel, binds `specs`
/// (maybe none: it still does the node's probes), says what it bound (`parse_listen`) and `READY`.
pub fn serve_script(run_id: &str, specs: &[Listen]) -> String {
    Script::new(SERVE)
        .var("TOKEN", token(run_id))
        .var("LIFETIME", LISTEN_LIFETIME_S.to_string())
        .var("AGENT", AGENT)
        .args(specs.iter().map(|s| s.spec()))
        .build()
}

/// Every spec's state; one the output does not mention failed, with the node's own error
/// (no python3) when it gave one.
pub fn parse_listen(out: &str, specs: &[Listen]) -> BTreeMap<Listen, ListenState> {
    let mut found = BTreeMap::new();
    let mut error = None;
    for t in shell::tagged(out) {
        match t.tag {
            "listen" => {
                let (spec, state) = t.rest.split_once(' ').unwrap_or((t.rest, ""));
                let Some(l) = specs.iter().find(|l| l.spec() == spec) else {
                    continue;
                };
                let state = match state.split_once(' ').unwrap_or((state, "")) {
                    ("ok", "") => ListenState::Listening,
                    ("busy", "") => ListenState::Busy,
                    ("error", msg) if !msg.is_empty() => ListenState::Failed(msg.to_string()),
                    _ => ListenState::Failed(format!("unreadable answer: {}", t.text)),
                };
                found.entry(*l).or_insert(state);
            }
            "error" => error = error.or(Some(t.rest.to_string())),
            _ => {}
        }
    }
    let missing = error.unwrap_or_else(|| "no answer from the node's listener".into());
    specs
        .iter()
        .map(|l| {
            let state = found
                .remove(l)
                .unwrap_or_else(|| ListenState::Failed(missing.clone()));
            (*l, state)
        })
        .collect()
}

/// The node's own error in `out` (`@@error ...`: no python3, an agent that failed), if any.
pub fn node_error(out: &str) -> Option<String> {
    shell::tagged(out)
        .find(|t| t.tag == "error")
        .map(|t| t.rest.to_string())
}

/// The agent's pid as it printed it in round 1 (`@@pid PID`), for `kill_script`.
pub fn parse_pid(out: &str) -> Option<u32> {
    shell::tagged(out)
        .find(|t| t.tag == "pid")
        .and_then(|t| t.rest.parse().ok())
        .filter(|pid| *pid > 1)
}

/// Kill run `run_id`'s agent, `pid`, that did not end when its stdin closed: only while that
/// process carries the run's token. `parse_kill` reads the answer.
pub fn kill_script(run_id: &str, pid: u32) -> String {
    Script::new(KILL)
        .var("TOKEN", token(run_id))
        .var("PID", pid.to_string())
        .build()
}

/// Whether the kill script killed the agent (else it was gone already).
pub fn parse_kill(out: &str) -> bool {
    shell::tagged(out).any(|t| t.tag == "killed")
}

/// A request for every probe at once from one node (answered within about 2 s whatever the
/// peers do, then `END`). Only valid probes are sent; `parse_probe` fails the others.
pub fn probe_request(probes: &[Probe]) -> String {
    let mut r: String = probes
        .iter()
        .filter(|p| p.valid().is_ok())
        .map(|p| p.spec() + "\n")
        .collect();
    r.push_str(END);
    r.push('\n');
    r
}

/// Every probe's outcome; one the output does not mention (or mentions unreadably) failed.
pub fn parse_probe(out: &str, probes: &[Probe]) -> BTreeMap<Probe, Outcome> {
    let mut found: BTreeMap<&Probe, Outcome> = BTreeMap::new();
    let mut error = None;
    for t in shell::tagged(out) {
        let (key, rest) = t.rest.split_once(' ').unwrap_or((t.rest, ""));
        let spec = match t.tag {
            "probe" => key.to_string(),
            "path" => format!("path:{key}"),
            "error" => {
                error = error.or(Some(t.rest.to_string()));
                continue;
            }
            _ => continue,
        };
        let Some(p) = probes
            .iter()
            .find(|p| p.spec() == spec && p.valid().is_ok())
        else {
            continue;
        };
        let outcome = match (t.tag, p) {
            ("path", Probe::Path(_)) => parse_path(rest),
            ("probe", _) => parse_result(rest),
            _ => None,
        }
        .unwrap_or_else(|| Outcome::Failed(format!("unreadable answer: {}", t.text)));
        found.entry(p).or_insert(outcome);
    }
    let missing = error.unwrap_or_else(|| "no answer from the node's prober".into());
    probes
        .iter()
        .map(|p| {
            let outcome = match p.valid() {
                Err(why) => Outcome::Failed(why),
                Ok(()) => found
                    .remove(p)
                    .unwrap_or_else(|| Outcome::Failed(missing.clone())),
            };
            (p.clone(), outcome)
        })
        .collect()
}

/// `ok MS` or `fail REASON`.
fn parse_result(rest: &str) -> Option<Outcome> {
    match rest.split_once(' ')? {
        ("ok", ms) => ms.parse().ok().map(|ms| Outcome::Ok { ms }),
        ("fail", why) if !why.is_empty() => Some(Outcome::Failed(why.to_string())),
        _ => None,
    }
}

/// `dev D via G|- src S|- lladdr M|-`, exactly.
fn parse_path(rest: &str) -> Option<Outcome> {
    let w: Vec<&str> = rest.split(' ').collect();
    let ["dev", dev, "via", via, "src", src, "lladdr", lladdr] = w.as_slice() else {
        return None;
    };
    if !ifname_ok(dev) {
        return None;
    }
    let addr = |v: &str| -> Option<Option<Ipv4Addr>> {
        match v {
            "-" => Some(None),
            v => v.parse().ok().map(Some),
        }
    };
    let lladdr = match *lladdr {
        "-" => None,
        m if lladdr_ok(m) => Some(m.to_string()),
        _ => return None,
    };
    Some(Outcome::Path {
        dev: dev.to_string(),
        via: addr(via)?,
        src: addr(src)?,
        lladdr,
    })
}

/// A Linux interface name as `ip` prints it: 1-15 bytes, no `/`, no blank, not `.` or `..`.
fn ifname_ok(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Hex byte pairs joined by `:` (6 for Ethernet; other link types have other lengths).
fn lladdr_ok(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    (1..=32).contains(&parts.len())
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);

    fn probes() -> Vec<Probe> {
        vec![
            Probe::Echo(Listen::Udp(8472), B),
            Probe::Echo(Listen::Tcp(179), B),
            Probe::Echo(Listen::Ipip, B),
            Probe::Connect("api.example.com".into(), 6443),
            Probe::Ping(B, 1450),
            Probe::Ping(B, 0),
            Probe::Path(B),
        ]
    }

    #[test]
    fn specs() {
        assert_eq!(Listen::Udp(8472).spec(), "udp:8472");
        assert_eq!(Listen::Tcp(179).describe(), "tcp 179");
        assert_eq!(Listen::Ipip.describe(), "IP-in-IP (protocol 4)");
        let specs: Vec<String> = probes().iter().map(Probe::spec).collect();
        assert_eq!(
            specs,
            [
                "echo:udp:8472:10.255.0.2",
                "echo:tcp:179:10.255.0.2",
                "echo:ipip:10.255.0.2",
                "connect:api.example.com:6443",
                "ping:10.255.0.2:1450",
                "ping:10.255.0.2:0",
                "path:10.255.0.2",
            ]
        );
    }

    /// The script carries the token and the agent as quoted assignments and the specs as
    /// `set --` words; the agent's text reaches python byte for byte. A request is the probes'
    /// specs, one a line, and `end`.
    #[test]
    fn builders_quote_everything() {
        let s = serve_script("20261130T000000Z-ab12", &[Listen::Udp(8472), Listen::Ipip]);
        assert!(
            s.contains("\nTOKEN=netctl-pf-20261130T000000Z-ab12\n"),
            "{s}"
        );
        assert!(s.contains("\nLIFETIME=120\n"), "{s}");
        assert!(s.contains("\nset -- udp:8472 ipip\n"), "{s}");
        assert!(s.contains(&format!("\nAGENT={}\n", shell::sh_quote(AGENT))));
        assert_eq!(
            probe_request(&probes()),
            "echo:udp:8472:10.255.0.2\necho:tcp:179:10.255.0.2\necho:ipip:10.255.0.2\nconnect:api.example.com:6443\nping:10.255.0.2:1450\nping:10.255.0.2:0\npath:10.255.0.2\nend\n"
        );
        assert_eq!(probe_request(&[]), "end\n");
        // What sh hands python as $AGENT is the file itself.
        let echo = format!(
            "{}printf '%s' \"$AGENT\"\n",
            serve_script("r1", &[])
                .split("# netctl preflight:")
                .next()
                .unwrap()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&echo)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), AGENT);
    }

    #[test]
    #[should_panic(expected = "is not [0-9A-Za-z-]+")]
    fn a_run_id_outside_the_charset_is_a_bug() {
        let _ = serve_script("../../etc", &[]);
    }

    /// A host that is not `[A-Za-z0-9.-]+` never reaches the node and fails by itself.
    #[test]
    fn a_bad_host_is_not_sent() {
        let bad = Probe::Connect("x;reboot".into(), 6443);
        let r = probe_request(&[bad.clone(), Probe::Path(B)]);
        assert_eq!(r, "path:10.255.0.2\nend\n");
        let out = "@@probe connect:x;reboot:6443 ok 1\n";
        assert_eq!(
            parse_probe(out, std::slice::from_ref(&bad))[&bad],
            Outcome::Failed("an invalid host name: \"x;reboot\"".into())
        );
    }

    /// Only a plain number above 1 is a pid: nothing else from the node reaches the kill script.
    #[test]
    fn pid_lines() {
        assert_eq!(
            parse_pid("@@listen udp:8472 ok\n@@pid 4242\n@@ready\n"),
            Some(4242)
        );
        for bad in [
            "@@pid 1\n",
            "@@pid -3\n",
            "@@pid 12 x\n",
            "@@pid $(reboot)\n",
            "",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
        let s = kill_script("r1", 4242);
        assert!(
            s.contains("\nTOKEN=netctl-pf-r1\nPID=4242\n") || s.contains("\nPID=4242\n"),
            "{s}"
        );
        assert!(parse_kill("@@killed\n") && !parse_kill("@@gone\n") && !parse_kill(""));
    }

    #[test]
    fn listen_lines() {
        let specs = [
            Listen::Udp(8472),
            Listen::Tcp(179),
            Listen::Ipip,
            Listen::Udp(4789),
            Listen::Tcp(5473),
        ];
        let out = "noise\n@@listen udp:8472 ok\n@@listen tcp:179 busy\n@@listen ipip error Operation not permitted\n\
                   @@listen udp:4789 sideways\n@@listen udp:1 ok\n@@listen udp:8472 busy\n";
        let got = parse_listen(out, &specs);
        assert_eq!(got.len(), specs.len());
        assert_eq!(
            got[&Listen::Udp(8472)],
            ListenState::Listening,
            "the first line counts"
        );
        assert_eq!(got[&Listen::Tcp(179)], ListenState::Busy);
        assert_eq!(
            got[&Listen::Ipip],
            ListenState::Failed("Operation not permitted".into())
        );
        assert_eq!(
            got[&Listen::Udp(4789)],
            ListenState::Failed("unreadable answer: @@listen udp:4789 sideways".into())
        );
        assert_eq!(
            got[&Listen::Tcp(5473)],
            ListenState::Failed("no answer from the node's listener".into())
        );
        let none = parse_listen("@@error python3 not found on the node\n", &specs);
        assert!(none
            .values()
            .all(|s| *s == ListenState::Failed(NO_PYTHON.into())));
        assert!(parse_listen("", &[]).is_empty());
    }

    #[test]
    fn probe_lines() {
        let p = probes();
        let out = "@@probe echo:udp:8472:10.255.0.2 ok 3\n\
                   @@probe echo:tcp:179:10.255.0.2 fail no answer in 2 s\n\
                   @@probe echo:ipip:10.255.0.2 ok soon\n\
                   @@probe ping:10.255.0.2:1450 fail too big: path MTU 1400 from 10.255.0.1\n\
                   @@probe ping:10.9.9.9:0 ok 1\n\
                   @@path 10.255.0.2 dev eth0 via - src 10.255.0.1 lladdr 02:aa:bb:cc:dd:0e\n";
        let got = parse_probe(out, &p);
        assert_eq!(got.len(), p.len());
        assert_eq!(got[&p[0]], Outcome::Ok { ms: 3 });
        assert_eq!(got[&p[1]], Outcome::Failed("no answer in 2 s".into()));
        assert_eq!(
            got[&p[2]],
            Outcome::Failed("unreadable answer: @@probe echo:ipip:10.255.0.2 ok soon".into())
        );
        let missing = Outcome::Failed("no answer from the node's prober".into());
        assert_eq!(got[&p[3]], missing);
        assert_eq!(
            got[&p[4]],
            Outcome::Failed("too big: path MTU 1400 from 10.255.0.1".into())
        );
        assert_eq!(
            got[&p[5]], missing,
            "another address's ping is not this one"
        );
        assert_eq!(
            got[&p[6]],
            Outcome::Path {
                dev: "eth0".into(),
                via: None,
                src: Some(Ipv4Addr::new(10, 255, 0, 1)),
                lladdr: Some("02:aa:bb:cc:dd:0e".into()),
            }
        );
        let none = parse_probe("@@error python3 not found on the node\n", &p);
        assert!(none
            .values()
            .all(|o| *o == Outcome::Failed(NO_PYTHON.into())));
    }

    #[test]
    fn path_mtu_of_a_refused_ping() {
        let mtu = |why: &str| Outcome::Failed(why.into()).path_mtu();
        assert_eq!(mtu("too big: path MTU 1400 from 10.0.0.1"), Some(1400));
        assert_eq!(mtu("too big: path MTU 1450"), Some(1450));
        assert_eq!(mtu("too big: path MTU unknown"), None);
        assert_eq!(mtu("no answer in 2 s"), None);
        assert_eq!(Outcome::Ok { ms: 1 }.path_mtu(), None);
    }

    #[test]
    fn path_lines_are_read_strictly() {
        let p = Probe::Path(B);
        let path = |line: &str| {
            parse_probe(
                &format!("@@path 10.255.0.2 {line}\n"),
                std::slice::from_ref(&p),
            )[&p]
                .clone()
        };
        assert_eq!(
            path("dev ens3 via 10.0.0.1 src - lladdr -"),
            Outcome::Path {
                dev: "ens3".into(),
                via: Some(Ipv4Addr::new(10, 0, 0, 1)),
                src: None,
                lladdr: None,
            }
        );
        for bad in [
            "dev ../x via - src - lladdr -",
            "dev eth0 via gw src - lladdr -",
            "dev eth0 via - src - lladdr 02:aa:bb:cc:dd:e",
            "dev eth0 via - src - lladdr zz:aa:bb:cc:dd:ee",
            "dev eth0 via - src - lladdr - extra",
            "dev a-name-too-long-for-linux via - src - lladdr -",
            "via - dev eth0 src - lladdr -",
        ] {
            assert!(
                matches!(path(bad), Outcome::Failed(ref m) if m.starts_with("unreadable answer")),
                "{bad}: {:?}",
                path(bad)
            );
        }
        assert_eq!(
            parse_probe(
                "@@probe path:10.255.0.2 fail no route\n",
                std::slice::from_ref(&p)
            )[&p],
            Outcome::Failed("no route".into())
        );
    }

    use std::time::Duration;

    /// A node's agent as round 1 leaves it: `serve_script` run by `sh -s` (in the namespaces of
    /// process `node` when given, with `env -i PATH=$path` when given), its stdin kept open as
    /// netctl's channel keeps it. Killed on drop if it still runs.
    struct Agent {
        child: std::process::Child,
        out: std::io::BufReader<std::process::ChildStdout>,
        /// What it printed up to `READY` (or its end).
        first: String,
    }

    impl Agent {
        fn start(node: Option<u32>, path: Option<&str>, script: &str) -> Agent {
            use std::io::Write;
            let mut cmd = match node {
                Some(pid) => {
                    let mut c = std::process::Command::new("nsenter");
                    c.args(["-t", &pid.to_string(), "-n", "-m", "env"]);
                    c
                }
                None => std::process::Command::new("env"),
            };
            if let Some(path) = path {
                cmd.args(["-i", &format!("PATH={path}")]);
            }
            let mut child = cmd
                .args(["/bin/sh", "-s"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .as_mut()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut a = Agent {
                child,
                out,
                first: String::new(),
            };
            a.first = a.read_until(READY);
            a
        }

        fn serve(node: u32, run: &str, specs: &[Listen]) -> Agent {
            Agent::start(Some(node), None, &serve_script(run, specs))
        }

        /// Lines up to and including `marker`, or all to its end (`None`: to its end).
        fn read_until(&mut self, marker: impl Into<Option<&'static str>>) -> String {
            let marker = marker.into();
            use std::io::BufRead;
            let mut got = String::new();
            loop {
                let mut line = String::new();
                if self.out.read_line(&mut line).unwrap() == 0 {
                    return got;
                }
                got.push_str(&line);
                if marker.is_some_and(|m| line.trim_end_matches('\n') == m) {
                    return got;
                }
            }
        }

        fn listening(&self, specs: &[Listen]) -> BTreeMap<Listen, ListenState> {
            parse_listen(&self.first, specs)
        }

        fn ask(&mut self, probes: &[Probe]) {
            use std::io::Write;
            let stdin = self.child.stdin.as_mut().unwrap();
            stdin.write_all(probe_request(probes).as_bytes()).unwrap();
            stdin.flush().unwrap();
        }

        /// Its answer to a request for `probes`, the outcomes and the time taken.
        fn probe(&mut self, probes: &[Probe]) -> (String, BTreeMap<Probe, Outcome>, Duration) {
            let t = std::time::Instant::now();
            self.ask(probes);
            let out = self.read_until(END);
            let got = parse_probe(&out, probes);
            (out, got, t.elapsed())
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Its stdin closed (netctl's round 3): it ends within 3 s, with this status.
        fn end(mut self) -> i32 {
            drop(self.child.stdin.take());
            self.ended_within(Duration::from_secs(3))
        }

        fn ended_within(&mut self, limit: Duration) -> i32 {
            let t = std::time::Instant::now();
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status.code().unwrap_or(-1);
                }
                assert!(t.elapsed() < limit, "the agent did not end in {limit:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Runs `script` with sh on stdin to its end, with `env -i PATH=$path`.
    fn run_sh(path: &str, script: &str) -> String {
        let mut a = Agent::start(None, Some(path), script);
        let rest = a.read_until(None);
        format!("{}{rest}", a.first)
    }

    /// Without python3 the script says so and ends: every spec fails saying so, and so does
    /// every probe (the node has no agent to ask: `node_error`).
    #[test]
    fn no_python3_every_spec_fails() {
        let empty = crate::tempdir::PrivateDir::new("pfag").unwrap();
        let path = empty.path().to_str().unwrap();
        let specs = [Listen::Udp(8472), Listen::Ipip];
        let out = run_sh(path, &serve_script("np", &specs));
        assert_eq!(out, format!("@@error {NO_PYTHON}\n"));
        let got = parse_listen(&out, &specs);
        assert_eq!(got.len(), 2);
        assert!(got
            .values()
            .all(|s| *s == ListenState::Failed(NO_PYTHON.into())));
        assert_eq!(node_error(&out), Some(NO_PYTHON.to_string()));
        assert_eq!(node_error("@@listen udp:8472 ok\n@@ready\n"), None);
    }

    /// The path facts come from `ip` (run by hand, not through python's subprocess): with it,
    /// the route to this machine's loopback; without it, a failure that says so.
    #[test]
    fn path_facts_come_from_ip_or_say_it_is_missing() {
        let python = ["/usr/bin/python3", "/bin/python3"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("python3");
        let bin = crate::tempdir::PrivateDir::new("pfag").unwrap();
        std::os::unix::fs::symlink(python, bin.path().join("python3")).unwrap();
        let path = Probe::Path(Ipv4Addr::LOCALHOST);
        let run = format!("t174-{}", std::process::id());
        let script = serve_script(&run, &[]);
        for (dirs, want_lo) in [
            (bin.path().to_str().unwrap(), false),
            ("/usr/sbin:/usr/bin:/sbin:/bin", true),
        ] {
            let mut a = Agent::start(None, Some(dirs), &script);
            assert!(a.first.ends_with(&format!("{READY}\n")), "{}", a.first);
            let (out, got, _) = a.probe(std::slice::from_ref(&path));
            if want_lo {
                assert!(
                    matches!(&got[&path], Outcome::Path { dev, .. } if dev == "lo"),
                    "{out}"
                );
            } else {
                assert_eq!(
                    got[&path],
                    Outcome::Failed("ip not found on the node".into()),
                    "{out}"
                );
            }
            assert_eq!(a.end(), 0);
        }
    }

    mod real {
        //! As root, in two network namespaces joined by a veth pair: agents in a and b, as
        //! round 1 leaves them. Each test has its own namespaces, addresses, ports and run ids.

        use super::*;
        use std::time::Instant;

        fn root() -> bool {
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            if !root {
                eprintln!("skipped: needs root (network namespaces, raw sockets)");
            }
            root
        }

        fn ip(args: &[&str]) -> String {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        }

        /// Namespaces pfag-PID-X-a and -b, 10.255.X.1 and .2, or with a router namespace -r
        /// between them; deleted on drop. A process sleeps in each of a and b, so that scripts
        /// enter its namespaces as a node's shell would be in them.
        struct Pair {
            a: String,
            b: String,
            router: Option<String>,
            a_addr: Ipv4Addr,
            b_addr: Ipv4Addr,
            x: u8,
            holders: Vec<std::process::Child>,
        }

        /// A process in network namespace `ns`.
        fn hold(ns: &str) -> std::process::Child {
            std::process::Command::new("ip")
                .args(["netns", "exec", ns, "sleep", "600"])
                .spawn()
                .unwrap()
        }

        /// A veth pair between the namespaces `a.0` and `b.0`, its ends named `a.1` and `b.1`,
        /// addressed `a.2` and `b.2`, up.
        fn link(a: (&str, &str, String), b: (&str, &str, String)) {
            ip(&[
                "-n", a.0, "link", "add", a.1, "type", "veth", "peer", "name", b.1, "netns", b.0,
            ]);
            for (ns, dev, addr) in [a, b] {
                ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
                ip(&["-n", ns, "link", "set", dev, "up"]);
                ip(&["-n", ns, "link", "set", "lo", "up"]);
            }
        }

        impl Pair {
            fn new(x: u8, router: bool) -> Pair {
                let id = format!("pfag-{}-{x}", std::process::id());
                let mut p = Pair {
                    a: format!("{id}-a"),
                    b: format!("{id}-b"),
                    router: router.then(|| format!("{id}-r")),
                    a_addr: Ipv4Addr::new(10, 255, x, 1),
                    b_addr: Ipv4Addr::new(10, 255, x + u8::from(router), 2),
                    x,
                    holders: Vec::new(),
                };
                for ns in [Some(&p.a), Some(&p.b), p.router.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    ip(&["netns", "add", ns]);
                }
                p.holders = vec![hold(&p.a), hold(&p.b)];
                p
            }

            /// A process in a's namespaces (`ip netns exec` execs sleep, so it is the child).
            fn a_node(&self) -> u32 {
                self.holders[0].id()
            }

            fn b_node(&self) -> u32 {
                self.holders[1].id()
            }

            /// a and b on one segment.
            fn up(x: u8) -> Pair {
                let p = Pair::new(x, false);
                link(
                    (&p.a, "eth0", format!("{}/24", p.a_addr)),
                    (&p.b, "eth0", format!("{}/24", p.b_addr)),
                );
                p
            }

            /// a on 10.255.X.0/24, b on 10.255.X+1.0/24, the router .254 on both, forwarding.
            fn routed(x: u8) -> Pair {
                let p = Pair::new(x, true);
                let r = p.router.as_deref().unwrap();
                let y = x + 1;
                link(
                    (&p.a, "eth0", format!("{}/24", p.a_addr)),
                    (r, "eth0", format!("10.255.{x}.254/24")),
                );
                link(
                    (&p.b, "eth0", format!("{}/24", p.b_addr)),
                    (r, "eth1", format!("10.255.{y}.254/24")),
                );
                ip(&[
                    "-n",
                    &p.a,
                    "route",
                    "add",
                    &format!("10.255.{y}.0/24"),
                    "via",
                    &format!("10.255.{x}.254"),
                ]);
                ip(&[
                    "-n",
                    &p.b,
                    "route",
                    "add",
                    &format!("10.255.{x}.0/24"),
                    "via",
                    &format!("10.255.{y}.254"),
                ]);
                let fwd = std::process::Command::new("ip")
                    .args(["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
                    .status()
                    .unwrap();
                assert!(fwd.success());
                p
            }

            fn run_id(&self, n: u8) -> String {
                format!("t{}-{n}-{}", self.x, std::process::id())
            }

            /// An agent on b listening on `specs`, each of them bound.
            fn listen(&self, run: &str, specs: &[Listen]) -> Agent {
                let b = Agent::serve(self.b_node(), run, specs);
                let got = b.listening(specs);
                assert!(
                    got.values().all(|s| *s == ListenState::Listening),
                    "{got:?}"
                );
                b
            }

            /// The agent on a that probes.
            fn prober(&self, run: &str) -> Agent {
                Agent::serve(self.a_node(), run, &[])
            }
        }

        impl Drop for Pair {
            fn drop(&mut self) {
                for child in &mut self.holders {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                for ns in [Some(&self.a), Some(&self.b), self.router.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "del", ns])
                        .status();
                }
            }
        }

        /// Processes whose command line has this run's token as a word of its own.
        fn holders(run: &str) -> Vec<u32> {
            let token = token(run);
            let mut found = Vec::new();
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|p| p.parse().ok()) else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                    continue;
                };
                if cmdline.split(|b| *b == 0).any(|w| w == token.as_bytes()) {
                    found.push(pid);
                }
            }
            found.sort();
            found
        }

        /// Waits (8 s at most) until `n` processes carry `run`'s token: its agents and probers.
        fn wait_for_holders(run: &str, n: usize) {
            let t = Instant::now();
            while holders(run).len() < n {
                assert!(
                    t.elapsed() < Duration::from_secs(8),
                    "no probe child: {:?}",
                    holders(run)
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        fn assert_gone(run: &str) {
            assert_eq!(
                holders(run),
                Vec::<u32>::new(),
                "a process of {run} is left"
            );
        }

        /// Echoes of every kind, pings, a connect and the path pass; the agent is the only
        /// process of its run, listens only while it runs, and the end of its stdin ends it
        /// (status 0) and leaves nothing.
        #[test]
        fn echoes_pass_and_the_end_of_stdin_leaves_nothing() {
            if !root() {
                return;
            }
            let p = Pair::up(161);
            let run = p.run_id(1);
            let specs = [Listen::Udp(47001), Listen::Tcp(47002), Listen::Ipip];
            let b = p.listen(&run, &specs);
            assert_eq!(holders(&run), [b.pid()]);
            let listening = || ip(&["netns", "exec", &p.b, "ss", "-Hlnut"]);
            assert!(listening().contains(":47001"), "{}", listening());

            let mut a = p.prober(&run);
            let to = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47001), to),
                Probe::Echo(Listen::Tcp(47002), to),
                Probe::Echo(Listen::Ipip, to),
                Probe::Ping(to, 0),
                Probe::Ping(to, 1500),
                Probe::Connect(to.to_string(), 47002),
                Probe::Path(to),
            ];
            let (out, got, took) = a.probe(&probes);
            // Every probe is answered: none waits out its 2 s.
            assert!(took < Duration::from_millis(1900), "{took:?} {out}");
            for probe in &probes[..6] {
                assert!(matches!(got[probe], Outcome::Ok { .. }), "{probe:?}: {out}");
            }
            let link = ip(&["-n", &p.b, "-o", "link", "show", "eth0"]);
            let mac = link
                .split_once("link/ether ")
                .unwrap()
                .1
                .split(' ')
                .next()
                .unwrap();
            assert_eq!(
                got[&Probe::Path(to)],
                Outcome::Path {
                    dev: "eth0".into(),
                    via: None,
                    src: Some(p.a_addr),
                    lladdr: Some(mac.to_string()),
                }
            );

            assert_eq!(a.end(), 0);
            assert_eq!(b.end(), 0);
            assert_gone(&run);
            assert!(!listening().contains(":47001"), "{}", listening());
        }

        #[test]
        fn a_dropped_port_fails_and_a_taken_one_is_busy() {
            if !root() {
                return;
            }
            let p = Pair::up(162);
            let (run, other) = (p.run_id(1), p.run_id(2));
            let b = p.listen(&run, &[Listen::Udp(47011), Listen::Tcp(47012)]);
            let ipt = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &p.b, "iptables", "-A", "INPUT", "-p", "udp",
                ])
                .args(["--dport", "47011", "-j", "DROP"])
                .status()
                .unwrap();
            assert!(ipt.success());
            let specs = [Listen::Udp(47011), Listen::Tcp(47012), Listen::Udp(47013)];
            let b2 = Agent::serve(p.b_node(), &other, &specs);
            let taken = b2.listening(&specs);
            assert_eq!(taken[&Listen::Udp(47011)], ListenState::Busy);
            assert_eq!(taken[&Listen::Tcp(47012)], ListenState::Busy);
            assert_eq!(taken[&Listen::Udp(47013)], ListenState::Listening);

            let to = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47011), to),
                Probe::Echo(Listen::Tcp(47012), to),
                Probe::Echo(Listen::Udp(47014), to),
                Probe::Echo(Listen::Udp(47013), to),
            ];
            let mut a = p.prober(&run);
            let (out, got, took) = a.probe(&probes);
            // Two probes get no answer: at once they take 2 s, one after the other 4 s.
            assert!(took < Duration::from_millis(3900), "{took:?}");
            assert_eq!(
                got[&probes[0]],
                Outcome::Failed("no answer in 2 s".into()),
                "{out}"
            );
            assert!(matches!(got[&probes[1]], Outcome::Ok { .. }), "{out}");
            assert_eq!(got[&probes[2]], Outcome::Failed("refused".into()));
            // Another run's listener takes the request for noise.
            assert_eq!(got[&probes[3]], Outcome::Failed("no answer in 2 s".into()));
            for agent in [a, b, b2] {
                assert_eq!(agent.end(), 0);
            }
            assert_gone(&run);
            assert_gone(&other);
        }

        /// b's link takes 1280 bytes: a don't-fragment ping bigger than that is lost, one bigger
        /// than a's own link does not leave a, the rest pass; what has no route fails at once.
        #[test]
        fn a_df_ping_bigger_than_the_peer_mtu_fails() {
            if !root() {
                return;
            }
            let p = Pair::up(163);
            ip(&["-n", &p.b, "link", "set", "eth0", "mtu", "1280"]);
            let to = p.b_addr;
            let probes = [
                Probe::Ping(to, 1400),
                Probe::Ping(to, 1280),
                Probe::Ping(to, 0),
                Probe::Ping(to, 1501),
                Probe::Ping(Ipv4Addr::new(10, 254, 0, 1), 0),
                Probe::Connect("10.254.0.1".into(), 443),
                // A name: resolved beside the other probes (a's own loopback, nothing there).
                Probe::Connect("localhost".into(), 47051),
            ];
            let mut a = p.prober(&p.run_id(1));
            let (out, got, took) = a.probe(&probes);
            assert!(took < Duration::from_millis(3900), "{took:?}");
            assert_eq!(
                got[&probes[0]],
                Outcome::Failed("no answer in 2 s".into()),
                "{out}"
            );
            assert!(matches!(got[&probes[1]], Outcome::Ok { .. }), "{out}");
            assert!(matches!(got[&probes[2]], Outcome::Ok { .. }), "{out}");
            assert_eq!(
                got[&probes[3]],
                Outcome::Failed("too big: path MTU 1500".into())
            );
            assert_eq!(got[&probes[4]], Outcome::Failed("no route".into()));
            assert_eq!(got[&probes[5]], Outcome::Failed("no route".into()));
            assert_eq!(got[&probes[6]], Outcome::Failed("refused".into()));
            assert_eq!(a.end(), 0);
        }

        /// b behind a router whose link to b takes 1400 bytes: a don't-fragment ping bigger than
        /// that is answered by the router's "fragmentation needed", which names the path MTU and
        /// the hop; the path goes through the gateway, and b has no neighbour entry on a's link.
        #[test]
        fn a_router_names_the_path_mtu_and_the_path_its_gateway() {
            if !root() {
                return;
            }
            let p = Pair::routed(170);
            let r = p.router.as_deref().unwrap();
            ip(&["-n", r, "link", "set", "eth1", "mtu", "1400"]);
            ip(&["-n", &p.b, "link", "set", "eth0", "mtu", "1400"]);
            let run = p.run_id(1);
            let b = p.listen(&run, &[Listen::Udp(47041)]);
            let to = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47041), to),
                Probe::Ping(to, 1500),
                Probe::Ping(to, 1400),
                Probe::Path(to),
            ];
            let mut a = p.prober(&run);
            let (out, got, took) = a.probe(&probes);
            // Every probe is answered: none waits out its 2 s.
            assert!(took < Duration::from_millis(1900), "{took:?}");
            assert!(matches!(got[&probes[0]], Outcome::Ok { .. }), "{out}");
            assert_eq!(
                got[&probes[1]],
                Outcome::Failed("too big: path MTU 1400 from 10.255.170.254".into())
            );
            assert!(matches!(got[&probes[2]], Outcome::Ok { .. }), "{out}");
            assert_eq!(
                got[&probes[3]],
                Outcome::Path {
                    dev: "eth0".into(),
                    via: Some(Ipv4Addr::new(10, 255, 170, 254)),
                    src: Some(p.a_addr),
                    lladdr: None,
                }
            );
            assert_eq!(a.end(), 0);
            assert_eq!(b.end(), 0);
            assert_gone(&run);
        }

        /// One agent, request after request: a refused port, pings with and without
        /// don't-fragment, too big, a connect; also when started with SIGCHLD ignored, as bash
        /// passes on its `trap '' CHLD` through exec (dash does not): the agent still waits for
        /// its probe children itself.
        #[test]
        fn an_agent_takes_request_after_request() {
            if !root() {
                return;
            }
            let p = Pair::up(171);
            let run = p.run_id(1);
            let b = p.listen(&run, &[Listen::Udp(47061), Listen::Tcp(47062)]);
            let to = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47061), to),
                Probe::Echo(Listen::Tcp(47062), to),
                Probe::Echo(Listen::Udp(47063), to),
                Probe::Ping(to, 0),
                Probe::Ping(to, 1500),
                Probe::Ping(to, 1501),
                Probe::Connect(to.to_string(), 47062),
            ];
            let serve = serve_script(&run, &[]);
            let trapped = format!(
                "exec bash -c {}\n",
                shell::sh_quote(&format!("trap '' CHLD\n{serve}"))
            );
            for script in [serve, trapped] {
                let mut a = Agent::start(Some(p.a_node()), None, &script);
                for round in 1..=3 {
                    let (out, got, _) = a.probe(&probes);
                    for i in [0, 1, 3, 4, 6] {
                        assert!(
                            matches!(got[&probes[i]], Outcome::Ok { .. }),
                            "round {round}, {:?}: {out}",
                            probes[i]
                        );
                    }
                    assert_eq!(got[&probes[2]], Outcome::Failed("refused".into()));
                    assert_eq!(
                        got[&probes[5]],
                        Outcome::Failed("too big: path MTU 1500".into())
                    );
                }
                assert_eq!(a.end(), 0);
            }
            assert_eq!(b.end(), 0);
            assert_gone(&run);
        }

        /// While a's agent probes b (a probe that waits out its 2 s keeps its child busy), it
        /// answers b's echoes, which b's agent sends.
        #[test]
        fn an_agent_probes_while_it_answers_echoes() {
            if !root() {
                return;
            }
            let p = Pair::up(172);
            let run = p.run_id(1);
            let specs = [Listen::Udp(47071), Listen::Tcp(47072), Listen::Ipip];
            let mut a = Agent::serve(p.a_node(), &run, &specs);
            let mut b = p.listen(&run, &specs);
            let echoes = |to| {
                [
                    Probe::Echo(Listen::Udp(47071), to),
                    Probe::Echo(Listen::Tcp(47072), to),
                    Probe::Echo(Listen::Ipip, to),
                ]
            };
            let mut a_probes = echoes(p.b_addr).to_vec();
            // Nobody has this address: the ping waits out its 2 s.
            a_probes.push(Probe::Ping(Ipv4Addr::new(10, 255, 172, 77), 0));
            let b_probes = echoes(p.a_addr);
            a.ask(&a_probes);
            // Both agents, and a's probing child.
            wait_for_holders(&run, 3);
            let (b_out, b_got, _) = b.probe(&b_probes);
            let a_out = a.read_until(END);
            let a_got = parse_probe(&a_out, &a_probes);
            for (out, got) in [(&a_out, &a_got), (&b_out, &b_got)] {
                for (probe, outcome) in got.iter().filter(|(p, _)| matches!(p, Probe::Echo(..))) {
                    assert!(matches!(outcome, Outcome::Ok { .. }), "{probe:?}: {out}");
                }
            }
            assert!(matches!(a_got[&a_probes[3]], Outcome::Failed(_)), "{a_out}");
            assert_eq!(a.end(), 0);
            assert_eq!(b.end(), 0);
            assert_gone(&run);
        }

        /// netctl stopped mid-round (Ctrl-C, a lost connection): the end of its stdin ends the
        /// agent and the child probing for it; a hangup (sshd's when the channel goes) does too.
        #[test]
        fn the_end_of_stdin_or_a_hangup_ends_the_agent_and_its_prober() {
            if !root() {
                return;
            }
            let p = Pair::up(173);
            let run = p.run_id(1);
            let waits = [Probe::Ping(Ipv4Addr::new(10, 255, 173, 77), 0)];
            let mut a = p.prober(&run);
            a.ask(&waits);
            wait_for_holders(&run, 2);
            assert_eq!(a.end(), 0);
            assert_gone(&run);

            let mut a = p.prober(&run);
            a.ask(&waits);
            wait_for_holders(&run, 2);
            // SAFETY: kill has no memory preconditions; the pid is the agent this test started.
            assert_eq!(unsafe { libc::kill(a.pid() as i32, libc::SIGHUP) }, 0);
            a.ended_within(Duration::from_secs(3));
            let t = Instant::now();
            while !holders(&run).is_empty() {
                assert!(t.elapsed() < Duration::from_secs(3), "{:?}", holders(&run));
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// netctl hung with the channel open: the agent ends at its lifetime all the same.
        #[test]
        fn an_agent_ends_by_itself() {
            if !root() {
                return;
            }
            let p = Pair::up(164);
            let run = p.run_id(1);
            let script = serve_script(&run, &[Listen::Udp(47021)]);
            let short = script.replacen("\nLIFETIME=120\n", "\nLIFETIME=1\n", 1);
            assert_ne!(script, short);
            let mut b = Agent::start(Some(p.b_node()), None, &short);
            assert_eq!(
                b.listening(&[Listen::Udp(47021)])[&Listen::Udp(47021)],
                ListenState::Listening
            );
            assert_eq!(b.ended_within(Duration::from_secs(4)), 0);
            assert_gone(&run);
        }
    }
}
