//! SSH keys: the lab's client key, a fresh host key per node (made on the host with ssh-keygen),
//! and the lab known_hosts file recording every node's host key, so clients never skip the check.

use std::net::Ipv4Addr;
use std::path::Path;

use super::cmd::run_args;
use super::LabError;

/// `ssh-keygen -t ed25519` without a passphrase at `path` (and `path`.pub).
pub fn generate(path: &Path, comment: &str) -> Result<(), LabError> {
    let p = path.to_str().expect("lab paths are checked to be UTF-8");
    run_args(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", p],
    )?;
    Ok(())
}

/// "ssh-ed25519 AAAA..." from a .pub file (without the comment).
pub fn public_key(private: &Path) -> Result<String, LabError> {
    let pubpath = private.with_extension("pub");
    let text =
        std::fs::read_to_string(&pubpath).map_err(|e| LabError::io("cannot read", &pubpath, e))?;
    let mut f = text.split_whitespace();
    match (f.next(), f.next()) {
        (Some(t), Some(k)) => Ok(format!("{t} {k}")),
        _ => Err(LabError::Failed(format!(
            "{} is not an OpenSSH public key",
            pubpath.display()
        ))),
    }
}

/// Plain known_hosts lines, one per node: `10.240.0.11 ssh-ed25519 AAAA...`.
pub fn known_hosts(entries: &[(Ipv4Addr, String)]) -> String {
    entries
        .iter()
        .map(|(addr, key)| format!("{addr} {key}\n"))
        .collect()
}
