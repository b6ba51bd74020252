//! Issue 10, findings 1, 8 and 9, end to end: root never runs a file the SSH user can write (the
//! sudo password wrapper), secrets stay out of child processes' environments, and text from nodes
//! reaches the terminal escaped.

mod labkit;

use std::process::Stdio;

use labkit::{can_run, netctl, text, Lab};

/// A loop running as `user` inside `node` (started with `lab exec`), stopped by its PID when dropped.
struct NodeLoop<'a> {
    lab: &'a Lab,
    node: &'a str,
    pid: String,
}

impl<'a> NodeLoop<'a> {
    fn start(lab: &'a Lab, node: &'a str, user: &str, body: &str) -> NodeLoop<'a> {
        let pid = lab.exec_ok(
            node,
            &format!(
                "setpriv --reuid={user} --regid={user} --init-groups nice -n 19 sh -c '{body}' \
                 </dev/null >/dev/null 2>&1 & echo $!"
            ),
        );
        NodeLoop {
            lab,
            node,
            pid: pid.trim().to_string(),
        }
    }
}

impl Drop for NodeLoop<'_> {
    fn drop(&mut self) {
        let _ = self.lab.exec(self.node, &format!("kill {}", self.pid));
    }
}

/// Finding 1: the SSH user (not root, no sudo password) rewrites every temp file of its own it can
/// find, appending a line that leaves a mark only root can make. The old wrapper saved each script
/// to such a file before root ran it; now no file exists, so the mark never appears.
#[test]
fn sudo_user_cannot_slip_lines_into_what_root_runs() {
    if can_run("sudo_user_cannot_slip_lines_into_what_root_runs") {
        sudo_race("netns", "sudo-rc", 150, "sudo-racer");
    }
}

/// The same on a systemd node: the user, sudo, PAM and /tmp are the node's own.
#[test]
fn sudo_user_cannot_slip_lines_into_what_root_runs_on_systemd() {
    if can_run("sudo_user_cannot_slip_lines_into_what_root_runs_on_systemd") {
        sudo_race("systemd", "sudo-rcs", 151, "sudo-racer-sd");
    }
}

/// Distinct users per kind: a netns lab's user is made on the host, which a systemd lab refuses.
fn sudo_race(kind: &str, name: &str, octet: u8, user: &str) {
    let lab = Lab::up_with(
        name,
        kind,
        1,
        octet,
        &["--user", user, "--sudo-password", "race pw"],
    );
    let mark = "/root/sudo-race-pwned";
    // The user's uid may be an earlier, removed user's: judge only files that appear during the test.
    let user_files = || {
        lab.exec_ok(
            "node-1",
            &format!("find /tmp /var/tmp -maxdepth 1 -user {user} | sort"),
        )
    };
    let before = user_files();
    // Each file once (appending for ever would only make the old wrapper's `sh FILE` never end).
    let watcher = NodeLoop::start(
        &lab,
        "node-1",
        user,
        &format!(
            "seen=; while :; do for f in /tmp/tmp.* /var/tmp/tmp.*; do \
             case \" $seen \" in *\" $f \"*) continue ;; esac; \
             [ -O \"$f\" ] && printf \"\\ntouch {mark}\\n\" >> \"$f\" && seen=\"$seen $f\"; done; done"
        ),
    );
    let home = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for args in [&["init", "--yes"][..], &["verify"][..]] {
        let o = netctl()
            .args(args)
            .arg("-p")
            .arg(&lab.profile)
            .env("HOME", home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NETCTL_SSH_CONFIG")
            .env("NETCTL_SUDO_PASSWORD", "race pw")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        runs.push((args, o));
    }
    drop(watcher);
    let found = lab.exec_ok("node-1", &format!("ls -l {mark} 2>&1 || true"));
    assert!(
        found.contains("No such file"),
        "root ran a line the SSH user wrote: {found}"
    );
    for (args, o) in &runs {
        assert!(o.status.success(), "{args:?}: {}", text(o));
        assert!(
            !text(o).contains("race pw"),
            "the password leaked: {}",
            text(o)
        );
    }
    assert_eq!(
        user_files(),
        before,
        "the wrapper left files of the SSH user behind"
    );
}
