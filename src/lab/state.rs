//! The lab's record of what it made (<labdir>/state.json), written before and after each change
//! so `lab down` removes exactly that, even after a failed `lab up`. `LabInfo` is the read-only
//! view other code (init/verify end-to-end tests) uses to reach a lab's nodes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::process::{self, Proc};
use super::runtime::{self, Runtime};
use super::{lab_dir, Kind, LabError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    pub nodes: Vec<NodeState>,
    /// `--bastion`: the bridge only the nodes and the bastion join (no address in the root namespace).
    #[serde(default)]
    pub inner_bridge: Option<String>,
    /// `--bastion`: the jump host, a netns node on both bridges.
    #[serde(default)]
    pub bastion: Option<NodeState>,
    /// `--user`: the login made on the host (recorded before useradd, removed by `lab down`).
    #[serde(default)]
    pub user: Option<String>,
    /// `--runtime`: the container runtime every node runs.
    #[serde(default)]
    pub runtime: Option<Runtime>,
}

impl State {
    /// The bridge the nodes are on: the internal one behind a bastion, else the lab bridge.
    pub fn node_bridge(&self) -> &str {
        self.inner_bridge.as_deref().unwrap_or(&self.bridge)
    }

    /// The network namespace from which the nodes can be reached (the bastion's), if not the root one.
    pub fn probe_netns(&self) -> Option<&str> {
        self.bastion.as_ref().and_then(|b| b.netns.as_deref())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub address: Ipv4Addr,
    /// netns: the network namespace (/run/netns/NAME); systemd: unused.
    #[serde(default)]
    pub netns: Option<String>,
    /// netns: the root end of the node's veth.
    #[serde(default)]
    pub veth: Option<String>,
    /// The bastion's second veth (on the internal bridge).
    #[serde(default)]
    pub veth2: Option<String>,
    /// systemd: the nspawn machine name (unique across labs).
    #[serde(default)]
    pub machine: Option<String>,
    /// systemd: the overlay mounted at <node dir>/root.
    #[serde(default)]
    pub overlay_mounted: bool,
    /// netns: the node's sshd; systemd: its systemd-nspawn.
    #[serde(default)]
    pub process: Option<Proc>,
    /// `--runtime containerd`: the node's containerd.
    #[serde(default)]
    pub runtime: Option<Proc>,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

impl State {
    pub fn load(name: &str) -> Result<State, LabError> {
        let path = state_path(&lab_dir(name));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LabError::BadInput(format!("no lab named {name:?} (no {})", path.display()))
            } else {
                LabError::io("cannot read", &path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            message: e.to_string(),
        })
    }

    /// Atomic write (temp + rename) so a crash never leaves half a record.
    pub fn save(&self) -> Result<(), LabError> {
        let dir = lab_dir(&self.name);
        let path = state_path(&dir);
        let tmp = dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        std::fs::write(&tmp, text).map_err(|e| LabError::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io("cannot write", &path, e))
    }

    pub fn node(&self, name: &str) -> Result<usize, LabError> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| {
                LabError::BadInput(format!(
                    "lab {:?} has no node {name:?} (nodes: {})",
                    self.name,
                    self.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// A running lab as other code sees it: where its nodes are and how to reach them.
#[derive(Debug, Clone)]
pub struct LabInfo {
    pub name: String,
    pub kind: Kind,
    pub dir: PathBuf,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    pub nodes: Vec<NodeInfo>,
    /// The lab's SSH client key (ed25519, no passphrase).
    pub key: PathBuf,
    /// Plain `ADDRESS ssh-ed25519 KEY` lines, one per node.
    pub known_hosts: PathBuf,
    /// The netctl profile for the lab.
    pub profile: PathBuf,
    /// `--bastion`: the jump host's address (the nodes are reachable only through it).
    pub bastion: Option<Ipv4Addr>,
    /// The namespace the nodes can be reached from (the bastion's), when not the root namespace.
    pub probe_netns: Option<String>,
    /// `--runtime`: the container runtime the nodes run.
    pub runtime: Option<Runtime>,
}

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub address: Ipv4Addr,
    /// netns: the node's sshd (in all the node's namespaces); systemd: the systemd-nspawn process.
    /// None when not running.
    pub pid: Option<u32>,
    /// The PID to enter the node with (`nsenter -t`): netns: sshd; systemd: the container's PID 1.
    pub leader_pid: Option<u32>,
    /// `--runtime containerd`: its PID when running (pod network namespaces are pinned in its
    /// mount namespace: /proc/PID/root/run/netns/...).
    pub runtime_pid: Option<u32>,
    /// `--runtime containerd`: the node's CRI socket, reachable from the host.
    pub cri_socket: Option<PathBuf>,
    /// `--runtime containerd`: its log (info level).
    pub runtime_log: Option<PathBuf>,
}

impl LabInfo {
    pub fn load(name: &str) -> Result<LabInfo, LabError> {
        let state = State::load(name)?;
        Ok(LabInfo::from_state(&state))
    }

    pub fn from_state(state: &State) -> LabInfo {
        let dir = lab_dir(&state.name);
        let nodes = state
            .nodes
            .iter()
            .map(|n| {
                let running = n.process.filter(|p| p.alive());
                let leader_pid = match (state.kind, running) {
                    (Kind::Netns, Some(p)) => Some(p.pid),
                    (Kind::Systemd, Some(p)) => process::container_leader(&p),
                    (_, None) => None,
                };
                let with_runtime = state.runtime.is_some();
                NodeInfo {
                    name: n.name.clone(),
                    address: n.address,
                    pid: running.map(|p| p.pid),
                    leader_pid,
                    runtime_pid: n.runtime.filter(|p| p.alive()).map(|p| p.pid),
                    cri_socket: with_runtime.then(|| runtime::socket(&dir, &n.name)),
                    runtime_log: with_runtime.then(|| runtime::log_path(&dir, &n.name)),
                }
            })
            .collect();
        LabInfo {
            name: state.name.clone(),
            kind: state.kind,
            subnet: state.subnet,
            gateway: state.gateway,
            bridge: state.bridge.clone(),
            nodes,
            key: dir.join("id_ed25519"),
            known_hosts: dir.join("known_hosts"),
            profile: dir.join("profile.yaml"),
            bastion: state.bastion.as_ref().map(|b| b.address),
            probe_netns: state.probe_netns().map(String::from),
            runtime: state.runtime,
            dir,
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
