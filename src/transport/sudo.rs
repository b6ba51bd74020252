//! Running netctl's scripts as root for a non-root SSH user (`ssh.sudo: true`).
//!
//! Scripts travel on stdin (`sh -s`), and sudo with a password also wants stdin: the two must not share it,
//! or sudo eats script lines as password attempts (and a cached or NOPASSWD sudo would hand the password to
//! the shell as a command). So with a password, a fixed wrapper run as the SSH user takes the password from
//! the first stdin line, saves the rest (the script) to a private temp file (mktemp: mode 0600, owned by the
//! user, removed afterwards), and gives sudo nothing but the password on its stdin; the script is read from
//! the file. `-k` makes sudo ask every time rather than depend on a timestamp. Without a password
//! (`sudo -n` works) the script stays on stdin and sudo never reads it. The password never appears on a
//! command line (printf is a shell builtin) and is never logged.

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
pub(crate) const CHECK: &str =
    "sh -c 'IFS= read -r p || exit 97; printf \"%s\\n\" \"$p\" | sudo -S -k -p \"\" -- true'";

const PASSWORDLESS: &str = "sudo -n -- sh -s";

const WITH_PASSWORD: &str = "sh -c 'IFS= read -r p || exit 97; t=$(mktemp) || exit 98; \
     cat > \"$t\" || { rm -f -- \"$t\"; exit 98; }; \
     printf \"%s\\n\" \"$p\" | sudo -S -k -p \"\" -- sh \"$t\"; s=$?; rm -f -- \"$t\"; exit $s'";

/// The remote command and its stdin for running `script` in `mode`.
pub(crate) fn wrap(mode: &Mode, script: &[u8]) -> (&'static str, Vec<u8>) {
    match mode {
        Mode::Direct => ("sh -s", script.to_vec()),
        Mode::NoPassword => (PASSWORDLESS, script.to_vec()),
        Mode::Password(p) => {
            let mut stdin = Vec::with_capacity(p.len() + 1 + script.len());
            stdin.extend_from_slice(p.as_bytes());
            stdin.push(b'\n');
            stdin.extend_from_slice(script);
            (WITH_PASSWORD, stdin)
        }
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
    use std::process::{Command, Stdio};

    #[test]
    fn password_is_the_first_line_and_never_on_the_command_line() {
        let (cmd, stdin) = wrap(&Mode::Password("s3cr'et $x".into()), b"echo hi\n");
        assert!(!cmd.contains("s3cr"));
        assert_eq!(stdin, b"s3cr'et $x\necho hi\n");
        assert_eq!(wrap(&Mode::Direct, b"x").0, "sh -s");
        assert_eq!(wrap(&Mode::NoPassword, b"x"), (PASSWORDLESS, b"x".to_vec()));
        assert!(check_password("a\nb").is_err());
    }

    /// The wrapper itself, run locally with a fake `sudo` first on PATH: the script arrives whole, the
    /// password reaches sudo's stdin only, and the temp file is gone afterwards.
    #[test]
    fn wrapper_splits_password_and_script() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("sudo");
        let seen = dir.path().join("seen");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nread -r pw; printf '%s' \"$pw\" > {seen}; shift 5; [ \"$1\" = sh ] && echo \"$2\" >> {seen}.files; exec \"$@\"\n",
                seen = seen.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (cmd, stdin) = wrap(
            &Mode::Password("pw 1".into()),
            b"echo line1\nread x || echo stdin-is-empty\necho line3\n",
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "line1\nstdin-is-empty\nline3\n"
        );
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "pw 1");
        let temp = std::fs::read_to_string(format!("{}.files", seen.display())).unwrap();
        assert!(
            !std::path::Path::new(temp.trim()).exists(),
            "temp script left behind"
        );
    }
}
