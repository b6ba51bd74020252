//! Public-key authentication: the identity files that exist (in order), then the keys an ssh-agent holds.
//!
//! Why both: operators keep keys in an agent (often passphrase-protected files, or hardware keys),
//! and CI uses plain files; OpenSSH tries files and agent keys alike, so netctl does too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::read::{read_regular_text, ReadError, MAX_SSH_FILE};
use super::{secrets, Target, TransportError};

/// The key files of a target, loaded before connecting so a bad key is reported even when the node is down.
pub(crate) struct Keys {
    files: Vec<(PathBuf, Arc<PrivateKey>)>,
    missing: Vec<PathBuf>,
}

/// Why a key file cannot be used: the operator's file is at fault (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Not a private key, or no way to ask for its passphrase.
    #[error(transparent)]
    Key(#[from] russh::keys::Error),
    #[error("the passphrase given (NETCTL_KEY_PASSPHRASE or typed) does not decrypt it ({0})")]
    Passphrase(#[source] russh::keys::Error),
}

// The transport's one error type, as every (async, hence unlinted) transport function returns.
#[allow(clippy::result_large_err)]
pub(crate) fn load_files(target: &Target) -> Result<Keys, TransportError> {
    let mut keys = Keys {
        files: Vec::new(),
        missing: Vec::new(),
    };
    for path in &target.identity_files {
        match load_file(&target.name, path)? {
            Some(key) => keys.files.push((path.clone(), Arc::new(key))),
            None => keys.missing.push(path.clone()),
        }
    }
    Ok(keys)
}

/// One key file; None when there is no file (skipped, as OpenSSH does).
#[allow(clippy::result_large_err)]
pub(crate) fn load_file(node: &str, path: &Path) -> Result<Option<PrivateKey>, TransportError> {
    let error = |source: KeyFileError| TransportError::KeyFile {
        node: node.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let text = match read_regular_text(path, MAX_SSH_FILE) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(error(e.into())),
    };
    secrets::load_key(path, &text).map(Some).map_err(|e| {
        // russh only says "cryptographic error" when a passphrase does not fit; say what it means.
        // (An IO error here is the prompt's: no terminal, or it failed.)
        let encrypted = matches!(
            russh::keys::decode_secret_key(&text, None),
            Err(russh::keys::Error::KeyIsEncrypted)
        );
        match e {
            russh::keys::Error::IO(_) => error(e.into()),
            e if encrypted => error(KeyFileError::Passphrase(e)),
            e => error(e.into()),
        }
    })
}

/// Try every key; Ok once the server accepts one.
pub(crate) async fn authenticate<H: client::Handler>(
    handle: &mut Handle<H>,
    target: &Target,
    keys: &Keys,
) -> Result<(), TransportError> {
    let node = &target.name;
    let ssh_err = |action: &str, source: russh::Error| TransportError::Ssh {
        node: node.clone(),
        action: action.to_string(),
        source,
    };
    let mut tried = Vec::new();
    for (path, key) in &keys.files {
        let hash = rsa_hash(handle, key.public_key())
            .await
            .map_err(|e| ssh_err("negotiating the RSA signature hash", e))?;
        let result = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(key.clone(), hash),
            )
            .await
            .map_err(|e| ssh_err("authenticating", e))?;
        if result.success() {
            return Ok(());
        }
        tried.push(format!("key file {}", path.display()));
    }
    if !keys.missing.is_empty() {
        tried.push(format!(
            "(no file at {})",
            keys.missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match &target.agent {
        Some(socket) => match agent_auth(handle, target, keys, socket).await {
            Ok(AgentOutcome::Accepted) => return Ok(()),
            Ok(AgentOutcome::Refused(n)) => {
                tried.push(format!("{n} key(s) from the agent at {}", socket.display()))
            }
            Err(why) => tried.push(format!("(agent at {}: {why})", socket.display())),
        },
        None => tried.push("(no ssh-agent: SSH_AUTH_SOCK is not set)".into()),
    }
    Err(TransportError::Auth {
        node: node.clone(),
        user: target.user.clone(),
        tried: tried.join(", "),
    })
}

enum AgentOutcome {
    Accepted,
    /// The server refused all of this many agent keys.
    Refused(usize),
}

async fn agent_auth<H: client::Handler>(
    handle: &mut Handle<H>,
    target: &Target,
    keys: &Keys,
    socket: &Path,
) -> Result<AgentOutcome, String> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| format!("cannot list keys: {e}"))?;
    let mut offered = 0;
    for identity in identities {
        let public = identity.public_key().into_owned();
        // A key already offered from its file is not offered again.
        if keys
            .files
            .iter()
            .any(|(_, k)| k.public_key().key_data() == public.key_data())
        {
            continue;
        }
        offered += 1;
        let hash = rsa_hash(handle, &public)
            .await
            .map_err(|e| format!("negotiating the RSA hash: {e}"))?;
        match handle
            .authenticate_publickey_with(target.user.clone(), public, hash, &mut agent)
            .await
        {
            Ok(AuthResult::Success) => return Ok(AgentOutcome::Accepted),
            Ok(AuthResult::Failure { .. }) => {}
            Err(e) => return Err(format!("signing failed: {e}")),
        }
    }
    Ok(AgentOutcome::Refused(offered))
}

/// rsa-sha2-256/512 when the server lists them (OpenSSH does); never SHA-1. None for other key types.
async fn rsa_hash<H: client::Handler>(
    handle: &Handle<H>,
    key: &PublicKey,
) -> Result<Option<HashAlg>, russh::Error> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    Ok(handle
        .best_supported_rsa_hash()
        .await?
        .unwrap_or(Some(HashAlg::Sha256)))
}
