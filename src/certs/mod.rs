//! Credentials for what netctl runs on nodes: today flanneld as a systemd unit, which verifies
//! the API server with the cluster's CA and authenticates with a client certificate signed by the
//! cluster CA's key the profile names (or a CA netctl generates, only when asked), or with a
//! service-account token. netctl issues each node's certificate, keeps both in a local PKI directory (`store`), and renews a
//! certificate within `RENEW_WITHIN_DAYS` of its expiry. `check` is the pure test `verify` and
//! `init` share; `remote` reads a node's certificates for `verify`.

pub mod check;
pub mod issue;
pub mod remote;
pub mod store;

pub use check::{check, check_ca, CertProblem};
pub use issue::{flanneld_user, NodeCert, FLANNELD_GROUP};
pub use store::{prepare, CertError, Mode, Pki, Secret};

use crate::profile::{Cluster, Node};
use crate::provider::NodePlan;

/// A certificate expiring within this many days is renewed by `init` and fails `verify`.
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// Add the node's certificate files to its plan (flanneld as a systemd unit only). Called by
/// `provider::node_plan` with the cluster's PKI, so every command sees the same files.
pub fn attach(pki: Option<&Pki>, cluster: &Cluster, node: &Node, plan: &mut NodePlan) {
    let Some(pki) = pki else { return };
    if !crate::provider::flannel::runs_as_unit(cluster, node) {
        return;
    }
    plan.files
        .extend(crate::provider::flannel::credential_files(pki, &node.name));
    plan.files.sort_by(|a, b| a.path.cmp(&b.path));
}
