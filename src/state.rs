//! What netctl knows about a node: /var/lib/netctl/state.json (written by netctl after every
//! apply) and what a read-only gather finds there now. state.json records how to undo what was
//! done (teardown commands, which files had originals), so `reset` and `switch` work from the
//! node's own record, not from whatever the profile says today.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::provider::Step;
use crate::shell;

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
    /// The record of the switch that set this node's network, moved here when that switch
    /// finished: `verify` names the run, and a `switch --rollback` of that run (interrupted
    /// while other nodes still held their records) finds what to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switch: Option<SwitchRecord>,
}

impl NodeState {
    /// The node is done with switch `run`: this state (its record already moved to
    /// `last_switch`) written and the switch's lock released in one script
    /// (templates/node/settle.sh).
    pub fn settle_script(&self, run: &str) -> String {
        let mut json = serde_json::to_vec_pretty(self).expect("state serialises");
        json.push(b'\n');
        shell::Script::new(shell::script_file!("node/settle.sh"))
            .var("STATE", STATE_FILE)
            .var("LOCK", LOCK_FILE)
            .var("RUN", run)
            .var(
                "CONTENT",
                base64::engine::general_purpose::STANDARD.encode(json),
            )
            .build()
    }
}

/// Where a node is in a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchPhase {
    /// The switch holds the node: nothing of it changed yet but the prepare step (written on
    /// every node before the first change, so no step leaves a lock without a record).
    Prepared,
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

impl SwitchRecord {
    /// Put back the files the switch changed (templates/node/roll-back.sh): files it created are
    /// removed, the others copied back from its backups where it made one. state.json is not
    /// among them: it keeps the record until `drop_script` ends the node's rollback, so a
    /// rollback killed half way is found and finished by the next one.
    pub fn roll_back_script(&self) -> String {
        use crate::plan::FileAction;
        self.restore(
            self.files
                .iter()
                .filter(|(p, _)| p != STATE_FILE)
                .map(|(path, action)| match action {
                    FileAction::Create => format!("absent:{path}"),
                    _ => format!("existed:{path}"),
                }),
        )
    }

    /// The last step of a node's rollback: state.json back as it was before the switch (the
    /// record goes with it) and the switch's lock released, in one script.
    pub fn drop_script(&self) -> String {
        // A node netctl had not set up before the switch (`--from`) had no state.json.
        let state = format!("prior:{STATE_FILE}");
        format!(
            "{}{}",
            self.restore(std::iter::once(state)),
            crate::phase::lock::release_script(&self.run_id)
        )
    }

    fn restore(&self, items: impl Iterator<Item = String>) -> String {
        shell::Script::new(shell::script_file!("node/roll-back.sh"))
            .include(RESTORE_LIB)
            .var("RUN", &self.run_id)
            .var("BACKUPS", self.backups())
            .args(items)
            .build()
    }

    /// Where the switch backed up what it changed on the node.
    pub fn backups(&self) -> String {
        format!("{BACKUPS_DIR}/{}", self.run_id)
    }
}

/// The shell functions that put files back from a run's backups (txn.sh includes it too).
pub const RESTORE_LIB: shell::File = shell::script_file!("node/restore.sh");

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

/// The gather script (templates/node/gather.sh): in one round trip, the state file, the lock, the
/// unfinished transactions, and every asked-for file (mode and base64 content; for `digests`,
/// mode, size and sha256), unit (is-enabled) and drop-in directory (its `*.conf` files). Nothing
/// it prints is interpreted by a shell.
pub fn gather_script(paths: &[&str], digests: &[&str], units: &[&str], dirs: &[&str]) -> String {
    let tagged = |kind: &'static str, items: &[&str]| {
        items
            .iter()
            .map(move |i| format!("{kind}:{i}"))
            .collect::<Vec<_>>()
    };
    shell::Script::new(shell::script_file!("node/gather.sh"))
        .var("STATE", STATE_FILE)
        .var("LOCK", LOCK_FILE)
        .var("TXN_DIR", TXN_DIR)
        .var("UNSAFE", crate::provider::edit::UNSAFE_NAME)
        .args(tagged("file", paths))
        .args(tagged("sum", digests))
        .args(tagged("unit", units))
        .args(tagged("dir", dirs))
        .build()
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
    for t in shell::tagged(out) {
        let err = || GatherParseError {
            line: t.line,
            text: t.text.chars().take(120).collect(),
        };
        if t.tag == "path" {
            current_path = Some(t.rest.to_string());
            continue;
        }
        let (a, b) = t.rest.split_once(' ').unwrap_or((t.rest, ""));
        match t.tag {
            "unit" => {
                g.enabled.insert(a.to_string(), b.trim() == "enabled");
                continue;
            }
            "txn" => {
                // The name comes from a directory listing on the node: only a run id is taken.
                let run = b.trim();
                if !crate::phase::txn::is_run_id(run) || !matches!(a, "running" | "interrupted") {
                    return Err(err());
                }
                g.txns.push((run.to_string(), a == "running"));
                continue;
            }
            "sum" => {
                let p = current_path.take().ok_or_else(err)?;
                g.files.insert(p, Some(decode_sum(a, b).ok_or_else(err)?));
                continue;
            }
            _ => {}
        }
        let file = if a == "-" {
            None
        } else {
            Some(decode(a, b).ok_or_else(err)?)
        };
        match t.tag {
            "state" => {
                if let Some(f) = file {
                    match serde_json::from_slice::<NodeState>(&f.content) {
                        // Both records name paths and a run id a rollback uses as root.
                        Ok(s) => match s
                            .switch
                            .iter()
                            .chain(&s.last_switch)
                            .map(SwitchRecord::check)
                            .find_map(Result::err)
                        {
                            Some(e) => g.state_error = Some(e),
                            None => g.state = Some(s),
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
        let script = gather_script(&[&a, &missing], &[], &[], &[]);
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
        let script = gather_script(&[], &[&bin, &missing], &[], &[]);
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

    /// A settled switch's record (`last_switch`) names paths and a run id a `--rollback` uses
    /// as root, like a progress record: it is checked the same way.
    #[test]
    fn a_settled_switch_record_is_checked_like_a_running_one() {
        let good = r#"{"run_id":"20261130T000000Z-abcd","from":{"provider":"routes","backend":"host-gw"},"to":{"provider":"routes","backend":"vxlan"},"phase":"switched","files":[["/etc/cni/net.d/10-bridge.conf","update"]]}"#;
        let state = |last: &str| {
            let json = format!(
                "{{\"provider\":\"routes\",\"profile_sha256\":\"x\",\"run_id\":\"r\",\"files\":{{}},\"last_switch\":{last}}}"
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(json);
            parse_gather(&format!("@@state 644 {b64}\n")).unwrap()
        };
        assert!(state(good).state.is_some());
        for bad in [
            good.replace("/etc/cni/net.d/10-bridge.conf", "/etc/../tmp/x"),
            good.replace("20261130T000000Z-abcd", "../x"),
        ] {
            let g = state(&bad);
            assert!(g.state.is_none() && g.state_error.is_some(), "{bad}");
        }
    }

    /// The rollback runs for real on a temp dir: created files go, replaced and removed ones
    /// come back from the run's backups (state.json too), a file without a backup is left.
    #[test]
    fn a_switch_rolls_back_from_its_backups() {
        use crate::plan::FileAction;
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
        let run = "20261130T000000Z-abcd";
        let backups = d.path().join("backups").join(run);
        let backup = |path: &str, text: &str| {
            let b = format!("{}{path}", backups.to_str().unwrap());
            std::fs::create_dir_all(std::path::Path::new(&b).parent().unwrap()).unwrap();
            std::fs::write(b, text).unwrap();
        };
        std::fs::write(p("new.conf"), "created\n").unwrap();
        std::fs::write(p("it's.conf"), "changed\n").unwrap();
        backup(&p("it's.conf"), "before\n");
        backup(&p("gone.conf"), "removed\n");
        std::fs::write(p("nobackup.conf"), "kept\n").unwrap();
        std::fs::write(p("state.json"), "new state\n").unwrap();
        backup(&p("state.json"), "old state\n");
        let mut rec: SwitchRecord = serde_json::from_str(&format!(
            r#"{{"run_id":"{run}","from":{{"provider":"routes","backend":"host-gw"}},"to":{{"provider":"routes","backend":"vxlan"}},"phase":"switching","files":[]}}"#
        ))
        .unwrap();
        rec.files = vec![
            (p("new.conf"), FileAction::Create),
            (p("it's.conf"), FileAction::Update),
            (p("gone.conf"), FileAction::Remove),
            (p("nobackup.conf"), FileAction::Update),
        ];
        let run_sh = |script: String| {
            let script = script
                .replace(STATE_FILE, &p("state.json"))
                .replace(LOCK_FILE, &p("lock"))
                .replace(BACKUPS_DIR, d.path().join("backups").to_str().unwrap());
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        std::fs::write(p("lock"), format!("run={run}\n")).unwrap();
        run_sh(rec.roll_back_script());
        assert!(!d.path().join("new.conf").exists());
        let read = |s: &str| std::fs::read_to_string(p(s)).unwrap();
        assert_eq!(read("it's.conf"), "before\n");
        assert_eq!(read("gone.conf"), "removed\n");
        assert_eq!(read("nobackup.conf"), "kept\n");
        // The record stays until the node's rollback is complete (a kill before is recoverable).
        assert_eq!(read("state.json"), "new state\n");
        assert!(d.path().join("lock").exists());
        run_sh(rec.drop_script());
        assert_eq!(read("state.json"), "old state\n");
        assert!(
            !d.path().join("lock").exists(),
            "the switch's lock goes with its record"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_guess() {
        assert!(parse_gather("@@file 644 %%%notbase64\n").is_err());
        assert!(parse_gather("@@bogus -\n").is_err());
    }
}
