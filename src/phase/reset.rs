//! reset: undo everything state.json says netctl installed, as one node transaction (txn.rs): run
//! the recorded teardown (routes, links), stop and disable units it created, put back the
//! originals of files it took over, remove the files it created, and drop state.json. Copies of
//! everything removed go to this run's backup directory first; a failure puts it all back.

use crate::remote::{Remote, RemoteError};
use crate::state::{NodeState, ORIGINALS_DIR, STATE_FILE};

use super::txn::{self, Txn};

pub struct ResetCounts {
    pub files_restored: usize,
    pub files_removed: usize,
    pub commands_run: usize,
    pub units_disabled: usize,
}

/// The transaction that resets a node, and what it will count.
pub fn plan(state: &NodeState, systemd: bool) -> (Txn, ResetCounts) {
    let mut t = Txn::default();
    for s in &state.teardown {
        t.run(s);
    }
    let created_units: Vec<&String> = state
        .units
        .iter()
        .filter(|u| {
            state
                .files
                .get(&format!("/etc/systemd/system/{u}"))
                .is_some_and(|f| !f.original)
        })
        .collect();
    if systemd {
        for u in &created_units {
            t.disable(u);
        }
    }
    let (mut restored, mut removed) = (0, 0);
    for (path, f) in &state.files {
        if f.original {
            t.restore(path);
            restored += 1;
        } else {
            t.remove(path);
            removed += 1;
        }
    }
    t.remove(STATE_FILE);
    if systemd
        && state
            .files
            .keys()
            .any(|p| p.starts_with("/etc/systemd/system/"))
    {
        t.reload();
    }
    t.commit();
    for (path, _) in state.files.iter().filter(|(_, f)| f.original) {
        t.purge(path);
    }
    t.tidy(ORIGINALS_DIR);
    t.tidy("/usr/local/lib/netctl");
    t.undo_after_restore(&state.commands);
    let counts = ResetCounts {
        files_restored: restored,
        files_removed: removed,
        commands_run: state.teardown.len(),
        units_disabled: if systemd { created_units.len() } else { 0 },
    };
    (t, counts)
}

pub async fn reset(
    remote: &Remote,
    state: &NodeState,
    run_id: &str,
    systemd: bool,
) -> Result<ResetCounts, RemoteError> {
    let (t, counts) = plan(state, systemd);
    match txn::apply(remote, &t, run_id).await? {
        txn::Outcome::Applied => Ok(counts),
        other => Err(txn::failed(remote, other, run_id)),
    }
}
