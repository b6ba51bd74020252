//! Profiles end to end through the real binary: every example profile checks clean, every bad
//! profile under tests/bad-profiles/ exits 2 naming its field (its first line says which), and
//! `profile check --output json` has the documented shape.

use std::path::{Path, PathBuf};
use std::process::Command;

fn netctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netctl"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn example_profiles_check_clean() {
    let files = yaml_files("profiles");
    assert!(files.len() >= 6);
    for f in files {
        let out = netctl()
            .args(["profile", "check", "-p"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_profiles_exit_2_naming_the_field() {
    let files = yaml_files("tests/bad-profiles");
    assert!(files.len() >= 25, "the corpus has one profile per rule");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks its '# expect: FIELD' line", f.display()));
        let out = netctl()
            .args(["profile", "check", "-p"])
            .arg(&f)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", f.display());
        assert!(
            stderr.contains(expect),
            "{}: expected {expect:?} in {stderr}",
            f.display()
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", f.display());
        assert!(
            out.stdout.is_empty(),
            "{}: nothing on stdout for a bad profile",
            f.display()
        );
    }
}

#[test]
fn all_problems_are_reported_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(
        &p,
        "apiVersion: netctl/v1\nkind: ClusterProfile\nname: x\nkubernetes: {version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.200.0.0/24}\nnetworking: {provider: routes}\nnodes:\n  - {name: a, address: 10.0.0.1}\n  - {name: a, address: 10.0.0.1}\n",
    )
    .unwrap();
    let out = netctl()
        .args(["profile", "check", "-p"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for field in [
        "kubernetes.serviceCIDR",
        "nodes[1].name",
        "nodes[1].address",
    ] {
        assert!(stderr.contains(field), "{field} missing from {stderr}");
    }
}

#[test]
fn missing_profile_file_is_bad_input() {
    let out = netctl()
        .args(["profile", "check", "-p", "/nonexistent/netctl.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/netctl.yaml"));
}

#[test]
fn check_json_has_the_documented_shape() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/gce-routes.yaml");
    let out = netctl()
        .args(["profile", "check", "--output", "json", "-p"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "kubernetes-the-hard-way");
    assert_eq!(v["provider"], "routes");
    assert_eq!(v["clusterCIDR"], "10.200.0.0/16");
    assert_eq!(v["serviceCIDR"], "10.32.0.0/24");
    let w0 = &v["nodes"][3];
    assert_eq!(w0["name"], "worker-0");
    assert_eq!(w0["address"], "10.240.0.20");
    assert_eq!(w0["roles"], serde_json::json!(["worker"]));
    assert_eq!(w0["podCIDR"], "10.200.0.0/24");
    assert_eq!(v["nodes"][0]["podCIDR"], serde_json::Value::Null);
}

/// `--concurrency` is bounded as `ssh.concurrency` is (2^64-1 used to reach tokio's semaphore and
/// panic): clap refuses it with exit 2 before anything is read or connected.
#[test]
fn concurrency_flag_out_of_range_is_bad_input() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/gce-routes.yaml");
    for cmd in ["init", "verify", "reset"] {
        for value in ["0", "1025", "18446744073709551615"] {
            let out = netctl()
                .args([cmd, "--concurrency", value, "-p"])
                .arg(&p)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {value}: {stderr}");
            assert!(
                stderr.contains("--concurrency") && stderr.contains("1..=1024"),
                "{cmd} {value}: {stderr}"
            );
        }
    }
}
