//! init's report: per node and per cluster step, and its text (table, and diffs for `plan`).

use std::collections::HashMap;

use serde::Serialize;

use crate::plan::{FileAction, NodeChanges};
use crate::printer::Table;
use crate::remote::RemoteError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Unchanged,
    Planned,
    Failed,
    Refused,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub result: Outcome,
    pub files_changed: usize,
    pub commands_run: usize,
    pub restarts: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// Units whose inputs changed on a node without systemd (`init: none`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarts_skipped: Vec<String>,
    pub error: Option<String>,
    /// Remote executions this run made on the node (connect's sudo probe included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_executions: Option<usize>,
    /// What the plan changes (files with their sha256 before and after, commands, units).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "changes_json"
    )]
    pub changes: Option<NodeChanges>,
}

impl NodeReport {
    pub(super) fn failed(name: &str, e: &RemoteError) -> NodeReport {
        NodeReport {
            name: name.to_string(),
            result: if e.is_refusal() {
                Outcome::Refused
            } else {
                Outcome::Failed
            },
            files_changed: 0,
            commands_run: 0,
            restarts: 0,
            restarted: vec![],
            restarts_skipped: vec![],
            error: Some(e.to_string()),
            remote_executions: None,
            changes: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterStepReport {
    pub step: String,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The JSON format's version (docs/output.md): raised when a field changes meaning or goes.
    pub format_version: u32,
    pub run_id: String,
    pub nodes: Vec<NodeReport>,
    pub cluster: Vec<ClusterStepReport>,
    /// The operator answered no: nothing was changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub declined: bool,
    /// verify's report, when init ended with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Report>,
    /// preflight's report, when init ran it (before any change; a failure stopped the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::verify::Report>,
    /// `--skip-preflight`: init ran without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preflight_skipped: bool,
    /// Nodes that record another network than the profile names (a plan, or
    /// `--allow-provider-change`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why init refused before changing any node (exit 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl RunReport {
    pub fn failed_nodes(&self) -> Vec<&NodeReport> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.result, Outcome::Failed | Outcome::Refused))
            .collect()
    }
    pub fn refused(&self) -> bool {
        self.nodes.iter().any(|n| n.result == Outcome::Refused)
    }
    pub fn cluster_failed(&self) -> bool {
        self.cluster.iter().any(|c| c.result == "failed")
    }
}

/// The version `--output json` of plan and init carries (docs/output.md).
pub const FORMAT_VERSION: u32 = 1;

/// A node's changes as machine output: per file its action and sha256 before and after (never
/// content: a key's diff is not for logs), then the commands and units.
fn changes_json<S: serde::Serializer>(
    changes: &Option<NodeChanges>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let Some(ch) = changes else {
        return s.serialize_none();
    };
    let files: Vec<serde_json::Value> = ch
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "action": f.action,
                "sha256_before": f.old.as_ref().map(|o| o.sha256()),
                "sha256_after": f.new.as_ref().filter(|_| f.action != FileAction::Remove).map(|n| n.sha256()),
            })
        })
        .collect();
    let commands: Vec<&str> = ch.commands.iter().map(|c| c.command.as_str()).collect();
    serde::Serialize::serialize(
        &serde_json::json!({
            "files": files,
            "commands": commands,
            "daemon_reload": ch.daemon_reload,
            "enable": ch.enable,
            "restart": ch.restart,
        }),
        s,
    )
}

/// How a plan's diffs are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffMode {
    /// Short diffs whole; long ones (generated scripts, tables) and repeats summarised.
    #[default]
    Summary,
    /// Every line of every diff.
    Full,
}

/// A diff longer than this many lines is summarised (`--diff full` shows it): a generated script
/// changed on every node would otherwise bury the plan.
const DIFF_LINES: usize = 40;

impl RunReport {
    /// Whether a plan would change anything: files, or units to enable or restart.
    pub fn changes_pending(&self) -> bool {
        self.nodes
            .iter()
            .filter_map(|n| n.changes.as_ref())
            .any(|c| c.is_change())
    }
}

/// "2 to add, 1 to change, 0 to remove, 1 restart" for one node.
fn node_summary(ch: &NodeChanges) -> String {
    let count = |a: &[FileAction]| ch.files.iter().filter(|f| a.contains(&f.action)).count();
    let mut s = format!(
        "{} to add, {} to change, {} to remove",
        count(&[FileAction::Create]),
        count(&[FileAction::Update, FileAction::Chmod]),
        count(&[FileAction::Remove])
    );
    if !ch.restart.is_empty() {
        s.push_str(&format!(", {} restart(s)", ch.restart.len()));
    }
    s
}

/// One file's diff as the plan shows it: whole when short, else its header and its size. `None`
/// when the same diff was shown for an earlier node (`seen` says which): the caller lists those
/// files on one line.
fn file_diff(
    diff: String,
    mode: DiffMode,
    node: &str,
    seen: &mut HashMap<String, String>,
) -> Result<String, String> {
    if mode == DiffMode::Full {
        return Ok(diff);
    }
    if let Some(first) = seen.get(&diff) {
        return Err(first.clone());
    }
    seen.insert(diff.clone(), node.to_string());
    if diff.lines().count() <= DIFF_LINES {
        return Ok(diff);
    }
    let header: String = diff.lines().take(2).map(|l| format!("{l}\n")).collect();
    let body = diff.lines().skip(2);
    let added = body.clone().filter(|l| l.starts_with('+')).count();
    let removed = body.filter(|l| l.starts_with('-')).count();
    Ok(format!(
        "{header}  ({added} line(s) added, {removed} removed; --diff full shows them)\n"
    ))
}

/// One node's changes for the plan.
fn node_text(
    n: &NodeReport,
    ch: &NodeChanges,
    mode: DiffMode,
    seen: &mut HashMap<String, String>,
) -> String {
    let mut out = format!("==> {}: {}\n", n.name, node_summary(ch));
    let mut same: Vec<(String, Vec<&str>)> = Vec::new();
    for f in &ch.files {
        match file_diff(f.diff(), mode, &n.name, seen) {
            Ok(d) => out.push_str(&d),
            Err(first) => match same.iter_mut().find(|(node, _)| *node == first) {
                Some((_, paths)) => paths.push(&f.path),
                None => same.push((first, vec![&f.path])),
            },
        }
    }
    for (first, paths) in same {
        out.push_str(&format!(
            "  the same change as on {first}: {}\n",
            paths.join(", ")
        ));
    }
    let commands: String = ch
        .commands
        .iter()
        .map(|c| format!("  run: {}  # {}\n", c.command, c.title))
        .collect();
    match seen.get(&commands).filter(|_| mode == DiffMode::Summary) {
        Some(first) if !commands.is_empty() => out.push_str(&format!(
            "  run: the same {} command(s) as on {first}\n",
            ch.commands.len()
        )),
        _ => {
            seen.insert(commands.clone(), n.name.clone());
            out.push_str(&commands);
        }
    }
    if ch.daemon_reload {
        out.push_str("  systemctl daemon-reload\n");
    }
    for u in &ch.enable {
        out.push_str(&format!("  enable: {u}\n"));
    }
    for u in &ch.restart {
        out.push_str(&format!("  restart: {u}\n"));
    }
    for u in &n.restarts_skipped {
        out.push_str(&format!(
            "  restart: {u} (skipped: the node has no init system)\n"
        ));
    }
    out
}

/// The summary table; for dry runs first each node's changes (diffs, commands, restarts) and last
/// one line saying how many nodes would change.
pub fn text(report: &RunReport, dry_run: bool, mode: DiffMode) -> String {
    let mut out = String::new();
    let mut seen = HashMap::new();
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if dry_run {
        for n in &report.nodes {
            let Some(ch) = &n.changes else { continue };
            if !ch.is_change() {
                out.push_str(&format!("==> {}: no changes\n", n.name));
                continue;
            }
            out.push_str(&node_text(n, ch, mode, &mut seen));
        }
    }
    let mut t = Table::new(&["NODE", "RESULT", "FILES", "COMMANDS", "RESTARTS", "ERROR"]);
    for n in &report.nodes {
        let restarts = if n.restarts_skipped.is_empty() {
            n.restarts.to_string()
        } else {
            format!("{} ({} skipped)", n.restarts, n.restarts_skipped.len())
        };
        t.row(vec![
            n.name.clone(),
            format!("{:?}", n.result).to_lowercase(),
            n.files_changed.to_string(),
            n.commands_run.to_string(),
            restarts,
            crate::printer::row_error(&n.name, n.error.as_deref()),
        ]);
    }
    out.push_str(&t.render());
    for c in &report.cluster {
        out.push_str(&format!(
            "cluster: {} {}{}\n",
            c.step,
            c.result,
            c.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    let failed = report.failed_nodes().len();
    if dry_run {
        let changing = report
            .nodes
            .iter()
            .filter(|n| n.changes.as_ref().is_some_and(|c| c.is_change()))
            .count();
        let planned = report.nodes.iter().filter(|n| n.changes.is_some()).count();
        if failed > 0 {
            out.push_str(&format!(
                "Plan incomplete: {failed} node(s) could not be read.\n"
            ));
        }
        if changing == 0 {
            out.push_str("No changes: every node read matches the profile.\n");
        } else {
            out.push_str(&format!(
                "Plan: {changing} node(s) to change, {} unchanged.\n",
                planned - changing
            ));
        }
        return out;
    }
    out.push_str(&format!(
        "run {}: {} nodes, {} failed\n",
        report.run_id,
        report.nodes.len(),
        failed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FileChange;
    use crate::provider::NodeFile;

    fn created(path: &str, lines: usize) -> FileChange {
        FileChange {
            path: path.into(),
            action: FileAction::Create,
            take_over: false,
            restore_original: false,
            secret: false,
            binary: false,
            old: None,
            new: Some(NodeFile {
                path: path.into(),
                mode: 0o644,
                content: (0..lines).map(|i| format!("line {i}\n")).collect(),
                services: vec![],
                blob: None,
            }),
        }
    }

    fn node(name: &str, files: Vec<FileChange>) -> NodeReport {
        NodeReport {
            name: name.into(),
            result: Outcome::Planned,
            files_changed: files.len(),
            commands_run: 0,
            restarts: 0,
            restarted: vec![],
            restarts_skipped: vec![],
            error: None,
            remote_executions: None,
            changes: Some(NodeChanges {
                files,
                ..NodeChanges::default()
            }),
        }
    }

    fn report(nodes: Vec<NodeReport>) -> RunReport {
        RunReport {
            format_version: FORMAT_VERSION,
            run_id: "r".into(),
            nodes,
            cluster: vec![],
            declined: false,
            verify: None,
            warnings: vec![],
            refusal: None,
            preflight: None,
            preflight_skipped: false,
        }
    }

    #[test]
    fn a_plan_summarises_long_and_repeated_diffs_and_ends_with_its_count() {
        let r = report(vec![
            node(
                "n1",
                vec![created("/etc/a", 3), created("/usr/local/lib/s.sh", 200)],
            ),
            node("n2", vec![created("/etc/a", 3)]),
            node("n3", vec![]),
        ]);
        assert!(r.changes_pending());
        let t = text(&r, true, DiffMode::Summary);
        assert!(
            t.contains("==> n1: 2 to add, 0 to change, 0 to remove\n"),
            "{t}"
        );
        assert!(t.contains("+line 2\n"), "a short diff is shown whole: {t}");
        assert!(
            t.contains("(200 line(s) added, 0 removed; --diff full shows them)"),
            "{t}"
        );
        assert!(!t.contains("+line 199"), "{t}");
        assert!(t.contains("  the same change as on n1: /etc/a\n"), "{t}");
        assert!(t.contains("==> n3: no changes\n"), "{t}");
        assert!(
            t.ends_with("Plan: 2 node(s) to change, 1 unchanged.\n"),
            "{t}"
        );
        // Machine output: the files with their sha256, and the format's version.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["format_version"], 1);
        let a = &v["nodes"][0]["changes"]["files"][0];
        assert_eq!(a["path"], "/etc/a");
        assert_eq!(a["action"], "create");
        assert_eq!(a["sha256_before"], serde_json::Value::Null);
        assert_eq!(
            a["sha256_after"],
            crate::profile::sha256_hex(b"line 0\nline 1\nline 2\n")
        );
        let full = text(&r, true, DiffMode::Full);
        assert!(full.contains("+line 199\n"), "{full}");
        assert!(full.lines().count() > 200, "{full}");
    }

    #[test]
    fn an_unchanged_plan_says_no_changes_and_lists_no_commands() {
        let mut n = node("n1", vec![]);
        n.changes.as_mut().unwrap().commands = vec![crate::provider::Step {
            title: "routes".into(),
            command: "/bin/sh routes.sh up".into(),
        }];
        let r = report(vec![n]);
        assert!(!r.changes_pending());
        let t = text(&r, true, DiffMode::Summary);
        assert!(!t.contains("run:"), "{t}");
        assert!(
            t.ends_with("No changes: every node read matches the profile.\n"),
            "{t}"
        );
    }
}
