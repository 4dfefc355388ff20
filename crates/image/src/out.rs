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
//! write) gets buffered writes, with a write-back hint every few MiB.

use std::os::fd::BorrowedFd;

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::capture::{WriteError, werr};
use crate::format::PAGE_SIZE;
use crate::stats::{Counters, Step, now_ns};
use crate::sys;

/// With buffered writes, what was written is handed to the disk's write-back in steps of this
/// many bytes, so that the disk works while memory is read (the final fsync then waits for the
/// last step only).
const WRITEBACK_STEP: u64 = 8 << 20;
const PAGE: usize = PAGE_SIZE as usize;
static ZEROS: [u8; PAGE] = [0; PAGE];

/// Buffered, checksummed output to the image file.
pub(crate) struct Out<'a> {
    fd: BorrowedFd<'a>,
    /// Page-aligned, a multiple of a page long.
    buf: &'a mut [u8],
    used: usize,
    /// Whether the file is open with `O_DIRECT`.
    direct: bool,
    /// The crc32c of the file up to the current section's start.
    file_crc: u32,
    /// The current section's crc32c and length so far.
    sec_crc: u32,
    sec_len: usize,
    /// Bytes appended (buffered or written).
    pos: u64,
    /// Bytes handed to the kernel (a multiple of a page until `finish`), and how many of them
    /// were handed to write-back.
    written: u64,
    kicked: u64,
    pub(crate) ctr: Counters<'a>,
}

impl<'a> Out<'a> {
    /// Output to the empty file `fd` through `buf` (page-aligned, whole pages), with direct
    /// I/O when `direct` asks for it and the file system offers it.
    pub(crate) fn new(
        fd: BorrowedFd<'a>,
        buf: &'a mut [u8],
        ctr: Counters<'a>,
        direct: bool,
    ) -> Self {
        debug_assert!(whole_pages(buf));
        let direct = direct && sys::direct_io_fits(fd, PAGE) && set_direct(fd, true).is_ok();
        Out {
            fd,
            buf,
            used: 0,
            direct,
            file_crc: 0,
            sec_crc: 0,
            sec_len: 0,
            pos: 0,
            written: 0,
            kicked: 0,
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
    pub(crate) fn put_pages(&mut self, pages: &[u8]) -> Result<(), WriteError> {
        debug_assert!(whole_pages(pages));
        let pad = (self.pos.next_multiple_of(PAGE_SIZE) - self.pos) as usize;
        self.put(&ZEROS[..pad])?;
        self.sum(pages);
        // `written` and `pos` are both on a page boundary now, so the buffer holds whole pages.
        let n = std::mem::take(&mut self.used);
        self.pos += pages.len() as u64;
        self.write(n, pages)
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

    /// Writes what is still buffered (the file's last, partial page goes out buffered) and
    /// makes the whole file durable; gives back the writer's counters.
    pub(crate) fn finish(mut self) -> Result<Counters<'a>, WriteError> {
        if self.direct && !self.used.is_multiple_of(PAGE) {
            self.direct = false;
            set_direct(self.fd, false).map_err(werr("leaving direct I/O", self.written))?;
        }
        let n = std::mem::take(&mut self.used);
        self.write(n, &[])?;
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

    /// Copies `b` into the buffer, writing the buffer out whenever it is full.
    fn append(&mut self, mut b: &[u8]) -> Result<(), WriteError> {
        self.pos += b.len() as u64;
        while !b.is_empty() {
            if self.used == self.buf.len() {
                let n = std::mem::take(&mut self.used);
                self.write(n, &[])?;
            }
            let k = b.len().min(self.buf.len() - self.used);
            self.buf[self.used..self.used + k].copy_from_slice(&b[..k]);
            self.used += k;
            b = &b[k..];
        }
        Ok(())
    }

    /// Writes the buffer's first `n` bytes, then `pages`, in one system call (a run's header
    /// goes out with its pages, not as a write of its own).
    fn write(&mut self, n: usize, pages: &[u8]) -> Result<(), WriteError> {
        let parts = [&self.buf[..n], pages];
        let len = (n + pages.len()) as u64;
        let t = now_ns();
        match write_all(self.fd, parts, self.written) {
            // A file system may take `O_DIRECT` and still refuse a write with it: what it
            // refused is written again buffered (a partial direct write leaves `parts`
            // unwritten from a page boundary on, which `write_all` reported by offset).
            Err(e) if self.direct && e.errno == Errno::INVAL => {
                self.direct = false;
                set_direct(self.fd, false).map_err(werr("leaving direct I/O", self.written))?;
                let done = (e.addr - self.written) as usize;
                let first = done.min(n);
                let rest = [&self.buf[first..n], &pages[done - first..]];
                write_all(self.fd, rest, e.addr)?;
            }
            r => r?,
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
        Ok(())
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

/// Writes `parts` one after the other at the file's offset `pos`, with `writev` (no
/// allocation: two slices). An error names the file offset of the first byte not written.
fn write_all(fd: BorrowedFd<'_>, mut parts: [&[u8]; 2], mut pos: u64) -> Result<(), WriteError> {
    while !parts[1].is_empty() || !parts[0].is_empty() {
        let iov = [
            std::io::IoSlice::new(parts[0]),
            std::io::IoSlice::new(parts[1]),
        ];
        match rustix::io::writev(fd, &iov) {
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

    fn write_steps(out: &mut Out<'_>, pages: &[u8]) {
        out.put(b"0123456789").unwrap();
        out.put_pages(pages).unwrap();
        let big: Vec<u8> = (0..100 << 10).map(|i| (i % 253) as u8).collect();
        out.put(&big).unwrap();
        out.put_pages(pages).unwrap();
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
    fn run(direct: bool, spoil: bool) -> (Vec<u8>, u32, bool, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        let file = std::fs::File::create(&path).unwrap();
        let (mut buf, mut pages) = buffers();
        let mut stats = StatsPage::new().unwrap();
        let mut out = Out::new(file.as_fd(), buf.bytes(), stats.counters(), direct);
        assert_eq!(
            out.direct,
            direct,
            "{}: the test needs a file system that takes O_DIRECT (ext4, xfs, btrfs, tmpfs)",
            path.display()
        );
        if spoil {
            // A page written from memory that is not aligned: the file system refuses it
            // with O_DIRECT, and the writer goes on buffered.
            let odd = &pages.bytes()[1..PAGE + 1];
            out.write(0, odd).unwrap();
            out.pos += PAGE as u64;
        }
        write_steps(&mut out, pages.bytes());
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
        for direct in [true, false] {
            let (bytes, _, still_direct, want) = run(direct, false);
            assert_eq!(still_direct, direct);
            assert_eq!(bytes.len(), want.len());
            assert!(bytes == want, "direct {direct}: the file differs");
        }
    }

    #[test]
    fn a_direct_write_the_file_system_refuses_is_written_buffered() {
        let (bytes, _, still_direct, want) = run(true, true);
        assert!(!still_direct, "the refused write did not end direct I/O");
        assert!(bytes == want, "the file differs");
    }

    #[test]
    fn the_checksum_covers_every_byte_but_the_unsummed_ones() {
        let (bytes, crc, _, _) = run(true, false);
        assert_eq!(crc, crc32c::crc32c(&bytes[..bytes.len() - 3]));
    }
}
