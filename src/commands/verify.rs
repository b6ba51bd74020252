//! `netctl verify` (and the end of `netctl init`): per node, in a sliding window, connect and run
//! the node checks in one round trip; then the cluster checks (kubectl) alongside the data plane
//! (test pods, pings), then the optional smoke test. Test pods are torn down whatever happens,
//! including Ctrl-C; nothing else on a node is changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::fleet;
use crate::printer::Progress;
use crate::profile::{Cluster, Node};
use crate::provider;
use crate::remote::Remote;
use crate::run::Run;
use crate::verify::dataplane::{self, Participant, Ready, Registry};
use crate::verify::{cluster as cluster_checks, node, smoke, Check, Options, Report};

struct NodeResult {
    checks: Vec<Check>,
    remote: Option<Arc<Remote>>,
    /// Test pods up, waiting for the pings.
    ready: Option<Ready>,
    refused: bool,
}

/// What the per-node stage needs besides the node.
#[derive(Clone)]
struct Stage {
    /// The network checked: the profile's, or the one a switch moved to.
    cluster: Arc<Cluster>,
    /// Reaches the nodes; its inputs (certificates, binaries) make the plans checked the ones
    /// init applies.
    run: Run,
    /// Make test pods (the data plane), or skip it for this reason.
    dataplane: Result<(), String>,
    suffix: String,
    registry: Registry,
    run_id: String,
    /// Nodes whose lock this run took (released at the end, also after Ctrl-C).
    locked: Arc<std::sync::Mutex<Vec<Arc<Remote>>>>,
    /// Sessions the calling command holds open (switch's last gate): used, not reconnected.
    open: Arc<BTreeMap<String, Arc<Remote>>>,
}

/// connect -> node checks (one script) -> test pods, for one node; nodes do not wait for each
/// other until the pings.
async fn node_stage(st: Stage, node: Node, line: crate::printer::NodeLine) -> NodeResult {
    let cluster = st.cluster.clone();
    let start = Instant::now();
    line.phase("connect");
    // Verify changes nothing but its test pods: sessions are not dry-run, but node checks only
    // ever `probe` (read), and the data plane's changes are the pods it removes again.
    let opened = match st.open.get(&node.name) {
        Some(r) => Ok(r.clone()),
        None => st.run.connect(&node).await.map(Arc::new),
    };
    let remote = match opened {
        Ok(r) => r,
        Err(e) => {
            line.done("unreachable");
            let mut checks = vec![crate::verify::unreachable(&node, &e).took(start)];
            checks.extend(
                crate::verify::node_script_ids()
                    .map(|id| Check::skip(id, &node.name, "node unreachable (node.ssh)")),
            );
            checks.extend(dataplane::skip_all(
                &node.name,
                "node unreachable (node.ssh)",
            ));
            return NodeResult {
                checks,
                remote: None,
                ready: None,
                refused: e.is_refusal(),
            };
        }
    };
    let mut checks = vec![Check::pass(
        "node.ssh",
        &node.name,
        format!("connected to {}:{}", node.address, node.ssh_port),
    )
    .took(start)];
    // The test pods change the node while they exist: that takes the node's lock.
    let mut dataplane = st.dataplane.clone();
    if dataplane.is_ok() {
        line.phase("lock");
        let holder = crate::phase::lock::Holder::me(&st.run_id, "verify");
        match crate::phase::lock::lock(&remote, &holder).await {
            Ok(true) => st
                .locked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(remote.clone()),
            Ok(false) => {}
            Err(e) => {
                let refused = e.is_refusal();
                checks.push(Check::fail(
                    "node.lock",
                    &node.name,
                    e.to_string(),
                    "another netctl run is changing this node: verify again when it is done",
                ));
                dataplane = Err("the node is locked by another run (node.lock)".into());
                if !refused {
                    dataplane = Err(format!("the node lock could not be taken: {e}"));
                }
            }
        }
    }
    line.phase("node checks");
    let start = Instant::now();
    let plan = provider::node_plan(&cluster, &node, &st.run.inputs);
    let facts = match remote.probe(&node::script(&cluster, &node, &plan)).await {
        Ok(out) => {
            let f = node::parse(&String::from_utf8_lossy(&out.stdout));
            checks.extend(
                node::checks(&cluster, &node, &plan, &f)
                    .into_iter()
                    .map(|c| c.took(start)),
            );
            if crate::provider::flannel::needs_certs(&cluster, &node) {
                checks.push(cert_check(&remote, &node.name).await.took(start));
            }
            Some(f)
        }
        Err(e) => {
            checks.extend(crate::verify::node_script_ids().map(|id| {
                Check::fail(
                    id,
                    &node.name,
                    format!("the node check script failed: {e}"),
                    "re-run; if it persists, raise ssh.commandTimeout",
                )
                .took(start)
            }));
            None
        }
    };
    let mut ready = None;
    let refused = checks.iter().any(|c| c.id == "node.lock");
    match (facts, &dataplane) {
        (_, Err(why)) => checks.extend(dataplane::skip_all(&node.name, why)),
        (None, _) => checks.extend(dataplane::skip_all(
            &node.name,
            "the node checks could not read the node",
        )),
        (Some(facts), Ok(())) => {
            line.phase("test pods");
            let part = Participant {
                node: node.clone(),
                remote: remote.clone(),
                facts,
            };
            match dataplane::make_pods(&cluster, part, &st.suffix, st.registry.clone()).await {
                Ok((c, r)) => {
                    checks.push(c);
                    ready = Some(r);
                }
                Err(cs) => checks.extend(cs),
            }
        }
    }
    line.done("checked");
    NodeResult {
        checks,
        remote: Some(remote),
        ready,
        refused,
    }
}

/// Wait until Ctrl-C has been seen.
async fn interrupted(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// `node.certs`: flanneld's client certificate chains to the node's CA and is not due.
async fn cert_check(remote: &crate::remote::Remote, node: &str) -> Check {
    const ID: &str = "node.certs";
    match crate::verify::certs::check_node(remote, std::time::SystemTime::now()).await {
        Ok(()) => Check::pass(ID, node, "flanneld's certificate chains to the CA and is not due for renewal"),
        Err(e) => Check::fail(
            ID,
            node,
            e.to_string(),
            "run `netctl init`: it renews certificates expiring within 30 days and replaces invalid ones",
        ),
    }
}

pub async fn run(run: &Run, opts: Options) -> Report {
    verify(run, run.cluster.clone(), opts, Arc::default()).await
}

/// Verify `cluster`'s network over sessions the caller holds (and keeps) where it has them; the
/// run's id names the test pods and re-enters the locks the caller took.
pub async fn run_on(
    run: &Run,
    cluster: Arc<Cluster>,
    opts: Options,
    open: Vec<Arc<Remote>>,
) -> Report {
    let open = open.into_iter().map(|r| (r.node.clone(), r)).collect();
    verify(run, cluster, opts, Arc::new(open)).await
}

async fn verify(
    run: &Run,
    cluster: Arc<Cluster>,
    opts: Options,
    open: Arc<BTreeMap<String, Arc<Remote>>>,
) -> Report {
    let started = Instant::now();
    let run_id = run.id.clone();
    let suffix = crate::verify::run_suffix(&run_id);
    let progress = Progress::new(opts.quiet || run.quiet);
    let concurrency = run.concurrency;
    // From here on Ctrl-C is ours: it stops the run and the test pods are removed.
    let (tx, rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });

    // kubectl on a kubectlOn node trusts a new host key as the node sessions do.
    let accept_new = run.accept_new_host_keys;
    let cluster_task = opts.cluster_checks.then(|| {
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || cluster_checks::run(&c, accept_new))
    });

    let registry: Registry = Registry::default();
    let st = Stage {
        cluster: cluster.clone(),
        run: run.clone(),
        dataplane: if opts.dataplane {
            Ok(())
        } else {
            Err("data-plane checks not requested".into())
        },
        suffix: suffix.clone(),
        registry: registry.clone(),
        run_id: run_id.clone(),
        locked: Arc::new(std::sync::Mutex::new(Vec::new())),
        open,
    };
    let locked = st.locked.clone();
    let jobs: Vec<(Node, crate::printer::NodeLine)> = cluster
        .nodes
        .iter()
        .map(|n| (n.clone(), progress.node(&n.name)))
        .collect();
    let stage = fleet::run(jobs, concurrency, |(n, line)| {
        node_stage(st.clone(), n, line)
    });
    let mut checks = Vec::new();
    let mut refused = false;
    let mut remotes = Vec::new();
    let mut ready = Vec::new();
    let mut was_interrupted = false;
    tokio::select! {
        results = stage => for r in results {
            checks.extend(r.checks);
            refused |= r.refused;
            remotes.extend(r.remote);
            ready.extend(r.ready);
        },
        _ = interrupted(rx.clone()) => was_interrupted = true,
    }
    let mut mesh = None;
    if !was_interrupted && !ready.is_empty() {
        mesh = Some(crate::verify::MeshUsed::new(opts.mesh, ready.len()));
        // Every test pod is up: where the fault matrix kills a switch's last gate.
        crate::fault::point("last-gate");
        tokio::select! {
            c = dataplane::ping_all(ready, opts.mesh, concurrency) => checks.extend(c),
            _ = interrupted(rx.clone()) => was_interrupted = true,
        }
    }
    // Always: whatever was made is removed, also after Ctrl-C.
    checks.extend(dataplane::teardown(registry, concurrency).await);

    if let Some(t) = cluster_task {
        match t.await {
            Ok(c) => checks.extend(c),
            Err(e) => checks.push(Check::fail(
                "cluster.nodes-ready",
                crate::verify::CLUSTER,
                format!("cluster checks crashed: {e}"),
                "a bug: please report it",
            )),
        }
    }
    if opts.smoke && !was_interrupted {
        let c = cluster.clone();
        let sfx = suffix.clone();
        // The smoke test deletes its namespace itself, also when a step fails or Ctrl-C kills
        // its kubectl children: wait for it either way.
        let task = tokio::task::spawn_blocking(move || smoke::run(&c, &sfx, accept_new));
        tokio::pin!(task);
        let res = tokio::select! {
            r = &mut task => r,
            _ = interrupted(rx.clone()) => { was_interrupted = true; task.await }
        };
        match res {
            Ok(c) => checks.extend(c),
            Err(e) => checks.push(Check::fail(
                "smoke.deploy",
                crate::verify::CLUSTER,
                format!("smoke test crashed: {e}"),
                "a bug: please report it",
            )),
        }
    }
    if was_interrupted {
        checks.push(Check::fail(
            "verify.interrupted",
            crate::verify::CLUSTER,
            "interrupted (Ctrl-C): the checks did not finish; test pods were removed",
            "re-run netctl verify",
        ));
    }
    watcher.abort();
    let locked: Vec<Arc<Remote>> =
        std::mem::take(&mut *locked.lock().unwrap_or_else(|p| p.into_inner()));
    for r in &locked {
        let _ = crate::phase::lock::unlock(r, &run_id).await;
    }
    drop(locked);
    for r in remotes {
        if let Ok(remote) = Arc::try_unwrap(r) {
            remote.close().await;
        }
    }
    // Subjects in profile order within each check.
    let order: BTreeMap<&str, usize> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    checks.sort_by_key(|c| order.get(c.subject.as_str()).copied().unwrap_or(usize::MAX));
    Report::new(run_id, checks, refused)
        .with_mesh(mesh)
        .took(started)
}
