//! Issue 10, finding 2: local temporary directories. The directories netctl hands kubectl (the
//! smoke test's manifest, init's and switch's cluster manifests) are made in the system temp
//! directory, which every local user shares: they must be fresh, mode 0700 and owned by the
//! operator, their files 0600 regular files, and gone after the run. A stand-in kubectl records,
//! for every call, the directory it was run in, that directory's mode and owner and what is in it.
//! TMPDIR points at the test's own directory, so the test sees exactly what netctl made there.

mod labkit;

// `--skip-preflight` on init and switch here: these profiles name providers whose daemons the lab
// cannot run (flanneld without a default route to pick an interface from, calico without ipip,
// plugins in private directories), which preflight rightly refuses; tests/preflight.rs tests it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use labkit::{can_run, text, Lab};

/// One recorded kubectl call.
#[derive(Debug)]
struct Call {
    args: String,
    cwd: PathBuf,
    /// `stat -c '%a %u'` of the directory kubectl ran in.
    cwd_mode_uid: String,
    /// `path:mode:type` of everything in it.
    entries: Vec<String>,
}

/// A stand-in kubectl that records each call in `dir/calls.log` and answers the smoke test's and
/// cluster checks' `get`s with two ready workers.
fn standin(dir: &Path) -> PathBuf {
    let nodes = serde_json::json!({"kind": "NodeList", "items": [
        {"metadata": {"name": "w1"}, "spec": {"podCIDR": "10.200.1.0/24"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "w2"}, "spec": {"podCIDR": "10.200.2.0/24"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    ]});
    let pods = serde_json::json!({"kind": "PodList", "items": [
        {"metadata": {"name": "nginx-1"}, "spec": {"nodeName": "w1"}, "status": {"podIP": "10.200.1.5"}},
        {"metadata": {"name": "nginx-2"}, "spec": {"nodeName": "w2"}, "status": {"podIP": "10.200.2.5"}},
    ]});
    std::fs::write(dir.join("nodes.json"), nodes.to_string()).unwrap();
    std::fs::write(dir.join("pods.json"), pods.to_string()).unwrap();
    let d = dir.display();
    let script = format!(
        r#"#!/bin/sh
if [ "${{1:-}}" = "--kubeconfig" ]; then shift 2; fi
printf '%s\t%s\t%s\t%s\n' "$*" "$(pwd)" "$(stat -c '%a %u' .)" \
  "$(find . -mindepth 1 -printf '%P:%m:%y ' 2>/dev/null)" >> {d}/calls.log
case "$*" in
  *"get nodes"*) cat {d}/nodes.json ;;
  *"get pods"*) cat {d}/pods.json ;;
  *"get service"*) echo '{{"kind": "Service", "spec": {{"clusterIP": "10.32.0.77"}}}}' ;;
  *"get daemonset"*) echo '{{"status": {{"desiredNumberScheduled": 2, "numberReady": 2}}}}' ;;
  *" exec "*curl*) echo '<title>Welcome to nginx!</title>' ;;
  *" exec "*nslookup*) echo 'Name: nginx'; echo 'Address 1: 10.32.0.77' ;;
  *) echo ok ;;
esac
"#
    );
    let p = dir.join("kubectl");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

fn calls(dir: &Path) -> Vec<Call> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Call {
                args: f[0].to_string(),
                cwd: PathBuf::from(f[1]),
                cwd_mode_uid: f[2].to_string(),
                entries: f[3].split_whitespace().map(String::from).collect(),
            }
        })
        .collect()
}

/// netctl under umask 022 (a usual operator's), so a directory made without an explicit mode
/// shows up as 0755; TMPDIR is the test's own.
fn netctl(tmp: &Path) -> Command {
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "umask 022; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_netctl"),
    ])
    .env("NETCTL_NO_PROGRESS", "1")
    .env("TMPDIR", tmp);
    c
}

/// Every call run in a directory under `tmp` saw a private directory of ours with private
/// regular files in it; `tmp` is empty again; returns those calls' args.
fn assert_private(tmp: &Path, calls: &[Call], out: &Output) -> Vec<String> {
    let uid = std::fs::metadata(tmp).unwrap().uid();
    let mut seen = Vec::new();
    for c in calls.iter().filter(|c| c.cwd.starts_with(tmp)) {
        assert_eq!(c.cwd.parent(), Some(tmp), "{c:?}");
        assert_eq!(c.cwd_mode_uid, format!("700 {uid}"), "{c:?}\n{}", text(out));
        assert!(!c.entries.is_empty(), "{c:?}");
        for e in &c.entries {
            assert!(
                e.ends_with(":600:f") || e.ends_with(":700:d"),
                "{e} in {c:?}"
            );
        }
        seen.push(c.args.clone());
    }
    let left: Vec<_> = std::fs::read_dir(tmp).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    seen
}

#[test]
fn smoke_test_manifest_is_in_a_private_directory() {
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let k = standin(t.path());
    let profile = t.path().join("profile.yaml");
    std::fs::write(
        &profile,
        format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: tmpd\nkubernetes:\n  version: \"1.30\"\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\n  kubeconfig: {d}/kubeconfig\n  manageUnits: false\nnetworking:\n  provider: calico\nssh: {{ identityFile: {d}/nokey, knownHosts: {d}/known_hosts, connectTimeout: 2 }}\nnodes:\n  - {{ name: w1, address: 127.0.0.1, roles: [worker], podCIDR: 10.200.1.0/24, sshPort: 1, init: none }}\n  - {{ name: w2, address: 127.0.0.2, roles: [worker], podCIDR: 10.200.2.0/24, sshPort: 1, init: none }}\n",
            d = t.path().display()
        ),
    )
    .unwrap();
    let o = netctl(&tmp)
        .args([
            "verify",
            "--output",
            "json",
            "--no-dataplane",
            "--smoke",
            "-p",
        ])
        .arg(&profile)
        .env("NETCTL_KUBECTL", &k)
        .output()
        .unwrap();
    let calls = calls(t.path());
    let seen = assert_private(&tmp, &calls, &o);
    assert!(
        seen.iter().any(|a| a.starts_with("apply -f smoke.yaml")),
        "{calls:?}\n{}",
        text(&o)
    );
}

#[test]
fn init_and_switch_manifests_are_in_private_directories() {
    if !can_run("init_and_switch_manifests_are_in_private_directories") {
        return;
    }
    let lab = Lab::up("tmpd-kc", "netns", 2, 155);
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let k = standin(t.path());
    let run = |args: &[&str], profile: &Path| {
        let _ = std::fs::remove_file(t.path().join("calls.log"));
        let o = netctl(&tmp)
            .args(args)
            .arg("-p")
            .arg(profile)
            .env("NETCTL_KUBECTL", &k)
            .output()
            .unwrap();
        let c = calls(t.path());
        let seen = assert_private(&tmp, &c, &o);
        (o, seen)
    };

    // init applies flannel's DaemonSet from its manifest.
    let flannel = lab.profile_variant("flannel-ds", |v| {
        v["networking"]["provider"] = "flannel".into();
        v["networking"]["flannel"] =
            serde_yaml::from_str("{deploy: daemonset, backend: vxlan}").unwrap();
        v["kubernetes"]["kubeconfig"] = "/etc/netctl-test/kubeconfig".into();
    });
    let (o, seen) = run(
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &flannel,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(seen, ["apply -f kube-flannel.yaml"], "{}", text(&o));

    // switch: calico's objects are applied first (then the gate fails here, no calico-node, and
    // they are deleted again) from the target's manifests.
    let routes = lab.profile_variant("routes", |v| {
        v["kubernetes"]["kubeconfig"] = "/etc/netctl-test/kubeconfig".into();
    });
    let (o, _) = run(&["reset", "--yes"], &flannel);
    assert!(o.status.success(), "{}", text(&o));
    let (o, _) = run(
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &routes,
    );
    assert!(o.status.success(), "{}", text(&o));
    let (o, seen) = run(
        &[
            "switch",
            "--yes",
            "--skip-preflight",
            "--networking",
            "calico",
        ],
        &routes,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        seen,
        ["apply -k calico", "delete -k calico --ignore-not-found"],
        "{}",
        text(&o)
    );
    // And the old provider's objects are deleted last, from its own manifests.
    let (o, seen) = run(
        &[
            "switch",
            "--yes",
            "--skip-preflight",
            "--from",
            "calico",
            "--networking",
            "routes",
            "--backend",
            "vxlan",
        ],
        &routes,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        seen,
        ["delete -k calico --ignore-not-found"],
        "{}",
        text(&o)
    );
}
