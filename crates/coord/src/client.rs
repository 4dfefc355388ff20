//! The tool side of the control socket: find a job by name or pid and ask for its table.

use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;
use wire::stream::{ReadError, read_message, write_message};
use wire::{CheckpointDone, CheckpointRequest, Message, StatusReply};

use crate::checkpoint::{CheckpointStatus, decode_status};

use crate::control_socket::is_stale;
use crate::job_name::{JobName, JobNameError};
use crate::runtime_dir::RuntimeDir;
use crate::shm_dir::remove_leftovers;

/// How long a job may take to answer a status request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A job as the user names it on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    Name(JobName),
    /// The pid of the job's `mpicr run`.
    Pid(u32),
}

impl FromStr for JobRef {
    type Err = JobNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<u32>() {
            Ok(pid) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(Self::Pid(pid)),
            _ => JobName::parse(s).map(Self::Name),
        }
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => write!(f, "named `{name}`"),
            Self::Pid(pid) => write!(f, "started by pid {pid}"),
        }
    }
}

/// Why a status request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no job {0} is running")]
    NotRunning(JobRef),
    #[error("cannot connect to {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sending the status request failed")]
    Send(#[source] io::Error),
    #[error("the job did not answer")]
    Receive(#[source] ReadError),
    #[error("the job refused the request: {0}")]
    Refused(String),
    #[error("the job answered with an unexpected {0} message")]
    Unexpected(String),
}

/// The control socket of `job`, or `NotRunning` when there is none.
pub(crate) fn job_socket(dir: &RuntimeDir, job: &JobRef) -> Result<PathBuf, ClientError> {
    let path = match job {
        JobRef::Name(name) => dir.socket_path(name),
        JobRef::Pid(pid) => dir.pid_link_path(*pid),
    };
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(ClientError::NotRunning(job.clone()));
    }
    Ok(path)
}

/// Asks the job `job` for its status. A socket nobody listens on any more is removed.
pub fn job_status(dir: &RuntimeDir, job: &JobRef) -> Result<StatusReply, ClientError> {
    let path = job_socket(dir, job)?;
    match query(&path) {
        Err(ClientError::Connect { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            tracing::info!(socket = %path.display(), "removing a stale socket");
            let _ = std::fs::remove_file(&path);
            if let JobRef::Name(name) = job {
                let _ = std::fs::remove_file(dir.checkpoint_status_path(name));
            }
            Err(ClientError::NotRunning(job.clone()))
        }
        other => other,
    }
}

/// The status of every live job in `dir`, by job name. Stale sockets and links, and the
/// shared-memory directories of dead jobs, are removed; a job that does not answer is left out.
pub fn live_jobs(dir: &RuntimeDir) -> Vec<StatusReply> {
    let Ok(entries) = std::fs::read_dir(dir.path()) else {
        return Vec::new();
    };
    let mut sockets: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    sockets.sort();
    let is_link =
        |p: &PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let (links, sockets): (Vec<PathBuf>, Vec<PathBuf>) = sockets.into_iter().partition(is_link);
    let mut jobs = Vec::new();
    for path in sockets {
        if is_stale(&path) {
            tracing::info!(socket = %path.display(), "removing a stale socket");
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(path.with_extension("checkpoint"));
            continue;
        }
        match query(&path) {
            Ok(reply) => jobs.push(reply),
            Err(e) => tracing::warn!(socket = %path.display(), "a job did not answer: {e}"),
        }
    }
    // Pid links are not listed themselves; one whose socket is gone is removed.
    for link in links {
        if std::fs::metadata(&link).is_err() {
            let _ = std::fs::remove_file(&link);
        }
    }
    remove_leftovers(dir);
    jobs
}

/// Asks the job `job` for a global checkpoint and waits until it is committed (or has
/// failed: the job's sentence is [`ClientError::Refused`]). `terminate` ends the job after the
/// commit.
pub fn request_checkpoint(
    dir: &RuntimeDir,
    job: &JobRef,
    terminate: bool,
) -> Result<CheckpointDone, ClientError> {
    let path = job_socket(dir, job)?;
    let stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(source)
            if matches!(
                source.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            let _ = std::fs::remove_file(&path);
            return Err(ClientError::NotRunning(job.clone()));
        }
        Err(source) => return Err(ClientError::Connect { path, source }),
    };
    stream
        .set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(ClientError::Send)?;
    let request = Message::CheckpointRequest(CheckpointRequest { terminate });
    write_message(&mut &stream, &request).map_err(ClientError::Send)?;
    // No read timeout: the job's own checkpoint timeout bounds the wait, and a job that dies
    // closes the connection.
    match read_message(&mut &stream).map_err(ClientError::Receive)? {
        Message::CheckpointDone(done) => Ok(done),
        Message::Error(sentence) => Err(ClientError::Refused(sentence)),
        other => Err(ClientError::Unexpected(format!("{:?}", other.command()))),
    }
}

/// What the job named `job` published about its checkpoints, if it is running.
pub fn checkpoint_status(dir: &RuntimeDir, job: &str) -> Option<CheckpointStatus> {
    let name = JobName::parse(job).ok()?;
    let text = std::fs::read_to_string(dir.checkpoint_status_path(&name)).ok()?;
    decode_status(&text)
}

/// One status request over the socket at `path`.
pub fn query(path: &Path) -> Result<StatusReply, ClientError> {
    let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_owned(),
        source,
    })?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(ClientError::Send)?;
    stream
        .set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(ClientError::Send)?;
    write_message(&mut &stream, &Message::StatusRequest).map_err(ClientError::Send)?;
    match read_message(&mut &stream).map_err(ClientError::Receive)? {
        Message::StatusReply(reply) => Ok(reply),
        Message::Error(sentence) => Err(ClientError::Refused(sentence)),
        other => Err(ClientError::Unexpected(format!("{:?}", other.command()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_refs() {
        assert_eq!("123".parse::<JobRef>().unwrap(), JobRef::Pid(123));
        assert_eq!(
            "a1".parse::<JobRef>().unwrap(),
            JobRef::Name(JobName::parse("a1").unwrap())
        );
        assert!("+12".parse::<JobRef>().is_err());
        assert!("a b".parse::<JobRef>().is_err());
        assert_eq!(JobRef::Pid(5).to_string(), "started by pid 5");
    }
}
