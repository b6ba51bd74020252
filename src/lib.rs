//! netctl: provision Kubernetes pod networking from a cluster profile, over SSH.
//!
//! profile -> provider (what each node needs, through template) -> render or phases over transport (SSH),
//! with the lab for trying and testing it all on one machine.

pub mod approve;
pub mod certs;
pub mod cloud;
pub mod commands;
pub mod error;
pub mod fault;
pub mod fleet;
pub mod input;
pub mod kubectl;
pub mod lab;
pub mod migrate;
pub mod network;
pub mod phase;
pub mod pins;
pub mod plan;
pub mod preflight;
pub mod printer;
pub mod profile;
pub mod provider;
pub mod recorded;
pub mod remote;
pub mod render;
pub mod run;
pub mod shell;
#[cfg(test)]
mod shellcheck;
pub mod state;
pub mod tempdir;
pub mod template;
pub mod transport;
pub mod verify;

pub use error::Error;
