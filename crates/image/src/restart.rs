//! What a restored process needs besides its memory: the environment of the job it now
//! belongs to, and its old descriptor numbers kept for objects that still hold them.
//!
//! The restored process's memory is the old process's, environment included. The restorer
//! (`mpicr-restore`) therefore hands over its own `MPICR_*` and `PMI_*` variables in a memfd
//! named [`RESTART_ENV_NAME`] at descriptor [`RESTART_ENV_FD`]; capture refuses a process
//! that has that number open, so it is free in every image. [`take_restart_env`] reads and
//! closes it.
//!
//! Objects in the restored memory may hold descriptor numbers that were sockets or pipes and
//! are not restored (they are free now). [`reserve_fds`] puts a placeholder (a memfd named
//! [`PLACEHOLDER_NAME`]) on such numbers before anything else can take them, and
//! [`replace_placeholder`] later puts a new open file there, so the old object works again.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use rustix::fs::MemfdFlags;
use rustix::io::Errno;

use crate::sys;

/// The descriptor the restorer leaves the new environment at.
pub const RESTART_ENV_FD: RawFd = 1000;
/// The memfd name of the hand-over (`/proc/self/fd/N` shows `/memfd:NAME (deleted)`).
pub const RESTART_ENV_NAME: &str = "mpicr-restart-env";
/// The memfd name of a reserved descriptor number.
pub const PLACEHOLDER_NAME: &str = "mpicr-fd-placeholder";
/// Cap of the hand-over's size.
const MAX_ENV: u64 = 1 << 20;

/// Variables the restorer hands over.
pub fn handed_over(name: &str) -> bool {
    name.starts_with("MPICR_") || name.starts_with("PMI_")
}

/// The hand-over's bytes: `NAME=VALUE\0` for each variable.
pub fn encode_env<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in vars {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The variables of a hand-over; entries that are not `NAME=VALUE` in UTF-8 are skipped.
pub fn decode_env(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok())
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether descriptor `fd` is a memfd named `name`.
fn is_memfd(fd: RawFd, name: &str) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .is_some_and(|p| {
            p.strip_prefix("/memfd:")
                .is_some_and(|r| r.starts_with(name))
        })
}

/// Whether descriptor number `fd` is open.
pub(crate) fn fd_open(fd: RawFd) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
}

/// In a process `mpicr-restore` brought back: the environment the restorer handed over (the
/// new job's `MPICR_*` variables), read once; the descriptor is closed. `None` when there is
/// none (not restored, or already taken).
pub fn take_restart_env() -> Option<Vec<(String, String)>> {
    if !is_memfd(RESTART_ENV_FD, RESTART_ENV_NAME) {
        return None;
    }
    let fd = sys::take_restorer_fd(RESTART_ENV_FD);
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    rustix::fs::seek(&file, rustix::fs::SeekFrom::Start(0)).ok()?;
    (&mut file).take(MAX_ENV).read_to_end(&mut bytes).ok()?;
    Some(decode_env(&bytes))
}

/// Makes a memfd with `name` holding `bytes` (the restorer's side of the hand-over).
pub fn memfd_with(name: &str, bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC)?;
    let mut rest = bytes;
    while !rest.is_empty() {
        match rustix::io::write(&fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(fd)
}

/// Puts a placeholder on each of `fds`, which must all be free; call it first thing in a
/// restored process, for the numbers that objects in its memory still hold.
pub fn reserve_fds(fds: &[RawFd]) -> std::io::Result<()> {
    let placeholder = memfd_with(PLACEHOLDER_NAME, &[])?;
    let own = placeholder.as_raw_fd();
    for &fd in fds {
        if fd == own || is_memfd(fd, PLACEHOLDER_NAME) {
            continue;
        }
        if fd_open(fd) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} to reserve is in use"),
            ));
        }
        sys::dup_onto(placeholder.as_fd(), fd)?;
    }
    if fds.contains(&own) {
        // The memfd itself got one of the numbers: it stays open there as that placeholder.
        let _ = placeholder.into_raw_fd();
    }
    Ok(())
}

/// Puts the open file of `src` at number `fd`, which must hold a placeholder from
/// [`reserve_fds`] (close-on-exec).
pub fn replace_placeholder(src: BorrowedFd<'_>, fd: RawFd) -> std::io::Result<()> {
    if !is_memfd(fd, PLACEHOLDER_NAME) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("descriptor {fd} holds no placeholder"),
        ));
    }
    sys::dup_onto(src, fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_round_trips_and_skips_garbage() {
        let bytes = encode_env([("MPICR_RANK", "3"), ("MPICR_X", "a=b")]);
        let mut with_junk = bytes.clone();
        with_junk.extend_from_slice(b"novalue\0\xff=1\0");
        assert_eq!(
            decode_env(&with_junk),
            [
                ("MPICR_RANK".to_owned(), "3".to_owned()),
                ("MPICR_X".to_owned(), "a=b".to_owned())
            ]
        );
    }

    #[test]
    fn placeholders_are_reserved_and_replaced_but_nothing_else_is() {
        let free = 900;
        assert!(!fd_open(free));
        reserve_fds(&[free]).unwrap();
        assert!(is_memfd(free, PLACEHOLDER_NAME));
        let file = tempfile_like();
        replace_placeholder(file.as_fd(), free).unwrap();
        assert!(!is_memfd(free, PLACEHOLDER_NAME));
        // A number that holds a real file is neither reserved nor replaced.
        assert!(reserve_fds(&[file.as_raw_fd()]).is_err());
        assert!(replace_placeholder(file.as_fd(), free).is_err());
        let taken = sys::take_restorer_fd(free);
        drop(taken);
        assert!(!fd_open(free));
    }

    fn tempfile_like() -> OwnedFd {
        memfd_with("mpicr-test-file", b"x").unwrap()
    }
}
