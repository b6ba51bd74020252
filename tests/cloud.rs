//! Cloud routes (routes backend gce): init creates one route per node with the gcloud CLI found
//! on PATH, is idempotent (an existing route is "unchanged"), and names the missing tool and the
//! step when gcloud is not installed. gcloud is a stand-in that records its arguments
//! (tests/standin/cloud/gcloud); the nodes are real lab nodes.

mod labkit;

use std::path::Path;

use labkit::{can_run, text, Lab};

fn init(profile: &Path, standin: &Path, path: &str) -> (std::process::Output, serde_json::Value) {
    let o = labkit::netctl()
        .args(["init", "--yes", "--no-verify", "--output", "json", "-p"])
        .arg(profile)
        .env("PATH", path)
        .env("NETCTL_STANDIN_DIR", standin)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

#[test]
fn gce_routes_are_created_once_with_gcloud() {
    if !can_run("gce_routes_are_created_once_with_gcloud") {
        return;
    }
    let lab = Lab::up("cl-gce", "netns", 2, 71);
    let p = lab.profile_variant("gce", |v| {
        v["networking"]["routes"] =
            serde_yaml::from_str("{backend: gce, gceNetwork: lab-net}").unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/cloud");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let (o, v) = init(&p, dir.path(), &path);
    assert!(o.status.success(), "{}", text(&o));
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(
        calls,
        "compute routes create kubernetes-route-10-200-0-0-24 --network lab-net --next-hop-address 10.240.71.11 --destination-range 10.200.0.0/24\n\
         compute routes create kubernetes-route-10-200-1-0-24 --network lab-net --next-hop-address 10.240.71.12 --destination-range 10.200.1.0/24\n"
    );
    let results: Vec<&str> = v["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["applied", "applied"], "{v}");
    // The nodes only forward: no kernel routes of netctl's (the VPC routes pods).
    assert_eq!(lab.exec_ok("node-1", "ip -4 route show proto 211"), "");
    assert_eq!(
        lab.exec_ok("node-1", "sysctl -n net.ipv4.ip_forward")
            .trim(),
        "1"
    );

    let (o, v) = init(&p, dir.path(), &path);
    assert!(o.status.success(), "{}", text(&o));
    let results: Vec<&str> = v["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["unchanged", "unchanged"], "{v}");

    // Without gcloud: the tool and the step are named, and init fails.
    let (o, _) = init(&p, dir.path(), "/nonexistent");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o)
            .contains("gcloud is needed to route 10.200.0.0/24 to node-1, but it is not on PATH"),
        "{}",
        text(&o)
    );
}
