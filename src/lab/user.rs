//! `lab up --user NAME --sudo-password PW`: a non-root login with sudo (password required) on the
//! nodes, so netctl's sudo path is tested against real sudo and real PAM.
//!
//! Netns nodes (and the bastion) share the host's /etc/passwd and /etc/shadow, so for them the user
//! is made on the host (useradd) and recorded in the lab state before it exists, so `lab down`
//! removes it (userdel -r) even after a failed `up`. Systemd nodes get their own user in their own
//! root (gone with the node's overlay). Sudo rights are granted only inside the nodes: on netns nodes
//! /etc/sudoers.d is one of the per-node directories (netns::NODE_DIRS), so the host's sudoers never
//! mention the user. Its authorized_keys is in its home (sshd reads it as the user, who cannot read
//! the lab's 0700 directory).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cmd::{describe, run_args};
use super::LabError;

/// A plain POSIX login name, short enough for every tool.
pub fn validate(name: &str, password: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 31
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok || name == "root" {
        return Err(LabError::BadInput(format!(
            "--user {name:?}: use a new login name of a-z, 0-9, '_' and '-' (not root)"
        )));
    }
    if password.is_empty() || password.contains(['\n', '\r', ':']) {
        return Err(LabError::BadInput(
            "--sudo-password must be non-empty, on one line, without ':'".into(),
        ));
    }
    if exists(name) {
        return Err(LabError::BadInput(format!(
            "--user {name:?}: a user of that name exists on this machine; the lab makes (and removes) its own"
        )));
    }
    Ok(())
}

pub fn exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// useradd (with a home), the password, and the lab key in ~/.ssh/authorized_keys: on the host
/// (`root` None: netns nodes and the bastion share its /etc/passwd) or inside a systemd node's
/// root, before it boots (useradd/chpasswd --root chroot into it; the ids are the node's own).
pub fn create(
    root: Option<&Path>,
    name: &str,
    password: &str,
    client_pub: &str,
) -> Result<(), LabError> {
    let mut prefix: Vec<&str> = Vec::new();
    if let Some(r) = root {
        prefix = vec!["--root", path_str(r)];
    }
    let mut args = prefix.clone();
    args.extend([
        "--create-home",
        "--shell",
        "/bin/sh",
        "--comment",
        "netctl lab user",
        name,
    ]);
    run_args("useradd", &args)?;
    let mut cmd = Command::new("chpasswd");
    let mut child = cmd
        .args(&prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            command: describe(&cmd),
            source,
        })?;
    // On stdin, never as an argument: the password stays out of `ps`.
    let fed = child
        .stdin
        .take()
        .expect("piped")
        .write_all(format!("{name}:{password}\n").as_bytes());
    let out = child.wait_with_output().map_err(|source| LabError::Spawn {
        command: "chpasswd".into(),
        source,
    })?;
    if fed.is_err() || !out.status.success() {
        return Err(LabError::Command {
            command: "chpasswd".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let passwd = match root {
        None => run_args("getent", &["passwd", name])?,
        Some(r) => {
            let p = r.join("etc/passwd");
            let text =
                std::fs::read_to_string(&p).map_err(|e| LabError::io("cannot read", &p, e))?;
            text.lines()
                .find(|l| l.split(':').next() == Some(name))
                .unwrap_or_default()
                .to_string()
        }
    };
    let entry = Passwd::parse(&passwd)
        .ok_or_else(|| LabError::Failed(format!("no passwd entry for {name}: {passwd:?}")))?;
    let home = match root {
        None => entry.home.clone(),
        Some(r) => r.join(entry.home.strip_prefix("/").unwrap_or(&entry.home)),
    };
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).map_err(|e| LabError::io("cannot create", &ssh, e))?;
    let ak = ssh.join("authorized_keys");
    std::fs::write(&ak, format!("{client_pub}\n"))
        .map_err(|e| LabError::io("cannot write", &ak, e))?;
    // Numeric ids: inside a node's root, the name means nothing to the host.
    use std::os::unix::fs::{chown, PermissionsExt};
    for (p, mode) in [(&ssh, 0o700), (&ak, 0o600)] {
        chown(p, Some(entry.uid), Some(entry.gid))
            .map_err(|e| LabError::io("cannot chown", p, e))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| LabError::io("cannot chmod", p, e))?;
    }
    Ok(())
}

/// The fields of a passwd line the lab needs.
struct Passwd {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl Passwd {
    fn parse(line: &str) -> Option<Passwd> {
        let f: Vec<&str> = line.trim().split(':').collect();
        let home = f.get(5).filter(|h| h.starts_with('/'))?;
        Some(Passwd {
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: PathBuf::from(home),
        })
    }
}

/// The sudoers drop-in each node gets: password required; no lecture (it would clutter stderr).
pub fn sudoers(name: &str) -> String {
    format!(
        "# netctl lab: {name} may run anything as root, with its password.\n\
         {name} ALL=(ALL:ALL) ALL\nDefaults:{name} lecture=never\n"
    )
}

/// Write the sudoers drop-in into a node's own /etc/sudoers.d (mode 0440, as sudo requires).
pub fn grant(sudoers_dir: &Path, name: &str) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(sudoers_dir)
        .map_err(|e| LabError::io("cannot create", sudoers_dir, e))?;
    let path = sudoers_dir.join("netctl-lab");
    std::fs::write(&path, sudoers(name)).map_err(|e| LabError::io("cannot write", &path, e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440))
        .map_err(|e| LabError::io("cannot chmod", &path, e))
}

/// userdel -r: the account, its home and mail spool. A user already gone is fine.
pub fn remove(name: &str) -> Result<(), LabError> {
    if !exists(name) {
        return Ok(());
    }
    match run_args("userdel", &["--remove", name]) {
        Ok(_) => Ok(()),
        // "mail spool not found" (exit 12 after removing the user) is not a failure.
        Err(_) if !exists(name) => Ok(()),
        Err(e) => Err(e),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords() {
        assert!(validate("root", "pw").is_err());
        assert!(validate("Ops", "pw").is_err());
        assert!(validate("ops;rm", "pw").is_err());
        assert!(validate("netctl-lab-nouser-x", "a\nb").is_err());
        assert!(validate("netctl-lab-nouser-x", "a:b").is_err());
        assert!(sudoers("ops").contains("ops ALL=(ALL:ALL) ALL\n"));
        assert!(!sudoers("ops").contains("NOPASSWD"));
        let p = Passwd::parse("ops:x:1001:1002:netctl lab user:/home/ops:/bin/sh\n").unwrap();
        assert_eq!((p.uid, p.gid), (1001, 1002));
        assert_eq!(p.home, Path::new("/home/ops"));
        assert!(Passwd::parse("ops:x:1001").is_none());
    }
}
