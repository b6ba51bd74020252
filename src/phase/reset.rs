//! reset: undo everything state.json says netctl installed: run the recorded teardown (routes,
//! links), stop and disable units it created, put back the originals of files it took over,
//! remove the files it created, and drop state.json. Copies of everything removed go to this
//! run's backup directory first.

use crate::provider::sh_quote;
use crate::remote::{Remote, RemoteError};
use crate::state::{NodeState, ORIGINALS_DIR, STATE_FILE};

use super::apply::backup_dir;

pub struct ResetCounts {
    pub files_restored: usize,
    pub files_removed: usize,
    pub commands_run: usize,
    pub units_disabled: usize,
}

pub async fn reset(
    remote: &Remote,
    state: &NodeState,
    run_id: &str,
    systemd: bool,
) -> Result<ResetCounts, RemoteError> {
    for s in &state.teardown {
        remote.change(&s.title, &s.command).await?;
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
            remote
                .change(
                    &format!("disable {u}"),
                    &format!("systemctl disable --now --quiet {} || true", sh_quote(u)),
                )
                .await?;
        }
    }
    let backups = backup_dir(run_id);
    let mut script = String::from("set -e\n");
    let (mut restored, mut removed) = (0, 0);
    for (path, f) in &state.files {
        let p = sh_quote(path);
        let b = sh_quote(&format!("{backups}{path}"));
        script.push_str(&format!(
            "if [ -e {p} ]; then mkdir -p \"$(dirname {b})\" && cp -a {p} {b}; fi\n"
        ));
        if f.original {
            let o = sh_quote(&format!("{ORIGINALS_DIR}{path}"));
            script.push_str(&format!("mv -f {o} {p}\n"));
            restored += 1;
        } else {
            script.push_str(&format!("rm -f {p}\n"));
            removed += 1;
        }
    }
    script.push_str(&format!(
        "rm -f {}\nrm -rf {}\nrmdir /usr/local/lib/netctl 2>/dev/null || true\n",
        sh_quote(STATE_FILE),
        sh_quote(ORIGINALS_DIR)
    ));
    remote.change("restore files", &script).await?;
    if systemd
        && state
            .files
            .keys()
            .any(|p| p.starts_with("/etc/systemd/system/"))
    {
        remote
            .change("systemctl daemon-reload", "systemctl daemon-reload")
            .await?;
    }
    Ok(ResetCounts {
        files_restored: restored,
        files_removed: removed,
        commands_run: state.teardown.len(),
        units_disabled: if systemd { created_units.len() } else { 0 },
    })
}
