//! The control server on the job's Unix socket: ranks register and report their end there,
//! tools ask for the process table.
//!
//! One thread accepts, one thread serves each connection. Every peer must run as our uid
//! (SO_PEERCRED). Input that does not parse is logged, answered with an ERROR message if the
//! peer still listens, and ends that connection only.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use node::ExitStatus;
use thiserror::Error;
use wire::stream::{ReadError, read_message, write_message};
use wire::{
    CheckpointRequest, Message, ProcState, RankUsage, Refresh, Register, ReportedUsage, StatusReply,
};

use crate::checkpoint::{CkptEvent, Origin, Recovery, StatusBoard};
use crate::launch::Event;
use crate::report::{error_chain, say};
use crate::table::{ProcessTable, RegisterError};
use node::proc_tree::is_self_or_descendant;

/// How long a new connection may take to say what it wants.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write to a peer may block before the peer is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a registration waits for the node to finish starting its rank (a rank can
/// register before `spawn` has returned its pid to us).
const SPAWN_WAIT: Duration = Duration::from_secs(10);
/// How long a rank's closed control connection waits for the report of its process's end,
/// which says more (`was killed by signal 9`) to a checkpoint that the rank leaves.
pub(crate) const END_REPORT_WAIT: Duration = Duration::from_secs(1);
/// How long the end of a job waits for the answers its requesters are owed.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// What a status request reports about the job besides the table.
#[derive(Debug, Clone)]
pub(crate) struct JobInfo {
    pub(crate) name: String,
    pub(crate) launcher_pid: u32,
    pub(crate) command: Vec<String>,
    pub(crate) started_at: u64,
    /// The environment, working directory and transport a snapshot records, so that
    /// `mpicr restart` can run the job again as it was.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: String,
    pub(crate) transport: String,
    /// The ranks' checkpointer (`--crs`).
    pub(crate) crs: String,
    /// Set when this start recovers from a failure.
    pub(crate) recovery: Option<RecoveryWatch>,
}

/// Reports the time to recover once every rank of a recovered job runs again.
#[derive(Debug, Clone)]
pub(crate) struct RecoveryWatch {
    pub(crate) since: Instant,
    pub(crate) log: Arc<Mutex<Vec<Recovery>>>,
    pub(crate) board: Arc<StatusBoard>,
}

impl RecoveryWatch {
    fn recovered(&self, job: &str, ranks: u32) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = log.last_mut() {
            last.recovered_ms = Some(ms);
        }
        self.board.set_recoveries(log.clone());
        say(&format!(
            "job {job} recovered: all {ranks} ranks run again {ms} ms after the failure"
        ));
    }
}

/// What a global snapshot's manifest records about the job, besides the parts.
#[derive(Debug, Clone)]
pub(crate) struct ManifestFacts {
    pub(crate) command: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: String,
    pub(crate) transport: String,
    /// rank → node.
    pub(crate) placement: Vec<(u32, String)>,
}

/// Whether a checkpoint can start now.
#[derive(Debug)]
pub(crate) enum Readiness {
    /// Every rank registered and none has begun to leave.
    Ready,
    /// Some ranks registered, not all yet.
    Registering,
    /// No rank registered since the job started at `since`.
    NoneRegistered { since: Instant },
    /// A rank has finalized or ended: the sentence says which.
    ShuttingDown(String),
}

/// Why a connection was refused; the sentence is logged and sent back.
#[derive(Debug, Error)]
enum Refusal {
    #[error("the peer runs as uid {uid} (pid {pid}), and only uid {ours} may use this job")]
    ForeignUser { uid: u32, pid: i32, ours: u32 },
    #[error("the peer's credentials cannot be read")]
    Credentials(#[source] io::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("a {0} message is not accepted on this connection")]
    Unexpected(String),
    #[error("the connection of rank {registered} sent a message for rank {claimed}")]
    WrongRank { registered: u32, claimed: u32 },
    #[error("answering the peer failed")]
    Write(#[source] io::Error),
}

/// The connections that may still owe their peer an answer: every connection until its first
/// message, and a checkpoint's or migration's requester until its answer is written. The end
/// of a job waits for them ([`Owing::wait_paid`]), so that `mpicr run` does not exit (which
/// would close those connections unanswered) right after the job's end failed a checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Owing {
    count: Mutex<usize>,
    paid: Condvar,
}

impl Owing {
    /// One more connection that may owe an answer, until the returned guard is dropped.
    pub(crate) fn owe(self: &Arc<Self>) -> Owed {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Owed(self.clone())
    }

    /// Waits until no connection owes an answer, at most `limit`; false if some still do.
    pub(crate) fn wait_paid(&self, limit: Duration) -> bool {
        let count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, _) = self
            .paid
            .wait_timeout_while(count, limit, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *count == 0
    }
}

/// A connection that may owe its peer an answer (see [`Owing`]).
#[derive(Debug)]
pub(crate) struct Owed(Arc<Owing>);

impl Drop for Owed {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_sub(1);
        self.0.paid.notify_all();
    }
}

/// A control connection: on the job's Unix socket, or relayed by a node daemon over TCP.
#[derive(Debug)]
pub(crate) enum Link {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Link {
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Unix(s) => Self::Unix(s.try_clone()?),
            Self::Tcp(s) => Self::Tcp(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_read_timeout(timeout),
            Self::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_write_timeout(timeout),
            Self::Tcp(s) => s.set_write_timeout(timeout),
        }
    }
}

impl Read for &Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Link::Unix(s) => (&*s).read(buf),
            Link::Tcp(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Link::Unix(s) => (&*s).write(buf),
            Link::Tcp(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self {
            Link::Unix(s) => (&*s).flush(),
            Link::Tcp(s) => (&*s).flush(),
        }
    }
}

/// State shared by the connection threads and the job's event loop.
pub(crate) struct Shared {
    info: JobInfo,
    uid: u32,
    state: Mutex<State>,
    /// Signalled when the node reports a started rank.
    spawned: Condvar,
    events: Sender<Event>,
    /// The checkpoint service's inbox.
    checkpoints: Sender<CkptEvent>,
    started: Instant,
    /// The node daemons and their stores, in a job on several nodes (set once they connected).
    stores: Mutex<Option<Arc<crate::nodes::StoreFacts>>>,
    /// Process migration (`crate::migrate`).
    pub(crate) migrations: crate::migrate::Migrations,
    /// What the job publishes for `mpicr status` and the dashboard. Weak: the checkpoint
    /// service owns it, and its drop (which removes the file) must not wait for the last
    /// thread that holds `Shared`.
    board: Weak<StatusBoard>,
    /// The latest usage each rank's node daemon reported, with that node: rank → report.
    /// Apart from `state` so that heartbeats never wait for a registration or a checkpoint.
    usage: Mutex<HashMap<u32, (String, ReportedUsage)>>,
    /// The connections that still owe an answer.
    pub(crate) owing: Arc<Owing>,
}

pub(crate) struct State {
    pub(crate) table: ProcessTable,
    /// The open connection of every registered rank, for REFRESH.
    pub(crate) links: Vec<Option<Link>>,
    refreshed: bool,
}

impl Shared {
    pub(crate) fn new(
        info: JobInfo,
        table: ProcessTable,
        uid: u32,
        events: Sender<Event>,
        checkpoints: Sender<CkptEvent>,
        board: Weak<StatusBoard>,
    ) -> Self {
        let links = (0..table.size()).map(|_| None).collect();
        Self {
            info,
            uid,
            state: Mutex::new(State {
                table,
                links,
                refreshed: false,
            }),
            spawned: Condvar::new(),
            events,
            checkpoints,
            started: Instant::now(),
            stores: Mutex::new(None),
            migrations: crate::migrate::Migrations::default(),
            board,
            usage: Mutex::new(HashMap::new()),
            owing: Arc::new(Owing::default()),
        }
    }

    /// Keeps what `node`'s daemon reported of `usage` (only ranks it speaks for), received now.
    pub(crate) fn record_usage(&self, node: &str, usage: &[RankUsage], owns: impl Fn(u32) -> bool) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let size = self.lock().table.size();
        // Filtered before the lock: `owns` may take the state's lock.
        let mine: Vec<&RankUsage> = usage
            .iter()
            .filter(|u| u.rank < size && owns(u.rank))
            .collect();
        let mut kept = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        for u in mine {
            kept.insert(
                u.rank,
                (node.to_owned(), ReportedUsage { usage: *u, at_ms }),
            );
        }
    }

    /// Records the node daemons of the job (their links and stores).
    pub(crate) fn set_stores(&self, facts: Arc<crate::nodes::StoreFacts>) {
        if let Some(board) = self.board() {
            board.set_nodes(facts.daemons.iter().map(|d| d.node.clone()).collect());
        }
        *self.stores.lock().unwrap_or_else(PoisonError::into_inner) = Some(facts);
    }

    /// The job's published status, while the job's checkpoint service runs.
    pub(crate) fn board(&self) -> Option<Arc<StatusBoard>> {
        self.board.upgrade()
    }

    /// The node daemons of the job, in a job on several nodes.
    pub(crate) fn stores(&self) -> Option<Arc<crate::nodes::StoreFacts>> {
        self.stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The node of every rank, by rank.
    pub(crate) fn rank_nodes(&self) -> Vec<String> {
        self.lock()
            .table
            .entries()
            .iter()
            .map(|e| e.node.clone())
            .collect()
    }

    /// Sends each rank its own message; the first rank that cannot be reached is an error.
    pub(crate) fn send_each(&self, message: impl Fn(u32) -> Message) -> Result<(), String> {
        let state = self.lock();
        for (rank, link) in state.links.iter().enumerate() {
            let Some(mut link) = link.as_ref() else {
                return Err(format!("rank {rank} is not connected to the coordinator"));
            };
            if let Err(e) = write_message(&mut link, &message(rank as u32)) {
                return Err(format!("rank {rank} cannot be reached: {e}"));
            }
        }
        Ok(())
    }

    /// The checkpointer of the job's ranks (`--crs`).
    pub(crate) fn crs(&self) -> &str {
        &self.info.crs
    }

    pub(crate) fn job_name(&self) -> &str {
        &self.info.name
    }

    pub(crate) fn size(&self) -> u32 {
        self.lock().table.size()
    }

    pub(crate) fn checkpoint_event(&self, event: CkptEvent) {
        let _ = self.checkpoints.send(event);
    }

    /// Whether a checkpoint may start, from the process table.
    pub(crate) fn readiness(&self) -> Readiness {
        let state = self.lock();
        let entries = state.table.entries();
        if let Some(entry) = entries.iter().find(|e| {
            matches!(
                e.state,
                ProcState::Finalized | ProcState::Exited(_) | ProcState::Signaled(_)
            )
        }) {
            let what = match entry.state {
                ProcState::Finalized => "has finalized".to_owned(),
                ProcState::Exited(code) => format!("has exited with status {code}"),
                ProcState::Signaled(signal) => format!("was killed by signal {signal}"),
                ProcState::Spawned | ProcState::Running => String::new(),
            };
            return Readiness::ShuttingDown(format!(
                "job {} is shutting down: rank {} {what}",
                self.info.name, entry.rank
            ));
        }
        if state.table.all_registered() && state.refreshed {
            Readiness::Ready
        } else if entries.iter().any(|e| e.state == ProcState::Running) {
            Readiness::Registering
        } else {
            Readiness::NoneRegistered {
                since: self.started,
            }
        }
    }

    /// Sends `message` to every rank; the first rank that cannot be reached is an error.
    pub(crate) fn send_all(&self, message: &Message) -> Result<(), String> {
        let state = self.lock();
        for (rank, link) in state.links.iter().enumerate() {
            let Some(mut link) = link.as_ref() else {
                return Err(format!("rank {rank} is not connected to the coordinator"));
            };
            if let Err(e) = write_message(&mut link, message) {
                return Err(format!("rank {rank} cannot be reached: {e}"));
            }
        }
        Ok(())
    }

    /// Sends `message` to every connected rank, ignoring those that cannot be reached.
    pub(crate) fn send_all_quietly(&self, message: &Message) {
        let state = self.lock();
        for (rank, link) in state.links.iter().enumerate() {
            if let Some(mut link) = link.as_ref()
                && let Err(e) = write_message(&mut link, message)
            {
                tracing::debug!(rank, "cannot send to a rank: {e}");
            }
        }
    }

    pub(crate) fn manifest_facts(&self) -> ManifestFacts {
        let placement = self
            .lock()
            .table
            .entries()
            .iter()
            .map(|e| (e.rank, e.node.clone()))
            .collect();
        ManifestFacts {
            command: self.info.command.clone(),
            env: self.info.env.clone(),
            cwd: self.info.cwd.clone(),
            transport: self.info.transport.clone(),
            placement,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_spawned(&self, rank: u32, pid: u32) {
        self.lock().table.set_spawned(rank, pid);
        self.spawned.notify_all();
    }

    /// Records the end of `rank`'s process; returns whether it had registered.
    pub(crate) fn set_ended(&self, rank: u32, status: ExitStatus) -> bool {
        self.lock().table.set_ended(rank, status)
    }

    pub(crate) fn pid(&self, rank: u32) -> u32 {
        self.lock().table.pid(rank)
    }

    fn status_reply(&self) -> StatusReply {
        let ranks = self.lock().table.entries().to_vec();
        let kept = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        // Only reports about the process a live row names, from the node it is on: a report
        // from before a migration, or about a rank that ended, says nothing of the row.
        let usage = ranks
            .iter()
            .filter(|e| {
                matches!(
                    e.state,
                    ProcState::Spawned | ProcState::Running | ProcState::Finalized
                )
            })
            .filter_map(|e| {
                let (node, report) = kept.get(&e.rank)?;
                (*node == e.node && report.usage.pid == e.pid).then_some(*report)
            })
            .collect();
        StatusReply {
            job: self.info.name.clone(),
            launcher_pid: self.info.launcher_pid,
            command: self.info.command.clone(),
            started_at: self.info.started_at,
            ranks,
            usage,
        }
    }

    /// Records a registration and, once every rank has registered, sends every rank the table.
    /// `relayed_from`: the node whose daemon relays the connection (and has checked the
    /// pid, which only that node can see); the rank must be placed there.
    fn register(
        &self,
        register: &Register,
        link: Link,
        relayed_from: Option<&str>,
    ) -> Result<(), RegisterError> {
        let mut state = self.lock();
        let deadline = Instant::now() + SPAWN_WAIT;
        while register.rank < state.table.size() && !state.table.is_spawned(register.rank) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .spawned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        crate::migrate::before_register(self, &mut state, register.rank, relayed_from);
        match relayed_from {
            None => state.table.register(register, is_self_or_descendant)?,
            Some(node) => {
                let placed = state.table.placed_on(register.rank);
                if placed.is_some_and(|p| p != node) {
                    return Err(RegisterError::WrongNode {
                        rank: register.rank,
                        node: node.to_owned(),
                    });
                }
                state.table.register(register, |_, _| true)?;
            }
        }
        let _ = link.set_write_timeout(Some(WRITE_TIMEOUT));
        state.links[register.rank as usize] = Some(link);
        crate::migrate::after_register(self, &state, register.rank);
        if state.table.all_registered() && !state.refreshed {
            state.refreshed = true;
            if let Some(watch) = &self.info.recovery {
                watch.recovered(&self.info.name, state.table.size());
            }
            let refresh = Message::Refresh(Refresh {
                table: state.table.entries().to_vec(),
            });
            for (rank, link) in state.links.iter().enumerate() {
                if let Some(mut link) = link.as_ref()
                    && let Err(e) = write_message(&mut link, &refresh)
                {
                    tracing::warn!(rank, "sending the process table to a rank failed: {e}");
                }
            }
        }
        Ok(())
    }

    fn finalize(&self, rank: u32) {
        self.lock().table.finalize(rank);
    }

    /// Whether `rank`'s control connection is still being read: until it closes, a report the
    /// rank sent just before it exited may still be on its way to the checkpoint service.
    pub(crate) fn connected(&self, rank: u32) -> bool {
        self.lock()
            .links
            .get(rank as usize)
            .is_some_and(Option::is_some)
    }

    fn disconnect(&self, rank: u32) {
        if let Some(link) = self.lock().links.get_mut(rank as usize) {
            *link = None;
        }
    }

    /// Whether the end of `rank`'s process is (or, within `within`, gets) reported.
    fn ended_soon(&self, rank: u32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let ended = self
                .lock()
                .table
                .entries()
                .get(rank as usize)
                .is_some_and(|e| matches!(e.state, ProcState::Exited(_) | ProcState::Signaled(_)));
            if ended || Instant::now() >= deadline {
                return ended;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The accepting thread. Dropping the server stops it.
pub(crate) struct ControlServer {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Serves `listener` (published at `socket`) until dropped.
    pub(crate) fn start(
        listener: UnixListener,
        socket: PathBuf,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accept = thread::Builder::new()
            .name("control-accept".into())
            .spawn(move || accept_loop(&listener, &stopping, &shared))?;
        Ok(Self {
            socket,
            stop,
            accept: Some(accept),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call with a connection of our own. If even that fails (the socket
        // file was removed by hand), the thread is left behind rather than waited for forever.
        let woken = UnixStream::connect(&self.socket).is_ok();
        if let Some(accept) = self.accept.take()
            && woken
        {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, shared: &Arc<Shared>) {
    for connection in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match connection {
            Ok(stream) => {
                // Counted from here: a request that is still unread when the job ends is
                // answered too.
                let owed = shared.owing.owe();
                let shared = shared.clone();
                let spawned = thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || serve(stream, &shared, owed));
                if let Err(e) = spawned {
                    tracing::warn!("cannot start a thread for a control connection: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("accepting a control connection failed: {e}");
                // Out of file descriptors, say: do not spin.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn serve(stream: UnixStream, shared: &Shared, owed: Owed) {
    refuse_on_error(&Link::Unix(stream), shared, None, owed);
}

/// A connection a node daemon relays for a rank (or tool) of node `node`, already
/// authenticated with the job's secret.
pub(crate) fn serve_relayed(stream: TcpStream, shared: &Shared, node: &str) {
    let owed = shared.owing.owe();
    refuse_on_error(&Link::Tcp(stream), shared, Some(node), owed);
}

fn refuse_on_error(stream: &Link, shared: &Shared, relayed_from: Option<&str>, owed: Owed) {
    if let Err(refusal) = converse(stream, shared, relayed_from, owed) {
        let sentence = error_chain(&refusal);
        say(&format!("refused a control connection: {sentence}"));
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = write_message(&mut &*stream, &Message::Error(sentence));
    }
}

/// `owed` is held until a checkpoint's or migration's requester is answered.
fn converse(
    stream: &Link,
    shared: &Shared,
    relayed_from: Option<&str>,
    owed: Owed,
) -> Result<(), Refusal> {
    if let Link::Unix(unix) = stream {
        let peer = rustix::net::sockopt::socket_peercred(unix)
            .map_err(|e| Refusal::Credentials(e.into()))?;
        if peer.uid.as_raw() != shared.uid {
            return Err(Refusal::ForeignUser {
                uid: peer.uid.as_raw(),
                pid: peer.pid.as_raw_pid(),
                ours: shared.uid,
            });
        }
    }
    stream
        .set_read_timeout(Some(FIRST_MESSAGE_TIMEOUT))
        .map_err(Refusal::Write)?;
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(Refusal::Write)?;
    let first = read_message(&mut &*stream);
    if !matches!(
        first,
        Ok(Message::CheckpointRequest(_) | Message::MigrateRequest(_))
    ) {
        // Ranks and status tools stay connected for as long as they like; nothing is owed.
        drop(owed);
    }
    match first {
        // A connection that closes without a word: a liveness probe.
        Err(ReadError::Closed) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(Message::StatusRequest) => serve_tool(stream, shared),
        Ok(Message::Register(register)) => serve_rank(stream, shared, &register, relayed_from),
        Ok(Message::CheckpointRequest(request)) => serve_checkpoint(stream, shared, &request),
        Ok(Message::MigrateRequest(request)) => {
            crate::migrate::serve(stream, shared, &request);
            Ok(())
        }
        Ok(other) => Err(unexpected(&other)),
    }
}

fn unexpected(message: &Message) -> Refusal {
    Refusal::Unexpected(format!("{:?}", message.command()))
}

fn reply_status(stream: &Link, shared: &Shared) -> Result<(), Refusal> {
    write_message(&mut &*stream, &Message::StatusReply(shared.status_reply()))
        .map_err(Refusal::Write)
}

/// A tool's connection: answer status requests until it closes.
fn serve_tool(stream: &Link, shared: &Shared) -> Result<(), Refusal> {
    loop {
        reply_status(stream, shared)?;
        match read_message(&mut &*stream) {
            Err(ReadError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(Message::StatusRequest) => {}
            Ok(other) => return Err(unexpected(&other)),
        }
    }
}

/// A tool's checkpoint request: queue it and answer when it is committed or has failed.
fn serve_checkpoint(
    stream: &Link,
    shared: &Shared,
    request: &CheckpointRequest,
) -> Result<(), Refusal> {
    let (reply, answer) = mpsc::channel();
    shared.checkpoint_event(CkptEvent::Request {
        terminate: request.terminate,
        origin: Origin::Tool(reply),
    });
    let message = match answer.recv() {
        Ok(Ok(done)) => Message::CheckpointDone(done),
        Ok(Err(why)) => Message::Error(why),
        Err(_) => Message::Error(format!("job {} has ended", shared.info.name)),
    };
    // The tool may have given up meanwhile; the snapshot stays committed either way.
    if let Err(e) = write_message(&mut &*stream, &message) {
        tracing::info!("the checkpoint's requester is gone: {e}");
    }
    Ok(())
}

/// A rank's connection: it stays open for the life of the rank.
fn serve_rank(
    stream: &Link,
    shared: &Shared,
    register: &Register,
    relayed_from: Option<&str>,
) -> Result<(), Refusal> {
    let link = stream.try_clone().map_err(Refusal::Write)?;
    shared.register(register, link, relayed_from)?;
    let rank = register.rank;
    tracing::debug!(rank, pid = register.pid, addr = %register.data_addr, "rank registered");
    let result = rank_messages(stream, shared, rank);
    if crate::migrate::left_by_migration(shared, rank, register.pid) {
        return result;
    }
    shared.disconnect(rank);
    // The report of the process's end tells the checkpoint service why it left (with the
    // status); only a connection that closes while the process runs on is news of its own.
    if !shared.ended_soon(rank, END_REPORT_WAIT) {
        shared.checkpoint_event(CkptEvent::RankGone {
            rank,
            why: "closed its control connection".into(),
        });
    }
    result
}

fn rank_messages(stream: &Link, shared: &Shared, rank: u32) -> Result<(), Refusal> {
    stream.set_read_timeout(None).map_err(Refusal::Write)?;
    let check = |claimed: u32| {
        if claimed == rank {
            Ok(())
        } else {
            Err(Refusal::WrongRank {
                registered: rank,
                claimed,
            })
        }
    };
    loop {
        match read_message(&mut &*stream) {
            Err(ReadError::Closed) => return Ok(()),
            // A rank that exits with a message from us still unread resets the connection;
            // for a registered rank that is an ordinary end, like a close.
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
            Ok(Message::Exit(exit)) => {
                check(exit.rank)?;
                shared.finalize(rank);
            }
            Ok(Message::Abort(abort)) => {
                check(abort.rank)?;
                let pid = shared.pid(rank);
                let _ = shared.events.send(Event::Abort {
                    rank,
                    pid,
                    code: abort.code,
                    reason: abort.reason,
                });
            }
            Ok(Message::StatusRequest) => reply_status(stream, shared)?,
            Ok(Message::CheckpointRequest(request)) => {
                shared.checkpoint_event(CkptEvent::Request {
                    terminate: request.terminate,
                    origin: Origin::Rank(rank),
                });
            }
            Ok(Message::SafepointCount(count)) => {
                check(count.rank)?;
                shared.checkpoint_event(CkptEvent::Count(count));
            }
            Ok(Message::PartDone(part)) => {
                check(part.rank)?;
                shared.checkpoint_event(CkptEvent::Part(part));
            }
            Ok(Message::CheckpointFailed(failed)) => {
                check(failed.rank)?;
                shared.checkpoint_event(CkptEvent::Failed(failed));
            }
            Ok(
                m @ (Message::MigrateCaptured(_)
                | Message::MigrateFailed(_)
                | Message::MigrateArrived(_)),
            ) => crate::migrate::on_rank_message(shared, rank, stream, m),
            Ok(other) => return Err(unexpected(&other)),
        }
    }
}
