//! The profile is the desired network (issue 15, items 1-3), end to end on one netns lab:
//! `init` refuses a profile that names another network than the nodes record (and changes
//! nothing), `plan` warns instead; `verify` reports such nodes as one `node.provider` failure
//! each; `switch -p P` without `--networking` moves the nodes to what the profile says; a one-off
//! `--networking` switch writes its network into the profile, changing only that line.

mod labkit;

use std::path::Path;

use labkit::{can_run, text, Lab};

/// Every node's netctl files (with mode, size and sha256), routes and links.
fn snapshot(lab: &Lab) -> Vec<String> {
    (1..=lab.nodes)
        .map(|i| {
            lab.exec_ok(
                &lab.node(i),
                "for d in /etc/cni/net.d /etc/sysctl.d /usr/local/lib/netctl /var/lib/netctl /run/netctl; do \
                   [ -d $d ] && find $d -xdev -type f -printf '%p %s %m\\n' -exec sha256sum {} \\; ; done | sort; \
                 ip -4 route show; ip -o link show | cut -d' ' -f2",
            )
        })
        .collect()
}

fn recorded_backend(lab: &Lab, node: &str) -> String {
    let st: serde_json::Value =
        serde_json::from_str(&lab.exec_ok(node, "cat /var/lib/netctl/state.json")).unwrap();
    st["backend"].as_str().unwrap().to_string()
}

/// verify's JSON report: exit code and the failed checks as (id, subject).
fn verify(lab: &Lab, profile: &Path) -> (Option<i32>, Vec<(String, String)>, serde_json::Value) {
    let o = lab.netctl(&["verify", "--output", "json"], profile);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify's JSON: {e}\n{}", text(&o)));
    let failed = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (o.status.code(), failed, v)
}

fn check<'a>(v: &'a serde_json::Value, id: &str, subject: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id && c["subject"] == subject)
        .unwrap_or_else(|| panic!("no {id} for {subject}"))
}

/// The lines of `a` and `b` that differ (the files have the same number of lines).
fn changed_lines(a: &str, b: &str) -> Vec<(String, String)> {
    assert_eq!(a.lines().count(), b.lines().count(), "{a}\n---\n{b}");
    a.lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect()
}

#[test]
fn the_profile_is_the_desired_network() {
    if !can_run("the_profile_is_the_desired_network") {
        return;
    }
    let started = std::time::Instant::now();
    let lab = Lab::up("des1", "netns", 3, 201);
    // The operator's copy, with a comment of their own that every rewrite must keep.
    let host_gw = lab.profile_text().replace(
        "networking:\n",
        "networking:   # reviewed in git\n  # the VPC allows no VXLAN yet\n",
    );
    assert!(
        host_gw.contains("  routes: { backend: host-gw }\n"),
        "{host_gw}"
    );
    let p = lab.profile.with_file_name("desired.yaml");
    std::fs::write(&p, &host_gw).unwrap();
    let o = lab.netctl(&["init", "--yes", "--no-verify"], &p);
    assert!(o.status.success(), "{}", text(&o));

    // (c) A profile naming vxlan while the nodes record host-gw: init refuses, exit 3, naming
    // the node, what it records and the ways out, and changes nothing on any node.
    let vxlan_text = host_gw.replace("backend: host-gw", "backend: vxlan");
    let q = lab.profile.with_file_name("desired-vxlan.yaml");
    std::fs::write(&q, &vxlan_text).unwrap();
    let before = snapshot(&lab);
    let o = lab.netctl(&["init", "--yes"], &q);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "node-1, node-2, node-3: records routes (host-gw) (set by run ",
        "the profile names routes (vxlan)",
        &format!("`netctl switch -p {}`", q.display()),
        "--allow-provider-change",
        "Nothing was changed",
    ] {
        assert!(
            err.contains(want),
            "init's refusal lacks {want:?}: {}",
            text(&o)
        );
    }
    assert_eq!(before, snapshot(&lab), "a refused init changed a node");
    // plan says the same as a warning, and plans.
    let o = lab.netctl(&["plan"], &q);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("warning: node-1, node-2, node-3: records routes (host-gw)")
            && out.contains("init will refuse"),
        "{}",
        text(&o)
    );
    assert_eq!(before, snapshot(&lab), "plan changed a node");

    // (d) verify against the mismatched profile: one failure per node, node.provider, naming
    // the record and the ways out; the route check that follows from it is skipped.
    let (code, failed, v) = verify(&lab, &q);
    assert_eq!(code, Some(1));
    let want: Vec<(String, String)> = (1..=3)
        .map(|i| ("node.provider".to_string(), lab.node(i)))
        .collect();
    assert_eq!(failed, want, "{v}");
    let c = check(&v, "node.provider", "node-2");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .starts_with("records routes (host-gw) (set by run "),
        "{c}"
    );
    assert!(
        c["hint"].as_str().unwrap().contains("netctl switch -p"),
        "{c}"
    );
    assert_eq!(check(&v, "node.routes", "node-2")["status"], "skip", "{v}");
    assert_eq!(
        check(&v, "dataplane.pod-to-pod", "node-2")["status"],
        "pass",
        "the pods still reach each other: {v}"
    );

    // (a) The profile edited to vxlan (a text edit of the operator's file): `switch -p P`
    // without --networking moves the nodes there; the profile is not touched; verify passes.
    std::fs::write(&p, &vxlan_text).unwrap();
    let o = lab.netctl(&["switch", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("switch routes (host-gw) -> routes (vxlan): switched"),
        "{}",
        text(&o)
    );
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("profile "),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), vxlan_text);
    for i in 1..=3 {
        assert_eq!(recorded_backend(&lab, &lab.node(i)), "vxlan");
    }
    let (code, failed, v) = verify(&lab, &p);
    assert_eq!((code, failed.as_slice()), (Some(0), &[][..]), "{v}");
    assert_eq!(check(&v, "node.provider", "node-1")["status"], "pass");

    // (b) A one-off --networking switch writes the new backend into the profile: exactly that
    // line changes, and it says so on stderr.
    let o = lab.netctl(
        &[
            "switch",
            "--yes",
            "--networking",
            "routes",
            "--backend",
            "host-gw",
        ],
        &p,
    );
    assert!(o.status.success(), "{}", text(&o));
    let now = std::fs::read_to_string(&p).unwrap();
    assert_eq!(
        changed_lines(&vxlan_text, &now),
        [(
            "  routes: { backend: vxlan }".to_string(),
            "  routes: { backend: host-gw }".to_string()
        )]
    );
    assert_eq!(now, host_gw, "every other byte kept");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "profile {}: networking.routes.backend vxlan -> host-gw\n",
            p.display()
        )),
        "{}",
        text(&o)
    );
    // The profile now names what the nodes run: a plain switch has nothing to do.
    let o = lab.netctl(&["switch", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": unchanged"),
        "{}",
        text(&o)
    );

    // (c) continued: --allow-provider-change is the operator's unguarded way.
    let o = lab.netctl(
        &["init", "--yes", "--no-verify", "--allow-provider-change"],
        &q,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(--allow-provider-change)"),
        "{}",
        text(&o)
    );
    for i in 1..=3 {
        assert_eq!(recorded_backend(&lab, &lab.node(i)), "vxlan");
    }
    eprintln!("DESIRED lab test: {:.1} s", started.elapsed().as_secs_f64());
}
