//! init's cluster steps: cloud routes created once every node forwards, then the provider's
//! manifests through kubectl.

use crate::kubectl;
use crate::provider::{self};
use crate::run::Run;
use crate::tempdir::PrivateDir;

use super::report::ClusterStepReport;

pub(super) fn cluster_steps(
    run: &Run,
    dry_run: bool,
    nodes_failed: bool,
) -> Vec<ClusterStepReport> {
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
