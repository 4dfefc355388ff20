//! Starting one rank process: the only place in this crate with `unsafe` code, because the
//! parent-death signal can only be set between `fork` and `exec` (`CommandExt::pre_exec`).
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rustix::process::{Pid, Signal};
use rustix::thread::CpuSet;

/// Everything needed to start one rank.
#[derive(Debug)]
pub(crate) struct RankCommand<'a> {
    pub(crate) program: &'a Path,
    pub(crate) arg0: &'a OsString,
    pub(crate) args: &'a [OsString],
    pub(crate) env: Vec<(OsString, OsString)>,
    /// Start from an empty environment rather than the launcher's.
    pub(crate) clear_env: bool,
    pub(crate) cwd: Option<&'a Path>,
    /// 0 makes the new process the leader of a new process group; otherwise the group to join.
    pub(crate) process_group: i32,
    pub(crate) stdin: Stdio,
    /// The CPUs the rank may run on (`--bind-to`); `None` leaves the launcher's.
    pub(crate) cpus: Option<CpuSet>,
}

/// Starts the rank with piped stdout and stderr. The child dies with SIGKILL when the thread
/// that called this function ends, so call it from a thread that lives as long as the job.
pub(crate) fn spawn(rank: RankCommand<'_>) -> io::Result<Child> {
    let mut command = Command::new(rank.program);
    if rank.clear_env {
        command.env_clear();
    }
    if let Some(cwd) = rank.cwd {
        command.current_dir(cwd);
    }
    command
        .arg0(rank.arg0)
        .args(rank.args)
        .envs(rank.env)
        .stdin(rank.stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(rank.process_group);
    let parent = rustix::process::getpid();
    let cpus = rank.cpus;
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // work is allowed because another thread of the parent may have held a lock (of the
    // allocator, say) at the moment of the fork. The hook captures a plain `Pid` and a
    // `CpuSet` (a fixed-size bit array, `Copy`) and makes at most three system calls,
    // prctl(PR_SET_PDEATHSIG), getppid and sched_setaffinity, through rustix's raw syscall
    // wrappers; on failure it builds an `io::Error` from an errno, which does not allocate.
    // Nothing else runs in the hook.
    unsafe {
        command.pre_exec(move || {
            die_with_parent(parent)?;
            match &cpus {
                Some(set) => rustix::thread::sched_setaffinity(None, set).map_err(io::Error::from),
                None => Ok(()),
            }
        });
    }
    command.spawn()
}

/// Makes the kernel send SIGKILL to this (child) process when its parent thread ends, and
/// closes the race where the parent died before the request took effect.
fn die_with_parent(parent: Pid) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if rustix::process::getppid() != Some(parent) {
        return Err(io::Error::from(rustix::io::Errno::SRCH));
    }
    Ok(())
}
