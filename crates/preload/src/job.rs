//! The preloaded rank's membership of its job: registering (also again, in a restored
//! process, with the restorer's hand-over), and its control connection.
//!
//! A program without MPI has no data plane: it registers with an empty address, and no peer
//! ever connects to it.

use std::os::unix::net::UnixStream;

use wire::stream::{ReadError, read_message, write_message};
use wire::{Message, Register};

use crate::sys;

/// The file name `mpicr run` preloads (`coord::launch`).
const LIBRARY_NAME: &str = "libmpicr_preload.so";

/// Why the rank could not join its job.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("{name} is {value:?}, which is not {expected}")]
    BadVariable {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot reach the coordinator at {path}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("registering with the coordinator failed")]
    Register(#[source] std::io::Error),
    #[error("reading the process table failed")]
    Table(#[from] ReadError),
    #[error("the coordinator refused this rank: {0}")]
    Refused(String),
    #[error("the coordinator sent {0:?} where the process table was expected")]
    Unexpected(wire::Command),
    #[error("the control connection the previous program of this process handed over is unusable")]
    Inherited(#[from] image::InheritError),
}

/// Removes this library from `LD_PRELOAD`, so that a program the rank executes is not
/// preloaded by accident (it would join the job as the same rank); returns the entry that
/// named it, which the hand-over across `exec` puts back (`exec`).
pub(crate) fn forget_preload_variable() -> Option<String> {
    let value = sys::env_var("LD_PRELOAD")?;
    let (ours, rest) = split_preload(&value);
    let ours = ours?;
    sys::env_remove_or_shorten("LD_PRELOAD", Some(rest.as_str()).filter(|r| !r.is_empty()));
    Some(ours)
}

/// The value of [`image::CONTROL_FD_VAR`], taken out of the environment so that the program's
/// children, which are not the rank, never see it (in the constructor of a program without
/// MPI, which takes the connection over).
pub(crate) fn take_inherited_variable() -> Option<String> {
    let value = sys::env_var(image::CONTROL_FD_VAR)?;
    sys::env_remove_or_shorten(image::CONTROL_FD_VAR, None);
    Some(value)
}

/// An `LD_PRELOAD` value split into this library's entry (the first that names it) and the
/// other entries, joined by `:`.
pub(crate) fn split_preload(value: &str) -> (Option<String>, String) {
    let mut ours = None;
    let mut rest = Vec::new();
    for entry in value.split([':', ' ']).filter(|e| !e.is_empty()) {
        if entry.ends_with(LIBRARY_NAME) {
            ours.get_or_insert_with(|| entry.to_owned());
        } else {
            rest.push(entry);
        }
    }
    (ours, rest.join(":"))
}

/// What the launcher (or the restorer's hand-over) tells a rank.
pub(crate) struct Launch {
    pub(crate) rank: u32,
    pub(crate) job: String,
    control: String,
    node: String,
}

impl Launch {
    /// From `var`: the process's environment, or the restorer's hand-over.
    pub(crate) fn read(var: &dyn Fn(&'static str) -> Option<String>) -> Result<Self, JoinError> {
        let number = |name: &'static str| {
            let value = var(name).unwrap_or_default();
            value.parse::<u32>().map_err(|_| JoinError::BadVariable {
                name,
                value,
                expected: "a number",
            })
        };
        let rank = number("MPICR_RANK")?;
        number("MPICR_SIZE")?;
        let control = var("MPICR_CONTROL").ok_or(JoinError::BadVariable {
            name: "MPICR_CONTROL",
            value: String::new(),
            expected: "the coordinator's socket path",
        })?;
        let node = var("MPICR_NODE").unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        });
        Ok(Self {
            rank,
            job: var("MPICR_JOB").unwrap_or_default(),
            control,
            node,
        })
    }

    /// The rank's control connection: taken over from the program this process executed
    /// before, if it handed one over (`inherited`: the value of [`image::CONTROL_FD_VAR`]),
    /// else a new registration.
    pub(crate) fn connection(&self, inherited: Option<&str>) -> Result<UnixStream, JoinError> {
        match inherited.map(image::take_inherited_control).transpose()? {
            Some(Some(stream)) => Ok(stream),
            _ => self.join(),
        }
    }

    /// Registers this process as the rank and waits for the process table.
    pub(crate) fn join(&self) -> Result<UnixStream, JoinError> {
        let mut stream =
            UnixStream::connect(&self.control).map_err(|source| JoinError::Connect {
                path: self.control.clone(),
                source,
            })?;
        let register = Register {
            rank: self.rank,
            pid: std::process::id(),
            host: self.node.clone(),
            data_addr: String::new(),
        };
        write_message(&mut stream, &Message::Register(register)).map_err(JoinError::Register)?;
        match read_message(&mut stream)? {
            Message::Refresh(_) => Ok(stream),
            Message::Error(reason) => Err(JoinError::Refused(reason)),
            other => Err(JoinError::Unexpected(other.command())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_preload;

    #[test]
    fn the_library_s_entry_is_split_from_the_others() {
        let (ours, rest) = split_preload("/a/libx.so /opt/libmpicr_preload.so:/b/liby.so");
        assert_eq!(ours.as_deref(), Some("/opt/libmpicr_preload.so"));
        assert_eq!(rest, "/a/libx.so:/b/liby.so");
        assert_eq!(split_preload("/a/libx.so"), (None, "/a/libx.so".into()));
    }
}
