//! The rank's end of its control connection, read without blocking from inside progress.
//!
//! The stream itself stays in blocking mode (the finalize and abort paths write to a clone of
//! it); reads here use `MSG_DONTWAIT` so that a progress round never waits for the coordinator.

use std::os::unix::net::UnixStream;

use rustix::net::{RecvFlags, recv};
use wire::stream::write_message;
use wire::{FrameError, Message, decode_frame};

/// Why the control connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the coordinator closed the control connection")]
    Closed,
    #[error("reading from the coordinator failed")]
    Io(#[from] std::io::Error),
    #[error("the coordinator sent a malformed frame")]
    Frame(#[from] FrameError),
}

/// A control connection read a frame at a time without blocking (also the preloaded runtime's,
/// `crates/preload`).
#[derive(Debug)]
pub struct ControlLink {
    stream: UnixStream,
    inbuf: Vec<u8>,
}

impl ControlLink {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            inbuf: Vec::new(),
        }
    }

    /// Every complete message that has arrived.
    pub fn poll(&mut self) -> Result<Vec<Message>, ControlError> {
        let mut chunk = [0u8; 4096];
        loop {
            match recv(&self.stream, &mut chunk, RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Err(ControlError::Closed),
                Ok((n, _)) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
        let mut out = Vec::new();
        let mut used = 0;
        while let Some(frame) = decode_frame(&self.inbuf[used..])? {
            out.push(Message::decode_version(
                frame.header.version,
                frame.header.command,
                frame.payload,
            )?);
            used += frame.len;
        }
        self.inbuf.drain(..used);
        Ok(out)
    }

    /// Whether part of a frame has arrived and is held until the rest does (after [`poll`]):
    /// the preloaded runtime does not execute another program before it has the whole frame,
    /// since the bytes held here do not survive `exec`.
    ///
    /// [`poll`]: Self::poll
    pub fn has_partial_frame(&self) -> bool {
        !self.inbuf.is_empty()
    }

    /// Drops a partial frame of a connection that is gone (a rank restored from an image).
    pub fn forget_input(&mut self) {
        self.inbuf.clear();
    }

    pub fn send(&mut self, message: &Message) -> Result<(), ControlError> {
        Ok(write_message(&mut self.stream, message)?)
    }

    /// The connection, for a poll that must wake when the coordinator writes.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.stream)
    }

    /// The connection's descriptor number.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.stream)
    }
}
