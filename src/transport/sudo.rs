//! Running netctl's scripts as root for a non-root SSH user (`ssh.sudo: true`).
//!
//! Scripts travel on stdin (`sh -s`), and sudo with a password also wants stdin. With a password, stdin
//! is: the password line, a marker line, then the script. `sudo -S` reads its password one byte at a
//! time up to the newline, so the command it runs as root gets exactly the rest. That command reads one
//! line and runs the rest of stdin (`exec sh -s`) only if the line is the marker; otherwise it exits
//! with `NOT_ASKED` and runs and prints nothing. That guards the case where sudo did not read the
//! password (a NOPASSWD rule for `sh` while `sudo -n true` needs one): the password line reaches the
//! root shell as data, never as a command, and never comes back in an error.
//!
//! No file is involved: an earlier wrapper saved the script to a temp file owned by the SSH user, which
//! any process of that user could rewrite before root ran it (issue 10, finding 1), and which a killed
//! run left behind.
//!
//! The marker is random per call, not fixed: a fixed public string could be someone's password (or be
//! made one), and then the NOPASSWD case would run the script with the password as its first line; a
//! 128-bit random line is never a password, so when a wrong password makes sudo read the next line as
//! another attempt, that attempt fails too. The marker is not secret (it is on the command line).
//! `-k` makes sudo ask every time rather than depend on a timestamp; `-p ""` keeps its prompt off the
//! output. Without a password (`sudo -n` works) the script stays on stdin and sudo never reads it. The
//! password never appears on a command line and is never logged.

/// How scripts are run on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// As the SSH user (root, or `ssh.sudo` off).
    Direct,
    /// `sudo -n` works: passwordless.
    NoPassword,
    /// The password, sent as the first stdin line of every script.
    Password(String),
}

/// Succeeds when sudo needs no password; never waits for one (`-n`).
pub(crate) const PROBE: &str = "sudo -n -- true";

/// Checks the password once, at connect, so a wrong one is one clear error and not a failed script.
pub(crate) const CHECK: &str = "sudo -S -k -p '' -- true";

const PASSWORDLESS: &str = "sudo -n -- sh -s";

/// Exit status of the root side when its first line was not the marker: sudo did not take the
/// password, and nothing was run. It comes with `NOT_ASKED_SAID` (a fixed text, never the line read)
/// on stderr, so a script of the profile's that exits 96 is not mistaken for it.
pub(crate) const NOT_ASKED: u32 = 96;
const NOT_ASKED_SAID: &str = "netctl: sudo did not read the password";

/// The remote command and its stdin for running `script` in `mode`.
pub(crate) fn wrap(mode: &Mode, script: &[u8]) -> (String, Vec<u8>) {
    match mode {
        Mode::Direct => ("sh -s".into(), script.to_vec()),
        Mode::NoPassword => (PASSWORDLESS.into(), script.to_vec()),
        Mode::Password(p) => with_password(p, &marker(), script),
    }
}

fn with_password(password: &str, marker: &str, script: &[u8]) -> (String, Vec<u8>) {
    // `marker` is hex: safe inside the single quotes, and `$m` stays unexpanded for the root shell.
    let command = format!(
        "sudo -S -k -p '' -- sh -c 'IFS= read -r m && [ \"$m\" = {marker} ] || \
         {{ echo \"{NOT_ASKED_SAID}\" >&2; exit {NOT_ASKED}; }}; exec sh -s'"
    );
    let mut stdin = Vec::with_capacity(password.len() + marker.len() + 2 + script.len());
    for line in [password.as_bytes(), marker.as_bytes()] {
        stdin.extend_from_slice(line);
        stdin.push(b'\n');
    }
    stdin.extend_from_slice(script);
    (command, stdin)
}

/// 16 random bytes as hex.
fn marker() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a password-mode run stopped because sudo never read the password (see `NOT_ASKED`).
pub(crate) fn password_not_asked(mode: &Mode, out: &super::Output) -> bool {
    matches!(mode, Mode::Password(_))
        && out.status == NOT_ASKED
        // Its last line: sudo may warn first (e.g. "unable to resolve host").
        && out
            .stderr
            .trim_ascii_end()
            .rsplit(|b| *b == b'\n')
            .next()
            .is_some_and(|last| last == NOT_ASKED_SAID.as_bytes())
}

/// The error for `password_not_asked`.
pub(crate) fn not_asked(node: &str) -> super::TransportError {
    super::TransportError::Sudo {
        node: node.to_string(),
        message: "sudo ran the script's shell without asking for the password (a NOPASSWD rule for sh?); nothing was run".into(),
    }
}

/// A password sudo can receive: one line.
pub(crate) fn check_password(p: &str) -> Result<(), String> {
    if p.contains('\n') || p.contains('\r') {
        return Err("the sudo password contains a line break".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    #[test]
    fn password_and_marker_lead_stdin_and_never_reach_the_command_line() {
        let (cmd, stdin) = with_password("s3cr'et $x", "00ff", b"echo hi\n");
        assert!(!cmd.contains("s3cr"), "{cmd}");
        assert!(cmd.contains("= 00ff ]"), "{cmd}");
        assert_eq!(stdin, b"s3cr'et $x\n00ff\necho hi\n");
        let (a, b) = (marker(), marker());
        assert!(a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()) && a != b);
        let (cmd, _) = wrap(&Mode::Password("pw".into()), b"x");
        assert!(!cmd.contains("mktemp") && !cmd.contains("pw"), "{cmd}");
        assert_eq!(wrap(&Mode::Direct, b"x").0, "sh -s");
        assert_eq!(
            wrap(&Mode::NoPassword, b"x"),
            (PASSWORDLESS.to_string(), b"x".to_vec())
        );
        assert!(check_password("a\nb").is_err());
    }

    /// A directory with a fake `sudo`: it records the line it reads as the password (`reads_password`,
    /// byte by byte like the real one: dash's `read` on a pipe) or reads nothing (a NOPASSWD rule),
    /// then runs the command after `--`.
    fn fake_sudo(dir: &Path, reads_password: bool) {
        let read = if reads_password {
            format!(
                "IFS= read -r pw; printf '%s' \"$pw\" > {}\n",
                dir.join("password").display()
            )
        } else {
            String::new()
        };
        let fake = dir.join("sudo");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\n{read}while [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The remote command as the SSH user's shell runs it, with the fake sudo first on PATH and
    /// TMPDIR an empty directory (where a temp file would show).
    fn spawn(dir: &Path, tmp: &Path, cmd: &str, stdin: &[u8]) -> Child {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env(
                "PATH",
                format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()),
            )
            .env("TMPDIR", tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child
    }

    use std::os::unix::process::CommandExt;

    fn empty(dir: &Path) -> bool {
        std::fs::read_dir(dir).unwrap().next().is_none()
    }

    #[test]
    fn sudo_gets_the_password_line_and_the_root_shell_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        fake_sudo(dir.path(), true);
        let (cmd, stdin) = wrap(
            &Mode::Password("pw 1".into()),
            b"echo line1\nread x || echo stdin-is-empty\necho line3\n",
        );
        let out = spawn(dir.path(), tmp.path(), &cmd, &stdin)
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "line1\nstdin-is-empty\nline3\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("password")).unwrap(),
            "pw 1"
        );
        assert!(empty(tmp.path()), "the wrapper wrote a file");
    }

    /// sudo that does not ask (NOPASSWD for sh): the root shell sees the password line, runs
    /// nothing, says nothing, and exits NOT_ASKED.
    #[test]
    fn a_sudo_that_does_not_ask_runs_nothing_and_echoes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        fake_sudo(dir.path(), false);
        let ran = dir.path().join("ran");
        let script = format!("touch {}\necho ran\n", ran.display());
        let (cmd, stdin) = wrap(&Mode::Password("echo pwned".into()), script.as_bytes());
        let out = spawn(dir.path(), tmp.path(), &cmd, &stdin)
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(NOT_ASKED as i32), "{out:?}");
        assert!(
            !ran.exists(),
            "the script ran without sudo taking the password"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("{NOT_ASKED_SAID}\n")
        );
        let seen = super::super::Output {
            status: NOT_ASKED,
            stdout: out.stdout,
            stderr: out.stderr,
        };
        assert!(password_not_asked(&Mode::Password("x".into()), &seen));
        assert!(!password_not_asked(&Mode::NoPassword, &seen));
        let after_a_warning = super::super::Output {
            stderr: format!("sudo: unable to resolve host n1\n{NOT_ASKED_SAID}\n").into_bytes(),
            ..seen.clone()
        };
        assert!(password_not_asked(
            &Mode::Password("x".into()),
            &after_a_warning
        ));
        let script_exit = super::super::Output {
            stderr: b"some error\n".to_vec(),
            ..seen
        };
        assert!(!password_not_asked(
            &Mode::Password("x".into()),
            &script_exit
        ));
    }

    /// Killed in the middle of a script (a dropped run), the wrapper leaves no file behind.
    #[test]
    fn a_killed_wrapper_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        fake_sudo(dir.path(), true);
        let (cmd, stdin) = wrap(&Mode::Password("pw".into()), b"echo started\nsleep 30\n");
        let mut child = spawn(dir.path(), tmp.path(), &cmd, &stdin);
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first, "started\n");
        // The whole process group, as a dropped SSH session's SIGHUP would.
        let pgid = i32::try_from(child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
        child.wait().unwrap();
        assert!(empty(tmp.path()), "the killed wrapper left a file");
    }
}
