//! A non-blocking TCP link.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};

use crate::link::LinkError;

/// A connected, non-blocking TCP stream with Nagle's algorithm off.
#[derive(Debug)]
pub struct TcpLink {
    stream: TcpStream,
}

impl TcpLink {
    /// Takes over a connected stream and makes it non-blocking.
    pub fn new(stream: TcpStream) -> std::io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(Self { stream })
    }

    pub(crate) fn write(&mut self, bufs: &[&[u8]]) -> Result<usize, LinkError> {
        let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        loop {
            match self.stream.write_vectored(&slices) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Err(LinkError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) fn read(&mut self, dst: &mut [u8]) -> Result<usize, LinkError> {
        if dst.is_empty() {
            return Ok(0);
        }
        loop {
            match self.stream.read(dst) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(LinkError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for TcpLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}
