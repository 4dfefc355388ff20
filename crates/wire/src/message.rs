//! The messages carried in frames and their payload encoding.

use serde::{Deserialize, Serialize};

use crate::frame::{Command, FORMAT_VERSION, FrameError, encode_frame};

/// A rank's self-introduction, sent once at MPI initialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub rank: u32,
    pub pid: u32,
    pub host: String,
    /// Where peers reach this rank's data plane, e.g. `tcp:127.0.0.1:40123` or `shm:/dev/shm/…`.
    pub data_addr: String,
}

/// Where a rank is in its life, as the coordinator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcState {
    /// Started by its node daemon, not registered yet (or not an MPI program).
    Spawned,
    /// Registered with the coordinator and running.
    Running,
    /// Left MPI cleanly and is about to exit.
    Finalized,
    /// Exited with this status code.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ProcState {
    /// A word for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spawned => "spawned",
            Self::Running => "running",
            Self::Finalized => "finalized",
            Self::Exited(_) => "exited",
            Self::Signaled(_) => "signaled",
        }
    }
}

/// One row of the process table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcEntry {
    pub rank: u32,
    pub node: String,
    pub pid: u32,
    pub state: ProcState,
    pub data_addr: String,
}

/// The process table the coordinator sends to every rank (ChaRM4MPI's REFRESH_MSG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub table: Vec<ProcEntry>,
}

/// A rank's clean exit notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub rank: u32,
}

/// A rank's request to end the whole job with `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    pub rank: u32,
    pub code: i32,
    pub reason: String,
}

/// The coordinator's answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    pub job: String,
    pub launcher_pid: u32,
    pub command: Vec<String>,
    /// Seconds since the Unix epoch when the job started.
    pub started_at: u64,
    pub ranks: Vec<ProcEntry>,
    /// The latest CPU time and memory the node daemons of a job on several nodes reported
    /// (at most one per rank, and only for the process the rank's row names), so that a tool
    /// on the coordinator's machine can show what it cannot read from its own `/proc`.
    pub usage: Vec<ReportedUsage>,
}

/// [`StatusReply`] of wire format 2, which had no usage.
#[derive(Deserialize)]
struct StatusReplyV2 {
    job: String,
    launcher_pid: u32,
    command: Vec<String>,
    started_at: u64,
    ranks: Vec<ProcEntry>,
}

/// What one rank's process has used, as its node daemon read it from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankUsage {
    pub rank: u32,
    /// The process measured: the rank's registered process (or the started one before it
    /// registered), so that a reader can tell a report about a process that is gone.
    pub pid: u32,
    /// User and system CPU time so far, in microseconds (the node's clock-tick rate is not
    /// the reader's to know).
    pub cpu_us: u64,
    /// Resident memory.
    pub rss_bytes: u64,
}

/// A rank's usage as the coordinator last heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedUsage {
    pub usage: RankUsage,
    /// When the coordinator received it, milliseconds since the Unix epoch on the
    /// coordinator's clock: a reader computes a CPU share from two reports' difference.
    pub at_ms: u64,
}

/// A request for a global checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRequest {
    /// End the job once the snapshot is committed.
    pub terminate: bool,
}

/// A committed global snapshot, as reported to whoever asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointDone {
    /// The name `mpicr restart` resolves (`job.epoch`).
    pub name: String,
    /// The snapshot's directory.
    pub path: String,
    pub epoch: u64,
    /// Messages that were in transit between ranks and are stored in the snapshot.
    pub in_transit: u64,
}

/// The start of checkpoint `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: u64,
}

/// A rank's safepoint count when it learned of checkpoint `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafepointCount {
    pub epoch: u64,
    pub rank: u32,
    pub count: u64,
}

/// Where and when the ranks save their parts of checkpoint `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointAt {
    pub epoch: u64,
    /// Every rank saves when it reaches this safepoint (counted from 1).
    pub safepoint: u64,
    /// The directory the parts go to (the snapshot's staging directory).
    pub dir: String,
}

/// A rank's part, written and fsynced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDone {
    pub epoch: u64,
    pub rank: u32,
    /// The part's file name inside the staging directory.
    pub file: String,
    pub size: u64,
    pub crc32c: u32,
    /// The checkpointer that wrote it (`self`, later `image`).
    pub checkpointer: String,
    /// Messages in transit to this rank that the part holds.
    pub in_transit: u64,
}

/// Why a rank cannot take part in checkpoint `epoch`. `retry`: the obstacle passes (the rank
/// was held in a region with checkpoints disabled), so the coordinator may ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFailed {
    pub epoch: u64,
    pub rank: u32,
    pub reason: String,
    pub retry: bool,
}

/// [`CheckpointFailed`] of wire formats 2–4, which had no `retry`.
#[derive(Deserialize)]
struct CheckpointFailedV4 {
    epoch: u64,
    rank: u32,
    reason: String,
}

/// The coordinator gave checkpoint `epoch` up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCancel {
    pub epoch: u64,
}

/// What a connection to the coordinator's TCP control port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloRole {
    /// The node daemon's own connection (launch, output, exits, heartbeats).
    Daemon,
    /// A connection of a rank (or tool) on the node, relayed by the daemon; the frames that
    /// follow are those of the Unix control socket.
    Relay,
    /// A daemon's connection to another daemon's store service (copies of parts).
    Store,
}

/// The first message of every TCP control connection (to the coordinator's port or to a
/// daemon's store service): who connects, and a fresh nonce the other side must answer with
/// a proof that it knows the job's secret (`crate::auth`). The secret itself never travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHello {
    pub job: String,
    pub node: String,
    pub role: HelloRole,
    /// 32 random bytes, hex.
    pub nonce: String,
}

/// The accepting side's answer to NODE_HELLO: its own nonce, and its proof (HMAC-SHA256 with
/// the secret over both nonces and the hello) that it knows the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChallenge {
    pub nonce: String,
    pub proof: String,
}

/// The connecting side's proof that it knows the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProof {
    pub proof: String,
}

/// A daemon's store service listens here (`IP:PORT`); empty: the node has no store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReady {
    pub store_addr: String,
}

/// Prepare the node store's directory for the parts of checkpoint `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreBegin {
    pub epoch: u64,
}

/// The node store's directory for checkpoint `epoch` exists (`error` empty) or cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReady {
    pub epoch: u64,
    pub dir: String,
    pub error: String,
}

/// A node and the address of its daemon's store service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePeer {
    pub node: String,
    pub addr: String,
}

/// Check rank `rank`'s part of checkpoint `epoch` in this node's store against the size and
/// checksum its rank reported, then copy it to every node of `mirrors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartKeep {
    pub epoch: u64,
    pub rank: u32,
    pub size: u64,
    pub crc32c: u32,
    pub mirrors: Vec<StorePeer>,
}

/// The nodes whose stores hold a checked copy of the part (`error` empty), or why the part
/// (or one of its copies) failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartStored {
    pub epoch: u64,
    pub rank: u32,
    pub nodes: Vec<String>,
    /// What the checked part holds, for the manifest: its checkpointer and its sections
    /// (name, length, crc32c).
    pub checkpointer: String,
    pub sections: Vec<(String, u64, u32)>,
    pub error: String,
}

/// The snapshots of the job the node store keeps; every other epoch of the job is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreKeep {
    pub epochs: Vec<u64>,
}

/// A copy of a rank's files follows in PART_DATA frames of at most [`PART_DATA_MAX`] bytes:
/// the part (`size` bytes, this `crc32c`), then for an `image` part the image it names and
/// every link of that image's chain, newest first, each of the size its reference records
/// (the rank's *bundle*, `total` bytes in all). For a parity file, `total` is its size.
///
/// A mirror's PART_PUT names the chain's `links` (newest first); its receiver answers
/// PART_NEED with those it does not hold, and only they follow the image. An answer to
/// PART_GET names none, and everything follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPut {
    pub epoch: u64,
    pub rank: u32,
    pub size: u64,
    pub crc32c: u32,
    pub total: u64,
    pub links: Vec<ChainLink>,
}

/// A link of an image's chain: its file name, size and trailer checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub file: String,
    pub size: u64,
    pub crc32c: u32,
}

/// The links of a mirror's PART_PUT that its receiver does not hold, in the announced order:
/// the sender sends the part, the image and only these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartNeed {
    pub epoch: u64,
    pub rank: u32,
    pub files: Vec<String>,
}

/// [`PartPut`] of wire format 4, which named no links (the whole bundle followed).
#[derive(Deserialize)]
struct PartPutV4 {
    epoch: u64,
    rank: u32,
    size: u64,
    crc32c: u32,
    total: u64,
}

/// [`PartPut`] of wire formats 2 and 3, which carried parts only (`total` = `size`).
#[derive(Deserialize)]
struct PartPutV3 {
    epoch: u64,
    rank: u32,
    size: u64,
    crc32c: u32,
}

/// The largest PART_DATA payload a writer sends.
pub const PART_DATA_MAX: usize = 4 << 20;

/// Ask for a copy of a part (`file` empty) or of the parity file `file`; answered with
/// PART_PUT and its data, or ERROR. A parity file's `crc32c` is that of all its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartGet {
    pub epoch: u64,
    pub rank: u32,
    pub size: u64,
    pub crc32c: u32,
    pub file: String,
}

/// How to rebuild a part that no node holds from its group's parity (`--parity G`): the
/// parity file `name` on `holder` XOR the other parts of the group, cut to the part's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuild {
    pub name: String,
    pub size: u64,
    pub crc32c: u32,
    pub holder: StorePeer,
    pub others: Vec<PartSource>,
}

/// Build parity file `name` of checkpoint `epoch`: the XOR of the `members` parts, each
/// padded with zeros to the longest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParityBuild {
    pub epoch: u64,
    pub name: String,
    pub members: Vec<PartSource>,
}

/// Parity file `name` is durable on the daemon's node (`error` empty), with this size and
/// crc32c of all its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParityStored {
    pub epoch: u64,
    pub name: String,
    pub size: u64,
    pub crc32c: u32,
    pub error: String,
}

/// A copy of a part is checked and durable on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartAck {
    pub epoch: u64,
    pub rank: u32,
}

/// A part a restarting node needs, and the nodes that hold copies of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSource {
    pub rank: u32,
    pub size: u64,
    pub crc32c: u32,
    pub holders: Vec<StorePeer>,
    /// When no holder answers: how to rebuild the part from parity.
    pub rebuild: Option<Box<Rebuild>>,
}

/// The ranks a node daemon starts, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLaunch {
    /// The file to execute (already resolved by the coordinator).
    pub program: String,
    pub arg0: String,
    pub args: Vec<String>,
    /// The environment of every rank; the daemon adds the node-local `MPICR_*` variables.
    pub env: Vec<(String, String)>,
    /// Working directory of the ranks; empty keeps the daemon's.
    pub cwd: String,
    /// Ranks of the whole job.
    pub size: u32,
    /// The ranks this node starts (consecutive).
    pub first_rank: u32,
    pub count: u32,
    pub tag_output: bool,
    /// The address the ranks' TCP listeners bind; empty: the daemon's address towards the
    /// coordinator.
    pub bind_addr: String,
    /// This node's checkpoint store (`--storage`, `{node}` substituted); empty: the ranks
    /// write into the coordinator's snapshot directory.
    pub storage: String,
    /// With a store and a restart: the snapshot's epoch, its manifest file, and where the
    /// parts of this node's ranks are (the daemon fetches those its store lacks).
    pub restart_epoch: u64,
    pub manifest: Vec<u8>,
    pub parts: Vec<PartSource>,
}

/// A node daemon started `rank` as `pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankStarted {
    pub rank: u32,
    pub pid: u32,
}

/// Bytes a rank wrote: one line (or a piece of a very long one), with its `[rank] ` tag when
/// the job asked for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankOutput {
    pub rank: u32,
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    pub bytes: Vec<u8>,
}

/// A rank's process ended with `state` (`Exited` or `Signaled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankEnded {
    pub rank: u32,
    pub pid: u32,
    pub state: ProcState,
}

/// Send `signal` to every rank of the node (and their process group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSignal {
    pub signal: i32,
}

/// The most ranks a HEARTBEAT reports usage for: more than any node runs, and a bound on what
/// a peer can make the coordinator keep.
pub const MAX_HEARTBEAT_USAGE: usize = 4096;

/// A node daemon's sign of life, with what its ranks use (riding on the heartbeat costs no
/// message of its own and arrives as often as the node is watched anyway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub seq: u64,
    /// At most [`MAX_HEARTBEAT_USAGE`] entries, one per running rank of the node.
    pub usage: Vec<RankUsage>,
}

/// [`Heartbeat`] of wire format 2, which had no usage.
#[derive(Deserialize)]
struct HeartbeatV2 {
    seq: u64,
}

/// Every control message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Register(Register),
    Refresh(Refresh),
    Exit(Exit),
    Abort(Abort),
    StatusRequest,
    StatusReply(StatusReply),
    Error(String),
    CheckpointRequest(CheckpointRequest),
    CheckpointDone(CheckpointDone),
    Checkpoint(Checkpoint),
    SafepointCount(SafepointCount),
    CheckpointAt(CheckpointAt),
    PartDone(PartDone),
    CheckpointFailed(CheckpointFailed),
    CheckpointCancel(CheckpointCancel),
    NodeHello(NodeHello),
    NodeLaunch(NodeLaunch),
    RankStarted(RankStarted),
    RankOutput(RankOutput),
    RankEnded(RankEnded),
    NodeSignal(NodeSignal),
    Heartbeat(Heartbeat),
    NodeShutdown,
    NodeChallenge(NodeChallenge),
    NodeProof(NodeProof),
    NodeReady(NodeReady),
    StoreBegin(StoreBegin),
    StoreReady(StoreReady),
    PartKeep(PartKeep),
    PartStored(PartStored),
    StoreKeep(StoreKeep),
    PartPut(PartPut),
    PartData(Vec<u8>),
    PartGet(PartGet),
    PartAck(PartAck),
    PartNeed(PartNeed),
    ParityBuild(ParityBuild),
    ParityStored(ParityStored),
    MigrateRequest(crate::migrate::MigrateRequest),
    MigrateDone(crate::migrate::MigrateDone),
    MigrateOut(crate::migrate::MigrateOut),
    MigratePeer(crate::migrate::MigratePeer),
    MigrateCaptured(crate::migrate::MigrateCaptured),
    MigrateSend(crate::migrate::MigrateSend),
    MigrateImage(crate::migrate::MigrateImage),
    MigrateSent(crate::migrate::MigrateSent),
    MigrateFailed(crate::migrate::MigrateFailed),
    MigrateArrived(crate::migrate::MigrateArrived),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ crate::frame::MAX_PAYLOAD as usize }>()
}

fn to_payload<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("control messages always serialize")
}

fn from_payload<T: for<'de> Deserialize<'de>>(
    command: Command,
    payload: &[u8],
) -> Result<T, FrameError> {
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config()).map_err(|e| FrameError::Payload {
            command,
            reason: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(FrameError::Payload {
            command,
            reason: format!("{} trailing bytes", payload.len() - used),
        });
    }
    Ok(value)
}

impl Message {
    /// The frame command that carries this message.
    pub fn command(&self) -> Command {
        match self {
            Self::Register(_) => Command::Register,
            Self::Refresh(_) => Command::Refresh,
            Self::Exit(_) => Command::Exit,
            Self::Abort(_) => Command::Abort,
            Self::StatusRequest => Command::StatusRequest,
            Self::StatusReply(_) => Command::StatusReply,
            Self::Error(_) => Command::Error,
            Self::CheckpointRequest(_) => Command::CheckpointRequest,
            Self::CheckpointDone(_) => Command::CheckpointDone,
            Self::Checkpoint(_) => Command::Checkpoint,
            Self::SafepointCount(_) => Command::SafepointCount,
            Self::CheckpointAt(_) => Command::CheckpointAt,
            Self::PartDone(_) => Command::PartDone,
            Self::CheckpointFailed(_) => Command::CheckpointFailed,
            Self::CheckpointCancel(_) => Command::CheckpointCancel,
            Self::NodeHello(_) => Command::NodeHello,
            Self::NodeLaunch(_) => Command::NodeLaunch,
            Self::RankStarted(_) => Command::RankStarted,
            Self::RankOutput(_) => Command::RankOutput,
            Self::RankEnded(_) => Command::RankEnded,
            Self::NodeSignal(_) => Command::NodeSignal,
            Self::Heartbeat(_) => Command::Heartbeat,
            Self::NodeShutdown => Command::NodeShutdown,
            Self::NodeChallenge(_) => Command::NodeChallenge,
            Self::NodeProof(_) => Command::NodeProof,
            Self::NodeReady(_) => Command::NodeReady,
            Self::StoreBegin(_) => Command::StoreBegin,
            Self::StoreReady(_) => Command::StoreReady,
            Self::PartKeep(_) => Command::PartKeep,
            Self::PartStored(_) => Command::PartStored,
            Self::StoreKeep(_) => Command::StoreKeep,
            Self::PartPut(_) => Command::PartPut,
            Self::PartData(_) => Command::PartData,
            Self::PartGet(_) => Command::PartGet,
            Self::PartAck(_) => Command::PartAck,
            Self::PartNeed(_) => Command::PartNeed,
            Self::ParityBuild(_) => Command::ParityBuild,
            Self::ParityStored(_) => Command::ParityStored,
            Self::MigrateRequest(_) => Command::MigrateRequest,
            Self::MigrateDone(_) => Command::MigrateDone,
            Self::MigrateOut(_) => Command::MigrateOut,
            Self::MigratePeer(_) => Command::MigratePeer,
            Self::MigrateCaptured(_) => Command::MigrateCaptured,
            Self::MigrateSend(_) => Command::MigrateSend,
            Self::MigrateImage(_) => Command::MigrateImage,
            Self::MigrateSent(_) => Command::MigrateSent,
            Self::MigrateFailed(_) => Command::MigrateFailed,
            Self::MigrateArrived(_) => Command::MigrateArrived,
        }
    }

    /// The complete frame for this message.
    pub fn encode(&self) -> Vec<u8> {
        let payload = match self {
            Self::Register(m) => to_payload(m),
            Self::Refresh(m) => to_payload(m),
            Self::Exit(m) => to_payload(m),
            Self::Abort(m) => to_payload(m),
            Self::StatusRequest => Vec::new(),
            Self::StatusReply(m) => to_payload(m),
            Self::Error(m) => to_payload(m),
            Self::CheckpointRequest(m) => to_payload(m),
            Self::CheckpointDone(m) => to_payload(m),
            Self::Checkpoint(m) => to_payload(m),
            Self::SafepointCount(m) => to_payload(m),
            Self::CheckpointAt(m) => to_payload(m),
            Self::PartDone(m) => to_payload(m),
            Self::CheckpointFailed(m) => to_payload(m),
            Self::CheckpointCancel(m) => to_payload(m),
            Self::NodeHello(m) => to_payload(m),
            Self::NodeLaunch(m) => to_payload(m),
            Self::RankStarted(m) => to_payload(m),
            Self::RankOutput(m) => to_payload(m),
            Self::RankEnded(m) => to_payload(m),
            Self::NodeSignal(m) => to_payload(m),
            Self::Heartbeat(m) => to_payload(m),
            Self::NodeShutdown => Vec::new(),
            Self::NodeChallenge(m) => to_payload(m),
            Self::NodeProof(m) => to_payload(m),
            Self::NodeReady(m) => to_payload(m),
            Self::StoreBegin(m) => to_payload(m),
            Self::StoreReady(m) => to_payload(m),
            Self::PartKeep(m) => to_payload(m),
            Self::PartStored(m) => to_payload(m),
            Self::StoreKeep(m) => to_payload(m),
            Self::PartPut(m) => to_payload(m),
            // The payload is the bytes themselves (no length prefix): parts are large, and a
            // byte-by-byte encoding would make copying them CPU-bound.
            Self::PartData(m) => m.clone(),
            Self::PartGet(m) => to_payload(m),
            Self::PartAck(m) => to_payload(m),
            Self::PartNeed(m) => to_payload(m),
            Self::ParityBuild(m) => to_payload(m),
            Self::ParityStored(m) => to_payload(m),
            Self::MigrateRequest(m) => to_payload(m),
            Self::MigrateDone(m) => to_payload(m),
            Self::MigrateOut(m) => to_payload(m),
            Self::MigratePeer(m) => to_payload(m),
            Self::MigrateCaptured(m) => to_payload(m),
            Self::MigrateSend(m) => to_payload(m),
            Self::MigrateImage(m) => to_payload(m),
            Self::MigrateSent(m) => to_payload(m),
            Self::MigrateFailed(m) => to_payload(m),
            Self::MigrateArrived(m) => to_payload(m),
        };
        encode_frame(self.command(), &payload)
    }

    /// Decodes the payload of a frame of this build's format whose header said `command`.
    pub fn decode(command: Command, payload: &[u8]) -> Result<Self, FrameError> {
        Self::decode_version(FORMAT_VERSION, command, payload)
    }

    /// Decodes the payload of a frame whose header said `version` and `command` (a version
    /// this build reads: the frame's header was checked). Format 2 differs in HEARTBEAT and
    /// STATUS_REPLY, which had no usage; formats 2 and 3 in PART_PUT, which had no total, and
    /// formats 2–4 in PART_PUT, which had no links, and in CHECKPOINT_FAILED, which had no
    /// `retry`.
    pub fn decode_version(
        version: u16,
        command: Command,
        payload: &[u8],
    ) -> Result<Self, FrameError> {
        if version < 5 && command == Command::PartPut {
            let old = if version < 4 {
                let v3: PartPutV3 = from_payload(command, payload)?;
                PartPutV4 {
                    epoch: v3.epoch,
                    rank: v3.rank,
                    size: v3.size,
                    crc32c: v3.crc32c,
                    total: v3.size,
                }
            } else {
                from_payload(command, payload)?
            };
            return Ok(Self::PartPut(PartPut {
                epoch: old.epoch,
                rank: old.rank,
                size: old.size,
                crc32c: old.crc32c,
                total: old.total,
                links: Vec::new(),
            }));
        }
        if version < 5 && command == Command::CheckpointFailed {
            let old: CheckpointFailedV4 = from_payload(command, payload)?;
            return Ok(Self::CheckpointFailed(CheckpointFailed {
                epoch: old.epoch,
                rank: old.rank,
                reason: old.reason,
                retry: false,
            }));
        }
        if version < 3 {
            match command {
                Command::Heartbeat => {
                    let old: HeartbeatV2 = from_payload(command, payload)?;
                    return Ok(Self::Heartbeat(Heartbeat {
                        seq: old.seq,
                        usage: Vec::new(),
                    }));
                }
                Command::StatusReply => {
                    let old: StatusReplyV2 = from_payload(command, payload)?;
                    return Ok(Self::StatusReply(StatusReply {
                        job: old.job,
                        launcher_pid: old.launcher_pid,
                        command: old.command,
                        started_at: old.started_at,
                        ranks: old.ranks,
                        usage: Vec::new(),
                    }));
                }
                _ => {}
            }
        }
        let message = Self::decode_current(command, payload)?;
        match &message {
            Self::Heartbeat(h) if h.usage.len() > MAX_HEARTBEAT_USAGE => Err(FrameError::Payload {
                command,
                reason: format!(
                    "usage for {} ranks, more than the {MAX_HEARTBEAT_USAGE} allowed",
                    h.usage.len()
                ),
            }),
            Self::StatusReply(r) if r.usage.len() > r.ranks.len() => Err(FrameError::Payload {
                command,
                reason: format!(
                    "usage for {} ranks in a table of {}",
                    r.usage.len(),
                    r.ranks.len()
                ),
            }),
            _ => Ok(message),
        }
    }

    fn decode_current(command: Command, payload: &[u8]) -> Result<Self, FrameError> {
        Ok(match command {
            Command::Register => Self::Register(from_payload(command, payload)?),
            Command::Refresh => Self::Refresh(from_payload(command, payload)?),
            Command::Exit => Self::Exit(from_payload(command, payload)?),
            Command::Abort => Self::Abort(from_payload(command, payload)?),
            Command::StatusRequest => {
                if !payload.is_empty() {
                    return Err(FrameError::Payload {
                        command,
                        reason: "a status request carries no payload".into(),
                    });
                }
                Self::StatusRequest
            }
            Command::StatusReply => Self::StatusReply(from_payload(command, payload)?),
            Command::Error => Self::Error(from_payload(command, payload)?),
            Command::CheckpointRequest => Self::CheckpointRequest(from_payload(command, payload)?),
            Command::CheckpointDone => Self::CheckpointDone(from_payload(command, payload)?),
            Command::Checkpoint => Self::Checkpoint(from_payload(command, payload)?),
            Command::SafepointCount => Self::SafepointCount(from_payload(command, payload)?),
            Command::CheckpointAt => Self::CheckpointAt(from_payload(command, payload)?),
            Command::PartDone => Self::PartDone(from_payload(command, payload)?),
            Command::CheckpointFailed => Self::CheckpointFailed(from_payload(command, payload)?),
            Command::CheckpointCancel => Self::CheckpointCancel(from_payload(command, payload)?),
            Command::NodeHello => Self::NodeHello(from_payload(command, payload)?),
            Command::NodeLaunch => Self::NodeLaunch(from_payload(command, payload)?),
            Command::RankStarted => Self::RankStarted(from_payload(command, payload)?),
            Command::RankOutput => Self::RankOutput(from_payload(command, payload)?),
            Command::RankEnded => Self::RankEnded(from_payload(command, payload)?),
            Command::NodeSignal => Self::NodeSignal(from_payload(command, payload)?),
            Command::Heartbeat => Self::Heartbeat(from_payload(command, payload)?),
            Command::NodeShutdown => {
                if !payload.is_empty() {
                    return Err(FrameError::Payload {
                        command,
                        reason: "a node shutdown carries no payload".into(),
                    });
                }
                Self::NodeShutdown
            }
            Command::NodeChallenge => Self::NodeChallenge(from_payload(command, payload)?),
            Command::NodeProof => Self::NodeProof(from_payload(command, payload)?),
            Command::NodeReady => Self::NodeReady(from_payload(command, payload)?),
            Command::StoreBegin => Self::StoreBegin(from_payload(command, payload)?),
            Command::StoreReady => Self::StoreReady(from_payload(command, payload)?),
            Command::PartKeep => Self::PartKeep(from_payload(command, payload)?),
            Command::PartStored => Self::PartStored(from_payload(command, payload)?),
            Command::StoreKeep => Self::StoreKeep(from_payload(command, payload)?),
            Command::PartPut => Self::PartPut(from_payload(command, payload)?),
            Command::PartData => Self::PartData(payload.to_vec()),
            Command::PartGet => Self::PartGet(from_payload(command, payload)?),
            Command::PartAck => Self::PartAck(from_payload(command, payload)?),
            Command::PartNeed => Self::PartNeed(from_payload(command, payload)?),
            Command::ParityBuild => Self::ParityBuild(from_payload(command, payload)?),
            Command::ParityStored => Self::ParityStored(from_payload(command, payload)?),
            Command::MigrateRequest => Self::MigrateRequest(from_payload(command, payload)?),
            Command::MigrateDone => Self::MigrateDone(from_payload(command, payload)?),
            Command::MigrateOut => Self::MigrateOut(from_payload(command, payload)?),
            Command::MigratePeer => Self::MigratePeer(from_payload(command, payload)?),
            Command::MigrateCaptured => Self::MigrateCaptured(from_payload(command, payload)?),
            Command::MigrateSend => Self::MigrateSend(from_payload(command, payload)?),
            Command::MigrateImage => Self::MigrateImage(from_payload(command, payload)?),
            Command::MigrateSent => Self::MigrateSent(from_payload(command, payload)?),
            Command::MigrateFailed => Self::MigrateFailed(from_payload(command, payload)?),
            Command::MigrateArrived => Self::MigrateArrived(from_payload(command, payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_frame;

    fn round_trip(m: Message) {
        let bytes = m.encode();
        let frame = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(
            Message::decode(frame.header.command, frame.payload).unwrap(),
            m
        );
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::Register(Register {
            rank: 3,
            pid: 77,
            host: "n1".into(),
            data_addr: "tcp:127.0.0.1:9".into(),
        }));
        round_trip(Message::Refresh(Refresh {
            table: vec![ProcEntry {
                rank: 0,
                node: "n".into(),
                pid: 1,
                state: ProcState::Signaled(9),
                data_addr: String::new(),
            }],
        }));
        round_trip(Message::Exit(Exit { rank: 1 }));
        round_trip(Message::Abort(Abort {
            rank: 1,
            code: 3,
            reason: "x".into(),
        }));
        round_trip(Message::StatusRequest);
        round_trip(Message::Error("no".into()));
        round_trip(Message::CheckpointRequest(CheckpointRequest {
            terminate: true,
        }));
        round_trip(Message::CheckpointDone(CheckpointDone {
            name: "j.1".into(),
            path: "/x".into(),
            epoch: 1,
            in_transit: 4,
        }));
        round_trip(Message::Checkpoint(Checkpoint { epoch: 2 }));
        round_trip(Message::SafepointCount(SafepointCount {
            epoch: 2,
            rank: 1,
            count: 9,
        }));
        round_trip(Message::CheckpointAt(CheckpointAt {
            epoch: 2,
            safepoint: 10,
            dir: "/d".into(),
        }));
        round_trip(Message::PartDone(PartDone {
            epoch: 2,
            rank: 1,
            file: "rank-1.part".into(),
            size: 100,
            crc32c: 7,
            checkpointer: "self".into(),
            in_transit: 3,
        }));
        round_trip(Message::CheckpointFailed(CheckpointFailed {
            epoch: 2,
            rank: 0,
            reason: "r".into(),
            retry: true,
        }));
        round_trip(Message::CheckpointCancel(CheckpointCancel { epoch: 2 }));
        round_trip(Message::NodeHello(NodeHello {
            job: "j".into(),
            node: "n1".into(),
            role: HelloRole::Relay,
            nonce: "ab".into(),
        }));
        round_trip(Message::NodeLaunch(NodeLaunch {
            program: "/bin/p".into(),
            arg0: "p".into(),
            args: vec!["1".into()],
            env: vec![("A".into(), "b".into())],
            cwd: "/".into(),
            size: 8,
            first_rank: 3,
            count: 3,
            tag_output: true,
            bind_addr: "10.0.0.2".into(),
            storage: "/s/n1".into(),
            restart_epoch: 4,
            manifest: vec![1, 2],
            parts: vec![PartSource {
                rank: 3,
                size: 10,
                crc32c: 5,
                holders: vec![StorePeer {
                    node: "n2".into(),
                    addr: "10.0.0.3:9".into(),
                }],
                rebuild: Some(Box::new(Rebuild {
                    name: "parity-0-0".into(),
                    size: 12,
                    crc32c: 6,
                    holder: StorePeer {
                        node: "n3".into(),
                        addr: "10.0.0.4:9".into(),
                    },
                    others: Vec::new(),
                })),
            }],
        }));
        round_trip(Message::RankStarted(RankStarted { rank: 3, pid: 9 }));
        round_trip(Message::RankOutput(RankOutput {
            rank: 3,
            stream: 2,
            bytes: b"x\n".to_vec(),
        }));
        round_trip(Message::RankEnded(RankEnded {
            rank: 3,
            pid: 9,
            state: ProcState::Exited(1),
        }));
        round_trip(Message::NodeSignal(NodeSignal { signal: 15 }));
        round_trip(Message::Heartbeat(Heartbeat {
            seq: 7,
            usage: vec![RankUsage {
                rank: 3,
                pid: 9,
                cpu_us: 1_500_000,
                rss_bytes: 4096,
            }],
        }));
        round_trip(Message::StatusReply(StatusReply {
            job: "j".into(),
            launcher_pid: 5,
            command: vec!["p".into()],
            started_at: 1,
            ranks: vec![ProcEntry {
                rank: 3,
                node: "n2".into(),
                pid: 9,
                state: ProcState::Running,
                data_addr: String::new(),
            }],
            usage: vec![ReportedUsage {
                usage: RankUsage {
                    rank: 3,
                    pid: 9,
                    cpu_us: 7,
                    rss_bytes: 8192,
                },
                at_ms: 1_700_000_000_000,
            }],
        }));
        round_trip(Message::NodeShutdown);
        round_trip(Message::NodeChallenge(NodeChallenge {
            nonce: "n".into(),
            proof: "p".into(),
        }));
        round_trip(Message::NodeProof(NodeProof { proof: "p".into() }));
        round_trip(Message::NodeReady(NodeReady {
            store_addr: "10.0.0.2:7".into(),
        }));
        round_trip(Message::StoreBegin(StoreBegin { epoch: 3 }));
        round_trip(Message::StoreReady(StoreReady {
            epoch: 3,
            dir: "/s/j/3".into(),
            error: String::new(),
        }));
        round_trip(Message::PartKeep(PartKeep {
            epoch: 3,
            rank: 1,
            size: 9,
            crc32c: 2,
            mirrors: vec![StorePeer {
                node: "b".into(),
                addr: "x:1".into(),
            }],
        }));
        round_trip(Message::PartStored(PartStored {
            epoch: 3,
            rank: 1,
            nodes: vec!["a".into(), "b".into()],
            checkpointer: "self".into(),
            sections: vec![("s".into(), 3, 4)],
            error: String::new(),
        }));
        round_trip(Message::StoreKeep(StoreKeep { epochs: vec![2, 3] }));
        round_trip(Message::PartPut(PartPut {
            epoch: 3,
            rank: 1,
            size: 9,
            crc32c: 2,
            total: 30,
            links: vec![ChainLink {
                file: "rank-1.base-2.image".into(),
                size: 11,
                crc32c: 5,
            }],
        }));
        round_trip(Message::PartNeed(PartNeed {
            epoch: 3,
            rank: 1,
            files: vec!["rank-1.base-2.image".into()],
        }));
        round_trip(Message::PartData(vec![0, 1, 2]));
        round_trip(Message::PartGet(PartGet {
            epoch: 3,
            rank: 1,
            size: 9,
            crc32c: 2,
            file: String::new(),
        }));
        round_trip(Message::ParityBuild(ParityBuild {
            epoch: 3,
            name: "parity-0-0".into(),
            members: Vec::new(),
        }));
        round_trip(Message::ParityStored(ParityStored {
            epoch: 3,
            name: "parity-0-0".into(),
            size: 9,
            crc32c: 1,
            error: String::new(),
        }));
        round_trip(Message::PartAck(PartAck { epoch: 3, rank: 1 }));
        round_trip(Message::MigrateRequest(crate::MigrateRequest {
            rank: 2,
            node: "n3".into(),
        }));
        round_trip(Message::MigrateCaptured(crate::MigrateCaptured {
            rank: 2,
            seq: 7,
            path: "/x/rank-2.image".into(),
            size: 4096,
        }));
        round_trip(Message::MigrateFailed(crate::MigrateFailed {
            rank: 2,
            seq: 7,
            reason: "why".into(),
        }));
    }

    fn usage(n: usize) -> Vec<RankUsage> {
        (0..n as u32)
            .map(|rank| RankUsage {
                rank,
                pid: 100 + rank,
                cpu_us: 1,
                rss_bytes: 2,
            })
            .collect()
    }

    fn decoded(m: &Message) -> Result<Message, FrameError> {
        let bytes = m.encode();
        let frame = decode_frame(&bytes).unwrap().unwrap();
        Message::decode(frame.header.command, frame.payload)
    }

    #[test]
    fn oversized_usage_lists_are_refused() {
        let full = Message::Heartbeat(Heartbeat {
            seq: 1,
            usage: usage(MAX_HEARTBEAT_USAGE),
        });
        assert_eq!(decoded(&full).unwrap(), full);
        let over = Message::Heartbeat(Heartbeat {
            seq: 1,
            usage: usage(MAX_HEARTBEAT_USAGE + 1),
        });
        let err = decoded(&over).unwrap_err();
        assert!(err.to_string().contains("more than the 4096"), "{err}");
        // A status reply cannot report more ranks' usage than its table has.
        let reply = Message::StatusReply(StatusReply {
            job: "j".into(),
            launcher_pid: 1,
            command: Vec::new(),
            started_at: 0,
            ranks: Vec::new(),
            usage: vec![ReportedUsage {
                usage: usage(1)[0],
                at_ms: 0,
            }],
        });
        assert!(decoded(&reply).is_err());
    }

    #[test]
    fn older_part_puts_decode_with_no_links_and_formats_2_and_3_as_a_part_alone() {
        // Format 4 ends after the total (drop the links' u64 count), formats 2 and 3 after the
        // checksum (drop the total too, which is then the part's size).
        for (version, total, cut) in [(4, 30, 8), (3, 9, 16), (2, 9, 16)] {
            let put = PartPut {
                epoch: 3,
                rank: 1,
                size: 9,
                crc32c: 2,
                total,
                links: Vec::new(),
            };
            let mut old = to_payload(&put);
            old.truncate(old.len() - cut);
            assert_eq!(
                Message::decode_version(version, Command::PartPut, &old).unwrap(),
                Message::PartPut(put),
                "format {version}"
            );
            assert!(Message::decode(Command::PartPut, &old).is_err());
        }
    }

    #[test]
    fn a_format_4_checkpoint_failure_decodes_as_final() {
        let failed = CheckpointFailed {
            epoch: 2,
            rank: 1,
            reason: "no".into(),
            retry: false,
        };
        let mut old = to_payload(&failed);
        // Format 4 ends after the reason: drop `retry`.
        old.truncate(old.len() - 1);
        assert_eq!(
            Message::decode_version(4, Command::CheckpointFailed, &old).unwrap(),
            Message::CheckpointFailed(failed)
        );
        assert!(Message::decode(Command::CheckpointFailed, &old).is_err());
    }

    #[test]
    fn format_2_heartbeats_and_status_replies_still_decode() {
        let heartbeat = 7u64.to_le_bytes();
        assert_eq!(
            Message::decode_version(2, Command::Heartbeat, &heartbeat).unwrap(),
            Message::Heartbeat(Heartbeat {
                seq: 7,
                usage: Vec::new()
            })
        );
        // The same bytes are too short for a format-3 heartbeat.
        assert!(Message::decode(Command::Heartbeat, &heartbeat).is_err());
        let reply = StatusReply {
            job: "j".into(),
            launcher_pid: 1,
            command: vec!["a".into()],
            started_at: 2,
            ranks: Vec::new(),
            usage: Vec::new(),
        };
        let mut old = to_payload(&reply);
        // Format 2 ends after the table: drop the empty usage list's length.
        old.truncate(old.len() - 8);
        assert_eq!(
            Message::decode_version(2, Command::StatusReply, &old).unwrap(),
            Message::StatusReply(reply)
        );
    }

    #[test]
    fn garbage_payloads_are_errors_not_panics() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..200 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for command in (1..=64).filter_map(Command::from_code) {
                let _ = Message::decode(command, &payload);
                let _ = Message::decode_version(2, command, &payload);
            }
        }
    }
}
