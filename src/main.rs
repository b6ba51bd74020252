//! netctl's entry point: parse flags, run the command, print the error chain once, exit.

mod cli;

use clap::Parser;
use std::sync::Arc;

use cli::{Cli, Command, Connect, Format, ProfileCommand};
use netctl::commands::apply::{ApplyOptions, RunReport};
use netctl::{certs, commands, profile, Error};
use std::time::SystemTime;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("report serialises") + "\n"
}

/// Exit code for a node run: refusals (host key, lock) 3, failures 1.
fn run_result(report: &RunReport) -> Result<i32, Error> {
    let failed = report.failed_nodes();
    if failed.is_empty() && !report.cluster_failed() {
        return Ok(0);
    }
    let names: Vec<&str> = failed.iter().map(|n| n.name.as_str()).collect();
    let msg = if failed.is_empty() {
        "a cluster step failed".to_string()
    } else {
        format!("failed on {} node(s): {}", failed.len(), names.join(", "))
    };
    if report.refused() {
        Err(Error::Refused(msg))
    } else {
        Err(Error::Failed(msg))
    }
}

fn apply(connect: Connect, quiet: bool, yes: bool, dry_run: bool) -> Result<i32, Error> {
    let cluster = Arc::new(profile::load(&connect.profile)?);
    // A dry run issues what is missing or due in memory only, so `plan` writes nothing locally either.
    let mode = if dry_run {
        certs::Mode::InMemory
    } else {
        certs::Mode::Persist
    };
    let pki = certs::prepare(&cluster, &connect.profile, mode, SystemTime::now())?;
    print_notes(pki.as_ref(), quiet);
    let opts = ApplyOptions {
        dry_run,
        yes,
        concurrency: connect.concurrency,
        accept_new_host_keys: connect.accept_new_host_keys,
        quiet,
        pki: pki.map(Arc::new),
    };
    let report = runtime().block_on(commands::apply::run(cluster, opts));
    match connect.output {
        Format::Text => print!("{}", commands::apply::text(&report, dry_run)),
        Format::Json => print!("{}", json(&report)),
    }
    run_result(&report)
}

/// What the PKI step issued or found missing, one line each on stderr.
fn print_notes(pki: Option<&certs::Pki>, quiet: bool) {
    if quiet {
        return;
    }
    for n in pki.map(|p| p.notes.as_slice()).unwrap_or_default() {
        eprintln!("certs: {n}");
    }
}

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
        Command::Profile {
            command: ProfileCommand::New(args),
        } => {
            println!("{}", new_profile(args)?);
            Ok(0)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "netctl", &mut std::io::stdout());
            Ok(0)
        }
        Command::Render { profile, out } => {
            let cluster = profile::load(&profile)?;
            let pki = certs::prepare(&cluster, &profile, certs::Mode::ReadOnly, SystemTime::now())?;
            if pki.is_none() && !certs::store::nodes_needing(&cluster).is_empty() {
                eprintln!(
                    "certs: no CA in {} yet: flanneld's certificate files are left out (netctl init creates them)",
                    certs::store::dir(&cluster, &profile).display()
                );
            }
            print_notes(pki.as_ref(), cli.quiet);
            println!("{}", commands::render::run(&cluster, &out, pki.as_ref())?);
            Ok(0)
        }
        Command::Plan { connect } => apply(connect, cli.quiet, true, true),
        Command::Init {
            connect,
            yes,
            dry_run,
        } => apply(connect, cli.quiet, yes, dry_run),
        Command::Reset { connect, yes } => {
            let cluster = Arc::new(profile::load(&connect.profile)?);
            confirm_or_refuse(
                yes,
                &format!(
                    "Remove netctl's changes from {} node(s)?",
                    cluster.nodes.len()
                ),
            )?;
            let reports = runtime().block_on(commands::reset::run(
                cluster,
                connect.accept_new_host_keys,
                connect.concurrency,
                cli.quiet,
            ));
            match connect.output {
                Format::Text => print!("{}", commands::reset::text(&reports)),
                Format::Json => print!("{}", json(&reports)),
            }
            let failed: Vec<&str> = reports
                .iter()
                .filter(|r| r.error.is_some())
                .map(|r| r.name.as_str())
                .collect();
            if failed.is_empty() {
                Ok(0)
            } else if reports.iter().any(|r| r.refused) {
                Err(Error::Refused(format!(
                    "refused on {} node(s): {}",
                    failed.len(),
                    failed.join(", ")
                )))
            } else {
                Err(Error::Failed(format!(
                    "failed on {} node(s): {}",
                    failed.len(),
                    failed.join(", ")
                )))
            }
        }
        Command::Lab { command } => netctl::lab::run(command).map_err(|e| Error::Lab(Box::new(e))),
    }
}

fn new_profile(a: Box<cli::NewArgs>) -> Result<String, Error> {
    use commands::wizard;
    use std::io::IsTerminal;
    let mut nodes = a.nodes;
    if let Some(h) = &a.hosts {
        let text = std::fs::read_to_string(h)
            .map_err(|e| Error::Usage(format!("--hosts {}: {e}", h.display())))?;
        nodes.extend(wizard::parse_hosts(&text, h).map_err(Error::Usage)?);
    }
    let answers = wizard::Answers {
        name: a.name,
        version: a.kube_version,
        cluster_cidr: a.cluster_cidr,
        service_cidr: a.service_cidr,
        provider: a.provider,
        backend: a.backend,
        nodes,
        ssh_user: a.ssh_user,
        identity_file: a.identity_file,
        out: a.out,
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    wizard::run(answers, interactive, a.force)
}

/// Destructive commands ask first on a terminal; without one they need --yes (exit 2 otherwise).
fn confirm_or_refuse(yes: bool, prompt: &str) -> Result<(), Error> {
    use std::io::IsTerminal;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{prompt} There is no terminal to ask: pass --yes"
        )));
    }
    match dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
    {
        Ok(true) => Ok(()),
        _ => Err(Error::Usage("not confirmed; nothing was changed".into())),
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
