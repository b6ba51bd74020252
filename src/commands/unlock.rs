//! `netctl unlock -p P --run RUN_ID`: clear the node locks a run left when it was killed or cut
//! off before its node transactions started (a transaction releases its own lock when it ends).
//! Per node: read the lock and the transactions (read-only), then show what will be cleared and
//! ask (approve.rs). A lock held by another run, or none, is left alone; a lock of RUN_ID is
//! cleared only when that run is not alive where netctl can tell (its process on this machine,
//! its transaction on the node). A transaction of RUN_ID that never finished is put back first,
//! by its own script.

use serde::Serialize;

use crate::fleet;
use crate::phase::{gather, lock, txn};
use crate::printer::{NodeLine, Table};
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

/// What a node holds of the run, read before anything is asked.
struct Found {
    holder: Option<lock::Holder>,
    /// The lock is the run's.
    ours: bool,
    /// The run left an unfinished transaction that is not running.
    put_back: bool,
}

impl Found {
    fn changes(&self) -> bool {
        self.ours || self.put_back
    }

    /// What the unlock does on the node, in its order (or why it leaves it alone).
    fn describe(&self, run: &str) -> Vec<String> {
        let mut detail = Vec::new();
        if self.ours {
            detail.push(format!(
                "remove the lock of {}",
                self.holder
                    .as_ref()
                    .map(|h| h.describe())
                    .unwrap_or_default()
            ));
        }
        if self.put_back {
            detail.push(format!("put back run {run}'s unfinished transaction"));
        }
        if !self.ours {
            detail.push(self.left_alone(run));
        }
        detail
    }

    fn left_alone(&self, run: &str) -> String {
        match &self.holder {
            None => "not locked".to_string(),
            Some(h) => format!("locked by {}, not by {run}: left alone", h.describe()),
        }
    }
}

/// Read the lock and the transactions (read-only); a run still going is refused here.
async fn inspect(remote: &Remote, run: &str) -> std::result::Result<Found, RemoteError> {
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
    let put_back = found.txns.iter().any(|(r, running)| r == run && !running);
    Ok(Found {
        holder,
        ours,
        put_back,
    })
}

/// Read the node again (time has passed since the question) and clear what is the run's.
async fn clear(remote: &Remote, run: &str) -> std::result::Result<(Result, String), RemoteError> {
    let found = inspect(remote, run).await?;
    let mut detail = Vec::new();
    if found.put_back {
        txn::undo_interrupted(remote, run).await?;
        detail.push(format!("put back run {run}'s unfinished transaction"));
    }
    if !found.ours {
        detail.push(found.left_alone(run));
        return Ok((Result::NotHeld, detail.join("; ")));
    }
    remote.change("unlock", &lock::release_script(run)).await?;
    detail.insert(0, found.describe(run)[0].replacen("remove", "removed", 1));
    Ok((Result::Unlocked, detail.join("; ")))
}

fn report(name: &str, r: std::result::Result<(Result, String), RemoteError>) -> UnlockReport {
    let (result, detail) = match r {
        Ok(pair) => pair,
        Err(e) if e.is_refusal() => (Result::Refused, e.to_string()),
        Err(e) => (Result::Failed, e.to_string()),
    };
    UnlockReport {
        name: name.to_string(),
        result,
        detail,
    }
}

/// A node connected and read, waiting for the answer.
struct Ready {
    node: Node,
    remote: Remote,
    found: Found,
    line: NodeLine,
}

async fn prepare(
    r: Run,
    node: Node,
    run: String,
    line: NodeLine,
) -> std::result::Result<Ready, UnlockReport> {
    line.phase("connect");
    let remote = match r.connect(&node).await {
        Ok(remote) => remote,
        Err(e) => {
            line.done("done");
            return Err(report(&node.name, Err(e)));
        }
    };
    line.phase("read the lock");
    match inspect(&remote, &run).await {
        Ok(found) => {
            line.phase("waiting for the answer");
            Ok(Ready {
                node,
                remote,
                found,
                line,
            })
        }
        Err(e) => {
            remote.close().await;
            line.done("done");
            Err(report(&node.name, Err(e)))
        }
    }
}

async fn finish(r: Ready, run: String) -> UnlockReport {
    let result = if r.found.changes() {
        r.line.phase("unlock");
        clear(&r.remote, &run).await
    } else {
        Ok((Result::NotHeld, r.found.describe(&run).join("; ")))
    };
    r.remote.close().await;
    r.line.done("done");
    report(&r.node.name, result)
}

/// Per node what the unlock will do, for the question.
fn summary(run: &str, ready: &[Ready], failed: &[UnlockReport]) -> String {
    let changing = ready.iter().filter(|r| r.found.changes()).count();
    let mut s = format!(
        "Unlock run {run}: {changing} node(s) to clear, {} left alone, {} failed:\n",
        ready.len() - changing,
        failed.len()
    );
    for r in ready {
        s.push_str(&format!(
            "  {}: {}\n",
            r.node.name,
            r.found.describe(run).join("; ")
        ));
    }
    for f in failed {
        s.push_str(&format!(
            "  {}: {}\n",
            f.name,
            crate::printer::row_error(&f.name, Some(&f.detail))
        ));
    }
    s
}

/// Clear `dead_run`'s locks on every node the answer (or --yes) approves (this run's own id is not
/// used: it takes no lock). A "no" closes every session and is the error.
pub async fn run(
    run: &Run,
    dead_run: String,
    yes: bool,
) -> std::result::Result<Vec<UnlockReport>, crate::Error> {
    let jobs: Vec<_> = run
        .cluster
        .nodes
        .iter()
        .map(|n| (n.clone(), run.progress.node(&n.name)))
        .collect();
    let prepared = fleet::run(jobs, run.concurrency, |(n, line)| {
        prepare(run.clone(), n, dead_run.clone(), line)
    })
    .await;
    let (mut ready, mut failed) = (Vec::new(), Vec::new());
    for p in prepared {
        match p {
            Ok(r) => ready.push(r),
            Err(f) => failed.push(f),
        }
    }
    let changing = ready.iter().filter(|r| r.found.changes()).count();
    if changing > 0 {
        let question = format!("Clear run {dead_run}'s locks on {changing} node(s)?");
        let summary = summary(&dead_run, &ready, &failed);
        if let Err(e) =
            crate::approve::approve("unlock", yes, &summary, &question, Some(&run.progress))
        {
            for r in ready {
                r.remote.close().await;
                r.line.done("not unlocked");
            }
            return Err(e);
        }
    }
    let mut reports = fleet::run(ready, run.concurrency, |r| finish(r, dead_run.clone())).await;
    reports.extend(failed);
    let order = |name: &str| run.cluster.nodes.iter().position(|n| n.name == name);
    reports.sort_by_key(|r| order(&r.name));
    Ok(reports)
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
