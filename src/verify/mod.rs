//! `netctl verify`: checks that say whether pods can really talk, and if not, what is wrong and
//! where. Each check has a stable id, a subject (a node name or "cluster"), a status and, when it
//! fails, a hint. Node checks read each node in one round trip (`node`), cluster checks ask the
//! API through kubectl (`cluster`, `smoke`), and the data plane makes real test pods with the
//! node's own CNI plugins (`cni` chains them, `dataplane` runs and pings them). `report` renders
//! the result as a table, JSON or JUnit.

pub mod certs;
pub mod cluster;
pub mod cni;
pub mod dataplane;
pub mod mesh;
pub mod node;
pub mod report;
mod routes;
pub mod runtime_cni;
pub mod smoke;

use std::time::Instant;

use serde::Serialize;

pub use mesh::{Mesh, MeshUsed};

pub const CLUSTER: &str = "cluster";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check's result for one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub subject: String,
    pub status: Status,
    pub detail: String,
    /// What to do about a failure (always set when `status` is fail).
    pub hint: Option<String>,
    pub duration_ms: u64,
}

impl Check {
    pub fn pass(id: &str, subject: &str, detail: impl Into<String>) -> Check {
        Check::new(id, subject, Status::Pass, detail.into(), None)
    }
    pub fn fail(
        id: &str,
        subject: &str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check::new(id, subject, Status::Fail, detail.into(), Some(hint.into()))
    }
    pub fn skip(id: &str, subject: &str, reason: impl Into<String>) -> Check {
        Check::new(id, subject, Status::Skip, reason.into(), None)
    }
    fn new(id: &str, subject: &str, status: Status, detail: String, hint: Option<String>) -> Check {
        Check {
            id: id.to_string(),
            subject: subject.to_string(),
            status,
            detail,
            hint,
            duration_ms: 0,
        }
    }
    /// Stamp how long the check (or the round trip it came from) took.
    pub fn took(mut self, since: Instant) -> Check {
        self.duration_ms = since.elapsed().as_millis() as u64;
        self
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub cluster_checks: bool,
    pub dataplane: bool,
    pub smoke: bool,
    pub mesh: Mesh,
    /// No progress lines (switch's gate), whatever the run's --quiet.
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_checks: true,
            dataplane: true,
            smoke: false,
            mesh: Mesh::Auto,
            quiet: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub summary: Summary,
    pub checks: Vec<Check>,
    /// The data plane's mesh; null when no node pinged (no data plane, or no test pods).
    pub mesh: Option<MeshUsed>,
    /// The run's wall time (its checks overlap: their durations do not add up to it).
    pub duration_ms: u64,
    /// A node refused for safety (host key): the command exits 3.
    #[serde(skip)]
    pub refused: bool,
    /// The command that checked: `verify` or `preflight` (the text's last line, JUnit's name).
    #[serde(skip)]
    pub command: &'static str,
}

impl Report {
    pub fn new(run_id: String, mut checks: Vec<Check>, refused: bool) -> Report {
        // Grouped by check id in a fixed order, subjects in profile order within a check.
        checks.sort_by_key(|c| order(&c.id));
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Fail => summary.fail += 1,
                Status::Skip => summary.skip += 1,
            }
        }
        Report {
            run_id,
            summary,
            checks,
            mesh: None,
            duration_ms: 0,
            refused,
            command: "verify",
        }
    }
    /// The report of another command than verify (preflight).
    pub fn of(mut self, command: &'static str) -> Report {
        self.command = command;
        self
    }
    /// The report of a run whose data plane pinged over `mesh`.
    pub fn with_mesh(mut self, mesh: Option<MeshUsed>) -> Report {
        self.mesh = mesh;
        self
    }
    /// Stamp the run's wall time, from its start.
    pub fn took(mut self, since: Instant) -> Report {
        self.duration_ms = since.elapsed().as_millis() as u64;
        self
    }
    pub fn failed(&self) -> bool {
        self.summary.fail > 0
    }
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
}

/// Every check id, in report order. Ids are stable: CI dashboards key on them.
pub const CHECK_IDS: &[&str] = &[
    "node.ssh",
    "preflight.interface",
    "preflight.modules",
    "preflight.rp-filter",
    "preflight.forwarding",
    "preflight.conntrack",
    "preflight.clock",
    "preflight.cni-plugins",
    "preflight.runtime-cni",
    "preflight.api-server",
    "preflight.vxlan",
    "preflight.wireguard",
    "preflight.bgp",
    "preflight.ipip",
    "preflight.weave",
    "preflight.layer2",
    "preflight.mtu",
    "preflight.cleanup",
    "preflight.interrupted",
    "node.provider",
    "node.forwarding",
    "node.br-netfilter",
    "node.cni-config",
    "node.stale-cni",
    "node.files",
    "node.services",
    "node.routes",
    "node.certs",
    "cluster.nodes-ready",
    "cluster.pod-cidrs",
    "cluster.provider-pods",
    "dataplane.pods",
    "dataplane.pod-to-pod-local",
    "dataplane.pod-to-pod",
    "dataplane.node-to-pod",
    "dataplane.mtu",
    "dataplane.cleanup",
    "smoke.deploy",
    "smoke.pod-to-pod",
    "smoke.pod-to-service",
    "smoke.dns",
    "smoke.cleanup",
    "verify.interrupted",
];

/// The checks the node check script answers (not node.ssh, which is the connection, nor
/// node.certs, which reads the certificates apart): what an unreachable node skips.
pub fn node_script_ids() -> impl Iterator<Item = &'static str> {
    CHECK_IDS
        .iter()
        .copied()
        .filter(|id| id.starts_with("node.") && !matches!(*id, "node.ssh" | "node.certs"))
}

fn order(id: &str) -> usize {
    CHECK_IDS
        .iter()
        .position(|c| *c == id)
        .unwrap_or(CHECK_IDS.len())
}

/// `node.ssh` for a node that cannot be reached (verify's and preflight's), with what to do.
pub fn unreachable(node: &crate::profile::Node, e: &crate::remote::RemoteError) -> Check {
    Check::fail(
        "node.ssh",
        &node.name,
        format!("cannot reach the node: {e}"),
        if e.is_refusal() {
            "the host key is not trusted: check it, then pass --accept-new-host-keys or fix known_hosts".to_string()
        } else {
            format!(
                "is sshd running on {}:{}? (ssh.port / nodes[].sshPort)",
                node.address, node.ssh_port
            )
        },
    )
}

/// The short random part of a run id, for names of things verify creates (test pods, smoke objects).
pub fn run_suffix(run_id: &str) -> String {
    run_id
        .rsplit('-')
        .next()
        .unwrap_or("0")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_node_script_answers_eight_checks() {
        assert_eq!(
            super::node_script_ids().collect::<Vec<_>>(),
            [
                "node.provider",
                "node.forwarding",
                "node.br-netfilter",
                "node.cni-config",
                "node.stale-cni",
                "node.files",
                "node.services",
                "node.routes"
            ]
        );
    }
}
