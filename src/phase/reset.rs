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
    let created_units = created_units(state);
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

/// What `plan` will do, one line each, in its order: for a person to read before approving.
pub fn describe(state: &NodeState, systemd: bool) -> Vec<String> {
    let mut lines: Vec<String> = state
        .teardown
        .iter()
        .map(|s| format!("run: {}", s.title))
        .collect();
    if systemd {
        lines.extend(
            created_units(state)
                .into_iter()
                .map(|u| format!("disable {u}")),
        );
    }
    for (path, f) in &state.files {
        let verb = if f.original { "restore" } else { "remove" };
        lines.push(format!("{verb} {path}"));
    }
    lines
}

/// The units netctl enabled whose unit file it created (a unit it found is left enabled).
fn created_units(state: &NodeState) -> Vec<&String> {
    state
        .units
        .iter()
        .filter(|u| {
            state
                .files
                .get(&format!("/etc/systemd/system/{u}"))
                .is_some_and(|f| !f.original)
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Step;
    use crate::state::ManagedFile;

    fn file(original: bool) -> ManagedFile {
        ManagedFile {
            sha256: "0".repeat(64),
            mode: 0o644,
            original,
            binary: false,
        }
    }

    /// The lines a person approves name every step `plan` takes: teardown, units it created (a
    /// unit it found stays), files put back and files removed.
    #[test]
    fn the_description_names_what_the_reset_does() {
        let mut st = NodeState::default();
        st.teardown.push(Step {
            title: "routes down".into(),
            command: "sh routes.sh down".into(),
        });
        st.units = vec!["netctl-routes.service".into(), "found.service".into()];
        st.files.insert(
            "/etc/systemd/system/netctl-routes.service".into(),
            file(false),
        );
        st.files
            .insert("/etc/systemd/system/found.service".into(), file(true));
        st.files
            .insert("/etc/cni/net.d/10-bridge.conf".into(), file(false));
        let want = [
            "run: routes down",
            "disable netctl-routes.service",
            "remove /etc/cni/net.d/10-bridge.conf",
            "restore /etc/systemd/system/found.service",
            "remove /etc/systemd/system/netctl-routes.service",
        ];
        assert_eq!(describe(&st, true), want);
        let (_, counts) = plan(&st, true);
        assert_eq!(counts.units_disabled, 1);
        // Without systemd nothing is disabled, and the description says so.
        assert!(!describe(&st, false)
            .iter()
            .any(|l| l.starts_with("disable")));
    }
}
