//! Cloud route commands (routes backend gce / aws), run on the operator's machine with the
//! cloud's own CLI, found with `which`. Creating a route that already exists is "unchanged", so
//! init stays idempotent without a second API call per route. The instances behind the routes
//! must forward IP: a check (gce, which only instance creation can set) or a change made only when
//! a query says it is needed (aws), so a second init changes nothing there either.

use std::process::Command;

use crate::provider::{LocalCheck, LocalCommand};
// Removed at start-up already; removed again here because gcloud/aws run operator plugins.
use crate::transport::secrets::ENV_NAMES;

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{program} is needed to {step}, but it is not on PATH (install the {program} CLI and log in)")]
    Missing { program: String, step: String },
    #[error("{program} failed to {step} (exit {status}): {stderr}")]
    Failed {
        program: String,
        step: String,
        status: i32,
        stderr: String,
    },
    #[error("{step}: {program} answered {got:?}, not {want:?}. {hint}")]
    Check {
        program: String,
        step: String,
        got: String,
        want: String,
        hint: String,
    },
    #[error("cannot run {program} to {step}: {source}")]
    Io {
        program: String,
        step: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Nothing to do, and why.
    Unchanged(&'static str),
}

/// The CLIs' words for "that route is there already" (gcloud, then the EC2 API's error code).
fn already_exists(stderr: &str) -> bool {
    stderr.contains("already exists") || stderr.contains("RouteAlreadyExists")
}

pub fn run(c: &LocalCommand) -> Result<Outcome, CloudError> {
    let step = c.title.clone();
    let program = which::which(&c.program).map_err(|_| CloudError::Missing {
        program: c.program.clone(),
        step: step.clone(),
    })?;
    let exec = |args: &[String]| -> Result<(bool, i32, String, String), CloudError> {
        let mut cmd = Command::new(&program);
        for name in ENV_NAMES {
            cmd.env_remove(name);
        }
        let out = cmd.args(args).output().map_err(|source| CloudError::Io {
            program: c.program.clone(),
            step: step.clone(),
            source,
        })?;
        Ok((
            out.status.success(),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    };
    let failed = |status: i32, stderr: String| CloudError::Failed {
        program: c.program.clone(),
        step: step.clone(),
        status,
        stderr,
    };
    match &c.check {
        Some(LocalCheck::Expect { line, hint }) => {
            let (ok, status, stdout, stderr) = exec(&c.args)?;
            if !ok {
                return Err(failed(status, stderr));
            }
            if stdout.lines().any(|l| l.trim() == line) {
                Ok(Outcome::Unchanged("checked"))
            } else {
                Err(CloudError::Check {
                    program: c.program.clone(),
                    step,
                    got: stdout,
                    want: line.clone(),
                    hint: hint.clone(),
                })
            }
        }
        Some(LocalCheck::Ensure { query, line }) => {
            let (ok, status, stdout, stderr) = exec(query)?;
            if !ok {
                return Err(failed(status, stderr));
            }
            if stdout == *line {
                return Ok(Outcome::Unchanged("already so"));
            }
            match exec(&c.args)? {
                (true, ..) => Ok(Outcome::Created),
                (false, status, _, stderr) => Err(failed(status, stderr)),
            }
        }
        None => match exec(&c.args)? {
            (true, ..) => Ok(Outcome::Created),
            (false, _, _, stderr) if already_exists(&stderr) => {
                Ok(Outcome::Unchanged("the route exists"))
            }
            (false, status, _, stderr) => Err(failed(status, stderr)),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn existing_routes_are_recognised() {
        assert!(super::already_exists(
            "ERROR: (gcloud.compute.routes.create) Could not fetch resource:\n - The resource 'projects/p/global/routes/kubernetes-route-10-200-0-0-24' already exists"
        ));
        assert!(super::already_exists(
            "An error occurred (RouteAlreadyExists) when calling the CreateRoute operation"
        ));
        assert!(!super::already_exists(
            "ERROR: (gcloud) You do not currently have an active account selected."
        ));
    }
}
