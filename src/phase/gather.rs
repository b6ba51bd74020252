//! gather: one read-only round trip for the node's state file, lock, managed files and units.

use std::collections::BTreeSet;

use crate::provider::NodePlan;
use crate::remote::{Remote, RemoteError};
use crate::state::{self, Gathered};

/// Read every file the plan wants (and what its edits need: the unit's other locations and its
/// drop-ins) and every file state.json says netctl manages.
pub async fn gather(remote: &Remote, desired: &NodePlan) -> Result<Gathered, RemoteError> {
    let mut g = parse(remote, &script(desired)).await?;
    complete(remote, desired, &mut g).await?;
    Ok(g)
}

/// The gather script for a plan.
pub fn script(desired: &NodePlan) -> String {
    let read = desired.read_paths();
    // Binaries (flanneld) are compared by sha256: their bytes are not read back.
    let binary: BTreeSet<&str> = desired
        .files
        .iter()
        .filter(|f| f.blob.is_some())
        .map(|f| f.path.as_str())
        .collect();
    let (digests, paths): (Vec<&str>, Vec<&str>) = read
        .iter()
        .map(|p| p.as_str())
        .partition(|p| binary.contains(p));
    let units: Vec<&str> = desired.units.iter().map(|u| u.name.as_str()).collect();
    // The unit's drop-in directories: every `*.conf` in them (see templates/node/gather.sh).
    let dirs = desired.list_dirs();
    let dirs: Vec<&str> = dirs.iter().map(|d| d.as_str()).collect();
    state::gather_script(&paths, &digests, &units, &dirs)
}

/// Read the files the node's record lists that the plan does not (a second round trip, only
/// then), and refuse a record that does not parse.
async fn complete(
    remote: &Remote,
    desired: &NodePlan,
    g: &mut Gathered,
) -> Result<(), RemoteError> {
    let wanted: BTreeSet<&str> = desired.files.iter().map(|f| f.path.as_str()).collect();
    let extra: Vec<(&str, bool)> = g
        .state
        .as_ref()
        .map(|s| {
            s.files
                .iter()
                .filter(|(p, _)| !wanted.contains(p.as_str()) && !g.files.contains_key(p.as_str()))
                .map(|(p, m)| (p.as_str(), m.binary))
                .collect()
        })
        .unwrap_or_default();
    if !extra.is_empty() {
        let (digests, paths): (Vec<_>, Vec<_>) = extra.iter().partition(|(_, binary)| *binary);
        let paths: Vec<&str> = paths.iter().map(|(p, _)| *p).collect();
        let digests: Vec<&str> = digests.iter().map(|(p, _)| *p).collect();
        let script = state::gather_script(&paths, &digests, &[], &[]);
        let more = parse(remote, &script).await?;
        g.files.extend(more.files);
    }
    if let Some(e) = &g.state_error {
        return Err(RemoteError::State {
            node: remote.node.clone(),
            message: format!(
                "{} does not parse ({e}); move it aside to let netctl start afresh",
                state::STATE_FILE
            ),
        });
    }
    Ok(())
}

/// Take the node lock and gather in one round trip (a dry run takes no lock: it only reads).
pub async fn lock_and_gather(
    remote: &Remote,
    desired: &NodePlan,
    holder: &super::lock::Holder,
) -> Result<Gathered, RemoteError> {
    if remote.dry_run() {
        return gather(remote, desired).await;
    }
    let script = format!("{}{}", super::lock::lock_script(holder), script(desired));
    let out = remote
        .change("lock and gather", &script)
        .await
        .map_err(|e| super::lock::held(remote, e))?;
    let mut g = state::parse_gather(&out).map_err(|e| RemoteError::State {
        node: remote.node.clone(),
        message: e.to_string(),
    })?;
    complete(remote, desired, &mut g).await?;
    Ok(g)
}

/// `lock_and_gather` for init and reset: a held lock is explained (it may be a switch that died),
/// a failed gather releases the lock it took, a transaction a dead run left unfinished is put back
/// first, and a node with an interrupted switch is refused (its record is the way back). On error
/// the lock is not held; the caller closes the session.
pub async fn lock_and_gather_for_apply(
    remote: &Remote,
    desired: &NodePlan,
    holder: &super::lock::Holder,
) -> Result<Gathered, RemoteError> {
    let run = holder.run.as_str();
    let mut found = match lock_and_gather(remote, desired, holder).await {
        Ok(g) => g,
        Err(e @ RemoteError::Locked { .. }) => return Err(super::lock::explain(remote, e).await),
        Err(other) => {
            let _ = super::lock::unlock(remote, run).await;
            return Err(other);
        }
    };
    if let Err(e) = recover(remote, &mut found, desired).await {
        let _ = super::lock::unlock(remote, run).await;
        return Err(e);
    }
    if let Some(run_id) = found.switch_run() {
        let _ = super::lock::unlock(remote, run).await;
        return Err(RemoteError::SwitchInProgress {
            node: remote.node.clone(),
            run_id,
        });
    }
    Ok(found)
}

/// Transactions that never finished (their run died with the node, or was killed on it) are put
/// back by their own scripts, then the node is read again. One still running means someone
/// removed its run's lock by hand: refused.
pub async fn recover(
    remote: &Remote,
    found: &mut Gathered,
    desired: &NodePlan,
) -> Result<Vec<String>, RemoteError> {
    if let Some((run, _)) = found.txns.iter().find(|(_, running)| *running) {
        return Err(RemoteError::State {
            node: remote.node.clone(),
            message: format!(
                "the transaction of run {run} is still running on the node; wait for it to finish"
            ),
        });
    }
    let undone: Vec<String> = found.txns.iter().map(|(r, _)| r.clone()).collect();
    if undone.is_empty() || remote.dry_run() {
        return Ok(vec![]);
    }
    for run in &undone {
        super::txn::undo_interrupted(remote, run).await?;
    }
    *found = gather(remote, desired).await?;
    Ok(undone)
}

async fn parse(remote: &Remote, script: &str) -> Result<Gathered, RemoteError> {
    let out = remote.read("gather", script).await?;
    state::parse_gather(&out).map_err(|e| RemoteError::State {
        node: remote.node.clone(),
        message: e.to_string(),
    })
}
