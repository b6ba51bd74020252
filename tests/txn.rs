//! Each node applied as one transaction (issue 10): netctl killed with SIGKILL at several moments
//! of an `init` on 10 netns nodes, and a node's connection cut mid-apply. Every node must end
//! either as it was or fully applied, never between; the next `init` completes, or names the one
//! netctl command (`netctl unlock ... --run RUN`) that clears the way.

mod labkit;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use labkit::{text, Lab};

const NODES: usize = 10;

/// What a node's pod networking is: netctl's files by content, whether it records a state, and
/// its routes. (Not netctl's own bookkeeping under /var/lib/netctl: backups, journals, locks.)
fn node_view(lab: &Lab, node: &str) -> String {
    lab.exec_ok(
        node,
        "for d in /etc/cni/net.d /etc/sysctl.d /usr/local/lib/netctl /etc/systemd/system; do \
           [ -d $d ] && find $d -xdev -type f -exec sha256sum {} +; done | sort; \
         [ -f /var/lib/netctl/state.json ] && echo state.json; \
         ip -4 route show proto 211 | sed 's/ linkdown//' | sort",
    )
}

fn views(lab: &Lab) -> Vec<String> {
    (1..=NODES).map(|i| node_view(lab, &lab.node(i))).collect()
}

/// Wait until no node has a transaction still running (they go on after netctl dies).
fn wait_for_transactions(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1..=NODES {
        loop {
            let running = lab.exec_ok(
                &lab.node(i),
                "for t in /var/lib/netctl/txn/*/; do [ -f \"$t/pid\" ] && [ ! -f \"$t/result\" ] && \
                 kill -0 \"$(cat \"$t/pid\")\" 2>/dev/null && echo running; done; true",
            );
            if running.trim().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node-{i}: a transaction never ended"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every node is whole: as before init, or as after a full init.
fn assert_whole(lab: &Lab, before: &[String], after: &[String], moment: &str) -> (usize, usize) {
    let now = views(lab);
    let (mut untouched, mut applied) = (0, 0);
    for (i, v) in now.iter().enumerate() {
        if *v == before[i] {
            untouched += 1;
        } else if *v == after[i] {
            applied += 1;
        } else {
            panic!(
                "{moment}: node-{} is half-applied:\n{v}\nbefore:\n{}\napplied:\n{}",
                i + 1,
                before[i],
                after[i]
            );
        }
    }
    (untouched, applied)
}

/// The next init completes; if a killed run left locks, the refusal names the one command that
/// clears them, and after it init completes.
fn init_recovers(lab: &Lab, profile: &std::path::Path, moment: &str) -> bool {
    let o = lab.netctl(&["init", "--yes", "--no-verify"], profile);
    if o.status.success() {
        return false;
    }
    let all = text(&o);
    assert_eq!(o.status.code(), Some(3), "{moment}: {all}");
    let cmd = all
        .split('`')
        .find(|s| s.starts_with("netctl unlock "))
        .unwrap_or_else(|| panic!("{moment}: the refusal names no unlock command: {all}"))
        .to_string();
    let run = cmd.split("--run ").nth(1).unwrap().trim().to_string();
    let o = labkit::netctl()
        .args(["unlock", "--yes", "--run", &run, "-p"])
        .arg(profile)
        .output()
        .unwrap();
    assert!(o.status.success(), "{moment}: {cmd}: {}", text(&o));
    assert!(text(&o).contains("unlocked"), "{moment}: {}", text(&o));
    let o = lab.netctl(&["init", "--yes", "--no-verify"], profile);
    assert!(
        o.status.success(),
        "{moment}: init after unlock: {}",
        text(&o)
    );
    true
}

#[test]
fn killed_init_leaves_every_node_whole_and_the_next_init_completes() {
    if !labkit::can_run("killed_init_leaves_every_node_whole_and_the_next_init_completes") {
        return;
    }
    let lab = Lab::up("txn-kill", "netns", NODES, 170);
    // Two nodes at a time, so a kill lands before, during and after different nodes' applies;
    // a short command timeout, so the cut connection below costs seconds.
    let profile = lab.profile_variant("slow", |v| {
        v["ssh"]["concurrency"] = 2.into();
        v["ssh"]["commandTimeout"] = 4.into();
    });
    let before = views(&lab);
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &profile);
    assert!(o.status.success(), "{}", text(&o));
    let after = views(&lab);
    assert_ne!(before, after);
    let o = lab.netctl(&["reset", "--yes"], &profile);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(views(&lab), before, "reset puts every node back");

    let mut seen_partial = false;
    let mut unlocks = 0;
    for delay_ms in [0u64, 400, 900, 1500, 2500] {
        let moment = format!("SIGKILL after {delay_ms} ms");
        let mut child = labkit::netctl()
            .args(["init", "--yes", "--no-verify", "-p"])
            .arg(&profile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let _ = child.wait();
        wait_for_transactions(&lab);
        let (untouched, applied) = assert_whole(&lab, &before, &after, &moment);
        eprintln!("{moment}: {untouched} nodes as they were, {applied} applied");
        seen_partial |= untouched > 0 && applied > 0;
        unlocks += usize::from(init_recovers(&lab, &profile, &moment));
        assert_eq!(
            views(&lab),
            after,
            "{moment}: init after the kill applies every node"
        );
        let o = lab.netctl(&["reset", "--yes"], &profile);
        assert!(o.status.success(), "{moment}: reset: {}", text(&o));
        assert_eq!(views(&lab), before, "{moment}: reset");
    }
    eprintln!(
        "kills with some nodes applied and some not: {seen_partial}; unlocks needed: {unlocks}"
    );

    // A node's connection cut mid-apply: its link goes down while init runs, and comes back.
    let cut = lab.node(6);
    let child = labkit::netctl()
        .args(["init", "--yes", "--no-verify", "-p"])
        .arg(&profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    lab.exec_ok(&cut, "ip link set eth0 down");
    let out = child.wait_with_output().unwrap();
    lab.exec_ok(&cut, "ip link set eth0 up");
    wait_for_transactions(&lab);
    let (untouched, applied) = assert_whole(&lab, &before, &after, "connection cut");
    eprintln!(
        "connection cut: exit {:?}, {untouched} as they were, {applied} applied",
        out.status.code()
    );
    init_recovers(&lab, &profile, "after the cut");
    assert_eq!(views(&lab), after, "init after the cut applies every node");
}

#[test]
fn verify_takes_the_node_lock_and_leaves_another_runs_lock_alone() {
    if !labkit::can_run("verify_takes_the_node_lock_and_leaves_another_runs_lock_alone") {
        return;
    }
    let lab = Lab::up("txn-vl", "netns", 3, 171);
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let other = "run=20261129T000000Z-beef\ncommand=init\nhost=elsewhere\npid=9\n";
    lab.exec_ok(
        "node-2",
        &format!("mkdir -p /run/netctl && printf '{other}' > /run/netctl/lock"),
    );
    let o = lab.netctl(&["verify", "--output", "json"], &lab.profile);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = |id: &str, subject: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id && c["subject"] == subject)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} for {subject}: {v}"))
    };
    let lock = check("node.lock", "node-2");
    assert_eq!(lock["status"], "fail", "{lock}");
    assert!(
        lock["detail"]
            .as_str()
            .unwrap()
            .contains("20261129T000000Z-beef"),
        "{lock}"
    );
    // No test pods on the locked node; the others were checked and released.
    assert_eq!(check("dataplane.pods", "node-2")["status"], "skip");
    assert_eq!(check("dataplane.pods", "node-1")["status"], "pass");
    assert_eq!(lab.exec_ok("node-2", "cat /run/netctl/lock"), other);
    assert_eq!(
        lab.exec_ok("node-1", "ls /run/netctl/ 2>/dev/null; true"),
        ""
    );
}

/// Issue 16: on a terminal the question comes after the plan's summary, is not drawn over by the
/// progress lines, and "no" exits 1 with every node untouched.
#[test]
fn init_on_a_terminal_shows_the_plan_asks_and_no_changes_nothing() {
    if !labkit::can_run("init_on_a_terminal_shows_the_plan_asks_and_no_changes_nothing") {
        return;
    }
    let lab = Lab::up("txn-ask", "netns", 2, 172);
    let before = (1..=2)
        .map(|i| node_view(&lab, &lab.node(i)))
        .collect::<Vec<_>>();
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} init --no-verify -p {}",
        env!("CARGO_BIN_EXE_netctl"),
        lab.profile.display()
    );
    let mut pty = labkit::pty::Pty::start(&cmd, dir.path(), &[], 60);
    let question = "Apply changes to 2 node(s)?";
    pty.answer(question, "n", "not applied");
    let (status, screen) = pty.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    let plan_at = screen
        .find("Plan: 2 node(s) to change")
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(plan_at < screen.find(question).unwrap(), "{screen}");
    assert!(
        screen.contains("node-1:") && screen.contains("file(s)"),
        "{screen}"
    );
    let after = (1..=2)
        .map(|i| node_view(&lab, &lab.node(i)))
        .collect::<Vec<_>>();
    assert_eq!(before, after, "answering no changed a node");
    assert_eq!(
        lab.exec_ok("node-1", "ls /run/netctl/ 2>/dev/null; true"),
        "",
        "a lock was left"
    );
}
