//! Edit, don't clobber (issue 11, build 1), end to end on real-systemd lab nodes: each node starts
//! with an operator's kubelet unit and kubeadm-style drop-in, containerd config and (on the
//! controller) controller-manager unit, full of settings netctl does not know. `init` changes only
//! the network settings (checked line by line), the units still load and run, a second `init`
//! changes nothing, and `reset` puts every file back byte for byte.

mod labkit;

// `--skip-preflight` on init and switch here: these profiles name providers whose daemons the lab
// cannot run (flanneld without a default route to pick an interface from, calico without ipip,
// plugins in private directories), which preflight rightly refuses; tests/preflight.rs tests it.

use labkit::{can_run, text, Lab};

const KUBELET: &str = "/etc/systemd/system/kubelet.service";
const DROPIN: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
const CONTAINERD: &str = "/etc/containerd/config.toml";
const KCM: &str = "/etc/systemd/system/kube-controller-manager.service";

const KUBELET_UNIT: &str = "# Installed by the platform team's image (ticket INFRA-1234).
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/home/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

/// kubeadm 1.10's drop-in: the network flags travel in $KUBELET_NETWORK_ARGS.
const KUBELET_DROPIN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.10+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_SYSTEM_PODS_ARGS=--pod-manifest-path=/etc/kubernetes/manifests --allow-privileged=true\"
Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=kubenet --non-masquerade-cidr=10.0.0.0/8 --cni-bin-dir=/opt/cni/bin\"
Environment=\"KUBELET_DNS_ARGS=--cluster-dns=10.32.0.10 --cluster-domain=cluster.local\"
Environment=\"KUBELET_EXTRA_ARGS=--eviction-hard=memory.available<200Mi --kube-reserved=cpu=250m\"
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_SYSTEM_PODS_ARGS $KUBELET_NETWORK_ARGS $KUBELET_DNS_ARGS $KUBELET_EXTRA_ARGS
";

const CONTAINERD_CONFIG: &str = r#"# containerd 1.7, site config: registry mirrors and a gVisor runtime.
version = 2
root = "/var/lib/containerd"
oom_score = -999

[grpc]
  max_recv_message_size = 16777216

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.internal/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/libexec/cni"   # the distro's plugins
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.internal", "https://registry-1.docker.io"]
"#;

const KCM_UNIT: &str = "[Unit]
Description=Kubernetes Controller Manager
Documentation=https://github.com/kubernetes/kubernetes

[Service]
ExecStart=/usr/local/bin/kube-controller-manager \\
  --bind-address=0.0.0.0 \\
  --cluster-name=prod-eu \\
  --cluster-signing-cert-file=/var/lib/kubernetes/ca.pem \\
  --cluster-signing-key-file=/var/lib/kubernetes/ca-key.pem \\
  --feature-gates=RotateKubeletServerCertificate=true \\
  --kubeconfig=/var/lib/kubernetes/kube-controller-manager.kubeconfig \\
  --leader-elect=true \\
  --service-cluster-ip-range=10.32.0.0/24 \\
  --terminated-pod-gc-threshold=500 \\
  --v=2
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
";

const CONTAINERD_UNIT: &str = "[Unit]
Description=containerd (a stand-in: the lab has no runtime binary here)

[Service]
ExecStart=/usr/local/bin/containerd
Restart=always

[Install]
WantedBy=multi-user.target
";

/// Plant the operator's files and stand-in binaries (a process that keeps running, so the units
/// start and restart for real), and start the units.
fn plant(lab: &Lab, node: &str, controller: bool) {
    let mut script = String::from(
        "set -e\nmkdir -p /etc/systemd/system/kubelet.service.d /etc/containerd /usr/local/bin\n",
    );
    for b in ["kubelet", "kube-controller-manager", "containerd"] {
        script.push_str(&format!(
            "printf '#!/bin/sh\\nwhile :; do sleep 3600; done\\n' > /usr/local/bin/{b}; chmod 755 /usr/local/bin/{b}\n"
        ));
    }
    let mut files = vec![
        (KUBELET, KUBELET_UNIT),
        (DROPIN, KUBELET_DROPIN),
        (CONTAINERD, CONTAINERD_CONFIG),
        ("/etc/systemd/system/containerd.service", CONTAINERD_UNIT),
    ];
    if controller {
        files.push((KCM, KCM_UNIT));
    }
    for (path, content) in files {
        script.push_str(&format!(
            "cat > {path} <<'NETCTL_EOF'\n{content}NETCTL_EOF\nchmod 644 {path}\n"
        ));
    }
    script.push_str("systemctl daemon-reload\nsystemctl enable --now containerd kubelet\n");
    if controller {
        script.push_str("systemctl enable --now kube-controller-manager\n");
    }
    lab.exec_ok(node, &script);
}

fn cat(lab: &Lab, node: &str, path: &str) -> String {
    lab.exec_ok(node, &format!("cat {path}"))
}

/// sha256 and mode of each file, for byte-for-byte comparisons.
fn fingerprint(lab: &Lab, node: &str, paths: &[&str]) -> String {
    lab.exec_ok(
        node,
        &format!(
            "for f in {}; do sha256sum $f; stat -c '%a %U' $f; done",
            paths.join(" ")
        ),
    )
}

/// The lines of `before` and `after` that differ, as (-, +) pairs of a line diff.
fn changed_lines(before: &str, after: &str) -> Vec<String> {
    similar::TextDiff::from_lines(before, after)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| {
            let sign = if c.tag() == similar::ChangeTag::Delete {
                "-"
            } else {
                "+"
            };
            format!("{sign}{}", c.value().trim_end_matches('\n'))
        })
        .collect()
}

fn active(lab: &Lab, node: &str, unit: &str) -> String {
    lab.exec(node, &format!("systemctl is-active {unit}"))
        .stdout
        .iter()
        .map(|b| *b as char)
        .collect::<String>()
        .trim()
        .to_string()
}

#[test]
fn init_edits_only_network_settings_and_reset_restores_them() {
    if !can_run("init_edits_only_network_settings_and_reset_restores_them") {
        return;
    }
    let lab = Lab::up("ed-sd", "systemd", 2, 180);
    let (n1, n2) = (lab.node(1), lab.node(2));
    plant(&lab, &n1, true);
    plant(&lab, &n2, false);
    let profile = lab.profile_variant("edits", |v| {
        v["kubernetes"]["version"] = "1.23".into();
        v["kubernetes"]["manageUnits"] = true.into();
        v["networking"] =
            serde_yaml::from_str("provider: canal\ncniBinDir: /opt/cni/bin\n").unwrap();
        v["nodes"][0]["roles"] = serde_yaml::from_str("[controller, worker]").unwrap();
    });
    let worker_files = [KUBELET, DROPIN, CONTAINERD];
    let before1 = fingerprint(&lab, &n1, &[KUBELET, DROPIN, CONTAINERD, KCM]);
    let before2 = fingerprint(&lab, &n2, &worker_files);

    // plan shows exactly the edits, and changes nothing.
    let o = lab.netctl(&["plan"], &profile);
    assert!(o.status.success(), "{}", text(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    for want in [
        format!("--- {DROPIN}"),
        "-Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=kubenet --non-masquerade-cidr=10.0.0.0/8 --cni-bin-dir=/opt/cni/bin\"".to_string(),
        "+Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=cni --cni-bin-dir=/opt/cni/bin --cni-conf-dir=/etc/cni/net.d\"".to_string(),
        "+    bin_dir = \"/opt/cni/bin\"   # the distro's plugins".to_string(),
        "+  --v=2 \\".to_string(),
        "+  --allocate-node-cidrs=true \\".to_string(),
    ] {
        assert!(plan.contains(&want), "plan lacks {want}:\n{plan}");
    }
    assert!(!plan.contains(&format!("+++ {KUBELET}\n")), "{plan}");
    assert_eq!(
        before1,
        fingerprint(&lab, &n1, &[KUBELET, DROPIN, CONTAINERD, KCM])
    );

    // init: only the network settings change, line by line.
    let o = lab.netctl(
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &profile,
    );
    assert!(o.status.success(), "{}", text(&o));
    for n in [&n1, &n2] {
        assert_eq!(
            cat(&lab, n, KUBELET),
            KUBELET_UNIT,
            "{n}: the kubelet unit itself holds no network flag"
        );
        assert_eq!(
            changed_lines(KUBELET_DROPIN, &cat(&lab, n, DROPIN)),
            [
                "-Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=kubenet --non-masquerade-cidr=10.0.0.0/8 --cni-bin-dir=/opt/cni/bin\"",
                "+Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=cni --cni-bin-dir=/opt/cni/bin --cni-conf-dir=/etc/cni/net.d\"",
            ],
            "{n}"
        );
        assert_eq!(
            changed_lines(CONTAINERD_CONFIG, &cat(&lab, n, CONTAINERD)),
            [
                "-    bin_dir = \"/usr/libexec/cni\"   # the distro's plugins",
                "+    bin_dir = \"/opt/cni/bin\"   # the distro's plugins",
            ],
            "{n}"
        );
        // systemd reads the edited drop-in: the kubelet runs with the new flags.
        let env = lab.exec_ok(n, "systemctl show kubelet -p Environment");
        assert!(env.contains("KUBELET_NETWORK_ARGS=--network-plugin=cni --cni-bin-dir=/opt/cni/bin --cni-conf-dir=/etc/cni/net.d"), "{n}: {env}");
        let cmdline = lab.exec_ok(
            n,
            "tr '\\0' ' ' < /proc/$(systemctl show kubelet -p MainPID --value)/cmdline",
        );
        assert!(
            cmdline.contains("--network-plugin=cni")
                && cmdline.contains("--eviction-hard=memory.available<200Mi"),
            "{n}: {cmdline}"
        );
        for unit in ["kubelet", "containerd"] {
            assert_eq!(active(&lab, n, unit), "active", "{n}: {unit}");
        }
        let verify = lab.exec(
            n,
            &format!("systemd-analyze verify {KUBELET} 2>&1 | grep -v 'is not executable' || true"),
        );
        assert!(
            String::from_utf8_lossy(&verify.stdout).trim().is_empty(),
            "{n}: {}",
            text(&verify)
        );
    }
    assert_eq!(
        changed_lines(KCM_UNIT, &cat(&lab, &n1, KCM)),
        [
            "-  --v=2",
            "+  --v=2 \\",
            "+  --allocate-node-cidrs=true \\",
            "+  --cluster-cidr=10.200.0.0/16 \\",
            "+  --node-cidr-mask-size=24",
        ]
    );
    assert_eq!(active(&lab, &n1, "kube-controller-manager"), "active");
    let verify = lab.exec(
        &n1,
        &format!("systemd-analyze verify {KCM} 2>&1 | grep -v 'is not executable' || true"),
    );
    assert!(
        String::from_utf8_lossy(&verify.stdout).trim().is_empty(),
        "{}",
        text(&verify)
    );
    let cm = lab.exec_ok(
        &n1,
        "tr '\\0' ' ' < /proc/$(systemctl show kube-controller-manager -p MainPID --value)/cmdline",
    );
    assert!(
        cm.contains("--allocate-node-cidrs=true")
            && cm.contains("--terminated-pod-gc-threshold=500"),
        "{cm}"
    );
    // No whole unit was written over the operator's, and no kubelet config of netctl's.
    for n in [&n1, &n2] {
        let o = lab.exec(n, "ls /var/lib/kubelet/config.yaml");
        assert!(
            !o.status.success(),
            "{n}: netctl wrote a kubelet config next to the operator's unit"
        );
    }

    // A second init changes nothing.
    let after1 = fingerprint(&lab, &n1, &[KUBELET, DROPIN, CONTAINERD, KCM]);
    let after2 = fingerprint(&lab, &n2, &worker_files);
    let o = lab.netctl(
        &[
            "init",
            "--yes",
            "--skip-preflight",
            "--no-verify",
            "--output",
            "json",
        ],
        &profile,
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["result"], "unchanged", "{n}");
        assert_eq!(n["files_changed"], 0, "{n}");
    }
    assert_eq!(
        after1,
        fingerprint(&lab, &n1, &[KUBELET, DROPIN, CONTAINERD, KCM])
    );
    assert_eq!(after2, fingerprint(&lab, &n2, &worker_files));

    // reset: the originals back, byte for byte (content, mode, owner).
    let o = lab.netctl(&["reset", "--yes"], &profile);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        before1,
        fingerprint(&lab, &n1, &[KUBELET, DROPIN, CONTAINERD, KCM])
    );
    assert_eq!(before2, fingerprint(&lab, &n2, &worker_files));
    assert_eq!(cat(&lab, &n2, DROPIN), KUBELET_DROPIN);
}

/// A node whose kubelet takes its flags from an EnvironmentFile (kubeadm 1.11+) is refused with
/// the reason; nothing on it changes, and the other node is done.
#[test]
fn a_kubelet_whose_flags_may_hide_in_an_environment_file_is_refused() {
    if !can_run("a_kubelet_whose_flags_may_hide_in_an_environment_file_is_refused") {
        return;
    }
    let lab = Lab::up("ed-ns", "netns", 2, 181);
    let (n1, n2) = (lab.node(1), lab.node(2));
    lab.exec_ok(
        &n1,
        &format!(
            "mkdir -p /etc/systemd/system/kubelet.service.d && cat > {KUBELET} <<'E'\n{KUBELET_UNIT}E\ncat > {DROPIN} <<'E'\n[Service]\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/local/bin/kubelet $KUBELET_KUBEADM_ARGS\nE\n"
        ),
    );
    let profile = lab.profile_variant("envfile", |v| {
        v["kubernetes"]["version"] = "1.23".into();
        v["kubernetes"]["manageUnits"] = true.into();
        v["kubernetes"]["containerRuntime"] = "docker".into();
        v["networking"] = serde_yaml::from_str("provider: calico\n").unwrap();
    });
    let before = lab.exec_ok(
        &n1,
        "find /etc/systemd/system /var/lib/netctl -type f 2>/dev/null | sort | xargs sha256sum",
    );
    let o = lab.netctl(
        &["init", "--yes", "--skip-preflight", "--no-verify"],
        &profile,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("$KUBELET_KUBEADM_ARGS")
            && out.contains("kubeadm-flags.env")
            && out.contains("kubernetes.units: own"),
        "{out}"
    );
    assert_eq!(
        before,
        lab.exec_ok(
            &n1,
            "find /etc/systemd/system /var/lib/netctl -type f 2>/dev/null | sort | xargs sha256sum"
        )
    );
    // The node without a kubelet got netctl's whole, secure one.
    let unit = lab.exec_ok(&n2, &format!("cat {KUBELET}"));
    assert!(
        unit.contains("--config=/var/lib/kubelet/config.yaml")
            && unit.contains("--network-plugin=cni"),
        "{unit}"
    );
    let config = lab.exec_ok(&n2, "cat /var/lib/kubelet/config.yaml");
    assert!(
        config.contains("readOnlyPort: 0") && config.contains("cgroupDriver: cgroupfs"),
        "{config}"
    );
}
