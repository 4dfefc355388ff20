//! Errors of the checkpoint/restart service.

use thiserror::Error;

/// Why a checkpoint or restart failed.
#[derive(Debug, Error)]
pub enum CrsError {
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(
        "the snapshot's part for rank {rank} was written by the {found} checkpointer, not {expected}"
    )]
    WrongCheckpointer {
        rank: u32,
        found: String,
        expected: &'static str,
    },
    #[error("the snapshot's section {section} is malformed: {reason}")]
    Malformed { section: String, reason: String },
    #[error("{0}")]
    Application(String),
    #[error("{0}")]
    Image(String),
}
