//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::commit::CommitStep;

/// Why a snapshot could not be written, found or read.
///
/// Messages are sentences that name the file and the check; the underlying cause, when there is
/// one, is the [`source`](std::error::Error::source) and is not repeated in the message.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `resolve` found nothing under any interpretation of the name.
    #[error("no snapshot `{name}`: looked for {}", Searched(searched))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    /// A directory without a manifest, a staging or trash directory, or something that is not a
    /// directory at all.
    #[error("{} is not a snapshot: {why}", path.display())]
    NotSnapshot { path: PathBuf, why: String },
    /// A check on the content of a file failed (magic, version, checksum, a length).
    #[error("{} is corrupt: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    /// A file is shorter than its header, its manifest entry or its own framing says.
    #[error("{} is truncated: {what}", path.display())]
    Truncated { path: PathBuf, what: String },
    /// A file written in a format version this build does not read.
    #[error("{} has format version {found}; this build reads versions {min} to {max}", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        min: u32,
        max: u32,
    },
    /// A snapshot (or a part) of another job, epoch or rank where one of this one was expected.
    #[error("{} belongs to {found}, not to {expected}", path.display())]
    Foreign {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// A committed snapshot without the part of a rank, or a commit missing one.
    #[error("the snapshot {} has no part for rank {rank}", path.display())]
    PartMissing { path: PathBuf, rank: u32 },
    /// What a commit was given does not match what is on disk or is inconsistent in itself.
    #[error("cannot commit {}: {what}", path.display())]
    BadCommit { path: PathBuf, what: String },
    /// The epoch is already committed, or already being written by this store.
    #[error("{} already exists; epoch {epoch} of job `{job}` is taken", path.display())]
    EpochTaken {
        path: PathBuf,
        job: String,
        epoch: u64,
    },
    /// A job, section or checkpointer name that cannot be used.
    #[error("{kind} name `{name}` {why}")]
    BadName {
        kind: &'static str,
        name: String,
        why: &'static str,
    },
    /// A section asked for by name that the part does not have.
    #[error("{} has no section `{name}`", path.display())]
    NoSection { path: PathBuf, name: String },
    /// The caller broke a writer's contract (e.g. a streamed section of the wrong length).
    #[error("{what}")]
    Usage { what: String },
    /// An operating-system call on a path failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The root directory belongs to someone else.
    #[error("the snapshot directory {} belongs to uid {owner}, not to uid {uid}; refusing to use it", path.display())]
    RootOwner { path: PathBuf, owner: u32, uid: u32 },
    /// The root directory is open to group or others.
    #[error("the snapshot directory {} has mode {mode:04o}, open to other users; refusing to use it until it is 0700", path.display())]
    RootMode { path: PathBuf, mode: u32 },
    /// The root (or a job directory) exists and is not a directory.
    #[error("{} is not a directory", path.display())]
    NotDirectory { path: PathBuf },
    /// Neither `XDG_STATE_HOME` nor `HOME` is set, so there is no default root.
    #[error("no snapshot directory given and neither XDG_STATE_HOME nor HOME is set")]
    NoDefaultRoot,
    /// A commit stopped on purpose by its hook after `step`, leaving the disk as a crash would.
    #[error("the commit was stopped after step `{step}`")]
    CommitStopped { step: CommitStep },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_owned();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.to_owned(),
            what: what.into(),
        }
    }

    pub(crate) fn truncated(path: &Path, what: impl Into<String>) -> StoreError {
        StoreError::Truncated {
            path: path.to_owned(),
            what: what.into(),
        }
    }

    /// True for the errors that say the data on disk is damaged (corrupt, truncated, a foreign
    /// file in place of the expected one, a missing part), as opposed to I/O or usage errors.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::Truncated { .. }
                | StoreError::Foreign { .. }
                | StoreError::PartMissing { .. }
                | StoreError::UnsupportedVersion { .. }
        )
    }
}

struct Searched<'a>(&'a [PathBuf]);

impl fmt::Display for Searched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == self.0.len() { " and " } else { ", " })?;
            }
            write!(f, "{}", p.display())?;
        }
        Ok(())
    }
}
