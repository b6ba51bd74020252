//! Credentials for what netctl runs on nodes: today flanneld as a systemd unit, which verifies
//! the API server with the cluster's CA and authenticates with a client certificate signed by the
//! cluster CA's key the profile names (or a CA netctl generates, only when asked), or with a
//! service-account token. netctl issues each node's certificate, keeps both in a local PKI directory (`store`), and renews a
//! certificate within `RENEW_WITHIN_DAYS` of its expiry. `check` is the pure test `verify` and
//! `init` share (verify/certs.rs reads a node's certificates for it). Which files a node gets is
//! the flannel provider's (`provider::flannel::attach`), from the PKI a run prepares here.

pub mod check;
pub mod issue;
pub mod store;

pub use check::{check, check_ca, CertProblem};
pub use issue::{flanneld_user, NodeCert, FLANNELD_GROUP};
pub use store::{prepare, CertError, Mode, Pki, Secret};

pub use crate::profile::RENEW_WITHIN_DAYS;
