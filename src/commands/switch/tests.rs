//! `switch` driven through the fakes (nodes: `remote::fake`, kubectl: `kubectl::fake`): the order
//! of its phases, and on every error path after the nodes are locked, that each lock is released
//! and every cluster object the run applied is deleted again.

use std::path::Path;
use std::sync::Arc;

use super::{run, SwitchOptions};
use crate::kubectl::fake::Fake as FakeKubectl;
use crate::migrate::Endpoint;
use crate::profile::ProviderKind;
use crate::remote::fake::{failed, Net};
use crate::run::Run;
use crate::Error;

const NODES: [&str; 3] = ["c1", "w1", "w2"];

fn cluster() -> Arc<crate::profile::Cluster> {
    let text = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  kubeconfig: /nonexistent/kubeconfig\nnetworking:\n  provider: routes\nnodes:\n  - {name: c1, address: 10.0.0.10, roles: [controller]}\n  - {name: w1, address: 10.0.0.11}\n  - {name: w2, address: 10.0.0.12}\n";
    Arc::new(crate::profile::load_str(text, Path::new("t.yaml")).unwrap())
}

fn ep(provider: ProviderKind, backend: &str) -> Endpoint {
    Endpoint::from_parts(provider.as_str(), backend).unwrap()
}

fn opts(to: Endpoint) -> SwitchOptions {
    SwitchOptions {
        to,
        from: Some(ep(ProviderKind::Routes, "host-gw")),
        max_unavailable: 1,
        yes: true,
        resume: false,
        rollback: false,
        no_rollback: false,
    }
}

fn to_flannel() -> SwitchOptions {
    opts(ep(ProviderKind::Flannel, "vxlan"))
}

/// Run a switch on fresh fake nodes; returns its result and the fakes to judge.
fn switch(
    o: SwitchOptions,
    kubectl: Option<Arc<FakeKubectl>>,
    setup: impl FnOnce(&Net),
) -> (Result<super::SwitchReport, Error>, Net) {
    let net = Net::default();
    setup(&net);
    let r = Run::fake(cluster(), net.clone(), kubectl);
    let result = block_on(run(&r, o));
    (result, net)
}

/// Every node was locked, then released after its last other step, and its session closed.
fn assert_released(net: &Net) {
    for n in NODES {
        let titles: Vec<String> = net.calls(n).into_iter().map(|c| c.title).collect();
        let locked = titles.iter().position(|t| t == "lock and gather");
        let unlocked = titles.iter().rposition(|t| t == "unlock");
        assert!(locked.is_some(), "{n} was never locked: {titles:?}");
        assert!(
            unlocked.is_some_and(|u| u > locked.unwrap() && u + 2 == titles.len()),
            "{n}: the unlock is not the last step before close: {titles:?}"
        );
        assert_eq!(titles.last().map(String::as_str), Some("close"), "{n}");
    }
}

/// Every object an `apply` put in the cluster was deleted again after it.
fn assert_no_objects_left(k: &FakeKubectl) {
    let calls = k.calls();
    let applied = calls.iter().rposition(|c| c.starts_with("apply"));
    if let Some(a) = applied {
        assert!(
            calls[a..].iter().any(|c| c.starts_with("delete")),
            "applied objects were not deleted: {calls:?}"
        );
    }
}

/// No node was switched (no file uploaded anywhere).
fn assert_untouched(net: &Net) {
    for n in NODES {
        assert!(!node_changed(net, n, "upload"), "{n} changed");
    }
}

/// Run `f` to the end on a runtime of its own (the switch's SSH work, here the fakes').
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn node_changed(net: &Net, node: &str, title: &str) -> bool {
    net.calls(node).iter().any(|c| c.title == title)
}

#[test]
fn kubectl_missing_fails_before_any_change_and_unlocks() {
    let (r, net) = switch(to_flannel(), None, |_| {});
    let e = r.unwrap_err();
    assert!(e.to_string().contains("kubectl is needed"), "{e}");
    assert_eq!(e.exit_code(), 1);
    assert_released(&net);
    assert_untouched(&net);
}

#[test]
fn a_failed_cluster_object_is_deleted_again_and_nodes_are_untouched() {
    let k = Arc::new(FakeKubectl::default());
    k.fail("apply");
    let (r, net) = switch(to_flannel(), Some(k.clone()), |_| {});
    let e = r.unwrap_err().to_string();
    assert!(e.contains("switch to flannel (vxlan) failed"), "{e}");
    assert!(
        e.contains("back on routes (host-gw) (no node had switched yet)"),
        "{e}"
    );
    assert_no_objects_left(&k);
    assert!(
        k.calls().iter().any(|c| c.starts_with("delete")),
        "{:?}",
        k.calls()
    );
    assert_released(&net);
    assert_untouched(&net);
}

#[test]
fn a_node_that_fails_mid_switch_is_rolled_back_and_the_objects_deleted() {
    let k = Arc::new(FakeKubectl::default());
    let (r, net) = switch(to_flannel(), Some(k.clone()), |net| {
        net.on(|node, title, _| {
            (node == "c1" && title == "upload").then(|| failed(1, "disk full"))
        });
    });
    let e = r.unwrap_err().to_string();
    assert!(e.contains("disk full"), "{e}");
    // Waves are in profile order, one node each: c1 is first.
    assert!(
        node_changed(&net, "c1", "restore backups"),
        "{:?}",
        net.calls("c1")
    );
    assert!(
        !node_changed(&net, "w1", "upload"),
        "w1 was switched after a failure"
    );
    assert!(
        k.calls().iter().any(|c| c.starts_with("apply")),
        "{:?}",
        k.calls()
    );
    assert_no_objects_left(&k);
    assert_released(&net);
}

#[test]
fn a_failed_gate_rolls_the_node_back() {
    // The fake's node checks find nothing (no forwarding, no state): the gate after c1's switch
    // fails.
    let k = Arc::new(FakeKubectl::default());
    let (r, net) = switch(to_flannel(), Some(k.clone()), |_| {});
    let e = r.unwrap_err().to_string();
    assert!(e.contains("c1: gate failed"), "{e}");
    assert!(node_changed(&net, "c1", "upload") && node_changed(&net, "c1", "restore backups"));
    assert!(
        !node_changed(&net, "w1", "upload"),
        "w1 was switched after a failure"
    );
    let calls = k.calls();
    assert!(calls.iter().any(|c| c == "uncordon c1"), "{calls:?}");
    assert_no_objects_left(&k);
    assert_released(&net);
}

#[test]
fn a_node_not_ready_after_its_switch_is_rolled_back() {
    let k = Arc::new(FakeKubectl::default());
    k.fail("wait");
    let (r, net) = switch(to_flannel(), Some(k.clone()), |_| {});
    let e = r.unwrap_err().to_string();
    assert!(e.contains("not ready after the switch"), "{e}");
    assert!(
        e.contains("rolled back: c1") || e.contains("rollback incomplete"),
        "{e}"
    );
    assert!(node_changed(&net, "c1", "restore backups"));
    // drain came before the wait, and uncordon never (the node was not ready).
    let calls = k.calls();
    assert!(calls.iter().any(|c| c.starts_with("drain c1")), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.starts_with("uncordon")),
        "{calls:?}"
    );
    assert_no_objects_left(&k);
    assert_released(&net);
}

#[test]
fn a_node_that_cannot_prepare_undoes_every_node_prepared() {
    // routes host-gw -> vxlan: every node learns VXLAN first (prepare), no cluster objects.
    let k = Arc::new(FakeKubectl::default());
    let (r, net) = switch(opts(ep(ProviderKind::Routes, "vxlan")), Some(k), |net| {
        net.on(|node, title, _| {
            (node == "w2" && title.starts_with("prepare")).then(|| failed(2, "no vxlan module"))
        });
    });
    let e = r.unwrap_err().to_string();
    assert!(e.contains("no vxlan module"), "{e}");
    for n in NODES {
        assert!(
            node_changed(&net, n, "undo prepare of routes (vxlan)"),
            "{n}: {:?}",
            net.calls(n)
        );
        assert!(!node_changed(&net, n, "upload"), "{n} was switched");
    }
    assert_released(&net);
}

#[test]
fn no_rollback_leaves_the_nodes_in_place_but_still_unlocks() {
    let k = Arc::new(FakeKubectl::default());
    let mut o = to_flannel();
    o.no_rollback = true;
    let (r, net) = switch(o, Some(k.clone()), |_| {});
    let e = r.unwrap_err().to_string();
    assert!(e.contains("--no-rollback"), "{e}");
    assert!(!node_changed(&net, "c1", "restore backups"));
    assert!(!k.calls().iter().any(|c| c.starts_with("delete")));
    assert_released(&net);
}

#[test]
fn nodes_that_disagree_are_refused_with_exit_3_and_unlocked() {
    let mut o = to_flannel();
    o.from = None;
    let (r, net) = switch(o, None, |_| {});
    let e = r.unwrap_err();
    assert!(e.to_string().contains("do not agree"), "{e}");
    assert_eq!(e.exit_code(), 3);
    assert_released(&net);
}

#[test]
fn a_dry_run_plans_without_locking() {
    let net = Net::default();
    let mut r = Run::fake(cluster(), net.clone(), None);
    r.dry_run = true;
    let report = block_on(run(&r, to_flannel())).unwrap();
    assert_eq!(report.result, "planned");
    for n in NODES {
        let titles: Vec<String> = net.calls(n).into_iter().map(|c| c.title).collect();
        assert!(
            !titles.iter().any(|t| t.contains("lock")),
            "{n}: {titles:?}"
        );
    }
}

/// Issue 13: `switch --networking flannel` (flanneld as a systemd unit) planned flanneld without
/// its certificates. The run's inputs reach the target's plans: the dry run writes them.
#[test]
fn a_switch_to_flanneld_as_a_unit_writes_the_runs_certificates() {
    let mut c = (*cluster()).clone();
    c.profile.networking.flannel.deploy = crate::profile::FlannelDeploy::Systemd;
    // A worker first: the plan's description lists the first node's files.
    c.profile.nodes.rotate_left(1);
    c.nodes.rotate_left(1);
    let node_cert = |n: &str| crate::certs::NodeCert {
        cert_pem: format!("cert of {n}"),
        key_pem: format!("key of {n}"),
    };
    let pki = crate::certs::Pki {
        dir: "/nonexistent".into(),
        ca_pem: "ca".into(),
        server_ca_pem: "ca".into(),
        token: None,
        nodes: ["w1", "w2"].map(|n| (n.to_string(), node_cert(n))).into(),
        notes: vec![],
    };
    let net = Net::default();
    let mut r = Run::fake(Arc::new(c), net, None);
    r.inputs = Arc::new(crate::provider::Inputs {
        pki: Some(Arc::new(pki)),
        ..Default::default()
    });
    r.dry_run = true;
    let report = block_on(run(&r, to_flannel())).unwrap();
    assert_eq!(report.result, "planned");
    assert!(report.steps.contains(&"  per node (e.g. w1):".to_string()));
    for f in ["ca.crt", "flanneld.crt", "flanneld.key"] {
        let want = format!("    write /etc/kube-flannel/{f}");
        assert!(report.steps.contains(&want), "{want}: {:#?}", report.steps);
    }
}
