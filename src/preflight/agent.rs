//! The node's side of preflight's pair probes: a short-lived listener on every node and the
//! probes other nodes send it, with real packets of the kinds the chosen network uses (UDP, TCP,
//! IP-in-IP, don't-fragment ICMP), so a firewalled port or a smaller MTU shows before anything
//! changes. The work is done by templates/preflight/agent.py (nothing else on a node can listen
//! on a port), carried inside the sh scripts built here as a quoted variable, never written to a
//! file on the node. A listener outlives its SSH session (it has to be there when the other
//! nodes probe), so it is bounded three ways: `stop_script` ends it, it ends itself when its
//! directory goes, and at the latest after `LISTEN_LIFETIME_S`.
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
    /// A short reason: "no answer in 2 s", "refused", "unreachable", "no route",
    /// "too big: path MTU 1450", ...
    Failed(String),
    /// A `Probe::Path`'s facts; `lladdr` when the neighbour entry has one (it resolved by ARP).
    Path {
        dev: String,
        via: Option<Ipv4Addr>,
        src: Option<Ipv4Addr>,
        lladdr: Option<String>,
    },
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

/// Every probe at once from one node (one round trip, about 2 s at most whatever the peers do).
pub fn probe_script(run_id: &str, probes: &[Probe]) -> String {
    Script::new(PROBE)
        .var("TOKEN", token(run_id))
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
    let token = token(run_id);
    Script::new(STOP)
        .var("TOKEN", &token)
        .var("DIR", format!("{RUNS}/{run_id}"))
        .build()
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
}
