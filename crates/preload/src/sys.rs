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

unsafe extern "C" {
    /// The process environment (environ(7)).
    static mut environ: *mut *mut c_char;
}

/// The slots of `environ`, in order, ending with the one that holds its terminating null.
///
/// The environment is read and changed here, not through `getenv`/`unsetenv`: a program may
/// define those itself, and bash does, over its table of shell variables. Its `unsetenv`,
/// called from this library's constructor before bash's `main`, leaves `environ` as it is, so
/// bash would import (and export to every child) what this library meant to take away.
/// Everything here runs in the constructor or with the checkpoint signal blocked, when nothing
/// else of this process reads or changes the environment.
fn environ_slots() -> Vec<*mut *mut c_char> {
    // SAFETY: a plain read of the pointer (no reference to the static is made).
    let base = unsafe { environ };
    let mut slots = Vec::new();
    if base.is_null() {
        return slots;
    }
    for i in 0.. {
        // SAFETY: `environ` is a NULL-terminated array and no slot before `i` held the null.
        let slot = unsafe { base.add(i) };
        slots.push(slot);
        // SAFETY: `slot` is inside the array (above).
        if unsafe { *slot }.is_null() {
            break;
        }
    }
    slots
}

/// The entries of `environ` (`NAME=value` strings), in order, and its slots (`environ_slots`).
fn environ_entries() -> (Vec<*mut *mut c_char>, Vec<*mut c_char>) {
    let slots = environ_slots();
    let entries = slots
        .iter()
        // SAFETY: every slot is inside the array (`environ_slots`).
        .map(|&slot| unsafe { *slot })
        .take_while(|entry| !entry.is_null())
        .collect();
    (slots, entries)
}

/// The bytes of one entry of `environ`.
fn entry_bytes<'a>(entry: *mut c_char) -> &'a [u8] {
    // SAFETY: `entry` is one of environ's NUL-terminated strings, which live as long as the
    // process and are not changed while this library looks at them.
    unsafe { CStr::from_ptr(entry) }.to_bytes()
}

/// The value of `name` in `environ`, if set and valid UTF-8.
pub(crate) fn env_var(name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    environ_entries().1.into_iter().find_map(|entry| {
        let value = entry_bytes(entry).strip_prefix(prefix.as_bytes())?;
        String::from_utf8(value.to_vec()).ok()
    })
}

/// Removes `name` from `environ` (every entry), moving the later entries down, as glibc's
/// `unsetenv` does; with `keep`, the first entry is rewritten in place to `name=keep`
/// instead, which must not be longer than what it replaces (else it is removed too).
pub(crate) fn env_remove_or_shorten(name: &str, keep: Option<&str>) {
    let prefix = format!("{name}=");
    let (slots, entries) = environ_entries();
    let mut keep = keep;
    let mut left: Vec<*mut c_char> = Vec::with_capacity(slots.len());
    for entry in entries {
        let bytes = entry_bytes(entry);
        if !bytes.starts_with(prefix.as_bytes()) {
            left.push(entry);
            continue;
        }
        if let Some(value) = keep
            .take()
            .filter(|v| prefix.len() + v.len() <= bytes.len())
        {
            // SAFETY: the entry has `bytes.len()` bytes and its NUL after them; the new value
            // and its NUL end at or before that NUL (checked above).
            let at = unsafe { entry.cast::<u8>().add(prefix.len()) };
            // SAFETY: as above; `value` is a Rust string, never inside the environment.
            unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), at, value.len()) };
            // SAFETY: as above: the new end is inside the entry.
            let end = unsafe { at.add(value.len()) };
            // SAFETY: as above.
            unsafe { end.write(0) };
            left.push(entry);
        }
    }
    left.push(std::ptr::null_mut());
    for (slot, entry) in slots.into_iter().zip(left) {
        // SAFETY: `left` has no more entries than `slots` (it only loses entries), so every
        // slot written is inside the array, and the last one written is its new terminator.
        unsafe { slot.write(entry) };
    }
}
