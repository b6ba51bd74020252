//! What netctl knows about a node: /var/lib/netctl/state.json (written by netctl after every
//! apply) and what a read-only gather finds there now. state.json records how to undo what was
//! done (teardown commands, which files had originals), so `reset` and `switch` work from the
//! node's own record, not from whatever the profile says today.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::provider::{sh_quote, Step};

pub const STATE_DIR: &str = "/var/lib/netctl";
pub const STATE_FILE: &str = "/var/lib/netctl/state.json";
/// Pre-netctl versions of files netctl took over, kept until `reset` puts them back.
pub const ORIGINALS_DIR: &str = "/var/lib/netctl/originals";
/// Per-run copies of every file a run replaced or removed.
pub const BACKUPS_DIR: &str = "/var/lib/netctl/backups";
/// Under /run so a reboot clears a lock left by a run that died with the machine.
pub const LOCK_DIR: &str = "/run/netctl";
pub const LOCK_FILE: &str = "/run/netctl/lock";
/// One directory per node transaction (txn.rs): its script, staged files, journal and result.
pub const TXN_DIR: &str = "/var/lib/netctl/txn";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManagedFile {
    pub sha256: String,
    pub mode: u32,
    /// The file existed before netctl first wrote it; its original is under ORIGINALS_DIR.
    pub original: bool,
    /// A program netctl copied (flanneld): gathers read back its sha256, never its bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct NodeState {
    pub provider: String,
    #[serde(default)]
    pub backend: String,
    pub profile_sha256: String,
    pub run_id: String,
    pub files: BTreeMap<String, ManagedFile>,
    /// Units netctl enabled.
    #[serde(default)]
    pub units: Vec<String>,
    /// Commands applied by the last run, in order.
    #[serde(default)]
    pub commands: Vec<String>,
    /// How to undo the commands (run before files are removed).
    #[serde(default)]
    pub teardown: Vec<Step>,
    /// Progress of an unfinished `switch` on this node (see migrate.rs). A record that does not
    /// parse makes the whole state an error, never "no switch in progress".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<SwitchRecord>,
}

/// Where a node is in a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchPhase {
    /// Its files are changing.
    Switching,
    /// It runs the target.
    Switched,
}

/// A node's switch progress, kept in its state.json until the switch completes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SwitchRecord {
    pub run_id: String,
    pub from: crate::migrate::Endpoint,
    pub to: crate::migrate::Endpoint,
    pub phase: SwitchPhase,
    /// What this run changed on the node, to restore from backups/<run_id>.
    pub files: Vec<(String, crate::plan::FileAction)>,
}

impl SwitchRecord {
    /// The record came from the node: its run id and paths become paths and shell words of the
    /// rollback, so they must be what netctl writes.
    fn check(&self) -> Result<(), String> {
        if !crate::phase::txn::is_run_id(&self.run_id) {
            return Err(format!(
                "the switch record's run id {:?} is not a run id",
                self.run_id
            ));
        }
        for (path, _) in &self.files {
            if crate::transport::check_remote_path(path).is_err() {
                return Err(format!(
                    "the switch record names {path:?}, not an absolute normal path"
                ));
            }
        }
        Ok(())
    }
}

/// A file as found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub mode: u32,
    /// Empty when only the digest was read.
    pub content: Vec<u8>,
    /// A binary netctl installs is read back as its size and sha256 only: a 40 MB flanneld is
    /// not sent back from every node on every run.
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    pub sha256: String,
}

impl RemoteFile {
    /// The sha256 of what the node holds, read back or computed.
    pub fn sha256(&self) -> String {
        match &self.digest {
            Some(d) => d.sha256.clone(),
            None => crate::profile::sha256_hex(&self.content),
        }
    }

    pub fn size(&self) -> u64 {
        self.digest
            .as_ref()
            .map_or(self.content.len() as u64, |d| d.size)
    }
}

/// Everything one read-only round trip learns about a node.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub state: Option<NodeState>,
    /// The state file exists but does not parse (reported, never overwritten blindly).
    pub state_error: Option<String>,
    pub lock: Option<String>,
    pub files: BTreeMap<String, Option<RemoteFile>>,
    /// `systemctl is-enabled` per unit asked about (only where the node has systemd).
    pub enabled: BTreeMap<String, bool>,
    /// Node transactions without a result: (run id, still running).
    pub txns: Vec<(String, bool)>,
}

/// A shell script that prints, in one round trip, the state file, the lock, and every asked-for
/// file (mode and base64 content; for `digests`, mode, size and sha256). Nothing it prints is
/// interpreted by a shell.
pub fn gather_script(paths: &[&str], digests: &[&str], units: &[&str]) -> String {
    let mut s = String::from("set -u\nshow() { if [ -f \"$2\" ]; then printf '@@%s %s ' \"$1\" \"$(stat -c %a \"$2\")\"; base64 -w0 < \"$2\"; echo; else printf '@@%s -\\n' \"$1\"; fi; }\n");
    s.push_str("sum() { if [ -f \"$1\" ]; then printf '@@sum %s %s ' \"$(stat -c %a \"$1\")\" \"$(stat -c %s \"$1\")\"; sha256sum < \"$1\" | cut -d' ' -f1; else printf '@@file -\\n'; fi; }\n");
    s.push_str(&format!("show state {}\n", sh_quote(STATE_FILE)));
    s.push_str(&format!("show lock {}\n", sh_quote(LOCK_FILE)));
    s.push_str(&crate::phase::txn::status_script());
    for p in paths {
        let q = sh_quote(p);
        s.push_str(&format!("printf '@@path %s\\n' {q}\nshow file {q}\n"));
    }
    for p in digests {
        let q = sh_quote(p);
        s.push_str(&format!("printf '@@path %s\\n' {q}\nsum {q}\n"));
    }
    if !units.is_empty() {
        s.push_str("if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then\n");
        for u in units {
            let q = sh_quote(u);
            s.push_str(&format!("  printf '@@unit %s %s\\n' {q} \"$(systemctl is-enabled {q} 2>/dev/null || true)\"\n"));
        }
        s.push_str("fi\n");
    }
    s
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected gather output line {line}: {text}")]
pub struct GatherParseError {
    pub line: usize,
    pub text: String,
}

fn decode(mode: &str, b64: &str) -> Option<RemoteFile> {
    let mode = u32::from_str_radix(mode, 8).ok()?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    Some(RemoteFile {
        mode,
        content,
        digest: None,
    })
}

/// `MODE` and `SIZE SHA256` of a `sum` line.
fn decode_sum(mode: &str, rest: &str) -> Option<RemoteFile> {
    let mode = u32::from_str_radix(mode, 8).ok()?;
    let (size, sha256) = rest.trim().split_once(' ')?;
    if !crate::profile::is_sha256_hex(sha256) {
        return None;
    }
    Some(RemoteFile {
        mode,
        content: Vec::new(),
        digest: Some(Digest {
            size: size.parse().ok()?,
            sha256: sha256.to_string(),
        }),
    })
}

pub fn parse_gather(out: &str) -> Result<Gathered, GatherParseError> {
    let mut g = Gathered::default();
    let mut current_path: Option<String> = None;
    for (i, line) in out.lines().enumerate() {
        let err = || GatherParseError {
            line: i + 1,
            text: line.chars().take(120).collect(),
        };
        let Some(rest) = line.strip_prefix("@@") else {
            continue;
        };
        if let Some(path) = rest.strip_prefix("path ") {
            current_path = Some(path.to_string());
            continue;
        }
        let mut parts = rest.splitn(3, ' ');
        let tag = parts.next().unwrap_or("");
        let a = parts.next().unwrap_or("");
        let b = parts.next().unwrap_or("");
        if tag == "unit" {
            g.enabled.insert(a.to_string(), b.trim() == "enabled");
            continue;
        }
        if tag == "txn" {
            // The name comes from a directory listing on the node: only a run id is taken.
            let run = b.trim();
            if !crate::phase::txn::is_run_id(run) || !matches!(a, "running" | "interrupted") {
                return Err(err());
            }
            g.txns.push((run.to_string(), a == "running"));
            continue;
        }
        if tag == "sum" {
            let p = current_path.take().ok_or_else(err)?;
            g.files.insert(p, Some(decode_sum(a, b).ok_or_else(err)?));
            continue;
        }
        let file = if a == "-" {
            None
        } else {
            Some(decode(a, b).ok_or_else(err)?)
        };
        match tag {
            "state" => {
                if let Some(f) = file {
                    match serde_json::from_slice::<NodeState>(&f.content) {
                        Ok(s) => match s.switch.as_ref().map(SwitchRecord::check) {
                            Some(Err(e)) => g.state_error = Some(e),
                            _ => g.state = Some(s),
                        },
                        Err(e) => g.state_error = Some(e.to_string()),
                    }
                }
            }
            "lock" => g.lock = file.map(|f| String::from_utf8_lossy(&f.content).trim().to_string()),
            "file" => {
                let p = current_path.take().ok_or_else(err)?;
                g.files.insert(p, file);
            }
            _ => return Err(err()),
        }
    }
    Ok(g)
}

impl Gathered {
    /// The run id of an unfinished switch recorded on the node, if any.
    pub fn switch_run(&self) -> Option<String> {
        Some(self.state.as_ref()?.switch.as_ref()?.run_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_script_runs_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a file");
        std::fs::write(&a, "hello\n'quoted' $(x)\n").unwrap();
        let a = a.to_str().unwrap().to_string();
        let missing = dir.path().join("missing").to_str().unwrap().to_string();
        let script = gather_script(&[&a, &missing], &[], &[]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success());
        let g = parse_gather(&String::from_utf8(out.stdout).unwrap()).unwrap();
        let f = g.files[&a].as_ref().unwrap();
        assert_eq!(f.content, b"hello\n'quoted' $(x)\n");
        assert_eq!(f.mode, 0o644);
        assert_eq!(g.files[&missing], None);
    }

    /// Binaries come back as mode, size and sha256: never their bytes.
    #[test]
    fn digest_paths_come_back_as_size_and_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("flanneld");
        std::fs::write(&bin, b"\x7fELF\x00 stand-in").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let bin = bin.to_str().unwrap().to_string();
        let missing = dir.path().join("flannel").to_str().unwrap().to_string();
        let script = gather_script(&[], &[&bin, &missing], &[]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains("ELF"), "{text}");
        let g = parse_gather(&text).unwrap();
        let f = g.files[&bin].as_ref().unwrap();
        assert_eq!(f.mode, 0o755);
        assert!(f.content.is_empty());
        assert_eq!(
            f.digest,
            Some(Digest {
                size: 14,
                sha256: crate::profile::sha256_hex(b"\x7fELF\x00 stand-in"),
            })
        );
        assert_eq!(g.files[&missing], None);
        assert!(parse_gather("@@path /x\n@@sum 755 14 nothex\n").is_err());
    }

    #[test]
    fn unit_lines_parse_with_or_without_a_state() {
        let g = parse_gather(
            "@@unit a.service enabled\n@@unit b.service \n@@unit c.service disabled\n",
        )
        .unwrap();
        assert!(g.enabled["a.service"]);
        assert!(!g.enabled["b.service"]);
        assert!(!g.enabled["c.service"]);
    }

    /// Issue 13: a switch record that does not parse was read as "no switch in progress".
    #[test]
    fn a_switch_record_that_does_not_parse_is_an_error() {
        let state = |switch: &str| {
            let json = format!(
                "{{\"provider\":\"routes\",\"profile_sha256\":\"x\",\"run_id\":\"r\",\"files\":{{}},\"switch\":{switch}}}"
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(json);
            parse_gather(&format!("@@state 644 {b64}\n")).unwrap()
        };
        let good = r#"{"run_id":"20261130T000000Z-abcd","from":{"provider":"routes","backend":"host-gw"},"to":{"provider":"routes","backend":"vxlan"},"phase":"switched","files":[["/etc/cni/net.d/10-bridge.conf","update"]]}"#;
        let g = state(good);
        assert_eq!(g.switch_run().as_deref(), Some("20261130T000000Z-abcd"));
        assert_eq!(
            g.state.unwrap().switch.unwrap().phase,
            SwitchPhase::Switched
        );
        for bad in [
            r#"{"run_id":"20261130T000000Z-abcd","phase":"half"}"#,
            &good.replace("switched", "Switched"),
            &good.replace("/etc/cni/net.d/10-bridge.conf", "/etc/../tmp/x"),
            &good.replace("20261130T000000Z-abcd", "../x"),
        ] {
            let g = state(bad);
            assert!(g.state.is_none() && g.state_error.is_some(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_guess() {
        assert!(parse_gather("@@file 644 %%%notbase64\n").is_err());
        assert!(parse_gather("@@bogus -\n").is_err());
    }
}
