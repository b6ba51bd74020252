//! Issue 17, item 10: the routes provider's bridge config masqueraded pod traffic to other nodes'
//! pods (`"ipMasq": true` masquerades everything outside the node's podCIDR), so peers saw node
//! addresses, NetworkPolicy could not match pods, and connections broke when a switch changed
//! their path. Pod to pod must keep pod addresses; only traffic leaving the cluster CIDR is
//! masqueraded, and `reset` removes that rule.

mod labkit;

use std::process::{Command, Stdio};
use std::time::Duration;

use labkit::{text, Lab};

#[test]
fn pod_to_pod_keeps_pod_addresses_and_only_leaving_traffic_is_masqueraded() {
    if !labkit::can_run("pod_to_pod_keeps_pod_addresses_and_only_leaving_traffic_is_masqueraded") {
        return;
    }
    let lab = Lab::up("masq", "netns", 2, 173);
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let a = lab.make_pod("node-1", "pa");
    let b = lab.make_pod("node-2", "pb");
    // A UDP listener in pod b prints the source address of what it receives.
    let listener = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .args(["lab", "exec", "--name", &lab.name, "node-2", "--", "ip", "netns", "exec", "pb"])
        .args([
            "timeout",
            "10",
            "python3",
            "-c",
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',9999));d,a=s.recvfrom(64);print(a[0])",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        lab.exec_ok(
            "node-1",
            &format!("ip netns exec pa python3 -c \"import socket;socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'x',('{b}',9999))\""),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = listener.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&seen.stdout).trim().to_string();
    assert_eq!(
        seen, a,
        "pod b saw {seen}, not pod a's address {a}: pod-to-pod was masqueraded"
    );

    // Traffic leaving the cluster CIDR is masqueraded by one rule of netctl's, on each node.
    let rules = lab.exec_ok("node-1", "iptables -w -t nat -S POSTROUTING");
    let ours: Vec<&str> = rules
        .lines()
        .filter(|l| l.contains("netctl-routes"))
        .collect();
    assert_eq!(ours.len(), 1, "{rules}");
    assert!(
        ours[0].contains("-s 10.200.0.0/24 ! -d 10.200.0.0/16"),
        "{rules}"
    );
    // A second init adds no second rule.
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let rules = lab.exec_ok("node-1", "iptables -w -t nat -S POSTROUTING");
    assert_eq!(rules.matches("netctl-routes").count(), 1, "{rules}");

    lab.remove_pod("node-1", "pa");
    lab.remove_pod("node-2", "pb");
    let o = lab.netctl(&["reset", "--yes"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let rules = lab.exec_ok("node-1", "iptables -w -t nat -S POSTROUTING");
    assert!(
        !rules.contains("netctl-routes"),
        "reset left the rule: {rules}"
    );
}
