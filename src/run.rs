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
    /// The ssh config (read once) and the run's bastion connections; the error, if the config
    /// cannot be read, is each node's.
    ssh: Result<Arc<crate::phase::connect::Context>, String>,
    /// What preparing the certificates issued or found missing, for the operator.
    pub notes: Vec<String>,
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
        let ssh = crate::phase::connect::context(&cluster, accept_new_host_keys)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        Run {
            ssh,
            concurrency: concurrency.unwrap_or(cluster.profile.ssh.concurrency),
            cluster,
            inputs,
            id: crate::phase::new_run_id(),
            dry_run,
            accept_new_host_keys,
            quiet,
            progress: Progress::new(quiet),
            notes: vec![],
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

    /// The same run under another id: a `switch --resume` or `--rollback` continues the switch
    /// it takes over under that switch's id, so the nodes' locks and records name one run and
    /// a killed continuation can itself be taken over.
    pub fn with_id(&self, id: &str) -> Run {
        Run {
            id: id.to_string(),
            ..self.clone()
        }
    }

    /// Open a session to `node` (with the profile's ssh settings, bastions and host-key policy).
    pub async fn connect(&self, node: &Node) -> Result<Remote, RemoteError> {
        match &self.reach {
            Reach::Real => {
                let ctx = self
                    .ssh
                    .as_ref()
                    .map_err(|e| crate::phase::connect::config_error(node, e.clone()))?;
                crate::phase::connect::connect_with(ctx, &self.cluster, node, self.dry_run).await
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

/// What of the run's certificates and binaries a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifacts {
    /// Nothing (reset, unlock).
    None,
    /// The stored certificates, nothing issued: node plans (and verify's drift check) include them.
    Stored,
    /// What is missing or due issued - in memory only on a dry run, so `plan` writes nothing
    /// locally either - and the binaries nodes get, read and checked against their sha256 (init,
    /// plan, switch).
    Issue,
}

/// The operator's flags every command that reaches nodes shares.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub concurrency: Option<usize>,
    pub accept_new_host_keys: bool,
    pub dry_run: bool,
    pub quiet: bool,
}

impl Run {
    /// The run for `cluster`, read from `profile`: its ssh input checked (a mistake there is the
    /// same for every node: exit 2 before any node, or the local PKI, is touched), then the
    /// artifacts `target` needs - the profile's own network, or the one a switch moves to.
    pub fn prepare(
        cluster: Cluster,
        profile: &std::path::Path,
        flags: &Flags,
        artifacts: Artifacts,
        target: Option<&Cluster>,
    ) -> Result<Run, crate::Error> {
        crate::phase::connect::preflight(&cluster)?;
        let target = target.unwrap_or(&cluster);
        let mut inputs = Inputs::default();
        let mut notes = Vec::new();
        if artifacts != Artifacts::None {
            let mode = match (artifacts, flags.dry_run) {
                (Artifacts::Stored, _) => crate::certs::Mode::ReadOnly,
                (_, true) => crate::certs::Mode::InMemory,
                _ => crate::certs::Mode::Persist,
            };
            if artifacts == Artifacts::Issue {
                inputs.binaries = crate::profile::binaries::load(target, profile)?;
            }
            let pki = crate::certs::prepare(target, profile, mode, std::time::SystemTime::now())?;
            notes = pki.as_ref().map(|p| p.notes.clone()).unwrap_or_default();
            inputs.pki = pki.map(Arc::new);
        }
        let mut run = Run::new(
            Arc::new(cluster),
            Arc::new(inputs),
            flags.concurrency,
            flags.dry_run,
            flags.accept_new_host_keys,
            flags.quiet,
        );
        run.notes = notes;
        Ok(run)
    }
}
