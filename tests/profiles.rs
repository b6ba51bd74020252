//! Profiles end to end through the real binary: every example profile checks clean, every bad
//! profile under tests/bad-profiles/ exits 2 naming its field (its first line says which), and
//! `profile check --output json` has the documented shape. What each bad profile prints is a
//! snapshot (tests/snapshots/profile-check-*.snap).

mod labkit;

use std::path::{Path, PathBuf};
use std::process::Command;

use labkit::snapshot::{self, Snapshot};

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
    let snap = Snapshot::new().literal(env!("CARGO_MANIFEST_DIR"), "[ROOT]");
    let mut all = String::new();
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
        let name = f.file_name().unwrap().to_string_lossy();
        all.push_str(&format!("==== {name} ====\n{}", snap.render(&out)));
    }
    // Every message whole, one file: a change to any of them is seen in review.
    snapshot::assert_text("profile-check-bad-profiles", &all);
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
    for cmd in ["init", "verify", "reset", "switch"] {
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

/// Run `netctl profile check -p <path>`, killing it after `limit`: (exit code, stderr, time).
/// None when it had to be killed (the hang or the unbounded read this guards against).
fn check_within(path: &Path, limit: std::time::Duration) -> Option<(Option<i32>, String)> {
    let mut child = netctl()
        .args(["profile", "check", "-p"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return Some((status.code(), stderr));
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A profile that is not a regular file (/dev/zero grew memory without end, a FIFO hung) is
/// refused at once with exit 2 naming the path.
#[test]
fn profile_that_is_not_a_regular_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("profile.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for path in [Path::new("/dev/zero"), fifo.as_path(), dir.path()] {
        let (code, stderr) = check_within(path, std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: still running after 10 s", path.display()));
        assert_eq!(code, Some(2), "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains("not a regular file"),
            "{}: {stderr}",
            path.display()
        );
    }
}

/// A profile over 16 MiB is refused without being parsed.
#[test]
fn oversized_profile_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.yaml");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(16 * 1024 * 1024 + 1).unwrap();
    let (code, stderr) = check_within(&p, std::time::Duration::from_secs(10)).expect("finishes");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("big.yaml") && stderr.contains("larger than"),
        "{stderr}"
    );
}

/// Deeply nested flow collections took libyaml quadratic time (100k `[` after a key: ~30 s, and
/// `{a: ` nesting far longer); they are refused by a linear pre-scan, fast, with exit 2.
#[test]
fn deeply_nested_yaml_is_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let head = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: ";
    let n = 100_000;
    let shapes = [
        ("brackets.yaml", format!("{head}{}\n", "[".repeat(n))),
        (
            "closed.yaml",
            format!("{head}{}{}\n", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "maps.yaml",
            format!("{head}\n{}  {}\n", "  {a: \n".repeat(n), "}".repeat(n)),
        ),
        // Closing brackets inside quoted strings do not hide the depth.
        ("quoted.yaml", format!("{head}{}\n", "[ ']]', ".repeat(n))),
    ];
    for (name, text) in shapes {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let start = std::time::Instant::now();
        let (code, stderr) = check_within(&p, std::time::Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{name}: still parsing after 20 s"));
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains("nested more than"), "{name}: {stderr}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{name}: took {:?}",
            start.elapsed()
        );
    }
}

/// Issue 16: a closed stdout (`netctl ... | head -0`) panicked with "failed printing to stdout"
/// and exit 101. The pipe's reader is closed before netctl starts, so every write fails.
#[test]
fn a_closed_stdout_ends_quietly_with_exit_0() {
    use std::os::fd::{FromRawFd, OwnedFd};
    for args in [
        &[
            "profile",
            "check",
            "-p",
            "profiles/calico.yaml",
            "--output",
            "json",
        ][..],
        &["profile", "check", "-p", "profiles/calico.yaml"][..],
        &["completions", "bash"][..],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills two new descriptors, each owned once below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netctl"))
            .args(args)
            .stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// Issue 16: without a terminal, `init` applied without `--yes` (reset and switch refused). Now
/// it refuses before it connects anywhere: exit 2, naming --yes.
#[test]
fn init_without_a_terminal_or_yes_refuses_before_connecting() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/calico.yaml");
    let out = netctl()
        .args(["init", "-p"])
        .arg(&p)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(
        !stderr.contains("connect"),
        "it must not have tried the nodes: {stderr}"
    );
}

/// Issue 16: `--output` had no help text.
#[test]
fn every_output_flag_says_what_it_does() {
    for cmd in [
        &["init"][..],
        &["plan"],
        &["verify"],
        &["reset"],
        &["switch"],
        &["unlock"],
        &["profile", "check"],
    ] {
        let out = netctl().args(cmd).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let line = help
            .lines()
            .skip_while(|l| !l.contains("--output"))
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(line.contains("Report format"), "{cmd:?}: {line}");
    }
}

/// Issue 16: three typos took three runs, and a typo hid every semantic error. Through the real
/// binary: one run, four lines, each `file:line:col: field: ...`, in the file's order, exit 2.
#[test]
fn every_profile_problem_in_one_run_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("typos.yaml");
    std::fs::write(
        &p,
        "apiVersion: netctl/v1\nkind: ClusterProfile\nname: demo\nkubernetes:\n  version: \"1.30\"\n  clusterCidr: 10.200.0.0/16\n  serviceCIDR: 10.200.0.0/24\nnetworking:\n  provider: flannel\n  flannel: { bakend: host-gw }\nssh:\n  idendityFile: ~/.ssh/id\nnodes:\n  - {name: a, address: 10.0.0.1}\n",
    )
    .unwrap();
    let out = netctl()
        .args(["profile", "check", "-p"])
        .arg(&p)
        .output()
        .unwrap();
    Snapshot::new()
        .literal(dir.path(), "[TEMP]")
        .assert("profile-check-four-problems", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let file = p.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!("error: {file}: 4 problem(s):"),
        "{stderr}"
    );
    let want = [
        ":6:3: kubernetes.clusterCidr: unknown key; did you mean `clusterCIDR`?",
        ":7:3: kubernetes.serviceCIDR: 10.200.0.0/24 overlaps clusterCIDR 10.200.0.0/16",
        ":10:14: networking.flannel.bakend: unknown key; did you mean `backend`?",
        ":12:3: ssh.idendityFile: unknown key; did you mean `identityFile`?",
    ];
    assert_eq!(lines.len(), 1 + want.len(), "{stderr}");
    for (line, want) in lines[1..].iter().zip(want) {
        assert!(
            line.starts_with(&format!("{file}{want}")),
            "{line:?} is not {want:?}"
        );
    }
}
