//! Job names: what `--job-name` accepts and the default.

use std::fmt;

use thiserror::Error;

/// Longest job name. The control socket path (runtime dir + name + `.sock`) must fit the
/// 108 bytes of `sockaddr_un`.
pub(crate) const MAX_LEN: usize = 64;

/// A validated job name: letters, digits, `.`, `_` and `-`, not digits only (a number names a
/// job by the pid of its `mpicr run`), not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobName(String);

/// Why a job name was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JobNameError {
    #[error("a job name cannot be empty")]
    Empty,
    #[error("job name `{0}` is longer than {MAX_LEN} characters")]
    TooLong(String),
    #[error("job name `{0}` may only contain letters, digits, `.`, `_` and `-`")]
    BadCharacter(String),
    #[error("job name `{0}` cannot start with `.` or `-`")]
    BadStart(String),
    #[error("job name `{0}` is a number, which would be taken for the pid of an `mpicr run`")]
    DigitsOnly(String),
}

impl JobName {
    /// Checks a name given by the user.
    pub fn parse(name: &str) -> Result<Self, JobNameError> {
        let owned = || name.to_owned();
        if name.is_empty() {
            return Err(JobNameError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(JobNameError::TooLong(owned()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(JobNameError::BadCharacter(owned()));
        }
        if name.starts_with(['.', '-']) {
            return Err(JobNameError::BadStart(owned()));
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(JobNameError::DigitsOnly(owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name of a job started without `--job-name`: `job-<pid of mpicr run>`.
    pub fn default_for(launcher_pid: u32) -> Self {
        Self(format!("job-{launcher_pid}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert_eq!(
            JobName::parse("heat.v2_run-1").unwrap().as_str(),
            "heat.v2_run-1"
        );
        assert_eq!(JobName::parse("1a").unwrap().as_str(), "1a");
        assert_eq!(JobName::parse(""), Err(JobNameError::Empty));
        assert_eq!(
            JobName::parse("1234"),
            Err(JobNameError::DigitsOnly("1234".into()))
        );
        assert_eq!(
            JobName::parse("a/b"),
            Err(JobNameError::BadCharacter("a/b".into()))
        );
        assert_eq!(
            JobName::parse("a b"),
            Err(JobNameError::BadCharacter("a b".into()))
        );
        assert_eq!(
            JobName::parse("..x"),
            Err(JobNameError::BadStart("..x".into()))
        );
        assert_eq!(
            JobName::parse("-x"),
            Err(JobNameError::BadStart("-x".into()))
        );
        assert!(matches!(
            JobName::parse(&"a".repeat(65)),
            Err(JobNameError::TooLong(_))
        ));
        assert_eq!(JobName::default_for(42).as_str(), "job-42");
    }
}
