//! One node's SSH session behind the single gate every remote change passes through. Reads run
//! always; changes (`change`, `upload`) are only recorded under `--dry-run`, so a test can prove a
//! dry run wrote nothing, and every command is a script on stdin, never an interpolated string.

use crate::transport::{Output, Session, Target, TransportError, Upload};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{node}: {title} failed (exit {status}){}", stderr_suffix(.stderr))]
    Command {
        node: String,
        title: String,
        status: u32,
        stderr: String,
    },
    #[error("{node}: locked by {holder}; {way_out}")]
    Locked {
        node: String,
        holder: String,
        /// The holder's run id (empty when the lock does not name one).
        run: String,
        /// Whether the holder's process is alive, where this machine can tell (it took the lock).
        alive: Option<bool>,
        way_out: String,
    },
    #[error("{node}: {message}")]
    State { node: String, message: String },
    /// Refused for safety (exit 3), with why.
    #[error("{node}: {message}")]
    Refused { node: String, message: String },
    /// A switch that did not finish is recorded on the node: only `switch --resume` or
    /// `switch --rollback` may touch it, or its record (and the way back) would be lost.
    #[error("{node}: an interrupted switch (run {run_id}) is recorded here: continue it with `netctl switch --resume` or undo it with `netctl switch --rollback`")]
    SwitchInProgress { node: String, run_id: String },
}

fn stderr_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl RemoteError {
    /// Refusals (host key, lock) stop the run with exit 3; everything else is a failure (exit 1).
    pub fn is_refusal(&self) -> bool {
        match self {
            RemoteError::Transport(t) => t.is_refusal(),
            RemoteError::Locked { .. }
            | RemoteError::SwitchInProgress { .. }
            | RemoteError::Refused { .. } => true,
            _ => false,
        }
    }
}

pub struct Remote {
    pub node: String,
    session: Session,
    dry_run: bool,
    /// The profile's path as the operator gave it, for commands named in refusals.
    profile: String,
}

impl Remote {
    pub async fn connect(target: &Target, dry_run: bool) -> Result<Remote, RemoteError> {
        let session = Session::connect(target).await?;
        Ok(Remote {
            node: target.name.clone(),
            session,
            dry_run,
            profile: String::new(),
        })
    }

    /// Name the profile in the commands refusals suggest (`netctl unlock -p PROFILE ...`).
    pub fn with_profile(mut self, path: &std::path::Path) -> Remote {
        self.profile = path.display().to_string();
        self
    }

    /// Remote executions on this node's session so far.
    pub fn executions(&self) -> usize {
        self.session.executions()
    }

    pub fn profile_hint(&self) -> String {
        if self.profile.is_empty() {
            "PROFILE".into()
        } else {
            crate::provider::sh_quote(&self.profile)
        }
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    async fn sh(&self, title: &str, script: &str) -> Result<Output, RemoteError> {
        let out = self.session.run_script(script.as_bytes()).await?;
        if !out.success() {
            return Err(RemoteError::Command {
                node: self.node.clone(),
                title: title.to_string(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(out)
    }

    /// Run a read-only script; returns its stdout.
    pub async fn read(&self, title: &str, script: &str) -> Result<String, RemoteError> {
        Ok(String::from_utf8_lossy(&self.sh(title, script).await?.stdout).into_owned())
    }

    /// Run a read-only script, returning its output whatever its exit status (checks).
    pub async fn probe(&self, script: &str) -> Result<Output, RemoteError> {
        Ok(self.session.run_script(script.as_bytes()).await?)
    }

    /// `probe` for scripts that bound themselves and may take up to `limit` (kubectl on a node).
    pub async fn probe_for(
        &self,
        script: &str,
        limit: std::time::Duration,
    ) -> Result<Output, RemoteError> {
        Ok(self
            .session
            .run_script_for(script.as_bytes(), limit)
            .await?)
    }

    /// Run a script that changes the node (skipped under --dry-run: what would change is the
    /// plan, printed from the diff).
    pub async fn change(&self, title: &str, script: &str) -> Result<String, RemoteError> {
        if self.dry_run {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(&self.sh(title, script).await?.stdout).into_owned())
    }

    /// Replace files atomically, backing up what they replace (skipped under --dry-run).
    pub async fn upload(
        &self,
        files: &[Upload],
        backup_dir: Option<&str>,
    ) -> Result<(), RemoteError> {
        if self.dry_run {
            return Ok(());
        }
        Ok(self.session.upload(files, backup_dir).await?)
    }

    pub async fn close(self) {
        self.session.close().await
    }
}
