//! `netctl profile new` through flags (no terminal) and through a real pseudo-terminal (`script`),
//! plus `netctl completions`, `--version` and NO_COLOR.

mod labkit;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn netctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netctl"))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check(profile: &Path) -> Output {
    netctl()
        .args(["profile", "check", "-p"])
        .arg(profile)
        .output()
        .unwrap()
}

#[test]
fn flags_alone_write_a_profile_that_checks() {
    let t = tempfile::tempdir().unwrap();
    let hosts = t.path().join("hosts");
    std::fs::write(
        &hosts,
        "# name address [roles]\nctl-0 10.240.0.10 controller\nworker-1 10.240.0.21\n",
    )
    .unwrap();
    let out = t.path().join("hw.yaml");
    let o = netctl()
        .args([
            "profile",
            "new",
            "--name",
            "hard-way",
            "--version",
            "1.30",
            "--provider",
            "flannel",
            "--backend",
            "host-gw",
            "--node",
            "name=worker-0,address=10.240.0.20,roles=worker",
            "--ssh-user",
            "admin",
            "--identity-file",
            "~/.ssh/lab",
        ])
        .arg("--hosts")
        .arg(&hosts)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let c = check(&out);
    assert!(c.status.success(), "{}", text(&c));
    let yaml = std::fs::read_to_string(&out).unwrap();
    for want in [
        "clusterCIDR: 10.200.0.0/16",
        "serviceCIDR: 10.32.0.0/24",
        "flannel: { backend: host-gw, deploy: systemd }",
        "user: admin",
        "  - { name: worker-0, address: 10.240.0.20, roles: [worker] }\n  - { name: ctl-0, address: 10.240.0.10, roles: [controller] }\n  - { name: worker-1",
        "# The cluster's networks.",
    ] {
        assert!(yaml.contains(want), "{want:?} missing:\n{yaml}");
    }
    let cluster = netctl::profile::load(&out).unwrap();
    assert_eq!(cluster.nodes.len(), 3);

    // Never over an existing file without --force.
    let again = |force: bool| {
        let mut c = netctl();
        c.args([
            "profile",
            "new",
            "--name",
            "other",
            "--version",
            "1.29",
            "--provider",
            "routes",
            "--node",
            "name=a,address=192.0.2.1",
        ])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null());
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let o = again(false);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), yaml);
    let o = again(true);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("name: other"));
}

#[test]
fn without_a_terminal_every_missing_answer_is_listed() {
    let t = tempfile::tempdir().unwrap();
    let o = netctl()
        .args(["profile", "new", "--cluster-cidr", "10.244.0.0/16"])
        .current_dir(t.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for flag in ["--name", "--version", "--provider", "--node"] {
        assert!(err.contains(flag), "{flag} not listed:\n{err}");
    }
    assert!(err.contains("4 answer(s) are missing"), "{err}");
    assert_eq!(
        std::fs::read_dir(t.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn bad_flag_values_are_bad_input_with_the_reason() {
    let t = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec!["--cluster-cidr", "10.200.0.1/16"], "host bits"),
        (vec!["--service-cidr", "10.200.8.0/24"], "overlaps"),
        (vec!["--provider", "cilium"], "not a provider"),
        (vec!["--backend", "ipip"], "not a flannel backend"),
        (
            vec!["--node", "name=b,address=10.200.3.4"],
            "inside 10.200.0.0/16",
        ),
        (vec!["--node", "name=Bad,address=10.1.1.1"], "DNS-1123"),
    ] {
        let mut base = vec![
            ("--name", "x"),
            ("--version", "1.30"),
            ("--provider", "flannel"),
            ("--node", "name=a,address=192.0.2.1"),
        ];
        base.retain(|(flag, _)| *flag != args[0]);
        let o = netctl()
            .args(["profile", "new"])
            .args(base.iter().flat_map(|(f, v)| [*f, *v]))
            .args(&args)
            .current_dir(t.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o)
        );
    }
}

/// Run `cmd` on a pseudo-terminal (util-linux `script`), typing `answers` one line at a time.
fn on_pty(cmd: &str, answers: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut pty = labkit::pty::Pty::start(cmd, dir, env, 20);
    pty.type_lines(answers);
    let (status, screen) = pty.finish();
    Output {
        status,
        stdout: screen.into_bytes(),
        stderr: Vec::new(),
    }
}

#[test]
fn the_wizard_asks_on_a_terminal_and_re_asks_an_invalid_cidr() {
    let t = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_netctl");
    let o = on_pty(
        &format!("{bin} profile new --out typed.yaml"),
        &[
            "typed",         // name
            "v1.29.3",       // version
            "10.200.0.1/16", // cluster CIDR with host bits: asked again
            "10.244.0.0/16", // cluster CIDR
            "",              // service CIDR: the default
            "flannel",       // provider
            "host-gw",       // backend
            "ctl",           // node name
            "10.240.0.10",   // address
            "controller",    // roles
            "wrk",           // node name
            "10.244.1.1",    // an address inside the pod network: asked again
            "10.240.0.20",   // address
            "",              // roles: worker
            "",              // no more nodes
            "",              // ssh user
            "",              // identity file
        ],
        &[],
        t.path(),
    );
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        screen.contains("10.200.0.1/16 has host bits set; the network is 10.200.0.0/16"),
        "the reason is shown: {screen}"
    );
    assert!(screen.contains("lies inside 10.244.0.0/16"), "{screen}");
    let out = t.path().join("typed.yaml");
    let c = check(&out);
    assert!(c.status.success(), "{}", text(&c));
    let yaml = std::fs::read_to_string(&out).unwrap();
    for want in [
        "version: \"v1.29.3\"",
        "clusterCIDR: 10.244.0.0/16",
        "serviceCIDR: 10.32.0.0/24",
        "flannel: { backend: host-gw, deploy: systemd }",
        "  - { name: ctl, address: 10.240.0.10, roles: [controller] }\n  - { name: wrk, address: 10.240.0.20, roles: [worker] }\n",
        "user: root",
    ] {
        assert!(yaml.contains(want), "{want:?} missing:\n{yaml}");
    }
}

#[test]
fn completions_name_every_subcommand() {
    let o = netctl().args(["completions", "bash"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    for sub in [
        "profile",
        "render",
        "plan",
        "init",
        "reset",
        "lab",
        "completions",
        "check",
        "new",
    ] {
        assert!(s.contains(sub), "{sub} missing from the bash completions");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = netctl().args(["completions", shell]).output().unwrap();
        assert!(
            o.status.success() && o.stdout.len() > 500,
            "{shell}: {}",
            text(&o)
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("cluster-cidr"),
            "{shell}"
        );
    }
    let o = netctl().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn version_is_the_crate_version() {
    let o = netctl().arg("--version").output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("netctl {}", env!("CARGO_PKG_VERSION"))
    );
}

fn has_sgr(s: &str) -> bool {
    // Select Graphic Rendition: ESC [ digits/semicolons m — colour and bold, not cursor moves.
    let b = s.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == 0x1b && b.get(i + 1) == Some(&b'[') && {
            let rest = &b[i + 2..];
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == b';')
                .count();
            rest.get(n) == Some(&b'm')
        }
    })
}

#[test]
fn no_color_means_no_escape_codes_on_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_netctl");
    // On a terminal, help is styled; NO_COLOR turns every style off.
    let styled = on_pty(&format!("{bin} --help"), &[], &[], t.path());
    assert!(
        has_sgr(&String::from_utf8_lossy(&styled.stdout)),
        "expected styles on a terminal: {}",
        text(&styled)
    );
    for cmd in ["--help", "profile new --name x"] {
        // The wizard keeps asking: a short timeout ends it once its prompts are on the screen.
        let o = on_pty(
            &format!("timeout 3 {bin} {cmd}"),
            &[""],
            &[("NO_COLOR", "1")],
            t.path(),
        );
        let screen = String::from_utf8_lossy(&o.stdout);
        assert!(!has_sgr(&screen), "{cmd}: {screen:?}");
        assert!(
            screen.contains("Usage") || screen.contains("Kubernetes version"),
            "{cmd}: nothing on the screen: {screen:?}"
        );
    }
}
