//! The command-line grammar.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand, ValueEnum};
use coord::{JobName, JobRef, Transport};

/// The exit statuses, shown after `--help` and in `docs/exit-codes.md`.
pub(crate) const EXIT_CODES: &str = "\
Exit status:
  0        every rank exited with status 0 (or the command succeeded)
  1        mpicr itself failed: bad input, program not found, job not found, ...
  2        the command line could not be parsed
  N        the first failing rank exited with status N
  128+S    the first failing rank was killed by signal S (137 = SIGKILL)
  C        a rank called abort with code C (1 if C is 0 modulo 256)
  130/143/129  mpicr run received SIGINT/SIGTERM/SIGHUP and ended the job
A rank's own status 1 or 2 cannot be told apart from mpicr's; the message on stderr can.";

#[derive(Debug, Parser)]
#[command(
    name = "mpicr",
    version,
    about = "Run message-passing (MPI) programs on this machine.",
    long_about = "Run message-passing (MPI) programs on this machine.\n\n\
        `mpicr run` starts a job, `mpicr status` shows the process table of a running job, \
        `mpicr demo` runs a built-in example. `mpirun` and `mpiexec` are `mpicr run` under \
        the names MPI users know. Set MPICR_LOG (e.g. MPICR_LOG=debug) for diagnostics on stderr.",
    after_help = EXIT_CODES
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start N ranks of a program on this machine and wait for them (like mpirun)
    #[command(after_help = EXIT_CODES, long_about = RUN_ABOUT, override_usage = "mpicr run [OPTIONS] -n N [--] PROGRAM [ARGS]...")]
    Run(RunArgs),
    /// Show the process table of a running job, or list the running jobs
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
    /// Run the built-in heat-diffusion job on 4 ranks (needs `mpicr-heat` next to mpicr)
    #[command(after_help = EXIT_CODES)]
    Demo,
}

/// `mpirun` and `mpiexec`: the arguments of `mpicr run` as the whole command line.
#[derive(Debug, Parser)]
#[command(version, long_about = RUN_ABOUT, after_help = EXIT_CODES)]
pub(crate) struct RunOnly {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The long help of `mpicr run`, `mpirun` and `mpiexec`.
pub(crate) const RUN_ABOUT: &str = "Start N ranks of a program on this machine and wait for them.\n\n\
    The program does not need to use MPI. Every rank gets MPICR_RANK, MPICR_SIZE, MPICR_JOB, \
    MPICR_CONTROL, MPICR_TRANSPORT, MPICR_SHM_DIR, MPICR_NODE, PMI_RANK and PMI_SIZE in its \
    environment. Output of every rank is passed on line by line; standard input goes to rank \
    0 only. When a rank fails or calls abort, the others get SIGTERM and, 2 seconds later, \
    SIGKILL; Ctrl-C, SIGTERM and SIGHUP end the whole job the same way. docs/launch.md has \
    the details.";

/// The usage line of `run` for a command name.
pub(crate) fn run_usage(name: &str) -> String {
    format!("{name} [OPTIONS] -n N [--] PROGRAM [ARGS]...")
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Number of ranks to start (also accepted as -np N)
    #[arg(short = 'n', long = "np", value_name = "N", value_parser = parse_size)]
    pub(crate) np: u32,

    /// Prefix every line of output with the rank that printed it, as `[2] text`
    #[arg(long)]
    pub(crate) tag_output: bool,

    /// Data-plane transport between the ranks (MPI programs only)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = TransportArg::Shm)]
    pub(crate) transport: TransportArg,

    /// Name of the job, for `mpicr status NAME` [default: job-<pid of mpicr run>]
    #[arg(long, value_name = "NAME", value_parser = JobName::parse)]
    pub(crate) job_name: Option<JobName>,

    /// The program to run on every rank, and its arguments (a name is looked up in PATH)
    #[arg(value_name = "PROGRAM", trailing_var_arg = true, num_args = 0..)]
    pub(crate) command: Vec<OsString>,
}

/// `--transport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    /// Shared memory between the ranks of this machine
    Shm,
    /// TCP over the loopback interface
    Tcp,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Shm => Self::Shm,
            TransportArg::Tcp => Self::Tcp,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The job: its name, or the pid of its `mpicr run`. Without it, list the running jobs
    #[arg(value_name = "JOB", value_parser = parse_job_ref)]
    pub(crate) job: Option<JobRef>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("a job needs at least 1 rank".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of ranks".into()),
    }
}

fn parse_job_ref(text: &str) -> Result<JobRef, coord::JobNameError> {
    text.parse()
}
