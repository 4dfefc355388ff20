//! The raw system calls capture needs that rustix does not wrap, and the scratch mapping.
//! Every function here is safe to call: each unsafe block only passes pointers to locals
//! the kernel writes into (or reads) for the duration of the call.

use std::ffi::{c_int, c_long};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::format::ITimer;

/// The thread pointer (fs base) of the calling thread.
pub(crate) fn fs_base() -> u64 {
    let mut v: u64 = 0;
    // SAFETY: ARCH_GET_FS writes one u64 to the address passed, which is `v`, live for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            0x1003 as c_long, // ARCH_GET_FS,
            &mut v as *mut u64,
        )
    };
    if r == 0 { v } else { 0 }
}

/// The kernel's `struct sigaction` on x86-64.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KSigaction {
    pub(crate) handler: u64,
    pub(crate) flags: u64,
    pub(crate) restorer: u64,
    pub(crate) mask: u64,
}

/// The disposition of `sig` as the kernel holds it, or None for an invalid signal.
pub(crate) fn sigaction(sig: u32) -> Option<KSigaction> {
    let mut old = KSigaction::default();
    // SAFETY: with a null new action, rt_sigaction only writes the old one (32 bytes, the
    // kernel layout KSigaction mirrors) into `old`; sigsetsize 8 is the kernel's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig as c_long,
            std::ptr::null::<KSigaction>(),
            &mut old as *mut KSigaction,
            8 as c_long,
        )
    };
    (r == 0).then_some(old)
}

/// The calling thread's signal mask.
pub(crate) fn sigmask() -> u64 {
    let mut old: u64 = 0;
    // SAFETY: SIG_BLOCK with a null set changes nothing and writes the 8-byte mask into `old`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK as c_long,
            std::ptr::null::<u64>(),
            &mut old as *mut u64,
            8 as c_long,
        )
    };
    old
}

/// The set of pending signals (thread and process).
pub(crate) fn sigpending() -> u64 {
    let mut set: u64 = 0;
    // SAFETY: rt_sigpending writes 8 bytes into `set`.
    unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut set as *mut u64, 8 as c_long) };
    set
}

/// The alternate signal stack: (sp, flags, size).
pub(crate) fn sigaltstack() -> (u64, u32, u64) {
    let mut ss = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: 0,
        ss_size: 0,
    };
    // SAFETY: with a null new stack, sigaltstack only writes the current one into `ss`.
    let r = unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) };
    if r != 0 {
        return (0, libc::SS_DISABLE as u32, 0);
    }
    (ss.ss_sp as u64, ss.ss_flags as u32, ss.ss_size as u64)
}

/// The program break as the kernel has it (not glibc's cached value).
pub(crate) fn brk() -> u64 {
    // SAFETY: brk(0) never moves the break; it returns the current one.
    unsafe { libc::syscall(libc::SYS_brk, 0 as c_long) as u64 }
}

/// glibc's `__rseq_size`: 0 when glibc did not register rseq for this thread.
pub(crate) fn rseq_registered() -> bool {
    unsafe extern "C" {
        static __rseq_size: u32;
    }
    // SAFETY: glibc (2.35 and later) exports `__rseq_size` as a read-only u32 set once at
    // start-up; reading it is a plain load.
    let size = unsafe { std::ptr::addr_of!(__rseq_size).read_volatile() };
    size != 0
}

/// Interval timer `which` as a restore must arm it, or None when it is disarmed.
///
/// An `ITIMER_REAL` that has just expired reads as disarmed, its interval kept, until its
/// SIGALRM (pending meanwhile) is taken: the kernel re-arms a periodic real timer only when
/// the signal is dequeued. Saved as it reads, it would be lost in the restored process after
/// that one signal (a CI run caught a checkpoint in that window). It is saved as firing one
/// interval on, which is what the re-arm makes of it; the pending signal is saved with the
/// others.
pub(crate) fn getitimer(which: u32) -> Option<ITimer> {
    let mut t = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    // SAFETY: getitimer writes one itimerval into `t`.
    let r = unsafe { libc::syscall(libc::SYS_getitimer, which as c_long, &mut t as *mut _) };
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    let (interval_us, mut value_us) = (us(t.it_interval), us(t.it_value));
    if which == libc::ITIMER_REAL as u32 && value_us == 0 {
        value_us = interval_us;
    }
    (r == 0 && value_us != 0).then_some(ITimer {
        which,
        interval_us,
        value_us,
    })
}

/// `_Fork()` (glibc 2.34): Ok(0) in the child, Ok(pid) in the parent. Unlike `fork()` it runs
/// no atfork handlers and takes none of glibc's locks, so it is async-signal-safe: a capture
/// from a signal handler that interrupted malloc (crates/preload) does not deadlock on the
/// malloc lock, and the program's own atfork handlers do not run for the image writer.
pub(crate) fn fork() -> std::io::Result<i32> {
    unsafe extern "C" {
        fn _Fork() -> libc::pid_t;
    }
    // SAFETY: the caller is single-threaded (a documented requirement of capture), so the
    // child is a complete copy; it calls no allocator and leaves only through `exit_now`.
    let pid = unsafe { _Fork() };
    if pid < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// Ends the process at once: no atexit handlers, no stdio flush (a forked writer must not
/// flush its copy of the parent's buffers).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Puts the calling process in SCHED_IDLE and the idle I/O class, so that every other
/// process of the machine that wants a core or the disk gets it first (a migration's forked
/// writer). Only a hint: an error leaves the normal priority. Async-signal-safe (two system
/// calls), as the forked writer needs.
pub(crate) fn background() {
    /// `IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0)` and `IOPRIO_WHO_PROCESS` (linux/ioprio.h).
    const IOPRIO_IDLE: libc::c_long = 3 << 13;
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param`, which lives across the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    // SAFETY: ioprio_set takes no pointers.
    unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_IDLE) };
}

/// Whether the file system takes direct I/O on `fd` at file offsets and memory addresses
/// aligned to `align` (statx `STATX_DIOALIGN`, Linux 6.1; a kernel or file system that does not
/// say is taken as one that does not allow it). Async-signal-safe: one system call.
pub(crate) fn direct_io_fits(fd: BorrowedFd<'_>, align: usize) -> bool {
    use rustix::fs::{AtFlags, StatxFlags};
    let Ok(st) = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) else {
        return false;
    };
    let fits = |a: u32| a != 0 && a as usize <= align && align.is_multiple_of(a as usize);
    StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN)
        && fits(st.stx_dio_mem_align)
        && fits(st.stx_dio_offset_align)
}

/// Starts the write-back of `len` bytes of `fd` from `off` without waiting for it, so that
/// the disk writes while the image writer reads on. Only a hint: an error changes nothing
/// (the final fsync reports real ones).
pub(crate) fn start_writeback(fd: BorrowedFd<'_>, off: u64, len: u64) {
    // SAFETY: sync_file_range takes no pointers; `fd` is open for the call.
    unsafe {
        libc::sync_file_range(
            fd.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// Anonymous private memory used while memory is read, so that nothing is allocated on the
/// heap then; it is excluded from the image by address.
#[derive(Debug)]
pub(crate) struct Scratch {
    ptr: *mut u8,
    len: usize,
}

impl Scratch {
    pub(crate) fn new(len: usize) -> std::io::Result<Self> {
        Self::map(len, rustix::mm::MapFlags::PRIVATE)
    }
    /// A shared anonymous mapping (what a forked writer writes there, its parent sees), with
    /// no swap reserved: only the pages written cost memory.
    pub(crate) fn new_shared(len: usize) -> std::io::Result<Self> {
        Self::map(
            len,
            rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::NORESERVE,
        )
    }
    fn map(len: usize, flags: rustix::mm::MapFlags) -> std::io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses aliases nothing.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                flags,
            )
        }?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
    pub(crate) fn range(&self) -> (u64, u64) {
        (self.ptr as u64, self.ptr as u64 + self.len as u64)
    }
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr..ptr+len` is a live read-write mapping owned by self; the borrow of
        // self makes the slice exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
    /// The mapping as 64-bit words (it is page-aligned).
    pub(crate) fn words(&mut self) -> &mut [u64] {
        // SAFETY: `ptr` is page-aligned (mmap), `ptr..ptr+len` is a live read-write mapping
        // owned by self, any bit pattern is a valid u64, and the borrow of self makes the
        // slice exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u64>(), self.len / 8) }
    }
    /// Word `i` of the mapping, read once from memory: another process (a forked writer)
    /// may have written it since the last look.
    pub(crate) fn word(&self, i: usize) -> u64 {
        assert!(i < self.len / 8, "word {i} is outside the mapping");
        // SAFETY: word `i` is inside the live mapping (checked), so the offset stays in it.
        let word = unsafe { self.ptr.cast::<u64>().add(i) };
        // SAFETY: `word` is aligned (the mapping is page-aligned) and readable; a volatile
        // read of a u64 there has no other requirement.
        unsafe { std::ptr::read_volatile(word) }
    }
    /// Forgets the mapping without unmapping it (in a restored process it does not exist).
    pub(crate) fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no slice into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// (soft, hard) limit of `resource`, or None if the kernel does not know it.
pub(crate) fn getrlimit(resource: u32) -> Option<(u64, u64)> {
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: with a null new limit, prlimit64 only writes the current one into `old`.
    let r = unsafe { libc::prlimit64(0, resource as _, std::ptr::null(), &mut old) };
    (r == 0).then_some((old.rlim_cur, old.rlim_max))
}

/// `dup3(src, target, O_CLOEXEC)` onto a number that `may_take` approved: either free, or
/// holding a placeholder this crate put there (see `restart::reserve_fds`).
pub(crate) fn dup_onto(src: BorrowedFd<'_>, target: RawFd) -> std::io::Result<()> {
    // SAFETY: dup3 takes no pointers; `src` is open for the call. The caller checked that
    // `target` is free or holds one of this crate's placeholders, which no object owns, so
    // replacing it invalidates nothing.
    let r = unsafe { libc::dup3(src.as_raw_fd(), target, libc::O_CLOEXEC) };
    if r == target {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Takes ownership of descriptor `fd`, which the restorer left open for this process and
/// which no object owns (the caller checked what it is; capture checked it was free).
pub(crate) fn take_restorer_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller checked that `fd` is open and is the restorer's hand-over memfd;
    // the image was captured with that number free, so nothing in this process owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Takes ownership of descriptor `fd`, which this process inherited across `exec` as its
/// control connection (`inherit`; the caller checked that it is an open socket).
pub(crate) fn take_inherited_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the descriptor was open before this program's first instruction (the previous
    // program of the process cleared its close-on-exec and named it), so no object of this
    // program opened it and none owns it; `inherit::TAKEN` lets it be taken only once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `fcntl` command that sets the signal of asynchronous I/O (Linux, `<fcntl.h>` with
/// `_GNU_SOURCE`; the libc crate does not define it).
const F_SETSIG: c_int = 10;

/// Has the kernel send `sig` to this process whenever `fd` becomes readable (or is closed by
/// its peer), or stops that (`on` false).
pub(crate) fn async_signal(fd: RawFd, sig: c_int, on: bool) -> std::io::Result<()> {
    let check = |r: c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: fcntl on a descriptor the caller owns, with integer arguments.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if on {
        let pid = std::process::id() as libc::pid_t;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETOWN, pid) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, F_SETSIG, sig) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) })?;
    } else {
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_ASYNC) })?;
    }
    Ok(())
}

/// Installs `handler` for `sig` with `SA_RESTART` (the program's interrupted system calls
/// that can be restarted are), unless the program has a handler of its own there; returns
/// whether `handler` is now the one.
pub(crate) fn install_handler(sig: c_int, handler: extern "C" fn(c_int)) -> std::io::Result<bool> {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: with a null new action sigaction only writes the current one into `old`.
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ours = handler as usize;
    if ![libc::SIG_DFL, libc::SIG_IGN, ours].contains(&old.sa_sigaction) {
        return Ok(false);
    }
    // SAFETY: as above.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = ours;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is initialised (an empty mask: only `sig` itself is blocked while the
    // handler runs); the old action is not wanted.
    if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(true)
}

/// Sends `sig` to the parent process if it is `expected` (a forked image writer to its rank,
/// not to whatever adopted the writer after its rank died). Async-signal-safe.
pub(crate) fn signal_parent(expected: u32, sig: c_int) {
    // SAFETY: getppid takes no arguments.
    let parent = unsafe { libc::getppid() };
    if parent as u32 == expected {
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(parent, sig) };
    }
}

/// `SO_PEEK_OFF` of a socket: −1 unless the program set a peek offset (a peek then starts
/// there, and moves it).
pub(crate) fn peek_offset(sock: BorrowedFd<'_>) -> std::io::Result<i32> {
    let mut v: c_int = -1;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to `v` and the length to `len`, both
    // locals live for the call.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEEK_OFF,
            (&mut v as *mut c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked child (the timer and the signal mask are the process's): a periodic real
    /// timer that expired while SIGALRM is blocked reads from the kernel as disarmed, and is
    /// saved as firing one interval on. Exit status 0 when so, 2 when the kernel did not read
    /// it as disarmed (the premise), 1 when it was not saved so.
    #[test]
    fn an_expired_periodic_real_timer_is_saved_as_firing_one_interval_on() {
        // SAFETY: the child only makes system calls and leaves through `_exit`, which is
        // what a fork of a multi-threaded process may do.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = (|| {
                let alrm: u64 = 1 << (libc::SIGALRM - 1);
                let timer = libc::itimerval {
                    it_interval: libc::timeval {
                        tv_sec: 0,
                        tv_usec: 20_000,
                    },
                    it_value: libc::timeval {
                        tv_sec: 0,
                        tv_usec: 1_000,
                    },
                };
                // SAFETY: rt_sigprocmask reads one 8-byte mask from `alrm`.
                unsafe {
                    libc::syscall(
                        libc::SYS_rt_sigprocmask,
                        libc::SIG_BLOCK,
                        &alrm as *const u64,
                        std::ptr::null_mut::<u64>(),
                        8,
                    )
                };
                // SAFETY: setitimer reads one itimerval from `timer`.
                unsafe {
                    libc::syscall(
                        libc::SYS_setitimer,
                        libc::ITIMER_REAL,
                        &timer as *const libc::itimerval,
                        std::ptr::null_mut::<libc::itimerval>(),
                    )
                };
                let pause = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 30_000_000,
                };
                // SAFETY: nanosleep reads `pause`; the remainder is not wanted.
                unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
                let mut raw = timer;
                // SAFETY: getitimer writes one itimerval into `raw`.
                unsafe { libc::syscall(libc::SYS_getitimer, libc::ITIMER_REAL, &mut raw) };
                if raw.it_value.tv_sec != 0 || raw.it_value.tv_usec != 0 {
                    return 2;
                }
                match getitimer(libc::ITIMER_REAL as u32) {
                    Some(t) if t.value_us == 20_000 && t.interval_us == 20_000 => 0,
                    _ => 1,
                }
            })();
            exit_now(code);
        }
        let mut status = 0;
        // SAFETY: waitpid writes the child's status into `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status),
            "the child did not exit: {status:#x}"
        );
        match libc::WEXITSTATUS(status) {
            0 => {}
            2 => panic!("the kernel did not read the expired timer as disarmed"),
            c => panic!("the expired timer was not saved as firing one interval on ({c})"),
        }
    }
}
