//! kube-controller-manager: the flags that make it hand out node podCIDRs, for providers that
//! read them from the Node object (flannel and canal: kube-subnet-mgr; kubenet: the kubelet).
//! In an existing unit netctl edits only `--allocate-node-cidrs`, `--cluster-cidr` and
//! `--node-cidr-mask-size`; `--service-cluster-ip-range` is added where absent and must agree
//! where present (it is the API server's range: netctl cannot change it, only refuse a profile
//! that disagrees). A whole unit only where none exists.
//!
//! The whole unit follows the hard-way guides by version (reference/flannel-host-gw-hard-way.md):
//! below 1.20 the API server still serves its insecure port, and the guide's controller manager
//! talks to it with `--master=http://127.0.0.1:8080` and no kubeconfig (the guide's cluster has
//! none for it), listening with `--address` (replaced by `--bind-address` in 1.12); from 1.20 the
//! insecure port is gone, so the unit uses the kubeconfig, signing and service-account files of
//! today's kubernetes-the-hard-way layout.

use super::edit::{Change, NodeEdit};
use super::kubelet::UnitCtx;
use super::unitfile::FlagEdit;
use super::{NodeFile, NodePlan, Unit};
use crate::profile::{Cluster, KubeVersion, ProviderKind, UnitPolicy};

pub const UNIT: &str = "/etc/systemd/system/kube-controller-manager.service";
const KUBECONFIG: &str = "/var/lib/kubernetes/kube-controller-manager.kubeconfig";
const CA_CERT: &str = "/var/lib/kubernetes/ca.crt";
const CA_KEY: &str = "/var/lib/kubernetes/ca.key";
const SERVICE_ACCOUNT_KEY: &str = "/var/lib/kubernetes/service-accounts.key";
/// The API server's insecure port, as the hard-way guides of that era use it.
const INSECURE_MASTER: &str = "http://127.0.0.1:8080";

fn v(major: u32, minor: u32) -> KubeVersion {
    KubeVersion { major, minor }
}

fn cidr_flags(cluster: &Cluster) -> Vec<(String, String)> {
    vec![
        ("--allocate-node-cidrs".into(), "true".into()),
        ("--cluster-cidr".into(), cluster.cluster_cidr.to_string()),
        (
            "--node-cidr-mask-size".into(),
            cluster.profile.kubernetes.node_cidr_mask_size.to_string(),
        ),
    ]
}

fn whole(cluster: &Cluster, provider: ProviderKind) -> String {
    let k = &cluster.profile.kubernetes;
    let version = cluster.version;
    let mut flags = Vec::new();
    let legacy = version < v(1, 20);
    flags.push(if version < v(1, 12) {
        "--address=0.0.0.0".to_string()
    } else {
        "--bind-address=0.0.0.0".to_string()
    });
    flags.extend(
        cidr_flags(cluster)
            .into_iter()
            .map(|(n, v)| format!("{n}={v}")),
    );
    flags.push("--cluster-name=kubernetes".to_string());
    if legacy {
        flags.push("--leader-elect=true".to_string());
        flags.push(format!("--master={INSECURE_MASTER}"));
    } else {
        flags.extend([
            format!("--cluster-signing-cert-file={CA_CERT}"),
            format!("--cluster-signing-key-file={CA_KEY}"),
            format!("--kubeconfig={KUBECONFIG}"),
            "--leader-elect=true".to_string(),
            format!("--root-ca-file={CA_CERT}"),
            format!("--service-account-private-key-file={SERVICE_ACCOUNT_KEY}"),
        ]);
    }
    flags.push(format!(
        "--service-cluster-ip-range={}",
        cluster.service_cidr
    ));
    if !legacy {
        flags.push("--use-service-account-credentials=true".to_string());
    }
    flags.push("--v=2".to_string());
    crate::template::template(
        "kube/kube-controller-manager.service",
        &UnitCtx {
            provider: provider.as_str(),
            bin_dir: &k.bin_dir,
            runtime_unit: "",
            flags,
        },
    )
}

/// The controller manager of a controller: netctl's whole unit where the node has none, else
/// the edit of the operator's.
pub fn add(cluster: &Cluster, provider: ProviderKind, plan: &mut NodePlan) {
    plan.files.push(NodeFile {
        path: UNIT.into(),
        mode: 0o644,
        content: whole(cluster, provider),
        services: vec!["kube-controller-manager".into()],
        blob: None,
    });
    plan.edits.push(NodeEdit {
        path: UNIT.into(),
        change: Change::UnitFlags {
            unit: "kube-controller-manager.service".into(),
            flags: FlagEdit {
                set: cidr_flags(cluster),
                remove: vec![],
                keep_if_present: vec![(
                    "--service-cluster-ip-range".into(),
                    cluster.service_cidr.to_string(),
                )],
            },
        },
        companions: vec![],
        own: cluster.profile.kubernetes.units == UnitPolicy::Own,
        services: vec![],
    });
}

pub fn unit() -> Unit {
    Unit {
        name: "kube-controller-manager".into(),
        enable: true,
        restart: true,
    }
}
