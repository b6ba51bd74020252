//! The phases that change nodes: sweep a killed run's test pods, put back an interrupted switch,
//! prepare every node, switch them wave by wave (each behind its gate), and the last checks.

use std::time::Duration;

use super::super::node;
use crate::migrate;
use crate::phase::manager::Flow;
use crate::state::Gathered;
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

    pub(super) async fn roll_back_interrupted(&mut self) -> Result<Flow, Error> {
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

    /// Every node learns to receive the new way before any node sends it.
    pub(super) async fn prepare_nodes(&mut self) -> Result<Flow, Error> {
        for (c, nm) in self.conns.iter().zip(&self.m().nodes) {
            node::run_steps(&c.remote, &nm.prepare)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(Flow::Next)
    }

    pub(super) async fn undo_prepare_nodes(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        for (c, nm) in self.conns.iter().zip(&self.m().nodes) {
            if let Err(e) = node::run_steps(&c.remote, &nm.unprepare).await {
                errs.push(e.to_string());
            }
        }
        errs
    }

    pub(super) async fn waves(&mut self) -> Result<Flow, Error> {
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

    pub(super) async fn undo_waves(&mut self) -> Vec<String> {
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

    /// The switch is complete: drop the progress records, and gate every node once more.
    pub(super) async fn finish(&mut self) -> Result<Flow, Error> {
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
