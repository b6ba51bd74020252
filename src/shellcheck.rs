//! shellcheck (Debian's, POSIX sh: nodes run /bin/sh) over every shell script netctl sends to a
//! node or installs there: each script file under templates/ as the builder makes it, with sample
//! arguments; the tera-rendered ones (txn.sh, routes.sh for host-gw and vxlan); and the commands
//! and teardown steps of every example profile's node plans. A script file nobody builds here
//! fails the test, so a new one cannot skip the check.
//!
//! Without shellcheck the test says why it skips; under CI=true it fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::phase::{gather, lock, txn};
use crate::profile::Cluster;
use crate::state::SwitchRecord;
use crate::verify::{cni, dataplane, node};

fn sample_clusters() -> Vec<(String, Cluster)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(root.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, crate::profile::load(&p).unwrap()));
    }
    for backend in ["host-gw", "vxlan"] {
        let text = format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes\n  routes: {{ backend: {backend} }}\nnodes:\n  - {{ name: node-1, address: 10.240.0.11, roles: [worker] }}\n  - {{ name: node-2, address: 10.240.0.12, roles: [controller, worker] }}\n"
        );
        let c = crate::profile::load_str(&text, Path::new("t.yaml")).unwrap();
        out.push((format!("routes-{backend}"), c));
    }
    out
}

/// (name, script text) for every script.
fn scripts() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for (name, cluster) in sample_clusters() {
        for n in &cluster.nodes {
            let plan = crate::provider::node_plan(&cluster, n, &crate::provider::Inputs::default());
            let at = format!("{name}/{}", n.name);
            v.push((format!("{at}: gather"), gather::script(&plan)));
            v.push((
                format!("{at}: verify node checks"),
                node::script(&cluster, n, &plan),
            ));
            v.push((
                format!("{at}: preflight facts"),
                crate::preflight::node::script(&cluster, &[n.address]),
            ));
            for f in plan.files.iter().filter(|f| f.path.ends_with(".sh")) {
                let text = String::from_utf8_lossy(f.bytes()).into_owned();
                v.push((format!("{at}: {}", f.path), text));
            }
            for (kind, steps) in [("command", &plan.commands), ("teardown", &plan.teardown)] {
                for s in steps.iter() {
                    v.push((format!("{at}: {kind} {}", s.title), s.command.clone()));
                }
            }
        }
        v.push((
            format!("{name}: sweep"),
            dataplane::sweep_script(&cluster.profile.networking.cni_conf_dir),
        ));
    }
    let run = "20261130T000000Z-abcd";
    let me = lock::Holder::me(run, "init");
    v.push(("lock".into(), lock::lock_script(&me)));
    v.push(("unlock".into(), lock::unlock_script(run)));
    v.push(("txn.sh".into(), txn::script()));
    v.push(("txn undo".into(), txn::undo_script(run)));
    let record: SwitchRecord = serde_json::from_str(&format!(
        r#"{{"run_id":"{run}","from":{{"provider":"routes","backend":"host-gw"}},"to":{{"provider":"routes","backend":"vxlan"}},"phase":"switching","files":[["/etc/cni/net.d/10-bridge.conf","create"],["/etc/x","update"]]}}"#
    ))
    .unwrap();
    v.push(("switch roll back".into(), record.roll_back_script()));
    v.push(("switch drop record".into(), record.drop_script()));
    let mut settled = crate::state::NodeState {
        provider: "routes".into(),
        ..Default::default()
    };
    settled.last_switch = Some(record.clone());
    v.push(("switch settle".into(), settled.settle_script(run)));
    let list = cni::parse(
        "10-x.conflist",
        r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}}]}"#,
    )
    .unwrap();
    for netns in [
        dataplane::Netns::Add,
        dataplane::Netns::Keep,
        dataplane::Netns::Del,
    ] {
        v.push((
            format!("cni invoke {netns:?}"),
            dataplane::invoke_script(
                "ADD",
                &list,
                0,
                "netctl-ab12-a",
                "/usr/lib/cni",
                None,
                netns,
            ),
        ));
    }
    let t = |kind, df_size| dataplane::Target {
        kind,
        label: "node-2".into(),
        ip: "10.200.1.2".parse().unwrap(),
        df_size,
    };
    v.push((
        "ping".into(),
        dataplane::ping_script("netctl-ab12-a", &[t("node", None)], &[t("mtu", Some(1422))]),
    ));
    let steps = "neigh 10.200.0.2 bridge cni0 rmrf /var/lib/cni/networks/net cursors /var/lib/cni/networks/net cursor /var/lib/cni/networks/net/last_reserved_ip.0 1700000000.5 10.200.0.7 rmdir /var/lib/cni forward-off";
    let steps: Vec<String> = steps.split(' ').map(String::from).collect();
    v.push((
        "test pods' leftovers".into(),
        dataplane::pods_left_script(&steps),
    ));
    use crate::preflight::agent::{self, Listen};
    v.push((
        "preflight agent".into(),
        agent::serve_script(run, &[Listen::Udp(8472), Listen::Ipip]),
    ));
    v.push(("preflight kill".into(), agent::kill_script(run, 4242)));
    v
}

fn shellcheck(script: &str) -> String {
    let mut child = Command::new("shellcheck")
        // No code is excluded here: a script that must do what shellcheck warns about says why
        // beside a `# shellcheck disable=` line of its own.
        .args(["--shell=sh", "--format=gcc", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shellcheck");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every templates/**/*.sh, by its path under templates/.
fn script_files() -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|e| e == "sh") {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut out = BTreeMap::new();
    walk(&base, &base, &mut out);
    out
}

#[test]
fn every_script_passes_shellcheck() {
    let scripts = scripts();
    // A script file is covered when a built script holds its text; the tera-rendered ones are
    // built above by their own renderers.
    let rendered = ["node/txn.sh", "routes/routes.sh"];
    for (path, body) in script_files() {
        if rendered.contains(&path.as_str()) {
            continue;
        }
        let body = body.strip_prefix("#!/bin/sh\n").unwrap_or(&body);
        assert!(
            scripts.iter().any(|(_, s)| s.contains(body)),
            "templates/{path} is not built by any sample here: add it to scripts()"
        );
    }
    for path in rendered {
        let files = script_files();
        let first = files[path]
            .lines()
            .skip(1)
            .find(|l| l.len() > 20 && !l.contains("{{") && !l.contains("{%"))
            .unwrap();
        assert!(
            scripts.iter().any(|(_, s)| s.contains(first)),
            "templates/{path} is not rendered by any sample here"
        );
    }

    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        let why = "shellcheck is not installed (Debian: apt-get install shellcheck)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    // One shellcheck run per distinct text (many nodes share their scripts).
    let mut seen = BTreeMap::new();
    for (name, text) in &scripts {
        seen.entry(text.clone()).or_insert(name.clone());
    }
    let mut problems = Vec::new();
    for (text, name) in &seen {
        let found = shellcheck(text);
        if !found.trim().is_empty() {
            problems.push(format!("== {name}\n{found}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
