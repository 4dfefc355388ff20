//! Process images for mpicr's transparent (`image`) checkpointer.
//!
//! - [`capture_to`] / [`capture_in_child`]: from inside a single-threaded process, write an
//!   image of it (memory, registers at the capture point, thread pointer, mm fields, signal
//!   state, fd table, cwd, umask, rlimits). The call returns [`Outcome::Captured`] in the
//!   original process and [`Outcome::Restored`] in a process `mpicr-restore` brought back.
//! - [`read_image`]: read and fully validate an image (the restorer's first step).
//! - [`format`]: the on-disk format, specified in `docs/image-format.md`.
//!
//! Unsafe code lives only in `ctx` (the context save) and `sys` (raw system calls, fork and
//! the scratch mapping), plus the one `SAFETY`-commented dereference of the callback argument
//! in `capture`.

mod capture;
mod ctx;
pub mod format;
mod procfs;
mod read;
mod sys;

pub use capture::{
    CaptureError, ChildCapture, ChildOutcome, Outcome, WriteError, capture_in_child, capture_to,
};
pub use format::FormatError;
pub use read::{
    Image, Region, RunLoc, encode_header, encode_trailer_prefix, read_image, read_image_from,
};
