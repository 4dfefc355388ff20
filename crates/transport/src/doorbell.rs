//! The futex word a rank sleeps on when it has nothing to do.
//!
//! Layout: `seq` (u32) at 0, `sleeping` (u32) at 64. The owner sets `sleeping`, checks its
//! links once more, and waits while `seq` is unchanged. A peer that wrote to the owner (or made
//! room in a ring the owner is writing to) calls [`Doorbell::ring`], which bumps `seq` and wakes
//! the owner only when `sleeping` is set. Both sides use sequentially consistent operations, so
//! either the owner's last check sees the peer's bytes or the peer sees `sleeping` and wakes it.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

use rustix::thread::futex;

use crate::mapping::{SharedMapping, create_mapped, open_mapped};
use crate::ring::RingError;

const SEQ: usize = 0;
const SLEEPING: usize = 64;
const LEN: usize = 4096;

/// A doorbell in a shared file.
#[derive(Debug)]
pub struct Doorbell {
    map: SharedMapping,
}

impl Doorbell {
    /// Creates the owner's doorbell file (mode 0600). Fails if it exists.
    pub fn create(path: &Path) -> Result<Self, RingError> {
        Ok(Self {
            map: create_mapped(path, LEN)?,
        })
    }

    /// Attaches to a peer's doorbell.
    pub fn open(path: &Path) -> Result<Self, RingError> {
        Ok(Self {
            map: open_mapped(path, |len| len == LEN as u64)?,
        })
    }

    fn seq(&self) -> &AtomicU32 {
        self.map.atomic_u32(SEQ)
    }

    fn sleeping(&self) -> &AtomicU32 {
        self.map.atomic_u32(SLEEPING)
    }

    /// Peer side: wakes the owner if it sleeps. Call after the bytes are published.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping().load(Ordering::SeqCst) != 0 {
            self.seq().fetch_add(1, Ordering::SeqCst);
            let _ = futex::wake(self.seq(), futex::Flags::empty(), u32::MAX);
        }
    }

    /// Owner side: announces sleep, runs `recheck`, and sleeps up to `timeout` unless `recheck`
    /// found work or a peer rang in between. Returns what `recheck` returned.
    pub fn sleep_unless(&self, timeout: Duration, recheck: impl FnOnce() -> bool) -> bool {
        self.sleeping().store(1, Ordering::SeqCst);
        let seen = self.seq().load(Ordering::SeqCst);
        let found = recheck();
        if !found {
            let ts = rustix::time::Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            // EAGAIN (seq moved), EINTR (a signal) and ETIMEDOUT all just mean "look again".
            let _ = futex::wait(self.seq(), futex::Flags::empty(), seen, Some(&ts));
        }
        self.sleeping().store(0, Ordering::SeqCst);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_ring_wakes_the_sleeper_early() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bell");
        let owner = Doorbell::create(&path).unwrap();
        let peer = Doorbell::open(&path).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            for _ in 0..100 {
                peer.ring();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let start = Instant::now();
        owner.sleep_unless(Duration::from_secs(30), || false);
        assert!(start.elapsed() < Duration::from_secs(30));
        t.join().unwrap();
    }

    #[test]
    fn found_work_means_no_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Doorbell::create(&dir.path().join("bell")).unwrap();
        assert!(owner.sleep_unless(Duration::from_secs(3600), || true));
    }
}
