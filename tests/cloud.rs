//! Cloud routes (routes backend gce, aws): init makes sure every routed instance forwards IP (gce:
//! checked, aws: the source/destination check turned off), then creates one route per node with
//! the cloud CLI found on PATH; it is idempotent (an existing route or setting is "unchanged"),
//! and names the missing tool and the step when the CLI is not installed. gcloud and aws are
//! stand-ins that record their arguments (tests/standin/cloud/); the nodes are real lab nodes.

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
        "compute instances list --filter=name=node-1 --format=value(name,canIpForward)\n\
         compute instances list --filter=name=node-2 --format=value(name,canIpForward)\n\
         compute routes create kubernetes-route-10-200-0-0-24 --network lab-net --next-hop-address 10.240.71.11 --destination-range 10.200.0.0/24\n\
         compute routes create kubernetes-route-10-200-1-0-24 --network lab-net --next-hop-address 10.240.71.12 --destination-range 10.200.1.0/24\n"
    );
    let results: Vec<&str> = v["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["unchanged", "unchanged", "applied", "applied"],
        "{v}"
    );
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
    assert_eq!(results, ["unchanged"; 4], "{v}");

    // An instance that does not forward IP fails init, saying what to do.
    std::fs::write(dir.path().join("no-forward"), "node-2\n").unwrap();
    let (o, v) = init(&p, dir.path(), &path);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let failed: Vec<&str> = v["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "failed")
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert!(
        failed[0].starts_with("check that node-2 forwards IP: gcloud answered \"node-2\\tFalse\"")
            && failed[0].contains("--can-ip-forward"),
        "{}",
        failed[0]
    );
    std::fs::remove_file(dir.path().join("no-forward")).unwrap();

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

#[test]
fn aws_source_dest_check_is_turned_off_once_then_routes_created() {
    if !can_run("aws_source_dest_check_is_turned_off_once_then_routes_created") {
        return;
    }
    let lab = Lab::up("pq-aws", "netns", 2, 186);
    let p = lab.profile_variant("aws", |v| {
        v["networking"]["routes"] =
            serde_yaml::from_str("{backend: aws, awsRouteTableId: rtb-0123abcd}").unwrap();
        for (i, n) in v["nodes"].as_sequence_mut().unwrap().iter_mut().enumerate() {
            n["instanceId"] = format!("i-0000000000000000{i}").into();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/cloud");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let results = |v: &serde_json::Value| -> Vec<String> {
        v["cluster"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["result"].as_str().unwrap().to_string())
            .collect()
    };

    let (o, v) = init(&p, dir.path(), &path);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(results(&v), ["applied"; 4], "{v}");
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    let q = "--attribute sourceDestCheck --query SourceDestCheck.Value --output text";
    assert_eq!(
        calls,
        format!(
            "ec2 describe-instance-attribute --instance-id i-00000000000000000 {q}\n\
             ec2 modify-instance-attribute --instance-id i-00000000000000000 --no-source-dest-check\n\
             ec2 describe-instance-attribute --instance-id i-00000000000000001 {q}\n\
             ec2 modify-instance-attribute --instance-id i-00000000000000001 --no-source-dest-check\n\
             ec2 create-route --route-table-id rtb-0123abcd --destination-cidr-block 10.200.0.0/24 --instance-id i-00000000000000000\n\
             ec2 create-route --route-table-id rtb-0123abcd --destination-cidr-block 10.200.1.0/24 --instance-id i-00000000000000001\n"
        )
    );

    // Idempotent: the checks are off and the routes exist.
    let (o, v) = init(&p, dir.path(), &path);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(results(&v), ["unchanged"; 4], "{v}");
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(
        calls.matches("modify-instance-attribute").count(),
        2,
        "{calls}"
    );
}
