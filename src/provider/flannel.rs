//! flannel: each node leases its podCIDR from the Node object (kube-subnet-mgr) and flanneld routes
//! between them (host-gw), or tunnels (vxlan, wireguard). Deployed either as a systemd unit on the
//! workers (the hard-way guide) or as a DaemonSet whose manifest netctl writes itself (the upstream
//! kube-flannel.yml is small enough to own: its facts are in PROVIDER-NOTES.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::needs::{Iface, Needs, Proto, Traffic};
use super::teardown::{self, Firewall};
use super::{
    node_prereqs, sh_quote, Blob, ClusterFile, ClusterPlan, KubectlStep, NodeFile, NodePlan,
    RouteCheck, Step, Unit,
};
use crate::certs::Pki;
use crate::profile::{
    Cluster, FlannelBackend, FlannelDeploy, FlannelRelease, Node, FLANNEL_CNI_PLUGIN_VERSION,
    FLANNEL_VERSION,
};

pub const CONFIG_DIR: &str = "/etc/kube-flannel";
pub const NET_CONF: &str = "/etc/kube-flannel/net-conf.json";
pub const KUBECONFIG: &str = "/etc/kube-flannel/kubeconfig";
pub const UNIT: &str = "/etc/systemd/system/flanneld.service";
pub const CONFLIST: &str = "10-flannel.conflist";
pub const MANIFEST: &str = "kube-flannel.yaml";
/// kube-subnet-mgr leases each node the podCIDR of its Node object.
pub const NEEDS_ALLOCATED_POD_CIDRS: bool = true;
/// What `netctl profile new` offers, the default first.
pub const WIZARD_BACKENDS: [&str; 3] = ["vxlan", "host-gw", "wireguard"];
/// flanneld's credentials (systemd deploy), prepared by src/certs/ and attached with
/// `attach`: the cluster CA (verifies the API server), and a certificate and key, or a
/// service-account token.
pub const CA: &str = "/etc/kube-flannel/ca.crt";
pub const CERT: &str = "/etc/kube-flannel/flanneld.crt";
pub const KEY: &str = "/etc/kube-flannel/flanneld.key";
pub const TOKEN: &str = "/etc/kube-flannel/token";
/// The CA that signed flanneld.crt, when it is not the cluster CA (pki.generateCA, or a
/// caCertificate apart from pki.caCert): read by `verify`'s node.certs only.
pub const CLIENT_CA: &str = "/etc/kube-flannel/client-ca.crt";
/// The ClusterRole and binding flanneld's certificate identity needs (systemd deploy).
pub const RBAC_MANIFEST: &str = "flanneld-rbac.yaml";

/// net-conf.json. Defaults flannel applies itself are left out, so a profile reproduces the
/// guides' files exactly.
#[derive(Debug, Serialize, PartialEq)]
pub struct NetConf {
    #[serde(rename = "Network")]
    pub network: String,
    #[serde(rename = "SubnetLen", skip_serializing_if = "Option::is_none")]
    pub subnet_len: Option<u8>,
    #[serde(rename = "Backend")]
    pub backend: Backend,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Backend {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "VNI", skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    #[serde(rename = "Port", skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(rename = "DirectRouting", skip_serializing_if = "std::ops::Not::not")]
    pub direct_routing: bool,
    #[serde(rename = "ListenPort", skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u32>,
    #[serde(rename = "MTU", skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// 10-flannel.conflist, as kube-flannel.yml's cni-conf.json.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflist {
    pub name: &'static str,
    pub cni_version: &'static str,
    pub plugins: (FlannelPlugin, PortmapPlugin),
}

#[derive(Debug, Serialize)]
pub struct FlannelPlugin {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub delegate: Delegate,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    pub hairpin_mode: bool,
    pub is_default_gateway: bool,
    /// Only when flanneld does not masquerade. The flannel CNI plugin defaults the bridge's ipMasq to
    /// !FLANNEL_IPMASQ; with both on, the bridge would SNAT pod-to-pod traffic to other nodes. The
    /// hard-way guide runs flanneld without -ip-masq and sets it here (profile `ipMasq: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_masq: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct PortmapPlugin {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub capabilities: PortMappings,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMappings {
    pub port_mappings: bool,
}

/// net-conf's Backend MTU for the profile's pod MTU. flannel reads it as the underlay's MTU: it
/// makes the tunnel device that minus the overhead and writes the same value to subnet.env as
/// FLANNEL_MTU, which the CNI plugin gives the pods (v0.28 vxlan.go parseVXLANConfig, device.go,
/// vxlan_network.go MTU(); wireguard alike with 80).
pub fn underlay_mtu(backend: FlannelBackend, pod_mtu: Option<u32>) -> Option<u32> {
    Some(pod_mtu? + backend.encap_overhead()?)
}

pub fn net_conf(cluster: &Cluster) -> NetConf {
    let f = &cluster.profile.networking.flannel;
    let mask = cluster.profile.kubernetes.node_cidr_mask_size;
    let backend = match f.backend {
        FlannelBackend::HostGw => Backend {
            kind: "host-gw",
            vni: None,
            port: None,
            direct_routing: false,
            listen_port: None,
            mtu: None,
        },
        FlannelBackend::Vxlan => Backend {
            kind: "vxlan",
            vni: Some(f.vni).filter(|v| *v != 1),
            port: Some(f.port).filter(|p| *p != 8472),
            direct_routing: f.direct_routing,
            listen_port: None,
            mtu: underlay_mtu(f.backend, f.mtu),
        },
        FlannelBackend::Wireguard => Backend {
            kind: "wireguard",
            vni: None,
            port: None,
            direct_routing: false,
            listen_port: Some(f.listen_port),
            mtu: underlay_mtu(f.backend, f.mtu),
        },
    };
    NetConf {
        network: cluster.cluster_cidr.to_string(),
        // flannel leases /24s unless told; the controller-manager hands out nodeCIDRMaskSize blocks.
        subnet_len: Some(mask).filter(|m| *m != 24),
        backend,
    }
}

pub fn conflist(cluster: &Cluster) -> Conflist {
    let ip_masq = cluster.profile.networking.flannel.ip_masq;
    Conflist {
        name: "cbr0",
        cni_version: "0.3.1",
        plugins: (
            FlannelPlugin {
                kind: "flannel",
                delegate: Delegate {
                    hairpin_mode: true,
                    is_default_gateway: true,
                    ip_masq: (!ip_masq).then_some(true),
                },
            },
            PortmapPlugin {
                kind: "portmap",
                capabilities: PortMappings {
                    port_mappings: true,
                },
            },
        ),
    }
}

fn json(v: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("flannel config serialises");
    s.push('\n');
    s
}

/// Context of templates/flannel/flanneld.service.
#[derive(Serialize)]
struct UnitCtx<'a> {
    node_name: &'a str,
    bin_dir: &'a str,
    flags: Vec<String>,
}

/// Context of templates/flannel/kubeconfig: a token file, or a certificate and key.
#[derive(Serialize)]
struct KubeconfigCtx<'a> {
    server: &'a str,
    ca: &'a str,
    token: Option<&'a str>,
    cert: &'a str,
    key: &'a str,
}

/// Context of templates/flannel/kube-flannel.yaml.
#[derive(Serialize)]
struct ManifestCtx<'a> {
    version: &'a str,
    cni_plugin_version: &'a str,
    backend: &'a str,
    /// JSON documents indented four spaces, for the ConfigMap's block scalars.
    cni_conf: String,
    net_conf: String,
    args: Vec<String>,
    cni_bin_dir: &'a str,
    cni_conf_dir: &'a str,
}

/// flanneld's arguments beyond the systemd-only ones.
fn flanneld_args(cluster: &Cluster) -> Vec<String> {
    let f = &cluster.profile.networking.flannel;
    let mut args = Vec::new();
    if f.ip_masq {
        args.push("--ip-masq".to_string());
    }
    args.push("--kube-subnet-mgr".to_string());
    if let Some(iface) = &f.iface {
        args.push(format!("--iface={iface}"));
    }
    args
}

/// The API server flanneld talks to: the profile's, else the first controller's (the hard-way
/// layout), else a node-local one (an apiserver or proxy on every node, as k0s and rke2 run).
fn api_server(cluster: &Cluster) -> String {
    if let Some(s) = &cluster.profile.kubernetes.api_server {
        return s.clone();
    }
    match cluster.nodes.iter().find(|n| n.is_controller()) {
        Some(c) => format!("https://{}:6443", c.address),
        None => "https://127.0.0.1:6443".to_string(),
    }
}

/// The pinned flannel release (validated; the current pin should a caller skip validation).
fn release(cluster: &Cluster) -> FlannelRelease {
    FlannelRelease::parse(&cluster.profile.networking.flannel.version)
        .or_else(|| FlannelRelease::parse(FLANNEL_VERSION))
        .expect("the pinned flannel version parses")
}

/// Whether that node's flanneld authenticates with a client certificate (not a token).
pub fn needs_certs(cluster: &Cluster, node: &Node) -> bool {
    cluster.runs_flanneld_unit(node) && cluster.profile.networking.flannel.token_file.is_none()
}

/// The cluster CA and flanneld's credentials, as the kubeconfig names them. A change restarts
/// flanneld; the key and the token are readable by root only.
pub fn credential_files(pki: &Pki, node: &str) -> Vec<NodeFile> {
    let file = |path: &str, mode: u32, content: &str| NodeFile {
        path: path.into(),
        mode,
        content: content.into(),
        services: vec!["flanneld".into()],
        blob: None,
    };
    let mut files = vec![file(CA, 0o644, &pki.server_ca_pem)];
    if let Some(token) = &pki.token {
        files.push(file(TOKEN, 0o600, &format!("{}\n", token.0)));
    } else if let Some(cert) = pki.nodes.get(node) {
        files.push(file(CERT, 0o644, &cert.cert_pem));
        files.push(file(KEY, 0o600, &cert.key_pem));
        if pki.ca_pem != pki.server_ca_pem {
            files.push(file(CLIENT_CA, 0o644, &pki.ca_pem));
        }
    }
    files
}

/// Add the node's credential files to its plan (flanneld as a systemd unit only), from the
/// run's PKI; `provider::node_plan` calls it for every provider, so a plan never lacks them.
pub fn attach(pki: Option<&Pki>, cluster: &Cluster, node: &Node, plan: &mut NodePlan) {
    let Some(pki) = pki else { return };
    if !cluster.runs_flanneld_unit(node) {
        return;
    }
    plan.files.extend(credential_files(pki, &node.name));
    plan.files.sort_by(|a, b| a.path.cmp(&b.path));
}

/// The node's flannel files, units and teardown; `loaded` are the run's binaries by sha256
/// (empty in `render`: the plan then carries their sha256 only).
pub fn node(cluster: &Cluster, node: &Node, loaded: &BTreeMap<String, Arc<Vec<u8>>>) -> NodePlan {
    let mut plan = NodePlan::default();
    if !node.is_worker() {
        return plan;
    }
    let f = &cluster.profile.networking.flannel;
    if f.deploy == FlannelDeploy::Systemd {
        let mut flags = flanneld_args(cluster);
        // Before v0.12.0 there is no such flag (flanneld would exit on it) and NET_CONF is
        // where flanneld looks anyway.
        if release(cluster).has_net_config_path() {
            flags.push(format!("--net-config-path={NET_CONF}"));
        }
        flags.push(format!("--kubeconfig-file={KUBECONFIG}"));
        let unit = crate::template::template(
            "flannel/flanneld.service",
            &UnitCtx {
                node_name: &node.name,
                bin_dir: &cluster.profile.kubernetes.bin_dir,
                flags,
            },
        );
        let server = api_server(cluster);
        let kubeconfig = crate::template::template(
            "flannel/kubeconfig",
            &KubeconfigCtx {
                server: &server,
                ca: CA,
                token: f.token_file.as_ref().map(|_| TOKEN),
                cert: CERT,
                key: KEY,
            },
        );
        let flanneld = || vec!["flanneld".to_string()];
        plan.files.push(NodeFile {
            path: UNIT.into(),
            mode: 0o644,
            content: unit,
            services: flanneld(),
            blob: None,
        });
        plan.files.push(NodeFile {
            path: NET_CONF.into(),
            mode: 0o644,
            content: json(&net_conf(cluster)),
            services: flanneld(),
            blob: None,
        });
        plan.files.push(NodeFile {
            path: KUBECONFIG.into(),
            mode: 0o600,
            content: kubeconfig,
            services: flanneld(),
            blob: None,
        });
        // The runtime reads CNI configs per pod: nothing to restart.
        plan.files.push(NodeFile {
            path: format!("{}/{CONFLIST}", cluster.profile.networking.cni_conf_dir),
            mode: 0o644,
            content: json(&conflist(cluster)),
            services: vec![],
            blob: None,
        });
        // The programs themselves, as the hard-way guides copy them: the unit runs
        // <binDir>/flanneld, and the runtime execs <cniBinDir>/flannel for every pod (the
        // DaemonSet's init container installs that one; here nothing else would).
        let k = &cluster.profile.kubernetes;
        let binaries = [
            (
                &f.flanneld,
                format!("{}/flanneld", k.bin_dir),
                crate::profile::binaries::FLANNELD,
                flanneld(),
            ),
            (
                &f.cni_plugin,
                format!("{}/flannel", cluster.profile.networking.cni_bin_dir),
                crate::profile::binaries::CNI_PLUGIN,
                vec![],
            ),
        ];
        for (binary, path, field, services) in binaries {
            let Some(b) = binary else { continue };
            let bytes = loaded.get(&b.sha256).cloned();
            plan.files.push(NodeFile {
                path,
                mode: 0o755,
                content: String::new(),
                services,
                blob: Some(Blob {
                    sha256: b.sha256.clone(),
                    size: bytes.as_ref().map(|b| b.len() as u64),
                    field,
                    shared: false,
                    bytes,
                }),
            });
        }
        plan.units.push(Unit {
            name: "flanneld".into(),
            enable: true,
            restart: true,
        });
        // Stop the daemon first, or host-gw re-adds its routes within 10 s.
        plan.teardown.push(Step {
            title: "stop flanneld".into(),
            command: "if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet flanneld; then systemctl stop flanneld; fi".into(),
        });
    }
    // What flanneld made, whichever way it ran: its chains and rules (after the stop, or it puts
    // them back), its links, the bridge the CNI plugin made, its host-gw routes (every route via
    // a gateway inside the cluster CIDR), its lease file and host-local's reservations.
    plan.teardown.push(teardown::firewall("flannel", &FIREWALL));
    let vxlan = [
        format!("flannel.{}", f.vni),
        format!("flannel-v6.{}", f.vni),
    ];
    let links = vxlan
        .iter()
        .map(String::as_str)
        .chain(WG_LINKS)
        .chain([BRIDGE]);
    plan.teardown.extend(links.map(super::delete_link));
    if f.backend == FlannelBackend::HostGw {
        plan.teardown.push(Step {
            title: "delete flannel host-gw routes".into(),
            command: format!(
                "ip -4 route show root {} | awk '/ via /{{print $1}}' | while read -r dst; do ip route del \"$dst\"; done",
                sh_quote(&cluster.cluster_cidr.to_string())
            ),
        });
    }
    plan.teardown.push(Step {
        title: "remove the flannel lease file".into(),
        command: "rm -f /run/flannel/subnet.env".into(),
    });
    plan.teardown.push(teardown::ipam(CNI_NETWORK));
    plan
}

/// The bridge flannel's CNI plugin delegates to (the bridge plugin's default name).
pub const BRIDGE: &str = "cni0";
/// The CNI network of the conflist netctl writes (and upstream's kube-flannel.yml): host-local
/// keeps its reservations under this name.
pub const CNI_NETWORK: &str = "cbr0";
/// The wireguard backend's links (pkg/backend/wireguard at the pinned version).
const WG_LINKS: [&str; 2] = ["flannel-wg", "flannel-wg-v6"];
/// flanneld's packet filter at the pinned version (pkg/trafficmngr): with iptables, chains
/// FLANNEL-POSTRTG (nat) and FLANNEL-FWD (filter), each jumped to from a built-in chain by a rule
/// commented `flanneld masq` / `flanneld forward`; with nftables, its own tables.
pub const FIREWALL: Firewall<'static> = Firewall {
    chains: "^(FLANNEL-POSTRTG|FLANNEL-FWD)$",
    comments: "^flanneld (masq|forward)$",
    ifaces: "",
    nft_tables: &[("ip", "flannel-ipv4"), ("ip6", "flannel-ipv6")],
};

/// Indent every line by four spaces, for a YAML block scalar under a ConfigMap key.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Context of templates/flannel/flanneld-rbac.yaml.
#[derive(Serialize)]
struct RbacCtx<'a> {
    group: &'a str,
}

/// flanneld as a systemd unit authenticates with its certificate (O = the group bound here), so
/// the cluster needs the same ClusterRole the DaemonSet's service account gets.
fn systemd_cluster() -> ClusterPlan {
    let manifest = crate::template::template(
        "flannel/flanneld-rbac.yaml",
        &RbacCtx {
            group: crate::certs::FLANNELD_GROUP,
        },
    );
    ClusterPlan {
        files: vec![ClusterFile {
            path: RBAC_MANIFEST.into(),
            content: manifest,
        }],
        kubectl: vec![KubectlStep {
            title: "apply flanneld's RBAC".into(),
            args: vec!["apply".into(), "-f".into(), RBAC_MANIFEST.into()],
        }],
        kubectl_teardown: vec![KubectlStep {
            title: "delete flanneld's RBAC".into(),
            args: vec![
                "delete".into(),
                "-f".into(),
                RBAC_MANIFEST.into(),
                "--ignore-not-found".into(),
            ],
        }],
        local: vec![],
        copies: vec![],
    }
}

/// flanneld's traffic per backend (v0.28: vxlan on `Port`, default 8472; wireguard on
/// `ListenPort`, default 51820; host-gw routes via each peer's PublicIP), its interface
/// (`--iface`, else the default route's: LookupExtIface) and the plugins its conflist chains
/// from the node (the flannel plugin itself too, when netctl does not install it).
pub fn needs(cluster: &Cluster) -> Needs {
    let f = &cluster.profile.networking.flannel;
    let traffic = match f.backend {
        FlannelBackend::Vxlan => vec![Traffic {
            check: "vxlan",
            proto: Proto::Udp(f.port as u16),
            what: "flannel's VXLAN",
        }],
        FlannelBackend::Wireguard => vec![Traffic {
            check: "wireguard",
            proto: Proto::Udp(f.listen_port as u16),
            what: "flannel's WireGuard",
        }],
        FlannelBackend::HostGw => vec![],
    };
    let mut node_plugins = vec!["bridge", "host-local", "loopback", "portmap"];
    if f.deploy == FlannelDeploy::Systemd && f.cni_plugin.is_none() {
        node_plugins.push("flannel");
    }
    Needs {
        traffic,
        layer2: f.backend == FlannelBackend::HostGw,
        pod_mtu: f.mtu,
        overhead: f.backend.encap_overhead().unwrap_or(0),
        overlay: f.backend != FlannelBackend::HostGw,
        felix: false,
        iface: f.iface.clone().map_or(Iface::DefaultRoute, Iface::Named),
        node_plugins,
    }
}

/// The backend's device module.
pub fn modules(cluster: &Cluster) -> Vec<node_prereqs::Module> {
    match cluster.profile.networking.flannel.backend {
        FlannelBackend::Vxlan => vec![node_prereqs::VXLAN],
        FlannelBackend::Wireguard => vec![node_prereqs::WIREGUARD],
        FlannelBackend::HostGw => vec![],
    }
}

/// The DaemonSet (namespace, name) of the daemonset deploy; as a systemd unit there is none.
pub fn daemonset(cluster: &Cluster) -> Result<(&'static str, &'static str), String> {
    match cluster.profile.networking.flannel.deploy {
        FlannelDeploy::Daemonset => Ok(("kube-flannel", "kube-flannel-ds")),
        FlannelDeploy::Systemd => Err(
            "flannel runs as a systemd unit here (deploy: systemd): node.services covers it".into(),
        ),
    }
}

/// flanneld's lease: the profile's flannel MTU is the pod MTU, so FLANNEL_MTU itself.
pub fn route_check(cluster: &Cluster) -> RouteCheck {
    let f = &cluster.profile.networking.flannel;
    RouteCheck::FlannelLease {
        backend: f.backend,
        mtu: f.mtu,
    }
}

/// The flannel section of a new profile: flanneld as a unit, and what it needs before `plan`.
pub fn wizard_section(backend: &str) -> String {
    format!(
        "  # flanneld runs as a systemd unit on each worker (deploy: daemonset for the DaemonSet).\n  \
         flannel: {{ backend: {backend}, deploy: systemd }}\n\
         \n\
         # flanneld must trust the cluster's CA and present credentials the API server accepts:\n\
         # name one before `netctl plan` (docs/certs.md). Either the cluster's CA and its key\n\
         # (netctl issues each worker a certificate, renewed within 30 days of expiry; the\n\
         # hard-way ca.pem / ca-key.pem):\n\
         # pki: {{ caCert: ca.pem, caKey: ca-key.pem }}\n\
         # or the CA and a token of flannel's service account (networking.flannel.tokenFile):\n\
         # kubernetes: {{ caCertificate: ca.pem }}   # with flannel: {{ tokenFile: flannel.token }}\n\
         # netctl installs flanneld and flannel's CNI plugin from release files you name (before\n\
         # `netctl plan`), under flannel: with their sha256 (docs/profile.md):\n\
         #   flanneld: {{ file: flanneld-amd64, sha256: ... }}\n\
         #   cniPlugin: {{ file: flannel-amd64, sha256: ... }}\n",
    )
}

pub fn cluster(cluster: &Cluster) -> ClusterPlan {
    let f = &cluster.profile.networking.flannel;
    if f.deploy != FlannelDeploy::Daemonset {
        return systemd_cluster();
    }
    let net = &cluster.profile.networking;
    let manifest = crate::template::template(
        "flannel/kube-flannel.yaml",
        &ManifestCtx {
            version: &f.version,
            cni_plugin_version: FLANNEL_CNI_PLUGIN_VERSION,
            backend: f.backend.as_str(),
            cni_conf: indent(&json(&conflist(cluster))),
            net_conf: indent(&json(&net_conf(cluster))),
            args: flanneld_args(cluster),
            cni_bin_dir: &net.cni_bin_dir,
            cni_conf_dir: &net.cni_conf_dir,
        },
    );
    ClusterPlan {
        files: vec![ClusterFile {
            path: MANIFEST.into(),
            content: manifest,
        }],
        kubectl: vec![KubectlStep {
            title: "apply the flannel DaemonSet".into(),
            args: vec!["apply".into(), "-f".into(), MANIFEST.into()],
        }],
        kubectl_teardown: vec![KubectlStep {
            title: "delete the flannel DaemonSet".into(),
            args: vec![
                "delete".into(),
                "-f".into(),
                MANIFEST.into(),
                "--ignore-not-found".into(),
            ],
        }],
        local: vec![],
        copies: vec![],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::provider::kube::testkit::{check_manifest, cluster as profile, env, find};
    use crate::provider::node_plan;

    fn file<'a>(plan: &'a NodePlan, path: &str) -> &'a NodeFile {
        plan.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    /// flannel-host-gw-hard-way.md: host-gw, systemd, flanneld without -ip-masq.
    fn hard_way() -> Cluster {
        profile(
            "1.30",
            "",
            "  provider: flannel\n  flannel: { backend: host-gw, deploy: systemd, ipMasq: false }\n",
        )
    }

    /// flannel-vxlan-vagrant-and-gce-routes.md: DaemonSet, vxlan, --iface=enp0s8, 10.244.0.0/16.
    fn vagrant() -> Cluster {
        let c = profile(
            "1.30",
            "",
            "  provider: flannel\n  flannel: { backend: vxlan, deploy: daemonset, iface: enp0s8 }\n",
        );
        let text = serde_yaml::to_string(&c.profile)
            .unwrap()
            .replace("10.200.0.0/16", "10.244.0.0/16");
        crate::profile::load_str(&text, std::path::Path::new("vagrant.yaml")).unwrap()
    }

    /// Issue 11 item 7: flanneld as a systemd unit got neither flanneld nor the `flannel` CNI
    /// plugin, so every pod failed with "failed to find plugin flannel".
    #[test]
    fn systemd_flannel_installs_flanneld_and_the_cni_plugin() {
        let (d, p) = (b"flanneld stand-in".to_vec(), b"plugin stand-in".to_vec());
        let (ds, ps) = (
            crate::profile::sha256_hex(&d),
            crate::profile::sha256_hex(&p),
        );
        let c = profile(
            "1.30",
            "  binDir: /opt/k8s/bin\n",
            &format!(
                "  provider: flannel\n  cniBinDir: /usr/lib/cni\n  flannel:\n    backend: host-gw\n    deploy: systemd\n    flanneld: {{ file: flanneld, sha256: {ds} }}\n    cniPlugin: {{ file: flannel, sha256: {ps} }}\n"
            ),
        );
        let inputs = crate::provider::Inputs {
            binaries: [
                (ds.clone(), std::sync::Arc::new(d.clone())),
                (ps.clone(), std::sync::Arc::new(p.clone())),
            ]
            .into(),
            ..Default::default()
        };
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &inputs);
        let flanneld = file(&plan, "/opt/k8s/bin/flanneld");
        assert_eq!((flanneld.mode, flanneld.bytes()), (0o755, &d[..]));
        assert_eq!(flanneld.sha256(), ds);
        assert_eq!(flanneld.services, ["flanneld"]);
        let plugin = file(&plan, "/usr/lib/cni/flannel");
        assert_eq!((plugin.mode, plugin.bytes()), (0o755, &p[..]));
        assert_eq!(plugin.sha256(), ps);
        // The unit starts the flanneld it installed.
        assert!(file(&plan, UNIT)
            .content
            .contains("ExecStart=/opt/k8s/bin/flanneld \\\n"));
        // Controllers run no flanneld; the DaemonSet installs its own.
        assert!(node_plan(&c, c.node("controller-0").unwrap(), &inputs)
            .files
            .iter()
            .all(|f| f.blob.is_none()));
        let mut ds_cluster = c.clone();
        ds_cluster.profile.networking.flannel.deploy = FlannelDeploy::Daemonset;
        assert!(
            node_plan(&ds_cluster, ds_cluster.node("worker-0").unwrap(), &inputs)
                .files
                .iter()
                .all(|f| f.blob.is_none())
        );
    }

    #[test]
    fn hard_way_net_conf_equals_the_guide() {
        let c = hard_way();
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let conf = parse(&file(&plan, NET_CONF).content);
        assert_eq!(
            conf,
            json!({"Network": "10.200.0.0/16", "Backend": {"Type": "host-gw"}})
        );
    }

    #[test]
    fn hard_way_cni_delegates_with_default_gateway_and_masquerade() {
        let c = hard_way();
        let plan = node_plan(&c, c.node("worker-1").unwrap(), &Default::default());
        let conf = parse(&file(&plan, "/etc/cni/net.d/10-flannel.conflist").content);
        assert_eq!(
            conf,
            json!({"name": "cbr0", "cniVersion": "0.3.1", "plugins": [
                {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true, "ipMasq": true}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]})
        );
        let unit = &file(&plan, UNIT).content;
        assert!(!unit.contains("--ip-masq"), "{unit}");
    }

    #[test]
    fn masquerading_flanneld_leaves_the_bridge_alone() {
        let c = profile("1.30", "", "  provider: flannel\n");
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let conf = parse(&file(&plan, "/etc/cni/net.d/10-flannel.conflist").content);
        assert_eq!(
            conf["plugins"][0]["delegate"],
            json!({"hairpinMode": true, "isDefaultGateway": true})
        );
        assert!(file(&plan, UNIT).content.contains("  --ip-masq \\\n"));
    }

    #[test]
    fn systemd_unit_and_files() {
        let c = profile(
            "1.30",
            "  binDir: /opt/k8s/bin\n  nodeCIDRMaskSize: 25\n",
            "  provider: flannel\n  cniConfDir: /etc/cni/conf.d\n  flannel: { backend: vxlan, iface: enp0s8, vni: 4096, port: 4789, directRouting: true, mtu: 1400 }\n",
        );
        let plan = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        let unit = &file(&plan, UNIT).content;
        assert!(unit.contains("Environment=NODE_NAME=worker-0\n"), "{unit}");
        assert!(unit.contains("Restart=on-failure\n"));
        let exec = unit
            .split("ExecStart=")
            .nth(1)
            .unwrap()
            .split("\nRestart")
            .next()
            .unwrap();
        assert_eq!(
            exec,
            "/opt/k8s/bin/flanneld \\\n  --ip-masq \\\n  --kube-subnet-mgr \\\n  --iface=enp0s8 \\\n  --net-config-path=/etc/kube-flannel/net-conf.json \\\n  --kubeconfig-file=/etc/kube-flannel/kubeconfig"
        );
        assert_eq!(
            parse(&file(&plan, NET_CONF).content),
            json!({"Network": "10.200.0.0/16", "SubnetLen": 25,
                   "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789, "DirectRouting": true, "MTU": 1450}})
        );
        let kc = file(&plan, KUBECONFIG);
        assert_eq!(kc.mode, 0o600);
        let kc_yaml: serde_yaml::Value = serde_yaml::from_str(&kc.content).unwrap();
        assert_eq!(
            kc_yaml["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://10.240.0.10:6443")
        );
        assert_eq!(
            kc_yaml["clusters"][0]["cluster"]["certificate-authority"].as_str(),
            Some(CA)
        );
        assert_eq!(
            kc_yaml["users"][0]["user"]["client-certificate"].as_str(),
            Some(CERT)
        );
        assert_eq!(
            kc_yaml["users"][0]["user"]["client-key"].as_str(),
            Some(KEY)
        );
        assert!(plan
            .files
            .iter()
            .any(|f| f.path == "/etc/cni/conf.d/10-flannel.conflist"));
        for p in [UNIT, NET_CONF, KUBECONFIG] {
            assert_eq!(file(&plan, p).services, ["flanneld"], "{p}");
        }
        assert!(plan.units.contains(&Unit {
            name: "flanneld".into(),
            enable: true,
            restart: true
        }));
        // Controllers run no flanneld.
        let ctl = node(&c, c.node("controller-0").unwrap(), &Default::default());
        assert!(ctl.files.is_empty() && ctl.units.is_empty());
        // In systemd mode the cluster gets only the RBAC for flanneld's certificate identity.
        let cp = cluster(&c);
        assert_eq!(cp.files.len(), 1);
        assert_eq!(cp.kubectl[0].args, ["apply", "-f", RBAC_MANIFEST]);
        let docs = check_manifest(&cp.files[0].content);
        let binding = find(&docs, "ClusterRoleBinding", "netctl:flanneld");
        assert_eq!(binding["subjects"][0]["kind"], "Group");
        assert_eq!(binding["subjects"][0]["name"], crate::certs::FLANNELD_GROUP);
        assert_eq!(binding["roleRef"]["name"], "netctl:flanneld");
        let role = find(&docs, "ClusterRole", "netctl:flanneld");
        assert_eq!(role["rules"][2]["resources"][0], "nodes/status");
    }

    fn exec_start(c: &Cluster) -> String {
        let plan = node_plan(c, c.node("worker-0").unwrap(), &Default::default());
        let unit = file(&plan, UNIT).content.clone();
        unit.split("ExecStart=")
            .nth(1)
            .unwrap()
            .split("\nRestart")
            .next()
            .unwrap()
            .to_string()
    }

    /// flanneld's flags are the pinned release's: --net-config-path exists from v0.12.0 (flannel
    /// main.go, commit aac870ee); v0.8.0 (the hard-way guide's) reads the same fixed path
    /// /etc/kube-flannel/net-conf.json (subnet/kube/kube.go netConfPath) and would refuse the flag.
    #[test]
    fn flanneld_flags_follow_the_pinned_version() {
        let with = |version: &str| {
            profile(
                "1.30",
                "",
                &format!(
                    "  provider: flannel\n  flannel: {{ backend: host-gw, version: {version} }}\n"
                ),
            )
        };
        for (version, has_path) in [
            ("v0.8.0", false),
            ("v0.11.0", false),
            ("v0.12.0", true),
            ("v0.28.0", true),
        ] {
            let exec = exec_start(&with(version));
            assert_eq!(
                exec.contains("--net-config-path=/etc/kube-flannel/net-conf.json"),
                has_path,
                "{version}: {exec}"
            );
            // Known to both v0.8.0 and v0.28.0.
            for flag in ["--kube-subnet-mgr", "--kubeconfig-file=", "--ip-masq"] {
                assert!(exec.contains(flag), "{version}: {flag} in {exec}");
            }
        }
    }

    #[test]
    fn wireguard_backend_options() {
        let c = profile(
            "1.30",
            "",
            "  provider: flannel\n  flannel: { backend: wireguard, listenPort: 51821 }\n",
        );
        assert_eq!(
            serde_json::to_value(net_conf(&c)).unwrap(),
            json!({"Network": "10.200.0.0/16", "Backend": {"Type": "wireguard", "ListenPort": 51821}})
        );
        // `mtu` is the pod MTU: net-conf carries it plus wireguard's 80 bytes.
        let c = profile(
            "1.30",
            "",
            "  provider: flannel\n  flannel: { backend: wireguard, mtu: 1400 }\n",
        );
        assert_eq!(net_conf(&c).backend.mtu, Some(1480));
    }

    #[test]
    fn vagrant_daemonset_reproduces_the_guide() {
        let c = vagrant();
        let plan = cluster(&c);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].path, "kube-flannel.yaml");
        let docs = check_manifest(&plan.files[0].content);
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ClusterRole",
                "ClusterRoleBinding",
                "ServiceAccount",
                "ConfigMap",
                "DaemonSet"
            ]
        );
        for d in &docs {
            let api = d["apiVersion"].as_str().unwrap();
            assert!(
                ["v1", "apps/v1", "rbac.authorization.k8s.io/v1"].contains(&api),
                "{api}"
            );
        }
        let ns = find(&docs, "Namespace", "kube-flannel");
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
            Some("privileged")
        );

        let cm = find(&docs, "ConfigMap", "kube-flannel-cfg");
        let net = parse(cm["data"]["net-conf.json"].as_str().unwrap());
        assert_eq!(
            net,
            json!({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})
        );
        let cni = parse(cm["data"]["cni-conf.json"].as_str().unwrap());
        assert_eq!(cni["plugins"][0]["delegate"]["hairpinMode"], json!(true));
        assert_eq!(
            cni["plugins"][1],
            json!({"type": "portmap", "capabilities": {"portMappings": true}})
        );

        let ds = find(&docs, "DaemonSet", "kube-flannel-ds");
        let spec = &ds["spec"]["template"]["spec"];
        assert_eq!(spec["hostNetwork"].as_bool(), Some(true));
        assert_eq!(
            spec["priorityClassName"].as_str(),
            Some("system-node-critical")
        );
        let c0 = &spec["containers"][0];
        assert_eq!(
            c0["image"].as_str(),
            Some("ghcr.io/flannel-io/flannel:v0.28.0")
        );
        let args: Vec<_> = c0["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args, ["--ip-masq", "--kube-subnet-mgr", "--iface=enp0s8"]);
        let caps: Vec<_> = c0["securityContext"]["capabilities"]["add"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW"]);
        let names: Vec<_> = env(ds, "kube-flannel")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["POD_NAME", "POD_NAMESPACE", "EVENT_QUEUE_DEPTH"]);
        let init = spec["initContainers"].as_sequence().unwrap();
        assert_eq!(
            init[0]["image"].as_str(),
            Some("ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1")
        );
        assert_eq!(
            init[1]["args"][2].as_str(),
            Some("/etc/cni/net.d/10-flannel.conflist")
        );
        let paths: Vec<_> = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v["hostPath"]["path"].as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "/run/flannel",
                "/opt/cni/bin",
                "/etc/cni/net.d",
                "/run/xtables.lock"
            ]
        );

        assert_eq!(plan.kubectl[0].args, ["apply", "-f", "kube-flannel.yaml"]);
        assert_eq!(
            plan.kubectl_teardown[0].args,
            ["delete", "-f", "kube-flannel.yaml", "--ignore-not-found"]
        );
        // Workers get only the Kubernetes units: the DaemonSet installs the CNI config.
        let w = node_plan(&c, c.node("worker-0").unwrap(), &Default::default());
        assert!(!w
            .files
            .iter()
            .any(|f| f.path.starts_with(CONFIG_DIR) || f.path.ends_with(CONFLIST)));
        assert!(!w.units.iter().any(|u| u.name == "flanneld"));
    }

    #[test]
    fn teardown_removes_host_gw_routes_quoted() {
        let c = hard_way();
        let plan = node(&c, c.node("worker-0").unwrap(), &Default::default());
        let cmds: Vec<_> = plan.teardown.iter().map(|s| s.command.as_str()).collect();
        assert!(cmds[0].contains("systemctl stop flanneld"));
        assert!(
            cmds.iter()
                .any(|c| c.starts_with("ip -4 route show root 10.200.0.0/16 ")),
            "{cmds:?}"
        );
        assert!(cmds.iter().any(|c| c.contains("ip link delete flannel.1")));
    }
}
