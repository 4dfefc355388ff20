//! Process migration, the coordinator's side (ChaRM4MPI §2.2; the rank's side is
//! `engine::migrate`, the daemons' `node::migrate`).
//!
//! 1. A tool sends MIGRATE_REQUEST(rank, node). It is checked (a job on several nodes with
//!    `--crs image`, a rank and node of the job, not the rank's node, every rank running, no
//!    migration under way) and answered with ERROR otherwise.
//! 2. MIGRATE_OUT goes to the rank and MIGRATE_PEER to every other rank. The rank drains,
//!    captures and reports MIGRATE_CAPTURED (path of its image on its node); it then waits.
//! 3. MIGRATE_SEND asks the source daemon to stream the image to the target daemon (their
//!    authenticated store connection); the target starts `mpicr-restore` for it, reports
//!    RANK_STARTED, and the source daemon reports MIGRATE_SENT with the copy's duration.
//! 4. The restored rank registers through the target daemon: its row gets the new node, pid
//!    and address, and REFRESH goes to every rank. It answers MIGRATE_ARRIVED once its links
//!    are up; the original process is told MIGRATE_ARRIVED (it exits) and the tool
//!    MIGRATE_DONE.
//!
//! A failure before the arrival (the capture, the copy, the restore) puts the row back,
//! tells the original MIGRATE_FAILED (it computes on where it was) and sends REFRESH with the
//! old address (the peers thaw their links). A node of the migration that fails ends the job
//! or rolls it back like any node failure (the snapshots never hold a half-done migration:
//! checkpoints and migrations take turns); the tool is told so, and the failure's cause in
//! the job's log names the migration.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wire::stream::{read_message, write_message};
use wire::{
    Message, MigrateArrived, MigrateDone, MigrateFailed, MigrateOut, MigratePeer, MigrateRequest,
    MigrateSend, ProcEntry, ProcState, Refresh,
};

use crate::activity::{Migration, MigrationOutcome};
use crate::client::{ClientError, JobRef};
use crate::runtime_dir::RuntimeDir;
use crate::server::{Link, Readiness, Shared, State};

/// How long a migration may take before the tool is told it failed.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// The migrations of a job.
#[derive(Debug, Default)]
pub(crate) struct Migrations {
    inner: Mutex<Inner>,
    /// Signalled when the source daemon reports the copy (MIGRATE_SENT).
    copied: Condvar,
}

#[derive(Debug, Default)]
struct Inner {
    seq: u64,
    active: Option<Active>,
    /// Ranks that migrated at least once (their old processes' ends are not failures).
    moved: Vec<u32>,
    /// A checkpoint is being taken: no migration starts.
    checkpointing: bool,
}

/// Held by the checkpoint service while it takes a checkpoint.
pub(crate) struct CheckpointHold<'a>(&'a Migrations);

impl Drop for CheckpointHold<'_> {
    fn drop(&mut self) {
        self.0.lock().checkpointing = false;
    }
}

#[derive(Debug)]
struct Active {
    rank: u32,
    seq: u64,
    from: String,
    to: String,
    started: Instant,
    reply: Sender<Result<MigrateDone, String>>,
    /// The rank's row and started pid before the migration.
    old: ProcEntry,
    old_spawned: u32,
    /// The original's control connection once it has captured (it waits for the verdict).
    old_link: Option<Link>,
    captured: bool,
    /// The pid of the restorer on the target, once started.
    new_pid: u32,
    bytes: u64,
    transfer_us: u64,
    /// The source daemon's MIGRATE_SENT came (`bytes` and `transfer_us` are the copy's).
    copy_reported: bool,
}

impl Migrations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until no migration runs, then keeps new ones from starting until the hold is
    /// dropped (checkpoints and migrations both freeze links, so they take turns).
    pub(crate) fn hold_for_checkpoint(&self) -> CheckpointHold<'_> {
        loop {
            {
                let mut inner = self.lock();
                if inner.active.is_none() {
                    inner.checkpointing = true;
                    return CheckpointHold(self);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether messages about `rank` may come from the daemon of `node` though the rank was
    /// placed elsewhere: it migrates there, or it migrated (to there, or away from there).
    pub(crate) fn hosted(&self, shared: &Shared, rank: u32, node: &str) -> bool {
        // Lock order everywhere: the job's state, then the migrations.
        let placed_here = shared.lock().table.placed_on(rank) == Some(node);
        let inner = self.lock();
        if inner
            .active
            .as_ref()
            .is_some_and(|a| a.rank == rank && a.to == node)
        {
            return true;
        }
        // A rank that moved on may still have its old process end on a node it left.
        inner.moved.contains(&rank) || placed_here
    }
}

fn send(link: &Link, message: &Message) {
    if let Err(e) = write_message(&mut &*link, message) {
        tracing::debug!("cannot send {:?}: {e}", message.command());
    }
}

fn refresh_all(state: &State) {
    let refresh = Message::Refresh(Refresh {
        table: state.table.entries().to_vec(),
    });
    for link in state.links.iter().flatten() {
        send(link, &refresh);
    }
}

/// A tool's MIGRATE_REQUEST: check, start, wait, answer.
pub(crate) fn serve(stream: &Link, shared: &Shared, request: &MigrateRequest) {
    let answer = match start(shared, request) {
        Ok(done) => match done.recv_timeout(MIGRATION_TIMEOUT) {
            Ok(Ok(done)) => Message::MigrateDone(done),
            Ok(Err(why)) => Message::Error(why),
            Err(RecvTimeoutError::Timeout) => {
                fail(
                    shared,
                    request.rank,
                    format!("it took longer than {}s", MIGRATION_TIMEOUT.as_secs()),
                );
                Message::Error(format!(
                    "migration of rank {} timed out; it computes on at its node",
                    request.rank
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Message::Error(format!("job {} has ended", shared.job_name()))
            }
        },
        Err(why) => Message::Error(why),
    };
    if let Err(e) = write_message(&mut &*stream, &answer) {
        tracing::info!("the migration's requester is gone: {e}");
    }
}

fn start(
    shared: &Shared,
    request: &MigrateRequest,
) -> Result<mpsc::Receiver<Result<MigrateDone, String>>, String> {
    let job = shared.job_name().to_owned();
    let rank = request.rank;
    let Some(stores) = shared.stores() else {
        return Err(format!(
            "job {job} runs on one machine; migration needs a job on several nodes (--hosts)"
        ));
    };
    if shared.crs() != "image" {
        return Err(format!(
            "job {job} uses the `{}` checkpointer; migration needs --crs image",
            shared.crs()
        ));
    }
    let size = shared.size();
    if rank >= size {
        return Err(format!(
            "job {job} has no rank {rank} (ranks 0-{})",
            size.saturating_sub(1)
        ));
    }
    if stores.daemon(&request.node).is_none() {
        let nodes: Vec<&str> = stores.daemons.iter().map(|d| d.node.as_str()).collect();
        return Err(format!(
            "node {} is not a node of job {job} with a daemon (its nodes: {})",
            request.node,
            nodes.join(", ")
        ));
    }
    match shared.readiness() {
        Readiness::Ready => {}
        Readiness::ShuttingDown(why) => return Err(why),
        _ => return Err(format!("job {job} is still starting; try again")),
    }
    let (reply, answer) = mpsc::channel();
    let state = shared.lock();
    let mut inner = shared.migrations.lock();
    if inner.checkpointing {
        return Err(format!(
            "job {job} is taking a checkpoint; try again once it is committed"
        ));
    }
    if let Some(a) = &inner.active {
        return Err(if a.rank == rank {
            format!("rank {rank} is already migrating (to node {})", a.to)
        } else {
            format!(
                "rank {} is migrating (to node {}); one migration at a time",
                a.rank, a.to
            )
        });
    }
    let entry = state.table.entries()[rank as usize].clone();
    if entry.node == request.node {
        return Err(format!("rank {rank} is already on node {}", request.node));
    }
    if entry.state != ProcState::Running {
        return Err(format!("rank {rank} is {}", entry.state.name()));
    }
    inner.seq += 1;
    let seq = inner.seq;
    inner.active = Some(Active {
        rank,
        seq,
        from: entry.node.clone(),
        to: request.node.clone(),
        started: Instant::now(),
        reply,
        old_spawned: state.table.spawned_pid(rank),
        old: entry,
        old_link: None,
        captured: false,
        new_pid: 0,
        bytes: 0,
        transfer_us: 0,
        copy_reported: false,
    });
    for (r, link) in state.links.iter().enumerate() {
        if let Some(link) = link {
            let m = if r as u32 == rank {
                Message::MigrateOut(MigrateOut { seq })
            } else {
                Message::MigratePeer(MigratePeer { rank, seq })
            };
            send(link, &m);
        }
    }
    Ok(answer)
}

/// A migration message on rank `rank`'s connection. Returns whether this connection's
/// process has left by migration (its end is then not the rank's end).
pub(crate) fn on_rank_message(shared: &Shared, rank: u32, link: &Link, message: Message) {
    match message {
        Message::MigrateCaptured(c) => {
            let send_to = {
                let mut inner = shared.migrations.lock();
                let Some(a) = inner
                    .active
                    .as_mut()
                    .filter(|a| a.rank == rank && a.seq == c.seq)
                else {
                    return;
                };
                a.captured = true;
                a.old_link = link.try_clone().ok();
                a.bytes = c.size;
                (a.from.clone(), a.to.clone())
            };
            let stores = shared.stores().expect("checked at the start");
            let target = stores.daemon(&send_to.1).map(|d| d.store_addr.clone());
            let sent = match (stores.daemon(&send_to.0), target) {
                (Some(source), Some(addr)) => source
                    .send(&Message::MigrateSend(MigrateSend {
                        rank,
                        seq: c.seq,
                        path: c.path,
                        node: send_to.1.clone(),
                        addr,
                    }))
                    .map_err(|e| {
                        format!("the daemon of node {} cannot be reached: {e}", send_to.0)
                    }),
                _ => Err("a daemon of the migration is gone".into()),
            };
            if let Err(why) = sent {
                fail(shared, rank, why);
            }
        }
        Message::MigrateFailed(f) => {
            let ours = shared
                .migrations
                .lock()
                .active
                .as_ref()
                .is_some_and(|a| a.rank == rank && a.seq == f.seq);
            if ours {
                fail(shared, rank, f.reason);
            }
        }
        Message::MigrateArrived(a) => arrived(shared, rank, a.seq),
        _ => {}
    }
}

/// Whether the connection of `rank` registered with `pid` belongs to a process that left by
/// migration: its close is not the rank's end.
pub(crate) fn left_by_migration(shared: &Shared, rank: u32, pid: u32) -> bool {
    let pid_now = shared.lock().table.pid(rank);
    let inner = shared.migrations.lock();
    if let Some(a) = &inner.active
        && a.rank == rank
        && a.captured
        && a.old.pid == pid
    {
        return true;
    }
    inner.moved.contains(&rank) && pid_now != pid
}

/// A daemon's message about a migration (MIGRATE_SENT, MIGRATE_FAILED).
pub(crate) fn on_daemon_message(shared: &Shared, node: &str, message: Message) {
    match message {
        Message::MigrateSent(s) => {
            let mut inner = shared.migrations.lock();
            if let Some(a) = inner.active.as_mut().filter(|a| a.seq == s.seq) {
                a.transfer_us = s.micros;
                a.bytes = s.bytes;
                a.copy_reported = true;
                shared.migrations.copied.notify_all();
            }
        }
        Message::MigrateFailed(f) => {
            let ours = shared
                .migrations
                .lock()
                .active
                .as_ref()
                .is_some_and(|a| a.seq == f.seq);
            if ours {
                fail(shared, f.rank, format!("node {node}: {}", f.reason));
            }
        }
        _ => {}
    }
}

/// The target daemon started the restorer of `rank` as `pid`.
pub(crate) fn started(shared: &Shared, rank: u32, pid: u32) {
    if let Some(a) = shared
        .migrations
        .lock()
        .active
        .as_mut()
        .filter(|a| a.rank == rank)
    {
        a.new_pid = pid;
    }
}

/// A rank's process ended (RANK_ENDED): whether that is part of a migration rather than the
/// rank's end (the original leaving, or a restored copy that failed: the original stays).
pub(crate) fn rank_ended(shared: &Shared, rank: u32, pid: u32, status: &str) -> bool {
    let spawned_now = shared.lock().table.spawned_pid(rank);
    let (active_old, active_new) = {
        let inner = shared.migrations.lock();
        match &inner.active {
            Some(a) if a.rank == rank => (
                (a.captured && a.old_spawned == pid).then_some(()),
                (a.new_pid == pid).then_some(()),
            ),
            _ => {
                return inner.moved.contains(&rank) && spawned_now != pid;
            }
        }
    };
    if active_new.is_some() {
        fail(
            shared,
            rank,
            format!("the restored rank ended ({status}) before it joined"),
        );
        return true;
    }
    active_old.is_some()
}

/// A node failed: a migration from or to it is over, and the rank did not move (its row and
/// the job's snapshots are as before the migration). The requester is told; the job ends, or
/// rolls back to its last snapshot with `--max-restarts`, like on any node failure. Returns
/// the migration that was abandoned, for the failure's cause in the job's log.
pub(crate) fn node_failed(shared: &Shared, node: &str, cause: &str) -> Option<String> {
    let mut inner = shared.migrations.lock();
    let a = inner.active.take_if(|a| a.from == node || a.to == node)?;
    drop(inner);
    let what = format!(
        "during the migration of rank {} from {} to {}",
        a.rank, a.from, a.to
    );
    let why = format!(
        "node {node} failed {what} ({cause}); rank {} did not move: the job recovers from its last snapshot if it runs with --max-restarts, and ends otherwise (`mpicr status` shows which)",
        a.rank
    );
    record(shared, &a, MigrationOutcome::Failed(why.clone()));
    let _ = a.reply.send(Err(why));
    Some(what)
}

/// Before a registration: the restored copy of a migrating rank re-registers from the target.
pub(crate) fn before_register(shared: &Shared, state: &mut State, rank: u32, node: Option<&str>) {
    let inner = shared.migrations.lock();
    let Some(a) = inner.active.as_ref() else {
        return;
    };
    if a.rank != rank || !a.captured || node != Some(a.to.as_str()) || a.new_pid == 0 {
        return;
    }
    state.table.set_spawned(rank, a.new_pid);
    if let Some(e) = state.table.entry_mut(rank) {
        e.state = ProcState::Spawned;
        e.node.clone_from(&a.to);
    }
}

/// After a registration: REFRESH to every rank when it was a migrated rank's.
pub(crate) fn after_register(shared: &Shared, state: &State, rank: u32) {
    let inner = shared.migrations.lock();
    if inner
        .active
        .as_ref()
        .is_some_and(|a| a.rank == rank && a.new_pid != 0 && a.captured)
    {
        refresh_all(state);
    }
}

/// How long the answer to a finished migration waits for the source daemon's report of the
/// copy: MIGRATE_SENT and the rank's MIGRATE_ARRIVED come on different connections, in
/// either order, and only the first carries the copy's time.
const COPY_REPORT_WAIT: Duration = Duration::from_secs(2);

fn arrived(shared: &Shared, rank: u32, seq: u64) {
    let ours = |inner: &Inner| {
        inner
            .active
            .as_ref()
            .is_some_and(|a| a.rank == rank && a.seq == seq && !a.copy_reported)
    };
    let deadline = Instant::now() + COPY_REPORT_WAIT;
    let mut inner = shared.migrations.lock();
    while ours(&inner) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(rank, "the copy of the migration was not reported in time");
            break;
        }
        inner = shared
            .migrations
            .copied
            .wait_timeout(inner, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    let Some(a) = inner.active.take_if(|a| a.rank == rank && a.seq == seq) else {
        return;
    };
    if !inner.moved.contains(&rank) {
        inner.moved.push(rank);
    }
    drop(inner);
    if let Some(old) = &a.old_link {
        send(old, &Message::MigrateArrived(MigrateArrived { rank, seq }));
    }
    let total = a.started.elapsed();
    tracing::info!(rank, from = a.from, to = a.to, ?total, "migration done");
    record(
        shared,
        &a,
        MigrationOutcome::Done {
            total_us: total.as_micros() as u64,
            transfer_us: a.transfer_us,
            bytes: a.bytes,
        },
    );
    let _ = a.reply.send(Ok(MigrateDone {
        rank,
        from: a.from,
        to: a.to,
        total_us: total.as_micros() as u64,
        transfer_us: a.transfer_us,
        bytes: a.bytes,
    }));
}

/// The migration of `rank` failed: the original computes on where it was.
fn fail(shared: &Shared, rank: u32, why: String) {
    let mut inner = shared.migrations.lock();
    let Some(a) = inner.active.take_if(|a| a.rank == rank) else {
        return;
    };
    drop(inner);
    let mut state = shared.lock();
    state.table.set_spawned(rank, a.old_spawned);
    if let Some(e) = state.table.entry_mut(rank) {
        *e = a.old.clone();
    }
    if let Some(old) = &a.old_link {
        if let Ok(l) = old.try_clone() {
            state.links[rank as usize] = Some(l);
        }
        send(
            old,
            &Message::MigrateFailed(MigrateFailed {
                rank,
                seq: a.seq,
                reason: why.clone(),
            }),
        );
    }
    refresh_all(&state);
    drop(state);
    crate::report::say(&format!(
        "migration of rank {rank} from {} to {} failed: {why}; rank {rank} computes on at node {}",
        a.from, a.to, a.from
    ));
    let sentence = format!(
        "migration of rank {rank} to node {} failed: {why}; rank {rank} computes on at node {}",
        a.to, a.from
    );
    record(shared, &a, MigrationOutcome::Failed(sentence.clone()));
    let _ = a.reply.send(Err(sentence));
}

/// The job ended: a migration under way is over, and its requester is told that the rank
/// did not move (its waiting connection would otherwise close unanswered).
pub(crate) fn job_ended(shared: &Shared) {
    let Some(a) = shared.migrations.lock().active.take() else {
        return;
    };
    let why = format!(
        "job {} ended during the migration of rank {} from {} to {}; rank {} did not move",
        shared.job_name(),
        a.rank,
        a.from,
        a.to,
        a.rank
    );
    record(shared, &a, MigrationOutcome::Failed(why.clone()));
    let _ = a.reply.send(Err(why));
}

/// Publishes a finished migration (`mpicr status`, the dashboard's metrics).
fn record(shared: &Shared, a: &Active, outcome: MigrationOutcome) {
    if let Some(board) = shared.board() {
        board.migrated(Migration {
            rank: a.rank,
            from: a.from.clone(),
            to: a.to.clone(),
            outcome,
        });
    }
}

/// Asks the job `job` to move `rank` to `node`, and waits until it computes there (or the
/// migration failed: the job's sentence is [`ClientError::Refused`]).
pub fn request_migration(
    dir: &RuntimeDir,
    job: &JobRef,
    rank: u32,
    node: &str,
) -> Result<MigrateDone, ClientError> {
    let path = crate::client::job_socket(dir, job)?;
    let stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(source)
            if matches!(
                source.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            return Err(ClientError::NotRunning(job.clone()));
        }
        Err(source) => return Err(ClientError::Connect { path, source }),
    };
    let request = Message::MigrateRequest(MigrateRequest {
        rank,
        node: node.to_owned(),
    });
    write_message(&mut &stream, &request).map_err(ClientError::Send)?;
    match read_message(&mut &stream).map_err(ClientError::Receive)? {
        Message::MigrateDone(done) => Ok(done),
        Message::Error(sentence) => Err(ClientError::Refused(sentence)),
        other => Err(ClientError::Unexpected(format!("{:?}", other.command()))),
    }
}
