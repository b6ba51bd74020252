//! `netctl reset`: per node, connect -> lock -> read state.json; then what each node's reset will
//! do is shown and approved (approve.rs); then per node undo it (phase::reset), which releases the
//! lock. A node netctl never touched is reported as such and left alone; a "no" releases every
//! lock and changes nothing.

use serde::Serialize;

use crate::fleet;
use crate::phase::{lock, reset};
use crate::printer::{NodeLine, Table};
use crate::profile::Node;
use crate::provider::NodePlan;
use crate::remote::{Remote, RemoteError};
use crate::run::Run;
use crate::state::NodeState;
use crate::Error;

#[derive(Debug, Serialize)]
pub struct ResetReport {
    pub name: String,
    pub result: String,
    pub files_restored: usize,
    pub files_removed: usize,
    pub commands_run: usize,
    pub error: Option<String>,
    #[serde(skip)]
    pub refused: bool,
}

impl ResetReport {
    fn new(name: &str, result: &str) -> ResetReport {
        ResetReport {
            name: name.to_string(),
            result: result.into(),
            files_restored: 0,
            files_removed: 0,
            commands_run: 0,
            error: None,
            refused: false,
        }
    }

    fn failed(name: &str, e: &RemoteError) -> ResetReport {
        ResetReport {
            refused: e.is_refusal(),
            error: Some(e.to_string()),
            ..ResetReport::new(name, "failed")
        }
    }
}

/// A node locked and read, waiting for the answer; `state` is None where netctl never changed it.
struct Ready {
    node: Node,
    remote: Remote,
    state: Option<NodeState>,
    line: NodeLine,
}

async fn prepare(run: Run, node: Node, line: NodeLine) -> Result<Ready, ResetReport> {
    line.phase("connect");
    let remote = match run.connect(&node).await {
        Ok(r) => r,
        Err(e) => {
            line.done("failed");
            return Err(ResetReport::failed(&node.name, &e));
        }
    };
    line.phase("lock and gather");
    let holder = lock::Holder::me(&run.id, "reset");
    match crate::phase::gather::lock_and_gather_for_apply(&remote, &NodePlan::default(), &holder)
        .await
    {
        Ok(g) => {
            line.phase("waiting for the answer");
            Ok(Ready {
                node,
                remote,
                state: g.state,
                line,
            })
        }
        Err(e) => {
            remote.close().await;
            line.done("failed");
            Err(ResetReport::failed(&node.name, &e))
        }
    }
}

/// Release the node untouched (an unmanaged node, or a "no").
async fn release(r: Ready, run_id: &str, result: &str) -> ResetReport {
    let _ = lock::unlock(&r.remote, run_id).await;
    r.remote.close().await;
    r.line.done(result);
    ResetReport::new(&r.node.name, result)
}

/// The reset transaction releases the lock itself.
async fn reset_node(run: Run, r: Ready) -> ResetReport {
    let Some(state) = &r.state else {
        return release(r, &run.id, "unmanaged").await;
    };
    r.line.phase("reset");
    let res = reset::reset(&r.remote, state, &run.id, r.node.has_systemd()).await;
    r.remote.close().await;
    r.line.done("done");
    match res {
        Ok(c) => ResetReport {
            files_restored: c.files_restored,
            files_removed: c.files_removed,
            commands_run: c.commands_run,
            ..ResetReport::new(&r.node.name, "reset")
        },
        Err(e) => ResetReport::failed(&r.node.name, &e),
    }
}

/// What will happen per node, for the question: nodes whose resets are the same share their
/// lines (a cluster set up by one run says it once).
fn summary(ready: &[Ready], failed: &[ResetReport]) -> String {
    let mut groups: Vec<(Vec<String>, Vec<&str>)> = Vec::new();
    let mut unmanaged = Vec::new();
    for r in ready {
        let Some(st) = &r.state else {
            unmanaged.push(r.node.name.as_str());
            continue;
        };
        let lines = reset::describe(st, r.node.has_systemd());
        match groups.iter_mut().find(|(l, _)| *l == lines) {
            Some((_, names)) => names.push(&r.node.name),
            None => groups.push((lines, vec![&r.node.name])),
        }
    }
    let to_reset: usize = groups.iter().map(|(_, n)| n.len()).sum();
    let mut s = format!(
        "Reset: {to_reset} node(s) to reset, {} unmanaged, {} failed:\n",
        unmanaged.len(),
        failed.len()
    );
    for (lines, names) in &groups {
        s.push_str(&format!("  {}:\n", names.join(", ")));
        for l in lines {
            s.push_str(&format!("    {l}\n"));
        }
    }
    if !unmanaged.is_empty() {
        s.push_str(&format!(
            "  {}: unmanaged (netctl never changed it): left alone\n",
            unmanaged.join(", ")
        ));
    }
    for f in failed {
        s.push_str(&format!(
            "  {}: {}\n",
            f.name,
            crate::printer::row_error(&f.name, f.error.as_deref())
        ));
    }
    s
}

/// Reset every node the answer (or --yes) approves; a "no" releases every lock and is the error.
pub async fn run(run: &Run, yes: bool) -> Result<Vec<ResetReport>, Error> {
    let jobs: Vec<_> = run
        .cluster
        .nodes
        .iter()
        .map(|n| (n.clone(), run.progress.node(&n.name)))
        .collect();
    let prepared = fleet::run(jobs, run.concurrency, |(n, line)| {
        prepare(run.clone(), n, line)
    })
    .await;
    let (mut ready, mut failed) = (Vec::new(), Vec::new());
    for p in prepared {
        match p {
            Ok(r) => ready.push(r),
            Err(f) => failed.push(f),
        }
    }
    let to_reset = ready.iter().filter(|r| r.state.is_some()).count();
    if to_reset > 0 {
        let question = format!("Remove netctl's changes from {to_reset} node(s)?");
        let summary = summary(&ready, &failed);
        if let Err(e) =
            crate::approve::approve("reset", yes, &summary, &question, Some(&run.progress))
        {
            for r in ready {
                release(r, &run.id, "not reset").await;
            }
            return Err(e);
        }
    }
    let mut reports = fleet::run(ready, run.concurrency, |r| reset_node(run.clone(), r)).await;
    reports.extend(failed);
    // In the profile's order.
    let order = |name: &str| run.cluster.nodes.iter().position(|n| n.name == name);
    reports.sort_by_key(|r| order(&r.name));
    Ok(reports)
}

pub fn text(reports: &[ResetReport]) -> String {
    let mut t = Table::new(&["NODE", "RESULT", "RESTORED", "REMOVED", "COMMANDS", "ERROR"]);
    for r in reports {
        t.row(vec![
            r.name.clone(),
            r.result.clone(),
            r.files_restored.to_string(),
            r.files_removed.to_string(),
            r.commands_run.to_string(),
            crate::printer::row_error(&r.name, r.error.as_deref()),
        ]);
    }
    t.render()
}
