//! `mpicr demo`: the built-in heat-diffusion job, run straight through, then checkpointed,
//! failed and restarted, with the two results compared.
//!
//! Everything goes through the same code as the commands a user would type: the jobs are
//! started like `mpicr run`, the checkpoint is requested like `mpicr checkpoint` (over the
//! job's control socket) and the failed job is continued like `mpicr restart`. The snapshots
//! go to a private directory under the runtime directory, removed at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coord::{
    CheckpointConfig, DEFAULT_CHECKPOINT_TIMEOUT, JobName, JobRef, Launch, LaunchConfig, Outcome,
    RuntimeDir, Stopper, Transport, error_chain, job_status,
};
use node::ExitStatus;
use rustix::process::{Pid, Signal};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::{CheckpointOptions, RestartArgs};
use crate::{EXIT_MPICR_ERROR, say};

/// The demo program, built from this workspace next to the `mpicr` binary.
const DEMO_PROGRAM: &str = "mpicr-heat";
const DEMO_RANKS: u32 = 4;
/// The plate's side and the number of sweeps: the same in every run, so results compare.
const PLATE: u32 = 100;
const SWEEPS: u32 = 2000;
/// How long each sweep of the checkpointed run sleeps, so that there is time to watch it.
const PAUSE_MS: u32 = 3;
/// The checkpoint is asked for once rank 0 reports this sweep, the rank is killed at the second.
const CHECKPOINT_AFTER_SWEEP: u32 = 500;
const KILL_AFTER_SWEEP: u32 = 1000;
/// The rank that is killed.
const VICTIM: u32 = 2;
/// The longest the demo waits for the job to get from one of those points to the next.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn main() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            say(&format!("cannot find the mpicr binary's own path: {e}"));
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let program = exe.with_file_name(DEMO_PROGRAM);
    if !program.is_file() {
        say(&format!(
            "the demo program {} is missing; `cargo build --release` builds it next to mpicr",
            program.display()
        ));
        return ExitCode::from(EXIT_MPICR_ERROR);
    }
    let interrupts = match Interrupts::watch() {
        Ok(interrupts) => interrupts,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let snapshots = match PrivateDir::create() {
        Ok(dir) => dir,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let demo = Demo {
        program,
        snapshots,
        interrupts,
    };
    let result = demo.run();
    let Demo { snapshots, .. } = demo;
    let removed = snapshots.remove();
    match result {
        Ok(()) => match removed {
            Ok(path) => {
                tell(&format!(
                    "\nThe demo's snapshot directory {} is removed. All three steps behaved as they should.",
                    path.display()
                ));
                ExitCode::SUCCESS
            }
            Err(line) => {
                say(&line);
                ExitCode::from(EXIT_MPICR_ERROR)
            }
        },
        Err(Failure::Interrupted(code)) => ExitCode::from(code),
        Err(Failure::Failed(line)) => {
            if let Err(more) = removed {
                say(&more);
            }
            say(&format!("demo failed: {line}"));
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}

/// How the demo went wrong.
#[derive(Debug)]
enum Failure {
    /// SIGINT, SIGTERM or SIGHUP: exit with this status, as `mpicr run` does.
    Interrupted(u8),
    /// Something did not behave as it should; the sentence says what.
    Failed(String),
}

impl From<String> for Failure {
    fn from(line: String) -> Self {
        Self::Failed(line)
    }
}

/// One line of narration on stdout.
fn tell(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[derive(Debug)]
struct Demo {
    program: PathBuf,
    snapshots: PrivateDir,
    interrupts: Interrupts,
}

/// What rank 0 of `mpicr-heat` reported at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeatResult {
    centre: String,
    checksum: String,
    verified: bool,
}

impl Demo {
    fn run(&self) -> Result<(), Failure> {
        let shown = self.program.display();
        tell(&format!(
            "mpicr demo: 2-D heat diffusion (Jacobi iteration) on {DEMO_RANKS} ranks, run once straight\n\
             through, then checkpointed, failed and restarted.\n\
             The plate is split among the ranks; every sweep each rank exchanges its boundary rows\n\
             with its neighbours through mpicr, and at the end rank 0 checks the result against a\n\
             serial computation. The job runs with mpicr's default checkpointer, `image`: a\n\
             checkpoint saves every rank's whole process, with no help from the program.\n"
        ));

        tell("== Step 1 of 3: the job without interruption");
        tell(&format!(
            "Running, as `mpicr run -n {DEMO_RANKS} -- {shown} {PLATE} {SWEEPS}`:"
        ));
        let (outcome, lines, ()) = self.run_job(self.config(None, 0), |_, _| ())?;
        self.check_interrupt(&outcome)?;
        if outcome != Outcome::Success {
            return Err(Failure::Failed(format!(
                "the uninterrupted run failed: {}",
                outcome.describe().unwrap_or_default()
            )));
        }
        let reference = heat_result(&lines)
            .ok_or_else(|| "the uninterrupted run did not print its result line".to_owned())?;
        if !reference.verified {
            return Err("the uninterrupted run did not verify its result"
                .to_owned()
                .into());
        }
        tell(&format!(
            "-> result of the uninterrupted run: centre {} degrees, checksum {} (verified)\n",
            reference.centre, reference.checksum
        ));

        let name = JobName::parse(&format!("demo-{}", std::process::id()))
            .map_err(|e| format!("cannot name the demo's job: {e}"))?;
        tell(&format!(
            "== Step 2 of 3: the same job slowed down ({PAUSE_MS} ms per sweep), checkpointed, then a rank killed"
        ));
        tell(&format!(
            "Running, as `mpicr run -n {DEMO_RANKS} --job-name {name} --snapshot-dir {} -- {shown} {PLATE} {SWEEPS} {PAUSE_MS}`:",
            self.snapshots.path().display()
        ));
        let (outcome, lines, watched) = self.run_job(
            self.config(Some(name.clone()), PAUSE_MS),
            |lines, stopper| {
                let watched = checkpoint_then_kill(&name, lines);
                if watched.is_err() {
                    stopper.stop(SIGTERM);
                }
                watched
            },
        )?;
        // The watcher ends the job itself when something goes wrong: its reason comes first.
        self.check_interrupt(&Outcome::Success)?;
        let (snapshot, victim_pid, asked_at, killed_at) = watched?;
        match &outcome {
            Outcome::RankFailed(exit)
                if exit.rank == VICTIM
                    && exit.pid == victim_pid
                    && exit.status == ExitStatus::Signaled(Signal::KILL.as_raw()) =>
            {
                tell(&format!(
                    "-> the job failed, as it should: rank {} (pid {}) {}; mpicr ended the other ranks",
                    exit.rank, exit.pid, exit.status
                ));
            }
            other => {
                return Err(Failure::Failed(format!(
                    "the job should have failed because rank {VICTIM} was killed, but it ended with: {}",
                    other.describe().unwrap_or_else(|| "success".to_owned())
                )));
            }
        }
        if heat_result(&lines).is_some() {
            return Err("the killed job still printed a result".to_owned().into());
        }
        tell(&format!(
            "   The snapshot holds every rank's whole process as it was when the checkpoint was taken\n   \
             (after sweep {asked_at}); the sweeps computed after it are lost.\n"
        ));

        tell(&format!("== Step 3 of 3: restart from snapshot {snapshot}"));
        tell(&format!(
            "Running, as `mpicr restart --snapshot-dir {} {snapshot}`:",
            self.snapshots.path().display()
        ));
        let restart = RestartArgs {
            tag_output: false,
            checkpoints: CheckpointOptions {
                checkpoint_every: None,
                snapshot_dir: Some(self.snapshots.path().to_owned()),
                keep: None,
                checkpoint_timeout: DEFAULT_CHECKPOINT_TIMEOUT,
                max_restarts: 0,
            },
            nodes: crate::args::NodeOptions::this_machine(),
            snapshot: snapshot.clone(),
        };
        let config = crate::restart::prepare(&restart)?;
        let (outcome, lines, ()) = self.run_job(config, |_, _| ())?;
        self.check_interrupt(&outcome)?;
        if outcome != Outcome::Success {
            return Err(Failure::Failed(format!(
                "the restarted job failed: {}",
                outcome.describe().unwrap_or_default()
            )));
        }
        // Restored processes go on from the capture: rank 0's first report comes after the
        // sweep at which the checkpoint was asked for, and no later than where the rank was
        // killed (a run from the start would report sweep 250 first).
        let resumed_at = lines.iter().find_map(|l| sweep_of(l));
        match resumed_at {
            Some(at) if at > asked_at && at <= killed_at => tell(&format!(
                "-> the restarted job went on from the snapshot: its first report was sweep {at}"
            )),
            other => {
                return Err(Failure::Failed(format!(
                    "the restarted job should have gone on from the snapshot, taken after sweep \
                     {asked_at}, with a report after it and no later than sweep {killed_at}, \
                     but its first report was {}",
                    other.map_or_else(|| "missing".to_owned(), |s| format!("sweep {s}"))
                )));
            }
        }
        let restarted = heat_result(&lines)
            .ok_or_else(|| "the restarted job did not print its result line".to_owned())?;
        if !restarted.verified {
            return Err("the restarted job did not verify its result"
                .to_owned()
                .into());
        }
        tell(&format!(
            "-> result of the restarted run:     centre {} degrees, checksum {} (verified)",
            restarted.centre, restarted.checksum
        ));
        tell(&format!(
            "   result of the uninterrupted run: centre {} degrees, checksum {}",
            reference.centre, reference.checksum
        ));
        if restarted != reference {
            return Err(
                "the restarted job's result differs from the uninterrupted run's"
                    .to_owned()
                    .into(),
            );
        }
        tell("-> same result as the uninterrupted run");
        Ok(())
    }

    /// The heat job on `DEMO_RANKS` ranks with the demo's snapshot directory.
    fn config(&self, job_name: Option<JobName>, pause_ms: u32) -> LaunchConfig {
        let mut args = vec![PLATE.to_string().into(), SWEEPS.to_string().into()];
        if pause_ms > 0 {
            args.push(pause_ms.to_string().into());
        }
        LaunchConfig {
            size: DEMO_RANKS,
            program: self.program.clone().into_os_string(),
            args,
            tag_output: false,
            transport: Transport::Shm,
            job_name,
            checkpoint: CheckpointConfig {
                snapshot_dir: self.snapshots.path().to_owned(),
                crs: "image".into(),
                every: None,
                keep: None,
                timeout: DEFAULT_CHECKPOINT_TIMEOUT,
            },
            env: None,
            cwd: None,
            restart: None,
            stdout_copy: None,
            nodes: None,
            recoveries: Default::default(),
            recovering_since: None,
            preload: false,
        }
    }

    /// A signal received during the demo ends it with `mpicr run`'s status for it.
    fn check_interrupt(&self, outcome: &Outcome) -> Result<(), Failure> {
        if let Outcome::Interrupted { .. } = outcome {
            return Err(Failure::Interrupted(outcome.exit_code()));
        }
        match self.interrupts.received() {
            Some(signal) => Err(Failure::Interrupted(
                Outcome::Interrupted { signal }.exit_code(),
            )),
            None => Ok(()),
        }
    }

    /// Runs a job to its end on this thread while `watch` follows rank 0's output on another;
    /// gives the outcome, every line rank 0 printed, and what `watch` returned.
    fn run_job<R: Send>(
        &self,
        mut config: LaunchConfig,
        watch: impl FnOnce(&mut Lines, &Stopper) -> R + Send,
    ) -> Result<(Outcome, Vec<String>, R), Failure> {
        self.check_interrupt(&Outcome::Success)?;
        let (copy, lines) = mpsc::channel();
        config.stdout_copy = Some(copy);
        let launch = Launch::new(config);
        let stopper = launch.stopper();
        self.interrupts.follow(Some(stopper.clone()));
        // A signal that came between the check above and `follow` would be lost otherwise.
        if let Some(signal) = self.interrupts.received() {
            stopper.stop(signal);
        }
        // The ranks die with the thread that started them: this one, which also waits.
        let started = launch.start();
        let result = match started {
            Err(e) => Err(Failure::Failed(format!(
                "cannot start the job: {}",
                error_chain(&e)
            ))),
            Ok(job) => {
                let mut lines = Lines {
                    inbox: lines,
                    seen: Vec::new(),
                };
                std::thread::scope(|scope| {
                    let watcher = scope.spawn(move || {
                        let watched = watch(&mut lines, &stopper);
                        (lines, watched)
                    });
                    let outcome = job.wait();
                    match watcher.join() {
                        Ok((lines, watched)) => Ok((outcome, lines.rest(), watched)),
                        Err(_) => Err(Failure::Failed("the demo's watcher thread panicked".into())),
                    }
                })
            }
        };
        self.interrupts.follow(None);
        result
    }
}

/// Rank 0's stdout as it arrives.
#[derive(Debug)]
struct Lines {
    inbox: Receiver<(u32, String)>,
    seen: Vec<String>,
}

impl Lines {
    /// Waits for rank 0's next line; `None` once the job's output has ended or after `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<&str> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left) {
                Ok((0, line)) => {
                    self.seen.push(line);
                    return self.seen.last().map(String::as_str);
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits until rank 0 reports a sweep at or after `sweep`.
    fn until_sweep(&mut self, sweep: u32) -> Result<u32, String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let Some(line) = self.next(deadline) else {
                return Err(format!(
                    "the job ended or stalled before it reported sweep {sweep}"
                ));
            };
            if let Some(at) = sweep_of(line)
                && at >= sweep
            {
                return Ok(at);
            }
        }
    }

    /// Every line rank 0 printed, once the job is over.
    fn rest(mut self) -> Vec<String> {
        // The job's output has ended: what is left is queued, and the senders are gone or
        // about to go.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.next(deadline).is_some() {}
        self.seen
    }
}

/// Step 2 on the watcher's side: a checkpoint through the coordinator once the job is well
/// under way, then SIGKILL to one rank once it has gone on for a while. Gives the snapshot's
/// name, the killed pid, and the sweeps rank 0 had reported when the checkpoint was asked for
/// and when the rank was killed.
fn checkpoint_then_kill(
    name: &JobName,
    lines: &mut Lines,
) -> Result<(String, u32, u32, u32), String> {
    let asked_at = lines.until_sweep(CHECKPOINT_AFTER_SWEEP)?;
    tell(&format!(
        "-> the job is at sweep {asked_at}; asking its coordinator for a checkpoint, as `mpicr checkpoint {name}` does"
    ));
    let snapshot = crate::checkpoint::checkpoint(&JobRef::Name(name.clone()), false)
        .map_err(|line| format!("the checkpoint failed: {line}"))?;
    tell(&format!(
        "-> snapshot {snapshot} is committed; the job computes on"
    ));
    let killed_at = lines.until_sweep(KILL_AFTER_SWEEP)?;
    let dir = RuntimeDir::open().map_err(|e| error_chain(&e))?;
    let table = job_status(&dir, &JobRef::Name(name.clone())).map_err(|e| error_chain(&e))?;
    let pid = table
        .ranks
        .iter()
        .find(|entry| entry.rank == VICTIM)
        .map(|entry| entry.pid)
        .ok_or_else(|| format!("rank {VICTIM} is not in the job's process table"))?;
    tell(&format!(
        "-> the job is at sweep {killed_at}; killing rank {VICTIM} (pid {pid}, from the job's process table) with SIGKILL, as a crash would"
    ));
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("the process table names an impossible pid {pid}"))?;
    rustix::process::kill_process(target, Signal::KILL)
        .map_err(|e| format!("cannot kill rank {VICTIM} (pid {pid}): {e}"))?;
    Ok((snapshot, pid, asked_at, killed_at))
}

/// `sweep   500: largest change …` → 500.
fn sweep_of(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("sweep ")?;
    let (number, _) = rest.split_once(':')?;
    number.trim().parse().ok()
}

/// The result rank 0 printed: `heat: … centre C degrees, checksum S`, then `verified: …`.
fn heat_result(lines: &[String]) -> Option<HeatResult> {
    let line = lines.iter().find(|l| l.starts_with("heat: "))?;
    let (_, centre) = line.split_once(" centre ")?;
    let (centre, _) = centre.split_once(" degrees")?;
    let (_, checksum) = line.split_once(" checksum ")?;
    Some(HeatResult {
        centre: centre.trim().to_owned(),
        checksum: checksum.trim().to_owned(),
        verified: lines.iter().any(|l| l.starts_with("verified:")),
    })
}

/// SIGINT, SIGTERM and SIGHUP during the demo: passed on to the running job (which then ends
/// as under `mpicr run`) and remembered, so that no further step starts.
#[derive(Debug, Clone)]
struct Interrupts {
    state: Arc<Mutex<InterruptState>>,
}

#[derive(Debug, Default)]
struct InterruptState {
    job: Option<Stopper>,
    received: Option<i32>,
}

impl Interrupts {
    fn watch() -> Result<Self, String> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let interrupts = Self {
            state: Arc::default(),
        };
        let state = interrupts.state.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                    state.received.get_or_insert(signal);
                    if let Some(job) = &state.job {
                        job.stop(signal);
                    }
                }
            })
            .map_err(|e| format!("cannot watch for signals: {e}"))?;
        Ok(interrupts)
    }

    fn follow(&self, job: Option<Stopper>) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .job = job;
    }

    fn received(&self) -> Option<i32> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .received
    }
}

/// The demo's own snapshot directory, `<runtime dir>/demo-<pid>.snapshots` (mode 0700).
#[derive(Debug)]
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create() -> Result<Self, String> {
        let runtime = RuntimeDir::open().map_err(|e| error_chain(&e))?;
        let path = runtime
            .path()
            .join(format!("demo-{}.snapshots", std::process::id()));
        // A leftover of an earlier demo whose pid this one reuses is stale: replace it.
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| {
                format!(
                    "cannot remove the stale demo directory {}: {e}",
                    path.display()
                )
            })?;
        }
        // The store creates it (0700) and checks it.
        crate::snapshots::open_store(Some(&path))?;
        Ok(Self { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn remove(self) -> Result<PathBuf, String> {
        std::fs::remove_dir_all(&self.path).map_err(|e| {
            format!(
                "cannot remove the demo's snapshot directory {}: {e}",
                self.path.display()
            )
        })?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_heat_output() {
        assert_eq!(sweep_of("sweep   500: largest change 0.012345"), Some(500));
        assert_eq!(sweep_of("sweep  2000: largest change 0.009252"), Some(2000));
        assert_eq!(sweep_of("restarted from a snapshot at sweep 502"), None);
        let lines: Vec<String> = [
            "sweep  2000: largest change 0.009252",
            "heat: 100x100 plate, 2000 sweeps on 4 ranks in 0.868 s: centre 10.038467 degrees, checksum 181087.008932",
            "verified: the parallel result is identical to a serial computation",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            heat_result(&lines),
            Some(HeatResult {
                centre: "10.038467".into(),
                checksum: "181087.008932".into(),
                verified: true,
            })
        );
        assert_eq!(heat_result(&lines[..1]), None);
        assert!(!heat_result(&lines[..2]).unwrap().verified);
    }
}
