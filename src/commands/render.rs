//! `netctl render`: every artifact for every node, and the cluster manifests, written to a
//! directory. Nothing is touched remotely.

use std::path::Path;

use crate::certs::Pki;
use crate::profile::Cluster;
use crate::render::{render_all, write_tree, WriteError};

/// `pki`: the stored certificates (`certs::Mode::ReadOnly`), written with their modes (keys 0600).
pub fn run(cluster: &Cluster, out: &Path, pki: Option<&Pki>) -> Result<String, WriteError> {
    let mut rendered = render_all(cluster);
    for n in &cluster.nodes {
        if let Some(plan) = rendered.nodes.get_mut(&n.name) {
            crate::certs::attach(pki, cluster, n, plan);
        }
    }
    let n = write_tree(cluster, &rendered, out)?;
    Ok(format!(
        "rendered {n} files for {} nodes ({} provider) into {}",
        cluster.nodes.len(),
        cluster.provider(),
        out.display()
    ))
}
