//! Every rule a profile must satisfy, checked before anything touches a node. All problems are
//! collected (not just the first), each naming its field path. Names, interfaces and paths are
//! restricted to characters that are harmless in a shell: quoting is still used everywhere, this
//! is the second wall.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::{ContainerRuntime, KubeVersion, Problem, Profile, ProviderKind, RoutesBackend};

/// AWS VPC route tables hold 50 routes unless AWS raises the limit (kops-networking.md).
pub const AWS_ROUTE_TABLE_LIMIT: usize = 50;
pub const MTU_MIN: u32 = 576;
pub const MTU_MAX: u32 = 9000;
pub const VNI_MAX: u32 = 16_777_215;
/// Nodes worked on at once. Far above any useful SSH fan-out from one machine, and far below
/// tokio's semaphore limit (`usize::MAX >> 3`), which panics when exceeded.
pub const MAX_CONCURRENCY: usize = 1024;
/// The longest connect or command timeout, in seconds (a day): longer is a typo, and 2^64-1
/// seconds overflows the deadline (`Instant + Duration` panics).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// The service range must hold the default clusterDNS, its tenth address.
const DEFAULT_DNS_INDEX: u32 = 10;

/// The parsed values validation produced, so nothing parses them twice.
pub struct Checked {
    pub version: KubeVersion,
    pub cluster_cidr: Ipv4Network,
    pub service_cidr: Ipv4Network,
    pub cluster_dns: Ipv4Addr,
    pub addresses: Vec<Option<Ipv4Addr>>,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(field, message));
    }
}

/// A DNS-1123 label: what Kubernetes accepts as a node name, and safe in a shell.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Linux interface name (IFNAMSIZ 16 with the NUL), restricted to shell-safe characters.
pub fn is_iface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A path or user name made only of characters that need no quoting.
pub fn is_safe_path(s: &str) -> bool {
    !s.is_empty()
        && !s.split('/').any(|c| c == "..")
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~' | b'+' | b'@')
        })
}

fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !s.starts_with('-')
}

fn parse_net(p: &mut Problems, field: &str, value: &str) -> Option<Ipv4Network> {
    match value.parse::<Ipv4Network>() {
        Ok(net) if value.contains('/') => {
            if net.network() != net.ip() {
                p.add(
                    field,
                    format!(
                        "{value} has host bits set; the network is {}/{}",
                        net.network(),
                        net.prefix()
                    ),
                );
                None
            } else {
                Some(net)
            }
        }
        _ => {
            p.add(
                field,
                format!("{value:?} is not an IPv4 CIDR such as 10.200.0.0/16"),
            );
            None
        }
    }
}

fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

fn check_port(p: &mut Problems, field: &str, port: u32) {
    if !(1..=65535).contains(&port) {
        p.add(field, format!("{port} is not a port (1-65535)"));
    }
}

fn check_vni(p: &mut Problems, field: &str, vni: u32) {
    if !(1..=VNI_MAX).contains(&vni) {
        p.add(field, format!("{vni} is not a VXLAN VNI (1-{VNI_MAX})"));
    }
}

fn check_mtu(p: &mut Problems, field: &str, mtu: Option<u32>) {
    if let Some(m) = mtu {
        if !(MTU_MIN..=MTU_MAX).contains(&m) {
            p.add(
                field,
                format!("{m} is not a usable MTU ({MTU_MIN}-{MTU_MAX})"),
            );
        }
    }
}

fn check_timeout(p: &mut Problems, field: &str, secs: u64) {
    if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
        p.add(
            field,
            format!("{secs} must be between 1 and {MAX_TIMEOUT_SECS} seconds (a day)"),
        );
    }
}

fn check_iface(p: &mut Problems, field: &str, iface: &Option<String>) {
    if let Some(i) = iface {
        if !is_iface_name(i) {
            p.add(
                field,
                format!("{i:?} is not a valid Linux interface name (1-15 of a-z A-Z 0-9 . _ -)"),
            );
        }
    }
}

/// What `sha256sum` prints and state.json records: 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_path(p: &mut Problems, field: &str, value: &str) {
    if !is_safe_path(value) {
        p.add(
            field,
            format!(
                "{value:?} has characters outside a-z A-Z 0-9 / . _ - ~ + @, or a '..' component"
            ),
        );
    }
}

/// Why `value` is not usable as a path on a node, if it is not: it must be absolute and normal
/// (no empty, `.` or `..` component), made of shell-safe characters, and no component may start
/// with `-` (an option to the commands it is passed to), `@` or `+` (systemd ExecStart prefixes).
/// With `home`, a `~/` start (the SSH user's home on the node) stands for the leading `/`.
pub fn node_path_problem(value: &str, home: bool) -> Option<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Some(format!("{value:?} contains the control character {c:?}"));
    }
    let rest = match (value.strip_prefix('/'), value.strip_prefix("~/")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if home => rest,
        _ if home => {
            return Some(format!(
                "{value:?} must be an absolute path on the node (or start with ~/)"
            ))
        }
        _ => {
            return Some(format!(
                "{value:?} must be an absolute path on the node (start with /)"
            ))
        }
    };
    if !is_safe_path(value) {
        return Some(format!(
            "{value:?} has characters outside a-z A-Z 0-9 / . _ - ~ + @, or a '..' component"
        ));
    }
    for component in rest.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Some(format!(
                "{value:?} is not a normal path: no empty, '.' or '..' components (and no trailing /)"
            ));
        }
        if component.starts_with(['-', '@', '+']) {
            return Some(format!(
                "{value:?}: the component {component:?} starts with '{}' (read as an option or a systemd ExecStart prefix)",
                &component[..1]
            ));
        }
    }
    None
}

/// One rule for every profile field that becomes a path on a node.
fn check_node_path(p: &mut Problems, field: &str, value: &str, home: bool) {
    if let Some(message) = node_path_problem(value, home) {
        p.add(field, message);
    }
}

fn check_version_tag(p: &mut Problems, field: &str, value: &str) {
    let ok = value.starts_with('v')
        && value.len() > 1
        && value[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !ok {
        p.add(
            field,
            format!("{value:?} is not a release tag such as v3.31.0"),
        );
    }
}

pub fn validate(profile: &Profile) -> Result<Checked, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    if profile.api_version != "netctl/v1" {
        p.add(
            "apiVersion",
            format!("{:?} is not supported; use netctl/v1", profile.api_version),
        );
    }
    if profile.kind != "ClusterProfile" {
        p.add(
            "kind",
            format!("{:?} is not supported; use ClusterProfile", profile.kind),
        );
    }
    if !is_dns_label(&profile.name) {
        p.add(
            "name",
            format!(
                "{:?} is not a DNS-1123 label (a-z, 0-9, '-', at most 63)",
                profile.name
            ),
        );
    }

    let k = &profile.kubernetes;
    let version = KubeVersion::parse(&k.version);
    if version.is_none() {
        p.add(
            "kubernetes.version",
            format!(
                "{:?} is not a Kubernetes version such as \"1.30\"",
                k.version
            ),
        );
    }
    let cluster = parse_net(&mut p, "kubernetes.clusterCIDR", &k.cluster_cidr);
    let service = parse_net(&mut p, "kubernetes.serviceCIDR", &k.service_cidr);
    if let (Some(c), Some(s)) = (cluster, service) {
        if overlaps(c, s) {
            p.add(
                "kubernetes.serviceCIDR",
                format!("{s} overlaps clusterCIDR {c}: pod and service addresses would collide"),
            );
        }
    }
    let mask = k.node_cidr_mask_size;
    if let Some(c) = cluster {
        if mask < c.prefix() || mask > 30 {
            p.add(
                "kubernetes.nodeCIDRMaskSize",
                format!(
                    "{mask} must lie between the clusterCIDR prefix ({}) and 30",
                    c.prefix()
                ),
            );
        }
    }
    let cluster_dns = match (&k.cluster_dns, service) {
        (Some(d), s) => match d.parse::<Ipv4Addr>() {
            Ok(ip) => {
                if let Some(s) = s {
                    if !s.contains(ip) {
                        p.add(
                            "kubernetes.clusterDNS",
                            format!("{ip} is outside serviceCIDR {s}"),
                        );
                    }
                }
                Some(ip)
            }
            Err(_) => {
                p.add(
                    "kubernetes.clusterDNS",
                    format!("{d:?} is not an IPv4 address"),
                );
                None
            }
        },
        // The hard-way convention: the tenth address of the service range.
        (None, Some(s)) => {
            let dns = s.nth(DEFAULT_DNS_INDEX);
            if dns.is_none() {
                p.add(
                    "kubernetes.clusterDNS",
                    format!("serviceCIDR {s} has no tenth address for the default clusterDNS; set clusterDNS, or use a /28 or larger serviceCIDR"),
                );
            }
            dns
        }
        (None, None) => None,
    };
    if !is_dns_label_path(&k.cluster_domain) {
        p.add(
            "kubernetes.clusterDomain",
            format!("{:?} is not a DNS domain", k.cluster_domain),
        );
    }
    if let Some(api) = &k.api_server {
        let ok = api.starts_with("https://")
            && api.len() > 8
            && api[8..].bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'/')
            });
        if !ok {
            p.add(
                "kubernetes.apiServer",
                format!("{api:?} is not an https:// URL"),
            );
        }
    }
    match (&k.kubeconfig, &k.kubectl_on) {
        // With kubectlOn the kubeconfig is a path on that node.
        (Some(kc), Some(_)) => check_node_path(&mut p, "kubernetes.kubeconfig", kc, true),
        (Some(kc), None) => check_path(&mut p, "kubernetes.kubeconfig", kc),
        (None, _) => {}
    }
    if let Some(on) = &k.kubectl_on {
        if !profile.nodes.iter().any(|n| &n.name == on) {
            p.add(
                "kubernetes.kubectlOn",
                format!("{on:?} is not a node of this profile; name the node kubectl runs on"),
            );
        }
    }
    check_node_path(&mut p, "kubernetes.binDir", &k.bin_dir, false);

    let n = &profile.networking;
    check_node_path(&mut p, "networking.cniBinDir", &n.cni_bin_dir, false);
    check_node_path(&mut p, "networking.cniConfDir", &n.cni_conf_dir, false);
    if let (Some(v), ProviderKind::Kubenet) = (version, n.provider) {
        if !v.kubelet_has_network_plugin() {
            p.add(
                "networking.provider",
                format!("kubenet needs the kubelet's --network-plugin flag, removed in Kubernetes 1.24; version {v} has none. Use a CNI provider, or a version below 1.24"),
            );
        } else if k.container_runtime != ContainerRuntime::Docker {
            // The kubelet runs kubenet only inside dockershim; with a remote runtime (containerd)
            // it ignores --network-plugin and the node never gets a pod network.
            p.add(
                "kubernetes.containerRuntime",
                format!("kubenet is the kubelet's dockershim network plugin: with {} the kubelet ignores --network-plugin=kubenet and the node stays NotReady. Set containerRuntime: docker (dockershim, below 1.24), or use provider routes, which gives each node a bridge CNI config with its podCIDR (what kops does for kubenet on containerd)", serde_yaml::to_string(&k.container_runtime).unwrap_or_default().trim()),
            );
        }
    }
    if let (Some(v), ContainerRuntime::Docker) = (version, k.container_runtime) {
        if !v.kubelet_has_network_plugin() {
            p.add(
                "kubernetes.containerRuntime",
                format!("docker runs through the kubelet's dockershim, removed in Kubernetes 1.24; version {v} has none. Use containerd or containerd2"),
            );
        }
    }
    let r = &n.routes;
    check_vni(&mut p, "networking.routes.vni", r.vni);
    check_port(&mut p, "networking.routes.port", r.port);
    check_mtu(&mut p, "networking.routes.mtu", r.mtu);
    if n.provider == ProviderKind::Routes {
        match r.backend {
            RoutesBackend::Gce => match &r.gce_network {
                Some(net) if is_dns_label(net) => {}
                Some(net) => p.add(
                    "networking.routes.gceNetwork",
                    format!("{net:?} is not a GCE network name"),
                ),
                None => p.add(
                    "networking.routes.gceNetwork",
                    "the gce backend needs the VPC network to create routes in",
                ),
            },
            RoutesBackend::Aws => {
                match &r.aws_route_table_id {
                    Some(id)
                        if id.starts_with("rtb-")
                            && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
                            && id.len() > 4 => {}
                    Some(id) => p.add(
                        "networking.routes.awsRouteTableId",
                        format!("{id:?} is not a route table id (rtb-...)"),
                    ),
                    None => p.add(
                        "networking.routes.awsRouteTableId",
                        "the aws backend needs the route table that receives the routes",
                    ),
                }
                let workers = profile
                    .nodes
                    .iter()
                    .filter(|n| n.roles.contains(&super::Role::Worker))
                    .count();
                if workers > AWS_ROUTE_TABLE_LIMIT && !r.allow_large_route_table {
                    p.add(
                        "networking.routes.backend",
                        format!("aws with {workers} nodes: an AWS route table holds {AWS_ROUTE_TABLE_LIMIT} routes (one per node), so more than {AWS_ROUTE_TABLE_LIMIT} nodes fail unless AWS raised your limit; set networking.routes.allowLargeRouteTable: true if it did"),
                    );
                }
            }
            _ => {}
        }
    }
    check_mtu(&mut p, "networking.kubenet.mtu", n.kubenet.mtu);
    if let Some(c) = &n.kubenet.non_masquerade_cidr {
        parse_net(&mut p, "networking.kubenet.nonMasqueradeCIDR", c);
    }
    let f = &n.flannel;
    check_iface(&mut p, "networking.flannel.iface", &f.iface);
    check_vni(&mut p, "networking.flannel.vni", f.vni);
    check_port(&mut p, "networking.flannel.port", f.port);
    check_port(&mut p, "networking.flannel.listenPort", f.listen_port);
    check_mtu(&mut p, "networking.flannel.mtu", f.mtu);
    if let Some(m) = f.mtu.filter(|m| (MTU_MIN..=MTU_MAX).contains(m)) {
        // `mtu` is the pod MTU; net-conf.json carries it plus the encapsulation.
        match f.backend.encap_overhead() {
            None => p.add(
                "networking.flannel.mtu",
                format!("{m}: flannel's {} backend has no MTU setting (pods get the interface's MTU); remove it", f.backend.as_str()),
            ),
            Some(o) if m + o > MTU_MAX => p.add(
                "networking.flannel.mtu",
                format!("{m} is the pod MTU: with {}'s {o} bytes of encapsulation the underlay would need {}, above {MTU_MAX}", f.backend.as_str(), m + o),
            ),
            Some(_) => {}
        }
    }
    check_version_tag(&mut p, "networking.flannel.version", &f.version);
    match super::FlannelRelease::parse(&f.version) {
        None => p.add(
            "networking.flannel.version",
            format!(
                "{:?} is not a flannel release such as {}: flanneld's flags depend on it",
                f.version,
                super::FLANNEL_VERSION
            ),
        ),
        Some(r) => {
            if f.backend == super::FlannelBackend::Wireguard && !r.has_wireguard() {
                p.add(
                    "networking.flannel.backend",
                    format!("flannel {r} has no wireguard backend (it came in v0.16.0)"),
                );
            }
            if f.mtu.is_some() && !r.has_backend_mtu() {
                p.add(
                    "networking.flannel.mtu",
                    format!("flannel {r} ignores a backend MTU (read from v0.21.3 on); remove it or pin a later version"),
                );
            }
        }
    }
    let c = &n.calico;
    check_version_tag(&mut p, "networking.calico.version", &c.version);
    if let Some(m) = &c.manifest_file {
        check_path(&mut p, "networking.calico.manifestFile", m);
    }
    check_mtu(&mut p, "networking.calico.mtu", c.mtu);
    if c.ipip_mode != super::EncapMode::Never && c.vxlan_mode != super::EncapMode::Never {
        p.add(
            "networking.calico.vxlanMode",
            "ipipMode and vxlanMode cannot both be enabled on one pool",
        );
    }
    let pool = c
        .pool_cidr
        .as_deref()
        .and_then(|v| parse_net(&mut p, "networking.calico.poolCIDR", v));
    if let (Some(pool), Some(cl)) = (pool, cluster) {
        if !cl.contains(pool.network()) || pool.prefix() < cl.prefix() {
            p.add(
                "networking.calico.poolCIDR",
                format!("{pool} must lie inside clusterCIDR {cl}"),
            );
        }
    }
    let pool_prefix = pool.or(cluster).map(|n| n.prefix()).unwrap_or(0);
    if !(20..=32).contains(&c.block_size) || c.block_size < pool_prefix {
        p.add(
            "networking.calico.blockSize",
            format!(
                "{} must lie between 20 and 32 and be no shorter than the pool prefix",
                c.block_size
            ),
        );
    }
    let cn = &n.canal;
    check_version_tag(&mut p, "networking.canal.version", &cn.version);
    check_iface(&mut p, "networking.canal.iface", &cn.iface);
    if let Some(m) = &cn.manifest_file {
        check_path(&mut p, "networking.canal.manifestFile", m);
    }
    let w = &n.weave;
    check_version_tag(&mut p, "networking.weave.version", &w.version);
    if let Some(m) = &w.manifest_file {
        check_path(&mut p, "networking.weave.manifestFile", m);
    }
    check_mtu(&mut p, "networking.weave.mtu", w.mtu);
    if let Some(range) = w
        .ipalloc_range
        .as_deref()
        .and_then(|v| parse_net(&mut p, "networking.weave.ipallocRange", v))
    {
        if let Some(cl) = cluster {
            if !cl.contains(range.network()) || range.prefix() < cl.prefix() {
                p.add(
                    "networking.weave.ipallocRange",
                    format!("{range} must lie inside clusterCIDR {cl}"),
                );
            }
        }
    }

    let s = &profile.ssh;
    if let Some(user) = &s.user {
        if !is_user_name(user) {
            p.add("ssh.user", format!("{user:?} is not a user name"));
        }
    }
    if s.port == Some(0) {
        p.add("ssh.port", "0 is not a port");
    }
    for (field, path) in [
        ("ssh.identityFile", &s.identity_file),
        ("ssh.knownHosts", &s.known_hosts),
        ("ssh.config", &s.config),
    ] {
        if let Some(path) = path {
            check_path(&mut p, field, path);
        }
    }
    if !(1..=MAX_CONCURRENCY).contains(&s.concurrency) {
        p.add(
            "ssh.concurrency",
            format!("{} must be between 1 and {MAX_CONCURRENCY}", s.concurrency),
        );
    }
    if let Some(t) = s.connect_timeout {
        check_timeout(&mut p, "ssh.connectTimeout", t);
    }
    check_timeout(&mut p, "ssh.commandTimeout", s.command_timeout);
    if let Some(b) = &s.bastion {
        let ok = b
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'@'));
        let parsed = super::jump::parse_jump(b);
        if !ok || parsed.is_err() {
            p.add("ssh.bastion", format!("{b:?} is not [user@]host[:port]"));
        }
    }

    let k = &profile.pki;
    if let Some(d) = &k.dir {
        check_path(&mut p, "pki.dir", d);
    }
    match (&k.ca_cert, &k.ca_key) {
        (Some(c), Some(key)) => {
            check_path(&mut p, "pki.caCert", c);
            check_path(&mut p, "pki.caKey", key);
        }
        (Some(_), None) => p.add("pki.caKey", "pki.caCert needs the CA's key to sign with"),
        (None, Some(_)) => p.add(
            "pki.caCert",
            "pki.caKey needs the CA certificate it belongs to",
        ),
        (None, None) => {}
    }
    if k.generate_ca && k.ca_cert.is_some() {
        p.add(
            "pki.generateCA",
            "pki.caCert names the CA to sign with; generateCA makes one: choose one",
        );
    }
    if let Some(c) = &profile.kubernetes.ca_certificate {
        check_path(&mut p, "kubernetes.caCertificate", c);
    }
    let fl = &profile.networking.flannel;
    for (field, b) in [
        ("networking.flannel.flanneld", &fl.flanneld),
        ("networking.flannel.cniPlugin", &fl.cni_plugin),
    ] {
        if let Some(b) = b {
            check_path(&mut p, &format!("{field}.file"), &b.file);
            if !is_sha256_hex(&b.sha256) {
                p.add(
                    format!("{field}.sha256"),
                    format!("{:?} is not a sha256: 64 lowercase hex digits", b.sha256),
                );
            }
        }
    }
    if let Some(t) = &profile.networking.flannel.token_file {
        check_path(&mut p, "networking.flannel.tokenFile", t);
        if k.ca_key.is_some() || k.generate_ca {
            p.add(
                "networking.flannel.tokenFile",
                "flanneld authenticates with a token or with a certificate (pki.caKey, pki.generateCA): choose one",
            );
        }
    }
    // At 30 days or less every run would find the certificate inside the renewal window.
    if k.validity_days <= super::RENEW_WITHIN_DAYS as u32 || k.validity_days > 3650 {
        p.add(
            "pki.validityDays",
            format!(
                "{} must be between {} and 3650: certificates are renewed within {} days of expiry",
                k.validity_days,
                super::RENEW_WITHIN_DAYS + 1,
                super::RENEW_WITHIN_DAYS
            ),
        );
    }

    if profile.nodes.is_empty() {
        p.add("nodes", "a profile needs at least one node");
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addrs: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut addresses = Vec::with_capacity(profile.nodes.len());
    for (i, node) in profile.nodes.iter().enumerate() {
        let f = |k: &str| format!("nodes[{i}].{k}");
        if !is_dns_label(&node.name) {
            p.add(
                f("name"),
                format!(
                    "{:?} is not a DNS-1123 label (a-z, 0-9, '-', at most 63)",
                    node.name
                ),
            );
        } else if let Some(j) = first_seen(&mut names, node.name.as_str(), i) {
            p.add(
                f("name"),
                format!("{:?} is also the name of nodes[{j}]", node.name),
            );
        }
        if node.roles.is_empty() {
            p.add(
                f("roles"),
                "a node needs at least one role (controller, worker)",
            );
        }
        let addr = match node.address.parse::<Ipv4Addr>() {
            Ok(a) => {
                if let Some(j) = first_seen(&mut addrs, a, i) {
                    p.add(
                        f("address"),
                        format!("{a} is also the address of nodes[{j}]"),
                    );
                }
                if let Some(c) = cluster {
                    if c.contains(a) {
                        p.add(f("address"), format!("{a} lies inside clusterCIDR {c}: node and pod addresses would collide"));
                    }
                }
                if let Some(s) = service {
                    if s.contains(a) {
                        p.add(f("address"), format!("{a} lies inside serviceCIDR {s}"));
                    }
                }
                Some(a)
            }
            Err(_) => {
                p.add(
                    f("address"),
                    format!("{:?} is not an IPv4 address", node.address),
                );
                None
            }
        };
        addresses.push(addr);
        if let Some(id) = &node.instance_id {
            let ok = id.starts_with("i-")
                && id.len() > 2
                && id[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                p.add(
                    f("instanceId"),
                    format!("{id:?} is not an EC2 instance id (i-...)"),
                );
            }
        } else if profile.networking.provider == ProviderKind::Routes
            && profile.networking.routes.backend == RoutesBackend::Aws
            && node.roles.contains(&super::Role::Worker)
        {
            p.add(
                f("instanceId"),
                "the aws routes backend needs each worker's instance id (the route's target)",
            );
        }
        if node.ssh_port == Some(0) {
            p.add(f("sshPort"), "0 is not a port");
        }
    }
    // podCIDR rules need the cluster CIDR and mask to be sound.
    if let Some(c) = cluster.filter(|c| mask >= c.prefix() && mask <= 30) {
        // Every given podCIDR that gets this far is a /mask inside clusterCIDR, so two overlap
        // exactly when they are the same block: one lookup each, not a scan of all before it.
        let mut given: HashMap<Ipv4Network, usize> = HashMap::new();
        for (i, node) in profile.nodes.iter().enumerate() {
            let Some(v) = &node.pod_cidr else { continue };
            let field = format!("nodes[{i}].podCIDR");
            let Some(net) = parse_net(&mut p, &field, v) else {
                continue;
            };
            if !c.contains(net.network()) || net.prefix() < c.prefix() {
                p.add(&field, format!("{net} is outside clusterCIDR {c}"));
            } else if net.prefix() != mask {
                p.add(
                    &field,
                    format!(
                        "{net} is a /{}, but nodeCIDRMaskSize is {mask}",
                        net.prefix()
                    ),
                );
            } else if let Some(j) = first_seen(&mut given, net, i) {
                p.add(&field, format!("{net} is also the podCIDR of nodes[{j}]"));
            }
        }
        let needed = profile
            .nodes
            .iter()
            .filter(|n| n.pod_cidr.is_some() || n.roles.contains(&super::Role::Worker))
            .count() as u64;
        let fit = 1u64 << (mask - c.prefix());
        if needed > fit {
            p.add(
                "kubernetes.nodeCIDRMaskSize",
                format!(
                    "clusterCIDR {c} holds {fit} blocks of /{mask}, but {needed} nodes need one"
                ),
            );
        }
    }

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Checked {
        version: version.expect("checked"),
        cluster_cidr: cluster.expect("checked"),
        service_cidr: service.expect("checked"),
        cluster_dns: cluster_dns.expect("checked"),
        addresses,
    })
}

/// The index that had `key` first, if one did; else `i` is recorded as having it. Every repeat
/// names the same first holder, however many there are.
fn first_seen<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, usize>,
    key: K,
    i: usize,
) -> Option<usize> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(i);
            None
        }
    }
}

fn is_dns_label_path(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_metacharacters_are_not_names() {
        for bad in [
            "a;b", "a b", "$(x)", "`x`", "a|b", "a&b", "a'b", "a\"b", "a\nb", "A", "-a", "",
        ] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        for bad in ["eth0;rm", "e th", "$(x)", "abcdefghijklmnop", "..", "a/b"] {
            assert!(!is_iface_name(bad), "{bad:?}");
        }
        for bad in ["/a b", "/a;b", "/a/../b", "$HOME/x", "/x`y`"] {
            assert!(!is_safe_path(bad), "{bad:?}");
        }
        assert!(is_dns_label("worker-0"));
        assert!(is_iface_name("enp0s8"));
        assert!(is_safe_path("~/.ssh/id_ed25519"));
    }

    #[test]
    fn node_paths_are_absolute_and_normal() {
        for good in ["/usr/local/bin", "/etc/cni/net.d", "/opt/cni-1.0/bin"] {
            assert_eq!(node_path_problem(good, false), None, "{good}");
        }
        assert_eq!(node_path_problem("~/admin.kubeconfig", true), None);
        for bad in [
            "etc/cni/net.d",
            "+/usr/bin",
            "/usr/+bin",
            "/usr/@bin",
            "/usr/-bin",
            "-/usr/bin",
            "/etc//cni",
            "/etc/./cni",
            "/etc/../cni",
            "/etc/cni/",
            "/",
            "",
            "/etc/cni\n",
            "/etc/c\tni",
            "~/admin.kubeconfig",
            "~admin/x",
        ] {
            assert!(node_path_problem(bad, false).is_some(), "{bad:?}");
        }
        assert!(node_path_problem("~/../x", true).is_some());
        assert!(node_path_problem("admin.kubeconfig", true).is_some());
    }

    fn problems(nodes: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes\nnodes:\n{nodes}"
        );
        let profile = crate::profile::parse(&text, std::path::Path::new("t.yaml")).unwrap();
        match validate(&profile) {
            Ok(_) => vec![],
            Err(p) => p.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// Each repeat of a name, an address or a podCIDR is reported, naming the node that had it
    /// first; what is unique is not.
    #[test]
    fn every_duplicate_is_reported_against_the_first() {
        let got = problems(
            "  - {name: a, address: 10.0.0.1, podCIDR: 10.200.7.0/24}\n\
             \x20 - {name: b, address: 10.0.0.2, podCIDR: 10.200.8.0/24}\n\
             \x20 - {name: a, address: 10.0.0.1, podCIDR: 10.200.7.0/24}\n\
             \x20 - {name: c, address: 10.0.0.3}\n\
             \x20 - {name: a, address: 10.0.0.1, podCIDR: 10.200.7.0/24}\n\
             \x20 - {name: b, address: 10.0.0.2, podCIDR: 10.200.8.0/24}\n",
        );
        let mut want = Vec::new();
        for (i, j, name, addr, cidr) in [
            (2, 0, "a", "10.0.0.1", "10.200.7.0/24"),
            (4, 0, "a", "10.0.0.1", "10.200.7.0/24"),
            (5, 1, "b", "10.0.0.2", "10.200.8.0/24"),
        ] {
            want.push(format!(
                "nodes[{i}].name: \"{name}\" is also the name of nodes[{j}]"
            ));
            want.push(format!(
                "nodes[{i}].address: {addr} is also the address of nodes[{j}]"
            ));
            want.push(format!(
                "nodes[{i}].podCIDR: {cidr} is also the podCIDR of nodes[{j}]"
            ));
        }
        let mut got_sorted = got.clone();
        got_sorted.sort();
        want.sort();
        assert_eq!(got_sorted, want, "{got:#?}");
    }
}
