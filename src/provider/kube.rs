//! The Kubernetes side of pod networking, common to every provider: the kubelet unit (how it finds
//! CNI, which changed in 1.24), containerd's CNI section, and the controller-manager flags that make
//! it hand out node podCIDRs for providers that read them from the API (flannel, canal, kubenet).
//! Only rendered when `kubernetes.manageUnits` is true: elsewhere kubeadm or a distribution owns them.

use serde::Serialize;

use super::{kubenet, NodeFile, NodePlan, Unit};
use crate::profile::{Cluster, ContainerRuntime, Node, ProviderKind};

pub const KUBELET_UNIT: &str = "/etc/systemd/system/kubelet.service";
pub const CONTROLLER_MANAGER_UNIT: &str = "/etc/systemd/system/kube-controller-manager.service";
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const CONTAINERD_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// Paths of the hard-way layout; the certificates issue writes the files behind them.
const KUBELET_KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";
const CONTROLLER_MANAGER_KUBECONFIG: &str =
    "/var/lib/kubernetes/kube-controller-manager.kubeconfig";
const CA_CERT: &str = "/var/lib/kubernetes/ca.crt";
const CA_KEY: &str = "/var/lib/kubernetes/ca.key";
const SERVICE_ACCOUNT_KEY: &str = "/var/lib/kubernetes/service-accounts.key";

/// Context of templates/kube/kubelet.service and kube-controller-manager.service.
#[derive(Serialize)]
struct UnitCtx<'a> {
    provider: &'a str,
    bin_dir: &'a str,
    /// One `--flag=value` per line, already safe (validated values, no spaces).
    flags: Vec<String>,
}

/// Context of templates/kube/containerd-config-v{2,3}.toml.
#[derive(Serialize)]
struct ContainerdCtx<'a> {
    provider: &'a str,
    cni_bin_dir: &'a str,
    cni_conf_dir: &'a str,
}

/// Providers whose daemons take each node's podCIDR from the Node object, so the controller-manager
/// must allocate them (flannel and canal: kube-subnet-mgr; kubenet: the kubelet reads spec.podCIDR).
pub fn needs_allocated_pod_cidrs(provider: ProviderKind) -> bool {
    matches!(
        provider,
        ProviderKind::Flannel | ProviderKind::Canal | ProviderKind::Kubenet
    )
}

pub fn add_units(cluster: &Cluster, node: &Node, provider: ProviderKind, plan: &mut NodePlan) {
    if !cluster.profile.kubernetes.manage_units {
        return;
    }
    if node.is_worker() {
        add_worker(cluster, node, provider, plan);
    }
    if node.is_controller() && needs_allocated_pod_cidrs(provider) {
        add_controller_manager(cluster, provider, plan);
    }
}

fn add_worker(cluster: &Cluster, node: &Node, provider: ProviderKind, plan: &mut NodePlan) {
    let k = &cluster.profile.kubernetes;
    let net = &cluster.profile.networking;
    let mut flags = vec![
        format!("--kubeconfig={KUBELET_KUBECONFIG}"),
        format!("--cluster-dns={}", cluster.cluster_dns),
        format!("--cluster-domain={}", k.cluster_domain),
        // The Node object must carry the profile's name and address: flanneld finds its node by
        // NODE_NAME, and on multi-NIC hosts (Vagrant) the kubelet would otherwise pick the NAT address.
        format!("--hostname-override={}", node.name),
        format!("--node-ip={}", node.address),
        "--register-node=true".to_string(),
    ];
    if cluster.version.kubelet_has_network_plugin() {
        // Below 1.24 the kubelet defaults to dockershim; the profile's runtimes are containerd.
        flags.push("--container-runtime=remote".to_string());
        flags.push(format!("--container-runtime-endpoint={CONTAINERD_SOCKET}"));
        if provider == ProviderKind::Kubenet {
            flags.extend(kubenet::kubelet_flags(cluster, node));
        } else {
            flags.push("--network-plugin=cni".to_string());
            flags.push(format!("--cni-conf-dir={}", net.cni_conf_dir));
            flags.push(format!("--cni-bin-dir={}", net.cni_bin_dir));
        }
    } else {
        // 1.24 removed the network flags: CNI belongs to the runtime (containerd's config below).
        flags.push(format!("--container-runtime-endpoint={CONTAINERD_SOCKET}"));
    }
    flags.push("--v=2".to_string());
    let unit = crate::render::template(
        "kube/kubelet.service",
        &UnitCtx {
            provider: provider.as_str(),
            bin_dir: &k.bin_dir,
            flags,
        },
    );
    plan.files.push(NodeFile {
        path: KUBELET_UNIT.into(),
        mode: 0o644,
        content: unit,
        services: vec!["kubelet".into()],
    });
    push_unit(plan, "kubelet");

    // Rendered for every version: with a remote runtime even a pre-1.24 kubelet's --network-plugin
    // only applies to dockershim, so containerd's CNI section is what takes effect.
    let id = match k.container_runtime {
        ContainerRuntime::Containerd => "kube/containerd-config-v2.toml",
        ContainerRuntime::Containerd2 => "kube/containerd-config-v3.toml",
    };
    let config = crate::render::template(
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
    });
    push_unit(plan, "containerd");
}

fn add_controller_manager(cluster: &Cluster, provider: ProviderKind, plan: &mut NodePlan) {
    let k = &cluster.profile.kubernetes;
    // The hard-way unit, modernised: no --address/--master (removed), a kubeconfig instead; the
    // signing and service-account flags stay because this file replaces the whole unit.
    let flags = vec![
        "--bind-address=0.0.0.0".to_string(),
        "--allocate-node-cidrs=true".to_string(),
        format!("--cluster-cidr={}", cluster.cluster_cidr),
        format!("--node-cidr-mask-size={}", k.node_cidr_mask_size),
        "--cluster-name=kubernetes".to_string(),
        format!("--cluster-signing-cert-file={CA_CERT}"),
        format!("--cluster-signing-key-file={CA_KEY}"),
        format!("--kubeconfig={CONTROLLER_MANAGER_KUBECONFIG}"),
        "--leader-elect=true".to_string(),
        format!("--root-ca-file={CA_CERT}"),
        format!("--service-account-private-key-file={SERVICE_ACCOUNT_KEY}"),
        format!("--service-cluster-ip-range={}", cluster.service_cidr),
        "--use-service-account-credentials=true".to_string(),
        "--v=2".to_string(),
    ];
    let unit = crate::render::template(
        "kube/kube-controller-manager.service",
        &UnitCtx {
            provider: provider.as_str(),
            bin_dir: &k.bin_dir,
            flags,
        },
    );
    plan.files.push(NodeFile {
        path: CONTROLLER_MANAGER_UNIT.into(),
        mode: 0o644,
        content: unit,
        services: vec!["kube-controller-manager".into()],
    });
    push_unit(plan, "kube-controller-manager");
}

fn push_unit(plan: &mut NodePlan, name: &str) {
    if !plan.units.iter().any(|u| u.name == name) {
        plan.units.push(Unit {
            name: name.into(),
            enable: true,
            restart: true,
        });
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
    pub fn cluster(version: &str, kubernetes_extra: &str, networking: &str) -> Cluster {
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

    #[test]
    fn kubelet_below_1_24_passes_cni_flags() {
        let c = cluster("1.23", "", "  provider: flannel\n");
        let plan = node_plan(&c, c.node("worker-0").unwrap());
        let unit = &file(&plan, KUBELET_UNIT).content;
        for flag in [
            "--network-plugin=cni",
            "--cni-conf-dir=/etc/cni/net.d",
            "--cni-bin-dir=/opt/cni/bin",
            "--container-runtime=remote",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            "--kubeconfig=/var/lib/kubelet/kubeconfig",
            "--cluster-dns=10.32.0.10",
            "--cluster-domain=cluster.local",
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
    }

    #[test]
    fn kubelet_from_1_24_has_no_network_flags_and_containerd_owns_cni() {
        let c = cluster(
            "1.30",
            "",
            "  provider: calico\n  cniBinDir: /usr/lib/cni\n  cniConfDir: /etc/cni/conf.d\n",
        );
        let plan = node_plan(&c, c.node("worker-1").unwrap());
        let unit = &file(&plan, KUBELET_UNIT).content;
        assert!(!unit.contains("--network-plugin"), "{unit}");
        assert!(!unit.contains("--cni-"), "{unit}");
        assert!(!unit.contains("--container-runtime=remote"), "{unit}");
        assert!(unit
            .contains("--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"));
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

    #[test]
    fn containerd2_gets_config_version_3() {
        let c = cluster(
            "1.32",
            "  containerRuntime: containerd2\n",
            "  provider: weave\n",
        );
        let plan = node_plan(&c, c.node("worker-0").unwrap());
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
            let plan = node_plan(&c, c.node("controller-0").unwrap());
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
        let plan = node_plan(&c, c.node("controller-0").unwrap());
        assert!(plan.files.iter().any(|f| f.path == CONTROLLER_MANAGER_UNIT));
    }

    #[test]
    fn manage_units_false_renders_no_kubernetes_units() {
        let c = cluster("1.30", "  manageUnits: false\n", "  provider: calico\n");
        for n in &c.nodes {
            let plan = node_plan(&c, n);
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
                for f in node_plan(&c, n).files {
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
        std::fs::write(
            units.join("containerd.service"),
            format!("[Service]\nExecStart={}/containerd\n", bin.display()),
        )
        .unwrap();
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
                for f in node_plan(&c, n)
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
