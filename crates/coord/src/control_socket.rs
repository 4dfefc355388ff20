//! Creating a job's control socket and the link that finds it by pid; removing both.
//!
//! The socket is bound under a temporary name and then hard-linked to `<job>.sock`. The link
//! fails if the name is taken, which makes claiming a job name atomic, and a socket file that
//! exists under its final name is always already listening: a connection that is refused
//! there means the job is gone (a stale socket), never that it is still starting.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::job_name::JobName;
use crate::runtime_dir::RuntimeDir;

/// Longest socket path `sockaddr_un` holds, without the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Why the control socket could not be set up.
#[derive(Debug, Error)]
pub enum SocketError {
    #[error("the control socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter job name or runtime directory", path.display())]
    PathTooLong { path: PathBuf },
    #[error("cannot create the control socket {}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot publish the control socket as {}", path.display())]
    Publish {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a running job already uses the name `{0}`; choose another with --job-name")]
    NameInUse(String),
}

/// The files that make a running job findable. Dropping this removes them, unless another
/// job has replaced them meanwhile (which only happens if this one was taken for dead).
#[derive(Debug)]
pub(crate) struct JobFiles {
    socket: PathBuf,
    /// Device and inode of our socket file.
    identity: (u64, u64),
    pid_link: PathBuf,
    link_target: PathBuf,
}

impl JobFiles {
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for JobFiles {
    fn drop(&mut self) {
        if std::fs::read_link(&self.pid_link).is_ok_and(|t| t == self.link_target) {
            let _ = std::fs::remove_file(&self.pid_link);
        }
        if identity(&self.socket).is_ok_and(|id| id == self.identity) {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

fn identity(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Creates and publishes the control socket of job `name` started by `launcher_pid`.
pub(crate) fn bind(
    dir: &RuntimeDir,
    name: &JobName,
    launcher_pid: u32,
) -> Result<(UnixListener, JobFiles), SocketError> {
    let socket = dir.socket_path(name);
    let temporary = dir.path().join(format!(".{name}.{launcher_pid}.tmp"));
    for path in [&socket, &temporary] {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(SocketError::PathTooLong { path: path.clone() });
        }
    }
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(|source| SocketError::Bind {
        path: temporary.clone(),
        source,
    })?;
    let published = publish(&temporary, &socket, name);
    let _ = std::fs::remove_file(&temporary);
    published?;
    let identity = identity(&socket).map_err(|source| SocketError::Publish {
        path: socket.clone(),
        source,
    })?;
    let link_target = PathBuf::from(format!("{name}.sock"));
    let pid_link = dir.pid_link_path(launcher_pid);
    // From here on, dropping `files` undoes what was published.
    let files = JobFiles {
        socket,
        identity,
        pid_link,
        link_target,
    };
    link_pid(&files.pid_link, &files.link_target).map_err(|source| SocketError::Publish {
        path: files.pid_link.clone(),
        source,
    })?;
    Ok((listener, files))
}

/// Hard-links the bound socket to its final name, replacing a stale socket of a dead job.
fn publish(temporary: &Path, socket: &Path, name: &JobName) -> Result<(), SocketError> {
    let error = |source| SocketError::Publish {
        path: socket.to_owned(),
        source,
    };
    match std::fs::hard_link(temporary, socket) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !is_stale(socket) {
                return Err(SocketError::NameInUse(name.to_string()));
            }
            tracing::info!(socket = %socket.display(), "removing the stale socket of a dead job");
            std::fs::remove_file(socket).map_err(error)?;
            std::fs::hard_link(temporary, socket).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => SocketError::NameInUse(name.to_string()),
                _ => error(e),
            })
        }
        Err(e) => Err(error(e)),
    }
}

/// `<pid>.sock -> <name>.sock`. An existing link of that pid is stale: this process has the pid.
fn link_pid(link: &Path, target: &Path) -> io::Result<()> {
    match std::os::unix::fs::symlink(target, link) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(link)?;
            std::os::unix::fs::symlink(target, link)
        }
        other => other,
    }
}

/// Whether `socket` names a job that is gone: nobody listens there any more (or, for a
/// pid link, its target is gone).
pub(crate) fn is_stale(socket: &Path) -> bool {
    match UnixStream::connect(socket) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_names_once_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RuntimeDir::open_at(&tmp.path().join("mpicr")).unwrap();
        let name = JobName::parse("t").unwrap();
        let (listener, files) = bind(&dir, &name, 1).unwrap();
        assert!(dir.socket_path(&name).exists());
        assert!(
            dir.pid_link_path(1).exists(),
            "the pid link resolves to the socket"
        );
        assert!(matches!(
            bind(&dir, &name, 2),
            Err(SocketError::NameInUse(_))
        ));

        drop(listener);
        assert!(is_stale(&dir.socket_path(&name)));
        let (_listener, again) = bind(&dir, &name, 3).unwrap();
        drop(files);
        assert!(
            dir.socket_path(&name).exists(),
            "a replaced socket is not the old job's to remove"
        );
        assert!(dir.pid_link_path(3).exists());
        drop(again);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
