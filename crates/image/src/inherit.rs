//! The rank's control connection handed over across `exec`: a program preloaded with the
//! runtime (`crates/preload`) that executes another clears close-on-exec on its registered
//! connection and names it in [`CONTROL_FD_VAR`]; the new program (the preloaded runtime's
//! constructor, or `engine::join`) takes it over instead of registering again
//! (ARCHITECTURE.md, "Programs without MPI").
//!
//! The value is `DESCRIPTOR:PID`. `exec` keeps the pid, so the pid tells the program the
//! variable was meant for from a child that merely inherited the environment (which is not
//! the rank, and ignores it).

use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::FdFlags;
use rustix::net::SocketType;

use crate::sys;

/// The environment variable that names the inherited control connection.
pub const CONTROL_FD_VAR: &str = "MPICR_CONTROL_FD";

/// Why an inherited control connection cannot be taken over.
#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    #[error("{CONTROL_FD_VAR} is {0:?}, which is not DESCRIPTOR:PID")]
    Malformed(String),
    #[error("{CONTROL_FD_VAR} names descriptor {0}, which is not open")]
    NotOpen(RawFd),
    #[error("{CONTROL_FD_VAR} names descriptor {0}, which is not a stream socket")]
    NotSocket(RawFd),
    #[error("the control connection named by {CONTROL_FD_VAR} was taken over already")]
    Taken,
    #[error("cannot set close-on-exec on the inherited control connection")]
    CloseOnExec(#[source] std::io::Error),
}

/// The value of [`CONTROL_FD_VAR`] that hands descriptor `fd` of process `pid` over.
pub fn handover_value(fd: RawFd, pid: u32) -> String {
    format!("{fd}:{pid}")
}

/// Set once the connection is taken, so that it can never be owned twice.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The control connection `value` (of [`CONTROL_FD_VAR`]) hands over, with close-on-exec
/// set again; `None` when the value names another process. A malformed value, or a
/// descriptor that is not an open stream socket, is an error: the connection was meant for
/// this process and it cannot be the rank without it.
pub fn take_inherited_control(value: &str) -> Result<Option<UnixStream>, InheritError> {
    let malformed = || InheritError::Malformed(value.to_owned());
    let (fd, pid) = value.split_once(':').ok_or_else(malformed)?;
    let fd: RawFd = fd.parse().map_err(|_| malformed())?;
    let pid: u32 = pid.parse().map_err(|_| malformed())?;
    if fd < 0 {
        return Err(malformed());
    }
    if pid != std::process::id() {
        return Ok(None);
    }
    let target =
        std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|_| InheritError::NotOpen(fd))?;
    if !target.to_string_lossy().starts_with("socket:") {
        return Err(InheritError::NotSocket(fd));
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(InheritError::Taken);
    }
    let owned = sys::take_inherited_fd(fd);
    if rustix::net::sockopt::socket_type(&owned).ok() != Some(SocketType::STREAM) {
        return Err(InheritError::NotSocket(fd));
    }
    rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC)
        .map_err(|e| InheritError::CloseOnExec(e.into()))?;
    Ok(Some(UnixStream::from(owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_value_is_refused_and_another_process_s_is_ignored() {
        for bad in ["", "7", "x:1", "7:y", "-3:1", "7:1:2"] {
            assert!(
                matches!(take_inherited_control(bad), Err(InheritError::Malformed(_))),
                "{bad:?}"
            );
        }
        let other = handover_value(3, std::process::id().wrapping_add(1));
        assert!(matches!(take_inherited_control(&other), Ok(None)));
    }

    #[test]
    fn a_descriptor_that_is_not_an_open_socket_is_refused() {
        let file = std::fs::File::open("/proc/self/stat").expect("a file to name");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let me = std::process::id();
        assert!(matches!(
            take_inherited_control(&handover_value(fd, me)),
            Err(InheritError::NotSocket(n)) if n == fd
        ));
        assert!(matches!(
            take_inherited_control(&handover_value(4000, me)),
            Err(InheritError::NotOpen(4000))
        ));
    }
}
