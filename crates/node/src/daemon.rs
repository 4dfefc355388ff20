//! `mpicr node`: the node daemon of a job that spans several nodes.
//!
//! The coordinator starts one daemon per node through the job's launcher (`ssh`, `srun`, or a
//! command prefix such as `ip netns exec {node}`). The daemon
//!
//! 1. connects back to the coordinator's TCP control port and proves that it knows the job's
//!    secret (which reached it on stdin or in a private file, never in argv or the environment);
//! 2. receives NODE_LAUNCH and starts its block of ranks with the node-local `MPICR_*`
//!    variables (`MPICR_NODE`, `MPICR_TRANSPORT=auto`, `MPICR_BIND_ADDR`, its own
//!    `MPICR_SHM_DIR` and `MPICR_CONTROL`);
//! 3. forwards the ranks' output line by line, reports each start and end, sends heartbeats;
//! 4. relays each rank's control connection: the rank connects to the daemon's Unix socket
//!    (private directory, peer uid checked, pid checked against the rank it started), and the
//!    daemon opens an authenticated TCP connection to the coordinator for it and copies the
//!    frames both ways;
//! 5. signals its ranks when told, and kills them all when told to shut down or when its
//!    connection to the coordinator breaks. The ranks also die with the daemon itself
//!    (PR_SET_PDEATHSIG), so nothing is orphaned.
//!
//! The wire messages are in `docs/wire.md`, the contract in `docs/launch.md`.

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use thiserror::Error;
use wire::stream::{ReadError, read_message, write_message};
use wire::{
    Heartbeat, HelloRole, Message, NodeLaunch, NodeReady, ParityStored, PartStored, ProcState,
    RankEnded, RankOutput, RankStarted, StoreReady,
};

use crate::node_store::NodeStore;
use crate::owner;

use crate::proc_tree::is_self_or_descendant;
use crate::procstat::Watched;
use crate::ranks::{JobSpec, OutputTo, RankExit, Ranks, SpawnError};
use crate::status::ExitStatus;

/// How long connecting to the coordinator may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the coordinator may take to send NODE_LAUNCH, and a rank its first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write to the coordinator may block before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registration waits for the daemon to finish starting that rank.
const SPAWN_WAIT: Duration = Duration::from_secs(10);
/// Longest socket path `sockaddr_un` holds, without the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// How long the ranks' last output may take to reach the coordinator at the end.
const OUTPUT_DRAIN: Duration = Duration::from_secs(3);

/// What `mpicr node` was told on its command line and stdin.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The coordinator's control port, `IP:PORT`.
    pub coordinator: String,
    pub job: String,
    /// This node's name, as the job's host list has it.
    pub node: String,
    /// How often to send a heartbeat.
    pub heartbeat: Duration,
    /// The job's secret.
    pub secret: String,
    /// A program and arguments that, started with the node's directories appended, waits for
    /// its stdin to close and then removes them (`mpicr node-cleanup`): so that the
    /// directories go even when the daemon is killed with SIGKILL.
    pub cleanup: Option<Vec<std::ffi::OsString>>,
}

/// Why the daemon could not do its work.
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("cannot reach the coordinator at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("the coordinator refused this node: {0}")]
    Refused(String),
    #[error("cannot prove to the coordinator that this node belongs to the job")]
    Auth(#[source] wire::auth::AuthError),
    #[error(transparent)]
    Store(#[from] crate::node_store::NodeStoreError),
    #[error("the coordinator's connection failed before the launch")]
    Launch(#[source] ReadError),
    #[error("the coordinator sent {0} instead of NODE_LAUNCH")]
    Unexpected(String),
    #[error("cannot talk to the coordinator")]
    Io(#[source] io::Error),
    #[error("cannot prepare the node's directory {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot start a thread")]
    Thread(#[source] io::Error),
}

/// Reads the job's secret: the first line of `input` (the coordinator writes it to the
/// daemon's stdin), without its newline.
pub fn read_secret_line(input: impl Read) -> io::Result<String> {
    let mut line = String::new();
    io::BufReader::new(input).read_line(&mut line)?;
    let secret = line.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no secret was given on stdin",
        ));
    }
    Ok(secret)
}

/// Reads the job's secret from `path`, which must belong to this user and be readable by
/// nobody else.
pub fn read_secret_file(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must belong to uid {uid} and be private to it (mode 0600)",
                path.display()
            ),
        ));
    }
    read_secret_line(std::fs::File::open(path)?)
}

/// What the daemon's threads tell its main thread.
enum Event {
    Signal(i32),
    /// STORE_BEGIN, PART_KEEP, STORE_KEEP or PARITY_BUILD.
    Store(Box<Message>),
    Shutdown,
    Lost(String),
    /// MIGRATE_SEND: stream a migrating rank's image to another daemon.
    MigrateSend(wire::MigrateSend),
    /// A migrated rank's image arrived: start its restorer.
    Restore(crate::migrate::Restore),
}

/// The connection to the coordinator, shared by every thread that writes to it.
#[derive(Clone)]
struct Uplink(Arc<Mutex<TcpStream>>);

impl Uplink {
    fn send(&self, message: &Message) -> io::Result<()> {
        let stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        write_message(&mut &*stream, message)
    }
}

/// Runs the daemon until the coordinator ends it or goes away. Every rank it started is dead
/// and its directories are removed when this returns.
pub fn run(config: &DaemonConfig) -> Result<(), DaemonError> {
    let addr = resolve(&config.coordinator)?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|source| {
        DaemonError::Connect {
            addr: config.coordinator.clone(),
            source,
        }
    })?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(DaemonError::Io)?;
    stream
        .set_read_timeout(Some(FIRST_MESSAGE_TIMEOUT))
        .map_err(DaemonError::Io)?;
    authenticate(&stream, config, HelloRole::Daemon).map_err(|e| match e {
        wire::auth::AuthError::Refused(why) => DaemonError::Refused(why),
        e => DaemonError::Auth(e),
    })?;
    // The store service (copies of parts between daemons) listens on the address that reaches
    // the coordinator, which the other nodes reach too.
    let store_listener = TcpListener::bind((stream.local_addr().map_err(DaemonError::Io)?.ip(), 0))
        .map_err(DaemonError::Io)?;
    let store_addr = store_listener.local_addr().map_err(DaemonError::Io)?;
    let migrate_listener = store_listener.try_clone().map_err(DaemonError::Io)?;
    write_message(
        &mut &stream,
        &Message::NodeReady(NodeReady {
            store_addr: store_addr.to_string(),
        }),
    )
    .map_err(DaemonError::Io)?;
    let launch = match read_message(&mut &stream) {
        Ok(Message::NodeLaunch(launch)) => launch,
        Ok(Message::Error(why)) => return Err(DaemonError::Refused(why)),
        Ok(other) => return Err(DaemonError::Unexpected(format!("{:?}", other.command()))),
        Err(e) => return Err(DaemonError::Launch(e)),
    };
    stream.set_read_timeout(None).map_err(DaemonError::Io)?;
    let bind_addr = if launch.bind_addr.is_empty() {
        stream
            .local_addr()
            .map_err(DaemonError::Io)?
            .ip()
            .to_string()
    } else {
        launch.bind_addr.clone()
    };
    let uplink = Uplink(Arc::new(Mutex::new(
        stream.try_clone().map_err(DaemonError::Io)?,
    )));
    // Heartbeats from now on: fetching a restart's parts may take longer than the
    // coordinator's heartbeat timeout.
    let stop_heartbeat = Arc::new(AtomicBool::new(false));
    let watched = Arc::new(Watched::default());
    spawn_thread("heartbeat", {
        let uplink = uplink.clone();
        let stop = stop_heartbeat.clone();
        let every = config.heartbeat;
        let watched = watched.clone();
        move || heartbeat(&uplink, every, &stop, &watched)
    })?;
    let node_store = match prepare_store(config, &launch, store_listener) {
        Ok(store) => store,
        Err(e) => {
            let _ = uplink.send(&Message::Error(crate::error_chain(&e)));
            return Err(e);
        }
    };
    let restart_dir = node_store
        .as_ref()
        .filter(|_| launch.restart_epoch > 0 && !launch.manifest.is_empty())
        .map(|store| store.epoch_dir(launch.restart_epoch));
    let dirs = NodeDirs::create(&config.job, &config.node)?;
    // Held open until this process ends, however it ends.
    let _cleanup = config
        .cleanup
        .as_ref()
        .and_then(|command| start_cleanup(command, &dirs));
    let listener = UnixListener::bind(dirs.socket()).map_err(|source| DaemonError::Dir {
        path: dirs.socket(),
        source,
    })?;
    let ranks_here = launch.first_rank..launch.first_rank.saturating_add(launch.count);
    let (events, inbox) = mpsc::channel();
    crate::migrate::set_target(crate::migrate::Target {
        job: config.job.clone(),
        node: config.node.clone(),
        secret: config.secret.clone(),
        dir: dirs.private.clone(),
        deliver: Mutex::new(Box::new({
            let events = Mutex::new(events.clone());
            move |restore| {
                events
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .send(Event::Restore(restore))
                    .is_ok()
            }
        })),
    });
    if launch.storage.is_empty() {
        // No store service: the listener serves migrations only.
        spawn_thread("migrate", move || crate::migrate::serve(migrate_listener))?;
    } else {
        drop(migrate_listener);
    }
    spawn_thread("uplink-read", {
        let stream = stream.try_clone().map_err(DaemonError::Io)?;
        let events = events.clone();
        move || read_coordinator(&stream, &events)
    })?;
    let (pieces, pieces_in) = mpsc::channel::<crate::output::RemotePiece>();
    let (output_done_token, output_done) = mpsc::channel::<()>();
    spawn_thread("output", {
        let uplink = uplink.clone();
        move || {
            for (rank, stream, bytes) in pieces_in {
                let message = Message::RankOutput(RankOutput {
                    rank,
                    stream,
                    bytes,
                });
                if uplink.send(&message).is_err() {
                    break;
                }
            }
            drop(output_done_token);
        }
    })?;
    let relay = Arc::new(Relay {
        coordinator: addr,
        config: config.clone(),
        uid: rustix::process::getuid().as_raw(),
        ranks: ranks_here.clone(),
        pids: Mutex::new(Vec::new()),
        started: Condvar::new(),
        watched: watched.clone(),
        arrivals: crate::migrate::Arrivals::default(),
    });
    spawn_thread("relay-accept", {
        let relay = relay.clone();
        move || accept_ranks(&listener, &relay)
    })?;

    let spec = job_spec(
        config,
        &launch,
        &dirs,
        &bind_addr,
        ranks_here,
        pieces,
        restart_dir.as_deref(),
    );
    let on_exit: crate::ExitCallback = {
        let uplink = uplink.clone();
        let watched = watched.clone();
        Arc::new(move |exit: RankExit| {
            watched.ended(exit.rank, exit.pid);
            let state = match exit.status {
                ExitStatus::Exited(code) => ProcState::Exited(code),
                ExitStatus::Signaled(signal) => ProcState::Signaled(signal),
                ExitStatus::Unknown => ProcState::Exited(exit.status.shell_code()),
            };
            let _ = uplink.send(&Message::RankEnded(RankEnded {
                rank: exit.rank,
                pid: exit.pid,
                state,
            }));
        })
    };
    let launched = Ranks::launch(
        &spec,
        |rank, pid| {
            relay.started_rank(rank, pid);
            let _ = uplink.send(&Message::RankStarted(RankStarted { rank, pid }));
        },
        on_exit.clone(),
    );
    let mut ranks = match launched {
        Ok(ranks) => ranks,
        Err(e) => {
            let _ = uplink.send(&Message::Error(crate::error_chain(&e)));
            return Err(e.into());
        }
    };
    let lost = loop {
        match inbox.recv() {
            Ok(Event::Signal(signal)) => {
                if let Some(signal) = Signal::from_named_raw(signal) {
                    ranks.signal_all(signal);
                }
            }
            Ok(Event::Shutdown) => break None,
            Ok(Event::Lost(why)) => break Some(why),
            // Pruning is quick and must be done before a shutdown that follows it.
            Ok(Event::Store(message)) => match (*message, node_store.as_ref()) {
                (Message::StoreKeep(keep), Some(store)) => store.keep_only(&keep.epochs),
                // In order with STORE_KEEP: a directory is never made after its epoch's end.
                (Message::StoreBegin(begin), store) => {
                    let (dir, error) = match store.map(|s| s.begin(begin.epoch)) {
                        Some(Ok(dir)) => (dir.display().to_string(), String::new()),
                        Some(Err(e)) => (String::new(), crate::error_chain(&e)),
                        None => (String::new(), "this node has no store".to_owned()),
                    };
                    let _ = uplink.send(&Message::StoreReady(StoreReady {
                        epoch: begin.epoch,
                        dir,
                        error,
                    }));
                }
                (message, store) => store_work(store, &uplink, message),
            },
            Ok(Event::MigrateSend(m)) => {
                let uplink = uplink.clone();
                let (job, node, secret) = (
                    config.job.clone(),
                    config.node.clone(),
                    config.secret.clone(),
                );
                let _ = thread::Builder::new()
                    .name("migrate-send".into())
                    .spawn(move || {
                        crate::migrate::send(m, &job, &node, &secret, &|message| {
                            let _ = uplink.send(message);
                        });
                    });
            }
            Ok(Event::Restore(restore)) => {
                let mut restore_spec = spec.clone();
                restore_spec.program = crate::migrate::restorer();
                restore_spec.arg0 = "mpicr-restore".into();
                restore_spec.args = vec![restore.image.clone().into()];
                // The restorer must run clean: a preloaded library (the ranks' `--crs image`
                // runtime for programs without MPI, or the user's) would start inside it and,
                // not finding MPI there, join the job as the rank. The restored process has
                // every library it had already mapped from its image.
                restore_spec.env.retain(|(k, _)| k != "LD_PRELOAD");
                restore_spec
                    .env
                    .push(("LD_PRELOAD".into(), std::ffi::OsString::new()));
                let restorer_exit =
                    crate::migrate::restorer_exit(restore.image.clone(), on_exit.clone());
                let started = ranks
                    .start_extra(&restore_spec, restore.rank, &restorer_exit)
                    .map_err(|e| crate::error_chain(&e));
                if let Ok(pid) = started {
                    // Before the rank can register (which waits for `started_rank`).
                    relay.arrivals.restoring(pid, restore.image.clone());
                    relay.started_rank(restore.rank, pid);
                    let _ = uplink.send(&Message::RankStarted(RankStarted {
                        rank: restore.rank,
                        pid,
                    }));
                }
                let _ = restore.done.send(started);
            }
            Err(_) => break Some("the daemon's reader stopped".to_owned()),
        }
    };
    drop(spec);
    if let Some(why) = &lost {
        eprintln!(
            "mpicr node {}: {why}; killing the ranks of job {}",
            config.node, config.job
        );
    }
    ranks.finish();
    // No rank writes into the store any more.
    if let Some(store) = &node_store {
        store.sweep_given_up();
    }
    stop_heartbeat.store(true, Ordering::SeqCst);
    // The forwarders are done (or given up) once `finish` returned; the output thread ends
    // when their senders are gone.
    let _ = output_done.recv_timeout(OUTPUT_DRAIN);
    let _ = stream.shutdown(Shutdown::Both);
    drop(dirs);
    Ok(())
}

fn authenticate(
    stream: &TcpStream,
    config: &DaemonConfig,
    role: HelloRole,
) -> Result<(), wire::auth::AuthError> {
    wire::auth::connect(stream, &config.secret, &config.job, &config.node, role)
}

/// Opens the node's store (`--storage`) and starts its service; with a restart, puts the
/// snapshot's manifest there and fetches the parts of this node's ranks that the store lacks.
fn prepare_store(
    config: &DaemonConfig,
    launch: &NodeLaunch,
    listener: TcpListener,
) -> Result<Option<Arc<NodeStore>>, DaemonError> {
    if launch.storage.is_empty() {
        return Ok(None);
    }
    let store = Arc::new(NodeStore::open(
        Path::new(&launch.storage),
        &config.job,
        &config.node,
        &config.secret,
    )?);
    spawn_thread("store", {
        let store = store.clone();
        move || store.serve(listener)
    })?;
    if launch.restart_epoch > 0 && !launch.manifest.is_empty() {
        let dir = store.begin(launch.restart_epoch)?;
        let manifest = dir.join("manifest");
        std::fs::write(&manifest, &launch.manifest).map_err(|source| DaemonError::Dir {
            path: manifest.clone(),
            source,
        })?;
        for part in &launch.parts {
            if let Some(how) = store.fetch(launch.restart_epoch, part)? {
                eprintln!(
                    "mpicr node {}: fetched the part of rank {} of epoch {} {how}",
                    config.node, part.rank, launch.restart_epoch
                );
            }
        }
    }
    Ok(Some(store))
}

/// Does what the coordinator asked of the node's store, on a thread of its own (a copy to a
/// partner may take a while), and answers on the daemon's connection.
fn store_work(store: Option<&Arc<NodeStore>>, uplink: &Uplink, message: Message) {
    let store = store.cloned();
    let uplink = uplink.clone();
    let _ = thread::Builder::new()
        .name("store-work".into())
        .spawn(move || {
            let answer = match (message, store) {
                (Message::StoreKeep(keep), Some(store)) => {
                    store.keep_only(&keep.epochs);
                    return;
                }
                (Message::StoreKeep(_), None) => return,
                (Message::PartKeep(keep), store) => {
                    let mut stored = PartStored {
                        epoch: keep.epoch,
                        rank: keep.rank,
                        nodes: Vec::new(),
                        checkpointer: String::new(),
                        sections: Vec::new(),
                        error: String::new(),
                    };
                    let result = store
                        .ok_or_else(|| "this node has no store".to_owned())
                        .and_then(|store| {
                            let part = store
                                .check(keep.epoch, keep.rank, keep.size, keep.crc32c)
                                .map_err(|e| crate::error_chain(&e))?;
                            let nodes = store
                                .mirror(keep.epoch, keep.rank, &part, &keep.mirrors)
                                .map_err(|e| crate::error_chain(&e))?;
                            Ok((part, nodes))
                        });
                    match result {
                        Ok((part, nodes)) => {
                            stored.nodes = nodes;
                            stored.checkpointer = part.checkpointer;
                            stored.sections = part.sections;
                        }
                        Err(why) => stored.error = why,
                    }
                    Message::PartStored(stored)
                }
                (Message::ParityBuild(build), store) => {
                    let result = store
                        .ok_or_else(|| "this node has no store".to_owned())
                        .and_then(|store| {
                            store
                                .build_parity(build.epoch, &build.name, &build.members)
                                .map_err(|e| crate::error_chain(&e))
                        });
                    let (size, crc32c, error) = match result {
                        Ok((size, crc)) => (size, crc, String::new()),
                        Err(why) => (0, 0, why),
                    };
                    Message::ParityStored(ParityStored {
                        epoch: build.epoch,
                        name: build.name,
                        size,
                        crc32c,
                        error,
                    })
                }
                _ => return,
            };
            let _ = uplink.send(&answer);
        });
}

fn resolve(addr: &str) -> Result<SocketAddr, DaemonError> {
    let error = |source| DaemonError::Connect {
        addr: addr.to_owned(),
        source,
    };
    addr.to_socket_addrs()
        .map_err(error)?
        .next()
        .ok_or_else(|| error(io::Error::new(io::ErrorKind::NotFound, "no address")))
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), DaemonError> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(DaemonError::Thread)
}

fn job_spec(
    config: &DaemonConfig,
    launch: &NodeLaunch,
    dirs: &NodeDirs,
    bind_addr: &str,
    ranks: std::ops::Range<u32>,
    pieces: Sender<crate::output::RemotePiece>,
    restart_dir: Option<&Path>,
) -> JobSpec {
    const OURS: &[&str] = &[
        "MPICR_CONTROL",
        "MPICR_SHM_DIR",
        "MPICR_TRANSPORT",
        "MPICR_BIND_ADDR",
    ];
    let snapshot_dir = launch
        .env
        .iter()
        .find(|(k, _)| k == "MPICR_RESTART_DIR")
        .map(|(_, v)| v);
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = launch
        .env
        .iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .filter(|(k, _)| restart_dir.is_none() || k != "MPICR_RESTART_DIR")
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    env.extend([
        ("MPICR_CONTROL".into(), dirs.socket().into()),
        ("MPICR_SHM_DIR".into(), dirs.shm.clone().into()),
        ("MPICR_TRANSPORT".into(), "auto".into()),
        ("MPICR_BIND_ADDR".into(), bind_addr.into()),
    ]);
    if let Some(dir) = restart_dir {
        // The node's own copy of the snapshot: its manifest and this node's parts.
        env.push(("MPICR_RESTART_DIR".into(), dir.into()));
    }
    JobSpec {
        program: PathBuf::from(&launch.program),
        arg0: launch.arg0.clone().into(),
        args: launch
            .args
            .iter()
            .map(|arg| match restart_dir {
                // The snapshot directory, wherever the command names it (the restorer's
                // `--rank-image DIR`), is this node's copy: its images are there.
                Some(dir) if snapshot_dir == Some(arg) => dir.into(),
                _ => arg.into(),
            })
            .collect(),
        size: launch.size,
        ranks,
        output: OutputTo::Remote(pieces),
        stdin_to_rank0: false,
        env,
        node_name: config.node.clone(),
        tag_output: launch.tag_output,
        cwd: (!launch.cwd.is_empty()).then(|| PathBuf::from(&launch.cwd)),
        clear_env: true,
        stdout_copy: None,
    }
}

/// Reads what the coordinator says until it closes; a broken connection is [`Event::Lost`].
fn read_coordinator(stream: &TcpStream, events: &Sender<Event>) {
    loop {
        let event = match read_message(&mut &*stream) {
            Ok(Message::NodeSignal(signal)) => Event::Signal(signal.signal),
            Ok(Message::NodeShutdown) => Event::Shutdown,
            Ok(
                message @ (Message::StoreBegin(_)
                | Message::PartKeep(_)
                | Message::StoreKeep(_)
                | Message::ParityBuild(_)),
            ) => Event::Store(Box::new(message)),
            Ok(Message::MigrateSend(m)) => Event::MigrateSend(m),
            Ok(other) => Event::Lost(format!(
                "the coordinator sent an unexpected {:?}",
                other.command()
            )),
            Err(ReadError::Closed) => Event::Lost("the coordinator closed the connection".into()),
            Err(e) => Event::Lost(format!(
                "the connection to the coordinator failed: {}",
                crate::error_chain(&e)
            )),
        };
        let last = !matches!(
            event,
            Event::Signal(_) | Event::Store(_) | Event::MigrateSend(_)
        );
        if events.send(event).is_err() || last {
            return;
        }
    }
}

/// Sends a heartbeat every `every`, each with what the ranks use now (read just before, so
/// the coordinator's receipt time is the reading's time to within the network's delay).
fn heartbeat(uplink: &Uplink, every: Duration, stop: &AtomicBool, watched: &Watched) {
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let usage = watched.usage(wire::MAX_HEARTBEAT_USAGE);
        if uplink
            .send(&Message::Heartbeat(Heartbeat { seq, usage }))
            .is_err()
        {
            return;
        }
        thread::sleep(every);
    }
}

/// What relaying a rank's control connection needs.
struct Relay {
    coordinator: SocketAddr,
    config: DaemonConfig,
    uid: u32,
    ranks: std::ops::Range<u32>,
    /// `(rank, pid)` of every rank started so far.
    pids: Mutex<Vec<(u32, u32)>>,
    started: Condvar,
    /// The processes the heartbeats report on.
    watched: Arc<Watched>,
    /// The images of migrated ranks being restored here.
    arrivals: crate::migrate::Arrivals,
}

impl Relay {
    fn started_rank(&self, rank: u32, pid: u32) {
        self.watched.started(rank, pid);
        self.pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((rank, pid));
        self.started.notify_all();
    }

    /// The pid this daemon started as `rank`, waiting a little for a start in progress.
    fn spawned_pid(&self, rank: u32) -> Option<u32> {
        let deadline = Instant::now() + SPAWN_WAIT;
        let mut pids = self.pids.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // The latest: a rank that migrated back here was started again.
            if let Some(&(_, pid)) = pids.iter().rev().find(|(r, _)| *r == rank) {
                return Some(pid);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            pids = self
                .started
                .wait_timeout(pids, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn accept_ranks(listener: &UnixListener, relay: &Arc<Relay>) {
    for connection in listener.incoming() {
        match connection {
            Ok(stream) => {
                let relay = relay.clone();
                let _ = thread::Builder::new().name("relay".into()).spawn(move || {
                    if let Err(why) = relay_one(&stream, &relay) {
                        eprintln!(
                            "mpicr node {}: refused a control connection: {why}",
                            relay.config.node
                        );
                        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                        let _ = write_message(&mut &stream, &Message::Error(why));
                    }
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Checks a connection on the node's socket and, once it is a rank of this node (or a tool of
/// our user), connects it to the coordinator and copies frames both ways until either closes.
fn relay_one(unix: &UnixStream, relay: &Relay) -> Result<(), String> {
    let peer = rustix::net::sockopt::socket_peercred(unix)
        .map_err(|e| format!("the peer's credentials cannot be read: {e}"))?;
    if peer.uid.as_raw() != relay.uid {
        return Err(format!(
            "the peer runs as uid {} (pid {}), and only uid {} may use this job",
            peer.uid.as_raw(),
            peer.pid.as_raw_pid(),
            relay.uid
        ));
    }
    unix.set_read_timeout(Some(FIRST_MESSAGE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let first = match read_message(&mut &*unix) {
        Ok(message) => message,
        Err(ReadError::Closed) => return Ok(()),
        Err(e) => return Err(crate::error_chain(&e)),
    };
    if let Message::Register(register) = &first {
        let migrated_here = relay
            .pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(r, _)| *r == register.rank);
        if !relay.ranks.contains(&register.rank) && !migrated_here {
            return Err(format!(
                "rank {} does not run on node {}",
                register.rank, relay.config.node
            ));
        }
        let Some(spawned) = relay.spawned_pid(register.rank) else {
            return Err(format!("rank {} was not started yet", register.rank));
        };
        if !is_self_or_descendant(register.pid, spawned) {
            return Err(format!(
                "pid {} is not the process started as rank {} (pid {spawned}) nor one of its descendants",
                register.pid, register.rank
            ));
        }
        if register.pid != peer.pid.as_raw_pid() as u32 {
            return Err(format!(
                "pid {} registered for pid {}",
                peer.pid.as_raw_pid(),
                register.pid
            ));
        }
        relay.watched.registered(register.rank, register.pid);
        relay.arrivals.registered(spawned);
    }
    unix.set_read_timeout(None).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect_timeout(&relay.coordinator, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot reach the coordinator: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(FIRST_MESSAGE_TIMEOUT));
    authenticate(&tcp, &relay.config, HelloRole::Relay)
        .map_err(|e| format!("cannot reach the coordinator: {}", crate::error_chain(&e)))?;
    let _ = tcp.set_read_timeout(None);
    write_message(&mut &tcp, &first).map_err(|e| format!("cannot reach the coordinator: {e}"))?;
    let (down_tcp, down_unix) = match (tcp.try_clone(), unix.try_clone()) {
        (Ok(t), Ok(u)) => (t, u),
        (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
    };
    let down = thread::Builder::new()
        .name("relay-down".into())
        .spawn(move || {
            let _ = io::copy(&mut &down_tcp, &mut &down_unix);
            let _ = down_unix.shutdown(Shutdown::Both);
        })
        .map_err(|e| e.to_string())?;
    let _ = io::copy(&mut &*unix, &mut &tcp);
    let _ = (&tcp).flush();
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = down.join();
    let _ = tcp.shutdown(Shutdown::Both);
    Ok(())
}

/// Starts the helper that removes the node's directories once this process is gone; it
/// waits for the end of its stdin, whose other end only this process holds (close-on-exec,
/// so the ranks do not inherit it).
fn start_cleanup(command: &[std::ffi::OsString], dirs: &NodeDirs) -> Option<std::process::Child> {
    let (program, args) = command.split_first()?;
    std::process::Command::new(program)
        .args(args)
        .arg(&dirs.private)
        .arg(&dirs.shm)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| tracing::warn!("cannot start the cleanup helper: {e}"))
        .ok()
}

/// `mpicr node-cleanup DIR…`: waits until stdin closes (the daemon is gone), then removes
/// each DIR that is a node directory (`*.node`, or `mpicr-*` in /dev/shm) of this user.
pub fn cleanup_after_daemon(dirs: &[PathBuf]) {
    let mut sink = [0u8; 64];
    let mut stdin = io::stdin().lock();
    while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
    let uid = rustix::process::getuid().as_raw();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && (name.ends_with(".node") || name.starts_with("mpicr-") || name == "shm") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The node's private directory (holding the control socket) and its shared-memory
/// directory, both 0700, named after the job, the node and the daemon's pid, removed when
/// dropped (and by the cleanup helper if the daemon is killed). A leftover of the same name
/// (a dead process that had our pid) is removed first, and so are those of dead owners
/// (`crate::owner`), whose cleanup helper was killed with them.
struct NodeDirs {
    private: PathBuf,
    shm: PathBuf,
}

impl NodeDirs {
    fn create(job: &str, node: &str) -> Result<Self, DaemonError> {
        let uid = rustix::process::getuid().as_raw();
        let base = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("mpicr"),
            _ => PathBuf::from(format!("/tmp/mpicr-{uid}")),
        };
        let dir_error = |path: &Path| {
            let path = path.to_owned();
            move |source| DaemonError::Dir { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)
            .map_err(dir_error(&base))?;
        let meta = std::fs::symlink_metadata(&base).map_err(dir_error(&base))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(DaemonError::Dir {
                path: base,
                source: io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("it must be a directory of uid {uid} with mode 0700"),
                ),
            });
        }
        // The daemon's pid makes the names its own: the daemon of a recovered job on the same
        // node must not meet the directories of the one before (whose cleanup helper may still
        // be removing them).
        let pid = std::process::id();
        let mut private = base.join(format!("{job}.{node}.{pid}.node"));
        if private.join("control.sock").as_os_str().len() > MAX_SOCKET_PATH {
            private = base.join(format!("{pid}.node"));
        }
        let shm_root = Path::new(owner::DEV_SHM);
        let shm = if shm_root.is_dir() {
            shm_root.join(format!("{}{job}-{node}-{pid}", owner::shm_prefix(uid)))
        } else {
            private.join("shm")
        };
        owner::remove_dead_shm(uid);
        owner::remove_dead(&base, uid, |name| name.ends_with(".node"));
        for dir in [&private, &shm] {
            if std::fs::symlink_metadata(dir).is_ok() {
                std::fs::remove_dir_all(dir).map_err(dir_error(dir))?;
            }
        }
        let dirs = Self { private, shm };
        for dir in [&dirs.private, &dirs.shm] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(dir_error(dir))?;
            owner::mark_owned(dir).map_err(dir_error(dir))?;
        }
        Ok(dirs)
    }

    fn socket(&self) -> PathBuf {
        self.private.join("control.sock")
    }
}

impl Drop for NodeDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.shm);
        let _ = std::fs::remove_dir_all(&self.private);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_a_line_or_a_private_file() {
        assert_eq!(read_secret_line(&b"abc\nrest"[..]).unwrap(), "abc");
        assert!(read_secret_line(&b"\n"[..]).is_err());
        let dir = std::env::temp_dir().join(format!("mpicr-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s");
        std::fs::write(&file, "xyz\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            read_secret_file(&file).is_err(),
            "a readable file is refused"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&file).unwrap(), "xyz");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
