//! The kubectl layer of init and switch, against a stand-in kubectl that records its arguments
//! (tests/standin/kubectl): no API server can run here. The nodes are real lab nodes. Every path
//! tested only this way is listed in docs/verify.md.

mod labkit;

// `--skip-preflight` on init and switch here: these profiles name providers whose daemons the lab
// cannot run (flanneld without a default route to pick an interface from, calico without ipip,
// plugins in private directories), which preflight rightly refuses; tests/preflight.rs tests it.

use std::path::{Path, PathBuf};

use labkit::{can_run, text, Lab};

fn standin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/kubectl")
}

fn run(lab: &Lab, dir: &Path, args: &[&str], profile: &Path) -> std::process::Output {
    labkit::netctl()
        .args(args)
        .arg("-p")
        .arg(profile)
        .env("NETCTL_KUBECTL", standin())
        .env("NETCTL_STANDIN_DIR", dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", lab.name))
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn flannel_daemonset_is_applied_with_kubectl() {
    if !can_run("flannel_daemonset_is_applied_with_kubectl") {
        return;
    }
    let lab = Lab::up("kc-fl", "netns", 2, 41);
    let dir = tempfile::tempdir().unwrap();
    let p = lab.profile_variant("flannel-ds", |v| {
        v["networking"]["provider"] = "flannel".into();
        v["networking"]["flannel"] =
            serde_yaml::from_str("{deploy: daemonset, backend: vxlan}").unwrap();
        v["kubernetes"]["kubeconfig"] = "/etc/netctl-test/kubeconfig".into();
    });
    let o = run(
        &lab,
        dir.path(),
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &p,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(calls(dir.path()), ["apply -f kube-flannel.yaml"]);
    let applied = std::fs::read_to_string(dir.path().join("applied/kube-flannel.yaml")).unwrap();
    assert!(applied.contains("kind: DaemonSet") && applied.contains("name: kube-flannel-ds"));
    // A profile without a cluster API skips the step and says why.
    let q = lab.profile_variant("flannel-ds-noapi", |v| {
        v["networking"]["provider"] = "flannel".into();
        v["networking"]["flannel"] = serde_yaml::from_str("{deploy: daemonset}").unwrap();
    });
    let dir2 = tempfile::tempdir().unwrap();
    let o = run(
        &lab,
        dir2.path(),
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &q,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(calls(dir2.path()).is_empty());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no cluster API configured"),
        "{}",
        text(&o)
    );
}

fn drain_wait_uncordon(nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| {
            let mut calls = vec![
                format!("drain {n} --ignore-daemonsets --delete-emptydir-data"),
                format!("wait --for=condition=Ready node/{n} --timeout=300s"),
                format!("get pods --all-namespaces --field-selector spec.nodeName={n} -o json"),
            ];
            // `pods_on` puts a DaemonSet's pod (recreated) and a host-network pod (kept) there.
            if *n == "node-1" {
                calls.push("delete pod -n kube-system ds-node-1 --wait=false".into());
            }
            calls.push(format!("uncordon {n}"));
            calls
        })
        .collect()
}

/// The stand-in's answer to `get pods` on each node: node-1 runs a DaemonSet's pod on the pod
/// network and a host-network one, node-2 none.
fn pods_on(dir: &std::path::Path) {
    for (node, items) in [
        (
            "node-1",
            r#"[{"metadata":{"namespace":"kube-system","name":"ds-node-1"},"spec":{"nodeName":"node-1"}},
                {"metadata":{"namespace":"kube-system","name":"proxy-node-1"},"spec":{"nodeName":"node-1","hostNetwork":true}}]"#,
        ),
        ("node-2", "[]"),
    ] {
        let file =
            format!("get_pods_--all-namespaces_--field-selector_spec.nodeName={node}_-o_json.json");
        std::fs::write(
            dir.join(file),
            format!(r#"{{"apiVersion":"v1","kind":"PodList","items":{items}}}"#),
        )
        .unwrap();
    }
}

/// Each node is drained, waited for and uncordoned in its wave; a provider change applies the
/// new provider's objects first and deletes the old provider's last; a switch that fails its gate
/// (calico cannot run on the lab) deletes the objects it applied again while rolling back.
#[test]
fn switch_drives_kubectl_in_order() {
    if !can_run("switch_drives_kubectl_in_order") {
        return;
    }
    let lab = Lab::up("kc-sw", "netns", 2, 42);
    let p = lab.profile_variant("api", |v| {
        v["kubernetes"]["kubeconfig"] = "/etc/netctl-test/kubeconfig".into();
    });
    let dir = tempfile::tempdir().unwrap();
    pods_on(dir.path());
    let reset = || {
        let _ = std::fs::remove_file(dir.path().join("calls"));
    };
    let o = run(
        &lab,
        dir.path(),
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &p,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        calls(dir.path()).is_empty(),
        "routes has no cluster objects"
    );

    // Same provider, new backend: nodes only.
    let o = run(
        &lab,
        dir.path(),
        &[
            "switch",
            "--yes",
            "--skip-preflight",
            "--networking",
            "routes",
            "--backend",
            "vxlan",
        ],
        &p,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        calls(dir.path()),
        drain_wait_uncordon(&["node-1", "node-2"])
    );

    // From calico (as --from says): its objects are deleted after every node switched.
    reset();
    let o = run(
        &lab,
        dir.path(),
        &[
            "switch",
            "--yes",
            "--skip-preflight",
            "--from",
            "calico",
            "--networking",
            "routes",
            "--backend",
            "host-gw",
        ],
        &p,
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut want = drain_wait_uncordon(&["node-1", "node-2"]);
    want.push("delete -k calico --ignore-not-found".into());
    assert_eq!(calls(dir.path()), want);
    assert!(lab
        .exec_ok("node-1", "ip -4 route show proto 211")
        .contains("10.200.1.0/24"));

    // To calico: applied first; node-1's gate fails (no calico-node here to write its CNI config);
    // rolled back, and calico's objects deleted again.
    reset();
    let before = lab.exec_ok(
        "node-1",
        "cat /var/lib/netctl/state.json; ip -4 route show proto 211",
    );
    let o = run(
        &lab,
        dir.path(),
        &[
            "switch",
            "--yes",
            "--skip-preflight",
            "--networking",
            "calico",
        ],
        &p,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("node-1: gate failed: node.cni-config"),
        "{}",
        text(&o)
    );
    let mut want = vec!["apply -k calico".to_string()];
    want.extend(drain_wait_uncordon(&["node-1"]));
    want.push("delete -k calico --ignore-not-found".into());
    assert_eq!(calls(dir.path()), want);
    assert!(dir
        .path()
        .join("applied/calico/kustomization.yaml")
        .exists());
    assert_eq!(
        before,
        lab.exec_ok(
            "node-1",
            "cat /var/lib/netctl/state.json; ip -4 route show proto 211"
        )
    );
}

/// A node that does not become Ready fails its wave: the switch rolls back and says so.
#[test]
fn a_node_not_ready_rolls_the_switch_back() {
    if !can_run("a_node_not_ready_rolls_the_switch_back") {
        return;
    }
    let lab = Lab::up("kc-nr", "netns", 2, 43);
    let p = lab.profile_variant("api", |v| {
        v["kubernetes"]["kubeconfig"] = "/etc/netctl-test/kubeconfig".into();
    });
    let dir = tempfile::tempdir().unwrap();
    assert!(run(
        &lab,
        dir.path(),
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &p
    )
    .status
    .success());
    let before = lab.exec_ok(
        "node-1",
        "cat /var/lib/netctl/state.json; ip -4 route show proto 211",
    );
    std::fs::write(
        dir.path().join("fail-on"),
        "wait --for=condition=Ready node/node-1",
    )
    .unwrap();
    let o = run(
        &lab,
        dir.path(),
        &[
            "switch",
            "--yes",
            "--skip-preflight",
            "--networking",
            "routes",
            "--backend",
            "vxlan",
        ],
        &p,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("node-1: not ready after the switch"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("back on routes (host-gw)"),
        "{}",
        text(&o)
    );
    assert_eq!(
        before,
        lab.exec_ok(
            "node-1",
            "cat /var/lib/netctl/state.json; ip -4 route show proto 211"
        )
    );
}

/// `kubernetes.kubectlOn`: kubectl runs on that node over SSH, with the kubeconfig path read
/// there and the manifests carried along; nothing runs locally, and a failure names the node.
/// (The node's kubectl is the stand-in, installed in that systemd node's own /usr/local/bin.)
#[test]
fn kubectl_runs_on_the_node_kubectl_on_names() {
    if !can_run("kubectl_runs_on_the_node_kubectl_on_names") {
        return;
    }
    let lab = Lab::up("kc-on", "systemd", 2, 44);
    let standin_text = std::fs::read_to_string(standin()).unwrap();
    let nodes = serde_json::json!({"apiVersion": "v1", "kind": "NodeList", "items": [
        {"metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.200.0.0/24"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "node-2"}, "spec": {"podCIDR": "10.200.1.0/24"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    ]});
    lab.exec_ok(
        "node-1",
        &format!(
            "mkdir -p /root/standin && cat > /root/standin/kubectl <<'STANDIN_END'\n{standin_text}STANDIN_END\n\
             chmod 755 /root/standin/kubectl\n\
             printf '%s' '{nodes}' > /root/standin/get_nodes_--request-timeout=30s_-o_json.json\n\
             printf '#!/bin/sh\\necho \"$*\" >> /root/standin/argv\\nNETCTL_STANDIN_DIR=/root/standin exec /root/standin/kubectl \"$@\"\\n' > /usr/local/bin/kubectl\n\
             chmod 755 /usr/local/bin/kubectl"
        ),
    );
    let p = lab.profile_variant("kubectl-on", |v| {
        v["networking"]["provider"] = "flannel".into();
        v["networking"]["flannel"] =
            serde_yaml::from_str("{deploy: daemonset, backend: vxlan}").unwrap();
        v["kubernetes"]["kubectlOn"] = "node-1".into();
        v["kubernetes"]["kubeconfig"] = "/etc/kubernetes/admin.kubeconfig".into();
    });
    // Nothing may run locally: a local kubectl would be this missing file.
    let local = |args: &[&str]| {
        labkit::netctl()
            .args(args)
            .arg("-p")
            .arg(&p)
            .env("NETCTL_KUBECTL", "/nonexistent/kubectl")
            .output()
            .unwrap()
    };
    let o = local(&["init", "--yes", "--skip-preflight", "--no-verify"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        lab.exec_ok("node-1", "cat /root/standin/argv"),
        "--kubeconfig /etc/kubernetes/admin.kubeconfig apply -f kube-flannel.yaml\n"
    );
    let applied = lab.exec_ok("node-1", "cat /root/standin/applied/kube-flannel.yaml");
    assert!(applied.contains("kind: DaemonSet") && applied.contains("name: kube-flannel-ds"));
    assert_eq!(
        lab.exec_ok("node-1", "ls -d /tmp/netctl-kubectl.* 2>/dev/null || true"),
        "",
        "the call's temporary directory is removed"
    );
    assert_eq!(
        lab.exec_ok("node-2", "ls /root/standin 2>/dev/null || true"),
        ""
    );

    // verify's cluster checks ask the same node.
    let o = local(&["verify", "--no-dataplane", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ready = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cluster.nodes-ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "pass", "{}", text(&o));

    // A failing kubectl on the node: reported with the node's name and kubectl's own words.
    lab.exec_ok("node-1", "echo 'apply -f' > /root/standin/fail-on");
    let o = local(&["init", "--yes", "--skip-preflight", "--no-verify"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("apply -f kube-flannel.yaml (on node-1): exit 1")
            && text(&o).contains("stand-in told to fail"),
        "{}",
        text(&o)
    );
}
