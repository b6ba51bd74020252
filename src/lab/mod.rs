//! The local lab: real sshd (and systemd) nodes on one machine, for trying and testing netctl
//! without VMs or a cloud. See docs/lab.md. This module is the CLI surface and dispatch; the
//! work is in `lifecycle` (up/down/restart/status/exec) and the modules it composes.

mod bridge;
mod cmd;
mod error;
mod keys;
mod lifecycle;
mod netns;
mod nspawn;
mod preflight;
mod probe;
pub mod process;
mod profile;
mod rootfs;
pub mod runtime;
mod sandbox_image;
mod state;
mod user;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

pub use error::LabError;
pub use runtime::Runtime;
pub use sandbox_image::NAME as SANDBOX_IMAGE;
pub use state::{LabInfo, NodeInfo};

/// What a lab node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// systemd-nspawn container booted with real systemd and sshd.
    Systemd,
    /// A network namespace with a private mount namespace and its own sshd (fast, up to 400 nodes).
    Netns,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Systemd => "systemd",
            Kind::Netns => "netns",
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build a lab: a bridge, N nodes with sshd, a lab key, known_hosts and a profile
    /// (its path is the last line of output).
    Up {
        /// Lab name: a DNS label of at most 8 characters (link names derive from it).
        #[arg(long, default_value = "lab")]
        name: String,
        /// Number of nodes (netns: up to 400; systemd: up to 50).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, value_enum, default_value_t = Kind::Systemd)]
        kind: Kind,
        /// The lab network: the bridge takes its first host, node-i its (10+i)th host. Default
        /// 10.240.0.0/24, or for more than 244 nodes the smallest 10.160.0.0/N that holds them.
        #[arg(long)]
        subnet: Option<Ipv4Network>,
        /// Put the nodes behind a jump host: `bastion` (the subnet's .5) is the only node the host can
        /// reach; the nodes are on an internal bridge, reachable only through its sshd (no forwarding).
        #[arg(long)]
        bastion: bool,
        /// Log in as this new non-root user with sudo (password required) instead of root: made in each
        /// systemd node's root, or on the host for netns nodes and the bastion (removed by `lab down`).
        #[arg(long, requires = "sudo_password")]
        user: Option<String>,
        /// The --user's password (for sudo; SSH logins use the lab key).
        #[arg(long, requires = "user")]
        sudo_password: Option<String>,
        /// Run a container runtime on every node (netns nodes only): containerd with runc, its
        /// CRI socket under the node's directory, a locally made sandbox image (never pulled).
        #[arg(long, value_enum)]
        runtime: Option<Runtime>,
    },
    /// Remove everything the lab made (processes, namespaces, links, mounts, files). Idempotent.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// List nodes, addresses and whether each sshd answers (exit 1 if one does not).
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Run a command inside a node's namespaces; its exit code is passed through.
    Exec {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Node name (node-1, ...).
        node: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Restart the container runtime of the named nodes (all when none is named), as
    /// `systemctl restart containerd` would: netns nodes have no init system to do it.
    RestartRuntime {
        #[arg(long, default_value = "lab")]
        name: String,
        nodes: Vec<String>,
    },
    /// Reboot one node (its disk is kept) and wait until its sshd answers again.
    Restart {
        #[arg(long, default_value = "lab")]
        name: String,
        node: String,
    },
    /// Internal: the first process of a netns node (mounts its directories, then runs sshd).
    #[command(hide = true)]
    NodeInit {
        #[arg(long)]
        node_dir: PathBuf,
        #[arg(long)]
        hostname: String,
    },
    /// Internal: a node's containerd (covers the host's directories with the node's, then runs it).
    #[command(hide = true)]
    RuntimeInit {
        #[arg(long)]
        node_dir: PathBuf,
    },
}

/// Run a lab command; Ok(exit code) (exec passes its command's code through).
pub fn run(cmd: LabCommand) -> Result<i32, LabError> {
    match cmd {
        LabCommand::Up {
            name,
            nodes,
            kind,
            subnet,
            bastion,
            user,
            sudo_password,
            runtime,
        } => lifecycle::up(
            &name,
            nodes,
            kind,
            subnet.unwrap_or_else(|| default_subnet(nodes)),
            &lifecycle::Extras {
                bastion,
                user: user.zip(sudo_password),
                runtime,
            },
        ),
        LabCommand::Down { name } => lifecycle::down(&name),
        LabCommand::Status { name } => lifecycle::status(&name),
        LabCommand::Exec {
            name,
            node,
            command,
        } => lifecycle::exec(&name, &node, &command),
        LabCommand::Restart { name, node } => lifecycle::restart(&name, &node),
        LabCommand::RestartRuntime { name, nodes } => lifecycle::restart_runtime(&name, &nodes),
        LabCommand::RuntimeInit { node_dir } => {
            runtime::runtime_init(&node_dir).map(|never| match never {})
        }
        LabCommand::NodeInit { node_dir, hostname } => {
            netns::node_init(&node_dir, &hostname).map(|never| match never {})
        }
    }
}

/// Where all labs live: `NETCTL_LAB_ROOT`, default /var/lib/netctl-lab. Deliberately not under
/// /var/lib/netctl or /root, which netns nodes cover with their own directories.
pub fn labs_root() -> PathBuf {
    std::env::var_os("NETCTL_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/netctl-lab"))
}

/// A lab's directory: its state, keys, profile and node disks.
pub fn lab_dir(name: &str) -> PathBuf {
    labs_root().join(name)
}

/// A running lab's nodes, keys and profile (see `LabInfo`).
pub fn load(name: &str) -> Result<LabInfo, LabError> {
    LabInfo::load(name)
}

/// Lab names become link names (`nl-NAME-100`, 15 characters at most): a DNS label of 1-8.
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 8
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LabError::BadInput(format!(
            "invalid lab name {name:?}: use 1-8 characters a-z, 0-9 and '-', starting with a letter \
             and not ending with '-' (link names are derived from it)"
        )))
    }
}

/// The default lab network: 10.240.0.0/24 while the nodes fit (hosts .11 to .254: 244 nodes), so
/// small labs keep the addresses every test and document uses. Bigger labs take the smallest
/// 10.160.0.0/N that holds them: tests give their labs 10.240.X.0/24 and 10.243.X.0/24, so a
/// big lab in 10.160/16 can never take a small lab's addresses.
pub fn default_subnet(nodes: usize) -> Ipv4Network {
    const SMALL: &str = "10.240.0.0/24";
    const BIG: [u8; 4] = [10, 160, 0, 0];
    // The gateway (.1), hosts up to node-n's (10+n) and the broadcast address above them.
    let hosts = nodes as u64 + 12;
    if hosts <= 256 {
        return SMALL.parse().expect("constant CIDR");
    }
    let prefix = (16..24)
        .rev()
        .find(|p| 1u64 << (32 - p) >= hosts)
        .unwrap_or(16);
    Ipv4Network::new(Ipv4Addr::from(BIG), prefix).expect("prefix 16 to 23")
}

/// The bridge's address: the subnet's first host.
pub fn gateway(subnet: Ipv4Network) -> Ipv4Addr {
    host(subnet, 1)
}

/// The bastion's address on the lab bridge: the subnet's 5th host.
pub fn bastion_address(subnet: Ipv4Network) -> Ipv4Addr {
    host(subnet, 5)
}

/// The bastion's address on the internal bridge, next to the nodes: the 4th host.
pub fn bastion_inner_address(subnet: Ipv4Network) -> Ipv4Addr {
    host(subnet, 4)
}

/// node-i's address: the subnet's (10+i)th host (node-1 = .11 in a /24).
pub fn node_address(subnet: Ipv4Network, i: usize) -> Ipv4Addr {
    host(subnet, 10 + i as u32)
}

fn host(subnet: Ipv4Network, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_links() {
        for ok in ["lab", "a", "abcdefgh", "t-1"] {
            validate_name(ok).unwrap();
            assert!(format!("nl-{ok}-100").len() <= 15);
            assert!(format!("nl-{ok}-br").len() <= 15);
        }
        for bad in ["", "abcdefghi", "Lab", "1ab", "ab-", "a_b", "a.b", "a b"] {
            assert_eq!(validate_name(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        let s: Ipv4Network = "10.240.0.0/24".parse().unwrap();
        assert_eq!(gateway(s), Ipv4Addr::new(10, 240, 0, 1));
        assert_eq!(node_address(s, 1), Ipv4Addr::new(10, 240, 0, 11));
        assert_eq!(node_address(s, 100), Ipv4Addr::new(10, 240, 0, 110));
        // A big lab's nodes run on past the first /24.
        let s: Ipv4Network = "10.160.0.0/23".parse().unwrap();
        assert_eq!(node_address(s, 245), Ipv4Addr::new(10, 160, 0, 255));
        assert_eq!(node_address(s, 250), Ipv4Addr::new(10, 160, 1, 4));
    }

    #[test]
    fn the_default_subnet_grows_only_when_the_nodes_do_not_fit() {
        for (nodes, want) in [
            (1, "10.240.0.0/24"),
            (100, "10.240.0.0/24"),
            (244, "10.240.0.0/24"),
            (245, "10.160.0.0/23"),
            (250, "10.160.0.0/23"),
            (500, "10.160.0.0/23"),
            (501, "10.160.0.0/22"),
            (60_000, "10.160.0.0/16"),
        ] {
            assert_eq!(default_subnet(nodes).to_string(), want, "{nodes} nodes");
        }
        // node-n and the broadcast address above it both fit.
        for nodes in [244, 245, 500, 1012] {
            let s = default_subnet(nodes);
            assert!(
                node_address(s, nodes) < s.broadcast(),
                "{nodes} nodes in {s}"
            );
        }
    }
}
