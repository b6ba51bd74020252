//! Edits: files the operator may already have (the kubelet and controller-manager units, the
//! containerd config), of which netctl changes only what pod networking needs. A provider asks
//! for an edit in `NodePlan.edits`; after the gather (which reads the edited paths, the unit's
//! other locations and its drop-ins), `resolve` applies each edit to what the node holds and
//! turns it into plain files, so plan::diff, the node transaction, state.json and reset treat it
//! like any file: the original is kept on first take-over and `reset` puts it back byte for byte.
//! Edits are pure (existing bytes -> new bytes), idempotent, and refuse what they cannot edit
//! safely: the node fails and nothing changes there.

use serde::Serialize;

use super::containerd;
use super::unitfile::{self, FlagEdit, UnitText};
use super::{NodeFile, NodePlan};
use crate::profile::ContainerRuntime;
use crate::state::Gathered;

/// What to change in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// Command-line flags of a systemd service (`unit`, e.g. `kubelet.service`): in the unit
    /// file wherever systemd finds it, or in the drop-in or `Environment=` that carries them.
    UnitFlags { unit: String, flags: FlagEdit },
    /// The CRI plugin's CNI directories in containerd's config.
    ContainerdCni {
        runtime: ContainerRuntime,
        bin_dir: String,
        conf_dir: String,
    },
}

/// A file netctl edits where the node has it. Its whole form (what netctl writes where the node
/// has none, what `render` shows) is the plan's file at `path`, with its mode and services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeEdit {
    pub path: String,
    pub change: Change,
    /// Files written with the whole file only (the kubelet config file netctl's own unit reads):
    /// an edited unit does not read them, so they are not the plan's files until resolved.
    pub companions: Vec<NodeFile>,
    /// `kubernetes.units: own`: always the whole file, whatever the node has.
    pub own: bool,
    /// The units an edit feeds when the plan has no whole file at `path` to say so
    /// (`manageUnits: false`: containerd's CNI section is edited, never written whole).
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Containerd(#[from] containerd::EditError),
    #[error(transparent)]
    Unit(#[from] unitfile::UnitEditError),
    #[error("{path} is not UTF-8 text; netctl will not edit it")]
    NotText { path: String },
    #[error(
        "{unit} has drop-ins ({dropins}) but no unit file; netctl will not guess the rest of it"
    )]
    DropInsWithoutUnit { unit: String, dropins: String },
    #[error("{dir} holds a drop-in whose name netctl will not handle (only letters, digits, '.', '_', '-', '@'); rename it")]
    UnsafeDropIn { dir: String },
}

/// Where systemd looks for a unit, most important first (a file in /etc masks the others).
pub fn unit_paths(unit: &str) -> [String; 3] {
    [
        format!("/etc/systemd/system/{unit}"),
        format!("/usr/lib/systemd/system/{unit}"),
        format!("/lib/systemd/system/{unit}"),
    ]
}

/// Drop-in directories of a unit, most important first.
pub fn dropin_dirs(unit: &str) -> [String; 2] {
    [
        format!("/etc/systemd/system/{unit}.d"),
        format!("/usr/lib/systemd/system/{unit}.d"),
    ]
}

/// A directory listing's marker for a name the gather would not print.
pub const UNSAFE_NAME: &str = "!unsafe";

fn safe_dropin_name(name: &str) -> bool {
    name.len() > 5
        && name.ends_with(".conf")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        && !name.starts_with('.')
}

impl NodeEdit {
    /// The files the gather must read for this edit beyond the plan's own.
    pub fn reads(&self) -> Vec<String> {
        let mut v: Vec<String> = match &self.change {
            Change::UnitFlags { unit, .. } => unit_paths(unit).to_vec(),
            // Its own path: the plan has no whole file there to read it by under manageUnits: false.
            Change::ContainerdCni { .. } => vec![self.path.clone()],
        };
        v.extend(self.companions.iter().map(|c| c.path.clone()));
        v
    }

    /// Directories whose `*.conf` files the gather must read.
    pub fn lists(&self) -> Vec<String> {
        match &self.change {
            Change::UnitFlags { unit, .. } => dropin_dirs(unit).to_vec(),
            Change::ContainerdCni { .. } => vec![],
        }
    }
}

impl NodePlan {
    /// The plan as `render` shows it, without a node: every edit as its whole file, companions
    /// included.
    pub fn with_defaults(mut self) -> NodePlan {
        for e in std::mem::take(&mut self.edits) {
            self.files.extend(e.companions);
        }
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }

    /// Every path the gather reads for this plan: the files, then what the edits need.
    pub fn read_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.files.iter().map(|f| f.path.clone()).collect();
        for e in &self.edits {
            for p in e.reads() {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        v
    }

    /// Directories whose drop-ins the gather lists.
    pub fn list_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for d in self.edits.iter().flat_map(|e| e.lists()) {
            if !v.contains(&d) {
                v.push(d);
            }
        }
        v
    }
}

/// The plan for this node as it is: every edit applied to what the gather found. A plan
/// without edits comes back as it is.
pub fn resolve(plan: &NodePlan, found: &Gathered) -> Result<NodePlan, EditError> {
    let mut out = plan.clone();
    out.edits.clear();
    for e in &plan.edits {
        // The file at `path` leads (its mode and services serve the edit), companions follow.
        let mut whole: Vec<NodeFile> = out
            .files
            .iter()
            .filter(|f| f.path == e.path)
            .cloned()
            .collect();
        out.files.retain(|f| f.path != e.path);
        whole.extend(e.companions.iter().cloned());
        let resolved = resolve_one(e, whole, found)?;
        if !resolved.is_empty() {
            // Units the edit feeds that the plan does not manage: restarted when it changes.
            for s in &e.services {
                if !out
                    .units
                    .iter()
                    .any(|u| crate::plan::unit_name(&u.name) == crate::plan::unit_name(s))
                {
                    out.units.push(crate::provider::Unit {
                        name: s.clone(),
                        enable: false,
                        restart: true,
                    });
                }
            }
        }
        out.files.extend(resolved);
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// netctl manages `path` (state.json lists it).
fn managed(found: &Gathered, path: &str) -> Option<bool> {
    found
        .state
        .as_ref()
        .and_then(|s| s.files.get(path))
        .map(|m| m.original)
}

fn text<'a>(path: &str, content: &'a [u8]) -> Result<&'a str, EditError> {
    std::str::from_utf8(content).map_err(|_| EditError::NotText {
        path: path.to_string(),
    })
}

fn resolve_one(
    e: &NodeEdit,
    whole: Vec<NodeFile>,
    found: &Gathered,
) -> Result<Vec<NodeFile>, EditError> {
    if e.own {
        return Ok(whole);
    }
    let services = whole
        .first()
        .map(|f| f.services.clone())
        .unwrap_or_else(|| e.services.clone());
    // A file netctl created (managed, no original) is netctl's: written whole again.
    let netctls = |path: &str| managed(found, path) == Some(false);
    match &e.change {
        Change::ContainerdCni {
            runtime,
            bin_dir,
            conf_dir,
        } => {
            let Some(Some(current)) = found.files.get(&e.path) else {
                return Ok(whole);
            };
            if netctls(&e.path) {
                return Ok(whole);
            }
            let old = text(&e.path, &current.content)?;
            let new = containerd::set_cni_dirs(old, *runtime, bin_dir, conf_dir)?;
            Ok(
                keep_or_change(&services, found, &e.path, current.mode, old, new)
                    .into_iter()
                    .collect(),
            )
        }
        Change::UnitFlags { unit, flags } => {
            let main = unit_paths(unit)
                .into_iter()
                .find(|p| matches!(found.files.get(p), Some(Some(_))));
            let dropins = dropins_of(unit, found)?;
            let Some(main) = main else {
                if dropins.is_empty() {
                    return Ok(whole);
                }
                return Err(EditError::DropInsWithoutUnit {
                    unit: unit.clone(),
                    dropins: dropins.join(", "),
                });
            };
            if main == e.path && netctls(&main) {
                return Ok(whole);
            }
            let mut files = Vec::new();
            let mut modes = Vec::new();
            for p in std::iter::once(&main).chain(dropins.iter()) {
                let f = found.files[p].as_ref().expect("present");
                files.push(UnitText {
                    path: p.clone(),
                    text: text(p, &f.content)?.to_string(),
                });
                modes.push(f.mode);
            }
            let changed = if flags.is_empty() {
                vec![]
            } else {
                unitfile::edit_flags(unit, &files, flags)?
            };
            let mut out = Vec::new();
            for (i, f) in files.iter().enumerate() {
                let new = changed
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map_or_else(|| f.text.clone(), |(_, t)| t.clone());
                out.extend(keep_or_change(
                    &services, found, &f.path, modes[i], &f.text, new,
                ));
            }
            Ok(out)
        }
    }
}

/// The edited file, when it changes or netctl already manages it (so it stays managed and its
/// original stays kept); nothing when it is the operator's and already right.
fn keep_or_change(
    services: &[String],
    found: &Gathered,
    path: &str,
    mode: u32,
    old: &str,
    new: String,
) -> Option<NodeFile> {
    (new != old || managed(found, path).is_some()).then(|| NodeFile {
        path: path.to_string(),
        mode,
        content: new,
        services: services.to_vec(),
        blob: None,
    })
}

/// The unit's drop-ins in the order systemd reads them: by file name, a name in /etc masking the
/// same name further down.
fn dropins_of(unit: &str, found: &Gathered) -> Result<Vec<String>, EditError> {
    let mut by_name: std::collections::BTreeMap<String, String> = Default::default();
    for dir in dropin_dirs(unit).iter().rev() {
        let prefix = format!("{dir}/");
        for (path, f) in found.files.range(prefix.clone()..) {
            let Some(name) = path.strip_prefix(&prefix) else {
                break;
            };
            if name == UNSAFE_NAME || (!name.contains('/') && !safe_dropin_name(name)) {
                return Err(EditError::UnsafeDropIn { dir: dir.clone() });
            }
            if name.contains('/') || f.is_none() {
                continue;
            }
            by_name.insert(name.to_string(), path.clone());
        }
    }
    Ok(by_name.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ManagedFile, NodeState, RemoteFile};

    fn found(files: &[(&str, &str)]) -> Gathered {
        let mut g = Gathered::default();
        for (p, t) in files {
            g.files.insert(
                p.to_string(),
                Some(RemoteFile {
                    mode: 0o644,
                    content: t.as_bytes().to_vec(),
                    digest: None,
                }),
            );
        }
        g
    }

    fn manage(g: &mut Gathered, path: &str, original: bool) {
        let st = g.state.get_or_insert_with(NodeState::default);
        st.files.insert(
            path.into(),
            ManagedFile {
                sha256: String::new(),
                mode: 0o644,
                original,
                binary: false,
            },
        );
    }

    fn kubelet_edit() -> NodeEdit {
        NodeEdit {
            path: "/etc/systemd/system/kubelet.service".into(),
            change: Change::UnitFlags {
                unit: "kubelet.service".into(),
                flags: FlagEdit {
                    set: vec![("--network-plugin".into(), "cni".into())],
                    ..FlagEdit::default()
                },
            },
            companions: vec![file("/var/lib/kubelet/config.yaml", "CONFIG\n", "kubelet")],
            own: false,
            services: vec![],
        }
    }

    fn file(path: &str, content: &str, service: &str) -> NodeFile {
        NodeFile {
            path: path.into(),
            mode: 0o644,
            content: content.into(),
            services: vec![service.into()],
            blob: None,
        }
    }

    /// The edit with its whole unit and config file, and an unrelated file that stays.
    fn plan(e: NodeEdit) -> NodePlan {
        let files = if e.path.ends_with("config.toml") {
            vec![file(&e.path, "MINIMAL\n", "containerd")]
        } else {
            vec![
                file("/etc/cni/net.d/10-x.conf", "{}", ""),
                file(&e.path, "WHOLE\n", "kubelet"),
            ]
        };
        NodePlan {
            files,
            edits: vec![e],
            ..NodePlan::default()
        }
    }

    /// The resolved files, without the unrelated one.
    fn paths(p: &NodePlan) -> Vec<(&str, &str)> {
        p.files
            .iter()
            .filter(|f| f.path != "/etc/cni/net.d/10-x.conf")
            .map(|f| (f.path.as_str(), f.content.as_str()))
            .collect()
    }

    #[test]
    fn no_unit_anywhere_means_netctls_whole_unit_and_its_config() {
        let p = resolve(&plan(kubelet_edit()), &Gathered::default()).unwrap();
        assert_eq!(
            paths(&p),
            [
                ("/etc/systemd/system/kubelet.service", "WHOLE\n"),
                ("/var/lib/kubelet/config.yaml", "CONFIG\n")
            ]
        );
        assert!(p.edits.is_empty());
        assert_eq!(p.files.len(), 3, "the unrelated file stays");
        assert_eq!(p.files[1].services, ["kubelet"]);
        // render shows the same whole files.
        let shown = plan(kubelet_edit()).with_defaults();
        assert_eq!(paths(&shown), paths(&p));
    }

    #[test]
    fn a_vendor_unit_is_edited_where_it_is_never_masked_by_a_whole_one() {
        let g = found(&[(
            "/usr/lib/systemd/system/kubelet.service",
            "[Service]\nExecStart=/usr/bin/kubelet --v=2\n",
        )]);
        let p = resolve(&plan(kubelet_edit()), &g).unwrap();
        assert_eq!(
            paths(&p),
            [(
                "/usr/lib/systemd/system/kubelet.service",
                "[Service]\nExecStart=/usr/bin/kubelet --v=2 --network-plugin=cni\n"
            )]
        );
    }

    #[test]
    fn an_operators_file_already_right_is_left_alone_and_a_managed_one_kept() {
        let unit = "[Service]\nExecStart=/usr/bin/kubelet --network-plugin=cni\n";
        let mut g = found(&[("/etc/systemd/system/kubelet.service", unit)]);
        assert!(paths(&resolve(&plan(kubelet_edit()), &g).unwrap()).is_empty());
        // Once netctl took it over (original kept), it stays in the plan unchanged, so the
        // diff neither rewrites it nor puts the original back.
        manage(&mut g, "/etc/systemd/system/kubelet.service", true);
        assert_eq!(
            paths(&resolve(&plan(kubelet_edit()), &g).unwrap()),
            [("/etc/systemd/system/kubelet.service", unit)]
        );
        // A unit netctl created itself is written whole again.
        manage(&mut g, "/etc/systemd/system/kubelet.service", false);
        assert_eq!(paths(&resolve(&plan(kubelet_edit()), &g).unwrap()).len(), 2);
    }

    #[test]
    fn own_writes_whole_whatever_the_node_has() {
        let g = found(&[(
            "/etc/systemd/system/kubelet.service",
            "[Service]\nExecStart=/x\n",
        )]);
        let mut e = kubelet_edit();
        e.own = true;
        assert_eq!(paths(&resolve(&plan(e), &g).unwrap()).len(), 2);
    }

    #[test]
    fn drop_ins_are_read_in_order_and_checked() {
        let mut g = found(&[
            (
                "/etc/systemd/system/kubelet.service",
                "[Service]\nExecStart=/bin/kubelet\n",
            ),
            (
                "/usr/lib/systemd/system/kubelet.service.d/10-a.conf",
                "[Service]\nExecStart=\nExecStart=/bin/kubelet --v=1\n",
            ),
            (
                "/etc/systemd/system/kubelet.service.d/20-b.conf",
                "[Service]\nExecStart=\nExecStart=/bin/kubelet --v=2\n",
            ),
        ]);
        let p = resolve(&plan(kubelet_edit()), &g).unwrap();
        assert_eq!(
            paths(&p),
            [(
                "/etc/systemd/system/kubelet.service.d/20-b.conf",
                "[Service]\nExecStart=\nExecStart=/bin/kubelet --v=2 --network-plugin=cni\n"
            )]
        );
        g.files.insert(
            format!("/etc/systemd/system/kubelet.service.d/{UNSAFE_NAME}"),
            None,
        );
        assert!(matches!(
            resolve(&plan(kubelet_edit()), &g),
            Err(EditError::UnsafeDropIn { .. })
        ));
        let only_dropin = found(&[(
            "/etc/systemd/system/kubelet.service.d/20-b.conf",
            "[Service]\nExecStart=/x\n",
        )]);
        assert!(matches!(
            resolve(&plan(kubelet_edit()), &only_dropin),
            Err(EditError::DropInsWithoutUnit { .. })
        ));
    }

    #[test]
    fn containerd_config_is_edited_refused_or_written_whole() {
        let e = NodeEdit {
            path: containerd::CONFIG.into(),
            change: Change::ContainerdCni {
                runtime: ContainerRuntime::Containerd,
                bin_dir: "/opt/cni/bin".into(),
                conf_dir: "/etc/cni/net.d".into(),
            },
            companions: vec![],
            own: false,
            services: vec![],
        };
        assert_eq!(
            paths(&resolve(&plan(e.clone()), &Gathered::default()).unwrap()),
            [(containerd::CONFIG, "MINIMAL\n")]
        );
        let g = found(&[(containerd::CONFIG, "version = 2\n# mine\n")]);
        let p = resolve(&plan(e.clone()), &g).unwrap();
        assert!(p.files[0].content.starts_with("version = 2\n# mine\n"));
        assert!(p.files[0].content.contains("bin_dir = \"/opt/cni/bin\""));
        let bad = found(&[(containerd::CONFIG, "version = [\n")]);
        let err = resolve(&plan(e), &bad).unwrap_err().to_string();
        assert!(err.contains("does not parse"), "{err}");
    }
}
