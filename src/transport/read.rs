//! Reading the operator's local ssh files (config, Includes, identity files, known_hosts) safely.
//!
//! Why: these paths come from the profile and ~/.ssh/config, and a mistake there must be a clear
//! error, not a hang or a machine out of memory: a FIFO blocks `open` until a writer appears, and
//! `/dev/zero` never ends. So only regular files are read, opened without blocking, and at most a
//! bounded number of bytes. The reading itself is `crate::input`'s, shared with the profile.

use std::path::Path;

/// The most netctl reads of any one ssh file; real ones are a few KiB.
pub const MAX_SSH_FILE: u64 = 16 << 20;

/// Why a file could not be read. The caller names the file (every message reads after its path).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("not a regular file (it is {0})")]
    NotRegular(&'static str),
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The whole of `path`, which must be a regular file (after following symlinks) of at most `limit`
/// bytes: `crate::input`'s reader, with errors that read after the path the caller prints.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    use crate::input::ReadError as E;
    crate::input::read_bounded_bytes(path, limit).map_err(|e| match e {
        E::Io { source, .. } => ReadError::Io(source),
        E::NotAFile { kind, .. } => ReadError::NotRegular(article(kind)),
        E::TooLarge { limit, .. } => ReadError::TooLarge { limit },
        E::NotUtf8 { .. } => unreachable!("bytes are not decoded"),
    })
}

/// As `read_regular`, for text (invalid UTF-8 is replaced, as only ASCII parts are ever used).
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    read_regular(path, limit).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn article(kind: &'static str) -> &'static str {
    match kind {
        "directory" => "a directory",
        "FIFO" => "a FIFO",
        "character device" => "a character device",
        "block device" => "a block device",
        "socket" => "a socket",
        _ => "not a file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"12345");
        assert!(matches!(
            read_regular(&p, 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read_regular_text(&link, 5).unwrap(), "12345");
        assert!(read_regular(&dir.path().join("missing"), 5)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn refuses_devices_fifos_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (link.as_path(), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = read_regular(path, MAX_SSH_FILE).unwrap_err();
            assert!(matches!(e, ReadError::NotRegular(k) if k == kind), "{e}");
            assert!(e.to_string().starts_with("not a regular file"), "{e}");
        }
    }
}
