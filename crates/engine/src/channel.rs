//! The engine's state for one peer: its link, what waits to be written, what is being read.

use std::collections::VecDeque;

use transport::Link;

use crate::buffer::SendBuf;
use crate::packet::{HEADER_LEN, Header};

/// Payload bytes queued behind a header.
#[derive(Debug)]
pub(crate) enum Payload {
    None,
    /// A copy the engine owns (eager messages that did not fit the link at once).
    Owned(Vec<u8>),
    /// The user's buffer of a rendezvous send, valid until `on_complete` completes.
    Borrowed(SendBuf),
}

impl Payload {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Self::None => &[],
            Self::Owned(v) => v,
            Self::Borrowed(b) => b.bytes(),
        }
    }
}

/// A packet waiting to be written, `done` bytes of header-then-payload already out.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub header: [u8; HEADER_LEN],
    pub payload: Payload,
    pub done: usize,
    /// The send request that completes when the last byte is written.
    pub on_complete: Option<u64>,
}

/// Where the body of the packet being read goes.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Into the buffer of this receive request (bytes past its end are discarded).
    Recv(u64),
    /// Into a new buffer for a message nobody has asked for yet; `after_marker` when it must be
    /// held for a checkpoint, `slot` when a checkpoint records it.
    Unexpected {
        header: Header,
        source: u32,
        data: Vec<u8>,
        after_marker: bool,
        slot: Option<usize>,
    },
}

#[derive(Debug)]
pub(crate) enum Input {
    Header {
        bytes: [u8; HEADER_LEN],
        got: usize,
    },
    Body {
        sink: Sink,
        total: usize,
        got: usize,
    },
}

impl Input {
    pub(crate) fn fresh() -> Self {
        Self::Header {
            bytes: [0; HEADER_LEN],
            got: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Channel {
    pub link: Link,
    pub out: VecDeque<Outgoing>,
    pub input: Input,
    /// The peer closed its end (it finalized or died); nothing more will arrive.
    pub closed: bool,
    /// While an image checkpoint drains: how many packets at the front of `out` may still be
    /// written (everything queued before this rank's marker, and the marker). Packets queued
    /// after the marker wait in `out` (so in the image) until the capture.
    pub frozen: Option<usize>,
    /// The peer's marker of the image checkpoint being drained has been read: nothing more is
    /// read from this link until the capture.
    pub paused: bool,
}

impl Channel {
    pub(crate) fn new(link: Link) -> Self {
        Self {
            link,
            out: VecDeque::new(),
            input: Input::fresh(),
            closed: false,
            frozen: None,
            paused: false,
        }
    }

    /// Whether packets wait in `out` that may be written now (none may while an image
    /// checkpoint's drain holds them behind the marker).
    pub(crate) fn wants_to_write(&self) -> bool {
        !self.closed && !self.out.is_empty() && self.frozen.is_none_or(|n| n > 0)
    }

    /// Whether a progress round would move something on this link now: bytes have arrived, or
    /// queued packets may be written and the link has room for them. A rank looks once more
    /// before it sleeps on its doorbell: the peer that made room rang the bell only if it saw
    /// the rank asleep already.
    pub(crate) fn ready(&self) -> bool {
        self.link.has_input() || (self.wants_to_write() && self.link.has_room())
    }
}

#[cfg(test)]
mod tests {
    use transport::LoopbackLink;

    use super::*;

    fn queued() -> Outgoing {
        Outgoing {
            header: [0; HEADER_LEN],
            payload: Payload::None,
            done: 0,
            on_complete: None,
        }
    }

    #[test]
    fn queued_output_is_work_unless_the_drain_holds_it_or_the_peer_is_gone() {
        let mut c = Channel::new(Link::Loopback(LoopbackLink::default()));
        assert!(!c.ready(), "nothing queued, nothing arrived");
        c.out.push_back(queued());
        assert!(c.ready(), "queued, and the link has room");
        c.frozen = Some(0);
        assert!(!c.ready(), "held behind the marker");
        c.frozen = Some(1);
        assert!(c.ready(), "the marker itself may still go");
        c.closed = true;
        assert!(!c.ready(), "the peer is gone");
        c.closed = false;
        c.out.clear();
        c.link.write(&[b"x"]).unwrap();
        assert!(c.ready(), "a byte arrived");
    }
}
