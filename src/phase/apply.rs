//! apply: the phases that change a node, in order: keep originals of files netctl takes over,
//! write changed files atomically (backing up what they replace), remove files no longer wanted,
//! reload and enable units, run the provider's commands, restart what changed, record state.json.

use crate::plan::{FileAction, NodeChanges};
use crate::provider::{sh_quote, Step};
use crate::remote::{Remote, RemoteError};
use crate::state::{NodeState, BACKUPS_DIR, ORIGINALS_DIR, STATE_FILE};
use crate::transport::Upload;

pub fn backup_dir(run_id: &str) -> String {
    format!("{BACKUPS_DIR}/{run_id}")
}

/// Files: originals kept, changed files written, unwanted files removed or restored.
pub async fn files(remote: &Remote, ch: &NodeChanges, run_id: &str) -> Result<(), RemoteError> {
    let mut keep = String::new();
    for c in ch.files.iter().filter(|c| c.take_over) {
        let orig = format!("{ORIGINALS_DIR}{}", c.path);
        keep.push_str(&format!(
            "[ -e {o} ] || {{ mkdir -p \"$(dirname {o})\" && cp -a {p} {o}; }}\n",
            o = sh_quote(&orig),
            p = sh_quote(&c.path)
        ));
    }
    if !keep.is_empty() {
        remote
            .change("keep originals", &format!("set -e\n{keep}"))
            .await?;
    }
    let uploads: Vec<Upload> = ch
        .files
        .iter()
        .filter(|c| c.action != FileAction::Remove)
        .filter_map(|c| c.new.as_ref())
        .map(|f| Upload {
            path: f.path.clone(),
            content: f.bytes().to_vec(),
            mode: f.mode,
            owner: None,
        })
        .collect();
    let backups = backup_dir(run_id);
    if !uploads.is_empty() {
        remote.upload(&uploads, Some(&backups)).await?;
    }
    let mut remove = String::new();
    for c in ch.files.iter().filter(|c| c.action == FileAction::Remove) {
        let b = format!("{backups}{}", c.path);
        remove.push_str(&format!(
            "if [ -e {p} ]; then mkdir -p \"$(dirname {b})\" && cp -a {p} {b}; fi\n",
            p = sh_quote(&c.path),
            b = sh_quote(&b)
        ));
        if c.restore_original {
            let o = format!("{ORIGINALS_DIR}{}", c.path);
            remove.push_str(&format!(
                "mv -f {o} {p}\n",
                o = sh_quote(&o),
                p = sh_quote(&c.path)
            ));
        } else {
            remove.push_str(&format!("rm -f {}\n", sh_quote(&c.path)));
        }
    }
    if !remove.is_empty() {
        remote
            .change("remove files", &format!("set -e\n{remove}"))
            .await?;
    }
    Ok(())
}

/// daemon-reload when a unit file changed, and enable units that are not yet.
pub async fn units(remote: &Remote, ch: &NodeChanges) -> Result<(), RemoteError> {
    if ch.daemon_reload {
        remote
            .change("systemctl daemon-reload", "systemctl daemon-reload")
            .await?;
    }
    for u in &ch.enable {
        remote
            .change(
                &format!("enable {u}"),
                &format!("systemctl enable --quiet {}", sh_quote(u)),
            )
            .await?;
    }
    Ok(())
}

/// Run steps in order; returns how many ran.
pub async fn commands(remote: &Remote, steps: &[Step]) -> Result<usize, RemoteError> {
    for s in steps {
        remote.change(&s.title, &s.command).await?;
    }
    Ok(steps.len())
}

pub async fn restart(remote: &Remote, units: &[String]) -> Result<(), RemoteError> {
    for u in units {
        remote
            .change(
                &format!("restart {u}"),
                &format!("systemctl restart {}", sh_quote(u)),
            )
            .await?;
    }
    Ok(())
}

/// Write state.json: the node's own record of what netctl installed and how to undo it. The
/// record it replaces is backed up with the run's other files, so a rollback restores it too.
pub async fn record(remote: &Remote, state: &NodeState, run_id: &str) -> Result<(), RemoteError> {
    let mut json = serde_json::to_vec_pretty(state).expect("state serialises");
    json.push(b'\n');
    remote
        .upload(
            &[Upload {
                path: STATE_FILE.into(),
                content: json,
                mode: 0o644,
                owner: None,
            }],
            Some(&backup_dir(run_id)),
        )
        .await
}
