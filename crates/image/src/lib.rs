//! Process images for mpicr's transparent (`image`) checkpointer.
//!
//! - [`capture_to`] / [`capture_in_child`]: from inside a single-threaded process, write an
//!   image of it (memory, registers at the capture point, thread pointer, mm fields, signal
//!   state, fd table, cwd, umask, rlimits). The call returns [`Outcome::Captured`] in the
//!   original process and [`Outcome::Restored`] in a process `mpicr-restore` brought back.
//! - [`read_image`]: read and fully validate an image; [`read_image_into`] also hands each
//!   run's pages to a [`PageSink`] as they pass (the restorer stages them in place).
//! - [`restart`]: the restorer's hand-over of the new job's environment
//!   ([`take_restart_env`]) and keeping old descriptor numbers for the objects that hold them.
//! - [`inherit`]: the rank's control connection handed over across `exec`
//!   ([`take_inherited_control`]).
//! - [`attention`]: the signal that tells a rank computing outside MPI that the coordinator
//!   wrote or its image writer ended.
//! - [`format`]: the on-disk format, specified in `docs/image-format.md`.
//!
//! - [`codec`]: compressed page runs (`--compress`); [`Chain`]: incremental images by page
//!   hashes (`--full-every`).
//!
//! Unsafe code lives only in `ctx` (the context save), `sys` (raw system calls, fork and
//! the scratch mapping), `ring` (the io_uring of direct writes), `codec` (the zstd and lz4 C libraries), plus the `SAFETY`-commented
//! dereference of the callback argument and the hash tables' slices in `capture`.

pub mod attention;
mod capture;
pub mod codec;
mod ctx;
mod fdstate;
pub mod format;
mod incr;
pub mod inherit;
mod out;
pub mod partref;
mod procfs;
mod read;
pub mod restart;
mod ring;
mod stats;
mod sys;
mod unixdiag;

pub use capture::{
    CaptureError, CaptureOptions, ChildCapture, ChildOutcome, ChildrenLeftBehind, Outcome,
    WriteError, capture_in_child, capture_in_child_chained, capture_in_child_with, capture_to,
    child_processes,
};
pub use codec::Codec;
pub use format::FormatError;
pub use incr::Chain;
pub use inherit::{CONTROL_FD_VAR, InheritError, handover_value, take_inherited_control};
pub use partref::{ImageRef, image_file_name};
pub use read::{
    HFLAG_INCREMENTAL, Image, PageSink, Region, RunData, RunLoc, encode_header,
    encode_header_flags, encode_trailer_prefix, read_image, read_image_from, read_image_into,
    read_meta, read_parent_ref,
};
pub use restart::{RESTART_ENV_FD, replace_placeholder, reserve_fds, take_restart_env};
pub use stats::{StallTimes, WriterReport};
