//! Blocking frame I/O over any byte stream, for the control connections.

use std::io::{self, Read, Write};

use thiserror::Error;

use crate::frame::{FrameError, HEADER_LEN, Header, TRAILER_LEN, decode_frame};
use crate::message::Message;

/// Why a message could not be read from a stream.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("the connection closed")]
    Closed,
    #[error("reading a control frame failed")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads exactly one message; the size cap is checked before the payload is read.
pub fn read_message(r: &mut impl Read) -> Result<Message, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ReadError::Closed),
        Err(e) => return Err(e.into()),
    }
    let header = Header::parse(&head)?;
    let mut frame = vec![0u8; header.frame_len()];
    frame[..HEADER_LEN].copy_from_slice(&head);
    r.read_exact(&mut frame[HEADER_LEN..])?;
    let parsed = decode_frame(&frame)?.expect("the whole frame was read");
    debug_assert_eq!(frame.len(), HEADER_LEN + parsed.payload.len() + TRAILER_LEN);
    Ok(Message::decode(parsed.header.command, parsed.payload)?)
}

/// Writes one message as a single frame.
pub fn write_message(w: &mut impl Write, message: &Message) -> io::Result<()> {
    w.write_all(&message.encode())?;
    w.flush()
}
