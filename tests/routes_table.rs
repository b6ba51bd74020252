//! Issue 12, item 1: the routes provider's peer table is one file, the same on every node, that
//! each node's script reads. A node added to or removed from a running cluster changes only that
//! table on the others; their routes converge as before and pods on a new node reach the rest.

mod labkit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use labkit::{text, Lab};

const PEERS: &str = "/usr/local/lib/netctl/routes-peers";

/// The lab's profile with `backend`, explicit podCIDRs (node-i: 10.200.i.0/24, so removing a
/// node moves no other's) and only the nodes `keep` accepts.
fn profile(lab: &Lab, suffix: &str, backend: &str, keep: impl Fn(usize) -> bool) -> PathBuf {
    lab.profile_variant(suffix, |v| {
        v["networking"]["routes"]["backend"] = backend.into();
        let nodes = v["nodes"].as_sequence_mut().unwrap();
        for (i, n) in nodes.iter_mut().enumerate() {
            n["podCIDR"] = format!("10.200.{}.0/24", i + 1).into();
        }
        let mut i = 0;
        nodes.retain(|_| {
            i += 1;
            keep(i)
        });
    })
}

/// `netctl plan`'s text: per node, the paths of the files it would write or remove.
fn planned_files(lab: &Lab, profile: &Path) -> BTreeMap<String, BTreeSet<String>> {
    // Every diff whole (the default names a repeated change once): one file per +++/--- line.
    let o = lab.netctl(&["plan", "--diff", "full"], profile);
    assert!(o.status.success(), "{}", text(&o));
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut node = String::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some(n) = line.strip_prefix("==> ") {
            // "==> node-1: 0 to add, 1 to change, 0 to remove" or "==> node-1: no changes"
            node = n.split(':').next().unwrap_or(n).to_string();
            files.entry(node.clone()).or_default();
        } else if let Some(p) = line
            .strip_prefix("+++ ")
            .or_else(|| line.strip_prefix("--- "))
        {
            if p != "/dev/null" {
                files.get_mut(&node).unwrap().insert(p.to_string());
            }
        }
    }
    files
}

fn init(lab: &Lab, profile: &Path) {
    let o = lab.netctl(&["init", "--yes", "--no-verify"], profile);
    assert!(o.status.success(), "{}", text(&o));
}

fn routes(lab: &Lab, node: &str) -> String {
    lab.exec_ok(node, "ip -4 route show proto 211")
}

fn grow_and_shrink(backend: &str, name: &str, octet: u8) {
    let lab = Lab::up(name, "netns", 11, octet);
    let ten = profile(&lab, "ten", backend, |i| i <= 10);
    let eleven = profile(&lab, "eleven", backend, |_| true);
    init(&lab, &ten);
    assert!(!routes(&lab, "node-1").contains("10.200.11.0/24"));

    // node-11 joins: the ten others get the new table and nothing else.
    let planned = planned_files(&lab, &eleven);
    let only_table = BTreeSet::from([PEERS.to_string()]);
    for i in 1..=10 {
        assert_eq!(
            planned[&format!("node-{i}")],
            only_table,
            "node-{i}: {planned:?}"
        );
    }
    assert!(planned["node-11"].contains(PEERS), "{planned:?}");
    assert!(planned["node-11"].contains("/usr/local/lib/netctl/routes.sh"));
    init(&lab, &eleven);
    let table = lab.exec_ok("node-1", &format!("cat {PEERS}"));
    assert_eq!(
        table.lines().filter(|l| !l.starts_with('#')).count(),
        11,
        "{table}"
    );
    for i in 1..=11 {
        assert_eq!(
            lab.exec_ok(&format!("node-{i}"), &format!("cat {PEERS}")),
            table
        );
    }
    assert!(
        routes(&lab, "node-1").contains("10.200.11.0/24"),
        "{}",
        routes(&lab, "node-1")
    );
    // Pods on node-11 reach the others and theirs reach it: verify's data plane, every pair.
    let o = lab.netctl(&["verify"], &eleven);
    assert!(o.status.success(), "{}", text(&o));

    // node-5 leaves: the others drop its route (and, for vxlan, its neighbour and FDB entry).
    let without5 = profile(&lab, "without5", backend, |i| i != 5);
    let planned = planned_files(&lab, &without5);
    for i in (1..=11).filter(|i| *i != 5) {
        assert_eq!(
            planned[&format!("node-{i}")],
            only_table,
            "node-{i}: {planned:?}"
        );
    }
    init(&lab, &without5);
    let r = routes(&lab, "node-1");
    assert!(!r.contains("10.200.5.0/24"), "{r}");
    assert!(
        r.contains("10.200.11.0/24") && r.contains("10.200.4.0/24"),
        "{r}"
    );
    assert_eq!(r.lines().count(), 9, "{r}");
    if backend == "vxlan" {
        let neigh = lab.exec_ok("node-1", "ip neigh show dev netctl-vxlan");
        assert!(!neigh.contains("10.200.5.0 "), "{neigh}");
        assert_eq!(neigh.lines().count(), 9, "{neigh}");
        let fdb = lab.exec_ok("node-1", "bridge fdb show dev netctl-vxlan");
        assert_eq!(
            fdb.lines().filter(|l| l.contains(" dst ")).count(),
            9,
            "{fdb}"
        );
    }
    let o = lab.netctl(&["verify"], &without5);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_node_added_or_removed_changes_only_the_table_host_gw() {
    if !labkit::can_run("a_node_added_or_removed_changes_only_the_table_host_gw") {
        return;
    }
    grow_and_shrink("host-gw", "table-hg", 150);
}

#[test]
fn a_node_added_or_removed_changes_only_the_table_vxlan() {
    if !labkit::can_run("a_node_added_or_removed_changes_only_the_table_vxlan") {
        return;
    }
    grow_and_shrink("vxlan", "table-vx", 151);
}
