//! `netctl init` and `netctl plan` (= `init --dry-run`), a list of phases (`INIT`): per node, in
//! a sliding window, connect -> lock and gather -> plan; confirm; per node one transaction (files,
//! units, commands, restarts, record, unlock); the cluster-level steps; verify over the same
//! sessions. A node whose transaction fails puts itself back and is reported; the others finish,
//! so no phase of init has an undo.
//!
//! `node.rs` holds one node's part (prepare, its transaction), `cluster.rs` the cluster steps,
//! `report.rs` the report and its text.

mod cluster;
mod node;
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::fleet;
use crate::phase::lock;
use crate::phase::manager::{self, Flow, Phase, Phases};
use crate::printer::NodeLine;
use crate::profile::Node;
use crate::recorded::Mismatch;
use crate::remote::Remote;
use crate::run::Run;

use cluster::cluster_steps;
pub use node::backend_name;
use node::{apply_node, confirm, prepare, skipped_restarts, Prepared};
pub use report::{text, ClusterStepReport, DiffMode, NodeReport, Outcome, RunReport};

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub yes: bool,
    /// End with verify (node and data-plane checks) when every node was applied.
    pub verify: bool,
    /// Apply even where a node records another provider or backend than the profile names.
    pub allow_provider_change: bool,
    /// Run preflight before any change and stop when a check fails (false: `--skip-preflight`,
    /// said in the report; a dry run never runs it).
    pub preflight: bool,
}

/// init's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Prepare,
    Network,
    Preflight,
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
        id: Step::Network,
        title: "refuse a network change the nodes do not record (--allow-provider-change)",
    },
    Phase {
        id: Step::Preflight,
        title: "preflight over the same sessions: stop before any change when a check fails",
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
    preflight: Option<crate::verify::Report>,
    warnings: Vec<String>,
    refusal: Option<String>,
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

    /// A node that records another network than the profile names is moved by `switch`, with
    /// its waves, gates and rollback, not by init all at once: init refuses before any node
    /// changes (its locks released), unless the operator asked for the unguarded change. A plan
    /// shows the same as a warning.
    async fn network(&mut self) -> Flow {
        let run = self.run;
        let profile = run.cluster.source.display().to_string();
        let found: Vec<(String, Mismatch)> = self
            .ready
            .iter()
            .filter_map(|p| {
                let m = crate::recorded::mismatch(&run.cluster, p.found.state.as_ref()?)?;
                Some((p.node.name.clone(), m))
            })
            .collect();
        let Some((_, first)) = found.first() else {
            return Flow::Next;
        };
        // One line per distinct record (a cluster set up by one run says it once).
        let mut nodes: Vec<(String, Vec<&str>)> = Vec::new();
        for (n, m) in &found {
            match nodes.iter_mut().find(|(d, _)| *d == m.describe()) {
                Some((_, names)) => names.push(n),
                None => nodes.push((m.describe(), vec![n])),
            }
        }
        let nodes: Vec<String> = nodes
            .into_iter()
            .map(|(d, names)| format!("{}: {d}", names.join(", ")))
            .collect();
        let unguarded = "`netctl init --allow-provider-change` changes every node at once, without switch's waves, gates and rollback";
        if run.dry_run || self.opts.allow_provider_change {
            let then = if self.opts.allow_provider_change {
                "applying it anyway (--allow-provider-change)".to_string()
            } else {
                format!(
                    "init will refuse; {}; {unguarded}",
                    first.ways_out(&profile)
                )
            };
            for n in &nodes {
                self.warnings.push(format!("{n}: {then}"));
            }
            return Flow::Next;
        }
        let msg = format!(
            "{}: {}; {unguarded}. Nothing was changed",
            nodes.join("; "),
            first.ways_out(&profile)
        );
        for p in std::mem::take(&mut self.ready) {
            let mismatch = found.iter().find(|(n, _)| *n == p.node.name);
            let (result, error) = match mismatch {
                Some((_, m)) => (Outcome::Refused, m.describe()),
                None => (
                    Outcome::Planned,
                    "not applied: another node records another network".into(),
                ),
            };
            self.leave(p, "refused", result, Some(error)).await;
        }
        self.refusal = Some(msg);
        Flow::Stop
    }

    /// A node left before any change (a refusal, a failed preflight): its lock released, its
    /// session closed, its report.
    async fn leave(&mut self, p: Prepared, done: &str, result: Outcome, error: Option<String>) {
        let _ = lock::unlock(&p.remote, &self.run.id).await;
        p.line.done(done);
        self.reports.insert(
            p.node.name.clone(),
            NodeReport {
                name: p.node.name.clone(),
                result,
                files_changed: p.changes.files_changed(),
                commands_run: 0,
                restarts: p.changes.restart.len(),
                restarted: vec![],
                restarts_skipped: vec![],
                error,
                remote_executions: Some(p.remote.executions()),
                changes: None,
            },
        );
        if let Ok(remote) = Arc::try_unwrap(p.remote) {
            remote.close().await;
        }
    }

    /// Everything the network needs, checked over the sessions prepare opened before the question
    /// and any change; a failure ends the run with every node unchanged and its lock released.
    async fn preflight(&mut self) -> Flow {
        let run = self.run;
        if run.dry_run || !self.opts.preflight || self.ready.is_empty() {
            return Flow::Next;
        }
        let open: Vec<Arc<Remote>> = self.ready.iter().map(|p| p.remote.clone()).collect();
        let report = crate::preflight::run_on(run, run.cluster.clone(), &open).await;
        drop(open);
        let failed = report.failed();
        self.preflight = Some(report);
        if !failed {
            return Flow::Next;
        }
        for p in std::mem::take(&mut self.ready) {
            self.leave(p, "not applied (preflight)", Outcome::Planned, None)
                .await;
        }
        Flow::Stop
    }

    /// A dry run, or a "no", reports the plan, releases the locks and ends the list.
    async fn confirm(&mut self) -> Flow {
        let run = self.run;
        let proceed = run.dry_run || self.opts.yes || confirm(&self.ready, &run.progress).is_ok();
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
            if let Ok(remote) = Arc::try_unwrap(p.remote) {
                remote.close().await;
            }
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

    /// kubectl and the cloud CLIs block (an apply may wait on the API server): off the async
    /// workers.
    async fn cluster_steps(&mut self) -> Flow {
        let (run, failed) = (self.run.clone(), self.any_failed());
        self.cluster = tokio::task::spawn_blocking(move || cluster_steps(&run, false, failed))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
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
            ..crate::verify::Options::default()
        };
        let open = self.open.clone();
        let report = crate::commands::verify::run_on(run, run.cluster.clone(), opts, open).await;
        self.verify = Some(report);
        Flow::Next
    }
}

impl Phases for Init<'_> {
    type Id = Step;
    type Error = std::convert::Infallible;

    async fn run(&mut self, id: Step) -> Result<Flow, Self::Error> {
        Ok(match id {
            Step::Prepare => self.prepare().await,
            Step::Network => self.network().await,
            Step::Preflight => self.preflight().await,
            Step::Confirm => self.confirm().await,
            Step::Apply => self.apply().await,
            Step::Cluster => self.cluster_steps().await,
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
        preflight: None,
        warnings: vec![],
        refusal: None,
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
        format_version: report::FORMAT_VERSION,
        run_id: run.id.clone(),
        nodes,
        cluster: init.cluster,
        declined: init.declined,
        verify: init.verify,
        preflight: init.preflight,
        preflight_skipped: !opts.preflight && !run.dry_run,
        warnings: init.warnings,
        refusal: init.refusal,
    }
}
