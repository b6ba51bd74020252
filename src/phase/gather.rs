//! gather: one read-only round trip for the node's state file, lock, managed files and units.

use std::collections::BTreeSet;

use crate::provider::NodePlan;
use crate::remote::{Remote, RemoteError};
use crate::state::{self, Gathered};

/// Read every file the plan wants and every file state.json says netctl manages.
pub async fn gather(remote: &Remote, desired: &NodePlan) -> Result<Gathered, RemoteError> {
    // First learn which files the node's record lists, then read them all in the same script
    // pass: a second round trip only when the record names files the plan does not.
    let mut paths: BTreeSet<&str> = desired.files.iter().map(|f| f.path.as_str()).collect();
    let units: Vec<&str> = desired.units.iter().map(|u| u.name.as_str()).collect();
    let script = state::gather_script(&paths.iter().copied().collect::<Vec<_>>(), &units);
    let mut g = parse(remote, &script).await?;
    let extra: Vec<String> = g
        .state
        .as_ref()
        .map(|s| {
            s.files
                .keys()
                .filter(|p| !paths.contains(p.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !extra.is_empty() {
        paths = extra.iter().map(|s| s.as_str()).collect();
        let more = parse(
            remote,
            &state::gather_script(&paths.iter().copied().collect::<Vec<_>>(), &[]),
        )
        .await?;
        g.files.extend(more.files);
    }
    if let Some(e) = &g.state_error {
        return Err(RemoteError::State {
            node: remote.node.clone(),
            message: format!(
                "{} does not parse ({e}); move it aside to let netctl start afresh",
                state::STATE_FILE
            ),
        });
    }
    Ok(g)
}

async fn parse(remote: &Remote, script: &str) -> Result<Gathered, RemoteError> {
    let out = remote.read("gather", script).await?;
    state::parse_gather(&out).map_err(|e| RemoteError::State {
        node: remote.node.clone(),
        message: e.to_string(),
    })
}
