//! A verify report for people (a summary per check, then only what failed: the table of every
//! row buried one failure among hundreds of passes at 20 nodes), the full table on request
//! (`--output wide`), for programs (JSON, schema in docs/verify.md) and for CI systems (JUnit XML
//! valid against the Jenkins xUnit plugin's junit-10.xsd: a testsuite per check id, a testcase
//! per subject).

use super::{Check, Report, Status};
use crate::printer::{escape_controls, Cell, Table};

/// What the text report shows besides the failures and the verdict.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// List the skips, one line per distinct reason (`--show-skips`).
    pub skips: bool,
    /// Leave out the per-check summary (`-q`): only failures, the mesh and the verdict.
    pub quiet: bool,
}

/// Subjects named in a collapsed skip line before the rest are counted.
const SUBJECTS_SHOWN: usize = 3;

/// The report for people. Tables escape their cells and the verdict escapes itself, so the text
/// is safe as it is (main prints it without escaping it again, which would show the table's
/// colours as escapes).
pub fn text(r: &Report, opts: TextOptions) -> String {
    let mut sections = Vec::new();
    if !opts.quiet {
        sections.push(summary(r));
    }
    if r.summary.fail > 0 {
        sections.push(failures(r));
    }
    if opts.skips && r.summary.skip > 0 {
        sections.push(skips(r));
    }
    sections.push(verdict(r));
    sections.join("\n")
}

/// One line per check id, in report order: the passes, failures and skips counted.
fn summary(r: &Report) -> String {
    let mut t = Table::new(&["CHECK", "RESULT", "PASS", "FAIL", "SKIP"]);
    for (id, cases) in by_id(r) {
        let count = |s: Status| cases.iter().filter(|c| c.status == s).count();
        let (pass, fail, skip) = (
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
        );
        let result = if fail > 0 {
            Cell::Result {
                ok: false,
                word: "FAIL",
            }
        } else if pass > 0 {
            Cell::Result {
                ok: true,
                word: "pass",
            }
        } else {
            "skip".to_string().into()
        };
        t.row_cells(vec![
            id.to_string().into(),
            result,
            pass.to_string().into(),
            fail.to_string().into(),
            skip.to_string().into(),
        ]);
    }
    t.render()
}

/// Every failure with its detail, and its hint on a line of its own.
fn failures(r: &Report) -> String {
    let mut t = Table::new(&["FAILED CHECK", "SUBJECT", "DETAIL / HINT"]);
    let mut last = "";
    for c in r.failures() {
        let id = if c.id == last { "" } else { c.id.as_str() };
        last = &c.id;
        t.row(vec![id.to_string(), c.subject.clone(), c.detail.clone()]);
        if let Some(h) = &c.hint {
            t.row(vec![String::new(), String::new(), format!("hint: {h}")]);
        }
    }
    t.render()
}

/// The skips collapsed by reason: one line each with the count, the checks and the subjects
/// (named up to a few), since one reason ("node unreachable", "no cluster API configured")
/// usually covers many rows.
fn skips(r: &Report) -> String {
    let mut reasons: Vec<(&str, Vec<&Check>)> = Vec::new();
    for c in r.checks.iter().filter(|c| c.status == Status::Skip) {
        match reasons.iter_mut().find(|(d, _)| *d == c.detail) {
            Some((_, cs)) => cs.push(c),
            None => reasons.push((&c.detail, vec![c])),
        }
    }
    let mut t = Table::new(&["SKIPPED", "REASON", "CHECKS", "SUBJECTS"]);
    for (reason, cs) in reasons {
        let ids = distinct(cs.iter().map(|c| c.id.as_str()));
        let subjects = distinct(cs.iter().map(|c| c.subject.as_str()));
        t.row(vec![
            cs.len().to_string(),
            reason.to_string(),
            shorten(&ids),
            shorten(&subjects),
        ]);
    }
    t.render()
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// "a, b, c and 17 more".
fn shorten(items: &[&str]) -> String {
    if items.len() <= SUBJECTS_SHOWN + 1 {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..SUBJECTS_SHOWN].join(", "),
        items.len() - SUBJECTS_SHOWN
    )
}

/// The mesh line (when the data plane pinged) and the one verdict line.
pub fn verdict(r: &Report) -> String {
    let mut out = String::new();
    if let Some(m) = &r.mesh {
        out.push_str(&m.describe());
        out.push('\n');
    }
    out.push_str(&escape_controls(&format!(
        "{} {}: {} passed, {} failed, {} skipped\n",
        r.command, r.run_id, r.summary.pass, r.summary.fail, r.summary.skip
    )));
    out
}

/// The checks of each id, ids in report order.
fn by_id(r: &Report) -> Vec<(&str, Vec<&Check>)> {
    let mut out: Vec<(&str, Vec<&Check>)> = Vec::new();
    for c in &r.checks {
        match out.last_mut() {
            Some((id, cs)) if *id == c.id => cs.push(c),
            // Report::new sorts by id, so an id seen before cannot come back; look anyway.
            _ => match out.iter_mut().find(|(id, _)| *id == c.id) {
                Some((_, cs)) => cs.push(c),
                None => out.push((&c.id, vec![c])),
            },
        }
    }
    out
}

/// Every row: one per check per subject, a failing row followed by its hint (`--output wide`).
pub fn wide(r: &Report) -> String {
    let mut t = Table::new(&["CHECK", "SUBJECT", "STATUS", "DETAIL / HINT"]);
    let mut last = "";
    for c in &r.checks {
        let id = if c.id == last {
            String::new()
        } else {
            c.id.clone()
        };
        last = &c.id;
        let status = match c.status {
            Status::Pass => Cell::Result {
                ok: true,
                word: "pass",
            },
            Status::Fail => Cell::Result {
                ok: false,
                word: "FAIL",
            },
            Status::Skip => "skip".to_string().into(),
        };
        t.row_cells(vec![
            id.into(),
            c.subject.clone().into(),
            status,
            c.detail.clone().into(),
        ]);
        if let Some(h) = c.hint.as_ref().filter(|_| c.status == Status::Fail) {
            t.row(vec![
                String::new(),
                String::new(),
                String::new(),
                format!("hint: {h}"),
            ]);
        }
    }
    t.render() + &verdict(r)
}

pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("report serialises") + "\n"
}

/// XML text and attribute escaping. Control characters (which XML 1.0 cannot carry, or which would
/// reach a terminal showing the file) become visible escapes first, as in the text report.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in escape_controls(s).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Seconds with milliseconds, as JUnit's `time` attributes want them.
fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// JUnit XML with only the attributes junit-10.xsd allows (Jenkins' xUnit plugin rejects any
/// other: `skipped` is a testsuite's, not the testsuites'). Times are wall clock: a testcase's
/// is its check's (or its node's round trip), a testsuite's the longest of its cases (the
/// subjects of a check run at once, so a sum would count one round trip per node), the
/// testsuites' the whole run's.
pub fn junit(r: &Report) -> String {
    let e = xml_escape;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"netctl {}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{}\">\n",
        r.command,
        r.checks.len(),
        r.summary.fail,
        secs(r.duration_ms)
    ));
    for (id, cases) in by_id(r) {
        let fails = cases.iter().filter(|c| c.status == Status::Fail).count();
        let skips = cases.iter().filter(|c| c.status == Status::Skip).count();
        let ms = cases.iter().map(|c| c.duration_ms).max().unwrap_or(0);
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skips}\" time=\"{}\">\n",
            e(id),
            cases.len(),
            secs(ms)
        ));
        for c in cases {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\">\n",
                e(id),
                e(&c.subject),
                secs(c.duration_ms)
            ));
            // What failed is the message dashboards headline; what to do is the body.
            out.push_str(&match c.status {
                Status::Pass => format!("      <system-out>{}</system-out>\n", e(&c.detail)),
                Status::Skip => format!("      <skipped message=\"{}\"/>\n", e(&c.detail)),
                Status::Fail => format!(
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                    e(&c.detail),
                    e(id),
                    e(&format!("hint: {}", c.hint.as_deref().unwrap_or("")))
                ),
            });
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{dataplane, node_script_ids, Check};

    fn report() -> Report {
        Report::new(
            "20260101T000000Z-ab12".into(),
            vec![
                Check::pass("node.routes", "node-1", "host-gw: 2 peer routes"),
                Check::fail(
                    "node.forwarding",
                    "node-2",
                    "net.ipv4.ip_forward = 0",
                    "sysctl -w net.ipv4.ip_forward=1 & <persist> \"it\"",
                ),
                Check::skip(
                    "cluster.nodes-ready",
                    "cluster",
                    "no cluster API configured",
                ),
                Check::pass("node.forwarding", "node-1", "net.ipv4.ip_forward = 1"),
            ],
            false,
        )
    }

    /// Colourless text: the table colours its result words when the test's stdout is a terminal.
    fn plain(s: String) -> String {
        s.replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "")
    }

    /// The run issue 16 saw: 20 nodes, every node and data-plane check, cluster checks without
    /// an API, node-3 unreachable, and one broken route on node-7.
    fn twenty_nodes() -> Report {
        let mut checks = Vec::new();
        for i in 1..=20 {
            let n = format!("node-{i}");
            if i == 3 {
                checks.push(Check::fail(
                    "node.ssh",
                    &n,
                    "connection refused",
                    "start sshd",
                ));
                for id in node_script_ids().chain(dataplane::IDS) {
                    checks.push(Check::skip(id, &n, "node unreachable"));
                }
                continue;
            }
            checks.push(Check::pass("node.ssh", &n, "connected"));
            for id in node_script_ids() {
                checks.push(if i == 7 && id == "node.routes" {
                    Check::fail(id, &n, "no route to node-8", "run netctl init")
                } else {
                    Check::pass(id, &n, "ok")
                });
            }
            for id in dataplane::IDS {
                checks.push(Check::pass(id, &n, "ok"));
            }
        }
        for id in [
            "cluster.nodes-ready",
            "cluster.pod-cidrs",
            "cluster.provider-pods",
        ] {
            checks.push(Check::skip(id, "cluster", "no cluster API configured"));
        }
        Report::new("20260101T000000Z-ab12".into(), checks, false)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
            + 1
    }

    #[test]
    fn twenty_nodes_put_the_failures_first_and_the_skips_away() {
        let r = twenty_nodes();
        let t = plain(text(&r, TextOptions::default()));
        assert!(line_of(&t, "no route to node-8") < 25, "{t}");
        assert!(line_of(&t, "connection refused") < 25, "{t}");
        assert_eq!(
            line_of(&t, "hint: run netctl init"),
            line_of(&t, "no route to node-8") + 1,
            "{t}"
        );
        // Passes are counted, not listed; skips neither listed nor explained unless asked.
        assert!(!t.contains("node-1 "), "{t}");
        assert!(!t.contains("node unreachable"), "{t}");
        assert!(
            t.contains("node.routes                 FAIL    18    1     1"),
            "{t}"
        );
        assert!(t.ends_with("verify 20260101T000000Z-ab12: 265 passed, 2 failed, 16 skipped\n"));
        assert!(t.lines().count() < 30, "{t}");

        let s = plain(text(
            &r,
            TextOptions {
                skips: true,
                quiet: false,
            },
        ));
        // Thirteen skip rows for node-3, three for the cluster: two lines, subjects shortened.
        assert!(
            s.contains("13       node unreachable           node.provider, node.forwarding, node.br-netfilter and 10 more  node-3\n"),
            "{s}"
        );
        assert!(
            s.contains("3        no cluster API configured  cluster.nodes-ready, cluster.pod-cidrs, cluster.provider-pods"),
            "{s}"
        );
        assert_eq!(s.matches("node unreachable").count(), 1, "{s}");

        // -q: the failures and the verdict only.
        let q = plain(text(
            &r,
            TextOptions {
                skips: false,
                quiet: true,
            },
        ));
        assert!(q.starts_with("FAILED CHECK"), "{q}");
        assert_eq!(q.lines().count(), 7, "{q}");

        // --output wide keeps one row per check per subject.
        let w = plain(wide(&r));
        assert_eq!(w.lines().count(), 1 + 283 + 2 + 1, "{w}");
        assert!(line_of(&w, "no route to node-8") > 100, "{w}");
    }

    #[test]
    fn shortened_lists_name_a_few() {
        assert_eq!(shorten(&["a", "b", "c", "d"]), "a, b, c, d");
        assert_eq!(shorten(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more");
    }

    #[test]
    fn checks_are_grouped_and_counted() {
        let r = report();
        assert_eq!((r.summary.pass, r.summary.fail, r.summary.skip), (2, 1, 1));
        let ids: Vec<_> = r.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "node.forwarding",
                "node.forwarding",
                "node.routes",
                "cluster.nodes-ready"
            ]
        );
        for t in [text(&r, TextOptions::default()), wide(&r)] {
            assert!(t.contains("hint: sysctl -w"), "{t}");
            assert!(
                t.ends_with("verify 20260101T000000Z-ab12: 2 passed, 1 failed, 1 skipped\n"),
                "{t}"
            );
        }
        let hostile = Report::new(
            "run\x1b[2J".into(),
            vec![Check::fail(
                "node.ssh",
                "n\x1b]0;x\x07",
                "held by \x1b[2J",
                "\u{9b}hint",
            )],
            false,
        );
        // Only the table's own colour (on when the test's stdout is a terminal) may be an escape.
        for h in [
            plain(text(
                &hostile,
                TextOptions {
                    skips: true,
                    quiet: false,
                },
            )),
            plain(wide(&hostile)),
        ] {
            assert!(!h.contains(['\x1b', '\x07', '\u{9b}']), "{h:?}");
            assert!(
                h.contains("n\\x1b]0;x\\x07") && h.contains("held by \\x1b[2J"),
                "{h}"
            );
            assert!(
                h.contains("hint: \\u{9b}hint") && h.contains("verify run\\x1b[2J:"),
                "{h}"
            );
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"pass": 2, "fail": 1, "skip": 1})
        );
        assert!(v["duration_ms"].is_u64(), "{v}");
        let c = &v["checks"][0];
        for k in ["id", "subject", "status", "detail", "hint", "duration_ms"] {
            assert!(c.get(k).is_some(), "{k} in {c}");
        }
        assert_eq!(c["status"], "fail");
    }

    /// The attributes junit-10.xsd (the Jenkins xUnit plugin's schema) allows on each element.
    fn allowed(element: &str) -> &'static [&'static str] {
        match element {
            "testsuites" => &["name", "time", "tests", "failures", "disabled", "errors"],
            "testsuite" => &[
                "name",
                "tests",
                "failures",
                "errors",
                "skipped",
                "time",
                "timestamp",
                "hostname",
                "id",
                "package",
                "disabled",
            ],
            "testcase" => &["name", "classname", "time", "status", "assertions"],
            "failure" | "error" | "skipped" => &["message", "type"],
            "system-out" | "system-err" => &[],
            other => panic!("element {other} is not in junit-10.xsd"),
        }
    }

    /// Every element's name and attributes, checking well-formedness on the way (a small stack
    /// check and attribute scan; no XML crate needed).
    fn elements(x: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for tag in x.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap();
            if tag.starts_with('?') {
                continue;
            }
            if let Some(close) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(close.to_string()), "{x}");
                continue;
            }
            let selfclosing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, mut rest) = tag.split_once(' ').unwrap_or((tag, ""));
            let mut attrs = Vec::new();
            while let Some((k, v)) = rest.trim_start().split_once("=\"") {
                let (value, after) = v.split_once('"').expect("a closing quote");
                attrs.push((k.to_string(), value.to_string()));
                rest = after;
            }
            assert!(rest.trim().is_empty(), "stray text in <{tag}>");
            if !selfclosing {
                stack.push(name.to_string());
            }
            out.push((name.to_string(), attrs));
        }
        assert!(stack.is_empty(), "{x}");
        out
    }

    #[test]
    fn junit_has_only_the_schemas_attributes() {
        let mut r = twenty_nodes();
        r.checks[0].duration_ms = 2500;
        for c in r.checks.iter_mut().skip(1) {
            c.duration_ms = 900;
        }
        r.duration_ms = 3100;
        let x = junit(&r);
        let els = elements(&x);
        assert_eq!(els[0].0, "testsuites");
        for (name, attrs) in &els {
            for (k, _) in attrs {
                assert!(allowed(name).contains(&k.as_str()), "{k} on {name}");
            }
        }
        let attr = |i: usize, k: &str| {
            els[i]
                .1
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        // The whole run's wall time, not a sum of round trips (282 x 0.9 s).
        assert_eq!(attr(0, "time"), "3.100");
        assert_eq!(attr(0, "tests"), "283");
        assert_eq!(attr(0, "failures"), "2");
        // A suite's time is its slowest case: node.ssh's subjects ran at once.
        assert_eq!(
            (attr(1, "name"), attr(1, "time")),
            ("node.ssh".into(), "2.500".into())
        );
        let suites: Vec<usize> = (0..els.len())
            .filter(|&i| els[i].0 == "testsuite")
            .collect();
        assert_eq!(suites.len(), 17);
        assert_eq!(
            (attr(suites[2], "name"), attr(suites[2], "time")),
            ("node.forwarding".into(), "0.900".into())
        );
    }

    #[test]
    fn junit_is_escaped_and_counts_right() {
        let x = junit(&report());
        assert!(
            x.contains(
                "<testsuite name=\"node.forwarding\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""
            ),
            "{x}"
        );
        // The message is what failed; the hint is the body.
        assert!(
            x.contains("<failure message=\"net.ipv4.ip_forward = 0\" type=\"node.forwarding\">hint: sysctl -w net.ipv4.ip_forward=1 &amp; &lt;persist&gt; &quot;it&quot;</failure>"),
            "{x}"
        );
        assert!(
            x.contains("<skipped message=\"no cluster API configured\"/>"),
            "{x}"
        );
        elements(&x);
        assert_eq!(
            xml_escape("a\u{1}b\nc\x1b]0;t\x07\u{9b}"),
            "a\\x01b&#10;c\\x1b]0;t\\x07\\u{9b}"
        );
    }
}
