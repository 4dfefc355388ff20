//! The node daemon's work on one machine: start a job's ranks, watch them, forward their
//! output, and end them.
//!
//! On a single machine the coordinator (`mpicr run`) hosts this code in its own process. All
//! ranks of a job form one new process group, so that a Ctrl-C typed at the terminal reaches
//! only the launcher (which then ends the job in order) and so that the job, including any
//! helper processes a rank starts, can be signalled as a whole. Every rank also carries
//! `PR_SET_PDEATHSIG = SIGKILL`, so that a launcher killed with `kill -9` leaves no rank behind.
//!
//! The only `unsafe` code is the `pre_exec` hook in `spawn.rs`.
#![deny(unsafe_code)]

mod output;
pub mod program;
mod ranks;
mod signals;
mod spawn;
mod status;
mod stdin;

pub use output::OutputCopy;
pub use ranks::{ExitCallback, JobSpec, RankExit, Ranks, SpawnError};
pub use signals::signal_name;
pub use status::ExitStatus;
