//! `netctl render`: every artifact for every node, and the cluster manifests, written to a
//! directory. Nothing is touched remotely. Certificates are included when the cluster's PKI
//! holds them (`certs::Mode::ReadOnly`), written with their modes (keys 0600).

use std::path::Path;

use crate::profile::Cluster;
use crate::provider::Inputs;
use crate::render::{render_all, write_tree, WriteError};

/// `inputs`: the stored certificates, when at hand; never binaries (their sha256 is enough).
pub fn run(cluster: &Cluster, inputs: &Inputs, out: &Path) -> Result<String, WriteError> {
    let rendered = render_all(cluster, inputs);
    let n = write_tree(cluster, &rendered, out)?;
    Ok(format!(
        "rendered {n} files for {} nodes ({} provider) into {}",
        cluster.nodes.len(),
        cluster.provider(),
        out.display()
    ))
}
