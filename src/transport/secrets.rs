//! Secrets asked for at most once per run: key passphrases (per key file) and the sudo password.
//!
//! Why process-wide: one netctl process is one run, and every node's connect happens concurrently;
//! a lock held across the prompt makes the first node ask and the others wait for the answer
//! instead of printing 32 prompts. CI sets NETCTL_KEY_PASSPHRASE / NETCTL_SUDO_PASSWORD instead.
//! Secrets are never logged and never put on a command line.
//!
//! Those two variables are taken out of the process environment at start-up (`take_from_env`) and
//! kept in memory only: otherwise every child inherits them (kubectl and its exec credential
//! plugins, a ProxyCommand, gcloud/aws, ssh-keygen, systemd-analyze), none of which needs them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use russh::keys::PrivateKey;

pub const KEY_PASSPHRASE_ENV: &str = "NETCTL_KEY_PASSPHRASE";
pub const SUDO_PASSWORD_ENV: &str = "NETCTL_SUDO_PASSWORD";

/// Both names, for spawn sites that remove them from a child's environment as a second guard.
pub const ENV_NAMES: [&str; 2] = [KEY_PASSPHRASE_ENV, SUDO_PASSWORD_ENV];

static PASSPHRASES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
static SUDO_PASSWORD: Mutex<Option<String>> = Mutex::new(None);
static FROM_ENV: OnceLock<FromEnv> = OnceLock::new();

/// What the environment held at start-up. A value that is not UTF-8 counts as unset (and is
/// still removed), so the run asks for it or names the variable.
struct FromEnv {
    key_passphrase: Option<String>,
    sudo_password: Option<String>,
}

impl FromEnv {
    fn read() -> FromEnv {
        let get = |name| std::env::var_os(name).and_then(|v| v.into_string().ok());
        FromEnv {
            key_passphrase: get(KEY_PASSPHRASE_ENV),
            sudo_password: get(SUDO_PASSWORD_ENV),
        }
    }
}

/// Read NETCTL_KEY_PASSPHRASE and NETCTL_SUDO_PASSWORD once, keep them in memory, and remove them
/// from the process environment, so no child process inherits them.
///
/// # Safety
/// Changing the environment is only sound while no other thread can read it (getenv in libc is
/// not synchronised with setenv): call this first thing in `main`, before any thread (the tokio
/// runtime, a progress bar) exists.
pub unsafe fn take_from_env() {
    FROM_ENV.get_or_init(FromEnv::read);
    for name in ENV_NAMES {
        std::env::remove_var(name);
    }
}

/// The start-up values; without `take_from_env` (the library used on its own) read, not removed.
fn from_env() -> &'static FromEnv {
    FROM_ENV.get_or_init(FromEnv::read)
}

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
    let pass = match &from_env().key_passphrase {
        Some(p) => p.clone(),
        None => ask(
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
    if let Some(p) = &from_env().sudo_password {
        return Ok(p.clone());
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
