//! One node's SSH session behind the single gate every remote change passes through. Reads run
//! always; changes (`change`, `upload`) are only recorded under `--dry-run`, so a test can prove a
//! dry run wrote nothing, and every command is a script on stdin, never an interpolated string.
//!
//! Under the gate is the `Exec` seam: an SSH session, or in unit tests a recording fake
//! (`remote::fake`) that answers scripts by their title, so the order of a command's steps, its
//! rollback and its unlock on every exit path are tested without root or a lab.

use std::time::Duration;

use crate::transport::{Output, Session, Target, TransportError, Upload};

/// What a `Remote` runs its scripts on.
enum Exec {
    Ssh(Session),
    #[cfg(test)]
    Fake(std::sync::Arc<fake::Node>),
}

impl Exec {
    // The title names the step to the fake (a session's errors name it at the gate).
    #[cfg_attr(not(test), allow(unused_variables))]
    async fn run(
        &self,
        title: &str,
        script: &str,
        limit: Option<Duration>,
    ) -> Result<Output, TransportError> {
        match self {
            Exec::Ssh(s) => match limit {
                None => s.run_script(script.as_bytes()).await,
                Some(l) => s.run_script_for(script.as_bytes(), l).await,
            },
            #[cfg(test)]
            Exec::Fake(f) => Ok(f.run(title, script)),
        }
    }

    async fn upload(
        &self,
        files: &[Upload],
        backup_dir: Option<&str>,
    ) -> Result<(), TransportError> {
        match self {
            Exec::Ssh(s) => s.upload(files, backup_dir).await,
            #[cfg(test)]
            Exec::Fake(f) => {
                f.upload(files)
                    .map_err(|(status, detail)| TransportError::UploadScript {
                        node: f.name.clone(),
                        status,
                        detail,
                    })
            }
        }
    }

    fn executions(&self) -> usize {
        match self {
            Exec::Ssh(s) => s.executions(),
            #[cfg(test)]
            Exec::Fake(f) => f.calls().len(),
        }
    }

    async fn close(self) {
        match self {
            Exec::Ssh(s) => s.close().await,
            #[cfg(test)]
            Exec::Fake(f) => f.closed(),
        }
    }
}

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
    exec: Exec,
    dry_run: bool,
    /// The profile's path as the operator gave it, for commands named in refusals.
    profile: String,
}

impl Remote {
    pub async fn connect(target: &Target, dry_run: bool) -> Result<Remote, RemoteError> {
        let session = Session::connect(target).await?;
        Ok(Remote {
            node: target.name.clone(),
            exec: Exec::Ssh(session),
            dry_run,
            profile: String::new(),
        })
    }

    /// A remote on the recording fake (unit tests).
    #[cfg(test)]
    pub fn fake(node: std::sync::Arc<fake::Node>, dry_run: bool) -> Remote {
        Remote {
            node: node.name.clone(),
            exec: Exec::Fake(node),
            dry_run,
            profile: String::new(),
        }
    }

    /// Name the profile in the commands refusals suggest (`netctl unlock -p PROFILE ...`).
    pub fn with_profile(mut self, path: &std::path::Path) -> Remote {
        self.profile = path.display().to_string();
        self
    }

    /// Remote executions on this node's session so far.
    pub fn executions(&self) -> usize {
        self.exec.executions()
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
        let out = self.exec.run(title, script, None).await?;
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
        Ok(self.exec.run("probe", script, None).await?)
    }

    /// `probe` for scripts that bound themselves and may take up to `limit` (kubectl on a node).
    pub async fn probe_for(&self, script: &str, limit: Duration) -> Result<Output, RemoteError> {
        Ok(self.exec.run("probe", script, Some(limit)).await?)
    }

    /// Start a read-only script that stays on its channel, reading requests from stdin and
    /// answering on stdout until `finish` (preflight's agent); `limit` bounds the start.
    pub async fn converse(
        &self,
        script: &str,
        limit: Duration,
    ) -> Result<Conversation, RemoteError> {
        match &self.exec {
            Exec::Ssh(s) => Ok(Conversation::Ssh(
                s.converse("the preflight agent", script.as_bytes(), limit)
                    .await?,
            )),
            #[cfg(test)]
            Exec::Fake(f) => {
                let out = f.run("converse", script);
                Ok(Conversation::Fake {
                    node: f.clone(),
                    out: String::from_utf8_lossy(&out.stdout).into_owned(),
                })
            }
        }
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
        Ok(self.exec.upload(files, backup_dir).await?)
    }

    pub async fn close(self) {
        self.exec.close().await
    }
}

/// A script on its channel (`Remote::converse`). The fake answers each request by the rules,
/// titled "converse" (the script), "converse request" and "converse end".
pub enum Conversation {
    Ssh(crate::transport::Conversation),
    #[cfg(test)]
    Fake {
        node: std::sync::Arc<fake::Node>,
        out: String,
    },
}

impl Conversation {
    /// Stdout up to and including the line `marker` (all of it when the script ends first).
    pub async fn until(&mut self, marker: &str, limit: Duration) -> Result<String, RemoteError> {
        match self {
            Conversation::Ssh(c) => Ok(c.until(marker, limit).await?),
            #[cfg(test)]
            Conversation::Fake { out, .. } => Ok(std::mem::take(out)),
        }
    }

    /// Send `request`, then `until(marker)`.
    pub async fn ask(
        &mut self,
        request: &str,
        marker: &str,
        limit: Duration,
    ) -> Result<String, RemoteError> {
        match self {
            Conversation::Ssh(c) => {
                c.send(request.as_bytes()).await?;
                Ok(c.until(marker, limit).await?)
            }
            #[cfg(test)]
            Conversation::Fake { node, .. } => Ok(String::from_utf8_lossy(
                &node.run("converse request", request).stdout,
            )
            .into_owned()),
        }
    }

    /// Whether the script has ended.
    pub fn ended(&self) -> bool {
        match self {
            Conversation::Ssh(c) => c.ended(),
            #[cfg(test)]
            Conversation::Fake { .. } => false,
        }
    }

    /// Close its stdin and wait up to `limit` for it to end: its exit status and stderr.
    pub async fn finish(self, limit: Duration) -> Result<(u32, String), RemoteError> {
        match self {
            Conversation::Ssh(c) => Ok(c.finish(limit).await?),
            #[cfg(test)]
            Conversation::Fake { node, .. } => {
                let out = node.run("converse end", "");
                Ok((
                    out.status,
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ))
            }
        }
    }
}

/// The recording fake under `Remote`: every script is logged with its title and answered by a
/// rule (by default: success, no output, which reads as a fresh node).
#[cfg(test)]
pub mod fake {
    use std::sync::{Arc, Mutex};

    use crate::transport::{Output, Upload};

    type Rule = Box<dyn Fn(&str, &str, &str) -> Option<Output> + Send + Sync>;

    /// One call as the node saw it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Call {
        pub title: String,
        pub script: String,
    }

    /// A fleet of fake nodes sharing one set of rules, so a test says "fail `switch` steps on
    /// w2" once.
    #[derive(Default, Clone)]
    pub struct Net {
        rules: Arc<Mutex<Vec<Rule>>>,
        nodes: Arc<Mutex<Vec<Arc<Node>>>>,
        /// Nodes keep the state.json uploaded to them (see `remember_state`).
        stateful: Arc<std::sync::atomic::AtomicBool>,
    }

    pub struct Node {
        pub name: String,
        net: Net,
        log: Mutex<Vec<Call>>,
        state: Mutex<StateFile>,
    }

    /// A node's state.json as the switch's steps leave it: uploads replace it (the first one
    /// keeps the old as its backup), a gather reads it, dropping a switch record puts the
    /// backup back, settling writes the script's content.
    #[derive(Default)]
    struct StateFile {
        now: Option<Vec<u8>>,
        before: Option<Option<Vec<u8>>>,
        lock: Option<String>,
        /// Files a gather finds: (path, mode, content).
        files: Vec<(String, u32, Vec<u8>)>,
    }

    impl Net {
        /// Nodes remember their state.json (what a switch records on them) from here on.
        pub fn remember_state(&self) {
            self.stateful
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }

        /// Seed a node as an interrupted run left it: its state.json, the state.json its
        /// switch backed up (what putting the record back restores) and its lock file.
        pub fn seed(&self, name: &str, now: &str, before: Option<&str>, lock: Option<&str>) {
            self.remember_state();
            let n = self.node(name);
            let mut st = n.state.lock().unwrap();
            st.now = Some(now.as_bytes().to_vec());
            st.before = Some(before.map(|b| b.as_bytes().to_vec()));
            st.lock = lock.map(String::from);
        }

        /// Files the node holds, as a gather reads them back.
        pub fn seed_files(&self, name: &str, files: Vec<(String, u32, Vec<u8>)>) {
            self.remember_state();
            self.node(name).state.lock().unwrap().files = files;
        }

        /// A node's state.json now, when the net remembers it.
        pub fn state_of(&self, name: &str) -> Option<serde_json::Value> {
            let n = self.node(name);
            let st = n.state.lock().unwrap();
            st.now
                .as_ref()
                .map(|b| serde_json::from_slice(b).expect("state.json"))
        }

        /// Answer calls for which `rule(node, title, script)` gives an output; the first rule
        /// that answers wins.
        pub fn on(
            &self,
            rule: impl Fn(&str, &str, &str) -> Option<Output> + Send + Sync + 'static,
        ) {
            self.rules.lock().unwrap().push(Box::new(rule));
        }

        pub fn node(&self, name: &str) -> Arc<Node> {
            let mut nodes = self.nodes.lock().unwrap();
            if let Some(n) = nodes.iter().find(|n| n.name == name) {
                return n.clone();
            }
            let n = Arc::new(Node {
                name: name.into(),
                net: self.clone(),
                log: Mutex::new(vec![]),
                state: Mutex::default(),
            });
            nodes.push(n.clone());
            n
        }

        /// Every node's calls, in the order each node saw them.
        pub fn calls(&self, name: &str) -> Vec<Call> {
            self.node(name).calls()
        }
    }

    pub fn ok(stdout: &str) -> Output {
        Output {
            status: 0,
            stdout: stdout.as_bytes().to_vec(),
            stderr: vec![],
        }
    }

    pub fn failed(status: u32, stderr: &str) -> Output {
        Output {
            status,
            stdout: vec![],
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    impl Node {
        pub fn calls(&self) -> Vec<Call> {
            self.log.lock().unwrap().clone()
        }

        pub(super) fn run(&self, title: &str, script: &str) -> Output {
            self.log.lock().unwrap().push(Call {
                title: title.into(),
                script: script.into(),
            });
            let rules = self.net.rules.lock().unwrap();
            if let Some(out) = rules.iter().find_map(|r| r(&self.name, title, script)) {
                return out;
            }
            if !self.net.stateful.load(std::sync::atomic::Ordering::SeqCst) {
                return ok("");
            }
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut st = self.state.lock().unwrap();
            match title {
                "gather" | "lock and gather" => {
                    let mut out = String::new();
                    if let Some(b) = &st.now {
                        out.push_str(&format!("@@state 644 {}\n", b64.encode(b)));
                    }
                    if let Some(l) = &st.lock {
                        out.push_str(&format!("@@lock 644 {}\n", b64.encode(l)));
                    }
                    for (path, mode, content) in &st.files {
                        out.push_str(&format!(
                            "@@path {path}\n@@file {mode:o} {}\n",
                            b64.encode(content)
                        ));
                    }
                    ok(&out)
                }
                "drop the switch record" => {
                    st.now = st.before.take().flatten();
                    ok("")
                }
                "settle the switch record" => {
                    let content = script
                        .lines()
                        .find_map(|l| l.strip_prefix("CONTENT="))
                        .map(|v| v.trim_matches('\''))
                        .expect("settle carries the state");
                    st.now = Some(b64.decode(content).expect("base64"));
                    ok("")
                }
                _ => ok(""),
            }
        }

        /// The paths uploaded are the call's script; a failure is (status, stderr).
        pub(super) fn upload(&self, files: &[Upload]) -> Result<(), (u32, String)> {
            let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
            let out = self.run("upload", &paths.join("\n"));
            if out.success() {
                let state = files.iter().find(|f| f.path == crate::state::STATE_FILE);
                if let (Some(f), true) = (
                    state,
                    self.net.stateful.load(std::sync::atomic::Ordering::SeqCst),
                ) {
                    let mut st = self.state.lock().unwrap();
                    if st.before.is_none() {
                        st.before = Some(st.now.clone());
                    }
                    st.now = Some(f.content.clone());
                }
                Ok(())
            } else {
                Err((
                    out.status,
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ))
            }
        }

        pub(super) fn closed(&self) {
            self.log.lock().unwrap().push(Call {
                title: "close".into(),
                script: String::new(),
            });
        }
    }
}
