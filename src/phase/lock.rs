//! lock / unlock: one netctl run per node at a time.
//!
//! The lock is a file under /run (a reboot clears it) created atomically (noclobber). It names its
//! run: run id, command, the operator's host (gethostname), pid and that process's start time, and
//! when it was taken. Only its own run removes it: the unlock script checks the run id first, so an
//! error path of one run can never release another's lock. A node transaction (txn.rs) releases its
//! run's lock itself when it ends, so a netctl killed mid-apply leaves no lock once the node is done.
//! A lock whose run is gone (killed before its transaction started) is cleared by
//! `netctl unlock -p P --run RUN_ID`, which first checks that run is not alive where it can tell.

use crate::remote::{Remote, RemoteError};
use crate::shell::{script_file, Script};
use crate::state::{LOCK_DIR, LOCK_FILE};

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub run: String,
    pub command: String,
    pub host: String,
    pub pid: u32,
    /// Field 22 of /proc/PID/stat on `host`: with the pid, names one process.
    pub pid_start: u64,
    pub since: String,
}

impl Holder {
    /// This process, running `command` as run `run`.
    pub fn me(run: &str, command: &str) -> Holder {
        // This process's identity is read once (every node's lock names the same one).
        static ME: std::sync::OnceLock<(String, u32, u64)> = std::sync::OnceLock::new();
        let (host, pid, pid_start) = ME.get_or_init(|| {
            let pid = std::process::id();
            let start = crate::lab::process::Proc::of(pid).map_or(0, |p| p.start);
            (hostname(), pid, start)
        });
        Holder {
            run: run.to_string(),
            command: command.to_string(),
            host: host.clone(),
            pid: *pid,
            pid_start: *pid_start,
            since: String::new(),
        }
    }

    /// Parse a lock file. Locks written by older netctl (one line of prose) keep their text as
    /// `run` is found in it; anything else is an unnamed holder.
    pub fn parse(text: &str) -> Holder {
        let mut h = Holder::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().to_string();
            match k.trim() {
                "run" => h.run = v,
                "command" => h.command = v,
                "host" => h.host = v,
                "pid" => h.pid = v.parse().unwrap_or(0),
                "pid_start" => h.pid_start = v.parse().unwrap_or(0),
                "since" => h.since = v,
                _ => {}
            }
        }
        if h.run.is_empty() {
            // "run 20261123T...Z-abcd from host (pid N), since T"
            if let Some(rest) = text.trim().strip_prefix("run ") {
                h.run = rest.split_whitespace().next().unwrap_or("").to_string();
            }
        }
        h
    }

    /// The file's content (the node adds `since=` when it takes the lock).
    fn file_lines(&self) -> String {
        format!(
            "run={}\ncommand={}\nhost={}\npid={}\npid_start={}\n",
            self.run, self.command, self.host, self.pid, self.pid_start
        )
    }

    /// For people: "run R (init from HOST, pid N, since T)".
    pub fn describe(&self) -> String {
        if self.run.is_empty() {
            return "an unknown holder".into();
        }
        let mut s = format!("run {}", self.run);
        if !self.host.is_empty() {
            let cmd = if self.command.is_empty() {
                "netctl".to_string()
            } else {
                format!("netctl {}", self.command)
            };
            s.push_str(&format!(" ({cmd} on {}, pid {}", self.host, self.pid));
            if !self.since.is_empty() {
                s.push_str(&format!(", since {}", self.since));
            }
            s.push(')');
        }
        s
    }

    /// Whether the holder is known to be alive: only answerable on the host that took the lock.
    /// `Some(true)` alive here, `Some(false)` gone from here, `None` another host (cannot tell).
    pub fn alive_here(&self) -> Option<bool> {
        if self.host.is_empty() || self.host != hostname() || self.pid == 0 {
            return None;
        }
        let p = crate::lab::process::Proc {
            pid: self.pid,
            start: self.pid_start,
        };
        Some(p.alive())
    }
}

/// This machine's name (gethostname(2)); `$HOSTNAME` is a shell variable, usually not exported.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect()
}

/// Printed when the run already holds the lock (a switch's last gate is verify, in the same run).
const REENTERED: &str = "netctl-lock-reentered";

/// The shell that takes the lock (templates/node/lock.sh): exits 75 with the holder's file on
/// stderr when another run has it; prints REENTERED (and changes nothing) when this run has it
/// already.
pub fn lock_script(holder: &Holder) -> String {
    Script::new(script_file!("node/lock.sh"))
        .var("LOCK_DIR", LOCK_DIR)
        .var("LOCK", LOCK_FILE)
        .var("RUN", &holder.run)
        .var("LINES", holder.file_lines())
        .var("REENTERED", REENTERED)
        .build()
}

/// Release the lock only if `run` holds it.
pub fn release_script(run: &str) -> String {
    Script::new(script_file!("node/release.sh"))
        .var("LOCK", LOCK_FILE)
        .var("RUN", run)
        .build()
}

/// Turn a lock script's exit 75 into `Locked`, naming the holder and the way out.
pub fn held(remote: &Remote, e: RemoteError) -> RemoteError {
    match e {
        RemoteError::Command {
            status: 75, stderr, ..
        } => locked(remote, &Holder::parse(&stderr)),
        other => other,
    }
}

fn locked(remote: &Remote, h: &Holder) -> RemoteError {
    let way_out = match h.alive_here() {
        Some(true) => format!(
            "that run is still going here (pid {}); wait for it to finish",
            h.pid
        ),
        _ if h.run.is_empty() => {
            format!("if no netctl run is going, remove {LOCK_FILE} on the node")
        }
        Some(false) => format!(
            "that run is gone: clear its locks with `netctl unlock -p {} --run {}`",
            remote.profile_hint(),
            h.run
        ),
        None => format!(
            "if that run is gone, clear its locks with `netctl unlock -p {} --run {}`",
            remote.profile_hint(),
            h.run
        ),
    };
    RemoteError::Locked {
        node: remote.node.clone(),
        holder: h.describe(),
        run: h.run.clone(),
        alive: h.alive_here(),
        way_out,
    }
}

/// Take the lock; `Ok(false)` when this run held it already (then the caller must not release it:
/// whoever took it will).
pub async fn lock(remote: &Remote, holder: &Holder) -> Result<bool, RemoteError> {
    remote
        .change("lock", &lock_script(holder))
        .await
        .map(|out| !out.contains(REENTERED))
        .map_err(|e| held(remote, e))
}

/// A lock held by a switch that died (its run id is in the node's record) is reported as the
/// interrupted switch it is, with how to finish or undo it; any other lock as held.
pub async fn explain(remote: &Remote, e: RemoteError) -> RemoteError {
    let RemoteError::Locked { node, run, .. } = &e else {
        return e;
    };
    let found = super::gather::gather(remote, &crate::provider::NodePlan::default()).await;
    match found.ok().as_ref().and_then(|g| g.switch_run()) {
        Some(switch_run) if !run.is_empty() && *run == switch_run => {
            RemoteError::SwitchInProgress {
                node: node.clone(),
                run_id: switch_run,
            }
        }
        _ => e,
    }
}

/// Backup directories kept per node: enough for `switch --rollback` and a person's second look.
pub const BACKUPS_KEPT: usize = 10;

/// Release `run`'s lock (never another run's), and keep only the newest backup and transaction
/// directories (run ids sort by time).
pub async fn unlock(remote: &Remote, run: &str) -> Result<(), RemoteError> {
    remote
        .change("unlock", &unlock_script(run))
        .await
        .map(|_| ())
}

/// Release `run`'s lock, then prune.
pub fn unlock_script(run: &str) -> String {
    format!("{}{}", release_script(run), prune_script())
}

/// Keep the newest BACKUPS_KEPT directories of backups and of transactions.
pub fn prune_script() -> String {
    Script::new(script_file!("node/prune.sh"))
        .var("KEPT", BACKUPS_KEPT.to_string())
        .args([crate::state::BACKUPS_DIR, crate::state::TXN_DIR])
        .build()
}

/// Replace a lock left by a dead run (the caller has checked that run is the one to continue).
pub async fn take_over(
    remote: &Remote,
    dead_run: &str,
    holder: &Holder,
) -> Result<(), RemoteError> {
    unlock(remote, dead_run).await?;
    lock(remote, holder).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    }

    /// The scripts with the node paths pointed at a temp dir.
    fn local(script: &str, d: &std::path::Path) -> String {
        script
            .replace(LOCK_DIR, d.join("run").to_str().unwrap())
            .replace(
                crate::state::BACKUPS_DIR,
                d.join("backups").to_str().unwrap(),
            )
            .replace(crate::state::TXN_DIR, d.join("txn").to_str().unwrap())
    }

    #[test]
    fn a_lock_names_its_run_and_only_its_run_releases_it() {
        let d = tempfile::tempdir().unwrap();
        let me = Holder::me("20261129T000000Z-aaaa", "init");
        let out = sh(&local(&lock_script(&me), d.path()));
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(d.path().join("run/lock")).unwrap();
        let parsed = Holder::parse(&text);
        assert_eq!(parsed.run, me.run);
        assert_eq!(parsed.host, hostname());
        assert_eq!(parsed.pid, std::process::id());
        assert!(parsed.pid_start > 0);
        assert!(!parsed.since.is_empty());
        assert_eq!(parsed.alive_here(), Some(true));

        // The same run again changes nothing and says so.
        let out = sh(&local(&lock_script(&me), d.path()));
        assert!(String::from_utf8_lossy(&out.stdout).contains(REENTERED));
        assert_eq!(
            std::fs::read_to_string(d.path().join("run/lock")).unwrap(),
            text
        );

        // A second run is refused with the holder on stderr.
        let other = Holder::me("20261129T000001Z-bbbb", "verify");
        let out = sh(&local(&lock_script(&other), d.path()));
        assert_eq!(out.status.code(), Some(75));
        assert_eq!(
            Holder::parse(&String::from_utf8_lossy(&out.stderr)).run,
            me.run
        );

        // The other run's unlock leaves it; ours removes it.
        assert!(sh(&local(&unlock_script(&other.run), d.path()))
            .status
            .success());
        assert!(
            d.path().join("run/lock").exists(),
            "another run released our lock"
        );
        assert!(sh(&local(&unlock_script(&me.run), d.path()))
            .status
            .success());
        assert!(!d.path().join("run/lock").exists());
    }

    #[test]
    fn holders_of_old_locks_and_other_hosts() {
        let old = Holder::parse("run 20261123T070512Z-abcd from localhost (pid 7), since x");
        assert_eq!(old.run, "20261123T070512Z-abcd");
        assert_eq!(old.alive_here(), None);
        let far = Holder {
            run: "r".into(),
            host: "elsewhere.invalid".into(),
            pid: 1,
            ..Holder::default()
        };
        assert_eq!(far.alive_here(), None);
        let dead = Holder {
            run: "r".into(),
            host: hostname(),
            pid: std::process::id(),
            pid_start: 1, // not this process's start time: a recycled pid
            ..Holder::default()
        };
        assert_eq!(dead.alive_here(), Some(false));
        assert!(Holder::parse("").describe().contains("unknown"));
    }

    #[test]
    fn unlock_keeps_the_newest_backups_and_transactions() {
        let d = tempfile::tempdir().unwrap();
        for sub in ["backups", "txn"] {
            for i in 0..13 {
                std::fs::create_dir_all(
                    d.path()
                        .join(format!("{sub}/2026112{i:02}T000000Z-abcd/etc")),
                )
                .unwrap();
            }
        }
        let out = sh(&local(&unlock_script("x"), d.path()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for sub in ["backups", "txn"] {
            let mut left: Vec<String> = std::fs::read_dir(d.path().join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            assert_eq!(left.len(), BACKUPS_KEPT);
            assert_eq!(left[0], "202611203T000000Z-abcd", "the oldest three went");
        }
    }
}
