//! The per-user runtime directory that holds the control sockets of a user's jobs.
//!
//! `$XDG_RUNTIME_DIR/mpicr` when `XDG_RUNTIME_DIR` is set, otherwise `/tmp/mpicr-<uid>`. It is
//! created with mode 0700 and refused if it belongs to someone else or is open to others:
//! the directory's permissions are what keep other users away from the sockets, and a
//! directory prepared by another user in `/tmp` could be used to intercept a job.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::job_name::JobName;

/// Why the runtime directory cannot be used.
#[derive(Debug, Error)]
pub enum RuntimeDirError {
    #[error("cannot create the runtime directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect the runtime directory {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the runtime directory {} is not a directory", path.display())]
    NotDirectory { path: PathBuf },
    #[error("the runtime directory {} belongs to uid {owner}, not to uid {uid}; refusing to use it", path.display())]
    ForeignOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("the runtime directory {} has mode {mode:04o}, open to other users; refusing to use it until it is 0700", path.display())]
    OpenToOthers { path: PathBuf, mode: u32 },
}

/// A checked runtime directory.
#[derive(Debug, Clone)]
pub struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// Where this user's runtime directory is, from the environment.
    pub fn locate() -> PathBuf {
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("mpicr"),
            _ => PathBuf::from(format!("/tmp/mpicr-{}", current_uid())),
        }
    }

    /// Creates (if needed) and checks the runtime directory.
    pub fn open() -> Result<Self, RuntimeDirError> {
        Self::open_at(&Self::locate())
    }

    /// Creates (if needed) and checks the runtime directory at `path`.
    pub fn open_at(path: &Path) -> Result<Self, RuntimeDirError> {
        let path = std::path::absolute(path).map_err(|source| RuntimeDirError::Inspect {
            path: path.to_owned(),
            source,
        })?;
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(RuntimeDirError::Create { path, source }),
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|source| RuntimeDirError::Inspect {
            path: path.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(RuntimeDirError::NotDirectory { path });
        }
        let uid = current_uid();
        if meta.uid() != uid {
            return Err(RuntimeDirError::ForeignOwner {
                path,
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(RuntimeDirError::OpenToOthers { path, mode });
        }
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The control socket of the job named `name`.
    pub fn socket_path(&self, name: &JobName) -> PathBuf {
        self.path.join(format!("{name}.sock"))
    }

    /// The symbolic link that finds a job by the pid of its `mpicr run`.
    pub fn pid_link_path(&self, launcher_pid: u32) -> PathBuf {
        self.path.join(format!("{launcher_pid}.sock"))
    }

    /// Where the job named `name` publishes the state of its checkpoints for `mpicr status`.
    pub fn checkpoint_status_path(&self, name: &JobName) -> PathBuf {
        self.path.join(format!("{name}.checkpoint"))
    }
}

/// The real uid of this process.
pub(crate) fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_0700_and_refuses_open_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::open_at(&tmp.path().join("mpicr")).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            dir.socket_path(&JobName::parse("a").unwrap()),
            dir.path().join("a.sock")
        );
        assert_eq!(dir.pid_link_path(7), dir.path().join("7.sock"));

        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = RuntimeDir::open_at(&open).unwrap_err();
        assert!(
            matches!(err, RuntimeDirError::OpenToOthers { mode: 0o755, .. }),
            "{err}"
        );

        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            RuntimeDir::open_at(&file),
            Err(RuntimeDirError::NotDirectory { .. })
        ));
    }
}
