//! Cloud route commands (routes backend gce / aws), run on the operator's machine with the
//! cloud's own CLI, found with `which`. Creating a route that already exists is "unchanged", so
//! init stays idempotent without a second API call per route.

use std::process::Command;

use crate::provider::LocalCommand;
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
    Unchanged,
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
    let mut cmd = Command::new(&program);
    for name in ENV_NAMES {
        cmd.env_remove(name);
    }
    let out = cmd
        .args(&c.args)
        .output()
        .map_err(|source| CloudError::Io {
            program: c.program.clone(),
            step: step.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.success() {
        true => Ok(Outcome::Created),
        false if already_exists(&stderr) => Ok(Outcome::Unchanged),
        false => Err(CloudError::Failed {
            program: c.program.clone(),
            step,
            status: out.status.code().unwrap_or(-1),
            stderr,
        }),
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
