//! weave (in progress).
use super::{ClusterPlan, NodePlan};
use crate::profile::{Cluster, Node};

pub fn node(_cluster: &Cluster, _node: &Node) -> NodePlan {
    NodePlan::default()
}

pub fn cluster(_cluster: &Cluster) -> ClusterPlan {
    ClusterPlan::default()
}
