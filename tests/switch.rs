//! `netctl switch` end to end on the lab: routes host-gw -> vxlan -> host-gw with a ping and
//! long-lived TCP connections (both directions) running between pods on the first and last node
//! throughout (packets lost and connections broken are counted and printed), an automatic rollback when the
//! new provider cannot work (flannel without flanneld), an interrupted switch undone with
//! `--rollback` or continued with `--resume`, and `--dry-run` changing nothing.

mod labkit;

use std::process::{Child, Command, Stdio};

use labkit::conn::{Conns, Pod};
use labkit::{can_run, text, Lab};

fn snapshot(lab: &Lab) -> Vec<String> {
    (1..=lab.nodes)
        .map(|i| {
            lab.exec_ok(
                &lab.node(i),
                "for d in /etc/cni/net.d /etc/sysctl.d /usr/local/lib/netctl /var/lib/netctl /etc/systemd/system /etc/kube-flannel; do \
                   [ -d $d ] && find $d -xdev -type f -not -path '/var/lib/netctl/backups/*' -not -path '/var/lib/netctl/txn/*' -printf '%p %T@ %s %m\\n' -exec sha256sum {} \\; ; done | sort; \
                 ip -4 route show proto 211; ip -o link show | cut -d' ' -f2",
            )
        })
        .collect()
}

/// A ping from `pod` on `node` to `ip`, every 10 ms until `stop_ping`.
fn start_ping(lab: &Lab, node: &str, pod: &str, ip: &str) -> Child {
    let c = labkit::netctl()
        .args(["lab", "exec", "--name", &lab.name, node, "--", "sh", "-c"])
        .arg(format!(
            "ip netns exec {pod} ping -i 0.01 {ip} > /root/ping.log 2>&1 & echo $! > /root/ping.pid; wait"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    c
}

/// Stop the ping; returns (sent, lost).
fn stop_ping(lab: &Lab, node: &str, mut child: Child) -> (u64, u64) {
    lab.exec_ok(node, "kill -INT $(cat /root/ping.pid)");
    let _ = child.wait();
    let log = lab.exec_ok(node, "cat /root/ping.log");
    let stats = log
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("{log}"));
    let nums: Vec<u64> = stats
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[0], nums[0] - nums[1])
}

fn switch(lab: &Lab, args: &[&str]) -> std::process::Output {
    let mut a = vec!["switch", "--yes"];
    a.extend_from_slice(args);
    lab.netctl(&a, &lab.profile)
}

fn routes_backend(lab: &Lab, node: &str) -> String {
    let st: serde_json::Value =
        serde_json::from_str(&lab.exec_ok(node, "cat /var/lib/netctl/state.json")).unwrap();
    assert_eq!(
        st["switch"],
        serde_json::Value::Null,
        "{node}: a finished switch leaves no progress record"
    );
    st["backend"].as_str().unwrap().to_string()
}

fn round_trip(kind: &str, name: &str, nodes: usize, octet: u8) {
    let lab = Lab::up(name, kind, nodes, octet);
    let o = lab.netctl(&["init", "--yes"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let last = lab.node(nodes);
    let a = Pod::make(&lab, "node-1", "pa");
    let b = Pod::make(&lab, &last, "pb");
    let mut report = Vec::new();
    for backend in ["vxlan", "host-gw"] {
        let conns = Conns::start(&lab, &[(&a, &b)], 4);
        let ping = start_ping(&lab, "node-1", "pa", &b.ip);
        let started = std::time::Instant::now();
        let o = switch(&lab, &["--networking", "routes", "--backend", backend]);
        let took = started.elapsed();
        let (sent, lost) = stop_ping(&lab, "node-1", ping);
        let tcp = conns.stop();
        assert!(o.status.success(), "{}", text(&o));
        for i in 1..=nodes {
            assert_eq!(routes_backend(&lab, &lab.node(i)), backend);
        }
        let vx = lab.exec("node-1", "ip link show netctl-vxlan");
        assert_eq!(
            vx.status.success(),
            backend == "vxlan",
            "the VXLAN device exists only on vxlan"
        );
        let ping = lab.exec(
            "node-1",
            &format!("ip netns exec pa ping -c 2 -W 2 {}", b.ip),
        );
        assert!(
            ping.status.success(),
            "after the switch to {backend}: {}",
            text(&ping)
        );
        let o = lab.netctl(&["plan"], &lab.profile);
        assert!(o.status.success(), "{}", text(&o));
        report.push(format!(
            "{kind} {nodes} nodes, routes -> {backend}: switch {:.2} s, ping every 10 ms: {sent} sent, {lost} lost; {tcp}",
            took.as_secs_f64()
        ));
        // At most one node's reconfiguration window.
        assert!(
            lost <= 20,
            "{lost} of {sent} pings lost switching to {backend}"
        );
        // Pod-to-pod traffic is not masqueraded and routes are replaced in place: an established
        // connection in either direction outlives the switch.
        assert_eq!(tcp.broken, 0, "switching to {backend}: {tcp}");
        assert!(tcp.messages > 0, "{tcp}");
    }
    for r in &report {
        eprintln!("SWITCH-LOSS {r}");
    }
}

#[test]
fn routes_host_gw_to_vxlan_and_back_on_systemd_nodes() {
    if can_run("routes_host_gw_to_vxlan_and_back_on_systemd_nodes") {
        round_trip("systemd", "sw-sd", 3, 31);
    }
}

#[test]
fn routes_host_gw_to_vxlan_and_back_on_netns_nodes() {
    if can_run("routes_host_gw_to_vxlan_and_back_on_netns_nodes") {
        round_trip("netns", "sw-ns", 5, 32);
    }
}

/// The lab's flanneld is a stand-in that does nothing: the first node's gate fails and netctl
/// rolls back by itself, leaving every node as it was.
#[test]
fn a_failed_gate_rolls_back_byte_for_byte() {
    if !can_run("a_failed_gate_rolls_back_byte_for_byte") {
        return;
    }
    for (kind, name, octet) in [("netns", "sw-rb", 33u8), ("systemd", "sw-rbs", 34)] {
        let lab = Lab::up(name, kind, 3, octet);
        let o = lab.netctl(&["init", "--yes"], &lab.profile);
        assert!(o.status.success(), "{}", text(&o));
        // The profile below moves cniBinDir into each node's own /root: the same plugins there.
        for i in 1..=3 {
            lab.exec_ok(
                &lab.node(i),
                "mkdir -p /root/netctl-test/cni && ln -sf /usr/lib/cni/* /root/netctl-test/cni/",
            );
        }
        let before = snapshot(&lab);
        // flanneld as a unit needs the cluster's CA and credentials the API server accepts:
        // a CA and a service-account token here (the lab has no API server: the gate fails).
        let dir = lab.profile.parent().unwrap().to_path_buf();
        let ca = dir.join("cluster-ca.pem");
        let key = dir.join("cluster-ca-key.pem");
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=lab-ca", "-days", "2", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{}", text(&ok));
        std::fs::write(dir.join("flannel.token"), "lab-token\n").unwrap();
        let profile = lab.profile_variant("flannel-creds", |v| {
            v["kubernetes"]["caCertificate"] = ca.to_str().unwrap().into();
            v["networking"]["flannel"]["tokenFile"] =
                dir.join("flannel.token").to_str().unwrap().into();
            // Stand-ins for flanneld and its CNI plugin: the rollback removes them too. Both go to
            // the node's own /root: netns nodes share the host's /usr/local/bin and /usr/lib/cni,
            // which a test must not write. (The target's bin dir then lacks the bridge plugins: one
            // more reason for the gate to fail, which is what this test wants.)
            v["kubernetes"]["binDir"] = "/root/netctl-test/bin".into();
            v["networking"]["cniBinDir"] = "/root/netctl-test/cni".into();
            let bins: serde_yaml::Value =
                serde_yaml::from_str(&format!("{{ {} }}", labkit::flannel_binaries(&dir))).unwrap();
            for k in ["flanneld", "cniPlugin"] {
                v["networking"]["flannel"][k] = bins[k].clone();
            }
        });
        let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
            .args([
                "switch",
                "--yes",
                // The lab runs no flanneld: preflight refuses it (no interface to pick); the
                // gate's failure and rollback are what this test is about.
                "--skip-preflight",
                "--networking",
                "flannel",
                "--backend",
                "host-gw",
                "-p",
            ])
            .arg(&profile)
            .env("NETCTL_NO_PROGRESS", "1")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let all = text(&o);
        assert!(all.contains("back on routes (host-gw)"), "{all}");
        let after = snapshot(&lab);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let gone: Vec<&str> = b.lines().filter(|l| !a.lines().any(|x| x == *l)).collect();
            let new: Vec<&str> = a.lines().filter(|l| !b.lines().any(|x| x == *l)).collect();
            assert!(
                gone.is_empty() && new.is_empty(),
                "{kind} node-{}: rollback left a difference: gone {gone:#?}, new {new:#?}",
                i + 1
            );
        }
    }
}

fn kill_after_first_node(lab: &Lab) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .args([
            "switch",
            "--yes",
            "--networking",
            "routes",
            "--backend",
            "vxlan",
            "-p",
        ])
        .arg(&lab.profile)
        .env("NETCTL_SWITCH_PAUSE_MS", "5000")
        .env("NETCTL_NO_PROGRESS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let st = lab.exec_ok("node-1", "cat /var/lib/netctl/state.json");
        if st.contains("\"phase\": \"switched\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-1 never switched: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    let st = lab.exec_ok("node-2", "cat /var/lib/netctl/state.json");
    assert!(
        st.contains("\"backend\": \"host-gw\""),
        "node-2 had not switched yet: {st}"
    );
}

#[test]
fn an_interrupted_switch_is_rolled_back() {
    if !can_run("an_interrupted_switch_is_rolled_back") {
        return;
    }
    let lab = Lab::up("sw-kr", "netns", 3, 35);
    assert!(lab
        .netctl(&["init", "--yes"], &lab.profile)
        .status
        .success());
    let before = snapshot(&lab);
    kill_after_first_node(&lab);
    // A plain switch refuses: the records say a switch is half done.
    let o = switch(&lab, &["--networking", "routes", "--backend", "vxlan"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // So do init and reset: they would overwrite the records and lose the way back.
    for args in [&["init", "--yes"][..], &["reset", "--yes"][..]] {
        let o = lab.netctl(args, &lab.profile);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("an interrupted switch"), "{}", text(&o));
    }
    // A test pod the killed run's gate may have left, with the bridge its ADD made (the kill may
    // have left a real one already): swept, and only netctl's reservation goes.
    lab.exec_ok(
        "node-1",
        "ip netns add netctl-dead-a && { ip link show cni0 >/dev/null 2>&1 || ip link add cni0 type bridge; } && mkdir -p /var/lib/cni/networks/t && \
         printf 'netctl-dead-a\r\neth0' > /var/lib/cni/networks/t/10.200.0.99 && \
         printf 'other\r\neth0' > /var/lib/cni/networks/t/10.200.0.98",
    );
    let o = switch(&lab, &["--rollback"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        lab.exec_ok(
            "node-1",
            "ip netns list | grep netctl-; ls /var/lib/cni/networks/t; rm -r /var/lib/cni/networks/t"
        ),
        "10.200.0.98\n"
    );
    assert_eq!(before, snapshot(&lab), "--rollback left a difference");
}

#[test]
fn an_interrupted_switch_is_resumed() {
    if !can_run("an_interrupted_switch_is_resumed") {
        return;
    }
    let lab = Lab::up("sw-ks", "netns", 3, 36);
    assert!(lab
        .netctl(&["init", "--yes"], &lab.profile)
        .status
        .success());
    kill_after_first_node(&lab);
    // A lock whose run is alive (here: it names this test's own process) is not taken over.
    let lock = lab.exec_ok("node-2", "cat /run/netctl/lock");
    let me = std::process::id();
    let start = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = start
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let alive: String = lock
        .lines()
        .map(|l| match l.split_once('=') {
            Some(("host", _)) => format!("host={}", host.trim()),
            Some(("pid", _)) => format!("pid={me}"),
            Some(("pid_start", _)) => format!("pid_start={start}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    lab.exec_ok(
        "node-2",
        &format!("printf '%s\\n' '{alive}' > /run/netctl/lock"),
    );
    let o = switch(
        &lab,
        &["--resume", "--networking", "routes", "--backend", "vxlan"],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "a live run's lock was taken over: {}",
        text(&o)
    );
    assert!(text(&o).contains("still going"), "{}", text(&o));
    lab.exec_ok(
        "node-2",
        &format!("printf '%s' '{lock}' > /run/netctl/lock"),
    );
    let o = switch(
        &lab,
        &["--resume", "--networking", "routes", "--backend", "vxlan"],
    );
    assert!(o.status.success(), "{}", text(&o));
    for i in 1..=3 {
        assert_eq!(routes_backend(&lab, &lab.node(i)), "vxlan");
    }
    let b = lab.make_pod("node-3", "pb");
    let _a = lab.make_pod("node-1", "pa");
    let ping = lab.exec("node-1", &format!("ip netns exec pa ping -c 2 -W 2 {b}"));
    assert!(ping.status.success(), "{}", text(&ping));
}

#[test]
fn dry_run_changes_nothing() {
    if !can_run("dry_run_changes_nothing") {
        return;
    }
    let lab = Lab::up("sw-dr", "netns", 2, 37);
    assert!(lab
        .netctl(&["init", "--yes"], &lab.profile)
        .status
        .success());
    let before = snapshot(&lab);
    let o = switch(
        &lab,
        &["--dry-run", "--networking", "routes", "--backend", "vxlan"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("switch from routes (host-gw) to routes (vxlan)"));
    assert_eq!(before, snapshot(&lab));
    // Without a terminal and without --yes, a switch is refused before touching anything.
    let o = lab.netctl(
        &["switch", "--networking", "routes", "--backend", "vxlan"],
        &lab.profile,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(before, snapshot(&lab));
}

/// The last gate is verify's data plane: a node that drops pod traffic from the other node (a
/// FORWARD drop the node checks and its own data-plane gate cannot see) fails it after the last
/// wave, and every node goes back.
#[test]
fn a_data_plane_failure_after_the_last_wave_rolls_back() {
    if !can_run("a_data_plane_failure_after_the_last_wave_rolls_back") {
        return;
    }
    let lab = Lab::up("sw-dp", "netns", 2, 38);
    assert!(lab
        .netctl(&["init", "--yes"], &lab.profile)
        .status
        .success());
    let rule = "FORWARD -s 10.200.0.0/24 -d 10.200.1.0/24 -j DROP";
    lab.exec_ok("node-2", &format!("iptables -I {rule}"));
    let o = switch(&lab, &["--networking", "routes", "--backend", "vxlan"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("verify after the last wave failed: dataplane."),
        "{all}"
    );
    assert!(all.contains("back on routes (host-gw)"), "{all}");
    for i in 1..=2 {
        assert_eq!(routes_backend(&lab, &lab.node(i)), "host-gw");
    }
    lab.exec_ok("node-2", &format!("iptables -D {rule}"));
}

/// Each node's gate includes its own data plane: node-2 drops the replies of its own pods to the
/// host (an INPUT drop the node checks cannot see), so its gate fails right after it switched,
/// before the last wave's verify, and both nodes go back. No test pod is left behind.
#[test]
fn a_node_whose_own_pods_fail_its_gate_rolls_back() {
    if !can_run("a_node_whose_own_pods_fail_its_gate_rolls_back") {
        return;
    }
    let lab = Lab::up("sw-dpn", "netns", 2, 39);
    assert!(lab
        .netctl(&["init", "--yes"], &lab.profile)
        .status
        .success());
    let before = snapshot(&lab);
    let rule = "INPUT -s 10.200.1.0/24 -p icmp -j DROP";
    lab.exec_ok("node-2", &format!("iptables -I {rule}"));
    let o = switch(&lab, &["--networking", "routes", "--backend", "vxlan"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("node-2: gate failed: dataplane.node-to-pod"),
        "{all}"
    );
    assert!(!all.contains("verify after the last wave"), "{all}");
    assert!(all.contains("back on routes (host-gw)"), "{all}");
    lab.exec_ok("node-2", &format!("iptables -D {rule}"));
    assert_eq!(before, snapshot(&lab), "every node as before");
    for i in 1..=2 {
        let left = lab.exec_ok(&lab.node(i), "ip netns list | grep netctl- || true");
        assert_eq!(left, "", "test pods left on node-{i}");
    }
}
