//! The data-plane packet header, the same on every kind of link.
//!
//! ```text
//! 0  kind u8 | 1 reserved (3 bytes) | 4 context u32 | 8 tag i32 | 12 reserved u32
//! 16 len u64 | 24 sender request u64 | 32 receiver request u64 | 40 address u64
//! ```
//! Little-endian, 48 bytes, followed by `len` payload bytes for EAGER and DATA.

use thiserror::Error;

pub(crate) const HEADER_LEN: usize = 48;

/// What a packet is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A whole small message; the payload follows.
    Eager = 1,
    /// Request to send a large message of `len` bytes; `address` is non-zero when the receiver
    /// may read it directly from the sender's memory.
    Rts = 2,
    /// The receiver matched an RTS and accepts `len` bytes into request `rreq`.
    Cts = 3,
    /// The bytes of a large message for `rreq`; the payload follows.
    Data = 4,
    /// The receiver has read `sreq`'s buffer directly; the send is complete.
    Fin = 5,
    /// Chandy–Lamport marker of checkpoint `sreq` (the epoch): the sender's local snapshot is
    /// taken; everything it sent on this link before is in the snapshot.
    Marker = 6,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a data-plane packet has unknown kind {0}; the stream is corrupt")]
pub struct BadPacket(pub u8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub ctx: u32,
    pub tag: i32,
    pub len: u64,
    pub sreq: u64,
    pub rreq: u64,
    pub addr: u64,
}

impl Header {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            ctx: 0,
            tag: 0,
            len: 0,
            sreq: 0,
            rreq: 0,
            addr: 0,
        }
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.kind as u8;
        b[4..8].copy_from_slice(&self.ctx.to_le_bytes());
        b[8..12].copy_from_slice(&self.tag.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..32].copy_from_slice(&self.sreq.to_le_bytes());
        b[32..40].copy_from_slice(&self.rreq.to_le_bytes());
        b[40..48].copy_from_slice(&self.addr.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, BadPacket> {
        let kind = match b[0] {
            1 => Kind::Eager,
            2 => Kind::Rts,
            3 => Kind::Cts,
            4 => Kind::Data,
            5 => Kind::Fin,
            6 => Kind::Marker,
            k => return Err(BadPacket(k)),
        };
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Self {
            kind,
            ctx: u32_at(4),
            tag: u32_at(8) as i32,
            len: u64_at(16),
            sreq: u64_at(24),
            rreq: u64_at(32),
            addr: u64_at(40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_kind() {
        let h = Header {
            kind: Kind::Rts,
            ctx: 7,
            tag: -3,
            len: 1 << 40,
            sreq: 9,
            rreq: 11,
            addr: 13,
        };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        let mut b = h.encode();
        b[0] = 0;
        assert_eq!(Header::decode(&b), Err(BadPacket(0)));
    }
}
