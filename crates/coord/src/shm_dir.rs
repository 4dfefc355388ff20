//! The job's shared-memory directory, where the ranks' data plane keeps its segments.
//!
//! `/dev/shm/mpicr-<uid>-<job>-<launcher pid>` (mode 0700), or `<runtime dir>/<job>.shm` on a
//! machine without `/dev/shm`. Created before the ranks start and removed with everything in it
//! when the job ends, so segments never outlive their job. A job name is unique within a
//! runtime directory only, and `/dev/shm` is shared by every runtime directory of the user
//! (two test sandboxes, two `XDG_RUNTIME_DIR`s): the launcher's pid keeps a job from taking
//! over, and removing, the directory of a live job of the same name elsewhere, whose ranks
//! would then die of SIGBUS. After a `kill -9` of `mpicr run`, `mpicr status` or any later
//! launcher removes the leftover: the directory names its launcher in `node::owner`'s file,
//! so that liveness can be checked.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::job_name::JobName;
use crate::runtime_dir::{RuntimeDir, current_uid};
use node::owner::{self, DEV_SHM, shm_prefix};

const FALLBACK_SUFFIX: &str = ".shm";
/// A node daemon's private directory in the runtime directory (`node::daemon`).
const NODE_SUFFIX: &str = ".node";

/// Removes the shared-memory directories of this user's jobs whose owner is dead: leftovers
/// of launchers and node daemons killed with `kill -9`, and the node directories of a dead
/// daemon in the runtime directory. Liveness is judged by the owner's process, not by a
/// socket, because jobs of other runtime directories share `/dev/shm`.
pub(crate) fn remove_leftovers(runtime: &RuntimeDir) {
    let uid = current_uid();
    owner::remove_dead_shm(uid);
    owner::remove_dead(runtime.path(), uid, |name| {
        name.ends_with(FALLBACK_SUFFIX) || name.ends_with(NODE_SUFFIX)
    });
}

/// Why the shared-memory directory could not be prepared.
#[derive(Debug, Error)]
pub enum ShmDirError {
    #[error("cannot create the shared-memory directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} exists and does not belong to this user's jobs; refusing to use it", path.display())]
    Foreign { path: PathBuf },
}

/// The directory; dropping it removes it recursively.
#[derive(Debug)]
pub(crate) struct ShmDir {
    path: PathBuf,
}

impl ShmDir {
    /// Creates the directory of job `name`, replacing a leftover of a dead launcher that had
    /// this pid (or, in the runtime directory, of an earlier job of that name). The caller
    /// must already own the name (its control socket is published).
    pub(crate) fn create(runtime: &RuntimeDir, name: &JobName) -> Result<Self, ShmDirError> {
        let uid = current_uid();
        let path = if Path::new(DEV_SHM).is_dir() {
            let pid = std::process::id();
            Path::new(DEV_SHM).join(format!("{}{name}-{pid}", shm_prefix(uid)))
        } else {
            runtime.path().join(format!("{name}{FALLBACK_SUFFIX}"))
        };
        let create = || std::fs::DirBuilder::new().mode(0o700).create(&path);
        let error = |source| ShmDirError::Create {
            path: path.clone(),
            source,
        };
        match create() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(&path).map_err(error)?;
                if !meta.is_dir() || meta.uid() != uid {
                    return Err(ShmDirError::Foreign { path });
                }
                tracing::info!(path = %path.display(), "removing a leftover shared-memory directory");
                std::fs::remove_dir_all(&path).map_err(error)?;
                create().map_err(error)?;
            }
            Err(e) => return Err(error(e)),
        }
        let dir = Self { path };
        owner::mark_owned(&dir.path).map_err(|source| ShmDirError::Create {
            path: dir.path.clone(),
            source,
        })?;
        Ok(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove the shared-memory directory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_private_and_removed_with_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = RuntimeDir::open_at(&tmp.path().join("mpicr")).unwrap();
        let name = JobName::parse(&format!("shm-test-{}", std::process::id())).unwrap();
        let dir = ShmDir::create(&runtime, &name).unwrap();
        let path = dir.path().to_owned();
        if path.starts_with(DEV_SHM) {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                file.ends_with(&format!("{name}-{}", std::process::id())),
                "the launcher's pid is in the name: {file}"
            );
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::create_dir(path.join("sub")).unwrap();
        std::fs::write(path.join("sub/segment"), b"x").unwrap();
        let again = ShmDir::create(&runtime, &name).unwrap();
        assert!(!path.join("sub").exists(), "a leftover is replaced");
        remove_leftovers(&runtime);
        assert!(path.exists(), "the directory of a live launcher stays");
        std::fs::write(path.join(owner::OWNER_FILE), "999999999 1\n").unwrap();
        remove_leftovers(&runtime);
        assert!(!path.exists(), "the directory of a dead launcher goes");
        drop(dir);
        drop(again);
    }
}
