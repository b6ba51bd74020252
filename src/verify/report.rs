//! A verify report for people (a table grouped by check), for programs (JSON, schema in
//! docs/verify.md) and for CI systems (JUnit XML: a testsuite per check id, a testcase per subject).

use super::{Report, Status};
use crate::printer::{escape_controls, Cell, Table};

pub fn text(r: &Report) -> String {
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
    // The table escapes its cells; the rest is escaped here, so the text is safe as it is (main
    // prints it without escaping it again, which would show the table's colours as escapes).
    let mut out = t.render();
    if let Some(m) = &r.mesh {
        out.push_str(&m.describe());
        out.push('\n');
    }
    out.push_str(&escape_controls(&format!(
        "verify {}: {} passed, {} failed, {} skipped\n",
        r.run_id, r.summary.pass, r.summary.fail, r.summary.skip
    )));
    out
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

pub fn junit(r: &Report) -> String {
    let e = xml_escape;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total_ms: u64 = r.checks.iter().map(|c| c.duration_ms).sum();
    out.push_str(&format!(
        "<testsuites name=\"netctl verify\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        r.checks.len(),
        r.summary.fail,
        r.summary.skip,
        total_ms as f64 / 1000.0
    ));
    let mut ids: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !ids.contains(&c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    for id in ids {
        let cases: Vec<_> = r.checks.iter().filter(|c| c.id == id).collect();
        let fails = cases.iter().filter(|c| c.status == Status::Fail).count();
        let skips = cases.iter().filter(|c| c.status == Status::Skip).count();
        let ms: u64 = cases.iter().map(|c| c.duration_ms).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skips}\" time=\"{:.3}\">\n",
            e(id),
            cases.len(),
            ms as f64 / 1000.0
        ));
        for c in cases {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                e(id),
                e(&c.subject),
                c.duration_ms as f64 / 1000.0
            ));
            match c.status {
                Status::Pass => out.push_str(&format!(
                    ">\n      <system-out>{}</system-out>\n    </testcase>\n",
                    e(&c.detail)
                )),
                Status::Skip => out.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    e(&c.detail)
                )),
                Status::Fail => out.push_str(&format!(
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                    e(c.hint.as_deref().unwrap_or("")),
                    e(id),
                    e(&c.detail)
                )),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Check;

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
        let t = text(&r);
        assert!(t.contains("hint: sysctl -w"), "{t}");
        assert!(
            t.ends_with("verify 20260101T000000Z-ab12: 2 passed, 1 failed, 1 skipped\n"),
            "{t}"
        );
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
        let h = text(&hostile)
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
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

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"pass": 2, "fail": 1, "skip": 1})
        );
        let c = &v["checks"][0];
        for k in ["id", "subject", "status", "detail", "hint", "duration_ms"] {
            assert!(c.get(k).is_some(), "{k} in {c}");
        }
        assert_eq!(c["status"], "fail");
    }

    #[test]
    fn junit_is_escaped_and_counts_right() {
        let x = junit(&report());
        assert!(
            x.contains(
                "<testsuite name=\"node.forwarding\" tests=\"2\" failures=\"1\" skipped=\"0\""
            ),
            "{x}"
        );
        assert!(x.contains("<failure message=\"sysctl -w net.ipv4.ip_forward=1 &amp; &lt;persist&gt; &quot;it&quot;\""), "{x}");
        assert!(
            x.contains("<skipped message=\"no cluster API configured\"/>"),
            "{x}"
        );
        // Well-formed: every opened element closes (a small stack check; no XML crate needed).
        let mut stack = Vec::new();
        for tag in x.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap();
            if tag.starts_with('?') || tag.ends_with('/') {
                continue;
            }
            if let Some(close) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(close.to_string()), "{x}");
            } else {
                stack.push(tag.split_whitespace().next().unwrap().to_string());
            }
        }
        assert!(stack.is_empty());
        assert_eq!(
            xml_escape("a\u{1}b\nc\x1b]0;t\x07\u{9b}"),
            "a\\x01b&#10;c\\x1b]0;t\\x07\\u{9b}"
        );
    }
}
