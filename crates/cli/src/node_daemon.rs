//! `mpicr node`: the node daemon, started on every node of a job by `mpicr run --hosts` or
//! `--hostfile` through the launcher. Its work is in `node::daemon`.

use std::process::ExitCode;

use node::daemon::{self, DaemonConfig};

use crate::args::NodeArgs;
use crate::{EXIT_MPICR_ERROR, say};

pub(crate) fn main(args: &NodeArgs) -> ExitCode {
    let secret = match &args.secret_file {
        Some(file) => daemon::read_secret_file(file),
        None => daemon::read_secret_line(std::io::stdin().lock()),
    };
    let secret = match secret {
        Ok(secret) => secret,
        Err(e) => {
            say(&format!(
                "node {}: cannot read the job's secret: {e}",
                args.node
            ));
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let config = DaemonConfig {
        coordinator: args.coordinator.clone(),
        job: args.job.clone(),
        node: args.node.clone(),
        heartbeat: args.heartbeat,
        secret,
        cleanup: std::env::current_exe()
            .ok()
            .map(|exe| vec![exe.into_os_string(), "node-cleanup".into()]),
    };
    match daemon::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("node {}: {}", args.node, coord::error_chain(&e)));
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}
