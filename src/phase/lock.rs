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

pub async fn unlock(remote: &Remote) -> Result<(), RemoteError> {
    remote
        .change("unlock", &format!("rm -f {}", sh_quote(LOCK_FILE)))
        .await
        .map(|_| ())
}

/// Replace a lock left by a dead run (the caller has checked that run is the one to continue).
pub async fn take_over(remote: &Remote, run_id: &str) -> Result<(), RemoteError> {
    unlock(remote).await?;
    lock(remote, run_id).await
}
