//! netctl's entry point: parse flags, run the command, print the error chain once, exit.

mod cli;

use clap::Parser;
use cli::{Cli, Command, Format, ProfileCommand};
use netctl::{commands, profile, Error};

fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Profile {
            command: ProfileCommand::Check { profile, output },
        } => {
            let cluster = profile::load(&profile)?;
            match output {
                Format::Text => print!("{}", commands::check::text(&cluster)),
                Format::Json => print!("{}", commands::check::json(&cluster)),
            }
            Ok(0)
        }
        Command::Render { profile, out } => {
            let cluster = profile::load(&profile)?;
            println!("{}", commands::render::run(&cluster, &out)?);
            Ok(0)
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            eprintln!("error: {msg}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let cause = s.to_string();
                // Most messages already end with their cause; print only what is new.
                if !msg.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
                src = s.source();
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
