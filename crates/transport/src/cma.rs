//! Cross-memory attach: copy a peer's buffer straight into ours with `process_vm_readv`.
//!
//! Large messages between ranks of one node use this single copy instead of streaming through
//! a ring (two copies). The kernel checks that we may ptrace the peer (same user, and no Yama
//! restriction here); when it refuses, the caller falls back to streaming.

use std::io;

/// Reads `dst.len()` bytes at address `remote` in process `pid` into `dst`.
pub fn read_from(pid: u32, remote: u64, dst: &mut [u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < dst.len() {
        let local = libc::iovec {
            iov_base: dst[done..].as_mut_ptr().cast(),
            iov_len: dst.len() - done,
        };
        let remote_iov = libc::iovec {
            iov_base: (remote as usize + done) as *mut libc::c_void,
            iov_len: dst.len() - done,
        };
        let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: `local` describes the still-unfilled tail of `dst`, which we borrow mutably
        // for the whole call; the kernel writes only inside it. `remote_iov` names memory of
        // another process: the kernel validates it and reports EFAULT instead of touching ours.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote_iov, 1, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_our_own_memory() {
        let src: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut dst = vec![0u8; src.len()];
        super::read_from(std::process::id(), src.as_ptr() as u64, &mut dst).unwrap();
        assert_eq!(src, dst);
    }
}
