//! The netctl profile written for a lab, so `netctl init --profile <labdir>/profile.yaml` works
//! against it unchanged. Checked with the real profile loader before `lab up` reports success.

use std::path::Path;

use super::state::State;
use super::{Kind, LabError};

/// Pod and service networks of every lab: each lab is isolated, so they need not differ.
pub const CLUSTER_CIDR: &str = "10.200.0.0/16";
pub const SERVICE_CIDR: &str = "10.32.0.0/24";

pub fn render(state: &State, dir: &Path, cni_dir: &Path) -> String {
    let init = match state.kind {
        Kind::Systemd => "systemd",
        Kind::Netns => "none",
    };
    let mut s = format!(
        "# Written by `netctl lab up` for the lab {name:?}; removed by `netctl lab down`.\n\
         apiVersion: netctl/v1\n\
         kind: ClusterProfile\n\
         name: {name}\n\
         kubernetes:\n  \
           version: \"1.30\"\n  \
           clusterCIDR: {CLUSTER_CIDR}\n  \
           serviceCIDR: {SERVICE_CIDR}\n  \
           {mask}\
           manageUnits: false   # the lab has no kubelet/containerd binaries\n\
         networking:\n  \
           provider: routes\n  \
           cniBinDir: {cni}\n  \
           routes: {{ backend: host-gw }}\n\
         ssh: {{ user: {user}, port: 22, identityFile: {key}, knownHosts: {kh}{extra} }}\n\
         nodes:\n",
        name = state.name,
        cni = cni_dir.display(),
        key = dir.join("id_ed25519").display(),
        kh = dir.join("known_hosts").display(),
        user = state.user.as_deref().unwrap_or("root"),
        extra = extra_ssh(state),
        mask = node_mask(state.nodes.len()),
    );
    for n in &state.nodes {
        s.push_str(&format!(
            "  - {{ name: {}, address: {}, roles: [worker], init: {init} }}\n",
            n.name, n.address
        ));
    }
    s
}

/// The clusterCIDR (a /16) holds 256 podCIDRs of the default /24: a bigger lab takes smaller
/// ones, the largest that still give every node its own. Small labs' profiles stay as they were.
fn node_mask(nodes: usize) -> String {
    let cluster_prefix = 16;
    match (24u32..=28).find(|m| nodes <= 1 << (m - cluster_prefix)) {
        Some(24) | None => String::new(),
        Some(m) => format!("nodeCIDRMaskSize: {m}\n  "),
    }
}

/// `sudo` for a `--user` lab; the bastion (logged into as the same user) for a `--bastion` lab.
fn extra_ssh(state: &State) -> String {
    let mut s = String::new();
    if state.user.is_some() {
        s.push_str(", sudo: true");
    }
    if let Some(b) = &state.bastion {
        s.push_str(&format!(", bastion: {}", b.address));
    }
    s
}

/// Write the profile and load it back with `netctl::profile::load`: a lab whose profile netctl
/// would reject is a bug, reported here rather than at the user's first `init`.
pub fn write(state: &State, dir: &Path, cni_dir: &Path) -> Result<(), LabError> {
    let path = dir.join("profile.yaml");
    std::fs::write(&path, render(state, dir, cni_dir))
        .map_err(|e| LabError::io("cannot write", &path, e))?;
    crate::profile::load(&path)
        .map(|_| ())
        .map_err(|e| LabError::Failed(format!("the generated lab profile does not load: {e}")))
}

#[cfg(test)]
mod tests {
    use super::node_mask;

    #[test]
    fn podcidrs_shrink_only_past_256_nodes() {
        assert_eq!(node_mask(1), "");
        assert_eq!(node_mask(256), "");
        assert_eq!(node_mask(257), "nodeCIDRMaskSize: 25\n  ");
        assert_eq!(node_mask(500), "nodeCIDRMaskSize: 25\n  ");
        assert_eq!(node_mask(513), "nodeCIDRMaskSize: 26\n  ");
    }
}
