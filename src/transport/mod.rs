//! SSH transport (russh): one connection per node, reused for every step.
//!
//! Why this module exists: every remote action netctl takes (gather, lock, backup, upload, run, restart)
//! goes through one [`Session`] per node. Connecting is the expensive part (key exchange, auth), so a
//! session is opened once and then carries many cheap channels, concurrently if the caller wants.
//! Safety lives here too: host keys are checked against known_hosts (unknown keys are refused unless
//! trust-on-first-use is asked for, changed keys always), and uploads replace files atomically with a
//! backup of what they replace.

mod auth;
mod converse;
pub use converse::Conversation;
mod jump;
pub use jump::Bastions;
mod known_hosts;
mod proxy;
pub mod read;
pub mod secrets;
mod session;
pub mod ssh_config;
mod sudo;
mod upload;
pub(crate) use upload::check_path as check_remote_path;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::shell::sh_quote;
pub use auth::KeyFileError;
pub use known_hosts::{fingerprint, KnownHostsError};
pub use session::Session;

/// Where and how to reach one node (or a bastion). Built by `phase::connect` from the profile and
/// ~/.ssh/config; plain data so tests can make one by hand (`..Default::default()`).
#[derive(Clone, Debug)]
pub struct Target {
    /// Node name, used in every error message.
    pub name: String,
    /// Address to connect to (IP or DNS name); through a bastion, the address the bastion connects to.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private keys (OpenSSH format; ed25519, ECDSA or RSA; encrypted ones are asked for once), tried in
    /// order. A file that does not exist is skipped, as OpenSSH does.
    pub identity_files: Vec<PathBuf>,
    /// The ssh-agent socket whose keys are tried after the files; None: no agent.
    pub agent: Option<PathBuf>,
    /// The user's known_hosts: read, and written when a new key is accepted.
    pub known_hosts: PathBuf,
    /// Read-only known_hosts files (/etc/ssh/ssh_known_hosts).
    pub global_known_hosts: Vec<PathBuf>,
    /// Trust (and record) a host key that known_hosts does not know yet. A changed key is always refused.
    pub accept_new_host_keys: bool,
    /// Reach the node through this bastion (one shared connection per run, a direct-tcpip channel per node).
    pub jump: Option<Box<Target>>,
    /// The run's shared bastion connections (one per bastion, whatever the number of nodes).
    pub bastions: std::sync::Arc<jump::Bastions>,
    /// Reach the node through this command's stdin and stdout (ssh config ProxyCommand, tokens
    /// expanded), run with `sh -c`. Not used with `jump`.
    pub proxy_command: Option<String>,
    /// Run every script through sudo (see `sudo.rs`).
    pub sudo: bool,
    /// Bound on TCP connect + handshake + authentication.
    pub connect_timeout: Duration,
    /// Bound on any one exec (and on one upload, which is one exec).
    pub command_timeout: Duration,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            name: String::new(),
            host: String::new(),
            port: 22,
            user: "root".into(),
            identity_files: Vec::new(),
            agent: None,
            known_hosts: PathBuf::new(),
            global_known_hosts: Vec::new(),
            accept_new_host_keys: false,
            jump: None,
            bastions: Default::default(),
            proxy_command: None,
            sudo: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(120),
        }
    }
}

impl Target {
    /// `host:port`, bracketed when the host is an IPv6 literal.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The local files connecting reads (key files, known_hosts), read ahead of any connection so that
/// one the operator must fix stops the run before any node is reached (`phase::connect::preflight`).
/// Each file is read once however many targets name it.
#[derive(Default)]
pub struct LocalFiles {
    read: BTreeSet<(&'static str, PathBuf)>,
}

impl LocalFiles {
    /// Read `target`'s files and its bastion's: key files decoded (a passphrase is asked for here,
    /// once, as connecting would), known_hosts files parsed. Missing files are fine, as when connecting.
    // The transport's one error type, as every transport function returns.
    #[allow(clippy::result_large_err)]
    pub fn check(&mut self, target: &Target) -> Result<(), TransportError> {
        for path in &target.identity_files {
            if self.read.insert(("key", path.clone())) {
                auth::load_file(&target.name, path)?;
            }
        }
        for path in std::iter::once(&target.known_hosts).chain(&target.global_known_hosts) {
            if self.read.insert(("known_hosts", path.clone())) {
                known_hosts::load(path).map_err(|source| TransportError::KnownHosts {
                    node: target.name.clone(),
                    source,
                })?;
            }
        }
        match &target.jump {
            Some(bastion) => self.check(bastion),
            None => Ok(()),
        }
    }
}

/// What a remote command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Exit status; 255 when the command was killed by a signal (stderr then ends with a note).
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// One file to place on a node.
#[derive(Clone, Debug)]
pub struct Upload {
    /// Absolute path on the node.
    pub path: String,
    pub content: Vec<u8>,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
    /// `chown` argument such as "root:root"; None leaves the default (the SSH user).
    pub owner: Option<String>,
}

/// Everything that can go wrong talking to a node. Every message starts with the node name.
#[derive(thiserror::Error, Debug)]
pub enum TransportError {
    #[error("{node}: cannot connect to {addr}: {source}")]
    Connect {
        node: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{node}: connecting to {addr} timed out after {timeout:?} (TCP connect, SSH handshake and authentication)")]
    ConnectTimeout {
        node: String,
        addr: String,
        timeout: Duration,
    },

    #[error(
        "{node}: refusing to connect: host key for {host_entry} is unknown ({fingerprint}, not in {known_hosts}); \
         verify the fingerprint, then run with --accept-new-host-keys to trust it on first use and record it"
    )]
    HostKeyUnknown {
        node: String,
        host_entry: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    #[error(
        "{node}: refusing to connect: HOST KEY CHANGED for {host_entry}: the server offered {fingerprint}, \
         which does not match {known_hosts} line {line}; this may be a man-in-the-middle attack; \
         if the host was really reinstalled, remove that line and connect again"
    )]
    HostKeyChanged {
        node: String,
        host_entry: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error(
        "{node}: refusing to connect: the host key {fingerprint} offered for {host_entry} is REVOKED \
         ({known_hosts} line {line}); a revoked key is never accepted, whatever other lines say"
    )]
    HostKeyRevoked {
        node: String,
        host_entry: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error(
        "{node}: refusing to connect: host certificates are not supported: {known_hosts} line {line} \
         names a certificate authority (@cert-authority) for {host_entry}, and no plain line has the key \
         the server offered ({fingerprint}); verify that key, then add it as a plain known_hosts line"
    )]
    HostCertificatesUnsupported {
        node: String,
        host_entry: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("{node}: {source}")]
    KnownHosts {
        node: String,
        #[source]
        source: KnownHostsError,
    },

    #[error("{node}: cannot use key file {path}: {source}")]
    KeyFile {
        node: String,
        path: PathBuf,
        #[source]
        source: KeyFileError,
    },

    #[error("{node}: authentication failed for user {user}; tried {tried} (is one of these public keys in the user's authorized_keys?)")]
    Auth {
        node: String,
        user: String,
        /// What was offered: key files and agent keys, or "no key at all" with the reasons.
        tried: String,
    },

    #[error("{node}: cannot reach the bastion: {message}")]
    Bastion {
        node: String,
        message: String,
        /// The bastion's host key was refused: stop, as for the node's own key.
        refused: bool,
    },

    #[error("{node}: the bastion {bastion} could not open a tunnel to {addr}: {source}")]
    Tunnel {
        node: String,
        bastion: String,
        addr: String,
        #[source]
        source: russh::Error,
    },

    #[error("{node}: through ProxyCommand `{command}`: {message}")]
    Proxy {
        node: String,
        command: String,
        message: String,
    },

    #[error("{node}: sudo: {message}")]
    Sudo { node: String, message: String },

    #[error("{node}: {message}")]
    Config { node: String, message: String },

    #[error("{node}: command timed out after {timeout:?}: {command}")]
    CommandTimeout {
        node: String,
        command: String,
        timeout: Duration,
    },

    #[error("{node}: SSH error while {action}: {source}")]
    Ssh {
        node: String,
        action: String,
        #[source]
        source: russh::Error,
    },

    #[error("{node}: {message}")]
    Protocol { node: String, message: String },

    #[error("{node}: invalid upload {path:?}: {reason}")]
    InvalidUpload {
        node: String,
        path: String,
        reason: String,
    },

    #[error("{node}: upload failed at {path} ({step}); no file after it was replaced{}", detail_suffix(.detail))]
    UploadFailed {
        node: String,
        path: String,
        step: String,
        detail: String,
    },

    #[error("{node}: upload script failed with status {status}{}", detail_suffix(.detail))]
    UploadScript {
        node: String,
        status: u32,
        detail: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", detail.trim())
    }
}

impl TransportError {
    /// True for host-key refusals: the caller must stop (netctl exits 3), retrying will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            TransportError::HostKeyUnknown { .. }
                | TransportError::HostKeyChanged { .. }
                | TransportError::HostKeyRevoked { .. }
                | TransportError::HostCertificatesUnsupported { .. }
                | TransportError::Bastion { refused: true, .. }
        )
    }

    /// The node the error is about.
    pub fn node(&self) -> &str {
        match self {
            TransportError::Connect { node, .. }
            | TransportError::ConnectTimeout { node, .. }
            | TransportError::HostKeyUnknown { node, .. }
            | TransportError::HostKeyChanged { node, .. }
            | TransportError::HostKeyRevoked { node, .. }
            | TransportError::HostCertificatesUnsupported { node, .. }
            | TransportError::KnownHosts { node, .. }
            | TransportError::KeyFile { node, .. }
            | TransportError::Auth { node, .. }
            | TransportError::Bastion { node, .. }
            | TransportError::Tunnel { node, .. }
            | TransportError::Proxy { node, .. }
            | TransportError::Sudo { node, .. }
            | TransportError::Config { node, .. }
            | TransportError::CommandTimeout { node, .. }
            | TransportError::Ssh { node, .. }
            | TransportError::Protocol { node, .. }
            | TransportError::InvalidUpload { node, .. }
            | TransportError::UploadFailed { node, .. }
            | TransportError::UploadScript { node, .. } => node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_node_and_refusals_are_flagged() {
        let unknown = TransportError::HostKeyUnknown {
            node: "worker-0".into(),
            host_entry: "[10.0.0.1]:2222".into(),
            fingerprint: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: PathBuf::from("/root/.ssh/known_hosts"),
        };
        let text = unknown.to_string();
        assert!(text.starts_with("worker-0: "), "{text}");
        assert!(
            text.contains("SHA256:abc") && text.contains("/root/.ssh/known_hosts"),
            "{text}"
        );
        assert!(text.contains("--accept-new-host-keys"), "{text}");
        assert!(unknown.is_refusal());

        let changed = TransportError::HostKeyChanged {
            node: "worker-0".into(),
            host_entry: "10.0.0.1".into(),
            fingerprint: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: PathBuf::from("/kh"),
            line: 7,
        };
        assert!(changed.to_string().contains("/kh line 7"));
        assert!(changed.is_refusal());

        let revoked = TransportError::HostKeyRevoked {
            node: "worker-0".into(),
            host_entry: "10.0.0.1".into(),
            fingerprint: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: PathBuf::from("/kh"),
            line: 3,
        };
        assert!(revoked.is_refusal());
        assert!(
            revoked.to_string().contains("REVOKED (/kh line 3)"),
            "{revoked}"
        );
        let ca = TransportError::HostCertificatesUnsupported {
            node: "worker-0".into(),
            host_entry: "10.0.0.1".into(),
            fingerprint: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: PathBuf::from("/kh"),
            line: 1,
        };
        assert!(ca.is_refusal());
        let text = ca.to_string();
        assert!(
            text.starts_with("worker-0: refusing to connect: host certificates are not supported")
                && text.contains("/kh line 1")
                && text.contains("SHA256:abc"),
            "{text}"
        );

        let timeout = TransportError::CommandTimeout {
            node: "n1".into(),
            command: "sleep 5".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(!timeout.is_refusal());
        assert_eq!(
            timeout.to_string(),
            "n1: command timed out after 1s: sleep 5"
        );
        assert_eq!(timeout.node(), "n1");
    }

    #[test]
    fn session_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Session>();
        assert_send_sync::<TransportError>();
    }
}
