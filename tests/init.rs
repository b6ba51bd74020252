//! `netctl init`, `plan` and `reset` end to end: the real binary against real sshd nodes in the
//! lab, with the routes provider (host-gw) that really programs each node's kernel.

mod labkit;

use labkit::{can_run, text, Lab};

const NODES: usize = 3;

/// Files and routes of every node, with mtimes: equal before and after means nothing changed.
fn snapshot(lab: &Lab) -> Vec<String> {
    (1..=NODES)
        .map(|i| {
            lab.exec_ok(
                &lab.node(i),
                "for d in /etc/cni/net.d /etc/sysctl.d /usr/local/lib/netctl /var/lib/netctl /etc/systemd/system; do \
                   [ -d $d ] && find $d -xdev -type f -printf '%p %T@ %s %m\\n'; done | sort; ip -4 route show proto 211 | sed 's/ linkdown//'; ip -4 -o addr show | cut -d' ' -f2,7",
            )
        })
        .collect()
}

fn init_json(lab: &Lab, profile: &std::path::Path) -> (std::process::Output, serde_json::Value) {
    let o = lab.netctl(&["init", "--yes", "--output", "json"], profile);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

fn scenario(kind: &str, name: &str, octet: u8) {
    let lab = Lab::up(name, kind, NODES, octet);
    let sub = |h: u8| format!("10.240.{octet}.{h}");
    let n1 = lab.node(1);
    let n2 = lab.node(2);

    // A config the node had before netctl: backed up, and restored byte for byte by reset.
    lab.exec_ok(
        &n2,
        "mkdir -p /etc/cni/net.d && printf '{\"theirs\": true}\\n' > /etc/cni/net.d/10-bridge.conf",
    );
    let theirs = lab.exec_ok(
        &n2,
        "sha256sum /etc/cni/net.d/10-bridge.conf; stat -c %a /etc/cni/net.d/10-bridge.conf",
    );

    // plan and init --dry-run read only.
    let before = snapshot(&lab);
    let o = lab.netctl(&["plan"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(plan.contains("+++ /etc/cni/net.d/10-bridge.conf"), "{plan}");
    assert!(
        plan.contains("-{\"theirs\": true}"),
        "the diff shows the file being replaced: {plan}"
    );
    let o = lab.netctl(&["init", "--dry-run"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(before, snapshot(&lab), "plan / dry-run changed a node");

    // init.
    let (o, v) = init_json(&lab, &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["result"], "applied", "{n}");
        assert!(n["files_changed"].as_u64().unwrap() >= 4, "{n}");
        assert_eq!(n["error"], serde_json::Value::Null);
    }
    let routes = lab.exec_ok(&n1, "ip -4 route show proto 211");
    assert!(
        routes.contains(&format!("10.200.1.0/24 via {}", sub(12))),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("10.200.2.0/24 via {}", sub(13))),
        "{routes}"
    );
    assert_eq!(
        lab.exec_ok(&n1, "sysctl -n net.ipv4.ip_forward").trim(),
        "1"
    );
    let modes = lab.exec_ok(&n1, "stat -c '%n %a' /usr/local/lib/netctl/routes.sh /etc/cni/net.d/10-bridge.conf /etc/cni/net.d/99-loopback.conf");
    assert!(
        modes.contains("routes.sh 755") && modes.contains("10-bridge.conf 644"),
        "{modes}"
    );
    assert!(lab
        .exec_ok(&n2, "cat /etc/cni/net.d/10-bridge.conf")
        .contains("10.200.1.0/24"));
    let state: serde_json::Value =
        serde_json::from_str(&lab.exec_ok(&n2, "cat /var/lib/netctl/state.json")).unwrap();
    assert_eq!(state["provider"], "routes");
    assert_eq!(state["backend"], "host-gw");
    assert_eq!(
        state["files"]["/etc/cni/net.d/10-bridge.conf"]["original"],
        true
    );
    assert_eq!(
        state["files"]["/usr/local/lib/netctl/routes.sh"]["mode"],
        0o755
    );
    let backups = lab.exec_ok(
        &n2,
        "ls /var/lib/netctl/backups/*/etc/cni/net.d/10-bridge.conf",
    );
    assert!(!backups.trim().is_empty());
    if kind == "systemd" {
        assert_eq!(
            lab.exec_ok(&n1, "systemctl is-enabled netctl-routes.service")
                .trim(),
            "enabled"
        );
    }

    // Pods on two nodes, made with the real bridge plugin, reach each other.
    let a = lab.make_pod(&n1, "pa");
    let b = lab.make_pod(&n2, "pb");
    let ping = lab.exec(&n1, &format!("ip netns exec pa ping -c 2 -W 2 {b}"));
    assert!(
        ping.status.success(),
        "pod {a} on {n1} -> pod {b} on {n2}: {}",
        text(&ping)
    );
    lab.remove_pod(&n1, "pa");
    lab.remove_pod(&n2, "pb");

    // A second init changes nothing.
    let before = snapshot(&lab);
    let (o, v) = init_json(&lab, &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["result"], "unchanged", "{n}");
        assert_eq!(n["files_changed"], 0, "{n}");
        assert_eq!(n["restarts"], 0, "{n}");
    }
    assert_eq!(before, snapshot(&lab), "a second init changed a node");

    // The boot unit brings routes back after a real reboot (systemd nodes).
    if kind == "systemd" {
        let o = labkit::netctl()
            .args(["lab", "restart", "--name", &lab.name, &n1])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let mut routes = String::new();
        for _ in 0..40 {
            routes = lab.exec_ok(&n1, "ip -4 route show proto 211");
            if routes.lines().count() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert!(
            routes.contains(&format!("10.200.1.0/24 via {}", sub(12))),
            "after reboot: {routes}"
        );
    }

    // A node removed from the profile: its peers drop their route to it.
    let two = lab.profile_variant("two", |v| {
        v["nodes"]
            .as_sequence_mut()
            .unwrap()
            .retain(|n| n["name"] != "node-3");
    });
    let o = lab.netctl(&["init", "--yes"], &two);
    assert!(o.status.success(), "{}", text(&o));
    let routes = lab.exec_ok(&n1, "ip -4 route show proto 211");
    assert!(
        !routes.contains("10.200.2.0/24"),
        "route to the removed node remains: {routes}"
    );
    assert!(routes.contains("10.200.1.0/24"), "{routes}");

    // reset puts every node back as it was.
    let o = lab.netctl(&["reset", "--yes"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        lab.exec_ok(
            &n2,
            "sha256sum /etc/cni/net.d/10-bridge.conf; stat -c %a /etc/cni/net.d/10-bridge.conf"
        ),
        theirs,
        "reset restores the original byte for byte"
    );
    assert_eq!(lab.exec_ok(&n1, "ip -4 route show proto 211"), "");
    let gone = lab.exec(&n1, "ls /etc/cni/net.d/10-bridge.conf /usr/local/lib/netctl/routes.sh /var/lib/netctl/state.json");
    assert!(!gone.status.success(), "reset left files: {}", text(&gone));
}

#[test]
fn init_plan_reset_on_systemd_nodes() {
    if can_run("init_plan_reset_on_systemd_nodes") {
        scenario("systemd", "it-sd", 21);
    }
}

#[test]
fn init_plan_reset_on_netns_nodes() {
    if can_run("init_plan_reset_on_netns_nodes") {
        scenario("netns", "it-ns", 22);
    }
}

/// Failures stay on their node: an unreachable node fails (exit 1, named) while the others are
/// applied; a held lock and an unknown host key are refusals (exit 3).
#[test]
fn failures_are_per_node_and_refusals_exit_3() {
    if !can_run("failures_are_per_node_and_refusals_exit_3") {
        return;
    }
    let lab = Lab::up("it-fail", "netns", NODES, 23);

    // node-3 unreachable: nothing listens on its port 2222.
    let down = lab.profile_variant("down", |v| {
        v["nodes"][2]["sshPort"] = 2222.into();
    });
    let o = lab.netctl(&["init", "--yes"], &down);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("node-3"), "{all}");
    assert!(all.contains("failed on 1 node(s): node-3"), "{all}");
    assert!(lab
        .exec_ok("node-1", "cat /var/lib/netctl/state.json")
        .contains("\"provider\""));

    // A lock held by another run: exit 3, naming the holder; nothing changed there.
    lab.exec_ok(
        "node-2",
        "mkdir -p /run/netctl && printf 'run=20261129T000000Z-dead\\ncommand=init\\nhost=elsewhere\\npid=7\\n' > /run/netctl/lock",
    );
    let o = lab.netctl(&["init", "--yes"], &lab.profile);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("run 20261129T000000Z-dead (netctl init on elsewhere, pid 7)"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("netctl unlock -p") && text(&o).contains("--run 20261129T000000Z-dead"),
        "the refusal names the command that clears the way: {}",
        text(&o)
    );
    lab.exec_ok("node-2", "rm /run/netctl/lock");

    // An unknown host key is refused unless --accept-new-host-keys.
    let empty = lab.profile.with_file_name("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let strict = lab.profile_variant("strict", |v| {
        v["ssh"]["knownHosts"] = empty.display().to_string().into();
    });
    let o = lab.netctl(&["plan"], &strict);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("unknown"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "a refused key is not recorded"
    );
    let o = labkit::netctl()
        .args(["plan", "--accept-new-host-keys", "-p"])
        .arg(&strict)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap().lines().count(),
        NODES
    );
}
