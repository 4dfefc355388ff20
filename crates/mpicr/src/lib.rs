//! Message passing for Rust programs on the mpicr runtime.
//!
//! The API follows rsmpi (the `mpi` crate) so that its users feel at home, with `Result`
//! instead of ignored error codes:
//!
//! ```no_run
//! # fn main() -> Result<(), mpicr::Error> {
//! let universe = mpicr::initialize()?;
//! let world = universe.world();
//! let next = (world.rank() + 1) % world.size();
//! let prev = (world.rank() + world.size() - 1) % world.size();
//! let mut got = 0i32;
//! mpicr::request::scope(|scope| {
//!     let r = world.process_at_rank(prev).immediate_receive_into(scope, &mut got)?;
//!     world.process_at_rank(next).send(&world.rank())?;
//!     r.wait().map(drop)
//! })?;
//! assert_eq!(got, prev);
//! # Ok(()) }
//! ```
//!
//! Run it with `mpicr run -n 4 -- ./program`. A program started on its own is a job of one.
#![forbid(unsafe_code)]

mod checkpoint;
mod collective;
mod communicator;
mod datatype;
mod error;
mod ops;
pub mod request;
mod universe;

pub use checkpoint::Checkpointing;
pub use communicator::{AnyProcess, Communicator, Process, Status};
pub use datatype::{Buffer, BufferMut, Equivalence, Kind};
pub use error::Error;
pub use ops::{Operation, SystemOperation, UserOperation};
pub use universe::{Universe, initialize};

/// Shorthand for results of MPI calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wall-clock seconds since an arbitrary fixed point (MPI_Wtime).
pub fn time() -> f64 {
    universe::epoch().elapsed().as_secs_f64()
}

/// The resolution of [`time`] in seconds (MPI_Wtick).
pub fn time_resolution() -> f64 {
    1e-9
}

/// The largest tag a message may carry (MPI_TAG_UB).
pub const TAG_UB: i32 = engine::TAG_UB;
