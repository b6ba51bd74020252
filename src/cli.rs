//! The command line (clap only): flags and help text. Each command calls the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "netctl",
    version,
    about = "Provision Kubernetes pod networking from a cluster profile, over SSH"
)]
pub struct Cli {
    /// Print less: no progress lines.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Profile commands: check a profile, or write a new one.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Write every artifact for every node (and the cluster manifests) to a directory; nothing is touched remotely.
    Render {
        #[arg(short, long)]
        profile: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Parse and validate a profile and print its CIDR plan; exit 2 on any error.
    Check {
        #[arg(short, long)]
        profile: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
}
