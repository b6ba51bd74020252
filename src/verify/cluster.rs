//! Cluster checks through the API (kubectl on the operator's machine): nodes Ready, podCIDRs
//! allocated as the provider needs them, and the provider's DaemonSet fully ready. Judging is
//! pure over the JSON kubectl returns, so it is tested on API-shaped documents.

use std::collections::BTreeMap;
use std::time::Instant;

use ipnetwork::Ipv4Network;
use serde_json::Value;

use super::{Check, CLUSTER};
use crate::kubectl::{self, Kubectl};
use crate::profile::Cluster;
use crate::provider::needs_allocated_pod_cidrs;

/// kubectl waits forever for an API server that does not answer; verify must not.
pub const REQUEST_TIMEOUT: &str = "--request-timeout=30s";

pub const IDS: [&str; 3] = [
    "cluster.nodes-ready",
    "cluster.pod-cidrs",
    "cluster.provider-pods",
];

/// Run every cluster check (blocking: kubectl is a child process).
pub fn run(cluster: &Cluster, accept_new_host_keys: bool) -> Vec<Check> {
    if let Some(why) = kubectl::unavailable_reason(cluster) {
        return IDS
            .iter()
            .map(|id| Check::skip(id, CLUSTER, &why))
            .collect();
    }
    let k = match Kubectl::find(cluster, "run the cluster checks", accept_new_host_keys) {
        Ok(k) => k,
        Err(e) => {
            return IDS
                .iter()
                .map(|id| {
                    Check::fail(
                        id,
                        CLUSTER,
                        e.to_string(),
                        "install kubectl or set NETCTL_KUBECTL",
                    )
                })
                .collect()
        }
    };
    let start = Instant::now();
    let mut out = Vec::new();
    match k.get_json(&["nodes", REQUEST_TIMEOUT]) {
        Ok(list) => {
            out.push(nodes_ready(&list).took(start));
            out.push(pod_cidrs(cluster, &list).took(start));
        }
        Err(e) => {
            for id in &IDS[..2] {
                out.push(
                    Check::fail(id, CLUSTER, format!("cannot list nodes: {e}"), "check kubernetes.kubeconfig and that the API server answers (kubectl get nodes)")
                        .took(start),
                );
            }
        }
    }
    let start = Instant::now();
    out.push(match crate::provider::daemonset(cluster) {
        Err(why) => Check::skip(IDS[2], CLUSTER, why),
        Ok((ns, name)) => match k.get_json(&["daemonset", name, "-n", ns, REQUEST_TIMEOUT]) {
            Ok(ds) => daemonset_ready(ns, name, &ds),
            Err(e) => Check::fail(
                IDS[2],
                CLUSTER,
                format!("cannot get daemonset {ns}/{name}: {e}"),
                "netctl init applies the provider's manifests; kubectl get ds -A shows what exists",
            ),
        }
        .took(start),
    });
    out
}

fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn name(item: &Value) -> &str {
    item["metadata"]["name"].as_str().unwrap_or("?")
}

pub fn nodes_ready(list: &Value) -> Check {
    const ID: &str = "cluster.nodes-ready";
    let all = items(list);
    if all.is_empty() {
        return Check::fail(
            ID,
            CLUSTER,
            "the API has no nodes",
            "kubelets have not registered: check kubelet on the workers (node.services)",
        );
    }
    let not_ready: Vec<String> = all
        .iter()
        .filter(|n| {
            !n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .map(|n| name(n).to_string())
        .collect();
    if not_ready.is_empty() {
        Check::pass(ID, CLUSTER, format!("{} nodes Ready", all.len()))
    } else {
        Check::fail(
            ID,
            CLUSTER,
            format!("not Ready: {}", not_ready.join(", ")),
            "kubectl describe node NAME shows why (a NetworkNotReady condition means no CNI config)",
        )
    }
}

pub fn pod_cidrs(cluster: &Cluster, list: &Value) -> Check {
    const ID: &str = "cluster.pod-cidrs";
    // Where netctl plans podCIDRs (routes, calico, weave, or given in the profile), the API must agree.
    let planned = !needs_allocated_pod_cidrs(cluster.provider());
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for n in items(list) {
        let nm = name(n);
        let Some(cidr) = n["spec"]["podCIDR"].as_str() else {
            problems.push(format!("{nm} has no spec.podCIDR"));
            continue;
        };
        let Ok(net) = cidr.parse::<Ipv4Network>() else {
            problems.push(format!("{nm} has podCIDR {cidr}, not an IPv4 network"));
            continue;
        };
        if !(cluster.cluster_cidr.contains(net.network())
            && net.prefix() >= cluster.cluster_cidr.prefix())
        {
            problems.push(format!(
                "{nm} podCIDR {cidr} is outside the cluster CIDR {}",
                cluster.cluster_cidr
            ));
        }
        if let Some(other) = seen.insert(cidr.to_string(), nm.to_string()) {
            problems.push(format!("{nm} and {other} share podCIDR {cidr}"));
        }
        if let Some(p) = cluster.node(nm) {
            if let Some(want) = p.pod_cidr.filter(|_| planned || p.pod_cidr_given) {
                if want != net {
                    problems.push(format!("{nm} podCIDR {cidr}, the profile plans {want}"));
                }
            }
        }
    }
    if problems.is_empty() {
        Check::pass(
            ID,
            CLUSTER,
            format!(
                "{} nodes have unique podCIDRs inside {}",
                seen.len(),
                cluster.cluster_cidr
            ),
        )
    } else {
        Check::fail(
            ID,
            CLUSTER,
            problems.join("; "),
            "kube-controller-manager needs --allocate-node-cidrs=true --cluster-cidr=<clusterCIDR>; a podCIDR is fixed once set: delete and re-register the node to change it",
        )
    }
}

pub fn daemonset_ready(ns: &str, name: &str, ds: &Value) -> Check {
    const ID: &str = "cluster.provider-pods";
    let st = &ds["status"];
    let want = st["desiredNumberScheduled"].as_u64().unwrap_or(0);
    let ready = st["numberReady"].as_u64().unwrap_or(0);
    if want > 0 && want == ready {
        Check::pass(
            ID,
            CLUSTER,
            format!("{ns}/{name}: {ready}/{want} pods ready"),
        )
    } else {
        Check::fail(
            ID,
            CLUSTER,
            format!("{ns}/{name}: {ready}/{want} pods ready"),
            format!(
                "kubectl -n {ns} get pods -o wide and kubectl -n {ns} logs on the failing pods"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Status;
    use serde_json::json;

    fn cluster() -> Cluster {
        let text = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  kubeconfig: /dev/null\nnetworking:\n  provider: routes\nnodes:\n  - { name: w1, address: 10.240.0.11, roles: [worker], podCIDR: 10.200.1.0/24 }\n  - { name: w2, address: 10.240.0.12, roles: [worker], podCIDR: 10.200.2.0/24 }\n";
        crate::profile::load_str(text, std::path::Path::new("t.yaml")).unwrap()
    }

    fn node(name: &str, cidr: Option<&str>, ready: &str) -> Value {
        let mut n = json!({"metadata": {"name": name}, "spec": {}, "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]}});
        if let Some(c) = cidr {
            n["spec"]["podCIDR"] = json!(c);
        }
        n
    }

    #[test]
    fn ready_nodes_and_planned_cidrs_pass() {
        let list = json!({"kind": "NodeList", "items": [node("w1", Some("10.200.1.0/24"), "True"), node("w2", Some("10.200.2.0/24"), "True")]});
        assert_eq!(nodes_ready(&list).status, Status::Pass);
        assert_eq!(
            pod_cidrs(&cluster(), &list).status,
            Status::Pass,
            "{:?}",
            pod_cidrs(&cluster(), &list)
        );
    }

    #[test]
    fn each_cidr_problem_is_named() {
        let list = json!({"items": [node("w1", Some("10.244.1.0/24"), "False"), node("w2", None, "Unknown"), node("w3", Some("10.244.1.0/24"), "True")]});
        let r = nodes_ready(&list);
        assert_eq!(r.detail, "not Ready: w1, w2");
        let c = pod_cidrs(&cluster(), &list);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail
                .contains("w1 podCIDR 10.244.1.0/24 is outside the cluster CIDR"),
            "{c:?}"
        );
        assert!(c.detail.contains("w2 has no spec.podCIDR"), "{c:?}");
        assert!(c.detail.contains("w3 and w1 share podCIDR"), "{c:?}");
        assert!(
            c.detail.contains("the profile plans 10.200.1.0/24"),
            "{c:?}"
        );
        assert!(c.hint.is_some());
    }

    #[test]
    fn daemonset_counts() {
        let ok = json!({"status": {"desiredNumberScheduled": 3, "numberReady": 3}});
        assert_eq!(
            daemonset_ready("kube-flannel", "kube-flannel-ds", &ok).status,
            Status::Pass
        );
        let bad = json!({"status": {"desiredNumberScheduled": 3, "numberReady": 2}});
        let c = daemonset_ready("kube-flannel", "kube-flannel-ds", &bad);
        assert_eq!(c.detail, "kube-flannel/kube-flannel-ds: 2/3 pods ready");
        assert_eq!(
            daemonset_ready("a", "b", &json!({"status": {}})).status,
            Status::Fail
        );
    }
}
