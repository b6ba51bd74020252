//! One node's part of a switch: its record, the switch itself, the gate after it, and the way back
//! from the backups its record names.

use std::sync::Arc;

use crate::kubectl::Kubectl;
use crate::migrate::{Endpoint, NodeMigration};
use crate::phase::apply;
use crate::plan;
use crate::profile::{Cluster, Node};
use crate::provider::{sh_quote, Inputs, NodePlan, Step};
use crate::remote::{Remote, RemoteError};
use crate::state::{Gathered, NodeState, SwitchPhase, SwitchRecord};

/// A node the switch holds: locked, gathered, its session shared with the gate's test pods.
pub struct Conn {
    pub node: Node,
    pub remote: Arc<Remote>,
    pub found: Gathered,
}

pub async fn run_steps(remote: &Remote, steps: &[Step]) -> Result<(), RemoteError> {
    for s in steps {
        remote.change(&s.title, &s.command).await?;
    }
    Ok(())
}

pub async fn write_record(
    remote: &Remote,
    state: &NodeState,
    rec: Option<&SwitchRecord>,
    run_id: &str,
) -> Result<(), RemoteError> {
    let mut st = state.clone();
    st.switch = rec.cloned();
    apply::record(remote, &st, run_id).await
}

/// The record of what switching `c` changes (written before the first change, so a rollback
/// knows every file even when the switch dies half way).
pub fn record(
    c: &Conn,
    nm: &NodeMigration,
    run_id: &str,
    from: &Endpoint,
    to: &Endpoint,
) -> SwitchRecord {
    let changes = plan::diff(&nm.install, &c.found, c.node.has_systemd());
    SwitchRecord {
        run_id: run_id.to_string(),
        from: from.clone(),
        to: to.clone(),
        phase: SwitchPhase::Switching,
        files: changes
            .files
            .iter()
            .map(|f| (f.path.clone(), f.action))
            .collect(),
    }
}

/// The node gate: verify's node checks (forwarding, CNI config, files, services, routes) for the
/// provider the node should now run, over the node's open session; with `pods_suffix`, then the
/// node's own data plane (test pods made with its active CNI config, pinged on the node). Gates
/// after a rollback check the node checks only: the data plane before the switch is not netctl's
/// to judge.
pub async fn gate(
    remote: &Arc<Remote>,
    to: &Cluster,
    inputs: &Inputs,
    node: &Node,
    pods_suffix: Option<&str>,
) -> Result<(), String> {
    use crate::verify::{dataplane, node as checks, Status};
    let plan = crate::provider::node_plan(to, node, inputs);
    let out = remote
        .probe(&checks::script(to, node, &plan))
        .await
        .map_err(|e| e.to_string())?;
    let facts = checks::parse(&String::from_utf8_lossy(&out.stdout));
    let mut found = checks::checks(to, node, &plan, &facts);
    let node_ok = found.iter().all(|c| c.status != Status::Fail);
    if let Some(suffix) = pods_suffix.filter(|_| node_ok) {
        // A config netctl cannot run (a DaemonSet provider's, not installed yet) comes back as
        // skips, which do not fail the gate.
        let p = dataplane::Participant {
            node: node.clone(),
            remote: remote.clone(),
            facts,
        };
        found.extend(dataplane::node_alone(to, p, suffix).await);
    }
    let failed: Vec<String> = found
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{} {}", c.id, c.detail))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: gate failed: {}", node.name, failed.join("; ")))
    }
}

/// What switching one node needs besides the node.
pub struct Target<'a> {
    pub to: &'a Cluster,
    /// The run's certificates and binaries, for the target's plans.
    pub inputs: &'a Inputs,
    pub from_ep: &'a Endpoint,
    pub to_ep: &'a Endpoint,
    pub run_id: &'a str,
    pub kubectl: Option<&'a Arc<Kubectl>>,
}

fn kubectl_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Switch one node; returns the record of what changed (for a rollback).
pub async fn switch(c: &Conn, nm: &NodeMigration, t: &Target<'_>) -> Result<SwitchRecord, String> {
    let remote = &c.remote;
    let systemd = c.node.has_systemd();
    let old_state = c.found.state.clone().unwrap_or_default();
    let changes = plan::diff(&nm.install, &c.found, systemd);
    let mut rec = record(c, nm, t.run_id, t.from_ep, t.to_ep);
    let here = std::path::Path::new(".");
    let r = async {
        write_record(remote, &old_state, Some(&rec), t.run_id).await?;
        if let Some(k) = t.kubectl {
            let drain = [
                "drain",
                &c.node.name,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
            ];
            let _ = k.call(&kubectl_args(&drain), here).await;
        }
        if systemd {
            for u in &nm.stop {
                remote
                    .change(
                        &format!("stop {u}"),
                        &format!("systemctl stop {} || true", sh_quote(u)),
                    )
                    .await?;
            }
        }
        run_steps(remote, &nm.teardown).await?;
        apply::files(remote, &changes, t.run_id).await?;
        apply::units(remote, &changes).await?;
        if systemd {
            for u in &nm.disable {
                remote
                    .change(
                        &format!("disable {u}"),
                        &format!("systemctl disable --now --quiet {} || true", sh_quote(u)),
                    )
                    .await?;
            }
        }
        apply::commands(remote, &changes.commands).await?;
        apply::restart(remote, &changes.restart).await?;
        if systemd {
            for u in nm.stop.iter().filter(|u| !changes.restart.contains(u)) {
                remote
                    .change(
                        &format!("start {u}"),
                        &format!("systemctl start {}", sh_quote(u)),
                    )
                    .await?;
            }
        }
        Ok::<(), RemoteError>(())
    }
    .await;
    r.map_err(|e| e.to_string())?;
    rec.phase = SwitchPhase::Switched;
    let backend = crate::commands::apply::backend_name(t.to);
    let new_state = plan::next_state(
        &nm.install,
        Some(&old_state),
        &changes,
        t.to.provider().as_str(),
        &backend,
        &t.to.hash,
        t.run_id,
    );
    write_record(remote, &new_state, Some(&rec), t.run_id)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(k) = t.kubectl {
        let node = format!("node/{}", c.node.name);
        let wait = ["wait", "--for=condition=Ready", &node, "--timeout=300s"];
        k.call(&kubectl_args(&wait), here)
            .await
            .map_err(|e| format!("{}: not ready after the switch: {e}", c.node.name))?;
        let _ = k
            .call(&kubectl_args(&["uncordon", &c.node.name]), here)
            .await;
    }
    let suffix = crate::verify::run_suffix(t.run_id);
    gate(remote, t.to, t.inputs, &c.node, Some(&suffix)).await?;
    Ok(rec)
}

/// Put a node back from the backups its switch record names, then re-apply its old provider.
pub async fn roll_back(
    remote: &Remote,
    rec: &SwitchRecord,
    systemd: bool,
) -> Result<(), RemoteError> {
    remote
        .change("restore backups", &rec.roll_back_script())
        .await?;
    let g = crate::phase::gather::gather(remote, &NodePlan::default()).await?;
    if let Some(old) = g.state {
        if systemd {
            remote
                .change("systemctl daemon-reload", "systemctl daemon-reload")
                .await?;
        }
        for c in &old.commands {
            remote.change("re-apply the old provider", c).await?;
        }
        if systemd {
            // The switch may have disabled them (the old provider's own units).
            for u in &old.units {
                let u = sh_quote(u);
                remote
                    .change(
                        &format!("enable {u}"),
                        &format!("systemctl enable --quiet {u} && systemctl restart {u} || true"),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}
