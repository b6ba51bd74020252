//! Local temporary directories and the files netctl writes into them (the kubectl manifests of
//! init and switch, the smoke test's manifest). The system temp directory is shared with every
//! local user: a name built from the pid or the time can be made first by someone else, and a
//! file written by path follows a symlink planted there. So every temporary directory comes from
//! here: a name from the OS RNG, created exclusively with mode 0700 (tempfile retries on a
//! collision, it never reuses a directory), removed on drop; and files inside are created new
//! (O_EXCL: an existing file or symlink is an error, never followed) with mode 0600.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A private temporary directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct PrivateDir(tempfile::TempDir);

impl PrivateDir {
    /// A new directory in the system temp directory, named `<prefix><random>`.
    pub fn new(prefix: &str) -> io::Result<PrivateDir> {
        Self::new_in(&std::env::temp_dir(), prefix)
    }

    /// As `new`, under `parent` (tests use their own).
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<PrivateDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map(PrivateDir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Create `rel` inside this directory (see `write_new`).
    pub fn write_new(&self, rel: &str, content: &[u8]) -> io::Result<PathBuf> {
        write_new(self.path(), rel, content)
    }
}

/// Create the file `dir/rel` with `content`, mode 0600, and any missing directories on the way
/// with mode 0700. The file must not exist yet: an existing file, or a symlink in its place, is
/// an error (`AlreadyExists`) and is left as it is. `rel` must be relative and plain (no `..`),
/// so the file stays inside `dir`.
pub fn write_new(dir: &Path, rel: &str, content: &[u8]) -> io::Result<PathBuf> {
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a plain relative path", rel.display()),
        ));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        // create_new already refuses a symlink at the path; O_NOFOLLOW says so to the reader too.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn the_directory_is_private_fresh_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let a = PrivateDir::new_in(parent.path(), "netctl-t-").unwrap();
        let b = PrivateDir::new_in(parent.path(), "netctl-t-").unwrap();
        assert_ne!(a.path(), b.path());
        for d in [&a, &b] {
            assert_eq!(mode(d.path()), 0o700, "{}", d.path().display());
            let name = d.path().file_name().unwrap().to_string_lossy().into_owned();
            // Six or more random characters after the prefix, not a pid or a time.
            assert!(name.len() >= "netctl-t-".len() + 6, "{name}");
        }
        let path = a.path().to_path_buf();
        a.write_new("x/y.yaml", b"y").unwrap();
        drop(a);
        assert!(!path.exists());
        assert!(b.path().exists());
    }

    #[test]
    fn files_are_new_0600_and_never_follow_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let work = d.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::os::unix::fs::symlink(&victim, work.join("kube-flannel.yaml")).unwrap();

        let e = write_new(&work, "kube-flannel.yaml", b"evil").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");

        // An existing plain file is not overwritten either.
        std::fs::write(work.join("plain.yaml"), "old").unwrap();
        assert!(write_new(&work, "plain.yaml", b"new").is_err());
        assert_eq!(
            std::fs::read_to_string(work.join("plain.yaml")).unwrap(),
            "old"
        );

        let p = write_new(&work, "calico/kustomization.yaml", b"k").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&work.join("calico")), 0o700);
        assert_eq!(std::fs::read_to_string(p).unwrap(), "k");
    }

    #[test]
    fn paths_leaving_the_directory_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", "", "./x"] {
            let e = write_new(d.path(), bad, b"").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
