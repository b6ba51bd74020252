//! `plan` an operator can read at fleet scale (issue 16, item 2): per node a summary, long and
//! repeated diffs summarised, a closing line like Terraform's, and `--detailed-exitcode`. The same
//! 20-node lab snapshots the text of init, plan and verify, also with a fault (Build 8).

mod labkit;

use labkit::snapshot::Snapshot;
use labkit::{can_run, text, Lab};

#[test]
fn a_backend_change_on_20_nodes_is_a_short_plan_with_a_summary_and_exit_2() {
    if !can_run("a_backend_change_on_20_nodes_is_a_short_plan_with_a_summary_and_exit_2") {
        return;
    }
    let (name, octet) = ("plan20", 91);
    let lab = Lab::up(name, "netns", 20, octet);
    let snap = Snapshot::new()
        .literal(lab.profile.parent().unwrap(), "[LAB]")
        .literal(format!("10.240.{octet}."), "[SUBNET].");
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &lab.profile);
    snap.assert("init-20-nodes", &o);
    assert!(o.status.success(), "{}", text(&o));

    // Nothing to do: exit 0, said so, with --detailed-exitcode too.
    let o = lab.netctl(&["plan", "--detailed-exitcode"], &lab.profile);
    snap.assert("plan-20-nodes-no-changes", &o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.ends_with("No changes: every node read matches the profile.\n"),
        "{out}"
    );
    assert!(
        !out.contains("run:"),
        "an unchanged plan lists no commands: {out}"
    );

    // One word changed: host-gw -> vxlan.
    let vxlan = lab.profile_variant("vxlan", |v| {
        v["networking"]["routes"] = serde_yaml::from_str("{backend: vxlan}").unwrap();
    });
    let o = lab.netctl(&["plan"], &vxlan);
    snap.assert("plan-20-nodes-vxlan", &o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines = out.lines().count();
    assert!(lines < 200, "{lines} lines:\n{out}");
    assert!(out.contains("==> node-1: 0 to add, "), "{out}");
    assert!(
        out.contains("--diff full shows them") || out.contains("the same change as on node-1"),
        "{out}"
    );
    assert!(
        out.ends_with("Plan: 20 node(s) to change, 0 unchanged.\n"),
        "{out}"
    );
    let o = lab.netctl(&["plan", "--detailed-exitcode"], &vxlan);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = lab.netctl(&["init", "--dry-run", "--detailed-exitcode"], &vxlan);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Every line, on request.
    let o = lab.netctl(&["plan", "--diff", "full"], &vxlan);
    assert!(
        String::from_utf8_lossy(&o.stdout).lines().count() > lines,
        "{}",
        text(&o)
    );

    // With a fault: node-13 unreachable (its sshd port wrong), the others planned.
    let dark = lab.profile_variant("dark", |v| {
        v["nodes"][12]["sshPort"] = 2222.into();
    });
    let o = lab.netctl(&["plan"], &dark);
    snap.assert("plan-20-nodes-one-unreachable", &o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // verify with ip_forward off on node-7: the failure leads (within 25 lines), then the verdict.
    lab.exec_ok("node-7", "sysctl -q -w net.ipv4.ip_forward=0");
    let o = lab.netctl(&["verify"], &lab.profile);
    snap.assert("verify-20-nodes-forwarding-off", &o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let at = out
        .lines()
        .position(|l| l.contains("node-7") && l.contains("ip_forward = 0"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(at < 25, "{out}");
}
