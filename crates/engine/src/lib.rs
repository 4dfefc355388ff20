//! The MPI engine inside every rank.
//!
//! It owns the links to every peer ([`transport`]), the request table, the posted and
//! unexpected queues, and runs the progress loop; collectives and communicators are built on
//! its point-to-point layer. The public Rust API (`mpicr` crate) and the C ABI are thin layers
//! over it. Sources, destinations and ranks are world ranks at this level; communicators
//! translate.
#![deny(unsafe_code)]

mod attention;
mod bootstrap;
pub mod buffer;
mod channel;
mod ckpt;
pub mod coll;
mod comm;
mod control;
mod defer;
mod engine;
mod error;
mod migrate;
mod packet;
pub mod session;
mod slab;

pub use bootstrap::{BootstrapError, Joined, RUNTIME_MARKER, join};
pub use ckpt::{
    FinishPart, ImageCapture, ImageCheckpointer, ImageRequest, ImageWriter, NotCaptured,
    SafepointAction, SavedMessage,
};
pub use comm::Comm;
pub use control::{ControlError, ControlLink};
pub use engine::{Engine, Status};
pub use error::EngineError;
pub use packet::BadPacket;

/// The largest tag value (MPI_TAG_UB).
pub const TAG_UB: i32 = i32::MAX;
/// The context of MPI_COMM_WORLD's point-to-point traffic (its collectives use the next one).
pub const WORLD_CTX: u32 = 0;
/// The first context a new communicator may get.
pub(crate) const FIRST_FREE_CTX: u32 = 2;
