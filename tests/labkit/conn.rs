//! Long-lived TCP connections between pods on different nodes, used throughout a switch: a ping
//! loses packets, but a connection tells whether the switch resets or strands established flows
//! (masquerading, a conntrack entry tied to the old interface, a route gone too long). Each pod
//! serves an echo on `PORT`; each direction opens its connections before the switch and sends a
//! numbered line on each every 20 ms until `stop`, which counts connections broken.
//!
//! The nodes have python3-minimal and no socat or nc: the endpoints are `conn.py`, run with
//! `python3 -c` inside the pod's namespace. Their stdin is the stop signal: closing it (also when
//! a test panics and `Conns` is dropped) ends them, so no process outlives the test.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Stdio};

use super::Lab;

const SCRIPT: &str = include_str!("conn.py");
pub const PORT: u16 = 7400;

/// A pod made on a lab node (`Lab::make_pod`).
#[derive(Clone, Debug)]
pub struct Pod {
    pub node: String,
    pub name: String,
    pub ip: String,
}

impl Pod {
    pub fn make(lab: &Lab, node: &str, name: &str) -> Pod {
        let ip = lab.make_pod(node, name);
        Pod {
            node: node.to_string(),
            name: name.to_string(),
            ip,
        }
    }
}

/// What the connections saw between `start` and `stop`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub connections: u64,
    pub broken: u64,
    /// Lines echoed back, over all connections.
    pub messages: u64,
    /// The longest round trip of any one line: how long the worst gap held a connection.
    pub stall_ms: u64,
    /// Why each broken connection broke.
    pub reasons: Vec<String>,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TCP {} connections, {} broken, {} echoes, longest stall {} ms",
            self.connections, self.broken, self.messages, self.stall_ms
        )?;
        if !self.reasons.is_empty() {
            write!(f, " ({})", self.reasons.join("; "))?;
        }
        Ok(())
    }
}

struct Endpoint {
    what: String,
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Endpoint {
    /// `conn.py` in `pod`'s namespace on its node, once it says "ready".
    fn spawn(lab: &Lab, pod: &Pod, args: &[String], what: String) -> Endpoint {
        let mut child = super::netctl()
            .args(["lab", "exec", "--name", &lab.name, &pod.node, "--"])
            .args(["ip", "netns", "exec", &pod.name, "/usr/bin/python3", "-c"])
            .arg(SCRIPT)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lab exec");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        if line.trim() != "ready" {
            drop(child.stdin.take());
            let _ = child.wait();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("{what} did not start: {line}{err}");
        }
        Endpoint { what, child, out }
    }

    /// Close its stdin and wait for it to end; what it printed after "ready".
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        assert!(
            status.success(),
            "{} ended {status}: {rest}{err}",
            self.what
        );
        rest
    }
}

/// Running connections; `stop` them to read the figures. Dropped without `stop` (a failed test),
/// every endpoint is told to end.
pub struct Conns {
    servers: Vec<Endpoint>,
    clients: Vec<Endpoint>,
}

impl Conns {
    /// A server in every pod of `pairs`, then `per_direction` connections from the first pod of
    /// each pair to the second and as many back.
    pub fn start(lab: &Lab, pairs: &[(&Pod, &Pod)], per_direction: usize) -> Conns {
        let mut serving: Vec<&Pod> = Vec::new();
        for p in pairs.iter().flat_map(|(a, b)| [*a, *b]) {
            if !serving.iter().any(|s| s.node == p.node && s.name == p.name) {
                serving.push(p);
            }
        }
        let servers = serving
            .iter()
            .map(|p| {
                Endpoint::spawn(
                    lab,
                    p,
                    &["serve".into(), PORT.to_string()],
                    format!("echo server in {}/{}", p.node, p.name),
                )
            })
            .collect();
        let mut clients = Vec::new();
        for (a, b) in pairs {
            for (from, to) in [(a, b), (b, a)] {
                clients.push(Endpoint::spawn(
                    lab,
                    from,
                    &[
                        "talk".into(),
                        to.ip.clone(),
                        PORT.to_string(),
                        per_direction.to_string(),
                    ],
                    format!(
                        "connections {}/{} -> {}/{}",
                        from.node, from.name, to.node, to.name
                    ),
                ));
            }
        }
        Conns { servers, clients }
    }

    /// End every connection (lines still in flight get a few seconds to come back) and sum up.
    pub fn stop(mut self) -> Figures {
        let mut total = Figures::default();
        for c in std::mem::take(&mut self.clients) {
            let what = c.what.clone();
            let line = c.finish();
            let f = parse(&line).unwrap_or_else(|| panic!("{what}: no figures in {line:?}"));
            total.connections += f.connections;
            total.broken += f.broken;
            total.messages += f.messages;
            total.stall_ms = total.stall_ms.max(f.stall_ms);
            total
                .reasons
                .extend(f.reasons.into_iter().map(|r| format!("{what}: {r}")));
        }
        for s in std::mem::take(&mut self.servers) {
            s.finish();
        }
        total
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        for e in self.clients.iter_mut().chain(self.servers.iter_mut()) {
            drop(e.child.stdin.take());
        }
        for e in self.clients.iter_mut().chain(self.servers.iter_mut()) {
            let _ = e.child.wait();
        }
    }
}

/// `connections=N broken=B messages=M stall_ms=S reasons=a;b` (reasons `-` when none).
fn parse(out: &str) -> Option<Figures> {
    let line = out.lines().find(|l| l.starts_with("connections="))?;
    let mut f = Figures::default();
    for field in line.split_whitespace() {
        let (k, v) = field.split_once('=')?;
        match k {
            "connections" => f.connections = v.parse().ok()?,
            "broken" => f.broken = v.parse().ok()?,
            "messages" => f.messages = v.parse().ok()?,
            "stall_ms" => f.stall_ms = v.parse().ok()?,
            "reasons" if v != "-" => {
                f.reasons = v.split(';').map(|r| r.replace('_', " ")).collect()
            }
            _ => {}
        }
    }
    (f.broken as usize == f.reasons.len()).then_some(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_and_reasons() {
        let f = super::parse(
            "connections=4 broken=1 messages=900 stall_ms=130 reasons=closed_by_peer\n",
        )
        .unwrap();
        assert_eq!(
            (f.connections, f.broken, f.messages, f.stall_ms),
            (4, 1, 900, 130)
        );
        assert_eq!(f.reasons, ["closed by peer"]);
        assert!(super::parse("connections=4 broken=1 messages=9 stall_ms=1 reasons=-").is_none());
        assert!(super::parse("Traceback").is_none());
    }
}
