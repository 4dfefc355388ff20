//! `mpicr run` on one machine: claim the job name, start the control server and the ranks,
//! then follow the job to its end.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use node::program::{self, ProgramError};
use node::{JobSpec, OutputCopy, OutputTo, RankExit, Ranks, SpawnError};
use rustix::process::Signal;
use thiserror::Error;

use crate::checkpoint::{
    CheckpointConfig, CheckpointService, CkptEvent, ClosesBoard, Recovery, StatusBoard,
};
use crate::control_socket::{self, JobFiles, SocketError};
use crate::job_name::JobName;
use crate::nodes::{NodeSet, NodeStartError, NodesConfig, RestartParts};
use crate::outcome::Outcome;
use crate::report::say;
use crate::runtime_dir::{RuntimeDir, RuntimeDirError, current_uid};
use crate::server::{ANSWER_WAIT, ControlServer, JobInfo, RecoveryWatch, Shared};
use crate::shm_dir::{ShmDir, ShmDirError, remove_leftovers};
use crate::table::ProcessTable;

/// How long ranks get between SIGTERM and SIGKILL when the job is ended.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(2);

/// The data-plane transport the ranks are asked to use (`MPICR_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Shm,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shm => "shm",
            Self::Tcp => "tcp",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    pub size: u32,
    /// The program as the user named it: a path, or a name looked up in `PATH`.
    pub program: OsString,
    pub args: Vec<OsString>,
    pub tag_output: bool,
    pub transport: Transport,
    /// `None` gives `job-<pid of this process>`.
    pub job_name: Option<JobName>,
    /// Checkpoints: where they go, which checkpointer, how often, how many are kept.
    pub checkpoint: CheckpointConfig,
    /// `Some`: the ranks get exactly this environment (plus the `MPICR_*` variables of the
    /// job) instead of the launcher's; a restarted job gets the one its snapshot recorded.
    pub env: Option<Vec<(OsString, OsString)>>,
    /// The ranks' working directory; `None` keeps the launcher's.
    pub cwd: Option<PathBuf>,
    /// Continue from this committed snapshot (`mpicr restart`).
    pub restart: Option<RestartFrom>,
    /// Also send every line the ranks write to stdout here, tagged with the rank (the output
    /// is passed on as usual). Only for jobs on this machine.
    pub stdout_copy: Option<OutputCopy>,
    /// `Some`: the ranks run on these nodes under node daemons (`--hosts`, `--hostfile`);
    /// `None`: on this machine, started by `mpicr run` itself.
    pub nodes: Option<NodesConfig>,
    /// The automatic recoveries of this `mpicr run` so far, shown by `mpicr status`; shared
    /// with the recovery loop, which adds one before each new start.
    pub recoveries: Arc<Mutex<Vec<Recovery>>>,
    /// This start recovers from a failure detected at this moment: once every rank has
    /// registered, the time to recover is reported and recorded in the last recovery.
    pub recovering_since: Option<Instant>,
    /// Start a one-rank job of the `image` checkpointer with the preloaded runtime, so that
    /// a program without MPI can be checkpointed (`--crs image` given explicitly). Not for
    /// the default: the runtime registers the first program the rank starts and hands the
    /// registration over only to a program it executes, so a shell that forks the MPI program
    /// (`sh -c './setup; ./prog'`) would keep its place.
    pub preload: bool,
}

/// The snapshot a restarted job continues from, given to every rank as `MPICR_RESTART_DIR`
/// and `MPICR_RESTART_EPOCH`.
#[derive(Debug, Clone)]
pub struct RestartFrom {
    pub dir: PathBuf,
    pub epoch: u64,
}

/// Variables of the launcher's environment that describe one run: they are neither recorded
/// in a snapshot nor passed on to the ranks (a restarted job gets them anew).
const NOT_RECORDED: &[&str] = &["MPICR_RESTART_DIR", "MPICR_RESTART_EPOCH"];

/// Why a job could not be started. Nothing of it is left running or on disk.
#[derive(Debug, Error)]
pub enum LaunchError {
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error(transparent)]
    RuntimeDir(#[from] RuntimeDirError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(
        "job `{0}` is still running, and a restart keeps its snapshot's job name; end that job \
         first (Ctrl-C, or `mpicr checkpoint {0} --terminate`)"
    )]
    RestartNameInUse(String),
    #[error(transparent)]
    ShmDir(#[from] ShmDirError),
    #[error("cannot start the control server")]
    Server(#[source] std::io::Error),
    #[error("cannot start the checkpoint service")]
    Checkpoints(#[source] std::io::Error),
    #[error("cannot find the current directory")]
    Cwd(#[source] std::io::Error),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Hosts(#[from] crate::hosts::HostsError),
    #[error("{0}")]
    Nodes(String),
    /// A node did not come up (its launcher failed, its daemon never connected): a recovery
    /// may go on without it.
    #[error("node {node} cannot be reached: {why}")]
    NodeUnreachable { node: String, why: String },
    /// A node's daemon failed while it started (the node itself answered).
    #[error("node {node} failed: {why}")]
    NodeFailed { node: String, why: String },
}

/// Something the job's event loop must handle.
#[derive(Debug)]
pub(crate) enum Event {
    RankEnded(RankExit),
    Abort {
        rank: u32,
        pid: u32,
        code: i32,
        reason: String,
    },
    Stop {
        signal: i32,
    },
    /// A checkpoint asked to end the job once committed, and it is.
    Checkpointed {
        snapshot: String,
    },
    /// A node's daemon failed (closed its connection, missed its heartbeats, reported an
    /// error); its ranks are gone with it.
    NodeFailed {
        node: String,
        ranks: std::ops::Range<u32>,
        cause: String,
    },
}

/// The parts a restart on nodes with stores needs, when the snapshot's parts are in node
/// stores (its manifest names their nodes); `None` when they are in the snapshot's directory.
fn restart_parts(from: &RestartFrom) -> Result<Option<RestartParts>, LaunchError> {
    let path = from.dir.join(store::MANIFEST_FILE);
    let manifest = store::Manifest::read(&path)
        .map_err(|e| LaunchError::Nodes(crate::report::error_chain(&e)))?;
    if manifest.parts.iter().all(|p| p.nodes.is_empty()) {
        return Ok(None);
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| LaunchError::Nodes(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(RestartParts {
        epoch: from.epoch,
        manifest: bytes,
        parts: manifest.parts,
        extra: manifest.extra,
    }))
}

/// Ends a job from another thread, e.g. a signal handler's.
#[derive(Debug, Clone)]
pub struct Stopper(Sender<Event>);

impl Stopper {
    /// Ends the job as if `mpicr run` had received `signal`. A second call kills at once.
    pub fn stop(&self, signal: i32) {
        let _ = self.0.send(Event::Stop { signal });
    }
}

/// A job about to start. Take a [`Stopper`] before [`Launch::start`] so that a signal that
/// arrives during the start is not lost.
#[derive(Debug)]
pub struct Launch {
    config: LaunchConfig,
    events: Sender<Event>,
    inbox: Receiver<Event>,
}

impl Launch {
    pub fn new(config: LaunchConfig) -> Self {
        let (events, inbox) = mpsc::channel();
        Self {
            config,
            events,
            inbox,
        }
    }

    pub fn stopper(&self) -> Stopper {
        Stopper(self.events.clone())
    }

    /// Starts the job. The calling thread must be the one that later calls
    /// [`RunningJob::wait`]: the ranks are killed by the kernel when it ends.
    pub fn start(self) -> Result<RunningJob, LaunchError> {
        let Self {
            config,
            events,
            inbox,
        } = self;
        // A job with an environment of its own (a restart) finds its program on its own PATH.
        let path_var = match &config.env {
            Some(env) => env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone()),
            None => std::env::var_os("PATH"),
        };
        let executable = program::resolve(&config.program, path_var.as_deref())?;
        let launcher_pid = std::process::id();
        let name = config
            .job_name
            .clone()
            .unwrap_or_else(|| JobName::default_for(launcher_pid));
        let runtime = RuntimeDir::open()?;
        let (listener, files) =
            control_socket::bind(&runtime, &name, launcher_pid).map_err(|e| match e {
                SocketError::NameInUse(name) if config.restart.is_some() => {
                    LaunchError::RestartNameInUse(name)
                }
                e => e.into(),
            })?;
        remove_leftovers(&runtime);
        let shm = ShmDir::create(&runtime, &name)?;
        let node_name = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();

        let command = std::iter::once(&config.program)
            .chain(&config.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let cwd = match &config.cwd {
            Some(cwd) => cwd.clone(),
            None => std::env::current_dir().map_err(LaunchError::Cwd)?,
        };
        let recorded_env: Vec<(OsString, OsString)> = match &config.env {
            Some(env) => env.clone(),
            None => std::env::vars_os()
                .filter(|(k, _)| !NOT_RECORDED.iter().any(|n| k == *n))
                .collect(),
        };
        let board = Arc::new(StatusBoard::new(
            runtime.checkpoint_status_path(&name),
            config.checkpoint.snapshot_dir.clone(),
            config.checkpoint.crs.clone(),
        ));
        let board_closer = ClosesBoard(board.clone());
        let history = config
            .recoveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if !history.is_empty() {
            board.set_recoveries(history);
        }
        let info = JobInfo {
            recovery: config.recovering_since.map(|since| RecoveryWatch {
                since,
                log: config.recoveries.clone(),
                board: board.clone(),
            }),
            name: name.to_string(),
            crs: config.checkpoint.crs.clone(),
            launcher_pid,
            command,
            started_at: unix_now(),
            env: recorded_env
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            cwd: cwd.display().to_string(),
            transport: config.transport.as_str().to_owned(),
        };
        let counts = match &config.nodes {
            Some(nodes) => Some(crate::hosts::place(&nodes.hosts, config.size)?),
            None => None,
        };
        let table = match (&config.nodes, &counts) {
            (Some(nodes), Some(counts)) => {
                ProcessTable::placed(&NodeSet::placement(&nodes.hosts, counts))
            }
            _ => ProcessTable::new(config.size, &node_name),
        };
        let (checkpoint_events, checkpoint_inbox) = mpsc::channel();
        let shared = Arc::new(Shared::new(
            info,
            table,
            current_uid(),
            events.clone(),
            checkpoint_events.clone(),
            Arc::downgrade(&board),
        ));
        let checkpoints = CheckpointService::start(
            config.checkpoint.clone(),
            shared.clone(),
            checkpoint_events,
            checkpoint_inbox,
            events.clone(),
            board,
        )
        .map_err(LaunchError::Checkpoints)?;
        let server = ControlServer::start(listener, files.socket().to_owned(), shared.clone())
            .map_err(LaunchError::Server)?;

        // The ranks get what the snapshot records, so that a restart gives them the same.
        let mut env = recorded_env;
        env.extend([
            ("MPICR_JOB".into(), name.to_string().into()),
            ("MPICR_CONTROL".into(), files.socket().into()),
            ("MPICR_TRANSPORT".into(), config.transport.as_str().into()),
            ("MPICR_SHM_DIR".into(), shm.path().into()),
            ("MPICR_CRS".into(), config.checkpoint.crs.clone().into()),
            (
                "MPICR_SNAPSHOT_DIR".into(),
                config.checkpoint.snapshot_dir.clone().into(),
            ),
        ]);
        if config.checkpoint.crs == "image" {
            // Process images need glibc's rseq registration off (docs/image-format.md).
            rseq_off(&mut env);
            // A restart starts the restorer, whose images hold the runtime already. Only a
            // job of one rank is preloaded: the runtime registers the first program the rank
            // starts and hands the registration over only to a program it executes, so a shell
            // that forks an MPI program would keep it; and in a job of several ranks the table
            // would go out with the wrapper's empty address (ARCHITECTURE.md, "Programs
            // without MPI").
            if config.preload && config.restart.is_none() && config.size == 1 {
                preload(&mut env);
            }
        }
        if let Some(restart) = &config.restart {
            env.push(("MPICR_RESTART_DIR".into(), restart.dir.clone().into()));
            env.push((
                "MPICR_RESTART_EPOCH".into(),
                restart.epoch.to_string().into(),
            ));
        }

        let ranks = match (&config.nodes, &counts) {
            (Some(nodes), Some(counts)) => {
                let launch = wire::NodeLaunch {
                    program: executable.display().to_string(),
                    arg0: config.program.to_string_lossy().into_owned(),
                    args: lossy(&config.args),
                    env: env
                        .iter()
                        .filter(|(k, _)| k != "MPICR_CONTROL" && k != "MPICR_SHM_DIR")
                        .map(|(k, v)| {
                            (
                                k.to_string_lossy().into_owned(),
                                v.to_string_lossy().into_owned(),
                            )
                        })
                        .collect(),
                    cwd: cwd.display().to_string(),
                    size: config.size,
                    first_rank: 0,
                    count: 0,
                    tag_output: config.tag_output,
                    bind_addr: String::new(),
                    storage: String::new(),
                    restart_epoch: 0,
                    manifest: Vec::new(),
                    parts: Vec::new(),
                };
                let restart = match &config.restart {
                    Some(from) if nodes.storage.is_some() => restart_parts(from)?,
                    _ => None,
                };
                Members::Nodes(
                    NodeSet::start(
                        nodes,
                        counts,
                        &launch,
                        restart.as_ref(),
                        shared.clone(),
                        events,
                    )
                    .map_err(|e| match e {
                        NodeStartError::Unreachable { node, why } => {
                            LaunchError::NodeUnreachable { node, why }
                        }
                        NodeStartError::Failed { node, why } => {
                            LaunchError::NodeFailed { node, why }
                        }
                        NodeStartError::Other(why) => LaunchError::Nodes(why),
                    })?,
                )
            }
            _ => {
                let spec = JobSpec {
                    program: executable,
                    arg0: config.program.clone(),
                    args: config.args.clone(),
                    size: config.size,
                    ranks: 0..config.size,
                    output: OutputTo::Local,
                    stdin_to_rank0: true,
                    env,
                    node_name,
                    tag_output: config.tag_output,
                    cwd: config.cwd.clone(),
                    clear_env: true,
                    stdout_copy: config.stdout_copy.clone(),
                };
                let on_exit = Arc::new(move |exit: RankExit| {
                    let _ = events.send(Event::RankEnded(exit));
                });
                Members::Local(Ranks::launch(
                    &spec,
                    |rank, pid| shared.set_spawned(rank, pid),
                    on_exit,
                )?)
            }
        };
        Ok(RunningJob {
            ranks,
            checkpoints: Some(checkpoints),
            server: Some(server),
            _status_file: board_closer,
            shared,
            files,
            shm,
            inbox,
            name,
            size: config.size,
            restoring: config.restart.is_some() && config.checkpoint.crs == "image",
        })
    }
}

/// A started job. Fields drop in order: ranks, checkpoint service, server, status file,
/// socket files, shm directory.
pub struct RunningJob {
    ranks: Members,
    /// Stopped before the node daemons are (a checkpoint in progress is then abandoned and
    /// the daemons told which epochs their stores keep while they still listen); on this
    /// machine it is dropped after the ranks, as a field.
    checkpoints: Option<CheckpointService>,
    /// Stopped once the ranks have ended and the checkpoint service has answered what
    /// waited for it; then the requesters still owed an answer are waited for.
    server: Option<ControlServer>,
    /// Removes the `mpicr status` file of the job, and stops its later writes.
    _status_file: ClosesBoard,
    shared: Arc<Shared>,
    files: JobFiles,
    shm: ShmDir,
    inbox: Receiver<Event>,
    name: JobName,
    size: u32,
    /// The ranks start as `mpicr-restore` (a restart from process images): one that ends
    /// before it registers failed to restore.
    restoring: bool,
}

impl std::fmt::Debug for RunningJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningJob")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl RunningJob {
    pub fn name(&self) -> &JobName {
        &self.name
    }

    /// The control socket ranks and tools connect to.
    pub fn control_socket(&self) -> &Path {
        self.files.socket()
    }

    /// The shared-memory directory of the job.
    pub fn shm_dir(&self) -> PathBuf {
        self.shm.path().to_owned()
    }

    /// Follows the job until every rank has ended, ending it early on the first failure,
    /// an abort or a stop request; then removes the job's files.
    pub fn wait(self) -> Outcome {
        self.wait_timed().0
    }

    /// [`RunningJob::wait`], also returning when the job's end began (the failure, abort or
    /// stop was seen), if it did not simply end.
    pub fn wait_timed(mut self) -> (Outcome, Option<Instant>) {
        let mut cause_at = None;
        let mut cause: Option<Outcome> = None;
        let mut running = self.size;
        let mut ended = vec![false; self.size as usize];
        let mut kill_at: Option<Instant> = None;
        while running > 0 {
            let event = match kill_at {
                None => self.inbox.recv().ok(),
                Some(deadline) => {
                    match self
                        .inbox
                        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    {
                        Ok(event) => Some(event),
                        Err(RecvTimeoutError::Timeout) => {
                            tracing::info!("grace period over; killing the remaining ranks");
                            self.ranks.signal_all(Signal::KILL);
                            kill_at = None;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => None,
                    }
                }
            };
            // A sender lives in `self.shared`, so the channel cannot close while we wait.
            let Some(event) = event else { break };
            let ending = match event {
                Event::RankEnded(exit) => {
                    if std::mem::replace(&mut ended[exit.rank as usize], true) {
                        continue;
                    }
                    running -= 1;
                    let registered = self.shared.set_ended(exit.rank, exit.status);
                    self.shared.checkpoint_event(CkptEvent::RankGone {
                        rank: exit.rank,
                        why: exit.status.to_string(),
                    });
                    (!exit.status.success()).then_some(if self.restoring && !registered {
                        Outcome::of_restore(exit)
                    } else {
                        Outcome::RankFailed(exit)
                    })
                }
                Event::Abort {
                    rank,
                    pid,
                    code,
                    reason,
                } => Some(Outcome::Aborted {
                    rank,
                    pid,
                    code,
                    reason,
                }),
                Event::Stop { signal } => {
                    if cause.is_some() {
                        self.ranks.signal_all(Signal::KILL);
                    }
                    Some(Outcome::Interrupted { signal })
                }
                Event::Checkpointed { snapshot } => Some(Outcome::Checkpointed {
                    job: self.name.to_string(),
                    snapshot,
                }),
                Event::NodeFailed { node, ranks, cause } => {
                    self.ranks.node_failed(&node);
                    for rank in ranks.clone() {
                        if !std::mem::replace(&mut ended[rank as usize], true) {
                            running -= 1;
                            self.shared.set_ended(rank, node::ExitStatus::Unknown);
                            self.shared.checkpoint_event(CkptEvent::RankGone {
                                rank,
                                why: format!("its node {node} failed"),
                            });
                        }
                    }
                    Some(Outcome::NodeFailed { node, ranks, cause })
                }
            };
            // A node failure explains the ranks that failed because of it: it becomes the
            // cause even when one of them was reported first.
            if let Some(outcome @ Outcome::NodeFailed { .. }) = &ending
                && matches!(cause, Some(Outcome::RankFailed(_)))
            {
                if let Some(line) = outcome.describe() {
                    say(&line);
                }
                cause = ending;
                continue;
            }
            // A rank killed by a signal that the launcher did not send (it sends SIGTERM first,
            // SIGKILL only once the grace is over) explains ranks that exited with an error
            // status before its end was reported: they exit because their link to it failed.
            if let Some(outcome @ Outcome::RankFailed(killed)) = &ending
                && matches!(killed.status, node::ExitStatus::Signaled(sig) if sig != Signal::TERM.as_raw())
                && kill_at.is_some_and(|at| Instant::now() < at)
                && matches!(&cause, Some(Outcome::RankFailed(first)) if matches!(first.status, node::ExitStatus::Exited(_)))
            {
                if let Some(line) = outcome.describe() {
                    say(&line);
                }
                cause = ending;
                continue;
            }
            if let Some(outcome) = ending
                && cause.is_none()
            {
                if let Some(line) = outcome.describe() {
                    say(&line);
                }
                self.shared.checkpoint_event(CkptEvent::JobEnding {
                    why: outcome.cause(),
                });
                cause = Some(outcome);
                cause_at = Some(Instant::now());
                if running > 0 {
                    self.ranks.signal_all(Signal::TERM);
                    kill_at = Some(Instant::now() + TERMINATION_GRACE);
                }
            }
        }
        // A migration under way is over; its requester is told so.
        crate::migrate::job_ended(&self.shared);
        if matches!(self.ranks, Members::Nodes(_)) {
            drop(self.checkpoints.take());
        }
        self.ranks.finish();
        // Stopping the service answers every checkpoint request that waits (one the job's end
        // cut short was answered with its reason already); then no new requester is accepted,
        // and `mpicr run` does not exit before the answers are written.
        drop(self.checkpoints.take());
        drop(self.server.take());
        if !self.shared.owing.wait_paid(ANSWER_WAIT) {
            tracing::warn!(
                "a request to job {} was still unanswered {}s after the job ended",
                self.name,
                ANSWER_WAIT.as_secs()
            );
        }
        (cause.unwrap_or(Outcome::Success), cause_at)
    }
}

/// The ranks of a job: started here, or by node daemons.
#[derive(Debug)]
enum Members {
    Local(Ranks),
    Nodes(NodeSet),
}

impl Members {
    fn signal_all(&self, signal: Signal) {
        match self {
            Self::Local(ranks) => ranks.signal_all(signal),
            Self::Nodes(nodes) => nodes.signal_all(signal.as_raw()),
        }
    }

    fn node_failed(&mut self, node: &str) {
        if let Self::Nodes(nodes) = self {
            nodes.kill_node(node);
        }
    }

    fn finish(self) {
        match self {
            Self::Local(ranks) => ranks.finish(),
            Self::Nodes(nodes) => nodes.finish(),
        }
    }
}

fn lossy(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The preloaded runtime of programs without MPI (`crates/preload`), installed beside `mpicr`.
const PRELOAD_LIBRARY: &str = "libmpicr_preload.so";

/// Puts the preloaded runtime in the ranks' `LD_PRELOAD` (before any library the user
/// preloads), so that `--crs image` can checkpoint a program that does not use MPI. It is
/// not recorded in the snapshot's environment. The library itself stays out of a program that
/// joins the job by itself (libmpi, the `mpicr` crate) and takes itself out of `LD_PRELOAD`,
/// so `mpicr run` need not inspect the program.
fn preload(env: &mut Vec<(OsString, OsString)>) {
    let library = std::env::current_exe().map(|exe| exe.with_file_name(PRELOAD_LIBRARY));
    let library = match library {
        Ok(path) if path.exists() => path,
        _ => {
            tracing::warn!(
                "{PRELOAD_LIBRARY} is not installed beside mpicr: a program without MPI cannot be checkpointed with --crs image"
            );
            return;
        }
    };
    match env.iter_mut().find(|(k, _)| k == "LD_PRELOAD") {
        Some((_, v)) if !v.is_empty() => {
            let mut joined = library.into_os_string();
            joined.push(":");
            joined.push(&*v);
            *v = joined;
        }
        Some((_, v)) => *v = library.into_os_string(),
        None => env.push(("LD_PRELOAD".into(), library.into_os_string())),
    }
}

/// Adds `glibc.pthread.rseq=0` to the ranks' `GLIBC_TUNABLES` (the image checkpointer's
/// requirement), keeping any other tunables.
fn rseq_off(env: &mut Vec<(OsString, OsString)>) {
    const RSEQ_OFF: &str = "glibc.pthread.rseq=0";
    match env.iter_mut().find(|(k, _)| k == "GLIBC_TUNABLES") {
        Some((_, v)) if v.to_string_lossy().contains(RSEQ_OFF) => {}
        Some((_, v)) if v.is_empty() => *v = RSEQ_OFF.into(),
        Some((_, v)) => v.push(format!(":{RSEQ_OFF}")),
        None => env.push(("GLIBC_TUNABLES".into(), RSEQ_OFF.into())),
    }
}
