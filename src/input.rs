//! Reading a local input file (profile, ssh config, identity file, known_hosts) that the operator
//! named, without trusting what it is: `/dev/zero` would grow memory without end and a FIFO would
//! hang the run, so only regular files (after following symlinks) are read, and at most `limit`
//! bytes of them.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Far above any real profile, ssh config, key or known_hosts file.
pub const DEFAULT_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: it is a {kind}, not a regular file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("cannot read {path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("cannot read {path}: not UTF-8 text")]
    NotUtf8 { path: PathBuf },
}

impl ReadError {
    /// The file named: every variant carries it.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotAFile { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::NotUtf8 { path } => path,
        }
    }
}

/// The bytes of the regular file at `path` (symlinks followed), refusing anything else and any
/// file longer than `limit` bytes.
pub fn read_bounded_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Judged before opening (opening some devices has effects) and again on the opened file (the
    // path may be swapped in between). O_NONBLOCK: opening a FIFO otherwise waits for a writer.
    let before = std::fs::metadata(path).map_err(io)?.file_type();
    if !before.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_name(before),
        });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_name(kind),
        });
    }
    read_at_most(file, limit)
        .map_err(io)?
        .ok_or(ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        })
}

/// `read_bounded_bytes` for text files.
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bounded_bytes(path, limit)?).map_err(|_| ReadError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// Up to `limit` bytes, or None when the file holds more (it may grow while read: the size from
/// metadata is not trusted).
fn read_at_most(file: File, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

pub(crate) fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(read_bounded(&p, 3).unwrap(), "abc");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read_bounded(&link, 3).unwrap(), "abc");
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abcd").unwrap();
        let e = read_bounded(&p, 3).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 3, .. }), "{e}");
        assert_eq!(e.path(), p);
    }

    #[test]
    fn dev_zero_is_refused_not_read_forever() {
        let e = read_bounded(Path::new("/dev/zero"), DEFAULT_LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::NotAFile {
                    kind: "character device",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/dev/zero"));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_bounded(&p, DEFAULT_LIMIT).unwrap_err();
        assert!(matches!(e, ReadError::NotAFile { kind: "FIFO", .. }), "{e}");
    }

    #[test]
    fn a_directory_and_binary_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded(dir.path(), DEFAULT_LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::NotAFile {
                    kind: "directory",
                    ..
                }
            ),
            "{e}"
        );
        let p = dir.path().join("bin");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_bounded(&p, DEFAULT_LIMIT),
            Err(ReadError::NotUtf8 { .. })
        ));
        assert_eq!(read_bounded_bytes(&p, 2).unwrap(), [0xff, 0xfe]);
    }
}
