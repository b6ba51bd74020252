//! netctl's entry point: parse flags, run the command, print the error chain once, exit.

mod cli;

use clap::Parser;
use std::sync::Arc;

use cli::{Cli, Command, Connect, Format, ProfileCommand, VerifyFormat};
use netctl::commands::apply::{ApplyOptions, RunReport};
use netctl::commands::switch::SwitchOptions;
use netctl::migrate;
use netctl::network::Network;
use netctl::printer::escape_controls;
use netctl::provider::Inputs;

/// `print!` through `printer::out`: a closed stdout ends the run quietly (exit 0).
macro_rules! out {
    ($($arg:tt)*) => { netctl::printer::out(&format!($($arg)*)) };
}
use netctl::{certs, commands, profile, verify, Error};
use std::time::SystemTime;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Text for people, printed with node text escaped (`escape_controls`). JSON is escaped by serde;
/// verify's text report escapes itself (so its colours survive).
fn print_text(text: &str) {
    out!("{}", escape_controls(text));
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("report serialises") + "\n"
}

/// The ssh config, key files and known_hosts files, read before any node is reached: a mistake in
/// them is the same for every node, so it stops the run with exit 2 (`phase::connect::preflight`).
fn preflight(cluster: &profile::Cluster) -> Result<(), Error> {
    Ok(netctl::phase::connect::preflight(cluster)?)
}

/// Exit code for a node run: refusals (host key, lock) 3, failures 1.
fn run_result(report: &RunReport) -> Result<i32, Error> {
    if report.declined {
        return Err(Error::Failed(
            "not applied: the answer was no; nothing was changed".into(),
        ));
    }
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

fn apply(
    connect: Connect,
    quiet: bool,
    yes: bool,
    dry_run: bool,
    no_verify: bool,
) -> Result<i32, Error> {
    let cluster = profile::load(&connect.profile)?;
    // Nothing changes without an explicit yes (Terraform, kops): with no terminal to ask, init
    // refuses before it connects, as reset and switch do.
    if !dry_run && !yes && !can_ask() {
        return Err(Error::Usage(
            "init changes nodes and there is no terminal to ask: pass --yes (or run `netctl plan`)"
                .into(),
        ));
    }
    // Bad ssh input stops the run (exit 2) before any node, or the local PKI, is touched.
    preflight(&cluster)?;
    print_warnings(&cluster, quiet);
    // The binaries nodes get, read and checked against the profile's sha256 before any node (or
    // the local PKI) is touched.
    let binaries = profile::binaries::load(&cluster, &connect.profile)?;
    // A dry run issues what is missing or due in memory only, so `plan` writes nothing locally either.
    let mode = if dry_run {
        certs::Mode::InMemory
    } else {
        certs::Mode::Persist
    };
    let pki = certs::prepare(&cluster, &connect.profile, mode, SystemTime::now())?;
    print_notes(pki.as_ref(), quiet);
    let inputs = Inputs {
        pki: pki.map(Arc::new),
        binaries,
    };
    let run = netctl::run::Run::new(
        Arc::new(cluster),
        Arc::new(inputs),
        connect.concurrency,
        dry_run,
        connect.accept_new_host_keys,
        quiet,
    );
    let opts = ApplyOptions {
        yes,
        verify: !no_verify,
    };
    let rt = runtime();
    let report = rt.block_on(commands::apply::run(&run, opts));
    rt.shutdown_background();
    match connect.output {
        Format::Text => {
            print_text(&commands::apply::text(&report, dry_run));
            if let Some(v) = &report.verify {
                out!("\n{}", verify::report::text(v));
            }
        }
        Format::Json => out!("{}", json(&report)),
    }
    let code = run_result(&report)?;
    match &report.verify {
        Some(v) if v.failed() => Err(Error::Failed(verify_failures(v))),
        _ => Ok(code),
    }
}

/// "verify: 2 check(s) failed: node.routes on node-2, ..."
fn verify_failures(r: &verify::Report) -> String {
    let f: Vec<String> = r
        .failures()
        .map(|c| format!("{} on {}", c.id, c.subject))
        .collect();
    format!("verify: {} check(s) failed: {}", f.len(), f.join(", "))
}

fn verify_command(
    profile: &std::path::Path,
    opts: verify::Options,
    output: VerifyFormat,
) -> Result<i32, Error> {
    let cluster = profile::load(profile)?;
    preflight(&cluster)?;
    // The stored certificates, so node plans (and the drift check) include them; nothing issued.
    let inputs = Arc::new(Inputs {
        pki: certs::prepare(&cluster, profile, certs::Mode::ReadOnly, SystemTime::now())?
            .map(Arc::new),
        ..Inputs::default()
    });
    let cluster = Arc::new(cluster);
    let rt = runtime();
    let report = rt.block_on(commands::verify::run(cluster, inputs, opts));
    rt.shutdown_background();
    out!(
        "{}",
        match output {
            VerifyFormat::Text => verify::report::text(&report),
            VerifyFormat::Json => verify::report::json(&report),
            VerifyFormat::Junit => verify::report::junit(&report),
        }
    );
    if report.refused {
        Err(Error::Refused(verify_failures(&report)))
    } else if report.failed() {
        Err(Error::Failed(verify_failures(&report)))
    } else {
        Ok(0)
    }
}

/// What the PKI step issued or found missing, one line each on stderr.
fn print_notes(pki: Option<&certs::Pki>, quiet: bool) {
    if quiet {
        return;
    }
    for n in pki.map(|p| p.notes.as_slice()).unwrap_or_default() {
        eprintln!("certs: {}", escape_controls(n));
    }
}

/// Warnings about the profile (a deprecated provider), one line each on stderr.
fn print_warnings(cluster: &profile::Cluster, quiet: bool) {
    if quiet {
        return;
    }
    for w in netctl::provider::warnings(cluster) {
        eprintln!("warning: {w}");
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Profile {
            command: ProfileCommand::Check { profile, output },
        } => {
            let cluster = profile::load(&profile)?;
            print_warnings(&cluster, cli.quiet);
            match output {
                Format::Text => print_text(&commands::check::text(&cluster)),
                Format::Json => out!("{}", commands::check::json(&cluster)),
            }
            Ok(0)
        }
        Command::Profile {
            command: ProfileCommand::New(args),
        } => {
            print_text(&format!("{}\n", new_profile(args)?));
            Ok(0)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "netctl", &mut script);
            netctl::printer::out(&String::from_utf8_lossy(&script));
            Ok(0)
        }
        Command::Render { profile, out } => {
            let cluster = profile::load(&profile)?;
            print_warnings(&cluster, cli.quiet);
            let pki = certs::prepare(&cluster, &profile, certs::Mode::ReadOnly, SystemTime::now())?;
            if pki.is_none() && !certs::store::nodes_needing(&cluster).is_empty() {
                eprintln!(
                    "certs: flanneld's CA and credentials are not all at hand (the profile's caCertificate, caCert/caKey or tokenFile, or no CA in {} yet): their files are left out (netctl init checks and issues them; docs/certs.md)",
                    certs::store::dir(&cluster, &profile).display()
                );
            }
            print_notes(pki.as_ref(), cli.quiet);
            let inputs = Inputs {
                pki: pki.map(Arc::new),
                ..Inputs::default()
            };
            print_text(&format!(
                "{}\n",
                commands::render::run(&cluster, &inputs, &out)?
            ));
            Ok(0)
        }
        Command::Plan { connect } => apply(connect, cli.quiet, true, true, true),
        Command::Init {
            connect,
            yes,
            dry_run,
            no_verify,
        } => apply(connect, cli.quiet, yes, dry_run, no_verify),
        Command::Verify {
            profile,
            accept_new_host_keys,
            concurrency,
            output,
            smoke,
            mesh,
            no_dataplane,
        } => verify_command(
            &profile,
            verify::Options {
                cluster_checks: true,
                dataplane: !no_dataplane,
                smoke,
                mesh,
                concurrency,
                accept_new_host_keys,
                quiet: cli.quiet,
            },
            output,
        ),
        Command::Unlock { connect, run, yes } => {
            if !netctl::phase::txn::is_run_id(&run) {
                return Err(Error::Usage(format!(
                    "--run {run:?} is not a run id (like 20261129T231500Z-1a2b)"
                )));
            }
            let cluster = Arc::new(profile::load(&connect.profile)?);
            confirm_or_refuse(
                yes,
                &format!(
                    "Clear run {run}'s locks on {} node(s)?",
                    cluster.nodes.len()
                ),
            )?;
            let reports = runtime().block_on(commands::unlock::run(
                cluster,
                run,
                connect.accept_new_host_keys,
                connect.concurrency,
                cli.quiet,
            ));
            match connect.output {
                Format::Text => out!("{}", commands::unlock::text(&reports)),
                Format::Json => out!("{}", json(&reports)),
            }
            use netctl::commands::unlock::Result as U;
            let bad: Vec<&str> = reports
                .iter()
                .filter(|r| matches!(r.result, U::Refused | U::Failed))
                .map(|r| r.name.as_str())
                .collect();
            if bad.is_empty() {
                Ok(0)
            } else if reports.iter().any(|r| r.result == U::Refused) {
                Err(Error::Refused(format!(
                    "refused on {} node(s): {}",
                    bad.len(),
                    bad.join(", ")
                )))
            } else {
                Err(Error::Failed(format!(
                    "failed on {} node(s): {}",
                    bad.len(),
                    bad.join(", ")
                )))
            }
        }
        Command::Reset { connect, yes } => {
            let cluster = Arc::new(profile::load(&connect.profile)?);
            preflight(&cluster)?;
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
                Format::Text => print_text(&commands::reset::text(&reports)),
                Format::Json => out!("{}", json(&reports)),
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
        Command::Switch {
            profile,
            networking,
            backend,
            from,
            max_unavailable,
            yes,
            dry_run,
            resume,
            rollback,
            no_rollback,
            accept_new_host_keys,
            concurrency,
            output,
        } => {
            let cluster = profile::load(&profile)?;
            preflight(&cluster)?;
            let to = match networking {
                Some(n) => n
                    .with_backend_flag(backend.as_deref())
                    .map_err(Error::Usage)?,
                None => Network::of(&cluster),
            };
            // The target's certificates (flanneld as a systemd unit), issued before any node moves.
            let target =
                migrate::retarget(&cluster, &to).map_err(|e| Error::Usage(e.to_string()))?;
            // The target's binaries (flanneld as a systemd unit), checked before any node moves.
            let binaries = profile::binaries::load(&target, &profile)?;
            let mode = if dry_run {
                certs::Mode::InMemory
            } else {
                certs::Mode::Persist
            };
            let pki = certs::prepare(&target, &profile, mode, SystemTime::now())?;
            print_notes(pki.as_ref(), cli.quiet);
            // The target's node plans are built with them (migrate::retarget keeps no PKI).
            let inputs = Inputs {
                pki: pki.map(Arc::new),
                binaries,
            };
            let run = netctl::run::Run::new(
                Arc::new(cluster),
                Arc::new(inputs),
                concurrency,
                dry_run,
                accept_new_host_keys,
                cli.quiet,
            );
            let opts = SwitchOptions {
                to,
                from,
                max_unavailable,
                yes,
                resume,
                rollback,
                no_rollback,
            };
            let report = runtime().block_on(commands::switch::run(&run, opts))?;
            match output {
                Format::Text => print_text(&commands::switch::text(&report)),
                Format::Json => out!("{}", json(&report)),
            }
            // The report is on stdout; what went wrong is on stderr, once, like every error.
            match report.error {
                Some(e) => Err(Error::Failed(e)),
                None => Ok(0),
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
/// A person can answer a question: stdin and stderr are terminals.
fn can_ask() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

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
    // SAFETY: nothing has started a thread yet (the runtime is built later, per command).
    unsafe { netctl::transport::secrets::take_from_env() };
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Errors quote nodes (a lock's holder, a command's stderr): escaped, as all text is.
            let msg = e.to_string();
            eprintln!("error: {}", escape_controls(&msg));
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let cause = s.to_string();
                // Most messages already end with their cause; print only what is new.
                if !msg.contains(&cause) {
                    eprintln!("  caused by: {}", escape_controls(&cause));
                }
                src = s.source();
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
