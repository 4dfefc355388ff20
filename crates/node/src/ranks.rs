//! The ranks of one job on this machine: starting, watching, signalling and reaping them.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, WaitIdStatus, WaitOptions};
use thiserror::Error;

use crate::binding::{BIND_VAR, BindTo, Binding, NODE_CPUS_VAR};
use crate::output::{self, OutputCopy, RemotePiece, Sink};
use crate::spawn::{self, RankCommand};
use crate::status::ExitStatus;

/// How long the output of a finished job may take to drain. Output can only be late if a rank
/// left a process outside the job's process group that still holds the rank's stdout.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// How long a rank's end waits for the rest of its output before it is reported: long enough
/// to read what is left in the pipes, short enough that a process the rank left behind with
/// the pipes open delays failure detection only a little.
const OUTPUT_BEFORE_EXIT: Duration = Duration::from_millis(200);

/// What to run and how, for every rank of a job on this machine.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The file to execute, already resolved (see [`crate::program::resolve`]).
    pub program: PathBuf,
    /// `argv[0]` as the user wrote it.
    pub arg0: OsString,
    pub args: Vec<OsString>,
    /// Number of ranks of the whole job.
    pub size: u32,
    /// The ranks that run here: all of them (`0..size`) on one machine, a block of them under
    /// a node daemon. The first one started leads the process group.
    pub ranks: std::ops::Range<u32>,
    /// Where the ranks' output goes: this process's stdout and stderr, or (in a node daemon)
    /// a channel to the coordinator.
    pub output: OutputTo,
    /// Copy this process's stdin to rank 0 (when rank 0 runs here); otherwise every rank
    /// reads `/dev/null`.
    pub stdin_to_rank0: bool,
    /// Variables every rank gets on top of the launcher's environment. The node adds
    /// `MPICR_RANK`, `MPICR_SIZE`, `MPICR_NODE`, `PMI_RANK` and `PMI_SIZE` itself.
    pub env: Vec<(OsString, OsString)>,
    /// This machine's name, given to ranks as `MPICR_NODE`.
    pub node_name: String,
    /// Put `[rank] ` before every line of output.
    pub tag_output: bool,
    /// The ranks' working directory; `None` keeps the launcher's.
    pub cwd: Option<PathBuf>,
    /// Start the ranks from an empty environment instead of the launcher's, so that [`env`]
    /// is all they get (a restarted job gets the environment its snapshot recorded).
    ///
    /// [`env`]: JobSpec::env
    pub clear_env: bool,
    /// Also send every line the ranks write to stdout here (`mpicr demo` reads the results).
    pub stdout_copy: Option<OutputCopy>,
}

/// Where the ranks' stdout and stderr go.
#[derive(Debug, Clone)]
pub enum OutputTo {
    /// This process's own stdout and stderr.
    Local,
    /// Pieces (whole lines, tag included) to the node daemon's link to the coordinator.
    Remote(Sender<RemotePiece>),
}

/// One rank has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankExit {
    pub rank: u32,
    pub pid: u32,
    pub status: ExitStatus,
}

/// Why a job's ranks could not all be started. Ranks already started are killed.
#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("starting rank {rank} failed")]
    Process {
        rank: u32,
        #[source]
        source: io::Error,
    },
    #[error("starting a thread to serve rank {rank} failed")]
    Thread {
        rank: u32,
        #[source]
        source: io::Error,
    },
    #[error("{var}={value:?} is not a binding; use none, core or hwthread", var = BIND_VAR)]
    BadBinding { value: String },
    #[error("reading the CPUs this node may use failed")]
    Affinity(#[source] io::Error),
}

/// Called from a watcher thread each time a rank ends.
pub type ExitCallback = Arc<dyn Fn(RankExit) + Send + Sync>;

/// The running ranks of a job. Dropping it kills whatever is left of the job.
///
/// Rank 0 leads the job's process group. Its zombie is reaped only by [`Ranks::finish`], so
/// that its pid keeps naming this job's group (and no unrelated process) as long as a
/// signal may be sent to the group.
pub struct Ranks {
    pids: Vec<Pid>,
    /// `alive[r]`: rank r has not been seen to end. Ranks are reaped only under this lock, so
    /// a pid signalled under it is never a recycled one.
    alive: Arc<Mutex<Vec<bool>>>,
    watchers: Vec<JoinHandle<()>>,
    output_done: Receiver<()>,
    output_token: Option<Sender<()>>,
    finished: bool,
    /// The CPUs each rank is bound to, by the order ranks are started here.
    binding: Binding,
}

impl std::fmt::Debug for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranks")
            .field("pids", &self.pids)
            .finish_non_exhaustive()
    }
}

impl Ranks {
    /// Starts every rank of `spec`, calling `on_spawn(rank, pid)` right after each start and
    /// `on_exit` (from another thread) when a rank ends.
    ///
    /// Every rank is killed by the kernel when the calling thread ends (PR_SET_PDEATHSIG), so
    /// call this from the thread that waits for the job.
    pub fn launch(
        spec: &JobSpec,
        mut on_spawn: impl FnMut(u32, u32),
        on_exit: ExitCallback,
    ) -> Result<Self, SpawnError> {
        let (output_token, output_done) = mpsc::channel();
        let bind = match spec.env.iter().find(|(k, _)| k == BIND_VAR) {
            None => BindTo::None,
            Some((_, value)) => {
                let value = value.to_string_lossy();
                BindTo::parse(&value).ok_or_else(|| SpawnError::BadBinding {
                    value: value.into_owned(),
                })?
            }
        };
        let binding = Binding::new(bind).map_err(SpawnError::Affinity)?;
        let mut ranks = Self {
            pids: Vec::with_capacity(spec.size as usize),
            alive: Arc::new(Mutex::new(Vec::with_capacity(spec.size as usize))),
            watchers: Vec::new(),
            output_done,
            output_token: Some(output_token),
            finished: false,
            binding,
        };
        for rank in spec.ranks.clone() {
            let pid = ranks.start(spec, rank, &on_exit)?;
            on_spawn(rank, pid.as_raw_pid() as u32);
        }
        Ok(ranks)
    }

    fn start(
        &mut self,
        spec: &JobSpec,
        rank: u32,
        on_exit: &ExitCallback,
    ) -> Result<Pid, SpawnError> {
        let process = |source| SpawnError::Process { rank, source };
        let thread = |source| SpawnError::Thread { rank, source };
        let mut env = spec.env.clone();
        for (key, value) in [
            ("MPICR_RANK", rank.to_string()),
            ("MPICR_SIZE", spec.size.to_string()),
            ("MPICR_NODE", spec.node_name.clone()),
            ("PMI_RANK", rank.to_string()),
            ("PMI_SIZE", spec.size.to_string()),
            (NODE_CPUS_VAR, self.binding.node_cpus().to_string()),
        ] {
            env.push((key.into(), value.into()));
        }
        let mut child = spawn::spawn(RankCommand {
            program: &spec.program,
            arg0: &spec.arg0,
            args: &spec.args,
            env,
            clear_env: spec.clear_env,
            cwd: spec.cwd.as_deref(),
            process_group: self.pids.first().map_or(0, |leader| leader.as_raw_pid()),
            cpus: self.binding.for_index(self.pids.len()),
            stdin: if rank == 0 && spec.stdin_to_rank0 {
                Stdio::piped()
            } else {
                Stdio::null()
            },
        })
        .map_err(process)?;
        let pid = Pid::from_child(&child);
        self.pids.push(pid);
        self.lock_alive().push(true);
        tracing::debug!(rank, pid = pid.as_raw_pid(), "started rank");

        let watcher = Watcher {
            rank,
            index: self.pids.len() - 1,
            pid,
            leader: self.pids.len() == 1,
            alive: self.alive.clone(),
        };
        let on_exit = on_exit.clone();
        // The exit is reported once the rank's output has been forwarded, so that what a rank
        // said before it failed (a restorer's refusal, a program's error) comes before the
        // launcher's line about its end. A process the rank started may keep the pipes open,
        // so the wait is bounded.
        let (output_open, output_ended) = mpsc::channel::<()>();
        let handle = thread::Builder::new()
            .name(format!("rank{rank}-wait"))
            .spawn(move || {
                let exit = watcher.wait();
                let _ = output_ended.recv_timeout(OUTPUT_BEFORE_EXIT);
                on_exit(exit);
            })
            .map_err(thread)?;
        self.watchers.push(handle);

        let token = self.output_token.clone().expect("present until finish");
        let prefix = spec.tag_output.then(|| format!("[{rank}] "));
        let (out_sink, err_sink) = match &spec.output {
            OutputTo::Local => (Sink::Stdout, Sink::Stderr),
            OutputTo::Remote(to) => (
                Sink::Remote {
                    rank,
                    stream: 1,
                    to: to.clone(),
                },
                Sink::Remote {
                    rank,
                    stream: 2,
                    to: to.clone(),
                },
            ),
        };
        if let Some(out) = child.stdout.take() {
            let name = format!("rank{rank}-out");
            let copy = spec.stdout_copy.clone().map(|copy| (rank, copy));
            let done = (token.clone(), output_open.clone());
            output::forward(name, out, out_sink, prefix.clone(), copy, done).map_err(thread)?;
        }
        if let Some(err) = child.stderr.take() {
            let name = format!("rank{rank}-err");
            let done = (token, output_open);
            output::forward(name, err, err_sink, prefix, None, done).map_err(thread)?;
        }
        if let Some(input) = child.stdin.take() {
            crate::stdin::forward_to(input).map_err(thread)?;
        }
        // `child` is dropped without waiting: its watcher owns the reaping.
        Ok(pid)
    }

    /// Starts one more rank with `spec` (a migrated rank's restorer) in the job's process
    /// group; returns its pid. Call it from the thread that started the job.
    pub fn start_extra(
        &mut self,
        spec: &JobSpec,
        rank: u32,
        on_exit: &ExitCallback,
    ) -> Result<u32, SpawnError> {
        self.start(spec, rank, on_exit)
            .map(|pid| pid.as_raw_pid() as u32)
    }

    /// The pid of every rank, by rank.
    pub fn pids(&self) -> Vec<u32> {
        self.pids.iter().map(|p| p.as_raw_pid() as u32).collect()
    }

    /// Sends `signal` to every rank still running and to the job's process group (which
    /// reaches the processes the ranks started).
    pub fn signal_all(&self, signal: Signal) {
        let alive = self.lock_alive();
        for (pid, _) in self
            .pids
            .iter()
            .zip(alive.iter())
            .filter(|(_, alive)| **alive)
        {
            let _ = rustix::process::kill_process(*pid, signal);
        }
        if let Some(leader) = self.pids.first() {
            let _ = rustix::process::kill_process_group(*leader, signal);
        }
    }

    /// Ends the job on this machine: kills whatever is left in the job's process group, waits
    /// for every rank, and lets the output drain. Call it once every rank has been reported
    /// ended; any rank still running is killed.
    pub fn finish(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.signal_all(Signal::KILL);
        for watcher in self.watchers.drain(..) {
            let _ = watcher.join();
        }
        if let Some(leader) = self.pids.first() {
            reap(*leader);
        }
        self.output_token = None;
        let deadline = Instant::now() + OUTPUT_DRAIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output_done.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!("a process outside the job still holds a rank's output open");
                    break;
                }
            }
        }
    }

    fn lock_alive(&self) -> MutexGuard<'_, Vec<bool>> {
        self.alive.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Waits for one rank on its own thread.
struct Watcher {
    rank: u32,
    /// Position of the rank among the ranks started here.
    index: usize,
    pid: Pid,
    /// The group leader is observed but left a zombie; [`Ranks::shut_down`] reaps it.
    leader: bool,
    alive: Arc<Mutex<Vec<bool>>>,
}

impl Watcher {
    fn wait(self) -> RankExit {
        // WNOWAIT: see the end without reaping, so that the reaping can happen under the lock
        // that signal senders hold.
        let status = loop {
            match rustix::process::waitid(
                WaitId::Pid(self.pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Ok(Some(status)) => break exit_status(&status),
                Ok(None) | Err(Errno::INTR) => {}
                Err(e) => {
                    tracing::error!(rank = self.rank, "lost track of the rank: {e}");
                    break ExitStatus::Unknown;
                }
            }
        };
        {
            let mut alive = self.alive.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.leader {
                reap(self.pid);
            }
            alive[self.index] = false;
        }
        tracing::debug!(rank = self.rank, %status, "rank ended");
        RankExit {
            rank: self.rank,
            pid: self.pid.as_raw_pid() as u32,
            status,
        }
    }
}

fn exit_status(status: &WaitIdStatus) -> ExitStatus {
    if let Some(code) = status.exit_status() {
        ExitStatus::Exited(code)
    } else if let Some(signal) = status.terminating_signal() {
        ExitStatus::Signaled(signal)
    } else {
        ExitStatus::Unknown
    }
}

fn reap(pid: Pid) {
    while let Err(Errno::INTR) = rustix::process::waitpid(Some(pid), WaitOptions::empty()) {}
}
