//! The attention flag: how a rank under the image checkpointer learns, at its next MPI call
//! whatever the call, that the coordinator wrote to it or that its image writer ended
//! (ARCHITECTURE.md, "Getting a busy rank's attention"; the signal and its arming are
//! `image::attention`'s).
//!
//! The flag is this crate's own static, not the image crate's: every entry point of the
//! engine looks at it, and a static of the same crate is read with one load (then a test and
//! a branch), where one of another crate linked into `libmpi.so` needs a load of its address
//! from the global offset table first (`bench/pathlen` counted the difference).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::EngineError;
use crate::engine::Engine;

/// Raised by the signal's handler: the coordinator wrote, or an image writer ended.
static RAISED: AtomicBool = AtomicBool::new(false);

/// The signal's handler: one atomic store, no system call, so errno and everything else the
/// program was doing stay as they were.
extern "C" fn on_signal(_sig: std::ffi::c_int) {
    RAISED.store(true, Ordering::Relaxed);
}

impl Engine {
    /// Makes the coordinator's writes (and the end of an image writer) raise the attention
    /// signal, so that this rank answers at its next MPI call, whatever the call: for a rank
    /// under the image checkpointer, on every new control connection. The flag is raised at
    /// once, so that what arrived before is read too. Without the signal (the program has its
    /// own handler for it) requests are still read every `CONTROL_EVERY` progress rounds and
    /// before the rank sleeps.
    pub(crate) fn arm_attention(&mut self) {
        if self.ckpt.image.is_none() {
            return;
        }
        let Some(fd) = self.control_fd() else {
            return;
        };
        match image::attention::arm(fd, on_signal) {
            Ok(()) => RAISED.store(true, Ordering::Relaxed),
            Err(e) => tracing::warn!("checkpoint requests wait for MPI progress: {e}"),
        }
    }

    /// The look every MPI call takes first: one relaxed load of the flag.
    #[inline(always)]
    pub(crate) fn attention(&mut self) -> Result<(), EngineError> {
        if RAISED.load(Ordering::Relaxed) {
            self.attend()
        } else {
            Ok(())
        }
    }

    /// The coordinator wrote or an image writer ended: lower the flag (a signal that comes
    /// meanwhile raises it again), read the control link, then one progress round, which a
    /// checkpoint or migration that just began or went on needs (markers to write and read,
    /// the capture, the writer's report) even inside a call that has nothing else to do.
    #[cold]
    #[inline(never)]
    fn attend(&mut self) -> Result<(), EngineError> {
        RAISED.store(false, Ordering::Relaxed);
        self.poll_control()?;
        self.progress().map(drop)
    }
}
