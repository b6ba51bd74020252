//! init's report: per node and per cluster step, and its text (table, and diffs for `plan`).

use serde::Serialize;

use crate::plan::NodeChanges;
use crate::printer::Table;
use crate::remote::RemoteError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Unchanged,
    Planned,
    Failed,
    Refused,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub result: Outcome,
    pub files_changed: usize,
    pub commands_run: usize,
    pub restarts: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// Units whose inputs changed on a node without systemd (`init: none`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarts_skipped: Vec<String>,
    pub error: Option<String>,
    /// Remote executions this run made on the node (connect's sudo probe included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_executions: Option<usize>,
    #[serde(skip)]
    pub changes: Option<NodeChanges>,
}

impl NodeReport {
    pub(super) fn failed(name: &str, e: &RemoteError) -> NodeReport {
        NodeReport {
            name: name.to_string(),
            result: if e.is_refusal() {
                Outcome::Refused
            } else {
                Outcome::Failed
            },
            files_changed: 0,
            commands_run: 0,
            restarts: 0,
            restarted: vec![],
            restarts_skipped: vec![],
            error: Some(e.to_string()),
            remote_executions: None,
            changes: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterStepReport {
    pub step: String,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub nodes: Vec<NodeReport>,
    pub cluster: Vec<ClusterStepReport>,
    /// The operator answered no: nothing was changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub declined: bool,
    /// verify's report, when init ended with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Report>,
}

impl RunReport {
    pub fn failed_nodes(&self) -> Vec<&NodeReport> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.result, Outcome::Failed | Outcome::Refused))
            .collect()
    }
    pub fn refused(&self) -> bool {
        self.nodes.iter().any(|n| n.result == Outcome::Refused)
    }
    pub fn cluster_failed(&self) -> bool {
        self.cluster.iter().any(|c| c.result == "failed")
    }
}

/// The summary table, and for dry runs the per-node diffs, commands and restarts.
pub fn text(report: &RunReport, dry_run: bool) -> String {
    let mut out = String::new();
    if dry_run {
        for n in &report.nodes {
            let Some(ch) = &n.changes else { continue };
            out.push_str(&format!("==> {}\n", n.name));
            if ch.files.is_empty() {
                out.push_str("  files: no changes\n");
            }
            for f in &ch.files {
                out.push_str(&f.diff());
            }
            for c in &ch.commands {
                out.push_str(&format!("  run: {}  # {}\n", c.command, c.title));
            }
            if ch.daemon_reload {
                out.push_str("  systemctl daemon-reload\n");
            }
            for u in &ch.enable {
                out.push_str(&format!("  enable: {u}\n"));
            }
            for u in &ch.restart {
                out.push_str(&format!("  restart: {u}\n"));
            }
            for u in &n.restarts_skipped {
                out.push_str(&format!(
                    "  restart: {u} (skipped: the node has no init system)\n"
                ));
            }
        }
    }
    let mut t = Table::new(&["NODE", "RESULT", "FILES", "COMMANDS", "RESTARTS", "ERROR"]);
    for n in &report.nodes {
        let restarts = if n.restarts_skipped.is_empty() {
            n.restarts.to_string()
        } else {
            format!("{} ({} skipped)", n.restarts, n.restarts_skipped.len())
        };
        t.row(vec![
            n.name.clone(),
            format!("{:?}", n.result).to_lowercase(),
            n.files_changed.to_string(),
            n.commands_run.to_string(),
            restarts,
            crate::printer::row_error(&n.name, n.error.as_deref()),
        ]);
    }
    out.push_str(&t.render());
    for c in &report.cluster {
        out.push_str(&format!(
            "cluster: {} {}{}\n",
            c.step,
            c.result,
            c.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    let failed = report.failed_nodes().len();
    out.push_str(&format!(
        "run {}: {} nodes, {} failed\n",
        report.run_id,
        report.nodes.len(),
        failed
    ));
    out
}
