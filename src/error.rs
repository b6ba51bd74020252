//! The one error type commands return, and the exit code each kind maps to (DESIGN.md):
//! 0 ok; 1 a remote step or check failed; 2 bad input; 3 refused for safety.

use crate::profile::ProfileError;
use crate::render::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Certs(#[from] crate::certs::CertError),
    /// Bad flags or arguments, with what to do instead.
    #[error("{0}")]
    Usage(String),
    /// A remote step or check failed; the details were already printed per node.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Lab(Box<crate::lab::LabError>),
    /// The ssh config, a key file or a known_hosts file must be fixed (found before any node is reached).
    #[error(transparent)]
    SshInput(#[from] crate::phase::connect::InputError),
    /// Refused for safety (host key, node lock, switch precondition).
    #[error("{0}")]
    Refused(String),
    /// Ctrl-C at a question: ended as a shell ends an interrupted command (128 + SIGINT).
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Profile(_) | Error::Usage(_) | Error::SshInput(_) => 2,
            Error::Write(
                WriteError::NotOurs { .. }
                | WriteError::Source { .. }
                | WriteError::NotADirectory { .. }
                | WriteError::InTheWay { .. }
                | WriteError::BadManifest { .. },
            ) => 2,
            Error::Write(_) | Error::Failed(_) => 1,
            // The profile's CA (or the stored one) cannot be used: fix the input.
            Error::Certs(
                crate::certs::CertError::Ca { .. } | crate::certs::CertError::Missing { .. },
            ) => 2,
            Error::Certs(_) => 1,
            Error::Refused(_) => 3,
            Error::Interrupted(_) => 130,
            Error::Lab(e) => e.exit_code(),
        }
    }
}
