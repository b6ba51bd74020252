//! What can go wrong in the lab, each naming what failed, and the exit code it maps to
//! (2: the caller's input or machine is not fit; 1: a step failed).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    BadInput(String),
    #[error("the lab needs root (it creates namespaces, links and mounts); run it with sudo")]
    NotRoot,
    #[error("{what} not found: install the Debian package {package} (apt-get install {package})")]
    MissingPackage { package: String, what: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lab state {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
}

impl LabError {
    /// The process exit code: 2 when the input or the machine is not fit, 1 when a step failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            LabError::BadInput(_) | LabError::NotRoot | LabError::MissingPackage { .. } => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
