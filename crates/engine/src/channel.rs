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
}
