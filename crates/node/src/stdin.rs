//! The launcher's standard input goes to rank 0 only (as with `mpirun`). It is copied through
//! a pipe rather than inherited, because the ranks run in their own process group: a rank
//! that read the terminal directly would be stopped with SIGTTIN.

use std::io;
use std::process::ChildStdin;
use std::thread;

/// Copies the launcher's stdin to rank 0 until either side closes. The thread is not joined:
/// it may sit in a read of the terminal until the launcher exits.
pub(crate) fn forward_to(rank0: ChildStdin) -> io::Result<()> {
    thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut rank0 = rank0;
        let _ = io::copy(&mut io::stdin().lock(), &mut rank0);
    })?;
    Ok(())
}
