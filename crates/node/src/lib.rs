//! The node daemon's work on one machine: start a job's ranks, watch them, forward their
//! output, and end them.
//!
//! On a single machine the coordinator (`mpicr run`) hosts this code in its own process. All
//! ranks of a job form one new process group, so that a Ctrl-C typed at the terminal reaches
//! only the launcher (which then ends the job in order) and so that the job, including any
//! helper processes a rank starts, can be signalled as a whole. Every rank also carries
//! `PR_SET_PDEATHSIG = SIGKILL`, so that a launcher killed with `kill -9` leaves no rank behind.
//!
//! The only `unsafe` code is the `pre_exec` hook in `spawn.rs` (parent-death signal and CPU
//! binding, between fork and exec).
#![deny(unsafe_code)]

pub mod binding;
mod bundle;
pub mod daemon;
mod migrate;
pub mod node_store;
mod output;
pub mod owner;
pub mod proc_tree;
pub mod procstat;
pub mod program;
mod ranks;
mod signals;
mod spawn;
mod status;
mod stdin;

pub use output::{OutputCopy, RemotePiece};
pub use ranks::{ExitCallback, JobSpec, OutputTo, RankExit, Ranks, SpawnError};
pub use signals::signal_name;
pub use status::ExitStatus;

/// An error and its causes as one sentence: `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
