//! lock / unlock: one netctl run per node at a time. The lock is created atomically (noclobber),
//! names its holder, and lives under /run so a reboot clears it.

use crate::provider::sh_quote;
use crate::remote::{Remote, RemoteError};
use crate::state::{LOCK_DIR, LOCK_FILE};

/// The shell that takes the lock: exits 75 with the holder on stderr when another run has it.
pub fn lock_script(run_id: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let holder = format!("run {run_id} from {host} (pid {})", std::process::id());
    format!(
        "mkdir -p {dir}\nif ! ( set -C; printf '%s, since %s\\n' {holder} \"$(date -u +%FT%TZ)\" > {lock} ) 2>/dev/null; then cat {lock} >&2; exit 75; fi\n",
        dir = sh_quote(LOCK_DIR),
        lock = sh_quote(LOCK_FILE),
        holder = sh_quote(&holder),
    )
}

/// Turn a lock script's exit 75 into `Locked`, naming the holder.
pub fn held(remote: &Remote, e: RemoteError) -> RemoteError {
    match e {
        RemoteError::Command {
            status: 75,
            stderr: holder,
            ..
        } => RemoteError::Locked {
            node: remote.node.clone(),
            holder: holder.trim().to_string(),
            path: LOCK_FILE.into(),
        },
        other => other,
    }
}

pub async fn lock(remote: &Remote, run_id: &str) -> Result<(), RemoteError> {
    remote
        .change("lock", &lock_script(run_id))
        .await
        .map(|_| ())
        .map_err(|e| held(remote, e))
}

/// A lock held by a switch that died (its run id is in the node's record) is reported as the
/// interrupted switch it is, with how to finish or undo it; any other lock as held.
pub async fn explain(remote: &Remote, e: RemoteError) -> RemoteError {
    let RemoteError::Locked { node, holder, path } = e else {
        return e;
    };
    let found = super::gather::gather(remote, &crate::provider::NodePlan::default()).await;
    match found.ok().as_ref().and_then(|g| g.switch_run()) {
        Some(run_id) if holder.contains(&run_id) => RemoteError::SwitchInProgress { node, run_id },
        _ => RemoteError::Locked { node, holder, path },
    }
}

/// Backup directories kept per node: enough for `switch --rollback` and a person's second look.
pub const BACKUPS_KEPT: usize = 10;

/// Release the lock, and keep only the newest backup directories (run ids sort by time).
pub async fn unlock(remote: &Remote) -> Result<(), RemoteError> {
    let script = unlock_script(LOCK_FILE, crate::state::BACKUPS_DIR);
    remote.change("unlock", &script).await.map(|_| ())
}

fn unlock_script(lock: &str, backups: &str) -> String {
    format!(
        "rm -f {lock}\nif cd {dir} 2>/dev/null; then ls -1 | sort | head -n -{BACKUPS_KEPT} | while read -r d; do rm -rf -- \"$d\"; done; fi\n",
        lock = sh_quote(lock),
        dir = sh_quote(backups),
    )
}

/// Replace a lock left by a dead run (the caller has checked that run is the one to continue).
pub async fn take_over(remote: &Remote, run_id: &str) -> Result<(), RemoteError> {
    unlock(remote).await?;
    lock(remote, run_id).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn unlock_keeps_the_newest_backups() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join("lock");
        std::fs::write(&lock, "run x").unwrap();
        let backups = d.path().join("backups");
        for i in 0..13 {
            std::fs::create_dir_all(backups.join(format!("2026112{i:02}T000000Z-abcd/etc")))
                .unwrap();
        }
        let script = super::unlock_script(lock.to_str().unwrap(), backups.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!lock.exists());
        let mut left: Vec<String> = std::fs::read_dir(&backups)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), super::BACKUPS_KEPT);
        assert_eq!(
            left[0],
            "2026112{03}T000000Z-abcd".replace("{03}", "03"),
            "the oldest three went"
        );
    }
}
