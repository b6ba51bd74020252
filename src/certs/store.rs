//! The PKI directory on the operator's machine: the CA netctl generated (or the profile's own CA)
//! and every certificate issued to a node. Issued certificates are kept here and reused, so the
//! files `init` wants on a node depend only on this directory: a second run finds them unchanged,
//! and only a missing, expiring, foreign-CA or mismatched certificate is issued again.
//!
//! ```text
//! <dir>/ca.crt                      0644  generated CA (pki.generateCA only)
//! <dir>/ca.key                      0600
//! <dir>/nodes/<node>/flanneld.crt   0644
//! <dir>/nodes/<node>/flanneld.key   0600
//! <dir>/.lock                             held while the directory is written
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::check::{check, check_ca, CertProblem};
use super::issue::{self, NodeCert};
use crate::profile::{expand_home, Cluster};

/// How `prepare` may treat the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `render`: use what is stored; create nothing, renew nothing.
    ReadOnly,
    /// `plan` and `init --dry-run`: issue what is missing or due in memory, write nothing.
    InMemory,
    /// `init`: issue what is missing or due, and store it.
    Persist,
}

/// What a run pushes for flanneld: the cluster CA it verifies the API server with, and its
/// credentials: each node's certificate (signed by `ca_pem`), or one service-account token.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    /// The CA that signs flanneld's certificates (token mode: the server CA).
    pub ca_pem: String,
    /// The CA flanneld verifies the API server with: `kubernetes.caCertificate`, else `pki.caCert`.
    pub server_ca_pem: String,
    /// flannel's service-account token (`networking.flannel.tokenFile`), instead of certificates.
    pub token: Option<Secret>,
    pub nodes: BTreeMap<String, NodeCert>,
    /// What was issued and why, or (read-only) what is missing: one line each, for people.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The profile's CA, or the stored one, cannot be used.
    #[error("{field} ({path}): {message}")]
    Ca {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    /// Something the profile must provide is not there.
    #[error("{field}: {message}")]
    Missing {
        field: &'static str,
        message: String,
    },
    #[error("cannot issue flanneld's certificate for {node}: {source}")]
    Issue {
        node: String,
        source: issue::IssueError,
    },
}

/// The PKI directory: `pki.dir`, else `<profile dir>/<name>-pki`.
pub fn dir(cluster: &Cluster, profile_path: &Path) -> PathBuf {
    match &cluster.profile.pki.dir {
        Some(d) => relative_to_profile(d, profile_path),
        None => profile_dir(profile_path).join(format!("{}-pki", cluster.profile.name)),
    }
}

fn profile_dir(profile_path: &Path) -> PathBuf {
    match profile_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn relative_to_profile(p: &str, profile_path: &Path) -> PathBuf {
    let p = expand_home(p);
    if p.is_absolute() {
        p
    } else {
        profile_dir(profile_path).join(p)
    }
}

/// The nodes that need flanneld's credentials: workers, when flanneld runs as a systemd unit.
pub fn nodes_needing(cluster: &Cluster) -> Vec<&str> {
    cluster
        .nodes
        .iter()
        .filter(|n| cluster.runs_flanneld_unit(n))
        .map(|n| n.name.as_str())
        .collect()
}

/// A secret read from the operator's machine; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(secret, {} bytes)", self.0.len())
    }
}

/// Without credentials the API server accepts, flanneld cannot work: say what to provide.
const NO_CREDENTIALS: &str = "flanneld (deploy: systemd) needs credentials the API server accepts, and netctl will not guess them: name the CA that signs the cluster's client certificates (pki.caCert and pki.caKey, e.g. kubeadm's /etc/kubernetes/pki/ca.crt and ca.key or the hard-way ca.pem and ca-key.pem: netctl signs flanneld's certificate with it), or a token of flannel's service account (networking.flannel.tokenFile). pki.generateCA: true signs with a CA of netctl's own, only for an API server told to trust it (--client-ca-file). See docs/certs.md";

/// The cluster CA flanneld verifies the API server with. None: read-only and not at hand.
fn server_ca(
    cluster: &Cluster,
    profile_path: &Path,
    mode: Mode,
    now: SystemTime,
    notes: &mut Vec<String>,
) -> Result<Option<String>, CertError> {
    let (field, given) = match (&cluster.profile.kubernetes.ca_certificate, &cluster.profile.pki.ca_cert) {
        (Some(c), _) => ("kubernetes.caCertificate", c),
        (None, Some(c)) => ("pki.caCert", c),
        (None, None) if mode == Mode::ReadOnly => return Ok(None),
        (None, None) => return Err(CertError::Missing {
            field: "kubernetes.caCertificate",
            message: "flanneld (deploy: systemd) verifies the API server with the cluster's CA certificate: name it (e.g. kubeadm's /etc/kubernetes/pki/ca.crt, the hard-way ca.pem); a CA netctl made itself would not verify it".into(),
        }),
    };
    let path = relative_to_profile(given, profile_path);
    let bad = |message: String| CertError::Ca {
        field,
        path: path.clone(),
        message,
    };
    let Some(pem) = read_opt(&path)? else {
        if mode == Mode::ReadOnly {
            return Ok(None);
        }
        return Err(bad("the CA certificate does not exist".into()));
    };
    match check_ca(pem.as_bytes(), now) {
        Ok(()) => {}
        // The cluster's CA is the cluster's business: a warning, not a refusal.
        Err(p @ CertProblem::ExpiresSoon { .. }) => notes.push(format!("{field}: {p}")),
        Err(p) => return Err(bad(p.to_string())),
    }
    Ok(Some(pem))
}

/// flannel's service-account token: one line of printable characters. None: read-only and not
/// at hand.
fn token(path_text: &str, profile_path: &Path, mode: Mode) -> Result<Option<Secret>, CertError> {
    const FIELD: &str = "networking.flannel.tokenFile";
    let path = relative_to_profile(path_text, profile_path);
    let bad = |message: String| CertError::Ca {
        field: FIELD,
        path: path.clone(),
        message,
    };
    if !path.exists() {
        if mode == Mode::ReadOnly {
            return Ok(None);
        }
        return Err(bad("the token file does not exist".into()));
    }
    let text = crate::input::read_bounded(&path, 64 * 1024).map_err(|e| bad(e.to_string()))?;
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "not a bearer token: one line of printable characters without spaces".into(),
        ));
    }
    Ok(Some(Secret(t.to_string())))
}

/// Load, and per `mode` issue, everything the profile's nodes need. `None` when no node needs a
/// certificate, or (read-only) when no CA exists yet.
pub fn prepare(
    cluster: &Cluster,
    profile_path: &Path,
    mode: Mode,
    now: SystemTime,
) -> Result<Option<Pki>, CertError> {
    let nodes = nodes_needing(cluster);
    if nodes.is_empty() {
        return Ok(None);
    }
    let dir = dir(cluster, profile_path);
    let mut notes = Vec::new();
    let Some(server_ca_pem) = server_ca(cluster, profile_path, mode, now, &mut notes)? else {
        return Ok(None);
    };
    if let Some(t) = &cluster.profile.networking.flannel.token_file {
        let Some(token) = token(t, profile_path, mode)? else {
            return Ok(None);
        };
        return Ok(Some(Pki {
            dir,
            ca_pem: server_ca_pem.clone(),
            server_ca_pem,
            token: Some(token),
            nodes: BTreeMap::new(),
            notes,
        }));
    }
    let pki = &cluster.profile.pki;
    if pki.ca_key.is_none() && !pki.generate_ca {
        if mode == Mode::ReadOnly {
            return Ok(None);
        }
        return Err(CertError::Missing {
            field: "pki.caKey",
            message: NO_CREDENTIALS.into(),
        });
    }
    let _lock = match mode {
        Mode::Persist => Some(lock(&dir)?),
        _ => None,
    };
    let Some((ca_pem, ca_key)) = ca(cluster, profile_path, &dir, mode, now, &mut notes)? else {
        return Ok(None);
    };
    let days = cluster.profile.pki.validity_days;
    let mut issued = BTreeMap::new();
    for node in nodes {
        let cert_path = dir.join("nodes").join(node).join("flanneld.crt");
        let key_path = dir.join("nodes").join(node).join("flanneld.key");
        let stored = match (read_opt(&cert_path)?, read_opt(&key_path)?) {
            (Some(cert_pem), Some(key_pem)) => Some(NodeCert { cert_pem, key_pem }),
            _ => None,
        };
        let problem = match &stored {
            None => Some("none stored".to_string()),
            Some(s) => reuse_problem(&ca_pem, s, node, now),
        };
        match (problem, stored, mode) {
            (None, Some(s), _) => {
                issued.insert(node.to_string(), s);
            }
            (Some(why), Some(s), Mode::ReadOnly) => {
                notes.push(format!(
                    "{node}: the stored certificate is used as is; init would renew it ({why})"
                ));
                issued.insert(node.to_string(), s);
            }
            (Some(_), None, Mode::ReadOnly) => {
                notes.push(format!(
                    "{node}: no certificate in {} yet: flanneld.crt and flanneld.key left out (init issues them)",
                    dir.display()
                ));
            }
            (Some(why), _, mode) => {
                let key = ca_key.as_deref().expect("a CA key outside read-only mode");
                let n = issue::node(&ca_pem, key, node, now, days).map_err(|source| {
                    CertError::Issue {
                        node: node.to_string(),
                        source,
                    }
                })?;
                if mode == Mode::Persist {
                    // The key first: a cert left without its new key fails the key check next run.
                    write_private_dir(&dir.join("nodes").join(node))?;
                    write_atomic(&key_path, n.key_pem.as_bytes(), 0o600)?;
                    write_atomic(&cert_path, n.cert_pem.as_bytes(), 0o644)?;
                }
                notes.push(format!("{node}: issued flanneld's certificate ({why})"));
                issued.insert(node.to_string(), n);
            }
            (None, None, _) => unreachable!("no stored certificate is always a problem"),
        }
    }
    Ok(Some(Pki {
        dir,
        ca_pem,
        server_ca_pem,
        token: None,
        nodes: issued,
        notes,
    }))
}

/// Why a stored certificate cannot be kept, or None.
fn reuse_problem(ca_pem: &str, stored: &NodeCert, node: &str, now: SystemTime) -> Option<String> {
    if let Err(p) = check(ca_pem.as_bytes(), stored.cert_pem.as_bytes(), now) {
        return Some(p.to_string());
    }
    if !issue::key_matches(&stored.cert_pem, &stored.key_pem) {
        return Some("the stored key does not belong to the certificate".into());
    }
    let want = (
        issue::flanneld_user(node),
        vec![issue::FLANNELD_GROUP.to_string()],
    );
    match issue::subject(&stored.cert_pem) {
        Some(got) if got == want => None,
        _ => Some(format!(
            "its subject is not CN={}, O={}",
            want.0,
            issue::FLANNELD_GROUP
        )),
    }
}

/// The CA certificate and (outside read-only mode) its key: the profile's, or the generated one.
fn ca(
    cluster: &Cluster,
    profile_path: &Path,
    dir: &Path,
    mode: Mode,
    now: SystemTime,
    notes: &mut Vec<String>,
) -> Result<Option<(String, Option<String>)>, CertError> {
    let pki = &cluster.profile.pki;
    let (cert_field, key_field, cert_path, key_path, given) = match (&pki.ca_cert, &pki.ca_key) {
        (Some(c), Some(k)) => (
            "pki.caCert",
            "pki.caKey",
            relative_to_profile(c, profile_path),
            relative_to_profile(k, profile_path),
            true,
        ),
        _ => (
            "pki.dir",
            "pki.dir",
            dir.join("ca.crt"),
            dir.join("ca.key"),
            false,
        ),
    };
    let cert = read_opt(&cert_path)?;
    let key = if mode == Mode::ReadOnly {
        None
    } else {
        read_opt(&key_path)?
    };
    let bad = |field: &'static str, path: &Path, message: String| CertError::Ca {
        field,
        path: path.to_path_buf(),
        message,
    };
    let (cert, key) = match (cert, key, given, mode) {
        (Some(c), k, _, Mode::ReadOnly) => (c, k),
        // render writes what is at hand: a CA not generated yet, or not on this machine.
        (None, _, _, Mode::ReadOnly) => return Ok(None),
        (Some(c), Some(k), _, _) => (c, Some(k)),
        (None, None, false, _) => {
            let (c, k) = issue::ca(&cluster.profile.name, now, 3650)
                .map_err(|e| bad("pki.dir", &cert_path, format!("cannot generate a CA: {e}")))?;
            if mode == Mode::Persist {
                write_private_dir(dir)?;
                write_atomic(&key_path, k.as_bytes(), 0o600)?;
                write_atomic(&cert_path, c.as_bytes(), 0o644)?;
            }
            notes.push(format!("generated the cluster CA in {}", dir.display()));
            (c, Some(k))
        }
        (None, _, _, _) => {
            return Err(bad(
                cert_field,
                &cert_path,
                "the CA certificate does not exist".into(),
            ))
        }
        (Some(_), None, _, _) => {
            return Err(bad(
                key_field,
                &key_path,
                "the CA key does not exist (without it no certificate can be issued)".into(),
            ))
        }
    };
    check_ca(cert.as_bytes(), now).map_err(|p| match p {
        CertProblem::ExpiresSoon { .. } | CertProblem::CaExpired { .. } => bad(
            cert_field,
            &cert_path,
            format!("{p}; certificates it signs would not outlive it: replace the CA (see docs/certs.md)"),
        ),
        p => bad(cert_field, &cert_path, p.to_string()),
    })?;
    if let Some(k) = &key {
        if let Err(e) = issue::load_key(k) {
            return Err(bad(key_field, &key_path, e.to_string()));
        }
        if !issue::key_matches(&cert, k) {
            return Err(bad(
                key_field,
                &key_path,
                format!("the key does not belong to {}", cert_path.display()),
            ));
        }
    }
    Ok(Some((cert, key)))
}

fn read_opt(path: &Path) -> Result<Option<String>, CertError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CertError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CertError {
    let path = path.to_path_buf();
    move |source| CertError::Io {
        action,
        path,
        source,
    }
}

/// A directory only its owner can enter (it holds private keys).
fn write_private_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))
}

/// Temp file created with its final mode (a key is never readable by others, not even briefly),
/// fsynced, renamed over the path.
fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), CertError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("chmod", &tmp))?;
    f.write_all(content).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Two `init`s on one profile must not each generate a CA: an exclusive lock on `<dir>/.lock`
/// for the whole prepare, released when the file closes.
fn lock(dir: &Path) -> Result<std::fs::File, CertError> {
    use std::os::fd::AsRawFd;
    write_private_dir(dir)?;
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io("open", &path))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(io("lock", &path)(std::io::Error::last_os_error()));
    }
    Ok(f)
}
