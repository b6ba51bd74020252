//! connect: one SSH session per node, reused by every later phase.
//!
//! This is where a node's `Target` is decided, value by value: what the profile says explicitly wins,
//! then the OpenSSH client config for the node, then netctl's defaults. A `Host` line matches a node when
//! it matches the node's `name` or its `address` (profiles hold IPv4 addresses, so the name is what plays
//! the part of the alias typed on an ssh command line; docs/ssh.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::profile::{expand_home, Cluster, Node};
use crate::remote::{Remote, RemoteError};
use crate::transport::ssh_config::{self, HostOptions, SshConfig, SshConfigError};
use crate::transport::{Bastions, LocalFiles, Target, TransportError};

pub const SSH_CONFIG_ENV: &str = "NETCTL_SSH_CONFIG";
const DEFAULT_KEYS: [&str; 3] = ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"];
const DEFAULT_GLOBAL_KNOWN_HOSTS: [&str; 2] =
    ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// Which ssh config file applies: NETCTL_SSH_CONFIG, the profile's `ssh.config`, or ~/.ssh/config if it
/// exists. `none` means no file.
pub fn config_path(cluster: &Cluster) -> Option<PathBuf> {
    let chosen = std::env::var(SSH_CONFIG_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| cluster.profile.ssh.config.clone());
    match chosen.as_deref() {
        Some("none") => None,
        Some(p) => Some(expand_home(p)),
        None => Some(expand_home("~/.ssh/config")).filter(|p| p.exists()),
    }
}

/// Everything `target` needs besides the profile: the parsed ssh config, the CLI's host-key
/// choice, and the run's shared bastion connections. A run makes one (`Run`), so the config is
/// read once and every node behind a bastion shares one connection to it.
pub struct Context {
    pub config: Arc<SshConfig>,
    pub accept_new_host_keys: bool,
    pub bastions: Arc<Bastions>,
}

pub fn context(cluster: &Cluster, accept_new_host_keys: bool) -> Result<Context, SshConfigError> {
    let config = match config_path(cluster) {
        Some(path) => Arc::new(ssh_config::load(&path)?),
        None => Arc::new(SshConfig::default()),
    };
    Ok(Context {
        config,
        accept_new_host_keys,
        bastions: Arc::default(),
    })
}

/// The agent socket: the config's IdentityAgent (`none` turns it off), else SSH_AUTH_SOCK.
fn agent(o: &HostOptions) -> Option<PathBuf> {
    match o.identity_agent.as_deref() {
        Some("none") => None,
        Some("SSH_AUTH_SOCK") | None => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        Some(path) => Some(
            std::env::var(path.trim_start_matches('$'))
                .ok()
                .filter(|_| path.starts_with('$'))
                .map(PathBuf::from)
                .unwrap_or_else(|| expand_home(path)),
        ),
    }
}

/// The parts of a target the profile, the config and defaults decide for any host (node or bastion).
fn common(
    cluster: &Cluster,
    ctx: &Context,
    o: &HostOptions,
    name: &str,
    host: &str,
    user: &str,
) -> Target {
    let ssh = &cluster.profile.ssh;
    let identity_files = match &ssh.identity_file {
        Some(f) => vec![expand_home(f)],
        None if !o.identity_files.is_empty() => o
            .identity_files
            .iter()
            .map(|f| ssh_config::expand(f, host, user))
            .collect(),
        None => DEFAULT_KEYS.iter().map(|f| expand_home(f)).collect(),
    };
    let known_hosts = match (&ssh.known_hosts, &o.user_known_hosts_file) {
        (Some(f), _) => expand_home(f),
        (None, Some(f)) => ssh_config::expand(f, host, user),
        (None, None) => expand_home("~/.ssh/known_hosts"),
    };
    let global_known_hosts = match &o.global_known_hosts_file {
        Some(f) => vec![ssh_config::expand(f, host, user)],
        None => DEFAULT_GLOBAL_KNOWN_HOSTS
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    Target {
        name: name.to_string(),
        host: host.to_string(),
        user: user.to_string(),
        identity_files,
        agent: agent(o),
        known_hosts,
        global_known_hosts,
        accept_new_host_keys: ctx.accept_new_host_keys || o.accepts_new_keys(),
        connect_timeout: Duration::from_secs(
            ssh.connect_timeout.or(o.connect_timeout).unwrap_or(10),
        ),
        command_timeout: Duration::from_secs(ssh.command_timeout),
        bastions: ctx.bastions.clone(),
        ..Target::default()
    }
}

/// The node's target; an error is a bad bastion / ProxyJump value.
pub fn target(cluster: &Cluster, node: &Node, ctx: &Context) -> Result<Target, String> {
    let ssh = &cluster.profile.ssh;
    let address = node.address.to_string();
    let o = ctx.config.lookup(&[&node.name, &address]);
    let host = o.host_name.clone().unwrap_or(address);
    let user = ssh
        .user
        .clone()
        .or_else(|| o.user.clone())
        .unwrap_or_else(|| "root".into());
    let spec_port = cluster
        .profile
        .nodes
        .iter()
        .find(|n| n.name == node.name)
        .and_then(|n| n.ssh_port);
    let mut t = common(cluster, ctx, &o, &node.name, &host, &user);
    t.port = spec_port.or(ssh.port).or(o.port).unwrap_or(22);
    t.sudo = ssh.sudo;
    let jump = match (&ssh.bastion, &o.proxy_jump) {
        (Some(b), _) => Some(b.as_str()),
        (None, Some(j)) if !j.eq_ignore_ascii_case("none") => Some(j.as_str()),
        _ => None,
    };
    if let Some(spec) = jump {
        t.jump = Some(Box::new(bastion(cluster, ctx, spec)?));
    } else if let Some(cmd) = o
        .proxy_command
        .as_deref()
        .filter(|c| !c.eq_ignore_ascii_case("none"))
    {
        t.proxy_command = Some(ssh_config::expand_command(
            cmd, &t.host, t.port, &t.user, &node.name,
        ));
    }
    Ok(t)
}

/// The bastion's target: `[user@]host[:port]`, then the config for that host, then the profile's user.
fn bastion(cluster: &Cluster, ctx: &Context, spec: &str) -> Result<Target, String> {
    let j = ssh_config::parse_jump(spec).map_err(|e| format!("bastion {e}"))?;
    let o = ctx.config.lookup(&[&j.host]);
    let host = o.host_name.clone().unwrap_or_else(|| j.host.clone());
    let user = j
        .user
        .clone()
        .or_else(|| o.user.clone())
        .or_else(|| cluster.profile.ssh.user.clone())
        .unwrap_or_else(|| "root".into());
    let mut t = common(
        cluster,
        ctx,
        &o,
        &format!("bastion {}", j.host),
        &host,
        &user,
    );
    t.port = j.port.or(o.port).unwrap_or(22);
    Ok(t)
}

/// Bad ssh input: the operator's file or setting is at fault, and it is the same for every node.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Config(#[from] SshConfigError),
    /// A node's ProxyJump, key file or known_hosts file; the message starts with the node.
    #[error(transparent)]
    Node(Box<TransportError>),
}

/// Read everything local that connecting will read, for every node and bastion, before any node
/// is reached: the ssh config and its Includes, each target (ProxyJump), key files and known_hosts
/// files. Connecting would find the same errors node by node, after some nodes had changed; here
/// they stop the run (exit 2) with the file and line to fix.
pub fn preflight(cluster: &Cluster) -> Result<(), InputError> {
    let ctx = context(cluster, false)?;
    let mut files = LocalFiles::default();
    for node in &cluster.nodes {
        let t = target(cluster, node, &ctx).map_err(|message| {
            InputError::Node(Box::new(TransportError::Config {
                node: node.name.clone(),
                message,
            }))
        })?;
        files.check(&t).map_err(|e| InputError::Node(Box::new(e)))?;
    }
    Ok(())
}

/// Connect to `node` with a context of its own (the kubectlOn session, on its own thread).
pub async fn connect(
    cluster: &Cluster,
    node: &Node,
    accept_new_host_keys: bool,
    dry_run: bool,
) -> Result<Remote, RemoteError> {
    let ctx =
        context(cluster, accept_new_host_keys).map_err(|e| config_error(node, e.to_string()))?;
    connect_with(&ctx, cluster, node, dry_run).await
}

pub fn config_error(node: &Node, message: String) -> RemoteError {
    RemoteError::Transport(TransportError::Config {
        node: node.name.clone(),
        message,
    })
}

/// Connect to `node` within a run's context (its ssh config, read once, and its bastions).
pub async fn connect_with(
    ctx: &Context,
    cluster: &Cluster,
    node: &Node,
    dry_run: bool,
) -> Result<Remote, RemoteError> {
    let target = target(cluster, node, ctx).map_err(|m| config_error(node, m))?;
    Ok(Remote::connect(&target, dry_run)
        .await?
        .with_profile(&cluster.source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cluster(ssh: &str) -> Cluster {
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\n\
             kubernetes: {{ version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }}\n\
             networking: {{ provider: routes }}\n{ssh}\n\
             nodes:\n  - {{ name: n1-alias, address: 10.0.0.11 }}\n  - {{ name: w2, address: 10.0.0.12, sshPort: 2202 }}\n"
        );
        crate::profile::load_str(&text, Path::new("t.yaml")).unwrap()
    }

    fn ctx(config: &str) -> Context {
        Context {
            config: Arc::new(ssh_config::parse(config).unwrap()),
            accept_new_host_keys: false,
            bastions: Arc::default(),
        }
    }

    /// Every node behind a bastion shares the run's one connection to it: the targets one context
    /// builds (nodes and their bastions) share its pool, and another run's context has its own.
    #[test]
    fn targets_of_one_run_share_its_bastions() {
        let c = cluster("");
        let run = ctx(CONFIG);
        let a = target(&c, &c.nodes[0], &run).unwrap();
        let b = target(&c, &c.nodes[1], &run).unwrap();
        assert!(Arc::ptr_eq(&a.bastions, &run.bastions));
        assert!(Arc::ptr_eq(&b.bastions, &run.bastions));
        assert!(Arc::ptr_eq(&a.jump.unwrap().bastions, &run.bastions));
        let other = target(&c, &c.nodes[0], &ctx(CONFIG)).unwrap();
        assert!(!Arc::ptr_eq(&other.bastions, &run.bastions));
    }

    const CONFIG: &str = "Host n1-alias\n  HostName 192.168.9.9\n  User ops\n  Port 2222\n  \
        IdentityFile /keys/ops\n  UserKnownHostsFile /kh/ops\n  ProxyJump jump@gw:2200\n  \
        StrictHostKeyChecking accept-new\n  ConnectTimeout 3\n\
        Host gw\n  IdentityFile /keys/gw\n";

    #[test]
    fn config_fills_what_the_profile_leaves_out() {
        let c = cluster("");
        let t = target(&c, &c.nodes[0], &ctx(CONFIG)).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("192.168.9.9", 2222, "ops")
        );
        assert_eq!(t.identity_files, vec![PathBuf::from("/keys/ops")]);
        assert_eq!(t.known_hosts, PathBuf::from("/kh/ops"));
        assert!(t.accept_new_host_keys);
        assert_eq!(t.connect_timeout, Duration::from_secs(3));
        let b = t.jump.expect("ProxyJump");
        assert_eq!(
            (b.host.as_str(), b.port, b.user.as_str()),
            ("gw", 2200, "jump")
        );
        assert_eq!(b.identity_files, vec![PathBuf::from("/keys/gw")]);
        // The node's known hosts are the default ones when the config names none for the bastion.
        assert!(b.known_hosts.ends_with(".ssh/known_hosts"));
        assert!(!b.accept_new_host_keys);
    }

    #[test]
    fn explicit_profile_values_win() {
        let c = cluster(
            "ssh: { user: admin, port: 22, identityFile: /keys/admin, knownHosts: /kh/admin, \
             bastion: 10.0.0.5, connectTimeout: 9, sudo: true }",
        );
        let t = target(&c, &c.nodes[0], &ctx(CONFIG)).unwrap();
        assert_eq!(
            (t.port, t.user.as_str()),
            (22, "admin"),
            "profile beats config"
        );
        assert_eq!(t.host, "192.168.9.9", "HostName has no profile counterpart");
        assert_eq!(t.identity_files, vec![PathBuf::from("/keys/admin")]);
        assert_eq!(t.known_hosts, PathBuf::from("/kh/admin"));
        assert_eq!(t.connect_timeout, Duration::from_secs(9));
        assert!(t.sudo);
        let b = t.jump.unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.user.as_str()),
            ("10.0.0.5", 22, "admin")
        );
        // A node's own sshPort beats everything.
        let t2 = target(&c, &c.nodes[1], &ctx(CONFIG)).unwrap();
        assert_eq!(t2.port, 2202);
    }

    #[test]
    fn defaults_without_config() {
        let c = cluster("");
        let t = target(&c, &c.nodes[1], &ctx("")).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("10.0.0.12", 2202, "root")
        );
        assert_eq!(t.identity_files.len(), 3);
        assert!(t.identity_files[0].ends_with(".ssh/id_ed25519"));
        assert_eq!(
            t.global_known_hosts[0],
            PathBuf::from("/etc/ssh/ssh_known_hosts")
        );
        assert!(t.jump.is_none());
        let t = target(&c, &c.nodes[0], &ctx("Host *\n ProxyJump none\n")).unwrap();
        assert!(t.jump.is_none());
        assert!(target(&c, &c.nodes[0], &ctx("Host *\n ProxyJump a,b\n")).is_err());
    }
}
