//! The phases that talk to the cluster: find kubectl, apply the new provider's objects (and
//! delete them again), verify over the fleet's sessions, remove the old provider.

use std::sync::Arc;

use super::super::node;
use crate::kubectl;
use crate::phase::manager::Flow;
use crate::Error;

use super::{fail, Switch};

impl Switch<'_> {
    pub(super) fn find_kubectl(&mut self) -> Result<Flow, Error> {
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
    pub(super) async fn cluster_objects(&mut self) -> Result<Flow, Error> {
        let Some(k) = self
            .kubectl
            .clone()
            .filter(|_| !self.m().cluster_prepare.is_empty())
        else {
            return Ok(Flow::Next);
        };
        let dir = super::super::cluster_files(&self.to).map_err(fail)?;
        let dir = self.to_dir.insert(dir).path().to_path_buf();
        for s in &self.m().cluster_prepare {
            k.call(&s.args, &dir)
                .await
                .map_err(|e| fail(e.to_string()))?;
            self.steps.push(kubectl::describe(s));
        }
        Ok(Flow::Next)
    }

    /// `--rollback` of a provider change: the new provider's objects the switch applied are
    /// deleted (kubectl `delete --ignore-not-found`: also where the killed run had applied none).
    pub(super) async fn delete_objects_of(&mut self, to: &crate::profile::Cluster) -> Vec<String> {
        if kubectl::unavailable_reason(&self.run.cluster).is_some() {
            return vec![];
        }
        let k = match self.run.kubectl("delete the new provider's objects") {
            Ok(k) => Arc::new(k),
            Err(e) => return vec![e.to_string()],
        };
        let dir = match super::super::cluster_files(to) {
            Ok(d) => d,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        for s in &crate::provider::cluster_plan(to).kubectl_teardown {
            match k.call(&s.args, dir.path()).await {
                Ok(_) => self.steps.push(kubectl::describe(s)),
                Err(e) => errs.push(e.to_string()),
            }
        }
        errs
    }

    pub(super) async fn undo_cluster_objects(&mut self) -> Vec<String> {
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

    /// Every node runs the new provider, the old way is still in place: verify (node and
    /// data-plane checks over the fleet's sessions; readiness was waited for per node) is the
    /// last gate before anything old is removed.
    pub(super) async fn verify(&mut self) -> Result<Flow, Error> {
        let vopts = crate::verify::Options {
            cluster_checks: false,
            dataplane: true,
            smoke: false,
            // verify's default: the full mesh on small clusters, strided above (docs/verify.md).
            mesh: crate::verify::Mesh::Auto,
            quiet: true,
        };
        // A node that rebooted after its wave is waited for and reached again first.
        let (run, wait) = (self.run, self.wait());
        let open = super::nodes::bounded(
            run.concurrency,
            self.conns.iter().map(|c| c.reach(run, wait)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .map_err(fail)?;
        let report = crate::commands::verify::run_on(self.run, self.to.clone(), vopts, open).await;
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
        self.steps
            .extend(crate::verify::node::pods_to_recreate(&report.checks));
        Ok(Flow::Next)
    }

    /// Every node runs the new provider: remove the old way, then the old cluster objects.
    /// Past the point of no return: errors are reported, not undone.
    pub(super) async fn cleanup(&mut self) -> Result<Flow, Error> {
        let m = self.m();
        let (run, wait) = (self.run, self.wait());
        let done = super::nodes::bounded(
            run.concurrency,
            self.conns.iter().zip(&m.nodes).map(|(c, nm)| async move {
                let remote = c.reach(run, wait).await?;
                let r = node::run_steps(&remote, &nm.cleanup)
                    .await
                    .map_err(|e| e.to_string());
                crate::fault::point("cleanup");
                r
            }),
        )
        .await;
        self.errs.extend(done.into_iter().filter_map(Result::err));
        self.to_dir = None;
        let Some(k) = self
            .kubectl
            .clone()
            .filter(|_| !self.m().cluster_cleanup.is_empty())
        else {
            return Ok(Flow::Next);
        };
        // The old provider's manifests, in a directory of their own.
        match super::super::cluster_files(self.from.as_ref().expect("decided")) {
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
}
