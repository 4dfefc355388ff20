//! The io_uring instance the image writer's direct writes go through: a few vectored writes in
//! flight while the writer reads and checksums on, and the write-back of what it copied
//! through the page cache.
//!
//! Why io_uring and not Linux native AIO, which did the same before: tearing down an AIO
//! context waits for two RCU grace periods, in `io_destroy` or in the exit of the process
//! that owns one, about 32 ms on this machine whatever was written (a third of the time a
//! 100 MiB image took). An io_uring instance is torn down in the background once its
//! descriptor is closed.
//!
//! Only system calls and two shared mappings of the ring's descriptor, nothing on the heap:
//! usable by the forked image writer after its memory map was read (the mappings are not in
//! that map, so they are not written to the image).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::io_uring::{
    IORING_OFF_SQ_RING, IORING_OFF_SQES, IoringEnterFlags, IoringFeatureFlags, IoringOp,
    io_uring_cqe, io_uring_params, io_uring_ptr, io_uring_sqe, io_uring_user_data,
};
use rustix::mm::{MapFlags, ProtFlags};

/// A finished write.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Done {
    /// The request's tag.
    pub(crate) tag: u64,
    /// Bytes written, or a negative errno.
    pub(crate) res: i64,
}

/// A shared mapping of the ring's descriptor, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, offset: u64) -> Result<Self, Errno> {
        // SAFETY: a new shared mapping of the ring at an address the kernel chooses aliases
        // no memory of ours.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                fd,
                offset,
            )
        }?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The 32-bit word at byte `off`, which the kernel reads or writes concurrently.
    fn word(&self, off: u32) -> &AtomicU32 {
        let off = off as usize;
        assert!(
            off + 4 <= self.len && off.is_multiple_of(4),
            "a ring offset out of place"
        );
        // SAFETY: inside the mapping (asserted), which lives as long as `self`, and aligned
        // (the mapping is page-aligned); the kernel accesses the word atomically too.
        unsafe { AtomicU32::from_ptr(self.ptr.wrapping_add(off).cast()) }
    }

    /// Entry `i` of an array of `T` at byte `off`, if it lies inside the mapping.
    fn entry<T>(&self, off: usize, i: usize) -> *mut T {
        let at = off + i * std::mem::size_of::<T>();
        assert!(
            at + std::mem::size_of::<T>() <= self.len,
            "a ring entry out of place"
        );
        self.ptr.wrapping_add(at).cast()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and nothing refers to it once its owner is dropped.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// An io_uring instance for writes, one submitter, no kernel polling thread.
#[derive(Debug)]
pub(crate) struct Ring {
    /// The submission and completion rings (one mapping) and the submission entries.
    rings: Mapping,
    sqes: Mapping,
    params: io_uring_params,
    fd: OwnedFd,
}

impl Ring {
    /// A ring for `depth` writes at once, or None when the kernel offers none that fits
    /// (io_uring compiled out or disabled, or older than 5.5: the rings must share one
    /// mapping, and a request's iovecs must be read when it is submitted).
    pub(crate) fn new(depth: u32) -> Option<Self> {
        let mut params = io_uring_params::default();
        // SAFETY: io_uring_setup only writes the offsets and features into `params`.
        let fd = unsafe { rustix::io_uring::io_uring_setup(depth, &mut params) }.ok()?;
        let needed = IoringFeatureFlags::SINGLE_MMAP | IoringFeatureFlags::SUBMIT_STABLE;
        if !params.features.contains(needed) {
            return None;
        }
        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off.cqes as usize
            + params.cq_entries as usize * std::mem::size_of::<io_uring_cqe>();
        let rings = Mapping::new(fd.as_fd(), sq_len.max(cq_len), IORING_OFF_SQ_RING).ok()?;
        let sqes = Mapping::new(
            fd.as_fd(),
            params.sq_entries as usize * std::mem::size_of::<io_uring_sqe>(),
            IORING_OFF_SQES,
        )
        .ok()?;
        Some(Self {
            rings,
            sqes,
            params,
            fd,
        })
    }

    /// Starts writing `iov` at `offset` of `fd`, tagged `tag`. Fails with `AGAIN` when the
    /// ring is full.
    ///
    /// # Safety
    /// The memory `iov` points to must stay mapped and unchanged until the write's
    /// completion is reaped (the kernel reads it while the caller goes on); `iov` itself is
    /// read before this call returns.
    pub(crate) unsafe fn submit_writev(
        &self,
        fd: BorrowedFd<'_>,
        iov: &[libc::iovec],
        offset: u64,
        tag: u64,
    ) -> Result<(), Errno> {
        let mut sqe = request(IoringOp::Writev, fd, offset, iov.len() as u32, tag);
        sqe.addr_or_splice_off_in.addr = io_uring_ptr::new(iov.as_ptr() as *mut _);
        // SAFETY: the entry names `iov` and the memory it describes: the caller's promise.
        unsafe { self.submit(sqe) }
    }

    /// Starts the write-back of `len` bytes of `fd` from `off` (`sync_file_range` with
    /// `SYNC_FILE_RANGE_WRITE`), tagged `tag`. The kernel runs it on a worker of its own, so
    /// the caller does not wait while the block layer holds back write-back (its throttling
    /// made the image writer wait about 20 ms per 100 MiB image in `sync_file_range` calls
    /// of its own, measured with `perf sched`).
    pub(crate) fn submit_writeback(
        &self,
        fd: BorrowedFd<'_>,
        off: u64,
        len: u64,
        tag: u64,
    ) -> Result<(), Errno> {
        let len = u32::try_from(len).map_err(|_| Errno::INVAL)?;
        let mut sqe = request(IoringOp::SyncFileRange, fd, off, len, tag);
        sqe.op_flags.sync_range_flags = libc::SYNC_FILE_RANGE_WRITE;
        // SAFETY: the entry names no memory.
        unsafe { self.submit(sqe) }
    }

    /// Puts `sqe` on the submission ring and hands it to the kernel.
    ///
    /// # Safety
    /// Memory the entry names must stay valid as long as its request needs it.
    unsafe fn submit(&self, sqe: io_uring_sqe) -> Result<(), Errno> {
        let off = &self.params.sq_off;
        let (head, tail) = (self.rings.word(off.head), self.rings.word(off.tail));
        let t = tail.load(Ordering::Relaxed);
        if t.wrapping_sub(head.load(Ordering::Acquire)) >= self.params.sq_entries {
            return Err(Errno::AGAIN);
        }
        let slot = t & (self.params.sq_entries - 1);
        // SAFETY: `entry` checked that the entry lies inside the mapping (and the mapping is
        // page-aligned, so it is aligned); the kernel reads it only once the tail has passed
        // it (below), and has finished with it since the head passed it.
        unsafe { self.sqes.entry::<io_uring_sqe>(0, slot as usize).write(sqe) };
        self.rings
            .word(off.array + slot * 4)
            .store(slot, Ordering::Relaxed);
        tail.store(t.wrapping_add(1), Ordering::Release);
        loop {
            // SAFETY: the entry's memory is the caller's promise.
            match unsafe {
                rustix::io_uring::io_uring_enter(&self.fd, 1, 0, IoringEnterFlags::empty())
            } {
                Ok(1) => return Ok(()),
                Err(Errno::INTR) => {}
                // Not consumed: without a polling thread the kernel takes entries only in
                // io_uring_enter, so the entry can be taken back and the work done otherwise.
                Ok(_) | Err(_) if head.load(Ordering::Acquire) == t => {
                    tail.store(t, Ordering::Release);
                    return Err(Errno::AGAIN);
                }
                Ok(_) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for at least one request to finish and puts up to `done.len()` finished ones
    /// there; returns how many.
    pub(crate) fn reap(&self, done: &mut [Done]) -> Result<usize, Errno> {
        loop {
            let n = self.take(done);
            if n > 0 {
                return Ok(n);
            }
            // SAFETY: no submission; GETEVENTS only waits for a completion.
            match unsafe {
                rustix::io_uring::io_uring_enter(&self.fd, 0, 1, IoringEnterFlags::GETEVENTS)
            } {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the finished requests the completion ring holds into `done`, without waiting;
    /// returns how many.
    pub(crate) fn take(&self, done: &mut [Done]) -> usize {
        let off = &self.params.cq_off;
        let (head, tail) = (self.rings.word(off.head), self.rings.word(off.tail));
        let mut h = head.load(Ordering::Relaxed);
        let t = tail.load(Ordering::Acquire);
        let mask = self.params.cq_entries - 1;
        let mut n = 0;
        while h != t && n < done.len() {
            let at = self
                .rings
                .entry::<io_uring_cqe>(off.cqes as usize, (h & mask) as usize);
            // SAFETY: `entry` checked that it lies inside the mapping (at an offset the
            // kernel gave, so aligned); the kernel wrote it before it moved the tail past it
            // (the acquire load above) and does not touch it until the head has passed it.
            let cqe = unsafe { at.read() };
            done[n] = Done {
                tag: cqe.user_data.u64_(),
                res: i64::from(cqe.res),
            };
            n += 1;
            h = h.wrapping_add(1);
        }
        head.store(h, Ordering::Release);
        n
    }
}

/// A submission entry for `op` on `fd` at file offset `off`, with its length field and tag.
fn request(op: IoringOp, fd: BorrowedFd<'_>, off: u64, len: u32, tag: u64) -> io_uring_sqe {
    let mut sqe = io_uring_sqe {
        opcode: op,
        fd: fd.as_raw_fd(),
        user_data: io_uring_user_data::from_u64(tag),
        ..Default::default()
    };
    sqe.off_or_addr2.off = off;
    sqe.len.len = len;
    sqe
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn vectored_writes_land_where_they_were_aimed() {
        let Some(ring) = Ring::new(4) else {
            panic!("this kernel offers no io_uring: the image writer would write synchronously")
        };
        let mut file = tempfile::tempfile().unwrap();
        let parts: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'a' + i; 1000]).collect();
        let mut done = [Done::default(); 4];
        let mut finished = Vec::new();
        for (i, pair) in parts.chunks(2).enumerate() {
            let iov = [&pair[0], &pair[1]].map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut _,
                iov_len: p.len(),
            });
            // SAFETY: `parts` outlives the ring's use of it (every write is reaped below).
            unsafe { ring.submit_writev(file.as_fd(), &iov, i as u64 * 2000, i as u64) }.unwrap();
        }
        while finished.len() < 3 {
            let n = ring.reap(&mut done).unwrap();
            finished.extend_from_slice(&done[..n]);
        }
        finished.sort_by_key(|d| d.tag);
        assert!(finished.iter().all(|d| d.res == 2000), "{finished:?}");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert!(bytes == parts.concat(), "the file differs");
    }
}
