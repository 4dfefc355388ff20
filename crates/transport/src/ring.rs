//! A single-producer single-consumer byte ring in a shared file.
//!
//! Layout (little-endian, see `docs/data-plane.md`):
//! ```text
//! 0     magic "MPCRRNG1" (u64)    8   capacity in bytes (u64, a power of two)
//! 64    head: bytes ever written (u64, written by the producer only)
//! 128   tail: bytes ever read    (u64, written by the consumer only)
//! 4096  data[capacity]
//! ```
//! Head and tail live on separate cache lines so the two sides do not bounce one line.
//! The producer publishes bytes with a release store of `head`; the consumer frees them with a
//! release store of `tail`. Each side caches the other's counter and reloads it only when the
//! cached value says the ring is full or empty.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::Ordering;

use thiserror::Error;

use crate::mapping::{SharedMapping, create_mapped, open_mapped};

const MAGIC: u64 = u64::from_le_bytes(*b"MPCRRNG1");
const HEAD: usize = 64;
const TAIL: usize = 128;
const DATA: usize = 4096;

/// Why a ring could not be created or attached.
#[derive(Debug, Error)]
pub enum RingError {
    #[error("cannot create or open the ring file {path}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot map the ring file {path}")]
    Map {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an mpicr ring (bad magic or capacity)")]
    Invalid { path: String },
}

/// One side of a ring. The side that calls [`Ring::create`] is the consumer by convention of
/// the engine, but the type itself only assumes that one process writes and one reads.
#[derive(Debug)]
pub struct Ring {
    map: SharedMapping,
    capacity: u64,
    /// The producer's last view of `tail`, or the consumer's last view of `head`.
    cached_other: Cell<u64>,
    /// This side's own counter (`head` for the producer, `tail` for the consumer), which only
    /// this side writes: keeping it here saves reading back a line the other side polls.
    own: Cell<Option<u64>>,
}

impl Ring {
    /// Creates a new ring file of `capacity` bytes (rounded up to a power of two, at least 4 KiB),
    /// readable and writable by this user only. Fails if the file exists.
    pub fn create(path: &Path, capacity: usize) -> Result<Self, RingError> {
        let capacity = capacity.max(4096).next_power_of_two();
        let map = create_mapped(path, DATA + capacity)?;
        map.atomic_u64(8).store(capacity as u64, Ordering::Relaxed);
        map.atomic_u64(0).store(MAGIC, Ordering::Release);
        Ok(Self {
            map,
            capacity: capacity as u64,
            cached_other: Cell::new(0),
            own: Cell::new(None),
        })
    }

    /// Attaches to a ring another process created.
    pub fn open(path: &Path) -> Result<Self, RingError> {
        let map = open_mapped(path, |len| len > DATA as u64)?;
        let magic = map.atomic_u64(0).load(Ordering::Acquire);
        let capacity = map.atomic_u64(8).load(Ordering::Relaxed);
        if magic != MAGIC
            || !capacity.is_power_of_two()
            || DATA as u64 + capacity != map.len() as u64
        {
            return Err(RingError::Invalid {
                path: path.display().to_string(),
            });
        }
        Ok(Self {
            map,
            capacity,
            cached_other: Cell::new(0),
            own: Cell::new(None),
        })
    }

    /// Bytes this ring holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    fn head(&self) -> &std::sync::atomic::AtomicU64 {
        self.map.atomic_u64(HEAD)
    }

    fn tail(&self) -> &std::sync::atomic::AtomicU64 {
        self.map.atomic_u64(TAIL)
    }

    /// Producer: copies as much of `src` as fits and returns how much that was.
    pub fn write(&self, src: &[u8]) -> usize {
        self.write_vectored(&[src])
    }

    /// Producer: copies as much of the concatenation of `bufs` as fits, publishing it with one
    /// store of `head` (a header and a small payload reach the consumer together).
    #[inline]
    pub fn write_vectored(&self, bufs: &[&[u8]]) -> usize {
        let want: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let head = self
            .own
            .get()
            .unwrap_or_else(|| self.head().load(Ordering::Relaxed));
        let mut free = self.capacity - (head - self.cached_other.get());
        if free < want {
            self.cached_other.set(self.tail().load(Ordering::Acquire));
            free = self.capacity - (head - self.cached_other.get());
        }
        let mut at = head;
        for b in bufs {
            let n = (b.len() as u64).min(free - (at - head)) as usize;
            if n == 0 {
                break;
            }
            let start = (at % self.capacity) as usize;
            let first = n.min(self.capacity as usize - start);
            self.map.write_bytes(DATA + start, &b[..first]);
            if first < n {
                self.map.write_bytes(DATA, &b[first..n]);
            }
            at += n as u64;
        }
        if at != head {
            self.head().store(at, Ordering::Release);
            self.own.set(Some(at));
        }
        (at - head) as usize
    }

    /// Consumer: copies up to `dst.len()` available bytes out and returns how many.
    #[inline]
    pub fn read(&self, dst: &mut [u8]) -> usize {
        let tail = self
            .own
            .get()
            .unwrap_or_else(|| self.tail().load(Ordering::Relaxed));
        let mut avail = self.cached_other.get() - tail;
        if avail < dst.len() as u64 {
            self.cached_other.set(self.head().load(Ordering::Acquire));
            avail = self.cached_other.get() - tail;
        }
        let n = (dst.len() as u64).min(avail) as usize;
        if n == 0 {
            return 0;
        }
        let start = (tail % self.capacity) as usize;
        let first = n.min(self.capacity as usize - start);
        self.map.read_bytes(DATA + start, &mut dst[..first]);
        if first < n {
            self.map.read_bytes(DATA, &mut dst[first..n]);
        }
        self.tail().store(tail + n as u64, Ordering::Release);
        self.own.set(Some(tail + n as u64));
        n
    }

    /// Consumer: whether any byte is waiting, without copying.
    pub fn has_data(&self) -> bool {
        self.head().load(Ordering::Acquire) != self.tail().load(Ordering::Relaxed)
    }

    /// Producer: whether a write would take at least one byte now, without writing.
    pub fn has_room(&self) -> bool {
        let head = self
            .own
            .get()
            .unwrap_or_else(|| self.head().load(Ordering::Relaxed));
        head - self.tail().load(Ordering::Acquire) < self.capacity
    }

    /// Producer: whether the consumer has read everything written so far.
    pub fn is_drained(&self) -> bool {
        self.tail().load(Ordering::Acquire) == self.head().load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_has_room_again_once_the_reader_took_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let rx = Ring::create(&path, 4096).unwrap();
        let tx = Ring::open(&path).unwrap();
        assert!(tx.has_room());
        assert_eq!(tx.write(&[7u8; 5000]), 4096);
        assert!(!tx.has_room());
        let mut one = [0u8; 1];
        assert_eq!(rx.read(&mut one), 1);
        assert!(tx.has_room());
        assert_eq!(tx.write(&[7u8; 10]), 1);
        assert!(!tx.has_room());
    }

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let rx = Ring::create(&path, 4096).unwrap();
        let tx = Ring::open(&path).unwrap();
        let mut sent = 0u64;
        let mut got = 0u64;
        let mut out = vec![0u8; 1000];
        while got < 200_000 {
            let chunk: Vec<u8> = (0..777).map(|i| ((sent + i) % 251) as u8).collect();
            sent += tx.write(&chunk) as u64;
            let n = rx.read(&mut out);
            for (i, b) in out[..n].iter().enumerate() {
                assert_eq!(*b, ((got + i as u64) % 251) as u8);
            }
            got += n as u64;
        }
    }

    #[test]
    fn a_full_ring_refuses_more_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let rx = Ring::create(&path, 4096).unwrap();
        let tx = Ring::open(&path).unwrap();
        assert_eq!(tx.write(&[1u8; 5000]), 4096);
        assert_eq!(tx.write(&[1u8; 1]), 0);
        assert!(!tx.is_drained());
        let mut out = [0u8; 4096];
        assert_eq!(rx.read(&mut out), 4096);
        assert!(tx.is_drained());
        std::fs::write(dir.path().join("junk"), vec![7u8; 8192]).unwrap();
        assert!(matches!(
            Ring::open(&dir.path().join("junk")),
            Err(RingError::Invalid { .. })
        ));
        assert!(
            Ring::create(&path, 4096).is_err(),
            "an existing file is never reused"
        );
    }
}
