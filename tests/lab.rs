//! End-to-end tests of `netctl lab`: the real binary, real namespaces, containers and sshd.
//! They need root; without it they say why and skip, except under CI=true where they fail.
//! Each test uses its own lab name and subnet (tests run in parallel threads) and tears its lab
//! down in a Drop guard.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_netctl");

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// False (after saying why) when the test cannot run here; panics under CI=true instead.
fn can_run(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = format!("{test}: skipped: the lab needs root (namespaces, links, mounts)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; CI=true requires it to run");
    }
    eprintln!("{why}");
    false
}

fn netctl(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netctl")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A lab brought up for one test and always torn down, even when the test panics.
struct Lab {
    name: String,
    dir: PathBuf,
    up_output: Output,
}

impl Lab {
    fn up(name: &str, kind: &str, nodes: usize, subnet: &str) -> Lab {
        // A leftover from an aborted run would make `up` refuse the name.
        netctl(&["lab", "down", "--name", name]);
        let n = nodes.to_string();
        let out = netctl(&[
            "lab", "up", "--name", name, "--kind", kind, "--nodes", &n, "--subnet", subnet,
        ]);
        let lab = Lab {
            name: name.into(),
            dir: netctl::lab::lab_dir(name),
            up_output: out,
        };
        assert!(
            lab.up_output.status.success(),
            "lab up {name}: {}",
            text(&lab.up_output)
        );
        lab
    }

    fn info(&self) -> netctl::lab::LabInfo {
        netctl::lab::load(&self.name).expect("load lab info")
    }

    fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["lab", "exec", "--name", &self.name, node, "--"];
        args.extend_from_slice(cmd);
        netctl(&args)
    }

    fn exec_ok(&self, node: &str, cmd: &[&str]) -> String {
        let o = self.exec(node, cmd);
        assert!(o.status.success(), "exec {node} {cmd:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// OpenSSH client with the lab key and known_hosts, host keys checked strictly.
    fn ssh(&self, node: &str, script: &str) -> Output {
        let info = self.info();
        let addr = info.node(node).expect("node").address.to_string();
        Command::new("ssh")
            .arg("-i")
            .arg(&info.key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", info.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=10"])
            .arg(format!("root@{addr}"))
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }

    fn ssh_ok(&self, node: &str, script: &str) -> String {
        let o = self.ssh(node, script);
        assert!(o.status.success(), "ssh {node} {script:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn restart(&self, node: &str) {
        let o = netctl(&["lab", "restart", "--name", &self.name, node]);
        assert!(o.status.success(), "restart {node}: {}", text(&o));
    }

    fn down(&self) -> Output {
        netctl(&["lab", "down", "--name", &self.name])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = self.down();
        // A failed tear-down fails the test, unless it is already failing (a second panic
        // while unwinding would abort and hide the first).
        if !std::thread::panicking() {
            assert!(o.status.success(), "lab down {}: {}", self.name, text(&o));
            assert_eq!(traces(&self.name, &self.dir), Vec::<String>::new());
        } else if !o.status.success() {
            eprintln!("lab down {} in Drop: {}", self.name, text(&o));
        }
    }
}

/// Everything on the host that belongs to a lab: namespaces, links, mounts, processes.
fn traces(name: &str, dir: &Path) -> Vec<String> {
    let mut t = Vec::new();
    let out = |p: &str, a: &[&str]| {
        String::from_utf8_lossy(&Command::new(p).args(a).output().unwrap().stdout).into_owned()
    };
    for l in out("ip", &["netns", "list"]).lines() {
        if l.starts_with(&format!("{name}-")) {
            t.push(format!("netns {l}"));
        }
    }
    for l in out("ip", &["-o", "link"]).lines() {
        if l.contains(&format!("nl-{name}-")) || l.contains(&format!("vb-{name}-")) {
            t.push(format!("link {l}"));
        }
    }
    let d = dir.display().to_string();
    for l in std::fs::read_to_string("/proc/mounts").unwrap().lines() {
        if l.contains(&d) || l.contains(&format!("/run/netns/{name}-")) {
            t.push(format!("mount {l}"));
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&d) {
                t.push(format!("process {} {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    t
}

/// The last line of `lab up` is the profile path, and netctl's own loader accepts the profile.
fn check_profile(lab: &Lab, init: &str, nodes: usize) {
    let stdout = String::from_utf8_lossy(&lab.up_output.stdout);
    let last = stdout.lines().last().expect("lab up printed something");
    assert_eq!(Path::new(last), lab.dir.join("profile.yaml"));
    let cluster = netctl::profile::load(Path::new(last)).expect("profile loads");
    let yaml = std::fs::read_to_string(last).unwrap();
    assert_eq!(
        yaml.matches(&format!("init: {init}")).count(),
        nodes,
        "{yaml}"
    );
    assert!(yaml.contains(&format!("name: {}", lab.name)));
    drop(cluster);
}

/// A file written over ssh into /etc/cni/net.d on node-1 is on node-1 only.
fn check_cni_dir_per_node(lab: &Lab, tag: &str) {
    lab.ssh_ok(
        "node-1",
        &format!("echo {tag} > /etc/cni/net.d/10-{tag}.conf"),
    );
    let one = lab.exec_ok("node-1", &["cat", &format!("/etc/cni/net.d/10-{tag}.conf")]);
    assert_eq!(one.trim(), tag);
    let two = lab.exec("node-2", &["ls", "/etc/cni/net.d"]);
    assert!(
        !String::from_utf8_lossy(&two.stdout).contains(tag),
        "{}",
        text(&two)
    );
    assert!(!Path::new(&format!("/etc/cni/net.d/10-{tag}.conf")).exists());
}

fn check_isolated(lab: &Lab, node: &str) {
    let routes = lab.exec_ok(node, &["ip", "-4", "route"]);
    assert!(
        !routes.contains("default"),
        "a node has a default route: {routes}"
    );
    assert_eq!(lab.exec_ok(node, &["hostname"]).trim(), node);
}

#[test]
fn netns_lab_up_status_exec_ssh_down_leaves_nothing() {
    if !can_run("netns_lab_up_status_exec_ssh_down_leaves_nothing") {
        return;
    }
    let name = "tn1";
    let dir = netctl::lab::lab_dir(name);
    netctl(&["lab", "down", "--name", name]);
    assert_eq!(traces(name, &dir), Vec::<String>::new());
    let lab = Lab::up(name, "netns", 3, "10.243.1.0/24");
    assert!(
        !traces(name, &dir).is_empty(),
        "nothing of the lab is visible"
    );
    check_profile(&lab, "none", 3);

    let st = netctl(&["lab", "status", "--name", name]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    let s = String::from_utf8_lossy(&st.stdout);
    assert_eq!(s.matches(" up").count(), 3, "{s}");
    assert!(s.contains("10.243.1.11") && s.contains("netns"), "{s}");

    // Exit codes pass through; the node has its own network and hostname.
    assert_eq!(
        lab.exec("node-2", &["sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    check_isolated(&lab, "node-2");
    let addrs = lab.exec_ok("node-2", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains("10.243.1.12/24"), "{addrs}");
    // Nodes reach each other over the bridge.
    lab.exec_ok("node-1", &["ping", "-c1", "-W2", "10.243.1.13"]);
    check_cni_dir_per_node(&lab, "tn1");
    // Pod namespaces made in a node stay in it.
    lab.ssh_ok("node-1", "ip netns add pod-tn1");
    assert!(!lab.exec_ok("node-2", &["ip", "netns"]).contains("pod-tn1"));

    let info = lab.info();
    assert_eq!(info.kind, netctl::lab::Kind::Netns);
    assert!(info.nodes.iter().all(|n| n.leader_pid.is_some()));
    let kh = std::fs::read_to_string(&info.known_hosts).unwrap();
    assert_eq!(
        kh.lines().filter(|l| l.contains(" ssh-ed25519 ")).count(),
        3
    );

    let d = lab.down();
    assert!(d.status.success(), "{}", text(&d));
    assert_eq!(traces(name, &dir), Vec::<String>::new());
    assert!(!dir.exists());
    let again = lab.down();
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn systemd_lab_units_ssh_exec_down_leaves_nothing() {
    if !can_run("systemd_lab_units_ssh_exec_down_leaves_nothing") {
        return;
    }
    let name = "ts1";
    let dir = netctl::lab::lab_dir(name);
    netctl(&["lab", "down", "--name", name]);
    assert_eq!(traces(name, &dir), Vec::<String>::new());
    let lab = Lab::up(name, "systemd", 2, "10.243.2.0/24");
    assert!(!traces(name, &dir).is_empty());
    check_profile(&lab, "systemd", 2);
    let st = netctl(&["lab", "status", "--name", name]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));

    // Real systemd: a new unit loads after daemon-reload and starts.
    let out = lab.ssh_ok(
        "node-1",
        "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/sh -c \"hostname > /run/ts1.out\"\\n' \
           > /etc/systemd/system/ts1.service \
         && systemctl daemon-reload && systemctl start ts1.service \
         && systemctl is-active ts1.service && cat /run/ts1.out",
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["active", "node-1"]
    );
    // A unit with an error fails: the test unit really ran under systemd.
    let bad = lab.ssh(
        "node-1",
        "printf '[Service]\\nExecStart=/bin/false\\n' > /etc/systemd/system/ts1-bad.service \
         && systemctl daemon-reload && systemctl start ts1-bad.service; sleep 0.5; systemctl is-failed ts1-bad.service",
    );
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("failed"),
        "{}",
        text(&bad)
    );

    assert_eq!(
        lab.exec("node-2", &["sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    // exec enters the container's PID namespace: its PID 1 is systemd.
    assert_eq!(
        lab.exec_ok("node-2", &["cat", "/proc/1/comm"]).trim(),
        "systemd"
    );
    check_isolated(&lab, "node-2");
    lab.exec_ok("node-1", &["ping", "-c1", "-W2", "10.243.2.12"]);
    check_cni_dir_per_node(&lab, "ts1");

    let d = lab.down();
    assert!(d.status.success(), "{}", text(&d));
    assert_eq!(traces(name, &dir), Vec::<String>::new());
    assert!(!dir.exists());
    assert!(lab.down().status.success());
}

#[test]
fn netns_restart_loses_network_state_keeps_disk() {
    if !can_run("netns_restart_loses_network_state_keeps_disk") {
        return;
    }
    let lab = Lab::up("tr1", "netns", 2, "10.243.3.0/24");
    lab.ssh_ok(
        "node-1",
        "echo kept > /etc/cni/net.d/k.conf && ip addr add 10.99.0.1/32 dev lo \
         && ip route add 10.98.0.0/16 dev eth0",
    );
    let before = lab.info().node("node-1").unwrap().pid;
    assert!(lab.exec_ok("node-1", &["ip", "addr"]).contains("10.99.0.1"));
    lab.restart("node-1");
    let after = lab.info().node("node-1").unwrap().pid;
    assert_ne!(before, after, "sshd was not restarted");
    let state = lab.ssh_ok("node-1", "ip addr; ip route; cat /etc/cni/net.d/k.conf");
    assert!(!state.contains("10.99.0.1"), "{state}");
    assert!(!state.contains("10.98.0.0"), "{state}");
    assert!(state.contains("kept"), "{state}");
    // The other node is untouched and still reaches the restarted one.
    lab.exec_ok("node-2", &["ping", "-c1", "-W2", "10.243.3.11"]);
}

#[test]
fn systemd_restart_is_a_reboot_keeping_disk() {
    if !can_run("systemd_restart_is_a_reboot_keeping_disk") {
        return;
    }
    let lab = Lab::up("tr2", "systemd", 1, "10.243.4.0/24");
    let boot1 = lab.ssh_ok(
        "node-1",
        "echo kept > /etc/cni/net.d/k.conf && cat /proc/sys/kernel/random/boot_id",
    );
    lab.restart("node-1");
    let out = lab.ssh_ok(
        "node-1",
        "cat /proc/sys/kernel/random/boot_id; cat /etc/cni/net.d/k.conf",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], boot1.trim(), "boot id unchanged: not rebooted");
    assert_eq!(lines[1], "kept");
}

#[test]
fn fifty_netns_nodes_all_answer() {
    if !can_run("fifty_netns_nodes_all_answer") {
        return;
    }
    let lab = Lab::up("tb1", "netns", 50, "10.243.5.0/24");
    let st = netctl(&["lab", "status", "--name", "tb1"]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    let s = String::from_utf8_lossy(&st.stdout);
    assert_eq!(s.lines().filter(|l| l.ends_with(" up")).count(), 50, "{s}");
    // And a real login on the last one.
    assert_eq!(lab.ssh_ok("node-50", "hostname").trim(), "node-50");
    assert_eq!(lab.info().nodes[49].address.to_string(), "10.243.5.60");
}

/// A PATH holding every tool the lab needs except `missing`.
fn path_without(missing: &str, tmp: &Path) -> String {
    let tools = [
        "ip",
        "sshd",
        "ssh-keygen",
        "ping",
        "nsenter",
        "unshare",
        "mount",
        "systemd-nspawn",
        "debootstrap",
    ];
    for t in tools.iter().filter(|t| **t != missing) {
        let real = which::which(t).unwrap_or_else(|_| panic!("{t} is installed"));
        std::os::unix::fs::symlink(real, tmp.join(t)).unwrap();
    }
    tmp.display().to_string()
}

#[test]
fn a_missing_package_is_named_with_exit_2() {
    if !can_run("a_missing_package_is_named_with_exit_2") {
        return;
    }
    for (missing, kind, package) in [
        ("sshd", "netns", "openssh-server"),
        ("ip", "netns", "iproute2"),
        ("systemd-nspawn", "systemd", "systemd-container"),
        ("debootstrap", "systemd", "debootstrap"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let path = path_without(missing, tmp.path());
        let o = Command::new(BIN)
            .args(["lab", "up", "--name", "tm1", "--kind", kind])
            .args(["--subnet", "10.243.6.0/24"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{missing}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(package) && err.starts_with("error: "), "{err}");
    }
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["lab", "up", "--name", "tm1", "--kind", "netns"])
        .args(["--subnet", "10.243.6.0/24"])
        .env("NETCTL_LAB_CNI_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("containernetworking-plugins"));
    assert!(
        !netctl::lab::lab_dir("tm1").exists(),
        "a refused lab made its directory"
    );
}

#[test]
fn a_second_lab_needs_a_free_subnet() {
    if !can_run("a_second_lab_needs_a_free_subnet") {
        return;
    }
    let _a = Lab::up("tc1", "netns", 1, "10.243.7.0/24");
    // An overlapping subnet (here inside the first lab's) is refused, naming the lab.
    let clash2 = netctl(&[
        "lab",
        "up",
        "--name",
        "tc2",
        "--kind",
        "netns",
        "--nodes",
        "1",
        "--subnet",
        "10.243.7.128/25",
    ]);
    assert_eq!(clash2.status.code(), Some(2), "{}", text(&clash2));
    assert!(
        String::from_utf8_lossy(&clash2.stderr).contains("tc1"),
        "{}",
        text(&clash2)
    );
    assert!(!netctl::lab::lab_dir("tc2").exists());
    let b = Lab::up("tc2", "netns", 1, "10.243.8.0/24");
    assert_eq!(b.info().nodes[0].address.to_string(), "10.243.8.11");
    // The same name twice is refused too.
    let dup = netctl(&[
        "lab",
        "up",
        "--name",
        "tc1",
        "--kind",
        "netns",
        "--subnet",
        "10.243.9.0/24",
    ]);
    assert_eq!(dup.status.code(), Some(2), "{}", text(&dup));
}

#[test]
fn bad_input_and_non_root_exit_2() {
    if !can_run("bad_input_and_non_root_exit_2") {
        return;
    }
    for args in [
        &["lab", "up", "--name", "Bad_Name"][..],
        &["lab", "up", "--name", "waytoolongname"],
        &[
            "lab", "up", "--name", "tx1", "--kind", "netns", "--nodes", "401",
        ],
        &[
            "lab",
            "up",
            "--name",
            "tx1",
            "--kind",
            "netns",
            "--subnet",
            "10.200.5.0/24",
        ],
        &[
            "lab",
            "up",
            "--name",
            "tx1",
            "--kind",
            "netns",
            "--nodes",
            "10",
            "--subnet",
            "10.243.10.0/29",
        ],
        &["lab", "status", "--name", "nosuch"],
        &["lab", "exec", "--name", "nosuch", "node-1", "--", "true"],
    ] {
        let o = netctl(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["lab", "up", "--name", "tx2", "--kind", "netns"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("root"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_failed_up_removes_what_it_made() {
    if !can_run("a_failed_up_removes_what_it_made") {
        return;
    }
    let name = "tf1";
    let dir = netctl::lab::lab_dir(name);
    netctl(&["lab", "down", "--name", name]);
    // node-2's veth name is taken, so `lab up` fails half way, after node-1 and the bridge.
    let _ = Command::new("ip")
        .args(["link", "del", "nl-tf1-2"])
        .output();
    let made = Command::new("ip")
        .args([
            "link",
            "add",
            "nl-tf1-2",
            "type",
            "veth",
            "peer",
            "name",
            "tf1-blocker",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let o = netctl(&[
        "lab",
        "up",
        "--name",
        name,
        "--kind",
        "netns",
        "--nodes",
        "3",
        "--subnet",
        "10.243.11.0/24",
    ]);
    let _ = Command::new("ip")
        .args(["link", "del", "nl-tf1-2"])
        .output();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ip link add nl-tf1-2"), "{err}");
    assert_eq!(traces(name, &dir), Vec::<String>::new());
    assert!(!dir.exists());
}

/// Issue 16: `lab status` without root on an existing lab failed reading its state (permission
/// denied, exit 1); it says the lab needs root, exit 2, as `lab up` does.
#[test]
fn lab_status_without_root_says_it_needs_root() {
    if !can_run("lab_status_without_root_says_it_needs_root") {
        return;
    }
    let lab = Lab::up("lab-nr", "netns", 1, "10.240.174.0/24");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_netctl"))
        .args(["lab", "status", "--name", &lab.name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
}
