//! `libmpicr_preload.so`: the mpicr runtime for a program that does not use MPI, so that
//! `mpicr run --crs image` can checkpoint it (issue 5; ARCHITECTURE.md, "Programs without MPI").
//!
//! `mpicr run --crs image` puts this library in the ranks' `LD_PRELOAD`. Its constructor
//! (`init`) runs before the program's `main`:
//!
//! 1. It takes itself out of `LD_PRELOAD`, so that programs the rank's children execute do
//!    not load it (the rank's own `exec` puts it back: `exec`). It reads and changes
//!    `environ` itself (`sys::env_var`), since the program may define `getenv`/`unsetenv`
//!    (bash does).
//! 2. It stays out of a process that joins the job by itself: one with libmpi loaded, or whose
//!    executable carries the engine (`detect`).
//! 3. Otherwise it joins the job as its rank (REGISTER, then REFRESH; `job`), or takes over the
//!    registered connection the previous program of this process handed over across `exec`
//!    (`image::inherit`), installs the handler of the checkpoint signal (`image::attention::signal`)
//!    and has the kernel send that signal whenever the coordinator writes to the control
//!    connection (`O_ASYNC`, `F_SETOWN`, `F_SETSIG`).
//!
//! When the rank executes another program (the exec family, wrapped in `c/exec.c`), `exec`
//! hands the connection over to it: the wrapper `sh -c 'exec ./prog'`, `env X=1 ./prog` or a
//! script ending in `exec ./prog` is the rank only until the program it executes takes over.
//!
//! A checkpoint request thus interrupts the program wherever it is; the handler (`handler`)
//! answers it and captures the process image from inside the handler, waiting for the forked
//! writer. In a restored process the capture returns into the handler, which joins the new
//! job through the restorer's hand-over and returns to the program. At exit the rank tells
//! the coordinator (EXIT) from an `atexit` handler.
//!
//! The program may be inside malloc (or any libc function) when the signal arrives, so nothing
//! the handler runs may use libc's allocator or locks: every Rust allocation of this library
//! goes to its own allocator (dlmalloc on private mappings, below), and the capture uses only
//! system calls and `_Fork` (`image::capture_in_child_chained`). The library's state is touched
//! only by the handler and by `init`/`at_exit`, during which the signal is blocked.

mod detect;
mod exec;
mod handler;
mod job;
mod sys;

/// The library's own allocator: the handler may run while the program is inside libc's
/// malloc, whose locks and lists are then in an unknown state.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Runs as the library is loaded, before the program's `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    let library = job::forget_preload_variable();
    if sys::env_var("MPICR_CRS").as_deref() != Some("image") || sys::env_var("MPICR_RANK").is_none()
    {
        return;
    }
    if detect::runtime_present() {
        // `engine::join` takes over a control connection handed over across exec.
        return;
    }
    handler::start(library, job::take_inherited_variable());
}
