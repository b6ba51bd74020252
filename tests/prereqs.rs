//! Node prerequisites end to end (issue 11, item 5): `init` leaves every node with netctl's
//! modules-load.d and sysctl.d files and the sysctls applied at once, a second `init` changes no
//! file, and `reset` removes them. Lab nodes share the host's kernel, so its modules are the
//! host's (br_netfilter is built into the lab kernel); the sysctls are per network namespace, so
//! a node turned off before init is turned on by it.

mod labkit;

use labkit::{can_run, text, Lab};

const MODULES: &str = "/etc/modules-load.d/netctl.conf";
const SYSCTL: &str = "/etc/sysctl.d/90-netctl.conf";

fn sysctls(lab: &Lab, node: &str) -> String {
    lab.exec_ok(
        node,
        "sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables | tr '\\n' ' '",
    )
}

fn files(lab: &Lab, node: &str) -> String {
    lab.exec_ok(
        node,
        &format!("for f in {MODULES} {SYSCTL}; do [ -f $f ] && stat -c '%n %a %Y' $f; done; true"),
    )
}

#[test]
fn prerequisites_are_persisted_and_applied_on_netns_nodes() {
    if !can_run("prerequisites_are_persisted_and_applied_on_netns_nodes") {
        return;
    }
    scenario(Lab::up("pq-ns", "netns", 2, 184));
}

/// Real systemd nodes: the files land where systemd-modules-load and systemd-sysctl read them.
#[test]
fn prerequisites_are_persisted_and_applied_on_systemd_nodes() {
    if !can_run("prerequisites_are_persisted_and_applied_on_systemd_nodes") {
        return;
    }
    let lab = Lab::up("pq-sd", "systemd", 2, 185);
    scenario(lab);
}

fn scenario(lab: Lab) {
    let p = lab.profile_variant("vxlan", |v| {
        v["networking"]["routes"] = serde_yaml::from_str("{backend: vxlan}").unwrap();
    });
    // Both off before netctl, as on a fresh node without the prerequisites.
    for i in 1..=2 {
        lab.exec_ok(
            &lab.node(i),
            "sysctl -q -w net.ipv4.ip_forward=0 net.bridge.bridge-nf-call-iptables=0",
        );
        assert_eq!(sysctls(&lab, &lab.node(i)), "0 0 ");
    }

    let o = lab.netctl(&["init", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    for i in 1..=2 {
        let n = lab.node(i);
        assert_eq!(sysctls(&lab, &n), "1 1 ", "{n}: applied at once");
        let modules = lab.exec_ok(&n, &format!("grep -v '^#' {MODULES}"));
        assert_eq!(modules, "br_netfilter\nvxlan\n", "{n}");
        let sysctl = lab.exec_ok(&n, &format!("grep -v '^#' {SYSCTL}"));
        assert_eq!(
            sysctl, "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n",
            "{n}"
        );
        // What the boot applies is what init applied: the file, read by sysctl itself.
        lab.exec_ok(&n, "sysctl -q -w net.bridge.bridge-nf-call-iptables=0");
        lab.exec_ok(&n, &format!("sysctl -q -p {SYSCTL}"));
        assert_eq!(sysctls(&lab, &n), "1 1 ", "{n}: the file alone sets both");
    }
    // The node's modules-load.d is its own, not the host's.
    assert!(!std::path::Path::new(MODULES).exists());
    if lab
        .exec(&lab.node(1), "[ -d /run/systemd/system ]")
        .status
        .success()
    {
        let n = lab.node(1);
        lab.exec_ok(
            &n,
            "sysctl -q -w net.ipv4.ip_forward=0 net.bridge.bridge-nf-call-iptables=0",
        );
        lab.exec_ok(&n, "/lib/systemd/systemd-sysctl");
        assert_eq!(
            sysctls(&lab, &n),
            "1 1 ",
            "{n}: systemd-sysctl applies netctl's file"
        );
        let cat = lab.exec_ok(
            &n,
            "systemd-analyze cat-config modules-load.d 2>/dev/null | grep -v '^#' | grep . ; true",
        );
        assert!(cat.contains("br_netfilter\nvxlan"), "{n}: {cat}");
    }

    // A second init rewrites no file.
    let before: Vec<String> = (1..=2).map(|i| files(&lab, &lab.node(i))).collect();
    let o = lab.netctl(&["init", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    let after: Vec<String> = (1..=2).map(|i| files(&lab, &lab.node(i))).collect();
    assert_eq!(before, after);

    // reset removes netctl's files.
    let o = lab.netctl(&["reset", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    for i in 1..=2 {
        assert_eq!(files(&lab, &lab.node(i)), "", "{}", lab.node(i));
    }
}
