//! The `mpicr` command line and its compatibility names `mpirun` and `mpiexec`.
//!
//! Each binary is a thin `main` over [`mpicr_main`] or [`mpirun_main`]; the work is done by
//! the coordinator (`coord`) and node (`node`) crates.
#![forbid(unsafe_code)]

mod args;
mod checkpoint;
mod compat;
mod dashboard;
mod demo;
mod gc;
mod logging;
mod migrate;
mod node_daemon;
mod progress;
mod restart;
mod run;
mod snapshots;
mod status;
mod time;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::args::{CheckpointOnly, Cli, Command, RestartOnly, RunOnly};

/// Exit status of `mpicr` itself failing: bad input, a job that is not there, a broken setup.
const EXIT_MPICR_ERROR: u8 = 1;
/// Exit status of a command line that clap could not parse.
const EXIT_USAGE: u8 = 2;

/// Writes `mpicr: <line>` to stderr, ignoring a closed stderr.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "mpicr: {line}");
}

/// "1 rank", "4 ranks".
fn ranks(n: usize) -> String {
    format!("{n} rank{}", if n == 1 { "" } else { "s" })
}

/// `mpicr SUBCOMMAND …`
pub fn mpicr_main() -> ExitCode {
    logging::init();
    let argv = compat::rewrite_np(std::env::args_os().collect(), compat::run_args_start);
    let name = if compat::run_args_start(&argv).is_some() {
        "mpicr run"
    } else {
        "mpicr"
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, name),
    };
    match cli.command {
        Command::Run(run) => run::main(run),
        Command::Status(status) => status::main(&status),
        Command::Checkpoint(checkpoint) => checkpoint::main(&checkpoint),
        Command::Restart(restart) => restart::main(restart),
        Command::Snapshots(snapshots) => snapshots::main(&snapshots),
        Command::Gc(gc) => gc::main(&gc),
        Command::Migrate(m) => migrate::main(&m),
        Command::Drain(d) => migrate::drain(&d),
        Command::Demo => demo::main(),
        Command::Dashboard(dashboard) => dashboard::main(&dashboard),
        Command::Node(node) => node_daemon::main(&node),
        Command::NodeCleanup { dirs } => {
            node::daemon::cleanup_after_daemon(&dirs);
            ExitCode::SUCCESS
        }
        Command::NodePrune {
            job,
            storage,
            epochs,
        } => gc::node_prune(&job, &storage, &epochs),
    }
}

/// `mpirun …` / `mpiexec …`: the arguments of `mpicr run`.
pub fn mpirun_main(name: &'static str) -> ExitCode {
    logging::init();
    let argv = compat::rewrite_np(std::env::args_os().collect(), |_| Some(1));
    let parsed = RunOnly::command()
        .name(name)
        .bin_name(name)
        .override_usage(args::run_usage(name))
        .try_get_matches_from(argv)
        .and_then(|matches| RunOnly::from_arg_matches(&matches));
    match parsed {
        Ok(run_only) => run::main(run_only.run),
        Err(e) => usage_error(&e, name),
    }
}

/// `mpi_checkpoint [--terminate] PID`: `mpicr checkpoint` under the Open MPI name.
pub fn mpi_checkpoint_main() -> ExitCode {
    logging::init();
    let name = "mpi_checkpoint";
    let parsed = CheckpointOnly::command()
        .name(name)
        .bin_name(name)
        .try_get_matches_from(std::env::args_os())
        .and_then(|matches| CheckpointOnly::from_arg_matches(&matches));
    match parsed {
        Ok(only) => checkpoint::main(&only.checkpoint),
        Err(e) => usage_error(&e, name),
    }
}

/// `mpi_restart SNAPSHOT`: `mpicr restart` under the Open MPI name.
pub fn mpi_restart_main() -> ExitCode {
    logging::init();
    let name = "mpi_restart";
    let parsed = RestartOnly::command()
        .name(name)
        .bin_name(name)
        .try_get_matches_from(std::env::args_os())
        .and_then(|matches| RestartOnly::from_arg_matches(&matches));
    match parsed {
        Ok(only) => restart::main(only.restart),
        Err(e) => usage_error(&e, name),
    }
}

/// Help and version go to stdout as clap writes them; a real usage error becomes one line.
fn usage_error(error: &clap::Error, name: &str) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            say(&format!(
                "{}{}",
                one_line(&error.render().to_string()),
                hints(error, name)
            ));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// What clap knows besides its first line (the values an option takes, the subcommand,
/// argument or value that was probably meant), then where to read more.
fn hints(error: &clap::Error, name: &str) -> String {
    use clap::error::{ContextKind, ContextValue};
    let list = |kind, separator| match error.get(kind) {
        Some(ContextValue::Strings(values)) if !values.is_empty() => Some(values.join(separator)),
        Some(ContextValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let mut text = String::new();
    if let Some(valid) = list(ContextKind::ValidValue, ", ") {
        text.push_str(&format!(" (one of: {valid})"));
    }
    let meant = [
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedArg,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .find_map(|kind| list(kind, " or "));
    match meant {
        Some(meant) => text.push_str(&format!("; did you mean {meant}? Try '{name} --help'")),
        None => text.push_str(&format!("; try '{name} --help'")),
    }
    text
}

/// The gist of clap's multi-line message: its first line, joined with the next one when the
/// first ends in a colon ("the following required arguments were not provided: --np <N>").
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match (first.strip_suffix(':'), lines.next()) {
        (Some(head), Some(next)) => format!("{head}: {next}"),
        _ => first.to_owned(),
    }
}
