//! Which node pairs the data plane pings. A full mesh tests every pair, but it is n(n-1) pings: 992
//! for 32 nodes, 62,250 for 250, 25 million for 5,000. So the default (`auto`) is the full mesh up
//! to `FULL_MESH_MAX` nodes and a strided mesh above: each node pings the nodes 1, 2, 4, 8, ...
//! places after it (in profile order, wrapping), so every node sends and receives the same number
//! of pings (about log2 n), and its peers range from its neighbour to nodes half the cluster away
//! (profile order usually follows racks or subnets, so far peers cross them).

use serde::Serialize;

/// The largest cluster whose default mesh is full: under 1,000 pod pairs, and each node's
/// 31 pings run at once in one script. (On the lab, whose nodes share one kernel neighbour table,
/// a 50-node full mesh already overflows it: docs/verify.md.)
pub const FULL_MESH_MAX: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mesh {
    /// Full up to 32 nodes, strided above.
    #[default]
    Auto,
    /// Every node's pod pings every other node's pod (n x (n-1) pairs).
    Full,
    /// Each node's pod pings the next node's pod (n pairs): every node sends and receives once.
    Ring,
    /// Each node's pod pings the pods of the nodes 1, 2, 4, 8 ... places after it
    /// (n x ceil(log2 n) pairs).
    Strided,
}

impl Mesh {
    pub fn as_str(self) -> &'static str {
        match self {
            Mesh::Auto => "auto",
            Mesh::Full => "full",
            Mesh::Ring => "ring",
            Mesh::Strided => "strided",
        }
    }

    /// The mesh `auto` stands for with `nodes` nodes taking part; any other mesh is itself.
    pub fn resolve(self, nodes: usize) -> Mesh {
        match self {
            Mesh::Auto if nodes <= FULL_MESH_MAX => Mesh::Full,
            Mesh::Auto => Mesh::Strided,
            m => m,
        }
    }

    /// How many places after itself (in node order, wrapping) each node's peers are. The same
    /// offsets for every node: each node receives from as many peers as it sends to.
    pub fn offsets(self, nodes: usize) -> Vec<usize> {
        if nodes < 2 {
            return Vec::new();
        }
        match self.resolve(nodes) {
            Mesh::Full => (1..nodes).collect(),
            Mesh::Ring => vec![1],
            Mesh::Strided => std::iter::successors(Some(1usize), |o| o.checked_mul(2))
                .take_while(|o| *o < nodes)
                .collect(),
            Mesh::Auto => unreachable!("resolved above"),
        }
    }

    /// Pod-to-pod pairs across nodes that `nodes` nodes ping.
    pub fn pairs(self, nodes: usize) -> usize {
        nodes * self.offsets(nodes).len()
    }
}

/// The mesh a verify run pinged, for its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MeshUsed {
    /// What `--mesh` asked for (`auto` by default).
    pub requested: Mesh,
    /// What ran: `full`, `ring` or `strided`.
    pub used: Mesh,
    /// Nodes with test pods.
    pub nodes: usize,
    /// Pod-to-pod pairs across nodes.
    pub pairs: usize,
}

impl MeshUsed {
    pub fn new(requested: Mesh, nodes: usize) -> MeshUsed {
        MeshUsed {
            requested,
            used: requested.resolve(nodes),
            nodes,
            pairs: requested.pairs(nodes),
        }
    }

    /// One line for the text report.
    pub fn describe(&self) -> String {
        let why = if self.requested == Mesh::Auto {
            format!(" (auto: full up to {FULL_MESH_MAX} nodes, strided above; --mesh to choose)")
        } else {
            String::new()
        };
        format!(
            "data plane: {} mesh of {} node(s), {} pod-to-pod pair(s){why}",
            self.used.as_str(),
            self.nodes,
            self.pairs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_full_up_to_32_nodes_then_strided() {
        assert_eq!(Mesh::Auto.resolve(1), Mesh::Full);
        assert_eq!(Mesh::Auto.resolve(FULL_MESH_MAX), Mesh::Full);
        assert_eq!(Mesh::Auto.resolve(FULL_MESH_MAX + 1), Mesh::Strided);
        assert_eq!(Mesh::Auto.resolve(5000), Mesh::Strided);
        // An explicit choice is kept at any size.
        assert_eq!(Mesh::Full.resolve(5000), Mesh::Full);
        assert_eq!(Mesh::Ring.resolve(3), Mesh::Ring);
    }

    #[test]
    fn offsets_per_mesh() {
        assert_eq!(Mesh::Full.offsets(4), [1, 2, 3]);
        assert_eq!(Mesh::Ring.offsets(4), [1]);
        assert_eq!(Mesh::Strided.offsets(9), [1, 2, 4, 8]);
        assert_eq!(Mesh::Strided.offsets(8), [1, 2, 4]);
        assert_eq!(Mesh::Strided.offsets(2), [1]);
        for m in [Mesh::Auto, Mesh::Full, Mesh::Ring, Mesh::Strided] {
            assert!(m.offsets(1).is_empty(), "{m:?}: a lone node has no peers");
            assert!(m.offsets(0).is_empty());
        }
    }

    #[test]
    fn the_default_stays_affordable() {
        assert_eq!(Mesh::Auto.pairs(32), 32 * 31);
        assert_eq!(Mesh::Auto.pairs(33), 33 * 6);
        assert_eq!(Mesh::Auto.pairs(250), 250 * 8);
        assert_eq!(Mesh::Auto.pairs(5000), 5000 * 13);
        assert_eq!(Mesh::Full.pairs(5000), 5000 * 4999);
        // Never more pings per node than the full mesh of the largest default-full cluster.
        for n in 1..=20_000 {
            assert!(Mesh::Auto.offsets(n).len() < FULL_MESH_MAX, "{n} nodes");
        }
    }

    #[test]
    fn strided_peers_are_distinct_and_reach_across_the_cluster() {
        for n in [33, 100, 250, 1000] {
            let offs = Mesh::Strided.offsets(n);
            let mut peers: Vec<_> = offs.iter().map(|o| o % n).collect();
            peers.dedup();
            assert_eq!(peers.len(), offs.len(), "{n}: no node pings one peer twice");
            assert!(offs.iter().all(|o| *o != 0 && *o < n));
            assert!(
                *offs.last().unwrap() * 2 >= n,
                "{n}: the farthest is half way round"
            );
        }
    }

    #[test]
    fn the_report_names_the_mesh() {
        let m = MeshUsed::new(Mesh::Auto, 120);
        assert_eq!((m.used, m.pairs), (Mesh::Strided, 120 * 7));
        assert_eq!(
            m.describe(),
            "data plane: strided mesh of 120 node(s), 840 pod-to-pod pair(s) (auto: full up to 32 \
             nodes, strided above; --mesh to choose)"
        );
        let m = MeshUsed::new(Mesh::Ring, 3);
        assert_eq!(
            m.describe(),
            "data plane: ring mesh of 3 node(s), 3 pod-to-pod pair(s)"
        );
        let v = serde_json::to_value(MeshUsed::new(Mesh::Auto, 4)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"requested": "auto", "used": "full", "nodes": 4, "pairs": 12})
        );
    }
}
