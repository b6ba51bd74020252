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
use crate::state::STATE_FILE;
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
        wait: std::time::Duration::from_secs(1),
        preflight: false,
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
    net.remember_state();
    setup(&net);
    let r = Run::fake(cluster(), net.clone(), kubectl);
    let result = block_on(run(&r, o));
    (result, net)
}

/// Every node was locked, then released after its last other step, and its session closed.
fn assert_released(net: &Net) {
    for n in NODES {
        let titles: Vec<String> = net.calls(n).into_iter().map(|c| c.title).collect();
        // A continuation takes the dead run's lock over ("lock" after its "unlock").
        let locked = titles
            .iter()
            .position(|t| t == "lock and gather" || t == "lock");
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

/// No node was switched (no file but the switch's record in state.json uploaded anywhere), and
/// none keeps a record.
fn assert_untouched(net: &Net) {
    for n in NODES {
        assert!(!switched(net, n), "{n} changed");
        assert_no_record(net, n);
    }
}

/// A file other than state.json (the switch's record) was written on `node`: a node
/// transaction ran, or a file was uploaded.
fn switched(net: &Net, node: &str) -> bool {
    net.calls(node).iter().any(|c| {
        c.title == "apply" || (c.title == "upload" && c.script.lines().any(|p| p != STATE_FILE))
    })
}

/// `node`'s state.json holds no switch progress record.
fn assert_no_record(net: &Net, node: &str) {
    if let Some(st) = net.state_of(node) {
        assert!(st.get("switch").is_none(), "{node} keeps a record: {st}");
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
            // The node's transaction (its record in state.json is written before).
            (node == "c1" && title == "apply").then(|| {
                failed(
                    1,
                    "netctl-txn-failed write /etc/cni/net.d/10-flannel.conflist\ndisk full",
                )
            })
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
    assert!(!switched(&net, "w1"), "w1 was switched after a failure");
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
    assert!(switched(&net, "c1") && node_changed(&net, "c1", "restore backups"));
    assert!(!switched(&net, "w1"), "w1 was switched after a failure");
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
        assert!(!switched(&net, n), "{n} was switched");
        assert_no_record(&net, n);
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

/// The switch run the seeded nodes record (killed; its locks name a dead process of this host).
const KILLED: &str = "20261129T000000Z-dead";

fn record_json(phase: &str) -> String {
    format!(
        r#"{{"run_id":"{KILLED}","from":{{"provider":"routes","backend":"host-gw"}},"to":{{"provider":"routes","backend":"vxlan"}},"phase":"{phase}","files":[["/etc/cni/net.d/10-bridge.conf","update"]]}}"#
    )
}

/// A node's state.json running `backend`, with a progress record and a finished one as given.
fn state_json(backend: &str, switch: Option<&str>, last: Option<&str>) -> String {
    let mut s = format!(
        r#"{{"provider":"routes","backend":"{backend}","profile_sha256":"x","run_id":"20261128T000000Z-init","files":{{}}"#
    );
    if let Some(p) = switch {
        s.push_str(&format!(r#","switch":{}"#, record_json(p)));
    }
    if let Some(p) = last {
        s.push_str(&format!(r#","last_switch":{}"#, record_json(p)));
    }
    s.push('}');
    s
}

/// The lock the killed run left: its process (this host, a start time no process has) is gone.
fn dead_lock() -> String {
    format!(
        "run={KILLED}\ncommand=switch\nhost={}\npid={}\npid_start=1\nsince=2026-11-29T00:00:00Z\n",
        crate::phase::lock::hostname(),
        std::process::id()
    )
}

/// Seed each node with (backend, progress record phase, finished record phase).
fn killed_run(net: &Net, nodes: [(&str, Option<&str>, Option<&str>); 3]) {
    let before = state_json("host-gw", None, None);
    for (n, (backend, switch, last)) in NODES.iter().zip(nodes) {
        let now = state_json(backend, switch, last);
        net.seed(n, &now, Some(&before), Some(&dead_lock()));
    }
}

/// Killed mid-wave: c1 switched, w1 and w2 still on the start with their records.
fn killed_mid_wave(net: &Net) {
    killed_run(
        net,
        [
            ("vxlan", Some("switched"), None),
            ("host-gw", Some("prepared"), None),
            ("host-gw", Some("prepared"), None),
        ],
    )
}

fn to_vxlan() -> SwitchOptions {
    opts(ep(ProviderKind::Routes, "vxlan"))
}

/// The files of `node` as the routes vxlan target writes them, as a gather reads them back.
fn target_files(node: &str) -> Vec<(String, u32, Vec<u8>)> {
    let c = cluster();
    let to = crate::migrate::retarget(&c, &ep(ProviderKind::Routes, "vxlan")).unwrap();
    let n = to.node(node).unwrap().clone();
    let plan = crate::provider::node_plan(&to, &n, &Default::default());
    let plan = crate::provider::edit::resolve(&plan, &Default::default()).unwrap();
    plan.files
        .iter()
        .map(|f| (f.path.clone(), f.mode, f.bytes().to_vec()))
        .collect()
}

/// Issue 17, 1: a `--resume` that failed rolled back only the nodes it switched itself, then
/// undid the prepare step everywhere: c1, switched by the killed run, kept vxlan routes with no
/// device. Now every node the switch changed is put back, whoever changed it.
#[test]
fn a_failed_resume_rolls_back_the_nodes_the_killed_run_switched() {
    let k = Arc::new(FakeKubectl::default());
    let mut o = to_vxlan();
    o.resume = true;
    let (r, net) = switch(o, Some(k), |net| {
        killed_mid_wave(net);
        // c1 holds the target's files: the killed run had switched it.
        net.seed_files("c1", target_files("c1"));
    });
    // The fake's node checks find nothing: w1's gate fails.
    let e = r.unwrap_err().to_string();
    assert!(e.contains("w1: gate failed"), "{e}");
    assert!(!switched(&net, "c1"), "c1 was switched again");
    for n in ["c1", "w1"] {
        assert!(node_changed(&net, n, "restore backups"), "{n} not put back");
    }
    for n in NODES {
        assert_no_record(&net, n);
        let titles: Vec<String> = net.calls(n).into_iter().map(|c| c.title).collect();
        let undo = titles.iter().position(|t| t.starts_with("undo prepare"));
        let restored = titles.iter().position(|t| t == "restore backups");
        assert!(undo.is_some(), "{n}: {titles:?}");
        assert!(
            restored.is_none_or(|r| r < undo.unwrap()),
            "{n}: the prepare step was undone before the node was back: {titles:?}"
        );
    }
    assert_released(&net);
}

/// Issue 17, 6: a killed `--resume` or `--rollback` left locks naming itself and records naming
/// the original run, and both refused forever. The continuation takes the switch's id: its
/// locks, records and backups name the run the records name.
#[test]
fn a_continuation_runs_under_the_switch_it_takes_over() {
    let k = Arc::new(FakeKubectl::default());
    let mut o = to_vxlan();
    o.resume = true;
    let (_, net) = switch(o, Some(k), killed_mid_wave);
    for n in NODES {
        let calls = net.calls(n);
        let lock = calls
            .iter()
            .find(|c| c.title == "lock")
            .unwrap_or_else(|| panic!("{n}: the dead run's lock was not taken over"));
        assert!(lock.script.contains(&format!("RUN={KILLED}")), "{n}");
        assert!(
            calls
                .iter()
                .filter(|c| c.script.contains("RUN="))
                .all(|c| c.script.contains(&format!("RUN={KILLED}"))),
            "{n}: a step named another run"
        );
    }
}

/// Issue 17, 7: killed in the prepare step, a switch left locks and no record, and after the
/// locks were removed by hand `--rollback` said "nothing to roll back" and left the prepare
/// step's device. Now every node holds the record first; `--rollback` undoes the prepare step
/// on each and changes no file.
#[test]
fn a_rollback_after_a_kill_in_the_prepare_step_undoes_it_everywhere() {
    let mut o = to_vxlan();
    o.rollback = true;
    let (r, net) = switch(o, None, |net| {
        killed_run(
            net,
            [
                ("host-gw", Some("prepared"), None),
                ("host-gw", Some("prepared"), None),
                ("host-gw", Some("prepared"), None),
            ],
        )
    });
    let report = r.unwrap();
    assert_ne!(report.result, "nothing to roll back");
    for n in NODES {
        assert!(
            node_changed(&net, n, "undo prepare of routes (vxlan)"),
            "{n}"
        );
        assert!(!node_changed(&net, n, "restore backups"), "{n}");
        assert!(!switched(&net, n), "{n}");
        assert_no_record(&net, n);
    }
    assert_released(&net);
}

/// Issue 17, 2: killed while the records were dropped, one node had none left and `--rollback`
/// left it on vxlan, isolated. A finished node's record is kept aside (`last_switch`), and the
/// rollback of its switch finds it.
#[test]
fn a_rollback_after_a_kill_in_finish_puts_back_the_node_already_finished() {
    let mut o = to_vxlan();
    o.rollback = true;
    let (r, net) = switch(o, None, |net| {
        killed_run(
            net,
            [
                ("vxlan", None, Some("switched")),
                ("vxlan", Some("switched"), None),
                ("vxlan", Some("switched"), None),
            ],
        )
    });
    r.unwrap();
    for n in NODES {
        assert!(
            node_changed(&net, n, "restore backups"),
            "{n} stays on vxlan"
        );
        assert_no_record(&net, n);
    }
}

/// `switch --dry-run --rollback` printed "rolled back, verify failed" and exited 1 while
/// changing nothing. It says what each node would get and changes nothing.
#[test]
fn a_dry_run_rollback_plans_per_node() {
    let net = Net::default();
    killed_run(
        &net,
        [
            ("vxlan", Some("switched"), None),
            ("host-gw", Some("prepared"), None),
            ("host-gw", None, None),
        ],
    );
    let mut r = Run::fake(cluster(), net.clone(), None);
    r.dry_run = true;
    let mut o = to_vxlan();
    o.rollback = true;
    let report = block_on(run(&r, o)).unwrap();
    assert_eq!(report.result, "planned");
    assert_eq!(report.error, None);
    let steps = report.steps.join("\n");
    assert!(steps.contains("c1: put back 1 file(s)"), "{steps}");
    assert!(
        steps.contains("w1: undo the prepare step, drop the record"),
        "{steps}"
    );
    for n in NODES {
        assert!(!node_changed(&net, n, "restore backups"), "{n}");
        assert!(!node_changed(&net, n, "drop the switch record"), "{n}");
    }
}

/// `--resume` with another target than the interrupted run's was accepted and failed half way.
#[test]
fn a_resume_to_another_target_is_refused() {
    let mut o = to_flannel();
    o.resume = true;
    let (r, net) = switch(o, None, killed_mid_wave);
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(
        e.to_string()
            .contains("--networking routes --backend vxlan"),
        "{e}"
    );
    for n in NODES {
        assert!(!switched(&net, n), "{n}");
    }
}

/// Killed before its first record (only locks left): `--rollback` alone clears them.
#[test]
fn a_rollback_with_only_a_dead_switchs_locks_releases_them() {
    let mut o = to_vxlan();
    o.rollback = true;
    let (r, net) = switch(o, None, |net| {
        for n in NODES {
            net.seed(
                n,
                &state_json("host-gw", None, None),
                None,
                Some(&dead_lock()),
            );
        }
    });
    let report = r.unwrap();
    assert_eq!(report.result, "nothing to roll back");
    for n in NODES {
        let unlocked = net
            .calls(n)
            .into_iter()
            .any(|c| c.title == "unlock" && c.script.contains(&format!("RUN={KILLED}")));
        assert!(unlocked, "{n}: the dead switch's lock stays");
    }
}

/// Issue 15, 4: pods kept their address from the old network until someone recreated them. The
/// pods the drain leaves (DaemonSet pods) are deleted once the node is Ready on the new network,
/// so their controllers make them again there; host-network pods and static pods' mirrors stay.
#[test]
fn the_pods_a_drain_leaves_are_recreated_after_the_nodes_switch() {
    let k = Arc::new(FakeKubectl::default());
    k.on(|a| {
        (a.first().map(String::as_str) == Some("get") && a.iter().any(|x| x == "spec.nodeName=c1"))
            .then(|| {
                Ok(r#"{"items":[
                {"metadata":{"namespace":"kube-system","name":"ds-abc"},"spec":{}},
                {"metadata":{"namespace":"kube-system","name":"proxy-c1"},"spec":{"hostNetwork":true}},
                {"metadata":{"namespace":"kube-system","name":"etcd-c1","annotations":{"kubernetes.io/config.mirror":"x"}},"spec":{}}
            ]}"#
                .to_string())
            })
    });
    let (_, _net) = switch(to_flannel(), Some(k.clone()), |_| {});
    let calls = k.calls();
    let at = |want: &str| calls.iter().position(|c| c.starts_with(want));
    let deleted = at("delete pod -n kube-system ds-abc --wait=false").expect("ds-abc recreated");
    assert!(
        at("wait --for=condition=Ready node/c1").unwrap() < deleted,
        "{calls:?}"
    );
    assert!(deleted < at("uncordon c1").unwrap(), "{calls:?}");
    for kept in ["proxy-c1", "etcd-c1"] {
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("delete pod") && c.contains(kept)),
            "{kept}: {calls:?}"
        );
    }
}

/// Issue 17 (found by the fault matrix): a rollback killed after it had put a node's files back
/// left that node's record saying `switched`, and `--resume` skipped it, so the last gate found
/// its files drifted and rolled everything back. A node is done only when its files are the
/// target's: this one is switched again.
#[test]
fn a_resume_after_a_killed_rollback_switches_again_the_nodes_it_had_put_back() {
    let k = Arc::new(FakeKubectl::default());
    let mut o = to_vxlan();
    o.resume = true;
    let (_, net) = switch(o, Some(k), |net| {
        killed_run(
            net,
            [
                ("vxlan", Some("switched"), None),
                ("vxlan", Some("switched"), None),
                ("vxlan", Some("switched"), None),
            ],
        );
        // c1 and w1 still hold the target's files; w2's were put back (no file found).
        net.seed_files("c1", target_files("c1"));
        net.seed_files("w1", target_files("w1"));
    });
    assert!(
        switched(&net, "w2"),
        "w2 was skipped: {:?}",
        net.calls("w2")
    );
    assert!(!switched(&net, "c1") && !switched(&net, "w1"));
}

/// Answers preflight's scripts as healthy nodes do: every fact fine, every listener up, every
/// probe answered, every listener stopped.
fn healthy_preflight(net: &Net) {
    use crate::remote::fake::ok;
    net.on(|node, title, script| match title {
        // Round 1: the facts, then the agent's listeners (the `set --` words of its script).
        "converse" => {
            let addr = match node {
                "c1" => "10.0.0.10",
                "w1" => "10.0.0.11",
                _ => "10.0.0.12",
            };
            let specs: String = script
                .lines()
                .filter_map(|l| l.strip_prefix("set -- "))
                .next_back()
                .map(|a| a.split_whitespace().map(|w| format!("@@listen {} ok\n", w.trim_matches('\''))).collect())
                .unwrap_or_default();
            let facts = format!("@@clock {}\n@@addr 1 lo 127.0.0.1/8 host\n@@addr 2 eth0 {addr}/24 global\n@@link eth0 1500\n@@rp all 0\n@@rp eth0 0\n@@forward 1\n@@ctcount 1\n@@ctmax 1000\n@@bin bridge\n@@bin host-local\n@@bin loopback\n@@python 1\n@@mod br_netfilter loaded\n@@mod vxlan loaded\n@@done\n{specs}@@ready\n",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64());
            Some(ok(&facts))
        }
        // Round 2: every probe asked passes.
        "converse request" => {
            let lines: String = script
                .lines()
                .take_while(|l| *l != "end")
                .map(|p| format!("@@probe {p} ok 1\n"))
                .collect();
            Some(ok(&format!("{lines}end\n")))
        }
        _ => None,
    });
}

/// A preflight that fails (here: nodes that answer none of its scripts) stops the switch before
/// its question and any change, and says how to see every check and how to go on anyway.
#[test]
fn a_failed_preflight_stops_the_switch_before_any_change() {
    let mut o = to_vxlan();
    o.preflight = true;
    let (r, net) = switch(o, None, |_| {});
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("preflight: "), "{msg}");
    assert!(
        msg.contains("nothing was changed") && msg.contains("--skip-preflight"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), 1);
    assert_released(&net);
    assert_untouched(&net);
}

/// A passing preflight lets the switch go on (to its next phase: here kubectl is missing), and
/// every node's agent was started, asked for its probes once (none failed) and ended, in that order.
#[test]
fn a_passing_preflight_lets_the_switch_go_on_and_stops_its_listeners() {
    let mut o = to_vxlan();
    o.preflight = true;
    let (r, net) = switch(o, None, healthy_preflight);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("kubectl is needed"), "{msg}");
    for n in NODES {
        let calls = net.calls(n);
        let titles: Vec<&str> = calls.iter().map(|c| c.title.as_str()).collect();
        let at = |t: &str| titles.iter().position(|x| *x == t);
        let (start, asked, end) = (at("converse"), at("converse request"), at("converse end"));
        assert!(
            start.is_some() && asked.is_some() && end.is_some(),
            "{n}: {titles:?}"
        );
        assert!(start < asked && asked < end, "{n}: {titles:?}");
        assert_eq!(
            titles.iter().rposition(|x| *x == "converse request"),
            asked,
            "{n}: one probe round, none failed: {titles:?}"
        );
    }
    assert_released(&net);
    assert_untouched(&net);
}
