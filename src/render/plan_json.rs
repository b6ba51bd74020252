//! plan.json, written as it is produced: the document's head, then one entry per node as each
//! node is planned, then its tail. Byte for byte what serde_json's pretty printer makes of the
//! whole document (a test holds it to that), without ever holding more than one node's entry.

use std::io::{self, Write};

use serde::Serialize;

use crate::profile::Cluster;
use crate::provider::{self, ClusterPlan, NodePlan};

#[derive(Serialize)]
struct PlanFile<'a> {
    path: &'a str,
    mode: String,
    sha256: &'a str,
    services: &'a [String],
    /// A binary (flanneld): not in the output, only its sha256 and where plan/init copy it from.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// One node's entry: per file its path, mode, sha256 and services; the units; the commands; and
/// the teardown `reset` (or a switch away from this provider) runs, title and script.
#[derive(Serialize)]
pub struct PlanNode<'a> {
    name: &'a str,
    files: Vec<PlanFile<'a>>,
    units: &'a [provider::Unit],
    commands: Vec<&'a str>,
    teardown: &'a [provider::Step],
}

impl<'a> PlanNode<'a> {
    /// `sha256[i]` is the sha256 of `plan.files[i]`: the writer computes each once, for the file
    /// and for this entry.
    pub fn new(name: &'a str, plan: &'a NodePlan, sha256: &'a [String]) -> PlanNode<'a> {
        PlanNode {
            name,
            files: plan
                .files
                .iter()
                .zip(sha256)
                .map(|(f, sha256)| PlanFile {
                    path: &f.path,
                    mode: format!("{:04o}", f.mode),
                    sha256,
                    services: &f.services,
                    note: f.blob.as_ref().map(|b| {
                        if b.shared {
                            format!(
                                "the same on every node: written once, as {}{}",
                                super::SHARED_DIR,
                                f.path
                            )
                        } else {
                            format!(
                                "binary, not written here: netctl plan/init copy the file {} names",
                                b.field
                            )
                        }
                    }),
                })
                .collect(),
            units: &plan.units,
            commands: plan.commands.iter().map(|c| c.command.as_str()).collect(),
            teardown: &plan.teardown,
        }
    }
}

/// The document being written: `{"name", "provider", "profile_sha256", "nodes": [...],
/// "kubectl", "local"}`, pretty-printed with two-space indents.
pub struct PlanJson<W: Write> {
    out: W,
    nodes: usize,
}

impl<W: Write> PlanJson<W> {
    /// Write everything before the first node's entry.
    pub fn begin(mut out: W, cluster: &Cluster) -> io::Result<PlanJson<W>> {
        write!(
            out,
            "{{\n  \"name\": {},\n  \"provider\": {},\n  \"profile_sha256\": {},\n  \"nodes\": [",
            json(&cluster.profile.name),
            json(cluster.provider().as_str()),
            json(&cluster.hash),
        )?;
        Ok(PlanJson { out, nodes: 0 })
    }

    pub fn node(&mut self, entry: &PlanNode) -> io::Result<()> {
        self.out
            .write_all(if self.nodes == 0 { b"\n" } else { b",\n" })?;
        nested(&mut self.out, entry, true)?;
        self.nodes += 1;
        Ok(())
    }

    /// Close the node list and write the cluster's steps; the writer back, to flush.
    pub fn finish(mut self, cluster: &ClusterPlan) -> io::Result<W> {
        // serde_json prints an empty array as `[]`.
        self.out
            .write_all(if self.nodes == 0 { b"]" } else { b"\n  ]" })?;
        self.out.write_all(b",\n  \"kubectl\": ")?;
        nested(&mut self.out, &cluster.kubectl, false)?;
        self.out.write_all(b",\n  \"local\": ")?;
        nested(&mut self.out, &cluster.local, false)?;
        self.out.write_all(b"\n}\n")?;
        Ok(self.out)
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// `value` pretty-printed one level down (an array element: also its first line indented; a
/// member's value: not). A JSON string never holds a raw line break, so every line break in the
/// text is the printer's own and indenting after each one is exact.
fn nested(out: &mut impl Write, value: &impl Serialize, element: bool) -> io::Result<()> {
    let indent: &[u8] = if element { b"    " } else { b"  " };
    let text = serde_json::to_string_pretty(value).expect("plan serialises");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        if i > 0 || element {
            out.write_all(indent)?;
        }
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Inputs;

    /// The document as one value, the way plan.json was made before it was streamed.
    fn whole(cluster: &Cluster) -> String {
        #[derive(Serialize)]
        struct Whole<'a> {
            name: &'a str,
            provider: &'a str,
            profile_sha256: &'a str,
            nodes: Vec<PlanNode<'a>>,
            kubectl: &'a [provider::KubectlStep],
            local: &'a [provider::LocalCommand],
        }
        let plans: Vec<NodePlan> = cluster
            .nodes
            .iter()
            .map(|n| provider::node_plan(cluster, n, &Inputs::default()).with_defaults())
            .collect();
        let shas: Vec<Vec<String>> = plans
            .iter()
            .map(|p| p.files.iter().map(|f| f.sha256()).collect())
            .collect();
        let cp = provider::cluster_plan(cluster);
        let doc = Whole {
            name: &cluster.profile.name,
            provider: cluster.provider().as_str(),
            profile_sha256: &cluster.hash,
            nodes: cluster
                .nodes
                .iter()
                .zip(&plans)
                .zip(&shas)
                .map(|((n, p), s)| PlanNode::new(&n.name, p, s))
                .collect(),
            kubectl: &cp.kubectl,
            local: &cp.local,
        };
        serde_json::to_string_pretty(&doc).unwrap() + "\n"
    }

    fn streamed(cluster: &Cluster) -> String {
        let mut w = PlanJson::begin(Vec::new(), cluster).unwrap();
        for n in &cluster.nodes {
            let p = provider::node_plan(cluster, n, &Inputs::default()).with_defaults();
            let s: Vec<String> = p.files.iter().map(|f| f.sha256()).collect();
            w.node(&PlanNode::new(&n.name, &p, &s)).unwrap();
        }
        String::from_utf8(w.finish(&provider::cluster_plan(cluster)).unwrap()).unwrap()
    }

    /// Every example profile (all providers, kubectl steps and local cloud commands among them):
    /// the streamed document is the one serde_json prints for the whole.
    #[test]
    fn streamed_plan_json_is_the_whole_documents_bytes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let cluster = crate::profile::load(&p).unwrap();
            assert_eq!(streamed(&cluster), whole(&cluster), "{}", p.display());
            seen += 1;
        }
        assert!(seen >= 6, "the example profiles are there");
    }

    /// No nodes (a profile always has one, the writer does not rely on it), and no cluster
    /// steps: empty arrays print as `[]`.
    #[test]
    fn empty_lists_print_as_serde_json_does() {
        let mut cluster = crate::profile::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/calico.yaml"),
        )
        .unwrap();
        cluster.nodes.clear();
        let w = PlanJson::begin(Vec::new(), &cluster).unwrap();
        let text = String::from_utf8(w.finish(&ClusterPlan::default()).unwrap()).unwrap();
        #[derive(Serialize)]
        struct Empty<'a> {
            name: &'a str,
            provider: &'a str,
            profile_sha256: &'a str,
            nodes: [u8; 0],
            kubectl: [u8; 0],
            local: [u8; 0],
        }
        let want = serde_json::to_string_pretty(&Empty {
            name: &cluster.profile.name,
            provider: "calico",
            profile_sha256: &cluster.hash,
            nodes: [],
            kubectl: [],
            local: [],
        })
        .unwrap()
            + "\n";
        assert_eq!(text, want);
    }
}
