//! One node's part of a switch: its record, the switch itself, the gate after it, the way back
//! from the backups its record names, and the wait for a node that dropped its connection.
//!
//! What a node's recovery does is decided from what is on the node (its state.json, its record,
//! the record a finished switch left in `last_switch`), never from which nodes this process
//! happened to touch: a resume or rollback may take over from a run that was killed anywhere.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kubectl::Kubectl;
use crate::migrate::{Endpoint, NodeMigration};
use crate::phase::{gather, lock, txn};
use crate::plan;
use crate::profile::{Cluster, Node};
use crate::provider::{sh_quote, Inputs, NodePlan, Step};
use crate::remote::{Remote, RemoteError};
use crate::run::Run;
use crate::state::{Gathered, NodeState, SwitchPhase, SwitchRecord, BACKUPS_DIR, STATE_FILE};
use crate::transport::Upload;

/// A node the switch holds: locked, gathered, its session shared with the gate's test pods. The
/// session is replaced when the node had to be reached again (a reboot, a dropped connection).
pub struct Conn {
    pub node: Node,
    remote: Mutex<Arc<Remote>>,
    pub found: Gathered,
}

/// How long a probe of a session that may be dead is given before the node is reached anew.
const PROBE: Duration = Duration::from_secs(10);
/// Between two connection attempts to a node that is away.
const RETRY: Duration = Duration::from_secs(2);
/// Returns once systemd says the boot is over (running or degraded), or after 60 s; at once on a
/// node without systemd.
const BOOTED: &str = "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then timeout 60 systemctl is-system-running --wait >/dev/null 2>&1; fi; true";

impl Conn {
    pub fn new(node: Node, remote: Remote, found: Gathered) -> Conn {
        Conn {
            node,
            remote: Mutex::new(Arc::new(remote)),
            found,
        }
    }

    /// The session, for the last time (the fleet's release).
    pub fn into_remote(self) -> Arc<Remote> {
        self.remote.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's current session.
    pub fn remote(&self) -> Arc<Remote> {
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The session, after the node is known to answer. A node that does not (it rebooted, or its
    /// connection dropped) is connected to again every 2 s for up to `wait`, and its lock taken
    /// again (a reboot clears /run): a node is waited for, bounded and reported, never given up
    /// at the first error.
    pub async fn reach(&self, run: &Run, wait: Duration) -> Result<Arc<Remote>, String> {
        let current = self.remote();
        if let Ok(Ok(_)) = tokio::time::timeout(PROBE, current.probe("true")).await {
            return Ok(current);
        }
        let name = &self.node.name;
        let started = Instant::now();
        run.progress.println(&format!(
            "{name}: does not answer; waiting up to {} s for it to come back",
            wait.as_secs()
        ));
        loop {
            match run.connect(&self.node).await {
                Ok(remote) => {
                    let holder = lock::Holder::me(&run.id, "switch");
                    if let Err(e) = lock::lock(&remote, &holder).await {
                        remote.close().await;
                        return Err(e.to_string());
                    }
                    // A node back from a reboot answers SSH before its units are up: its
                    // gate would find them missing. Wait (bounded) for systemd to finish.
                    let _ = remote.probe(BOOTED).await;
                    let remote = Arc::new(remote);
                    *self.remote.lock().unwrap_or_else(|e| e.into_inner()) = remote.clone();
                    run.progress.println(&format!(
                        "{name}: back after {} s",
                        started.elapsed().as_secs()
                    ));
                    return Ok(remote);
                }
                Err(e) if started.elapsed() >= wait => {
                    return Err(format!(
                        "{name}: unreachable for {} s: {e}",
                        started.elapsed().as_secs()
                    ))
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
    }
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
    // The state.json it replaces is backed up with the switch's other files (the first copy
    // wins): putting the record back restores the state before the switch.
    remote
        .upload(
            &[Upload {
                path: STATE_FILE.into(),
                content: txn::state_json(&st),
                mode: 0o644,
                owner: None,
            }],
            Some(&format!("{BACKUPS_DIR}/{run_id}")),
        )
        .await
}

/// The record of what switching `c` changes (written before the first change, so a rollback
/// knows every file even when the switch dies half way). A record the node already holds for
/// this switch (a resumed run) keeps every file it names: the killed run may have changed files
/// that now already match the target, and they must still be put back by a rollback.
pub fn record(
    c: &Conn,
    nm: &NodeMigration,
    run_id: &str,
    from: &Endpoint,
    to: &Endpoint,
) -> SwitchRecord {
    let changes = plan::diff(&nm.install, &c.found, c.node.has_systemd());
    let prior = c
        .found
        .state
        .as_ref()
        .and_then(|s| s.switch.as_ref())
        .filter(|r| r.run_id == run_id);
    let mut files: Vec<(String, plan::FileAction)> =
        prior.map(|r| r.files.clone()).unwrap_or_default();
    for f in &changes.files {
        if !files.iter().any(|(p, _)| *p == f.path) {
            files.push((f.path.clone(), f.action));
        }
    }
    SwitchRecord {
        run_id: run_id.to_string(),
        from: from.clone(),
        to: to.clone(),
        phase: prior.map_or(SwitchPhase::Prepared, |r| r.phase),
        files,
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
    pub run: &'a Run,
    pub to: &'a Cluster,
    pub from_ep: &'a Endpoint,
    pub to_ep: &'a Endpoint,
    pub kubectl: Option<&'a Arc<Kubectl>>,
    /// How long a node that stops answering is waited for.
    pub wait: Duration,
}

fn kubectl_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The pods on `node` that run on the pod network (not the host's, not a static pod's mirror),
/// as `namespace/name`, from `kubectl get pods -o json`.
pub fn pod_network_pods(json: &str) -> Result<Vec<(String, String)>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("kubectl get pods: {e}"))?;
    let items = v["items"]
        .as_array()
        .ok_or("kubectl get pods: no items list")?;
    Ok(items
        .iter()
        .filter(|p| p["spec"]["hostNetwork"].as_bool() != Some(true))
        .filter(|p| p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null())
        .filter_map(|p| {
            let m = &p["metadata"];
            Some((
                m["namespace"].as_str()?.to_string(),
                m["name"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// Recreate the pods the drain left on the node (DaemonSet pods, and every pod where the drain
/// could not evict): deleted, their controllers make them again on the new network, so none keeps
/// an address (or an MTU) from the old one. Returns what to tell the operator.
async fn recreate_pods(k: &Arc<Kubectl>, node: &str) -> Vec<String> {
    let here = std::path::Path::new(".");
    let selector = format!("spec.nodeName={node}");
    let args = kubectl_args(&[
        "get",
        "pods",
        "--all-namespaces",
        "--field-selector",
        &selector,
        "-o",
        "json",
    ]);
    let pods = match k.call(&args, here).await.map_err(|e| e.to_string()) {
        Ok(json) => pod_network_pods(&json),
        Err(e) => Err(e),
    };
    let pods = match pods {
        Ok(p) => p,
        Err(e) => return vec![format!("{node}: pods not recreated: {e}")],
    };
    let mut notes = Vec::new();
    let mut done = 0;
    for (ns, name) in &pods {
        let delete = kubectl_args(&["delete", "pod", "-n", ns, name, "--wait=false"]);
        match k.call(&delete, here).await {
            Ok(_) => done += 1,
            Err(e) => notes.push(format!("{node}: pod {ns}/{name} not recreated: {e}")),
        }
    }
    if done > 0 {
        notes.push(format!(
            "{node}: {done} pod(s) recreated on the new network"
        ));
    }
    notes
}

/// Switch one node. Its record says `switching` before the first file changes and `switched`
/// with its new state. Returns notes for the report.
pub async fn switch(c: &Conn, nm: &NodeMigration, t: &Target<'_>) -> Result<Vec<String>, String> {
    let run_id = &t.run.id;
    let remote = c.remote();
    let mut old_state = c.found.state.clone().unwrap_or_default();
    old_state.switch = None;
    let changes = plan::diff(&nm.install, &c.found, c.node.has_systemd());
    let mut rec = record(c, nm, run_id, t.from_ep, t.to_ep);
    rec.phase = SwitchPhase::Switching;
    let here = std::path::Path::new(".");
    write_record(&remote, &old_state, Some(&rec), run_id)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(k) = t.kubectl {
        let drain = [
            "drain",
            &c.node.name,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
        ];
        let _ = k.call(&kubectl_args(&drain), here).await;
    }
    rec.phase = SwitchPhase::Switched;
    let backend = crate::commands::apply::backend_name(t.to);
    let mut new_state = plan::next_state(
        &nm.install,
        Some(&old_state),
        &changes,
        t.to.provider().as_str(),
        &backend,
        &t.to.hash,
        run_id,
    );
    new_state.switch = Some(rec);
    // The node's change is one transaction on the node: it finishes, or puts the node back
    // itself, even if this process dies or the connection drops half way. Its id is its own
    // (a resumed switch runs it again); the switch's lock and backups stay the switch's.
    let previous = c.found.state.as_ref().map(|_| &old_state);
    let txn = txn::for_switch(nm, &changes, previous, &new_state, run_id);
    let txn_id = format!("{run_id}-{}", crate::phase::new_run_id());
    match txn::apply(&remote, &txn, &txn_id).await {
        Ok(txn::Outcome::Applied) => {}
        Ok(other) => return Err(txn::failed(&remote, other, &txn_id).to_string()),
        Err(e) => return Err(e.to_string()),
    }
    crate::fault::point("wave");
    let mut notes = Vec::new();
    if let Some(k) = t.kubectl {
        let node = format!("node/{}", c.node.name);
        let wait = ["wait", "--for=condition=Ready", &node, "--timeout=300s"];
        k.call(&kubectl_args(&wait), here)
            .await
            .map_err(|e| format!("{}: not ready after the switch: {e}", c.node.name))?;
        notes.extend(recreate_pods(k, &c.node.name).await);
        let _ = k
            .call(&kubectl_args(&["uncordon", &c.node.name]), here)
            .await;
    }
    let suffix = crate::verify::run_suffix(run_id);
    match gate(&remote, t.to, &t.run.inputs, &c.node, Some(&suffix)).await {
        Ok(()) => Ok(notes),
        // A node that went away right after its switch (a reboot) is waited for and gated
        // again: its files and record say it runs the target, and that is what is judged.
        Err(e) => {
            let remote = match rebooted(c, &remote, t).await {
                Ok(Some(again)) => again,
                Ok(None) => return Err(e),
                Err(away) => return Err(format!("{e}; {away}")),
            };
            gate(&remote, t.to, &t.run.inputs, &c.node, Some(&suffix))
                .await
                .map(|()| notes)
        }
    }
}

/// After a failed gate: was the node going down or coming up (a reboot), rather than failing?
/// Then the session once the node is back and booted; `None` for a node at rest (its gate's
/// failure stands). A node without systemd is always at rest here.
async fn rebooted(
    c: &Conn,
    remote: &Arc<Remote>,
    t: &Target<'_>,
) -> Result<Option<Arc<Remote>>, String> {
    const STATE: &str = "systemctl is-system-running 2>/dev/null || true";
    let at_rest = |out: &crate::transport::Output| {
        let state = String::from_utf8_lossy(&out.stdout);
        !matches!(
            state.trim(),
            "stopping" | "starting" | "initializing" | "maintenance"
        )
    };
    if let Ok(Ok(out)) = tokio::time::timeout(PROBE, remote.probe(STATE)).await {
        if at_rest(&out) {
            return Ok(None);
        }
    }
    let started = Instant::now();
    loop {
        tokio::time::sleep(RETRY).await;
        let again = c.reach(t.run, t.wait).await?;
        if !Arc::ptr_eq(&again, remote) {
            return Ok(Some(again));
        }
        let _ = again.probe(BOOTED).await;
        match again.probe(STATE).await {
            Ok(out) if at_rest(&out) => return Ok(Some(again)),
            _ if started.elapsed() >= t.wait => {
                return Err(format!(
                    "{}: still rebooting after {} s",
                    c.node.name,
                    started.elapsed().as_secs()
                ))
            }
            _ => {}
        }
    }
}

/// What a node's rollback needs besides the node.
pub struct Rollback<'a> {
    pub run: &'a Run,
    pub from: &'a Endpoint,
    pub to: &'a Endpoint,
    /// Undo the prepare step (the old backend's script, run on the node once it is back on it).
    pub unprepare: &'a [Step],
    pub wait: Duration,
}

/// How a node's rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    /// Its files were put back from the switch's backups.
    Restored,
    /// It had not changed (only its record and the prepare step went).
    Unchanged,
}

/// The switch record that applies to this node: its progress record for switch `run_id`, or the
/// record a finished node moved to `last_switch` while it still runs that switch's target.
pub fn record_on(state: &NodeState, run_id: &str) -> Option<SwitchRecord> {
    if let Some(r) = state.switch.as_ref().filter(|r| r.run_id == run_id) {
        return Some(r.clone());
    }
    let runs = Endpoint::from_parts(&state.provider, &state.backend).ok();
    state
        .last_switch
        .clone()
        .filter(|r| r.run_id == run_id && runs.as_ref() == Some(&r.to))
}

/// Put one node back on the switch's start, from what is on it now: a node whose files changed
/// gets them back from the switch's backups and its old provider's commands re-run; every node
/// then has the prepare step undone; last, state.json as it was and the lock released in one
/// step. Every step can be repeated, so a rollback killed anywhere is finished by the next.
pub async fn roll_back(c: &Conn, b: &Rollback<'_>) -> Result<Back, String> {
    let remote = c.reach(b.run, b.wait).await?;
    let name = &c.node.name;
    let g = settled(&remote, &NodePlan::default(), None, b.wait)
        .await
        .map_err(|e| e.to_string())?;
    let state = g.state.unwrap_or_default();
    let Some(rec) = record_on(&state, &b.run.id) else {
        if let Some(other) = &state.switch {
            return Err(format!(
                "{name}: records another switch (run {}): not rolled back",
                other.run_id
            ));
        }
        let runs = Endpoint::from_parts(&state.provider, &state.backend).ok();
        if b.from != b.to && runs.as_ref() == Some(b.to) {
            return Err(format!(
                "{name}: runs {} with no record of switch {}: its backups cannot be matched; move it with `netctl switch --networking {}`",
                b.to, b.run.id, b.from
            ));
        }
        run_steps(&remote, b.unprepare)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Back::Unchanged);
    };
    let changed = rec.phase != SwitchPhase::Prepared;
    if changed {
        b.run
            .progress
            .println(&format!("{name}: rolling back to {}", b.from));
        restore(&remote, &rec, c.node.has_systemd())
            .await
            .map_err(|e| e.to_string())?;
    }
    run_steps(&remote, b.unprepare)
        .await
        .map_err(|e| e.to_string())?;
    remote
        .change("drop the switch record", &rec.drop_script())
        .await
        .map_err(|e| e.to_string())?;
    Ok(if changed {
        Back::Restored
    } else {
        Back::Unchanged
    })
}

/// The node read once its switch transaction is over: one still running (its connection dropped,
/// or this process was killed, while it went on) is waited for, up to `wait`; one a reboot cut
/// short is put back by its own script first.
pub async fn settled(
    remote: &Remote,
    want: &NodePlan,
    mut g: Option<Gathered>,
    wait: Duration,
) -> Result<Gathered, RemoteError> {
    let started = Instant::now();
    loop {
        let mut found = match g.take() {
            Some(found) => found,
            None => gather::gather(remote, want).await?,
        };
        if found.txns.iter().any(|(_, running)| *running) && started.elapsed() < wait {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        gather::recover(remote, &mut found, want).await?;
        return Ok(found);
    }
}

/// The files from the backups, then the old provider's commands and units as the state before
/// the switch (also in the backups) names them. state.json keeps the record meanwhile.
async fn restore(remote: &Remote, rec: &SwitchRecord, systemd: bool) -> Result<(), RemoteError> {
    remote
        .change("restore backups", &rec.roll_back_script())
        .await?;
    let before = format!("{}{STATE_FILE}", rec.backups());
    let text = remote
        .read(
            "read the state before the switch",
            &format!("cat -- {} 2>/dev/null || true", sh_quote(&before)),
        )
        .await?;
    let old: Option<NodeState> = if text.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(&text).map_err(|e| RemoteError::State {
            node: remote.node.clone(),
            message: format!("{before}: {e}"),
        })?)
    };
    if systemd {
        remote
            .change("systemctl daemon-reload", "systemctl daemon-reload")
            .await?;
    }
    crate::fault::point("rollback");
    let Some(old) = old else {
        return Ok(());
    };
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
    Ok(())
}

/// The node is done with the switch: its progress record moves to `last_switch` and the lock
/// goes, in one step.
pub async fn settle(c: &Conn, run: &Run, wait: Duration) -> Result<(), String> {
    let remote = c.reach(run, wait).await?;
    let g = gather::gather(&remote, &NodePlan::default())
        .await
        .map_err(|e| e.to_string())?;
    let Some(mut st) = g.state else {
        return Ok(());
    };
    let Some(rec) = st.switch.take().filter(|r| r.run_id == run.id) else {
        return Ok(());
    };
    st.last_switch = Some(rec);
    remote
        .change("settle the switch record", &st.settle_script(&run.id))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
