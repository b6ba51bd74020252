//! Running external tools (ip, ssh-keygen, mount, ...) with argument vectors: a failure names the
//! whole command line and its stderr, so the user sees what the kernel or the tool refused.

use std::process::{Command, Stdio};

use super::LabError;

/// A printable command line (arguments are never passed through a shell; this is for messages).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run to completion; Ok(stdout) on exit 0, else an error with the command and its stderr.
pub fn run(cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: describe(cmd),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: describe(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Shorthand: `run(Command::new(program).args(args))`.
pub fn run_args(program: &str, args: &[&str]) -> Result<String, LabError> {
    run(Command::new(program).args(args))
}

/// Like `run_args`, but a failure whose stderr contains one of `benign` counts as success
/// (tear-down of something already gone: "Cannot find device", "No such file").
pub fn run_tolerant(program: &str, args: &[&str], benign: &[&str]) -> Result<(), LabError> {
    match run_args(program, args) {
        Ok(_) => Ok(()),
        Err(LabError::Command { stderr, .. }) if benign.iter().any(|b| stderr.contains(b)) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
