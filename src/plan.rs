//! Desired state (a provider's NodePlan) against what a gather found -> the changes for one node:
//! which files to write or remove, which units to reload, enable and restart. Pure: no I/O, so
//! `plan`, `init --dry-run` and `init` all agree by construction.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::provider::{NodeFile, NodePlan, Step};
use crate::state::{Gathered, ManagedFile, NodeState, RemoteFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    Create,
    Update,
    /// Same content, different mode.
    Chmod,
    Remove,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub action: FileAction,
    /// The file exists and netctl does not manage it yet: keep the original for `reset`.
    pub take_over: bool,
    /// For removals: put the pre-netctl original back instead of deleting.
    pub restore_original: bool,
    /// The old or new file is readable by its owner only (a key): its diff shows sizes, never content.
    pub secret: bool,
    /// A program (flanneld): its diff shows size and sha256, never bytes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
    #[serde(skip)]
    pub old: Option<RemoteFile>,
    #[serde(skip)]
    pub new: Option<NodeFile>,
}

/// A file no group or other may read is secret: its content is never printed (keys, kubeconfigs
/// with credentials). The mode is the one declaration every file already carries.
pub fn is_secret_mode(mode: u32) -> bool {
    mode & 0o077 == 0
}

impl FileChange {
    fn header(&self) -> (&str, &str) {
        match self.action {
            FileAction::Create => ("/dev/null", self.path.as_str()),
            FileAction::Remove => (self.path.as_str(), "/dev/null"),
            _ => (self.path.as_str(), self.path.as_str()),
        }
    }

    /// A unified diff for people (binary content shown as a note, secret content as its size).
    pub fn diff(&self) -> String {
        if self.binary && self.action != FileAction::Chmod {
            // A shared table (routes' peer table) is text, but large and the same on every node:
            // shown by size and sha256 like a program.
            let what = match self.new.as_ref().and_then(|f| f.blob.as_ref()) {
                Some(b) if b.shared => "shared",
                _ => "binary",
            };
            let (a, b) = self.header();
            let mut s = format!("--- {a}\n+++ {b}\n");
            if let Some(old) = &self.old {
                s.push_str(&format!(
                    "-({what}, {} bytes, sha256 {})\n",
                    old.size(),
                    old.sha256()
                ));
            }
            if let Some(new) = &self.new {
                let size = new
                    .blob
                    .as_ref()
                    .and_then(|b| b.size)
                    .unwrap_or(new.content.len() as u64);
                s.push_str(&format!(
                    "+({what}, {size} bytes, sha256 {})\n",
                    new.sha256()
                ));
            }
            return s;
        }
        if self.secret && self.action != FileAction::Chmod {
            let (a, b) = match self.action {
                FileAction::Create => ("/dev/null", self.path.as_str()),
                FileAction::Remove => (self.path.as_str(), "/dev/null"),
                _ => (self.path.as_str(), self.path.as_str()),
            };
            let mut s = format!("--- {a}\n+++ {b}\n");
            if let Some(old) = &self.old {
                s.push_str(&format!("-(secret, {} bytes)\n", old.content.len()));
            }
            if let Some(new) = &self.new {
                s.push_str(&format!("+(secret, {} bytes)\n", new.content.len()));
            }
            return s;
        }
        let old = self
            .old
            .as_ref()
            .map(|r| String::from_utf8_lossy(&r.content))
            .unwrap_or_default();
        let new = self.new.as_ref().map(|f| f.content.as_str()).unwrap_or("");
        let (a, b) = match self.action {
            FileAction::Create => ("/dev/null".to_string(), self.path.clone()),
            FileAction::Remove => (self.path.clone(), "/dev/null".to_string()),
            _ => (self.path.clone(), self.path.clone()),
        };
        if self.action == FileAction::Chmod {
            return format!(
                "mode of {} becomes {:04o}\n",
                self.path,
                self.new.as_ref().map_or(0, |f| f.mode)
            );
        }
        similar::TextDiff::from_lines(old.as_ref(), new)
            .unified_diff()
            .context_radius(3)
            .header(&a, &b)
            .to_string()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeChanges {
    pub files: Vec<FileChange>,
    pub daemon_reload: bool,
    pub enable: Vec<String>,
    pub restart: Vec<String>,
    pub commands: Vec<Step>,
}

impl NodeChanges {
    pub fn files_changed(&self) -> usize {
        self.files.len()
    }

    /// Whether applying changes the node: a file, or a unit to enable or restart. (Its provider's
    /// idempotent commands run on every apply: alone they are no change.)
    pub fn is_change(&self) -> bool {
        !self.files.is_empty() || !self.enable.is_empty() || !self.restart.is_empty()
    }
}

/// `kubelet` and `kubelet.service` name one unit; compare the full name.
pub fn unit_name(s: &str) -> String {
    if s.contains('.') {
        s.to_string()
    } else {
        format!("{s}.service")
    }
}

/// The unit a file defines or extends: a unit file where systemd looks for units, or a drop-in
/// (`<unit>.d/*.conf`) of one. Changing either needs a daemon-reload before the restart.
fn unit_of(path: &str) -> Option<&str> {
    let rest = [
        "/etc/systemd/system/",
        "/usr/lib/systemd/system/",
        "/lib/systemd/system/",
    ]
    .iter()
    .find_map(|d| path.strip_prefix(d))?;
    match rest.split_once('/') {
        None => rest.ends_with(".service").then_some(rest),
        Some((dir, file)) => dir
            .strip_suffix(".d")
            .filter(|u| u.ends_with(".service") && file.ends_with(".conf") && !file.contains('/')),
    }
}

/// `systemd`: whether the node runs systemd (units are reloaded, enabled, restarted there only).
pub fn diff(desired: &NodePlan, found: &Gathered, systemd: bool) -> NodeChanges {
    let managed: BTreeMap<String, ManagedFile> = found
        .state
        .as_ref()
        .map(|s| s.files.clone())
        .unwrap_or_default();
    let mut ch = NodeChanges::default();
    let mut touched_units: BTreeSet<String> = BTreeSet::new();
    let mut unit_file_changed = false;

    for f in &desired.files {
        let remote = found.files.get(&f.path).cloned().flatten();
        let action = match &remote {
            None => Some(FileAction::Create),
            // A binary is compared by sha256 (the gather reads back only that).
            Some(r) if f.blob.is_some() || r.digest.is_some() => {
                if r.sha256() != f.sha256() {
                    Some(FileAction::Update)
                } else if r.mode != f.mode {
                    Some(FileAction::Chmod)
                } else {
                    None
                }
            }
            Some(r) if r.content != f.content.as_bytes() => Some(FileAction::Update),
            Some(r) if r.mode != f.mode => Some(FileAction::Chmod),
            Some(_) => None,
        };
        let Some(action) = action else { continue };
        let secret =
            is_secret_mode(f.mode) || remote.as_ref().is_some_and(|r| is_secret_mode(r.mode));
        if action != FileAction::Chmod {
            touched_units.extend(f.services.iter().map(|s| unit_name(s)));
            if let Some(u) = unit_of(&f.path) {
                touched_units.insert(u.to_string());
                unit_file_changed = true;
            }
        }
        ch.files.push(FileChange {
            path: f.path.clone(),
            action,
            take_over: remote.is_some() && !managed.contains_key(&f.path),
            restore_original: false,
            secret,
            binary: f.blob.is_some() || remote.as_ref().is_some_and(|r| r.digest.is_some()),
            old: remote,
            new: Some(f.clone()),
        });
    }
    let wanted: BTreeSet<&str> = desired.files.iter().map(|f| f.path.as_str()).collect();
    for (path, m) in &managed {
        if wanted.contains(path.as_str()) {
            continue;
        }
        if unit_of(path).is_some() {
            unit_file_changed = true;
        }
        let remote = found.files.get(path).cloned().flatten();
        if remote.is_none() && !m.original {
            continue; // already gone
        }
        ch.files.push(FileChange {
            path: path.clone(),
            action: FileAction::Remove,
            take_over: false,
            restore_original: m.original,
            secret: is_secret_mode(m.mode)
                || remote.as_ref().is_some_and(|r| is_secret_mode(r.mode)),
            binary: m.binary || remote.as_ref().is_some_and(|r| r.digest.is_some()),
            old: remote,
            new: None,
        });
    }
    ch.files.sort_by(|a, b| a.path.cmp(&b.path));

    if systemd {
        ch.daemon_reload = unit_file_changed;
        for u in &desired.units {
            if u.enable && !found.enabled.get(&u.name).copied().unwrap_or(false) {
                ch.enable.push(u.name.clone());
            }
            if u.restart && touched_units.contains(&unit_name(&u.name)) {
                ch.restart.push(u.name.clone());
            }
        }
    }
    ch.commands = desired.commands.clone();
    ch
}

/// The state.json a successful apply leaves behind.
pub fn next_state(
    desired: &NodePlan,
    previous: Option<&NodeState>,
    changes: &NodeChanges,
    provider: &str,
    backend: &str,
    profile_sha256: &str,
    run_id: &str,
) -> NodeState {
    let prev = previous.map(|s| &s.files);
    let files = desired
        .files
        .iter()
        .map(|f| {
            let took_over = changes
                .files
                .iter()
                .any(|c| c.path == f.path && c.take_over);
            let had = prev
                .and_then(|p| p.get(&f.path))
                .is_some_and(|m| m.original);
            (
                f.path.clone(),
                ManagedFile {
                    sha256: f.sha256(),
                    mode: f.mode,
                    original: took_over || had,
                    binary: f.blob.is_some(),
                },
            )
        })
        .collect();
    NodeState {
        provider: provider.to_string(),
        backend: backend.to_string(),
        profile_sha256: profile_sha256.to_string(),
        run_id: run_id.to_string(),
        files,
        units: desired
            .units
            .iter()
            .filter(|u| u.enable)
            .map(|u| u.name.clone())
            .collect(),
        commands: desired.commands.iter().map(|c| c.command.clone()).collect(),
        teardown: desired.teardown.clone(),
        switch: None,
        // History, kept across runs: which switch set the node's network.
        last_switch: previous.and_then(|p| p.last_switch.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Unit;
    use crate::state::{Digest, RemoteFile};

    fn file(path: &str, content: &str, services: &[&str]) -> NodeFile {
        NodeFile {
            path: path.into(),
            mode: 0o644,
            content: content.into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            blob: None,
        }
    }

    fn plan() -> NodePlan {
        NodePlan {
            files: vec![
                file("/etc/systemd/system/kubelet.service", "unit", &[]),
                file("/etc/cni/net.d/10-bridge.conf", "bridge", &[]),
                file("/etc/containerd/config.toml", "toml", &["containerd"]),
            ],
            units: vec![
                Unit {
                    name: "kubelet.service".into(),
                    enable: true,
                    restart: true,
                },
                Unit {
                    name: "containerd".into(),
                    enable: false,
                    restart: true,
                },
            ],
            commands: vec![],
            teardown: vec![],
            edits: vec![],
        }
    }

    fn found_matching(p: &NodePlan) -> Gathered {
        let mut g = Gathered::default();
        for f in &p.files {
            g.files.insert(
                f.path.clone(),
                Some(RemoteFile {
                    mode: f.mode,
                    content: f.content.clone().into_bytes(),
                    digest: None,
                }),
            );
        }
        g.enabled.insert("kubelet.service".into(), true);
        g.state = Some(next_state(
            p,
            None,
            &NodeChanges::default(),
            "routes",
            "host-gw",
            "h",
            "r1",
        ));
        g
    }

    #[test]
    fn nothing_changes_when_the_node_matches() {
        let p = plan();
        let ch = diff(&p, &found_matching(&p), true);
        assert!(
            ch.files.is_empty()
                && ch.restart.is_empty()
                && ch.enable.is_empty()
                && !ch.daemon_reload
        );
    }

    #[test]
    fn only_services_whose_inputs_changed_restart() {
        let p = plan();
        let mut g = found_matching(&p);
        g.files.insert(
            "/etc/containerd/config.toml".into(),
            Some(RemoteFile {
                mode: 0o644,
                content: b"old".to_vec(),
                digest: None,
            }),
        );
        let ch = diff(&p, &g, true);
        assert_eq!(ch.restart, ["containerd"], "named as the plan names it");
        assert!(!ch.daemon_reload);
        let mut g = found_matching(&p);
        g.files
            .insert("/etc/systemd/system/kubelet.service".into(), None);
        let ch = diff(&p, &g, true);
        assert_eq!(ch.restart, ["kubelet.service"]);
        assert!(ch.daemon_reload);
        assert_eq!(ch.files[0].action, FileAction::Create);
    }

    /// An edited drop-in or vendor unit needs a daemon-reload before its unit restarts, or
    /// systemd restarts it with what it read before.
    #[test]
    fn drop_ins_and_vendor_units_reload_systemd() {
        for (path, unit) in [
            (
                "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
                "kubelet.service",
            ),
            ("/usr/lib/systemd/system/kubelet.service", "kubelet.service"),
            (
                "/lib/systemd/system/kube-controller-manager.service",
                "kube-controller-manager.service",
            ),
        ] {
            assert_eq!(unit_of(path), Some(unit), "{path}");
            let p = NodePlan {
                files: vec![file(path, "new", &["kubelet"])],
                units: vec![Unit {
                    name: unit.into(),
                    enable: false,
                    restart: true,
                }],
                ..NodePlan::default()
            };
            let ch = diff(&p, &Gathered::default(), true);
            assert!(ch.daemon_reload, "{path}");
            assert_eq!(ch.restart, [unit], "{path}");
        }
        for not_a_unit in [
            "/etc/systemd/system/kubelet.service.d/notes.txt",
            "/etc/systemd/system/kubelet.service.d/a/b.conf",
            "/etc/systemd/kubelet.service",
        ] {
            assert_eq!(unit_of(not_a_unit), None, "{not_a_unit}");
        }
    }

    #[test]
    fn no_systemd_means_no_unit_actions() {
        let p = plan();
        let ch = diff(&p, &Gathered::default(), false);
        assert_eq!(ch.files.len(), 3);
        assert!(ch.restart.is_empty() && ch.enable.is_empty() && !ch.daemon_reload);
    }

    #[test]
    fn existing_unmanaged_files_are_taken_over_and_dropped_files_restored() {
        let p = plan();
        let mut g = Gathered::default();
        g.files.insert(
            "/etc/cni/net.d/10-bridge.conf".into(),
            Some(RemoteFile {
                mode: 0o644,
                content: b"theirs".to_vec(),
                digest: None,
            }),
        );
        let ch = diff(&p, &g, true);
        let bridge = ch
            .files
            .iter()
            .find(|c| c.path.ends_with("10-bridge.conf"))
            .unwrap();
        assert!(bridge.take_over && bridge.action == FileAction::Update);
        let st = next_state(&p, None, &ch, "routes", "host-gw", "h", "r1");
        assert!(st.files["/etc/cni/net.d/10-bridge.conf"].original);
        assert!(!st.files["/etc/containerd/config.toml"].original);

        // The next profile no longer wants the bridge config: its original comes back.
        let mut smaller = p.clone();
        smaller
            .files
            .retain(|f| !f.path.ends_with("10-bridge.conf"));
        let mut g2 = found_matching(&p);
        g2.state = Some(st);
        let ch2 = diff(&smaller, &g2, true);
        assert_eq!(ch2.files.len(), 1);
        assert_eq!(ch2.files[0].action, FileAction::Remove);
        assert!(ch2.files[0].restore_original);
    }

    /// A binary (flanneld): the gather reads back its size and sha256 only, the plan compares
    /// sha256s, the diff never shows bytes, and state.json marks it so later gathers do the same.
    #[test]
    fn binaries_are_compared_and_shown_by_sha256() {
        let bytes = b"\x7fELF stand-in".to_vec();
        let sha = crate::profile::sha256_hex(&bytes);
        let bin = NodeFile {
            path: "/usr/local/bin/flanneld".into(),
            mode: 0o755,
            content: String::new(),
            services: vec!["flanneld".into()],
            blob: Some(crate::provider::Blob {
                sha256: sha.clone(),
                size: Some(bytes.len() as u64),
                field: "networking.flannel.flanneld",
                shared: false,
                bytes: Some(std::sync::Arc::new(bytes.clone())),
            }),
        };
        let desired = NodePlan {
            files: vec![bin.clone()],
            units: vec![Unit {
                name: "flanneld".into(),
                enable: true,
                restart: true,
            }],
            ..NodePlan::default()
        };
        let on_node = |sha256: &str, mode: u32| {
            let mut g = Gathered::default();
            g.files.insert(
                bin.path.clone(),
                Some(RemoteFile {
                    mode,
                    content: vec![],
                    digest: Some(Digest {
                        size: 17,
                        sha256: sha256.into(),
                    }),
                }),
            );
            g
        };
        // Same sha256 and mode: nothing to do (the empty content read back is not a difference).
        assert!(diff(&desired, &on_node(&sha, 0o755), true).files.is_empty());
        let chmod = diff(&desired, &on_node(&sha, 0o644), true);
        assert_eq!(chmod.files[0].action, FileAction::Chmod);
        let other = "0".repeat(64);
        let ch = diff(&desired, &on_node(&other, 0o755), true);
        assert_eq!(ch.files[0].action, FileAction::Update);
        assert_eq!(ch.restart, ["flanneld"]);
        let d = ch.files[0].diff();
        assert_eq!(
            d,
            format!(
                "--- {p}\n+++ {p}\n-(binary, 17 bytes, sha256 {other})\n+(binary, {} bytes, sha256 {sha})\n",
                bytes.len(),
                p = bin.path
            )
        );
        let created = diff(&desired, &Gathered::default(), true);
        assert_eq!(created.files[0].action, FileAction::Create);
        assert!(!created.files[0].diff().contains("ELF"));
        let st = next_state(&desired, None, &created, "flannel", "host-gw", "p", "r");
        let m = &st.files[&bin.path];
        assert_eq!(
            (m.sha256.as_str(), m.mode, m.binary),
            (sha.as_str(), 0o755, true)
        );
        // Leaving flannel: the record says binary, so the removal shows no bytes either.
        let mut g = on_node(&sha, 0o755);
        g.state = Some(st);
        let gone = diff(&NodePlan::default(), &g, true);
        assert_eq!(gone.files[0].action, FileAction::Remove);
        assert!(gone.files[0].binary);
    }

    #[test]
    fn diff_is_unified() {
        let c = FileChange {
            path: "/etc/x".into(),
            action: FileAction::Update,
            take_over: false,
            restore_original: false,
            secret: false,
            binary: false,
            old: Some(RemoteFile {
                mode: 0o644,
                content: b"a\nb\n".to_vec(),
                digest: None,
            }),
            new: Some(file("/etc/x", "a\nc\n", &[])),
        };
        let d = c.diff();
        assert!(
            d.contains("--- /etc/x") && d.contains("-b") && d.contains("+c"),
            "{d}"
        );
    }

    #[test]
    fn secret_files_show_sizes_never_content() {
        let mut key = file("/etc/kube-flannel/flanneld.key", "PRIVATE-KEY-BYTES\n", &[]);
        key.mode = 0o600;
        let p = NodePlan {
            files: vec![key.clone()],
            ..NodePlan::default()
        };
        // Created, then updated over an old key, then removed: no diff carries the content.
        let ch = diff(&p, &Gathered::default(), true);
        let d = ch.files[0].diff();
        assert_eq!(
            d,
            "--- /dev/null\n+++ /etc/kube-flannel/flanneld.key\n+(secret, 18 bytes)\n"
        );
        let mut g = Gathered::default();
        g.files.insert(
            key.path.clone(),
            Some(RemoteFile {
                mode: 0o600,
                content: b"OLD-KEY\n".to_vec(),
                digest: None,
            }),
        );
        let d = diff(&p, &g, true).files[0].diff();
        assert!(d.contains("-(secret, 8 bytes)\n+(secret, 18 bytes)"), "{d}");
        assert!(!d.contains("KEY"), "{d}");
        g.state = Some(next_state(
            &p,
            None,
            &NodeChanges::default(),
            "flannel",
            "",
            "h",
            "r",
        ));
        let d = diff(&NodePlan::default(), &g, true).files[0].diff();
        assert!(
            d.contains("-(secret, 8 bytes)") && !d.contains("OLD"),
            "{d}"
        );
        // A private file replaced by a public one still hides the old content.
        key.mode = 0o644;
        let p = NodePlan {
            files: vec![key],
            ..NodePlan::default()
        };
        let d = diff(&p, &g, true).files[0].diff();
        assert!(!d.contains("OLD"), "{d}");
        assert!(!is_secret_mode(0o644) && is_secret_mode(0o600) && is_secret_mode(0o400));
    }
}
