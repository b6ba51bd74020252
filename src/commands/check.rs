//! `netctl profile check`: parse, validate, and show the CIDR plan.

use serde::Serialize;

use crate::printer::Table;
use crate::profile::{Cluster, Role};

#[derive(Serialize)]
struct JsonNode<'a> {
    name: &'a str,
    address: String,
    roles: Vec<&'static str>,
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    name: &'a str,
    provider: &'a str,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
    #[serde(rename = "serviceCIDR")]
    service_cidr: String,
    nodes: Vec<JsonNode<'a>>,
}

fn roles(r: &[Role]) -> Vec<&'static str> {
    r.iter()
        .map(|r| match r {
            Role::Controller => "controller",
            Role::Worker => "worker",
        })
        .collect()
}

pub fn json(cluster: &Cluster) -> String {
    let doc = JsonPlan {
        name: &cluster.profile.name,
        provider: cluster.provider().as_str(),
        cluster_cidr: cluster.cluster_cidr.to_string(),
        service_cidr: cluster.service_cidr.to_string(),
        nodes: cluster
            .nodes
            .iter()
            .map(|n| JsonNode {
                name: &n.name,
                address: n.address.to_string(),
                roles: roles(&n.roles),
                pod_cidr: n.pod_cidr.map(|c| c.to_string()),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("plan serialises") + "\n"
}

pub fn text(cluster: &Cluster) -> String {
    let p = &cluster.profile;
    let mut out = format!(
        "profile {} is valid: provider {}, Kubernetes {}, clusterCIDR {}, serviceCIDR {}, clusterDNS {}\n\n",
        p.name,
        cluster.provider(),
        cluster.version,
        cluster.cluster_cidr,
        cluster.service_cidr,
        cluster.cluster_dns
    );
    let mut t = Table::new(&["NODE", "ADDRESS", "ROLES", "PODCIDR", "SOURCE"]);
    for n in &cluster.nodes {
        let (cidr, source) = match n.pod_cidr {
            Some(c) if n.pod_cidr_given => (c.to_string(), "given"),
            Some(c) => (c.to_string(), "allocated"),
            None => ("-".into(), "-"),
        };
        t.row(vec![
            n.name.clone(),
            n.address.to_string(),
            roles(&n.roles).join(","),
            cidr,
            source.into(),
        ]);
    }
    out.push_str(&t.render());
    out
}
