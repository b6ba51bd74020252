//! The node's side of preflight's pair probes: a short-lived listener on every node and the
//! probes other nodes send it, with real packets of the kinds the chosen network uses (UDP, TCP,
//! IP-in-IP, don't-fragment ICMP), so a firewalled port or a smaller MTU shows before anything
//! changes. The work is done by templates/preflight/agent.py (nothing else on a node can listen
//! on a port), carried inside the sh scripts built here as a quoted variable, never written to a
//! file on the node. A listener outlives its SSH session (it has to be there when the other
//! nodes probe), so it is bounded three ways: `stop_script` ends it, it ends itself when its
//! directory goes, and at the latest after `LISTEN_LIFETIME_S`. The listener also runs its own
//! node's probes when probe.sh asks it through two FIFOs in its directory (a fork of a python
//! already loaded, where a python start per node was most of a probe round's cost); without a
//! listener (host-gw has no port to listen on) probe.sh starts a python of its own.
//!
//! Output is parsed strictly: every spec or probe asked for gets an entry, a missing or
//! unreadable line becomes a failure that says so, and nothing read from the node becomes a path
//! or a shell word.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::shell::{self, script_file, File, Script};

/// Seconds a listener lives at most if netctl never stops it (netctl died).
pub const LISTEN_LIFETIME_S: u32 = 120;

const AGENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/preflight/agent.py"
));
const LISTEN: File = script_file!("preflight/listen.sh");
const PROBE: File = script_file!("preflight/probe.sh");
const STOP: File = script_file!("preflight/stop.sh");
/// `has_token`, for probe.sh and stop.sh.
const TOKEN_LIB: File = script_file!("preflight/token.sh");
/// Each run's listener keeps its pid in RUNS/<run id> (root only); agent.py makes it.
const RUNS: &str = "/run/netctl/preflight";
/// What a node says for every spec or probe when it has no python3.
pub const NO_PYTHON: &str = "python3 not found on the node";

/// What a listener takes on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Listen {
    Udp(u16),
    Tcp(u16),
    /// IP protocol 4, through a raw socket.
    Ipip,
}

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

/// Start run `run_id`'s listener for `specs` (one round trip): it binds them all before it
/// detaches, so the answer (`parse_listen`) says what is bound.
pub fn listen_script(run_id: &str, specs: &[Listen]) -> String {
    Script::new(LISTEN)
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

/// Every probe at once from one node (one round trip, about 2 s at most whatever the peers do),
/// by the node's listener of this run where it runs one (no second python start), else by a
/// python of its own.
pub fn probe_script(run_id: &str, probes: &[Probe]) -> String {
    Script::new(PROBE)
        .include(TOKEN_LIB)
        .var("TOKEN", token(run_id))
        .var("DIR", run_dir(run_id))
        .var("AGENT", AGENT)
        .args(probes.iter().filter(|p| p.valid().is_ok()).map(Probe::spec))
        .build()
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

/// Stop run `run_id`'s listener (its pid only while that process carries this run's token) and
/// remove its directory. Idempotent.
pub fn stop_script(run_id: &str) -> String {
    Script::new(STOP)
        .include(TOKEN_LIB)
        .var("TOKEN", token(run_id))
        .var("DIR", run_dir(run_id))
        .build()
}

/// Run `run_id`'s directory on a node: its listener's pid and FIFOs.
fn run_dir(run_id: &str) -> String {
    // The id is checked where the token is made; the directory is one path component too.
    let _checked = token(run_id);
    format!("{RUNS}/{run_id}")
}

/// `Err` names what the stop left on the node (for preflight.cleanup).
pub fn parse_stop(out: &str) -> Result<(), String> {
    let mut stopped = false;
    let mut left = Vec::new();
    for t in shell::tagged(out) {
        match t.tag {
            "stopped" => stopped = true,
            "left" => left.push(t.rest.to_string()),
            _ => {}
        }
    }
    if !left.is_empty() {
        return Err(left.join(", "));
    }
    if stopped {
        Ok(())
    } else {
        Err("no answer from the stop script".into())
    }
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

    /// The scripts carry the token and the agent as quoted assignments and the specs as `set --`
    /// words; the agent's text reaches python byte for byte.
    #[test]
    fn builders_quote_everything() {
        let s = listen_script("20261130T000000Z-ab12", &[Listen::Udp(8472), Listen::Ipip]);
        assert!(
            s.contains("\nTOKEN=netctl-pf-20261130T000000Z-ab12\n"),
            "{s}"
        );
        assert!(s.contains("\nLIFETIME=120\n"), "{s}");
        assert!(s.contains("\nset -- udp:8472 ipip\n"), "{s}");
        assert!(s.contains(&format!("\nAGENT={}\n", shell::sh_quote(AGENT))));
        let s = probe_script("r1", &probes());
        assert!(s.contains("\nTOKEN=netctl-pf-r1\n"), "{s}");
        assert!(s.contains("\nset -- echo:udp:8472:10.255.0.2 echo:tcp:179:10.255.0.2 echo:ipip:10.255.0.2 connect:api.example.com:6443 ping:10.255.0.2:1450 ping:10.255.0.2:0 path:10.255.0.2\n"), "{s}");
        let s = stop_script("r1");
        assert!(
            s.contains("\nTOKEN=netctl-pf-r1\nDIR=/run/netctl/preflight/r1\n"),
            "{s}"
        );
        // What sh hands python as $AGENT is the file itself.
        let echo = format!(
            "{}printf '%s' \"$AGENT\"\n",
            listen_script("r1", &[])
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
        let _ = stop_script("../../etc");
    }

    /// A host that is not `[A-Za-z0-9.-]+` never reaches the node and fails by itself.
    #[test]
    fn a_bad_host_is_not_sent() {
        let bad = Probe::Connect("x;reboot".into(), 6443);
        let s = probe_script("r1", &[bad.clone(), Probe::Path(B)]);
        assert!(!s.contains("reboot"), "{s}");
        let out = "@@probe connect:x;reboot:6443 ok 1\n";
        assert_eq!(
            parse_probe(out, std::slice::from_ref(&bad))[&bad],
            Outcome::Failed("an invalid host name: \"x;reboot\"".into())
        );
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

    #[test]
    fn stop_lines() {
        assert_eq!(parse_stop("@@stopped\n"), Ok(()));
        assert_eq!(
            parse_stop("@@left process 4242\n@@left /run/netctl/preflight/r1\n"),
            Err("process 4242, /run/netctl/preflight/r1".into())
        );
        assert_eq!(parse_stop(""), Err("no answer from the stop script".into()));
    }

    /// Runs `script` with sh on stdin, as a node does, with `env -i PATH=$path` when given; in
    /// the network and mount namespaces of process `node` when given.
    fn run_sh(node: Option<u32>, path: Option<&str>, script: &str) -> String {
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
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        // Returns only when every holder of stdout closed it: a listener that did not detach
        // would hang here.
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Without python3 every spec and probe fails saying so, at once.
    #[test]
    fn no_python3_every_spec_fails() {
        let empty = crate::tempdir::PrivateDir::new("pfag").unwrap();
        let path = empty.path().to_str().unwrap();
        let specs = [Listen::Udp(8472), Listen::Ipip];
        let out = run_sh(None, Some(path), &listen_script("np", &specs));
        assert_eq!(out, format!("@@error {NO_PYTHON}\n"));
        let got = parse_listen(&out, &specs);
        assert_eq!(got.len(), 2);
        assert!(got
            .values()
            .all(|s| *s == ListenState::Failed(NO_PYTHON.into())));
        let out = run_sh(None, Some(path), &probe_script("np", &probes()));
        let got = parse_probe(&out, &probes());
        assert_eq!(got.len(), probes().len());
        assert!(
            got.values()
                .all(|o| *o == Outcome::Failed(NO_PYTHON.into())),
            "{got:?}"
        );
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
        let script = probe_script(&run, std::slice::from_ref(&path));
        let out = run_sh(None, bin.path().to_str(), &script);
        assert_eq!(
            parse_probe(&out, std::slice::from_ref(&path))[&path],
            Outcome::Failed("ip not found on the node".into()),
            "{out}"
        );
        let out = run_sh(None, Some("/usr/sbin:/usr/bin:/sbin:/bin"), &script);
        assert!(
            matches!(
                &parse_probe(&out, std::slice::from_ref(&path))[&path],
                Outcome::Path { dev, .. } if dev == "lo"
            ),
            "{out}"
        );
    }

    mod real {
        //! As root, in two network namespaces joined by a veth pair: the listener in b, the
        //! probes from a. Each test has its own namespaces, addresses, ports and run ids.

        use super::*;
        use std::time::{Duration, Instant};

        fn root() -> bool {
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            if !root {
                eprintln!("skipped: needs root (network namespaces, raw sockets, /run)");
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
        /// between them; deleted on drop, after the listeners of every run started here are
        /// stopped (a failed assertion included). a and b each have a mount namespace of their
        /// own too, with a tmpfs on /run, so that each has its own /run/netctl as a node has
        /// (the lab's included): every script of a node runs there.
        struct Pair {
            a: String,
            b: String,
            router: Option<String>,
            a_addr: Ipv4Addr,
            b_addr: Ipv4Addr,
            x: u8,
            runs: std::cell::RefCell<Vec<String>>,
            /// The processes holding a's and b's mount namespaces, and their pids.
            mounts: Vec<(std::process::Child, u32)>,
        }

        /// A process in network namespace `ns` and a mount namespace of its own with a tmpfs
        /// on /run, and its pid, once the tmpfs is there.
        fn hold_mounts(ns: &str) -> (std::process::Child, u32) {
            use std::io::BufRead;
            let mut child = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "unshare", "--mount", "--propagation"])
                .args(["private", "sh", "-c"])
                .arg("mount -t tmpfs -o mode=0755 pfag /run && echo $$ && exec sleep 600")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            let pid = line.trim().parse().unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("no mount namespace for {ns}: {line:?}")
            });
            (child, pid)
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
                let p = Pair {
                    a: format!("{id}-a"),
                    b: format!("{id}-b"),
                    router: router.then(|| format!("{id}-r")),
                    a_addr: Ipv4Addr::new(10, 255, x, 1),
                    b_addr: Ipv4Addr::new(10, 255, x + u8::from(router), 2),
                    x,
                    runs: Default::default(),
                    mounts: Vec::new(),
                };
                let mut p = p;
                for ns in [Some(&p.a), Some(&p.b), p.router.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    ip(&["netns", "add", ns]);
                }
                p.mounts = vec![hold_mounts(&p.a), hold_mounts(&p.b)];
                p
            }

            /// The process whose namespaces are a's (to run a script there, to see its files).
            fn a_node(&self) -> u32 {
                self.mounts[0].1
            }

            fn b_node(&self) -> u32 {
                self.mounts[1].1
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
                let run = format!("t{}-{n}-{}", self.x, std::process::id());
                self.runs.borrow_mut().push(run.clone());
                run
            }

            /// A listener on b.
            fn listen(&self, run: &str, specs: &[Listen]) -> BTreeMap<Listen, ListenState> {
                listen_on(self.b_node(), run, specs)
            }

            /// Probes from a.
            fn probe(&self, run: &str, probes: &[Probe]) -> (BTreeMap<Probe, Outcome>, Duration) {
                let t = Instant::now();
                let out = run_sh(Some(self.a_node()), None, &probe_script(run, probes));
                (parse_probe(&out, probes), t.elapsed())
            }

            /// Stops b's listener.
            fn stop(&self, run: &str) -> Result<(), String> {
                stop_on(self.b_node(), run)
            }
        }

        fn listen_on(node: u32, run: &str, specs: &[Listen]) -> BTreeMap<Listen, ListenState> {
            parse_listen(&run_sh(Some(node), None, &listen_script(run, specs)), specs)
        }

        fn stop_on(node: u32, run: &str) -> Result<(), String> {
            parse_stop(&run_sh(Some(node), None, &stop_script(run)))
        }

        impl Drop for Pair {
            fn drop(&mut self) {
                for run in self.runs.borrow().iter() {
                    for (_, node) in &self.mounts {
                        let _ = stop_on(*node, run);
                    }
                }
                for (child, _) in &mut self.mounts {
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
        fn holders(run: &str) -> Vec<String> {
            let token = token(run);
            let mut found = Vec::new();
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                    continue;
                };
                if cmdline.split(|b| *b == 0).any(|w| w == token.as_bytes()) {
                    found.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            found
        }

        /// Run `run`'s directory on `node`, as this process sees it.
        fn dir(node: u32, run: &str) -> std::path::PathBuf {
            std::path::PathBuf::from(format!("/proc/{node}/root{RUNS}/{run}"))
        }

        fn assert_gone(node: u32, run: &str) {
            assert_eq!(
                holders(run),
                Vec::<String>::new(),
                "a listener of {run} is left"
            );
            let dir = dir(node, run);
            assert!(!dir.exists(), "{} is left", dir.display());
        }

        #[test]
        fn echoes_pass_then_stop_leaves_nothing() {
            if !root() {
                return;
            }
            let p = Pair::up(161);
            let run = p.run_id(1);
            let specs = [Listen::Udp(47001), Listen::Tcp(47002), Listen::Ipip];
            let got = p.listen(&run, &specs);
            assert!(
                got.values().all(|s| *s == ListenState::Listening),
                "{got:?}"
            );
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::symlink_metadata(dir(p.b_node(), &run)).unwrap();
            assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o700, 0));
            let pid = std::fs::read_to_string(dir(p.b_node(), &run).join("pid")).unwrap();
            assert_eq!(holders(&run), [pid.trim()]);
            let parent = std::fs::metadata(format!("/proc/{}/root/run/netctl", p.b_node()))
                .unwrap()
                .permissions();
            assert_eq!(parent.mode() & 0o7777, 0o755);

            let b = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47001), b),
                Probe::Echo(Listen::Tcp(47002), b),
                Probe::Echo(Listen::Ipip, b),
                Probe::Ping(b, 0),
                Probe::Ping(b, 1500),
                Probe::Connect(b.to_string(), 47002),
                Probe::Path(b),
            ];
            let (got, took) = p.probe(&run, &probes);
            // Every probe is answered: none waits out its 2 s.
            assert!(took < Duration::from_millis(1900), "{took:?} {got:?}");
            for probe in &probes[..6] {
                assert!(
                    matches!(got[probe], Outcome::Ok { .. }),
                    "{probe:?}: {got:?}"
                );
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
                got[&Probe::Path(b)],
                Outcome::Path {
                    dev: "eth0".into(),
                    via: None,
                    src: Some(p.a_addr),
                    lladdr: Some(mac.to_string()),
                }
            );

            assert_eq!(p.stop(&run), Ok(()));
            assert_gone(p.b_node(), &run);
            assert_eq!(p.stop(&run), Ok(()), "a second stop is fine");
        }

        #[test]
        fn a_dropped_port_fails_and_a_taken_one_is_busy() {
            if !root() {
                return;
            }
            let p = Pair::up(162);
            let (run, other) = (p.run_id(1), p.run_id(2));
            let specs = [Listen::Udp(47011), Listen::Tcp(47012)];
            let got = p.listen(&run, &specs);
            assert!(
                got.values().all(|s| *s == ListenState::Listening),
                "{got:?}"
            );
            let ipt = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &p.b, "iptables", "-A", "INPUT", "-p", "udp",
                ])
                .args(["--dport", "47011", "-j", "DROP"])
                .status()
                .unwrap();
            assert!(ipt.success());
            let taken = p.listen(
                &other,
                &[Listen::Udp(47011), Listen::Tcp(47012), Listen::Udp(47013)],
            );
            assert_eq!(taken[&Listen::Udp(47011)], ListenState::Busy);
            assert_eq!(taken[&Listen::Tcp(47012)], ListenState::Busy);
            assert_eq!(taken[&Listen::Udp(47013)], ListenState::Listening);

            let b = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47011), b),
                Probe::Echo(Listen::Tcp(47012), b),
                Probe::Echo(Listen::Udp(47014), b),
                Probe::Echo(Listen::Udp(47013), b),
            ];
            let (got, took) = p.probe(&run, &probes);
            // Two probes get no answer: at once they take 2 s, one after the other 4 s (the
            // rest is python's and ip netns exec's start on a loaded machine).
            assert!(took < Duration::from_millis(3900), "{took:?}");
            assert_eq!(got[&probes[0]], Outcome::Failed("no answer in 2 s".into()));
            assert!(matches!(got[&probes[1]], Outcome::Ok { .. }), "{got:?}");
            assert_eq!(got[&probes[2]], Outcome::Failed("refused".into()));
            // Another run's listener takes the request for noise.
            assert_eq!(got[&probes[3]], Outcome::Failed("no answer in 2 s".into()));

            assert_eq!(p.stop(&run), Ok(()));
            assert_eq!(p.stop(&other), Ok(()));
            assert_gone(p.b_node(), &run);
            assert_gone(p.b_node(), &other);
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
            let b = p.b_addr;
            let probes = [
                Probe::Ping(b, 1400),
                Probe::Ping(b, 1280),
                Probe::Ping(b, 0),
                Probe::Ping(b, 1501),
                Probe::Ping(Ipv4Addr::new(10, 254, 0, 1), 0),
                Probe::Connect("10.254.0.1".into(), 443),
                // A name: resolved beside the other probes (a's own loopback, nothing there).
                Probe::Connect("localhost".into(), 47051),
            ];
            let run = p.run_id(1);
            let (got, took) = p.probe(&run, &probes);
            assert!(took < Duration::from_millis(3900), "{took:?}");
            assert_eq!(got[&probes[0]], Outcome::Failed("no answer in 2 s".into()));
            assert!(matches!(got[&probes[1]], Outcome::Ok { .. }), "{got:?}");
            assert!(matches!(got[&probes[2]], Outcome::Ok { .. }), "{got:?}");
            assert_eq!(
                got[&probes[3]],
                Outcome::Failed("too big: path MTU 1500".into())
            );
            assert_eq!(got[&probes[4]], Outcome::Failed("no route".into()));
            assert_eq!(got[&probes[5]], Outcome::Failed("no route".into()));
            assert_eq!(got[&probes[6]], Outcome::Failed("refused".into()));
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
            assert_eq!(
                p.listen(&run, &[Listen::Udp(47041)])[&Listen::Udp(47041)],
                ListenState::Listening
            );
            let b = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47041), b),
                Probe::Ping(b, 1500),
                Probe::Ping(b, 1400),
                Probe::Path(b),
            ];
            let (got, took) = p.probe(&run, &probes);
            // Every probe is answered: none waits out its 2 s.
            assert!(took < Duration::from_millis(1900), "{took:?}");
            assert!(matches!(got[&probes[0]], Outcome::Ok { .. }), "{got:?}");
            assert_eq!(
                got[&probes[1]],
                Outcome::Failed("too big: path MTU 1400 from 10.255.170.254".into())
            );
            assert!(matches!(got[&probes[2]], Outcome::Ok { .. }), "{got:?}");
            assert_eq!(
                got[&probes[3]],
                Outcome::Path {
                    dev: "eth0".into(),
                    via: Some(Ipv4Addr::new(10, 255, 170, 254)),
                    src: Some(p.a_addr),
                    lladdr: None,
                }
            );
            assert_eq!(p.stop(&run), Ok(()));
            assert_gone(p.b_node(), &run);
        }

        /// Probes from `node`'s shell, with `env -i PATH=$path` when given: the output, the
        /// outcomes and the time taken.
        fn probe_from(
            node: u32,
            run: &str,
            probes: &[Probe],
            path: Option<&str>,
        ) -> (String, BTreeMap<Probe, Outcome>, Duration) {
            let t = Instant::now();
            let out = run_sh(Some(node), path, &probe_script(run, probes));
            let got = parse_probe(&out, probes);
            (out, got, t.elapsed())
        }

        /// A PATH with what probe.sh needs to reach a listener and no python3: a probe round
        /// run with it is answered by the listener, or fails with NO_PYTHON.
        fn without_python() -> crate::tempdir::PrivateDir {
            let d = crate::tempdir::PrivateDir::new("pfag").unwrap();
            for tool in ["sh", "tr", "timeout", "cat"] {
                let real = ["/usr/bin", "/bin"]
                    .iter()
                    .map(|b| std::path::Path::new(b).join(tool))
                    .find(|p| p.exists())
                    .unwrap_or_else(|| panic!("no {tool}"));
                std::os::unix::fs::symlink(real, d.path().join(tool)).unwrap();
            }
            d
        }

        /// The same outcome but for the milliseconds.
        fn alike(a: &Outcome, b: &Outcome) -> bool {
            matches!((a, b), (Outcome::Ok { .. }, Outcome::Ok { .. })) || a == b
        }

        /// Listener `run`'s pid on `node`, from its pid file.
        fn listener_pid(node: u32, run: &str) -> i32 {
            let pid = std::fs::read_to_string(dir(node, run).join("pid")).unwrap();
            pid.trim().parse().unwrap()
        }

        fn signal(pid: i32, sig: i32) {
            // SAFETY: kill has no memory preconditions; the pid is a listener this test started.
            assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid} {sig}");
        }

        /// The listener of a node does that node's probes (a probe round with no python3 on
        /// its PATH passes), with the outcomes a python of their own finds: echoes of every
        /// kind, a refused port, pings with and without don't-fragment, too big, a connect and
        /// the path. Its FIFOs are root's alone, and gone after the stop.
        #[test]
        fn the_listener_probes_as_a_python_of_their_own_does() {
            if !root() {
                return;
            }
            let p = Pair::up(171);
            let run = p.run_id(1);
            let specs = [Listen::Udp(47061), Listen::Tcp(47062), Listen::Ipip];
            let got = p.listen(&run, &specs);
            assert!(
                got.values().all(|s| *s == ListenState::Listening),
                "{got:?}"
            );
            let b = p.b_addr;
            let probes = [
                Probe::Echo(Listen::Udp(47061), b),
                Probe::Echo(Listen::Tcp(47062), b),
                Probe::Echo(Listen::Ipip, b),
                Probe::Echo(Listen::Udp(47063), b),
                Probe::Ping(b, 0),
                Probe::Ping(b, 1500),
                Probe::Ping(b, 1501),
                Probe::Connect(b.to_string(), 47062),
                Probe::Path(b),
            ];
            let (out, direct, _) = probe_from(p.a_node(), &run, &probes, None);
            for i in [0, 1, 2, 4, 5, 7] {
                assert!(
                    matches!(direct[&probes[i]], Outcome::Ok { .. }),
                    "{:?}: {out}",
                    probes[i]
                );
            }
            assert_eq!(direct[&probes[3]], Outcome::Failed("refused".into()));
            assert_eq!(
                direct[&probes[6]],
                Outcome::Failed("too big: path MTU 1500".into())
            );
            assert!(matches!(direct[&probes[8]], Outcome::Path { .. }), "{out}");

            let a = p.a_node();
            // With SIGCHLD ignored, as bash passes on its `trap '' CHLD` (dash does not): the
            // listener still waits for its probe children itself.
            let listen = format!(
                "exec bash -c {}",
                shell::sh_quote(&format!(
                    "trap '' CHLD\n{}",
                    listen_script(&run, &[Listen::Udp(47064)])
                ))
            );
            assert_eq!(
                parse_listen(&run_sh(Some(a), None, &listen), &[Listen::Udp(47064)]),
                BTreeMap::from([(Listen::Udp(47064), ListenState::Listening)])
            );
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            for fifo in ["ctl", "out"] {
                let meta = std::fs::symlink_metadata(dir(a, &run).join(fifo)).unwrap();
                assert!(meta.file_type().is_fifo(), "{fifo}: {meta:?}");
                assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 0), "{fifo}");
            }
            let path = without_python();
            let (out, fifo, _) = probe_from(a, &run, &probes, path.path().to_str());
            assert!(!out.contains("@@note"), "{out}");
            for probe in &probes {
                assert!(
                    alike(&direct[probe], &fifo[probe]),
                    "{probe:?}: {:?} directly, {:?} through the listener",
                    direct[probe],
                    fifo[probe]
                );
            }

            // A second round: the listener took the first child back and takes another.
            let (out, again, _) = probe_from(a, &run, &probes[..1], path.path().to_str());
            assert!(!out.contains("@@note"), "{out}");
            assert!(matches!(again[&probes[0]], Outcome::Ok { .. }), "{out}");

            assert_eq!(stop_on(a, &run), Ok(()));
            assert!(
                !dir(a, &run).exists(),
                "the FIFOs or the directory are left"
            );
            assert_eq!(p.stop(&run), Ok(()));
            assert_gone(p.b_node(), &run);
        }

        /// While a's listener probes b (a probe that waits out its 2 s keeps its child busy),
        /// it answers b's echoes, which b's listener sends.
        #[test]
        fn a_listener_probes_while_it_answers_echoes() {
            if !root() {
                return;
            }
            let p = Pair::up(172);
            let run = p.run_id(1);
            let specs = [Listen::Udp(47071), Listen::Tcp(47072), Listen::Ipip];
            for node in [p.a_node(), p.b_node()] {
                let got = listen_on(node, &run, &specs);
                assert!(
                    got.values().all(|s| *s == ListenState::Listening),
                    "{got:?}"
                );
            }
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
            let path = without_python();
            let path = path.path().to_str().unwrap();
            let (a, b) = (p.a_node(), p.b_node());
            let (a_out, b_out) = std::thread::scope(|s| {
                let a = s.spawn(|| probe_from(a, &run, &a_probes, Some(path)));
                // Both listeners, and a's probing child.
                let t = Instant::now();
                while holders(&run).len() < 3 {
                    assert!(t.elapsed() < Duration::from_secs(8), "no probe child");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let b = probe_from(b, &run, &b_probes, Some(path));
                (a.join().unwrap(), b)
            });
            for (out, got) in [(&a_out.0, &a_out.1), (&b_out.0, &b_out.1)] {
                assert!(!out.contains("@@note"), "{out}");
                for (probe, outcome) in got.iter().filter(|(p, _)| matches!(p, Probe::Echo(..))) {
                    assert!(matches!(outcome, Outcome::Ok { .. }), "{probe:?}: {out}");
                }
            }
            assert!(
                matches!(a_out.1[&a_probes[3]], Outcome::Failed(_)),
                "{}",
                a_out.0
            );
            for node in [p.a_node(), p.b_node()] {
                assert_eq!(stop_on(node, &run), Ok(()));
                assert!(!dir(node, &run).exists());
            }
            assert_gone(p.a_node(), &run);
        }

        /// probe.sh runs a python of its own, and says why, when the node's listener was
        /// killed (its directory left) or does not answer (stopped): the latter within the
        /// exchange's bound. A stop then leaves nothing, the probe child a stopped listener
        /// forks once it runs again included.
        #[test]
        fn probes_without_a_listener_that_is_gone_or_stuck() {
            if !root() {
                return;
            }
            let p = Pair::up(173);
            let (a, b) = (p.a_node(), p.b_addr);
            let (run, run2) = (p.run_id(1), p.run_id(2));
            for (r, port) in [(&run, 47081), (&run2, 47082)] {
                assert_eq!(
                    p.listen(r, &[Listen::Udp(port)])[&Listen::Udp(port)],
                    ListenState::Listening
                );
            }
            let echo = |port| [Probe::Echo(Listen::Udp(port), b)];

            // No listener on a: a python of its own, nothing to say.
            let (out, got, _) = probe_from(a, &run, &echo(47081), None);
            assert!(!out.contains("@@note"), "{out}");
            assert!(matches!(got[&echo(47081)[0]], Outcome::Ok { .. }), "{out}");

            assert_eq!(
                listen_on(a, &run, &[Listen::Udp(47083)])[&Listen::Udp(47083)],
                ListenState::Listening
            );
            let pid = listener_pid(a, &run);
            signal(pid, libc::SIGKILL);
            let t = Instant::now();
            while holders(&run).contains(&pid.to_string()) {
                assert!(t.elapsed() < Duration::from_secs(5), "{pid} lives on");
                std::thread::sleep(Duration::from_millis(10));
            }
            let (out, got, took) = probe_from(a, &run, &echo(47081), None);
            assert!(
                out.starts_with("@@note probes without this run's listener: it is gone\n"),
                "{out}"
            );
            assert!(matches!(got[&echo(47081)[0]], Outcome::Ok { .. }), "{out}");
            // It does not wait for the listener (the bound is 8 s).
            assert!(took < Duration::from_secs(8), "{took:?}");

            assert_eq!(
                listen_on(a, &run2, &[Listen::Udp(47084)])[&Listen::Udp(47084)],
                ListenState::Listening
            );
            let pid = listener_pid(a, &run2);
            signal(pid, libc::SIGSTOP);
            let (out, got, took) = probe_from(a, &run2, &echo(47082), None);
            signal(pid, libc::SIGCONT);
            assert!(
                out.starts_with(
                    "@@note probes without this run's listener: no answer from it in 8 s\n"
                ),
                "{out}"
            );
            assert!(matches!(got[&echo(47082)[0]], Outcome::Ok { .. }), "{out}");
            // The bound, a python's 2 s at most, and a loaded machine.
            assert!(took < Duration::from_secs(20), "{took:?}");

            for r in [&run, &run2] {
                assert_eq!(stop_on(a, r), Ok(()));
                assert_eq!(p.stop(r), Ok(()));
                assert_gone(a, r);
                assert_gone(p.b_node(), r);
            }
        }

        /// netctl died: the listener ends at its lifetime, or as soon as its directory goes,
        /// and takes its directory with it.
        #[test]
        fn a_listener_ends_by_itself() {
            if !root() {
                return;
            }
            let p = Pair::up(164);
            let (run, other) = (p.run_id(1), p.run_id(2));
            let script = listen_script(&run, &[Listen::Udp(47021)]);
            let short = script.replacen("\nLIFETIME=120\n", "\nLIFETIME=1\n", 1);
            assert_ne!(script, short);
            let got = parse_listen(
                &run_sh(Some(p.b_node()), None, &short),
                &[Listen::Udp(47021)],
            );
            assert_eq!(got[&Listen::Udp(47021)], ListenState::Listening);
            assert_eq!(
                p.listen(&other, &[Listen::Tcp(47022)])[&Listen::Tcp(47022)],
                ListenState::Listening
            );
            // Its pid and its FIFOs, then the directory, as a stop removes them.
            std::fs::remove_dir_all(dir(p.b_node(), &other)).unwrap();
            let t = Instant::now();
            while !(holders(&other).is_empty()
                && holders(&run).is_empty()
                && !dir(p.b_node(), &run).exists())
            {
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "{:?} {:?}",
                    holders(&run),
                    holders(&other)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_gone(p.b_node(), &run);
            assert_eq!(p.stop(&run), Ok(()));
        }

        /// A pid file naming a process without this run's token (a stale pid, reused) or holding
        /// anything but digits kills nothing; the directory still goes (in a mount namespace of
        /// its own with a tmpfs on /run, so the machine's /run is not touched).
        #[test]
        fn stop_kills_only_what_carries_the_token() {
            if !root() {
                return;
            }
            let run = format!("t166-{}", std::process::id());
            let mut other = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            let stop = stop_script(&run);
            for pid in [
                other.id().to_string(),
                "1 2".into(),
                "../1".into(),
                String::new(),
            ] {
                let script = format!(
                    "mount -t tmpfs -o mode=0755 pfag /run\nmkdir -p /run/netctl/preflight/{run}\nprintf '%s\\n' {} > /run/netctl/preflight/{run}/pid\nmkfifo /run/netctl/preflight/{run}/ctl /run/netctl/preflight/{run}/out\n{stop}",
                    shell::sh_quote(&pid)
                );
                let out = std::process::Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                    .output()
                    .unwrap();
                assert_eq!(
                    parse_stop(&String::from_utf8_lossy(&out.stdout)),
                    Ok(()),
                    "{pid}: {out:?}"
                );
            }
            let alive = other.try_wait().unwrap().is_none();
            let _ = other.kill();
            let _ = other.wait();
            assert!(alive, "stop killed a process without the token");
        }

        /// The stop returns only once the listener has ended, not as soon as its command line
        /// is gone: a process frees its memory before it ends and has no command line while it
        /// does. A listener that holds 1 GiB takes a while over that; the stop waits it out.
        #[test]
        fn the_stop_returns_when_the_listener_has_ended() {
            if !root() {
                return;
            }
            let run = format!("t167-{}", std::process::id());
            let mut fake = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sys, time\nheld = b'x' * (1 << 30)\nprint('held', flush=True)\ntime.sleep(60)",
                    &token(&run),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut held = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(fake.stdout.take().unwrap()),
                &mut held,
            )
            .unwrap();
            assert_eq!(held, "held\n");
            let script = format!(
                "mount -t tmpfs -o mode=0755 pfag /run\nmkdir -p /run/netctl/preflight/{run}\necho {} > /run/netctl/preflight/{run}/pid\n{}",
                fake.id(),
                stop_script(&run)
            );
            let out = std::process::Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .output()
                .unwrap();
            // Ended: not waited for by this test yet, so a zombie.
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", fake.id())).unwrap();
            let state = stat.rsplit_once(") ").unwrap().1.split(' ').next().unwrap();
            let _ = fake.kill();
            let _ = fake.wait();
            assert_eq!(parse_stop(&String::from_utf8_lossy(&out.stdout)), Ok(()));
            assert_eq!(
                state, "Z",
                "the stop returned while the listener was ending: {stat}"
            );
        }

        /// The directory is root's alone or the listener does not start: a symlink, another
        /// owner or a directory others can write is refused (in a mount namespace of its own,
        /// so the machine's /run is not touched).
        #[test]
        fn a_run_directory_not_roots_alone_is_refused() {
            if !root() {
                return;
            }
            let run = format!("t165-{}", std::process::id());
            let listen = listen_script(&run, &[Listen::Udp(47031)]);
            for (setup, why) in [
                ("ln -s /tmp /run/netctl", "/run/netctl is not a directory"),
                (
                    "mkdir -m 0755 /run/netctl && chown 1000 /run/netctl",
                    "/run/netctl is not root's alone",
                ),
                (
                    "mkdir -m 0777 /run/netctl",
                    "/run/netctl is not root's alone",
                ),
                (
                    "mkdir -m 0755 /run/netctl && ln -s /tmp /run/netctl/preflight",
                    "/run/netctl/preflight is not a directory",
                ),
            ] {
                let script = format!("mount -t tmpfs -o mode=0755 pfag /run\n{setup}\n{listen}");
                let out = std::process::Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                    .output()
                    .unwrap();
                let got =
                    parse_listen(&String::from_utf8_lossy(&out.stdout), &[Listen::Udp(47031)]);
                assert_eq!(
                    got[&Listen::Udp(47031)],
                    ListenState::Failed(format!("cannot make /run/netctl/preflight/{run}: {why}")),
                    "{setup}: {out:?}"
                );
            }
            assert!(holders(&run).is_empty());
        }
    }
}
