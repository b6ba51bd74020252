//! netctl's entry point: parse, dispatch, and the one place errors are printed and mapped to
//! exit codes.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "netctl",
    version,
    about = "Provision Kubernetes pod networking over SSH"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A local lab cluster on this machine (needs root; see docs/lab.md).
    #[command(subcommand)]
    Lab(netctl::lab::LabCommand),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Lab(cmd) => match netctl::lab::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        },
    };
    std::process::exit(code);
}
