//! known_hosts: OpenSSH's file format (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"), the decision about a
//! server key, and trust-on-first-use recording.
//!
//! Why netctl parses the files itself: russh's helper skips every line that carries a marker, so a
//! `@revoked` key was accepted (and recorded with --accept-new-host-keys), and a `@cert-authority` line
//! was invisible; it also splits on single spaces, knows no host patterns and reads without bound.
//! Here every line is parsed (a line that cannot be is an error naming the file and line: a revoked
//! key must never be skipped by accident), files are read with `read_regular`, and the decision is a
//! pure function over the parsed entries of all files:
//! 1. a key on any `@revoked` line, in any file, is refused for every host, whatever other lines say
//!    (stricter than OpenSSH, which also applies the line's host patterns: a revoked key is
//!    compromised everywhere);
//! 2. a plain line for the host with the key: known; 3. a plain line for the host with another key of
//!    the same type: changed (refused);
//! 4. a `@cert-authority` line for the host: refused, as netctl does not support host certificates (a
//!    CA line says the host is to be trusted by certificate, so its plain key is never learned either);
//! 5. otherwise unknown.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use russh::keys::{HashAlg, PublicKey};

use super::read::{read_regular_text, ReadError, MAX_SSH_FILE};
use super::ssh_config::glob_match;
use super::TransportError;

/// What known_hosts says about a server key. `line` numbers are 1-based and count every line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    Known,
    Unknown,
    /// A key of the same type is recorded for this host and differs.
    Changed {
        line: usize,
    },
    /// The key is on a `@revoked` line.
    Revoked {
        line: usize,
    },
    /// No plain line for the host has the key, but a `@cert-authority` line names the host.
    CertAuthorityOnly {
        line: usize,
    },
}

/// A known_hosts file that cannot be used. Reading or parsing: the operator's file is at fault
/// (`phase::connect::preflight` reports these before any node is reached, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read known_hosts file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("known_hosts file {path} line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot record the new host key in known_hosts file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Plain,
    CertAuthority,
    Revoked,
}

/// The host field of a line.
#[derive(Debug, PartialEq)]
enum Hosts {
    /// `|1|salt|hmac`: HMAC-SHA1 of the name keyed by the salt (`ssh-keygen -H`).
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns (`*`, `?`, `!negated`), lower-cased.
    Patterns(Vec<(bool, String)>),
}

impl Hosts {
    /// As OpenSSH's match_hostname: a negated pattern matching any name excludes the line.
    fn matches(&self, names: &[String]) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                names
                    .iter()
                    .any(|n| ring::hmac::verify(&key, n.as_bytes(), hash).is_ok())
            }
            Hosts::Patterns(patterns) => {
                let hit = |glob: &String| names.iter().any(|n| glob_match(glob, n));
                let excluded = patterns.iter().any(|(neg, g)| *neg && hit(g));
                !excluded && patterns.iter().any(|(neg, g)| !*neg && hit(g))
            }
        }
    }
}

/// One parsed line.
#[derive(Debug)]
pub(crate) struct Entry {
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key: PublicKey,
}

/// How the host appears in known_hosts: plain `host` for port 22, `[host]:port` otherwise (as OpenSSH writes).
pub(crate) fn host_entry(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The names a line may record the host under, lower-cased as OpenSSH compares them; for port 22
/// `[host]:22` too, which some tools write.
fn names(host: &str, port: u16) -> Vec<String> {
    let host = host.to_ascii_lowercase();
    let mut names = vec![host_entry(&host, port)];
    if port == 22 {
        names.push(format!("[{host}]:22"));
    }
    names
}

/// `ssh-ed25519 SHA256:...`, the way `ssh-keygen -lf` and OpenSSH's prompt show a key.
pub fn fingerprint(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

/// The entries of one file; a file that does not exist has none.
pub(crate) fn load(path: &Path) -> Result<Vec<Entry>, KnownHostsError> {
    let text = match read_regular_text(path, MAX_SSH_FILE) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(source) => {
            return Err(KnownHostsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(&text).map_err(|(line, message)| KnownHostsError::Line {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Every entry of a file's text; an error is (1-based line, message).
fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = parse_line(line, index + 1).map_err(|m| (index + 1, m))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// `[@marker] hosts keytype base64 [comment]`, fields separated by spaces or tabs.
fn parse_line(line: &str, number: usize) -> Result<Entry, String> {
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let mut first = fields.next().unwrap_or_default();
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => {
            return Err(format!(
                "unknown marker {m:?} (known: @revoked, @cert-authority)"
            ))
        }
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = fields.next().unwrap_or_default();
    }
    let hosts = parse_hosts(first)?;
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err("expected `[@marker] hosts keytype base64-key [comment]`".into());
    };
    let key = PublicKey::from_openssh(&format!("{kind} {blob}"))
        .map_err(|e| format!("cannot parse the {kind} key: {e}"))?;
    Ok(Entry {
        line: number,
        marker,
        hosts,
        key,
    })
}

fn parse_hosts(field: &str) -> Result<Hosts, String> {
    if field.is_empty() {
        return Err("no host field".into());
    }
    let Some(rest) = field.strip_prefix("|1|") else {
        let patterns = field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_prefix('!') {
                Some(g) => (true, g.to_ascii_lowercase()),
                None => (false, p.to_ascii_lowercase()),
            })
            .collect();
        return Ok(Hosts::Patterns(patterns));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = || format!("hashed host {field:?} is not |1|salt|hash");
    let (salt, hash) = rest.split_once('|').ok_or_else(bad)?;
    let salt = b64.decode(salt).map_err(|_| bad())?;
    let hash = b64.decode(hash).map_err(|_| bad())?;
    // Both are SHA-1 sized in every file ssh-keygen writes.
    if salt.len() != 20 || hash.len() != 20 {
        return Err(bad());
    }
    Ok(Hosts::Hashed { salt, hash })
}

/// The decision (module comment), over the entries of each file in order; the index is the file that
/// said it (0 when unknown).
fn decide(names: &[String], key: &PublicKey, files: &[Vec<Entry>]) -> (HostKeyStatus, usize) {
    let all = || {
        files
            .iter()
            .enumerate()
            .flat_map(|(i, es)| es.iter().map(move |e| (i, e)))
    };
    let same = |e: &Entry| e.key.key_data() == key.key_data();
    if let Some((i, e)) = all().find(|(_, e)| e.marker == Marker::Revoked && same(e)) {
        return (HostKeyStatus::Revoked { line: e.line }, i);
    }
    let for_host =
        |marker: Marker| all().filter(move |(_, e)| e.marker == marker && e.hosts.matches(names));
    if let Some((i, _)) = for_host(Marker::Plain).find(|(_, e)| same(e)) {
        return (HostKeyStatus::Known, i);
    }
    if let Some((i, e)) =
        for_host(Marker::Plain).find(|(_, e)| e.key.algorithm() == key.algorithm())
    {
        return (HostKeyStatus::Changed { line: e.line }, i);
    }
    if let Some((i, e)) = for_host(Marker::CertAuthority).next() {
        return (HostKeyStatus::CertAuthorityOnly { line: e.line }, i);
    }
    (HostKeyStatus::Unknown, 0)
}

/// What `files` (the user's first, then the global ones) say about `key` for the host.
pub(crate) fn check_files(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[&Path],
) -> Result<(HostKeyStatus, usize), KnownHostsError> {
    let loaded = files
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(decide(&names(host, port), key, &loaded))
}

/// Serialises appends from concurrent connects in this process so two entries never interleave.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

/// Decide again under the lock (another task may have recorded the key, or a file changed since),
/// and record `key` in `files[0]` only if it is still unknown: then the result is `Known`.
fn learn(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[&Path],
) -> Result<(HostKeyStatus, usize), KnownHostsError> {
    let _guard = LEARN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let found = check_files(host, port, key, files)?;
    if found.0 != HostKeyStatus::Unknown {
        return Ok(found);
    }
    append(&host_entry(host, port), key, files[0]).map_err(|source| KnownHostsError::Write {
        path: files[0].to_path_buf(),
        source,
    })?;
    Ok((HostKeyStatus::Known, 0))
}

/// Append `entry key` as one line. (russh's `learn_known_hosts_path` starts a new file with an
/// empty line.)
fn append(entry: &str, key: &PublicKey, path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};

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
    let openssh = key.to_openssh().map_err(std::io::Error::other)?;
    line.push_str(&format!("{entry} {openssh}\n"));
    // One write on an O_APPEND file: entries from other processes cannot interleave inside it.
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// Where a server key is checked: the user's file (where new keys go) and the read-only globals.
pub(crate) struct Policy<'a> {
    pub node: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub user_file: &'a Path,
    pub global_files: &'a [PathBuf],
    /// Record an unknown key (a revoked, changed or CA-only one never is).
    pub accept_new: bool,
}

/// Accept the server's key, or say why not (a refusal, or a known_hosts file that cannot be used).
// The transport's one error type, as every transport function returns.
#[allow(clippy::result_large_err)]
pub(crate) fn verify(p: &Policy, key: &PublicKey) -> Result<(), TransportError> {
    let mut files = vec![p.user_file];
    files.extend(p.global_files.iter().map(PathBuf::as_path));
    let file_error = |source| TransportError::KnownHosts {
        node: p.node.to_string(),
        source,
    };
    let mut found = check_files(p.host, p.port, key, &files).map_err(file_error)?;
    if found.0 == HostKeyStatus::Unknown && p.accept_new {
        found = learn(p.host, p.port, key, &files).map_err(file_error)?;
    }
    let node = p.node.to_string();
    let host_entry = host_entry(p.host, p.port);
    let fingerprint = fingerprint(key);
    let known_hosts = files[found.1].to_path_buf();
    Err(match found.0 {
        HostKeyStatus::Known => return Ok(()),
        HostKeyStatus::Revoked { line } => TransportError::HostKeyRevoked {
            node,
            host_entry,
            fingerprint,
            known_hosts,
            line,
        },
        HostKeyStatus::Changed { line } => TransportError::HostKeyChanged {
            node,
            host_entry,
            fingerprint,
            known_hosts,
            line,
        },
        HostKeyStatus::CertAuthorityOnly { line } => TransportError::HostCertificatesUnsupported {
            node,
            host_entry,
            fingerprint,
            known_hosts,
            line,
        },
        HostKeyStatus::Unknown => TransportError::HostKeyUnknown {
            node,
            host_entry,
            fingerprint,
            known_hosts: p.user_file.to_path_buf(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    const KEY_C: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G2sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    /// The decision for `host:port` over files given as text.
    fn status(host: &str, port: u16, k: &str, files: &[&str]) -> (HostKeyStatus, usize) {
        let parsed: Vec<Vec<Entry>> = files.iter().map(|t| parse(t).unwrap()).collect();
        decide(&names(host, port), &key(k), &parsed)
    }

    /// `|1|salt|hmac` of `name`, as `ssh-keygen -H` writes it.
    fn hashed(name: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = [3u8; 20];
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&k, name.as_bytes());
        format!("|1|{}|{}", b64.encode(salt), b64.encode(tag.as_ref()))
    }

    #[test]
    fn entries_for_port_22_match_plain_and_bracketed() {
        let text = format!("[10.0.0.1]:22 {KEY_A}\n10.0.0.2 {KEY_A}\n[10.0.0.3]:2222 {KEY_A}\n");
        let known = |h, p| status(h, p, KEY_A, &[&text]).0;
        assert_eq!(known("10.0.0.1", 22), HostKeyStatus::Known);
        assert_eq!(known("10.0.0.2", 22), HostKeyStatus::Known);
        assert_eq!(known("10.0.0.3", 2222), HostKeyStatus::Known);
        assert_eq!(known("10.0.0.3", 22), HostKeyStatus::Unknown);
        assert_eq!(known("10.0.0.2", 2222), HostKeyStatus::Unknown);
    }

    #[test]
    fn patterns_negation_case_and_whitespace() {
        let text = format!("# c\n  web-*,!web-9\t{KEY_A} comment here\nDB.Example {KEY_A}\n");
        let known = |h| status(h, 22, KEY_A, &[&text]).0;
        assert_eq!(known("web-1"), HostKeyStatus::Known);
        assert_eq!(known("web-9"), HostKeyStatus::Unknown);
        assert_eq!(known("db.example"), HostKeyStatus::Known);
        assert_eq!(known("DB.EXAMPLE"), HostKeyStatus::Known);
    }

    #[test]
    fn a_match_anywhere_wins_over_a_changed_line() {
        // russh's helper stopped at the first differing key; OpenSSH looks at every line.
        let text = format!("h {KEY_B}\n# c\nh {KEY_A}\n");
        assert_eq!(status("h", 22, KEY_A, &[&text]).0, HostKeyStatus::Known);
        let changed = format!("# one\n\nother {KEY_A}\nh {KEY_B}\n");
        assert_eq!(
            status("h", 22, KEY_A, &[&changed]).0,
            HostKeyStatus::Changed { line: 4 }
        );
    }

    #[test]
    fn revoked_is_refused_for_every_host_in_any_file() {
        let plain = format!("h {KEY_A}\n");
        for revoked in [
            format!("@revoked * {KEY_A}\n"),
            format!("@revoked other-host {KEY_A}\n"),
            format!("@revoked {} {KEY_A}\n", hashed("h")),
            format!("#\n\n@revoked\th\t{KEY_A}\n"),
        ] {
            let line = revoked.lines().count();
            // Alone, after a plain line in the same file, and in a global file.
            assert_eq!(
                status("h", 22, KEY_A, &[&revoked]),
                (HostKeyStatus::Revoked { line }, 0)
            );
            assert_eq!(
                status("h", 22, KEY_A, &[&format!("{plain}{revoked}")]),
                (HostKeyStatus::Revoked { line: line + 1 }, 0)
            );
            assert_eq!(
                status("h", 22, KEY_A, &[&plain, "", &revoked]),
                (HostKeyStatus::Revoked { line }, 2)
            );
            // Another key is not affected.
            assert_eq!(
                status("h", 22, KEY_B, &[&format!("h {KEY_B}\n{revoked}")]).0,
                HostKeyStatus::Known
            );
        }
    }

    #[test]
    fn cert_authority_lines_are_not_known_keys() {
        // Only a CA line for the host, even one naming the server's own key: refused.
        for ca in [KEY_C, KEY_A] {
            let text = format!("@cert-authority h,*.example {ca}\n");
            assert_eq!(
                status("h", 22, KEY_A, &[&text]),
                (HostKeyStatus::CertAuthorityOnly { line: 1 }, 0)
            );
            assert_eq!(
                status("x.example", 22, KEY_A, &[&text]).0,
                HostKeyStatus::CertAuthorityOnly { line: 1 }
            );
        }
        let ca = format!("@cert-authority *.example {KEY_C}\n");
        // A CA for other hosts only: unknown.
        assert_eq!(status("h", 22, KEY_A, &[&ca]).0, HostKeyStatus::Unknown);
        // A plain line that matches wins; one with another key is a change.
        let ca_h = format!("@cert-authority h {KEY_C}\n");
        assert_eq!(
            status("h", 22, KEY_A, &[&ca_h, &format!("h {KEY_A}\n")]),
            (HostKeyStatus::Known, 1)
        );
        assert_eq!(
            status("h", 22, KEY_A, &[&format!("{ca_h}h {KEY_B}\n")]).0,
            HostKeyStatus::Changed { line: 2 }
        );
    }

    #[test]
    fn unparseable_lines_name_the_line() {
        let err = |t: &str| parse(t).unwrap_err();
        assert_eq!(err(&format!("h {KEY_A}\n@revokd * {KEY_A}\n")).0, 2);
        assert!(err(&format!("@bogus * {KEY_A}"))
            .1
            .contains("unknown marker"));
        assert_eq!(err("# c\nhostonly\n").0, 2);
        assert_eq!(err("@revoked\n").0, 1);
        assert!(err("h ssh-ed25519 AAAA!!\n").1.contains("ssh-ed25519"));
        // The type in the text must be the type of the key.
        assert!(parse(&format!("h ssh-rsa {}\n", &KEY_A[12..])).is_err());
        assert!(err("|1|abc|def ssh-ed25519 AAAA\n")
            .1
            .contains("hashed host"));
        // Comments, blank lines and CRLF are fine.
        assert_eq!(
            parse(&format!("\r\n  # x\n\th {KEY_A} c\r\n"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn files_missing_not_regular_or_bad() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("missing")).unwrap().is_empty());
        let e = load(Path::new("/dev/zero")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read known_hosts file /dev/zero: not a regular file"),
            "{e}"
        );
        let bad = dir.path().join("kh");
        std::fs::write(&bad, "# c\nh\n").unwrap();
        let e = load(&bad).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("known_hosts file {} line 2:", bad.display())),
            "{e}"
        );
    }

    #[test]
    fn learn_writes_openssh_style_entries_once_and_never_a_revoked_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let global = dir.path().join("global");
        let files = [path.as_path(), global.as_path()];
        let k = key(KEY_A);
        assert_eq!(
            check_files("h", 22, &k, &files).unwrap().0,
            HostKeyStatus::Unknown
        );
        assert_eq!(learn("h", 22, &k, &files).unwrap().0, HostKeyStatus::Known);
        learn("h", 2200, &k, &files).unwrap();
        learn("h", 2200, &k, &files).unwrap(); // already known: not written twice
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("h {KEY_A}\n[h]:2200 {KEY_A}\n"));
        assert_eq!(
            check_files("h", 2200, &k, &files).unwrap().0,
            HostKeyStatus::Known
        );
        // Revoked since the first check (in the global file): not recorded.
        std::fs::write(&global, format!("@revoked * {KEY_B}\n")).unwrap();
        assert_eq!(
            learn("n", 22, &key(KEY_B), &files).unwrap(),
            (HostKeyStatus::Revoked { line: 1 }, 1)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn hashed_entries_from_ssh_keygen_and_global_files() {
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
