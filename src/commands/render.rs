//! `netctl render`: every artifact for every node, and the cluster manifests, written to a
//! directory node by node. Nothing is touched remotely. Certificates are included when the
//! cluster's PKI holds them (`certs::Mode::ReadOnly`), written with their modes (keys 0600).

use std::path::Path;

use crate::profile::Cluster;
use crate::provider::Inputs;
use crate::render::{write_tree, WriteError};

/// `inputs`: the stored certificates, when at hand; never binaries (their sha256 is enough).
pub fn run(cluster: &Cluster, inputs: &Inputs, out: &Path) -> Result<String, WriteError> {
    let n = write_tree(cluster, inputs, out)?;
    Ok(format!(
        "rendered {n} files for {} nodes ({} provider) into {}",
        cluster.nodes.len(),
        cluster.provider(),
        out.display()
    ))
}
