//! One link to one peer: whatever carries the bytes, the engine sees a non-blocking stream.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

use thiserror::Error;

use crate::doorbell::Doorbell;
use crate::ring::Ring;
use crate::tcp::TcpLink;

/// Why a link stopped carrying bytes.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("the connection failed")]
    Io(#[from] std::io::Error),
}

/// A link over two shared-memory rings on this node.
#[derive(Debug)]
pub struct ShmLink {
    tx: Ring,
    rx: Ring,
    peer_bell: Doorbell,
    peer_pid: u32,
}

impl ShmLink {
    /// `tx` carries bytes to the peer, `rx` from it; `peer_bell` wakes the peer.
    pub fn new(tx: Ring, rx: Ring, peer_bell: Doorbell, peer_pid: u32) -> Self {
        Self {
            tx,
            rx,
            peer_bell,
            peer_pid,
        }
    }
}

/// A link to this same rank: bytes written are read back in order.
#[derive(Debug, Default)]
pub struct LoopbackLink {
    queue: VecDeque<u8>,
}

/// A byte link of any kind.
#[derive(Debug)]
pub enum Link {
    Shm(ShmLink),
    Tcp(TcpLink),
    Loopback(LoopbackLink),
}

impl Link {
    /// Writes as much of the concatenation of `bufs` as the link takes now, without blocking.
    #[inline]
    pub fn write(&mut self, bufs: &[&[u8]]) -> Result<usize, LinkError> {
        match self {
            Self::Shm(l) => {
                let total = l.tx.write_vectored(bufs);
                if total > 0 {
                    l.peer_bell.ring();
                }
                Ok(total)
            }
            Self::Tcp(l) => l.write(bufs),
            Self::Loopback(l) => {
                let mut total = 0;
                for b in bufs {
                    l.queue.extend(b.iter());
                    total += b.len();
                }
                Ok(total)
            }
        }
    }

    /// Tells the peer that bytes were read (a peer waiting for room in a full ring may sleep).
    /// Called once after a burst of reads rather than after each, as it costs a fence.
    #[inline]
    pub fn after_reading(&self) {
        if let Self::Shm(l) = self {
            l.peer_bell.ring();
        }
    }

    /// Reads up to `dst.len()` bytes that have arrived, without blocking; 0 means none yet.
    /// Call [`Link::after_reading`] once done reading for now.
    #[inline]
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, LinkError> {
        match self {
            Self::Shm(l) => Ok(l.rx.read(dst)),
            Self::Tcp(l) => l.read(dst),
            Self::Loopback(l) => {
                // Two slice copies (the queue may wrap around) rather than a byte at a time.
                let n = dst.len().min(l.queue.len());
                let (front, back) = l.queue.as_slices();
                let k = n.min(front.len());
                dst[..k].copy_from_slice(&front[..k]);
                dst[k..n].copy_from_slice(&back[..n - k]);
                l.queue.drain(..n);
                Ok(n)
            }
        }
    }

    /// Whether bytes are waiting to be read (cheap; used before deciding to sleep).
    pub fn has_input(&self) -> bool {
        match self {
            Self::Shm(l) => l.rx.has_data(),
            Self::Tcp(_) => false,
            Self::Loopback(l) => !l.queue.is_empty(),
        }
    }

    /// Whether a write would take bytes now (cheap; used before deciding to sleep with output
    /// queued). A socket says so through `poll` instead, so this is false for TCP.
    pub fn has_room(&self) -> bool {
        match self {
            Self::Shm(l) => l.tx.has_room(),
            Self::Tcp(_) => false,
            Self::Loopback(_) => true,
        }
    }

    /// The pid whose memory [`crate::cma`] can read for this peer, when the peer is on this node.
    pub fn local_peer_pid(&self) -> Option<u32> {
        match self {
            Self::Shm(l) => Some(l.peer_pid),
            Self::Tcp(_) | Self::Loopback(_) => None,
        }
    }

    /// The socket to poll, for links that are sockets.
    pub fn pollable(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Self::Tcp(l) => Some(l.as_fd()),
            Self::Shm(_) | Self::Loopback(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_keeps_order() {
        let mut l = Link::Loopback(LoopbackLink::default());
        assert_eq!(l.write(&[b"ab", b"cd"]).unwrap(), 4);
        let mut out = [0u8; 3];
        assert_eq!(l.read(&mut out).unwrap(), 3);
        assert_eq!(&out, b"abc");
        assert!(l.has_input());
    }

    #[test]
    fn loopback_reads_across_the_queue_s_wrap_around() {
        let mut l = Link::Loopback(LoopbackLink::default());
        let mut next = 0u8;
        let mut expect = 0u8;
        let mut out = [0u8; 7];
        for round in 0..200 {
            let chunk: Vec<u8> = (0..5 + round % 4)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            l.write(&[&chunk]).unwrap();
            let n = l.read(&mut out).unwrap();
            for b in &out[..n] {
                expect = expect.wrapping_add(1);
                assert_eq!(*b, expect);
            }
        }
    }
}
