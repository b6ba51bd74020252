//! netctl's entry point: parse flags, run the command, print the error chain once, exit.

mod cli;

use clap::Parser;
use std::sync::Arc;

use cli::{Cli, Command, Connect, Format, Nodes, PlanArgs, ProfileCommand, VerifyFormat};
use netctl::commands::apply::{ApplyOptions, RunReport};
use netctl::commands::switch::SwitchOptions;
use netctl::migrate;
use netctl::network::Network;
use netctl::printer::escape_controls;
use netctl::provider::Inputs;
use netctl::run::{Artifacts, Flags, Run};

/// `print!` through `printer::out`: a closed stdout ends the run quietly (exit 0).
macro_rules! out {
    ($($arg:tt)*) => { netctl::printer::out(&format!($($arg)*)) };
}
use netctl::{approve, certs, commands, profile, verify, Error};
use std::time::SystemTime;

/// Run a command's future on a runtime made for it; what it left running (a kubectl on a node's
/// thread) is not waited for.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = rt.block_on(f);
    rt.shutdown_background();
    out
}

/// Text for people, printed with node text escaped (`escape_controls`). JSON is escaped by serde;
/// verify's text report escapes itself (so its colours survive).
fn print_text(text: &str) {
    out!("{}", escape_controls(text));
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("report serialises") + "\n"
}

/// The run of a command that reaches nodes: the profile (already loaded, so a bad one is exit 2
/// first), the ssh input checked, and the certificates and binaries it needs.
fn make_run(
    cluster: profile::Cluster,
    nodes: &Nodes,
    dry_run: bool,
    quiet: bool,
    artifacts: Artifacts,
    target: Option<&profile::Cluster>,
) -> Result<Run, Error> {
    let flags = Flags {
        concurrency: nodes.concurrency,
        accept_new_host_keys: nodes.accept_new_host_keys,
        dry_run,
        quiet,
    };
    let run = Run::prepare(cluster, &nodes.profile, &flags, artifacts, target)?;
    print_notes(&run.notes, quiet);
    Ok(run)
}

/// The one way per-node results become an exit: any refusal (host key, lock) 3, else failures 1.
fn node_results(bad: &[&str], refused: bool) -> Result<i32, Error> {
    if bad.is_empty() {
        return Ok(0);
    }
    let msg = format!("failed on {} node(s): {}", bad.len(), bad.join(", "));
    Err(if refused {
        Error::Refused(msg)
    } else {
        Error::Failed(msg)
    })
}

/// init's exit: a "no" is a failure; then the nodes; then a failed cluster step; then verify.
fn init_result(report: &RunReport) -> Result<i32, Error> {
    if let Some(why) = &report.refusal {
        return Err(Error::Refused(why.clone()));
    }
    if report.declined {
        return Err(approve::declined());
    }
    let failed: Vec<&str> = report
        .failed_nodes()
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    if let Some(p) = report.preflight.as_ref().filter(|p| p.failed()) {
        return Err(Error::Failed(format!(
            "{}; nothing was changed (--skip-preflight to go on anyway)",
            report_failures("preflight", p)
        )));
    }
    node_results(&failed, report.refused())?;
    if report.cluster_failed() {
        return Err(Error::Failed("a cluster step failed".into()));
    }
    match &report.verify {
        Some(v) if v.failed() => Err(Error::Failed(report_failures("verify", v))),
        _ => Ok(0),
    }
}

fn apply(
    connect: Connect,
    plan: PlanArgs,
    quiet: bool,
    dry_run: bool,
    opts: ApplyOptions,
) -> Result<i32, Error> {
    let yes = opts.yes;
    let cluster = profile::load(&connect.nodes.profile)?;
    // Nothing changes without an explicit yes (approve.rs): with no terminal to ask, init
    // refuses before it connects.
    if !dry_run {
        approve::require("init", yes).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("{m} (or run `netctl plan`)")),
            e => e,
        })?;
    }
    print_warnings(&cluster, quiet);
    let run = make_run(
        cluster,
        &connect.nodes,
        dry_run,
        quiet,
        Artifacts::Issue,
        None,
    )?;
    let report = block_on(commands::apply::run(&run, opts));
    // A "no" touched nothing: its one line says so, without the plan's table again.
    if report.declined {
        return Err(approve::declined());
    }
    match connect.output {
        Format::Text => {
            // A failed preflight is the whole story; a passed one is its verdict line.
            match report.preflight.as_ref() {
                Some(p) if p.failed() => out!("{}\n", verify::report::text(p, Default::default())),
                Some(p) => out!("{}", verify::report::verdict(p)),
                None => {}
            }
            if report.preflight_skipped {
                out!("preflight: skipped (--skip-preflight)\n");
            }
            print_text(&commands::apply::text(&report, dry_run, plan.diff));
            if let Some(v) = &report.verify {
                out!("\n{}", verify::report::text(v, Default::default()));
            }
        }
        Format::Json => out!("{}", json(&report)),
    }
    init_result(&report)?;
    // Terraform's convention, asked for: 2 says a plan has changes pending.
    Ok(i32::from(dry_run && plan.detailed_exitcode && report.changes_pending()) * 2)
}

/// "verify: 2 check(s) failed: node.routes on node-2, ..."
fn report_failures(what: &str, r: &verify::Report) -> String {
    let f: Vec<String> = r
        .failures()
        .map(|c| format!("{} on {}", c.id, c.subject))
        .collect();
    format!("{what}: {} check(s) failed: {}", f.len(), f.join(", "))
}

fn verify_command(
    nodes: Nodes,
    opts: verify::Options,
    output: VerifyFormat,
    show_skips: bool,
    quiet: bool,
) -> Result<i32, Error> {
    let cluster = profile::load(&nodes.profile)?;
    let run = make_run(cluster, &nodes, false, quiet, Artifacts::Stored, None)?;
    let report = block_on(commands::verify::run(&run, opts));
    print_report("verify", &report, output, show_skips, quiet)
}

/// verify's and preflight's report on stdout, and its exit: a refusal 3, a failure 1.
fn print_report(
    what: &str,
    report: &verify::Report,
    output: VerifyFormat,
    show_skips: bool,
    quiet: bool,
) -> Result<i32, Error> {
    out!(
        "{}",
        match output {
            VerifyFormat::Text => verify::report::text(
                report,
                verify::report::TextOptions {
                    skips: show_skips,
                    quiet,
                }
            ),
            VerifyFormat::Wide => verify::report::wide(report),
            VerifyFormat::Json => verify::report::json(report),
            VerifyFormat::Junit => verify::report::junit(report),
        }
    );
    if report.refused {
        Err(Error::Refused(report_failures(what, report)))
    } else if report.failed() {
        Err(Error::Failed(report_failures(what, report)))
    } else {
        Ok(0)
    }
}

/// What the PKI step issued or found missing, one line each on stderr.
fn print_notes(notes: &[String], quiet: bool) {
    if quiet {
        return;
    }
    for n in notes {
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
    let quiet = cli.quiet;
    match cli.command {
        Command::Profile {
            command: ProfileCommand::Check { profile, output },
        } => {
            let cluster = profile::load(&profile)?;
            print_warnings(&cluster, quiet);
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
        Command::Profile {
            command: ProfileCommand::Schema,
        } => {
            out!("{}", commands::schema::json());
            Ok(0)
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            match dir {
                Some(dir) => {
                    // A man1 directory is the installer's to make (and to choose), so a missing
                    // one is a mistyped argument, not something to create.
                    if !dir.is_dir() {
                        return Err(Error::Usage(format!(
                            "man: {} is not a directory (make it first, e.g. mkdir -p {0})",
                            dir.display()
                        )));
                    }
                    let written = commands::man::write_all(Cli::command(), &dir)
                        .map_err(|e| Error::Failed(e.to_string()))?;
                    if !quiet {
                        for p in written {
                            eprintln!("wrote {}", escape_controls(&p.display().to_string()));
                        }
                    }
                }
                None => out!("{}", commands::man::top(Cli::command())),
            }
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
        Command::Render { profile, out } => render(&profile, &out, quiet),
        Command::Plan { connect, plan } => {
            let opts = ApplyOptions {
                yes: true,
                verify: false,
                allow_provider_change: false,
                preflight: false,
            };
            apply(connect, plan, quiet, true, opts)
        }
        Command::Init {
            connect,
            yes,
            dry_run,
            no_verify,
            allow_provider_change,
            skip_preflight,
            plan,
        } => {
            let opts = ApplyOptions {
                yes,
                verify: !no_verify,
                allow_provider_change,
                preflight: !skip_preflight,
            };
            apply(connect, plan, quiet, dry_run, opts)
        }
        Command::Verify {
            nodes,
            output,
            show_skips,
            smoke,
            mesh,
            no_dataplane,
        } => {
            let opts = verify::Options {
                cluster_checks: true,
                dataplane: !no_dataplane,
                smoke,
                mesh,
                quiet,
            };
            verify_command(nodes, opts, output, show_skips, quiet)
        }
        Command::Preflight {
            nodes,
            networking,
            backend,
            output,
            show_skips,
        } => {
            let cluster = profile::load(&nodes.profile)?;
            let target = match networking {
                Some(n) => {
                    let to = n
                        .with_backend_flag(backend.as_deref())
                        .map_err(Error::Usage)?;
                    migrate::retarget(&cluster, &to).map_err(|e| Error::Usage(e.to_string()))?
                }
                None => cluster.clone(),
            };
            let run = make_run(
                cluster,
                &nodes,
                false,
                quiet,
                Artifacts::Stored,
                Some(&target),
            )?;
            let report = block_on(netctl::preflight::run(&run, Arc::new(target)));
            print_report("preflight", &report, output, show_skips, quiet)
        }
        Command::Unlock { connect, run, yes } => unlock(connect, run, yes, quiet),
        Command::Reset { connect, yes } => reset(connect, yes, quiet),
        Command::Switch {
            nodes,
            networking,
            backend,
            from,
            max_unavailable,
            yes,
            dry_run,
            resume,
            rollback,
            no_rollback,
            wait_for_node,
            skip_preflight,
            output,
        } => {
            let cluster = profile::load(&nodes.profile)?;
            // Refused before any node is locked; the question itself comes after the plan
            // (commands/switch `confirm`), a rollback's after what each node would get.
            if !dry_run {
                approve::require("switch", yes)?;
            }
            let to = match networking {
                Some(n) => n
                    .with_backend_flag(backend.as_deref())
                    .map_err(Error::Usage)?,
                None => Network::of(&cluster),
            };
            // The target's certificates and binaries (flanneld as a systemd unit), issued and
            // checked before any node moves; the target's node plans are built with them.
            let target =
                migrate::retarget(&cluster, &to).map_err(|e| Error::Usage(e.to_string()))?;
            // Written back after a success: the profile as it was loaded, to compare with.
            let loaded = cluster.clone();
            let run = make_run(
                cluster,
                &nodes,
                dry_run,
                quiet,
                Artifacts::Issue,
                Some(&target),
            )?;
            let opts = SwitchOptions {
                to,
                from,
                max_unavailable,
                yes,
                resume,
                rollback,
                no_rollback,
                wait: std::time::Duration::from_secs(wait_for_node),
                preflight: !skip_preflight,
            };
            let report = block_on(commands::switch::run(&run, opts))?;
            match output {
                Format::Text => print_text(&commands::switch::text(&report)),
                Format::Json => out!("{}", json(&report)),
            }
            // The profile is the desired network: a one-off target that the nodes now run is
            // written into it.
            use commands::profile_update;
            let done =
                profile_update::after_switch(&report.result, &nodes.profile, &loaded, &target);
            for line in profile_update::text(&nodes.profile, &done) {
                eprintln!("{}", escape_controls(&line));
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

fn render(profile: &std::path::Path, out: &std::path::Path, quiet: bool) -> Result<i32, Error> {
    let cluster = profile::load(profile)?;
    print_warnings(&cluster, quiet);
    let pki = certs::prepare(&cluster, profile, certs::Mode::ReadOnly, SystemTime::now())?;
    if pki.is_none() && !certs::store::nodes_needing(&cluster).is_empty() {
        eprintln!(
            "certs: flanneld's CA and credentials are not all at hand (the profile's caCertificate, caCert/caKey or tokenFile, or no CA in {} yet): their files are left out (netctl init checks and issues them; docs/certs.md)",
            certs::store::dir(&cluster, profile).display()
        );
    }
    print_notes(
        pki.as_ref().map(|p| p.notes.as_slice()).unwrap_or_default(),
        quiet,
    );
    let inputs = Inputs {
        pki: pki.map(Arc::new),
        ..Inputs::default()
    };
    print_text(&format!(
        "{}\n",
        commands::render::run(&cluster, &inputs, out)?
    ));
    Ok(0)
}

fn unlock(connect: Connect, run_id: String, yes: bool, quiet: bool) -> Result<i32, Error> {
    if !netctl::phase::txn::is_run_id(&run_id) {
        return Err(Error::Usage(format!(
            "--run {run_id:?} is not a run id (like 20261129T231500Z-1a2b)"
        )));
    }
    let cluster = profile::load(&connect.nodes.profile)?;
    approve::require("unlock", yes)?;
    let run = make_run(cluster, &connect.nodes, false, quiet, Artifacts::None, None)?;
    let reports = block_on(commands::unlock::run(&run, run_id, yes))?;
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
    node_results(&bad, reports.iter().any(|r| r.result == U::Refused))
}

fn reset(connect: Connect, yes: bool, quiet: bool) -> Result<i32, Error> {
    let cluster = profile::load(&connect.nodes.profile)?;
    approve::require("reset", yes)?;
    let run = make_run(cluster, &connect.nodes, false, quiet, Artifacts::None, None)?;
    let reports = block_on(commands::reset::run(&run, yes))?;
    match connect.output {
        Format::Text => print_text(&commands::reset::text(&reports)),
        Format::Json => out!("{}", json(&reports)),
    }
    let bad: Vec<&str> = reports
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.name.as_str())
        .collect();
    node_results(&bad, reports.iter().any(|r| r.refused))
}

fn new_profile(a: Box<cli::NewArgs>) -> Result<String, Error> {
    use commands::wizard;
    use std::io::IsTerminal;
    let mut nodes = Vec::new();
    let mut bad = Vec::new();
    for n in &a.nodes {
        match wizard::parse_node_flag(n) {
            Ok(n) => nodes.push(n),
            Err(e) => bad.push(format!("--node: {e}")),
        }
    }
    if let Some(h) = &a.hosts {
        match std::fs::read_to_string(h) {
            Ok(text) => {
                let (more, wrong) = wizard::parse_hosts(&text, h);
                nodes.extend(more);
                bad.extend(wrong.into_iter().map(|e| format!("--hosts: {e}")));
            }
            Err(e) => bad.push(format!("--hosts: {}: {e}", h.display())),
        }
    }
    let answers = wizard::Answers {
        name: a.name,
        version: a.kubernetes_version,
        cluster_cidr: a.cluster_cidr,
        service_cidr: a.service_cidr,
        provider: a.provider,
        backend: a.backend,
        nodes,
        ssh_user: a.ssh_user,
        identity_file: a.identity_file,
        out: a.out,
        bad,
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    wizard::run(answers, interactive, a.force)
}

fn main() {
    // SAFETY: nothing has started a thread yet (the runtime is built later, per command).
    unsafe { netctl::transport::secrets::take_from_env() };
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // Every command's --version is netctl's, printed as `netctl --version` prints it (clap
        // would name the subcommand: `netctl-plan 0.1.0`).
        if e.kind() == clap::error::ErrorKind::DisplayVersion {
            netctl::printer::out(&format!("netctl {}\n", env!("CARGO_PKG_VERSION")));
            std::process::exit(0);
        }
        e.exit()
    });
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
