//! The command line (clap only): flags and help text. Each command calls the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "netctl",
    version,
    // `netctl <command> --version` is netctl's version too (`profile new` once took it for
    // Kubernetes': that is `--kubernetes-version`).
    propagate_version = true,
    about = "Provision Kubernetes pod networking from a cluster profile, over SSH"
)]
pub struct Cli {
    /// Print less: no progress lines.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// For programs (docs/output.md).
    Json,
}

/// A flag's known values, for help and shell completion; any value is still taken here, as the
/// command checks it with the rest (the wizard lists every bad value at once).
#[derive(Clone)]
struct Known(Vec<&'static str>);

impl clap::builder::TypedValueParser for Known {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.0
                .iter()
                .copied()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

fn providers() -> Known {
    Known(
        netctl::profile::ProviderKind::ALL
            .map(|p| p.as_str())
            .to_vec(),
    )
}

/// Every provider's backends (as `of` gives them), each once.
fn backends(of: impl Fn(netctl::profile::ProviderKind) -> Vec<&'static str>) -> Known {
    let mut all: Vec<&'static str> = Vec::new();
    for p in netctl::profile::ProviderKind::ALL {
        for b in of(p) {
            if !all.contains(&b) {
                all.push(b);
            }
        }
    }
    Known(all)
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum VerifyFormat {
    /// A summary per check, then the failures.
    Text,
    /// Every check of every subject, one row each.
    Wide,
    /// For programs (schema in docs/verify.md).
    Json,
    /// JUnit XML for CI test reports.
    Junit,
}

#[derive(Subcommand)]
pub enum Command {
    /// Profile commands: check a profile, or write a new one.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Write every artifact for every node (and the cluster manifests) to a directory; nothing is touched remotely.
    Render {
        /// The cluster profile (YAML).
        #[arg(short, long)]
        profile: PathBuf,
        /// The output directory (an earlier render there is replaced; any other directory is refused).
        #[arg(long)]
        out: PathBuf,
    },
    /// Connect, read each node's state, and print what init would change (diffs, commands, restarts).
    Plan {
        #[command(flatten)]
        connect: Connect,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Render, push and apply the profile to every node, restarting only what changed. Idempotent.
    Init {
        #[command(flatten)]
        connect: Connect,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Connect and read only; print what would change.
        #[arg(long)]
        dry_run: bool,
        /// Do not run the node and data-plane checks (`netctl verify`) after applying.
        #[arg(long)]
        no_verify: bool,
        /// Apply a profile whose provider or backend differs from what the nodes record, all
        /// nodes at once, without switch's waves, gates and rollback (`netctl switch` is the
        /// guarded way).
        #[arg(long)]
        allow_provider_change: bool,
        /// Do not run preflight (`netctl preflight`) before changing anything; the report says so.
        #[arg(long)]
        skip_preflight: bool,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Check, changing nothing, everything the profile's network (or --networking's) needs: on
    /// every node (interface, kernel modules, rp_filter, sysctls, conntrack, clock, CNI plugins,
    /// the API server) and between node pairs with real packets (its ports and protocols, the
    /// path MTU, one layer-2 segment for host-gw). init and switch run it first. Exit 1 when a
    /// check fails.
    Preflight {
        #[command(flatten)]
        nodes: Nodes,
        /// Check for this network instead of the profile's: routes, kubenet, flannel, calico,
        /// canal, weave, or PROVIDER:BACKEND.
        #[arg(long)]
        networking: Option<netctl::network::Network>,
        /// The backend of --networking (routes: host-gw, vxlan; flannel: host-gw, vxlan, wireguard).
        #[arg(long, requires = "networking", value_parser = backends(netctl::network::backends))]
        backend: Option<String>,
        /// Report format: text for people (wide: every row), json or junit for machines (docs/preflight.md).
        #[arg(long, value_enum, default_value = "text")]
        output: VerifyFormat,
        /// List the skipped checks in the text report, one line per reason.
        #[arg(long)]
        show_skips: bool,
    },
    /// Check the cluster's network: node checks over SSH, cluster checks through kubectl, and a
    /// data-plane test with real test pods on every worker. Exit 1 when a check fails.
    Verify {
        #[command(flatten)]
        nodes: Nodes,
        /// Report format: text for people (wide: every row), json or junit for machines (docs/verify.md).
        #[arg(long, value_enum, default_value = "text")]
        output: VerifyFormat,
        /// List the skipped checks in the text report, one line per reason.
        #[arg(long)]
        show_skips: bool,
        /// Also run the Kubernetes smoke test (nginx pods, a service, DNS) through kubectl.
        #[arg(long)]
        smoke: bool,
        /// Which node pairs the data plane pings: auto (full up to 32 nodes, strided above), full
        /// (every pair), ring (each node its successor) or strided (each node the nodes 1, 2, 4 ...
        /// places after it). The report names the mesh used.
        #[arg(long, value_enum, default_value = "auto")]
        mesh: netctl::verify::Mesh,
        /// Skip the data-plane checks (no test pods).
        #[arg(long)]
        no_dataplane: bool,
    },
    /// Remove what netctl installed on every node, restoring the files it replaced.
    Reset {
        #[command(flatten)]
        connect: Connect,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Clear the node locks a killed or cut-off run left (only that run's, once it is gone).
    Unlock {
        #[command(flatten)]
        connect: Connect,
        /// The run whose locks to clear, as a refusal names it (e.g. 20261129T231500Z-1a2b).
        #[arg(long = "run", value_name = "RUN_ID")]
        run: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Move a live cluster to the network its profile names (or to --networking), node by node,
    /// with verify gates and rollback.
    Switch {
        #[command(flatten)]
        nodes: Nodes,
        /// A one-off target instead of the profile's network: routes, kubenet, flannel, calico,
        /// canal, weave. When the switch succeeds, the profile file is rewritten to name it.
        #[arg(long)]
        networking: Option<netctl::network::Network>,
        /// The new provider's backend (routes: host-gw, vxlan; flannel: host-gw, vxlan, wireguard).
        #[arg(long, value_parser = backends(netctl::network::backends))]
        backend: Option<String>,
        /// What the nodes run now, PROVIDER[:BACKEND], when their records do not say.
        #[arg(long)]
        from: Option<netctl::network::Network>,
        /// Nodes switched at once.
        #[arg(long, default_value_t = 1)]
        max_unavailable: usize,
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long, short)]
        yes: bool,
        /// Show the migration plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Continue an interrupted switch from where it stopped.
        #[arg(long, conflicts_with = "rollback")]
        resume: bool,
        /// Undo an interrupted switch.
        #[arg(long)]
        rollback: bool,
        /// On failure, stop in place instead of rolling back.
        #[arg(long)]
        no_rollback: bool,
        /// How long a node that stops answering mid-switch (a reboot, a dropped connection) is
        /// waited for before it is reported and left for `switch --rollback` or `--resume`.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        wait_for_node: u64,
        /// Do not run preflight for the target network before changing anything.
        #[arg(long)]
        skip_preflight: bool,
        /// Report format: text for people, json for machines.
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Print a shell completion script (e.g. `netctl completions bash > /etc/bash_completion.d/netctl`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (netctl.1, netctl-init.1, ...) into DIR, e.g.
    /// /usr/local/share/man/man1; without DIR, print netctl.1.
    Man {
        /// An existing directory to write one page per command into.
        dir: Option<PathBuf>,
    },
    /// The local lab: real sshd (and systemd) nodes on this machine (needs root).
    Lab {
        #[command(subcommand)]
        command: netctl::lab::LabCommand,
    },
}

/// The profile and the flags of every command that connects to nodes (declared once).
#[derive(clap::Args, Clone)]
pub struct Nodes {
    /// The cluster profile (YAML).
    #[arg(short, long)]
    pub profile: PathBuf,
    /// Trust host keys not yet in known_hosts and record them (trust on first use). A changed key is always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// How many nodes to work on at once, 1-1024 (default: the profile's ssh.concurrency; a
    /// switch's waves are --max-unavailable).
    #[arg(long, value_parser = concurrency_range())]
    pub concurrency: Option<usize>,
}

/// How a plan (`plan`, `init --dry-run`) is shown and what its exit code says.
#[derive(clap::Args, Clone, Default)]
pub struct PlanArgs {
    /// Diffs: `summary` shows short diffs whole and summarises long ones (generated scripts and
    /// tables) and repeats across nodes; `full` shows every line.
    #[arg(long, value_enum, default_value = "summary")]
    pub diff: netctl::commands::apply::DiffMode,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on an error (as Terraform).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// `Nodes` and a text or JSON report.
#[derive(clap::Args, Clone)]
pub struct Connect {
    #[command(flatten)]
    pub nodes: Nodes,
    /// Report format: text for people, json for machines.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Format,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Parse and validate a profile and print its CIDR plan; exit 2 on any error.
    Check {
        /// The cluster profile (YAML).
        #[arg(short, long)]
        profile: PathBuf,
        /// Report format: text for people, json for machines.
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Write a new profile: asks on a terminal for what the flags leave open; without a terminal,
    /// lists every missing answer (exit 2).
    New(Box<NewArgs>),
    /// Print the profile's JSON Schema (draft 7) for editors' YAML language servers
    /// (docs/profile.md); the repository publishes it as schema/profile.schema.json.
    Schema,
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The cluster's name (a DNS label).
    #[arg(long)]
    pub name: Option<String>,
    /// Kubernetes version, e.g. 1.30.
    #[arg(long)]
    pub kubernetes_version: Option<String>,
    /// The pod network [default: 10.200.0.0/16].
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// Service cluster IPs [default: 10.32.0.0/24].
    #[arg(long)]
    pub service_cidr: Option<String>,
    /// routes, kubenet, flannel, calico, canal or weave.
    #[arg(long, value_parser = providers())]
    pub provider: Option<String>,
    /// routes: host-gw or vxlan; flannel: vxlan, host-gw or wireguard.
    #[arg(long, value_parser = backends(|p| netctl::provider::wizard_backends(p).to_vec()))]
    pub backend: Option<String>,
    /// A node: name=N,address=A[,roles=worker|controller|controller,worker]. Repeatable.
    /// Checked with the other values, so every bad one is listed at once.
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// A file of nodes, one per line: `name address [roles]`.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// SSH login user [default: root].
    #[arg(long)]
    pub ssh_user: Option<String>,
    /// SSH private key [default: ~/.ssh/id_ed25519].
    #[arg(long)]
    pub identity_file: Option<String>,
    /// Where to write the profile [default: <name>.yaml].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `--concurrency` takes the range `ssh.concurrency` does, so neither can reach the panic in
/// tokio's semaphore.
fn concurrency_range() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new()
        .range(1..=netctl::profile::validate::MAX_CONCURRENCY as u64)
}
