//! Secrets asked for at most once per run: key passphrases (per key file) and the sudo password.
//!
//! Why process-wide: one netctl process is one run, and every node's connect happens concurrently;
//! a lock held across the prompt makes the first node ask and the others wait for the answer
//! instead of printing 32 prompts. CI sets NETCTL_KEY_PASSPHRASE / NETCTL_SUDO_PASSWORD instead.
//! Secrets are never logged and never put on a command line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::PrivateKey;

pub const KEY_PASSPHRASE_ENV: &str = "NETCTL_KEY_PASSPHRASE";
pub const SUDO_PASSWORD_ENV: &str = "NETCTL_SUDO_PASSWORD";

static PASSPHRASES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
static SUDO_PASSWORD: Mutex<Option<String>> = Mutex::new(None);

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{what} is needed, but there is no terminal to ask on; set {env}")]
    NoTerminal { what: String, env: &'static str },
    #[error("could not read {what}: {message}")]
    Prompt { what: String, message: String },
}

/// Decode the private key read from `path`, asking for its passphrase (once per path per run) when
/// it is encrypted. The caller reads the file (bounded, regular files only).
pub fn load_key(path: &Path, text: &str) -> Result<PrivateKey, russh::keys::Error> {
    match russh::keys::decode_secret_key(text, None) {
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        other => return other,
    }
    let mut cache = PASSPHRASES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pass) = cache.get(path) {
        return russh::keys::decode_secret_key(text, Some(pass));
    }
    let what = format!("the passphrase for {}", path.display());
    let pass = match std::env::var(KEY_PASSPHRASE_ENV) {
        Ok(p) => p,
        Err(_) => ask(
            &what,
            KEY_PASSPHRASE_ENV,
            &format!("Passphrase for {}", path.display()),
        )
        .map_err(|e| russh::keys::Error::IO(std::io::Error::other(e.to_string())))?,
    };
    let key = russh::keys::decode_secret_key(text, Some(&pass))?;
    cache.insert(path.to_path_buf(), pass);
    Ok(key)
}

/// The sudo password: NETCTL_SUDO_PASSWORD, or asked once on the terminal (not echoed).
pub fn sudo_password() -> Result<String, SecretError> {
    if let Ok(p) = std::env::var(SUDO_PASSWORD_ENV) {
        return Ok(p);
    }
    let mut cached = SUDO_PASSWORD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cached.as_ref() {
        return Ok(p.clone());
    }
    let p = ask(
        "the sudo password",
        SUDO_PASSWORD_ENV,
        "sudo password for the nodes",
    )?;
    *cached = Some(p.clone());
    Ok(p)
}

fn ask(what: &str, env: &'static str, prompt: &str) -> Result<String, SecretError> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(SecretError::NoTerminal {
            what: what.to_string(),
            env,
        });
    }
    dialoguer::Password::new()
        .with_prompt(prompt)
        .allow_empty_password(true)
        .interact()
        .map_err(|e| SecretError::Prompt {
            what: what.to_string(),
            message: e.to_string(),
        })
}
