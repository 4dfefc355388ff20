//! What the descriptors that are not files hold, read at capture from `/proc/self/fdinfo`:
//! eventfds, self-pipes, timerfds, signalfds and epoll instances (docs/image-format.md, "Open
//! descriptors"). Each reader returns None when the kernel does not say enough to restore the
//! descriptor exactly: such a descriptor stays [`FdKind::Other`], reported as not restored at
//! the restart, rather than restored wrong.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::format::{
    EPOLL_LINK, EVENTFD_LINK, EpollWatch, FdEntry, FdKind, FdState, MAX_PIPE_BYTES,
    MAX_SOCKET_BYTES, SIGNALFD_LINK, SOCKET_LINK_PREFIX, TIMERFD_LINK, TimerfdState,
    UnixStreamState,
};
use crate::unixdiag::{self, UnixSocket};
use crate::{procfs, sys};

/// What a descriptor that is not a file holds, for its [`FdEntry`].
pub(crate) struct Special {
    pub kind: FdKind,
    pub flags: u32,
    pub offset: u64,
    pub state: FdState,
    /// For an epoll instance, the inode of each watched file (as its fdinfo says), to check
    /// that the watched descriptor numbers still name those files.
    pub watched_inodes: Vec<u64>,
}

/// The state of the eventfd, timerfd, signalfd or epoll instance whose `/proc/self/fd` link
/// is `link`, from its fdinfo `info` and `open` flags; None for any other descriptor.
pub(crate) fn special(link: &str, info: &str, open_flags: u32) -> Option<Special> {
    let nonblock = open_flags & libc::O_NONBLOCK as u32;
    let plain = |kind, state| Special {
        kind,
        flags: nonblock,
        offset: 0,
        state,
        watched_inodes: Vec::new(),
    };
    match link {
        EVENTFD_LINK => {
            let (flags, count) = eventfd_state(info, open_flags)?;
            Some(Special {
                offset: count,
                flags,
                ..plain(FdKind::Eventfd, FdState::None)
            })
        }
        TIMERFD_LINK => Some(plain(FdKind::Timerfd, FdState::Timer(timerfd_state(info)?))),
        SIGNALFD_LINK => {
            let mask = u64::from_str_radix(procfs::keyed(info, "sigmask")?, 16).ok()?;
            Some(plain(FdKind::Signalfd, FdState::Signals(mask)))
        }
        EPOLL_LINK => {
            let (watches, inodes) = epoll_watches(info)?;
            Some(Special {
                flags: 0,
                watched_inodes: inodes,
                ..plain(FdKind::Epoll, FdState::Watches(watches))
            })
        }
        _ => None,
    }
}

/// A timerfd's clock, flags and timer from its fdinfo (`clockid`, `ticks`, `settime flags`
/// in octal, `it_value` and `it_interval` as `(seconds, nanoseconds)`; the value is the time
/// left).
fn timerfd_state(info: &str) -> Option<TimerfdState> {
    let ns = |key| -> Option<u64> {
        let v = procfs::keyed(info, key)?;
        let (s, n) = v.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
        let s: u64 = s.trim().parse().ok()?;
        let n: u64 = n.trim().parse().ok()?;
        s.checked_mul(1_000_000_000)?.checked_add(n)
    };
    Some(TimerfdState {
        clock: procfs::keyed(info, "clockid")?.parse().ok()?,
        settime_flags: u32::from_str_radix(procfs::keyed(info, "settime flags")?, 8).ok()?,
        value_ns: ns("it_value")?,
        interval_ns: ns("it_interval")?,
        ticks: procfs::keyed(info, "ticks")?.parse().ok()?,
    })
}

/// An epoll instance's interest list from its fdinfo lines
/// `tfd: N events: HEX data: HEX  pos:N ino:HEX sdev:HEX`, with each watched file's inode.
fn epoll_watches(info: &str) -> Option<(Vec<EpollWatch>, Vec<u64>)> {
    let mut watches = Vec::new();
    let mut inodes = Vec::new();
    for line in info.lines().filter(|l| l.starts_with("tfd:")) {
        let mut fields = line.split_whitespace();
        let mut after = |key: &str| -> Option<&str> {
            fields.find(|f| f.starts_with(key))?;
            fields.next()
        };
        let fd = after("tfd:")?.parse().ok()?;
        let events = u32::from_str_radix(after("events:")?, 16).ok()?;
        let data = u64::from_str_radix(after("data:")?, 16).ok()?;
        let ino = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("ino:"))
            .and_then(|v| u64::from_str_radix(v, 16).ok())?;
        watches.push(EpollWatch { fd, events, data });
        inodes.push(ino);
    }
    Some((watches, inodes))
}

/// Turns back into [`FdKind::Other`] each epoll instance that watches a descriptor the image
/// does not restore, or a number that no longer names the file it watches (closed, or
/// reused, since it was added: the interest list keeps the number it was added with).
/// Repeated until nothing changes, as an epoll instance may watch another one.
pub(crate) fn keep_restorable_epolls(fds: &mut [FdEntry], watched: &[(RawFd, Vec<u64>)]) {
    loop {
        let mut changed = false;
        for (epfd, inodes) in watched {
            let Some(i) = fds
                .iter()
                .position(|f| f.fd == *epfd && f.kind == FdKind::Epoll)
            else {
                continue;
            };
            let FdState::Watches(watches) = &fds[i].state else {
                continue;
            };
            let restorable = watches.iter().zip(inodes).all(|(w, &ino)| {
                fds.iter()
                    .any(|f| f.fd == w.fd && f.kind != FdKind::Other && f.identity.ino == ino)
            });
            if !restorable {
                fds[i].kind = FdKind::Other;
                fds[i].state = FdState::None;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Makes the pipes whose read and write ends are both open in this process (self-pipes)
/// restorable: every end becomes [`FdKind::Pipe`] with the pipe's capacity as its offset, and
/// its first read end carries the bytes the pipe holds. Any other pipe (one end shared with
/// another process, stdio) stays [`FdKind::Other`]: what the other side does cannot be saved.
pub(crate) fn mark_self_pipes(fds: &mut [FdEntry]) {
    let access = |f: &FdEntry| f.flags & libc::O_ACCMODE as u32;
    let mut names: Vec<String> = fds
        .iter()
        .filter(|f| f.fd > 2 && f.kind == FdKind::Other && f.path.starts_with("pipe:["))
        .map(|f| f.path.clone())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let ends = || fds.iter().filter(|f| f.fd > 2 && f.path == name);
        let Some(reader) = ends().find(|f| access(f) == libc::O_RDONLY as u32) else {
            continue;
        };
        if !ends().any(|f| access(f) == libc::O_WRONLY as u32) {
            continue;
        }
        let Some((capacity, contents)) = pipe_contents(reader.fd) else {
            continue;
        };
        let first_reader = reader.fd;
        for f in fds.iter_mut().filter(|f| f.fd > 2 && f.path == name) {
            f.kind = FdKind::Pipe;
            f.offset = capacity;
            if f.fd == first_reader {
                f.contents = contents.clone();
            }
        }
    }
}

/// The capacity of the pipe read at `fd` and a copy of the bytes it holds, taken with `tee`
/// (the program still finds them); None when the pipe cannot be read that way or holds more
/// than an image keeps.
fn pipe_contents(fd: RawFd) -> Option<(u64, Vec<u8>)> {
    use rustix::pipe::{PipeFlags, SpliceFlags};
    // A descriptor of our own on the same pipe, so that nothing here needs the program's.
    let reader = rustix::fs::open(
        format!("/proc/self/fd/{fd}").as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let capacity = rustix::pipe::fcntl_getpipe_size(&reader).ok()?;
    if capacity > MAX_PIPE_BYTES as usize {
        return None;
    }
    let (copy_r, copy_w) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).ok()?;
    rustix::pipe::fcntl_setpipe_size(&copy_w, capacity).ok()?;
    let held = match rustix::pipe::tee(&reader, &copy_w, capacity, SpliceFlags::NONBLOCK) {
        Ok(n) => n,
        Err(Errno::AGAIN) => 0,
        Err(_) => return None,
    };
    let mut contents = vec![0u8; held];
    std::io::Read::read_exact(&mut File::from(copy_r), &mut contents).ok()?;
    Some((capacity as u64, contents))
}

/// An eventfd's flags (`EFD_SEMAPHORE`, `EFD_NONBLOCK`) and counter from its fdinfo, given
/// its `open` flags. None when the kernel does not say whether it counts as a semaphore
/// (before Linux 6.6): such a descriptor is not restored rather than restored wrong.
fn eventfd_state(info: &str, open_flags: u32) -> Option<(u32, u64)> {
    let count = u64::from_str_radix(procfs::keyed(info, "eventfd-count")?, 16).ok()?;
    let semaphore = match procfs::keyed(info, "eventfd-semaphore")? {
        "0" => 0,
        "1" => libc::EFD_SEMAPHORE as u32,
        _ => return None,
    };
    Some((semaphore | (open_flags & libc::EFD_NONBLOCK as u32), count))
}

/// Makes the socketpairs of this process restorable: each connected, unnamed unix stream
/// socket whose other end is open here too (above fd 2) becomes [`FdKind::UnixStream`] with
/// its peer, shutdowns and send buffer, and its first descriptor carries the bytes waiting to
/// be read from it, copied with `MSG_PEEK` (the program still reads them). Any other socket
/// stays [`FdKind::Other`], as does a pair whose queue cannot be copied whole: one holding
/// descriptors or credentials in flight, more than an image keeps, or read with a peek
/// offset of the program's.
pub(crate) fn mark_socketpairs(fds: &mut [FdEntry]) {
    let inode_of = |f: &FdEntry| {
        let rest = f.path.strip_prefix(SOCKET_LINK_PREFIX)?.strip_suffix(']')?;
        (f.fd > 2 && f.kind == FdKind::Other).then(|| rest.parse::<u64>().ok())?
    };
    // A pair needs two unix stream sockets here; the dump (which runs in the rank's stall and
    // lists every unix socket of the machine) is skipped otherwise: an MPI rank's sockets are
    // its control connection and TCP links.
    let unix_streams = fds
        .iter()
        .filter(|f| inode_of(f).is_some() && is_unix_stream(f.fd))
        .count();
    if unix_streams < 2 {
        return;
    }
    let Ok(sockets) = unixdiag::unix_sockets() else {
        return;
    };
    let find = |ino: u64| sockets.iter().find(|s| u64::from(s.inode) == ino);
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for f in fds.iter() {
        let Some(ino) = inode_of(f) else { continue };
        let Some(me) = find(ino) else { continue };
        let peer = u64::from(me.peer);
        let connected = |s: &UnixSocket, to: u64| {
            s.kind == libc::SOCK_STREAM as u8 && !s.named && u64::from(s.peer) == to
        };
        if ino < peer
            && connected(me, peer)
            && find(peer).is_some_and(|p| connected(p, ino))
            && fds.iter().any(|g| inode_of(g) == Some(peer))
            && !pairs.contains(&(ino, peer))
        {
            pairs.push((ino, peer));
        }
    }
    for (a, b) in pairs {
        let first = |ino: u64| fds.iter().find(|f| inode_of(f) == Some(ino)).map(|f| f.fd);
        let (Some(fa), Some(fb)) = (first(a), first(b)) else {
            continue;
        };
        let (Some(ea), Some(eb)) = (socket_end(fa), socket_end(fb)) else {
            continue;
        };
        for (ino, peer, (sndbuf, queued), fd0) in [(a, b, ea, fa), (b, a, eb, fb)] {
            let shutdown = find(ino).map_or(0, |s| u32::from(s.shutdown));
            for f in fds.iter_mut().filter(|f| inode_of(f) == Some(ino)) {
                f.kind = FdKind::UnixStream;
                f.flags &= libc::O_NONBLOCK as u32;
                f.offset = 0;
                f.state = FdState::UnixStream(UnixStreamState {
                    peer,
                    shutdown,
                    sndbuf,
                });
                if f.fd == fd0 {
                    f.contents = queued.clone();
                }
            }
        }
    }
}

/// The send buffer of the socket at `fd` and a copy of the bytes waiting in it, or None
/// when they cannot be copied whole without changing what the program reads.
fn socket_end(fd: RawFd) -> Option<(u64, Vec<u8>)> {
    let sock = own_copy(fd)?;
    if sys::peek_offset(sock.as_fd()).ok()? >= 0 {
        return None;
    }
    let sndbuf = rustix::net::sockopt::socket_send_buffer_size(&sock).ok()? as u64;
    let queued = usize::try_from(rustix::io::ioctl_fionread(&sock).ok()?).ok()?;
    if queued > MAX_SOCKET_BYTES as usize {
        return None;
    }
    let mut contents = vec![0u8; queued];
    if queued > 0 {
        use rustix::net::{RecvAncillaryBuffer, RecvFlags, ReturnFlags};
        let mut iov = [std::io::IoSliceMut::new(&mut contents)];
        // No room for control messages: descriptors or credentials in the queue show as a
        // truncation (the kernel then closes the copies it made for the peek).
        let got = rustix::net::recvmsg(
            &sock,
            &mut iov,
            &mut RecvAncillaryBuffer::default(),
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        )
        .ok()?;
        if got.bytes != queued || got.flags.contains(ReturnFlags::CTRUNC) {
            return None;
        }
    }
    Some((sndbuf, contents))
}

/// Whether the socket at `fd` is a unix stream socket (asked of the socket itself, which
/// costs a few system calls where the kernel's dump of unix sockets costs one per socket of
/// the machine).
fn is_unix_stream(fd: RawFd) -> bool {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    own_copy(fd).is_some_and(|s| {
        sockopt::socket_domain(&s).ok() == Some(AddressFamily::UNIX)
            && sockopt::socket_type(&s).ok() == Some(SocketType::STREAM)
    })
}

/// A descriptor of our own for the open file at `fd` (sockets cannot be reopened through
/// `/proc/self/fd`): `pidfd_getfd` on this process, which needs no permission.
fn own_copy(fd: RawFd) -> Option<OwnedFd> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags};
    let me = rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty()).ok()?;
    rustix::process::pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_stream_sockets_count_as_halves_of_a_pair() {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, socket, socketpair};
        use std::os::fd::AsRawFd;
        let (a, _b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let (d, _e) = socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let tcp = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(is_unix_stream(a.as_raw_fd()));
        assert!(!is_unix_stream(d.as_raw_fd()));
        assert!(!is_unix_stream(tcp.as_raw_fd()));
        assert!(!is_unix_stream(file.as_raw_fd()));
    }

    #[test]
    fn a_timerfd_is_read_from_its_fdinfo() {
        let info = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\nclockid: 1\nticks: 5\n\
                    settime flags: 01\nit_value: (0, 991604581)\nit_interval: (3600, 0)\n";
        let s = special(TIMERFD_LINK, info, 0o4002).expect("a timerfd");
        assert_eq!(
            (s.kind, s.flags),
            (FdKind::Timerfd, libc::O_NONBLOCK as u32)
        );
        let want = TimerfdState {
            clock: 1,
            settime_flags: 1,
            value_ns: 991_604_581,
            interval_ns: 3_600_000_000_000,
            ticks: 5,
        };
        assert_eq!(s.state, FdState::Timer(want));
        let torn = info.replace("it_interval: (3600, 0)", "it_interval: 3600");
        assert!(
            special(TIMERFD_LINK, &torn, 0).is_none(),
            "left out, not guessed"
        );
    }

    #[test]
    fn an_epoll_interest_list_is_read_with_the_watched_inodes() {
        let info = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n\
                    tfd:        4 events: 40000019 data:                7  pos:0 ino:40e sdev:10\n\
                    tfd:        3 events: 80000019 data:         deadbeef  pos:0 ino:2a sdev:10\n";
        let s = special(EPOLL_LINK, info, 2).expect("an epoll instance");
        let want = vec![
            EpollWatch {
                fd: 4,
                events: 0x4000_0019,
                data: 7,
            },
            EpollWatch {
                fd: 3,
                events: 0x8000_0019,
                data: 0xdead_beef,
            },
        ];
        assert_eq!((s.kind, s.state), (FdKind::Epoll, FdState::Watches(want)));
        assert_eq!(s.watched_inodes, [0x40e, 0x2a]);
    }

    #[test]
    fn a_signalfd_is_read_from_its_fdinfo() {
        let s = special(SIGNALFD_LINK, "flags:\t02\nsigmask:\t0000000000004200\n", 2)
            .expect("a signalfd");
        assert_eq!((s.kind, s.flags), (FdKind::Signalfd, 0));
        assert_eq!(s.state, FdState::Signals(0x4200));
    }

    #[test]
    fn an_epoll_watching_what_is_not_restored_is_left_out() {
        let entry = |fd, kind, ino, state| FdEntry {
            fd,
            kind,
            path: String::new(),
            flags: 0,
            cloexec: false,
            offset: 0,
            identity: crate::format::FileIdentity {
                ino,
                ..Default::default()
            },
            contents: Vec::new(),
            state,
        };
        let watch = |fd| EpollWatch {
            fd,
            events: 1,
            data: 0,
        };
        let mut fds = vec![
            entry(3, FdKind::Eventfd, 9, FdState::None),
            entry(4, FdKind::Other, 10, FdState::None),
            // Watches the eventfd: kept.
            entry(5, FdKind::Epoll, 9, FdState::Watches(vec![watch(3)])),
            // Watches the socket: left out, and so is the one watching it.
            entry(6, FdKind::Epoll, 9, FdState::Watches(vec![watch(4)])),
            entry(7, FdKind::Epoll, 9, FdState::Watches(vec![watch(6)])),
            // Watches number 3 as another file than the one there now: left out.
            entry(8, FdKind::Epoll, 9, FdState::Watches(vec![watch(3)])),
        ];
        let watched = [(5, vec![9]), (7, vec![9]), (6, vec![10]), (8, vec![11])];
        keep_restorable_epolls(&mut fds, &watched);
        let kinds: Vec<FdKind> = fds.iter().map(|f| f.kind).collect();
        use FdKind::*;
        assert_eq!(kinds, [Eventfd, Other, Epoll, Other, Other, Other]);
    }
}
