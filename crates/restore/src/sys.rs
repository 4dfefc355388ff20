//! Raw system calls the restorer's preparation needs that rustix does not wrap (or wraps as
//! unsafe for reasons that do not apply here).

use std::ffi::c_long;
use std::os::fd::{AsRawFd, OwnedFd};

use image::format::SigAction;

/// Blocks every signal for the calling thread.
pub(crate) fn block_all_signals() -> std::io::Result<()> {
    let all: u64 = u64::MAX;
    // SAFETY: rt_sigprocmask reads 8 bytes from `all`; no old set is requested.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as c_long,
            &all as *const u64,
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
