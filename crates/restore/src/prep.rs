//! The restorer's preparation: with every signal blocked, put the kernel-side state of the
//! process where the image wants it (descriptors, cwd, umask, limits, signal dispositions,
//! pending signals, alternate stack) and open the files the restore routine maps. Anything
//! that fails here still ends with a clean message: the image's code has not run.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use image::Image;
use image::format::{FdEntry, FdKind, PROT_W, RegionKind};
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
    let pipe_fds: Vec<RawFd> = pipes
        .values()
        .flat_map(|(r, w)| [r.as_raw_fd(), w.as_raw_fd()])
        .collect();

    // Close every other descriptor but stdio.
    let mut open: Vec<RawFd> = Vec::new();
    let listing = std::fs::read_dir("/proc/self/fd").map_err(io("cannot list descriptors"))?;
    for e in listing {
        if let Some(n) = e
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        {
            open.push(n);
        }
    }
    for fd in open {
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
    // eventfds are made anew with their counters.
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
            FdKind::Pipe => {
                let (r, w) = pipes
                    .get(f.path.as_str())
                    .ok_or_else(|| format!("{} (fd {}) was not recreated", f.path, f.fd))?;
                let writes = f.flags & libc::O_ACCMODE as u32 == libc::O_WRONLY as u32;
                let end = rustix::io::fcntl_dupfd_cloexec(if writes { w } else { r }, 0).and_then(
                    |end| {
                        let nonblock = f.flags & libc::O_NONBLOCK as u32;
                        rustix::fs::fcntl_setfl(&end, OFlags::from_bits_retain(nonblock))?;
                        Ok(end)
                    },
                );
                end.map_err(|e| format!("cannot place {} at fd {}: {e}", f.path, f.fd))?
            }
            FdKind::Other => {
                if f.fd > 2 && !quiet {
                    eprintln!(
                        "mpicr-restore: fd {} ({}) is not restored (only files, stateless devices, eventfds and self-pipes are)",
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
