//! `netctl switch --networking X`: migrate a live cluster node by node (see migrate.rs for the
//! order and why). Each node's progress is recorded in its state.json, so a switch that dies
//! half way can be continued (`--resume`) or undone (`--rollback`); a failed step or gate rolls
//! every switched node back from this run's backups unless `--no-rollback`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::fleet;
use crate::kubectl::{self, Kubectl};
use crate::migrate::{self, Endpoint, MigrationPlan, NodeMigration};
use crate::phase::{self, apply, connect, gather, lock};
use crate::plan;
use crate::printer::Progress;
use crate::profile::{Cluster, Node, ProviderKind};
use crate::provider::{sh_quote, NodePlan, Step};
use crate::remote::{Remote, RemoteError};
use crate::state::{Gathered, NodeState};
use crate::tempdir::PrivateDir;
use crate::Error;

#[derive(Debug, Clone)]
pub struct SwitchOptions {
    pub to: Endpoint,
    pub from: Option<Endpoint>,
    pub max_unavailable: usize,
    pub yes: bool,
    pub dry_run: bool,
    pub resume: bool,
    pub rollback: bool,
    pub no_rollback: bool,
    pub accept_new_host_keys: bool,
    /// Nodes connected to and checked at once (default: the profile's ssh.concurrency).
    pub concurrency: Option<usize>,
    pub quiet: bool,
}

pub use crate::state::{SwitchPhase, SwitchRecord};

#[derive(Debug, Serialize)]
pub struct SwitchReport {
    pub run_id: String,
    pub from: String,
    pub to: String,
    pub result: String,
    pub switched: Vec<String>,
    pub rolled_back: Vec<String>,
    pub error: Option<String>,
    pub steps: Vec<String>,
}

struct Conn {
    node: Node,
    /// Shared with the gate's test pods, which keep it for their removal.
    remote: Arc<Remote>,
    found: Gathered,
}

fn record_of(st: &NodeState) -> Option<SwitchRecord> {
    st.switch.clone()
}

fn endpoint_of_state(st: &NodeState) -> Option<Endpoint> {
    Some(Endpoint {
        provider: ProviderKind::parse(&st.provider)?,
        backend: st.backend.clone(),
    })
}

/// Connect and read the node's record (read-only): which switch, if any, it is in the middle of.
async fn peek(
    cluster: Arc<Cluster>,
    node: Node,
    opts: SwitchOptions,
) -> Result<(Node, Remote, Option<SwitchRecord>), RemoteError> {
    let remote = connect::connect(&cluster, &node, opts.accept_new_host_keys, opts.dry_run).await?;
    match gather::gather(&remote, &NodePlan::default()).await {
        Ok(g) => Ok((node, remote, g.state.as_ref().and_then(record_of))),
        Err(e) => {
            remote.close().await;
            Err(e)
        }
    }
}

/// Lock and gather (one round trip). A switch killed mid-way leaves its locks behind; `--resume`/`--rollback`
/// take over locks held by exactly the switch run the nodes' records name, and no other.
async fn open(
    node: Node,
    remote: Remote,
    run_id: String,
    take_over: Option<String>,
    want: NodePlan,
) -> Result<Conn, RemoteError> {
    let holder = lock::Holder::me(&run_id, "switch");
    let found = match gather::lock_and_gather(&remote, &want, &holder).await {
        // Only a run that is gone: a live one (here, where we can tell) keeps its lock.
        Err(RemoteError::Locked {
            run: held_by,
            alive,
            ..
        }) if take_over.as_ref().is_some_and(|r| *r == held_by) && alive != Some(true) => {
            match lock::take_over(&remote, &held_by, &holder).await {
                Ok(()) => gather::gather(&remote, &want).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match found {
        Ok(found) => Ok(Conn {
            node,
            remote: Arc::new(remote),
            found,
        }),
        Err(e) => {
            // Someone else's lock stays; ours (taken before the failure) goes.
            if !matches!(e, RemoteError::Locked { .. }) {
                let _ = lock::unlock(&remote, &run_id).await;
            }
            remote.close().await;
            Err(e)
        }
    }
}

fn fail(msg: String) -> Error {
    Error::Failed(msg)
}

async fn run_steps(remote: &Remote, steps: &[Step]) -> Result<(), RemoteError> {
    for s in steps {
        remote.change(&s.title, &s.command).await?;
    }
    Ok(())
}

async fn write_record(
    remote: &Remote,
    state: &NodeState,
    rec: Option<&SwitchRecord>,
    run_id: &str,
) -> Result<(), RemoteError> {
    let mut st = state.clone();
    st.switch = rec.cloned();
    apply::record(remote, &st, run_id).await
}

/// The node gate: verify's node checks (forwarding, CNI config, files, services, routes) for the
/// provider the node should now run, over the node's open session; with `pods_suffix`, then the
/// node's own data plane (test pods made with its active CNI config, pinged on the node). Gates
/// after a rollback check the node checks only: the data plane before the switch is not netctl's
/// to judge.
async fn gate(
    remote: &Arc<Remote>,
    to: &Cluster,
    node: &Node,
    pods_suffix: Option<&str>,
) -> Result<(), String> {
    use crate::verify::{dataplane, node as checks, Status};
    let plan = crate::provider::node_plan(to, node);
    let out = remote
        .probe(&checks::script(to, node, &plan))
        .await
        .map_err(|e| e.to_string())?;
    let facts = checks::parse(&String::from_utf8_lossy(&out.stdout));
    let mut found = checks::checks(to, node, &plan, &facts);
    let node_ok = found.iter().all(|c| c.status != Status::Fail);
    if let Some(suffix) = pods_suffix.filter(|_| node_ok) {
        // A config netctl cannot run (a DaemonSet provider's, not installed yet) comes back as
        // skips, which do not fail the gate.
        let p = dataplane::Participant {
            node: node.clone(),
            remote: remote.clone(),
            facts,
        };
        found.extend(dataplane::node_alone(to, p, suffix).await);
    }
    let failed: Vec<String> = found
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{} {}", c.id, c.detail))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: gate failed: {}", node.name, failed.join("; ")))
    }
}

/// Switch one node; returns the record of what changed (for a rollback).
async fn switch_node(
    c: &Conn,
    nm: &NodeMigration,
    to: &Cluster,
    from_ep: &Endpoint,
    to_ep: &Endpoint,
    run_id: &str,
    k: Option<&Kubectl>,
) -> Result<SwitchRecord, String> {
    let remote = &c.remote;
    let systemd = c.node.has_systemd();
    let old_state = c.found.state.clone().unwrap_or_default();
    let changes = plan::diff(&nm.install, &c.found, systemd);
    let mut rec = SwitchRecord {
        run_id: run_id.to_string(),
        from: from_ep.clone(),
        to: to_ep.clone(),
        phase: SwitchPhase::Switching,
        files: changes
            .files
            .iter()
            .map(|f| (f.path.clone(), f.action))
            .collect(),
    };
    let r = async {
        write_record(remote, &old_state, Some(&rec), run_id).await?;
        if let Some(k) = k {
            let _ = k.run(
                &[
                    "drain".into(),
                    c.node.name.clone(),
                    "--ignore-daemonsets".into(),
                    "--delete-emptydir-data".into(),
                ],
                std::path::Path::new("."),
            );
        }
        if systemd {
            for u in &nm.stop {
                remote
                    .change(
                        &format!("stop {u}"),
                        &format!("systemctl stop {} || true", sh_quote(u)),
                    )
                    .await?;
            }
        }
        run_steps(remote, &nm.teardown).await?;
        apply::files(remote, &changes, run_id).await?;
        apply::units(remote, &changes).await?;
        if systemd {
            for u in &nm.disable {
                remote
                    .change(
                        &format!("disable {u}"),
                        &format!("systemctl disable --now --quiet {} || true", sh_quote(u)),
                    )
                    .await?;
            }
        }
        apply::commands(remote, &changes.commands).await?;
        apply::restart(remote, &changes.restart).await?;
        if systemd {
            for u in nm.stop.iter().filter(|u| !changes.restart.contains(u)) {
                remote
                    .change(
                        &format!("start {u}"),
                        &format!("systemctl start {}", sh_quote(u)),
                    )
                    .await?;
            }
        }
        Ok::<(), RemoteError>(())
    }
    .await;
    r.map_err(|e| e.to_string())?;
    rec.phase = SwitchPhase::Switched;
    let backend = crate::commands::apply::backend_name(to);
    let new_state = plan::next_state(
        &nm.install,
        Some(&old_state),
        &changes,
        to.provider().as_str(),
        &backend,
        &to.hash,
        run_id,
    );
    write_record(remote, &new_state, Some(&rec), run_id)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(k) = k {
        k.run(
            &[
                "wait".into(),
                "--for=condition=Ready".into(),
                format!("node/{}", c.node.name),
                "--timeout=300s".into(),
            ],
            std::path::Path::new("."),
        )
        .map_err(|e| format!("{}: not ready after the switch: {e}", c.node.name))?;
        let _ = k.run(
            &["uncordon".into(), c.node.name.clone()],
            std::path::Path::new("."),
        );
    }
    let suffix = crate::verify::run_suffix(run_id);
    gate(remote, to, &c.node, Some(&suffix)).await?;
    Ok(rec)
}

/// Put a node back from the backups its switch record names, then re-apply its old provider.
async fn roll_back_node(
    remote: &Remote,
    rec: &SwitchRecord,
    systemd: bool,
) -> Result<(), RemoteError> {
    remote
        .change("restore backups", &rec.roll_back_script())
        .await?;
    let g = gather::gather(remote, &NodePlan::default()).await?;
    if let Some(old) = g.state {
        if systemd {
            remote
                .change("systemctl daemon-reload", "systemctl daemon-reload")
                .await?;
        }
        for c in &old.commands {
            remote.change("re-apply the old provider", c).await?;
        }
        if systemd {
            // The switch may have disabled them (the old provider's own units).
            for u in &old.units {
                let u = sh_quote(u);
                remote
                    .change(
                        &format!("enable {u}"),
                        &format!("systemctl enable --quiet {u} && systemctl restart {u} || true"),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

pub async fn run(cluster: Arc<Cluster>, opts: SwitchOptions) -> Result<SwitchReport, Error> {
    let run_id = phase::new_run_id();
    let progress = Progress::new(opts.quiet);
    let to_cluster =
        Arc::new(migrate::retarget(&cluster, &opts.to).map_err(|e| Error::Usage(e.to_string()))?);
    let concurrency = opts.concurrency.unwrap_or(cluster.profile.ssh.concurrency);

    // Connect and read every node's record, then lock and gather.
    let peeked = fleet::run(cluster.nodes.clone(), concurrency, |n| {
        peek(cluster.clone(), n, opts.clone())
    })
    .await;
    let mut errors = Vec::new();
    let mut refused = false;
    let mut reachable = Vec::new();
    for p in peeked {
        match p {
            Ok(p) => reachable.push(p),
            Err(e) => {
                refused |= e.is_refusal();
                errors.push(e.to_string());
            }
        }
    }
    let take_over = (opts.resume || opts.rollback)
        .then(|| {
            reachable
                .iter()
                .find_map(|(_, _, r)| r.as_ref().map(|r| r.run_id.clone()))
        })
        .flatten();
    let jobs: Vec<_> = reachable
        .into_iter()
        .map(|(n, remote, _)| {
            let want = crate::provider::node_plan(&to_cluster, &n);
            (n, remote, want)
        })
        .collect();
    let opened = fleet::run(jobs, concurrency, |(n, remote, want)| {
        open(n, remote, run_id.clone(), take_over.clone(), want)
    })
    .await;
    let mut conns = Vec::new();
    for o in opened {
        match o {
            Ok(c) => conns.push(c),
            Err(e) => {
                refused |= e.is_refusal();
                errors.push(e.to_string());
            }
        }
    }
    let release_run = run_id.clone();
    let release = |conns: Vec<Conn>| {
        let run_id = release_run.clone();
        async move {
            for c in conns {
                let _ = lock::unlock(&c.remote, &run_id).await;
                // The gate's test pods are gone by now, so this is the last handle; were it not,
                // dropping it closes the session all the same.
                if let Ok(remote) = Arc::try_unwrap(c.remote) {
                    remote.close().await;
                }
            }
        }
    };
    if !errors.is_empty() {
        release(conns).await;
        let msg = format!(
            "cannot reach every node, nothing was changed:\n  {}",
            errors.join("\n  ")
        );
        return Err(if refused {
            Error::Refused(msg)
        } else {
            fail(msg)
        });
    }

    // From here the nodes are locked: every way out of the block below, early returns and `?`
    // included, reaches the one release after it.
    let result: Result<SwitchReport, Error> = async {
        let records: Vec<Option<SwitchRecord>> = conns
            .iter()
            .map(|c| c.found.state.as_ref().and_then(record_of))
            .collect();
        // Taking over a killed run: its gate may have died with test pods up.
        if take_over.is_some() {
            for (c, r) in conns.iter().zip(&records) {
                if r.is_some() {
                    if let Err(e) = c
                        .remote
                        .change(
                            "remove test pods the interrupted run left",
                            &crate::verify::dataplane::sweep_script(
                                &cluster.profile.networking.cni_conf_dir,
                            ),
                        )
                        .await
                    {
                        return Err(fail(e.to_string()));
                    }
                }
            }
        }
        let interrupted = records.iter().flatten().next().cloned();
        if opts.rollback {
            let Some(rec) = interrupted else {
                return Err(Error::Refused(
                    "no interrupted switch is recorded on any node: nothing to roll back".into(),
                ));
            };
            let mut rolled = Vec::new();
            for (c, r) in conns.iter().zip(&records).rev() {
                if let Some(r) = r {
                    progress.println(&format!("{}: rolling back to {}", c.node.name, r.from));
                    roll_back_node(&c.remote, r, c.node.has_systemd())
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    rolled.push(c.node.name.clone());
                }
            }
            let from_cluster =
                migrate::retarget(&cluster, &rec.from).map_err(|e| Error::Usage(e.to_string()))?;
            let mplan = migrate::plan(
                &from_cluster,
                &migrate::retarget(&cluster, &rec.to).map_err(|e| Error::Usage(e.to_string()))?,
            );
            for (c, nm) in conns.iter().zip(&mplan.nodes) {
                run_steps(&c.remote, &nm.unprepare)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
            let mut gate_errors = Vec::new();
            for c in &conns {
                if let Err(e) = gate(&c.remote, &from_cluster, &c.node, None).await {
                    gate_errors.push(e);
                }
            }
            return Ok(SwitchReport {
                run_id,
                from: rec.to.to_string(),
                to: rec.from.to_string(),
                result: if gate_errors.is_empty() {
                    "rolled back".into()
                } else {
                    "rolled back, verify failed".into()
                },
                switched: vec![],
                rolled_back: rolled,
                error: (!gate_errors.is_empty()).then(|| gate_errors.join("; ")),
                steps: vec![],
            });
        }
        if let Some(r) = interrupted.as_ref().filter(|_| !opts.resume) {
            let msg = format!(
                "an interrupted switch (run {}) is recorded on the nodes: continue it with `netctl switch --resume` or undo it with `netctl switch --rollback`",
                r.run_id
            );
            return Err(Error::Refused(msg));
        }

        // Where does the cluster start?
        let from_ep = match (&opts.from, &interrupted) {
            (_, Some(r)) => r.from.clone(),
            (Some(f), None) => f.clone(),
            (None, None) => {
                let eps: BTreeMap<String, Vec<String>> =
                    conns.iter().fold(BTreeMap::new(), |mut m, c| {
                        let ep = c
                            .found
                            .state
                            .as_ref()
                            .and_then(endpoint_of_state)
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| "unmanaged".into());
                        m.entry(ep).or_default().push(c.node.name.clone());
                        m
                    });
                let single = conns
                    .iter()
                    .map(|c| c.found.state.as_ref().and_then(endpoint_of_state))
                    .collect::<Vec<_>>();
                match (eps.len(), single.first().cloned().flatten()) {
                    (1, Some(ep)) if !eps.contains_key("unmanaged") => ep,
                    _ => {
                        let detail: Vec<String> = eps
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", v.join(", ")))
                            .collect();
                        return Err(Error::Refused(format!(
                            "the nodes do not agree on what they run ({}); say it with --from PROVIDER[:BACKEND]",
                            detail.join("; ")
                        )));
                    }
                }
            }
        };
        if from_ep == opts.to && interrupted.is_none() {
            return Ok(SwitchReport {
                run_id,
                from: from_ep.to_string(),
                to: opts.to.to_string(),
                result: "unchanged".into(),
                switched: vec![],
                rolled_back: vec![],
                error: None,
                steps: vec![],
            });
        }
        let from_cluster =
            migrate::retarget(&cluster, &from_ep).map_err(|e| Error::Usage(e.to_string()))?;
        let mut mplan: MigrationPlan = migrate::plan(&from_cluster, &to_cluster);
        // Edits (the kubelet, controller-manager and containerd files the operator has) become
        // files against what each node holds; one that cannot be made safely stops the switch
        // before any node changes.
        let mut edit_errors = Vec::new();
        for nm in &mut mplan.nodes {
            let Some(c) = conns.iter().find(|c| c.node.name == nm.node) else {
                continue;
            };
            match crate::provider::edit::resolve(&nm.install, &c.found) {
                Ok(resolved) => nm.install = resolved,
                Err(e) => edit_errors.push(format!("{}: {e}", nm.node)),
            }
        }
        if !edit_errors.is_empty() {
            return Err(fail(format!(
                "cannot edit every node, nothing was changed:\n  {}",
                edit_errors.join("\n  ")
            )));
        }
        let pending: Vec<usize> = (0..conns.len())
            .filter(|&i| !matches!(&records[i], Some(r) if r.phase == SwitchPhase::Switched))
            .collect();
        let waves: Vec<Vec<usize>> = pending
            .chunks(opts.max_unavailable.max(1))
            .map(|w| w.to_vec())
            .collect();
        let wave_names: Vec<Vec<String>> = waves
            .iter()
            .map(|w| w.iter().map(|&i| conns[i].node.name.clone()).collect())
            .collect();
        let description = migrate::describe(&mplan, &wave_names);
        if opts.dry_run {
            return Ok(SwitchReport {
                run_id,
                from: from_ep.to_string(),
                to: opts.to.to_string(),
                result: "planned".into(),
                switched: vec![],
                rolled_back: vec![],
                error: None,
                steps: description.lines().map(String::from).collect(),
            });
        }
        if !opts.yes {
            confirm(&description)?;
        }

        let k = match kubectl::unavailable_reason(&cluster) {
            None => Some(
                Kubectl::find(&cluster, "drain nodes and apply the new provider's objects")
                    .map_err(|e| fail(e.to_string()))?,
            ),
            Some(why) => {
                progress.println(&format!("cluster steps skipped: {why}"));
                None
            }
        };
        let mut steps = Vec::new();
        // The new provider's manifests, for its objects applied first (and deleted on rollback).
        let to_dir = match k.as_ref().filter(|_| !mplan.cluster_prepare.is_empty()) {
            None => None,
            Some(k) => {
                let made = cluster_files(&to_cluster).and_then(|dir| {
                    for s in &mplan.cluster_prepare {
                        k.run(&s.args, dir.path()).map_err(|e| e.to_string())?;
                        steps.push(kubectl::describe(s));
                    }
                    Ok(dir)
                });
                match made {
                    Ok(dir) => Some(dir),
                    Err(e) => {
                        return Err(fail(e));
                    }
                }
            }
        };
        // Every node learns to receive the new way before any node sends it.
        for (c, nm) in conns.iter().zip(&mplan.nodes) {
            if let Err(e) = run_steps(&c.remote, &nm.prepare).await {
                return Err(fail(e.to_string()));
            }
        }
        let pause = std::env::var("NETCTL_SWITCH_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let mut switched: Vec<(usize, SwitchRecord)> = Vec::new();
        let mut failure: Option<String> = None;
        for wave in &waves {
            let results = futures::future::join_all(wave.iter().map(|&i| {
                let c = &conns[i];
                let nm = &mplan.nodes[i];
                let line = progress.node(&c.node.name);
                let (to_cluster, from_ep, to_ep, run_id, k) =
                    (&to_cluster, &from_ep, &opts.to, &run_id, k.as_ref());
                async move {
                    line.phase("switching");
                    let r = switch_node(c, nm, to_cluster, from_ep, to_ep, run_id, k).await;
                    line.done(if r.is_ok() { "switched" } else { "failed" });
                    (i, r)
                }
            }))
            .await;
            for (i, r) in results {
                match r {
                    Ok(rec) => switched.push((i, rec)),
                    Err(e) => {
                        // The failed node changed files too: its record is on the node.
                        let rec = SwitchRecord {
                            run_id: run_id.clone(),
                            from: from_ep.clone(),
                            to: opts.to.clone(),
                            phase: SwitchPhase::Switching,
                            files: plan::diff(
                                &mplan.nodes[i].install,
                                &conns[i].found,
                                conns[i].node.has_systemd(),
                            )
                            .files
                            .iter()
                            .map(|f| (f.path.clone(), f.action))
                            .collect(),
                        };
                        switched.push((i, rec));
                        failure.get_or_insert(e);
                    }
                }
            }
            if failure.is_some() {
                break;
            }
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
        }

        // Every node runs the new provider, the old way is still in place: verify (node and
        // data-plane checks; readiness was waited for per node) is the last gate before anything old
        // is removed.
        if failure.is_none() {
            let vopts = crate::verify::Options {
                cluster_checks: false,
                dataplane: true,
                smoke: false,
                mesh: if conns.len() > 20 {
                    crate::verify::Mesh::Ring
                } else {
                    crate::verify::Mesh::Full
                },
                concurrency: Some(concurrency),
                accept_new_host_keys: opts.accept_new_host_keys,
                quiet: true,
            };
            let report =
                crate::commands::verify::run_with_id(to_cluster.clone(), vopts, run_id.clone()).await;
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == crate::verify::Status::Fail)
                .map(|c| format!("{} on {}: {}", c.id, c.subject, c.detail))
                .collect();
            if !failed.is_empty() {
                failure = Some(format!(
                    "verify after the last wave failed: {}",
                    failed.join("; ")
                ));
            } else {
                steps.push(format!(
                    "verify: {} passed, {} skipped",
                    report.summary.pass, report.summary.skip
                ));
            }
        }
        if let Some(err) = failure {
            if opts.no_rollback {
                return Err(fail(format!("{err}; stopped in place (--no-rollback): continue with `switch --resume` or undo with `switch --rollback`")));
            }
            let mut rolled = Vec::new();
            let mut rb_errors = Vec::new();
            for (i, rec) in switched.iter().rev() {
                let c = &conns[*i];
                progress.println(&format!("{}: rolling back to {from_ep}", c.node.name));
                match roll_back_node(&c.remote, rec, c.node.has_systemd()).await {
                    Ok(()) => rolled.push(c.node.name.clone()),
                    Err(e) => rb_errors.push(e.to_string()),
                }
            }
            for (c, nm) in conns.iter().zip(&mplan.nodes) {
                if let Err(e) = run_steps(&c.remote, &nm.unprepare).await {
                    rb_errors.push(e.to_string());
                }
            }
            // The new provider's cluster objects go again (delete ... --ignore-not-found).
            if let (Some(k), Some(dir)) = (&k, &to_dir) {
                for s in &crate::provider::cluster_plan(&to_cluster).kubectl_teardown {
                    if let Err(e) = k.run(&s.args, dir.path()) {
                        rb_errors.push(e.to_string());
                    }
                }
            }
            let mut verify_errors = Vec::new();
            for c in &conns {
                if let Err(e) = gate(&c.remote, &from_cluster, &c.node, None).await {
                    verify_errors.push(e);
                }
            }
            drop(to_dir);
            let state = if rb_errors.is_empty() && verify_errors.is_empty() {
                format!(
                    "the cluster is back on {from_ep} (rolled back: {}; verify passed)",
                    rolled.join(", ")
                )
            } else {
                format!(
                    "rollback incomplete: {}",
                    rb_errors
                        .iter()
                        .chain(&verify_errors)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            return Err(fail(format!(
                "switch to {} failed: {err}; {state}",
                opts.to
            )));
        }

        // Every node runs the new provider: remove the old way, then the old cluster objects.
        let mut errs = Vec::new();
        for (c, nm) in conns.iter().zip(&mplan.nodes) {
            if let Err(e) = run_steps(&c.remote, &nm.cleanup).await {
                errs.push(e.to_string());
            }
        }
        drop(to_dir);
        if let Some(k) = k.as_ref().filter(|_| !mplan.cluster_cleanup.is_empty()) {
            // The old provider's manifests, in a directory of their own.
            match cluster_files(&from_cluster) {
                Ok(dir) => {
                    for s in &mplan.cluster_cleanup {
                        match k.run(&s.args, dir.path()) {
                            Ok(_) => steps.push(kubectl::describe(s)),
                            Err(e) => errs.push(e.to_string()),
                        }
                    }
                }
                Err(e) => errs.push(e),
            }
        }
        // The switch is complete: drop the progress records.
        for c in &conns {
            let g = gather::gather(&c.remote, &NodePlan::default()).await;
            if let Ok(Gathered {
                state: Some(st), ..
            }) = g
            {
                if st.switch.is_some() {
                    if let Err(e) = write_record(&c.remote, &st, None, &run_id).await {
                        errs.push(e.to_string());
                    }
                }
            }
            if let Err(e) = gate(&c.remote, &to_cluster, &c.node, None).await {
                errs.push(e);
            }
        }
        let names: Vec<String> = switched
            .iter()
            .map(|(i, _)| conns[*i].node.name.clone())
            .collect();
        Ok(SwitchReport {
            run_id,
            from: from_ep.to_string(),
            to: opts.to.to_string(),
            result: if errs.is_empty() {
                "switched".into()
            } else {
                "switched, with errors".into()
            },
            switched: names,
            rolled_back: vec![],
            error: (!errs.is_empty()).then(|| errs.join("; ")),
            steps,
        })
    }
    .await;
    release(conns).await;
    result
}

/// `cluster`'s manifests written into a new private temporary directory (removed when dropped).
fn cluster_files(cluster: &Cluster) -> Result<PrivateDir, String> {
    let dir = PrivateDir::new("netctl-switch-")
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    kubectl::write_cluster_files(&crate::provider::cluster_plan(cluster), dir.path())
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

fn confirm(description: &str) -> Result<(), Error> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{description}\nthere is no terminal to confirm this switch: pass --yes"
        )));
    }
    eprintln!("{description}");
    match dialoguer::Confirm::new()
        .with_prompt("Switch now?")
        .default(false)
        .interact()
    {
        Ok(true) => Ok(()),
        _ => Err(Error::Usage("not confirmed; nothing was changed".into())),
    }
}

pub fn text(r: &SwitchReport) -> String {
    let mut s = String::new();
    for l in &r.steps {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!("switch {} -> {}: {}", r.from, r.to, r.result));
    if !r.switched.is_empty() {
        s.push_str(&format!(" ({})", r.switched.join(", ")));
    }
    if !r.rolled_back.is_empty() {
        s.push_str(&format!(" (rolled back: {})", r.rolled_back.join(", ")));
    }
    s.push('\n');
    if let Some(e) = &r.error {
        s.push_str(&format!("error: {e}\n"));
    }
    s
}
