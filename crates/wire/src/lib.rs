//! Control-plane frames and messages of mpicr.
//!
//! Every message between a rank, a node daemon, the coordinator and the `mpicr` tools travels
//! in one frame:
//!
//! ```text
//! magic "MPCR" | version u16 | command u16 | payload length u32 | payload | crc32c u32
//! ```
//!
//! All integers are little-endian. The checksum covers the 12 header bytes and the payload.
//! The payload is the message's fields in bincode's fixed-width little-endian encoding.
//! `docs/wire.md` is the specification and keeps the version log.
//!
//! This crate parses and encodes; it never opens a socket. [`stream`] offers blocking helpers
//! over any `Read`/`Write` so that callers do not each write their own framing loop.
#![forbid(unsafe_code)]

pub mod auth;
mod frame;
mod message;
mod migrate;
pub mod stream;

pub use frame::{
    Command, FORMAT_VERSION, Frame, FrameError, HEADER_LEN, Header, MAGIC, MAX_PAYLOAD,
    MIN_FORMAT_VERSION, TRAILER_LEN, decode_frame, encode_frame, frame_header,
};
pub use message::{
    Abort, ChainLink, Checkpoint, CheckpointAt, CheckpointCancel, CheckpointDone, CheckpointFailed,
    CheckpointRequest, Exit, Heartbeat, HelloRole, MAX_HEARTBEAT_USAGE, Message, NodeChallenge,
    NodeHello, NodeLaunch, NodeProof, NodeReady, NodeSignal, PART_DATA_MAX, ParityBuild,
    ParityStored, PartAck, PartDone, PartGet, PartKeep, PartNeed, PartPut, PartSource, PartStored,
    ProcEntry, ProcState, RankEnded, RankOutput, RankStarted, RankUsage, Rebuild, Refresh,
    Register, ReportedUsage, SafepointCount, StatusReply, StoreBegin, StoreKeep, StorePeer,
    StoreReady,
};
pub use migrate::{
    MIGRATION_MARK, MigrateArrived, MigrateCaptured, MigrateDone, MigrateFailed, MigrateImage,
    MigrateOut, MigratePeer, MigrateRequest, MigrateSend, MigrateSent,
};
