//! The restorer's preparation: with every signal blocked, put the kernel-side state of the
//! process where the image wants it (descriptors, cwd, umask, limits, signal dispositions,
//! pending signals, alternate stack) and open the files the restore routine maps. Anything
//! that fails here still ends with a clean message: the image's code has not run.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use image::Image;
use image::format::{
    FdEntry, FdKind, FdState, PROT_W, RegionKind, SOCKET_LINK_PREFIX, TimerfdState, UnixStreamState,
};
use rustix::fs::{Mode, OFlags};

use crate::check::resource;
use crate::plan::Fds;
use crate::sys;

fn io(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Whether this process may set the exe link (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE).
fn may_set_exe() -> bool {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let eff = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 21) != 0 || eff & (1 << 40) != 0
}

/// Moves `fd` to a number >= `min` (close-on-exec).
fn lift(fd: OwnedFd, min: RawFd) -> Result<OwnedFd, String> {
    rustix::io::fcntl_dupfd_cloexec(&fd, min).map_err(|e| format!("cannot move a descriptor: {e}"))
}

/// `deleted`: the image's deleted files, recreated (`stage`), by descriptor number.
/// `quiet`: do not list the descriptors that are not restored (a rank of an MPI job, whose
/// sockets its MPI layer rebuilds).
pub(crate) fn prepare(
    img: &Image,
    deleted: Vec<(RawFd, OwnedFd)>,
    quiet: bool,
) -> Result<Fds, String> {
    let m = &img.meta;
    sys::block_all_signals().map_err(io("cannot block signals"))?;

    // Files the routine maps, each opened once; the program file for the exe link.
    let high = m.fds.iter().map(|f| f.fd).max().unwrap_or(2).max(2) + 1;
    let mut by_path: HashMap<(String, bool), RawFd> = HashMap::new();
    let mut region = Vec::with_capacity(img.regions.len());
    let mut ours: Vec<RawFd> = Vec::new();
    for r in &img.regions {
        let d = &r.desc;
        if !d.kind.is_file() {
            region.push(-1);
            continue;
        }
        let rw = d.kind == RegionKind::FileShared && d.prot & PROT_W != 0;
        let key = (d.name.clone(), rw);
        if let Some(&fd) = by_path.get(&key) {
            region.push(fd);
            continue;
        }
        let flags = if rw { OFlags::RDWR } else { OFlags::RDONLY };
        let fd = rustix::fs::open(d.name.as_str(), flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("cannot open {}: {e}", d.name))?;
        let fd = lift(fd, high)?.into_raw_fd();
        by_path.insert(key, fd);
        region.push(fd);
        ours.push(fd);
    }
    let exe = if may_set_exe() {
        let fd = rustix::fs::open(
            m.exe_path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open {}: {e}", m.exe_path))?;
        let fd = lift(fd, high)?.into_raw_fd();
        ours.push(fd);
        Some(fd)
    } else {
        None
    };

    // The recreated deleted files, out of the way until they are reopened at their numbers.
    let mut recreated: HashMap<RawFd, RawFd> = HashMap::new();
    for (fd, file) in deleted {
        let lifted = lift(file, high)?.into_raw_fd();
        ours.push(lifted);
        recreated.insert(fd, lifted);
    }

    // The self-pipes, made anew holding what they held, out of the way until their ends are
    // placed (closed when this function returns).
    let mut pipes: HashMap<&str, (OwnedFd, OwnedFd)> = HashMap::new();
    for f in m.fds.iter().filter(|f| f.kind == FdKind::Pipe) {
        if pipes.contains_key(f.path.as_str()) {
            continue;
        }
        let contents = m
            .fds
            .iter()
            .filter(|g| g.kind == FdKind::Pipe && g.path == f.path)
            .map(|g| g.contents.as_slice())
            .find(|c| !c.is_empty())
            .unwrap_or_default();
        let (r, w) = new_pipe(f.offset, contents)
            .map_err(|e| format!("cannot recreate {} (fd {}): {e}", f.path, f.fd))?;
        pipes.insert(f.path.as_str(), (lift(r, high)?, lift(w, high)?));
    }
    // The socketpairs likewise, each end by its path (`socket:[INODE]`).
    let mut socketpairs: HashMap<&str, OwnedFd> = HashMap::new();
    for f in m.fds.iter().filter(|f| f.kind == FdKind::UnixStream) {
        if socketpairs.contains_key(f.path.as_str()) {
            continue;
        }
        let FdState::UnixStream(me) = f.state else {
            return Err(format!("the socket at fd {} has no state", f.fd));
        };
        let peer_path = format!("{SOCKET_LINK_PREFIX}{}]", me.peer);
        let peer = m
            .fds
            .iter()
            .find(|g| g.kind == FdKind::UnixStream && g.path == peer_path)
            .ok_or_else(|| format!("the other end of the socket at fd {} is missing", f.fd))?;
        let FdState::UnixStream(them) = peer.state else {
            return Err(format!("the socket at fd {} has no state", peer.fd));
        };
        let queued = |path: &str| {
            m.fds
                .iter()
                .filter(|g| g.kind == FdKind::UnixStream && g.path == path)
                .map(|g| g.contents.as_slice())
                .find(|c| !c.is_empty())
                .unwrap_or_default()
        };
        let (a, b) = new_socketpair((&me, queued(&f.path)), (&them, queued(&peer.path)))
            .map_err(|e| format!("cannot recreate {} (fd {}): {e}", f.path, f.fd))?;
        socketpairs.insert(f.path.as_str(), lift(a, high)?);
        socketpairs.insert(peer.path.as_str(), lift(b, high)?);
    }
    let pipe_fds: Vec<RawFd> = pipes
        .values()
        .flat_map(|(r, w)| [r.as_raw_fd(), w.as_raw_fd()])
        .chain(socketpairs.values().map(|s| s.as_raw_fd()))
        .collect();

    // Close every other descriptor but stdio.
    for fd in sys::open_descriptors().map_err(io("cannot list descriptors"))? {
        if fd > 2 && !ours.contains(&fd) && !pipe_fds.contains(&fd) {
            sys::close_unowned(fd);
        }
    }

    // The new job's environment for the restored process (docs/image-format.md, "Restart
    // hand-over"): capture made sure no descriptor of the image has this number.
    if m.fds.iter().any(|f| f.fd == image::RESTART_ENV_FD) {
        return Err(format!(
            "the image has descriptor {} open, which is reserved for the restorer",
            image::RESTART_ENV_FD
        ));
    }
    let vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| image::restart::handed_over(k))
        .collect();
    let env = image::restart::encode_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let env_fd = image::restart::memfd_with(image::restart::RESTART_ENV_NAME, &env)
        .map_err(io("cannot create the environment hand-over"))?;
    sys::dup_onto(&env_fd, image::RESTART_ENV_FD, true).map_err(io(
        "cannot place the environment hand-over at its descriptor",
    ))?;
    drop(env_fd);

    // The image's regular files, at their numbers, flags and offsets; a deleted file is
    // opened anew through its recreated copy, so that it gets its own flags and offset;
    // eventfds, timerfds, signalfds and epoll instances are made anew with their state (an
    // epoll instance's watches are added once every descriptor is in place, through a copy
    // of it kept out of the way).
    let mut epolls: Vec<(OwnedFd, &FdEntry)> = Vec::new();
    for f in &m.fds {
        let fd = match f.kind {
            FdKind::Regular | FdKind::Device => reopen(&f.path, f)?,
            FdKind::Deleted => {
                let copy = recreated.get(&f.fd).ok_or_else(|| {
                    format!("the contents of deleted file {} are missing", f.path)
                })?;
                reopen(&format!("/proc/self/fd/{copy}"), f)?
            }
            FdKind::Eventfd => new_eventfd(f.flags, f.offset)
                .map_err(|e| format!("cannot recreate the eventfd at fd {}: {e}", f.fd))?,
            FdKind::Timerfd => new_timerfd(f)?,
            FdKind::Signalfd => {
                let FdState::Signals(mask) = f.state else {
                    return Err(format!("the signalfd at fd {} has no signal mask", f.fd));
                };
                sys::new_signalfd(mask, f.flags & libc::O_NONBLOCK as u32 != 0)
                    .map_err(|e| format!("cannot recreate the signalfd at fd {}: {e}", f.fd))?
            }
            FdKind::Epoll => {
                let ep = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)
                    .map_err(|e| {
                    format!("cannot recreate the epoll instance at fd {}: {e}", f.fd)
                })?;
                let copy = rustix::io::fcntl_dupfd_cloexec(&ep, high)
                    .map_err(|e| format!("cannot copy the epoll instance at fd {}: {e}", f.fd))?;
                epolls.push((copy, f));
                ep
            }
            FdKind::Pipe => {
                let (r, w) = pipes
                    .get(f.path.as_str())
                    .ok_or_else(|| format!("{} (fd {}) was not recreated", f.path, f.fd))?;
                let writes = f.flags & libc::O_ACCMODE as u32 == libc::O_WRONLY as u32;
                copy_with_nonblock(if writes { w } else { r }, f)?
            }
            FdKind::UnixStream => {
                let end = socketpairs
                    .get(f.path.as_str())
                    .ok_or_else(|| format!("{} (fd {}) was not recreated", f.path, f.fd))?;
                copy_with_nonblock(end, f)?
            }
            FdKind::Other => {
                if f.fd > 2 && !quiet {
                    eprintln!(
                        "mpicr-restore: fd {} ({}) is not restored (only files, stateless devices, eventfds, timerfds, signalfds, self-pipes, socketpairs and epoll instances watching those are)",
                        f.fd, f.path
                    );
                }
                continue;
            }
        };
        if fd.as_raw_fd() == f.fd {
            // Opened at its own number already.
            if f.cloexec {
                rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
                    .map_err(|e| format!("cannot set flags of fd {}: {e}", f.fd))?;
            }
            let _ = fd.into_raw_fd();
            continue;
        }
        // Onto a number this program does not own: closed above, or stdio, which the
        // image's file replaces.
        let r = sys::dup_onto(&fd, f.fd, f.cloexec);
        r.map_err(|e| format!("cannot place {} at fd {}: {e}", f.path, f.fd))?;
    }
    for (ep, f) in epolls {
        let FdState::Watches(watches) = &f.state else {
            return Err(format!(
                "the epoll instance at fd {} has no interest list",
                f.fd
            ));
        };
        for w in watches {
            sys::epoll_watch(&ep, w.fd, w.events, w.data).map_err(|e| {
                format!(
                    "cannot add fd {} to the epoll instance at fd {}: {e}",
                    w.fd, f.fd
                )
            })?;
        }
    }

    std::env::set_current_dir(&m.cwd).map_err(|e| format!("cannot enter {}: {e}", m.cwd))?;
    rustix::process::umask(Mode::from_bits_retain(m.umask));
    for &(res, cur, max) in &m.rlimits {
        let r = resource(res)?;
        let lim = rustix::process::Rlimit {
            current: (cur != u64::MAX).then_some(cur),
            maximum: (max != u64::MAX).then_some(max),
        };
        rustix::process::setrlimit(r, lim).map_err(|e| format!("cannot set rlimit {res}: {e}"))?;
    }
    for t in &m.itimers {
        sys::set_itimer(t).map_err(|e| format!("cannot set interval timer {}: {e}", t.which))?;
    }
    sys::set_sigaltstack(m.altstack_sp, m.altstack_flags, m.altstack_size)
        .map_err(io("cannot set the alternate signal stack"))?;
    for a in &m.sigactions {
        sys::set_sigaction(a)
            .map_err(|e| format!("cannot set the action of signal {}: {e}", a.signo))?;
    }
    for sig in 1..=64u32 {
        if m.sigpending & (1u64 << (sig - 1)) != 0 && sig != 9 && sig != 19 {
            sys::raise_pending(sig)
                .map_err(|e| format!("cannot make signal {sig} pending: {e}"))?;
        }
    }
    Ok(Fds {
        region,
        exe,
        close: ours,
    })
}

/// Opens `source` for the image's descriptor `f` with its flags, at its offset (a device has
/// none).
fn reopen(source: &str, f: &FdEntry) -> Result<OwnedFd, String> {
    let keep = !(libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL | libc::O_CLOEXEC) as u32;
    let flags = OFlags::from_bits_retain(f.flags & keep);
    let fd = rustix::fs::open(source, flags, Mode::empty())
        .map_err(|e| format!("cannot reopen {} (fd {}): {e}", f.path, f.fd))?;
    if f.kind != FdKind::Device {
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(f.offset))
            .map_err(|e| format!("cannot seek {} (fd {}): {e}", f.path, f.fd))?;
    }
    Ok(fd)
}

/// A new eventfd with the image's flags (`EFD_SEMAPHORE`, `EFD_NONBLOCK`) holding `count`:
/// made at 0 and then written to, because the initial value of `eventfd` is 32 bits wide and
/// the counter 64 (a write to a counter at 0 never blocks).
fn new_eventfd(flags: u32, count: u64) -> rustix::io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    let mut efd = EventfdFlags::empty();
    if flags & libc::EFD_SEMAPHORE as u32 != 0 {
        efd |= EventfdFlags::SEMAPHORE;
    }
    if flags & libc::EFD_NONBLOCK as u32 != 0 {
        efd |= EventfdFlags::NONBLOCK;
    }
    let fd = rustix::event::eventfd(0, efd)?;
    if count != 0 {
        rustix::io::write(&fd, &count.to_ne_bytes())?;
    }
    Ok(fd)
}

/// A new timerfd on the image's clock, armed with the time its timer had left (the time the
/// process was not running does not count, as for interval timers) and holding the
/// expirations it had not delivered. A timer set to an absolute time of `CLOCK_REALTIME` is
/// set absolute again (now plus what was left), so that it keeps `TFD_TIMER_CANCEL_ON_SET`.
fn new_timerfd(f: &FdEntry) -> Result<OwnedFd, String> {
    use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    let FdState::Timer(t) = f.state else {
        return Err(format!("the timerfd at fd {} has no timer", f.fd));
    };
    let TimerfdState {
        clock,
        settime_flags,
        value_ns,
        interval_ns,
        ticks,
    } = t;
    let fail =
        |what: &str, e: rustix::io::Errno| format!("cannot {what} the timerfd at fd {}: {e}", f.fd);
    let clock_id = match clock as i32 {
        libc::CLOCK_REALTIME => TimerfdClockId::Realtime,
        libc::CLOCK_MONOTONIC => TimerfdClockId::Monotonic,
        libc::CLOCK_BOOTTIME => TimerfdClockId::Boottime,
        libc::CLOCK_REALTIME_ALARM => TimerfdClockId::RealtimeAlarm,
        libc::CLOCK_BOOTTIME_ALARM => TimerfdClockId::BoottimeAlarm,
        other => {
            return Err(format!(
                "the timerfd at fd {} uses unknown clock {other}",
                f.fd
            ));
        }
    };
    let mut flags = TimerfdFlags::CLOEXEC;
    if f.flags & libc::O_NONBLOCK as u32 != 0 {
        flags |= TimerfdFlags::NONBLOCK;
    }
    let timer = rustix::time::timerfd_create(clock_id, flags).map_err(|e| fail("recreate", e))?;
    let spec = |ns: u64| Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i64,
    };
    let absolute = settime_flags & libc::TFD_TIMER_ABSTIME as u32 != 0
        && clock as i32 == libc::CLOCK_REALTIME
        && value_ns != 0;
    let (value, set_flags) = if absolute {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let now_ns = (now.tv_sec as u64).saturating_mul(1_000_000_000) + now.tv_nsec as u64;
        (
            spec(now_ns.saturating_add(value_ns)),
            TimerfdTimerFlags::from_bits_retain(settime_flags),
        )
    } else {
        (spec(value_ns), TimerfdTimerFlags::empty())
    };
    let its = Itimerspec {
        it_interval: spec(interval_ns),
        it_value: value,
    };
    rustix::time::timerfd_settime(&timer, set_flags, &its).map_err(|e| fail("arm", e))?;
    // After arming: setting a timer clears its count.
    if ticks != 0 {
        sys::set_timerfd_ticks(&timer, ticks).map_err(|e| {
            format!(
                "cannot give back the {ticks} expirations of the timerfd at fd {}: {e}",
                f.fd
            )
        })?;
    }
    Ok(timer)
}

/// A copy of `end` (a recreated pipe or socket end) for the image's descriptor `f`, with its
/// `O_NONBLOCK`.
fn copy_with_nonblock(end: &OwnedFd, f: &FdEntry) -> Result<OwnedFd, String> {
    let copy = rustix::io::fcntl_dupfd_cloexec(end, 0).and_then(|copy| {
        let nonblock = f.flags & libc::O_NONBLOCK as u32;
        rustix::fs::fcntl_setfl(&copy, OFlags::from_bits_retain(nonblock))?;
        Ok(copy)
    });
    copy.map_err(|e| format!("cannot place {} at fd {}: {e}", f.path, f.fd))
}

/// A new unix stream socketpair whose ends have the image's send buffers and shutdowns and
/// hold the bytes that were waiting to be read from each (written through the other end,
/// non-blocking: bytes that do not fit are an error, not a hang).
fn new_socketpair(
    a: (&UnixStreamState, &[u8]),
    b: (&UnixStreamState, &[u8]),
) -> rustix::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};
    let (ea, eb) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    for (end, state) in [(&ea, a.0), (&eb, b.0)] {
        // The kernel doubles what is set; the image has what getsockopt gave.
        let half = usize::try_from(state.sndbuf / 2).unwrap_or(usize::MAX);
        if rustix::net::sockopt::set_socket_send_buffer_size_force(end, half).is_err() {
            rustix::net::sockopt::set_socket_send_buffer_size(end, half)?;
        }
    }
    for (through, mut rest) in [(&eb, a.1), (&ea, b.1)] {
        while !rest.is_empty() {
            let n = rustix::io::write(through, rest)?;
            rest = &rest[n..];
        }
    }
    for (end, state) in [(&ea, a.0), (&eb, b.0)] {
        if state.shutdown & 2 != 0 {
            rustix::net::shutdown(end, Shutdown::Write)?;
        }
        if state.shutdown & 1 != 0 {
            rustix::net::shutdown(end, Shutdown::Read)?;
        }
    }
    Ok((ea, eb))
}

/// A new pipe of `capacity` bytes (at least what it must hold) holding `contents`.
fn new_pipe(capacity: u64, contents: &[u8]) -> rustix::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let want = usize::try_from(capacity)
        .unwrap_or(usize::MAX)
        .max(contents.len());
    if rustix::pipe::fcntl_getpipe_size(&w)? != want {
        rustix::pipe::fcntl_setpipe_size(&w, want)?;
    }
    let mut rest = contents;
    while !rest.is_empty() {
        let n = rustix::io::write(&w, rest)?;
        rest = &rest[n..];
    }
    Ok((r, w))
}
