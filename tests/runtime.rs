//! A real container runtime judges what netctl leaves on a node: lab nodes run containerd (Debian's,
//! with runc; `lab up --runtime containerd`), and a CRI client talks to each node's socket as the
//! kubelet does. After `netctl init` (routes provider, host-gw and vxlan) containerd reports
//! NetworkReady, its pod sandboxes get addresses from their nodes' podCIDRs and ping each other
//! across nodes; a wrong `bin_dir` or a broken CNI config is caught by the runtime and by
//! `netctl verify`; `netctl switch` between the backends keeps the runtime NetworkReady
//! throughout; and the runtime never pulls (its sandbox image is made locally).

mod labkit;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;
use labkit::cri::{Cri, Sandbox};
use labkit::{can_run, netctl, run_ok, text, Lab};

/// The directories netctl's profile gives (networking.cniBinDir / cniConfDir).
fn profile_cni_dirs(lab: &Lab) -> (String, String) {
    let v: serde_yaml::Value = serde_yaml::from_str(&lab.profile_text()).unwrap();
    let net = &v["networking"];
    let bin = net["cniBinDir"]
        .as_str()
        .unwrap_or("/opt/cni/bin")
        .to_string();
    let conf = net["cniConfDir"]
        .as_str()
        .unwrap_or("/etc/cni/net.d")
        .to_string();
    (bin, conf)
}

/// containerd's CNI section on every node pointed at `bin` and `conf`, and containerd restarted
/// (netns nodes have no init system; on a real node netctl restarts containerd itself).
fn set_runtime_cni_dirs(lab: &Lab, bin: &str, conf: &str) {
    let info = netctl::lab::load(&lab.name).unwrap();
    for n in &info.nodes {
        let path = netctl::lab::runtime::config_path(&info.dir, &n.name);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited: String = text
            .lines()
            .map(|l| match l.trim_start() {
                t if t.starts_with("bin_dir ") => format!("    bin_dir = \"{bin}\""),
                t if t.starts_with("conf_dir ") => format!("    conf_dir = \"{conf}\""),
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(&path, edited).unwrap();
    }
    restart_runtime(lab);
}

fn restart_runtime(lab: &Lab) {
    run_ok(netctl().args(["lab", "restart-runtime", "--name", &lab.name]));
}

/// `netctl init` on a lab with a runtime. The lab's containerd config comes with containerd's
/// default CNI section (/opt/cni/bin); netctl's init edits it to the profile's directories (the lab
/// profile has `manageUnits: false`: the CNI section is pod networking, edited, every other byte
/// kept). netns nodes have no init system, so the restart netctl would do is the lab's.
fn init(lab: &Lab) {
    let o = lab.netctl(&["init", "--yes"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    restart_runtime(lab);
}

fn cri(lab: &Lab, node: &str) -> Cri {
    let info = netctl::lab::load(&lab.name).unwrap();
    Cri::connect(info.node(node).unwrap().cri_socket.as_ref().unwrap())
}

/// Poll Status until NetworkReady is `want` (containerd watches its conf_dir) or time runs out.
fn wait_network_ready(c: &mut Cri, want: bool) -> labkit::cri::NetworkReady {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nr = c.network_ready().expect("CRI Status");
        if nr.ready == want || Instant::now() > deadline {
            return nr;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node's podCIDR, as netctl wrote it into its bridge config.
fn pod_cidr(lab: &Lab, node: &str) -> Ipv4Network {
    let conf = lab.exec_ok(node, "cat /etc/cni/net.d/10-bridge.conf");
    let v: serde_json::Value = serde_json::from_str(&conf).unwrap();
    v["ipam"]["ranges"][0][0]["subnet"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The sandbox's network namespace as seen from the host: containerd pins it in its own mount
/// namespace, so the path from PodSandboxStatus is resolved through containerd's root.
fn netns_path(lab: &Lab, node: &str, sb: &Sandbox) -> PathBuf {
    let info = netctl::lab::load(&lab.name).unwrap();
    let pid = info
        .node(node)
        .unwrap()
        .runtime_pid
        .expect("containerd runs");
    assert!(
        sb.netns.starts_with("/var/run/netns/") || sb.netns.starts_with("/run/netns/"),
        "sandbox netns {:?}",
        sb.netns
    );
    // /var/run is an absolute symlink to /run, which would resolve against the host's root.
    let path = sb.netns.strip_prefix("/var").unwrap_or(&sb.netns);
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Ping `ip` from inside the sandbox's network namespace: two replies within 15 s (the lab shares
/// two cores with everything else).
fn ping_from(lab: &Lab, node: &str, sb: &Sandbox, ip: &str) -> std::process::Output {
    std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns_path(lab, node, sb).display()))
        .args(["ping", "-c", "2", "-w", "15", ip])
        .output()
        .unwrap()
}

fn run_on(c: &mut Cri, name: &str) -> Sandbox {
    let id = c
        .run_sandbox(name)
        .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"));
    c.sandbox(&id).unwrap()
}

/// Nothing was pulled: containerd logged no PullImage and the nodes have no route out.
fn assert_no_pull(lab: &Lab) {
    let info = netctl::lab::load(&lab.name).unwrap();
    for n in &info.nodes {
        let log = std::fs::read_to_string(n.runtime_log.as_ref().unwrap()).unwrap();
        assert!(
            !log.contains("PullImage"),
            "{}: containerd pulled:\n{log}",
            n.name
        );
        assert!(
            log.contains("RunPodSandbox")
                || log.contains("StopPodSandbox")
                || log.contains("serving"),
            "{}: the log is containerd's info-level log",
            n.name
        );
        let route = lab.exec_ok(&n.name, "ip -4 route show default");
        assert!(route.trim().is_empty(), "{}: default route {route}", n.name);
    }
}

/// Sandboxes on both nodes get addresses from their podCIDRs and ping each other.
fn sandboxes_ping(lab: &Lab, tag: &str) -> Vec<(String, Sandbox)> {
    let mut made = Vec::new();
    for node in ["node-1", "node-2"] {
        let mut c = cri(lab, node);
        let sb = run_on(&mut c, &format!("{tag}-{node}"));
        let ip: std::net::Ipv4Addr = sb
            .ip
            .parse()
            .unwrap_or_else(|e| panic!("{node}: {sb:?}: {e}"));
        let cidr = pod_cidr(lab, node);
        assert!(
            cidr.contains(ip),
            "{node}: sandbox {ip} is outside its podCIDR {cidr}"
        );
        // verify's test pods (a switch's gates run them) held this address before, and verify puts
        // host-local's cursor back: the sandbox reuses the address with a new MAC. verify clears
        // its pods' neighbour entries when it removes them (issue 17, item 9), so the pings below
        // reach it at once.
        made.push((node.to_string(), sb));
    }
    let (a, b) = (&made[0], &made[1]);
    for (from, to) in [(a, b), (b, a)] {
        let o = ping_from(lab, &from.0, &from.1, &to.1.ip);
        assert!(
            o.status.success(),
            "{tag}: {} -> {}: {}",
            from.0,
            to.1.ip,
            text(&o)
        );
    }
    made
}

fn remove_all(lab: &Lab, made: Vec<(String, Sandbox)>) {
    for (node, sb) in made {
        let mut c = cri(lab, &node);
        c.remove_sandbox(&sb.id).unwrap();
        // The CNI DEL released the address in host-local's store.
        let held = lab.exec(
            &node,
            &format!("test -e /var/lib/cni/networks/bridge/{}", sb.ip),
        );
        assert!(!held.status.success(), "{node}: {} still allocated", sb.ip);
    }
}

/// Poll Status on both nodes in the background until `stop`; every not-ready answer is kept.
fn watch_ready(lab: &Lab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, Vec<String>)> {
    let sockets: Vec<PathBuf> = netctl::lab::load(&lab.name)
        .unwrap()
        .nodes
        .iter()
        .map(|n| n.cri_socket.clone().unwrap())
        .collect();
    std::thread::spawn(move || {
        let mut clients: Vec<Cri> = sockets.iter().map(|s| Cri::connect(s)).collect();
        let (mut polls, mut bad) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            for (c, s) in clients.iter_mut().zip(&sockets) {
                match c.network_ready() {
                    Ok(nr) if nr.ready => {}
                    Ok(nr) => bad.push(format!("{}: not ready: {}", s.display(), nr.why)),
                    Err(e) => bad.push(format!("{}: Status failed: {e}", s.display())),
                }
            }
            polls += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        (polls, bad)
    })
}

fn switch_watched(lab: &Lab, backend: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_ready(lab, stop.clone());
    let o = lab.netctl(
        &[
            "switch",
            "--yes",
            "--networking",
            "routes",
            "--backend",
            backend,
        ],
        &lab.profile,
    );
    stop.store(true, Ordering::Relaxed);
    let (polls, bad) = watcher.join().unwrap();
    assert!(o.status.success(), "switch to {backend}: {}", text(&o));
    assert!(polls > 0, "Status was polled during the switch");
    assert!(bad.is_empty(), "switch to {backend}: {}", bad.join("\n"));
    eprintln!("RUNTIME-SWITCH routes -> {backend}: NetworkReady in all {polls} polls of 2 nodes");
}

#[test]
fn containerd_runs_pods_with_netctls_config_on_host_gw_and_vxlan() {
    if !can_run("containerd_runs_pods_with_netctls_config_on_host_gw_and_vxlan") {
        return;
    }
    let lab = Lab::up_with("rt-pods", "netns", 2, 190, &["--runtime", "containerd"]);
    // Before init there is no CNI config: the runtime says so.
    let mut c1 = cri(&lab, "node-1");
    let nr = c1.network_ready().unwrap();
    assert!(!nr.ready, "no CNI config yet, but NetworkReady: {nr:?}");

    init(&lab);
    for node in ["node-1", "node-2"] {
        let nr = wait_network_ready(&mut cri(&lab, node), true);
        assert!(nr.ready, "{node} after init: {nr:?}");
    }
    let host_gw = sandboxes_ping(&lab, "hostgw");

    switch_watched(&lab, "vxlan");
    // The sandboxes made before the switch still reach each other, and new ones work too.
    let o = ping_from(&lab, "node-1", &host_gw[0].1, &host_gw[1].1.ip);
    assert!(o.status.success(), "old sandboxes over vxlan: {}", text(&o));
    let vxlan = sandboxes_ping(&lab, "vxlan");
    remove_all(&lab, vxlan);

    switch_watched(&lab, "host-gw");
    remove_all(&lab, host_gw);
    assert_no_pull(&lab);
}

#[test]
fn a_wrong_bin_dir_and_a_broken_config_are_caught_by_the_runtime_and_by_verify() {
    if !can_run("a_wrong_bin_dir_and_a_broken_config_are_caught_by_the_runtime_and_by_verify") {
        return;
    }
    let lab = Lab::up_with("rt-bad", "netns", 2, 191, &["--runtime", "containerd"]);
    init(&lab);
    let o = lab.netctl(&["verify"], &lab.profile);
    assert!(o.status.success(), "verify after init: {}", text(&o));

    // containerd looking for the plugins in the wrong place: the config loads, pods fail.
    let (bin, conf) = profile_cni_dirs(&lab);
    set_runtime_cni_dirs(&lab, "/usr/lib/no-cni-here", &conf);
    let mut c = cri(&lab, "node-1");
    let nr = wait_network_ready(&mut c, true);
    assert!(nr.ready, "{nr:?}");
    let err = c.run_sandbox("wrong-bin").unwrap_err();
    assert!(
        err.message().contains("failed to find plugin")
            && err.message().contains("/usr/lib/no-cni-here"),
        "{err}"
    );
    let o = lab.netctl(&["verify"], &lab.profile);
    assert_eq!(o.status.code(), Some(1), "verify must fail: {}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("/usr/lib/no-cni-here"),
        "verify names containerd's bin_dir: {out}"
    );
    set_runtime_cni_dirs(&lab, &bin, &conf);
    // A new connection: the old one was to the containerd just restarted.
    let mut c = cri(&lab, "node-1");

    // A broken CNI config: containerd says NetworkReady false, verify fails.
    lab.exec_ok(
        "node-1",
        "printf '{\"cniVersion\": ' > /etc/cni/net.d/10-bridge.conf",
    );
    let nr = wait_network_ready(&mut c, false);
    assert!(!nr.ready, "a broken config, yet NetworkReady: {nr:?}");
    assert!(nr.why.starts_with("NetworkPluginNotReady"), "{nr:?}");
    let err = c.run_sandbox("broken-conf").unwrap_err();
    assert!(err.message().contains("cni"), "{err}");
    let o = lab.netctl(&["verify"], &lab.profile);
    assert_eq!(o.status.code(), Some(1), "verify must fail: {}", text(&o));
    assert!(text(&o).contains("10-bridge.conf"), "{}", text(&o));

    // init repairs the file, and containerd takes it without a restart (it watches conf_dir).
    let o = lab.netctl(&["init", "--yes"], &lab.profile);
    assert!(o.status.success(), "{}", text(&o));
    let nr = wait_network_ready(&mut c, true);
    assert!(nr.ready, "{nr:?}");
    let sb = run_on(&mut c, "repaired");
    remove_all(&lab, vec![("node-1".into(), sb)]);
    assert_no_pull(&lab);
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The hand-written CRI messages (labkit/cri/v1.rs) against bytes from bindings generated from
/// the kubelet's api.proto (k8s-cri 0.11, runtime.v1): requests encode byte for byte the same,
/// and full responses, with the fields the client skips, decode to what the client reads. A wrong
/// field number fails here, without a lab.
#[test]
fn cri_messages_match_the_generated_bindings() {
    use labkit::cri::v1::*;
    use prost::Message;

    let run = RunPodSandboxRequest {
        config: Some(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "pod-a".into(),
                uid: "pod-a-42".into(),
                namespace: "default".into(),
            }),
            hostname: "pod-a".into(),
        }),
    };
    assert_eq!(
        run.encode_to_vec(),
        unhex("0a230a1a0a05706f642d611208706f642d612d34321a0764656661756c741205706f642d61")
    );
    let status = PodSandboxStatusRequest {
        pod_sandbox_id: "abc".into(),
        verbose: true,
    };
    assert_eq!(status.encode_to_vec(), unhex("0a036162631001"));
    let id = unhex("0a03616263");
    let stop = StopPodSandboxRequest {
        pod_sandbox_id: "abc".into(),
    };
    assert_eq!(stop.encode_to_vec(), id);
    let remove = RemovePodSandboxRequest {
        pod_sandbox_id: "abc".into(),
    };
    assert_eq!(remove.encode_to_vec(), id);
    assert_eq!(
        RunPodSandboxResponse::decode(&id[..])
            .unwrap()
            .pod_sandbox_id,
        "abc"
    );

    // Status with RuntimeReady and NetworkReady, info and a runtime handler.
    let resp = StatusResponse::decode(
        &unhex(
            "0a510a100a0c52756e74696d65526561647910010a3d0a0c4e6574776f726b52656164791a154e6574\
             776f726b506c7567696e4e6f7452656164792216636e6920636f6e666967206c6f6164206661696c6564\
             120c0a06636f6e66696712027b7d1a060a0472756e63",
        )[..],
    )
    .unwrap();
    let conds = resp.status.unwrap().conditions;
    assert_eq!(conds.len(), 2);
    assert_eq!(
        (conds[0].r#type.as_str(), conds[0].status),
        ("RuntimeReady", true)
    );
    assert_eq!(
        conds[1],
        RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: "cni config load failed".into(),
        }
    );

    // PodSandboxStatus with id, metadata, created_at, an additional IP, labels, runtime handler
    // and timestamp around the network (5) and the verbose info (2).
    let resp = PodSandboxStatusResponse::decode(
        &unhex(
            "0a4f0a0361626312150a05706f642d611201751a0764656661756c742001208080a8b1e39fe7cb172a17\
             0a0a31302e3234342e312e3712090a07666430303a3a373a080a036170701201784a0472756e631211\
             0a04696e666f12097b22706964223a377d2005",
        )[..],
    )
    .unwrap();
    assert_eq!(resp.status.unwrap().network.unwrap().ip, "10.244.1.7");
    assert_eq!(resp.info.len(), 1);
    assert_eq!(resp.info["info"], r#"{"pid":7}"#);
}
