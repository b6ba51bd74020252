//! `netctl unlock -p P --run RUN_ID`: clear the node locks a run left when it was killed or cut
//! off before its node transactions started (a transaction releases its own lock when it ends).
//! Per node: read the lock and the transactions (read-only); a lock held by another run, or none,
//! is left alone; a lock of RUN_ID is cleared only when that run is not alive where netctl can
//! tell (its process on this machine, its transaction on the node). A transaction of RUN_ID that
//! never finished is put back first, by its own script.

use serde::Serialize;

use crate::fleet;
use crate::phase::{gather, lock, txn};
use crate::printer::Table;
use crate::profile::Node;
use crate::provider::NodePlan;
use crate::remote::{Remote, RemoteError};
use crate::run::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Result {
    /// The run's lock was removed.
    Unlocked,
    /// The node was not locked by the run (free, or another run's: left alone).
    NotHeld,
    /// The run is alive: nothing removed.
    Refused,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct UnlockReport {
    pub name: String,
    pub result: Result,
    pub detail: String,
}

async fn unlock_node(
    r: Run,
    node: Node,
    run: String,
    line: crate::printer::NodeLine,
) -> UnlockReport {
    line.phase("connect");
    let report = match r.connect(&node).await {
        Ok(remote) => {
            line.phase("unlock");
            let r = clear(&remote, &run).await;
            remote.close().await;
            r
        }
        Err(e) => Err(e),
    };
    line.done("done");
    let (result, detail) = match report {
        Ok(pair) => pair,
        Err(e) if e.is_refusal() => (Result::Refused, e.to_string()),
        Err(e) => (Result::Failed, e.to_string()),
    };
    UnlockReport {
        name: node.name,
        result,
        detail,
    }
}

async fn clear(remote: &Remote, run: &str) -> std::result::Result<(Result, String), RemoteError> {
    let found = gather::gather(remote, &NodePlan::default()).await?;
    let holder = found.lock.as_deref().map(lock::Holder::parse);
    let ours = holder.as_ref().is_some_and(|h| h.run == run);
    if let Some((_, true)) = found.txns.iter().find(|(r, _)| r == run) {
        return Err(RemoteError::State {
            node: remote.node.clone(),
            message: format!(
                "run {run}'s transaction is still running on the node: it releases the lock itself when it ends"
            ),
        });
    }
    if let Some(h) = holder.as_ref().filter(|_| ours) {
        if h.alive_here() == Some(true) {
            return Err(RemoteError::Refused {
                node: remote.node.clone(),
                message: format!(
                    "run {run} is still alive here (pid {}): stop it first",
                    h.pid
                ),
            });
        }
    }
    let mut detail = Vec::new();
    if found.txns.iter().any(|(r, running)| r == run && !running) {
        txn::undo_interrupted(remote, run).await?;
        detail.push(format!("put back run {run}'s unfinished transaction"));
    }
    if !ours {
        let why = match &holder {
            None => "not locked".to_string(),
            Some(h) => format!("locked by {}, not by {run}: left alone", h.describe()),
        };
        detail.push(why);
        return Ok((Result::NotHeld, detail.join("; ")));
    }
    remote.change("unlock", &lock::release_script(run)).await?;
    detail.insert(
        0,
        format!(
            "removed the lock of {}",
            holder.map(|h| h.describe()).unwrap_or_default()
        ),
    );
    Ok((Result::Unlocked, detail.join("; ")))
}

/// Clear `dead_run`'s locks on every node (this run's own id is not used: it takes no lock).
pub async fn run(run: &Run, dead_run: String) -> Vec<UnlockReport> {
    let jobs: Vec<_> = run
        .cluster
        .nodes
        .iter()
        .map(|n| (n.clone(), run.progress.node(&n.name)))
        .collect();
    fleet::run(jobs, run.concurrency, |(n, line)| {
        unlock_node(run.clone(), n, dead_run.clone(), line)
    })
    .await
}

pub fn text(reports: &[UnlockReport]) -> String {
    let mut t = Table::new(&["NODE", "RESULT", "DETAIL"]);
    for r in reports {
        t.row(vec![
            r.name.clone(),
            serde_json::to_value(r.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            crate::printer::row_error(&r.name, Some(&r.detail)),
        ]);
    }
    t.render()
}
