//! `netctl switch --networking X`: migrate a live cluster node by node (see migrate.rs for the
//! order and why). Each node's progress is recorded in its state.json, so a switch that dies
//! half way can be continued (`--resume`) or undone (`--rollback`); a failed phase rolls back
//! what this run did unless `--no-rollback`.
//!
//! The command: open the fleet (connect, read each node's record, lock and gather), run the
//! phase list (`phases.rs`) with the manager, release the fleet - on every path.

mod node;
mod phases;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Serialize;

use crate::fleet;
use crate::kubectl;
use crate::migrate::{self, Endpoint};
use crate::phase::{gather, lock, manager};
use crate::profile::{Cluster, Node};
use crate::provider::NodePlan;
use crate::remote::{Remote, RemoteError};
use crate::run::Run;
use crate::tempdir::PrivateDir;
use crate::Error;
use node::Conn;
use phases::{Step, Switch, FIRST_CHANGE, ROLLBACK, SWITCH};

use crate::state::Gathered;
pub use crate::state::{SwitchPhase, SwitchRecord};

#[derive(Debug, Clone)]
pub struct SwitchOptions {
    pub to: Endpoint,
    pub from: Option<Endpoint>,
    pub max_unavailable: usize,
    pub yes: bool,
    pub resume: bool,
    pub rollback: bool,
    pub no_rollback: bool,
    /// How long a node that stops answering (a reboot, a dropped connection) is waited for.
    pub wait: std::time::Duration,
    /// Run preflight for the target before any change (false: `--skip-preflight`).
    pub preflight: bool,
}

#[derive(Debug, Serialize)]
pub struct SwitchReport {
    pub run_id: String,
    pub from: String,
    pub to: String,
    pub result: String,
    pub switched: Vec<String>,
    pub rolled_back: Vec<String>,
    pub error: Option<String>,
    pub steps: Vec<String>,
}

/// Connect and read the node (read-only): its record, and who holds its lock.
async fn peek(run: &Run, node: Node) -> Result<(Node, Remote, Gathered), RemoteError> {
    let remote = run.connect(&node).await?;
    match gather::gather(&remote, &NodePlan::default()).await {
        Ok(g) => Ok((node, remote, g)),
        Err(e) => {
            remote.close().await;
            Err(e)
        }
    }
}

/// The switch a `--resume` or `--rollback` continues: the one the nodes' records name; where no
/// node has a record, a switch whose process is gone and left only its locks (killed before
/// its first record), so that even then `--rollback` alone clears the way.
fn continued(
    peeked: &[(Node, Remote, Gathered)],
    opts: &SwitchOptions,
) -> Result<Option<String>, Error> {
    let recorded: std::collections::BTreeSet<String> = peeked
        .iter()
        .filter_map(|(_, _, g)| g.switch_run())
        .collect();
    if recorded.len() > 1 {
        return Err(Error::Refused(format!(
            "the nodes record different switches ({}): undo them one at a time is not possible; inspect /var/lib/netctl/state.json on each node",
            recorded.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(r) = recorded.into_iter().next() {
        return Ok(Some(r));
    }
    if !(opts.resume || opts.rollback) {
        return Ok(None);
    }
    let dead: std::collections::BTreeSet<String> = peeked
        .iter()
        .filter_map(|(_, _, g)| g.lock.as_deref().map(lock::Holder::parse))
        .filter(|h| h.command == "switch" && h.alive_here() == Some(false))
        .map(|h| h.run)
        .collect();
    Ok((dead.len() == 1).then(|| dead.into_iter().next()).flatten())
}

/// Lock and gather (one round trip). A lock held by the switch this run continues is taken over
/// (rewritten to name this process) only when that switch's process is gone.
async fn open(
    node: Node,
    remote: Remote,
    held: Option<lock::Holder>,
    run_id: String,
    want: NodePlan,
    wait: std::time::Duration,
) -> Result<Conn, RemoteError> {
    let holder = lock::Holder::me(&run_id, "switch");
    let found = match held.filter(|h| h.run == run_id) {
        Some(h) if h.alive_here() == Some(true) && h.pid != holder.pid => {
            Err(RemoteError::Locked {
                node: node.name.clone(),
                holder: h.describe(),
                run: h.run.clone(),
                alive: Some(true),
                way_out: format!(
                    "that run is still going here (pid {}); wait for it to finish",
                    h.pid
                ),
            })
        }
        Some(_) => match lock::take_over(&remote, &run_id, &holder).await {
            Ok(()) => gather::gather(&remote, &want).await,
            Err(e) => Err(e),
        },
        None => gather::lock_and_gather(&remote, &want, &holder).await,
    };
    // A node transaction a killed run left going is waited for; one a reboot cut short is put
    // back first: what the switch decides from is the node at rest.
    let found = match found {
        Ok(g) => node::settled(&remote, &want, Some(g), wait).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(found) => Ok(Conn::new(node, remote, found)),
        Err(e) => {
            // Someone else's lock stays; ours (taken before the failure) goes.
            if !matches!(e, RemoteError::Locked { .. }) {
                let _ = lock::unlock(&remote, &run_id).await;
            }
            remote.close().await;
            Err(e)
        }
    }
}

/// Release this run's locks and close the sessions.
async fn release(conns: Vec<Conn>, run_id: &str) {
    for c in conns {
        let remote = c.into_remote();
        let _ = lock::unlock(&remote, run_id).await;
        // The gate's test pods are gone by now, so this is the last handle; were it not,
        // dropping it closes the session all the same.
        if let Ok(remote) = Arc::try_unwrap(remote) {
            remote.close().await;
        }
    }
}

fn unreachable(errors: Vec<String>, refused: bool) -> Error {
    let msg = format!(
        "cannot reach every node, nothing was changed:\n  {}",
        errors.join("\n  ")
    );
    if refused {
        Error::Refused(msg)
    } else {
        Error::Failed(msg)
    }
}

/// Every node connected, read, locked and gathered - or none locked and the reason. A run that
/// continues an interrupted switch takes that switch's id (returned with the nodes).
async fn open_fleet(
    run: &Run,
    opts: &SwitchOptions,
    to: &Cluster,
) -> Result<(Run, Vec<Conn>, Option<String>), Error> {
    let peeked = fleet::run(run.cluster.nodes.clone(), run.concurrency, |n| {
        let run = run.clone();
        async move { peek(&run, n).await }
    })
    .await;
    let mut errors = Vec::new();
    let mut refused = false;
    let mut reachable = Vec::new();
    for p in peeked {
        match p {
            Ok(p) => reachable.push(p),
            Err(e) => {
                refused |= e.is_refusal();
                errors.push(e.to_string());
            }
        }
    }
    let take_over = match continued(&reachable, opts) {
        Ok(t) => t,
        Err(e) => {
            for (_, remote, _) in reachable {
                remote.close().await;
            }
            return Err(e);
        }
    };
    if !errors.is_empty() {
        for (_, remote, _) in reachable {
            remote.close().await;
        }
        return Err(unreachable(errors, refused));
    }
    let run = match &take_over {
        Some(id) => {
            run.progress.println(&format!("continuing switch run {id}"));
            run.with_id(id)
        }
        None => run.clone(),
    };
    let jobs: Vec<_> = reachable
        .into_iter()
        .map(|(n, remote, g)| {
            let want = crate::provider::node_plan(to, &n, &run.inputs);
            let held = g.lock.as_deref().map(lock::Holder::parse);
            (n, remote, held, want)
        })
        .collect();
    let opened = fleet::run(jobs, run.concurrency, |(n, remote, held, want)| {
        open(n, remote, held, run.id.clone(), want, opts.wait)
    })
    .await;
    let mut conns = Vec::new();
    for o in opened {
        match o {
            Ok(c) => conns.push(c),
            Err(e) => {
                refused |= e.is_refusal();
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        return Ok((run, conns, take_over));
    }
    release(conns, &run.id).await;
    Err(unreachable(errors, refused))
}

pub async fn run(run: &Run, opts: SwitchOptions) -> Result<SwitchReport, Error> {
    let to = Arc::new(
        migrate::retarget(&run.cluster, &opts.to).map_err(|e| Error::Usage(e.to_string()))?,
    );
    let (run, conns, take_over) = open_fleet(run, &opts, &to).await?;
    // From here the nodes are locked: the one release below follows every way out.
    let result = switch(&run, &opts, to, &conns, take_over).await;
    release(conns, &run.id).await;
    result
}

/// Run the phase list over the locked fleet and turn the manager's outcome into the report or
/// the error.
async fn switch(
    run: &Run,
    opts: &SwitchOptions,
    to: Arc<Cluster>,
    conns: &[Conn],
    take_over: Option<String>,
) -> Result<SwitchReport, Error> {
    let mut s = Switch::new(run, opts, to, conns, take_over);
    let list = if opts.rollback { ROLLBACK } else { SWITCH };
    let outcome = manager::run(&mut s, list, !opts.no_rollback).await;
    if let Some(r) = s.report.take() {
        return Ok(r);
    }
    let Some((step, err)) = outcome.failed else {
        return Ok(SwitchReport {
            run_id: run.id.clone(),
            from: s.start().to_string(),
            to: opts.to.to_string(),
            result: if s.errs.is_empty() {
                "switched".into()
            } else {
                "switched, with errors".into()
            },
            switched: s.switched_names(),
            rolled_back: vec![],
            error: (!s.errs.is_empty()).then(|| s.errs.join("; ")),
            steps: s.steps.clone(),
        });
    };
    // Nothing had changed yet: the error as it is (a refusal stays one).
    if step < FIRST_CHANGE || step == Step::RollBackInterrupted {
        return Err(err);
    }
    if opts.no_rollback {
        return Err(Error::Failed(format!("{err}; stopped in place (--no-rollback): continue with `switch --resume` or undo with `switch --rollback`")));
    }
    // The nodes' network after the undo, checked (node checks only) where nodes were touched
    // and are back (a node the rollback could not reach keeps its record: named below).
    let mut verify_errors = Vec::new();
    if step >= Step::PrepareNodes {
        let from = s.from.as_ref().expect("decided");
        for c in conns.iter().filter(|c| !s.kept.contains(&c.node.name)) {
            if let Err(e) = node::gate(&c.remote(), from, &run.inputs, &c.node, None).await {
                verify_errors.push(e);
            }
        }
    }
    let state = if outcome.undo_errors.is_empty() && verify_errors.is_empty() {
        if s.rolled.is_empty() {
            format!(
                "the cluster is back on {} (no node had switched yet)",
                s.start()
            )
        } else {
            format!(
                "the cluster is back on {} (rolled back: {}; verify passed)",
                s.start(),
                s.rolled.join(", ")
            )
        }
    } else {
        let mut state = format!(
            "rollback incomplete: {}",
            outcome
                .undo_errors
                .iter()
                .chain(&verify_errors)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        if !s.kept.is_empty() {
            state.push_str(&format!(
                "; {} keep{} the switch's record: once reachable, `netctl switch --rollback -p {}` finishes the rollback",
                s.kept.join(", "),
                if s.kept.len() == 1 { "s" } else { "" },
                run.cluster.source.display()
            ));
        }
        state
    };
    Err(Error::Failed(format!(
        "switch to {} failed: {err}; {state}",
        opts.to
    )))
}

/// `cluster`'s manifests written into a new private temporary directory (removed when dropped).
fn cluster_files(cluster: &Cluster) -> Result<PrivateDir, String> {
    let dir = PrivateDir::new("netctl-switch-")
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    kubectl::write_cluster_files(&crate::provider::cluster_plan(cluster), dir.path())
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The shared approval rule (approve.rs) with the switch's description as the summary. No
/// progress lines are drawn yet (the fleet opens without them).
fn confirm(description: &str, question: &str) -> Result<(), Error> {
    crate::approve::approve("switch", false, description, question, None)
}

pub fn text(r: &SwitchReport) -> String {
    let mut s = String::new();
    for l in &r.steps {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!("switch {} -> {}: {}", r.from, r.to, r.result));
    if !r.switched.is_empty() {
        s.push_str(&format!(" ({})", r.switched.join(", ")));
    }
    if !r.rolled_back.is_empty() {
        s.push_str(&format!(" (rolled back: {})", r.rolled_back.join(", ")));
    }
    s.push('\n');
    s
}
