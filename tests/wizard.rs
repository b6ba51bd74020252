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
            "--kubernetes-version",
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
            "--kubernetes-version",
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
    for flag in ["--name", "--kubernetes-version", "--provider", "--node"] {
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
            ("--kubernetes-version", "1.30"),
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

/// Issue 16: the wizard asked for the output path last and refused an existing one after the
/// whole interview (exit 2). Now it is asked after the name and asked again when it exists.
#[test]
fn an_existing_output_path_is_asked_again_not_refused_at_the_end() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("taken.yaml"), "mine\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_netctl");
    let o = on_pty(
        &format!("{bin} profile new --kubernetes-version 1.30 --provider routes --backend host-gw --node name=a,address=192.0.2.1 --identity-file /etc/hostname"),
        &[
            "taken",      // name
            "",           // the default taken.yaml: exists, asked again
            "fresh.yaml", // where to write
            "",           // cluster CIDR
            "",           // service CIDR
            "",           // ssh user
        ],
        &[],
        t.path(),
    );
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        screen.contains("taken.yaml exists: give another path, or pass --force"),
        "{screen}"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("taken.yaml")).unwrap(),
        "mine\n"
    );
    assert!(check(&t.path().join("fresh.yaml")).status.success());
}

/// Issue 16: Ctrl-D was ignored. Ctrl-D ends the interview with exit 1, Ctrl-C with 130, each
/// with one line and no file written.
#[test]
fn ctrl_d_and_ctrl_c_end_the_interview_with_one_line() {
    let bin = env!("CARGO_BIN_EXE_netctl");
    for (key, code, said) in [
        (
            "\x04",
            1,
            "error: Kubernetes version: no answer (Ctrl-D); no profile was written",
        ),
        (
            "\x03",
            130,
            "error: interrupted (Ctrl-C); no profile was written",
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        let o = on_pty(
            &format!("{bin} profile new"),
            &["demo", "", key],
            &[("NO_COLOR", "1")],
            t.path(),
        );
        let screen = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(code), "{key:?}: {screen}");
        assert_eq!(screen.matches("error:").count(), 1, "{key:?}: {screen}");
        assert!(screen.contains(said), "{key:?}: {screen}");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            0,
            "{key:?}: nothing written"
        );
    }
}

/// Issue 16: flag mode reported bad values one at a time. Now every one at once, exit 2.
#[test]
fn every_bad_flag_value_is_listed_at_once() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("taken.yaml"), "").unwrap();
    std::fs::write(t.path().join("hosts"), "ok 192.0.2.9\nBad 192.0.2.10\n").unwrap();
    let o = netctl()
        .args([
            "profile",
            "new",
            "--name",
            "Bad",
            "--kubernetes-version",
            "1.x",
            "--cluster-cidr",
            "10.200.0.1/16",
            "--provider",
            "cilium",
            "--node",
            "name=a",
            "--hosts",
            "hosts",
            "--out",
            "taken.yaml",
        ])
        .current_dir(t.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("7 bad value(s)"), "{err}");
    for want in [
        "--name: \"Bad\" is not a DNS-1123 label",
        "--kubernetes-version: \"1.x\"",
        "--cluster-cidr: 10.200.0.1/16 has host bits set",
        "--provider: \"cilium\" is not a provider",
        "--out: taken.yaml exists",
        "--node \"name=a\": address= is missing",
        "--hosts: hosts:2: \"Bad\"",
    ] {
        assert!(err.contains(want), "{want:?} missing:\n{err}");
    }
}

/// Issue 16: the wizard wrote an identity file into the profile without saying it is not there.
#[test]
fn a_missing_identity_file_is_warned_about() {
    let t = tempfile::tempdir().unwrap();
    let run = |identity: &str, out: &str| {
        netctl()
            .args([
                "profile",
                "new",
                "--name",
                "w",
                "--kubernetes-version",
                "1.30",
                "--provider",
                "routes",
                "--node",
                "name=a,address=192.0.2.1",
                "--identity-file",
                identity,
                "--out",
                out,
            ])
            .current_dir(t.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run("/nonexistent/id_lab", "a.yaml");
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: the SSH identity file /nonexistent/id_lab")
            && err.contains("does not exist"),
        "{err}"
    );
    let o = run("/etc/hostname", "b.yaml");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{}",
        text(&o)
    );
}

/// Issue 16: `profile new --version` meant the Kubernetes version; now `--version` is netctl's on
/// every command, printed as `netctl --version` prints it.
#[test]
fn every_command_s_version_is_netctl_s() {
    for args in [
        &["profile", "new", "--version"][..],
        &["plan", "--version"],
        &["--version"],
    ] {
        let o = netctl().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("netctl {}", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
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

/// Issue 16: completions offered file names for --provider, --backend and --networking. The
/// value-typed flags now complete to their values.
#[test]
fn completions_offer_the_values_of_value_typed_flags() {
    let o = netctl().args(["completions", "bash"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let script = String::from_utf8_lossy(&o.stdout);
    // bash's completion of one flag's value: `compgen -W "v1 v2 ..."`.
    let lists: Vec<&str> = script
        .split("compgen -W \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let offered = |values: &[&str]| {
        lists.iter().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            values.iter().all(|v| words.contains(v))
        })
    };
    for values in [
        // profile new --provider
        &["routes", "kubenet", "flannel", "calico", "canal", "weave"][..],
        // --backend (switch, profile new)
        &["host-gw", "vxlan", "wireguard"],
        // switch --networking and --from
        &["calico", "routes:vxlan", "flannel:wireguard"],
        // --output
        &["text", "json"],
        &["text", "wide", "json", "junit"],
        // verify --mesh, plan --diff
        &["auto", "full", "ring", "strided"],
        &["summary", "full"],
    ] {
        assert!(offered(values), "{values:?} not offered: {lists:#?}");
    }
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
            // The wizard's first question after the name: where to write (issue 16).
            screen.contains("Usage") || screen.contains("Write the profile to"),
            "{cmd}: nothing on the screen: {screen:?}"
        );
    }
}
