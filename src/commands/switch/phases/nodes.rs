//! The phases that change nodes: sweep a killed run's test pods, record the switch on every node,
//! prepare every node, switch them wave by wave (each behind its gate), the last checks, and the
//! one rollback every failure (and `--rollback`) comes to.

use std::sync::Arc;
use std::time::Duration;

use super::super::node::{self, Back};
use crate::migrate;
use crate::phase::manager::Flow;
use crate::state::SwitchPhase;
use crate::Error;

use super::{fail, usage, Switch};

impl Switch<'_> {
    pub(super) async fn sweep(&mut self) -> Result<Flow, Error> {
        // Taking over a killed run: its gate may have died with test pods up.
        if self.take_over.is_none() {
            return Ok(Flow::Next);
        }
        let conf_dir = &self.run.cluster.profile.networking.cni_conf_dir;
        for (c, r) in self.conns.iter().zip(&self.records) {
            if r.is_some() {
                c.remote()
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

    /// `--rollback`: the switch the nodes record, undone on every node from what is on it.
    pub(super) async fn roll_back_interrupted(&mut self) -> Result<Flow, Error> {
        let Some(rec) = self.interrupted.clone() else {
            if let Some(run) = &self.take_over {
                // Killed before its first record: nothing changed; its locks go with this run's.
                let mut r = self.report(String::new(), String::new(), "nothing to roll back");
                r.steps = vec![format!(
                    "switch run {run} had changed nothing: its locks are released"
                )];
                self.report = Some(r);
                return Ok(Flow::Stop);
            }
            return Err(Error::Refused(
                "no interrupted switch is recorded on any node: nothing to roll back".into(),
            ));
        };
        let cluster = &self.run.cluster;
        let from = migrate::retarget(cluster, &rec.from).map_err(usage)?;
        let to = migrate::retarget(cluster, &rec.to).map_err(usage)?;
        self.mplan = Some(Arc::new(migrate::plan(&from, &to, &self.run.inputs)));
        self.from_ep = Some(rec.from.clone());
        self.from = Some(from.clone());
        if self.run.dry_run {
            let mut r = self.report(rec.to.to_string(), rec.from.to_string(), "planned");
            r.steps = self.rollback_plan(&rec.run_id);
            self.report = Some(r);
            return Ok(Flow::Stop);
        }
        if !self.opts.yes {
            let mut plan = format!(
                "roll back switch {} ({} -> {})\n",
                rec.run_id, rec.from, rec.to
            );
            for line in self.rollback_plan(&rec.run_id) {
                plan.push_str(&format!("  {line}\n"));
            }
            super::super::confirm(&plan, "Roll back now?")?;
        }
        let mut errors = self.roll_back_nodes_to(&rec.to).await;
        // The new provider's objects the switch applied go once no node runs it.
        if from.provider() != to.provider() && errors.is_empty() {
            errors.extend(self.delete_objects_of(&to).await);
        }
        let mut gate_errors = Vec::new();
        for c in self
            .conns
            .iter()
            .filter(|c| !self.kept.contains(&c.node.name))
        {
            if let Err(e) = node::gate(&c.remote(), &from, &self.run.inputs, &c.node, None).await {
                gate_errors.push(e);
            }
        }
        let result = if !errors.is_empty() {
            "rollback incomplete"
        } else if gate_errors.is_empty() {
            "rolled back"
        } else {
            "rolled back, verify failed"
        };
        let mut r = self.report(rec.to.to_string(), rec.from.to_string(), result);
        r.rolled_back = self.rolled.clone();
        errors.extend(gate_errors);
        if !self.kept.is_empty() {
            errors.push(format!(
                "{} keep the switch's record: run `netctl switch --rollback -p {}` again once they answer",
                self.kept.join(", "),
                self.run.cluster.source.display()
            ));
        }
        r.error = (!errors.is_empty()).then(|| errors.join("; "));
        self.report = Some(r);
        Ok(Flow::Stop)
    }

    /// What `--rollback --dry-run` would do on each node, read from the node's record.
    fn rollback_plan(&self, run_id: &str) -> Vec<String> {
        self.conns
            .iter()
            .map(|c| {
                let st = c.found.state.clone().unwrap_or_default();
                let what = match node::record_on(&st, run_id) {
                    Some(r) if r.phase == SwitchPhase::Prepared => {
                        "undo the prepare step, drop the record".to_string()
                    }
                    Some(r) => format!(
                        "put back {} file(s) from {}, re-run {}, undo the prepare step, drop the record",
                        r.files.len(),
                        r.backups(),
                        r.from
                    ),
                    None => "no record: undo the prepare step".to_string(),
                };
                format!("{}: {what}", c.node.name)
            })
            .collect()
    }

    /// Every node holds the switch's record before any of them changes (phase `prepared`), so
    /// a run killed at any later step leaves records that name it beside its locks.
    pub(super) async fn record_all(&mut self) -> Result<Flow, Error> {
        let from_ep = self.start().clone();
        let m = self.m();
        let run_id = &self.run.id;
        let written = bounded(
            self.run.concurrency,
            self.conns
                .iter()
                .zip(&m.nodes)
                .enumerate()
                .filter(|(i, _)| self.records[*i].is_none())
                .map(|(i, (c, nm))| {
                    let rec = node::record(c, nm, run_id, &from_ep, &self.opts.to);
                    let state = c.found.state.clone().unwrap_or_default();
                    async move {
                        let r = node::write_record(&c.remote(), &state, Some(&rec), run_id).await;
                        (i, rec, r)
                    }
                }),
        )
        .await;
        let mut errors = Vec::new();
        for (i, rec, r) in written {
            match r {
                Ok(()) => self.records[i] = Some(rec),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(Flow::Next)
        } else {
            Err(fail(errors.join("; ")))
        }
    }

    /// Every node learns to receive the new way before any node sends it.
    pub(super) async fn prepare_nodes(&mut self) -> Result<Flow, Error> {
        let m = self.m();
        let done = bounded(
            self.run.concurrency,
            self.conns.iter().zip(&m.nodes).map(|(c, nm)| async move {
                let r = node::run_steps(&c.remote(), &nm.prepare).await;
                crate::fault::point("prepare");
                r
            }),
        )
        .await;
        match done.into_iter().find_map(Result::err) {
            Some(e) => Err(fail(e.to_string())),
            None => Ok(Flow::Next),
        }
    }

    pub(super) fn wait(&self) -> Duration {
        self.opts.wait
    }

    pub(super) async fn waves(&mut self) -> Result<Flow, Error> {
        let pause = std::env::var("NETCTL_SWITCH_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let from_ep = self.start().clone();
        let m = self.m();
        let t = node::Target {
            run: self.run,
            to: &self.to,
            from_ep: &from_ep,
            to_ep: &self.opts.to,
            kubectl: self.kubectl.as_ref(),
            wait: self.wait(),
        };
        for (n, wave) in self.waves.iter().enumerate() {
            if n > 0 {
                crate::fault::point("between-waves");
            }
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
                self.switched.push(i);
                match r {
                    Ok(notes) => self.steps.extend(notes),
                    Err(e) => {
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

    /// The automatic rollback: every node back on the start, decided per node.
    pub(super) async fn roll_back_nodes(&mut self) -> Vec<String> {
        if self.rolled_back {
            return vec![];
        }
        let to = self.opts.to.clone();
        self.roll_back_nodes_to(&to).await
    }

    /// Every node put back from what is on it (its record, or the record a finished node moved
    /// aside), all at once: each waits for itself if it is away. A node that cannot be finished
    /// keeps its record (and lock) for the next `--rollback`.
    async fn roll_back_nodes_to(&mut self, to: &migrate::Endpoint) -> Vec<String> {
        self.rolled_back = true;
        let from = self.start().clone();
        let m = self.m();
        let b = node::Rollback {
            run: self.run,
            from: &from,
            to,
            unprepare: &[],
            wait: self.wait(),
        };
        let results = bounded(
            self.run.concurrency,
            self.conns.iter().zip(&m.nodes).map(|(c, nm)| {
                let b = node::Rollback {
                    unprepare: &nm.unprepare,
                    ..b
                };
                async move { (c, node::roll_back(c, &b).await) }
            }),
        )
        .await;
        let mut errors = Vec::new();
        for (c, r) in results {
            match r {
                Ok(Back::Restored) => self.rolled.push(c.node.name.clone()),
                Ok(Back::Unchanged) => {}
                Err(e) => {
                    self.kept.push(c.node.name.clone());
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// The switch is complete: each node's record moves aside with its lock released, and
    /// every node is gated once more.
    pub(super) async fn finish(&mut self) -> Result<Flow, Error> {
        let (run, to, wait) = (self.run, &self.to, self.wait());
        // One node after another: a run killed here leaves the nodes not yet settled holding
        // their records, so `--rollback` still finds the switch (all settled at once, nothing
        // would name it any more).
        let mut settled = Vec::new();
        for c in self.conns {
            match node::settle(c, run, wait).await {
                Ok(()) => settled.push(c),
                Err(e) => self.errs.push(e),
            }
            crate::fault::point("finish");
        }
        let gates = bounded(
            run.concurrency,
            settled.into_iter().map(|c| async move {
                node::gate(&c.remote(), to, &run.inputs, &c.node, None).await
            }),
        )
        .await;
        self.errs.extend(gates.into_iter().filter_map(Result::err));
        Ok(Flow::Next)
    }
}

/// The futures run at most `limit` at once (the run's concurrency: a switch of thousands of
/// nodes does not put thousands of steps in flight), results in their order.
pub(super) async fn bounded<R>(
    limit: usize,
    futures: impl IntoIterator<Item = impl std::future::Future<Output = R>>,
) -> Vec<R> {
    let permits = tokio::sync::Semaphore::new(limit.max(1));
    let permits = &permits;
    futures::future::join_all(futures.into_iter().map(|f| async move {
        let _permit = permits.acquire().await.expect("never closed");
        f.await
    }))
    .await
}
