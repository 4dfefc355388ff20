//! The coordinator's half of coordinated checkpoints (ChaRM4MPI §2.1 with the safepoint
//! agreement of the `self` checkpointer): one thread that takes requests from tools, from the
//! ranks and from the timer, serves them one at a time, and talks to the ranks through the
//! control connections.
//!
//! A checkpoint of epoch E: CHECKPOINT(E) to every rank; every rank answers its safepoint
//! count; T = max + 1; CHECKPOINT_AT(E, T, staging dir) to every rank; every rank writes its
//! part there and answers PART_DONE; the coordinator commits the global snapshot (two-phase,
//! `crates/store`) and answers the requester. Any failure — a rank that refuses, a rank that
//! ends, a rank that does not answer in time — abandons the staging directory, sends
//! CHECKPOINT_CANCEL(E) to every rank and answers the requester with the reason.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use store::{ManifestInput, ParityEntry, PartInfo, PartReader, Store};
use wire::{
    Checkpoint, CheckpointAt, CheckpointCancel, CheckpointDone, CheckpointFailed, Message,
    ParityBuild, ParityStored, PartDone, PartKeep, PartStored, SafepointCount, StoreBegin,
    StoreKeep, StoreReady,
};

use crate::nodes::{DaemonLink, StoreFacts};

use crate::activity::{Migration, MigrationStats, RedundancyBytes};
use crate::launch::Event;
use crate::report::{error_chain, say};
use crate::server::{END_REPORT_WAIT, Readiness, Shared};

/// How long a request waits for the first rank of a job to register before the job is taken
/// for one that does not use MPI (counted from the start of the job).
const REGISTRATION_GRACE: Duration = Duration::from_secs(5);
/// How often the service looks at the table while it waits for registrations.
const REGISTRATION_POLL: Duration = Duration::from_millis(50);
/// How often a checkpoint a rank gave up for a passing reason is taken again.
const RETRIES: u32 = 5;
/// The pause before the first retry; the n-th waits n times as long.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Default of `--checkpoint-timeout`: ranks reach their safepoints at their own pace.
pub const DEFAULT_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(600);

/// How checkpoints of a job are taken and kept.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The global snapshot store's root directory.
    pub snapshot_dir: PathBuf,
    /// The checkpointer the ranks use (`MPICR_CRS`).
    pub crs: String,
    /// Take a checkpoint this often (internal requests).
    pub every: Option<Duration>,
    /// After every commit, keep only this many snapshots of the job.
    pub keep: Option<usize>,
    /// How long the ranks may take to answer each step of a checkpoint.
    pub timeout: Duration,
}

/// What a finished checkpoint tells whoever asked for it.
pub(crate) type Answer = Result<CheckpointDone, String>;

/// Who asked for a checkpoint.
#[derive(Debug)]
pub(crate) enum Origin {
    /// `mpicr checkpoint`, waiting for the answer on its connection.
    Tool(Sender<Answer>),
    /// A rank asked on its own connection (application-initiated); nobody waits.
    Rank(u32),
    /// `--checkpoint-every`.
    Timer,
}

/// What the checkpoint service reacts to.
#[derive(Debug)]
pub(crate) enum CkptEvent {
    Request {
        terminate: bool,
        origin: Origin,
    },
    Count(SafepointCount),
    Part(PartDone),
    Failed(CheckpointFailed),
    /// A node daemon prepared (or could not prepare) its store for a checkpoint.
    StoreReady {
        node: String,
        ready: StoreReady,
    },
    /// A node daemon checked a part in its store and copied it to its partners (or failed).
    Stored(PartStored),
    /// A node daemon built a parity file (or failed).
    ParityStored(ParityStored),
    /// A rank's connection closed or its process ended.
    RankGone {
        rank: u32,
        why: String,
    },
    /// The launcher is ending the job (`why`: what ended it): refuse everything from now on.
    JobEnding {
        why: String,
    },
    /// Stop the service (the job is over).
    Shutdown,
}

/// What `mpicr status` can learn about the job's checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStatus {
    /// The snapshot directory of the job.
    pub snapshot_dir: PathBuf,
    /// The last snapshot this job committed (name, path).
    pub last: Option<(String, PathBuf)>,
    /// The checkpoint in progress.
    pub running: Option<Progress>,
    /// The automatic recoveries of this `mpicr run` so far (`--max-restarts`), oldest first.
    pub recoveries: Vec<Recovery>,
    /// The ranks' checkpointer (`--crs`).
    pub crs: String,
    /// The nodes with a daemon of the job, in host order (empty on one machine): where a rank
    /// can migrate to.
    pub nodes: Vec<String>,
    pub migrations: MigrationStats,
    pub redundancy_bytes: RedundancyBytes,
}

/// One automatic recovery (`--max-restarts`): what failed, the snapshot the job rolled back
/// to, and how long after the failure's detection every rank ran again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub failure: String,
    pub snapshot: String,
    /// `None` while the ranks are still starting.
    pub recovered_ms: Option<u64>,
}

/// A checkpoint in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub epoch: u64,
    /// `counting` (waiting for safepoint counts) or `saving` (waiting for parts).
    pub phase: &'static str,
    /// Ranks that have answered the current phase.
    pub reported: u32,
    pub ranks: u32,
}

/// The published status, mirrored to `<runtime dir>/<job>.checkpoint` for `mpicr status`.
///
/// The file lives exactly as long as the job that owns the board: [`StatusBoard::close`]
/// removes it and stops all later writes, so a thread of the job that outlives it (a
/// connection still draining, a node daemon being given up on) cannot bring it back.
#[derive(Debug)]
pub(crate) struct StatusBoard {
    file: PathBuf,
    /// `None` once closed.
    status: Mutex<Option<CheckpointStatus>>,
}

impl StatusBoard {
    pub(crate) fn new(file: PathBuf, snapshot_dir: PathBuf, crs: String) -> Self {
        let board = Self {
            file,
            status: Mutex::new(Some(CheckpointStatus {
                snapshot_dir,
                crs,
                ..CheckpointStatus::default()
            })),
        };
        board.update(|_| {});
        board
    }

    /// Publishes the job's recoveries.
    pub(crate) fn set_recoveries(&self, recoveries: Vec<Recovery>) {
        self.update(|s| s.recoveries = recoveries);
    }

    /// Publishes the nodes that run a daemon of the job.
    pub(crate) fn set_nodes(&self, nodes: Vec<String>) {
        self.update(|s| s.nodes = nodes);
    }

    /// Counts a finished migration.
    pub(crate) fn migrated(&self, migration: Migration) {
        self.update(|s| s.migrations.record(migration));
    }

    /// Removes the published file; later changes are dropped.
    pub(crate) fn close(&self) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if status.take().is_some() {
            let _ = std::fs::remove_file(&self.file);
        }
    }

    fn update(&self, change: impl FnOnce(&mut CheckpointStatus)) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(status) = status.as_mut() else {
            return;
        };
        change(status);
        let tmp = self.file.with_extension("checkpoint.tmp");
        let written = std::fs::write(&tmp, encode_status(status))
            .and_then(|()| std::fs::rename(&tmp, &self.file));
        if let Err(e) = written {
            tracing::warn!(file = %self.file.display(), "cannot publish the checkpoint status: {e}");
        }
    }
}

/// Closes its board when dropped, whoever else still holds it: the owner of a job keeps one,
/// so the job's status file goes with the job.
#[derive(Debug)]
pub(crate) struct ClosesBoard(pub(crate) Arc<StatusBoard>);

impl Drop for ClosesBoard {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn encode_status(status: &CheckpointStatus) -> String {
    let mut text = format!("snapshot_dir={}\n", status.snapshot_dir.display());
    if !status.crs.is_empty() {
        text.push_str(&format!("crs={}\n", status.crs));
    }
    for node in &status.nodes {
        text.push_str(&format!("node={node}\n"));
    }
    let bytes = status.redundancy_bytes;
    text.push_str(&format!(
        "mirrored_bytes={}\nparity_bytes={}\n",
        bytes.mirrored, bytes.parity
    ));
    status.migrations.encode(&mut text);
    if let Some((name, path)) = &status.last {
        text.push_str(&format!("last={name}\nlast_path={}\n", path.display()));
    }
    if let Some(p) = &status.running {
        text.push_str(&format!(
            "epoch={}\nphase={}\nreported={}\nranks={}\n",
            p.epoch, p.phase, p.reported, p.ranks
        ));
    }
    for r in &status.recoveries {
        let ms = r
            .recovered_ms
            .map_or_else(|| "-".to_owned(), |ms| ms.to_string());
        // The failure is last: it is free text (without newlines).
        text.push_str(&format!(
            "recovery={ms}|{}|{}\n",
            r.snapshot,
            r.failure.replace('\n', " ")
        ));
    }
    text
}

/// Reads what [`StatusBoard`] published; `None` if the file is missing or not ours.
pub(crate) fn decode_status(text: &str) -> Option<CheckpointStatus> {
    let mut status = CheckpointStatus::default();
    let (mut last, mut last_path) = (None, None);
    let (mut epoch, mut phase, mut reported, mut ranks) = (None, None, None, None);
    for line in text.lines() {
        let (key, value) = line.split_once('=')?;
        match key {
            "snapshot_dir" => status.snapshot_dir = PathBuf::from(value),
            "crs" => value.clone_into(&mut status.crs),
            "node" => status.nodes.push(value.to_owned()),
            "mirrored_bytes" => status.redundancy_bytes.mirrored = value.parse().unwrap_or(0),
            "parity_bytes" => status.redundancy_bytes.parity = value.parse().unwrap_or(0),
            "last" => last = Some(value.to_owned()),
            "last_path" => last_path = Some(PathBuf::from(value)),
            "epoch" => epoch = value.parse().ok(),
            "phase" => {
                phase = match value {
                    "counting" => Some("counting"),
                    "saving" => Some("saving"),
                    _ => None,
                }
            }
            "reported" => reported = value.parse().ok(),
            "ranks" => ranks = value.parse().ok(),
            "recovery" => {
                let mut fields = value.splitn(3, '|');
                if let (Some(ms), Some(snapshot), Some(failure)) =
                    (fields.next(), fields.next(), fields.next())
                {
                    status.recoveries.push(Recovery {
                        failure: failure.to_owned(),
                        snapshot: snapshot.to_owned(),
                        recovered_ms: ms.parse().ok(),
                    });
                }
            }
            _ => status.migrations.decode(key, value),
        }
    }
    status.last = last.zip(last_path);
    if let (Some(epoch), Some(phase), Some(reported), Some(ranks)) = (epoch, phase, reported, ranks)
    {
        status.running = Some(Progress {
            epoch,
            phase,
            reported,
            ranks,
        });
    }
    Some(status)
}

/// The running service. Dropping it stops the thread (and the timer), refusing what waits.
pub(crate) struct CheckpointService {
    events: Sender<CkptEvent>,
    thread: Option<JoinHandle<()>>,
    timer: Option<(Sender<()>, JoinHandle<()>)>,
}

impl CheckpointService {
    /// Starts the service thread, and the timer when `config.every` is set. `inbox` receives
    /// what `events` (also held by the control server) sends.
    pub(crate) fn start(
        config: CheckpointConfig,
        shared: Arc<Shared>,
        events: Sender<CkptEvent>,
        inbox: Receiver<CkptEvent>,
        job_events: Sender<Event>,
        board: Arc<StatusBoard>,
    ) -> std::io::Result<Self> {
        let every = config.every;
        let service = Service {
            config,
            shared,
            job_events,
            board,
            queue: VecDeque::new(),
            ending: None,
            next_epoch: 1,
            gone: Vec::new(),
        };
        let thread = thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || service.run(&inbox))?;
        let mut me = Self {
            events: events.clone(),
            thread: Some(thread),
            timer: None,
        };
        if let Some(period) = every {
            let (stop, stopped) = mpsc::channel::<()>();
            let timer = thread::Builder::new()
                .name("checkpoint-timer".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                        let request = CkptEvent::Request {
                            terminate: false,
                            origin: Origin::Timer,
                        };
                        if events.send(request).is_err() {
                            break;
                        }
                    }
                })?;
            me.timer = Some((stop, timer));
        }
        Ok(me)
    }
}

impl Drop for CheckpointService {
    fn drop(&mut self) {
        if let Some((stop, timer)) = self.timer.take() {
            drop(stop);
            let _ = timer.join();
        }
        let _ = self.events.send(CkptEvent::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Request {
    terminate: bool,
    origin: Origin,
    /// When the service received it: a checkpoint's recorded duration starts here.
    received: Instant,
}

impl Request {
    fn answer(self, answer: Answer) {
        match self.origin {
            Origin::Tool(reply) => {
                let _ = reply.send(answer);
            }
            Origin::Rank(rank) => {
                if let Err(reason) = answer {
                    say(&format!(
                        "the checkpoint rank {rank} asked for failed: {reason}"
                    ));
                }
            }
            Origin::Timer => {
                if let Err(reason) = answer {
                    say(&format!("the periodic checkpoint failed: {reason}"));
                }
            }
        }
    }
}

struct Service {
    config: CheckpointConfig,
    shared: Arc<Shared>,
    job_events: Sender<Event>,
    board: Arc<StatusBoard>,
    queue: VecDeque<Request>,
    /// Why requests are refused from now on (the job is ending).
    ending: Option<String>,
    /// The lowest epoch the next checkpoint may use.
    next_epoch: u64,
    /// Ranks whose process ended or whose control connection closed. A rank that already
    /// delivered what a phase waits for may leave (it finished its part and went on to exit);
    /// one that did not fails the checkpoint.
    gone: Vec<Gone>,
}

/// A rank that left the job, and why.
struct Gone {
    rank: u32,
    why: String,
    /// When the service heard of it.
    since: Instant,
}

impl Gone {
    fn new(rank: u32, why: String) -> Self {
        Self {
            rank,
            why,
            since: Instant::now(),
        }
    }

    /// The checkpoint fails because this rank left before it delivered.
    fn stop(&self) -> Stop {
        Stop::Failed(format!("rank {} {}", self.rank, self.why))
    }
}

/// How often a phase looks again at a rank that ended while its control connection is still
/// being read.
const GONE_RECHECK: Duration = Duration::from_millis(10);

/// What the ranks that left mean to a phase still waiting for some of them.
#[derive(Default)]
struct LeftEarly {
    /// The checkpoint fails: a rank left without delivering.
    stop: Option<Stop>,
    /// A rank that has not delivered ended, but what it sent before its end may still be
    /// read from its connection.
    unsettled: bool,
}

/// What the ranks saved: the agreed safepoint, every rank's part, (with node stores) where
/// each part is kept,
/// and the manifest entries of the parity files.
type Saved = (
    u64,
    Vec<PartDone>,
    Vec<Option<PartStored>>,
    BTreeMap<String, String>,
);

/// How a wait for the ranks ended.
enum Stop {
    /// A rank failed or ended, or nobody answered in time: the sentence says which.
    Failed(String),
    /// A rank gave the checkpoint up for a reason that passes (it was held in a region with
    /// checkpoints disabled): the request is taken again, a few times.
    Retry(String),
    /// The service must stop (the job is over).
    Shutdown,
}

impl Service {
    fn run(mut self, inbox: &Receiver<CkptEvent>) {
        // A job that continues a snapshot (or reuses a name) starts with its last one.
        if let Ok(store) = Store::open(Some(&self.config.snapshot_dir))
            && let Ok(Some(latest)) = store.latest(self.shared.job_name())
        {
            self.board
                .update(|s| s.last = Some((latest.name(), latest.path().to_owned())));
        }
        loop {
            let event = if self.queue.is_empty() {
                match inbox.recv() {
                    Ok(event) => event,
                    Err(_) => break,
                }
            } else {
                match self.serve_next(inbox) {
                    Ok(()) => continue,
                    Err(()) => break,
                }
            };
            if !self.handle_idle(event) {
                break;
            }
        }
        let why = self
            .ending
            .clone()
            .unwrap_or_else(|| format!("job {} has ended", self.shared.job_name()));
        for request in self.queue.drain(..) {
            request.answer(Err(why.clone()));
        }
    }

    /// An event while no checkpoint runs. False: stop the service.
    fn handle_idle(&mut self, event: CkptEvent) -> bool {
        match event {
            CkptEvent::Request { terminate, origin } => {
                let request = Request {
                    terminate,
                    origin,
                    received: Instant::now(),
                };
                if let Some(why) = &self.ending {
                    request.answer(Err(why.clone()));
                } else if matches!(request.origin, Origin::Timer) && !self.queue.is_empty() {
                    tracing::debug!("a periodic checkpoint is skipped: another one is waiting");
                } else {
                    self.queue.push_back(request);
                }
            }
            CkptEvent::JobEnding { why } => {
                self.set_ending(&why);
            }
            CkptEvent::Shutdown => return false,
            // Late answers of a cancelled checkpoint, and ranks leaving between checkpoints.
            CkptEvent::Count(_)
            | CkptEvent::Part(_)
            | CkptEvent::Failed(_)
            | CkptEvent::StoreReady { .. }
            | CkptEvent::Stored(_)
            | CkptEvent::ParityStored(_)
            | CkptEvent::RankGone { .. } => {}
        }
        true
    }

    /// From now on requests are refused with the returned sentence (the first reason given).
    fn set_ending(&mut self, why: &str) -> String {
        let job = self.shared.job_name();
        self.ending
            .get_or_insert_with(|| format!("job {job} is ending: {why}"))
            .clone()
    }

    /// Serves the first queued request. Err: the service must stop.
    fn serve_next(&mut self, inbox: &Receiver<CkptEvent>) -> Result<(), ()> {
        let Some(request) = self.queue.pop_front() else {
            return Ok(());
        };
        if let Some(why) = &self.ending {
            request.answer(Err(why.clone()));
            return Ok(());
        }
        match self.wait_until_ready(inbox, matches!(request.origin, Origin::Timer)) {
            Ok(true) => {}
            Ok(false) => {
                // A timer tick before the ranks registered or after they began to leave:
                // nothing to report.
                return Ok(());
            }
            Err(Stop::Failed(why) | Stop::Retry(why)) => {
                request.answer(Err(why));
                return Ok(());
            }
            Err(Stop::Shutdown) => {
                self.queue.push_front(request);
                return Err(());
            }
        }
        let terminate = request.terminate;
        // A checkpoint and a migration do not overlap (both freeze links).
        let shared = self.shared.clone();
        let _no_migration = shared.migrations.hold_for_checkpoint();
        match self.take_with_retries(inbox, request.received) {
            Ok(done) => {
                let snapshot = done.name.clone();
                request.answer(Ok(done));
                if terminate {
                    self.ending = Some(format!(
                        "job {} ended after checkpoint {snapshot}",
                        self.shared.job_name()
                    ));
                    let _ = self.job_events.send(Event::Checkpointed { snapshot });
                }
                Ok(())
            }
            Err(Stop::Failed(why) | Stop::Retry(why)) => {
                let timer = matches!(request.origin, Origin::Timer);
                let at_the_end = self.ending.is_some()
                    || matches!(self.shared.readiness(), Readiness::ShuttingDown(_));
                if timer && at_the_end {
                    // The job ended under the periodic checkpoint: that is no news.
                    tracing::info!("the periodic checkpoint gave way to the end of the job: {why}");
                } else {
                    request.answer(Err(why));
                }
                Ok(())
            }
            Err(Stop::Shutdown) => {
                request.answer(Err(format!(
                    "job {} ended during the checkpoint",
                    self.shared.job_name()
                )));
                Err(())
            }
        }
    }

    /// Waits until every rank has registered. Ok(false): a timer request that is skipped.
    fn wait_until_ready(&mut self, inbox: &Receiver<CkptEvent>, timer: bool) -> Result<bool, Stop> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            match self.shared.readiness() {
                Readiness::Ready => return Ok(true),
                // A tick at the end of a job is not worth a message.
                Readiness::ShuttingDown(_) if timer => return Ok(false),
                Readiness::ShuttingDown(why) => return Err(Stop::Failed(why)),
                Readiness::NoneRegistered { since } if since.elapsed() > REGISTRATION_GRACE => {
                    return if timer {
                        Ok(false)
                    } else {
                        Err(Stop::Failed(format!(
                            "job {} has no MPI ranks: none of its ranks registered with the \
                             coordinator, and only MPI programs can be checkpointed (a \
                             one-rank program without MPI too when started with --crs image)",
                            self.shared.job_name()
                        )))
                    };
                }
                Readiness::NoneRegistered { .. } | Readiness::Registering => {
                    if timer {
                        return Ok(false);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(Stop::Failed(format!(
                    "the ranks of job {} did not all register within {}",
                    self.shared.job_name(),
                    show_duration(self.config.timeout)
                )));
            }
            match inbox.recv_timeout(REGISTRATION_POLL) {
                Ok(event) => self.handle_during(event)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(Stop::Shutdown),
            }
        }
    }

    /// An event that is not an answer of the running checkpoint: requests are queued.
    fn handle_during(&mut self, event: CkptEvent) -> Result<(), Stop> {
        match event {
            CkptEvent::Request { terminate, origin } => {
                let request = Request {
                    terminate,
                    origin,
                    received: Instant::now(),
                };
                if let Some(why) = &self.ending {
                    request.answer(Err(why.clone()));
                } else if matches!(request.origin, Origin::Timer) {
                    tracing::debug!("a periodic checkpoint is skipped: one is running");
                } else {
                    self.queue.push_back(request);
                }
                Ok(())
            }
            CkptEvent::JobEnding { why } => Err(Stop::Failed(self.set_ending(&why))),
            CkptEvent::Shutdown => Err(Stop::Shutdown),
            CkptEvent::Count(_)
            | CkptEvent::Part(_)
            | CkptEvent::Failed(_)
            | CkptEvent::StoreReady { .. }
            | CkptEvent::Stored(_)
            | CkptEvent::ParityStored(_)
            | CkptEvent::RankGone { .. } => Ok(()),
        }
    }

    /// [`Service::take`], asked again after a pause when a rank gave it up for a reason that
    /// passes, at most [`RETRIES`] times: a region with checkpoints disabled that waits for a
    /// message a frozen peer sends only after its capture ends only if the checkpoint is
    /// given up, and the next attempt usually finds every rank outside such a region.
    fn take_with_retries(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        received: Instant,
    ) -> Result<CheckpointDone, Stop> {
        let mut attempt = 0;
        loop {
            match self.take(inbox, received) {
                Err(Stop::Retry(why)) if attempt < RETRIES => {
                    attempt += 1;
                    let pause = RETRY_PAUSE * attempt;
                    say(&format!(
                        "{why}; asking again in {} ms ({attempt} of {RETRIES})",
                        pause.as_millis()
                    ));
                    self.pause(inbox, pause)?;
                }
                outcome => return outcome,
            }
        }
    }

    /// Waits `pause`, queueing the requests that come meanwhile.
    fn pause(&mut self, inbox: &Receiver<CkptEvent>, pause: Duration) -> Result<(), Stop> {
        let until = Instant::now() + pause;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match inbox.recv_timeout(left) {
                Ok(CkptEvent::RankGone { rank, why }) => self.gone.push(Gone::new(rank, why)),
                Ok(event) => self.handle_during(event)?,
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => return Err(Stop::Shutdown),
            }
        }
    }

    /// Takes one global checkpoint of a request received at `received`.
    fn take(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        received: Instant,
    ) -> Result<CheckpointDone, Stop> {
        let job = self.shared.job_name().to_owned();
        let store = Store::open(Some(&self.config.snapshot_dir)).map_err(|e| {
            Stop::Failed(format!(
                "cannot open the snapshot store: {}",
                error_chain(&e)
            ))
        })?;
        let epoch = match store.next_epoch(&job) {
            Ok(next) => self.next_epoch.max(next),
            Err(e) => {
                return Err(Stop::Failed(format!(
                    "cannot read the snapshots of job {job}: {}",
                    error_chain(&e)
                )));
            }
        };
        self.next_epoch = epoch + 1;
        let pending = store.begin(&job, epoch).map_err(|e| {
            Stop::Failed(format!(
                "cannot start checkpoint {epoch} of job {job}: {}",
                error_chain(&e)
            ))
        })?;
        let staging = pending.path().to_owned();
        let size = self.shared.size();
        tracing::info!(job, epoch, dir = %staging.display(), "checkpoint started");
        let asked = Instant::now();
        let outcome = self.protocol(inbox, epoch, size, &staging);
        // No rank can have been held by this checkpoint for longer than the two rounds.
        let stall_bound = asked.elapsed();
        let stores = self.shared.stores().filter(|f| f.storage.is_some());
        let keep_node_stores = |store: &Store| {
            if let Some(facts) = &stores {
                let epochs = store.epochs(&job).unwrap_or_default();
                facts.send_all(&Message::StoreKeep(StoreKeep { epochs }));
            }
        };
        let (parts, stored, parity) = match outcome {
            Ok((safepoint, parts, stored, parity)) => ((safepoint, parts), stored, parity),
            Err(stop) => {
                self.board.update(|s| s.running = None);
                self.shared
                    .send_all_quietly(&Message::CheckpointCancel(CheckpointCancel { epoch }));
                pending.abandon();
                keep_node_stores(&store);
                let failed = |why| format!("checkpoint {epoch} of job {job} failed: {why}");
                return Err(match stop {
                    Stop::Failed(why) => Stop::Failed(failed(why)),
                    Stop::Retry(why) => Stop::Retry(failed(why)),
                    Stop::Shutdown => Stop::Shutdown,
                });
            }
        };
        let (safepoint, parts) = parts;
        self.board.update(|s| s.running = None);
        let in_transit: u64 = parts.iter().map(|p| p.in_transit).sum();
        let info = self.shared.manifest_facts();
        let mut extra = BTreeMap::new();
        extra.insert("crs".to_owned(), self.config.crs.clone());
        if let Some(facts) = &stores
            && let Some(template) = &facts.storage
        {
            extra.insert("storage".to_owned(), template.clone());
            extra.insert("launcher".to_owned(), facts.launcher.clone());
            extra.insert("mirror".to_owned(), facts.mirror.to_string());
            if facts.parity > 0 {
                extra.insert("parity".to_owned(), facts.parity.to_string());
            }
        }
        extra.extend(parity);
        let mut infos = Vec::with_capacity(parts.len());
        for part in &parts {
            extra.insert(
                format!("in_transit.rank.{}", part.rank),
                part.in_transit.to_string(),
            );
            let stored_part = stored.get(part.rank as usize).and_then(Option::as_ref);
            let info = match stored_part {
                Some(stored) => Ok(stored_part_info(part, stored)),
                None => part_info(&staging, part),
            };
            match info {
                Ok(info) => infos.push(info),
                Err(why) => {
                    self.shared
                        .send_all_quietly(&Message::CheckpointCancel(CheckpointCancel { epoch }));
                    pending.abandon();
                    keep_node_stores(&store);
                    return Err(Stop::Failed(format!(
                        "checkpoint {epoch} of job {job} failed: the part of rank {}: {why}",
                        part.rank
                    )));
                }
            }
        }
        // Request to commit, measured as the commit begins (every part is there and checked).
        extra.insert(
            store::EXTRA_DURATION_MS.to_owned(),
            received.elapsed().as_millis().to_string(),
        );
        extra.insert(
            store::EXTRA_STALL_BOUND_MS.to_owned(),
            stall_bound.as_millis().to_string(),
        );
        let input = ManifestInput {
            job: job.clone(),
            epoch,
            command: info.command,
            env: info.env,
            cwd: PathBuf::from(info.cwd),
            placement: info.placement,
            parts: infos,
            in_transit_messages: in_transit,
            safepoint,
            transport: info.transport,
            extra,
        };
        let snapshot = match pending.commit(input) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                keep_node_stores(&store);
                return Err(Stop::Failed(format!(
                    "committing checkpoint {epoch} of job {job} failed: {}",
                    error_chain(&e)
                )));
            }
        };
        let done = CheckpointDone {
            name: snapshot.name(),
            path: snapshot.path().display().to_string(),
            epoch,
            in_transit,
        };
        tracing::info!(job, epoch, snapshot = done.name, "checkpoint committed");
        self.board
            .update(|s| s.last = Some((done.name.clone(), snapshot.path().to_owned())));
        if let Some(keep) = self.config.keep
            && let Err(e) = store.gc(keep, Some(&job))
        {
            say(&format!(
                "removing old snapshots of job {job} failed: {}",
                error_chain(&e)
            ));
        }
        // Mirrors and node copies go with their snapshots.
        keep_node_stores(&store);
        Ok(done)
    }

    /// The two rounds with the ranks. Returns the agreed safepoint and every rank's part.
    fn protocol(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        epoch: u64,
        size: u32,
        staging: &Path,
    ) -> Result<Saved, Stop> {
        let progress = |phase, reported| Progress {
            epoch,
            phase,
            reported,
            ranks: size,
        };
        self.board
            .update(|s| s.running = Some(progress("counting", 0)));
        self.shared
            .send_all(&Message::Checkpoint(Checkpoint { epoch }))
            .map_err(Stop::Failed)?;
        let mut counts: Vec<Option<u64>> = vec![None; size as usize];
        self.collect(
            inbox,
            epoch,
            "its safepoint count",
            &mut counts,
            true,
            |event| match event {
                CkptEvent::Count(c) if c.epoch == epoch => Some((c.rank, c.count)),
                _ => None,
            },
            |board, reported| board.update(|s| s.running = Some(progress("counting", reported))),
        )?;
        let safepoint = counts.iter().flatten().copied().max().unwrap_or(0) + 1;
        let stores = self.shared.stores().filter(|f| f.storage.is_some());
        let rank_nodes = self.shared.rank_nodes();
        // With node stores, each rank writes into its own node's store.
        let node_dirs = match &stores {
            Some(facts) => Some(self.prepare_node_stores(inbox, epoch, facts)?),
            None => None,
        };
        self.shared
            .send_each(|rank| {
                let dir = node_dirs
                    .as_ref()
                    .and_then(|dirs| dirs.get(rank_nodes.get(rank as usize)?))
                    .cloned()
                    .unwrap_or_else(|| staging.display().to_string());
                Message::CheckpointAt(CheckpointAt {
                    epoch,
                    safepoint,
                    dir,
                })
            })
            .map_err(Stop::Failed)?;
        // Published once every rank has been told where to save: a rank that reads its
        // control link after this sees CHECKPOINT_AT.
        self.board
            .update(|s| s.running = Some(progress("saving", 0)));
        let mut parts: Vec<Option<PartDone>> = vec![None; size as usize];
        self.collect(
            inbox,
            epoch,
            "its part",
            &mut parts,
            true,
            |event| match event {
                CkptEvent::Part(p) if p.epoch == epoch => Some((p.rank, p)),
                _ => None,
            },
            |board, reported| board.update(|s| s.running = Some(progress("saving", reported))),
        )?;
        let parts: Vec<PartDone> = parts.into_iter().flatten().collect();
        let stored = match &stores {
            Some(facts) => self.keep_parts(inbox, epoch, facts, &parts, &rank_nodes)?,
            None => vec![None; parts.len()],
        };
        let parity = match &stores {
            Some(facts) if facts.parity > 0 => {
                self.build_parity(inbox, epoch, facts, &parts, &rank_nodes)?
            }
            _ => BTreeMap::new(),
        };
        Ok((safepoint, parts, stored, parity))
    }

    /// `--parity G`: the daemons in host order form groups of G; for each group and each
    /// slot j (the j-th rank of each of its nodes) the first node of the next group builds the
    /// XOR of those parts. Returns the manifest entries once every parity file is durable.
    fn build_parity(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        epoch: u64,
        facts: &StoreFacts,
        parts: &[PartDone],
        rank_nodes: &[String],
    ) -> Result<BTreeMap<String, String>, Stop> {
        let groups: Vec<&[Arc<DaemonLink>]> = facts.daemons.chunks(facts.parity as usize).collect();
        let mut wanted: Vec<ParityEntry> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let holder = &groups[(g + 1) % groups.len()][0];
            let slots: Vec<Vec<u32>> = group
                .iter()
                .map(|d| {
                    (0..rank_nodes.len() as u32)
                        .filter(|&r| rank_nodes[r as usize] == d.node)
                        .collect()
                })
                .collect();
            let deepest = slots.iter().map(Vec::len).max().unwrap_or(0);
            for j in 0..deepest {
                let ranks: Vec<u32> = slots.iter().filter_map(|s| s.get(j).copied()).collect();
                let members = ranks
                    .iter()
                    .filter_map(|&r| parts.iter().find(|p| p.rank == r))
                    .map(|p| wire::PartSource {
                        rank: p.rank,
                        size: p.size,
                        crc32c: p.crc32c,
                        holders: facts
                            .peer(&rank_nodes[p.rank as usize])
                            .into_iter()
                            .collect(),
                        rebuild: None,
                    })
                    .collect();
                let name = format!("parity-{g}-{j}");
                holder
                    .send(&Message::ParityBuild(ParityBuild {
                        epoch,
                        name: name.clone(),
                        members,
                    }))
                    .map_err(|e| {
                        Stop::Failed(format!(
                            "the daemon of node {} cannot be reached: {e}",
                            holder.node
                        ))
                    })?;
                wanted.push(ParityEntry {
                    name,
                    holder: holder.node.clone(),
                    size: 0,
                    crc32c: 0,
                    ranks,
                });
            }
        }
        let mut built: Vec<Option<ParityStored>> = vec![None; wanted.len()];
        self.collect(
            inbox,
            epoch,
            "a parity file",
            &mut built,
            false,
            |event| match event {
                CkptEvent::ParityStored(s) if s.epoch == epoch => {
                    let i = wanted.iter().position(|w| w.name == s.name)?;
                    Some((i as u32, s))
                }
                _ => None,
            },
            |_, _| {},
        )?;
        let mut extra = BTreeMap::new();
        for (mut entry, stored) in wanted.into_iter().zip(built.into_iter().flatten()) {
            if !stored.error.is_empty() {
                return Err(Stop::Failed(format!(
                    "node {} could not build {}: {}",
                    entry.holder, entry.name, stored.error
                )));
            }
            entry.size = stored.size;
            entry.crc32c = stored.crc32c;
            self.board
                .update(|status| status.redundancy_bytes.parity += stored.size);
            tracing::info!(
                "{} of epoch {epoch} (ranks {:?}) is on node {}",
                entry.name,
                entry.ranks,
                entry.holder
            );
            let (key, value) = entry.encode();
            extra.insert(key, value);
        }
        Ok(extra)
    }

    /// Asks every daemon to prepare its store for `epoch`; returns each node's directory.
    fn prepare_node_stores(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        epoch: u64,
        facts: &StoreFacts,
    ) -> Result<BTreeMap<String, String>, Stop> {
        facts.send_all(&Message::StoreBegin(StoreBegin { epoch }));
        let mut ready: Vec<Option<StoreReady>> = vec![None; facts.daemons.len()];
        self.collect(
            inbox,
            epoch,
            "its store's directory",
            &mut ready,
            false,
            |event| match event {
                CkptEvent::StoreReady { node, ready } if ready.epoch == epoch => {
                    let i = facts.daemons.iter().position(|d| d.node == node)?;
                    Some((i as u32, ready))
                }
                _ => None,
            },
            |_, _| {},
        )?;
        let mut dirs = BTreeMap::new();
        for (daemon, ready) in facts.daemons.iter().zip(ready.into_iter().flatten()) {
            if !ready.error.is_empty() {
                return Err(Stop::Failed(format!(
                    "the store of node {} cannot take the parts: {}",
                    daemon.node, ready.error
                )));
            }
            dirs.insert(daemon.node.clone(), ready.dir);
        }
        Ok(dirs)
    }

    /// Has every part checked by its node's daemon and copied to the node's partners; returns
    /// each rank's report once every part has its copies.
    fn keep_parts(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        epoch: u64,
        facts: &StoreFacts,
        parts: &[PartDone],
        rank_nodes: &[String],
    ) -> Result<Vec<Option<PartStored>>, Stop> {
        for part in parts {
            let node = rank_nodes
                .get(part.rank as usize)
                .cloned()
                .unwrap_or_default();
            let Some(daemon) = facts.daemon(&node) else {
                return Err(Stop::Failed(format!(
                    "rank {} runs on node `{node}`, which has no daemon",
                    part.rank
                )));
            };
            let keep = PartKeep {
                epoch,
                rank: part.rank,
                size: part.size,
                crc32c: part.crc32c,
                mirrors: facts.partners(&node),
            };
            daemon.send(&Message::PartKeep(keep)).map_err(|e| {
                Stop::Failed(format!("the daemon of node {node} cannot be reached: {e}"))
            })?;
        }
        let copies = 1 + (facts.mirror as usize).min(facts.daemons.len().saturating_sub(1));
        let mut stored: Vec<Option<PartStored>> = vec![None; parts.len()];
        self.collect(
            inbox,
            epoch,
            "the copies of its part",
            &mut stored,
            false,
            |event| match event {
                CkptEvent::Stored(s) if s.epoch == epoch => Some((s.rank, s)),
                _ => None,
            },
            |_, _| {},
        )?;
        for s in stored.iter().flatten() {
            if !s.error.is_empty() {
                return Err(Stop::Failed(format!(
                    "the part of rank {} could not be kept: {}",
                    s.rank, s.error
                )));
            }
            if s.nodes.len() < copies {
                return Err(Stop::Failed(format!(
                    "the part of rank {} is on {} node(s), {copies} are needed",
                    s.rank,
                    s.nodes.len()
                )));
            }
            tracing::info!(
                "part {} of epoch {epoch} is on nodes {}",
                s.rank,
                s.nodes.join(",")
            );
        }
        // Every holder but the rank's own node received a copy.
        let mirrored: u64 = stored
            .iter()
            .flatten()
            .filter_map(|s| {
                let size = parts.iter().find(|p| p.rank == s.rank)?.size;
                Some(size * s.nodes.len().saturating_sub(1) as u64)
            })
            .sum();
        self.board
            .update(|status| status.redundancy_bytes.mirrored += mirrored);
        Ok(stored)
    }

    /// Which of the ranks that left have not delivered their `slots`. The end of a process is
    /// reported apart from its control connection, so a report the rank wrote just before it
    /// exited (a part written at MPI_Finalize) may still be unread when its end is known: such
    /// a rank has left without delivering only once its connection is closed, or
    /// `END_REPORT_WAIT` after its end.
    fn left_early<T>(&self, slots: &[Option<T>]) -> LeftEarly {
        let mut left = LeftEarly::default();
        for g in self.undelivered(slots) {
            if self.shared.connected(g.rank) && g.since.elapsed() < END_REPORT_WAIT {
                left.unsettled = true;
            } else {
                left.stop = Some(g.stop());
                return left;
            }
        }
        left
    }

    /// The ranks that left without delivering their `slots`.
    fn undelivered<'a, T>(&'a self, slots: &'a [Option<T>]) -> impl Iterator<Item = &'a Gone> {
        self.gone
            .iter()
            .filter(|g| slots.get(g.rank as usize).is_some_and(Option::is_none))
    }

    /// Why a phase waiting for the ranks' `slots` stops at the job's end (`ending`). The
    /// launcher reports the end of a rank before the end of the job that it causes, so a
    /// rank that left without delivering is named, as [`Service::left_early`] names it once
    /// its connection is read to its end: which of the two reaches the service first
    /// depends on how busy the machine is, and the requester must not see that.
    fn stop_at_ending<T>(&self, slots: &[Option<T>], by_rank: bool, ending: String) -> Stop {
        let named = by_rank.then(|| self.undelivered(slots).next()).flatten();
        named.map_or(Stop::Failed(ending), Gone::stop)
    }

    /// Waits until every rank (`by_rank`) or daemon has sent what `pick` extracts, or a rank
    /// fails.
    #[allow(clippy::too_many_arguments)]
    fn collect<T>(
        &mut self,
        inbox: &Receiver<CkptEvent>,
        epoch: u64,
        what: &str,
        slots: &mut [Option<T>],
        by_rank: bool,
        pick: impl Fn(CkptEvent) -> Option<(u32, T)>,
        report: impl Fn(&StatusBoard, u32),
    ) -> Result<(), Stop> {
        let deadline = Instant::now() + self.config.timeout;
        while let Some(missing) = slots.iter().position(Option::is_none) {
            let waiting = if by_rank {
                self.left_early(slots)
            } else {
                LeftEarly::default()
            };
            if let Some(stop) = waiting.stop {
                return Err(stop);
            }
            let mut left = deadline.saturating_duration_since(Instant::now());
            if waiting.unsettled {
                left = left.min(GONE_RECHECK);
            }
            let event = match inbox.recv_timeout(left) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) if waiting.unsettled && !left.is_zero() => continue,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Stop::Failed(format!(
                        "rank {missing} did not send {what} within {}",
                        show_duration(self.config.timeout)
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(Stop::Shutdown),
            };
            match event {
                CkptEvent::Failed(f) if f.epoch == epoch => {
                    let why = format!("rank {}: {}", f.rank, f.reason);
                    return Err(if f.retry {
                        Stop::Retry(why)
                    } else {
                        Stop::Failed(why)
                    });
                }
                CkptEvent::RankGone { rank, why } => self.gone.push(Gone::new(rank, why)),
                event @ (CkptEvent::Count(_)
                | CkptEvent::Part(_)
                | CkptEvent::StoreReady { .. }
                | CkptEvent::Stored(_)
                | CkptEvent::ParityStored(_)) => {
                    if let Some((rank, value)) = pick(event)
                        && let Some(slot) = slots.get_mut(rank as usize)
                    {
                        *slot = Some(value);
                        let reported = slots.iter().filter(|s| s.is_some()).count() as u32;
                        report(&self.board, reported);
                    }
                }
                CkptEvent::Failed(_) => {}
                CkptEvent::JobEnding { why } => {
                    let ending = self.set_ending(&why);
                    return Err(self.stop_at_ending(slots, by_rank, ending));
                }
                other => self.handle_during(other)?,
            }
        }
        Ok(())
    }
}

/// The manifest entry of a part a rank reported: read back from its file, whose header and
/// trailer must agree with the report.
fn part_info(staging: &Path, done: &PartDone) -> Result<PartInfo, String> {
    if done.file.contains('/') || done.file.starts_with('.') {
        return Err(format!("`{}` is not a file name", done.file));
    }
    let reader = PartReader::open(&staging.join(&done.file)).map_err(|e| error_chain(&e))?;
    if reader.rank() != done.rank {
        return Err(format!("the file holds rank {}", reader.rank()));
    }
    if reader.size() != done.size || reader.crc32c() != done.crc32c {
        return Err(format!(
            "the file has {} bytes and checksum {:08x}, the rank reported {} bytes and {:08x}",
            reader.size(),
            reader.crc32c(),
            done.size,
            done.crc32c
        ));
    }
    if reader.checkpointer() == "image" {
        // The part names the rank's process image: it must be there with its chain, of the
        // recorded size and trailer checksum, with a valid header and trailer, before the
        // snapshot may commit. It is not read whole here: the writer checksummed every byte
        // it wrote, reading it back from the page cache would prove nothing about the disk
        // and would take the ranks' CPU, and the restorer reads it whole and checks every
        // checksum before it changes anything.
        let bytes = reader
            .section(image::partref::SECTION)
            .map_err(|e| error_chain(&e))?;
        image::ImageRef::decode(&bytes)?.check(staging, done.rank)?;
    }
    Ok(PartInfo {
        rank: done.rank,
        checkpointer: reader.checkpointer().to_owned(),
        file: done.file.clone(),
        size: done.size,
        crc32c: done.crc32c,
        sections: reader.section_infos().cloned().collect(),
        nodes: Vec::new(),
    })
}

/// The manifest entry of a part kept in node stores, from its rank's and its daemon's reports.
fn stored_part_info(done: &PartDone, stored: &PartStored) -> PartInfo {
    PartInfo {
        rank: done.rank,
        checkpointer: stored.checkpointer.clone(),
        file: done.file.clone(),
        size: done.size,
        crc32c: done.crc32c,
        sections: stored
            .sections
            .iter()
            .map(|(name, len, crc32c)| store::SectionInfo {
                name: name.clone(),
                len: *len,
                crc32c: *crc32c,
            })
            .collect(),
        nodes: stored.nodes.clone(),
    }
}

/// `90s`, `10m`, `1h`, `500ms`: how the command line spells durations.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.checked_rem(3_600_000) == Some(0) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.checked_rem(60_000) == Some(0) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.checked_rem(1000) == Some(0) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::MigrationOutcome;

    #[test]
    fn status_round_trips() {
        let status = CheckpointStatus {
            snapshot_dir: "/s".into(),
            last: Some(("j.2".into(), "/s/j/2".into())),
            running: Some(Progress {
                epoch: 3,
                phase: "saving",
                reported: 1,
                ranks: 4,
            }),
            recoveries: vec![
                Recovery {
                    failure: "node n2 failed (its daemon | closed)".into(),
                    snapshot: "j.1".into(),
                    recovered_ms: Some(120),
                },
                Recovery {
                    failure: "rank 1 (pid 3) was killed".into(),
                    snapshot: "j.2".into(),
                    recovered_ms: None,
                },
            ],
            crs: "image".into(),
            nodes: vec!["n1".into(), "n2".into()],
            migrations: MigrationStats::default(),
            redundancy_bytes: RedundancyBytes {
                mirrored: 4096,
                parity: 512,
            },
        };
        let mut status = status;
        status.migrations.record(Migration {
            rank: 3,
            from: "n1".into(),
            to: "n2".into(),
            outcome: MigrationOutcome::Done {
                total_us: 1500,
                transfer_us: 700,
                bytes: 1 << 20,
            },
        });
        status.migrations.record(Migration {
            rank: 1,
            from: "n2".into(),
            to: "n1".into(),
            outcome: MigrationOutcome::Failed("node n1: no | room\nleft".into()),
        });
        let decoded = decode_status(&encode_status(&status)).expect("decoded");
        assert_eq!(decoded.migrations.done, 1);
        assert_eq!(decoded.migrations.failed, 1);
        assert_eq!(
            decoded.migrations.recent[1].outcome,
            MigrationOutcome::Failed("node n1: no | room left".into())
        );
        status.migrations.recent[1].outcome =
            MigrationOutcome::Failed("node n1: no | room left".into());
        assert_eq!(decoded, status);
        let idle = CheckpointStatus {
            snapshot_dir: "/s".into(),
            ..CheckpointStatus::default()
        };
        assert_eq!(decode_status(&encode_status(&idle)), Some(idle));
    }

    #[test]
    fn a_closed_board_s_file_stays_removed_whoever_still_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("j.checkpoint");
        let board = Arc::new(StatusBoard::new(file.clone(), "/s".into(), "image".into()));
        assert!(file.exists());
        let late_writer = board.clone();
        drop(ClosesBoard(board));
        assert!(!file.exists());
        late_writer.set_nodes(vec!["n1".into()]);
        late_writer.set_recoveries(Vec::new());
        assert!(
            !file.exists(),
            "a write after the job's end brought the file back"
        );
    }

    /// A service of a 3-rank job whose ranks are all connected (the other ends of their
    /// control connections are returned, and must be kept open); `dir` holds its files.
    fn service(dir: &Path) -> (Service, Vec<std::os::unix::net::UnixStream>) {
        let (events, _) = mpsc::channel();
        let (ckpt_events, _) = mpsc::channel();
        let board = Arc::new(StatusBoard::new(
            dir.join("j.checkpoint"),
            dir.into(),
            "image".into(),
        ));
        let info = crate::server::JobInfo {
            name: "j".into(),
            launcher_pid: 1,
            command: Vec::new(),
            started_at: 0,
            env: Vec::new(),
            cwd: "/".into(),
            transport: "shm".into(),
            crs: "image".into(),
            recovery: None,
        };
        let shared = Arc::new(Shared::new(
            info,
            crate::table::ProcessTable::new(3, "n"),
            0,
            events.clone(),
            ckpt_events,
            Arc::downgrade(&board),
        ));
        let mut peers = Vec::new();
        for link in &mut shared.lock().links {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            *link = Some(crate::server::Link::Unix(ours));
            peers.push(theirs);
        }
        let service = Service {
            config: CheckpointConfig {
                snapshot_dir: dir.into(),
                crs: "image".into(),
                every: None,
                keep: None,
                timeout: DEFAULT_CHECKPOINT_TIMEOUT,
            },
            shared,
            job_events: events,
            board,
            queue: VecDeque::new(),
            ending: None,
            next_epoch: 1,
            gone: Vec::new(),
        };
        (service, peers)
    }

    /// What a phase of `service` waiting for ranks 1 and 2 fails with, given `events`.
    fn phase_failure(service: &mut Service, events: Vec<CkptEvent>) -> String {
        let (to_service, inbox) = mpsc::channel();
        for event in events {
            to_service.send(event).unwrap();
        }
        let mut slots = [Some(()), None, None];
        match service.collect(
            &inbox,
            1,
            "its count",
            &mut slots,
            true,
            |_| None,
            |_, _| {},
        ) {
            Err(Stop::Failed(why)) => why,
            Err(Stop::Retry(why)) => panic!("retried: {why}"),
            Err(Stop::Shutdown) => panic!("shut down"),
            Ok(()) => panic!("the phase completed"),
        }
    }

    /// The launcher reports a killed rank's end and then the job's end it causes, while the
    /// rank's control connection may not have been read to its end yet (a loaded machine):
    /// the checkpoint still fails naming the rank, as it does when the connection's end was
    /// read first; later requests are refused with the job's end.
    #[test]
    fn a_phase_cut_short_by_a_killed_rank_names_the_rank_whichever_report_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut service, _peers) = service(dir.path());
        let why = phase_failure(
            &mut service,
            vec![
                CkptEvent::RankGone {
                    rank: 1,
                    why: "was killed by signal 9 (SIGKILL)".into(),
                },
                CkptEvent::JobEnding {
                    why: "rank 1 (pid 7) was killed by signal 9 (SIGKILL)".into(),
                },
            ],
        );
        assert_eq!(why, "rank 1 was killed by signal 9 (SIGKILL)");
        assert_eq!(
            service.ending.as_deref(),
            Some("job j is ending: rank 1 (pid 7) was killed by signal 9 (SIGKILL)")
        );
    }

    /// A job that ends while no rank has left (an interrupt) fails the phase with that.
    #[test]
    fn a_phase_cut_short_by_the_job_s_end_says_the_job_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (mut service, _peers) = service(dir.path());
        let why = phase_failure(
            &mut service,
            vec![CkptEvent::JobEnding {
                why: "received SIGINT".into(),
            }],
        );
        assert_eq!(why, "job j is ending: received SIGINT");
    }

    #[test]
    fn durations() {
        assert_eq!(show_duration(Duration::from_secs(600)), "10m");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(show_duration(Duration::from_secs(30)), "30s");
    }
}
