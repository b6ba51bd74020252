//! txn: a node's whole change as one transaction that runs on the node.
//!
//! After the read-only gather, netctl builds the list of steps for a node (keep originals, write,
//! remove or restore files, reload and enable units, run the provider's commands, restart, write
//! state.json) and sends it in one remote execution: a staging script that writes the steps, the
//! files and the transaction script (templates/node/txn.sh) into a root-only directory
//! (/var/lib/netctl/txn/RUN), then runs that script detached from the SSH session. The script
//! journals how to undo each step before taking it, puts the node back itself when a step fails,
//! writes a result record and releases the run's lock. A transaction left unfinished (the node
//! rebooted, or its process was killed) is found by the next gather and undone first.
//!
//! Nothing from the plan reaches the shell as code: file contents, commands and the step list
//! travel base64-encoded; paths and unit names are checked before they are written into the list.

use base64::Engine;

use crate::provider::{sh_quote, Step};
use crate::remote::{Remote, RemoteError};
use crate::state::{BACKUPS_DIR, LOCK_FILE, ORIGINALS_DIR, TXN_DIR};

/// The steps of one node's change, in order, and what they carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    ops: Vec<String>,
    files: Vec<Vec<u8>>,
    cmds: Vec<String>,
    /// Run before files are restored by an undo (the new provider's teardown on a fresh node).
    undo_pre: Vec<String>,
    /// Run after files are restored by an undo (the commands of the state before this run).
    undo_post: Vec<String>,
    /// The run that holds the node (its lock is kept, its backups used), when not this one.
    owner: Option<String>,
    invalid: Option<(String, String)>,
}

/// A step refused before anything was sent: (value, why).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} cannot be part of a node transaction: {1}")]
pub struct Invalid(pub String, pub String);

impl Txn {
    fn path(&mut self, verb: &str, path: &str) {
        if let Err(why) = crate::transport::check_remote_path(path) {
            self.invalid.get_or_insert((path.to_string(), why));
        }
        self.ops.push(format!("{verb} {path}"));
    }

    fn unit(&mut self, verb: &str, unit: &str) {
        let ok = !unit.is_empty()
            && unit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c))
            && !unit.starts_with('-');
        if !ok {
            self.invalid
                .get_or_insert((unit.to_string(), "not a systemd unit name".into()));
        }
        self.ops.push(format!("{verb} {unit}"));
    }

    /// Keep the original of a file netctl takes over (for `reset`), unless one is kept already.
    pub fn keep(&mut self, path: &str) {
        self.path("keep", path)
    }

    pub fn write(&mut self, path: &str, content: &[u8], mode: u32) {
        if mode > 0o7777 {
            self.invalid.get_or_insert((
                path.to_string(),
                format!("mode {mode:o} is not a permission mode"),
            ));
        }
        let n = self.files.len();
        self.files.push(content.to_vec());
        self.path(&format!("write {n} {mode:04o}"), path);
    }

    pub fn remove(&mut self, path: &str) {
        self.path("remove", path)
    }

    /// Put the pre-netctl original back (it is deleted from the originals after the commit).
    pub fn restore(&mut self, path: &str) {
        self.path("restore", path)
    }

    pub fn reload(&mut self) {
        self.ops.push("reload".into())
    }

    pub fn enable(&mut self, unit: &str) {
        self.unit("enable", unit)
    }

    /// `disable --now`; an undo enables and starts it again.
    pub fn disable(&mut self, unit: &str) {
        self.unit("disable", unit)
    }

    pub fn stop(&mut self, unit: &str) {
        self.unit("stop", unit)
    }

    pub fn start(&mut self, unit: &str) {
        self.unit("start", unit)
    }

    pub fn restart(&mut self, unit: &str) {
        self.unit("restart", unit)
    }

    pub fn run(&mut self, step: &Step) {
        let n = self.cmds.len();
        self.cmds.push(step.command.clone());
        let title: String = step.title.chars().filter(|c| !c.is_control()).collect();
        self.ops.push(format!("run {n} {title}"));
    }

    /// Everything before this is undone on failure; what follows is tidying.
    pub fn commit(&mut self) {
        self.ops.push("commit".into())
    }

    /// After the commit: delete the kept original of a file that was restored.
    pub fn purge(&mut self, path: &str) {
        self.path("purge", path)
    }

    /// After the commit: remove empty directories under `dir` (and `dir` if empty).
    pub fn tidy(&mut self, dir: &str) {
        self.path("tidy", dir)
    }

    pub fn undo_before_restore(&mut self, steps: &[Step]) {
        self.undo_pre
            .extend(steps.iter().map(|s| s.command.clone()));
    }

    /// A step of run `run` (a switch): the transaction keeps that run's lock and backs up into
    /// that run's backups, so the switch's record names every copy its rollback needs.
    pub fn owned_by(&mut self, run: &str) {
        if !is_run_id(run) {
            self.invalid
                .get_or_insert((run.to_string(), "not a run id".into()));
        }
        self.owner = Some(run.to_string());
    }

    pub fn undo_after_restore(&mut self, commands: &[String]) {
        self.undo_post.extend(commands.iter().cloned());
    }

    /// The one script that stages this transaction under TXN_DIR/`run_id` and runs it detached.
    /// Exit 0: applied; 1: a step failed and the node was put back; 2: putting it back failed too;
    /// 90: staging failed (nothing changed). stdout ends with the result record.
    pub fn stage_script(&self, run_id: &str) -> Result<String, Invalid> {
        if let Some((v, why)) = &self.invalid {
            return Err(Invalid(v.clone(), why.clone()));
        }
        if !is_run_id(run_id) {
            return Err(Invalid(run_id.into(), "not a run id".into()));
        }
        let dir = format!("{TXN_DIR}/{run_id}");
        // One function, called on the last line: a script cut short in transit is a syntax
        // error and runs nothing.
        let mut s = String::from(
            "# netctl node transaction: stage, then run detached (generated)\nnetctl_txn() {\nset -u\numask 077\n",
        );
        s.push_str(&format!(
            "T={}\nmkdir -p {} && chmod 0700 {} || exit 90\n",
            sh_quote(&dir),
            sh_quote(TXN_DIR),
            sh_quote(TXN_DIR)
        ));
        s.push_str(
            "mkdir -- \"$T\" || { echo \"$T exists: a run id used twice\" >&2; exit 90; }\n",
        );
        s.push_str(
            "mkdir -- \"$T/files\" \"$T/cmds\" \"$T/undo-pre\" \"$T/undo-post\" || exit 90\n",
        );
        blob(&mut s, "txn.sh", script().as_bytes());
        let mut ops = self.ops.join("\n");
        ops.push('\n');
        blob(&mut s, "ops", ops.as_bytes());
        for (i, f) in self.files.iter().enumerate() {
            blob(&mut s, &format!("files/{i}"), f);
        }
        if let Some(owner) = &self.owner {
            blob(&mut s, "owner", owner.as_bytes());
        }
        for (i, c) in self.cmds.iter().enumerate() {
            blob(&mut s, &format!("cmds/{i}"), c.as_bytes());
        }
        for (dir, list) in [("undo-pre", &self.undo_pre), ("undo-post", &self.undo_post)] {
            for (i, c) in list.iter().enumerate() {
                // Zero-padded so the shell's glob runs them in order.
                blob(&mut s, &format!("{dir}/{i:04}"), c.as_bytes());
            }
        }
        s.push_str(&format!(
            "setsid -w sh \"$T/txn.sh\" run {} < /dev/null > \"$T/log\" 2>&1\ns=$?\n\
             cat \"$T/result\" 2>/dev/null\n\
             if [ $s -ne 0 ]; then tail -n 20 \"$T/log\" >&2; fi\nexit $s\n}}\nnetctl_txn\n",
            sh_quote(run_id)
        ));
        Ok(s)
    }
}

fn blob(s: &mut String, name: &str, content: &[u8]) {
    const END: &str = "NETCTL_B64_END";
    s.push_str(&format!("base64 -d > \"$T/{name}\" <<'{END}' || exit 90\n"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    for chunk in encoded.as_bytes().chunks(76) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(END);
    s.push('\n');
}

/// The transaction script with this build's node paths.
pub fn script() -> String {
    #[derive(serde::Serialize)]
    struct Ctx {
        lock: String,
        backups: String,
        originals: String,
        txn_dir: String,
        kept: usize,
    }
    crate::template::template(
        "node/txn.sh",
        &Ctx {
            lock: sh_quote(LOCK_FILE),
            backups: sh_quote(BACKUPS_DIR),
            originals: sh_quote(ORIGINALS_DIR),
            txn_dir: sh_quote(TXN_DIR),
            kept: super::lock::BACKUPS_KEPT,
        },
    )
}

/// Run ids as netctl makes them (phase::new_run_id): the only names taken from a node's
/// transaction directory listing.
pub fn is_run_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| {
            c.is_ascii_digit() || c.is_ascii_lowercase() || c == 'T' || c == 'Z' || c == '-'
        })
        && !s.starts_with('-')
}

/// init's transaction for one node: the plan's file changes (originals kept first), units,
/// commands, restarts, then the new state.json (`state`, when it differs from the node's).
/// Undone, a node with an earlier record re-applies that record's commands after its files are
/// back; a node without one runs the new provider's teardown first (its commands already ran).
pub fn for_apply(
    desired: &crate::provider::NodePlan,
    changes: &crate::plan::NodeChanges,
    previous: Option<&crate::state::NodeState>,
    state: Option<&crate::state::NodeState>,
) -> Txn {
    let mut t = Txn::default();
    t.files_of(changes);
    for s in &changes.commands {
        t.run(s);
    }
    for u in &changes.restart {
        t.restart(u);
    }
    if let Some(st) = state {
        t.write(crate::state::STATE_FILE, &state_json(st), 0o644);
    }
    t.commit();
    t.purge_restored(changes);
    match previous {
        Some(prev) => t.undo_after_restore(&prev.commands),
        None => t.undo_before_restore(&desired.teardown),
    }
    t
}

impl Txn {
    /// The plan's files (originals kept first, written, removed or restored), then reload and
    /// enable.
    fn files_of(&mut self, changes: &crate::plan::NodeChanges) {
        use crate::plan::FileAction;
        let t = self;
        for c in changes.files.iter().filter(|c| c.take_over) {
            t.keep(&c.path);
        }
        for c in changes
            .files
            .iter()
            .filter(|c| c.action != FileAction::Remove)
        {
            if let Some(f) = &c.new {
                t.write(&f.path, f.bytes(), f.mode);
            }
        }
        for c in changes
            .files
            .iter()
            .filter(|c| c.action == FileAction::Remove)
        {
            if c.restore_original {
                t.restore(&c.path);
            } else {
                t.remove(&c.path);
            }
        }
        if changes.daemon_reload {
            t.reload();
        }
        for u in &changes.enable {
            t.enable(u);
        }
    }

    /// After the commit: the kept originals of files put back go.
    fn purge_restored(&mut self, changes: &crate::plan::NodeChanges) {
        use crate::plan::FileAction;
        for c in changes
            .files
            .iter()
            .filter(|c| c.action == FileAction::Remove && c.restore_original)
        {
            self.purge(&c.path);
        }
    }
}

/// A switch's transaction for one node (a step of switch run `owner`): stop the kubelet, the old
/// provider's teardown, the new files, units and commands, restarts, the old provider's units
/// disabled, the kubelet started, and last the new state.json (its record saying `switched`).
/// Undone, the old provider's commands re-run once its files are back (or, on a node netctl had
/// not set up, the new provider's teardown first).
pub fn for_switch(
    m: &crate::migrate::NodeMigration,
    changes: &crate::plan::NodeChanges,
    previous: Option<&crate::state::NodeState>,
    state: &crate::state::NodeState,
    owner: &str,
) -> Txn {
    let mut t = Txn::default();
    t.owned_by(owner);
    for u in &m.stop {
        t.stop(u);
    }
    for s in &m.teardown {
        t.run(s);
    }
    t.files_of(changes);
    for u in &m.disable {
        t.disable(u);
    }
    for s in &changes.commands {
        t.run(s);
    }
    for u in &changes.restart {
        t.restart(u);
    }
    for u in m.stop.iter().filter(|u| !changes.restart.contains(u)) {
        t.start(u);
    }
    t.write(crate::state::STATE_FILE, &state_json(state), 0o644);
    t.commit();
    t.purge_restored(changes);
    match previous.filter(|p| !p.provider.is_empty()) {
        Some(prev) => t.undo_after_restore(&prev.commands),
        None => t.undo_before_restore(&m.install.teardown),
    }
    t
}

pub fn state_json(state: &crate::state::NodeState) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(state).expect("state serialises");
    json.push(b'\n');
    json
}

/// How a transaction ended, from its exit status and result record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A step failed and the node was put back: the step and the end of its log.
    RolledBack {
        step: String,
        log: String,
    },
    /// A step failed and putting the node back failed too.
    UndoFailed {
        step: String,
        log: String,
    },
}

/// A transaction that did not apply, as the error a command reports.
pub fn failed(remote: &Remote, outcome: Outcome, run_id: &str) -> RemoteError {
    let (step, log, put_back) = match outcome {
        Outcome::Applied => unreachable!("an applied transaction is not a failure"),
        Outcome::RolledBack { step, log } => (step, log, true),
        Outcome::UndoFailed { step, log } => (step, log, false),
    };
    let message = if put_back {
        format!("{step} failed: {log} (the node was put back as it was)")
    } else {
        format!(
            "{step} failed: {log}; putting the node back also failed (see {TXN_DIR}/{run_id}/log on the node)"
        )
    };
    RemoteError::State {
        node: remote.node.clone(),
        message,
    }
}

/// Stage and run `txn` on the node. Under --dry-run nothing is sent (`Applied`).
pub async fn apply(remote: &Remote, txn: &Txn, run_id: &str) -> Result<Outcome, RemoteError> {
    let script = txn.stage_script(run_id).map_err(|e| RemoteError::State {
        node: remote.node.clone(),
        message: e.to_string(),
    })?;
    match remote.change("apply", &script).await {
        Ok(_) => Ok(Outcome::Applied),
        Err(RemoteError::Command {
            status: status @ (1 | 2),
            stderr,
            ..
        }) => {
            let step = stderr
                .lines()
                .find_map(|l| l.strip_prefix("netctl-txn-failed "))
                .unwrap_or("prepare")
                .to_string();
            let log = stderr
                .lines()
                .filter(|l| !l.starts_with("netctl-txn-failed "))
                .collect::<Vec<_>>()
                .join("; ");
            Ok(if status == 1 {
                Outcome::RolledBack { step, log }
            } else {
                Outcome::UndoFailed { step, log }
            })
        }
        Err(e) => Err(e),
    }
}

/// Put back a transaction that never finished (found by the gather), as its own script does.
pub async fn undo_interrupted(remote: &Remote, run_id: &str) -> Result<(), RemoteError> {
    if !is_run_id(run_id) {
        return Err(RemoteError::State {
            node: remote.node.clone(),
            message: format!("unexpected transaction name {run_id:?} under {TXN_DIR}"),
        });
    }
    remote
        .change(
            &format!("put back the interrupted run {run_id}"),
            &undo_script(run_id),
        )
        .await
        .map(|_| ())
}

/// Run a transaction's own `txn.sh undo` (templates/node/txn-undo.sh).
pub fn undo_script(run_id: &str) -> String {
    crate::shell::Script::new(crate::shell::script_file!("node/txn-undo.sh"))
        .var("T", format!("{TXN_DIR}/{run_id}"))
        .var("RUN", run_id)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// The staging script and txn.sh run for real, with every node path moved under a temp dir.
    fn run_local(txn: &Txn, d: &Path, run: &str) -> std::process::Output {
        let script = txn
            .stage_script(run)
            .unwrap()
            .replace(TXN_DIR, d.join("txn").to_str().unwrap());
        let txn_sh = script_for(d);
        // The staged txn.sh is the rendered one; swap in the copy pointed at the temp dir.
        let encoded_real = base64::engine::general_purpose::STANDARD.encode(script_body());
        let encoded_test = base64::engine::general_purpose::STANDARD.encode(&txn_sh);
        let script = replace_blob(&script, &encoded_real, &encoded_test);
        Command::new("sh").arg("-c").arg(&script).output().unwrap()
    }

    fn script_body() -> String {
        script()
    }

    fn script_for(d: &Path) -> String {
        script()
            .replace(LOCK_FILE, d.join("lock").to_str().unwrap())
            .replace(BACKUPS_DIR, d.join("backups").to_str().unwrap())
            .replace(ORIGINALS_DIR, d.join("originals").to_str().unwrap())
            .replace(TXN_DIR, d.join("txn").to_str().unwrap())
    }

    fn replace_blob(script: &str, from: &str, to: &str) -> String {
        let wrap = |b: &str| {
            b.as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap().to_string() + "\n")
                .collect::<String>()
        };
        let (a, b) = (wrap(from), wrap(to));
        assert!(script.contains(&a));
        script.replace(&a, &b)
    }

    fn step(title: &str, command: &str) -> Step {
        Step {
            title: title.into(),
            command: command.into(),
        }
    }

    /// A switch's node step is a transaction owned by the switch run: the switch's lock stays
    /// (it holds the node until its last wave) and the copies go to the switch's backups, where
    /// its record's rollback looks; the first copy (the state before the switch) is kept.
    #[test]
    fn an_owned_transaction_keeps_its_owners_lock_and_backs_up_into_its_backups() {
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
        let owner = "20261129T000000Z-0a0a";
        let run = "20261129T000000Z-0a0a-20261129T000001Z-0b0b";
        std::fs::write(p("a.conf"), "switched once\n").unwrap();
        let first = d.path().join(format!("backups/{owner}{}", p("a.conf")));
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(&first, "before the switch\n").unwrap();
        std::fs::write(p("b.conf"), "b\n").unwrap();
        std::fs::write(p("lock"), format!("run={owner}\n")).unwrap();
        let mut t = Txn::default();
        t.owned_by(owner);
        t.write(&p("a.conf"), b"new\n", 0o644);
        t.write(&p("b.conf"), b"new b\n", 0o644);
        t.commit();
        let out = run_local(&t, d.path(), run);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read_to_string(p("a.conf")).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(p("lock")).unwrap(),
            format!("run={owner}\n"),
            "the owner's lock is kept"
        );
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            "before the switch\n",
            "the first copy wins"
        );
        let b = d.path().join(format!("backups/{owner}{}", p("b.conf")));
        assert_eq!(std::fs::read_to_string(b).unwrap(), "b\n");
        assert!(!d.path().join(format!("backups/{run}")).exists());
        let mut bad = Txn::default();
        bad.owned_by("../x");
        assert!(bad.stage_script(run).is_err(), "an owner must be a run id");
    }

    #[test]
    fn a_transaction_applies_every_step_and_releases_its_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
        std::fs::write(p("old.conf"), "old\n").unwrap();
        std::fs::write(p("gone.conf"), "bye\n").unwrap();
        std::fs::write(p("lock"), "run=r1\nhost=x\n").unwrap();
        let mut t = Txn::default();
        t.keep(&p("old.conf"));
        t.write(&p("old.conf"), b"new\n", 0o600);
        t.write(&p("sub dir/it's.conf"), b"fresh\n", 0o644);
        t.remove(&p("gone.conf"));
        t.run(&step(
            "touch",
            &format!("echo ran >> {}", sh_quote(&p("ran"))),
        ));
        t.commit();
        let run = "20261129T000000Z-0001";
        std::fs::write(p("lock"), format!("run={run}\n")).unwrap();
        let out = run_local(&t, d.path(), run);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("status=ok"));
        assert_eq!(std::fs::read_to_string(p("old.conf")).unwrap(), "new\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p("old.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o600);
        assert_eq!(
            std::fs::read_to_string(p("sub dir/it's.conf")).unwrap(),
            "fresh\n"
        );
        assert!(!Path::new(&p("gone.conf")).exists());
        assert_eq!(std::fs::read_to_string(p("ran")).unwrap(), "ran\n");
        // the original kept, the replaced and removed files backed up
        assert_eq!(
            std::fs::read_to_string(d.path().join(format!("originals{}", p("old.conf")))).unwrap(),
            "old\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join(format!("backups/{run}{}", p("gone.conf"))))
                .unwrap(),
            "bye\n"
        );
        assert!(
            !Path::new(&p("lock")).exists(),
            "the run's lock is released"
        );
        // no temp file left beside the targets
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".netctl-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_failed_step_puts_the_node_back_and_keeps_another_runs_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
        std::fs::write(p("a.conf"), "a-old\n").unwrap();
        std::fs::write(p("b.conf"), "b-old\n").unwrap();
        std::fs::write(p("lock"), "run=someone-else\n").unwrap();
        let mut t = Txn::default();
        t.keep(&p("a.conf"));
        t.write(&p("a.conf"), b"a-new\n", 0o644);
        t.write(&p("c.conf"), b"c-new\n", 0o644);
        t.remove(&p("b.conf"));
        t.run(&step(
            "good",
            &format!("echo up >> {}", sh_quote(&p("log"))),
        ));
        t.run(&step("bad", "echo boom >&2; exit 3"));
        t.commit();
        t.undo_after_restore(&[format!("echo previous >> {}", sh_quote(&p("log")))]);
        let run = "20261129T000000Z-0002";
        let out = run_local(&t, d.path(), run);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("netctl-txn-failed run 1 bad"), "{stderr}");
        assert!(stderr.contains("boom"), "{stderr}");
        assert_eq!(std::fs::read_to_string(p("a.conf")).unwrap(), "a-old\n");
        assert_eq!(std::fs::read_to_string(p("b.conf")).unwrap(), "b-old\n");
        assert!(!Path::new(&p("c.conf")).exists());
        assert!(
            !d.path().join(format!("originals{}", p("a.conf"))).exists(),
            "the kept original of an undone take-over goes too"
        );
        assert_eq!(std::fs::read_to_string(p("log")).unwrap(), "up\nprevious\n");
        assert_eq!(
            std::fs::read_to_string(p("lock")).unwrap(),
            "run=someone-else\n"
        );
        let result = std::fs::read_to_string(d.path().join(format!("txn/{run}/result"))).unwrap();
        assert!(result.contains("status=rolled-back"), "{result}");
    }

    #[test]
    fn an_interrupted_transaction_is_undone_by_its_own_script() {
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
        std::fs::write(p("a.conf"), "a-old\n").unwrap();
        let mut t = Txn::default();
        t.write(&p("a.conf"), b"a-new\n", 0o644);
        // The process is killed in its last step: the journal says what was done.
        t.run(&step("killed", "kill -9 $PPID; exit 0"));
        t.commit();
        let run = "20261129T000000Z-0003";
        let out = run_local(&t, d.path(), run);
        assert_ne!(out.status.code(), Some(0));
        let dir = d.path().join(format!("txn/{run}"));
        assert!(!dir.join("result").exists());
        assert_eq!(std::fs::read_to_string(p("a.conf")).unwrap(), "a-new\n");
        // The gather sees it as interrupted.
        let gather = crate::state::gather_script(&[], &[], &[], &[])
            .replace(TXN_DIR, d.path().join("txn").to_str().unwrap());
        let out = Command::new("sh").arg("-c").arg(&gather).output().unwrap();
        let found = crate::state::parse_gather(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(found.txns, [(run.to_string(), false)]);
        let out = Command::new("sh")
            .arg(dir.join("txn.sh"))
            .args(["undo", run])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read_to_string(p("a.conf")).unwrap(), "a-old\n");
        assert!(std::fs::read_to_string(dir.join("result"))
            .unwrap()
            .contains("rolled-back"));
    }

    #[test]
    fn bad_paths_units_and_run_ids_are_refused_before_anything_is_sent() {
        let mut t = Txn::default();
        t.write("relative/x", b"", 0o644);
        assert!(t.stage_script("20261129T000000Z-0004").is_err());
        let mut t = Txn::default();
        t.restart("x; reboot");
        assert!(t.stage_script("20261129T000000Z-0004").is_err());
        let mut t = Txn::default();
        t.remove("/a/../etc/passwd");
        assert!(t.stage_script("20261129T000000Z-0004").is_err());
        assert!(Txn::default().stage_script("../../x").is_err());
        assert!(is_run_id("20261129T000000Z-abcd"));
        assert!(!is_run_id("../x"));
        assert!(!is_run_id("-rf"));
    }

    #[test]
    fn a_script_cut_short_runs_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Txn::default();
        t.write(d.path().join("x").to_str().unwrap(), b"x\n", 0o644);
        let script = t
            .stage_script("20261129T000000Z-0006")
            .unwrap()
            .replace(TXN_DIR, d.path().join("txn").to_str().unwrap());
        for cut in [script.len() / 3, script.len() - 12] {
            Command::new("sh")
                .arg("-c")
                .arg(&script[..cut])
                .output()
                .unwrap();
            assert!(
                !d.path().join("txn").exists(),
                "a truncated script ran (cut at {cut})"
            );
        }
    }

    #[test]
    fn contents_and_commands_never_appear_as_shell_text() {
        let mut t = Txn::default();
        t.write("/etc/x", b"$(reboot)\nNETCTL_B64_END\n", 0o644);
        t.run(&step("t", "echo `id` $(whoami)"));
        let s = t.stage_script("20261129T000000Z-0005").unwrap();
        assert!(!s.contains("$(reboot)") && !s.contains("`id`"), "{s}");
    }
}
