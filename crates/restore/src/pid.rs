//! Giving the restored process its old process id.
//!
//! Programs keep their pid: Python's asyncio ties its running loop to it, lock files and
//! temporary names carry it, glibc's thread block caches the thread id. When the image's pid
//! is free and the restorer may choose pids (`CAP_SYS_ADMIN`, e.g. root without a user
//! namespace), the restorer forks with `clone3(set_tid)` into a child that has that pid and
//! restores the image there. The parent, which whoever started `mpicr-restore` waits for,
//! becomes a *keeper*: it re-executes itself as `mpicr-restore --keep PID` (dropping its
//! memory and descriptors), passes every signal it gets on to the restored process and ends
//! as it ends (the same exit status, or killed by the same signal). The restored process is
//! killed if its keeper dies. Otherwise the image is restored with the restorer's new pid, as
//! before: nothing in mpicr itself depends on the pid.

use std::os::unix::process::CommandExt;

use crate::sys;

/// The flag of the keeper mode.
pub(crate) const KEEP_FLAG: &str = "--keep";

/// Continues in a process whose pid is `old` when possible: returns in that child, and never
/// returns in this process, which becomes its keeper. Returns here (with a note for the
/// statistics) when the pid cannot be had.
pub(crate) fn take_back(old: u32) -> Result<(), String> {
    let me = rustix::process::getpid().as_raw_nonzero().get() as u32;
    if old == 0 || old == me {
        return Ok(());
    }
    match sys::fork_with_pid(old) {
        Ok(0) => {
            sys::die_with_parent().map_err(|e| format!("cannot tie to the keeper: {e}"))?;
            // The keeper may have ended before the tie: then nobody waits for this process.
            if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(me) {
                std::process::exit(1);
            }
            crate::stats::mark("pid");
            Ok(())
        }
        Ok(child) => {
            let err = std::process::Command::new("/proc/self/exe")
                .arg0("mpicr-restore")
                .args([KEEP_FLAG, &child.to_string()])
                .exec();
            let _ = sys::send_signal(child, libc::SIGKILL);
            Err(format!("cannot become the keeper of pid {child}: {err}"))
        }
        // Taken, or not ours to choose (EPERM), or a kernel without clone3's set_tid.
        Err(_) => Ok(()),
    }
}

/// The keeper: waits for the restored process `pid` (its child), passes on every signal it
/// receives, and ends as the child ends. Never returns.
pub(crate) fn keep(pid: &str) -> ! {
    let Ok(pid) = pid.parse::<u32>() else {
        crate::fail(&format!("{KEEP_FLAG} needs a process id, not {pid:?}"));
    };
    close_all_but_stdio();
    if let Err(e) = sys::block_all_signals() {
        crate::fail(&format!("cannot block signals: {e}"));
    }
    // Every signal but those that cannot be caught and the child's own SIGCHLD.
    let passed = !((1u64 << (libc::SIGKILL - 1))
        | (1u64 << (libc::SIGSTOP - 1))
        | (1u64 << (libc::SIGCHLD - 1)));
    let signals = sys::new_signalfd(passed, true)
        .unwrap_or_else(|e| crate::fail(&format!("cannot receive signals: {e}")));
    let Some(child) = rustix::process::Pid::from_raw(pid as i32) else {
        crate::fail("the restored process has pid 0");
    };
    let ended = rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty())
        .unwrap_or_else(|e| crate::fail(&format!("cannot watch pid {pid}: {e}")));
    loop {
        use rustix::event::{PollFd, PollFlags};
        let mut fds = [
            PollFd::new(&signals, PollFlags::IN),
            PollFd::new(&ended, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => crate::fail(&format!("cannot wait for pid {pid}: {e}")),
        }
        let mut info = [0u8; 128];
        while let Ok(128) = rustix::io::read(&signals, &mut info) {
            let sig = i32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
            let _ = sys::send_signal(pid, sig);
        }
        let status = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::NOHANG);
        match status {
            Ok(Some((_, st))) => {
                if let Some(sig) = st.terminating_signal() {
                    sys::default_and_unblock(sig);
                    let me = rustix::process::getpid().as_raw_nonzero().get() as u32;
                    let _ = sys::send_signal(me, sig);
                    std::process::exit(128 + sig);
                }
                if let Some(code) = st.exit_status() {
                    std::process::exit(code);
                }
            }
            Ok(None) => {}
            Err(e) => crate::fail(&format!("cannot wait for pid {pid}: {e}")),
        }
    }
}

/// Closes every descriptor above stdio, so that the keeper holds nothing of the restored
/// process open (its connections must end when it ends).
fn close_all_but_stdio() {
    for fd in sys::open_descriptors().unwrap_or_default() {
        if fd > 2 {
            sys::close_unowned(fd);
        }
    }
}
