//! Real fleets, end to end on the lab (root; netns nodes with real sshd and real sudo): nodes reachable only
//! through a bastion, a non-root user with password sudo, keys held by a real ssh-agent, and an OpenSSH
//! client config (alias, user, key, hashed known_hosts, accept-new) in place of profile values.

mod labkit;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use labkit::{can_run, netctl, run_ok, text, Lab};

/// A netns lab with extra `lab up` flags.
fn lab_up(name: &str, nodes: usize, octet: u8, extra: &[&str]) -> Lab {
    Lab::up_with(name, "netns", nodes, octet, extra)
}

/// netctl with a clean SSH environment: no agent, no ~/.ssh (HOME is `home`), no config unless given.
fn netctl_in(home: &Path) -> Command {
    let mut c = netctl();
    c.env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("NETCTL_SSH_CONFIG")
        .env_remove("NETCTL_SUDO_PASSWORD")
        .stdin(Stdio::null());
    c
}

fn init(mut cmd: Command, profile: &Path) -> Output {
    cmd.args(["init", "--yes", "-p"])
        .arg(profile)
        .output()
        .expect("netctl")
}

#[test]
fn init_through_a_bastion_as_a_sudo_user() {
    if !can_run("init_through_a_bastion_as_a_sudo_user") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let lab = lab_up(
        "fl-bast",
        2,
        81,
        &[
            "--bastion",
            "--user",
            "netctl-fleet",
            "--sudo-password",
            "s3cret pass",
        ],
    );
    let profile = lab.profile_text();
    assert!(profile.contains("user: netctl-fleet"), "{profile}");
    assert!(
        profile.contains("sudo: true") && profile.contains("bastion: 10.240.81.5"),
        "{profile}"
    );

    // The nodes are not reachable from here; the bastion is.
    for addr in ["10.240.81.11:22", "10.240.81.12:22"] {
        let sa: SocketAddr = addr.parse().unwrap();
        assert!(
            TcpStream::connect_timeout(&sa, Duration::from_secs(2)).is_err(),
            "{addr} is reachable without the bastion"
        );
    }
    let bastion: SocketAddr = "10.240.81.5:22".parse().unwrap();
    TcpStream::connect_timeout(&bastion, Duration::from_secs(2)).expect("the bastion answers");

    // A wrong sudo password: exit 1, quickly, naming each node and sudo.
    let started = Instant::now();
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SUDO_PASSWORD", "not the password");
    let o = init(cmd, &lab.profile);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("node-1: sudo: the sudo password was refused for user netctl-fleet"),
        "{out}"
    );
    assert!(out.contains("node-2: sudo:"), "{out}");
    assert!(
        !out.contains("not the password"),
        "the password leaked: {out}"
    );
    assert_eq!(
        lab.exec_ok("node-1", "ls /var/lib/netctl"),
        "",
        "nothing written"
    );

    // No password and no terminal: a clear error, not a prompt or a hang.
    let o = init(netctl_in(home.path()), &lab.profile);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("NETCTL_SUDO_PASSWORD"), "{}", text(&o));

    // The right password: files (owned by root) and routes land on the nodes, through the bastion,
    // which sees one login for the whole run.
    let bastion_log = lab.profile.with_file_name("nodes/bastion/sshd.log");
    let logins = || {
        std::fs::read_to_string(&bastion_log)
            .unwrap_or_default()
            .matches("Accepted publickey for netctl-fleet")
            .count()
    };
    let before = logins();
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SUDO_PASSWORD", "s3cret pass");
    let o = init(cmd, &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        logins(),
        before + 1,
        "one bastion login per run, for both nodes"
    );
    let routes = lab.exec_ok("node-1", "ip -4 route show proto 211");
    assert!(
        routes.contains("10.200.1.0/24 via 10.240.81.12"),
        "{routes}"
    );
    let routes = lab.exec_ok("node-2", "ip -4 route show proto 211");
    assert!(
        routes.contains("10.200.0.0/24 via 10.240.81.11"),
        "{routes}"
    );
    let owner = lab.exec_ok(
        "node-2",
        "stat -c '%U %a' /etc/cni/net.d/10-bridge.conf /var/lib/netctl/state.json",
    );
    assert_eq!(owner, "root 644\nroot 644\n", "{owner}");
    // No script copy is left in the user's temp directory.
    let left = lab.exec_ok(
        "node-1",
        "find /tmp -maxdepth 1 -user netctl-fleet -name 'tmp.*'",
    );
    assert_eq!(left, "", "temp scripts left: {left}");

    // A second run changes nothing.
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SUDO_PASSWORD", "s3cret pass");
    let o = init(cmd, &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("unchanged"),
        "{}",
        text(&o)
    );

    drop(lab);
    assert!(
        !Command::new("getent")
            .args(["passwd", "netctl-fleet"])
            .output()
            .unwrap()
            .status
            .success(),
        "lab down removes the user"
    );
}

/// The same fleet shape on systemd nodes: the user lives in each node's own root (not the host's),
/// sudo is the node's, and init and verify (data plane included) go through the bastion.
#[test]
fn systemd_nodes_behind_a_bastion_as_a_sudo_user() {
    if !can_run("systemd_nodes_behind_a_bastion_as_a_sudo_user") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let lab = Lab::up_with(
        "fl-sysb",
        "systemd",
        2,
        84,
        &[
            "--bastion",
            "--user",
            "netctl-sys",
            "--sudo-password",
            "pw 2",
        ],
    );
    let profile = lab.profile_text();
    assert!(
        profile.contains("user: netctl-sys") && profile.contains("bastion: 10.240.84.5"),
        "{profile}"
    );
    let sa: SocketAddr = "10.240.84.11:22".parse().unwrap();
    assert!(
        TcpStream::connect_timeout(&sa, Duration::from_secs(2)).is_err(),
        "node-1 is reachable without the bastion"
    );
    // The node's own account: a systemd user session would be the node's, not the host's.
    let id = lab.exec_ok(
        "node-1",
        "id -un netctl-sys; stat -c '%U %a' /home/netctl-sys/.ssh/authorized_keys",
    );
    assert_eq!(id, "netctl-sys\nnetctl-sys 600\n");

    let with_password = || {
        let mut cmd = netctl_in(home.path());
        cmd.env("NETCTL_SUDO_PASSWORD", "pw 2");
        cmd
    };
    let o = init(with_password(), &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let routes = lab.exec_ok("node-2", "ip -4 route show proto 211");
    assert!(
        routes.contains("10.200.0.0/24 via 10.240.84.11"),
        "{routes}"
    );
    let o = with_password()
        .args(["verify", "--output", "json", "-p"])
        .arg(&lab.profile)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let passed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "pass")
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        passed.contains(&"dataplane.pod-to-pod") && passed.contains(&"node.routes"),
        "{}",
        text(&o)
    );
}

/// On a terminal with no secrets in the environment: an encrypted key's passphrase and the sudo
/// password are each asked once for the whole run (two nodes connect and sudo concurrently),
/// never echoed, and init goes through.
#[test]
fn passphrase_and_sudo_password_are_asked_once_on_a_terminal() {
    if !can_run("passphrase_and_sudo_password_are_asked_once_on_a_terminal") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let lab = lab_up(
        "fl-pty",
        2,
        85,
        &["--user", "netctl-pty", "--sudo-password", "sudo pw 3"],
    );
    // The lab key under a passphrase: the same public key, so the nodes already accept it.
    let key = home.path().join("id_encrypted");
    std::fs::copy(lab.profile.with_file_name("id_ed25519"), &key).unwrap();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-p", "-N", "key pass 3", "-f"])
            .arg(&key),
    );
    let profile = lab.profile_variant("encrypted", |v| {
        v["ssh"]["identityFile"] = key.to_str().unwrap().into();
    });
    let cmd = format!(
        "env -u SSH_AUTH_SOCK -u NETCTL_KEY_PASSPHRASE -u NETCTL_SUDO_PASSWORD HOME={} {} init --yes -p {}",
        home.path().display(),
        env!("CARGO_BIN_EXE_netctl"),
        profile.display()
    );
    let mut pty = labkit::pty::Pty::start(&cmd, home.path(), &[], 60);
    let asked_key = format!("Passphrase for {}", key.display());
    let asked_sudo = "sudo password for the nodes";
    // dialoguer prints "<prompt>: [hidden]" as soon as it has read an answer.
    let typed = pty.answer(&asked_key, "key pass 3", &format!("{asked_key}: [hidden]"))
        + pty.answer(asked_sudo, "sudo pw 3", &format!("{asked_sudo}: [hidden]"));
    let (status, screen) = pty.finish();
    assert!(status.success(), "{screen}");
    // Each asked once: its prompt, then the "[hidden]" line for the answer.
    for prompt in [asked_key.as_str(), asked_sudo] {
        assert_eq!(screen.matches(prompt).count(), 2, "{screen}");
    }
    // Typed once each, so after echo went off: anything on the screen would be netctl's doing.
    if typed == 2 {
        assert!(
            !screen.contains("key pass 3") && !screen.contains("sudo pw 3"),
            "a secret was echoed: {screen}"
        );
    }
    assert!(lab
        .exec_ok("node-2", "cat /var/lib/netctl/state.json")
        .contains("routes"));
}

/// ssh config ProxyCommand: the nodes, reachable only through the bastion, are reached through
/// `ssh -W %h:%p bastion` (the real OpenSSH client) instead of `ssh.bastion`; a failing command is
/// reported with what it printed.
#[test]
fn proxy_command_through_the_bastion() {
    if !can_run("proxy_command_through_the_bastion") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let lab = lab_up("fl-proxy", 2, 86, &["--bastion"]);
    let profile = lab.profile_variant("proxy", |v| {
        v["ssh"].as_mapping_mut().unwrap().remove("bastion");
    });
    let key = lab.profile.with_file_name("id_ed25519");
    let kh = lab.profile.with_file_name("known_hosts");
    let config = home.path().join("ssh_config");
    let write = |command: &str| {
        std::fs::write(&config, format!("Host node-*\n  ProxyCommand {command}\n")).unwrap()
    };
    write(&format!(
        "ssh -q -W %h:%p -i {} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} root@10.240.86.5",
        key.display(),
        kh.display()
    ));
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SSH_CONFIG", &config);
    let o = init(cmd, &profile);
    assert!(o.status.success(), "{}", text(&o));
    let routes = lab.exec_ok("node-2", "ip -4 route show proto 211");
    assert!(
        routes.contains("10.200.0.0/24 via 10.240.86.11"),
        "{routes}"
    );

    write("echo 'no route to %h:%p' >&2; exit 1");
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SSH_CONFIG", &config);
    let o = init(cmd, &profile);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("node-1: through ProxyCommand")
            && text(&o).contains("no route to 10.240.86.11:22"),
        "{}",
        text(&o)
    );
}

/// A real ssh-agent, killed by PID when the test ends.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn keys_from_an_ssh_agent() {
    if !can_run("keys_from_an_ssh_agent") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let lab = lab_up("fl-agent", 1, 82, &[]);
    let agent = Agent::start(home.path());
    let key = lab.profile.with_file_name("id_ed25519");
    run_ok(
        Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &agent.socket),
    );
    let profile = lab.profile_variant("agent", |v| {
        v["ssh"]["identityFile"] = "/nonexistent/id_ed25519".into();
    });

    // Without the agent nothing can log in, and the error says what was tried.
    let o = init(netctl_in(home.path()), &profile);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("node-1: authentication failed for user root")
            && text(&o).contains("/nonexistent/id_ed25519"),
        "{}",
        text(&o)
    );

    let mut cmd = netctl_in(home.path());
    cmd.env("SSH_AUTH_SOCK", &agent.socket);
    let o = init(cmd, &profile);
    assert!(o.status.success(), "{}", text(&o));
    assert!(lab
        .exec_ok("node-1", "cat /var/lib/netctl/state.json")
        .contains("routes"));
}

#[test]
fn ssh_config_alias_hashed_known_hosts_and_accept_new() {
    if !can_run("ssh_config_alias_hashed_known_hosts_and_accept_new") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let lab = lab_up("fl-conf", 1, 83, &[]);
    let key = lab.profile.with_file_name("id_ed25519");
    // The node is called by its alias; user, key and known_hosts come from the ssh config only.
    let profile = lab.profile_variant("alias", |v| {
        let ssh = v["ssh"].as_mapping_mut().unwrap();
        for k in ["user", "identityFile", "knownHosts"] {
            ssh.remove(k);
        }
        v["nodes"][0]["name"] = "n1-alias".into();
    });
    let hashed = home.path().join("known_hosts.hashed");
    std::fs::copy(lab.profile.with_file_name("known_hosts"), &hashed).unwrap();
    run_ok(Command::new("ssh-keygen").arg("-H").arg("-f").arg(&hashed));
    let kh = std::fs::read_to_string(&hashed).unwrap();
    assert!(
        kh.starts_with("|1|") && !kh.contains("10.240.83.11"),
        "{kh}"
    );

    // The node's block lives in ~/.ssh/config.d/, pulled in by a relative, globbed Include.
    let config = home.path().join("ssh_config");
    std::fs::write(
        &config,
        // At the top: an Include after a Host line would belong to that Host block.
        "Include config.d/*\n\nHost other\n  User nobody\n\nHost *\n  User wrong\n",
    )
    .unwrap();
    let included = home.path().join(".ssh/config.d");
    std::fs::create_dir_all(&included).unwrap();
    let write_config = |known_hosts: &Path, extra: &str| {
        std::fs::write(
            included.join("lab"),
            format!(
                "Host n1-*\n  HostName 10.240.83.11\n  User root\n  \
                 IdentityFile {}\n  UserKnownHostsFile {}\n{extra}",
                key.display(),
                known_hosts.display()
            ),
        )
        .unwrap();
    };
    write_config(&hashed, "");

    // Without the config: the host is unknown (no ~/.ssh/known_hosts): refused before any key is tried.
    let o = init(netctl_in(home.path()), &profile);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SSH_CONFIG", &config);
    let o = init(cmd, &profile);
    assert!(o.status.success(), "{}", text(&o));
    assert!(lab
        .exec_ok(
            "node-1",
            "ip -4 -o addr show; cat /var/lib/netctl/state.json"
        )
        .contains("routes"));

    // An empty known_hosts: refused (exit 3) ... unless the config says StrictHostKeyChecking accept-new.
    let fresh = home.path().join("known_hosts.fresh");
    std::fs::write(&fresh, "").unwrap();
    write_config(&fresh, "  StrictHostKeyChecking yes\n");
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SSH_CONFIG", &config);
    let o = init(cmd, &profile);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    write_config(&fresh, "  StrictHostKeyChecking accept-new\n");
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SSH_CONFIG", &config);
    let o = init(cmd, &profile);
    assert!(o.status.success(), "{}", text(&o));
    let learned = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        learned.starts_with("10.240.83.11 ssh-ed25519 "),
        "{learned}"
    );

    // accept-new never accepts a changed key.
    let other = home.path().join("other_key");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other),
    );
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fake: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(&fresh, format!("10.240.83.11 {}\n", fake.join(" "))).unwrap();
    let mut cmd = netctl_in(home.path());
    cmd.env("NETCTL_SSH_CONFIG", &config);
    let o = init(cmd, &profile);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("HOST KEY CHANGED"), "{}", text(&o));
}
