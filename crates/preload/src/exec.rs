//! The rank's registration carried across `exec` (ARCHITECTURE.md, "Programs without MPI").
//!
//! A wrapper (`sh -c 'exec ./prog'`, `env X=1 ./prog`, a script ending in `exec ./prog`) is the
//! rank only until it executes the real program. Every member of the exec family that replaces
//! this process is wrapped (`c/exec.c`, in C because stable Rust cannot define the variadic
//! `execl`, `execlp` and `execle`); each wrapper calls [`mpicr_preload_exec_begin`] for the
//! environment the new program gets, the real function, and, if that returns (the exec
//! failed), [`mpicr_preload_exec_failed`].
//!
//! Before the exec the rank finishes what the coordinator has started: a checkpoint whose count
//! went out waits for its CHECKPOINT_AT (and is taken) or its cancel, and a frame that has
//! partly arrived is read whole, since this library's buffer does not survive the exec. What
//! the coordinator sends later stays in the connection. Then the connection stops raising the
//! checkpoint signal (`O_ASYNC` off), the instances already raised are discarded (the signal's
//! action resets to the default, termination, at exec), close-on-exec is cleared, and the new
//! environment names the descriptor ([`image::CONTROL_FD_VAR`]) and puts this library back in
//! `LD_PRELOAD`. The program's signal mask is its own again before the real exec, and the
//! handler leaves the connection alone meanwhile. The new program takes the connection over:
//! this library's constructor in a program without MPI (`handler::start`, which reads what
//! arrived meanwhile), `engine::join` in an MPI program.
//!
//! The hand-over happens only when the process is the rank and the new environment names this
//! rank (`MPICR_RANK`): a forked child executing a program is not the rank, and an environment
//! without the rank (`env -i`) cannot make the new program one; the connection then closes at
//! the exec as before (its checkpoints fail: "rank R is not connected to the coordinator").

use rustix::io::FdFlags;
use std::ffi::{CStr, CString, c_char};

use crate::handler::{self, Rank};
use crate::{job, sys};

/// The environment handed to the new program, kept until the exec succeeds or fails.
pub(crate) struct Handover {
    /// The strings `pointers` points into.
    _strings: Vec<CString>,
    /// NULL-terminated, as `execve` takes it.
    pointers: Vec<*const c_char>,
}

/// Called by every exec wrapper before the real exec: the environment to pass (`envp` itself
/// when nothing is handed over).
#[unsafe(no_mangle)]
pub(crate) extern "C" fn mpicr_preload_exec_begin(
    envp: *const *const c_char,
) -> *const *const c_char {
    // A vfork child shares this memory: it is not the rank, and nothing may change here.
    let Some(r) = handler::rank() else {
        return envp;
    };
    if r.pid != std::process::id() || r.closed || r.handover.is_some() {
        return envp;
    }
    let mask = sys::block(image::attention::signal());
    // SAFETY: `envp` is what the exec's caller passed: null or a NULL-terminated array of
    // C strings, valid while the exec call lasts, which outlasts every use here.
    let entries = unsafe { sys::c_string_array(envp) };
    let prepared = prepare(&entries);
    sys::set_mask(&mask);
    prepared.unwrap_or(envp)
}

/// Called by every exec wrapper when the real exec returned: the rank keeps its connection.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn mpicr_preload_exec_failed() {
    let Some(r) = handler::rank() else {
        return;
    };
    if r.pid != std::process::id() || r.handover.is_none() {
        return;
    }
    let sig = image::attention::signal();
    let mask = sys::block(sig);
    r.handover = None;
    let fd = r.control.as_fd();
    let armed = rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .and_then(|()| image::attention::async_signal(r.control.raw_fd(), sig, true));
    match armed {
        // What arrived while the signal was off raised none.
        Ok(()) => handler::serve_caught(),
        Err(e) => {
            handler::say(&format!(
                "cannot arm the checkpoint signal again after a failed exec: {e}"
            ));
            r.close();
        }
    }
    sys::set_mask(&mask);
}

/// With the checkpoint signal blocked: settles the connection and builds the new program's
/// environment from `entries`; `None` when nothing is handed over.
fn prepare(entries: &[&CStr]) -> Option<*const *const c_char> {
    let r = settle()?;
    let rank = format!("MPICR_RANK={}", r.rank);
    if !entries.iter().any(|e| e.to_bytes() == rank.as_bytes()) {
        return None;
    }
    let sig = image::attention::signal();
    image::attention::async_signal(r.control.raw_fd(), sig, false).ok()?;
    sys::discard_pending(sig);
    if rustix::io::fcntl_setfd(r.control.as_fd(), FdFlags::empty()).is_err() {
        let _ = image::attention::async_signal(r.control.raw_fd(), sig, true);
        return None;
    }
    let strings = environment(entries, r);
    let mut pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    pointers.push(std::ptr::null());
    let handover = r.handover.insert(Handover {
        _strings: strings,
        pointers,
    });
    Some(handover.pointers.as_ptr())
}

/// Serves the coordinator until no checkpoint is half answered and no frame half read; the
/// rank, or `None` when its connection is gone. A checkpoint taken here is restored here too,
/// and the exec goes on with the new job's connection.
fn settle() -> Option<&'static mut Rank> {
    loop {
        handler::serve_caught();
        let r = handler::rank()?;
        if r.closed {
            return None;
        }
        if r.pending.is_none() && !r.control.has_partial_frame() {
            return Some(r);
        }
        let fd = r.control.as_fd();
        let mut wait = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let _ = rustix::event::poll(&mut wait, None);
    }
}

/// `entries` with the hand-over: [`image::CONTROL_FD_VAR`] naming the connection, and this
/// library first in `LD_PRELOAD` again.
fn environment(entries: &[&CStr], r: &Rank) -> Vec<CString> {
    let fd_var = format!("{}=", image::CONTROL_FD_VAR);
    let mut preload_rest = String::new();
    let mut out: Vec<CString> = Vec::with_capacity(entries.len() + 2);
    for entry in entries {
        let bytes = entry.to_bytes();
        if let Some(value) = bytes.strip_prefix(b"LD_PRELOAD=") {
            preload_rest = job::split_preload(&String::from_utf8_lossy(value)).1;
        } else if !bytes.starts_with(fd_var.as_bytes()) {
            out.push((*entry).to_owned());
        }
    }
    let preload = match (&r.library, preload_rest.is_empty()) {
        (Some(ours), true) => Some(ours.clone()),
        (Some(ours), false) => Some(format!("{ours}:{preload_rest}")),
        (None, false) => Some(preload_rest),
        (None, true) => None,
    };
    let handover = image::handover_value(r.control.raw_fd(), r.pid);
    let added = preload
        .map(|p| format!("LD_PRELOAD={p}"))
        .into_iter()
        .chain([format!("{fd_var}{handover}")]);
    out.extend(added.filter_map(|v| CString::new(v).ok()));
    out
}
