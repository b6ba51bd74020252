//! `netctl render`: every artifact for every node, and the cluster manifests, written to a
//! directory. Nothing is touched remotely. Certificates are included when the cluster's PKI
//! holds them (`certs::Mode::ReadOnly`), written with their modes (keys 0600).

use std::path::Path;

use crate::profile::Cluster;
use crate::render::{render_all, write_tree, WriteError};

pub fn run(cluster: &Cluster, out: &Path) -> Result<String, WriteError> {
    let rendered = render_all(cluster);
    let n = write_tree(cluster, &rendered, out)?;
    Ok(format!(
        "rendered {n} files for {} nodes ({} provider) into {}",
        cluster.nodes.len(),
        cluster.provider(),
        out.display()
    ))
}
