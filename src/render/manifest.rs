//! The list of what a render wrote, kept in its output directory: a later render removes exactly
//! these files (and these directories, when empty) and nothing else, so `--out` pointed at the
//! wrong directory can never delete someone else's files. A streamed render appends to it before
//! each node's files are made, so a render cut short is still cleaned up by the next one, and
//! rewrites it sorted at the end.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use super::{io_err, WriteError};

pub const MANIFEST: &str = ".netctl-render";
/// The manifest's first line; a manifest without it (or of a later format) is not touched.
const MANIFEST_FORMAT: &str = "netctl-render-manifest 1";

/// What one render wrote, as paths relative to the output directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: BTreeSet<String>,
    /// Directories the render made (not the output directory itself).
    pub dirs: BTreeSet<String>,
}

impl Manifest {
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, WriteError> {
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

    pub fn text(&self) -> String {
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
pub fn plain_relative(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.contains(['\n', '\r'])
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Write the manifest atomically: a new file renamed over the old one.
pub fn write(dir: &Path, m: &Manifest) -> Result<(), WriteError> {
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

/// The manifest of a render under way: what is recorded is appended to the file in the output
/// directory (`flush` before the recorded paths are made) and kept, as paths only, for the final,
/// sorted manifest.
pub struct Log {
    file: std::fs::File,
    path: std::path::PathBuf,
    pending: String,
    all: Manifest,
}

impl Log {
    /// Start with `start` (what is already there and stays listed), written atomically.
    pub fn start(dir: &Path, start: Manifest) -> Result<Log, WriteError> {
        write(dir, &start)?;
        let path = dir.join(MANIFEST);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Log {
            file,
            path,
            pending: String::new(),
            all: start,
        })
    }

    pub fn dir(&mut self, rel: &str) {
        if self.all.dirs.insert(rel.to_string()) {
            self.pending.push_str(&format!("dir {rel}\n"));
        }
    }

    pub fn file(&mut self, rel: &str) {
        if self.all.files.insert(rel.to_string()) {
            self.pending.push_str(&format!("file {rel}\n"));
        }
    }

    /// Put what was recorded since the last flush on disk: call before making it.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        if !self.pending.is_empty() {
            self.file
                .write_all(self.pending.as_bytes())
                .map_err(io_err(&self.path))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Replace the log with the sorted manifest of everything recorded.
    pub fn finish(self, dir: &Path) -> Result<(), WriteError> {
        drop(self.file);
        write(dir, &self.all)
    }
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

    /// A render cut short leaves a manifest that lists everything recorded so far (in the order
    /// recorded); a finished one, the sorted manifest.
    #[test]
    fn the_log_lists_what_was_recorded_before_and_after_it_finishes() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::start(
            d.path(),
            Manifest {
                files: BTreeSet::new(),
                dirs: ["old".to_string()].into(),
            },
        )
        .unwrap();
        log.file("plan.json");
        log.dir("nodes");
        log.file("nodes/b");
        log.flush().unwrap();
        log.file("nodes/a");
        log.file("nodes/a");
        log.flush().unwrap();
        let read = || {
            let p = d.path().join(MANIFEST);
            Manifest::parse(&std::fs::read_to_string(&p).unwrap(), &p).unwrap()
        };
        let want = Manifest {
            files: ["plan.json", "nodes/b", "nodes/a"].map(String::from).into(),
            dirs: ["old", "nodes"].map(String::from).into(),
        };
        assert_eq!(read(), want, "cut short here");
        log.finish(d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join(MANIFEST)).unwrap(),
            want.text()
        );
    }
}
