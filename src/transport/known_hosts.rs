//! known_hosts lookups and trust-on-first-use recording, on top of russh's helpers.
//!
//! Two gaps in russh's helpers are closed here: for port 22 it only matches plain `host` entries, so a
//! `[host]:22` entry is looked up as well; and its "changed at line N" does not count comment lines, so
//! the line is recomputed to be the real line number an operator would edit.

use std::io::BufRead;
use std::path::Path;
use std::sync::Mutex;

use russh::keys::{HashAlg, PublicKey};

/// What known_hosts says about a server key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    Known,
    Unknown,
    /// A key of the same type is recorded for this host and differs; `line` is 1-based, counting every line.
    Changed {
        line: usize,
    },
}

/// How the host appears in known_hosts: plain `host` for port 22, `[host]:port` otherwise (as OpenSSH writes).
pub(crate) fn host_entry(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `ssh-ed25519 SHA256:...`, the way `ssh-keygen -lf` and OpenSSH's prompt show a key.
pub fn fingerprint(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

pub(crate) fn check(
    host: &str,
    port: u16,
    key: &PublicKey,
    path: &Path,
) -> Result<HostKeyStatus, russh::keys::Error> {
    let mut result = russh::keys::check_known_hosts_path(host, port, key, path);
    if port == 22 && matches!(result, Ok(false)) {
        // russh looks up the literal string for port 22; pass the bracketed form to match `[host]:22` entries too.
        result = russh::keys::check_known_hosts_path(&format!("[{host}]:22"), 22, key, path);
    }
    match result {
        Ok(true) => Ok(HostKeyStatus::Known),
        Ok(false) => Ok(HostKeyStatus::Unknown),
        Err(russh::keys::Error::KeyChanged { line }) => Ok(HostKeyStatus::Changed {
            line: real_line(path, line),
        }),
        Err(e) => Err(e),
    }
}

/// Which file said what: the status, and the file a `Changed` line is in.
pub(crate) fn check_files(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[&Path],
) -> Result<(HostKeyStatus, usize), (usize, russh::keys::Error)> {
    // As OpenSSH: a match in any file (the user's or the global ones) is enough; otherwise a
    // different key recorded in any of them is a change; otherwise the key is unknown.
    let mut changed = None;
    for (i, path) in files.iter().enumerate() {
        match check(host, port, key, path).map_err(|e| (i, e))? {
            HostKeyStatus::Known => return Ok((HostKeyStatus::Known, i)),
            c @ HostKeyStatus::Changed { .. } => {
                if changed.is_none() {
                    changed = Some((c, i));
                }
            }
            HostKeyStatus::Unknown => {}
        }
    }
    Ok(changed.unwrap_or((HostKeyStatus::Unknown, 0)))
}

/// Serialises appends from concurrent connects in this process so two entries never interleave.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

/// Record `key` for the host (plain `host` for port 22, `[host]:port` otherwise), appending one line.
/// (russh's `learn_known_hosts_path` writes the same entry but starts a new file with an empty line.)
pub(crate) fn learn(
    host: &str,
    port: u16,
    key: &PublicKey,
    path: &Path,
) -> Result<(), russh::keys::Error> {
    use std::io::{Read, Seek, SeekFrom, Write};

    let _guard = LEARN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Another task may have recorded it since our check.
    if check(host, port, key, path)? == HostKeyStatus::Known {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let mut line = String::new();
    if file.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    line.push_str(&host_entry(host, port));
    line.push(' ');
    line.push_str(&key.to_openssh()?);
    line.push('\n');
    // One write on an O_APPEND file: entries from other processes cannot interleave inside it.
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// russh numbers only the non-comment lines; map its number back to the file's real line number.
fn real_line(path: &Path, russh_line: usize) -> usize {
    let Ok(file) = std::fs::File::open(path) else {
        return russh_line;
    };
    let mut counted = 0;
    for (index, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let Ok(line) = line else { break };
        if line.first() == Some(&b'#') {
            continue;
        }
        counted += 1;
        if counted == russh_line {
            return index + 1;
        }
    }
    russh_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn entries_for_port_22_match_plain_and_bracketed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("[10.0.0.1]:22 {KEY_A}\n10.0.0.2 {KEY_A}\n[10.0.0.3]:2222 {KEY_A}\n"),
        )
        .unwrap();
        assert_eq!(
            check("10.0.0.1", 22, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check("10.0.0.2", 22, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check("10.0.0.3", 2222, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check("10.0.0.3", 22, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            check("10.0.0.2", 2222, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn changed_key_reports_the_real_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("# comment\n# another\nother {KEY_A}\n[10.0.0.1]:22 {KEY_A}\n"),
        )
        .unwrap();
        assert_eq!(
            check("10.0.0.1", 22, &key(KEY_B), &path).unwrap(),
            HostKeyStatus::Changed { line: 4 }
        );
    }

    #[test]
    fn learn_writes_openssh_style_entries_and_missing_file_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        assert_eq!(
            check("h", 22, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Unknown
        );
        learn("h", 22, &key(KEY_A), &path).unwrap();
        learn("h", 2200, &key(KEY_A), &path).unwrap();
        learn("h", 2200, &key(KEY_A), &path).unwrap(); // already known: not written twice
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("h {KEY_A}\n[h]:2200 {KEY_A}\n"));
        assert_eq!(
            check("h", 22, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check("h", 2200, &key(KEY_A), &path).unwrap(),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn hashed_entries_and_global_files() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("known_hosts");
        let global = dir.path().join("ssh_known_hosts");
        // Hashed by OpenSSH itself: `10.0.0.1` becomes |1|salt|hmac.
        std::fs::write(&global, format!("10.0.0.1 {KEY_A}\n")).unwrap();
        let hashed = std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&global)
            .output();
        if !hashed.is_ok_and(|o| o.status.success()) {
            eprintln!("SKIP hashed_entries_and_global_files: ssh-keygen -H is not available");
            return;
        }
        let text = std::fs::read_to_string(&global).unwrap();
        assert!(
            text.starts_with("|1|") && !text.contains("10.0.0.1"),
            "{text}"
        );
        std::fs::write(&global, format!("{text}10.0.0.2 {KEY_A}\n")).unwrap();
        let files = [user.as_path(), global.as_path()];
        assert_eq!(
            check_files("10.0.0.1", 22, &key(KEY_A), &files).unwrap(),
            (HostKeyStatus::Known, 1)
        );
        assert_eq!(
            check_files("10.0.0.1", 22, &key(KEY_B), &files).unwrap(),
            (HostKeyStatus::Changed { line: 1 }, 1)
        );
        assert_eq!(
            check_files("10.0.0.9", 22, &key(KEY_A), &files).unwrap().0,
            HostKeyStatus::Unknown
        );
        // A key known in the user file wins over a different one in the global file.
        std::fs::write(&user, format!("10.0.0.2 {KEY_B}\n")).unwrap();
        assert_eq!(
            check_files("10.0.0.2", 22, &key(KEY_B), &files).unwrap(),
            (HostKeyStatus::Known, 0)
        );
    }

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint(&key(KEY_A));
        assert!(fp.starts_with("ssh-ed25519 SHA256:"), "{fp}");
        assert_eq!(host_entry("h", 22), "h");
        assert_eq!(host_entry("h", 2222), "[h]:2222");
    }
}
