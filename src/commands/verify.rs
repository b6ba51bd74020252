//! `netctl verify` (and the end of `netctl init`): per node, in a sliding window, connect and run
//! the node checks in one round trip; then the cluster checks (kubectl) alongside the data plane
//! (test pods, pings), then the optional smoke test. Test pods are torn down whatever happens,
//! including Ctrl-C; nothing else on a node is changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::fleet;
use crate::phase::{self, connect};
use crate::printer::Progress;
use crate::profile::{Cluster, Node};
use crate::provider;
use crate::remote::Remote;
use crate::verify::dataplane::{self, Participant, Registry};
use crate::verify::{cluster as cluster_checks, node, smoke, Check, Options, Report};

const NODE_IDS: [&str; 7] = [
    "node.forwarding",
    "node.br-netfilter",
    "node.cni-config",
    "node.stale-cni",
    "node.files",
    "node.services",
    "node.routes",
];

struct Reached {
    node: Node,
    remote: Arc<Remote>,
    facts: Option<node::Facts>,
}

struct NodeResult {
    checks: Vec<Check>,
    reached: Option<Reached>,
    refused: bool,
}

async fn node_stage(
    cluster: Arc<Cluster>,
    node: Node,
    accept_new: bool,
    line: crate::printer::NodeLine,
) -> NodeResult {
    let start = Instant::now();
    line.phase("connect");
    // Verify changes nothing but its test pods: sessions are not dry-run, but node checks only
    // ever `probe` (read), and the data plane's changes are the pods it removes again.
    let remote = match connect::connect(&cluster, &node, accept_new, false).await {
        Ok(r) => Arc::new(r),
        Err(e) => {
            line.done("unreachable");
            let mut checks = vec![Check::fail(
                "node.ssh",
                &node.name,
                format!("cannot reach the node: {e}"),
                if e.is_refusal() {
                    "the host key is not trusted: check it, then pass --accept-new-host-keys or fix known_hosts".to_string()
                } else {
                    format!("is sshd running on {}:{}? (ssh.port / nodes[].sshPort)", node.address, node.ssh_port)
                },
            )
            .took(start)];
            checks.extend(
                NODE_IDS
                    .iter()
                    .map(|id| Check::skip(id, &node.name, "node unreachable (node.ssh)")),
            );
            checks.extend(dataplane::skip_all(
                &node.name,
                "node unreachable (node.ssh)",
            ));
            return NodeResult {
                checks,
                reached: None,
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
    line.phase("node checks");
    let start = Instant::now();
    let plan = provider::node_plan(&cluster, &node);
    let facts = match remote.probe(&node::script(&cluster, &node, &plan)).await {
        Ok(out) => {
            let f = node::parse(&String::from_utf8_lossy(&out.stdout));
            checks.extend(
                node::checks(&cluster, &node, &plan, &f)
                    .into_iter()
                    .map(|c| c.took(start)),
            );
            Some(f)
        }
        Err(e) => {
            checks.extend(NODE_IDS.iter().map(|id| {
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
    line.done("checked");
    NodeResult {
        checks,
        reached: Some(Reached {
            node,
            remote,
            facts,
        }),
        refused: false,
    }
}

/// Wait until Ctrl-C has been seen.
async fn interrupted(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

pub async fn run(cluster: Arc<Cluster>, opts: Options) -> Report {
    run_with_id(cluster, opts, phase::new_run_id()).await
}

pub async fn run_with_id(cluster: Arc<Cluster>, opts: Options, run_id: String) -> Report {
    let suffix = crate::verify::run_suffix(&run_id);
    let progress = Progress::new(opts.quiet);
    let concurrency = opts.concurrency.unwrap_or(cluster.profile.ssh.concurrency);
    // From here on Ctrl-C is ours: it stops the run and the test pods are removed.
    let (tx, rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });

    let cluster_task = opts.cluster_checks.then(|| {
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || cluster_checks::run(&c))
    });

    let jobs: Vec<(Node, crate::printer::NodeLine)> = cluster
        .nodes
        .iter()
        .map(|n| (n.clone(), progress.node(&n.name)))
        .collect();
    let accept = opts.accept_new_host_keys;
    let stage = fleet::run(jobs, concurrency, |(n, line)| {
        node_stage(cluster.clone(), n, accept, line)
    });
    let mut checks = Vec::new();
    let mut refused = false;
    let mut reached = Vec::new();
    let mut was_interrupted = false;
    tokio::select! {
        results = stage => for r in results {
            checks.extend(r.checks);
            refused |= r.refused;
            reached.extend(r.reached);
        },
        _ = interrupted(rx.clone()) => was_interrupted = true,
    }

    let registry: Registry = Registry::default();
    if opts.dataplane && !was_interrupted {
        let mut parts = Vec::new();
        for r in &reached {
            match &r.facts {
                Some(f) => parts.push(Participant {
                    node: r.node.clone(),
                    remote: r.remote.clone(),
                    facts: f.clone(),
                }),
                None => checks.extend(dataplane::skip_all(
                    &r.node.name,
                    "the node checks could not read the node",
                )),
            }
        }
        let work = dataplane::run(
            cluster.clone(),
            parts,
            opts.mesh,
            &suffix,
            concurrency,
            registry.clone(),
        );
        tokio::select! {
            c = work => checks.extend(c),
            _ = interrupted(rx.clone()) => was_interrupted = true,
        }
    } else if !opts.dataplane {
        for r in &reached {
            checks.extend(dataplane::skip_all(
                &r.node.name,
                "data-plane checks not requested",
            ));
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
        let task = tokio::task::spawn_blocking(move || smoke::run(&c, &sfx));
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
    for r in reached {
        if let Ok(remote) = Arc::try_unwrap(r.remote) {
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
}
