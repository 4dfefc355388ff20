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
///
/// The rank then waits (a few seconds at most) for the coordinator to end it, so that the job
/// is reported as aborted by this rank rather than as a rank that happened to exit first.
pub fn abort(control: Option<&mut UnixStream>, rank: u32, code: i32, reason: &str) -> ! {
    if let Some(stream) = control {
        let abort = Message::Abort(Abort {
            rank,
            code,
            reason: reason.into(),
        });
        if write_message(stream, &abort).is_ok() {
            let _ = stream.set_read_timeout(Some(ABORT_GRACE));
            let mut sink = [0u8; 256];
            let started = std::time::Instant::now();
            while started.elapsed() < ABORT_GRACE {
                match std::io::Read::read(stream, &mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
    std::process::exit(code)
}

/// How long an aborting rank waits for the coordinator to end the job.
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
