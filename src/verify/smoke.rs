//! `verify --smoke`: the Kubernetes smoke test (calico-and-smoke-test.md) through kubectl: an
//! nginx Deployment with a pod on every worker, a Service, and a client pod that curls every nginx
//! pod IP and the Service IP and looks the Service name up in DNS. Everything lives in its own
//! namespace, deleted at the end whatever happened.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::cluster::REQUEST_TIMEOUT;
use super::{Check, CLUSTER};
use crate::kubectl::{self, Kubectl, KubectlError};
use crate::profile::Cluster;
use crate::tempdir::PrivateDir;

pub const IDS: [&str; 5] = [
    "smoke.deploy",
    "smoke.pod-to-pod",
    "smoke.pod-to-service",
    "smoke.dns",
    "smoke.cleanup",
];
const NGINX_IMAGE: &str = "nginx:1.27-alpine";
const CLIENT_IMAGE: &str = "radial/busyboxplus:curl";
const WAIT: &str = "--timeout=180s";

pub fn namespace(suffix: &str) -> String {
    format!("netctl-smoke-{suffix}")
}

/// The objects: a namespace, nginx spread one per worker, its Service, the client pod.
pub fn manifest(ns: &str, workers: usize) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels: {{app.kubernetes.io/managed-by: netctl}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  namespace: {ns}
spec:
  replicas: {workers}
  selector:
    matchLabels: {{run: nginx}}
  template:
    metadata:
      labels: {{run: nginx}}
    spec:
      topologySpreadConstraints:
        - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{run: nginx}}}}}}
      containers:
        - name: nginx
          image: {NGINX_IMAGE}
          ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata:
  name: nginx
  namespace: {ns}
spec:
  selector: {{run: nginx}}
  ports: [{{port: 80, targetPort: 80}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: {ns}
  labels: {{run: client}}
spec:
  containers:
    - name: client
      image: {CLIENT_IMAGE}
      command: [sleep, "3600"]
"#
    )
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Run the smoke test (blocking). Always deletes the namespace.
pub fn run(cluster: &Cluster, suffix: &str, accept_new_host_keys: bool) -> Vec<Check> {
    if let Some(why) = kubectl::unavailable_reason(cluster) {
        return IDS
            .iter()
            .map(|id| Check::skip(id, CLUSTER, &why))
            .collect();
    }
    let k = match Kubectl::find(cluster, "run the smoke test", accept_new_host_keys) {
        Ok(k) => k,
        Err(e) => {
            return vec![Check::fail(
                IDS[0],
                CLUSTER,
                e.to_string(),
                "install kubectl or set NETCTL_KUBECTL",
            )]
        }
    };
    let ns = namespace(suffix);
    let dir = PrivateDir::new("netctl-smoke-");
    let mut checks = match &dir {
        Ok(d) => steps(cluster, &k, &ns, d),
        Err(e) => vec![Check::fail(
            IDS[0],
            CLUSTER,
            format!(
                "cannot make a temporary directory in {}: {e}",
                std::env::temp_dir().display()
            ),
            "check the temp directory (TMPDIR)",
        )],
    };
    // The namespace is deleted even when no directory could be made (nothing was applied then).
    let cwd = dir.as_ref().map_or(Path::new("."), |d| d.path());
    let start = Instant::now();
    let del = k.run(
        &args(&[
            "delete",
            "namespace",
            &ns,
            "--ignore-not-found",
            REQUEST_TIMEOUT,
            "--wait=false",
        ]),
        cwd,
    );
    checks.push(
        match del {
            Ok(_) => Check::pass(IDS[4], CLUSTER, format!("namespace {ns} deleted")),
            Err(e) => Check::fail(
                IDS[4],
                CLUSTER,
                e.to_string(),
                format!("kubectl delete namespace {ns}"),
            ),
        }
        .took(start),
    );
    drop(dir);
    checks
}

fn steps(cluster: &Cluster, k: &Kubectl, ns: &str, tmp: &PrivateDir) -> Vec<Check> {
    let dir = tmp.path();
    let start = Instant::now();
    let workers = cluster.workers().count().max(1);
    let deploy = (|| -> Result<(Vec<(String, String)>, String), KubectlError> {
        tmp.write_new("smoke.yaml", manifest(ns, workers).as_bytes())
            .map_err(|source| KubectlError::Io {
                args: format!("write {}", dir.join("smoke.yaml").display()),
                source,
            })?;
        k.run(&args(&["apply", "-f", "smoke.yaml", REQUEST_TIMEOUT]), dir)?;
        k.run(
            &args(&["-n", ns, "rollout", "status", "deployment/nginx", WAIT]),
            dir,
        )?;
        k.run(
            &args(&[
                "-n",
                ns,
                "wait",
                "--for=condition=Ready",
                "pod/client",
                WAIT,
            ]),
            dir,
        )?;
        let pods = k.get_json(&["pods", "-n", ns, "-l", "run=nginx", REQUEST_TIMEOUT])?;
        let svc = k.get_json(&["service", "nginx", "-n", ns, REQUEST_TIMEOUT])?;
        Ok((
            pod_ips(&pods),
            svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string(),
        ))
    })();
    let (pods, svc_ip) = match deploy {
        Ok(v) => v,
        Err(e) => {
            let mut out = vec![Check::fail(
                IDS[0],
                CLUSTER,
                format!("the smoke workload did not come up: {e}"),
                format!(
                    "kubectl -n {ns} describe pods (image pulls, scheduling, CNI errors in events)"
                ),
            )
            .took(start)];
            out.extend(
                IDS[1..4]
                    .iter()
                    .map(|id| Check::skip(id, CLUSTER, "the smoke workload did not come up")),
            );
            return out;
        }
    };
    let mut out = vec![Check::pass(
        IDS[0],
        CLUSTER,
        format!("{} nginx pods and a client in {ns}", pods.len()),
    )
    .took(start)];
    let curl = |target: &str| -> Result<(), String> {
        let url = format!("http://{target}/");
        match k.run(
            &args(&[
                "-n",
                ns,
                REQUEST_TIMEOUT,
                "exec",
                "client",
                "--",
                "curl",
                "-s",
                "-m",
                "5",
                &url,
            ]),
            dir,
        ) {
            Ok(body) if body.to_lowercase().contains("welcome to nginx") => Ok(()),
            Ok(_) => Err("no nginx welcome page".into()),
            Err(e) => Err(e.to_string()),
        }
    };
    for (node, ip) in &pods {
        let start = Instant::now();
        out.push(
            match curl(ip) {
                Ok(()) => Check::pass(IDS[1], node, format!("client reached nginx {ip}")),
                Err(e) => Check::fail(
                    IDS[1],
                    node,
                    format!("client to nginx {ip}: {e}"),
                    "pod traffic to this node fails: see the node and data-plane checks for it",
                ),
            }
            .took(start),
        );
    }
    if pods.is_empty() {
        out.push(Check::fail(
            IDS[1],
            CLUSTER,
            "no nginx pod has an IP",
            format!("kubectl -n {ns} get pods -o wide"),
        ));
    }
    let start = Instant::now();
    out.push(match curl(&svc_ip) {
        Ok(()) => Check::pass(IDS[2], CLUSTER, format!("client reached service nginx {svc_ip}")),
        Err(e) => Check::fail(IDS[2], CLUSTER, format!("client to service {svc_ip}: {e}"), "kube-proxy is not forwarding service traffic: check it on the client's node, and br_netfilter (node.br-netfilter)"),
    }.took(start));
    let start = Instant::now();
    let fqdn = format!(
        "nginx.{ns}.svc.{}",
        cluster.profile.kubernetes.cluster_domain
    );
    out.push(
        match k.run(
            &args(&[
                "-n",
                ns,
                REQUEST_TIMEOUT,
                "exec",
                "client",
                "--",
                "nslookup",
                &fqdn,
            ]),
            dir,
        ) {
            Ok(o) if o.contains(&svc_ip) => {
                Check::pass(IDS[3], CLUSTER, format!("{fqdn} resolves to {svc_ip}"))
            }
            Ok(o) => Check::fail(
                IDS[3],
                CLUSTER,
                format!(
                    "{fqdn} did not resolve to {svc_ip}: {}",
                    o.lines().last().unwrap_or("")
                ),
                "check CoreDNS pods and the kubelet's --cluster-dns",
            ),
            Err(e) => Check::fail(
                IDS[3],
                CLUSTER,
                format!("{fqdn}: {e}"),
                format!(
                    "check CoreDNS pods and that kubelet's --cluster-dns is {}",
                    cluster.cluster_dns
                ),
            ),
        }
        .took(start),
    );
    out
}

/// (node, pod IP) of every running pod in a PodList.
pub fn pod_ips(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["spec"]["nodeName"].as_str().unwrap_or("?").to_string(),
                p["status"]["podIP"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_manifest_is_yaml_with_one_replica_per_worker() {
        let m = super::manifest("netctl-smoke-ab12", 3);
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&m)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[1]["spec"]["replicas"], 3);
        assert_eq!(docs[3]["metadata"]["name"], "client");
        assert!(docs
            .iter()
            .skip(1)
            .all(|d| d["metadata"]["namespace"] == "netctl-smoke-ab12"));
    }
}
