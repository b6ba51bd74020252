//! `netctl init` and `netctl plan` (= `init --dry-run`), a list of phases (`INIT`): per node, in
//! a sliding window, connect -> lock and gather -> plan; confirm; per node one transaction (files,
//! units, commands, restarts, record, unlock); the cluster-level steps; verify over the same
//! sessions. A node whose transaction fails puts itself back and is reported; the others finish,
//! so no phase of init has an undo.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::fleet;
use crate::kubectl;
use crate::phase::manager::{self, Flow, Phase, Phases};
use crate::phase::{gather, lock, txn};
use crate::plan::{self, NodeChanges};
use crate::printer::{NodeLine, Progress, Table};
use crate::profile::{Cluster, Node};
use crate::provider::{self, NodePlan};
use crate::remote::{Remote, RemoteError};
use crate::run::Run;
use crate::state::Gathered;
use crate::tempdir::PrivateDir;

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub yes: bool,
    /// End with verify (node and data-plane checks) when every node was applied.
    pub verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Unchanged,
    Planned,
    Failed,
    Refused,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub result: Outcome,
    pub files_changed: usize,
    pub commands_run: usize,
    pub restarts: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// Units whose inputs changed on a node without systemd (`init: none`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarts_skipped: Vec<String>,
    pub error: Option<String>,
    /// Remote executions this run made on the node (connect's sudo probe included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_executions: Option<usize>,
    #[serde(skip)]
    pub changes: Option<NodeChanges>,
}

impl NodeReport {
    fn failed(name: &str, e: &RemoteError) -> NodeReport {
        NodeReport {
            name: name.to_string(),
            result: if e.is_refusal() {
                Outcome::Refused
            } else {
                Outcome::Failed
            },
            files_changed: 0,
            commands_run: 0,
            restarts: 0,
            restarted: vec![],
            restarts_skipped: vec![],
            error: Some(e.to_string()),
            remote_executions: None,
            changes: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterStepReport {
    pub step: String,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub nodes: Vec<NodeReport>,
    pub cluster: Vec<ClusterStepReport>,
    /// The operator answered no: nothing was changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub declined: bool,
    /// verify's report, when init ended with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Report>,
}

impl RunReport {
    pub fn failed_nodes(&self) -> Vec<&NodeReport> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.result, Outcome::Failed | Outcome::Refused))
            .collect()
    }
    pub fn refused(&self) -> bool {
        self.nodes.iter().any(|n| n.result == Outcome::Refused)
    }
    pub fn cluster_failed(&self) -> bool {
        self.cluster.iter().any(|c| c.result == "failed")
    }
}

/// A node after connect, lock, gather and plan, holding its session for the apply stage.
struct Prepared {
    node: Node,
    remote: Remote,
    desired: NodePlan,
    found: Gathered,
    changes: NodeChanges,
    line: NodeLine,
}

async fn prepare(run: Run, node: Node, line: NodeLine) -> Result<Prepared, NodeReport> {
    let fail = |e: RemoteError| NodeReport::failed(&node.name, &e);
    let (cluster, run_id, dry_run) = (&run.cluster, &run.id, run.dry_run);
    line.phase("connect");
    let remote = run.connect(&node).await.map_err(fail)?;
    line.phase("lock and gather");
    let desired = provider::node_plan(cluster, &node, &run.inputs);
    let holder = lock::Holder::me(run_id, if dry_run { "plan" } else { "init" });
    let found = match gather::lock_and_gather_for_apply(&remote, &desired, &holder).await {
        Ok(g) => g,
        Err(e) => {
            remote.close().await;
            return Err(fail(e));
        }
    };
    // Edits become files against what the node has; one that cannot be made safely fails the
    // node before anything changes there.
    let desired = match provider::edit::resolve(&desired, &found) {
        Ok(d) => d,
        Err(e) => {
            if !dry_run {
                let _ = lock::unlock(&remote, run_id).await;
            }
            remote.close().await;
            return Err(fail(RemoteError::State {
                node: node.name.clone(),
                message: e.to_string(),
            }));
        }
    };
    let changes = plan::diff(&desired, &found, node.has_systemd());
    Ok(Prepared {
        node,
        remote,
        desired,
        found,
        changes,
        line,
    })
}

/// Units whose inputs changed, on a node where nothing can restart them.
fn skipped_restarts(p: &Prepared) -> Vec<String> {
    if p.node.has_systemd() {
        return vec![];
    }
    plan::diff(&p.desired, &p.found, true).restart
}

/// One node's transaction; the session stays open for verify.
async fn apply_node(
    cluster: Arc<Cluster>,
    p: Prepared,
    run_id: String,
) -> (NodeReport, Arc<Remote>) {
    let skipped = skipped_restarts(&p);
    let Prepared {
        node,
        remote,
        desired,
        found,
        changes,
        line,
    } = p;
    let backend = backend_name(&cluster);
    let mut state = plan::next_state(
        &desired,
        found.state.as_ref(),
        &changes,
        cluster.provider().as_str(),
        &backend,
        &cluster.hash,
        &run_id,
    );
    // An unchanged node keeps its record as it is (run id included): a no-op run writes nothing.
    if let Some(prev) = &found.state {
        if changes.files.is_empty() {
            state.run_id = prev.run_id.clone();
        }
    }
    let write_state = found.state.as_ref() != Some(&state);
    let t = txn::for_apply(
        &desired,
        &changes,
        found.state.as_ref(),
        write_state.then_some(&state),
    );
    line.phase("apply");
    let result = txn::apply(&remote, &t, &run_id).await;
    let report = match result {
        Ok(txn::Outcome::Applied) => NodeReport {
            name: node.name.clone(),
            result: if changes.files.is_empty()
                && changes.restart.is_empty()
                && changes.enable.is_empty()
            {
                Outcome::Unchanged
            } else {
                Outcome::Applied
            },
            files_changed: changes.files_changed(),
            commands_run: changes.commands.len(),
            restarts: changes.restart.len(),
            restarted: changes.restart.clone(),
            restarts_skipped: skipped,
            error: None,
            remote_executions: None,
            changes: Some(changes),
        },
        Ok(other) => NodeReport::failed(&node.name, &txn::failed(&remote, other, &run_id)),
        Err(e) => {
            // Staging failed before anything changed (exit 90, or refused here): the lock is
            // still ours. Any other error (a dropped connection) leaves the transaction to
            // finish on the node, and it releases the lock itself.
            if matches!(
                e,
                RemoteError::Command { status: 90, .. } | RemoteError::State { .. }
            ) {
                let _ = lock::unlock(&remote, &run_id).await;
            }
            let mut r = NodeReport::failed(&node.name, &e);
            if matches!(e, RemoteError::Transport(_)) {
                r.error = Some(format!(
                    "{e} (the node's transaction goes on without netctl: it finishes or puts the node back, and the next run reports it)"
                ));
            }
            r
        }
    };
    line.done(&format!("{:?}", report.result).to_lowercase());
    let mut report = report;
    report.remote_executions = Some(remote.executions());
    (report, Arc::new(remote))
}

pub fn backend_name(cluster: &Cluster) -> String {
    crate::network::Network::of(cluster)
        .backend()
        .unwrap_or_default()
        .into()
}

/// init's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Prepare,
    Confirm,
    Apply,
    Cluster,
    Verify,
}

pub const INIT: &[Phase<Step>] = &[
    Phase {
        id: Step::Prepare,
        title: "connect, lock and gather every node, and plan it",
    },
    Phase {
        id: Step::Confirm,
        title: "confirm (a dry run ends here)",
    },
    Phase {
        id: Step::Apply,
        title: "one transaction per node",
    },
    Phase {
        id: Step::Cluster,
        title: "cluster steps (cloud routes, kubectl)",
    },
    Phase {
        id: Step::Verify,
        title: "verify over the same sessions",
    },
];

struct Init<'a> {
    run: &'a Run,
    opts: &'a ApplyOptions,
    reports: BTreeMap<String, NodeReport>,
    ready: Vec<Prepared>,
    /// Sessions still open (closed at the end of the run).
    open: Vec<Arc<Remote>>,
    declined: bool,
    cluster: Vec<ClusterStepReport>,
    verify: Option<crate::verify::Report>,
}

impl Init<'_> {
    async fn prepare(&mut self) -> Flow {
        let run = self.run;
        let jobs: Vec<(Node, NodeLine)> = run
            .cluster
            .nodes
            .iter()
            .map(|n| (n.clone(), run.progress.node(&n.name)))
            .collect();
        let prepared = fleet::run(jobs, run.concurrency, |(node, line)| {
            prepare(run.clone(), node, line)
        })
        .await;
        for p in prepared {
            match p {
                Ok(p) => self.ready.push(p),
                Err(r) => {
                    run.progress.println(&format!(
                        "{}: {}",
                        r.name,
                        crate::printer::row_error(&r.name, r.error.as_deref().or(Some("failed")))
                    ));
                    self.reports.insert(r.name.clone(), r);
                }
            }
        }
        Flow::Next
    }

    /// A dry run, or a "no", reports the plan, releases the locks and ends the list.
    async fn confirm(&mut self) -> Flow {
        let run = self.run;
        let proceed = run.dry_run || self.opts.yes || confirm(&self.ready, &run.progress);
        if !run.dry_run && proceed {
            return Flow::Next;
        }
        self.declined = !proceed;
        for p in std::mem::take(&mut self.ready) {
            let skipped = skipped_restarts(&p);
            if !run.dry_run {
                let _ = lock::unlock(&p.remote, &run.id).await;
            }
            p.line.done(if run.dry_run {
                "planned"
            } else {
                "not applied"
            });
            self.reports.insert(
                p.node.name.clone(),
                NodeReport {
                    name: p.node.name.clone(),
                    result: Outcome::Planned,
                    files_changed: p.changes.files_changed(),
                    commands_run: 0,
                    restarts: p.changes.restart.len(),
                    restarted: p.changes.restart.clone(),
                    restarts_skipped: skipped,
                    error: None,
                    remote_executions: Some(p.remote.executions()),
                    changes: Some(p.changes),
                },
            );
            p.remote.close().await;
        }
        self.cluster = cluster_steps(self.run, true, false);
        Flow::Stop
    }

    async fn apply(&mut self) -> Flow {
        let run = self.run;
        let ready = std::mem::take(&mut self.ready);
        let applied = fleet::run(ready, run.concurrency, |p| {
            apply_node(run.cluster.clone(), p, run.id.clone())
        })
        .await;
        for (r, remote) in applied {
            if let Some(e) = &r.error {
                run.progress.println(&format!(
                    "{}: {}",
                    r.name,
                    crate::printer::row_error(&r.name, Some(e))
                ));
            }
            self.reports.insert(r.name.clone(), r);
            self.open.push(remote);
        }
        Flow::Next
    }

    fn any_failed(&self) -> bool {
        self.reports
            .values()
            .any(|n| matches!(n.result, Outcome::Failed | Outcome::Refused))
    }

    fn cluster_steps(&mut self) -> Flow {
        self.cluster = cluster_steps(self.run, false, self.any_failed());
        Flow::Next
    }

    /// init ends with verify (node and data-plane checks) when every node was applied.
    async fn verify(&mut self) -> Flow {
        if !self.opts.verify || self.any_failed() {
            return Flow::Next;
        }
        let run = self.run;
        let opts = crate::verify::Options {
            cluster_checks: false,
            concurrency: Some(run.concurrency),
            accept_new_host_keys: run.accept_new_host_keys,
            quiet: run.quiet,
            ..crate::verify::Options::default()
        };
        let open = self.open.clone();
        self.verify = Some(
            crate::commands::verify::run_on(
                run.cluster.clone(),
                run.inputs.clone(),
                opts,
                run.id.clone(),
                open,
            )
            .await,
        );
        Flow::Next
    }
}

impl Phases for Init<'_> {
    type Id = Step;
    type Error = std::convert::Infallible;

    async fn run(&mut self, id: Step) -> Result<Flow, Self::Error> {
        Ok(match id {
            Step::Prepare => self.prepare().await,
            Step::Confirm => self.confirm().await,
            Step::Apply => self.apply().await,
            Step::Cluster => self.cluster_steps(),
            Step::Verify => self.verify().await,
        })
    }

    async fn undo(&mut self, _: Step) -> Vec<String> {
        vec![]
    }
}

/// Run init (or a dry run). Returns the report; the caller prints it and picks the exit code.
pub async fn run(run: &Run, opts: ApplyOptions) -> RunReport {
    let mut init = Init {
        run,
        opts: &opts,
        reports: BTreeMap::new(),
        ready: vec![],
        open: vec![],
        declined: false,
        cluster: vec![],
        verify: None,
    };
    manager::run(&mut init, INIT, false).await;
    for r in std::mem::take(&mut init.open) {
        if let Ok(remote) = Arc::try_unwrap(r) {
            remote.close().await;
        }
    }
    let nodes: Vec<NodeReport> = run
        .cluster
        .nodes
        .iter()
        .filter_map(|n| init.reports.remove(&n.name))
        .collect();
    RunReport {
        run_id: run.id.clone(),
        nodes,
        cluster: init.cluster,
        declined: init.declined,
        verify: init.verify,
    }
}

/// Ask before changing nodes, when a person is there to answer and something would change (main
/// refuses a run without --yes and without a terminal before it connects). The plan's summary comes
/// first, and the progress lines are hidden while the question waits.
fn confirm(ready: &[Prepared], progress: &Progress) -> bool {
    use std::io::IsTerminal;
    let changing: Vec<&Prepared> = ready
        .iter()
        .filter(|p| !p.changes.files.is_empty() || !p.changes.restart.is_empty())
        .collect();
    if changing.is_empty() || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return true;
    }
    let mut summary = format!(
        "Plan: {} node(s) to change, {} unchanged (`netctl plan` shows the diffs):\n",
        changing.len(),
        ready.len() - changing.len()
    );
    for p in &changing {
        summary.push_str(&format!(
            "  {}: {} file(s), {} restart(s)\n",
            p.node.name,
            p.changes.files_changed(),
            p.changes.restart.len()
        ));
    }
    progress.suspend(|| {
        eprint!("{}", crate::printer::escape_controls(&summary));
        dialoguer::Confirm::new()
            .with_prompt(format!("Apply changes to {} node(s)?", changing.len()))
            .default(false)
            .interact()
            .unwrap_or(false)
    })
}

fn cluster_steps(run: &Run, dry_run: bool, nodes_failed: bool) -> Vec<ClusterStepReport> {
    let cluster = &run.cluster;
    let plan = provider::cluster_plan(cluster);
    let mut out = Vec::new();
    // Cloud routes (routes backend gce/aws): created once every node forwards.
    for c in &plan.local {
        let (result, detail) = if dry_run {
            ("skipped", Some("dry run".to_string()))
        } else if nodes_failed {
            ("skipped", Some("not run because a node failed".to_string()))
        } else {
            match crate::cloud::run(c) {
                Ok(crate::cloud::Outcome::Created) => ("applied", None),
                Ok(crate::cloud::Outcome::Unchanged(why)) => ("unchanged", Some(why.to_string())),
                Err(e) => ("failed", Some(e.to_string())),
            }
        };
        out.push(ClusterStepReport {
            step: format!("{} {}", c.program, c.args.join(" ")),
            result: result.into(),
            detail,
        });
    }
    if plan.kubectl.is_empty() {
        return out;
    }
    let skip = |why: String| {
        plan.kubectl
            .iter()
            .map(|s| ClusterStepReport {
                step: kubectl::describe(s),
                result: "skipped".into(),
                detail: Some(why.clone()),
            })
            .collect::<Vec<_>>()
    };
    if let Some(why) = kubectl::unavailable_reason(cluster) {
        out.extend(skip(why));
        return out;
    }
    if dry_run {
        out.extend(skip("dry run".into()));
        return out;
    }
    if nodes_failed {
        out.extend(skip("not applied because a node failed".into()));
        return out;
    }
    let dir = match PrivateDir::new("netctl-apply-") {
        Ok(d) => d,
        Err(e) => {
            out.extend(skip(format!("cannot make a temporary directory: {e}")));
            return out;
        }
    };
    let result = (|| {
        kubectl::write_cluster_files(&plan, dir.path())?;
        let k = run.kubectl("apply the provider's cluster manifests")?;
        for s in &plan.kubectl {
            k.run(&s.args, dir.path())?;
            out.push(ClusterStepReport {
                step: kubectl::describe(s),
                result: "applied".into(),
                detail: None,
            });
        }
        Ok::<(), kubectl::KubectlError>(())
    })();
    if let Err(e) = result {
        out.push(ClusterStepReport {
            step: "kubectl".into(),
            result: "failed".into(),
            detail: Some(e.to_string()),
        });
    }
    // Dropping `dir` removes it.
    out
}

/// The summary table, and for dry runs the per-node diffs, commands and restarts.
pub fn text(report: &RunReport, dry_run: bool) -> String {
    let mut out = String::new();
    if dry_run {
        for n in &report.nodes {
            let Some(ch) = &n.changes else { continue };
            out.push_str(&format!("==> {}\n", n.name));
            if ch.files.is_empty() {
                out.push_str("  files: no changes\n");
            }
            for f in &ch.files {
                out.push_str(&f.diff());
            }
            for c in &ch.commands {
                out.push_str(&format!("  run: {}  # {}\n", c.command, c.title));
            }
            if ch.daemon_reload {
                out.push_str("  systemctl daemon-reload\n");
            }
            for u in &ch.enable {
                out.push_str(&format!("  enable: {u}\n"));
            }
            for u in &ch.restart {
                out.push_str(&format!("  restart: {u}\n"));
            }
            for u in &n.restarts_skipped {
                out.push_str(&format!(
                    "  restart: {u} (skipped: the node has no init system)\n"
                ));
            }
        }
    }
    let mut t = Table::new(&["NODE", "RESULT", "FILES", "COMMANDS", "RESTARTS", "ERROR"]);
    for n in &report.nodes {
        let restarts = if n.restarts_skipped.is_empty() {
            n.restarts.to_string()
        } else {
            format!("{} ({} skipped)", n.restarts, n.restarts_skipped.len())
        };
        t.row(vec![
            n.name.clone(),
            format!("{:?}", n.result).to_lowercase(),
            n.files_changed.to_string(),
            n.commands_run.to_string(),
            restarts,
            crate::printer::row_error(&n.name, n.error.as_deref()),
        ]);
    }
    out.push_str(&t.render());
    for c in &report.cluster {
        out.push_str(&format!(
            "cluster: {} {}{}\n",
            c.step,
            c.result,
            c.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    let failed = report.failed_nodes().len();
    out.push_str(&format!(
        "run {}: {} nodes, {} failed\n",
        report.run_id,
        report.nodes.len(),
        failed
    ));
    out
}
