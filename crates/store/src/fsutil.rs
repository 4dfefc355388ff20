//! Small file-system helpers: fsync of directories, locks, no-replace renames.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{FlockOperation, RenameFlags};

use crate::error::StoreError;

/// fsync of a directory, so that the entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync the directory", dir))
}

/// Creates `dir` with mode 0700; true if it was created, false if it existed.
pub(crate) fn create_private_dir(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(StoreError::Io {
            op: "create the directory",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// An exclusive `flock` held until dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Blocks until the lock file `path` (created 0600 if missing) is locked.
    pub(crate) fn acquire_file(path: &Path) -> Result<Lock, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(StoreError::io("open the lock file", path))?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| StoreError::Io {
            op: "lock",
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(Lock { _file: file })
    }

    /// Locks the directory `dir` itself without waiting; `None` if someone else holds it.
    pub(crate) fn try_dir(dir: &Path) -> Result<Option<Lock>, StoreError> {
        let file = File::open(dir).map_err(StoreError::io("open the directory", dir))?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(StoreError::Io {
                op: "lock",
                path: dir.to_owned(),
                source: e.into(),
            }),
        }
    }
}

/// Renames `from` to `to`, failing with `AlreadyExists` rather than replacing `to`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        // File systems without RENAME_NOREPLACE: callers hold the job lock, so a check then a
        // rename is not racing another writer of this store.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                Err(io::ErrorKind::AlreadyExists.into())
            } else {
                std::fs::rename(from, to)
            }
        }
        Err(e) => Err(e.into()),
    }
}
