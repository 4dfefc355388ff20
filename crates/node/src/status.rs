//! How a rank ended.

use std::fmt;

use crate::signals::signal_name;

/// The end of a rank process as `waitid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The process exited with this status code.
    Exited(i32),
    /// The process was killed by this signal number.
    Signaled(i32),
    /// The process ended but its status could not be read (something else reaped it).
    Unknown,
}

impl ExitStatus {
    /// Whether the rank ended as a successful program does: exit status 0.
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }

    /// The status a shell would report for this end: the exit code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(sig) => 128 + sig,
            Self::Unknown => 255,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited(code) => write!(f, "exited with status {code}"),
            Self::Signaled(sig) => match signal_name(sig) {
                Some(name) => write!(f, "was killed by signal {sig} ({name})"),
                None => write!(f, "was killed by signal {sig}"),
            },
            Self::Unknown => write!(f, "ended with a status that could not be read"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_and_codes() {
        assert_eq!(ExitStatus::Exited(3).to_string(), "exited with status 3");
        assert_eq!(
            ExitStatus::Signaled(9).to_string(),
            "was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ExitStatus::Signaled(9).shell_code(), 137);
        assert_eq!(ExitStatus::Exited(3).shell_code(), 3);
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(15).success());
    }
}
