//! `switch` as a list of phases over one state, run by `phase::manager`: each phase that changes
//! the cluster or a node has its undo, so a failure anywhere after the nodes are locked puts back
//! what this run did - newest first - and the fleet's locks are released after, on every path.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::node::Conn;
use super::{SwitchOptions, SwitchReport};
use crate::kubectl::Kubectl;
use crate::migrate::{self, Endpoint, MigrationPlan};
use crate::phase::manager::{Flow, Phase, Phases};
use crate::profile::Cluster;
use crate::run::Run;
use crate::state::{NodeState, SwitchPhase, SwitchRecord};
use crate::tempdir::PrivateDir;
use crate::Error;

mod cluster;
mod nodes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Sweep,
    RollBackInterrupted,
    Decide,
    Plan,
    Preflight,
    Confirm,
    Kubectl,
    Record,
    ClusterObjects,
    PrepareNodes,
    Waves,
    Verify,
    Cleanup,
    Finish,
}

/// `switch --networking X` (and `--resume`).
pub const SWITCH: &[Phase<Step>] = &[
    Phase {
        id: Step::Sweep,
        title: "remove test pods an interrupted run left",
    },
    Phase {
        id: Step::Decide,
        title: "find the network every node runs",
    },
    Phase {
        id: Step::Plan,
        title: "plan each node (edits resolved against what it holds)",
    },
    Phase {
        id: Step::Preflight,
        title: "preflight of the target network (a failure stops here, nothing changed)",
    },
    Phase {
        id: Step::Confirm,
        title: "confirm",
    },
    Phase {
        id: Step::Kubectl,
        title: "find kubectl",
    },
    Phase {
        id: Step::Record,
        title: "record the switch on every node before anything changes",
    },
    Phase {
        id: Step::ClusterObjects,
        title: "apply the new provider's cluster objects",
    },
    Phase {
        id: Step::PrepareNodes,
        title: "prepare every node to receive the new way",
    },
    Phase {
        id: Step::Waves,
        title: "switch the nodes, a wave at a time, each behind its gate",
    },
    Phase {
        id: Step::Verify,
        title: "verify every node's data plane",
    },
    Phase {
        id: Step::Cleanup,
        title: "remove the old provider from the nodes and the cluster",
    },
    Phase {
        id: Step::Finish,
        title: "drop the switch records and check every node",
    },
];

/// `switch --rollback`: undo the switch the nodes' records name.
pub const ROLLBACK: &[Phase<Step>] = &[
    Phase {
        id: Step::Sweep,
        title: "remove test pods an interrupted run left",
    },
    Phase {
        id: Step::RollBackInterrupted,
        title: "put every recorded node back",
    },
];

/// The first phase that changes the cluster or a node: failures before it changed nothing.
pub const FIRST_CHANGE: Step = Step::Record;

pub struct Switch<'a> {
    pub run: &'a Run,
    pub opts: &'a SwitchOptions,
    pub to: Arc<Cluster>,
    pub conns: &'a [Conn],
    /// The run whose switch the nodes record, when `--resume`/`--rollback` took its locks over.
    pub take_over: Option<String>,
    records: Vec<Option<SwitchRecord>>,
    interrupted: Option<SwitchRecord>,
    pub from_ep: Option<Endpoint>,
    pub from: Option<Cluster>,
    mplan: Option<Arc<MigrationPlan>>,
    waves: Vec<Vec<usize>>,
    kubectl: Option<Arc<Kubectl>>,
    to_dir: Option<PrivateDir>,
    /// The nodes this run switched (or began to), for the report.
    switched: Vec<usize>,
    /// Nodes put back from their backups by a rollback.
    pub rolled: Vec<String>,
    /// Nodes a rollback could not finish: they keep the switch's record (and the way back).
    pub kept: Vec<String>,
    /// The nodes were rolled back already (every undo of a node phase is this one rollback).
    rolled_back: bool,
    pub steps: Vec<String>,
    /// Set by a phase that ends the run early (unchanged, planned, rolled back).
    pub report: Option<SwitchReport>,
    /// Errors after the point of no return (cleanup, the last gates): reported, not undone.
    pub errs: Vec<String>,
}

fn fail(msg: String) -> Error {
    Error::Failed(msg)
}

fn usage(e: migrate::EndpointError) -> Error {
    Error::Usage(e.to_string())
}

impl<'a> Switch<'a> {
    pub fn new(
        run: &'a Run,
        opts: &'a SwitchOptions,
        to: Arc<Cluster>,
        conns: &'a [Conn],
        take_over: Option<String>,
    ) -> Switch<'a> {
        let records: Vec<Option<SwitchRecord>> = conns
            .iter()
            .map(|c| c.found.state.as_ref().and_then(|s| s.switch.clone()))
            .collect();
        Switch {
            run,
            opts,
            to,
            conns,
            take_over,
            interrupted: records.iter().flatten().next().cloned(),
            records,
            from_ep: None,
            from: None,
            mplan: None,
            waves: vec![],
            kubectl: None,
            to_dir: None,
            switched: vec![],
            rolled: vec![],
            kept: vec![],
            rolled_back: false,
            steps: vec![],
            report: None,
            errs: vec![],
        }
    }

    fn report(&self, from: String, to: String, result: &str) -> SwitchReport {
        SwitchReport {
            run_id: self.run.id.clone(),
            from,
            to,
            result: result.into(),
            switched: vec![],
            rolled_back: vec![],
            error: None,
            steps: vec![],
        }
    }

    /// The names of the nodes this run switched (or began to).
    pub fn switched_names(&self) -> Vec<String> {
        self.switched
            .iter()
            .map(|&i| self.conns[i].node.name.clone())
            .collect()
    }
    /// Where does the cluster start? The interrupted run's start, `--from`, or what every node's
    /// record says (they must agree).
    fn decide(&mut self) -> Result<Flow, Error> {
        if let Some(r) = self.interrupted.as_ref().filter(|_| !self.opts.resume) {
            return Err(Error::Refused(format!(
                "an interrupted switch (run {}) is recorded on the nodes: continue it with `netctl switch --resume` or undo it with `netctl switch --rollback`",
                r.run_id
            )));
        }
        if let Some(r) = self.interrupted.as_ref().filter(|r| r.to != self.opts.to) {
            return Err(Error::Refused(format!(
                "the interrupted switch (run {}) goes from {} to {}, not to {}: `--resume` continues it to {} (say `--networking {}{}`), or `netctl switch --rollback` undoes it",
                r.run_id,
                r.from,
                r.to,
                self.opts.to,
                r.to,
                r.to.provider(),
                r.to.backend().map(|b| format!(" --backend {b}")).unwrap_or_default()
            )));
        }
        let from_ep = match (&self.opts.from, &self.interrupted) {
            (_, Some(r)) => r.from.clone(),
            (Some(f), None) => f.clone(),
            (None, None) => agreed_endpoint(self.conns)?,
        };
        if from_ep == self.opts.to && self.interrupted.is_none() {
            let ep = from_ep.to_string();
            self.report = Some(self.report(ep.clone(), ep, "unchanged"));
            return Ok(Flow::Stop);
        }
        self.from = Some(migrate::retarget(&self.run.cluster, &from_ep).map_err(usage)?);
        self.from_ep = Some(from_ep);
        Ok(Flow::Next)
    }

    /// The migration plan; edits (the kubelet, controller-manager and containerd files the
    /// operator has) become files against what each node holds, and one that cannot be made
    /// safely stops the switch before any node changes. A dry run ends here.
    fn plan(&mut self) -> Result<Flow, Error> {
        let from = self.from.as_ref().expect("decided");
        let mut mplan = migrate::plan(from, &self.to, &self.run.inputs);
        let mut edit_errors = Vec::new();
        for nm in &mut mplan.nodes {
            let Some(c) = self.conns.iter().find(|c| c.node.name == nm.node) else {
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
        // A node is done when its record says so and its files are the target's: a rollback
        // killed half way leaves records saying `switched` on nodes whose files it had already
        // put back, and those switch again.
        let pending: Vec<usize> = (0..self.conns.len())
            .filter(|&i| {
                let c = &self.conns[i];
                let switched =
                    matches!(&self.records[i], Some(r) if r.phase == SwitchPhase::Switched);
                !switched
                    || !crate::plan::diff(&mplan.nodes[i].install, &c.found, c.node.has_systemd())
                        .files
                        .is_empty()
            })
            .collect();
        self.waves = pending
            .chunks(self.opts.max_unavailable.max(1))
            .map(|w| w.to_vec())
            .collect();
        self.mplan = Some(Arc::new(mplan));
        if self.run.dry_run {
            let mut r = self.report(
                self.start().to_string(),
                self.opts.to.to_string(),
                "planned",
            );
            r.steps = self.description().lines().map(String::from).collect();
            self.report = Some(r);
            return Ok(Flow::Stop);
        }
        Ok(Flow::Next)
    }

    fn m(&self) -> Arc<MigrationPlan> {
        self.mplan.clone().expect("planned")
    }

    pub fn start(&self) -> &Endpoint {
        self.from_ep.as_ref().expect("decided")
    }

    fn description(&self) -> String {
        let names: Vec<Vec<String>> = self
            .waves
            .iter()
            .map(|w| w.iter().map(|&i| self.conns[i].node.name.clone()).collect())
            .collect();
        migrate::describe(&self.m(), &names)
    }

    /// What the target network needs, checked on every node and between them over the fleet's
    /// sessions before the question and any change. A continued switch was checked when it began
    /// (its switched nodes now hold the target's ports themselves).
    async fn preflight(&mut self) -> Result<Flow, Error> {
        if self.interrupted.is_some() {
            return Ok(Flow::Next);
        }
        if !self.opts.preflight {
            self.steps
                .push("preflight: skipped (--skip-preflight)".into());
            return Ok(Flow::Next);
        }
        let open: Vec<_> = self.conns.iter().map(|c| c.remote()).collect();
        let report = crate::preflight::run_on(self.run, self.to.clone(), &open).await;
        if !report.failed() {
            let s = report.summary;
            self.steps.push(format!(
                "preflight of {}: {} passed, 0 failed, {} skipped",
                self.opts.to, s.pass, s.skip
            ));
            return Ok(Flow::Next);
        }
        Err(Error::Failed(format!(
            "{}; nothing was changed (`netctl preflight -p {} --networking {}` shows every check; --skip-preflight goes on anyway)",
            crate::preflight::failures(&report),
            self.run.cluster.source.display(),
            self.opts.to
        )))
    }

    fn confirm(&mut self) -> Result<Flow, Error> {
        if !self.opts.yes {
            super::confirm(&self.description(), "Switch now?")?;
        }
        Ok(Flow::Next)
    }
}

impl Phases for Switch<'_> {
    type Id = Step;
    type Error = Error;

    async fn run(&mut self, id: Step) -> Result<Flow, Error> {
        match id {
            Step::Sweep => self.sweep().await,
            Step::RollBackInterrupted => self.roll_back_interrupted().await,
            Step::Decide => self.decide(),
            Step::Plan => self.plan(),
            Step::Preflight => self.preflight().await,
            Step::Confirm => self.confirm(),
            Step::Kubectl => self.find_kubectl(),
            Step::Record => self.record_all().await,
            Step::ClusterObjects => self.cluster_objects().await,
            Step::PrepareNodes => self.prepare_nodes().await,
            Step::Waves => self.waves().await,
            Step::Verify => self.verify().await,
            Step::Cleanup => self.cleanup().await,
            Step::Finish => self.finish().await,
        }
    }

    async fn undo(&mut self, id: Step) -> Vec<String> {
        match id {
            Step::ClusterObjects => self.undo_cluster_objects().await,
            // Every node back from what is on it: one rollback, whichever of these failed.
            Step::Record | Step::PrepareNodes | Step::Waves | Step::Verify => {
                self.roll_back_nodes().await
            }
            _ => vec![],
        }
    }
}

/// The network every node's record says it runs, when they agree.
fn agreed_endpoint(conns: &[Conn]) -> Result<Endpoint, Error> {
    let of_state = |st: &NodeState| Endpoint::from_parts(&st.provider, &st.backend).ok();
    let eps: BTreeMap<String, Vec<String>> = conns.iter().fold(BTreeMap::new(), |mut m, c| {
        let ep = c
            .found
            .state
            .as_ref()
            .and_then(of_state)
            .map(|e| e.to_string())
            .unwrap_or_else(|| "unmanaged".into());
        m.entry(ep).or_default().push(c.node.name.clone());
        m
    });
    let first = conns
        .first()
        .and_then(|c| c.found.state.as_ref().and_then(of_state));
    match (eps.len(), first) {
        (1, Some(ep)) if !eps.contains_key("unmanaged") => Ok(ep),
        _ => {
            let detail: Vec<String> = eps
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.join(", ")))
                .collect();
            Err(Error::Refused(format!(
                "the nodes do not agree on what they run ({}); say it with --from PROVIDER[:BACKEND]",
                detail.join("; ")
            )))
        }
    }
}
