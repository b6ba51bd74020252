//! One run of a command: the cluster, the run id, the operator's ssh choices and how nodes and
//! the cluster API are reached - made once in main.rs and borrowed by the command, its phases and
//! its fleet. In unit tests the same run reaches fake nodes and a fake kubectl (`Run::fake`).

use std::sync::Arc;

use crate::kubectl::{Kubectl, KubectlError};
use crate::printer::Progress;
use crate::profile::{Cluster, Node};
use crate::provider::Inputs;
use crate::remote::{Remote, RemoteError};

#[derive(Clone)]
pub struct Run {
    pub cluster: Arc<Cluster>,
    /// The run's certificates and binaries: every node plan of the run is built with them.
    pub inputs: Arc<Inputs>,
    /// Names this run's locks, backups, transactions and test pods.
    pub id: String,
    /// Nodes worked on at once (the profile's ssh.concurrency unless the flag says otherwise).
    pub concurrency: usize,
    pub dry_run: bool,
    pub accept_new_host_keys: bool,
    pub quiet: bool,
    pub progress: Progress,
    reach: Reach,
}

/// How nodes and the cluster API are reached.
#[derive(Clone)]
enum Reach {
    Real,
    #[cfg(test)]
    Fake {
        net: crate::remote::fake::Net,
        kubectl: Option<Arc<crate::kubectl::fake::Fake>>,
    },
}

impl Run {
    pub fn new(
        cluster: Arc<Cluster>,
        inputs: Arc<Inputs>,
        concurrency: Option<usize>,
        dry_run: bool,
        accept_new_host_keys: bool,
        quiet: bool,
    ) -> Run {
        Run {
            concurrency: concurrency.unwrap_or(cluster.profile.ssh.concurrency),
            cluster,
            inputs,
            id: crate::phase::new_run_id(),
            dry_run,
            accept_new_host_keys,
            quiet,
            progress: Progress::new(quiet),
            reach: Reach::Real,
        }
    }

    /// A run whose nodes are `net`'s fakes and whose kubectl is `kubectl` (none: not on PATH).
    #[cfg(test)]
    pub fn fake(
        cluster: Arc<Cluster>,
        net: crate::remote::fake::Net,
        kubectl: Option<Arc<crate::kubectl::fake::Fake>>,
    ) -> Run {
        Run {
            reach: Reach::Fake { net, kubectl },
            ..Run::new(cluster, Arc::default(), None, false, false, true)
        }
    }

    /// Open a session to `node` (with the profile's ssh settings, bastions and host-key policy).
    pub async fn connect(&self, node: &Node) -> Result<Remote, RemoteError> {
        match &self.reach {
            Reach::Real => {
                crate::phase::connect::connect(
                    &self.cluster,
                    node,
                    self.accept_new_host_keys,
                    self.dry_run,
                )
                .await
            }
            #[cfg(test)]
            Reach::Fake { net, .. } => Ok(Remote::fake(net.node(&node.name), self.dry_run)),
        }
    }

    /// kubectl for `step` (named in the error when it cannot be found).
    pub fn kubectl(&self, step: &str) -> Result<Kubectl, KubectlError> {
        match &self.reach {
            Reach::Real => Kubectl::find(&self.cluster, step, self.accept_new_host_keys),
            #[cfg(test)]
            Reach::Fake { kubectl, .. } => match kubectl {
                Some(k) => Ok(Kubectl::fake(k.clone())),
                None => Err(KubectlError::Missing { step: step.into() }),
            },
        }
    }
}
