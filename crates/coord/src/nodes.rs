//! The coordinator's side of a job on several nodes: the TCP control port, the node daemons
//! it starts through the launcher, and what it hears from them.
//!
//! Every connection to the TCP port must begin with NODE_HELLO carrying the job's secret;
//! anything else is logged (`mpicr: refused a control connection from ADDR: reason`) and
//! closed, and the job goes on. A daemon's own connection then carries NODE_LAUNCH down and
//! RANK_STARTED, RANK_OUTPUT, RANK_ENDED and HEARTBEAT up (with the ranks' usage, kept for
//! the status reply); a relayed connection carries a
//! rank's frames exactly as the Unix control socket would.

use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use node::{ExitStatus, RankExit};
use store::ParityEntry;
use wire::stream::{ReadError, read_message, write_message};
use wire::{HelloRole, Message, NodeLaunch, NodeSignal, ProcState};

use crate::checkpoint::CkptEvent;
use crate::hosts::{HostSpec, Launcher, new_secret};
use crate::launch::Event;
use crate::report::{error_chain, say};
use crate::server::{Shared, serve_relayed};

/// How long a new connection on the TCP port may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemons may take to connect back after they were started.
const DAEMON_START: Duration = Duration::from_secs(30);
/// How long a write to a daemon may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemons may take to end once told to.
const DAEMON_EXIT: Duration = Duration::from_secs(5);

/// How the job reaches its nodes.
#[derive(Debug, Clone)]
pub struct NodesConfig {
    pub hosts: Vec<HostSpec>,
    pub launcher: Launcher,
    /// The address the coordinator listens on (`--coordinator-addr`, or found by routing).
    pub listen: IpAddr,
    /// How often the daemons send a heartbeat; three missed ones fail the node.
    pub heartbeat: Duration,
    /// The `mpicr` program the daemons run (`mpicr node`).
    pub daemon_program: PathBuf,
    /// `--storage`: each node's checkpoint store, `{node}` substituted; `None`: the ranks write
    /// their parts into the coordinator's snapshot directory.
    pub storage: Option<String>,
    /// `--mirror K`: copies of each part on K other nodes before a snapshot is committed.
    pub mirror: u32,
    /// `--parity G`: XOR parity of each group of G nodes, kept on a node of the next group.
    pub parity: u32,
    /// `--spares N`: hosts kept free; a recovery puts a lost node's ranks on the first one.
    pub spares: Vec<HostSpec>,
}

/// A connected daemon: its node, its store service, the connection to write to.
#[derive(Debug)]
pub(crate) struct DaemonLink {
    pub(crate) node: String,
    pub(crate) store_addr: String,
    stream: Mutex<TcpStream>,
}

impl DaemonLink {
    pub(crate) fn send(&self, message: &Message) -> io::Result<()> {
        let stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        write_message(&mut &*stream, message)
    }
}

/// The daemons of a job on several nodes, and how its parts are kept.
#[derive(Debug)]
pub(crate) struct StoreFacts {
    /// The `--storage` template (`{node}` not substituted).
    pub(crate) storage: Option<String>,
    /// How the nodes are reached ([`Launcher::spec`]), recorded with each snapshot for `mpicr
    /// gc`.
    pub(crate) launcher: String,
    pub(crate) mirror: u32,
    pub(crate) parity: u32,
    /// In host order.
    pub(crate) daemons: Vec<Arc<DaemonLink>>,
}

impl StoreFacts {
    /// The nodes that keep copies of the parts of `node`'s ranks: the next `mirror` nodes.
    pub(crate) fn partners(&self, node: &str) -> Vec<wire::StorePeer> {
        let n = self.daemons.len();
        let Some(i) = self.daemons.iter().position(|d| d.node == node) else {
            return Vec::new();
        };
        (1..=self.mirror as usize)
            .filter(|k| *k < n)
            .map(|k| {
                let d = &self.daemons[(i + k) % n];
                wire::StorePeer {
                    node: d.node.clone(),
                    addr: d.store_addr.clone(),
                }
            })
            .collect()
    }

    pub(crate) fn peer(&self, node: &str) -> Option<wire::StorePeer> {
        self.daemon(node).map(|d| wire::StorePeer {
            node: d.node.clone(),
            addr: d.store_addr.clone(),
        })
    }

    pub(crate) fn daemon(&self, node: &str) -> Option<&Arc<DaemonLink>> {
        self.daemons.iter().find(|d| d.node == node)
    }

    /// Sends `message` to every daemon, ignoring those that cannot be reached.
    pub(crate) fn send_all(&self, message: &Message) {
        for d in &self.daemons {
            let _ = d.send(message);
        }
    }
}

/// How a node rebuilds `rank`'s part from its group's parity when no holder answers; `None`
/// without parity or when the parity's holder does not run.
fn rebuild_from_parity(
    restart: &RestartParts,
    rank: u32,
    facts: &StoreFacts,
) -> Option<Box<wire::Rebuild>> {
    let entry = restart
        .extra
        .iter()
        .filter_map(|(k, v)| ParityEntry::decode(k, v))
        .find(|e| e.ranks.contains(&rank))?;
    let holder = facts.peer(&entry.holder)?;
    let others = entry
        .ranks
        .iter()
        .filter(|&&r| r != rank)
        .filter_map(|&r| restart.parts.iter().find(|p| p.rank == r))
        .map(|p| wire::PartSource {
            rank: p.rank,
            size: p.size,
            crc32c: p.crc32c,
            holders: p.nodes.iter().filter_map(|n| facts.peer(n)).collect(),
            rebuild: None,
        })
        .collect();
    Some(Box::new(wire::Rebuild {
        name: entry.name,
        size: entry.size,
        crc32c: entry.crc32c,
        holder,
        others,
    }))
}

/// Substitutes `{node}` in a `--storage` template.
pub(crate) fn node_storage(template: &str, node: &str) -> String {
    template.replace("{node}", node)
}

/// The snapshot a job on several nodes restarts from, when its parts are in node stores.
#[derive(Debug, Clone)]
pub(crate) struct RestartParts {
    pub(crate) epoch: u64,
    pub(crate) manifest: Vec<u8>,
    pub(crate) parts: Vec<store::PartInfo>,
    /// The manifest's `extra`, whose `parity.*` entries say how to rebuild a part.
    pub(crate) extra: std::collections::BTreeMap<String, String>,
}

impl NodesConfig {
    /// How long a daemon may be silent before its node counts as failed.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat * 3
    }
}

/// Why the daemons could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeStartError {
    /// A node did not come up: its launcher failed or its daemon never connected.
    #[error("node {node} cannot be reached: {why}")]
    Unreachable { node: String, why: String },
    /// A node's daemon failed while it started.
    #[error("node {node} failed: {why}")]
    Failed { node: String, why: String },
    #[error("{0}")]
    Other(String),
}

impl From<String> for NodeStartError {
    fn from(why: String) -> Self {
        Self::Other(why)
    }
}

/// One node of the running job.
struct NodeRun {
    name: String,
    ranks: Range<u32>,
    child: Option<Child>,
    link: Option<Arc<DaemonLink>>,
    reader: Option<JoinHandle<()>>,
    /// The daemon connected back (its link may be gone already at the end).
    connected: bool,
}

/// The daemons of a running job. Dropping it ends them.
pub(crate) struct NodeSet {
    nodes: Vec<NodeRun>,
    finishing: Arc<AtomicBool>,
    stop_accept: Arc<AtomicBool>,
    port: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSet")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Everything the accepting threads need.
struct Gate {
    job: String,
    secret: String,
    nodes: Vec<String>,
    shared: Arc<Shared>,
    daemons: Mutex<Sender<(String, TcpStream, String)>>,
}

impl NodeSet {
    /// Starts a daemon on every node that gets ranks (`counts[i]` ranks on `hosts[i]`, block
    /// placement), waits for each to connect back and sends it its ranks.
    pub(crate) fn start(
        config: &NodesConfig,
        counts: &[u32],
        launch: &NodeLaunch,
        restart: Option<&RestartParts>,
        shared: Arc<Shared>,
        events: Sender<Event>,
    ) -> Result<Self, NodeStartError> {
        let job = shared.job_name().to_owned();
        let listener = TcpListener::bind((config.listen, 0)).map_err(|e| {
            format!(
                "cannot listen for the node daemons on {}: {e}",
                config.listen
            )
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot read the control port's address: {e}"))?;
        let secret = new_secret().map_err(|e| format!("cannot make the job's secret: {e}"))?;
        let mut nodes = Vec::new();
        let mut first = 0;
        for (host, &count) in config.hosts.iter().zip(counts) {
            if count > 0 {
                nodes.push(NodeRun {
                    name: host.name.clone(),
                    ranks: first..first + count,
                    child: None,
                    link: None,
                    reader: None,
                    connected: false,
                });
            }
            first += count;
        }
        let (daemons, hellos) = mpsc::channel();
        let gate = Arc::new(Gate {
            job: job.clone(),
            secret: secret.clone(),
            nodes: nodes.iter().map(|n| n.name.clone()).collect(),
            shared: shared.clone(),
            daemons: Mutex::new(daemons),
        });
        let stop_accept = Arc::new(AtomicBool::new(false));
        let accept = thread::Builder::new()
            .name("node-accept".into())
            .spawn({
                let stop = stop_accept.clone();
                move || accept_loop(&listener, &stop, &gate)
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let mut set = Self {
            nodes,
            finishing: Arc::new(AtomicBool::new(false)),
            stop_accept,
            port,
            accept: Some(accept),
        };
        tracing::info!(%port, "control port for the node daemons");
        let ms = config.heartbeat.as_millis().max(1);
        for node in &mut set.nodes {
            let daemon = vec![
                config.daemon_program.display().to_string(),
                "node".to_owned(),
                "--coordinator".to_owned(),
                port.to_string(),
                "--job".to_owned(),
                job.clone(),
                "--node".to_owned(),
                node.name.clone(),
                "--heartbeat".to_owned(),
                format!("{ms}ms"),
            ];
            let command = config.launcher.command(&node.name, &daemon);
            node.child = Some(start_daemon(&node.name, &command, &secret)?);
        }
        // Wait for every daemon to connect back.
        let deadline = Instant::now() + DAEMON_START;
        while set.nodes.iter().any(|n| n.link.is_none()) {
            match hellos.recv_timeout(Duration::from_millis(100)) {
                Ok((name, stream, store_addr)) => {
                    if let Some(node) = set
                        .nodes
                        .iter_mut()
                        .find(|n| n.name == name && n.link.is_none())
                    {
                        node.connected = true;
                        node.link = Some(Arc::new(DaemonLink {
                            node: name,
                            store_addr,
                            stream: Mutex::new(stream),
                        }));
                    } else {
                        say(&format!(
                            "refused a second daemon connection for node {name}"
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(NodeStartError::Other("the control port stopped".into()));
                }
            }
            for node in &mut set.nodes {
                if node.link.is_none()
                    && let Some(child) = node.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    let why = format!(
                        "its daemon ended ({status}) before it connected to the coordinator"
                    );
                    // ssh and `ip netns exec` end with 255 when they cannot reach the node;
                    // anything else (a daemon killed while it started) is a failure of a
                    // reachable node.
                    return Err(if status.code() == Some(255) {
                        NodeStartError::Unreachable {
                            node: node.name.clone(),
                            why,
                        }
                    } else {
                        NodeStartError::Failed {
                            node: node.name.clone(),
                            why,
                        }
                    });
                }
            }
            if Instant::now() > deadline {
                let missing = set
                    .nodes
                    .iter()
                    .find(|n| n.link.is_none())
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                return Err(NodeStartError::Unreachable {
                    node: missing,
                    why: format!(
                        "its daemon did not connect to the coordinator at {port} within {DAEMON_START:?}"
                    ),
                });
            }
        }
        let facts = Arc::new(StoreFacts {
            storage: config.storage.clone(),
            launcher: config.launcher.spec(),
            mirror: config.mirror,
            parity: config.parity,
            daemons: set.nodes.iter().filter_map(|n| n.link.clone()).collect(),
        });
        shared.set_stores(facts.clone());
        let timeout = config.heartbeat_timeout();
        for node in &mut set.nodes {
            let link = node.link.clone().expect("every daemon connected");
            let mut message = launch.clone();
            message.first_rank = node.ranks.start;
            message.count = node.ranks.len() as u32;
            if let Some(template) = &config.storage {
                message.storage = node_storage(template, &node.name);
                if let Some(restart) = restart {
                    message.restart_epoch = restart.epoch;
                    message.manifest = restart.manifest.clone();
                    message.parts = restart
                        .parts
                        .iter()
                        .filter(|p| node.ranks.contains(&p.rank))
                        .map(|p| wire::PartSource {
                            rank: p.rank,
                            size: p.size,
                            crc32c: p.crc32c,
                            holders: p
                                .nodes
                                .iter()
                                .filter_map(|holder| facts.daemon(holder))
                                .map(|d| wire::StorePeer {
                                    node: d.node.clone(),
                                    addr: d.store_addr.clone(),
                                })
                                .collect(),
                            rebuild: rebuild_from_parity(restart, p.rank, &facts),
                        })
                        .collect();
                }
            }
            if let Some(addr) = config
                .hosts
                .iter()
                .find(|h| h.name == node.name)
                .and_then(|h| h.addr)
            {
                message.bind_addr = addr.to_string();
            }
            let reader = {
                let stream = link.stream.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                stream.try_clone()
            }
            .map_err(|e| NodeStartError::Other(format!("cannot follow node {}: {e}", node.name)))?;
            link.send(&Message::NodeLaunch(message)).map_err(|e| {
                NodeStartError::Other(format!("cannot send node {} its ranks: {e}", node.name))
            })?;
            let follow = Follow {
                node: node.name.clone(),
                ranks: node.ranks.clone(),
                timeout,
                shared: shared.clone(),
                events: events.clone(),
                finishing: set.finishing.clone(),
            };
            node.reader = Some(
                thread::Builder::new()
                    .name(format!("node-{}", node.name))
                    .spawn(move || follow.run(&reader))
                    .map_err(|e| NodeStartError::Other(format!("cannot start a thread: {e}")))?,
            );
        }
        Ok(set)
    }

    /// The node each rank runs on, by rank.
    pub(crate) fn placement(hosts: &[HostSpec], counts: &[u32]) -> Vec<String> {
        hosts
            .iter()
            .zip(counts)
            .flat_map(|(h, &c)| std::iter::repeat_n(h.name.clone(), c as usize))
            .collect()
    }

    /// Asks every daemon to send `signal` to its ranks.
    pub(crate) fn signal_all(&self, signal: i32) {
        for node in &self.nodes {
            if let Some(link) = &node.link {
                let _ = link.send(&Message::NodeSignal(NodeSignal { signal }));
            }
        }
    }

    /// Kills the launcher process of a failed node at once (for a local launcher such as
    /// `ip netns exec`, the daemon itself, whose ranks die with it); a hung daemon is not
    /// waited for at the end.
    pub(crate) fn kill_node(&mut self, name: &str) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.name == name)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Ends every daemon (their ranks are killed), waits for them, kills those that do not end.
    pub(crate) fn finish(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if self.finishing.swap(true, Ordering::SeqCst) && self.nodes.is_empty() {
            return;
        }
        for node in &self.nodes {
            if let Some(link) = &node.link {
                let _ = link.send(&Message::NodeShutdown);
            }
        }
        // A reader ends when its daemon closes the connection (after the last output), or
        // after a heartbeat timeout.
        for node in &mut self.nodes {
            if let Some(reader) = node.reader.take() {
                let _ = reader.join();
            }
            if let Some(link) = node.link.take() {
                let stream = link.stream.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        let deadline = Instant::now() + DAEMON_EXIT;
        for node in &mut self.nodes {
            let Some(mut child) = node.child.take() else {
                continue;
            };
            if node.reader.is_none() && node.link.is_none() && !node.connected {
                // A start that failed elsewhere: a daemon that never connected is not told to
                // end, so it is not waited for.
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        tracing::warn!(node = node.name, "the daemon did not end; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.nodes.clear();
        self.stop_accept.store(true, Ordering::SeqCst);
        let woken = TcpStream::connect_timeout(&self.port, Duration::from_secs(1)).is_ok();
        if let Some(accept) = self.accept.take()
            && woken
        {
            let _ = accept.join();
        }
    }
}

impl Drop for NodeSet {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Starts `command` (the launcher and `mpicr node …`) and gives it the secret on stdin.
fn start_daemon(node: &str, command: &[String], secret: &str) -> Result<Child, String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "the launcher command is empty".to_owned())?;
    tracing::debug!(node, ?command, "starting a node daemon");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Ctrl-C at the terminal goes to `mpicr run`, which ends the daemons in order.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the daemon of node {node} with `{program}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // The daemon reads one line; ssh and srun pass stdin on to it.
        let _ = writeln!(stdin, "{secret}");
    }
    Ok(child)
}

use std::os::unix::process::CommandExt as _;

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, gate: &Arc<Gate>) {
    for connection in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match connection {
            Ok(stream) => {
                let gate = gate.clone();
                let _ = thread::Builder::new()
                    .name("node-hello".into())
                    .spawn(move || admit(stream, &gate));
            }
            Err(e) => {
                tracing::warn!("accepting a node connection failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Checks a connection's NODE_HELLO and hands it on; refuses and logs anything else.
fn admit(stream: TcpStream, gate: &Gate) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "an unknown address".to_owned(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HELLO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let refusal = match read_message(&mut &stream) {
        Ok(Message::NodeHello(hello)) => {
            if hello.job != gate.job {
                format!("it asked for job `{}`, not `{}`", hello.job, gate.job)
            } else if !gate.nodes.contains(&hello.node) {
                format!("`{}` is not a node of this job", hello.node)
            } else if hello.role == HelloRole::Store {
                "a store connection belongs to a node daemon, not the coordinator".to_owned()
            } else {
                match wire::auth::accept(&stream, &gate.secret, &hello) {
                    Ok(()) => {
                        let _ = stream.set_read_timeout(None);
                        match hello.role {
                            HelloRole::Daemon => {
                                let _ = stream.set_read_timeout(Some(HELLO_TIMEOUT));
                                let store_addr = match read_message(&mut &stream) {
                                    Ok(Message::NodeReady(ready)) => ready.store_addr,
                                    _ => {
                                        say(&format!(
                                            "the daemon of node {} did not say that it is ready",
                                            hello.node
                                        ));
                                        return;
                                    }
                                };
                                let _ = stream.set_read_timeout(None);
                                let daemons =
                                    gate.daemons.lock().unwrap_or_else(PoisonError::into_inner);
                                let _ = daemons.send((hello.node, stream, store_addr));
                            }
                            HelloRole::Relay => serve_relayed(stream, &gate.shared, &hello.node),
                            HelloRole::Store => {}
                        }
                        return;
                    }
                    Err(wire::auth::AuthError::BadProof) => format!(
                        "node `{}` did not prove that it knows the job's secret",
                        hello.node
                    ),
                    Err(e) => format!("node `{}`: {}", hello.node, error_chain(&e)),
                }
            }
        }
        // A probe that closes without a word (or our own wake-up at the end).
        Err(ReadError::Closed) => return,
        Ok(other) => format!(
            "the first message was {:?}, not NODE_HELLO",
            other.command()
        ),
        Err(e) => error_chain(&e),
    };
    say(&format!(
        "refused a control connection from {peer}: {refusal}"
    ));
    let _ = write_message(&mut &stream, &Message::Error(refusal));
}

/// Follows one daemon's connection.
struct Follow {
    node: String,
    ranks: Range<u32>,
    timeout: Duration,
    shared: Arc<Shared>,
    events: Sender<Event>,
    finishing: Arc<AtomicBool>,
}

impl Follow {
    /// Whether this daemon speaks for `rank`: placed here, or migrated here.
    fn owns(&self, rank: u32) -> bool {
        self.ranks.contains(&rank)
            || self
                .shared
                .migrations
                .hosted(&self.shared, rank, &self.node)
    }

    fn run(self, stream: &TcpStream) {
        let _ = stream.set_read_timeout(Some(self.timeout));
        let cause = loop {
            match read_message(&mut &*stream) {
                Ok(Message::Heartbeat(heartbeat)) => {
                    self.shared
                        .record_usage(&self.node, &heartbeat.usage, |rank| self.owns(rank));
                }
                Ok(Message::RankStarted(started)) if self.owns(started.rank) => {
                    crate::migrate::started(&self.shared, started.rank, started.pid);
                    self.shared.set_spawned(started.rank, started.pid);
                }
                // A process's output may arrive after its rank stopped being this node's: a
                // failed restorer's refusal comes after its end has failed the migration (the
                // daemon forwards output and ends on different threads). Printing it is
                // harmless, so output of any rank of the job is taken.
                Ok(Message::RankOutput(output)) if output.rank < self.shared.size() => {
                    let _ = if output.stream == 2 {
                        io::stderr().lock().write_all(&output.bytes)
                    } else {
                        io::stdout().lock().write_all(&output.bytes)
                    };
                }
                Ok(Message::RankEnded(ended)) if self.owns(ended.rank) => {
                    let status = match ended.state {
                        ProcState::Signaled(signal) => ExitStatus::Signaled(signal),
                        ProcState::Exited(code) => ExitStatus::Exited(code),
                        _ => ExitStatus::Unknown,
                    };
                    let how = status.to_string();
                    if crate::migrate::rank_ended(&self.shared, ended.rank, ended.pid, &how) {
                        continue;
                    }
                    let _ = self.events.send(Event::RankEnded(RankExit {
                        rank: ended.rank,
                        pid: ended.pid,
                        status,
                    }));
                }
                Ok(Message::StoreReady(ready)) => {
                    self.shared.checkpoint_event(CkptEvent::StoreReady {
                        node: self.node.clone(),
                        ready,
                    });
                }
                Ok(Message::PartStored(stored)) if self.owns(stored.rank) => {
                    self.shared.checkpoint_event(CkptEvent::Stored(stored));
                }
                Ok(Message::ParityStored(stored)) => {
                    self.shared
                        .checkpoint_event(CkptEvent::ParityStored(stored));
                }
                Ok(m @ (Message::MigrateSent(_) | Message::MigrateFailed(_))) => {
                    crate::migrate::on_daemon_message(&self.shared, &self.node, m);
                }
                Ok(Message::Error(why)) => break format!("its daemon reported: {why}"),
                Ok(other) => {
                    break format!("its daemon sent an unexpected {:?}", other.command());
                }
                Err(ReadError::Closed) => break "its daemon's connection closed".to_owned(),
                Err(ReadError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break format!(
                        "its daemon missed its heartbeats for {}",
                        crate::checkpoint::show_duration(self.timeout)
                    );
                }
                Err(e) => break format!("its daemon's connection failed: {}", error_chain(&e)),
            }
        };
        if !self.finishing.load(Ordering::SeqCst) {
            let cause = match crate::migrate::node_failed(&self.shared, &self.node, &cause) {
                Some(migration) => format!("{cause}, {migration}"),
                None => cause,
            };
            let _ = self.events.send(Event::NodeFailed {
                node: self.node,
                ranks: self.ranks,
                cause,
            });
        }
    }
}
