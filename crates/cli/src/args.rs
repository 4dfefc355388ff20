//! The command-line grammar.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use coord::{JobName, JobRef, Transport};

/// The exit statuses, shown after `--help` and in `docs/exit-codes.md`.
pub(crate) const EXIT_CODES: &str = "\
Exit status:
  0        every rank exited with status 0, the job ended after `checkpoint --terminate`,
           or the command succeeded
  1        mpicr itself failed: bad input, program not found, job not found, a node of the
           job failed, ...
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
    about = "Run message-passing (MPI) programs on this machine or on several nodes, with coordinated checkpoints.",
    long_about = "Run message-passing (MPI) programs on this machine or on several nodes (--hosts, \
    --hostfile), with coordinated checkpoints and recovery (--max-restarts).\n\n\
        `mpicr run` starts a job, `mpicr status` shows the process table of a running job, \
        `mpicr checkpoint` takes a global snapshot of a running job, `mpicr restart` runs a job \
        on from one, `mpicr snapshots` and `mpicr gc` list and prune them, `mpicr migrate` and \
        `mpicr drain` move ranks between nodes while the others compute on, `mpicr dashboard` \
        serves a web page of the jobs, `mpicr demo` runs a built-in example. `mpirun` and `mpiexec` are `mpicr run`, `mpi_checkpoint` and \
        `mpi_restart` are `mpicr checkpoint` and `mpicr restart`, under the names MPI users \
        know. Set MPICR_LOG (e.g. MPICR_LOG=debug) for diagnostics on stderr.",
    after_help = EXIT_CODES
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start N ranks of a program, on this machine or on several nodes, and wait for them (like mpirun)
    #[command(after_help = EXIT_CODES, long_about = RUN_ABOUT, override_usage = "mpicr run [OPTIONS] -n N [--] PROGRAM [ARGS]...")]
    Run(RunArgs),
    /// Show the process table of a running job, or list the running jobs
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
    /// Take a globally consistent checkpoint of a running job; prints the snapshot's name
    #[command(after_help = EXIT_CODES, long_about = CHECKPOINT_ABOUT)]
    Checkpoint(CheckpointArgs),
    /// Continue a job from a committed global snapshot, in the foreground like `run`
    #[command(after_help = EXIT_CODES, long_about = RESTART_ABOUT)]
    Restart(RestartArgs),
    /// List the committed global snapshots
    #[command(after_help = EXIT_CODES)]
    Snapshots(SnapshotsArgs),
    /// Move a rank of a running job (several nodes, --crs image) to another node while the others compute on
    #[command(after_help = EXIT_CODES)]
    Migrate(crate::migrate::MigrateArgs),
    /// Move every rank of a running job off a node, one migration each
    #[command(after_help = EXIT_CODES)]
    Drain(crate::migrate::DrainArgs),
    /// Remove all but the newest N snapshots of every job (or of one job)
    #[command(after_help = EXIT_CODES)]
    Gc(GcArgs),
    /// Show checkpoint, failure and recovery on a built-in heat-diffusion job on 4 ranks
    /// (needs `mpicr-heat` next to mpicr)
    #[command(after_help = EXIT_CODES, long_about = DEMO_ABOUT)]
    Demo,
    /// Serve a web dashboard of the running jobs: process tables, checkpoints, snapshots
    #[command(after_help = EXIT_CODES, long_about = crate::dashboard::DASHBOARD_ABOUT)]
    Dashboard(crate::dashboard::DashboardArgs),
    /// The node daemon of a job on several nodes; `mpicr run --hosts/--hostfile` starts it on
    /// every node through the launcher (not for direct use)
    #[command(hide = true)]
    Node(NodeArgs),
    /// Removes a node daemon's directories once the daemon is gone (started by the daemon)
    #[command(hide = true)]
    NodeCleanup {
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Removes epochs of a job from this node's store (started by `mpicr gc` through the
    /// launcher)
    #[command(hide = true)]
    NodePrune {
        /// The job's name
        #[arg(long, value_name = "NAME")]
        job: String,
        /// This node's store (`--storage` of the job, {node} replaced)
        #[arg(long, value_name = "DIR")]
        storage: PathBuf,
        #[arg(value_name = "EPOCH", required = true)]
        epochs: Vec<u64>,
    },
}

/// `mpicr node`: what the coordinator gives a node daemon. The job's secret comes on stdin
/// (one line) or from a private file, never on the command line.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The coordinator's control port, IP:PORT
    #[arg(long, value_name = "ADDR")]
    pub(crate) coordinator: String,
    /// The job's name
    #[arg(long, value_name = "NAME")]
    pub(crate) job: String,
    /// This node's name in the job's host list
    #[arg(long, value_name = "NAME")]
    pub(crate) node: String,
    /// How often to send a heartbeat
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub(crate) heartbeat: Duration,
    /// Read the secret from FILE (mode 0600, ours) instead of stdin
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
}

/// Where the ranks run: this machine, or nodes with a daemon each.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeOptions {
    /// Run the ranks on these nodes (comma-separated names), one node daemon on each, ranks
    /// placed in blocks
    #[arg(long, value_name = "NODES", conflicts_with = "hostfile")]
    pub(crate) hosts: Option<String>,

    /// Run the ranks on the nodes of FILE: lines `NAME [slots=N] [addr=IP]`, `#` comments
    #[arg(long, value_name = "FILE")]
    pub(crate) hostfile: Option<PathBuf>,

    /// How the node daemons are started: `ssh` (batch mode; this machine's own name and
    /// `localhost` directly), `slurm` (srun), or a command prefix in which {node} is replaced
    /// by the node's name, e.g. 'ip netns exec {node}'
    #[arg(long, value_name = "CMD", default_value = "ssh")]
    pub(crate) launcher: String,

    /// The address the node daemons connect to [default: the address that routes to the
    /// nodes]
    #[arg(long, value_name = "IP")]
    pub(crate) coordinator_addr: Option<std::net::IpAddr>,

    /// How often node daemons send a heartbeat; a node silent for three of them has failed
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub(crate) heartbeat: Duration,

    /// Each node's checkpoint store ({node} is replaced by the node's name): the ranks write
    /// their parts there (and with --crs image their process images), their daemon checks them
    /// [default: the snapshot directory]
    #[arg(long, value_name = "DIR")]
    pub(crate) storage: Option<String>,

    /// Copy every part to K other nodes' stores before a snapshot is committed (needs
    /// --storage), so that a node lost with its disk can be recovered
    #[arg(long, value_name = "K", default_value_t = 0, requires = "storage")]
    pub(crate) mirror: u32,

    /// Instead of copies: XOR parity of each group of G nodes' parts, kept on a node of the
    /// next group (needs --storage and more than G nodes); survives one lost node per group
    #[arg(
        long,
        value_name = "G",
        default_value_t = 0,
        requires = "storage",
        conflicts_with = "mirror"
    )]
    pub(crate) parity: u32,

    /// Keep the last N hosts free as spares: a recovery moves the ranks of a node that cannot
    /// be reached to a spare
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) spares: u32,
}

impl NodeOptions {
    /// A job on this machine only (the defaults of the command line).
    pub(crate) fn this_machine() -> Self {
        Self {
            hosts: None,
            hostfile: None,
            launcher: "ssh".to_owned(),
            coordinator_addr: None,
            heartbeat: Duration::from_secs(1),
            storage: None,
            mirror: 0,
            parity: 0,
            spares: 0,
        }
    }
}

/// `mpirun` and `mpiexec`: the arguments of `mpicr run` as the whole command line.
#[derive(Debug, Parser)]
#[command(version, long_about = RUN_ABOUT, after_help = EXIT_CODES)]
pub(crate) struct RunOnly {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The long help of `mpicr run`, `mpirun` and `mpiexec`.
pub(crate) const RUN_ABOUT: &str = "Start N ranks of a program on this machine (or, with --hosts or --hostfile, on several \
    nodes, one node daemon each) and wait for them.\n\n\
    The program does not need to use MPI. Every rank gets MPICR_RANK, MPICR_SIZE, MPICR_JOB, \
    MPICR_CONTROL, MPICR_TRANSPORT, MPICR_SHM_DIR, MPICR_NODE, PMI_RANK and PMI_SIZE in its \
    environment. Output of every rank is passed on line by line; standard input goes to rank \
    0 only. When a rank fails or calls abort, the others get SIGTERM and, 2 seconds later, \
    SIGKILL; Ctrl-C, SIGTERM and SIGHUP end the whole job the same way. docs/launch.md has \
    the details.\n\n\
    Checkpoints: `mpicr checkpoint JOB` (or --checkpoint-every) takes a global snapshot into \
    the snapshot directory; the ranks get MPICR_CRS and MPICR_SNAPSHOT_DIR. The default \
    checkpointer, `image`, saves every rank's whole process: any single-threaded MPI program \
    built with our mpicc/mpif90 or on the mpicr crate. A one-rank program without MPI can be \
    checkpointed too when `--crs image` is given explicitly (the runtime is preloaded into \
    it; a wrapper must execute the program, as `env X=1 ./prog` or `sh -c 'exec ./prog'` \
    do, not fork it). A checkpoint waits while a rank has a child process (a `fork` not yet \
    waited for, a `popen` not yet closed): an image holds one process. A \
    multi-threaded program, or one that saves its own state through the checkpoint \
    callbacks, needs `--crs self`.\n\n\
    Several nodes: with --hosts or --hostfile, a node daemon (`mpicr node`) is started on \
    every node through --launcher and starts that node's block of ranks; ranks use shared \
    memory within a node and TCP between nodes. A node whose daemon dies or misses three \
    heartbeats has failed: with --max-restarts the job rolls back to its newest snapshot on \
    the same nodes, otherwise it ends. Snapshots go to the snapshot directory, which must be \
    the same path on every node (one machine, or a shared file system).";

/// The long help of `mpicr checkpoint` and `mpi_checkpoint`.
pub(crate) const CHECKPOINT_ABOUT: &str = "Take a globally consistent checkpoint of a running job.\n\n\
    Every rank saves its part at the same safepoint; the global snapshot is committed in the \
    job's snapshot directory once every part is on disk. Progress goes to stderr; the \
    snapshot's name (`JOB.EPOCH`, for `mpicr restart`) is the last line of stdout. The status \
    is 0 once the snapshot is committed, 1 with a one-line reason otherwise (no such job, a \
    job that does not use MPI, a job that is shutting down, a rank that failed or did not \
    answer in time, after which the job keeps running; or the job ended before the commit, \
    and the line says what ended it). Requests to one job are served one after the other.";

/// The long help of `mpicr restart` and `mpi_restart`.
pub(crate) const RESTART_ABOUT: &str = "Continue a job from a committed global snapshot.\n\n\
    SNAPSHOT is a snapshot's name (`JOB.EPOCH`, or `JOB` for its newest snapshot) in the \
    snapshot directory, or a snapshot's path. Every part is verified first: a damaged \
    snapshot is refused and nothing is started. The job then runs in the foreground exactly \
    like `mpicr run`, with the snapshot's command, number of ranks, transport, checkpointer \
    (whatever the default of `run`), working directory and environment, and the same job name (so its checkpoints continue the \
    epochs); every rank also gets MPICR_RESTART_DIR (the snapshot's path) and \
    MPICR_RESTART_EPOCH.";

/// The long help of `mpicr demo`.
pub(crate) const DEMO_ABOUT: &str = "Show checkpoint, failure and recovery on a built-in job.\n\n\
    The job is `mpicr-heat`, a 2-D heat diffusion on 4 ranks that checks its result against a \
    serial computation; it must be next to the mpicr binary. The demo runs it three times, \
    narrating on stdout (mpicr's own messages go to stderr as usual): (1) straight through, \
    noting its result; (2) slowed down, under a job name, with a checkpoint taken through the \
    job's coordinator as `mpicr checkpoint` does (with the default checkpointer, `image`: every \
    rank's whole process), after which one rank is killed with SIGKILL and the job fails naming \
    that rank; (3) restarted from the snapshot as `mpicr restart` does (mpicr-restore, next to \
    mpicr, brings every rank's process back), to the end. It then compares the restarted run's result with the first one. The \
    snapshots go to a private directory in the runtime directory, removed at the end. It takes 10 \
    to 20 seconds. The status is 0 only when every step behaved as described and the results \
    are the same; 1 otherwise, with the reason on stderr; 130/143/129 after \
    SIGINT/SIGTERM/SIGHUP.";

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

    /// Bind each rank to the CPUs of one physical core (`core`) or to one logical CPU
    /// (`hwthread`), in rank order on each node among the CPUs `mpicr` may use there, wrapping
    /// around when there are more ranks; `none` lets the kernel place them. Also `-bind-to`.
    /// The ranks get it as MPICR_BIND_TO
    #[arg(long, value_enum, value_name = "KIND", default_value_t = BindArg::None)]
    pub(crate) bind_to: BindArg,

    /// Name of the job, for `mpicr status NAME` [default: job-<pid of mpicr run>]
    #[arg(long, value_name = "NAME", value_parser = JobName::parse)]
    pub(crate) job_name: Option<JobName>,

    /// The checkpointer of the ranks: `image` (transparent process images of single-threaded
    /// MPI ranks, restored by mpicr-restore; given explicitly, a one-rank program without MPI
    /// also gets the runtime through LD_PRELOAD) or `self` (the program saves and restores
    /// its own state through the checkpoint callbacks; also for multi-threaded programs and
    /// --storage) [default: image]
    #[arg(long, value_enum, value_name = "CRS")]
    pub(crate) crs: Option<CrsArg>,

    /// How page runs of the images are compressed (zstd, lz4 or none; refused with --crs
    /// self); the ranks get it as MPICR_IMAGE_COMPRESS [default: none]
    #[arg(long, value_name = "CODEC", value_parser = ["zstd", "lz4", "none"])]
    pub(crate) compress: Option<String>,

    /// Every checkpoint but every K-th stores only the pages written since the one before
    /// (incremental images chained to a full one); 1 makes every image full (refused with
    /// --crs self); the ranks get it as MPICR_IMAGE_FULL_EVERY [default: 8]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) full_every: Option<u32>,

    #[command(flatten)]
    pub(crate) checkpoints: CheckpointOptions,

    #[command(flatten)]
    pub(crate) nodes: NodeOptions,

    /// Serve the web dashboard of this job on ADDR (IP:PORT; port 0: a free port) while it
    /// runs; the URL with its token is printed on stderr
    #[arg(long, value_name = "ADDR")]
    pub(crate) dashboard: Option<std::net::SocketAddr>,

    /// The program to run on every rank, and its arguments (a name is looked up in PATH)
    #[arg(value_name = "PROGRAM", trailing_var_arg = true, num_args = 0..)]
    pub(crate) command: Vec<OsString>,
}

/// Options about checkpoints that `run` and `restart` share.
#[derive(Debug, Args)]
pub(crate) struct CheckpointOptions {
    /// Take a checkpoint every DURATION (e.g. 500ms, 1.5s, 30s, 5m, 1h); a tick while one is being
    /// taken is skipped
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) checkpoint_every: Option<Duration>,

    /// Where global snapshots are kept [default: $MPICR_SNAPSHOT_DIR, else
    /// $XDG_STATE_HOME/mpicr/snapshots or ~/.local/state/mpicr/snapshots]
    #[arg(long, value_name = "DIR")]
    pub(crate) snapshot_dir: Option<PathBuf>,

    /// After every committed checkpoint, remove all but the newest N snapshots of this job
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub(crate) keep: Option<usize>,

    /// How long the ranks may take to answer each step of a checkpoint before it is given up
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub(crate) checkpoint_timeout: Duration,

    /// When a rank dies or fails, roll every rank back to the job's newest snapshot taken in
    /// this run (or the one a restart began from) and go on, up to N times
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_restarts: u32,
}

/// `--bind-to` values (`node::binding::BindTo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BindArg {
    None,
    Core,
    Hwthread,
}

impl From<BindArg> for node::binding::BindTo {
    fn from(arg: BindArg) -> Self {
        match arg {
            BindArg::None => Self::None,
            BindArg::Core => Self::Core,
            BindArg::Hwthread => Self::Hwthread,
        }
    }
}

/// `--crs` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CrsArg {
    /// The application saves and restores its own state at its safepoints
    #[value(name = "self")]
    SelfCrs,
    /// Transparent process images of whole single-threaded ranks (the default; a program
    /// without MPI in a one-rank job when given explicitly)
    Image,
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

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// End the job once the snapshot is committed (`mpicr run` then exits with status 0)
    #[arg(long)]
    pub(crate) terminate: bool,

    /// The job: its name, or the pid of its `mpicr run`
    #[arg(value_name = "JOB", value_parser = parse_job_ref)]
    pub(crate) job: JobRef,
}

/// `mpi_checkpoint`: the arguments of `mpicr checkpoint` as the whole command line.
#[derive(Debug, Parser)]
#[command(version, long_about = CHECKPOINT_ABOUT, after_help = EXIT_CODES)]
pub(crate) struct CheckpointOnly {
    #[command(flatten)]
    pub(crate) checkpoint: CheckpointArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
    /// Prefix every line of output with the rank that printed it, as `[2] text`
    #[arg(long)]
    pub(crate) tag_output: bool,

    #[command(flatten)]
    pub(crate) checkpoints: CheckpointOptions,

    #[command(flatten)]
    pub(crate) nodes: NodeOptions,

    /// The snapshot: `JOB.EPOCH`, `JOB` (its newest), or a snapshot directory's path
    #[arg(value_name = "SNAPSHOT")]
    pub(crate) snapshot: String,
}

/// `mpi_restart`: the arguments of `mpicr restart` as the whole command line.
#[derive(Debug, Parser)]
#[command(version, long_about = RESTART_ABOUT, after_help = EXIT_CODES)]
pub(crate) struct RestartOnly {
    #[command(flatten)]
    pub(crate) restart: RestartArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SnapshotsArgs {
    /// The snapshot directory [default: as for `run`]
    #[arg(long, value_name = "DIR")]
    pub(crate) snapshot_dir: Option<PathBuf>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// The snapshot directory [default: as for `run`]
    #[arg(long, value_name = "DIR")]
    pub(crate) snapshot_dir: Option<PathBuf>,

    /// How many of the newest snapshots of each job to keep
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub(crate) keep: usize,

    /// How to reach the nodes that keep copies of removed snapshots (`--storage`): `ssh`,
    /// `slurm` or a command prefix with {node} [default: what each snapshot recorded]
    #[arg(long, value_name = "CMD")]
    pub(crate) launcher: Option<String>,

    /// Only this job's snapshots [default: every job's]
    #[arg(value_name = "JOB")]
    pub(crate) job: Option<String>,
}

fn parse_keep(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("keeping 0 snapshots would remove the last one; use at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of snapshots".into()),
    }
}

/// `500ms`, `1.5s`, `30s`, `5m`, `1h` (a bare number is seconds; decimals are allowed, to
/// the nanosecond).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("`{text}` is not a duration like 500ms, 1.5s, 30s, 5m or 1h");
    let n: f64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let duration = Duration::try_from_secs_f64(n * unit_secs)
        .map_err(|_| format!("`{text}` is longer than any duration this tool can wait"))?;
    if duration.is_zero() {
        return Err("a duration must be longer than 0".into());
    }
    Ok(duration)
}

fn parse_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("a job needs at least 1 rank".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of ranks".into()),
    }
}

pub(crate) fn parse_job_ref(text: &str) -> Result<JobRef, coord::JobNameError> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration(".5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5ms"), Ok(Duration::from_micros(2500)));
        assert!(parse_duration("0s").is_err());
        assert!(
            parse_duration("0.0000000001s").is_err(),
            "below a nanosecond"
        );
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration(".s").is_err());
        assert!(parse_duration("1e3s").is_err());
        let far = parse_duration("99999999999999999999999h").unwrap_err();
        assert!(far.contains("longer than any duration"), "{far}");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }
}
