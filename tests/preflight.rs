//! `netctl preflight` end to end (issue 14), lab tests (root). A clean lab passes; each test
//! breaks one thing on one node (tests/preflight/breaks.rs, each break proved with a plain tool
//! first) and expects exactly that check to fail on that node, every other check passing or
//! skipping. init and switch stop before changing any node when their preflight fails, and a
//! preflight leaves no listener, process, rule or namespace behind.

mod labkit;

#[path = "preflight/breaks.rs"]
mod breaks;
#[path = "preflight/node_state.rs"]
mod node_state;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use breaks::{address, df_ping, gateway_to, udp_arrives};
use labkit::{can_run, text, Lab};
use serde_json::Value;

fn routes(lab: &Lab, backend: &'static str) -> PathBuf {
    lab.profile_variant(backend, move |v| {
        v["networking"]["routes"]["backend"] = backend.into();
    })
}

/// `netctl preflight --output json` and its report (Null when stdout is no JSON).
fn preflight(lab: &Lab, profile: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["preflight", "--output", "json"];
    args.extend(extra);
    let started = Instant::now();
    let o = lab.netctl(&args, profile);
    eprintln!(
        "preflight {} on {} nodes: {:.2} s",
        profile.display(),
        lab.nodes,
        started.elapsed().as_secs_f64()
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn checks(v: &Value) -> impl Iterator<Item = &Value> {
    v["checks"].as_array().into_iter().flatten()
}

/// (check id, subject) of every failed check.
fn failed(v: &Value) -> BTreeSet<(String, String)> {
    checks(v)
        .filter(|c| c["status"] == "fail")
        .map(|c| (str_of(&c["id"]), str_of(&c["subject"])))
        .collect()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn set(of: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    of.iter()
        .map(|(id, s)| (id.to_string(), s.to_string()))
        .collect()
}

/// The run failed exactly `want` (id, subject), each with a hint, and every other check passed
/// or was skipped; exit 0 when `want` is empty, else 1.
fn assert_fails_exactly(o: &Output, v: &Value, want: &[(&str, &str)], what: &str) {
    assert!(v.is_object(), "{what}: no JSON report: {}", text(o));
    let want = set(want);
    let got = failed(v);
    let rows: Vec<String> = checks(v)
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{} {}: {}", c["id"], c["subject"], c["detail"]))
        .collect();
    assert_eq!(got, want, "{what}: failed checks: {rows:#?}");
    assert_eq!(
        o.status.code(),
        Some(if want.is_empty() { 0 } else { 1 }),
        "{what}: {}",
        text(o)
    );
    assert_eq!(v["summary"]["fail"], want.len(), "{what}: {}", v["summary"]);
    for c in checks(v) {
        let status = c["status"].as_str().unwrap_or_default();
        assert!(matches!(status, "pass" | "skip" | "fail"), "{what}: {c}");
        if status == "fail" {
            assert!(
                c["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "{what}: a failure without a hint: {c}"
            );
        }
    }
}

/// `id` passed on every node of the lab (a pair check has one row per node).
fn assert_passed_everywhere(lab: &Lab, v: &Value, id: &str) {
    for i in 1..=lab.nodes {
        let node = lab.node(i);
        let c = checks(v)
            .find(|c| c["id"] == id && c["subject"] == node.as_str())
            .unwrap_or_else(|| panic!("no {id} for {node}: {v}"));
        assert_eq!(c["status"], "pass", "{c}");
    }
}

/// The checks that must have run and passed on a clean lab for `backend`: without them a run
/// that checked nothing would pass too.
fn assert_clean(lab: &Lab, v: &Value, backend: &str) {
    let pair = match backend {
        "vxlan" => "preflight.vxlan",
        _ => "preflight.layer2",
    };
    for id in [
        "node.ssh",
        "preflight.interface",
        "preflight.modules",
        "preflight.rp-filter",
        pair,
        "preflight.mtu",
        "preflight.cleanup",
    ] {
        assert_passed_everywhere(lab, v, id);
    }
}

#[test]
fn a_clean_lab_passes_with_vxlan_and_host_gw() {
    if !can_run("a_clean_lab_passes_with_vxlan_and_host_gw") {
        return;
    }
    let lab = Lab::up("pf1", "netns", 4, 165);
    for backend in ["vxlan", "host-gw"] {
        let (o, v) = preflight(&lab, &routes(&lab, backend), &[]);
        assert_fails_exactly(&o, &v, &[], backend);
        assert_clean(&lab, &v, backend);
    }
    // The text report says so too, and the flags pick the network over the profile's.
    let o = lab.netctl(
        &["preflight", "--networking", "routes", "--backend", "vxlan"],
        &lab.profile,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("preflight.vxlan"),
        "{}",
        text(&o)
    );
}

#[test]
fn udp_8472_dropped_fails_vxlan_on_the_node_or_the_pair() {
    if !can_run("udp_8472_dropped_fails_vxlan_on_the_node_or_the_pair") {
        return;
    }
    let lab = Lab::up("pf2", "netns", 4, 166);
    let vxlan = routes(&lab, "vxlan");
    let dropped = breaks::drop_udp(&lab, "node-2", 8472);
    assert!(
        !udp_arrives(&lab, "node-1", "node-2", address(166, 2), 8472),
        "the rule drops udp 8472 into node-2"
    );
    assert!(
        udp_arrives(&lab, "node-1", "node-3", address(166, 3), 8472),
        "node-3 still receives it"
    );
    let (o, v) = preflight(&lab, &vxlan, &[]);
    assert_fails_exactly(&o, &v, &[("preflight.vxlan", "node-2")], "udp 8472 dropped");
    // host-gw sends no udp 8472.
    let (o, v) = preflight(&lab, &routes(&lab, "host-gw"), &[]);
    assert_fails_exactly(&o, &v, &[], "host-gw with udp 8472 dropped");
    drop(dropped);

    // Dropped from node-1 only: no node is the common end of what failed, so the pair is named.
    let _one_pair = breaks::drop_udp_from(&lab, "node-2", address(166, 1), 8472);
    assert!(!udp_arrives(
        &lab,
        "node-1",
        "node-2",
        address(166, 2),
        8472
    ));
    assert!(udp_arrives(&lab, "node-3", "node-2", address(166, 2), 8472));
    let (o, v) = preflight(&lab, &vxlan, &[]);
    assert_fails_exactly(
        &o,
        &v,
        &[("preflight.vxlan", "node-1 -> node-2")],
        "udp 8472 dropped from node-1 into node-2",
    );
}

#[test]
fn a_node_behind_a_router_fails_layer2_with_host_gw_only() {
    if !can_run("a_node_behind_a_router_fails_layer2_with_host_gw_only") {
        return;
    }
    let lab = Lab::up("pf3", "netns", 4, 167);
    let _routed = breaks::behind_router(&lab, 3, 167);
    let n3 = address(167, 3);
    assert_eq!(
        gateway_to(&lab, "node-1", n3).as_deref(),
        Some("10.240.167.250")
    );
    assert_eq!(
        gateway_to(&lab, "node-3", address(167, 1)).as_deref(),
        Some("10.240.167.251")
    );
    assert_eq!(gateway_to(&lab, "node-1", address(167, 2)), None);
    assert!(
        df_ping(&lab, "node-1", n3, 1500),
        "node-3 is reached, through the router"
    );
    std::net::TcpStream::connect_timeout(&(n3, 22).into(), std::time::Duration::from_secs(3))
        .expect("ssh to node-3 from the host still works");

    let (o, v) = preflight(&lab, &routes(&lab, "host-gw"), &[]);
    assert_fails_exactly(&o, &v, &[("preflight.layer2", "node-3")], "host-gw");
    let (o, v) = preflight(&lab, &routes(&lab, "vxlan"), &[]);
    assert_fails_exactly(&o, &v, &[], "vxlan crosses the router");
    assert_passed_everywhere(&lab, &v, "preflight.vxlan");
}

#[test]
fn a_lower_mtu_on_one_link_fails_mtu_there() {
    if !can_run("a_lower_mtu_on_one_link_fails_mtu_there") {
        return;
    }
    let lab = Lab::up("pf4", "netns", 4, 168);
    let _mtu = breaks::lower_mtu(&lab, 2, 1400);
    assert!(!df_ping(&lab, "node-1", address(168, 2), 1500));
    assert!(df_ping(&lab, "node-1", address(168, 2), 1400));
    assert!(
        df_ping(&lab, "node-1", address(168, 3), 1500),
        "the other links keep 1500"
    );
    // vxlan's pods get 1450, so its outer packets are 1500 bytes.
    let (o, v) = preflight(&lab, &routes(&lab, "vxlan"), &[]);
    assert_fails_exactly(&o, &v, &[("preflight.mtu", "node-2")], "vxlan");
    // host-gw's pods get 1500, whatever the uplink's MTU.
    let (o, v) = preflight(&lab, &routes(&lab, "host-gw"), &[]);
    assert_fails_exactly(&o, &v, &[("preflight.mtu", "node-2")], "host-gw");
}

#[test]
fn a_module_disabled_in_modprobe_d_fails_modules_there() {
    if !can_run("a_module_disabled_in_modprobe_d_fails_modules_there") {
        return;
    }
    let lab = Lab::up("pf5", "systemd", 3, 169);
    let vxlan = routes(&lab, "vxlan");
    let before = node_state::traces(&lab);
    let (o, v) = preflight(&lab, &vxlan, &[]);
    assert_fails_exactly(&o, &v, &[], "a clean systemd lab");
    assert_clean(&lab, &v, "vxlan");
    // Under real systemd too, the run leaves nothing behind.
    let run_id = v["run_id"].as_str().expect("the report's run_id");
    assert_eq!(node_state::processes_carrying(run_id), vec![]);
    assert_eq!(before, node_state::traces(&lab));

    let _off = breaks::disable_module(&lab, "node-2", "vxlan");
    let rule = "modprobe -c | grep -cx 'install vxlan /bin/false' || true";
    assert_eq!(lab.exec_ok("node-2", rule).trim(), "1");
    assert_eq!(lab.exec_ok("node-1", rule).trim(), "0", "node-2's own /etc");
    let (o, v) = preflight(&lab, &vxlan, &[]);
    assert_fails_exactly(&o, &v, &[("preflight.modules", "node-2")], "vxlan off");
    // host-gw needs no vxlan module.
    let (o, v) = preflight(&lab, &routes(&lab, "host-gw"), &[]);
    assert_fails_exactly(&o, &v, &[], "host-gw with vxlan off");
}

#[test]
fn strict_rp_filter_fails_vxlan_not_host_gw() {
    if !can_run("strict_rp_filter_fails_vxlan_not_host_gw") {
        return;
    }
    let lab = Lab::up("pf6", "netns", 4, 170);
    let _strict = breaks::strict_rp_filter(&lab, "node-2");
    let read = "sysctl -n net.ipv4.conf.all.rp_filter";
    assert_eq!(lab.exec_ok("node-2", read).trim(), "1");
    assert_ne!(lab.exec_ok("node-1", read).trim(), "1", "one node only");
    let (o, v) = preflight(&lab, &routes(&lab, "vxlan"), &[]);
    assert_fails_exactly(&o, &v, &[("preflight.rp-filter", "node-2")], "vxlan");
    let (o, v) = preflight(&lab, &routes(&lab, "host-gw"), &[]);
    assert_fails_exactly(&o, &v, &[], "host-gw");
}

/// init and switch stop before changing any node when the network they are about to set up
/// fails its preflight; `--skip-preflight` goes on and says so.
#[test]
fn init_and_switch_stop_before_any_change_when_preflight_fails() {
    if !can_run("init_and_switch_stop_before_any_change_when_preflight_fails") {
        return;
    }
    let lab = Lab::up("pf7", "netns", 3, 171);
    let (vxlan, host_gw) = (routes(&lab, "vxlan"), routes(&lab, "host-gw"));
    let _drop = breaks::drop_udp(&lab, "node-2", 8472);

    let before = node_state::changeable(&lab);
    let o = lab.netctl(&["init", "--yes"], &vxlan);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("preflight.vxlan") && all.contains("node-2"),
        "init prints the failure: {all}"
    );
    assert_eq!(before, node_state::changeable(&lab), "init changed a node");

    // host-gw needs no udp 8472: its init passes the same preflight and changes the nodes (so
    // the snapshot sees what init changes).
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &host_gw);
    assert!(o.status.success(), "{}", text(&o));
    let inited = node_state::changeable(&lab);
    assert_ne!(before, inited, "the snapshot shows init's changes");

    // switch checks its target network: vxlan fails, nothing changes, the profile included.
    let profile_text = std::fs::read_to_string(&host_gw).unwrap();
    let o = lab.netctl(
        &[
            "switch",
            "--yes",
            "--networking",
            "routes",
            "--backend",
            "vxlan",
        ],
        &host_gw,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("preflight.vxlan") && all.contains("node-2"),
        "switch prints the failure: {all}"
    );
    assert_eq!(
        inited,
        node_state::changeable(&lab),
        "switch changed a node"
    );
    assert_eq!(profile_text, std::fs::read_to_string(&host_gw).unwrap());

    // Back to bare nodes; init --skip-preflight goes on, and its report says preflight was
    // skipped.
    let o = lab.netctl(&["reset", "--yes"], &host_gw);
    assert!(o.status.success(), "{}", text(&o));
    let o = lab.netctl(
        &["init", "--yes", "--no-verify", "--skip-preflight"],
        &vxlan,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == "preflight: skipped (--skip-preflight)"),
        "the report names the skip: {}",
        text(&o)
    );
    assert_ne!(before, node_state::changeable(&lab));
}

/// Every probe removes what it started: listening sockets, processes (by the run's id, and
/// whatever runs in a node's network namespace), iptables and nftables rules, /run/netctl and
/// network namespaces are as they were.
#[test]
fn preflight_leaves_every_node_as_it_found_it() {
    if !can_run("preflight_leaves_every_node_as_it_found_it") {
        return;
    }
    let lab = Lab::up("pf8", "netns", 4, 172);
    // The snapshots see a listener left running: one planted by hand shows in both.
    let before = node_state::traces(&lab);
    let procs = node_state::processes_in_node(&lab, 1);
    lab.exec_ok(
        "node-1",
        "/usr/bin/python3 -c 'import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
         s.bind((\"0.0.0.0\", 8472)); time.sleep(60)' </dev/null >/dev/null 2>&1 & echo $! > /root/planted.pid; \
         for i in $(seq 50); do ss -Hlnu | grep -q ':8472 ' && break; sleep 0.1; done",
    );
    assert_ne!(before, node_state::traces(&lab), "a planted listener");
    assert_ne!(procs, node_state::processes_in_node(&lab, 1));
    lab.exec_ok(
        "node-1",
        "kill $(cat /root/planted.pid); rm /root/planted.pid; \
         for i in $(seq 50); do ss -Hlnu | grep -q ':8472 ' || break; sleep 0.1; done",
    );
    assert_eq!(
        before,
        node_state::traces(&lab),
        "the planted listener ended"
    );
    assert_eq!(procs, node_state::processes_in_node(&lab, 1));

    for backend in ["vxlan", "host-gw"] {
        let before = node_state::traces(&lab);
        let procs: Vec<_> = (1..=lab.nodes)
            .map(|i| node_state::processes_in_node(&lab, i))
            .collect();
        let (o, v) = preflight(&lab, &routes(&lab, backend), &[]);
        // Taken at once: a listener that ends by its own timeout later is still a leftover.
        let procs_after: Vec<_> = (1..=lab.nodes)
            .map(|i| node_state::processes_in_node(&lab, i))
            .collect();
        assert_fails_exactly(&o, &v, &[], backend);
        let run_id = v["run_id"].as_str().expect("the report's run_id");
        assert!(run_id.len() >= 8, "{run_id}");
        assert_eq!(
            node_state::processes_carrying(run_id),
            vec![],
            "{backend}: processes of run {run_id} left"
        );
        assert_eq!(procs, procs_after, "{backend}: processes left in the nodes");
        assert_eq!(before, node_state::traces(&lab), "{backend}: traces left");
        assert_passed_everywhere(&lab, &v, "preflight.cleanup");
    }
    interrupted_preflight_leaves_nothing(&lab);
}

/// The routes `backend` with `kubernetes.apiServer` an address of the lab's segment that nobody
/// has: every node's probe round waits out its 2 s on it (and preflight.api-server fails).
fn silent_api(lab: &Lab, backend: &'static str) -> PathBuf {
    let node1 = lab.exec_ok("node-1", "ip -o -4 addr show dev eth0 | awk '{print $4}'");
    let (net, _) = node1.trim().rsplit_once('.').expect("node-1's address");
    let silent = format!("https://{net}.250:6443");
    lab.profile_variant(&format!("{backend}-silent-api"), move |v| {
        v["networking"]["routes"]["backend"] = backend.into();
        v["kubernetes"]["apiServer"] = silent.clone().into();
    })
}

/// Ctrl-C while every node's listener is up: the run does not pass, and its listeners go with
/// it. A listener left behind would hold udp 8472 for its lifetime, and the next preflight would
/// take it for the running network's socket and skip the vxlan probes instead of checking them.
fn interrupted_preflight_leaves_nothing(lab: &Lab) {
    let vxlan = routes(lab, "vxlan");
    // On 4 nodes a run is over in a fraction of a second: its probe round lasts 2 s here.
    let slow = silent_api(lab, "vxlan");
    let before = node_state::traces(lab);
    let mut child = labkit::netctl()
        .args(["preflight", "--output", "json", "-p"])
        .arg(&slow)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nodes where udp 8472 is bound (by the agent: the lab runs nothing else on it).
    let listening = || {
        (1..=lab.nodes)
            .filter(|&i| {
                let ns = format!("{}-{}", lab.name, lab.node(i));
                breaks::host_ok(&format!("ip netns exec {ns} ss -Hlnu 'sport = :8472'"))
                    .contains(":8472")
            })
            .count()
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while listening() < lab.nodes {
        assert!(
            child.try_wait().unwrap().is_none(),
            "preflight ended before every listener was seen"
        );
        assert!(Instant::now() < deadline, "no listeners appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert!(
        !o.status.success(),
        "an interrupted run passed: {}",
        text(&o)
    );
    assert_eq!(
        (listening(), node_state::traces(lab)),
        (0, before),
        "(nodes listening, traces) after an interrupted preflight: {}",
        text(&o)
    );
    let (o, v) = preflight(lab, &vxlan, &[]);
    assert_fails_exactly(&o, &v, &[], "the run after an interrupted one");
    assert_passed_everywhere(lab, &v, "preflight.vxlan");
}

/// The Vagrant case: a node whose default route leaves through another interface (NAT, the same
/// address on every machine); flannel without `iface` picks it. On lab nodes with a default route
/// out of their lab interface and flannel's CNI plugin where the profile says, flannel passes;
/// the break fails exactly the interface check on that node.
#[test]
fn a_default_route_out_another_interface_fails_interface_for_flannel() {
    if !can_run("a_default_route_out_another_interface_fails_interface_for_flannel") {
        return;
    }
    let lab = Lab::up("pf9", "netns", 3, 173);
    // The lab's CNI plugins and a stand-in for flannel's (its DaemonSet installs it on real
    // clusters), in a directory of the lab's own.
    let cni = lab.profile.with_file_name("cni-bin");
    std::fs::create_dir_all(&cni).unwrap();
    for e in std::fs::read_dir("/usr/lib/cni").unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), cni.join(e.file_name())).unwrap();
    }
    let flannel_plugin = cni.join("flannel");
    std::fs::write(
        &flannel_plugin,
        "#!/bin/sh\n# stand-in for flannel's CNI plugin\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&flannel_plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cni_dir = cni.display().to_string();
    let profile = lab.profile_variant("flannel", move |v| {
        v["networking"]["cniBinDir"] = cni_dir.as_str().into();
    });
    let flannel = ["--networking", "flannel:vxlan"];

    let _routes: Vec<_> = (1..=lab.nodes)
        .map(|i| breaks::default_route(&lab, &lab.node(i), 173))
        .collect();
    let (o, v) = preflight(&lab, &profile, &flannel);
    assert_fails_exactly(&o, &v, &[], "flannel on the lab interface");
    assert_passed_everywhere(&lab, &v, "preflight.interface");

    let _nat = breaks::default_route_elsewhere(&lab, "node-2");
    assert_eq!(
        lab.exec_ok("node-2", "ip -o route get 1.1.1.1")
            .split_whitespace()
            .nth(4),
        Some("eth1")
    );
    let (o, v) = preflight(&lab, &profile, &flannel);
    assert_fails_exactly(
        &o,
        &v,
        &[("preflight.interface", "node-2")],
        "the NAT route",
    );
    let c = checks(&v)
        .find(|c| c["id"] == "preflight.interface" && c["subject"] == "node-2")
        .unwrap();
    assert!(
        c["detail"].as_str().unwrap_or_default().contains("eth1"),
        "the detail names the interface chosen: {c}"
    );
}

/// `kubernetes.apiServer` is tried from every node: a TCP listener on node-1 (python3 in its
/// namespace, the lab's own address) answers every node; a port nobody listens on fails every
/// node's `preflight.api-server`, naming the address.
#[test]
fn the_api_server_is_tried_from_every_node() {
    if !can_run("the_api_server_is_tried_from_every_node") {
        return;
    }
    let lab = Lab::up("pf10", "netns", 3, 174);
    let addr = lab
        .exec_ok("node-1", "ip -o -4 addr show dev eth0 | awk '{print $4}'")
        .trim()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // A stand-in API server for at most 20 s (ended below, by its pid): accepts and closes.
    let pid = lab.exec_ok(
        "node-1",
        &format!(
            "setsid python3 -c 'import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"{addr}\", 16443)); s.listen(16)\ns.settimeout(1)\nend=time.time()+20\nwhile time.time()<end:\n  try: s.accept()[0].close()\n  except OSError: pass' >/dev/null 2>&1 < /dev/null & echo $!; sleep 0.3"
        ),
    );
    let with = |port: u16| {
        let addr = addr.clone();
        lab.profile_variant(&format!("api{port}"), move |v| {
            v["kubernetes"]["apiServer"] = format!("https://{addr}:{port}").into();
        })
    };
    let (o, v) = preflight(&lab, &with(16443), &[]);
    assert_fails_exactly(&o, &v, &[], "an answering API server");
    assert_passed_everywhere(&lab, &v, "preflight.api-server");
    let (o, v) = preflight(&lab, &with(16444), &[]);
    let want: Vec<(&str, String)> = (1..=3)
        .map(|i| ("preflight.api-server", lab.node(i)))
        .collect();
    let want: Vec<(&str, &str)> = want.iter().map(|(id, n)| (*id, n.as_str())).collect();
    assert_fails_exactly(&o, &v, &want, "nothing listening");
    let c = checks(&v)
        .find(|c| c["id"] == "preflight.api-server")
        .unwrap();
    assert!(
        str_of(&c["detail"]).contains(&format!("tcp {addr}:16444")),
        "{c}"
    );
    let pid = pid.trim();
    assert!(pid.bytes().all(|b| b.is_ascii_digit()), "{pid}");
    lab.exec("node-1", &format!("kill {pid}"));
}

/// An agent that does not end when its stdin closes (here: stopped by SIGSTOP once its prober
/// runs) fails `preflight.cleanup` on its node after 5 s, and netctl has it killed (SIGKILL
/// through its channel): nothing of the run is left.
#[test]
fn an_agent_that_does_not_end_fails_cleanup_and_is_killed() {
    if !can_run("an_agent_that_does_not_end_fails_cleanup_and_is_killed") {
        return;
    }
    let lab = Lab::up("pf11", "netns", 2, 175);
    // The probe round lasts its 2 s: time to stop node-2's agent once it has forked its
    // prober, which still answers for it. host-gw: no listener, so a stopped agent fails no
    // peer's echo (with vxlan node-1's could still be on its way).
    let profile = silent_api(&lab, "host-gw");
    let child = labkit::netctl()
        .args(["preflight", "--output", "json", "-p"])
        .arg(&profile)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let agent = loop {
        let run = agents_in(&lab, 2);
        // The agent is the one whose parent is not one of them (its prober's parent is it).
        if let [(a, _), (b, b_parent)] = run.as_slice() {
            break if b_parent == a { *a } else { *b };
        }
        assert!(
            Instant::now() < deadline,
            "no agent and prober on node-2: {run:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // SAFETY: kill has no memory preconditions; the agent was started for this test's run.
    assert_eq!(unsafe { libc::kill(agent as i32, libc::SIGSTOP) }, 0);
    let o = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let want = [
        ("preflight.api-server", "node-1"),
        ("preflight.api-server", "node-2"),
        ("preflight.cleanup", "node-2"),
    ];
    assert_fails_exactly(&o, &v, &want, "node-2's agent stopped");
    let c = checks(&v)
        .find(|c| c["id"] == "preflight.cleanup" && c["subject"] == "node-2")
        .unwrap();
    assert!(
        str_of(&c["detail"]).contains("the agent did not end"),
        "{c}"
    );
    let t = Instant::now();
    while !agents_in(&lab, 2).is_empty() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "the stopped agent was not killed: {:?}",
            agents_in(&lab, 2)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(agents_in(&lab, 1).is_empty());
}

/// (pid, parent pid) of the preflight agents' processes in netns node `i`, by pid.
fn agents_in(lab: &Lab, i: usize) -> Vec<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let ns = format!("/run/netns/{}-{}", lab.name, lab.node(i));
    let want = format!("net:[{}]", std::fs::metadata(&ns).unwrap().ino());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::fs::read_link(e.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == want) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if !cmdline
            .split(|b| *b == 0)
            .any(|w| w.starts_with(b"netctl-pf-"))
        {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        found.push((pid, parent));
    }
    found.sort();
    found
}
