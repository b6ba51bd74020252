//! `netctl verify` end to end. Lab tests (root): after init everything passes on netns and systemd
//! nodes, host-gw and vxlan; each injected fault fails its own check, with a hint, on the right
//! node, and verify exits 1; verify leaves nodes as it found them, also after Ctrl-C.
//! Stand-in kubectl tests (no root): the cluster checks and the smoke test against a script that
//! records its arguments and answers with API-shaped JSON.

mod labkit;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use labkit::{can_run, text, Lab};
use serde_json::Value;

const NODES: usize = 3;

/// Files (with mtimes; directories by name: adding and removing a pod's entry bumps theirs), routes, links, addresses, netns, host-local state (its
/// allocation cursors included, which verify puts back) and ip_forward of every node: equal
/// before and after means verify changed nothing.
fn snapshot(lab: &Lab) -> Vec<String> {
    (1..=NODES)
        .map(|i| {
            lab.exec_ok(
                &lab.node(i),
                "for d in /etc/cni/net.d /etc/sysctl.d /usr/local/lib/netctl /var/lib/netctl /etc/systemd/system /var/lib/cni /run/netns; do \
                   [ -d $d ] && find $d -xdev \\( -type d -printf '%p/ %m\\n' \\) -o -printf '%p %T@ %s %m\\n'; done | sort; \
                 { ip -4 route show table all | grep -v ' table local'; ip -o link show | cut -d' ' -f2,3,5; } \
                   | sed -e 's/ linkdown//' -e 's/NO-CARRIER,//' -e 's/,LOWER_UP//'; ip -4 -o addr show | cut -d' ' -f2,7; \
                 ip netns list; sysctl -n net.ipv4.ip_forward; ip neigh show nud permanent; bridge fdb show | grep -c .",
            )
        })
        .collect()
}

fn verify(lab: &Lab, profile: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["verify", "--output", "json"];
    args.extend(extra);
    let o = lab.netctl(&args, profile);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn check<'a>(v: &'a Value, id: &str, subject: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id && c["subject"] == subject))
        .unwrap_or_else(|| panic!("no {id} for {subject} in {v}"))
}

fn failures(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{} {}: {}", c["id"], c["subject"], c["detail"]))
        .collect()
}

fn assert_all_pass(v: &Value, o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {:?}\n{}",
        failures(v),
        text(o)
    );
    assert_eq!(v["summary"]["fail"], 0, "{what}: {v}");
    for id in [
        "node.ssh",
        "node.forwarding",
        "node.cni-config",
        "node.stale-cni",
        "node.files",
        "node.routes",
        "dataplane.pods",
        "dataplane.pod-to-pod-local",
        "dataplane.pod-to-pod",
        "dataplane.node-to-pod",
        "dataplane.mtu",
    ] {
        for i in 1..=NODES {
            let c = check(v, id, &format!("node-{i}"));
            assert_eq!(c["status"], "pass", "{what}: {c}");
        }
    }
}

/// `fault` made verify exit 1 with `id` failing on `node`, with a hint; returns that check.
fn assert_fails(lab: &Lab, profile: &Path, id: &str, node: &str, fault: &str) -> Value {
    let (o, v) = verify(lab, profile, &[]);
    assert_eq!(o.status.code(), Some(1), "{fault}: {}", text(&o));
    let c = check(&v, id, node).clone();
    assert_eq!(c["status"], "fail", "{fault}: {c}");
    assert!(
        c["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{fault}: no hint: {c}"
    );
    // The other nodes are not blamed for this check.
    for i in 1..=NODES {
        let other = format!("node-{i}");
        if other != node {
            assert_ne!(check(&v, id, &other)["status"], "fail", "{fault}: {v}");
        }
    }
    c
}

fn netns_left(lab: &Lab) -> String {
    (1..=NODES)
        .map(|i| lab.exec_ok(&lab.node(i), "ip netns list"))
        .collect()
}

/// With ip_forward off on node-2: the text report is the summary, then the failure with its hint
/// on the next line; JUnit's failure message is what failed.
fn text_and_junit_lead_with_the_failure(lab: &Lab, profile: &Path) {
    let o = lab.netctl(&["verify"], profile);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("CHECK") && lines[0].contains("PASS"),
        "{out}"
    );
    let at = lines
        .iter()
        .position(|l| l.contains("node-2") && l.contains("net.ipv4.ip_forward = 0"))
        .unwrap_or_else(|| panic!("no failure row: {out}"));
    assert!(at < 25, "{out}");
    assert!(lines[at + 1].trim_start().starts_with("hint: "), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("FAILED CHECK")), "{out}");
    assert!(
        lines.last().unwrap().contains(" failed, "),
        "the verdict closes the report: {out}"
    );
    let o = lab.netctl(&["verify", "--output", "junit"], profile);
    let xml = String::from_utf8_lossy(&o.stdout);
    assert!(
        xml.contains("<failure message=\"net.ipv4.ip_forward = 0: the node does not route pod traffic\" type=\"node.forwarding\">hint: "),
        "{xml}"
    );
}

/// Ctrl-C while pings are in flight: exit 1, reported as interrupted, and no test pod is left.
fn ctrl_c_removes_test_pods(lab: &Lab) {
    let mut child = labkit::netctl()
        .args(["verify", "--output", "json", "-p"])
        .arg(&lab.profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if lab.exec_ok("node-1", "ip netns list").contains("netctl-") {
            break;
        }
        assert!(Instant::now() < deadline, "no test pod appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "verify ended before its pods were seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        check(&v, "verify.interrupted", "cluster")["status"],
        "fail",
        "{v}"
    );
    assert!(!netns_left(lab).contains("netctl-"), "{}", netns_left(lab));
}

/// The `time` attribute of the first `<tag ` element.
fn time_of(xml: &str, tag: &str) -> f64 {
    let el = &xml[xml.find(&format!("<{tag} ")).expect(tag)..];
    let t = &el[el.find(" time=\"").expect("time") + 7..];
    t[..t.find('"').unwrap()].parse().unwrap()
}

fn junit_is_valid_xml(lab: &Lab) {
    let started = Instant::now();
    let o = lab.netctl(&["verify", "--output", "junit"], &lab.profile);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let xml = String::from_utf8(o.stdout).unwrap();
    assert!(
        xml.contains("<testsuite name=\"dataplane.pod-to-pod\" tests=\"3\" failures=\"0\""),
        "{xml}"
    );
    // junit-10.xsd allows no `skipped` on testsuites; its time is the run's wall time, not a sum
    // of the nodes' round trips.
    let root = xml.lines().nth(1).unwrap();
    assert!(
        root.starts_with("<testsuites ") && !root.contains("skipped="),
        "{root}"
    );
    let total = time_of(&xml, "testsuites");
    assert!(
        total <= wall && total >= wall / 2.0,
        "{total} s of {wall} s: {xml}"
    );
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())",
        ])
        .stdin(Stdio::piped())
        .spawn();
    if let Ok(mut py) = py {
        use std::io::Write;
        py.stdin.take().unwrap().write_all(xml.as_bytes()).unwrap();
        assert!(py.wait().unwrap().success(), "not well-formed XML:\n{xml}");
    }
}

#[test]
fn verify_on_netns_nodes_host_gw_and_vxlan() {
    if !can_run("verify_on_netns_nodes_host_gw_and_vxlan") {
        return;
    }
    let lab = Lab::up("vf-ns", "netns", NODES, 51);
    let p = lab.profile.clone();

    // init ends with verify, and it passes.
    let o = lab.netctl(&["init", "--yes", "--output", "json"], &p);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert!(o.status.success(), "{}", text(&o));
    assert_all_pass(&v["verify"], &o, "init's verify");
    assert_eq!(
        v["verify"]["summary"]["skip"].as_u64().unwrap() as usize,
        3 * NODES,
        "br-netfilter, services and runtime-cni (no containerd on these nodes) skip: {v}"
    );

    // verify passes and changes nothing.
    let before = snapshot(&lab);
    let (o, v) = verify(&lab, &p, &[]);
    assert_all_pass(&v, &o, "verify after init");
    assert_eq!(
        check(&v, "cluster.nodes-ready", "cluster")["status"],
        "skip"
    );
    assert!(check(&v, "node.services", "node-1")["detail"]
        .as_str()
        .unwrap()
        .contains("init: none"));
    assert_eq!(before, snapshot(&lab), "verify changed a node");
    // With a pod of the node's own (host-local state and its cursor exist before verify), verify
    // still leaves every file as it was: the cursor it moved is put back, mtime included.
    lab.make_pod("node-1", "resident");
    let before = snapshot(&lab);
    let (o, v) = verify(&lab, &p, &[]);
    assert_all_pass(&v, &o, "verify with a resident pod");
    assert_eq!(before, snapshot(&lab), "verify changed host-local's state");
    lab.remove_pod("node-1", "resident");
    let (o, v) = verify(&lab, &p, &["--mesh", "ring"]);
    assert_all_pass(&v, &o, "ring");
    junit_is_valid_xml(&lab);

    // ip_forward off on one node; verify leaves it off (the bridge plugin would turn it on).
    lab.exec_ok("node-2", "sysctl -q -w net.ipv4.ip_forward=0");
    assert_fails(&lab, &p, "node.forwarding", "node-2", "ip_forward off");
    text_and_junit_lead_with_the_failure(&lab, &p);
    assert_eq!(
        lab.exec_ok("node-2", "sysctl -n net.ipv4.ip_forward")
            .trim(),
        "0"
    );
    lab.exec_ok("node-2", "sysctl -q -w net.ipv4.ip_forward=1");

    // One route deleted: node.routes and the pings from that node fail; Ctrl-C meanwhile.
    lab.exec_ok("node-1", "ip route del 10.200.1.0/24");
    let c = assert_fails(&lab, &p, "node.routes", "node-1", "route deleted");
    assert!(
        c["detail"].as_str().unwrap().contains("no route to node-2"),
        "{c}"
    );
    ctrl_c_removes_test_pods(&lab);
    lab.exec_ok("node-1", "/bin/sh /usr/local/lib/netctl/routes.sh up");

    // A foreign config that sorts first.
    lab.exec_ok(
        "node-3",
        r#"printf '{"cniVersion":"1.0.0","name":"foreign","plugins":[{"type":"flannel"}]}\n' > /etc/cni/net.d/00-foreign.conflist"#,
    );
    let c = assert_fails(&lab, &p, "node.cni-config", "node-3", "foreign config");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("00-foreign.conflist"),
        "{c}"
    );
    let (_, v) = verify(&lab, &p, &[]);
    assert_eq!(check(&v, "node.stale-cni", "node-3")["status"], "fail");
    assert_eq!(
        check(&v, "dataplane.pods", "node-3")["status"],
        "skip",
        "flannel is not on the node"
    );
    lab.exec_ok("node-3", "rm /etc/cni/net.d/00-foreign.conflist");

    // A managed file edited.
    lab.exec_ok("node-1", "echo '# edited' >> /etc/sysctl.d/90-netctl.conf");
    let c = assert_fails(&lab, &p, "node.files", "node-1", "file edited");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("/etc/sysctl.d/90-netctl.conf edited"),
        "{c}"
    );
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &p);
    assert!(o.status.success(), "{}", text(&o));

    // An unreachable node: its checks fail as unreachable, the others still run.
    let down = lab.profile_variant("down", |v| {
        v["nodes"][2]["sshPort"] = 2222.into();
    });
    let (o, v) = verify(&lab, &down, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(check(&v, "node.ssh", "node-3")["status"], "fail");
    assert_eq!(check(&v, "node.routes", "node-3")["status"], "skip");
    assert_eq!(
        check(&v, "dataplane.pod-to-pod", "node-3")["status"],
        "skip"
    );
    assert_eq!(check(&v, "node.routes", "node-1")["status"], "pass");
    assert_eq!(
        check(&v, "dataplane.pod-to-pod", "node-1")["status"],
        "pass",
        "{v}"
    );
    assert_eq!(failures(&v).len(), 1, "{:?}", failures(&v));

    // vxlan: init switches the backend, verify passes, a wrong device MTU fails node.routes.
    let vx = lab.profile_variant("vxlan", |v| {
        v["networking"]["routes"]["backend"] = "vxlan".into();
    });
    // The nodes record host-gw: init changes their network only when told to.
    let o = lab.netctl(&["init", "--yes", "--allow-provider-change"], &vx);
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&lab);
    let (o, v) = verify(&lab, &vx, &[]);
    assert_all_pass(&v, &o, "vxlan");
    assert!(
        check(&v, "dataplane.mtu", "node-1")["detail"]
            .as_str()
            .unwrap()
            .contains("1450-byte"),
        "{v}"
    );
    assert_eq!(before, snapshot(&lab), "verify changed a vxlan node");
    lab.exec_ok("node-2", "ip link set netctl-vxlan mtu 1400");
    let c = assert_fails(&lab, &vx, "node.routes", "node-2", "vxlan MTU");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("MTU 1400, want 1450"),
        "{c}"
    );
    lab.exec_ok("node-2", "/bin/sh /usr/local/lib/netctl/routes.sh up");
    let (o, v) = verify(&lab, &vx, &[]);
    assert_all_pass(&v, &o, "vxlan repaired");
}

#[test]
fn verify_on_systemd_nodes() {
    if !can_run("verify_on_systemd_nodes") {
        return;
    }
    let lab = Lab::up("vf-sd", "systemd", NODES, 52);
    let p = lab.profile.clone();
    let o = lab.netctl(&["init", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("dataplane.pod-to-pod"),
        "init shows the verify table: {}",
        text(&o)
    );

    let before = snapshot(&lab);
    let (o, v) = verify(&lab, &p, &[]);
    assert_all_pass(&v, &o, "systemd");
    let s = check(&v, "node.services", "node-1");
    assert_eq!(s["status"], "pass", "{s}");
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .contains("netctl-routes.service"),
        "{s}"
    );
    assert_eq!(before, snapshot(&lab), "verify changed a node");

    // The boot unit disabled: routes would be gone after a reboot, node.services fails there.
    lab.exec_ok("node-1", "systemctl disable netctl-routes.service");
    let c = assert_fails(&lab, &p, "node.services", "node-1", "unit disabled");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("netctl-routes.service is disabled, not enabled"),
        "{c}"
    );
    lab.exec_ok("node-1", "systemctl enable netctl-routes.service");

    // sshd stopped on one node: unreachable, the others still checked.
    lab.exec_ok("node-3", "systemctl stop ssh.socket ssh.service");
    let (o, v) = verify(&lab, &p, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(check(&v, "node.ssh", "node-3")["status"], "fail");
    assert!(check(&v, "node.ssh", "node-3")["hint"]
        .as_str()
        .unwrap()
        .contains("sshd"));
    assert_eq!(check(&v, "node.forwarding", "node-3")["status"], "skip");
    assert_eq!(
        check(&v, "dataplane.pod-to-pod", "node-1")["status"],
        "pass",
        "{v}"
    );
    assert_eq!(failures(&v).len(), 1, "{:?}", failures(&v));
    lab.exec_ok("node-3", "systemctl start ssh.service");
}

// ---- stand-in kubectl (no root, no lab) ----

/// A kubectl that records its arguments (one call per line) and answers like the API.
/// `fail` makes the call whose arguments contain it exit 1.
fn standin(dir: &Path, fail: Option<&str>, ready: bool) -> PathBuf {
    let nodes = serde_json::json!({"apiVersion": "v1", "kind": "NodeList", "items": [
        {"metadata": {"name": "w1"}, "spec": {"podCIDR": "10.200.1.0/24"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "w2"}, "spec": {"podCIDR": if ready {"10.200.2.0/24"} else {"10.200.1.0/24"}}, "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}},
    ]});
    let ds = serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": "kube-system"},
        "status": {"desiredNumberScheduled": 2, "numberReady": if ready {2} else {1}}});
    let pods = serde_json::json!({"kind": "PodList", "items": [
        {"metadata": {"name": "nginx-1"}, "spec": {"nodeName": "w1"}, "status": {"podIP": "10.200.1.5"}},
        {"metadata": {"name": "nginx-2"}, "spec": {"nodeName": "w2"}, "status": {"podIP": "10.200.2.5"}},
    ]});
    let svc = serde_json::json!({"kind": "Service", "spec": {"clusterIP": "10.32.0.77"}});
    for (f, v) in [
        ("nodes.json", &nodes),
        ("ds.json", &ds),
        ("pods.json", &pods),
        ("svc.json", &svc),
    ] {
        std::fs::write(dir.join(f), v.to_string()).unwrap();
    }
    let d = dir.display();
    let fail = fail.unwrap_or("@never@");
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> {d}/calls.log
case "$*" in *"{fail}"*) echo "stand-in: {fail} failed" >&2; exit 1 ;; esac
case "$*" in
  *"get nodes"*) cat {d}/nodes.json ;;
  *"get daemonset"*) cat {d}/ds.json ;;
  *"get pods"*) cat {d}/pods.json ;;
  *"get service"*) cat {d}/svc.json ;;
  *" exec "*curl*) echo '<title>Welcome to nginx!</title>' ;;
  *" exec "*nslookup*) echo 'Name: nginx'; echo 'Address 1: 10.32.0.77' ;;
  *) echo ok ;;
esac
"#
    );
    let p = dir.join("kubectl");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// A calico profile whose nodes do not answer SSH (port 1 on loopback): the node checks fail
/// fast, the cluster checks run against the stand-in.
fn calico_profile(dir: &Path) -> PathBuf {
    let p = dir.join("profile.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: standin\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  kubeconfig: {d}/kubeconfig\n  manageUnits: false\nnetworking:\n  provider: calico\nssh: {{ identityFile: {d}/nokey, knownHosts: {d}/known_hosts, connectTimeout: 2 }}\nnodes:\n  - {{ name: w1, address: 127.0.0.1, roles: [worker], podCIDR: 10.200.1.0/24, sshPort: 1, init: none }}\n  - {{ name: w2, address: 127.0.0.2, roles: [worker], podCIDR: 10.200.2.0/24, sshPort: 1, init: none }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    p
}

fn run_standin(dir: &Path, kubectl: &Path, extra: &[&str]) -> (Output, Value, Vec<String>) {
    let _ = std::fs::remove_file(dir.join("calls.log"));
    let o = labkit::netctl()
        .args(["verify", "--output", "json", "--no-dataplane", "-p"])
        .arg(calico_profile(dir))
        .args(extra)
        .env("NETCTL_KUBECTL", kubectl)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let calls = std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    (o, v, calls)
}

#[test]
fn cluster_checks_against_a_stand_in_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let k = standin(dir.path(), None, true);
    let (o, v, calls) = run_standin(dir.path(), &k, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "nodes are unreachable: {}",
        text(&o)
    );
    assert_eq!(check(&v, "node.ssh", "w1")["status"], "fail");
    for id in [
        "cluster.nodes-ready",
        "cluster.pod-cidrs",
        "cluster.provider-pods",
    ] {
        assert_eq!(check(&v, id, "cluster")["status"], "pass", "{v}");
    }
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with("get nodes --request-timeout=30s -o json")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c
            .ends_with("get daemonset calico-node -n kube-system --request-timeout=30s -o json")),
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|c| c.starts_with(&format!(
            "--kubeconfig {}/kubeconfig ",
            dir.path().display()
        ))),
        "{calls:?}"
    );

    let k = standin(dir.path(), None, false);
    let (_, v, _) = run_standin(dir.path(), &k, &[]);
    assert!(
        check(&v, "cluster.nodes-ready", "cluster")["detail"]
            .as_str()
            .unwrap()
            .contains("not Ready: w2"),
        "{v}"
    );
    assert!(
        check(&v, "cluster.pod-cidrs", "cluster")["detail"]
            .as_str()
            .unwrap()
            .contains("share podCIDR"),
        "{v}"
    );
    assert_eq!(
        check(&v, "cluster.provider-pods", "cluster")["detail"],
        "kube-system/calico-node: 1/2 pods ready"
    );
}

#[test]
fn smoke_test_against_a_stand_in_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let k = standin(dir.path(), None, true);
    let (_, v, calls) = run_standin(dir.path(), &k, &["--smoke"]);
    for id in [
        "smoke.deploy",
        "smoke.pod-to-service",
        "smoke.dns",
        "smoke.cleanup",
    ] {
        assert_eq!(check(&v, id, "cluster")["status"], "pass", "{v}");
    }
    assert_eq!(check(&v, "smoke.pod-to-pod", "w1")["status"], "pass");
    assert_eq!(check(&v, "smoke.pod-to-pod", "w2")["status"], "pass");
    let pos = |needle: &str| {
        calls
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {calls:?}"))
    };
    let ns = v["run_id"]
        .as_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    let ns = format!("netctl-smoke-{ns}");
    let apply = pos("apply -f smoke.yaml --request-timeout=30s");
    let rollout = pos(&format!("-n {ns} rollout status deployment/nginx"));
    let wait = pos("wait --for=condition=Ready pod/client");
    let curl_pod = pos("--request-timeout=30s exec client -- curl -s -m 5 http://10.200.2.5/");
    let curl_svc = pos("exec client -- curl -s -m 5 http://10.32.0.77/");
    let dns = pos(&format!(
        "exec client -- nslookup nginx.{ns}.svc.cluster.local"
    ));
    let delete = pos(&format!("delete namespace {ns} --ignore-not-found"));
    assert!(
        apply < rollout
            && rollout < wait
            && wait < curl_pod
            && curl_pod < curl_svc
            && curl_svc < dns
            && dns < delete,
        "{calls:?}"
    );

    // A failing step: the rest is skipped, and the namespace is still deleted.
    let k = standin(dir.path(), Some("rollout"), true);
    let (o, v, calls) = run_standin(dir.path(), &k, &["--smoke"]);
    assert_eq!(o.status.code(), Some(1));
    let d = check(&v, "smoke.deploy", "cluster");
    assert_eq!(d["status"], "fail");
    assert!(d["detail"].as_str().unwrap().contains("rollout"), "{d}");
    assert_eq!(check(&v, "smoke.dns", "cluster")["status"], "skip");
    assert!(
        calls
            .last()
            .unwrap()
            .contains("delete namespace netctl-smoke-"),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains(" exec ")), "{calls:?}");

    // Without a cluster API the smoke test and the cluster checks skip with the reason.
    let p = calico_profile(dir.path());
    let text_no_api = std::fs::read_to_string(&p).unwrap().replace(
        &format!("  kubeconfig: {}/kubeconfig\n", dir.path().display()),
        "",
    );
    std::fs::write(&p, text_no_api).unwrap();
    let o = labkit::netctl()
        .args([
            "verify",
            "--output",
            "json",
            "--no-dataplane",
            "--smoke",
            "-p",
        ])
        .arg(&p)
        .env("NETCTL_KUBECTL", &k)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (id, s) in [
        ("smoke.deploy", "cluster"),
        ("cluster.nodes-ready", "cluster"),
    ] {
        let c = check(&v, id, s);
        assert_eq!(c["status"], "skip");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains("kubernetes.kubeconfig"),
            "{c}"
        );
    }
}
