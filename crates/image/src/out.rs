//! The image writer's output: a buffer in the scratch mapping that keeps the whole-file and the
//! current section's crc32c, and writes the file with direct I/O where the file system allows.
//!
//! Why direct I/O: a buffered `write` copies every page of the image into the page cache, and
//! on a rank that keeps the memory bus busy that copy was the largest cost of a checkpoint
//! (more than the fork's copy-on-write; bench/RESULTS.md, issue 5). With `O_DIRECT` the disk
//! reads the pages from the writer's memory, which is the rank's memory shared copy-on-write.
//!
//! Direct I/O asks that every write start at an aligned file offset, from aligned memory, with
//! an aligned length. The writer keeps three invariants for it: the bytes handed to the kernel
//! so far (`written`) are always a multiple of a page; the buffer is page-aligned; and a large
//! raw run's pages (page-aligned memory, whole pages) start on a page boundary of the file,
//! which the format (version 7) pads for. Only the file's last, partial page goes out buffered,
//! after `O_DIRECT` is cleared. A file system that refuses direct I/O (at the switch or at a
//! write), or a kernel that offers no io_uring, gets buffered writes, with a write-back hint
//! every few MiB.
//!
//! Direct writes are asynchronous (io_uring, up to [`DEPTH`] in flight: `ring`), so the disk
//! writes while the writer reads and checksums on, and the file's size is set ahead of them:
//! one write at a time, each past the file's end, reached about half the disk's speed here
//! (bench/RESULTS.md).

use std::os::fd::BorrowedFd;

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::capture::{WriteError, werr};
use crate::format::PAGE_SIZE;
use crate::ring::{Done, Ring};
use crate::stats::{Counters, Step, now_ns};
use crate::sys;

/// With buffered writes, what was written is handed to the disk's write-back in steps of this
/// many bytes, so that the disk works while memory is read (the final fsync then waits for the
/// last step only).
const WRITEBACK_STEP: u64 = 8 << 20;
/// Pages the rank rewrote since the fork that lie between pages it still shares go through
/// the page cache with them unless they are at least this many in a row: a run whose pages
/// alternate would otherwise be cut into requests of a page or two, each direct piece and
/// each copied piece its own system call and disk request (measured: 250-440 MiB/s for
/// 1 GiB with every fourth page rewritten, against 2 GiB/s all buffered).
const MIN_DIRECT_PAGES: usize = 32;
/// Direct writes in flight at once: the writer reads and checksums the next run while the disk
/// writes the last ones, and the disk gets more than one request to work on.
const DEPTH: usize = 4;
/// Hand-overs of copied bytes to write-back in flight at once through the ring; a step that
/// finds this many still running is left to the next (which then covers both).
const KICKS: usize = 4;
/// The tag of a hand-over to write-back (a write's tag is its slot).
const KICK_TAG: u64 = u64::MAX;
/// With direct I/O the file's size is set ahead of the writes in steps of this many bytes
/// (sparse): a direct write past the end of a file waits for itself on ext4, and costs a
/// journal update each time. The size is cut to the image's at the end.
const SIZE_STEP: u64 = 64 << 20;
const PAGE: usize = PAGE_SIZE as usize;
static ZEROS: [u8; PAGE] = [0; PAGE];

/// One write: a segment of the buffer, then pages the caller gave.
#[derive(Clone, Copy)]
struct Slot {
    busy: bool,
    /// The file offset and the two parts, as `iovec`s (the kernel reads them after the call
    /// that started the write returned).
    off: u64,
    iov: [libc::iovec; 2],
}

const IDLE: Slot = Slot {
    busy: false,
    off: 0,
    iov: [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2],
};

/// Buffered, checksummed output to the image file.
///
/// The buffer is [`DEPTH`] segments; bytes are appended to the current one, and a write takes
/// it (with a run's pages after it) and moves on to the next, which the writer waits for when
/// a write of it is still in flight. A segment is never changed while the kernel may read it.
pub(crate) struct Out<'a> {
    fd: BorrowedFd<'a>,
    /// The same file opened without `O_DIRECT`, for the pages that are copied.
    copied: BorrowedFd<'a>,
    /// Page-aligned, a multiple of `DEPTH` pages long.
    buf: &'a mut [u8],
    seg_len: usize,
    /// The current segment and the bytes appended to it.
    cur: usize,
    used: usize,
    slots: [Slot; DEPTH],
    /// Whether the file is open with `O_DIRECT`, and the ring its writes go through (which
    /// direct I/O needs).
    direct: bool,
    ring: Option<Ring>,
    /// The file's size as set ahead of the writes (0: never set).
    size_ahead: u64,
    /// The crc32c of the file up to the current section's start.
    file_crc: u32,
    /// The current section's crc32c and length so far.
    sec_crc: u32,
    sec_len: usize,
    /// Bytes appended (buffered or written).
    pos: u64,
    /// Bytes handed to the kernel (a multiple of a page until `finish`), and how many of them
    /// were handed to write-back (buffered: all of them; with direct I/O: the copied ones, of
    /// which `copied_unkicked` bytes were written since).
    written: u64,
    kicked: u64,
    copied_unkicked: u64,
    /// Hand-overs to write-back still running in the ring.
    kicks: usize,
    /// [`MIN_DIRECT_PAGES`] (smaller in tests, to mix both kinds of write in short runs).
    min_direct: usize,
    pub(crate) ctr: Counters<'a>,
}

impl<'a> Out<'a> {
    /// Output to the empty file `fd` through `buf` (page-aligned, a multiple of `DEPTH` pages
    /// long), with direct I/O when `direct` asks for it and the file system offers it;
    /// `copied` is the same file, opened on its own without `O_DIRECT`.
    pub(crate) fn new(
        fd: BorrowedFd<'a>,
        copied: BorrowedFd<'a>,
        buf: &'a mut [u8],
        ctr: Counters<'a>,
        direct: bool,
    ) -> Self {
        debug_assert!(whole_pages(buf) && buf.len().is_multiple_of(DEPTH * PAGE));
        // Without a ring (io_uring disabled, or filtered out as container runtimes do) direct
        // writes would each wait for the disk: buffered writes are faster then.
        let ring = (direct && sys::direct_io_fits(fd, PAGE))
            .then(|| Ring::new((DEPTH + KICKS) as u32))
            .flatten();
        let direct = ring.is_some() && set_direct(fd, true).is_ok();
        let seg_len = buf.len() / DEPTH;
        Out {
            fd,
            copied,
            buf,
            seg_len,
            cur: 0,
            used: 0,
            slots: [IDLE; DEPTH],
            direct,
            ring: ring.filter(|_| direct),
            size_ahead: 0,
            file_crc: 0,
            sec_crc: 0,
            sec_len: 0,
            pos: 0,
            written: 0,
            kicked: 0,
            copied_unkicked: 0,
            kicks: 0,
            min_direct: MIN_DIRECT_PAGES,
            ctr,
        }
    }

    /// Bytes appended so far: the offset in the file of the next byte.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Appends bytes of the current section (covered by its checksum and the file's). Each
    /// byte is checksummed once: the section's crc joins the file's at the section's end.
    pub(crate) fn put(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.sum(b);
        self.append(b)
    }

    /// Appends a raw run's pages (page-aligned memory, whole pages) at the next page boundary
    /// of the file, zero bytes before them, and writes them from where they are: no copy.
    ///
    /// Except the pages for which `shared(i)` holds (page `i` of `pages`), which are copied
    /// through the page cache: a direct write pins the pages it reads, and before pinning a
    /// private page that a forked writer still shares with its rank, the kernel gives the
    /// writer a copy of its own, which it keeps until it exits. A checkpoint of a rank that
    /// rewrites little would need as much memory again as the rank's (where the page cache
    /// is memory the kernel takes back as it needs). Fewer than [`MIN_DIRECT_PAGES`] other
    /// pages in a row among them are copied with them ([`pieces`]).
    ///
    /// # Safety
    /// `pages` must stay mapped and unchanged until [`Out::settle`] or [`Out::finish`]
    /// returns: the disk may read them after this call returned.
    pub(crate) unsafe fn put_pages(
        &mut self,
        pages: &[u8],
        shared: impl Fn(usize) -> bool,
    ) -> Result<(), WriteError> {
        debug_assert!(whole_pages(pages));
        let pad = (self.pos.next_multiple_of(PAGE_SIZE) - self.pos) as usize;
        self.put(&ZEROS[..pad])?;
        self.sum(pages);
        self.pos += pages.len() as u64;
        // `written` and `pos` are both on a page boundary now, so the segment holds whole
        // pages, and so does every part below.
        let n = pages.len() / PAGE;
        let direct = self.direct;
        pieces(
            n,
            |i| direct && shared(i),
            self.min_direct,
            |range, copy| {
                let part = &pages[range.start * PAGE..range.end * PAGE];
                if copy {
                    self.write_copied(part)
                } else {
                    // SAFETY: the caller's promise for `pages`.
                    unsafe { self.issue(part) }
                }
            },
        )
    }

    /// Writes the current segment's bytes (whole pages: a run's header and padding) and then
    /// `part` (whole pages, at `written`) through the page cache, in one call; hands them to
    /// write-back once enough has gathered.
    fn write_copied(&mut self, part: &[u8]) -> Result<(), WriteError> {
        let t = now_ns();
        let off = self.written;
        let n = std::mem::take(&mut self.used);
        debug_assert!(n.is_multiple_of(PAGE));
        let at = self.cur * self.seg_len;
        write_all(self.copied, [&self.buf[at..at + n], part], off)?;
        let len = (n + part.len()) as u64;
        self.written += len;
        self.ctr.wrote(len);
        self.ctr.copied(part.len() as u64);
        let t = self.ctr.add(Step::Write, t);
        self.copied_unkicked += len;
        if self.copied_unkicked >= WRITEBACK_STEP {
            self.kick(t)?;
        }
        Ok(())
    }

    /// Hands the bytes written since the last hand-over to write-back: through the ring when
    /// there is one, so that the writer does not wait while the block layer holds write-back
    /// back. The range holds directly written bytes too, which have no dirty pages.
    fn kick(&mut self, t: u64) -> Result<(), WriteError> {
        if self.ring.is_some() && self.kicks == KICKS {
            self.finished(false)?;
            if self.kicks == KICKS {
                return Ok(());
            }
        }
        let (off, len) = (self.kicked, self.written - self.kicked);
        match &self.ring {
            Some(ring)
                if ring
                    .submit_writeback(self.copied, off, len, KICK_TAG)
                    .is_ok() =>
            {
                self.kicks += 1;
            }
            _ => sys::start_writeback(self.copied, off, len),
        }
        self.kicked = self.written;
        self.copied_unkicked = 0;
        self.ctr.add(Step::Sync, t);
        Ok(())
    }

    /// Waits for every write in flight: memory given to [`Out::put_pages`] may change after.
    pub(crate) fn settle(&mut self) -> Result<(), WriteError> {
        while self.slots.iter().any(|s| s.busy) {
            self.reap()?;
        }
        Ok(())
    }

    /// Folds the section so far into the file checksum.
    fn fold(&mut self) {
        self.file_crc = crc32c::crc32c_combine(self.file_crc, self.sec_crc, self.sec_len);
        self.sec_len = 0;
    }

    /// The checksum of everything appended so far.
    pub(crate) fn file_crc(&mut self) -> u32 {
        self.fold();
        self.sec_crc = 0;
        self.file_crc
    }

    /// Appends bytes outside the sections (header, trailer, a section's own crc), covered by
    /// the file checksum only.
    pub(crate) fn put_file_only(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.file_crc = crc32c::crc32c_append(self.file_crc(), b);
        self.append(b)
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), WriteError> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), WriteError> {
        self.put(&v.to_le_bytes())
    }

    /// Starts a section.
    pub(crate) fn begin_section(&mut self) {
        self.fold();
        self.sec_crc = 0;
    }

    pub(crate) fn end_section(&mut self) -> Result<(), WriteError> {
        let c = self.sec_crc;
        self.put_file_only(&c.to_le_bytes())
    }

    /// Appends bytes no checksum covers (the trailer's own crc).
    pub(crate) fn append_unsummed(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.append(b)
    }

    /// Writes what is still buffered (the file's last, partial page goes out buffered), gives
    /// the file the image's size and makes it durable; gives back the writer's counters.
    pub(crate) fn finish(mut self) -> Result<Counters<'a>, WriteError> {
        self.settle()?;
        if self.direct && !self.used.is_multiple_of(PAGE) {
            self.leave_direct()?;
        }
        // SAFETY: no pages, only the segment, which is not touched again.
        unsafe { self.issue(&[]) }?;
        self.settle()?;
        if self.size_ahead > self.written {
            rustix::fs::ftruncate(self.fd, self.written)
                .map_err(werr("setting the image's size", self.written))?;
        }
        let t = now_ns();
        rustix::fs::fsync(self.fd).map_err(werr("fsync of the image", 0))?;
        self.ctr.add(Step::Sync, t);
        Ok(self.ctr)
    }

    fn sum(&mut self, b: &[u8]) {
        let t = (b.len() >= PAGE).then(now_ns);
        self.sec_crc = crc32c::crc32c_append(self.sec_crc, b);
        self.sec_len += b.len();
        if let Some(t) = t {
            self.ctr.add(Step::Compute, t);
        }
    }

    /// Copies `b` into the current segment, writing segments out as they fill.
    fn append(&mut self, mut b: &[u8]) -> Result<(), WriteError> {
        self.pos += b.len() as u64;
        while !b.is_empty() {
            if self.used == self.seg_len {
                // SAFETY: no pages, only the segment, which is not touched until its write
                // is reaped (`issue` waits for a segment before it becomes current again).
                unsafe { self.issue(&[]) }?;
            }
            let at = self.cur * self.seg_len + self.used;
            let k = b.len().min(self.seg_len - self.used);
            self.buf[at..at + k].copy_from_slice(&b[..k]);
            self.used += k;
            b = &b[k..];
        }
        Ok(())
    }

    /// Writes the current segment's bytes, then `pages`, as one request at `written`, and
    /// makes the next segment current once no write of it is in flight.
    ///
    /// # Safety
    /// As for [`Out::put_pages`].
    unsafe fn issue(&mut self, pages: &[u8]) -> Result<(), WriteError> {
        let n = std::mem::take(&mut self.used);
        let len = (n + pages.len()) as u64;
        if len == 0 {
            return Ok(());
        }
        let t = now_ns();
        let i = self.cur;
        let seg = self.buf[i * self.seg_len..].as_ptr();
        self.slots[i] = Slot {
            busy: true,
            off: self.written,
            iov: [
                libc::iovec {
                    iov_base: seg as *mut libc::c_void,
                    iov_len: n,
                },
                libc::iovec {
                    iov_base: pages.as_ptr() as *mut libc::c_void,
                    iov_len: pages.len(),
                },
            ],
        };
        if self.direct && self.written + len > self.size_ahead {
            // Only a hint: a file system that cannot set the size gets extending writes.
            let size = (self.written + len).next_multiple_of(SIZE_STEP);
            if rustix::fs::ftruncate(self.fd, size).is_ok() {
                self.size_ahead = size;
            }
        }
        let started = match (&self.ring, self.direct) {
            (Some(ring), true) => {
                let iov = &self.slots[i].iov;
                // SAFETY: the segment is not changed until this slot is reaped (a segment
                // becomes current again only once idle); the pages are the caller's promise.
                let r = unsafe { ring.submit_writev(self.fd, iov, self.written, i as u64) };
                r.is_ok()
            }
            _ => false,
        };
        if !started {
            self.complete(i, None)?;
        }
        self.written += len;
        self.ctr.wrote(len);
        let t = self.ctr.add(Step::Write, t);
        // Whole pages only: a page handed over half written would be written to disk twice.
        let end = self.written / PAGE_SIZE * PAGE_SIZE;
        if !self.direct && end - self.kicked >= WRITEBACK_STEP {
            sys::start_writeback(self.fd, self.kicked, end - self.kicked);
            self.kicked = end;
            self.ctr.add(Step::Sync, t);
        }
        self.cur = (i + 1) % DEPTH;
        while self.slots[self.cur].busy {
            self.reap()?;
        }
        Ok(())
    }

    /// Waits for at least one write in flight and completes the finished ones.
    fn reap(&mut self) -> Result<(), WriteError> {
        self.finished(true)
    }

    /// Completes the requests of the ring that have finished, after waiting for one if
    /// `wait`.
    fn finished(&mut self, wait: bool) -> Result<(), WriteError> {
        let t = now_ns();
        let mut events = [Done::default(); DEPTH + KICKS];
        let ring = self
            .ring
            .as_ref()
            .expect("requests are in flight only through the ring");
        let n = if wait {
            ring.reap(&mut events)
                .map_err(werr("waiting for the image's writes", self.written))?
        } else {
            ring.take(&mut events)
        };
        self.ctr.add(Step::Write, t);
        for e in &events[..n] {
            if e.tag == KICK_TAG {
                // Only a hint: the final fsync reports what went wrong.
                self.kicks -= 1;
            } else {
                self.complete(e.tag as usize, Some(e.res))?;
            }
        }
        Ok(())
    }

    /// Ends slot `i`'s write: `res` is what its asynchronous write did (bytes or -errno), None
    /// when it was not started. What is left of it is written synchronously; a write the file
    /// system refused for direct I/O is written again buffered.
    fn complete(&mut self, i: usize, res: Option<i64>) -> Result<(), WriteError> {
        let slot = self.slots[i];
        let total = slot.iov[0].iov_len + slot.iov[1].iov_len;
        let done = match res {
            Some(r) if r >= 0 => (r as usize).min(total),
            Some(r) if r == -i64::from(libc::EINVAL) && self.direct => {
                self.leave_direct()?;
                0
            }
            Some(r) => {
                return Err(werr("writing the image", slot.off)(
                    Errno::from_raw_os_error(-r as i32),
                ));
            }
            None => 0,
        };
        if done < total {
            let part = |v: &libc::iovec| {
                // SAFETY: the slot's parts are live: the segment is not changed until the
                // slot is idle, and the pages are the caller's promise (`issue`).
                unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) }
            };
            self.write_sync([part(&slot.iov[0]), part(&slot.iov[1])], slot.off, done)?;
        }
        self.slots[i].busy = false;
        Ok(())
    }

    /// Writes `parts` at `off`, the first `done` bytes of them already written; with direct
    /// I/O refused (`EINVAL`), goes on buffered.
    fn write_sync(&mut self, parts: [&[u8]; 2], off: u64, done: usize) -> Result<(), WriteError> {
        let skip = |n: usize| {
            let first = n.min(parts[0].len());
            [&parts[0][first..], &parts[1][n - first..]]
        };
        match write_all(self.fd, skip(done), off + done as u64) {
            Err(e) if self.direct && e.errno == Errno::INVAL => {
                self.leave_direct()?;
                let at = (e.addr - off) as usize;
                write_all(self.fd, skip(at), e.addr)
            }
            r => r,
        }
    }

    fn leave_direct(&mut self) -> Result<(), WriteError> {
        self.direct = false;
        set_direct(self.fd, false).map_err(werr("leaving direct I/O", self.written))
    }
}

/// Splits pages `0..n` into pieces written alike, in order: `each(range, copy)`. A page is
/// copied when `copy` says so; so are the pages of a stretch of fewer than `min_direct`
/// pages between or beside copied ones, which then join them in one piece. A run without a
/// copied page is one direct piece however short.
fn pieces<E>(
    n: usize,
    copy: impl Fn(usize) -> bool,
    min_direct: usize,
    mut each: impl FnMut(std::ops::Range<usize>, bool) -> Result<(), E>,
) -> Result<(), E> {
    let mut piece: Option<(usize, bool)> = None;
    let mut i = 0;
    while i < n {
        let class = copy(i);
        let mut j = i + 1;
        while j < n && copy(j) == class {
            j += 1;
        }
        let class = class || (j - i < min_direct && (i > 0 || j < n));
        match piece {
            Some((_, c)) if c == class => {}
            Some((start, c)) => {
                each(start..i, c)?;
                piece = Some((i, class));
            }
            None => piece = Some((i, class)),
        }
        i = j;
    }
    match piece {
        Some((start, c)) => each(start..n, c),
        None => Ok(()),
    }
}

/// Whether `b` is whole pages of page-aligned memory.
fn whole_pages(b: &[u8]) -> bool {
    (b.as_ptr() as usize).is_multiple_of(PAGE) && b.len().is_multiple_of(PAGE)
}

fn set_direct(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(fd, flags)
}

/// Writes `parts` one after the other at the file offset `pos`, with `pwritev` (no
/// allocation: two slices). An error names the file offset of the first byte not written.
fn write_all(fd: BorrowedFd<'_>, mut parts: [&[u8]; 2], mut pos: u64) -> Result<(), WriteError> {
    while !parts[1].is_empty() || !parts[0].is_empty() {
        let iov = [
            std::io::IoSlice::new(parts[0]),
            std::io::IoSlice::new(parts[1]),
        ];
        match rustix::io::pwritev(fd, &iov, pos) {
            Ok(0) => return Err(werr("writing the image", pos)(Errno::IO)),
            Ok(n) => {
                let first = n.min(parts[0].len());
                parts = [&parts[0][first..], &parts[1][n - first..]];
                pos += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(werr("writing the image", pos)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::stats::StatsPage;

    /// What `Out` writes for the steps of `write_steps`, built by hand: a 10-byte header, a
    /// 3-page run after its padding, 100 KiB that do not fit the buffer at once, a second run
    /// that starts right after the first (no padding), a 3-byte tail.
    fn expected(pages: &[u8]) -> Vec<u8> {
        let mut v = b"0123456789".to_vec();
        v.resize(PAGE, 0);
        v.extend_from_slice(pages);
        v.extend((0..100 << 10).map(|i| (i % 253) as u8));
        v.resize(v.len().next_multiple_of(PAGE), 0);
        v.extend_from_slice(pages);
        v.extend_from_slice(b"end");
        v
    }

    /// Which of the three pages are copied through the page cache.
    type Shared = fn(usize) -> bool;

    fn write_steps(out: &mut Out<'_>, pages: &[u8], shared: Shared) {
        out.put(b"0123456789").unwrap();
        // SAFETY: `pages` outlives `out`, and nothing changes it.
        unsafe { out.put_pages(pages, shared) }.unwrap();
        let big: Vec<u8> = (0..100 << 10).map(|i| (i % 253) as u8).collect();
        out.put(&big).unwrap();
        // SAFETY: as above.
        unsafe { out.put_pages(pages, shared) }.unwrap();
        out.append_unsummed(b"end").unwrap();
    }

    /// A page-aligned buffer and three pages of data, from mappings of their own.
    fn buffers() -> (sys::Scratch, sys::Scratch) {
        let mut buf = sys::Scratch::new(8 * PAGE).unwrap();
        let mut pages = sys::Scratch::new(3 * PAGE).unwrap();
        buf.bytes().fill(0xee);
        for (i, b) in pages.bytes().iter_mut().enumerate() {
            *b = (i % 249) as u8;
        }
        (buf, pages)
    }

    /// Writes the steps to a new file in the system's temporary directory (a file system
    /// with direct I/O on the machines we test on) and gives back the file's bytes, the
    /// checksum `Out` kept, and whether it was still writing directly before the tail.
    fn run(direct: bool, spoil: bool, shared: Shared) -> (Vec<u8>, u32, bool, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        let file = std::fs::File::create(&path).unwrap();
        let copied = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let (mut buf, mut pages) = buffers();
        let mut stats = StatsPage::new().unwrap();
        let mut out = Out::new(
            file.as_fd(),
            copied.as_fd(),
            buf.bytes(),
            stats.counters(),
            direct,
        );
        out.min_direct = 1;
        assert_eq!(
            out.direct,
            direct,
            "{}: the test needs a file system that takes O_DIRECT (ext4, xfs, btrfs, tmpfs) \
             and io_uring",
            path.display()
        );
        if spoil {
            // A page written from memory that is not aligned: the file system refuses it
            // with O_DIRECT, and the writer goes on buffered.
            let odd = &pages.bytes()[1..PAGE + 1];
            // SAFETY: `pages` outlives `out`.
            unsafe { out.issue(odd) }.unwrap();
            out.pos += PAGE as u64;
        }
        write_steps(&mut out, pages.bytes(), shared);
        let still_direct = out.direct;
        let crc = out.file_crc();
        out.finish().unwrap();
        let prefix = if spoil {
            pages.bytes()[1..PAGE + 1].to_vec()
        } else {
            Vec::new()
        };
        let bytes = std::fs::read(&path).unwrap();
        let mut want = prefix;
        want.extend_from_slice(&expected(pages.bytes()));
        (bytes, crc, still_direct, want)
    }

    #[test]
    fn direct_and_buffered_output_write_the_same_bytes() {
        let patterns: [(&str, Shared); 3] = [
            ("no page copied", |_| false),
            ("every page copied", |_| true),
            ("the middle page copied", |i| i == 1),
        ];
        for direct in [true, false] {
            for (what, shared) in patterns {
                let (bytes, _, still_direct, want) = run(direct, false, shared);
                assert_eq!(still_direct, direct);
                assert_eq!(bytes.len(), want.len());
                assert!(bytes == want, "direct {direct}, {what}: the file differs");
            }
        }
    }

    /// The pieces of a run as (first page, end, copied).
    fn planned(
        n: usize,
        copy: impl Fn(usize) -> bool,
        min_direct: usize,
    ) -> Vec<(usize, usize, bool)> {
        let mut v = Vec::new();
        pieces::<()>(n, copy, min_direct, |r, c| {
            v.push((r.start, r.end, c));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn short_stretches_of_direct_pages_join_the_copied_ones_beside_them() {
        assert_eq!(planned(0, |_| true, 32), []);
        assert_eq!(
            planned(5, |_| false, 32),
            [(0, 5, false)],
            "alone, however short"
        );
        assert_eq!(planned(256, |_| true, 32), [(0, 256, true)]);
        // Every fourth page rewritten by the rank: one copied piece, not 128.
        assert_eq!(planned(256, |i| i % 4 != 3, 32), [(0, 256, true)]);
        // A long stretch goes directly, short ones at either end join their neighbours.
        let copy = |i: usize| !(10..50).contains(&i) && i != 0 && i != 255;
        assert_eq!(
            planned(256, copy, 32),
            [(0, 10, true), (10, 50, false), (50, 256, true)]
        );
        // With a bound of one page nothing joins.
        assert_eq!(
            planned(6, |i| i == 2 || i == 3, 1),
            [(0, 2, false), (2, 4, true), (4, 6, false)]
        );
    }

    #[test]
    fn a_direct_write_the_file_system_refuses_is_written_buffered() {
        let (bytes, _, still_direct, want) = run(true, true, |i| i == 2);
        assert!(!still_direct, "the refused write did not end direct I/O");
        assert!(bytes == want, "the file differs");
    }

    #[test]
    fn the_checksum_covers_every_byte_but_the_unsummed_ones() {
        let (bytes, crc, _, _) = run(true, false, |i| i == 0);
        assert_eq!(crc, crc32c::crc32c(&bytes[..bytes.len() - 3]));
    }
}
