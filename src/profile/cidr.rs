//! The CIDR plan: every worker (and every node given one) gets a podCIDR of nodeCIDRMaskSize inside
//! clusterCIDR. Nodes without one take the lowest free block, in profile order, skipping blocks given
//! explicitly, so the plan is deterministic and appending a node never moves an existing one.

use std::collections::BTreeSet;

use ipnetwork::Ipv4Network;

use super::validate::Checked;
use super::{Node, Problem, Profile, Role};

pub fn plan(profile: &Profile, checked: &Checked) -> Result<Vec<Node>, Problem> {
    let cluster = checked.cluster_cidr;
    let mask = profile.kubernetes.node_cidr_mask_size;
    let block_size = 1u32 << (32 - mask);
    let base = u32::from(cluster.network());
    let index_of = |net: Ipv4Network| (u32::from(net.network()) - base) / block_size;

    let taken: BTreeSet<u32> = profile
        .nodes
        .iter()
        .filter_map(|n| n.pod_cidr.as_deref())
        .filter_map(|c| c.parse::<Ipv4Network>().ok())
        .map(index_of)
        .collect();
    let blocks = 1u64 << (mask - cluster.prefix());
    let mut next = 0u32;
    let mut nodes = Vec::with_capacity(profile.nodes.len());
    for (i, spec) in profile.nodes.iter().enumerate() {
        let given = spec
            .pod_cidr
            .as_deref()
            .and_then(|c| c.parse::<Ipv4Network>().ok());
        let pod_cidr = match given {
            Some(net) => Some(net),
            None if spec.roles.contains(&Role::Worker) => {
                while taken.contains(&next) {
                    next += 1;
                }
                if u64::from(next) >= blocks {
                    // validate() counts blocks; this guards the arithmetic, not the user.
                    return Err(Problem::new(
                        format!("nodes[{i}].podCIDR"),
                        format!("no free /{mask} left in {cluster}"),
                    ));
                }
                let net = Ipv4Network::new((base + next * block_size).into(), mask)
                    .expect("prefix checked");
                next += 1;
                Some(net)
            }
            None => None,
        };
        nodes.push(Node {
            name: spec.name.clone(),
            address: checked.addresses[i].expect("validated"),
            roles: spec.roles.clone(),
            pod_cidr,
            pod_cidr_given: given.is_some(),
            init: spec.init,
            ssh_port: spec.ssh_port.or(profile.ssh.port).unwrap_or(22),
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use crate::profile::{load_str, Cluster};
    use std::path::Path;

    fn cluster(nodes: &str) -> Cluster {
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes\nnodes:\n{nodes}"
        );
        load_str(&text, Path::new("t.yaml")).unwrap()
    }

    fn cidrs(c: &Cluster) -> Vec<String> {
        c.nodes
            .iter()
            .map(|n| n.pod_cidr.map(|p| p.to_string()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn allocates_lowest_free_skipping_given() {
        let c = cluster(
            "  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.2, podCIDR: 10.200.1.0/24}\n  - {name: c, address: 10.0.0.3}\n  - {name: m, address: 10.0.0.9, roles: [controller]}\n",
        );
        assert_eq!(
            cidrs(&c),
            ["10.200.0.0/24", "10.200.1.0/24", "10.200.2.0/24", ""]
        );
        assert!(!c.nodes[0].pod_cidr_given && c.nodes[1].pod_cidr_given);
    }

    #[test]
    fn appending_a_node_keeps_existing_blocks() {
        let before =
            cluster("  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.2}\n");
        let after = cluster(
            "  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.2}\n  - {name: c, address: 10.0.0.3}\n",
        );
        assert_eq!(cidrs(&before)[..], cidrs(&after)[..2]);
        assert_eq!(cidrs(&after)[2], "10.200.2.0/24");
    }
}
