//! switch: the migration plan from one provider (or backend) to another. Pure: built from the
//! two rendered NodePlans per node, so every from -> to pair is plan-tested without a cluster.
//!
//! Order, as in flannel-host-gw-hard-way.md's "Cleaning up": cluster preparation (the new
//! provider's objects), then nodes in rolling waves (drain, stop kubelet, the old provider's
//! teardown, files, commands, restarts, a verify gate), then the old provider's cluster objects.
//! Between two backends of the routes provider the change is split so no packet is lost: every
//! node first learns to receive the new way (`prepare`), then nodes send the new way one by one
//! (`converge`), and only then is the old way removed (`cleanup`).

use serde::Serialize;

use crate::profile::Cluster;
use crate::provider::{self, Inputs, KubectlStep, NodePlan, Step};

/// A provider with its backend: what a node runs.
pub use crate::network::Network as Endpoint;

#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EndpointError {
    pub field: String,
    pub message: String,
}

/// The profile's cluster as it would be running `to`: the provider and backend replaced.
pub fn retarget(cluster: &Cluster, to: &Endpoint) -> Result<Cluster, EndpointError> {
    let mut profile = cluster.profile.clone();
    to.apply_to(&mut profile.networking);
    let mut target = crate::profile::resolve(profile).map_err(|problems| EndpointError {
        field: problems
            .first()
            .map(|p| p.field.clone())
            .unwrap_or_default(),
        message: problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    // The profile's file stays with the cluster (the run's certificates and binaries are not
    // the profile's: they reach the node plans as `provider::Inputs`).
    target.source = cluster.source.clone();
    Ok(target)
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeMigration {
    pub node: String,
    /// Run on every node before any node switches.
    pub prepare: Vec<Step>,
    /// Units stopped before the node's files change (kubelet), started again afterwards.
    pub stop: Vec<String>,
    /// The old provider's teardown, when the provider changes.
    pub teardown: Vec<Step>,
    /// Files of the old provider the new one does not have.
    pub remove: Vec<String>,
    /// Units the old provider enabled that the new one does not have.
    pub disable: Vec<String>,
    /// Everything the new provider installs; its commands are the ones to run.
    pub install: NodePlan,
    /// Run on every node after all nodes switched.
    pub cleanup: Vec<Step>,
    /// Undo `prepare` on a rollback (with the old provider's script).
    pub unprepare: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationPlan {
    pub from: Endpoint,
    pub to: Endpoint,
    pub cluster_prepare: Vec<KubectlStep>,
    pub nodes: Vec<NodeMigration>,
    pub cluster_cleanup: Vec<KubectlStep>,
}

/// `inputs`: the run's certificates and binaries, for both sides' node plans (prepared for the
/// target, so the target's flanneld gets its credentials).
pub fn plan(from: &Cluster, to: &Cluster, inputs: &Inputs) -> MigrationPlan {
    let from_ep = Endpoint::of(from);
    let to_ep = Endpoint::of(to);
    let same_provider = from_ep.provider() == to_ep.provider();
    let from_cluster = provider::cluster_plan(from);
    let to_cluster = provider::cluster_plan(to);
    let nodes = to
        .nodes
        .iter()
        .map(|node| {
            let old = provider::node_plan(from, from.node(&node.name).unwrap_or(node), inputs);
            let mut new = provider::node_plan(to, node, inputs);
            let change =
                provider::change_backend(&from_ep, &to_ep, &old, &mut new).unwrap_or_default();
            let wanted: std::collections::BTreeSet<&str> =
                new.files.iter().map(|f| f.path.as_str()).collect();
            let remove = old
                .files
                .iter()
                .filter(|f| !wanted.contains(f.path.as_str()))
                .map(|f| f.path.clone())
                .collect();
            let new_units: std::collections::BTreeSet<&str> =
                new.units.iter().map(|u| u.name.as_str()).collect();
            let disable = old
                .units
                .iter()
                .filter(|u| u.enable && !new_units.contains(u.name.as_str()))
                .map(|u| u.name.clone())
                .collect();
            let stop = new
                .units
                .iter()
                .filter(|u| u.name == "kubelet" || u.name == "kubelet.service")
                .map(|u| u.name.clone())
                .collect();
            NodeMigration {
                node: node.name.clone(),
                unprepare: change.unprepare,
                prepare: change.prepare,
                stop,
                teardown: if same_provider {
                    vec![]
                } else {
                    old.teardown.clone()
                },
                remove,
                disable,
                install: new,
                cleanup: change.cleanup,
            }
        })
        .collect();
    MigrationPlan {
        from: from_ep,
        to: to_ep,
        cluster_prepare: if same_provider && from_cluster == to_cluster {
            vec![]
        } else {
            to_cluster.kubectl.clone()
        },
        nodes,
        cluster_cleanup: if same_provider {
            vec![]
        } else {
            from_cluster.kubectl_teardown.clone()
        },
    }
}

/// What a person reads before confirming.
pub fn describe(p: &MigrationPlan, waves: &[Vec<String>]) -> String {
    let mut s = format!("switch from {} to {}\n", p.from, p.to);
    for k in &p.cluster_prepare {
        s.push_str(&format!("  cluster: kubectl {}\n", k.args.join(" ")));
    }
    if p.nodes.iter().any(|n| !n.prepare.is_empty()) {
        s.push_str("  every node: prepare to receive the new way (nothing removed)\n");
    }
    for (i, w) in waves.iter().enumerate() {
        s.push_str(&format!("  wave {}: {}\n", i + 1, w.join(", ")));
    }
    if let Some(n) = p.nodes.first() {
        s.push_str(&format!("  per node (e.g. {}):\n", n.node));
        for u in &n.stop {
            s.push_str(&format!("    stop {u}\n"));
        }
        for t in &n.teardown {
            s.push_str(&format!("    {}\n", t.title));
        }
        for r in &n.remove {
            s.push_str(&format!("    remove {r}\n"));
        }
        for f in &n.install.files {
            s.push_str(&format!("    write {}\n", f.path));
        }
        for c in &n.install.commands {
            s.push_str(&format!("    run: {}\n", c.title));
        }
        s.push_str("    verify the node (gate); on failure every switched node is rolled back\n");
    }
    if p.nodes.iter().any(|n| !n.cleanup.is_empty()) {
        s.push_str("  every node: remove what the old backend needed\n");
    }
    for k in &p.cluster_cleanup {
        s.push_str(&format!("  cluster: kubectl {}\n", k.args.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{load_str, ProviderKind};
    use std::path::Path;

    fn base(version: &str) -> Cluster {
        // kubenet (below 1.24) runs inside dockershim only.
        let runtime = if version == "1.23" {
            "  containerRuntime: docker\n"
        } else {
            ""
        };
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n{runtime}  version: \"{version}\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  kubeconfig: /root/.kube/config\nnetworking:\n  provider: routes\nnodes:\n  - {{name: c1, address: 10.0.0.10, roles: [controller]}}\n  - {{name: w1, address: 10.0.0.11}}\n  - {{name: w2, address: 10.0.0.12}}\n"
        );
        load_str(&text, Path::new("t.yaml")).unwrap()
    }

    /// Issue 13: `switch --networking flannel` planned flanneld without its certificates, because
    /// the retargeted cluster lost the run's PKI. The PKI is now an input of the plan, never the
    /// cluster's: the migration plan built with the run's inputs installs flanneld's credentials.
    #[test]
    fn the_target_of_a_switch_to_flannel_carries_flanneld_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("t.yaml");
        let mut cluster = base("1.30");
        // flanneld needs credentials the API server accepts: a CA netctl generates, here.
        cluster.profile.pki.generate_ca = true;
        let ca = {
            let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().pem()
        };
        let ca_path = dir.path().join("cluster-ca.pem");
        std::fs::write(&ca_path, ca).unwrap();
        cluster.profile.kubernetes.ca_certificate = Some(ca_path.to_str().unwrap().into());
        let to: Endpoint = "flannel:vxlan".parse().unwrap();
        cluster.profile.networking.flannel.deploy = crate::profile::model::FlannelDeploy::Systemd;
        let target = retarget(&cluster, &to).unwrap();
        // As main.rs does for switch: the run's certificates are prepared for the target.
        let pki = crate::certs::prepare(
            &target,
            &profile,
            crate::certs::Mode::InMemory,
            std::time::SystemTime::now(),
        )
        .unwrap()
        .expect("flanneld as a unit needs certificates");
        let inputs = Inputs {
            pki: Some(std::sync::Arc::new(pki)),
            ..Inputs::default()
        };
        let p = plan(&cluster, &target, &inputs);
        let w1 = p.nodes.iter().find(|n| n.node == "w1").unwrap();
        let paths: Vec<&str> = w1.install.files.iter().map(|f| f.path.as_str()).collect();
        for want in ["ca.crt", "flanneld.crt", "flanneld.key"] {
            assert!(
                paths.iter().any(|p| p.ends_with(want)),
                "{want} missing from the switch target's plan: {paths:?}"
            );
        }
    }

    fn endpoints() -> Vec<Endpoint> {
        [
            "routes:host-gw",
            "routes:vxlan",
            "kubenet",
            "flannel:host-gw",
            "flannel:vxlan",
            "flannel:wireguard",
            "calico",
            "canal",
            "weave",
        ]
        .map(|s| s.parse().unwrap())
        .to_vec()
    }

    /// Every from -> to pair: the old provider's artifacts all go, the new ones all come, and the
    /// controller-manager carries the flags the new provider needs.
    #[test]
    fn every_pair_removes_the_old_and_installs_the_new() {
        for from_ep in endpoints() {
            for to_ep in endpoints() {
                if from_ep == to_ep {
                    continue;
                }
                // kubenet exists only below 1.24.
                let version = if from_ep.provider() == ProviderKind::Kubenet
                    || to_ep.provider() == ProviderKind::Kubenet
                {
                    "1.23"
                } else {
                    "1.30"
                };
                let c = base(version);
                let from = retarget(&c, &from_ep).unwrap();
                let to = retarget(&c, &to_ep).unwrap();
                let p = plan(&from, &to, &Inputs::default());
                let pair = format!("{from_ep} -> {to_ep}");
                assert_eq!(p.from, from_ep, "{pair}");
                assert_eq!(p.to, to_ep, "{pair}");
                for n in &p.nodes {
                    let node = to.node(&n.node).unwrap();
                    let old = provider::node_plan(&from, node, &Inputs::default());
                    let new = provider::node_plan(&to, node, &Inputs::default());
                    assert_eq!(
                        n.install.files, new.files,
                        "{pair} {}: the new files",
                        n.node
                    );
                    for f in &old.files {
                        let kept = new.files.iter().any(|g| g.path == f.path);
                        assert!(
                            kept || n.remove.contains(&f.path),
                            "{pair} {}: {} stays behind",
                            n.node,
                            f.path
                        );
                    }
                    if from_ep.provider() != to_ep.provider() {
                        assert_eq!(
                            n.teardown, old.teardown,
                            "{pair} {}: the old teardown runs",
                            n.node
                        );
                    }
                    for u in old.units.iter().filter(|u| u.enable) {
                        assert!(
                            new.units.iter().any(|v| v.name == u.name)
                                || n.disable.contains(&u.name),
                            "{pair}: {} stays enabled",
                            u.name
                        );
                    }
                    if node.is_controller() {
                        let kcm = n
                            .install
                            .files
                            .iter()
                            .find(|f| f.path.ends_with("kube-controller-manager.service"));
                        let needs = matches!(
                            to_ep.provider(),
                            ProviderKind::Flannel | ProviderKind::Canal | ProviderKind::Kubenet
                        );
                        match (needs, kcm) {
                            (true, Some(f)) => {
                                assert!(f.content.contains("--allocate-node-cidrs=true"), "{pair}");
                                assert!(
                                    f.content.contains("--cluster-cidr=10.200.0.0/16"),
                                    "{pair}"
                                );
                            }
                            (true, None) => {
                                panic!("{pair}: controllers need kube-controller-manager")
                            }
                            (false, Some(_)) => panic!(
                                "{pair}: {} does not need kube-controller-manager",
                                to_ep.provider()
                            ),
                            (false, None) => {}
                        }
                    }
                }
                let to_objects = provider::cluster_plan(&to).kubectl;
                if from_ep.provider() != to_ep.provider() {
                    assert_eq!(
                        p.cluster_prepare, to_objects,
                        "{pair}: the new cluster objects"
                    );
                    assert_eq!(
                        p.cluster_cleanup,
                        provider::cluster_plan(&from).kubectl_teardown,
                        "{pair}: the old cluster objects go"
                    );
                }
            }
        }
    }

    #[test]
    fn routes_backends_switch_without_a_gap() {
        let c = base("1.30");
        let hg: Endpoint = "routes:host-gw".parse().unwrap();
        let vx: Endpoint = "routes:vxlan".parse().unwrap();
        let p = plan(
            &retarget(&c, &hg).unwrap(),
            &retarget(&c, &vx).unwrap(),
            &Inputs::default(),
        );
        let w1 = &p.nodes[1];
        assert_eq!(w1.prepare[0].title, "prepare routes (vxlan)");
        assert_eq!(w1.cleanup[0].title, "remove what routes (host-gw) needed");
        assert!(
            w1.unprepare[0]
                .command
                .starts_with("set -- cleanup\n#!/bin/sh"),
            "a rollback undoes the preparation with the old script"
        );
        assert!(w1.prepare[0]
            .command
            .starts_with("set -- prepare\n#!/bin/sh"));
        assert!(w1
            .install
            .commands
            .iter()
            .any(|c| c.command.ends_with("routes.sh converge")));
        assert_eq!(
            w1.cleanup[0].command,
            "/bin/sh /usr/local/lib/netctl/routes.sh cleanup"
        );
        assert!(
            w1.teardown.is_empty(),
            "no teardown: routes are replaced in place"
        );
    }

    /// flannel changes backend the plain way: no node prepares, none cleans up.
    #[test]
    fn flannel_backends_switch_without_preparation() {
        let c = base("1.30");
        let hg: Endpoint = "flannel:host-gw".parse().unwrap();
        let vx: Endpoint = "flannel:vxlan".parse().unwrap();
        let p = plan(
            &retarget(&c, &hg).unwrap(),
            &retarget(&c, &vx).unwrap(),
            &Inputs::default(),
        );
        for n in &p.nodes {
            assert!(n.prepare.is_empty() && n.cleanup.is_empty() && n.unprepare.is_empty());
        }
    }

    #[test]
    fn a_target_the_profile_cannot_run_is_named() {
        let c = base("1.30");
        let e = retarget(&c, &Endpoint::Kubenet).unwrap_err();
        assert_eq!(e.field, "networking.provider", "kubenet on 1.30: {e}");
    }
}
