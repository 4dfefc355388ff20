//! The C library and system calls the preloaded runtime needs that rustix does not cover:
//! signal actions and masks, errno, atexit, dlsym, and the environment arrays of the exec
//! family (asynchronous I/O on a descriptor is `image::attention`'s).

use std::ffi::{CStr, c_char, c_int, c_void};

/// A signal handler with `SA_SIGINFO`'s arguments.
pub(crate) type Handler = extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);

/// Whether `name` is a symbol of some loaded object.
pub(crate) fn global_symbol(name: &CStr) -> bool {
    // SAFETY: `name` is NUL-terminated; dlsym only looks the name up.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    !sym.is_null()
}

/// Installs `handler` for `sig` with every signal blocked while it runs (so that the program's
/// own handlers never run inside a capture) and `SA_RESTART` (so that the program's
/// interrupted system calls that can be restarted are).
pub(crate) fn install(sig: c_int, handler: Handler) -> std::io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `sa_mask` is a valid sigset_t inside `action`.
    unsafe { libc::sigfillset(&mut action.sa_mask) };
    // SAFETY: `action` is initialised; the old action is not wanted.
    let r = unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Blocks (`block`) or unblocks `sig` in this thread.
pub(crate) fn set_blocked(sig: c_int, block: bool) {
    // SAFETY: an all-zero sigset_t is a valid value to fill in.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: as above; `sig` is a valid signal number.
    unsafe { libc::sigaddset(&mut set, sig) };
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: `set` is initialised; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
}

/// Blocks `sig` in this thread and returns the mask it replaced, for [`set_mask`].
pub(crate) fn block(sig: c_int) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value to fill in.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: as above; `sig` is a valid signal number.
    unsafe { libc::sigaddset(&mut set, sig) };
    // SAFETY: both sets are initialised; the kernel writes the old mask into `old`.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    old
}

/// Sets this thread's signal mask to `mask` (one [`block`] returned).
pub(crate) fn set_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is an initialised sigset_t; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// Takes every pending instance of `sig`, which must be blocked, without handling it: after
/// the control connection stops raising it, what it announced is in the connection itself.
pub(crate) fn discard_pending(sig: c_int) {
    // SAFETY: an all-zero sigset_t is a valid value to fill in.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: as above; `sig` is a valid signal number.
    unsafe { libc::sigaddset(&mut set, sig) };
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `set` and `now` are initialised; no siginfo is wanted. With a zero timeout the
    // call only takes an instance already pending.
    while unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &now) } == sig {}
}

/// The strings of a NULL-terminated array of C strings (an exec's `envp`); none for a null
/// array.
///
/// # Safety
/// `array` is null or points to a NULL-terminated array of pointers to NUL-terminated
/// strings, all valid for `'a` (what a C caller passes to `execve`).
pub(crate) unsafe fn c_string_array<'a>(array: *const *const c_char) -> Vec<&'a CStr> {
    let mut out = Vec::new();
    if array.is_null() {
        return out;
    }
    for i in 0.. {
        // SAFETY: the array is NULL-terminated (the contract) and the loop stops at the NULL,
        // so entry `i` is inside it.
        let slot = unsafe { array.add(i) };
        // SAFETY: as above: `slot` points to an initialised entry of the array.
        let entry = unsafe { *slot };
        if entry.is_null() {
            break;
        }
        // SAFETY: a non-null entry points to a NUL-terminated string valid for 'a.
        out.push(unsafe { CStr::from_ptr(entry) });
    }
    out
}

/// The calling thread's errno, which a signal handler must leave as it found it.
pub(crate) fn errno() -> c_int {
    // SAFETY: __errno_location has no preconditions.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: `slot` is this thread's errno, valid for the thread's life.
    unsafe { *slot }
}

pub(crate) fn set_errno(value: c_int) {
    // SAFETY: as in `errno`.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: as in `errno`.
    unsafe { *slot = value };
}

/// Runs `f` when the program calls `exit` (or returns from `main`).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function of this library, which is never unloaded.
    unsafe { libc::atexit(f) };
}

/// SIGCHLD's disposition set to the default while the image writer runs, and put back after:
/// a program that ignores SIGCHLD would have the kernel reap the writer, whose exit status
/// says whether the image is complete. The image records the default; the handler of a
/// restored process puts the program's back the same way.
pub(crate) struct ChildSignal {
    saved: libc::sigaction,
}

impl ChildSignal {
    pub(crate) fn default_while_writing() -> Self {
        // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, no flags, empty mask).
        let default: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above, filled in by the kernel.
        let mut saved: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both structures are initialised.
        unsafe { libc::sigaction(libc::SIGCHLD, &default, &mut saved) };
        Self { saved }
    }

    pub(crate) fn restore(self) {
        // SAFETY: `saved` is what the kernel reported.
        unsafe { libc::sigaction(libc::SIGCHLD, &self.saved, std::ptr::null_mut()) };
    }
}

/// Ends the process at once (a restored rank that cannot join its new job).
pub(crate) fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}
