//! `netctl reset`: per node, connect -> lock -> read state.json -> undo it (phase::reset) -> unlock.
//! A node netctl never touched is reported as such and left alone.

use serde::Serialize;

use crate::fleet;
use crate::phase::{lock, reset};
use crate::printer::Table;
use crate::profile::Node;
use crate::provider::NodePlan;
use crate::run::Run;

#[derive(Debug, Serialize)]
pub struct ResetReport {
    pub name: String,
    pub result: String,
    pub files_restored: usize,
    pub files_removed: usize,
    pub commands_run: usize,
    pub error: Option<String>,
    #[serde(skip)]
    pub refused: bool,
}

async fn reset_node(run: Run, node: Node, line: crate::printer::NodeLine) -> ResetReport {
    let name = node.name.clone();
    let run_id = &run.id;
    let r = async {
        line.phase("connect");
        let remote = run.connect(&node).await?;
        line.phase("lock and gather");
        let g = match crate::phase::gather::lock_and_gather_for_apply(
            &remote,
            &NodePlan::default(),
            &lock::Holder::me(run_id, "reset"),
        )
        .await
        {
            Ok(g) => g,
            Err(e) => {
                remote.close().await;
                return Err(e);
            }
        };
        // The reset transaction releases the lock itself; an unmanaged node is released here.
        let res = match g.state {
            None => {
                let _ = lock::unlock(&remote, run_id).await;
                Ok(None)
            }
            Some(st) => {
                line.phase("reset");
                reset::reset(&remote, &st, run_id, node.has_systemd())
                    .await
                    .map(Some)
            }
        };
        remote.close().await;
        res
    }
    .await;
    line.done("done");
    match r {
        Ok(None) => ResetReport {
            name,
            result: "unmanaged".into(),
            files_restored: 0,
            files_removed: 0,
            commands_run: 0,
            error: None,
            refused: false,
        },
        Ok(Some(c)) => ResetReport {
            name,
            result: "reset".into(),
            files_restored: c.files_restored,
            files_removed: c.files_removed,
            commands_run: c.commands_run,
            error: None,
            refused: false,
        },
        Err(e) => ResetReport {
            name,
            result: "failed".into(),
            files_restored: 0,
            files_removed: 0,
            commands_run: 0,
            refused: e.is_refusal(),
            error: Some(e.to_string()),
        },
    }
}

pub async fn run(run: &Run) -> Vec<ResetReport> {
    let jobs: Vec<_> = run
        .cluster
        .nodes
        .iter()
        .map(|n| (n.clone(), run.progress.node(&n.name)))
        .collect();
    fleet::run(jobs, run.concurrency, |(n, line)| {
        reset_node(run.clone(), n, line)
    })
    .await
}

pub fn text(reports: &[ResetReport]) -> String {
    let mut t = Table::new(&["NODE", "RESULT", "RESTORED", "REMOVED", "COMMANDS", "ERROR"]);
    for r in reports {
        t.row(vec![
            r.name.clone(),
            r.result.clone(),
            r.files_restored.to_string(),
            r.files_removed.to_string(),
            r.commands_run.to_string(),
            crate::printer::row_error(&r.name, r.error.as_deref()),
        ]);
    }
    t.render()
}
