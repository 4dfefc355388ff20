//! Getting a busy rank's attention: the signal the kernel sends when the coordinator writes to
//! a rank's control connection, and that a forked image writer sends its rank when it ends.
//!
//! A rank reads its control connection and looks after its image writer only inside MPI
//! calls. Without a signal, a rank that calls MPI rarely and never waits (it computes, then
//! sends one eager message; it polls with MPI_Test now and then) would notice a checkpoint or
//! migration request only every so many progress rounds, or never. So the engine of a rank
//! under the image checkpointer installs a handler of its own that only raises a flag, and
//! arms the control connection with `O_ASYNC` ([`arm`]); every MPI call looks at the flag
//! once (one relaxed load) and, when it is raised, clears it and reads the connection. The
//! flag is the engine's own static (`engine::attention`), so that the look is one load (then
//! a test and a branch), without a load of its address from the global offset table first.
//!
//! The signal is the preloaded runtime's (`crates/preload`) too, [`signal`]: a process holds
//! at most one of the two handlers, since the preloaded runtime stays out of a program that
//! joins the job by itself, and hands the connection over across `exec` with `O_ASYNC` off and
//! the pending instances discarded (the new program's engine installs its handler and arms the
//! connection again).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::sys;

/// The handler is installed in this process (the forked writer's copy of it tells the writer
/// to signal its rank when it ends).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The pid that armed its connection last (a restored or migrated rank's is new): the only
/// process a writer signals.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// The runtime's signal: `SIGRTMAX - 2` (62 with glibc). Real-time, so that it queues rather
/// than merges and is never one of the classic signals a program handles; glibc keeps the
/// lowest real-time signals for itself, and programs that use real-time signals usually count
/// up from `SIGRTMIN`.
pub fn signal() -> i32 {
    libc::SIGRTMAX() - 2
}

/// A handler of the signal: it must be async-signal-safe, and should only note the signal
/// (one atomic store, no system call, so that errno and everything else the program was
/// doing stay as they were).
pub type Handler = extern "C" fn(std::ffi::c_int);

/// Why the control connection cannot raise the signal.
#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    #[error("the program has its own handler for signal {0}")]
    Taken(i32),
    #[error("installing the handler of signal {0} failed")]
    Install(i32, #[source] std::io::Error),
    #[error("arming descriptor {0} for asynchronous signals failed")]
    Arm(RawFd, #[source] std::io::Error),
}

/// Installs `handler` (once; a restored process has it from its image) and has the kernel
/// send the signal to this process whenever the coordinator writes to `fd`, this process's
/// control connection (again for each new connection: a restored or migrated rank's, whose
/// pid is new too). A program that installed its own handler for the signal before keeps
/// it, and the connection stays unarmed.
pub fn arm(fd: RawFd, handler: Handler) -> Result<(), AttentionError> {
    let sig = signal();
    if !INSTALLED.load(Ordering::Relaxed) {
        match sys::install_handler(sig, handler) {
            Ok(true) => INSTALLED.store(true, Ordering::Relaxed),
            Ok(false) => return Err(AttentionError::Taken(sig)),
            Err(e) => return Err(AttentionError::Install(sig, e)),
        }
    }
    async_signal(fd, sig, true).map_err(|e| AttentionError::Arm(fd, e))?;
    OWNER.store(std::process::id(), Ordering::Relaxed);
    Ok(())
}

/// Has the kernel send `sig` to this process whenever `fd` becomes readable (or is closed by
/// its peer), or stops that (`on` false); the preloaded runtime's arming.
pub fn async_signal(fd: RawFd, sig: i32, on: bool) -> std::io::Result<()> {
    sys::async_signal(fd, sig, on)
}

/// In a forked image writer that has ended its work: tells its rank, if the rank armed the
/// signal and is still its parent (a writer whose rank died has another parent, which must
/// not get a signal whose default action ends it). Async-signal-safe.
pub(crate) fn writer_done() {
    let owner = OWNER.load(Ordering::Relaxed);
    if INSTALLED.load(Ordering::Relaxed) && owner != 0 {
        sys::signal_parent(owner, signal());
    }
}
