//! Issue 16, Build 1: one approval rule for every command that changes nodes (init, reset, switch,
//! unlock). On a terminal the summary of what will change comes before the question and "no"
//! exits 1 with every node byte-identical; without a terminal and without --yes the command
//! exits 2 naming --yes, before it reaches a node. One 3-node netns lab for all four, which also
//! snapshots the text of plan, init and verify (Build 8).

mod labkit;

use labkit::pty::Pty;
use labkit::snapshot::Snapshot;
use labkit::{text, Lab};

const NODES: usize = 3;

/// Everything of a node a command could change: netctl's files and bookkeeping (state, backups,
/// journals, locks) by content, and its routes and links.
fn node_view(lab: &Lab, node: &str) -> String {
    lab.exec_ok(
        node,
        "for d in /etc/cni/net.d /etc/sysctl.d /usr/local/lib/netctl /etc/systemd/system \
                  /var/lib/netctl /run/netctl; do \
           [ -d $d ] && find $d -xdev -type f -exec sha256sum {} +; done | sort; \
         ip -4 route show | sed 's/ linkdown//' | sort; ip -o link show | cut -d' ' -f2 | sort",
    )
}

fn views(lab: &Lab) -> Vec<String> {
    (1..=NODES).map(|i| node_view(lab, &lab.node(i))).collect()
}

/// `args` without a terminal (stdin is /dev/null) and without --yes: exit 2 naming --yes, and
/// no node changed.
fn refused_without_a_terminal(lab: &Lab, args: &[&str], command: &str) {
    let before = views(lab);
    let o = lab.netctl(args, &lab.profile);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    let want = format!("{command} changes nodes and there is no terminal to ask: pass --yes");
    assert!(text(&o).contains(&want), "{args:?}: {}", text(&o));
    assert_eq!(
        views(lab),
        before,
        "{args:?} without a terminal changed a node"
    );
}

/// `args` on a terminal (progress lines on, as a person has them), answered "no": `summary` is on
/// the screen before `question`, the run exits 1 saying nothing was changed, and every node is
/// byte-identical. Returns the screen.
fn declined_on_a_terminal(lab: &Lab, args: &str, summary: &[&str], question: &str) -> String {
    let before = views(lab);
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "env -u NETCTL_NO_PROGRESS {} {args} -p {}",
        env!("CARGO_BIN_EXE_netctl"),
        lab.profile.display()
    );
    let mut pty = Pty::start(&cmd, dir.path(), &[], 120);
    pty.answer(question, "n", "nothing was changed");
    let (status, screen) = pty.finish();
    assert_eq!(status.code(), Some(1), "{args}: {screen}");
    assert!(
        screen.contains("not confirmed; nothing was changed"),
        "{args}: {screen}"
    );
    let asked = screen.find(question).unwrap();
    for s in summary {
        let at = screen
            .find(s)
            .unwrap_or_else(|| panic!("{args}: no {s:?} in the summary:\n{screen}"));
        assert!(
            at < asked,
            "{args}: {s:?} comes after the question:\n{screen}"
        );
    }
    assert_eq!(views(lab), before, "{args}: answering no changed a node");
    screen
}

#[test]
fn every_command_that_changes_nodes_shows_what_it_will_do_and_asks_first() {
    if !labkit::can_run("every_command_that_changes_nodes_shows_what_it_will_do_and_asks_first") {
        return;
    }
    let lab = Lab::up("apr1", "netns", NODES, 245);

    // init, on untouched nodes.
    refused_without_a_terminal(&lab, &["init", "--no-verify"], "init");
    declined_on_a_terminal(
        &lab,
        "init --no-verify",
        &["Plan: 3 node(s) to change, 0 unchanged", "node-3: "],
        "Apply changes to 3 node(s)?",
    );

    // Build 8: the text of plan, init and verify on 3 nodes, as snapshots (tests/snapshots/).
    let snap = Snapshot::new().literal(lab.profile.parent().unwrap(), "[LAB]");
    snap.assert("plan-3-nodes-new", &lab.netctl(&["plan"], &lab.profile));
    let o = lab.netctl(&["init", "--yes"], &lab.profile);
    snap.assert("init-3-nodes", &o);
    assert!(o.status.success(), "{}", text(&o));
    let o = lab.netctl(&["plan", "--detailed-exitcode"], &lab.profile);
    snap.assert("plan-3-nodes-no-changes", &o);
    lab.exec_ok("node-2", "sysctl -q -w net.ipv4.ip_forward=0");
    let o = lab.netctl(&["verify"], &lab.profile);
    snap.assert("verify-3-nodes-forwarding-off", &o);
    lab.exec_ok("node-2", "sysctl -q -w net.ipv4.ip_forward=1");

    // reset: the nodes are read first; the summary names what goes, grouped when the same.
    refused_without_a_terminal(&lab, &["reset"], "reset");
    let screen = declined_on_a_terminal(
        &lab,
        "reset",
        &[
            "Reset: 3 node(s) to reset, 0 unmanaged, 0 failed:",
            "  node-1, node-2, node-3:",
            "    run: ",
            "    run: delete link cni0",
        ],
        "Remove netctl's changes from 3 node(s)?",
    );
    assert!(
        screen.contains("    remove /usr/local/lib/netctl/routes.sh"),
        "{screen}"
    );

    // switch: its description is the summary.
    let to = "switch --networking routes --backend vxlan";
    refused_without_a_terminal(
        &lab,
        &["switch", "--networking", "routes", "--backend", "vxlan"],
        "switch",
    );
    declined_on_a_terminal(
        &lab,
        to,
        &[
            "switch from routes (host-gw) to routes (vxlan)",
            "  wave 1: node-1",
        ],
        "Switch now?",
    );

    // unlock: a lock a dead run left on node-2; the summary says whose lock goes where.
    let dead = "20261129T000000Z-dead";
    let lock = format!("run={dead}\ncommand=init\nhost=elsewhere\npid=9\n");
    lab.exec_ok(
        "node-2",
        &format!("mkdir -p /run/netctl && printf '{lock}' > /run/netctl/lock"),
    );
    refused_without_a_terminal(&lab, &["unlock", "--run", dead], "unlock");
    declined_on_a_terminal(
        &lab,
        &format!("unlock --run {dead}"),
        &[
            &format!("Unlock run {dead}: 1 node(s) to clear, 2 left alone, 0 failed:"),
            &format!("  node-2: remove the lock of run {dead} (netctl init on elsewhere, pid 9)"),
            "  node-1: not locked",
        ],
        &format!("Clear run {dead}'s locks on 1 node(s)?"),
    );
    // And a yes does what the summary said.
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} unlock --run {dead} -p {}",
        env!("CARGO_BIN_EXE_netctl"),
        lab.profile.display()
    );
    let mut pty = Pty::start(&cmd, dir.path(), &[], 120);
    pty.answer("Clear run", "y", "unlocked");
    let (status, screen) = pty.finish();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert_eq!(
        lab.exec_ok("node-2", "ls /run/netctl/ 2>/dev/null; true"),
        "",
        "{screen}"
    );
}
