//! Raw system calls the restorer's preparation needs that rustix does not wrap (or wraps as
//! unsafe for reasons that do not apply here).

use std::ffi::c_long;
use std::os::fd::{AsRawFd, OwnedFd};

use image::format::SigAction;

/// Blocks every signal for the calling thread.
pub(crate) fn block_all_signals() -> std::io::Result<()> {
    set_signal_mask(u64::MAX)
}

/// Sets the calling thread's signal mask to `mask` (bit N−1 for signal N).
fn set_signal_mask(mask: u64) -> std::io::Result<()> {
    // SAFETY: rt_sigprocmask reads 8 bytes from `mask`; no old set is requested.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as c_long,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8 as c_long,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The descriptor numbers open in this process (`/proc/self/fd`, listed whole before it
/// returns, so the listing's own descriptor is closed by then).
pub(crate) fn open_descriptors() -> std::io::Result<Vec<i32>> {
    let listing = std::fs::read_dir("/proc/self/fd")?;
    Ok(listing
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

#[repr(C)]
struct KSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// Installs the image's disposition for one signal, exactly as the kernel had it. The handler
/// and restorer are addresses in the image; they are only called after the image is in place
/// because every signal is blocked until the restore routine sets the image's mask.
pub(crate) fn set_sigaction(a: &SigAction) -> std::io::Result<()> {
    let k = KSigaction {
        handler: a.handler,
        flags: a.flags,
        restorer: a.restorer,
        mask: a.mask,
    };
    // SAFETY: rt_sigaction reads the 32-byte kernel structure from `k`; no old action is
    // requested. Installing a handler is memory-safe for this process while all signals are
    // blocked (see above).
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            a.signo as c_long,
            &k as *const KSigaction,
            std::ptr::null_mut::<KSigaction>(),
            8 as c_long,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes `sig` pending for the calling thread (it is blocked, so it stays pending).
pub(crate) fn raise_pending(sig: u32) -> std::io::Result<()> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    // SAFETY: tgkill takes no pointers; the signal is blocked, so nothing runs.
    let r = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            pid as c_long,
            tid as c_long,
            sig as c_long,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Arms interval timer `t` as the image had it. Its signal (SIGALRM, SIGVTALRM, SIGPROF)
/// stays pending while every signal is blocked, and is delivered to the restored program.
pub(crate) fn set_itimer(t: &image::format::ITimer) -> std::io::Result<()> {
    let tv = |us: u64| libc::timeval {
        tv_sec: (us / 1_000_000) as libc::time_t,
        tv_usec: (us % 1_000_000) as libc::suseconds_t,
    };
    let value = libc::itimerval {
        it_interval: tv(t.interval_us),
        it_value: tv(t.value_us),
    };
    // SAFETY: setitimer reads one itimerval from `value`; the old value is not wanted.
    let r = unsafe {
        libc::syscall(
            libc::SYS_setitimer,
            t.which as c_long,
            &value as *const libc::itimerval,
            std::ptr::null_mut::<libc::itimerval>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets the alternate signal stack to the image's (an address in the image; the kernel only
/// records it).
pub(crate) fn set_sigaltstack(sp: u64, flags: u32, size: u64) -> std::io::Result<()> {
    let ss = libc::stack_t {
        ss_sp: sp as *mut libc::c_void,
        ss_flags: (flags & !(libc::SS_ONSTACK as u32)) as i32,
        ss_size: size as usize,
    };
    // SAFETY: sigaltstack reads `ss`; the kernel does not dereference ss_sp here. This process
    // is not running on its alternate stack.
    let r = unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Closes a descriptor number that no object in this program owns (found in /proc/self/fd
/// or released with `into_raw_fd`).
pub(crate) fn close_unowned(fd: i32) {
    // SAFETY: by the caller's contract nothing else will use or close `fd`.
    unsafe { libc::close(fd) };
}

/// glibc's `__rseq_size`: 0 when glibc did not register rseq.
pub(crate) fn rseq_registered() -> bool {
    unsafe extern "C" {
        static __rseq_size: u32;
    }
    // SAFETY: glibc exports `__rseq_size` as a u32 set once at start-up.
    unsafe { (&raw const __rseq_size).read_volatile() != 0 }
}

/// `dup3(src, target)`: puts the open file of `src` at descriptor number `target`, which no
/// object in this program owns (the caller closed it or it is stdio, owned by nobody here).
pub(crate) fn dup_onto(src: &OwnedFd, target: i32, cloexec: bool) -> std::io::Result<()> {
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: dup3 takes no pointers; `src` is open for the call; replacing `target` cannot
    // invalidate any object of this program because none owns that number.
    let r = unsafe { libc::dup3(src.as_raw_fd(), target, flags) };
    if r == target {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A mapping the restorer stages a region's pages in: at the region's own address when that
/// is free in the restorer, else where the kernel put it (or [`Mapping::move_off`] moved it);
/// unmapped when dropped. The restore routine leaves it or moves it into place with `mremap`
/// (`plan`), so its pages are never copied again.
///
/// In place is better than anywhere: the kernel records a private anonymous mapping's page
/// offset from the address it was created at and `mremap` keeps it, so a region created
/// elsewhere and moved would not merge with its neighbours later (the brk heap would grow as
/// a second mapping).
#[derive(Debug)]
pub(crate) struct Mapping {
    addr: u64,
    len: u64,
}

/// What a [`Mapping`] maps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backing<'a> {
    /// Private anonymous memory; `stack`: grows down (mremap keeps the flag).
    Anon { stack: bool },
    /// Shared anonymous memory (shmem, which mremap keeps).
    AnonShared,
    /// A private mapping of `file` from `offset`: the pages not written are the file's.
    FilePrivate {
        file: &'a std::fs::File,
        offset: u64,
    },
}

impl Mapping {
    /// Maps `len` bytes readable and writable at `at` if that range is free, else wherever
    /// the kernel puts them.
    pub(crate) fn new(at: u64, len: u64, backing: Backing<'_>) -> std::io::Result<Self> {
        let (flags, fd, off) = match backing {
            Backing::Anon { stack } => (
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | if stack { libc::MAP_GROWSDOWN } else { 0 },
                -1,
                0,
            ),
            Backing::AnonShared => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0),
            Backing::FilePrivate { file, offset } => {
                (libc::MAP_PRIVATE, file.as_raw_fd(), offset as libc::off_t)
            }
        };
        let map = |addr: u64, fixed: i32| {
            // SAFETY: either no address is requested or MAP_FIXED_NOREPLACE refuses a range
            // in use, so no existing mapping is affected; `fd` is open for the call.
            unsafe {
                libc::mmap(
                    addr as *mut libc::c_void,
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags | fixed,
                    fd,
                    off,
                )
            }
        };
        let mut r = map(at, libc::MAP_FIXED_NOREPLACE);
        if r == libc::MAP_FAILED {
            r = map(0, 0);
        }
        if r == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            addr: r as u64,
            len,
        })
    }

    /// Its range.
    pub(crate) fn range(&self) -> (u64, u64) {
        (self.addr, self.addr + self.len)
    }

    /// Bytes `off..off + n` of the mapping (`None` when outside it).
    pub(crate) fn bytes(&mut self, off: u64, n: u64) -> Option<&mut [u8]> {
        if off.checked_add(n)? > self.len {
            return None;
        }
        // SAFETY: the range lies inside this mapping, which is readable and writable, lives
        // as long as `self` and is referenced by nothing else (`&mut self`).
        Some(unsafe { std::slice::from_raw_parts_mut((self.addr + off) as *mut u8, n as usize) })
    }

    /// Moves the mapping (its pages, not copies) to a range that overlaps none of `avoid`.
    pub(crate) fn move_off(&mut self, avoid: &[(u64, u64)]) -> std::io::Result<()> {
        let hits = |s: u64| avoid.iter().any(|&(a, b)| s < b && a < s + self.len);
        let mut held: Vec<Mapping> = Vec::new();
        let mut result = Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        // Each reservation that overlaps is held, so the kernel offers another range next.
        for _ in 0..64 {
            let spot = Mapping::reserve(self.len)?;
            if hits(spot.addr) {
                held.push(spot);
                continue;
            }
            // SAFETY: both ranges are this program's own mappings (`self` and the fresh
            // reservation, which mremap replaces); nothing references the moved pages but
            // `self`, whose address is updated.
            let r = unsafe {
                libc::mremap(
                    self.addr as *mut libc::c_void,
                    self.len as usize,
                    self.len as usize,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    spot.addr as *mut libc::c_void,
                )
            };
            result = if r == libc::MAP_FAILED {
                Err(std::io::Error::last_os_error())
            } else {
                self.addr = r as u64;
                // The reservation's range now belongs to `self`.
                std::mem::forget(spot);
                Ok(())
            };
            break;
        }
        result
    }

    /// An inaccessible range of `len` bytes wherever the kernel puts it.
    fn reserve(len: u64) -> std::io::Result<Self> {
        // SAFETY: no address is requested, so no existing mapping is affected.
        let r = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if r == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            addr: r as u64,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is this mapping's own; no slice of it outlives `self`.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len as usize) };
    }
}

/// A new signalfd for the signals of `mask` (bit N−1 for signal N), close-on-exec, and
/// non-blocking when `nonblock`.
pub(crate) fn new_signalfd(mask: u64, nonblock: bool) -> std::io::Result<OwnedFd> {
    let flags = libc::SFD_CLOEXEC | if nonblock { libc::SFD_NONBLOCK } else { 0 };
    // SAFETY: signalfd4 with fd −1 makes a new descriptor; it reads the 8-byte kernel signal
    // set from `mask`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1 as c_long,
            &mask as *const u64,
            8 as c_long,
            flags as c_long,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `r` is the new descriptor the call just made, owned by nothing else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r as i32) })
}

/// `TFD_IOC_SET_TICKS`: `_IOW('T', 0, u64)`.
const TFD_IOC_SET_TICKS: libc::c_ulong = (1 << 30) | (8 << 16) | ((b'T' as libc::c_ulong) << 8);

/// Sets the expirations a timerfd has counted and not delivered yet (the kernel has this
/// ioctl when built with `CONFIG_CHECKPOINT_RESTORE`).
pub(crate) fn set_timerfd_ticks(timer: &OwnedFd, ticks: u64) -> std::io::Result<()> {
    // SAFETY: the ioctl reads one u64 from `ticks`; `timer` is an open timerfd.
    let r = unsafe { libc::ioctl(timer.as_raw_fd(), TFD_IOC_SET_TICKS, &ticks as *const u64) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Adds descriptor number `fd` (already at its place in the restored table) to the interest
/// list of the epoll instance `ep` with `events` and `data`. A raw number rather than a
/// borrowed descriptor, because the descriptor was placed with `dup3` and nothing owns it.
pub(crate) fn epoll_watch(ep: &OwnedFd, fd: i32, events: u32, data: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: epoll_ctl reads one epoll_event from `ev`; `fd` is a number the kernel checks
    // (EBADF when closed) and no object of this program is affected by watching it.
    let r = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `struct clone_args` up to `set_tid_size` (`CLONE_ARGS_SIZE_VER1`, Linux 5.5).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
}

/// Forks this (single-threaded) process into a child whose pid is `pid`: `clone3` with
/// `set_tid`, which needs `CAP_SYS_ADMIN` in the pid namespace's owner and a free `pid`.
/// Returns 0 in the child and the child's pid in the parent.
pub(crate) fn fork_with_pid(pid: u32) -> std::io::Result<u32> {
    let tids = [pid as libc::pid_t];
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM or a stack is a fork: the child gets a copy of this
    // address space and resumes here with its own stack copy. The restorer is single-threaded,
    // so no lock is held by another thread in the copy. The kernel reads `args` and `tids`,
    // both live for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as u32)
    }
}

/// Has the kernel send `SIGKILL` to this process when its parent ends.
pub(crate) fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number, no pointer.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends signal `sig` to process `pid`.
pub(crate) fn send_signal(pid: u32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill takes no pointers.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets signal `sig` to its default action and unblocks every signal, so that raising it
/// next ends the process as the signal does.
pub(crate) fn default_and_unblock(sig: i32) {
    // SAFETY: SIG_DFL installs no handler.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
    let _ = set_signal_mask(0);
}
