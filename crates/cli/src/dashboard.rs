//! `mpicr dashboard`: serves the web dashboard of the user's running jobs (crates/dashboard)
//! until it is interrupted. The URL with the token is printed on stdout. Also the dashboard of
//! one job that `mpicr run --dashboard ADDR` serves while the job runs ([`for_run`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use coord::{JobName, JobRef, RuntimeDir, error_chain};

use crate::{EXIT_MPICR_ERROR, say};

/// The long help of `mpicr dashboard`.
pub(crate) const DASHBOARD_ABOUT: &str = "Serve a web dashboard of the running jobs.\n\n\
    The page shows every running job of this user (or only --job): the process table with \
    the CPU and memory of the ranks on this machine, updated every second, the checkpoint in \
    progress, recoveries, the snapshot timeline with a plot of sizes, and buttons to take a \
    checkpoint now or checkpoint and terminate, and to restart the snapshots of jobs that \
    have ended (as `mpicr restart` does). It uses no resources from the network. JSON is \
    under /api (jobs, job/JOB, job/JOB/checkpoint, restart, snapshots, events) and \
    Prometheus metrics under /metrics.\n\n\
    Every request needs the token made at start: the URL printed on stdout carries it as \
    ?token=…; scripts may send `Authorization: Bearer TOKEN` instead. The dashboard listens \
    on 127.0.0.1 with a port the kernel chooses unless --listen says otherwise; on another \
    address the token and the data travel unencrypted. It runs until interrupted (Ctrl-C).";

#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// The address to serve on, IP:PORT (port 0: the kernel chooses)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,

    /// Show only this job (its name, or the pid of its `mpicr run`) [default: every running
    /// job of this user]
    #[arg(long, value_name = "JOB", value_parser = parse_job)]
    pub(crate) job: Option<JobRef>,

    /// The snapshot directory read for the timeline, besides each job's own [default: as for
    /// `run`]
    #[arg(long, value_name = "DIR")]
    pub(crate) snapshot_dir: Option<PathBuf>,
}

fn parse_job(text: &str) -> Result<JobRef, coord::JobNameError> {
    text.parse()
}

pub(crate) fn main(args: &DashboardArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            say(&line);
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}

fn serve(args: &DashboardArgs) -> Result<(), String> {
    let runtime_dir = RuntimeDir::open().map_err(|e| error_chain(&e))?;
    let snapshot_dir = crate::snapshots::snapshot_dir(args.snapshot_dir.as_deref())?;
    let token = dashboard::Token::generate().map_err(|e| error_chain(&e))?;
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find the mpicr program for restarts: {e}"))?;
    let server = dashboard::Server::bind(dashboard::Config {
        listen: args.listen,
        runtime_dir,
        job: args.job.clone(),
        snapshot_dir,
        token,
        restart_program: Some(program),
    })
    .map_err(|e| error_chain(&e))?;
    warn_if_exposed(&server);
    let scope = match &args.job {
        Some(job) => format!("job {job}"),
        None => "every running job".to_owned(),
    };
    say(&format!("dashboard of {scope}; stop it with Ctrl-C"));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", server.url());
        let _ = out.flush();
    }
    server.run().map_err(|e| error_chain(&e))
}

fn warn_if_exposed(server: &dashboard::Server) {
    if !server.local_addr().ip().is_loopback() {
        say(&format!(
            "warning: serving on {}, not on loopback: the token and the jobs' data travel \
             unencrypted, and whoever has the token can checkpoint and end your jobs",
            server.local_addr()
        ));
    }
}

/// `mpicr run --dashboard ADDR`: binds the dashboard of job `job` (so that a bad or busy
/// address is refused before the job starts), prints its URL on stderr and serves it on a
/// thread until the returned handle is dropped, when the job is over. Restarts are not
/// offered: this dashboard ends with its job.
pub(crate) fn for_run(
    listen: Option<SocketAddr>,
    config: &coord::LaunchConfig,
) -> Result<Option<dashboard::Running>, String> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    // The name the job will have (`mpicr run` is its launcher).
    let job = config
        .job_name
        .clone()
        .unwrap_or_else(|| JobName::default_for(std::process::id()));
    let runtime_dir = RuntimeDir::open().map_err(|e| error_chain(&e))?;
    let token = dashboard::Token::generate().map_err(|e| error_chain(&e))?;
    let server = dashboard::Server::bind(dashboard::Config {
        listen,
        runtime_dir,
        job: Some(JobRef::Name(job.clone())),
        snapshot_dir: config.checkpoint.snapshot_dir.clone(),
        token,
        restart_program: None,
    })
    .map_err(|e| format!("--dashboard: {}; the job was not started", error_chain(&e)))?;
    warn_if_exposed(&server);
    say(&format!("dashboard of job {job}: {}", server.url()));
    server.spawn().map(Some).map_err(|e| error_chain(&e))
}
