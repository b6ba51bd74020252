//! connect: one SSH session per node, reused by every later phase.

use std::time::Duration;

use crate::profile::{expand_home, Cluster, Node};
use crate::remote::{Remote, RemoteError};
use crate::transport::Target;

pub fn target(cluster: &Cluster, node: &Node, accept_new_host_keys: bool) -> Target {
    let ssh = &cluster.profile.ssh;
    Target {
        name: node.name.clone(),
        host: node.address.to_string(),
        port: node.ssh_port,
        user: ssh.user.clone(),
        identity_file: expand_home(&ssh.identity_file),
        known_hosts: expand_home(&ssh.known_hosts),
        accept_new_host_keys,
        connect_timeout: Duration::from_secs(ssh.connect_timeout),
        command_timeout: Duration::from_secs(ssh.command_timeout),
    }
}

pub async fn connect(
    cluster: &Cluster,
    node: &Node,
    accept_new_host_keys: bool,
    dry_run: bool,
) -> Result<Remote, RemoteError> {
    Remote::connect(&target(cluster, node, accept_new_host_keys), dry_run).await
}
