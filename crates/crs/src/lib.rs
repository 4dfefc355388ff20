//! The checkpoint/restart service (CRS) of mpicr, after the Open MPI framework (§4–§6 of the
//! paper in `shared/seeds/`):
//!
//! - [`Checkpointer`]: one interface, many components, chosen per job by name (`self` now,
//!   `image`, the transparent checkpointer); a global snapshot records per rank which
//!   component wrote its part, so a snapshot may mix them.
//! - [`Callbacks`]: the layered coordination callbacks. Layers register in order base →
//!   runtime → MPI → application; each new callback wraps (and must call) the one it replaced,
//!   so a request runs application → MPI → runtime → base before the checkpoint (with
//!   [`CrsState::Checkpoint`]) and again after it with the state the checkpointer returned.
//! - [`EntryPoint`]: where every request ends up, whether the coordinator's (an external
//!   `mpicr checkpoint`, the `--checkpoint-every` timer) or the application's own.
#![forbid(unsafe_code)]

mod callbacks;
mod entry;
mod error;
mod imagecrs;
mod messages;
mod selfcrs;

pub use callbacks::{Callback, Callbacks, Event, Layer, WritePart};
pub use entry::{EntryPoint, Restarted, app_section};
pub use error::CrsError;
pub use imagecrs::{
    BeforeCapture, ImageCheckpointer, before_image_capture, image_settings, verify_image_part,
    write_image_part,
};
pub use messages::{decode_messages, encode_messages};
pub use selfcrs::SelfCheckpointer;

/// Where a process stands around a checkpoint (the framework's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrsState {
    /// A checkpoint is about to be taken.
    Checkpoint,
    /// The checkpoint is taken; the process goes on as before.
    Continue,
    /// The process is a restart from a snapshot.
    Restart,
    /// The checkpoint is taken and the process is to end.
    Terminate,
}

/// What a checkpointer saved: enough for the coordinator to find and verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    pub checkpointer: String,
    /// The part's file name in the snapshot directory.
    pub file: String,
}

/// A checkpoint/restart component.
pub trait Checkpointer {
    /// The name jobs choose it by (`--crs NAME`) and snapshots record.
    fn name(&self) -> &'static str;
    /// Saves process `pid` as `rank`'s part of checkpoint `epoch` into `dir`; returns the
    /// reference and the state the process continues in.
    fn checkpoint(
        &mut self,
        pid: u32,
        part: PartRequest<'_>,
    ) -> Result<(SnapshotRef, CrsState), CrsError>;
    /// Brings a process back from `part`; `spawn_child` starts a new process when the
    /// component restores into one (the image checkpointer), and the result is its pid.
    fn restart(
        &mut self,
        part: &store::PartReader,
        spawn_child: &mut dyn FnMut() -> Result<u32, CrsError>,
    ) -> Result<u32, CrsError>;
    /// Defers checkpoints (a critical section such as MPI_Init or MPI_Finalize).
    fn disable_checkpoint(&mut self);
    /// Ends a critical section.
    fn enable_checkpoint(&mut self);
}

/// Where and as what a part is to be written.
#[derive(Debug, Clone, Copy)]
pub struct PartRequest<'a> {
    pub dir: &'a std::path::Path,
    pub job: &'a str,
    pub epoch: u64,
    pub rank: u32,
}
