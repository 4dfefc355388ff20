//! Errors of the engine's operations.

use thiserror::Error;

use crate::bootstrap::BootstrapError;
use crate::packet::BadPacket;

/// Why an MPI operation failed.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("a message of {message} bytes does not fit the receive buffer of {buffer} bytes")]
    Truncated { message: u64, buffer: usize },
    #[error("rank {rank} does not exist in a communicator of {size} ranks")]
    InvalidRank { rank: i64, size: u32 },
    #[error("tag {0} is invalid; tags run from 0 to {max}", max = crate::TAG_UB)]
    InvalidTag(i32),
    #[error("the link to rank {rank} failed")]
    Link {
        rank: u32,
        source: transport::LinkError,
    },
    #[error("rank {0} has left the job; it can no longer be sent to")]
    PeerGone(u32),
    #[error("rank {peer} sent a corrupt packet")]
    Corrupt { peer: u32, source: BadPacket },
    #[error("rank {peer} referred to request {id:#x}, which does not exist here")]
    UnknownRequest { peer: u32, id: u64 },
    #[error("request {0:#x} is not active (already completed or freed)")]
    InactiveRequest(u64),
    #[error("the buffers of a collective operation have inconsistent sizes: {0}")]
    BufferMismatch(String),
    #[error("joining the job failed")]
    Bootstrap(#[from] BootstrapError),
    #[error("the control connection to the coordinator failed")]
    Control(#[from] crate::control::ControlError),
    #[error("{0}")]
    Checkpoint(String),
}
