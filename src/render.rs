//! The render output tree: every node's and the cluster's files, and plan.json, written to a
//! directory node by node: one node is planned, its files and its plan.json entry written, and
//! the plan dropped before the next, so memory does not grow with the nodes times what each gets.
//! A file the provider shares by every node (the routes peer table) is written once, under
//! shared/; any other file that is the same on many nodes (same path, mode and bytes) is written
//! once and hard linked into the other nodes' directories. The templates themselves are rendered
//! by `template`.

mod manifest;
mod plan_json;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use crate::profile::Cluster;
use crate::provider::{self, Inputs, NodeFile, NodePlan};
pub use manifest::MANIFEST;
use manifest::{plain_relative, Manifest};
use plan_json::{PlanJson, PlanNode};

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

/// The proper ancestors of `rel` ("a/b/c" -> "a", "a/b"), shallowest first.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
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

/// Create `path` (it does not exist: the way was checked and cleared) with `mode`, exactly
/// (a key is never readable by others, not even briefly); `None`: the default mode.
fn write_file(path: &Path, content: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    let mut f = create(path, mode)?;
    f.write_all(content).map_err(io_err(path))?;
    Ok(())
}

/// A new file at `path` with `mode` exactly (the umask does not apply), its parent already made.
fn create(path: &Path, mode: Option<u32>) -> Result<std::fs::File, WriteError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    if let Some(m) = mode {
        o.mode(m);
    }
    let f = o.open(path).map_err(io_err(path))?;
    if let Some(m) = mode {
        f.set_permissions(std::fs::Permissions::from_mode(m))
            .map_err(io_err(path))?;
    }
    Ok(f)
}

/// Distinct node paths remembered for sharing. Node paths are a provider's fixed set, so this is
/// never reached; it bounds the memory if a provider ever names files after the node.
const SHARED_PATHS_MAX: usize = 256;

/// The first node's copy of a file at one node path, which later identical ones link to.
struct Shared {
    file: NodeFile,
    rel: String,
    sha256: String,
}

/// How a node's file reaches the output.
enum Make {
    Write,
    /// A hard link to this earlier, identical file.
    Link(String),
}

/// The output directory while a render writes it.
struct Tree<'a> {
    dir: &'a Path,
    /// Directories known to be there (checked or made), each looked at once.
    dirs: HashSet<String>,
    /// Directories recorded and to be made at the next `make_dirs`, shallowest first.
    new_dirs: Vec<String>,
    log: manifest::Log,
    shared: HashMap<String, Shared>,
    /// The node paths of the shared files written under shared/ so far.
    shared_dir: HashSet<String>,
    written: usize,
}

impl<'a> Tree<'a> {
    fn new(dir: &'a Path, start: Manifest) -> Result<Tree<'a>, WriteError> {
        Ok(Tree {
            dir,
            dirs: HashSet::new(),
            new_dirs: Vec::new(),
            log: manifest::Log::start(dir, start)?,
            shared: HashMap::new(),
            shared_dir: HashSet::new(),
            written: 0,
        })
    }

    /// List `rel` (and the directories it needs that are not there) in the manifest.
    fn record(&mut self, rel: &str) -> Result<(), WriteError> {
        if !plain_relative(rel) {
            return Err(WriteError::InTheWay {
                path: self.dir.join(rel),
            });
        }
        for a in ancestors(rel) {
            if self.dirs.contains(a) {
                continue;
            }
            match lstat(self.dir, a)? {
                Some(true) => {}
                Some(false) => {
                    return Err(WriteError::InTheWay {
                        path: self.dir.join(a),
                    })
                }
                None => {
                    self.log.dir(a);
                    self.new_dirs.push(a.to_string());
                }
            }
            self.dirs.insert(a.to_string());
        }
        self.log.file(rel);
        Ok(())
    }

    /// The manifest on disk first, then the directories it lists: a render cut short after this
    /// is cleaned up by the next one.
    fn make_dirs(&mut self) -> Result<(), WriteError> {
        self.log.flush()?;
        for d in self.new_dirs.drain(..) {
            let p = self.dir.join(d);
            std::fs::create_dir(&p).map_err(io_err(&p))?;
        }
        Ok(())
    }

    fn write(&mut self, rel: &str, content: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
        write_file(&self.dir.join(rel), content, mode)?;
        self.written += 1;
        Ok(())
    }

    /// Write one node's files (binaries are not written: plan.json lists them by sha256; a
    /// shared file is written by the first node that has it); the sha256 of every file of the
    /// plan, in order.
    fn node(&mut self, name: &str, plan: &NodePlan) -> Result<Vec<String>, WriteError> {
        let mut sha256 = Vec::with_capacity(plan.files.len());
        let mut make = Vec::with_capacity(plan.files.len());
        for f in &plan.files {
            if let Some(b) = &f.blob {
                if b.shared && !self.shared_dir.contains(&f.path) {
                    // The first node that has it writes it, under shared/; plan.json says where.
                    let rel = format!("{SHARED_DIR}{}", f.path);
                    self.record(&rel)?;
                    self.shared_dir.insert(f.path.clone());
                    make.push((rel, f, Make::Write));
                }
                sha256.push(f.sha256());
                continue;
            }
            let rel = format!("nodes/{name}{}", f.path);
            self.record(&rel)?;
            match self.shared.get(&f.path) {
                Some(s) if s.file.mode == f.mode && same_bytes(&s.file, f) => {
                    sha256.push(s.sha256.clone());
                    make.push((rel, f, Make::Link(s.rel.clone())));
                }
                _ => {
                    let sha = f.sha256();
                    if self.shared.len() < SHARED_PATHS_MAX && !self.shared.contains_key(&f.path) {
                        self.shared.insert(
                            f.path.clone(),
                            Shared {
                                file: f.clone(),
                                rel: rel.clone(),
                                sha256: sha.clone(),
                            },
                        );
                    }
                    sha256.push(sha);
                    make.push((rel, f, Make::Write));
                }
            }
        }
        self.make_dirs()?;
        for (rel, f, how) in make {
            match how {
                Make::Link(first)
                    if std::fs::hard_link(self.dir.join(&first), self.dir.join(&rel)).is_ok() =>
                {
                    self.written += 1;
                }
                // No hard links on this file system: a copy of its own.
                Make::Link(_) | Make::Write => self.write(&rel, f.bytes(), Some(f.mode))?,
            }
        }
        Ok(sha256)
    }
}

/// The same bytes: by pointer first (content shared by every node's plan), else compared.
fn same_bytes(a: &NodeFile, b: &NodeFile) -> bool {
    let (a, b) = (a.bytes(), b.bytes());
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// Where a node's written files go in the output, relative to it (shared files too: checking
/// one path twice costs little).
fn node_paths(name: &str, plan: &NodePlan) -> Vec<String> {
    plan.files
        .iter()
        .filter_map(|f| match &f.blob {
            None => Some(format!("nodes/{name}{}", f.path)),
            Some(b) if b.shared => Some(format!("{SHARED_DIR}{}", f.path)),
            Some(_) => None,
        })
        .collect()
}

const PLAN_JSON: &str = "plan.json";

/// Where the output holds the files that are the same on every node (the routes peer table),
/// once, instead of under every node's directory.
pub const SHARED_DIR: &str = "shared";

/// Write the render output to `dir`, node by node, replacing an earlier render there (and
/// nothing else): a new or empty directory, or one with the manifest of an earlier render.
/// `inputs` as the command prepared them: `render` passes the stored certificates and no
/// binaries. Returns how many files were written.
pub fn write_tree(cluster: &Cluster, inputs: &Inputs, dir: &Path) -> Result<usize, WriteError> {
    let old = previous_render(dir)?;
    let cluster_plan = provider::cluster_plan(cluster);
    // Local manifests first: a missing one is the profile's fault, found before anything is written.
    let mut head: Vec<(String, Vec<u8>, Option<u32>)> = Vec::new();
    for f in &cluster_plan.files {
        let mode = if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        let rel = format!("cluster/{}", f.path);
        head.push((rel, f.content.clone().into_bytes(), Some(mode)));
    }
    for c in &cluster_plan.copies {
        let src = crate::profile::expand_home(&c.source);
        let content = std::fs::read(&src).map_err(|source| WriteError::Source {
            field: c.field.clone(),
            path: src.clone(),
            source,
        })?;
        head.push((format!("cluster/{}", c.path), content, None));
    }
    if let Some(old) = &old {
        // Over an earlier render, every path is checked before anything is removed, so a refusal
        // leaves the directory as it was. That plans each node twice; paths only are kept.
        let head_paths = head.iter().map(|(rel, ..)| rel.as_str());
        check_way_is_free(dir, head_paths.chain([PLAN_JSON]), old)?;
        for n in &cluster.nodes {
            let plan = provider::node_plan(cluster, n, inputs).with_defaults();
            let paths = node_paths(&n.name, &plan);
            check_way_is_free(dir, paths.iter().map(String::as_str), old)?;
        }
        remove_listed(dir, old)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
            WriteError::NotADirectory {
                path: dir.to_path_buf(),
            }
        }
        _ => io_err(dir)(e),
    })?;
    // The earlier render's directories that are still there stay listed: someone else's files
    // kept them, and the next render may remove them once empty.
    let mut start = Manifest::default();
    for d in old.iter().flat_map(|m| &m.dirs) {
        if lstat(dir, d)? == Some(true) {
            start.dirs.insert(d.clone());
        }
    }
    let mut tree = Tree::new(dir, start)?;
    for (rel, ..) in &head {
        tree.record(rel)?;
    }
    tree.record(PLAN_JSON)?;
    tree.make_dirs()?;
    for (rel, content, mode) in &head {
        tree.write(rel, content, *mode)?;
    }
    drop(head);

    let path = dir.join(PLAN_JSON);
    let file = std::io::BufWriter::new(create(&path, Some(0o644))?);
    let mut plan_json = PlanJson::begin(file, cluster).map_err(io_err(&path))?;
    for n in &cluster.nodes {
        let plan = provider::node_plan(cluster, n, inputs).with_defaults();
        let sha256 = tree.node(&n.name, &plan)?;
        plan_json
            .node(&PlanNode::new(&n.name, &plan, &sha256))
            .map_err(io_err(&path))?;
    }
    plan_json
        .finish(&cluster_plan)
        .and_then(|mut w| w.flush())
        .map_err(io_err(&path))?;
    tree.written += 1;
    let written = tree.written;
    tree.log.finish(dir)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_the_directories_on_the_way() {
        assert_eq!(
            ancestors("nodes/a/etc/x.conf").collect::<Vec<_>>(),
            ["nodes", "nodes/a", "nodes/a/etc"]
        );
        assert_eq!(ancestors("plan.json").count(), 0);
    }

    /// Every file that is the same (bytes and mode) at one path on several nodes is one file
    /// hard linked into each node's directory; files that differ are files of their own.
    #[test]
    fn a_file_the_same_on_many_nodes_is_written_once() {
        use std::os::unix::fs::MetadataExt;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cluster = crate::profile::load(&root.join("profiles/gce-routes.yaml")).unwrap();
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let written = write_tree(&cluster, &Inputs::default(), &out).unwrap();
        // node path -> (inode, content) per node
        let mut by_path: HashMap<String, Vec<(u64, Vec<u8>)>> = HashMap::new();
        let mut files = 0;
        for n in &cluster.nodes {
            let plan = provider::node_plan(&cluster, n, &Inputs::default()).with_defaults();
            for f in plan.files.iter().filter(|f| f.blob.is_none()) {
                let p = out.join(format!("nodes/{}{}", n.name, f.path));
                let meta = std::fs::symlink_metadata(&p).unwrap();
                assert_eq!(meta.mode() & 0o7777, f.mode, "{}", p.display());
                by_path
                    .entry(f.path.clone())
                    .or_default()
                    .push((meta.ino(), std::fs::read(&p).unwrap()));
                files += 1;
            }
        }
        assert!(written > files, "node files, cluster files and plan.json");
        let mut linked = 0;
        for (path, copies) in &by_path {
            for (i, a) in copies.iter().enumerate() {
                for b in &copies[i + 1..] {
                    assert_eq!(
                        a.0 == b.0,
                        a.1 == b.1,
                        "{path}: one file exactly when the same"
                    );
                    linked += usize::from(a.0 == b.0);
                }
            }
        }
        assert!(linked > 0, "the nodes share files");
        assert!(
            by_path.values().any(|c| c.iter().any(|x| x.0 != c[0].0)),
            "the nodes also have files of their own"
        );
    }

    /// A file the provider shares by every node (the routes peer table) is written once, under
    /// shared/, and in no node's directory; plan.json lists it on every node with its sha256 and
    /// where it is.
    #[test]
    fn a_shared_file_is_written_once_under_shared() {
        let text = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes\nnodes:\n  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.2}\n  - {name: c, address: 10.0.0.3}\n";
        let cluster = crate::profile::load_str(text, Path::new("t.yaml")).unwrap();
        let plan = provider::node_plan(&cluster, &cluster.nodes[0], &Inputs::default());
        let shared: Vec<&NodeFile> = plan
            .files
            .iter()
            .filter(|f| f.blob.as_ref().is_some_and(|b| b.shared))
            .collect();
        assert!(!shared.is_empty(), "routes shares its peer table");
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        write_tree(&cluster, &Inputs::default(), &out).unwrap();
        let plan_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(PLAN_JSON)).unwrap()).unwrap();
        for f in shared {
            let once = out.join(format!("{SHARED_DIR}{}", f.path));
            assert_eq!(
                std::fs::read(&once).unwrap(),
                f.bytes(),
                "{}",
                once.display()
            );
            for (i, n) in cluster.nodes.iter().enumerate() {
                let copy = out.join(format!("nodes/{}{}", n.name, f.path));
                assert!(!copy.exists(), "{}", copy.display());
                let entry = plan_json["nodes"][i]["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["path"] == f.path.as_str())
                    .unwrap();
                assert_eq!(entry["sha256"], f.sha256().as_str());
                assert!(entry["note"].as_str().unwrap().contains(SHARED_DIR));
            }
        }
        let manifest = std::fs::read_to_string(out.join(MANIFEST)).unwrap();
        assert!(
            manifest.contains(&format!("file {SHARED_DIR}/")),
            "{manifest}"
        );
    }
}
