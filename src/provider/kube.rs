//! The Kubernetes side of pod networking, common to every provider: the kubelet (how it finds
//! CNI, which changed in 1.24: kubelet.rs), containerd's CNI directories (containerd.rs), and the
//! controller-manager flags that make it hand out node podCIDRs for providers that read them from
//! the API (controller_manager.rs). Each is an edit of what the node already has, or netctl's whole
//! file where it has none (edit.rs). Only rendered when `kubernetes.manageUnits` is true:
//! elsewhere kubeadm or a distribution owns them.

use serde::Serialize;

use super::edit::{Change, NodeEdit};
use super::{
    containerd, controller_manager, kubelet, needs_allocated_pod_cidrs, NodeFile, NodePlan, Unit,
};
use crate::profile::{Cluster, ContainerRuntime, Node, ProviderKind, UnitPolicy};

pub const KUBELET_UNIT: &str = kubelet::UNIT;
pub const KUBELET_CONFIG: &str = kubelet::CONFIG;
pub const CONTROLLER_MANAGER_UNIT: &str = controller_manager::UNIT;
pub const CONTAINERD_CONFIG: &str = containerd::CONFIG;
pub const CONTAINERD_SOCKET: &str = kubelet::CONTAINERD_SOCKET;

/// Context of templates/kube/containerd-config-v{2,3}.toml.
#[derive(Serialize)]
struct ContainerdCtx<'a> {
    provider: &'a str,
    cni_bin_dir: &'a str,
    cni_conf_dir: &'a str,
}

pub fn add_units(cluster: &Cluster, node: &Node, provider: ProviderKind, plan: &mut NodePlan) {
    if !cluster.profile.kubernetes.manage_units {
        // Another tool owns the units, but containerd's CNI directories are pod networking: an
        // existing config gets them (edited, every other byte kept), none is written.
        if node.is_worker() {
            edit_containerd_only(cluster, plan);
        }
        return;
    }
    if node.is_worker() {
        kubelet::add(cluster, node, provider, plan);
        push_unit(plan, kubelet::unit());
        add_containerd(cluster, provider, plan);
    }
    if node.is_controller() && needs_allocated_pod_cidrs(provider) {
        controller_manager::add(cluster, provider, plan);
        push_unit(plan, controller_manager::unit());
    }
}

/// containerd's CNI directories, for every Kubernetes version: with a remote runtime even a
/// pre-1.24 kubelet's --network-plugin only applies to dockershim, so containerd's CNI section is
/// what takes effect. Docker (dockershim) has no containerd config: the kubelet's flags rule.
fn add_containerd(cluster: &Cluster, provider: ProviderKind, plan: &mut NodePlan) {
    let k = &cluster.profile.kubernetes;
    let net = &cluster.profile.networking;
    let id = match k.container_runtime {
        ContainerRuntime::Containerd => "kube/containerd-config-v2.toml",
        ContainerRuntime::Containerd2 => "kube/containerd-config-v3.toml",
        ContainerRuntime::Docker => return,
    };
    let config = crate::template::template(
        id,
        &ContainerdCtx {
            provider: provider.as_str(),
            cni_bin_dir: &net.cni_bin_dir,
            cni_conf_dir: &net.cni_conf_dir,
        },
    );
    plan.files.push(NodeFile {
        path: CONTAINERD_CONFIG.into(),
        mode: 0o644,
        content: config,
        services: vec!["containerd".into()],
        blob: None,
    });
    plan.edits.push(NodeEdit {
        path: CONTAINERD_CONFIG.into(),
        change: Change::ContainerdCni {
            runtime: k.container_runtime,
            bin_dir: net.cni_bin_dir.clone(),
            conf_dir: net.cni_conf_dir.clone(),
        },
        companions: vec![],
        own: k.units == UnitPolicy::Own,
        services: vec![],
    });
    push_unit(
        plan,
        Unit {
            name: "containerd".into(),
            enable: true,
            restart: true,
        },
    );
}

/// `manageUnits: false`: only the edit of a config the node has; containerd restarted when it
/// changed (its running containers are the shims', a restart leaves them), never enabled. The unit
/// joins the plan only where the edit resolves to a file (edit::resolve): a node without containerd
/// has nothing to restart and verify has no containerd to judge.
fn edit_containerd_only(cluster: &Cluster, plan: &mut NodePlan) {
    let k = &cluster.profile.kubernetes;
    let net = &cluster.profile.networking;
    if k.container_runtime == ContainerRuntime::Docker {
        return;
    }
    plan.edits.push(NodeEdit {
        path: CONTAINERD_CONFIG.into(),
        change: Change::ContainerdCni {
            runtime: k.container_runtime,
            bin_dir: net.cni_bin_dir.clone(),
            conf_dir: net.cni_conf_dir.clone(),
        },
        companions: vec![],
        own: false,
        services: vec!["containerd".into()],
    });
}

fn push_unit(plan: &mut NodePlan, unit: Unit) {
    if !plan.units.iter().any(|u| u.name == unit.name) {
        plan.units.push(unit);
    }
}

/// Helpers shared by the providers' unit tests.
#[cfg(test)]
pub(crate) mod testkit {
    use std::path::{Path, PathBuf};

    use crate::profile::{load_str, Cluster};
    use crate::provider::ClusterPlan;

    /// A profile with `kubernetes_extra` (indented two spaces) and `networking` (the block under
    /// `networking:`, indented two spaces), two workers and one controller.
    /// kubenet runs inside dockershim only, so its profiles get `containerRuntime: docker` unless
    /// they name a runtime.
    pub fn cluster(version: &str, kubernetes_extra: &str, networking: &str) -> Cluster {
        let runtime = if networking.contains("provider: kubenet")
            && !kubernetes_extra.contains("containerRuntime")
        {
            "  containerRuntime: docker\n"
        } else {
            ""
        };
        let kubernetes_extra = format!("{kubernetes_extra}{runtime}");
        let text = format!(
            "apiVersion: netctl/v1
kind: ClusterProfile
name: t
kubernetes:
  version: \"{version}\"
  clusterCIDR: 10.200.0.0/16
  serviceCIDR: 10.32.0.0/24
  apiServer: https://10.240.0.10:6443
{kubernetes_extra}networking:
{networking}nodes:
  - {{ name: controller-0, address: 10.240.0.10, roles: [controller] }}
  - {{ name: worker-0, address: 10.240.0.20, roles: [worker] }}
  - {{ name: worker-1, address: 10.240.0.21, roles: [worker] }}
"
        );
        load_str(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Every document has apiVersion, kind and metadata.name, and no removed API group is used.
    pub fn check_manifest(text: &str) -> Vec<serde_yaml::Value> {
        for banned in [
            "extensions/v1beta1",
            "rbac.authorization.k8s.io/v1beta1",
            "apps/v1beta",
        ] {
            assert!(!text.contains(banned), "manifest uses {banned}");
        }
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = serde_yaml::Value::deserialize(doc).expect("manifest document parses");
            if v.is_null() {
                continue;
            }
            for key in ["apiVersion", "kind"] {
                assert!(
                    v[key].as_str().is_some_and(|s| !s.is_empty()),
                    "document without {key}: {v:?}"
                );
            }
            assert!(
                v["metadata"]["name"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "document without metadata.name: {v:?}"
            );
            docs.push(v);
        }
        docs
    }
    use serde::Deserialize;

    /// kubectl, or None (skip) when it is missing outside CI; CI must have it.
    pub fn kubectl() -> Option<PathBuf> {
        match which::which("kubectl") {
            Ok(p) => Some(p),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("kubectl is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("skipping: kubectl not found ({e}); kustomizations are not checked");
                None
            }
        }
    }

    /// Write the plan's files and copies under a temp dir, run `kubectl kustomize <dir>` and return
    /// the resulting documents (None when kubectl is missing).
    pub fn kustomize(plan: &ClusterPlan, dir: &str) -> Option<Vec<serde_yaml::Value>> {
        let kubectl = kubectl()?;
        let tmp = tempfile::tempdir().unwrap();
        for f in &plan.files {
            let p = tmp.path().join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &f.content).unwrap();
        }
        for c in &plan.copies {
            let p = tmp.path().join(&c.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::copy(&c.source, &p).unwrap_or_else(|e| panic!("copy {}: {e}", c.source));
        }
        let out = std::process::Command::new(kubectl)
            .arg("kustomize")
            .arg(tmp.path().join(dir))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(check_manifest(&String::from_utf8(out.stdout).unwrap()))
    }

    /// The test fixture standing in for an upstream manifest.
    pub fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/upstream/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// The document of `kind` named `name`.
    pub fn find<'a>(
        docs: &'a [serde_yaml::Value],
        kind: &str,
        name: &str,
    ) -> &'a serde_yaml::Value {
        docs.iter()
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    /// A container's env as (name, value) pairs; valueFrom entries show as "<valueFrom>".
    pub fn env(ds: &serde_yaml::Value, container: &str) -> Vec<(String, String)> {
        let containers = ds["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .expect("containers");
        let c = containers
            .iter()
            .find(|c| c["name"].as_str() == Some(container))
            .unwrap_or_else(|| panic!("no container {container}"));
        c["env"]
            .as_sequence()
            .map(|s| s.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().unwrap().to_string();
                let value = match (&e["value"], &e["valueFrom"]) {
                    (serde_yaml::Value::String(v), serde_yaml::Value::Null) => v.clone(),
                    (serde_yaml::Value::Null, serde_yaml::Value::Mapping(_)) => {
                        "<valueFrom>".into()
                    }
                    other => panic!("env {name} is neither value nor valueFrom: {other:?}"),
                };
                (name, value)
            })
            .collect()
    }

    pub fn env_value(ds: &serde_yaml::Value, container: &str, name: &str) -> Option<String> {
        env(ds, container)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// hostPath of volume `name` in the DaemonSet.
    pub fn host_path(ds: &serde_yaml::Value, name: &str) -> (String, Option<String>) {
        let v = ds["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"));
        (
            v["hostPath"]["path"].as_str().unwrap().to_string(),
            v["hostPath"]["type"].as_str().map(str::to_string),
        )
    }
    /// env of init container `name`.
    pub fn init_env(ds: &serde_yaml::Value, name: &str) -> Vec<(String, String)> {
        ds["spec"]["template"]["spec"]["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no init container {name}"))["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or("<valueFrom>").to_string(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::testkit::cluster;
    use super::*;
    use crate::provider::node_plan;

    fn file<'a>(plan: &'a NodePlan, path: &str) -> &'a NodeFile {
        plan.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
    }

    fn exec_start(unit: &str) -> String {
        unit.split("ExecStart=")
            .nth(1)
            .unwrap()
            .split("\nRestart=")
            .next()
            .unwrap()
            .to_string()
    }

    /// The kubelet config file netctl writes with its own unit.
    fn kubelet_config(plan: &NodePlan) -> serde_yaml::Value {
        let c = plan
            .edits
            .iter()
            .flat_map(|e| &e.companions)
            .find(|f| f.path == KUBELET_CONFIG)
            .expect("a kubelet config with the whole unit");
        serde_yaml::from_str(&c.content).unwrap()
    }

    #[test]
    fn kubelet_below_1_24_passes_cni_flags() {
        let c = cluster("1.23", "", "  provider: flannel\n");
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let unit = &file(&plan, KUBELET_UNIT).content;
        for flag in [
            "--config=/var/lib/kubelet/config.yaml",
            "--network-plugin=cni",
            "--cni-conf-dir=/etc/cni/net.d",
            "--cni-bin-dir=/opt/cni/bin",
            "--container-runtime=remote",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            "--kubeconfig=/var/lib/kubelet/kubeconfig",
            "--register-node=true",
            "--hostname-override=worker-0",
            "--node-ip=10.240.0.20",
            "--v=2",
        ] {
            assert!(
                unit.contains(&format!("  {flag}")),
                "{flag} missing:\n{unit}"
            );
        }
        assert!(unit.contains("ExecStart=/usr/local/bin/kubelet \\\n"));
        assert!(unit.contains("Restart=on-failure"));
        assert_eq!(file(&plan, KUBELET_UNIT).services, ["kubelet"]);
        // The operator's unit gets exactly these network flags, nothing else.
        let edit = plan.edits.iter().find(|e| e.path == KUBELET_UNIT).unwrap();
        let crate::provider::edit::Change::UnitFlags { flags, .. } = &edit.change else {
            panic!("{edit:?}")
        };
        assert_eq!(
            flags.set,
            [
                ("--network-plugin".to_string(), "cni".to_string()),
                ("--cni-conf-dir".into(), "/etc/cni/net.d".into()),
                ("--cni-bin-dir".into(), "/opt/cni/bin".into())
            ]
        );
        assert_eq!(
            flags.remove,
            ["--non-masquerade-cidr", "--network-plugin-mtu"]
        );
    }

    /// Issue 11 item 1: netctl's own kubelet is secure and runs the cgroup driver of the
    /// containerd config netctl writes (systemd); the flag-era defaults (anonymous on,
    /// AlwaysAllow, read-only port 10255, cgroupfs) are gone. Field names as in the kubelet's
    /// config types (kubelet.config.k8s.io/v1beta1, 1.30/1.31).
    #[test]
    fn netctls_own_kubelet_is_secure_and_matches_the_runtime() {
        let c = cluster("1.30", "", "  provider: flannel\n");
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let y = kubelet_config(&plan);
        assert_eq!(
            y["apiVersion"].as_str(),
            Some("kubelet.config.k8s.io/v1beta1")
        );
        assert_eq!(y["kind"].as_str(), Some("KubeletConfiguration"));
        assert_eq!(
            y["authentication"]["anonymous"]["enabled"].as_bool(),
            Some(false)
        );
        assert_eq!(
            y["authentication"]["webhook"]["enabled"].as_bool(),
            Some(true)
        );
        assert_eq!(
            y["authentication"]["x509"]["clientCAFile"].as_str(),
            Some("/var/lib/kubelet/ca.crt")
        );
        assert_eq!(y["authorization"]["mode"].as_str(), Some("Webhook"));
        assert_eq!(y["readOnlyPort"].as_i64(), Some(0));
        assert_eq!(y["cgroupDriver"].as_str(), Some("systemd"));
        assert_eq!(y["clusterDNS"][0].as_str(), Some("10.32.0.10"));
        assert_eq!(y["clusterDomain"].as_str(), Some("cluster.local"));
        assert_eq!(
            y["containerRuntimeEndpoint"].as_str(),
            Some("unix:///var/run/containerd/containerd.sock")
        );
        let toml = &file(&plan, CONTAINERD_CONFIG).content;
        assert!(toml.contains("SystemdCgroup = true"), "{toml}");
        // Before 1.27 the endpoint is a flag; with docker the driver is docker's cgroupfs.
        let c = cluster(
            "1.23",
            "  containerRuntime: docker\n",
            "  provider: flannel\n",
        );
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let y = kubelet_config(&plan);
        assert_eq!(y["cgroupDriver"].as_str(), Some("cgroupfs"));
        assert!(y["containerRuntimeEndpoint"].is_null());
    }

    #[test]
    fn kubelet_from_1_24_has_no_network_flags_and_containerd_owns_cni() {
        let c = cluster(
            "1.30",
            "",
            "  provider: calico\n  cniBinDir: /usr/lib/cni\n  cniConfDir: /etc/cni/conf.d\n",
        );
        let plan = node_plan(&c, c.node("worker-1").unwrap(), &Default::default());
        let unit = &file(&plan, KUBELET_UNIT).content;
        assert!(!unit.contains("--network-plugin"), "{unit}");
        assert!(!unit.contains("--cni-"), "{unit}");
        assert!(!unit.contains("--container-runtime"), "{unit}");
        assert!(
            unit.contains("--config=/var/lib/kubelet/config.yaml"),
            "{unit}"
        );
        // Nothing to edit in an existing kubelet from 1.24.
        let edit = plan.edits.iter().find(|e| e.path == KUBELET_UNIT).unwrap();
        let crate::provider::edit::Change::UnitFlags { flags, .. } = &edit.change else {
            panic!("{edit:?}")
        };
        assert!(flags.is_empty(), "{flags:?}");
        let toml = file(&plan, CONTAINERD_CONFIG);
        assert_eq!(toml.services, ["containerd"]);
        assert!(toml.content.contains("version = 2\n"), "{}", toml.content);
        assert!(toml.content.contains("[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"/etc/cni/conf.d\"\n  max_conf_num = 1\n"));
        let units: Vec<_> = plan
            .units
            .iter()
            .map(|u| (u.name.as_str(), u.enable, u.restart))
            .collect();
        assert_eq!(units, [("kubelet", true, true), ("containerd", true, true)]);
    }

    /// Issue 11 item 4: a docker (dockershim) cluster gets no CRI endpoint and no containerd
    /// config, and a 1.9 controller manager talks to the insecure port as the guide's does,
    /// without the kubeconfig that cluster does not have.
    #[test]
    fn a_docker_1_9_cluster_gets_only_what_it_runs() {
        let c = cluster(
            "1.9",
            "  containerRuntime: docker\n",
            "  provider: flannel\n",
        );
        let w = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let unit = &file(&w, KUBELET_UNIT).content;
        assert!(!unit.contains("--container-runtime"), "{unit}");
        assert!(!unit.contains("containerd"), "{unit}");
        assert!(unit.contains("Requires=docker.service"), "{unit}");
        assert!(
            !unit.contains("--config="),
            "1.9 reads no config file: {unit}"
        );
        for flag in [
            "--anonymous-auth=false",
            "--authorization-mode=Webhook",
            "--authentication-token-webhook=true",
            "--read-only-port=0",
            "--cgroup-driver=cgroupfs",
            "--cluster-dns=10.32.0.10",
            "--network-plugin=cni",
        ] {
            assert!(unit.contains(flag), "{flag}: {unit}");
        }
        assert!(!w.files.iter().any(|f| f.path == CONTAINERD_CONFIG));
        assert!(!w.edits.iter().any(|e| e.path == CONTAINERD_CONFIG));
        assert!(!w.units.iter().any(|u| u.name == "containerd"));
        let ctl = node_plan(&c, c.node("controller-0").unwrap(), &Default::default());
        let exec = exec_start(&file(&ctl, CONTROLLER_MANAGER_UNIT).content);
        assert!(exec.contains("--master=http://127.0.0.1:8080"), "{exec}");
        assert!(exec.contains("--address=0.0.0.0"), "{exec}");
        assert!(!exec.contains("--kubeconfig"), "{exec}");
        assert!(!exec.contains("--bind-address"), "{exec}");
    }

    #[test]
    fn containerd2_gets_config_version_3() {
        let c = cluster(
            "1.32",
            "  containerRuntime: containerd2\n",
            "  provider: weave\n",
        );
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let toml = &file(&plan, CONTAINERD_CONFIG).content;
        assert!(toml.contains("version = 3\n"), "{toml}");
        assert!(toml.contains("[plugins.'io.containerd.cri.v1.runtime'.cni]\n    bin_dir = \"/opt/cni/bin\"\n    conf_dir = \"/etc/cni/net.d\"\n"));
        assert!(!toml.contains("io.containerd.grpc.v1.cri"), "{toml}");
    }

    #[test]
    fn controller_manager_only_where_pod_cidrs_come_from_the_api() {
        for (provider, expected) in [
            ("flannel", true),
            ("canal", true),
            ("calico", false),
            ("weave", false),
            ("routes", false),
        ] {
            let c = cluster(
                "1.30",
                "  nodeCIDRMaskSize: 25\n",
                &format!("  provider: {provider}\n"),
            );
            let plan = node_plan(&c, c.node("controller-0").unwrap(), &Default::default());
            let cm = plan
                .files
                .iter()
                .find(|f| f.path == CONTROLLER_MANAGER_UNIT);
            assert_eq!(cm.is_some(), expected, "{provider}");
            assert!(
                !plan.files.iter().any(|f| f.path == KUBELET_UNIT),
                "controller-only node got a kubelet"
            );
            if let Some(cm) = cm {
                let exec = exec_start(&cm.content);
                for flag in [
                    "--allocate-node-cidrs=true",
                    "--cluster-cidr=10.200.0.0/16",
                    "--node-cidr-mask-size=25",
                    "--service-cluster-ip-range=10.32.0.0/24",
                    "--cluster-name=kubernetes",
                    "--leader-elect=true",
                    "--kubeconfig=/var/lib/kubernetes/kube-controller-manager.kubeconfig",
                    "--v=2",
                ] {
                    assert!(exec.contains(flag), "{flag} missing:\n{exec}");
                }
                assert!(
                    !exec.contains("--master") && !exec.contains("--address="),
                    "{exec}"
                );
                assert_eq!(cm.services, ["kube-controller-manager"]);
                assert!(plan
                    .units
                    .iter()
                    .any(|u| u.name == "kube-controller-manager" && u.enable && u.restart));
            }
        }
        let c = cluster("1.23", "", "  provider: kubenet\n");
        let plan = node_plan(&c, c.node("controller-0").unwrap(), &Default::default());
        assert!(plan.files.iter().any(|f| f.path == CONTROLLER_MANAGER_UNIT));
    }

    #[test]
    fn manage_units_false_renders_no_kubernetes_units() {
        let c = cluster("1.30", "  manageUnits: false\n", "  provider: calico\n");
        for n in &c.nodes {
            let plan = node_plan(&c, n, &Default::default());
            let paths: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
            assert!(
                paths
                    == [
                        crate::provider::node_prereqs::MODULES_FILE,
                        crate::provider::node_prereqs::SYSCTL_FILE
                    ]
                    && plan.units.is_empty(),
                "{}: {plan:?}",
                n.name
            );
        }
    }

    /// Every provider, deploy mode and node: JSON files parse, manifests and patches have
    /// apiVersion, kind and metadata.name, and no removed API group appears anywhere.
    #[test]
    fn every_rendered_file_is_well_formed() {
        let cases = [
            ("1.23", "  provider: kubenet\n"),
            ("1.30", "  provider: flannel\n  flannel: { backend: host-gw }\n"),
            ("1.30", "  provider: flannel\n  flannel: { backend: vxlan, deploy: daemonset, mtu: 1400 }\n"),
            ("1.30", "  provider: flannel\n  flannel: { backend: wireguard, deploy: daemonset }\n"),
            ("1.30", "  provider: calico\n  calico: { mtu: 1400 }\n"),
            ("1.30", "  provider: canal\n  canal: { iface: eth1 }\n"),
            ("1.30", "  provider: weave\n  weave: { mtu: 1376 }\n"),
        ];
        let mut json_files = 0;
        for (version, networking) in cases {
            let c = cluster(version, "", networking);
            for n in &c.nodes {
                for f in node_plan(&c, n, &Default::default()).files {
                    assert!(!f.content.contains("v1beta1"), "{}", f.path);
                    if f.path.ends_with(".json") || f.path.ends_with(".conflist") {
                        serde_json::from_str::<serde_json::Value>(&f.content)
                            .unwrap_or_else(|e| panic!("{}: {e}", f.path));
                        json_files += 1;
                    }
                }
            }
            let plan = crate::provider::cluster_plan(&c);
            for f in &plan.files {
                if f.path.ends_with("kustomization.yaml") {
                    let k: serde_yaml::Value = serde_yaml::from_str(&f.content).unwrap();
                    assert_eq!(k["kind"].as_str(), Some("Kustomization"));
                    for p in k["patchesStrategicMerge"].as_sequence().unwrap() {
                        let dir = f.path.rsplit_once('/').unwrap().0;
                        let path = format!("{dir}/{}", p.as_str().unwrap());
                        assert!(
                            plan.files.iter().any(|f| f.path == path),
                            "patch {path} not rendered"
                        );
                    }
                    continue;
                }
                for doc in super::testkit::check_manifest(&f.content) {
                    // JSON embedded in ConfigMaps must parse too.
                    if let Some(data) = doc["data"].as_mapping() {
                        for (k, v) in data {
                            if k.as_str().unwrap().ends_with(".json") {
                                serde_json::from_str::<serde_json::Value>(v.as_str().unwrap())
                                    .unwrap_or_else(|e| panic!("{} {k:?}: {e}", f.path));
                                json_files += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(json_files >= 8, "only {json_files} JSON documents checked");
    }

    /// With kubernetes-validate (PyPI) installed, the DaemonSet manifest netctl writes itself is
    /// checked against the real OpenAPI schemas; it is optional, so its absence only skips.
    #[test]
    fn flannel_manifest_passes_kubernetes_validate_when_available() {
        let Ok(kv) = which::which("kubernetes-validate") else {
            eprintln!("skipping: kubernetes-validate not installed");
            return;
        };
        let c = cluster(
            "1.30",
            "",
            "  provider: flannel\n  flannel: { deploy: daemonset, iface: eth1 }\n",
        );
        let plan = crate::provider::cluster_plan(&c);
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("kube-flannel.yaml");
        std::fs::write(&p, &plan.files[0].content).unwrap();
        let out = std::process::Command::new(kv)
            .args(["--strict", "-k", "1.30.0"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `systemd-analyze verify` exits 1 when an ExecStart binary or a Requires= unit is missing on
    /// this machine, and only warns (exit 0) on unknown keys or bad values. So the units are rendered
    /// with binDir pointing at a temp dir holding executable stubs, a stub containerd.service sits
    /// next to them on SYSTEMD_UNIT_PATH, and the test demands exit 0 *and* an empty stderr: any
    /// parse complaint fails it.
    #[test]
    fn units_pass_systemd_analyze_verify() {
        let Ok(analyze) = which::which("systemd-analyze") else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("systemd-analyze is required in CI");
            }
            eprintln!("skipping: systemd-analyze not found");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let units = tmp.path().join("units");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&units).unwrap();
        for b in [
            "kubelet",
            "kube-controller-manager",
            "flanneld",
            "containerd",
        ] {
            let p = bin.join(b);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for runtime in ["containerd", "docker"] {
            std::fs::write(
                units.join(format!("{runtime}.service")),
                format!("[Service]\nExecStart={}/containerd\n", bin.display()),
            )
            .unwrap();
        }
        let extra = format!("  binDir: {}\n", bin.display());
        let mut checked = 0;
        for (version, networking) in [
            ("1.23", "  provider: kubenet\n"),
            (
                "1.23",
                "  provider: flannel\n  flannel: { backend: host-gw, iface: enp0s8 }\n",
            ),
            (
                "1.30",
                "  provider: flannel\n  flannel: { backend: wireguard }\n",
            ),
            ("1.30", "  provider: canal\n"),
        ] {
            let c = cluster(version, &extra, networking);
            for n in &c.nodes {
                for f in node_plan(&c, n, &Default::default())
                    .files
                    .iter()
                    .filter(|f| f.path.ends_with(".service"))
                {
                    let name = f.path.rsplit('/').next().unwrap();
                    let p = units.join(name);
                    std::fs::write(&p, &f.content).unwrap();
                    let out = std::process::Command::new(&analyze)
                        .arg("verify")
                        .arg(&p)
                        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
                        .output()
                        .unwrap();
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        out.status.success() && stderr.trim().is_empty(),
                        "{version} {networking} {}: {stderr}\n{}",
                        f.path,
                        f.content
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 8, "only {checked} units checked");
        // The check can fail: a unit with an unknown key is reported.
        let bad = units.join("bad.service");
        std::fs::write(
            &bad,
            format!(
                "[Service]\nExecStart={}/kubelet\nRestartz=on-failure\n",
                bin.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(&analyze)
            .arg("verify")
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    }
}
