//! Issue 10, findings 1, 8 and 9, end to end: root never runs a file the SSH user can write (the
//! sudo password wrapper), secrets stay out of child processes' environments, and text from nodes
//! reaches the terminal escaped.

mod labkit;

use std::os::unix::fs::PermissionsExt;
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

/// Finding 8: netctl started with both secrets in its environment runs a ProxyCommand and kubectl
/// (stand-ins that save their environment) without passing either secret on. No node is needed:
/// the ProxyCommand fails after saving, and verify's cluster checks call kubectl regardless.
#[test]
fn secrets_stay_out_of_child_environments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let kubectl = write(
        "kubectl",
        format!(
            "#!/bin/sh\nenv > {}/kubectl-env\necho '{{}}'\n",
            d.display()
        ),
    );
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write(
        "ssh_config",
        format!(
            "Host *\n  ProxyCommand env > {}/proxy-env; exit 1\n",
            d.display()
        ),
    );
    let profile = write(
        "profile.yaml",
        format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: sudo-env\n\
             kubernetes: {{version: \"1.28\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24, \
             clusterDNS: 10.32.0.10, kubeconfig: {d}/kubeconfig}}\n\
             networking: {{provider: routes}}\n\
             ssh: {{user: root, identityFile: {d}/id}}\n\
             nodes:\n  - {{name: node-1, address: 10.240.152.11, roles: [worker]}}\n",
            d = d.display()
        ),
    );
    write("kubeconfig", String::new());
    let o = netctl()
        .args(["verify", "--no-dataplane", "-p"])
        .arg(&profile)
        .env("HOME", d)
        .env("NETCTL_SSH_CONFIG", &config)
        .env("NETCTL_KUBECTL", &kubectl)
        .env("NETCTL_SUDO_PASSWORD", "sudo-pw-8f3a")
        .env("NETCTL_KEY_PASSPHRASE", "key-pp-41c7")
        .env("SUDO_ENV_CONTROL", "inherited")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    for child in ["proxy-env", "kubectl-env"] {
        let env = std::fs::read_to_string(d.join(child))
            .unwrap_or_else(|e| panic!("{child}: {e}\n{}", text(&o)));
        assert!(env.contains("SUDO_ENV_CONTROL=inherited"), "{child}: {env}");
        for secret in [
            "NETCTL_SUDO_PASSWORD",
            "sudo-pw-8f3a",
            "NETCTL_KEY_PASSPHRASE",
            "key-pp-41c7",
        ] {
            assert!(!env.contains(secret), "{child} got {secret}");
        }
    }
}

/// Finding 9: a node's lock holds terminal escapes (set the title, clear the screen). init reports
/// the node as held, and what it prints shows the escapes as text instead of sending them.
#[test]
fn node_text_reaches_the_terminal_escaped() {
    if !can_run("node_text_reaches_the_terminal_escaped") {
        return;
    }
    let lab = Lab::up("sudo-esc", "netns", 1, 153);
    lab.exec_ok(
        "node-1",
        "mkdir -p /run/netctl && printf 'run=x\\nhost=\\033]0;pwned\\007 \\033[2J\\npid=1\\n' > /run/netctl/lock",
    );
    let o = lab.netctl(&["init", "--yes"], &lab.profile);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    for (name, out) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let out = String::from_utf8_lossy(out);
        assert!(
            !out.contains(['\x1b', '\x07']),
            "{name} has raw controls: {out:?}"
        );
        assert!(
            out.contains(r"on \x1b]0;pwned\x07 \x1b[2J"),
            "{name}: {out}"
        );
    }
}

/// Real sudo, where `sudo -n true` needs the password but a NOPASSWD rule covers sh: sudo does not
/// read the password line, so the root shell gets it first. It runs nothing, and init says why
/// without the password in any message.
#[test]
fn sudo_without_a_password_for_sh_runs_nothing() {
    if !can_run("sudo_without_a_password_for_sh_runs_nothing") {
        return;
    }
    let user = "sudo-nopw";
    let lab = Lab::up_with(
        "sudo-np",
        "netns",
        1,
        154,
        &["--user", user, "--sudo-password", "np pw"],
    );
    // Last in the directory, so it wins over the lab's own rule for these commands.
    lab.exec_ok(
        "node-1",
        &format!(
            "echo '{user} ALL=(ALL) NOPASSWD: /bin/sh, /usr/bin/sh' > /etc/sudoers.d/zz-sudo-np && \
             chmod 440 /etc/sudoers.d/zz-sudo-np"
        ),
    );
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        netctl()
            .args(args)
            .arg("-p")
            .arg(&lab.profile)
            .env("HOME", home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NETCTL_SSH_CONFIG")
            .env("NETCTL_SUDO_PASSWORD", "np pw")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(&["init", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o)
            .contains("node-1: sudo: sudo ran the script's shell without asking for the password"),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("np pw"),
        "the password leaked: {}",
        text(&o)
    );
    assert_eq!(
        lab.exec_ok("node-1", "ls -A /run/netctl /var/lib/netctl"),
        "/run/netctl:\n\n/var/lib/netctl:\n",
        "nothing ran: no lock, no state"
    );
    // preflight's agent, which stays on its channel, is refused the same way: its facts and
    // listeners never run, and the report says why.
    let o = run(&["preflight"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("sudo ran the script's shell without asking for the password"),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("np pw"),
        "the password leaked: {}",
        text(&o)
    );
}
