//! The lab's own processes (node sshd, systemd-nspawn): identified by PID plus the kernel's start
//! time, so a recycled PID is never signalled. Nothing is ever looked up or killed by name.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cmd::describe;
use super::LabError;

/// A process the lab started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot): with the PID, names one process for ever.
    pub start: u64,
}

impl Proc {
    /// Record a process that is running now.
    pub fn of(pid: u32) -> Option<Proc> {
        start_time(pid).map(|start| Proc { pid, start })
    }

    /// Still the same process (not exited, PID not reused). A zombie counts as gone.
    pub fn alive(&self) -> bool {
        match stat_fields(self.pid) {
            Some((state, start)) => start == self.start && state != 'Z' && state != 'X',
            None => false,
        }
    }

    pub fn signal(&self, sig: i32) {
        if self.alive() {
            // SAFETY: kill(2) with a PID we verified is the process we started.
            unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            }
        }
    }

    /// Wait until gone; true if it went within `timeout`.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// SIGTERM, wait, then SIGKILL: stop a process we started.
    pub fn stop(&self, grace: Duration) {
        self.signal(libc::SIGTERM);
        if !self.wait_gone(grace) {
            self.signal(libc::SIGKILL);
            self.wait_gone(Duration::from_secs(5));
        }
    }
}

fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')': the fields after it start at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // rest starts at field 3 (state), so field 22 is index 19.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).map(|(_, s)| s)
}

/// The parent PID of a process.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Start `cmd` detached in its own session, stdout and stderr appended to `log_path`; `what` names it
/// in the error when it is gone at once. setsid rather than a fork: the PID returned is the one
/// that stays (sshd, systemd-nspawn), so `lab down` ends exactly that process.
pub fn spawn_detached(mut cmd: Command, log_path: &Path, what: &str) -> Result<Proc, LabError> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| LabError::io("cannot open", log_path, e))
    };
    cmd.stdin(Stdio::null()).stdout(open()?).stderr(open()?);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our session and terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| LabError::Spawn {
        command: describe(&cmd),
        source,
    })?;
    Proc::of(child.id()).ok_or_else(|| {
        LabError::Failed(format!("{what} exited at once; see {}", log_path.display()))
    })
}

/// The inode of a process's namespace of `kind` (pid, net, mnt, ...).
pub fn ns_id(pid: u32, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The container's PID 1 of a systemd-nspawn process: its child in another PID namespace.
pub fn container_leader(nspawn: &Proc) -> Option<u32> {
    if !nspawn.alive() {
        return None;
    }
    let ours = ns_id(nspawn.pid, "pid")?;
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", nspawn.pid)).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .find(|&c| ppid(c) == Some(nspawn.pid) && ns_id(c, "pid").is_some_and(|ns| ns != ours))
}

/// PIDs of every process in the network namespace mounted at `ns_path` (/run/netns/NAME):
/// processes left in a node (started over ssh and detached) after its sshd stopped.
pub fn pids_in_netns(ns_path: &Path) -> Vec<u32> {
    let Ok(meta) = std::fs::metadata(ns_path) else {
        return Vec::new();
    };
    use std::os::unix::fs::MetadataExt;
    let want = format!("net:[{}]", meta.ino());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ns_id(pid, "net").as_deref() == Some(want.as_str()))
        .collect()
}

/// Every descendant of `pid` (children of each of its threads, recursively), nearest first.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let path = t.path().join("children");
            let Ok(children) = std::fs::read_to_string(path) else {
                continue;
            };
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                if !out.contains(&c) {
                    out.push(c);
                    queue.push(c);
                }
            }
        }
    }
    out
}
