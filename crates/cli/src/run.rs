//! `mpicr run`: start a job, pass signals on to it, exit with its status.

use std::path::Path;
use std::process::ExitCode;

use coord::{CheckpointConfig, Launch, LaunchConfig, Outcome, error_chain};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::{CheckpointOptions, CrsArg, RunArgs};
use crate::snapshots::open_store;
use crate::{EXIT_MPICR_ERROR, EXIT_USAGE, say};

pub(crate) fn main(args: RunArgs) -> ExitCode {
    let mut command = args.command.into_iter();
    let Some(program) = command.next() else {
        say("no program to run was given; usage: mpicr run -n N [--] PROGRAM [ARGS]...");
        return ExitCode::from(EXIT_USAGE);
    };
    let crs = match args.crs {
        CrsArg::SelfCrs => "self",
        CrsArg::Image => {
            say("the image checkpointer is not available yet; use --crs self");
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let checkpoint = match open_store(args.checkpoints.snapshot_dir.as_deref())
        .and_then(|store| checkpoint_config(&args.checkpoints, crs.to_owned(), store.root()))
    {
        Ok(config) => config,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let config = LaunchConfig {
        size: args.np,
        program,
        args: command.collect(),
        tag_output: args.tag_output,
        transport: args.transport.into(),
        job_name: args.job_name,
        checkpoint,
        env: None,
        cwd: None,
        restart: None,
        stdout_copy: None,
    };
    launch(config)
}

/// The checkpoint settings of a job from the options of `run` or `restart`; `root` is the
/// snapshot directory, already opened (so that a bad one is refused before the job starts).
pub(crate) fn checkpoint_config(
    options: &CheckpointOptions,
    crs: String,
    root: &Path,
) -> Result<CheckpointConfig, String> {
    Ok(CheckpointConfig {
        snapshot_dir: root.to_owned(),
        crs,
        every: options.checkpoint_every,
        keep: options.keep,
        timeout: options.checkpoint_timeout,
    })
}

/// Runs a job to its end on this thread, with SIGINT, SIGTERM and SIGHUP ending the job.
pub(crate) fn launch(config: LaunchConfig) -> ExitCode {
    let launch = Launch::new(config);
    let stopper = launch.stopper();
    match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            let spawned = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        stopper.stop(signal);
                    }
                });
            if let Err(e) = spawned {
                say(&format!("cannot watch for signals: {e}"));
                return ExitCode::from(EXIT_MPICR_ERROR);
            }
        }
        Err(e) => {
            say(&format!("cannot install signal handlers: {e}"));
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    }
    let job = match launch.start() {
        Ok(job) => job,
        Err(e) => {
            say(&error_chain(&e));
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    tracing::info!(job = %job.name(), socket = %job.control_socket().display(), "job started");
    let outcome: Outcome = job.wait();
    ExitCode::from(outcome.exit_code())
}
