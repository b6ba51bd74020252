//! Kubernetes units (in progress).
use super::NodePlan;
use crate::profile::{Cluster, Node, ProviderKind};

pub fn add_units(_cluster: &Cluster, _node: &Node, _provider: ProviderKind, _plan: &mut NodePlan) {}
