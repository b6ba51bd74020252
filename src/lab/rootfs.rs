//! The root file system of systemd nodes: a Debian bookworm debootstrap built once, cached, and
//! shared read-only by every node of every lab (each node writes to its own overlay upper).
//! Built in a temp dir and renamed into place, so a half-built root is never used.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::cmd::describe;
use super::LabError;

/// What node-side tests need besides systemd and sshd (the root has nothing else); sudo for
/// `lab up --user`.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,iproute2,openssh-server,\
containernetworking-plugins,iputils-ping,kmod,procps,iptables,python3-minimal,sudo";

/// Part of the cache's name: bump it when INCLUDE or finish() change, so an older cached root is
/// never used (and labs still running on it keep theirs).
const GENERATION: u32 = 2;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("NETCTL_LAB_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "/var/cache/netctl/lab-rootfs-bookworm-{GENERATION}"
            ))
        })
}

fn mirror() -> String {
    std::env::var("NETCTL_LAB_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

fn ready(root: &Path) -> bool {
    root.join("etc/netctl-lab-rootfs").is_file()
}

/// The cached root, building it first if needed. Concurrent `lab up`s (parallel tests) wait
/// for one build rather than each downloading Debian.
pub fn ensure() -> Result<PathBuf, LabError> {
    let root = cache_dir();
    if ready(&root) {
        return Ok(root);
    }
    let parent = root.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| LabError::io("cannot create", &parent, e))?;
    let _lock = BuildLock::take(&root)?;
    if ready(&root) {
        return Ok(root);
    }
    build(&root)?;
    Ok(root)
}

fn build(root: &Path) -> Result<(), LabError> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", root.display(), std::process::id()));
    let log_path = PathBuf::from(format!("{}.log", root.display()));
    let debs = root.with_file_name("debs");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| LabError::io("cannot remove", &tmp, e))?;
    }
    std::fs::create_dir_all(&debs).map_err(|e| LabError::io("cannot create", &debs, e))?;
    eprintln!(
        "building the systemd node root (once; about a minute): debootstrap bookworm -> {} (log {})",
        root.display(),
        log_path.display()
    );
    let log = File::create(&log_path).map_err(|e| LabError::io("cannot create", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| LabError::io("cannot open", &log_path, e))?;
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"))
        .arg(format!("--cache-dir={}", debs.display()))
        .arg("bookworm")
        .arg(&tmp)
        .arg(mirror())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let status = cmd.status().map_err(|source| LabError::Spawn {
        command: describe(&cmd),
        source,
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(LabError::Command {
            command: describe(&cmd),
            status: status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    finish(&tmp)?;
    std::fs::rename(&tmp, root).map_err(|e| LabError::io("cannot rename into place", root, e))
}

/// Make the debootstrap a node template: no identity (each node gets its own host key and
/// machine-id in its overlay), systemd-networkd on (host0's static address), sshd for keys only.
fn finish(root: &Path) -> Result<(), LabError> {
    let io = |what, p: &Path, e| LabError::io(what, p, e);
    let ssh = root.join("etc/ssh");
    for e in std::fs::read_dir(&ssh).map_err(|e| io("cannot read", &ssh, e))? {
        let e = e.map_err(|e| io("cannot read", &ssh, e))?;
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(e.path()).map_err(|err| io("cannot remove", &e.path(), err))?;
        }
    }
    for f in ["etc/machine-id", "var/lib/dbus/machine-id"] {
        let p = root.join(f);
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).map_err(|e| io("cannot remove", &p, e))?;
        }
    }
    // Periodic apt/fstrim jobs only add noise and load on a shared machine.
    let timers = root.join("etc/systemd/system/timers.target.wants");
    if timers.exists() {
        std::fs::remove_dir_all(&timers).map_err(|e| io("cannot remove", &timers, e))?;
    }
    for (wants, unit) in [
        ("multi-user.target.wants", "systemd-networkd.service"),
        ("sockets.target.wants", "systemd-networkd.socket"),
        ("multi-user.target.wants", "ssh.service"),
    ] {
        let dir = root.join("etc/systemd/system").join(wants);
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let link = dir.join(unit);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("/lib/systemd/system/{unit}"), &link)
                .map_err(|e| io("cannot create", &link, e))?;
        }
    }
    let conf = root.join("etc/ssh/sshd_config.d/netctl-lab.conf");
    std::fs::write(
        &conf,
        "# netctl lab: one per-node ed25519 host key, the lab key only.\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UseDNS no\n\
         MaxStartups 200\n\
         MaxSessions 100\n",
    )
    .map_err(|e| io("cannot write", &conf, e))?;
    let archives = root.join("var/cache/apt/archives");
    if let Ok(rd) = std::fs::read_dir(&archives) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let marker = root.join("etc/netctl-lab-rootfs");
    std::fs::write(
        &marker,
        "debootstrap --variant=minbase bookworm; built by netctl lab\n",
    )
    .map_err(|e| io("cannot write", &marker, e))
}

/// A directory created atomically as the build lock, holding the builder's PID; a lock whose
/// builder is gone (crashed) is taken over.
struct BuildLock(PathBuf);

impl BuildLock {
    fn take(root: &Path) -> Result<BuildLock, LabError> {
        let lock = PathBuf::from(format!("{}.lock", root.display()));
        let deadline = Instant::now() + Duration::from_secs(1200);
        let mut told = false;
        loop {
            match std::fs::create_dir(&lock) {
                Ok(()) => {
                    let pidf = lock.join("pid");
                    std::fs::write(&pidf, std::process::id().to_string())
                        .map_err(|e| LabError::io("cannot write", &pidf, e))?;
                    return Ok(BuildLock(lock));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(lock.join("pid")).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    // A lock without a pid file may be a moment old: only a dead holder is stale.
                    if !alive && !holder.trim().is_empty() {
                        let _ = std::fs::remove_dir_all(&lock);
                        continue;
                    }
                    if ready(root) {
                        return Ok(BuildLock(PathBuf::new()));
                    }
                    if !told {
                        eprintln!("waiting for another netctl building {}", root.display());
                        told = true;
                    }
                    if Instant::now() > deadline {
                        return Err(LabError::Timeout {
                            what: format!("the rootfs build lock {}", lock.display()),
                            seconds: 1200,
                        });
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(LabError::io("cannot create", &lock, e)),
            }
        }
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
