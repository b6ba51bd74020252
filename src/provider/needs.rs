//! What a network needs of the nodes before it can work, for `netctl preflight`: the traffic that
//! must pass between every pair of nodes, whether peers must share a layer-2 segment, the size of
//! the packets the backend sends, how its daemon picks the node's interface, and which kernel
//! settings break it. Each provider's file answers for itself (`needs`); this is the data and the
//! one dispatch. Every value is the upstream program's at the pinned version (docs/preflight.md).

use serde::Serialize;

use crate::profile::{Cluster, ProviderKind};

/// Traffic every node must receive from every other node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// The check it is reported under: `preflight.<check>`.
    pub check: &'static str,
    pub proto: Proto,
    /// What sends it, for the report ("flannel's VXLAN").
    pub what: &'static str,
}

/// Also what preflight's agent listens on and probes (`preflight::agent::Listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp(u16),
    Tcp(u16),
    /// IP protocol 4.
    Ipip,
}

/// How the provider's daemon picks the interface (and so the address) it uses between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Iface {
    /// netctl hands it the node's profile address (routes).
    ProfileAddress,
    /// An interface named in the profile (flannel's `--iface`, canal's `canal_iface`).
    Named(String),
    /// The default route's interface (flanneld without `--iface`: LookupExtIface).
    DefaultRoute,
    /// The first interface, in the kernel's order, with a global IPv4 address that is not one of
    /// calico's skipped names (calico-node's IP_AUTODETECTION_METHOD default, `first-found`).
    FirstFound,
    /// Whatever the route to each peer's address leaves by (weave dials the peers' addresses).
    RouteToPeers,
    /// The kubelet itself, no daemon between nodes (kubenet).
    None,
}

/// Everything preflight checks for one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Needs {
    pub traffic: Vec<Traffic>,
    /// Routes point at peers' addresses directly: every peer must be on the uplink's segment.
    pub layer2: bool,
    /// The pods' MTU when the network fixes it; None: the uplink's MTU less `overhead` (what
    /// the daemon derives on each node).
    pub pod_mtu: Option<u32>,
    /// Bytes of encapsulation on top of a pod's packet.
    pub overhead: u32,
    /// An overlay: packets from remote pods to this node's own address arrive on the uplink while
    /// the route back to them leads into the tunnel, which strict rp_filter drops.
    pub overlay: bool,
    /// calico's Felix, which refuses to start when `net.ipv4.conf.all.rp_filter` is loose (2)
    /// unless FELIX_IGNORELOOSERPF is set (felix config `ignoreLooseRPF`).
    pub felix: bool,
    pub iface: Iface,
    /// CNI plugins the node must already have in cniBinDir: the ones the provider's CNI config
    /// chains that neither netctl nor the provider's DaemonSet installs.
    pub node_plugins: Vec<&'static str>,
}

impl Needs {
    /// The IP packet size a pod's largest packet becomes on the wire, on a node whose uplink has
    /// `uplink_mtu`.
    pub fn wire_size(&self, uplink_mtu: u32) -> u32 {
        match self.pod_mtu {
            Some(m) => m + self.overhead,
            None => uplink_mtu,
        }
    }
}

/// What the cluster's network needs (the profile's, or a switch's target).
pub fn needs(cluster: &Cluster) -> Needs {
    match cluster.provider() {
        ProviderKind::Routes => super::routes::needs(cluster),
        ProviderKind::Kubenet => super::kubenet::needs(cluster),
        ProviderKind::Flannel => super::flannel::needs(cluster),
        ProviderKind::Calico => super::calico::needs(cluster),
        ProviderKind::Canal => super::canal::needs(cluster),
        ProviderKind::Weave => super::weave::needs(cluster),
    }
}

/// The plugins of the bridge chain the kubelet's CNI config and containerd's own loopback use
/// (containernetworking-plugins): what flannel's and netctl's configs call from the node.
pub const BRIDGE_CHAIN: [&str; 3] = ["bridge", "host-local", "loopback"];
