//! The render output tree: every node's and the cluster's files, and plan.json, written to a
//! directory. The templates themselves are rendered by `template`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::profile::Cluster;
use crate::provider::{self, ClusterPlan, Inputs, NodePlan};

/// Every artifact for a cluster: per node, and cluster-wide.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub nodes: BTreeMap<String, NodePlan>,
    pub cluster: ClusterPlan,
}

/// `inputs` as the command prepared them: `render` passes the stored certificates and no binaries.
pub fn render_all(cluster: &Cluster, inputs: &Inputs) -> Rendered {
    Rendered {
        nodes: cluster
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    provider::node_plan(cluster, n, inputs).with_defaults(),
                )
            })
            .collect(),
        cluster: provider::cluster_plan(cluster),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not empty and is not a netctl render output (it has no {MANIFEST}, the list of what an earlier render wrote); refusing to write into it: choose a new or empty directory"
    )]
    NotOurs { path: PathBuf },
    #[error("--out {path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} is in the way and was not written by an earlier netctl render; refusing to replace it")]
    InTheWay { path: PathBuf },
    #[error(
        "{path}, line {line}: not a netctl render manifest ({why}); refusing to remove anything"
    )]
    BadManifest {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{field}: cannot read {path}: {source}")]
    Source {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize)]
struct PlanFile<'a> {
    path: &'a str,
    mode: String,
    sha256: String,
    services: &'a [String],
    /// A binary (flanneld): not in the output, only its sha256 and where plan/init copy it from.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize)]
struct PlanNode<'a> {
    name: &'a str,
    files: Vec<PlanFile<'a>>,
    units: &'a [provider::Unit],
    commands: Vec<&'a str>,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    name: &'a str,
    provider: &'a str,
    profile_sha256: &'a str,
    nodes: Vec<PlanNode<'a>>,
    kubectl: &'a [provider::KubectlStep],
    local: &'a [provider::LocalCommand],
}

/// plan.json: per node the files (path, mode, sha256, services) and commands in order.
pub fn plan_json(cluster: &Cluster, r: &Rendered) -> String {
    let nodes = cluster
        .nodes
        .iter()
        .map(|n| {
            let p = &r.nodes[&n.name];
            PlanNode {
                name: &n.name,
                files: p
                    .files
                    .iter()
                    .map(|f| PlanFile {
                        path: &f.path,
                        mode: format!("{:04o}", f.mode),
                        sha256: f.sha256(),
                        services: &f.services,
                        note: f.blob.as_ref().map(|b| {
                            if b.shared {
                                format!(
                                    "the same on every node: written once, as {SHARED_DIR}{}",
                                    f.path
                                )
                            } else {
                                format!(
                                "binary, not written here: netctl plan/init copy the file {} names",
                                b.field
                            )
                            }
                        }),
                    })
                    .collect(),
                units: &p.units,
                commands: p.commands.iter().map(|c| c.command.as_str()).collect(),
            }
        })
        .collect();
    let doc = PlanJson {
        name: &cluster.profile.name,
        provider: cluster.provider().as_str(),
        profile_sha256: &cluster.hash,
        nodes,
        kubectl: &r.cluster.kubectl,
        local: &r.cluster.local,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serialises");
    s.push('\n');
    s
}

/// Where the output holds the files that are the same on every node (the routes peer table),
/// once, instead of under every node's directory.
pub const SHARED_DIR: &str = "shared";

/// Every output file, relative to the output directory, in a stable order.
pub fn output_files(cluster: &Cluster, r: &Rendered) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    let mut shared = BTreeMap::new();
    for n in &cluster.nodes {
        // Binaries are listed in plan.json by sha256; render never reads their bytes.
        for f in &r.nodes[&n.name].files {
            match &f.blob {
                None => out.push((
                    format!("nodes/{}{}", n.name, f.path),
                    f.content.clone(),
                    f.mode,
                )),
                Some(b) if b.shared => {
                    shared.entry(f.path.as_str()).or_insert_with(|| {
                        let text = String::from_utf8_lossy(f.bytes()).into_owned();
                        (text, f.mode)
                    });
                }
                Some(_) => {}
            }
        }
    }
    for (path, (content, mode)) in shared {
        out.push((format!("{SHARED_DIR}{path}"), content, mode));
    }
    for f in &r.cluster.files {
        let mode = if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        out.push((format!("cluster/{}", f.path), f.content.clone(), mode));
    }
    out.push(("plan.json".into(), plan_json(cluster, r), 0o644));
    out
}

/// The list of what a render wrote, kept in its output directory: a later render removes exactly
/// these files (and these directories, when empty) and nothing else, so `--out` pointed at the
/// wrong directory can never delete someone else's files.
pub const MANIFEST: &str = ".netctl-render";
/// The manifest's first line; a manifest without it (or of a later format) is not touched.
const MANIFEST_FORMAT: &str = "netctl-render-manifest 1";

/// What one render wrote, as paths relative to the output directory.
#[derive(Debug, Default, PartialEq, Eq)]
struct Manifest {
    files: BTreeSet<String>,
    /// Directories the render made (not the output directory itself).
    dirs: BTreeSet<String>,
}

impl Manifest {
    fn parse(text: &str, path: &Path) -> Result<Manifest, WriteError> {
        let bad = |line: usize, why: &str| WriteError::BadManifest {
            path: path.to_path_buf(),
            line,
            why: why.to_string(),
        };
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, l)| l) != Some(MANIFEST_FORMAT) {
            return Err(bad(
                1,
                &format!("the first line is not `{MANIFEST_FORMAT}`"),
            ));
        }
        let mut m = Manifest::default();
        for (i, line) in lines {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (set, rel) = match line.split_once(' ') {
                Some(("file", rel)) => (&mut m.files, rel),
                Some(("dir", rel)) => (&mut m.dirs, rel),
                _ => return Err(bad(i + 1, "expected `file PATH` or `dir PATH`")),
            };
            if !plain_relative(rel) || rel == MANIFEST {
                return Err(bad(i + 1, "the path is not plain and relative"));
            }
            set.insert(rel.to_string());
        }
        Ok(m)
    }

    fn text(&self) -> String {
        let mut s = format!(
            "{MANIFEST_FORMAT}\n# Written by `netctl render`: what it wrote here. The next render into this directory\n\
             # removes exactly these files (and these directories when empty), nothing else.\n"
        );
        for d in &self.dirs {
            s.push_str(&format!("dir {d}\n"));
        }
        for f in &self.files {
            s.push_str(&format!("file {f}\n"));
        }
        s
    }
}

/// Relative, only plain components, on one line: stays inside the output directory.
fn plain_relative(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.contains(['\n', '\r'])
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// The proper ancestors of `rel` ("a/b/c" -> "a", "a/b"), shallowest first.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { path, source }
}

/// What an earlier render left in `dir`: `None` when there is nothing (no directory, or an empty
/// one); refused when `dir` is not a directory, or holds files but no manifest.
fn previous_render(dir: &Path) -> Result<Option<Manifest>, WriteError> {
    let not_dir = || WriteError::NotADirectory {
        path: dir.to_path_buf(),
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Err(not_dir()),
        Err(e) => return Err(io_err(dir)(e)),
        Ok(m) if !m.is_dir() => return Err(not_dir()),
        Ok(_) => {}
    }
    let path = dir.join(MANIFEST);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            Manifest::parse(&text, &path).map(Some)
        }
        Ok(_) => Err(WriteError::BadManifest {
            path,
            line: 0,
            why: "it is not a regular file".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let empty = std::fs::read_dir(dir)
                .map_err(io_err(dir))?
                .next()
                .is_none();
            if empty {
                Ok(None)
            } else {
                Err(WriteError::NotOurs {
                    path: dir.to_path_buf(),
                })
            }
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Whether `dir/rel` exists, without following a symlink at the end: `Some(is a real directory)`.
fn lstat(dir: &Path, rel: &str) -> Result<Option<bool>, WriteError> {
    let p = dir.join(rel);
    match std::fs::symlink_metadata(&p) {
        Ok(m) => Ok(Some(m.is_dir())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&p)(e)),
    }
}

/// Refuse, before anything is removed or written, when something the earlier render did not
/// write is where this render writes a file (or needs a directory).
fn check_way_is_free<'a>(
    dir: &Path,
    paths: impl Iterator<Item = &'a str>,
    old: &Manifest,
) -> Result<(), WriteError> {
    let foreign = |rel: &str| WriteError::InTheWay {
        path: dir.join(rel),
    };
    for rel in paths {
        for a in ancestors(rel) {
            match lstat(dir, a)? {
                Some(true) => continue,
                Some(false) if old.files.contains(a) => break,
                Some(false) => return Err(foreign(a)),
                None => break,
            }
        }
        match lstat(dir, rel)? {
            Some(false) if old.files.contains(rel) => {}
            Some(_) => return Err(foreign(rel)),
            None => {}
        }
    }
    Ok(())
}

/// Whether every directory on the way from `dir` to `rel` is a real one (not a symlink): what
/// is removed is then inside `dir`.
fn inside(dir: &Path, rel: &str) -> Result<bool, WriteError> {
    for a in ancestors(rel) {
        if lstat(dir, a)? != Some(true) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Remove what the earlier render listed: its files, then its directories that are now empty
/// (deepest first). Directories still holding someone else's files stay.
fn remove_listed(dir: &Path, old: &Manifest) -> Result<(), WriteError> {
    for rel in &old.files {
        if inside(dir, rel)? && lstat(dir, rel)? == Some(false) {
            let p = dir.join(rel);
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    // A child sorts after its parent: reverse order removes children first.
    for rel in old.dirs.iter().rev() {
        if inside(dir, rel)? && lstat(dir, rel)? == Some(true) {
            let _ = std::fs::remove_dir(dir.join(rel));
        }
    }
    Ok(())
}

/// Write the manifest (atomically: a new file renamed over the old one) before the files it
/// lists, so a render cut short is still cleaned up by the next one.
fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), WriteError> {
    use std::io::Write;
    let tmp = dir.join(format!("{MANIFEST}.new"));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&tmp)(e)),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(m.text().as_bytes()).map_err(io_err(&tmp))?;
    // The same mode whatever the umask, as every other file of the render.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(&tmp))?;
    let path = dir.join(MANIFEST);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Create `path` (it does not exist: the way was checked and cleared) with `mode`, exactly
/// (a key is never readable by others, not even briefly); `None`: the default mode.
fn write_file(path: &Path, content: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    if let Some(m) = mode {
        o.mode(m);
    }
    let mut f = o.open(path).map_err(io_err(path))?;
    f.write_all(content).map_err(io_err(path))?;
    if let Some(m) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Write the render output to `dir`, replacing an earlier render there (and nothing else): a
/// new or empty directory, or one with the manifest of an earlier render.
pub fn write_tree(cluster: &Cluster, r: &Rendered, dir: &Path) -> Result<usize, WriteError> {
    let old = previous_render(dir)?.unwrap_or_default();
    // Local manifests first: a missing one is the profile's fault, found before anything is written.
    let mut out: Vec<(String, Vec<u8>, Option<u32>)> = Vec::new();
    for c in &r.cluster.copies {
        let src = crate::profile::expand_home(&c.source);
        let content = std::fs::read(&src).map_err(|source| WriteError::Source {
            field: c.field.clone(),
            path: src.clone(),
            source,
        })?;
        out.push((format!("cluster/{}", c.path), content, None));
    }
    let rendered = output_files(cluster, r);
    let n = rendered.len() + out.len();
    out.splice(
        0..0,
        rendered
            .into_iter()
            .map(|(rel, content, mode)| (rel, content.into_bytes(), Some(mode))),
    );
    if let Some((rel, ..)) = out.iter().find(|(rel, ..)| !plain_relative(rel)) {
        return Err(WriteError::InTheWay {
            path: dir.join(rel),
        });
    }
    check_way_is_free(dir, out.iter().map(|(rel, ..)| rel.as_str()), &old)?;
    remove_listed(dir, &old)?;
    std::fs::create_dir_all(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
            WriteError::NotADirectory {
                path: dir.to_path_buf(),
            }
        }
        _ => io_err(dir)(e),
    })?;
    let mut manifest = Manifest::default();
    for d in &old.dirs {
        if lstat(dir, d)? == Some(true) {
            manifest.dirs.insert(d.clone());
        }
    }
    for (rel, ..) in &out {
        for a in ancestors(rel) {
            if lstat(dir, a)?.is_none() {
                manifest.dirs.insert(a.to_string());
            }
        }
        manifest.files.insert(rel.clone());
    }
    write_manifest(dir, &manifest)?;
    for (rel, content, mode) in &out {
        write_file(&dir.join(rel), content, *mode)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back_what_was_written() {
        let m = Manifest {
            files: ["cluster/routes.sh".to_string(), "plan.json".to_string()].into(),
            dirs: ["cluster".to_string()].into(),
        };
        assert_eq!(Manifest::parse(&m.text(), Path::new("m")).unwrap(), m);
    }

    /// The manifest decides what is removed: a path leaving the output directory, or a file
    /// that is not a netctl manifest, is refused before anything is removed.
    #[test]
    fn a_manifest_naming_paths_outside_is_refused() {
        for bad in [
            "file ../victim",
            "file /etc/passwd",
            "dir nodes/../..",
            "file ./plan.json",
            "file .netctl-render",
            "rm plan.json",
            "file ",
        ] {
            let text = format!("{MANIFEST_FORMAT}\n{bad}\n");
            let e = Manifest::parse(&text, Path::new("m")).unwrap_err();
            assert!(
                matches!(e, WriteError::BadManifest { line: 2, .. }),
                "{bad}: {e}"
            );
        }
        let e = Manifest::parse("{\"format_version\": \"1.2\"}\n", Path::new("m")).unwrap_err();
        assert!(matches!(e, WriteError::BadManifest { line: 1, .. }), "{e}");
    }

    #[test]
    fn ancestors_are_the_directories_on_the_way() {
        assert_eq!(
            ancestors("nodes/a/etc/x.conf").collect::<Vec<_>>(),
            ["nodes", "nodes/a", "nodes/a/etc"]
        );
        assert_eq!(ancestors("plan.json").count(), 0);
    }
}
