//! What a node runs: a provider and, where the provider has them, its backend, as one typed value.
//! It is the only place backend names are read or written: the switch flags (`--networking`,
//! `--from`, `--backend`), the switch record in state.json and every report go through it, so a
//! provider/backend pair that does not exist cannot be built.
//!
//! A backend left out (`--networking flannel`) means the profile's backend for that provider, as
//! `retarget` applies it; `Network::of` a cluster always names the backend its profile runs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::profile::{Cluster, FlannelBackend, Networking, ProviderKind, RoutesBackend};

const ROUTES_BACKENDS: [RoutesBackend; 4] = [
    RoutesBackend::HostGw,
    RoutesBackend::Vxlan,
    RoutesBackend::Gce,
    RoutesBackend::Aws,
];
const FLANNEL_BACKENDS: [FlannelBackend; 3] = [
    FlannelBackend::HostGw,
    FlannelBackend::Vxlan,
    FlannelBackend::Wireguard,
];

/// A provider with its backend. `None`: the profile's backend for that provider.
// Not Copy, though it could be: the switch code clones it, as it did the struct before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub enum Network {
    Routes(Option<RoutesBackend>),
    Kubenet,
    Flannel(Option<FlannelBackend>),
    Calico,
    Canal,
    Weave,
}

/// Why a provider or backend name was refused. The caller names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?} is not a provider (routes, kubenet, flannel, calico, canal, weave)")]
    Provider(String),
    #[error("{backend:?} is not a {provider} ({}) backend", backends(*provider).join(", "))]
    Backend {
        provider: ProviderKind,
        backend: String,
    },
    #[error("{0} has no backends")]
    NoBackends(ProviderKind),
}

/// Every backend a provider has, by name (empty: it has none).
pub fn backends(p: ProviderKind) -> Vec<&'static str> {
    match p {
        ProviderKind::Routes => ROUTES_BACKENDS.map(RoutesBackend::as_str).to_vec(),
        ProviderKind::Flannel => FLANNEL_BACKENDS.map(FlannelBackend::as_str).to_vec(),
        ProviderKind::Kubenet
        | ProviderKind::Calico
        | ProviderKind::Canal
        | ProviderKind::Weave => {
            vec![]
        }
    }
}

impl Network {
    /// The provider with the profile's backend.
    pub fn provider_only(p: ProviderKind) -> Network {
        match p {
            ProviderKind::Routes => Network::Routes(None),
            ProviderKind::Kubenet => Network::Kubenet,
            ProviderKind::Flannel => Network::Flannel(None),
            ProviderKind::Calico => Network::Calico,
            ProviderKind::Canal => Network::Canal,
            ProviderKind::Weave => Network::Weave,
        }
    }

    /// The provider and backend by name, as state.json and the flags hold them; an empty backend
    /// is the profile's.
    pub fn from_parts(provider: &str, backend: &str) -> Result<Network, NetworkError> {
        let p = ProviderKind::parse(provider)
            .ok_or_else(|| NetworkError::Provider(provider.to_string()))?;
        Network::provider_only(p).with_backend(backend)
    }

    /// This provider with the named backend (empty: the profile's).
    pub fn with_backend(&self, backend: &str) -> Result<Network, NetworkError> {
        if backend.is_empty() {
            return Ok(Network::provider_only(self.provider()));
        }
        let bad = || NetworkError::Backend {
            provider: self.provider(),
            backend: backend.to_string(),
        };
        match self {
            Network::Routes(_) => ROUTES_BACKENDS
                .into_iter()
                .find(|b| b.as_str() == backend)
                .map(|b| Network::Routes(Some(b)))
                .ok_or_else(bad),
            Network::Flannel(_) => FLANNEL_BACKENDS
                .into_iter()
                .find(|b| b.as_str() == backend)
                .map(|b| Network::Flannel(Some(b)))
                .ok_or_else(bad),
            n => Err(NetworkError::NoBackends(n.provider())),
        }
    }

    /// `switch`'s target: `--networking` (PROVIDER or PROVIDER:BACKEND) with `--backend`, which
    /// counts only when `--networking` names no backend. An error names `--backend`.
    pub fn with_backend_flag(self, backend: Option<&str>) -> Result<Network, String> {
        match (self.backend(), backend) {
            (None, Some(b)) => self.with_backend(b).map_err(|e| format!("--backend: {e}")),
            _ => Ok(self),
        }
    }

    /// What the cluster's profile runs: its provider and that provider's backend.
    pub fn of(cluster: &Cluster) -> Network {
        let n = &cluster.profile.networking;
        match cluster.provider() {
            ProviderKind::Routes => Network::Routes(Some(n.routes.backend)),
            ProviderKind::Flannel => Network::Flannel(Some(n.flannel.backend)),
            p => Network::provider_only(p),
        }
    }

    pub fn provider(&self) -> ProviderKind {
        match self {
            Network::Routes(_) => ProviderKind::Routes,
            Network::Kubenet => ProviderKind::Kubenet,
            Network::Flannel(_) => ProviderKind::Flannel,
            Network::Calico => ProviderKind::Calico,
            Network::Canal => ProviderKind::Canal,
            Network::Weave => ProviderKind::Weave,
        }
    }

    /// The backend's name, when one is set.
    pub fn backend(&self) -> Option<&'static str> {
        match self {
            Network::Routes(b) => b.map(RoutesBackend::as_str),
            Network::Flannel(b) => b.map(FlannelBackend::as_str),
            _ => None,
        }
    }

    /// Make the profile's networking run this: the provider, and the backend where one is set.
    pub fn apply_to(&self, n: &mut Networking) {
        n.provider = self.provider();
        match self {
            Network::Routes(Some(b)) => n.routes.backend = *b,
            Network::Flannel(Some(b)) => n.flannel.backend = *b,
            _ => {}
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend() {
            None => write!(f, "{}", self.provider()),
            Some(b) => write!(f, "{} ({b})", self.provider()),
        }
    }
}

/// PROVIDER or PROVIDER:BACKEND, as `--networking` and `--from` take it.
impl FromStr for Network {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Network, NetworkError> {
        let (p, b) = s.split_once(':').unwrap_or((s, ""));
        Network::from_parts(p, b)
    }
}

impl Network {
    /// Every network a flag can name: each provider, then each with each of its backends.
    pub fn names() -> Vec<String> {
        let mut v: Vec<String> = ProviderKind::ALL.map(|p| p.as_str().to_string()).to_vec();
        for p in ProviderKind::ALL {
            v.extend(backends(p).into_iter().map(|b| format!("{p}:{b}")));
        }
        v
    }
}

/// `--networking` and `--from` take `PROVIDER[:BACKEND]`: this parser gives clap the names too,
/// so help lists them and shell completions offer them (not file names).
#[derive(Clone)]
pub struct NetworkParser;

impl clap::builder::TypedValueParser for NetworkParser {
    type Value = Network;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Network, clap::Error> {
        let s = clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)?;
        s.parse().map_err(|e: NetworkError| {
            let flag = arg.map_or_else(String::new, |a| format!("--{}: ", a.get_id()));
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{flag}{e}\n"))
                .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            Network::names()
                .into_iter()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

impl clap::builder::ValueParserFactory for Network {
    type Parser = NetworkParser;
    fn value_parser() -> NetworkParser {
        NetworkParser
    }
}

/// The form state.json's switch record and the JSON reports have always used:
/// `{"provider":"routes","backend":"host-gw"}`, the backend empty when unset.
#[derive(Serialize, Deserialize)]
struct Wire {
    provider: ProviderKind,
    #[serde(default)]
    backend: String,
}

impl From<Network> for Wire {
    fn from(n: Network) -> Wire {
        Wire {
            provider: n.provider(),
            backend: n.backend().unwrap_or_default().to_string(),
        }
    }
}

impl TryFrom<Wire> for Network {
    type Error = NetworkError;
    fn try_from(w: Wire) -> Result<Network, NetworkError> {
        Network::provider_only(w.provider).with_backend(&w.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every() -> Vec<Network> {
        let mut v: Vec<Network> = ProviderKind::ALL
            .into_iter()
            .map(Network::provider_only)
            .collect();
        v.extend(ROUTES_BACKENDS.map(|b| Network::Routes(Some(b))));
        v.extend(FLANNEL_BACKENDS.map(|b| Network::Flannel(Some(b))));
        v
    }

    #[test]
    fn text_round_trips() {
        for n in every() {
            let text = match n.backend() {
                Some(b) => format!("{}:{b}", n.provider()),
                None => n.provider().to_string(),
            };
            assert_eq!(text.parse::<Network>(), Ok(n), "{text}");
        }
        assert_eq!(
            "flannel:vxlan".parse(),
            Ok(Network::Flannel(Some(FlannelBackend::Vxlan)))
        );
        assert_eq!("flannel".parse(), Ok(Network::Flannel(None)));
        assert_eq!("calico".parse(), Ok(Network::Calico));
    }

    #[test]
    fn display_is_the_reports_text() {
        assert_eq!(
            Network::Routes(Some(RoutesBackend::HostGw)).to_string(),
            "routes (host-gw)"
        );
        assert_eq!(Network::Flannel(None).to_string(), "flannel");
        assert_eq!(Network::Weave.to_string(), "weave");
    }

    /// state.json's switch record: the same bytes as before the type, and back.
    #[test]
    fn the_record_form_is_unchanged() {
        let n = Network::Routes(Some(RoutesBackend::Vxlan));
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(j, r#"{"provider":"routes","backend":"vxlan"}"#);
        assert_eq!(
            serde_json::to_string(&Network::Calico).unwrap(),
            r#"{"provider":"calico","backend":""}"#
        );
        for n in every() {
            let j = serde_json::to_string(&n).unwrap();
            assert_eq!(serde_json::from_str::<Network>(&j).unwrap(), n, "{j}");
        }
        assert_eq!(
            serde_json::from_str::<Network>(r#"{"provider":"kubenet"}"#).unwrap(),
            Network::Kubenet
        );
        assert!(
            serde_json::from_str::<Network>(r#"{"provider":"routes","backend":"ipip"}"#)
                .unwrap_err()
                .to_string()
                .contains("\"ipip\" is not a routes (host-gw, vxlan, gce, aws) backend")
        );
    }

    #[test]
    fn bad_names_say_what_exists() {
        assert_eq!(
            "cilium".parse::<Network>().unwrap_err().to_string(),
            "\"cilium\" is not a provider (routes, kubenet, flannel, calico, canal, weave)"
        );
        assert_eq!(
            "flannel:ipip".parse::<Network>().unwrap_err().to_string(),
            "\"ipip\" is not a flannel (host-gw, vxlan, wireguard) backend"
        );
        assert_eq!(
            "calico:vxlan".parse::<Network>().unwrap_err().to_string(),
            "calico has no backends"
        );
    }

    /// `--backend` fills in a backend `--networking` left out, and only then.
    #[test]
    fn the_backend_flag_combines() {
        let fl = |s: &str| s.parse::<Network>().unwrap();
        assert_eq!(
            fl("flannel").with_backend_flag(Some("wireguard")),
            Ok(Network::Flannel(Some(FlannelBackend::Wireguard)))
        );
        assert_eq!(
            fl("flannel:host-gw").with_backend_flag(Some("wireguard")),
            Ok(Network::Flannel(Some(FlannelBackend::HostGw)))
        );
        assert_eq!(fl("routes").with_backend_flag(None), Ok(fl("routes")));
        assert_eq!(
            fl("routes").with_backend_flag(Some("ipip")).unwrap_err(),
            "--backend: \"ipip\" is not a routes (host-gw, vxlan, gce, aws) backend"
        );
        assert_eq!(
            fl("calico").with_backend_flag(Some("vxlan")).unwrap_err(),
            "--backend: calico has no backends"
        );
    }

    #[test]
    fn apply_to_sets_the_provider_and_only_a_named_backend() {
        let c = crate::profile::load_str(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: { version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }\nnetworking:\n  provider: routes\n  flannel: { backend: host-gw }\nnodes:\n  - { name: w1, address: 10.0.0.11 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(
            Network::of(&c),
            Network::Routes(Some(RoutesBackend::HostGw))
        );
        let mut n = c.profile.networking.clone();
        Network::Flannel(None).apply_to(&mut n);
        assert_eq!(n.provider, ProviderKind::Flannel);
        assert_eq!(n.flannel.backend, FlannelBackend::HostGw, "the profile's");
        Network::Flannel(Some(FlannelBackend::Wireguard)).apply_to(&mut n);
        assert_eq!(n.flannel.backend, FlannelBackend::Wireguard);
    }
}
