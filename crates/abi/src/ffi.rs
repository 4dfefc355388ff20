//! The trust boundary between C/Fortran callers and the library.
//!
//! Every raw pointer a caller passes reaches the rest of the crate only through the helpers
//! here (except the regions of MPIX_Ckpt_protect, which `ckpt` keeps across calls under a
//! contract of its own). Their invariant is the MPI standard's contract on the caller: a
//! pointer argument is null or points to memory of the documented type and length (for a
//! buffer: the memory that `count` elements of `datatype` describe), valid for the duration
//! of the call (for a non-blocking operation: until the request completes). Null is checked
//! here wherever MPI allows it to be detected; everything else is the caller's promise, which
//! no C library can check. No helper panics.

use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::handles::{COMM_WORLD, ERRORS_RETURN, err};
use crate::state;

/// An MPI error: its class and a one-line description naming the problem.
#[derive(Debug, Clone)]
pub(crate) struct Error {
    pub class: i32,
    pub msg: String,
}

pub(crate) type Res<T = ()> = Result<T, Error>;

pub(crate) fn error(class: i32, msg: impl Into<String>) -> Error {
    Error {
        class,
        msg: msg.into(),
    }
}

/// Returns early with an MPI error of class `$class`.
macro_rules! bail {
    ($class:expr, $($fmt:tt)+) => {
        return Err($crate::ffi::error($class, format!($($fmt)+)))
    };
}
pub(crate) use bail;

impl From<engine::EngineError> for Error {
    fn from(e: engine::EngineError) -> Self {
        use engine::EngineError as E;
        let class = match &e {
            E::Truncated { .. } => err::TRUNCATE,
            E::InvalidRank { .. } => err::RANK,
            E::InvalidTag(_) => err::TAG,
            E::InactiveRequest(_) => err::REQUEST,
            E::BufferMismatch(_) => err::COUNT,
            _ => err::OTHER,
        };
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        error(class, msg)
    }
}

/// Runs the body of MPI function `name`; errors go to the error handler of `comm` (of
/// MPI_COMM_WORLD when `None`), panics are caught and reported as MPI_ERR_INTERN.
pub(crate) fn guard(name: &str, comm: Option<i32>, body: impl FnOnce() -> Res) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => err::SUCCESS,
        Ok(Err(e)) => report(name, comm, e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            report(
                name,
                comm,
                error(err::INTERN, format!("internal error: {what}")),
            )
        }
    }
}

fn report(name: &str, comm: Option<i32>, e: Error) -> c_int {
    if state::errhandler_of(comm.unwrap_or(COMM_WORLD)) == ERRORS_RETURN {
        e.class
    } else {
        fatal(name, &e)
    }
}

/// ERRORS_ARE_FATAL: one line on stderr, then the job is aborted.
pub(crate) fn fatal(name: &str, e: &Error) -> ! {
    let rank = state::world_rank();
    let line = format!("{name}: rank {rank}: {}", e.msg);
    eprintln!("mpicr: {line}");
    state::abort_job(e.class.max(1), &line)
}

/// Writes `value` through `p` unless `p` is null.
pub(crate) fn put<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: non-null output arguments point to a writable T (module invariant);
        // unaligned writes are used because Fortran callers may pass packed storage.
        unsafe { p.write_unaligned(value) }
    }
}

/// Reads the T that `p` points to; null is an MPI_ERR_ARG error naming `what`.
pub(crate) fn get<T: Copy>(p: *const T, what: &str) -> Res<T> {
    if p.is_null() {
        bail!(err::ARG, "{what} is a null pointer");
    }
    // SAFETY: non-null input arguments point to a readable T (module invariant).
    Ok(unsafe { p.read_unaligned() })
}

/// `n` Ts from `p` (an array argument); null with `n > 0` is an error naming `what`.
pub(crate) fn slice<'a, T>(p: *const T, n: usize, what: &str) -> Res<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        bail!(err::ARG, "{what} is a null pointer");
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        bail!(err::ARG, "{what} is not aligned for its element type");
    }
    // SAFETY: array arguments hold `n` readable Ts for the call (module invariant); null and
    // misalignment were excluded above.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// `n` writable Ts at `p` (an array output argument).
pub(crate) fn slice_mut<'a, T>(p: *mut T, n: usize, what: &str) -> Res<&'a mut [T]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        bail!(err::ARG, "{what} is a null pointer");
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        bail!(err::ARG, "{what} is not aligned for its element type");
    }
    // SAFETY: array outputs hold `n` writable Ts that nothing else accesses during the call
    // (module invariant); null and misalignment were excluded above.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// The `len` bytes of a user buffer at address `addr` (a message's data).
pub(crate) fn user_bytes<'a>(addr: usize, len: usize) -> &'a [u8] {
    if len == 0 || addr == 0 {
        return &[];
    }
    // SAFETY: the caller derived `addr..addr+len` from (buffer, count, datatype) arguments,
    // which MPI requires to describe readable memory for the operation's duration.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
}

/// The `len` bytes of a user receive buffer at address `addr`.
pub(crate) fn user_bytes_mut<'a>(addr: usize, len: usize) -> &'a mut [u8] {
    if len == 0 || addr == 0 {
        return &mut [];
    }
    // SAFETY: as in `user_bytes`, for a receive buffer, which MPI forbids the program to
    // access until the operation completes, so this is the only live view.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

/// A NUL-terminated C string argument (empty when null).
pub(crate) fn c_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: string arguments are NUL-terminated (module invariant).
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    s.to_string_lossy().into_owned()
}

/// Copies `s` (cut to `cap - 1` bytes) and a NUL into the `cap`-byte buffer at `p`; returns the
/// length written without the NUL.
pub(crate) fn write_c_string(p: *mut c_char, cap: usize, s: &str) -> Res<usize> {
    let n = s.len().min(cap.saturating_sub(1));
    let out = slice_mut(p.cast::<u8>(), n + 1, "the string buffer")?;
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out[n] = 0;
    Ok(n)
}

/// Copies `s` into a blank-padded Fortran CHARACTER of `cap` bytes; returns the length of `s`
/// written.
pub(crate) fn write_f_string(p: *mut c_char, cap: usize, s: &str) -> Res<usize> {
    let out = slice_mut(p.cast::<u8>(), cap, "the string buffer")?;
    let n = s.len().min(cap);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out[n..].fill(b' ');
    Ok(n)
}

pub(crate) fn to_usize(v: c_int, what: &str) -> Res<usize> {
    usize::try_from(v).map_err(|_| error(err::COUNT, format!("{what} {v} is negative")))
}
