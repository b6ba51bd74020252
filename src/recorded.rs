//! The network a node records (its state.json) against the one its profile names. The profile is
//! the desired network and `switch -p P` the guarded way to reach it; so `init` refuses to change
//! a node's network behind switch's back, and `verify` reports such a node as one check instead
//! of as the route failures that follow from the difference.

use crate::network::Network;
use crate::profile::Cluster;
use crate::state::NodeState;

/// A node that runs another network than the profile names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What the node records.
    pub recorded: Network,
    /// The run that last wrote the node's record (an init or the switch that moved it).
    pub run_id: String,
    /// What the profile names.
    pub profile: Network,
}

impl Mismatch {
    /// Whether the providers differ (not only their backends): then every provider-specific
    /// check follows from the difference.
    pub fn provider_differs(&self) -> bool {
        self.recorded.provider() != self.profile.provider()
    }

    /// "records routes (vxlan) (set by run R); the profile names routes (host-gw)"
    pub fn describe(&self) -> String {
        format!(
            "records {} (set by run {}); the profile names {}",
            self.recorded, self.run_id, self.profile
        )
    }

    /// The two ways out, for the profile file `profile`.
    pub fn ways_out(&self, profile: &str) -> String {
        format!(
            "move the nodes to the profile's network with `netctl switch -p {profile}`, or change the profile to say {}",
            self.recorded
        )
    }
}

/// The node's recorded network, when it differs from the profile's. A record whose provider does
/// not parse, or a node netctl never set up, is not this question's (node.files reports those).
/// A record without a backend (written before backends were recorded) is judged by its provider.
pub fn mismatch(cluster: &Cluster, state: &NodeState) -> Option<Mismatch> {
    let recorded = Network::from_parts(&state.provider, &state.backend).ok()?;
    let profile = Network::of(cluster);
    let differs = recorded.provider() != profile.provider()
        || matches!((recorded.backend(), profile.backend()), (Some(a), Some(b)) if a != b);
    differs.then(|| Mismatch {
        recorded,
        run_id: state.run_id.clone(),
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(networking: &str) -> Cluster {
        crate::profile::load_str(
            &format!("apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes: {{ version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }}\nnetworking:\n{networking}nodes:\n  - {{ name: w1, address: 10.0.0.11 }}\n"),
            std::path::Path::new("t.yaml"),
        )
        .unwrap()
    }

    fn state(provider: &str, backend: &str) -> NodeState {
        NodeState {
            provider: provider.into(),
            backend: backend.into(),
            run_id: "20261130T050000Z-ab12".into(),
            ..NodeState::default()
        }
    }

    #[test]
    fn a_provider_or_backend_difference_is_a_mismatch() {
        let c = cluster("  provider: routes\n  routes: { backend: host-gw }\n");
        assert_eq!(mismatch(&c, &state("routes", "host-gw")), None);
        assert_eq!(
            mismatch(&c, &state("routes", "")),
            None,
            "no backend recorded"
        );
        let m = mismatch(&c, &state("routes", "vxlan")).unwrap();
        assert!(!m.provider_differs());
        assert_eq!(
            m.describe(),
            "records routes (vxlan) (set by run 20261130T050000Z-ab12); the profile names routes (host-gw)"
        );
        assert_eq!(
            m.ways_out("c.yaml"),
            "move the nodes to the profile's network with `netctl switch -p c.yaml`, or change the profile to say routes (vxlan)"
        );
        let m = mismatch(&c, &state("canal", "")).unwrap();
        assert!(m.provider_differs());
        assert_eq!(
            mismatch(&c, &state("cilium", "")),
            None,
            "not netctl's to judge"
        );
        let calico = cluster("  provider: calico\n");
        assert_eq!(mismatch(&calico, &state("calico", "")), None);
    }
}
