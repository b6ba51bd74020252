//! flanneld as a systemd unit installs its programs (issue 11, item 7): flanneld and flannel's
//! CNI plugin come from local files the profile pins by sha256, checked before any node is
//! reached; render lists them without reading them; init installs them byte for byte.

mod labkit;

// `--skip-preflight` on init and switch here: these profiles name providers whose daemons the lab
// cannot run (flanneld without a default route to pick an interface from, calico without ipip,
// plugins in private directories), which preflight rightly refuses; tests/preflight.rs tests it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use labkit::{can_run, netctl, text, Lab};

/// A systemd-flannel profile in `dir` (workers at TEST-NET addresses nothing answers on), with
/// the cluster CA and a token, and `binaries` in the flannel map.
fn profile(dir: &Path, binaries: &str) -> PathBuf {
    let (ca, _key) = netctl::certs::issue::ca("fb-cluster", SystemTime::now(), 3650).unwrap();
    std::fs::write(dir.join("cluster-ca.pem"), ca).unwrap();
    std::fs::write(dir.join("flannel.token"), "fb-token\n").unwrap();
    let p = dir.join("cluster.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: fb-test\n\
             kubernetes: {{ caCertificate: cluster-ca.pem, version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }}\n\
             networking: {{ provider: flannel, flannel: {{ backend: host-gw, deploy: systemd, tokenFile: flannel.token, {binaries} }} }}\n\
             nodes:\n  - {{ name: worker-0, address: 192.0.2.11 }}\n  - {{ name: worker-1, address: 192.0.2.12 }}\n"
        ),
    )
    .unwrap();
    p
}

fn plan(p: &Path) -> std::process::Output {
    netctl()
        .args(["plan", "-p"])
        .arg(p)
        .env("NETCTL_NO_PROGRESS", "1")
        .output()
        .unwrap()
}

/// A bad binary field stops plan with exit 2 naming it, before any node is reached (the
/// profile's addresses answer nobody: reaching one would be a connection error, exit 1).
fn assert_refused(p: &Path, field: &str) {
    let o = plan(p);
    assert_eq!(o.status.code(), Some(2), "{field}: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(field), "{field} in {err}");
    assert!(!err.contains("192.0.2."), "a node was reached: {err}");
}

#[test]
fn a_missing_binary_field_is_bad_input_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let both = labkit::flannel_binaries(t.path());
    let (flanneld, plugin) = both.split_once(", cniPlugin").unwrap();
    assert_refused(
        &profile(t.path(), flanneld),
        "networking.flannel.cniPlugin:",
    );
    let plugin = format!("cniPlugin{plugin}");
    assert_refused(&profile(t.path(), &plugin), "networking.flannel.flanneld:");
}

#[test]
fn a_wrong_checksum_or_missing_file_is_bad_input_before_any_node() {
    let t = tempfile::tempdir().unwrap();
    let good = labkit::flannel_binaries(t.path());
    // Another file than the profile pinned: the checksum names the field.
    std::fs::write(t.path().join("stand-in-flanneld"), "#!/bin/sh\nexit 1\n").unwrap();
    let p = profile(t.path(), &good);
    assert_refused(&p, "networking.flannel.flanneld.sha256");
    let o = plan(&p);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("exit 1"));
    assert!(!t.path().join("fb-test-pki").exists());
    // A file that is not there.
    labkit::flannel_binaries(t.path());
    std::fs::remove_file(t.path().join("stand-in-flannel")).unwrap();
    assert_refused(&p, "networking.flannel.cniPlugin.file");
    // Not a regular file: refused, never read.
    let _ = std::fs::remove_file(t.path().join("stand-in-flannel"));
    std::os::unix::fs::symlink("/dev/zero", t.path().join("stand-in-flannel")).unwrap();
    assert_refused(&p, "networking.flannel.cniPlugin.file");
}

/// render needs no bytes: the binaries may be absent; plan.json lists them by sha256, with a
/// note, and no file stands in for them in the output.
#[test]
fn render_lists_binaries_by_sha256_without_reading_them() {
    let t = tempfile::tempdir().unwrap();
    let fields = labkit::flannel_binaries(t.path());
    std::fs::remove_file(t.path().join("stand-in-flanneld")).unwrap();
    std::fs::remove_file(t.path().join("stand-in-flannel")).unwrap();
    let p = profile(t.path(), &fields);
    let out = t.path().join("out");
    let o = netctl()
        .args(["render", "-p"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    let files = v["nodes"][0]["files"].as_array().unwrap();
    let find = |path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {files:?}"))
    };
    for (path, field) in [
        ("/usr/local/bin/flanneld", "networking.flannel.flanneld"),
        ("/opt/cni/bin/flannel", "networking.flannel.cniPlugin"),
    ] {
        let f = find(path);
        assert_eq!(f["mode"], "0755");
        let sha = fields
            .split(&format!("{}: {{", field.rsplit('.').next().unwrap()))
            .nth(1)
            .and_then(|s| s.split("sha256: ").nth(1))
            .map(|s| &s[..64])
            .unwrap();
        assert_eq!(f["sha256"], sha);
        assert!(f["note"].as_str().unwrap().contains(field), "{f}");
        assert!(!out.join(format!("nodes/worker-0{path}")).exists());
    }
}

/// init installs both programs byte for byte with mode 0755; a second init finds equal sha256s
/// and changes nothing; plan shows a changed binary as size and sha256, never its bytes; reset
/// removes them.
#[test]
fn init_installs_flannel_binaries_byte_for_byte() {
    if !can_run("init_installs_flannel_binaries_byte_for_byte") {
        return;
    }
    let lab = Lab::up("fb-init", "netns", 2, 196);
    let dir = lab.profile.parent().unwrap().to_path_buf();
    let (ca, _key) = netctl::certs::issue::ca("fb-cluster", SystemTime::now(), 3650).unwrap();
    std::fs::write(dir.join("cluster-ca.pem"), ca).unwrap();
    std::fs::write(dir.join("flannel.token"), "fb-token\n").unwrap();
    let binaries = labkit::flannel_binaries(&dir);
    let p = lab.profile_variant("flannel", |v| {
        labkit::private_bin_dirs(v);
        v["networking"]["provider"] = "flannel".into();
        v["networking"]["flannel"] = serde_yaml::from_str(&format!(
            "{{ backend: host-gw, deploy: systemd, tokenFile: {}, {binaries} }}",
            dir.join("flannel.token").display()
        ))
        .unwrap();
        v["kubernetes"]["caCertificate"] = dir.join("cluster-ca.pem").display().to_string().into();
    });
    let v: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let bin_dir = v["kubernetes"]["binDir"].as_str().unwrap();
    let cni_bin_dir = v["networking"]["cniBinDir"].as_str().unwrap();
    // Never the host's directories: netns nodes share them.
    assert!(bin_dir.starts_with("/root/") && cni_bin_dir.starts_with("/root/"));
    let installed = [
        (format!("{bin_dir}/flanneld"), dir.join("stand-in-flanneld")),
        (
            format!("{cni_bin_dir}/flannel"),
            dir.join("stand-in-flannel"),
        ),
    ];

    let o = lab.netctl(&["init", "--yes", "--skip-preflight", "--no-verify"], &p);
    assert!(o.status.success(), "{}", text(&o));
    for node in [lab.node(1), lab.node(2)] {
        for (path, local) in &installed {
            let on_node = lab.exec_ok(&node, &format!("stat -c %a {path}; cat {path}"));
            let local = std::fs::read_to_string(local).unwrap();
            assert_eq!(on_node, format!("755\n{local}"), "{node}:{path}");
        }
    }

    let o = lab.netctl(
        &[
            "init",
            "--yes",
            "--skip-preflight",
            "--no-verify",
            "--output",
            "json",
        ],
        &p,
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["result"], "unchanged", "{n}");
    }

    // Someone changed flanneld on node-1: plan shows sizes and sha256s, not the script.
    let (flanneld, _) = &installed[0];
    lab.exec_ok(&lab.node(1), &format!("echo '# changed' >> {flanneld}"));
    let o = lab.netctl(&["plan"], &p);
    let out = String::from_utf8_lossy(&o.stdout);
    let theirs = lab.exec_ok(&lab.node(1), &format!("sha256sum < {flanneld}"));
    let theirs = &theirs[..64];
    let ours = std::fs::read(&installed[0].1).unwrap();
    assert!(
        out.contains(&format!(
            "-(binary, {} bytes, sha256 {theirs})\n+(binary, {} bytes, sha256 {})\n",
            ours.len() + "# changed\n".len(),
            ours.len(),
            netctl::profile::sha256_hex(&ours)
        )),
        "{}",
        text(&o)
    );
    assert!(!out.contains("stand-in"), "{out}");
    let o = lab.netctl(&["init", "--yes", "--skip-preflight", "--no-verify"], &p);
    assert!(o.status.success(), "{}", text(&o));

    let o = lab.netctl(&["reset", "--yes"], &p);
    assert!(o.status.success(), "{}", text(&o));
    for node in [lab.node(1), lab.node(2)] {
        for (path, _) in &installed {
            let gone = lab.exec(&node, &format!("test -e {path}"));
            assert!(!gone.status.success(), "reset left {node}:{path}");
        }
    }
}
