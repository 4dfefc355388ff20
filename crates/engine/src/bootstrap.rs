//! Joining a job: read the launcher's environment, register with the coordinator, receive the
//! process table (REFRESH) and open a link to every peer.
//!
//! The launch contract is in `docs/launch.md`. A program started without `MPICR_RANK` runs as
//! a job of one (MPI's "singleton init"), so MPI programs also work outside `mpicr run`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use thiserror::Error;
use transport::{Doorbell, Link, LoopbackLink, Ring, RingError, ShmLink, TcpLink};
use wire::stream::{ReadError, read_message, write_message};
use wire::{Message, ProcEntry, Register};

use crate::EngineError;
use crate::channel::Channel;
use crate::engine::{Engine, Idle};

/// Why a rank could not join its job.
#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("environment variable {name} is {value:?}, which is not {expected}")]
    BadEnv {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot reach the coordinator at {path}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the coordinator failed")]
    Control(#[from] ReadError),
    #[error("sending to the coordinator failed")]
    ControlWrite(#[source] std::io::Error),
    #[error("the coordinator refused this rank: {0}")]
    Refused(String),
    #[error("the coordinator sent {0:?} where the process table was expected")]
    Unexpected(wire::Command),
    #[error("the process table has {got} ranks, but this job has {expected}")]
    TableSize { got: usize, expected: u32 },
    #[error("rank {rank} published no address this rank can use ({addr:?})")]
    NoAddress { rank: u32, addr: String },
    #[error("setting up a shared-memory link failed")]
    Shm(#[from] RingError),
    #[error("the TCP data-plane connection with rank {rank} ({addr}) failed")]
    Tcp {
        rank: u32,
        addr: String,
        source: std::io::Error,
    },
    #[error("a data-plane connection did not introduce itself as a rank of this job")]
    Handshake,
    #[error("the control connection the previous program of this process handed over is unusable")]
    Inherited(#[from] image::InheritError),
    #[error(
        "a control connection is handed over across exec only in a job of one rank, and this job has {0}"
    )]
    InheritedInLargerJob(u32),
}

const HANDSHAKE_MAGIC: [u8; 8] = *b"MPCRDATA";
const HANDSHAKE_VERSION: u32 = 1;
pub(crate) const HANDSHAKE_LEN: usize = 20;

/// The launcher's instructions to this rank.
#[derive(Debug)]
pub(crate) struct LaunchEnv {
    pub(crate) rank: u32,
    pub(crate) size: u32,
    pub(crate) job: String,
    pub(crate) control: PathBuf,
    transport: Transport,
    pub(crate) shm_dir: Option<PathBuf>,
    pub(crate) bind: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Shared memory only (every rank on one node).
    Shm,
    /// TCP only.
    Tcp,
    /// Shared memory with ranks on the same node, TCP with the others.
    Auto,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where a rank's launch variables come from: its environment, or (a rank restored from an
/// image, whose environment is the old job's) the restorer's hand-over.
pub(crate) type Lookup<'a> = &'a dyn Fn(&'static str) -> Option<String>;

fn parse_u32(name: &'static str, value: String) -> Result<u32, BootstrapError> {
    value.parse().map_err(|_| BootstrapError::BadEnv {
        name,
        value,
        expected: "a number",
    })
}

impl LaunchEnv {
    pub(crate) fn read(var: Lookup<'_>) -> Result<Option<Self>, BootstrapError> {
        let Some(rank) = var("MPICR_RANK") else {
            return Ok(None);
        };
        let rank = parse_u32("MPICR_RANK", rank)?;
        let size = parse_u32("MPICR_SIZE", var("MPICR_SIZE").unwrap_or_default())?;
        if rank >= size {
            return Err(BootstrapError::BadEnv {
                name: "MPICR_RANK",
                value: rank.to_string(),
                expected: "smaller than MPICR_SIZE",
            });
        }
        let control = var("MPICR_CONTROL").ok_or(BootstrapError::BadEnv {
            name: "MPICR_CONTROL",
            value: String::new(),
            expected: "the coordinator's socket path",
        })?;
        let transport = match var("MPICR_TRANSPORT").as_deref() {
            None | Some("shm") => Transport::Shm,
            Some("tcp") => Transport::Tcp,
            Some("auto") => Transport::Auto,
            Some(other) => {
                return Err(BootstrapError::BadEnv {
                    name: "MPICR_TRANSPORT",
                    value: other.into(),
                    expected: "shm, tcp or auto",
                });
            }
        };
        Ok(Some(Self {
            rank,
            size,
            job: var("MPICR_JOB").unwrap_or_default(),
            control: control.into(),
            transport,
            shm_dir: var("MPICR_SHM_DIR").map(PathBuf::from),
            bind: var("MPICR_BIND_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
        }))
    }
}

/// A rank that has joined its job.
#[derive(Debug)]
pub struct Joined {
    pub engine: Engine,
    /// The connection to the coordinator; `None` for a singleton.
    pub control: Option<UnixStream>,
    pub table: Vec<ProcEntry>,
}

fn eager_limit() -> usize {
    var("MPICR_EAGER_LIMIT")
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 * 1024)
}

fn ring_bytes(size: u32) -> usize {
    let fair = (256usize << 20) / (size as usize * size as usize).max(1);
    var("MPICR_SHM_RING_BYTES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(fair.clamp(64 << 10, 1 << 20))
}

/// Bytes that every program able to join a job by itself carries, because [`join`] refers to
/// them: the preloaded runtime (`crates/preload`) finds them in an executable linked with the
/// engine (a Rust program on the `mpicr` crate, a C program with a static libmpi) and then stays
/// out of its way.
pub static RUNTIME_MARKER: [u8; 32] = *b"mpicr: this program joins a job!";

/// Joins the job described by the environment, or starts a job of one.
pub fn join() -> Result<Joined, BootstrapError> {
    std::hint::black_box(&RUNTIME_MARKER);
    let Some(env) = LaunchEnv::read(&var)? else {
        let channels = vec![Channel::new(Link::Loopback(LoopbackLink::default()))];
        let engine = Engine::new(0, channels, Idle { bell: None }, eager_limit(), None, 1);
        return Ok(Joined {
            engine,
            control: None,
            table: Vec::new(),
        });
    };
    let inherited = match var(image::CONTROL_FD_VAR) {
        Some(value) => image::take_inherited_control(&value)?,
        None => None,
    };
    let c = connect(&env, &var, inherited)?;
    let engine_control = c
        .control
        .try_clone()
        .map_err(BootstrapError::ControlWrite)?;
    let control_fds = vec![c.control.as_raw_fd(), engine_control.as_raw_fd()];
    let mut engine = Engine::new(
        env.rank,
        c.channels,
        Idle { bell: c.bell },
        eager_limit(),
        Some(engine_control),
        c.local_ranks,
    );
    engine.set_launch_facts(env.shm_dir.clone(), control_fds);
    engine.mig.job.clone_from(&env.job);
    engine.mig.addrs = c.table.iter().map(|e| e.data_addr.clone()).collect();
    Ok(Joined {
        engine,
        control: Some(c.control),
        table: c.table,
    })
}

/// What joining built: the links, the doorbell, the coordinator's connection, the table.
struct Connected {
    channels: Vec<Channel>,
    bell: Option<Rc<Doorbell>>,
    control: UnixStream,
    table: Vec<ProcEntry>,
    local_ranks: usize,
}

impl Engine {
    /// Joins the job a rank restored from an image now belongs to, described by `vars` (the
    /// restorer's hand-over; the process's own environment is the old job's): new links to
    /// every peer and a new connection to the coordinator, registered with this process's pid.
    ///
    /// The old links and control connection are gone with the old job: their objects are
    /// forgotten, never dropped (their descriptor numbers are free now and may be reused).
    /// The front end and the engine hold the control connection at two descriptor numbers;
    /// both are reserved first and then hold the new connection, so those objects work on.
    /// Packets queued for a peer stay queued and go out on the new link.
    pub(crate) fn rejoin(&mut self, vars: &[(String, String)]) -> Result<(), EngineError> {
        let lookup = handed_over(vars);
        let (env, fds) = self.restored_env(&lookup)?;
        let c = connect(&env, &lookup, None)?;
        place_control(&c.control, &fds)?;
        drop(c.control);
        self.mig.addrs = c.table.iter().map(|e| e.data_addr.clone()).collect();
        self.replace_links(c.channels, c.bell, c.local_ranks);
        self.set_launch_facts(env.shm_dir.clone(), fds);
        self.arm_attention();
        Ok(())
    }

    /// The first step of every return from an image (a restart, a migration): reserves the
    /// control connection's descriptor numbers before anything can take them, and reads the
    /// new job's launch variables, which must name this rank of a job of this size.
    pub(crate) fn restored_env(
        &self,
        lookup: Lookup<'_>,
    ) -> Result<(LaunchEnv, Vec<RawFd>), EngineError> {
        let fds = self.control_fds.clone();
        image::reserve_fds(&fds).map_err(|e| {
            EngineError::Checkpoint(format!("cannot keep the control descriptors: {e}"))
        })?;
        let env = LaunchEnv::read(lookup)?.ok_or_else(|| {
            EngineError::Checkpoint("the restorer handed over no MPICR_RANK".into())
        })?;
        if env.rank != self.rank() || env.size != self.size() {
            return Err(EngineError::Checkpoint(format!(
                "the image is rank {} of {}, but it was restored as rank {} of {}",
                self.rank(),
                self.size(),
                env.rank,
                env.size
            )));
        }
        Ok((env, fds))
    }
}

/// The launch variables a restorer handed over, looked up by name (empty ones count as unset).
pub(crate) fn handed_over(
    vars: &[(String, String)],
) -> impl Fn(&'static str) -> Option<String> + '_ {
    move |name| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
}

/// Puts the new control connection at the reserved descriptor numbers `fds`, where the front
/// end's and the engine's objects of the old one look for it.
pub(crate) fn place_control(control: &UnixStream, fds: &[RawFd]) -> Result<(), EngineError> {
    for &fd in fds {
        image::replace_placeholder(control.as_fd(), fd).map_err(|e| {
            EngineError::Checkpoint(format!("cannot place the control connection: {e}"))
        })?;
    }
    Ok(())
}

/// Creates this rank's inbound links, registers with the coordinator (or takes over the
/// registered connection `inherited` from the program this process executed before), waits for
/// the process table and opens a link to every peer.
fn connect(
    env: &LaunchEnv,
    var: Lookup<'_>,
    inherited: Option<UnixStream>,
) -> Result<Connected, BootstrapError> {
    let node = var("MPICR_NODE").unwrap_or_else(|| {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    });
    let pid = std::process::id();
    let shm = match env.transport {
        Transport::Shm | Transport::Auto => {
            let dir = env.shm_dir.clone().ok_or(BootstrapError::BadEnv {
                name: "MPICR_SHM_DIR",
                value: String::new(),
                expected: "a directory for shared-memory links",
            })?;
            let rx = create_inbound(&dir, env)?;
            Some((dir, rx))
        }
        Transport::Tcp => None,
    };
    let tcp = match env.transport {
        Transport::Tcp | Transport::Auto => Some(listen(env)?),
        Transport::Shm => None,
    };
    let mut endpoints = Vec::new();
    if let Some((dir, _)) = &shm {
        endpoints.push(format!("shm:{}", dir.display()));
    }
    if let Some((_, addr)) = &tcp {
        endpoints.push(format!("tcp:{addr}"));
    }
    let register = Register {
        rank: env.rank,
        pid,
        host: node.clone(),
        data_addr: endpoints.join(";"),
    };
    let (control, table) = match inherited {
        Some(control) => (control, taken_over_table(env, register)?),
        None => register_with(env, register)?,
    };
    if table.len() != env.size as usize {
        return Err(BootstrapError::TableSize {
            got: table.len(),
            expected: env.size,
        });
    }
    let kinds = table
        .iter()
        .map(|entry| link_kind(env, &node, shm.is_some(), tcp.is_some(), entry))
        .collect::<Result<Vec<_>, _>>()?;
    let mut links: Vec<Option<Link>> = (0..env.size).map(|_| None).collect();
    links[env.rank as usize] = Some(Link::Loopback(LoopbackLink::default()));
    let mut bell = None;
    if let Some((dir, rx)) = shm {
        bell = Some(shm_links(&dir, env, rx, &table, &kinds, &mut links)?);
    }
    if let Some((listener, _)) = tcp {
        tcp_links(listener, env, &table, &kinds, &mut links)?;
    }
    let channels = links
        .into_iter()
        .map(|l| Channel::new(l.expect("every rank got a link")))
        .collect();
    let local_ranks = table.iter().filter(|e| e.node == node).count();
    Ok(Connected {
        channels,
        bell,
        control,
        table,
        local_ranks,
    })
}

/// Sends REGISTER on a new connection to the coordinator and waits for the process table.
fn register_with(
    env: &LaunchEnv,
    register: Register,
) -> Result<(UnixStream, Vec<ProcEntry>), BootstrapError> {
    let mut control =
        UnixStream::connect(&env.control).map_err(|source| BootstrapError::Connect {
            path: env.control.display().to_string(),
            source,
        })?;
    write_message(&mut control, &Message::Register(register))
        .map_err(BootstrapError::ControlWrite)?;
    let table = match read_message(&mut control)? {
        Message::Refresh(r) => r.table,
        Message::Error(reason) => return Err(BootstrapError::Refused(reason)),
        other => return Err(BootstrapError::Unexpected(other.command())),
    };
    Ok((control, table))
}

/// The process table of a rank whose connection was registered by the program this process
/// executed before (the preloaded runtime, only ever in a job of one rank): the coordinator
/// sent it to that program, and with one rank it holds only this process (`exec` keeps the
/// pid), running.
fn taken_over_table(env: &LaunchEnv, me: Register) -> Result<Vec<ProcEntry>, BootstrapError> {
    if env.size != 1 {
        return Err(BootstrapError::InheritedInLargerJob(env.size));
    }
    Ok(vec![ProcEntry {
        rank: me.rank,
        node: me.host,
        pid: me.pid,
        state: wire::ProcState::Running,
        data_addr: me.data_addr,
    }])
}

/// This rank's TCP listener on the address the launcher chose.
fn listen(env: &LaunchEnv) -> Result<(TcpListener, std::net::SocketAddr), BootstrapError> {
    let err = |source| BootstrapError::Tcp {
        rank: env.rank,
        addr: env.bind.clone(),
        source,
    };
    let listener = TcpListener::bind((env.bind.as_str(), 0)).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok((listener, addr))
}

/// How this rank talks to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    Loopback,
    Shm,
    Tcp,
}

/// The endpoint of `kind` (`shm` or `tcp`) a peer published, if any.
pub(crate) fn endpoint<'a>(data_addr: &'a str, kind: &str) -> Option<&'a str> {
    data_addr
        .split(';')
        .find_map(|e| e.strip_prefix(kind).and_then(|rest| rest.strip_prefix(':')))
}

/// Shared memory with peers on this node when both sides offer it, TCP otherwise.
fn link_kind(
    env: &LaunchEnv,
    node: &str,
    shm: bool,
    tcp: bool,
    entry: &ProcEntry,
) -> Result<LinkKind, BootstrapError> {
    if entry.rank == env.rank {
        return Ok(LinkKind::Loopback);
    }
    if shm && entry.node == node && endpoint(&entry.data_addr, "shm").is_some() {
        return Ok(LinkKind::Shm);
    }
    if tcp && endpoint(&entry.data_addr, "tcp").is_some() {
        return Ok(LinkKind::Tcp);
    }
    Err(BootstrapError::NoAddress {
        rank: entry.rank,
        addr: entry.data_addr.clone(),
    })
}

/// The rings that carry bytes to this rank (one per peer) and its doorbell, made before
/// registering so that they exist when any peer receives the process table.
struct InboundShm {
    rings: Vec<Option<Ring>>,
    bell: Doorbell,
}

fn ring_path(dir: &Path, from: u32, to: u32) -> PathBuf {
    dir.join(format!("ring-{from}-to-{to}"))
}

fn bell_path(dir: &Path, rank: u32) -> PathBuf {
    dir.join(format!("bell-{rank}"))
}

fn create_inbound(dir: &Path, env: &LaunchEnv) -> Result<InboundShm, BootstrapError> {
    let bytes = ring_bytes(env.size);
    let rings = (0..env.size)
        .map(|from| {
            (from != env.rank)
                .then(|| Ring::create(&ring_path(dir, from, env.rank), bytes))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let bell = Doorbell::create(&bell_path(dir, env.rank))?;
    Ok(InboundShm { rings, bell })
}

/// Opens the outbound ring and the doorbell of every peer reached by shared memory; returns
/// this rank's own doorbell.
fn shm_links(
    dir: &Path,
    env: &LaunchEnv,
    rx: InboundShm,
    table: &[ProcEntry],
    kinds: &[LinkKind],
    links: &mut [Option<Link>],
) -> Result<Rc<Doorbell>, BootstrapError> {
    for (peer, inbound) in rx.rings.into_iter().enumerate() {
        if kinds[peer] != LinkKind::Shm {
            continue;
        }
        let peer32 = peer as u32;
        let tx = Ring::open(&ring_path(dir, env.rank, peer32))?;
        let bell = Doorbell::open(&bell_path(dir, peer32))?;
        let rx = inbound.expect("an inbound ring exists for every peer");
        links[peer] = Some(Link::Shm(ShmLink::new(tx, rx, bell, table[peer].pid)));
    }
    Ok(Rc::new(rx.bell))
}

pub(crate) fn handshake(rank: u32, job: &str) -> [u8; HANDSHAKE_LEN] {
    let mut b = [0u8; HANDSHAKE_LEN];
    b[..8].copy_from_slice(&HANDSHAKE_MAGIC);
    b[8..12].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&rank.to_le_bytes());
    b[16..20].copy_from_slice(&crc32c::crc32c(job.as_bytes()).to_le_bytes());
    b
}

/// Connects to every lower TCP peer and accepts every higher one, so each pair has one
/// connection.
fn tcp_links(
    listener: TcpListener,
    env: &LaunchEnv,
    table: &[ProcEntry],
    kinds: &[LinkKind],
    links: &mut [Option<Link>],
) -> Result<(), BootstrapError> {
    for peer in (0..env.rank).filter(|&p| kinds[p as usize] == LinkKind::Tcp) {
        let addr = table[peer as usize].data_addr.clone();
        let tcp_err = |source| BootstrapError::Tcp {
            rank: peer,
            addr: addr.clone(),
            source,
        };
        let target = endpoint(&addr, "tcp").ok_or_else(|| BootstrapError::NoAddress {
            rank: peer,
            addr: addr.clone(),
        })?;
        let mut stream = TcpStream::connect(target).map_err(tcp_err)?;
        stream
            .write_all(&handshake(env.rank, &env.job))
            .map_err(tcp_err)?;
        links[peer as usize] = Some(Link::Tcp(TcpLink::new(stream).map_err(tcp_err)?));
    }
    let higher = (env.rank + 1..env.size)
        .filter(|&p| kinds[p as usize] == LinkKind::Tcp)
        .count();
    for _ in 0..higher {
        let (mut stream, from) = listener.accept().map_err(|source| BootstrapError::Tcp {
            rank: env.rank,
            addr: "listener".into(),
            source,
        })?;
        let mut hello = [0u8; HANDSHAKE_LEN];
        stream
            .read_exact(&mut hello)
            .map_err(|_| BootstrapError::Handshake)?;
        let peer = u32::from_le_bytes(hello[12..16].try_into().expect("4 bytes"));
        let valid = peer > env.rank
            && peer < env.size
            && kinds[peer as usize] == LinkKind::Tcp
            && links[peer as usize].is_none()
            && hello == handshake(peer, &env.job);
        if !valid {
            tracing::warn!("refused a data-plane connection from {from}: bad handshake");
            return Err(BootstrapError::Handshake);
        }
        let tcp_err = |source| BootstrapError::Tcp {
            rank: peer,
            addr: from.to_string(),
            source,
        };
        links[peer as usize] = Some(Link::Tcp(TcpLink::new(stream).map_err(tcp_err)?));
    }
    Ok(())
}
