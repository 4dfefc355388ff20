//! Leaving the job, shared by every front end (the Rust API and the C ABI): MPI_Finalize waits
//! for every rank, writes out what is queued and tells the coordinator; MPI_Abort tells the
//! coordinator why and exits.

use std::os::unix::net::UnixStream;

use wire::stream::write_message;
use wire::{Abort, Exit, Message};

use crate::{Comm, Engine, EngineError, coll};

/// Why leaving the job cleanly failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaveError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("telling the coordinator that this rank exits failed")]
    Control(#[source] std::io::Error),
}

/// MPI_Finalize: a barrier on the world, a flush of every link, then EXIT to the coordinator
/// (absent for a singleton).
pub fn finalize(engine: &mut Engine, control: Option<&mut UnixStream>) -> Result<(), LeaveError> {
    engine.begin_finalize()?;
    let world = Comm::world(engine);
    coll::barrier(engine, &world)?;
    engine.flush()?;
    if let Some(control) = control {
        let exit = Message::Exit(Exit {
            rank: engine.rank(),
        });
        write_message(control, &exit).map_err(LeaveError::Control)?;
    }
    Ok(())
}

/// MPI_Abort: reports `reason` to the coordinator (which ends the job) and exits with `code`.
pub fn abort(control: Option<&mut UnixStream>, rank: u32, code: i32, reason: &str) -> ! {
    if let Some(stream) = control {
        let _ = write_message(
            stream,
            &Message::Abort(Abort {
                rank,
                code,
                reason: reason.into(),
            }),
        );
    }
    std::process::exit(code)
}
