//! The profile as written in YAML: plain serde structs mirroring the file, with defaults.
//! Unknown keys are errors everywhere (`deny_unknown_fields`) so a typo never falls back to a default.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[schemars(extend("const" = "netctl/v1"))]
    pub api_version: String,
    #[schemars(extend("const" = "ClusterProfile"))]
    pub kind: String,
    pub name: String,
    pub kubernetes: Kubernetes,
    pub networking: Networking,
    #[serde(default)]
    pub ssh: Ssh,
    /// Certificates netctl issues (flanneld as a systemd unit). Left out of the serialised profile
    /// (and so of its hash) while it holds only defaults.
    #[serde(default, skip_serializing_if = "Pki::is_default")]
    #[schemars(
        description = "Certificates netctl issues (flanneld as a systemd unit): docs/certs.md."
    )]
    pub pki: Pki,
    pub nodes: Vec<NodeSpec>,
}

/// Where the cluster CA and the certificates netctl issues live, on the operator's machine.
/// Relative paths are relative to the profile's directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pki {
    /// Default: `<profile dir>/<name>-pki`.
    #[serde(default)]
    pub dir: Option<String>,
    /// The CA that signs flanneld's client certificates, with `caKey`: the cluster's own (e.g.
    /// the hard-way ca.pem / ca-key.pem, kubeadm's /etc/kubernetes/pki/ca.crt / ca.key), which
    /// the API server trusts (--client-ca-file).
    #[serde(default)]
    pub ca_cert: Option<String>,
    #[serde(default)]
    pub ca_key: Option<String>,
    /// Sign with a CA netctl generates in `dir` instead: only for a cluster whose API server is
    /// told to trust it (--client-ca-file). Never the default: an existing cluster refuses it.
    #[serde(default, rename = "generateCA")]
    pub generate_ca: bool,
    /// Lifetime of the certificates netctl issues; they are renewed within 30 days of expiry.
    #[serde(default = "default_validity_days")]
    pub validity_days: u32,
}

impl Default for Pki {
    fn default() -> Self {
        Pki {
            dir: None,
            ca_cert: None,
            ca_key: None,
            generate_ca: false,
            validity_days: default_validity_days(),
        }
    }
}

impl Pki {
    pub fn is_default(&self) -> bool {
        *self == Pki::default()
    }
}

fn default_validity_days() -> u32 {
    365
}

/// A certificate expiring within this many days is renewed by `init` and fails `verify`. The
/// profile's: `pki.validityDays` must exceed it, or every run would renew.
pub const RENEW_WITHIN_DAYS: i64 = 30;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kubernetes {
    pub version: String,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: String,
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: String,
    #[serde(default = "default_node_mask", rename = "nodeCIDRMaskSize")]
    pub node_cidr_mask_size: u8,
    #[serde(default, rename = "clusterDNS")]
    pub cluster_dns: Option<String>,
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
    #[serde(default)]
    pub api_server: Option<String>,
    /// The kubeconfig for kubectl steps: a local path, or with `kubectlOn` a path on that node.
    /// Without either, cluster steps are skipped with that reason.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Run kubectl on this node over SSH (as root, through sudo where configured) instead of on
    /// this machine: where the admin kubeconfig lives on a controller, as in the hard-way guides.
    /// Left out of the serialised profile when unset, so profile hashes of existing profiles
    /// stay what they were.
    #[serde(default, rename = "kubectlOn", skip_serializing_if = "Option::is_none")]
    #[schemars(
        description = "Run kubectl on this node over SSH (as root, through sudo where configured) instead of on this machine: where the admin kubeconfig lives on a controller."
    )]
    pub kubectl_on: Option<String>,
    /// The cluster's CA certificate, a local file: what flanneld (as a systemd unit) verifies the
    /// API server with. Default: `pki.caCert`. Left out of the serialised profile when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        description = "The cluster's CA certificate, a local file: what flanneld (as a systemd unit) verifies the API server with. Default: `pki.caCert`."
    )]
    pub ca_certificate: Option<String>,
    #[serde(default)]
    pub container_runtime: ContainerRuntime,
    /// Where the Kubernetes binaries live on the nodes.
    #[serde(default = "default_bin_dir")]
    pub bin_dir: String,
    /// Render and manage the kubelet, kube-controller-manager and containerd configuration.
    /// false where another tool (kubeadm, a distribution) owns them and netctl does pod networking only.
    #[serde(default = "default_true")]
    pub manage_units: bool,
    /// On a node that already has a kubelet unit, controller-manager unit or containerd config:
    /// `edit` changes only the network settings in them; `own` replaces them whole with netctl's
    /// (the originals kept for `reset`). Left out of the serialised profile when `edit`, so
    /// profile hashes of existing profiles stay what they were.
    #[serde(default, skip_serializing_if = "UnitPolicy::is_edit")]
    #[schemars(
        description = "On a node that already has a kubelet unit, controller-manager unit or containerd config: `edit` changes only the network settings in them; `own` replaces them whole with netctl's (the originals kept for `reset`)."
    )]
    pub units: UnitPolicy,
}

/// Whose the Kubernetes units and containerd config are on a node that already has them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnitPolicy {
    /// The operator's: netctl edits only the network settings.
    #[default]
    Edit,
    /// netctl's: written whole.
    Own,
}

impl UnitPolicy {
    pub fn is_edit(&self) -> bool {
        *self == UnitPolicy::Edit
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRuntime {
    /// containerd 1.x, config version 2.
    #[default]
    Containerd,
    /// containerd 2.x, config version 3.
    Containerd2,
    /// Docker through the kubelet's dockershim (below Kubernetes 1.24 only): no containerd
    /// config, no CRI endpoint; the kubelet's network flags configure CNI.
    Docker,
}

#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Routes,
    Kubenet,
    Flannel,
    Calico,
    Canal,
    Weave,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Routes,
        ProviderKind::Kubenet,
        ProviderKind::Flannel,
        ProviderKind::Calico,
        ProviderKind::Canal,
        ProviderKind::Weave,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Routes => "routes",
            ProviderKind::Kubenet => "kubenet",
            ProviderKind::Flannel => "flannel",
            ProviderKind::Calico => "calico",
            ProviderKind::Canal => "canal",
            ProviderKind::Weave => "weave",
        }
    }
    pub fn parse(s: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networking {
    pub provider: ProviderKind,
    #[serde(default = "default_cni_bin_dir")]
    pub cni_bin_dir: String,
    #[serde(default = "default_cni_conf_dir")]
    pub cni_conf_dir: String,
    #[serde(default)]
    pub routes: RoutesOptions,
    #[serde(default)]
    pub kubenet: KubenetOptions,
    #[serde(default)]
    pub flannel: FlannelOptions,
    #[serde(default)]
    pub calico: CalicoOptions,
    #[serde(default)]
    pub canal: CanalOptions,
    #[serde(default)]
    pub weave: WeaveOptions,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RoutesBackend {
    #[default]
    HostGw,
    Vxlan,
    Gce,
    Aws,
}

impl RoutesBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutesBackend::HostGw => "host-gw",
            RoutesBackend::Vxlan => "vxlan",
            RoutesBackend::Gce => "gce",
            RoutesBackend::Aws => "aws",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutesOptions {
    #[serde(default)]
    pub backend: RoutesBackend,
    #[serde(default = "default_vni")]
    pub vni: u32,
    #[serde(default = "default_vxlan_port")]
    pub port: u32,
    /// VXLAN device and pod MTU; default 1450 (a 1500-byte underlay minus 50 for VXLAN).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// gce: the VPC network the routes are created in.
    #[serde(default)]
    pub gce_network: Option<String>,
    /// aws: the route table that receives one route per node.
    #[serde(default)]
    pub aws_route_table_id: Option<String>,
    /// aws: allow more than 50 nodes (AWS route tables hold 50 entries unless raised).
    #[serde(default)]
    pub allow_large_route_table: bool,
}

impl Default for RoutesOptions {
    fn default() -> Self {
        RoutesOptions {
            backend: RoutesBackend::HostGw,
            vni: default_vni(),
            port: default_vxlan_port(),
            mtu: None,
            gce_network: None,
            aws_route_table_id: None,
            allow_large_route_table: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubenetOptions {
    /// --network-plugin-mtu; default: left to kubelet.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// --non-masquerade-cidr; default: the cluster CIDR.
    #[serde(default)]
    pub non_masquerade_cidr: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FlannelBackend {
    HostGw,
    #[default]
    Vxlan,
    Wireguard,
}

impl FlannelBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            FlannelBackend::HostGw => "host-gw",
            FlannelBackend::Vxlan => "vxlan",
            FlannelBackend::Wireguard => "wireguard",
        }
    }
    /// What flanneld subtracts from the MTU in net-conf.json (or the interface's) to get the pod
    /// MTU it writes to subnet.env: flannel v0.28 vxlan_network.go `encapOverhead = 50`,
    /// wireguard_network.go `overhead = 80`. host-gw reads no MTU (route_network.go: the
    /// interface's). None: the backend has no MTU setting.
    pub fn encap_overhead(self) -> Option<u32> {
        match self {
            FlannelBackend::HostGw => None,
            FlannelBackend::Vxlan => Some(50),
            FlannelBackend::Wireguard => Some(80),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlannelDeploy {
    #[default]
    Systemd,
    Daemonset,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlannelOptions {
    #[serde(default)]
    pub backend: FlannelBackend,
    #[serde(default)]
    pub iface: Option<String>,
    #[serde(default)]
    pub deploy: FlannelDeploy,
    #[serde(default = "default_vni")]
    pub vni: u32,
    #[serde(default = "default_vxlan_port")]
    pub port: u32,
    #[serde(default)]
    pub direct_routing: bool,
    /// wireguard listen port.
    #[serde(default = "default_wireguard_port")]
    pub listen_port: u32,
    /// The pod MTU (as `routes.mtu` and `calico.mtu`): netctl writes it plus the backend's
    /// encapsulation overhead into net-conf.json, from which flannel derives it back.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The flannel release: the image tag (daemonset), and the flanneld whose flags the unit
    /// uses (systemd). `vMAJOR.MINOR.PATCH`.
    #[serde(default = "default_flannel_version")]
    pub version: String,
    #[serde(default = "default_true")]
    pub ip_masq: bool,
    /// A local file holding a token of flannel's service account (`kubectl create token flannel
    /// -n kube-flannel`): flanneld (systemd) authenticates with it instead of a certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// flanneld (deploy: systemd), a local file netctl installs as `<kubernetes.binDir>/flanneld`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flanneld: Option<BinaryFile>,
    /// flannel's CNI plugin (flannel-io/cni-plugin; deploy: systemd), a local file netctl installs
    /// as `<networking.cniBinDir>/flannel`: the DaemonSet's init container does that otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_plugin: Option<BinaryFile>,
}

/// A program on the operator's machine that netctl copies to nodes, pinned by its sha256: the
/// bytes are read and checked when a run that touches nodes starts, never by `render`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BinaryFile {
    /// Relative to the profile's directory unless absolute (`~/` expanded).
    pub file: String,
    /// Lowercase hex.
    pub sha256: String,
}

impl Default for FlannelOptions {
    fn default() -> Self {
        FlannelOptions {
            backend: FlannelBackend::default(),
            iface: None,
            deploy: FlannelDeploy::default(),
            vni: default_vni(),
            port: default_vxlan_port(),
            direct_routing: false,
            listen_port: default_wireguard_port(),
            mtu: None,
            version: default_flannel_version(),
            ip_masq: true,
            token_file: None,
            flanneld: None,
            cni_plugin: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
pub enum EncapMode {
    Always,
    CrossSubnet,
    #[default]
    Never,
}

impl EncapMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EncapMode::Always => "Always",
            EncapMode::CrossSubnet => "CrossSubnet",
            EncapMode::Never => "Never",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoOptions {
    #[serde(default = "default_calico_version")]
    pub version: String,
    /// A local copy of calico.yaml for air-gapped sites, used instead of the pinned upstream URL.
    #[serde(default)]
    pub manifest_file: Option<String>,
    /// The IPv4 pool; default: the cluster CIDR. Must lie inside it.
    #[serde(default, rename = "poolCIDR")]
    pub pool_cidr: Option<String>,
    #[serde(default = "default_always", rename = "ipipMode")]
    pub ipip_mode: EncapMode,
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default = "default_block_size")]
    pub block_size: u8,
}

impl Default for CalicoOptions {
    fn default() -> Self {
        CalicoOptions {
            version: default_calico_version(),
            manifest_file: None,
            pool_cidr: None,
            ipip_mode: EncapMode::Always,
            vxlan_mode: EncapMode::Never,
            mtu: None,
            block_size: default_block_size(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanalOptions {
    #[serde(default = "default_calico_version")]
    pub version: String,
    #[serde(default)]
    pub manifest_file: Option<String>,
    /// canal_iface: the interface flannel uses; default: chosen by flannel.
    #[serde(default)]
    pub iface: Option<String>,
    #[serde(default = "default_true")]
    pub masquerade: bool,
}

impl Default for CanalOptions {
    fn default() -> Self {
        CanalOptions {
            version: default_calico_version(),
            manifest_file: None,
            iface: None,
            masquerade: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeaveOptions {
    #[serde(default = "default_weave_version")]
    pub version: String,
    #[serde(default)]
    pub manifest_file: Option<String>,
    /// IPALLOC_RANGE; default: the cluster CIDR.
    #[serde(default)]
    pub ipalloc_range: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

impl Default for WeaveOptions {
    fn default() -> Self {
        WeaveOptions {
            version: default_weave_version(),
            manifest_file: None,
            ipalloc_range: None,
            mtu: None,
        }
    }
}

/// How nodes are reached. Connection fields are optional: a field the profile leaves out is taken from
/// ~/.ssh/config (or `config`) for the node, and only then from netctl's default (see `phase::connect`
/// and docs/ssh.md), so an explicit profile value always wins over the ssh config.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ssh {
    /// Default: ssh config `User`, else root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Default: ssh config `Port`, else 22.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default: ssh config `IdentityFile`s, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa. Agent keys are tried after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    /// Default: ssh config `UserKnownHostsFile`, else ~/.ssh/known_hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    /// An OpenSSH client config file; default: NETCTL_SSH_CONFIG, else ~/.ssh/config when it exists.
    /// `none` reads no config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default)]
    pub sudo: bool,
    /// `[user@]host[:port]`; default: ssh config `ProxyJump`.
    #[serde(default)]
    pub bastion: Option<String>,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds to wait for a TCP connection and the SSH handshake; default: ssh config `ConnectTimeout`, else 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u64>,
    /// Seconds any one remote command may take.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: u64,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            user: None,
            port: None,
            identity_file: None,
            known_hosts: None,
            config: None,
            sudo: false,
            bastion: None,
            concurrency: default_concurrency(),
            connect_timeout: None,
            command_timeout: default_command_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Controller,
    Worker,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    #[default]
    Systemd,
    /// No init system (lab netns nodes): units are written but restarts are reported as skipped.
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    pub address: String,
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
    #[serde(default, rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    #[serde(default)]
    pub init: InitSystem,
    /// Per-node SSH port, overriding ssh.port.
    #[serde(default)]
    pub ssh_port: Option<u16>,
    /// The cloud instance id (routes backend aws: the route's target).
    #[serde(default)]
    pub instance_id: Option<String>,
}

fn default_node_mask() -> u8 {
    24
}
fn default_cluster_domain() -> String {
    "cluster.local".into()
}
fn default_bin_dir() -> String {
    "/usr/local/bin".into()
}
fn default_cni_bin_dir() -> String {
    "/opt/cni/bin".into()
}
fn default_cni_conf_dir() -> String {
    "/etc/cni/net.d".into()
}
fn default_vni() -> u32 {
    1
}
fn default_vxlan_port() -> u32 {
    8472
}
fn default_wireguard_port() -> u32 {
    51820
}
fn default_true() -> bool {
    true
}
fn default_always() -> EncapMode {
    EncapMode::Always
}
fn default_block_size() -> u8 {
    26
}
// The pins live in pins.rs, each with its row in docs/providers.md.
pub use crate::pins::{CALICO_VERSION, FLANNEL_CNI_PLUGIN_VERSION, FLANNEL_VERSION, WEAVE_VERSION};

/// A flannel release, `vMAJOR.MINOR.PATCH` (pre-release suffixes such as `-rc1` are ignored):
/// what flanneld understands depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlannelRelease(pub u32, pub u32, pub u32);

impl FlannelRelease {
    pub fn parse(tag: &str) -> Option<FlannelRelease> {
        let rest = tag.strip_prefix('v')?;
        let core = rest.split_once('-').map_or(rest, |(c, _)| c);
        let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
        let r = FlannelRelease(it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(r)
    }
    /// `--net-config-path` (flannel main.go, commit aac870ee, first in v0.12.0); before it
    /// flanneld reads /etc/kube-flannel/net-conf.json, fixed (v0.8.0 subnet/kube/kube.go).
    pub fn has_net_config_path(self) -> bool {
        self >= FlannelRelease(0, 12, 0)
    }
    /// The wireguard backend (pkg/backend/wireguard, first in v0.16.0).
    pub fn has_wireguard(self) -> bool {
        self >= FlannelRelease(0, 16, 0)
    }
    /// The `MTU` option of the vxlan and wireguard backends (commit bd2e72e3, first in v0.21.3);
    /// earlier releases ignore it.
    pub fn has_backend_mtu(self) -> bool {
        self >= FlannelRelease(0, 21, 3)
    }
}

impl std::fmt::Display for FlannelRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.0, self.1, self.2)
    }
}
fn default_flannel_version() -> String {
    FLANNEL_VERSION.into()
}
fn default_calico_version() -> String {
    CALICO_VERSION.into()
}
fn default_weave_version() -> String {
    WEAVE_VERSION.into()
}
fn default_concurrency() -> usize {
    32
}
fn default_command_timeout() -> u64 {
    120
}
fn default_roles() -> Vec<Role> {
    vec![Role::Worker]
}
