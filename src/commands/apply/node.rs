//! One node's part of init: connect, lock and gather, plan; the confirmation over every node's
//! plan; the node's transaction.

use std::sync::Arc;

use crate::phase::{gather, lock, txn};
use crate::plan::{self, NodeChanges};
use crate::printer::{NodeLine, Progress};
use crate::profile::{Cluster, Node};
use crate::provider::{self, NodePlan};
use crate::remote::{Remote, RemoteError};
use crate::run::Run;
use crate::state::Gathered;

use super::report::{NodeReport, Outcome};

/// A node after connect, lock, gather and plan, holding its session for the apply stage.
pub(super) struct Prepared {
    pub(super) node: Node,
    /// Shared with preflight, which runs over the same session.
    pub(super) remote: Arc<Remote>,
    pub(super) desired: NodePlan,
    pub(super) found: Gathered,
    pub(super) changes: NodeChanges,
    pub(super) line: NodeLine,
}

pub(super) async fn prepare(run: Run, node: Node, line: NodeLine) -> Result<Prepared, NodeReport> {
    let fail = |e: RemoteError| NodeReport::failed(&node.name, &e);
    let (cluster, run_id, dry_run) = (&run.cluster, &run.id, run.dry_run);
    line.phase("connect");
    let remote = run.connect(&node).await.map_err(fail)?;
    line.phase("lock and gather");
    let desired = provider::node_plan(cluster, &node, &run.inputs);
    let holder = lock::Holder::me(run_id, if dry_run { "plan" } else { "init" });
    let found = match gather::lock_and_gather_for_apply(&remote, &desired, &holder).await {
        Ok(g) => g,
        Err(e) => {
            remote.close().await;
            return Err(fail(e));
        }
    };
    // Edits become files against what the node has; one that cannot be made safely fails the
    // node before anything changes there.
    let desired = match provider::edit::resolve(&desired, &found) {
        Ok(d) => d,
        Err(e) => {
            if !dry_run {
                let _ = lock::unlock(&remote, run_id).await;
            }
            remote.close().await;
            return Err(fail(RemoteError::State {
                node: node.name.clone(),
                message: e.to_string(),
            }));
        }
    };
    let changes = plan::diff(&desired, &found, node.has_systemd());
    Ok(Prepared {
        node,
        remote: Arc::new(remote),
        desired,
        found,
        changes,
        line,
    })
}

/// Units whose inputs changed, on a node where nothing can restart them.
pub(super) fn skipped_restarts(p: &Prepared) -> Vec<String> {
    if p.node.has_systemd() {
        return vec![];
    }
    plan::diff(&p.desired, &p.found, true).restart
}

/// One node's transaction; the session stays open for verify.
pub(super) async fn apply_node(
    cluster: Arc<Cluster>,
    p: Prepared,
    run_id: String,
) -> (NodeReport, Arc<Remote>) {
    let skipped = skipped_restarts(&p);
    let Prepared {
        node,
        remote,
        desired,
        found,
        changes,
        line,
    } = p;
    let backend = backend_name(&cluster);
    let mut state = plan::next_state(
        &desired,
        found.state.as_ref(),
        &changes,
        cluster.provider().as_str(),
        &backend,
        &cluster.hash,
        &run_id,
    );
    // An unchanged node keeps its record as it is (run id included): a no-op run writes nothing.
    if let Some(prev) = &found.state {
        if changes.files.is_empty() {
            state.run_id = prev.run_id.clone();
        }
    }
    let write_state = found.state.as_ref() != Some(&state);
    let t = txn::for_apply(
        &desired,
        &changes,
        found.state.as_ref(),
        write_state.then_some(&state),
    );
    line.phase("apply");
    let result = txn::apply(&remote, &t, &run_id).await;
    let report = match result {
        Ok(txn::Outcome::Applied) => NodeReport {
            name: node.name.clone(),
            result: if changes.files.is_empty()
                && changes.restart.is_empty()
                && changes.enable.is_empty()
            {
                Outcome::Unchanged
            } else {
                Outcome::Applied
            },
            files_changed: changes.files_changed(),
            commands_run: changes.commands.len(),
            restarts: changes.restart.len(),
            restarted: changes.restart.clone(),
            restarts_skipped: skipped,
            error: None,
            remote_executions: None,
            changes: Some(changes),
        },
        Ok(other) => NodeReport::failed(&node.name, &txn::failed(&remote, other, &run_id)),
        Err(e) => {
            // Staging failed before anything changed (exit 90, or refused here): the lock is
            // still ours. Any other error (a dropped connection) leaves the transaction to
            // finish on the node, and it releases the lock itself.
            if matches!(
                e,
                RemoteError::Command { status: 90, .. } | RemoteError::State { .. }
            ) {
                let _ = lock::unlock(&remote, &run_id).await;
            }
            let mut r = NodeReport::failed(&node.name, &e);
            if matches!(e, RemoteError::Transport(_)) {
                r.error = Some(format!(
                    "{e} (the node's transaction goes on without netctl: it finishes or puts the node back, and the next run reports it)"
                ));
            }
            r
        }
    };
    line.done(&format!("{:?}", report.result).to_lowercase());
    let mut report = report;
    report.remote_executions = Some(remote.executions());
    (report, remote)
}

pub fn backend_name(cluster: &Cluster) -> String {
    crate::network::Network::of(cluster)
        .backend()
        .unwrap_or_default()
        .into()
}

/// The shared approval rule (approve.rs) over every node's plan, when something would change
/// (main refuses a run without --yes and without a terminal before it connects): the plan's
/// summary first, then the question with the progress lines hidden.
pub(super) fn confirm(ready: &[Prepared], progress: &Progress) -> Result<(), crate::Error> {
    let changing: Vec<&Prepared> = ready
        .iter()
        .filter(|p| !p.changes.files.is_empty() || !p.changes.restart.is_empty())
        .collect();
    if changing.is_empty() {
        return Ok(());
    }
    let mut summary = format!(
        "Plan: {} node(s) to change, {} unchanged (`netctl plan` shows the diffs):\n",
        changing.len(),
        ready.len() - changing.len()
    );
    for p in &changing {
        summary.push_str(&format!(
            "  {}: {} file(s), {} restart(s)\n",
            p.node.name,
            p.changes.files_changed(),
            p.changes.restart.len()
        ));
    }
    crate::approve::approve(
        "init",
        false,
        &summary,
        &format!("Apply changes to {} node(s)?", changing.len()),
        Some(progress),
    )
}
