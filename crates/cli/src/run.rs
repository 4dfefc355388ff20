//! `mpicr run`: start a job, pass signals on to it, exit with its status.

use std::process::ExitCode;

use coord::{Launch, LaunchConfig, Outcome, error_chain};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::RunArgs;
use crate::{EXIT_MPICR_ERROR, EXIT_USAGE, say};

pub(crate) fn main(args: RunArgs) -> ExitCode {
    let mut command = args.command.into_iter();
    let Some(program) = command.next() else {
        say("no program to run was given; usage: mpicr run -n N [--] PROGRAM [ARGS]...");
        return ExitCode::from(EXIT_USAGE);
    };
    let config = LaunchConfig {
        size: args.np,
        program,
        args: command.collect(),
        tag_output: args.tag_output,
        transport: args.transport.into(),
        job_name: args.job_name,
    };
    launch(config)
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
