//! Which unix sockets are connected to which, from the kernel's socket diagnostics
//! (`NETLINK_SOCK_DIAG`, the `unix_diag` family that `ss -x` reads): nothing else names a
//! unix socket's peer. Messages are in the machine's byte order (netlink's convention).

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink};

/// What the kernel says of one unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnixSocket {
    pub inode: u32,
    /// The inode of the socket it is connected to (0: none).
    pub peer: u32,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`.
    pub kind: u8,
    /// `RCV_SHUTDOWN` (1) and `SEND_SHUTDOWN` (2).
    pub shutdown: u8,
    /// Whether it has an address (a path or an abstract name).
    pub named: bool,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_PEER: u32 = 4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
/// `nlmsghdr` and `unix_diag_msg`.
const HEADER: usize = 16;
const MSG: usize = 16;
/// Most bytes of replies read: a dump of far more sockets than any machine has.
const MAX_REPLY: usize = 64 << 20;

/// Every unix socket of this network namespace.
pub(crate) fn unix_sockets() -> std::io::Result<Vec<UnixSocket>> {
    let sock = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )?;
    let mut req = Vec::with_capacity(HEADER + 24);
    req.extend_from_slice(&((HEADER + 24) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    req.push(libc::AF_UNIX as u8);
    req.extend_from_slice(&[0, 0, 0]); // protocol, padding
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    req.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // no cookie
    rustix::net::send(&sock, &req, SendFlags::empty())?;

    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0;
    loop {
        let n = rustix::net::recv(&sock, &mut buf, RecvFlags::empty())?.0;
        read += n;
        if n == 0 || read > MAX_REPLY {
            return Err(invalid("the socket diagnostics reply ended early"));
        }
        if parse_reply(&buf[..n], &mut out)? {
            return Ok(out);
        }
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Adds the sockets of one datagram of replies to `out`; true at the end of the dump.
fn parse_reply(mut b: &[u8], out: &mut Vec<UnixSocket>) -> std::io::Result<bool> {
    let u16_at = |b: &[u8], o: usize| u16::from_ne_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    while b.len() >= HEADER {
        let len = u32_at(b, 0) as usize;
        if len < HEADER || len > b.len() {
            return Err(invalid("a socket diagnostics message has a bad length"));
        }
        match u16_at(b, 4) {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = if len >= HEADER + 4 {
                    i32::from_ne_bytes([b[16], b[17], b[18], b[19]])
                } else {
                    -libc::EIO
                };
                return Err(std::io::Error::from_raw_os_error(-code));
            }
            SOCK_DIAG_BY_FAMILY if len >= HEADER + MSG => {
                let m = &b[HEADER..len];
                let mut s = UnixSocket {
                    inode: u32_at(m, 4),
                    peer: 0,
                    kind: m[1],
                    shutdown: 0,
                    named: false,
                };
                let mut attrs = &m[MSG..];
                while attrs.len() >= 4 {
                    let alen = u16_at(attrs, 0) as usize;
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    let data = &attrs[4..alen];
                    match u16_at(attrs, 2) {
                        UNIX_DIAG_PEER if data.len() >= 4 => s.peer = u32_at(data, 0),
                        UNIX_DIAG_SHUTDOWN if !data.is_empty() => s.shutdown = data[0],
                        UNIX_DIAG_NAME => s.named = !data.is_empty(),
                        _ => {}
                    }
                    attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
                }
                out.push(s);
            }
            _ => {}
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inode(fd: &impl AsRawFd) -> u32 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let link = link.to_str().unwrap();
        link["socket:[".len()..link.len() - 1].parse().unwrap()
    }

    #[test]
    fn a_socketpair_is_found_with_its_peer_and_shutdown() {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::shutdown(&a, rustix::net::Shutdown::Write).unwrap();
        let all = unix_sockets().expect("the kernel has unix_diag");
        let (ia, ib) = (inode(&a), inode(&b));
        let sa = all.iter().find(|s| s.inode == ia).expect("a is listed");
        let sb = all.iter().find(|s| s.inode == ib).expect("b is listed");
        assert_eq!((sa.peer, sb.peer), (ib, ia));
        assert_eq!(sa.kind, libc::SOCK_STREAM as u8);
        assert_eq!((sa.shutdown, sb.shutdown), (2, 1));
        assert!(!sa.named && !sb.named);
    }

    #[test]
    fn an_error_reply_is_an_error_and_garbage_is_refused() {
        let mut err = Vec::new();
        err.extend_from_slice(&20u32.to_ne_bytes());
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&[0; 10]);
        err.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        let e = parse_reply(&err, &mut Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let mut bad = err.clone();
        bad[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_reply(&bad, &mut Vec::new()).is_err());
    }
}
