//! Which nodes probe which, and whom a failed pair is reported on. Every pair of up to
//! `FULL_MESH_MAX` nodes probes both ways; above, each node probes the nodes 1, 2, 4, 8 ...
//! places after it (verify's strided mesh), so each is probed by and probes at least two others
//! and 250 nodes make 2,000 probes per kind, not 62,250.
//!
//! A broken node shows as every probe into it failing (a firewall, a small MTU on its link), or
//! every probe out of it: such a pair is reported once, on that node, and the nodes that only
//! met it pass. A failure with no common end is reported on the pair itself, `a -> b`.

use std::collections::BTreeSet;

use crate::verify::{Check, Mesh};

/// The peers node `i` of `n` probes, in the order it probes them.
pub fn peers(n: usize, i: usize) -> Vec<usize> {
    Mesh::Auto
        .offsets(n)
        .into_iter()
        .map(|o| (i + o) % n)
        .collect()
}

/// One probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

/// The verdict of `from` probing `to`, by node index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub from: usize,
    pub to: usize,
    pub verdict: Verdict,
}

/// Rows of one pair check: one per node (pass, skip, or fail when it is the common end of
/// failed pairs), plus one per failed pair with no common end. `what` names the probe ("udp
/// 8472"); `hint` says what to do.
pub fn judge(id: &str, what: &str, names: &[String], pairs: &[Pair], hint: &str) -> Vec<Check> {
    let n = names.len();
    let failed = |p: &Pair| matches!(p.verdict, Verdict::Fail(_));
    let judged = |p: &Pair| !matches!(p.verdict, Verdict::Skip(_));
    // Every judged probe into the node failed: the node is blamed for them.
    let into: BTreeSet<usize> = (0..n)
        .filter(|&r| {
            let mut judged_in = pairs.iter().filter(|p| p.to == r && judged(p)).peekable();
            judged_in.peek().is_some() && judged_in.all(failed)
        })
        .collect();
    // Then every judged probe out of a node, among those not blamed on their receiver.
    let out_of: BTreeSet<usize> = (0..n)
        .filter(|&s| {
            let mut judged_out = pairs
                .iter()
                .filter(|p| p.from == s && judged(p) && !into.contains(&p.to))
                .peekable();
            judged_out.peek().is_some() && judged_out.all(failed)
        })
        .collect();
    let reason = |p: &Pair| match &p.verdict {
        Verdict::Fail(r) => r.clone(),
        _ => String::new(),
    };
    let list = |ps: Vec<&Pair>, side: fn(&Pair) -> usize| -> String {
        let shown: Vec<String> = ps
            .iter()
            .take(6)
            .map(|p| format!("{} ({})", names[side(p)], reason(p)))
            .collect();
        let more = ps.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut parts = Vec::new();
        if into.contains(&i) {
            let ps: Vec<&Pair> = pairs.iter().filter(|p| p.to == i && failed(p)).collect();
            parts.push(format!(
                "{what}: nothing from its peers arrives (from {})",
                list(ps, |p| p.from)
            ));
        }
        if out_of.contains(&i) {
            let ps: Vec<&Pair> = pairs
                .iter()
                .filter(|p| p.from == i && failed(p) && !into.contains(&p.to))
                .collect();
            parts.push(format!(
                "{what}: nothing it sends arrives (to {})",
                list(ps, |p| p.to)
            ));
        }
        if !parts.is_empty() {
            rows.push(Check::fail(id, name, parts.join("; "), hint));
            continue;
        }
        let mine: Vec<&Pair> = pairs.iter().filter(|p| p.to == i || p.from == i).collect();
        let ok = mine.iter().filter(|p| p.verdict == Verdict::Pass).count();
        let skipped: Vec<&Pair> = mine.iter().copied().filter(|p| !judged(p)).collect();
        if mine.is_empty() {
            rows.push(Check::skip(id, name, "no peer to probe"));
        } else if ok == 0 && !skipped.is_empty() {
            let why = match &skipped[0].verdict {
                Verdict::Skip(w) => w.clone(),
                _ => String::new(),
            };
            rows.push(Check::skip(id, name, why));
        } else {
            let judged_here = mine.iter().filter(|p| judged(p)).count();
            rows.push(Check::pass(
                id,
                name,
                format!("{what}: {ok} of {judged_here} probe(s) to and from its peers arrive"),
            ));
        }
    }
    // Failed pairs with no common end: the pair is the subject.
    for p in pairs.iter().filter(|p| failed(p)) {
        if into.contains(&p.to) || out_of.contains(&p.from) {
            continue;
        }
        rows.push(Check::fail(
            id,
            &format!("{} -> {}", names[p.from], names[p.to]),
            format!("{what}: {}", reason(p)),
            hint,
        ));
    }
    // A node with a failed pair of its own must not read as passing.
    for row in rows.iter_mut() {
        if row.status == crate::verify::Status::Pass {
            let i = names.iter().position(|n| *n == row.subject);
            if let Some(i) = i {
                let alone = pairs
                    .iter()
                    .filter(|p| failed(p) && (p.from == i || p.to == i))
                    .count();
                if alone > 0 {
                    row.detail = format!(
                        "{}; {alone} pair(s) failed, reported on the pair",
                        row.detail
                    );
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Status;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn full(n: usize, verdict: impl Fn(usize, usize) -> Verdict) -> Vec<Pair> {
        let mut v = Vec::new();
        for from in 0..n {
            for to in peers(n, from) {
                v.push(Pair {
                    from,
                    to,
                    verdict: verdict(from, to),
                });
            }
        }
        v
    }

    fn failures(rows: &[Check]) -> Vec<String> {
        rows.iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.subject.clone())
            .collect()
    }

    #[test]
    fn a_node_that_receives_nothing_is_the_one_failure() {
        let rows = judge(
            "preflight.vxlan",
            "udp 8472",
            &names(4),
            &full(4, |_, to| {
                if to == 1 {
                    Verdict::Fail("no answer in 2 s".into())
                } else {
                    Verdict::Pass
                }
            }),
            "open it",
        );
        assert_eq!(failures(&rows), ["n2"]);
        let n2 = rows.iter().find(|c| c.subject == "n2").unwrap();
        assert!(
            n2.detail
                .contains("nothing from its peers arrives (from n1 (no answer in 2 s)"),
            "{}",
            n2.detail
        );
        assert_eq!(rows.len(), 4, "one row per node, no pair rows");
    }

    #[test]
    fn a_node_that_cannot_send_is_blamed_not_its_peers() {
        let rows = judge(
            "preflight.mtu",
            "1500 bytes",
            &names(5),
            &full(5, |from, _| {
                if from == 2 {
                    Verdict::Fail("too big".into())
                } else {
                    Verdict::Pass
                }
            }),
            "h",
        );
        assert_eq!(failures(&rows), ["n3"]);
        assert!(
            rows[2].detail.contains("nothing it sends arrives"),
            "{}",
            rows[2].detail
        );
    }

    #[test]
    fn a_node_cut_off_both_ways_is_one_row() {
        let rows = judge(
            "preflight.layer2",
            "ARP",
            &names(4),
            &full(4, |from, to| {
                if from == 3 || to == 3 {
                    Verdict::Fail("via 10.0.0.250".into())
                } else {
                    Verdict::Pass
                }
            }),
            "h",
        );
        assert_eq!(failures(&rows), ["n4"]);
        assert!(rows[3].detail.contains("from its peers") && rows[3].detail.contains("it sends"));
    }

    #[test]
    fn a_lone_broken_pair_is_named_as_the_pair() {
        let rows = judge(
            "preflight.vxlan",
            "udp 8472",
            &names(4),
            &full(4, |from, to| {
                if (from, to) == (0, 2) {
                    Verdict::Fail("no answer".into())
                } else {
                    Verdict::Pass
                }
            }),
            "h",
        );
        assert_eq!(failures(&rows), ["n1 -> n3"]);
        assert!(
            rows[0].detail.contains("1 pair(s) failed"),
            "{}",
            rows[0].detail
        );
    }

    #[test]
    fn skips_are_neither_passes_nor_failures() {
        let rows = judge(
            "preflight.vxlan",
            "udp 8472",
            &names(3),
            &full(3, |_, to| {
                if to == 0 {
                    Verdict::Skip("udp 8472 is in use on n1".into())
                } else {
                    Verdict::Pass
                }
            }),
            "h",
        );
        assert!(failures(&rows).is_empty());
        assert!(rows.iter().all(|c| c.status == Status::Pass), "{rows:?}");
        let rows = judge(
            "preflight.vxlan",
            "udp 8472",
            &names(2),
            &full(2, |_, _| Verdict::Skip("python3 not found".into())),
            "h",
        );
        assert!(rows.iter().all(|c| c.status == Status::Skip), "{rows:?}");
    }

    #[test]
    fn two_nodes_failing_one_way_blame_the_receiver() {
        let rows = judge(
            "preflight.vxlan",
            "udp 8472",
            &names(2),
            &full(2, |_, to| {
                if to == 1 {
                    Verdict::Fail("no answer".into())
                } else {
                    Verdict::Pass
                }
            }),
            "h",
        );
        assert_eq!(failures(&rows), ["n2"]);
    }

    #[test]
    fn large_clusters_probe_a_sample_both_ways() {
        let n = 250;
        let mut into = vec![0; n];
        for i in 0..n {
            let p = peers(n, i);
            assert_eq!(p.len(), 8);
            for j in p {
                into[j] += 1;
            }
        }
        assert!(into.iter().all(|c| *c >= 2));
        assert_eq!(peers(4, 3), [0, 1, 2]);
        assert!(peers(1, 0).is_empty());
    }
}
