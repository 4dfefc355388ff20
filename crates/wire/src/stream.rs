//! Blocking frame I/O over any byte stream, for the control connections.

use std::io::{self, Read, Write};
use std::ops::Range;

use thiserror::Error;

use crate::frame::{
    Command, FrameError, HEADER_LEN, Header, TRAILER_LEN, decode_frame, frame_header,
};
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
    let mut frame = Vec::new();
    let (command, payload) = read_frame_into(r, &mut frame)?;
    // The header was checked: bytes 4..6 are a version this build reads.
    let version = u16::from_le_bytes([frame[4], frame[5]]);
    Ok(Message::decode_version(version, command, &frame[payload])?)
}

/// Reads exactly one frame into `frame` and checks it as [`read_message`] does (size cap before
/// the payload is read, version, checksum); returns its command and where its payload is.
/// The buffer is reused from call to call, so a stream of large PART_DATA frames (whose payload
/// is the bytes themselves) costs no allocation and no copy besides the read.
pub fn read_frame_into(
    r: &mut impl Read,
    frame: &mut Vec<u8>,
) -> Result<(Command, Range<usize>), ReadError> {
    let mut head = [0u8; HEADER_LEN];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ReadError::Closed),
        Err(e) => return Err(e.into()),
    }
    let header = Header::parse(&head)?;
    frame.resize(header.frame_len(), 0);
    frame[..HEADER_LEN].copy_from_slice(&head);
    r.read_exact(&mut frame[HEADER_LEN..])?;
    let parsed = decode_frame(frame)?.expect("the whole frame was read");
    debug_assert_eq!(frame.len(), HEADER_LEN + parsed.payload.len() + TRAILER_LEN);
    Ok((
        parsed.header.command,
        HEADER_LEN..HEADER_LEN + parsed.payload.len(),
    ))
}

/// Writes one frame of `command` around `payload` without copying the payload into a frame
/// buffer (header, payload and checksum in three writes): for large PART_DATA frames.
pub fn write_frame(w: &mut impl Write, command: Command, payload: &[u8]) -> io::Result<()> {
    let head = frame_header(command, payload.len());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), payload);
    w.write_all(&head)?;
    w.write_all(payload)?;
    w.write_all(&crc.to_le_bytes())
}

/// Writes one message as a single frame.
pub fn write_message(w: &mut impl Write, message: &Message) -> io::Result<()> {
    w.write_all(&message.encode())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_written_around_a_payload_read_back_into_one_buffer() {
        let big = vec![7u8; 1 << 20];
        let mut wire = Vec::new();
        write_frame(&mut wire, Command::PartData, &big).unwrap();
        assert_eq!(wire, crate::encode_frame(Command::PartData, &big));
        write_frame(&mut wire, Command::PartData, b"tail").unwrap();
        write_message(&mut wire, &Message::NodeShutdown).unwrap();
        let mut r = &wire[..];
        let mut frame = Vec::new();
        let (command, payload) = read_frame_into(&mut r, &mut frame).unwrap();
        assert_eq!(command, Command::PartData);
        assert_eq!(&frame[payload], &big[..]);
        let (_, payload) = read_frame_into(&mut r, &mut frame).unwrap();
        assert_eq!(&frame[payload], b"tail");
        assert_eq!(read_message(&mut r).unwrap(), Message::NodeShutdown);
        assert!(matches!(
            read_frame_into(&mut r, &mut frame),
            Err(ReadError::Closed)
        ));
        // A flipped payload byte is refused.
        let mut bad = crate::encode_frame(Command::PartData, b"abc");
        bad[HEADER_LEN] ^= 1;
        assert!(matches!(
            read_frame_into(&mut &bad[..], &mut frame),
            Err(ReadError::Frame(_))
        ));
    }
}
