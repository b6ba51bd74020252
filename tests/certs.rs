//! Certificates: the chain checked by openssl, renewal of a certificate inside the 30-day window
//! while a valid one is kept byte for byte, a CA the profile brings (made here with openssl, its
//! key in the PKCS#1 form cfssl writes), keys never printed, and end to end on a lab: flanneld's
//! files pushed with their modes, unchanged on a second run, renewed when due.

mod labkit;

// `--skip-preflight` on init and switch here: these profiles name providers whose daemons the lab
// cannot run (flanneld without a default route to pick an interface from, calico without ipip,
// plugins in private directories), which preflight rightly refuses; tests/preflight.rs tests it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use netctl::certs::{self, CertProblem, Mode};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The cluster's own CA certificate (what the API server's serving certificate chains to),
/// written as `cluster-ca.pem` into `dir`.
fn cluster_ca(dir: &Path) -> String {
    let (pem, _key) = certs::issue::ca("existing-cluster", SystemTime::now(), 3650).unwrap();
    std::fs::write(dir.join("cluster-ca.pem"), &pem).unwrap();
    pem
}

/// A flannel profile (flanneld as a systemd unit) whose API server is verified with the
/// cluster CA in `cluster-ca.pem`, with `extra` appended, written into `dir`.
fn profile(dir: &Path, extra: &str) -> PathBuf {
    if !dir.join("cluster-ca.pem").exists() {
        cluster_ca(dir);
    }
    bare_profile(dir, "caCertificate: cluster-ca.pem, ", extra)
}

/// The generated-CA profile the older tests use: a cluster built around netctl's CA.
const GENERATED: &str = "pki: { generateCA: true }\n";

/// `kubernetes_extra` goes inside the kubernetes map.
fn bare_profile(dir: &Path, kubernetes_extra: &str, extra: &str) -> PathBuf {
    let p = dir.join("cluster.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: netctl/v1\nkind: ClusterProfile\nname: certs-test\n\
             kubernetes: {{ {kubernetes_extra}version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24 }}\n\
             networking: {{ provider: flannel, flannel: {{ backend: host-gw, {bins}, deploy: systemd }} }}\n\
             nodes:\n  - {{ name: ctl, address: 192.0.2.10, roles: [controller] }}\n  \
             - {{ name: worker-0, address: 192.0.2.11 }}\n  - {{ name: worker-1, address: 192.0.2.12 }}\n{extra}",
            bins = labkit::flannel_binaries(dir),
        ),
    )
    .unwrap();
    p
}

fn prepare(p: &Path, mode: Mode) -> certs::Pki {
    let cluster = netctl::profile::load(p).unwrap();
    certs::prepare(&cluster, p, mode, SystemTime::now())
        .unwrap()
        .expect("flannel workers need certificates")
}

#[test]
fn generated_ca_and_node_certificates_verify_with_openssl() {
    let t = tempfile::tempdir().unwrap();
    let p = profile(t.path(), GENERATED);
    let pki = prepare(&p, Mode::Persist);
    let dir = t.path().join("certs-test-pki");
    assert_eq!(pki.dir, dir);
    assert_eq!(
        pki.nodes.keys().collect::<Vec<_>>(),
        ["worker-0", "worker-1"],
        "controllers run no flanneld"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("ca.crt")), 0o644);
    for n in ["worker-0", "worker-1"] {
        let crt = format!("nodes/{n}/flanneld.crt");
        assert_eq!(mode(&dir.join(format!("nodes/{n}/flanneld.key"))), 0o600);
        let out = openssl(
            &dir,
            &["verify", "-purpose", "sslclient", "-CAfile", "ca.crt", &crt],
        );
        assert_eq!(out.trim(), format!("{crt}: OK"));
        let subject = openssl(&dir, &["x509", "-noout", "-subject", "-in", &crt]);
        assert!(
            subject.contains(&format!("CN = flanneld:{n}, O = netctl:flanneld")),
            "{subject}"
        );
        // The key belongs to the certificate.
        let a = openssl(&dir, &["x509", "-noout", "-pubkey", "-in", &crt]);
        let b = openssl(
            &dir,
            &["pkey", "-pubout", "-in", &format!("nodes/{n}/flanneld.key")],
        );
        assert_eq!(a, b);
    }
    // The same CA signs with openssl's view of the world: a foreign CA does not verify them.
    openssl(
        t.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
            "-subj",
            "/CN=certs-test CA/O=netctl",
            "-days",
            "30",
        ],
    );
    let other = std::fs::read(t.path().join("other.crt")).unwrap();
    let e = certs::check(
        &other,
        pki.nodes["worker-0"].cert_pem.as_bytes(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(e, CertProblem::NotSignedByCa { .. }), "{e}");
}

/// Replace worker-1's stored certificate with one openssl signs for 10 days, same subject.
fn plant_short_lived(dir: &Path, node: &str) {
    let nd = dir.join("nodes").join(node);
    openssl(
        &nd,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "flanneld.key",
            "-out",
            "short.csr",
            "-subj",
            &format!("/O=netctl:flanneld/CN=flanneld:{node}"),
        ],
    );
    openssl(
        &nd,
        &[
            "x509",
            "-req",
            "-in",
            "short.csr",
            "-CA",
            "../../ca.crt",
            "-CAkey",
            "../../ca.key",
            "-days",
            "10",
            "-out",
            "flanneld.crt",
        ],
    );
    std::fs::remove_file(nd.join("short.csr")).unwrap();
}

#[test]
fn a_certificate_expiring_within_30_days_is_renewed_and_a_valid_one_kept() {
    let t = tempfile::tempdir().unwrap();
    let p = profile(t.path(), GENERATED);
    let first = prepare(&p, Mode::Persist);
    let dir = first.dir.clone();
    plant_short_lived(&dir, "worker-1");
    let short = std::fs::read_to_string(dir.join("nodes/worker-1/flanneld.crt")).unwrap();
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    match certs::check(&ca, short.as_bytes(), SystemTime::now()) {
        Err(CertProblem::ExpiresSoon { days_left, .. }) => assert!(days_left <= 10),
        other => panic!("a 10-day certificate is due: {other:?}"),
    }

    // A dry run (plan) issues in memory and writes nothing.
    let planned = prepare(&p, Mode::InMemory);
    assert_ne!(planned.nodes["worker-1"].cert_pem, short);
    assert_eq!(
        std::fs::read_to_string(dir.join("nodes/worker-1/flanneld.crt")).unwrap(),
        short
    );

    let second = prepare(&p, Mode::Persist);
    assert_eq!(
        second.nodes["worker-0"], first.nodes["worker-0"],
        "a valid certificate and its key are kept byte for byte"
    );
    assert_eq!(second.ca_pem, first.ca_pem);
    let renewed = &second.nodes["worker-1"];
    assert_ne!(renewed.cert_pem, short);
    certs::check(&ca, renewed.cert_pem.as_bytes(), SystemTime::now()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("nodes/worker-1/flanneld.crt")).unwrap(),
        renewed.cert_pem
    );
    let notes = second.notes.join("\n");
    assert!(
        notes.contains("worker-1: issued") && notes.contains("renewal window"),
        "{notes}"
    );
    assert!(!notes.contains("worker-0"), "{notes}");
    let end = openssl(
        &dir,
        &[
            "x509",
            "-noout",
            "-checkend",
            &(300 * 86_400).to_string(),
            "-in",
            "nodes/worker-1/flanneld.crt",
        ],
    );
    assert!(end.contains("will not expire"), "{end}");

    // A third run changes nothing at all.
    let third = prepare(&p, Mode::Persist);
    assert_eq!(third.nodes, second.nodes);
    assert!(third.notes.is_empty(), "{:?}", third.notes);
}

#[test]
fn a_ca_from_the_profile_is_used_and_never_copied() {
    let t = tempfile::tempdir().unwrap();
    // The hard-way guides' ca.pem / ca-key.pem: RSA, the key in PKCS#1 as cfssl writes it.
    openssl(
        t.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca-key8.pem",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Kubernetes/O=Kubernetes",
            "-days",
            "3650",
        ],
    );
    openssl(
        t.path(),
        &[
            "rsa",
            "-in",
            "ca-key8.pem",
            "-traditional",
            "-out",
            "ca-key.pem",
        ],
    );
    assert!(std::fs::read_to_string(t.path().join("ca-key.pem"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let p = profile(
        t.path(),
        "pki: { dir: pki, caCert: ca.pem, caKey: ca-key.pem, validityDays: 90 }\n",
    );
    let pki = prepare(&p, Mode::Persist);
    assert_eq!(pki.dir, t.path().join("pki"));
    assert_eq!(
        pki.ca_pem,
        std::fs::read_to_string(t.path().join("ca.pem")).unwrap()
    );
    assert!(
        !pki.dir.join("ca.key").exists() && !pki.dir.join("ca.crt").exists(),
        "the profile's CA stays where it is"
    );
    let out = openssl(
        t.path(),
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "pki/nodes/worker-0/flanneld.crt",
        ],
    );
    assert!(out.trim().ends_with(": OK"), "{out}");
    // validityDays 90: fine in 59 days, inside the renewal window in 61.
    let ca = std::fs::read(t.path().join("ca.pem")).unwrap();
    let cert = pki.nodes["worker-0"].cert_pem.as_bytes();
    let day = std::time::Duration::from_secs(86_400);
    certs::check(&ca, cert, SystemTime::now() + 59 * day).unwrap();
    assert!(matches!(
        certs::check(&ca, cert, SystemTime::now() + 61 * day),
        Err(CertProblem::ExpiresSoon { .. })
    ));
}

fn netctl() -> Command {
    labkit::netctl()
}

#[test]
fn a_bad_profile_ca_is_bad_input_naming_the_field() {
    let t = tempfile::tempdir().unwrap();
    for (cn, key, cert) in [("a", "a.key", "a.crt"), ("b", "b.key", "b.crt")] {
        openssl(
            t.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "100",
            ],
        );
    }
    let p = profile(t.path(), "pki: { caCert: a.crt, caKey: b.key }\n");
    // plan prepares the PKI before it connects anywhere.
    let o = netctl().args(["plan", "-p"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", labkit::text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pki.caKey") && err.contains("does not belong"),
        "{err}"
    );
    let p = profile(t.path(), "pki: { caCert: a.crt }\n");
    let o = netctl()
        .args(["profile", "check", "-p"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pki.caKey"));
}

#[test]
fn render_uses_the_stored_pki_and_prints_no_key() {
    let t = tempfile::tempdir().unwrap();
    let p = profile(t.path(), GENERATED);
    // No PKI yet: render creates none and leaves the certificate files out, saying so.
    let out = t.path().join("out");
    let o = netctl()
        .args(["render", "-p"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", labkit::text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no CA in"));
    assert!(out
        .join("nodes/worker-0/etc/kube-flannel/kubeconfig")
        .exists());
    assert!(!t.path().join("certs-test-pki").exists());
    assert!(!out
        .join("nodes/worker-0/etc/kube-flannel/flanneld.key")
        .exists());
    assert!(out.join("cluster/flanneld-rbac.yaml").exists());

    let pki = prepare(&p, Mode::Persist);
    let o = netctl()
        .args(["render", "-p"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", labkit::text(&o));
    let all = labkit::text(&o);
    assert!(!all.contains("PRIVATE KEY"), "{all}");
    let node = out.join("nodes/worker-1/etc/kube-flannel");
    assert_eq!(mode(&node.join("flanneld.key")), 0o600);
    assert_eq!(mode(&node.join("flanneld.crt")), 0o644);
    assert_eq!(
        std::fs::read_to_string(node.join("flanneld.key")).unwrap(),
        pki.nodes["worker-1"].key_pem
    );
    assert_eq!(
        std::fs::read_to_string(node.join("ca.crt")).unwrap(),
        pki.server_ca_pem
    );
    assert_eq!(
        std::fs::read_to_string(node.join("client-ca.crt")).unwrap(),
        pki.ca_pem
    );
    assert!(!out.join("nodes/ctl/etc/kube-flannel").exists());
}

/// End to end on a lab (network-namespace nodes): the certificate files reach the nodes with their
/// modes, plan shows keys as sizes, a second init changes nothing, a due certificate is renewed.
#[test]
fn init_pushes_keeps_and_renews_flanneld_certificates_on_a_lab() {
    if !labkit::can_run("init_pushes_keeps_and_renews_flanneld_certificates_on_a_lab") {
        return;
    }
    let lab = labkit::Lab::up("it-certs", "netns", 2, 61);
    let pki_dir = lab.profile.with_file_name("flannel-pki");
    let cluster_ca_dir = lab.profile.parent().unwrap();
    cluster_ca(cluster_ca_dir);
    let cluster_ca_path = cluster_ca_dir.join("cluster-ca.pem");
    let pki_str = pki_dir.display().to_string();
    let p = lab.profile_variant("flannel", |v| {
        labkit::private_bin_dirs(v);
        v["networking"]["provider"] = "flannel".into();
        v["networking"]["flannel"] = serde_yaml::from_str(&format!(
            "{{ backend: host-gw, deploy: systemd, {} }}",
            labkit::flannel_binaries(cluster_ca_dir)
        ))
        .unwrap();
        v["pki"] =
            serde_yaml::from_str(&format!("{{ dir: {pki_str}, generateCA: true }}")).unwrap();
        v["kubernetes"]["caCertificate"] = cluster_ca_path.display().to_string().into();
    });

    let o = lab.netctl(&["plan"], &p);
    assert!(o.status.success(), "{}", labkit::text(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(
        plan.contains("+++ /etc/kube-flannel/flanneld.key\n+(secret, "),
        "{plan}"
    );
    assert!(!labkit::text(&o).contains("PRIVATE KEY"), "{plan}");
    assert!(!pki_dir.exists(), "plan wrote a PKI");

    let o = lab.netctl(&["init", "--yes", "--skip-preflight", "--no-verify"], &p);
    assert!(o.status.success(), "{}", labkit::text(&o));
    assert!(!labkit::text(&o).contains("PRIVATE KEY"));
    let stat = lab.exec_ok(
        "node-1",
        "stat -c '%n %a' /etc/kube-flannel/ca.crt /etc/kube-flannel/flanneld.crt /etc/kube-flannel/flanneld.key",
    );
    assert_eq!(
        stat,
        "/etc/kube-flannel/ca.crt 644\n/etc/kube-flannel/flanneld.crt 644\n/etc/kube-flannel/flanneld.key 600\n"
    );
    let read = lab.exec_ok("node-2", &netctl::verify::certs::read_script());
    netctl::verify::certs::check_output(&read, SystemTime::now()).unwrap();
    // verify's node.certs: passes now; a certificate the CA did not sign fails, on that node only.
    let node_certs = |o: &std::process::Output| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"] == "node.certs")
            .map(|c| {
                (
                    c["subject"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let o = lab.netctl(&["verify", "--no-dataplane", "--output", "json"], &p);
    assert_eq!(
        node_certs(&o),
        [
            ("node-1".into(), "pass".into()),
            ("node-2".into(), "pass".into())
        ],
        "{}",
        labkit::text(&o)
    );
    lab.exec_ok(
        "node-2",
        "cp /etc/kube-flannel/flanneld.crt /root/flanneld.crt.good && \
         openssl req -x509 -newkey ed25519 -nodes -keyout /root/k.pem -out /etc/kube-flannel/flanneld.crt -subj /CN=impostor -days 90 2>/dev/null",
    );
    let o = lab.netctl(&["verify", "--no-dataplane", "--output", "json"], &p);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        node_certs(&o),
        [
            ("node-1".into(), "pass".into()),
            ("node-2".into(), "fail".into())
        ],
        "{}",
        labkit::text(&o)
    );
    lab.exec_ok(
        "node-2",
        "cp /root/flanneld.crt.good /etc/kube-flannel/flanneld.crt",
    );
    let on_node = lab.exec_ok("node-2", "cat /etc/kube-flannel/flanneld.key");
    assert_eq!(
        on_node,
        std::fs::read_to_string(pki_dir.join("nodes/node-2/flanneld.key")).unwrap()
    );

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
    assert!(o.status.success(), "{}", labkit::text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["result"], "unchanged", "{n}");
    }

    plant_short_lived(&pki_dir, "node-2");
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
    assert!(o.status.success(), "{}", labkit::text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nodes"][0]["result"], "unchanged", "{v}");
    assert_eq!(v["nodes"][1]["result"], "applied", "{v}");
    assert_eq!(
        v["nodes"][1]["files_changed"], 2,
        "certificate and key: {v}"
    );
    assert_eq!(v["nodes"][1]["restarts_skipped"][0], "flanneld", "{v}");
    let cert = lab.exec_ok("node-2", "cat /etc/kube-flannel/flanneld.crt");
    assert_eq!(
        cert,
        std::fs::read_to_string(pki_dir.join("nodes/node-2/flanneld.crt")).unwrap()
    );
    let ca = std::fs::read(pki_dir.join("ca.crt")).unwrap();
    certs::check(&ca, cert.as_bytes(), SystemTime::now()).unwrap();

    let o = lab.netctl(&["reset", "--yes"], &p);
    assert!(o.status.success(), "{}", labkit::text(&o));
    let gone = lab.exec("node-1", "ls /etc/kube-flannel/flanneld.key");
    assert!(!gone.status.success(), "reset left the key");
}

/// Issue 11 item 8: on an existing cluster a CA netctl made itself is trusted by nothing, so
/// without the cluster's CA and credentials it accepts, plan refuses (exit 2) before any node
/// or the local PKI is touched, and says what to provide.
#[test]
fn without_the_clusters_ca_and_credentials_flanneld_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let plan = |p: &Path| netctl().args(["plan", "-p"]).arg(p).output().unwrap();
    let p = bare_profile(t.path(), "", "");
    let o = plan(&p);
    assert_eq!(o.status.code(), Some(2), "{}", labkit::text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kubernetes.caCertificate"), "{err}");
    cluster_ca(t.path());
    let p = profile(t.path(), "");
    let o = plan(&p);
    assert_eq!(o.status.code(), Some(2), "{}", labkit::text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for what in [
        "pki.caKey",
        "networking.flannel.tokenFile",
        "pki.generateCA",
    ] {
        assert!(err.contains(what), "{what} in {err}");
    }
    assert!(!t.path().join("certs-test-pki").exists(), "a PKI was made");
}

/// flanneld verifies the API server with the cluster's CA, never with the CA that signs its
/// certificate when that is another (here a generated one): ca.crt is the cluster's, the
/// signing CA goes to client-ca.crt for verify's node.certs only.
#[test]
fn the_api_server_is_verified_with_the_cluster_ca() {
    let t = tempfile::tempdir().unwrap();
    let cluster = cluster_ca(t.path());
    let p = profile(t.path(), GENERATED);
    let pki = prepare(&p, Mode::Persist);
    assert_eq!(pki.server_ca_pem, cluster);
    assert_ne!(pki.ca_pem, cluster);
    let c = netctl::profile::load(&p).unwrap();
    let inputs = netctl::provider::Inputs {
        pki: Some(std::sync::Arc::new(pki.clone())),
        ..Default::default()
    };
    let plan = netctl::provider::node_plan(&c, c.node("worker-0").unwrap(), &inputs);
    let content = |path: &str| {
        plan.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
            .content
            .clone()
    };
    assert_eq!(content("/etc/kube-flannel/ca.crt"), cluster);
    assert_eq!(content("/etc/kube-flannel/client-ca.crt"), pki.ca_pem);
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&content("/etc/kube-flannel/kubeconfig")).unwrap();
    assert_eq!(
        kc["clusters"][0]["cluster"]["certificate-authority"].as_str(),
        Some("/etc/kube-flannel/ca.crt")
    );
    // What verify reads on the node: the certificate chains to the CA that signed it.
    let out = format!(
        "{}\n--netctl-cert-separator--\n{}",
        pki.ca_pem, pki.nodes["worker-0"].cert_pem
    );
    netctl::verify::certs::check_output(&out, SystemTime::now()).unwrap();
}

/// A token of flannel's service account instead of a certificate: the token file (0600), the
/// cluster CA, a kubeconfig naming the token file; no certificate, no PKI, the token never
/// printed. A token that is not one is bad input naming the field.
#[test]
fn a_service_account_token_authenticates_flanneld() {
    let t = tempfile::tempdir().unwrap();
    let cluster = cluster_ca(t.path());
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmbGFubmVsIn0.c2lnbmF0dXJl";
    std::fs::write(t.path().join("flannel.token"), format!("{TOKEN}\n")).unwrap();
    let p = profile(t.path(), "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "deploy: systemd }",
        "deploy: systemd, tokenFile: flannel.token }",
    );
    std::fs::write(&p, text).unwrap();
    let pki = prepare(&p, Mode::Persist);
    assert!(pki.nodes.is_empty());
    assert!(!format!("{pki:?}").contains(TOKEN));
    assert!(!t.path().join("certs-test-pki").exists());

    let out = t.path().join("out");
    let o = netctl()
        .args(["render", "-p"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", labkit::text(&o));
    assert!(!labkit::text(&o).contains(TOKEN));
    let node = out.join("nodes/worker-1/etc/kube-flannel");
    assert_eq!(mode(&node.join("token")), 0o600);
    assert_eq!(
        std::fs::read_to_string(node.join("token")).unwrap(),
        format!("{TOKEN}\n")
    );
    assert_eq!(
        std::fs::read_to_string(node.join("ca.crt")).unwrap(),
        cluster
    );
    assert!(!node.join("flanneld.crt").exists() && !node.join("flanneld.key").exists());
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(node.join("kubeconfig")).unwrap()).unwrap();
    let user = &kc["users"][0]["user"];
    assert_eq!(user["tokenFile"].as_str(), Some("/etc/kube-flannel/token"));
    assert!(user["client-certificate"].is_null(), "{user:?}");

    std::fs::write(t.path().join("flannel.token"), "not a token\n").unwrap();
    let o = netctl().args(["plan", "-p"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", labkit::text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("networking.flannel.tokenFile"));
}
