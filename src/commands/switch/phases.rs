//! `switch` as a list of phases over one state, run by `phase::manager`: each phase that changes
//! the cluster or a node has its undo, so a failure anywhere after the nodes are locked puts back
//! what this run did - newest first - and the fleet's locks are released after, on every path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::node::{self, Conn};
use super::{SwitchOptions, SwitchReport};
use crate::kubectl::{self, Kubectl};
use crate::migrate::{self, Endpoint, MigrationPlan};
use crate::phase::manager::{Flow, Phase, Phases};
use crate::profile::Cluster;
use crate::run::Run;
use crate::state::{Gathered, NodeState, SwitchPhase, SwitchRecord};
use crate::tempdir::PrivateDir;
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Sweep,
    RollBackInterrupted,
    Decide,
    Plan,
    Confirm,
    Kubectl,
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
        id: Step::Confirm,
        title: "confirm",
    },
    Phase {
        id: Step::Kubectl,
        title: "find kubectl",
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
pub const FIRST_CHANGE: Step = Step::ClusterObjects;

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
    switched: Vec<(usize, SwitchRecord)>,
    pub rolled: Vec<String>,
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
            .map(|(i, _)| self.conns[*i].node.name.clone())
            .collect()
    }

    async fn sweep(&mut self) -> Result<Flow, Error> {
        // Taking over a killed run: its gate may have died with test pods up.
        if self.take_over.is_none() {
            return Ok(Flow::Next);
        }
        let conf_dir = &self.run.cluster.profile.networking.cni_conf_dir;
        for (c, r) in self.conns.iter().zip(&self.records) {
            if r.is_some() {
                c.remote
                    .change(
                        "remove test pods the interrupted run left",
                        &crate::verify::dataplane::sweep_script(conf_dir),
                    )
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(Flow::Next)
    }

    async fn roll_back_interrupted(&mut self) -> Result<Flow, Error> {
        let Some(rec) = self.interrupted.clone() else {
            return Err(Error::Refused(
                "no interrupted switch is recorded on any node: nothing to roll back".into(),
            ));
        };
        for (c, r) in self.conns.iter().zip(&self.records).rev() {
            if let Some(r) = r {
                self.run
                    .progress
                    .println(&format!("{}: rolling back to {}", c.node.name, r.from));
                node::roll_back(&c.remote, r, c.node.has_systemd())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                self.rolled.push(c.node.name.clone());
            }
        }
        let cluster = &self.run.cluster;
        let from = migrate::retarget(cluster, &rec.from).map_err(usage)?;
        let to = migrate::retarget(cluster, &rec.to).map_err(usage)?;
        let mplan = migrate::plan(&from, &to, &self.run.inputs);
        for (c, nm) in self.conns.iter().zip(&mplan.nodes) {
            node::run_steps(&c.remote, &nm.unprepare)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let mut gate_errors = Vec::new();
        for c in self.conns {
            if let Err(e) = node::gate(&c.remote, &from, &self.run.inputs, &c.node, None).await {
                gate_errors.push(e);
            }
        }
        let mut r = self.report(
            rec.to.to_string(),
            rec.from.to_string(),
            if gate_errors.is_empty() {
                "rolled back"
            } else {
                "rolled back, verify failed"
            },
        );
        r.rolled_back = self.rolled.clone();
        r.error = (!gate_errors.is_empty()).then(|| gate_errors.join("; "));
        self.report = Some(r);
        Ok(Flow::Stop)
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
        let pending: Vec<usize> = (0..self.conns.len())
            .filter(|&i| !matches!(&self.records[i], Some(r) if r.phase == SwitchPhase::Switched))
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

    fn confirm(&mut self) -> Result<Flow, Error> {
        if !self.opts.yes {
            super::confirm(&self.description())?;
        }
        Ok(Flow::Next)
    }

    fn find_kubectl(&mut self) -> Result<Flow, Error> {
        match kubectl::unavailable_reason(&self.run.cluster) {
            None => {
                let k = self
                    .run
                    .kubectl("drain nodes and apply the new provider's objects")
                    .map_err(|e| fail(e.to_string()))?;
                self.kubectl = Some(Arc::new(k));
            }
            Some(why) => self
                .run
                .progress
                .println(&format!("cluster steps skipped: {why}")),
        }
        Ok(Flow::Next)
    }

    /// The new provider's objects, applied before any node moves (deleted again by the undo).
    async fn cluster_objects(&mut self) -> Result<Flow, Error> {
        let Some(k) = self
            .kubectl
            .clone()
            .filter(|_| !self.m().cluster_prepare.is_empty())
        else {
            return Ok(Flow::Next);
        };
        let dir = super::cluster_files(&self.to).map_err(fail)?;
        let dir = self.to_dir.insert(dir).path().to_path_buf();
        for s in &self.m().cluster_prepare {
            k.call(&s.args, &dir)
                .await
                .map_err(|e| fail(e.to_string()))?;
            self.steps.push(kubectl::describe(s));
        }
        Ok(Flow::Next)
    }

    async fn undo_cluster_objects(&mut self) -> Vec<String> {
        let (Some(k), Some(dir)) = (&self.kubectl, &self.to_dir) else {
            return vec![];
        };
        let mut errs = Vec::new();
        for s in &crate::provider::cluster_plan(&self.to).kubectl_teardown {
            if let Err(e) = k.call(&s.args, dir.path()).await {
                errs.push(e.to_string());
            }
        }
        errs
    }

    /// Every node learns to receive the new way before any node sends it.
    async fn prepare_nodes(&mut self) -> Result<Flow, Error> {
        for (c, nm) in self.conns.iter().zip(&self.m().nodes) {
            node::run_steps(&c.remote, &nm.prepare)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(Flow::Next)
    }

    async fn undo_prepare_nodes(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        for (c, nm) in self.conns.iter().zip(&self.m().nodes) {
            if let Err(e) = node::run_steps(&c.remote, &nm.unprepare).await {
                errs.push(e.to_string());
            }
        }
        errs
    }

    async fn waves(&mut self) -> Result<Flow, Error> {
        let pause = std::env::var("NETCTL_SWITCH_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let from_ep = self.start().clone();
        let m = self.m();
        let t = node::Target {
            to: &self.to,
            inputs: &self.run.inputs,
            from_ep: &from_ep,
            to_ep: &self.opts.to,
            run_id: &self.run.id,
            kubectl: self.kubectl.as_ref(),
        };
        for wave in &self.waves {
            let results = futures::future::join_all(wave.iter().map(|&i| {
                let (c, nm) = (&self.conns[i], &m.nodes[i]);
                let line = self.run.progress.node(&c.node.name);
                let t = &t;
                async move {
                    line.phase("switching");
                    let r = node::switch(c, nm, t).await;
                    line.done(if r.is_ok() { "switched" } else { "failed" });
                    (i, r)
                }
            }))
            .await;
            let mut failure = None;
            for (i, r) in results {
                match r {
                    Ok(rec) => self.switched.push((i, rec)),
                    Err(e) => {
                        // The failed node changed files too: its record is on the node.
                        let (c, nm) = (&self.conns[i], &m.nodes[i]);
                        let rec = node::record(c, nm, &self.run.id, &from_ep, &self.opts.to);
                        self.switched.push((i, rec));
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(fail(e));
            }
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
        }
        Ok(Flow::Next)
    }

    async fn undo_waves(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        for (i, rec) in self.switched.iter().rev() {
            let c = &self.conns[*i];
            self.run.progress.println(&format!(
                "{}: rolling back to {}",
                c.node.name,
                self.start()
            ));
            match node::roll_back(&c.remote, rec, c.node.has_systemd()).await {
                Ok(()) => self.rolled.push(c.node.name.clone()),
                Err(e) => errs.push(e.to_string()),
            }
        }
        errs
    }

    /// Every node runs the new provider, the old way is still in place: verify (node and
    /// data-plane checks over the fleet's sessions; readiness was waited for per node) is the
    /// last gate before anything old is removed.
    async fn verify(&mut self) -> Result<Flow, Error> {
        let vopts = crate::verify::Options {
            cluster_checks: false,
            dataplane: true,
            smoke: false,
            mesh: if self.conns.len() > 20 {
                crate::verify::Mesh::Ring
            } else {
                crate::verify::Mesh::Full
            },
            concurrency: Some(self.run.concurrency),
            accept_new_host_keys: self.run.accept_new_host_keys,
            quiet: true,
        };
        let open = self.conns.iter().map(|c| c.remote.clone()).collect();
        let report = crate::commands::verify::run_on(
            self.to.clone(),
            self.run.inputs.clone(),
            vopts,
            self.run.id.clone(),
            open,
        )
        .await;
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| c.status == crate::verify::Status::Fail)
            .map(|c| format!("{} on {}: {}", c.id, c.subject, c.detail))
            .collect();
        if !failed.is_empty() {
            return Err(fail(format!(
                "verify after the last wave failed: {}",
                failed.join("; ")
            )));
        }
        self.steps.push(format!(
            "verify: {} passed, {} skipped",
            report.summary.pass, report.summary.skip
        ));
        Ok(Flow::Next)
    }

    /// Every node runs the new provider: remove the old way, then the old cluster objects.
    /// Past the point of no return: errors are reported, not undone.
    async fn cleanup(&mut self) -> Result<Flow, Error> {
        let m = self.m();
        for (c, nm) in self.conns.iter().zip(&m.nodes) {
            if let Err(e) = node::run_steps(&c.remote, &nm.cleanup).await {
                self.errs.push(e.to_string());
            }
        }
        self.to_dir = None;
        let Some(k) = self
            .kubectl
            .clone()
            .filter(|_| !self.m().cluster_cleanup.is_empty())
        else {
            return Ok(Flow::Next);
        };
        // The old provider's manifests, in a directory of their own.
        match super::cluster_files(self.from.as_ref().expect("decided")) {
            Ok(dir) => {
                for s in &m.cluster_cleanup {
                    match k.call(&s.args, dir.path()).await {
                        Ok(_) => self.steps.push(kubectl::describe(s)),
                        Err(e) => self.errs.push(e.to_string()),
                    }
                }
            }
            Err(e) => self.errs.push(e),
        }
        Ok(Flow::Next)
    }

    /// The switch is complete: drop the progress records, and gate every node once more.
    async fn finish(&mut self) -> Result<Flow, Error> {
        for c in self.conns {
            let g = crate::phase::gather::gather(&c.remote, &Default::default()).await;
            if let Ok(Gathered {
                state: Some(st), ..
            }) = g
            {
                if st.switch.is_some() {
                    if let Err(e) = node::write_record(&c.remote, &st, None, &self.run.id).await {
                        self.errs.push(e.to_string());
                    }
                }
            }
            if let Err(e) = node::gate(&c.remote, &self.to, &self.run.inputs, &c.node, None).await {
                self.errs.push(e);
            }
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
            Step::Confirm => self.confirm(),
            Step::Kubectl => self.find_kubectl(),
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
            Step::PrepareNodes => self.undo_prepare_nodes().await,
            Step::Waves => self.undo_waves().await,
            // Nothing changed (or, for Verify, the waves' undo puts the nodes back).
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
