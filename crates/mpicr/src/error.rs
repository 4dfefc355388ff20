//! The error type of every fallible call.

use thiserror::Error;

/// Why an MPI call failed.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("MPI is already initialized in this process")]
    AlreadyInitialized,
    #[error("the operation {op} is not defined for elements of type {ty}")]
    InvalidOperation { op: &'static str, ty: &'static str },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("telling the coordinator that this rank is leaving failed")]
    Control(#[source] std::io::Error),
    #[error("checkpoint or restart failed: {0}")]
    Checkpoint(String),
    #[error("restarting from the snapshot failed")]
    Restart(#[from] crs::CrsError),
}
