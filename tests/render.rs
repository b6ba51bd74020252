//! Rendering end to end through the real binary: a golden snapshot of every example profile's
//! whole render (review every change: `UPDATE_GOLDEN=1 cargo test --test render`), determinism,
//! and checks that every rendered file is well-formed for its consumer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn profiles() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Render `profile` with the binary into a fresh temp dir; returns (dir guard, path -> (mode, content)).
fn render(profile: &Path) -> (tempfile::TempDir, BTreeMap<String, (u32, String)>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .args(["render", "-p"])
        .arg(profile)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut files = BTreeMap::new();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                files.insert(rel, (mode, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    (dir, files)
}

fn snapshot(files: &BTreeMap<String, (u32, String)>) -> String {
    let mut s = String::new();
    for (path, (mode, content)) in files {
        s.push_str(&format!("==== {path} ({mode:04o}) ====\n{content}"));
        if !content.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

#[test]
fn golden_snapshots() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for p in profiles() {
        let (_d, files) = render(&p);
        let snap = snapshot(&files);
        let golden = root()
            .join("tests/golden")
            .join(p.file_stem().unwrap())
            .with_extension("txt");
        if update {
            std::fs::write(&golden, &snap).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == snap => {}
            Ok(want) => {
                let first = want
                    .lines()
                    .zip(snap.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.lines().count().min(snap.lines().count()));
                failures.push(format!(
                    "{}: differs from {} at line {} (review, then UPDATE_GOLDEN=1)",
                    p.display(),
                    golden.display(),
                    first + 1
                ));
            }
            Err(_) => failures.push(format!("{} has no golden file {}", p.display(), golden.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn render_is_deterministic() {
    for p in profiles() {
        let (_a, first) = render(&p);
        let (_b, second) = render(&p);
        assert_eq!(first, second, "{}", p.display());
    }
}

#[test]
fn render_refuses_to_overwrite_a_foreign_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .args(["render", "-p"])
        .arg(root().join("profiles/gce-routes.yaml"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(), "keep");
}

#[test]
fn every_json_file_parses() {
    for p in profiles() {
        let (_d, files) = render(&p);
        for (path, (_, content)) in &files {
            if path.ends_with(".json") || path.ends_with(".conf") && path.contains("/cni/") || path.ends_with(".conflist") {
                serde_json::from_str::<serde_json::Value>(content)
                    .unwrap_or_else(|e| panic!("{}: {path}: {e}", p.display()));
            }
        }
    }
}

#[test]
fn every_manifest_is_well_formed_kubernetes_yaml() {
    use serde::Deserialize;
    for p in profiles() {
        let (_d, files) = render(&p);
        for (path, (_, content)) in &files {
            if !(path.starts_with("cluster/") && path.ends_with(".yaml")) || path.ends_with("kustomization.yaml") {
                continue;
            }
            assert!(!content.contains("extensions/v1beta1"), "{path}");
            assert!(!content.contains("rbac.authorization.k8s.io/v1beta1"), "{path}");
            for doc in serde_yaml::Deserializer::from_str(content) {
                let v = serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}"));
                if v.is_null() {
                    continue;
                }
                for key in ["apiVersion", "kind"] {
                    assert!(v.get(key).and_then(|k| k.as_str()).is_some(), "{path}: a document lacks {key}");
                }
                let name = v.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str());
                assert!(name.is_some_and(|n| !n.is_empty()), "{path}: a document lacks metadata.name");
                let api = v["apiVersion"].as_str().unwrap();
                let kind = v["kind"].as_str().unwrap();
                if matches!(kind, "DaemonSet" | "Deployment") {
                    assert_eq!(api, "apps/v1", "{path}: {kind}");
                }
                if kind.starts_with("ClusterRole") || kind.starts_with("Role") {
                    assert_eq!(api, "rbac.authorization.k8s.io/v1", "{path}: {kind}");
                }
            }
        }
    }
}

/// `systemd-analyze verify` on every rendered unit. It also fails when an ExecStart binary is
/// missing on this machine (kubelet, flanneld are not installed here), so those lines, and only
/// those, are tolerated; any other complaint (an unknown key, a bad value) fails the test.
#[test]
fn every_systemd_unit_verifies() {
    let Ok(analyze) = which::which("systemd-analyze") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "systemd-analyze is missing under CI");
        eprintln!("SKIP every_systemd_unit_verifies: systemd-analyze is not installed");
        return;
    };
    for p in profiles() {
        let (d, files) = render(&p);
        for (path, (_, content)) in &files {
            if !path.ends_with(".service") {
                continue;
            }
            let unit_dir = d.path().join("units").join(path.replace('/', "_"));
            std::fs::create_dir_all(&unit_dir).unwrap();
            let name = Path::new(path).file_name().unwrap();
            let unit = unit_dir.join(name);
            std::fs::write(&unit, content).unwrap();
            let o = Command::new(&analyze)
                .arg("verify")
                .arg(&unit)
                .env("SYSTEMD_LOG_COLOR", "0")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let real: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter(|l| !(l.contains(": Command /") && l.ends_with("is not executable: No such file or directory")))
                .collect();
            assert!(real.is_empty(), "{}: {path}:\n{}", p.display(), real.join("\n"));
        }
    }
}

#[test]
fn gce_routes_are_the_guides() {
    let (_d, files) = render(&root().join("profiles/gce-routes.yaml"));
    let script = &files["cluster/routes.sh"].1;
    for i in 0..3 {
        let line = format!(
            "gcloud compute routes create kubernetes-route-10-200-{i}-0-24 --network kubernetes-the-hard-way --next-hop-address 10.240.0.2{i} --destination-range 10.200.{i}.0/24"
        );
        assert!(script.contains(&line), "missing: {line}\n{script}");
    }
    assert_eq!(script.matches("gcloud ").count(), 3);
    let plan: serde_json::Value = serde_json::from_str(&files["plan.json"].1).unwrap();
    assert_eq!(plan["local"].as_array().unwrap().len(), 3);
}
