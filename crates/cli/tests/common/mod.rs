//! Test harness: run the real `mpicr` binaries in a private runtime directory, with a marker
//! in the environment of every process they start so that leftovers can be found in /proc,
//! and with guards that kill everything a test started even when the test fails.
#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Upper bound for anything a test waits for; reaching it fails the test instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const MPICR: &str = env!("CARGO_BIN_EXE_mpicr");
pub const MPIRUN: &str = env!("CARGO_BIN_EXE_mpirun");
pub const MPIEXEC: &str = env!("CARGO_BIN_EXE_mpiexec");
pub const TEST_RANK: &str = env!("CARGO_BIN_EXE_mpicr-test-rank");
pub const MPI_CHECKPOINT: &str = env!("CARGO_BIN_EXE_mpi_checkpoint");
pub const MPI_RESTART: &str = env!("CARGO_BIN_EXE_mpi_restart");

/// A private `XDG_RUNTIME_DIR` and a marker unique to one test.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub marker: String,
}

impl Sandbox {
    pub fn new(test: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let marker = format!("mpicr-test-{}-{n}-{test}", std::process::id());
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            marker,
        }
    }

    /// The runtime directory `mpicr` uses in this sandbox.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("mpicr")
    }

    /// The `XDG_STATE_HOME` of the sandbox, under which the default snapshot directory is.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The default snapshot directory of the sandbox.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.state_dir().join("mpicr/snapshots")
    }

    /// A command for one of the binaries, with the sandbox's environment.
    pub fn command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        let bin_dir = Path::new(TEST_RANK)
            .parent()
            .expect("the binaries' directory");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir.to_owned()];
        dirs.extend(std::env::split_paths(&path));
        command
            .args(args)
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env("XDG_STATE_HOME", self.state_dir())
            .env_remove("MPICR_SNAPSHOT_DIR")
            .env("PATH", std::env::join_paths(dirs).expect("a PATH"))
            .env("MPICR_TEST_MARKER", &self.marker)
            .env_remove("MPICR_LOG");
        command
    }

    /// Starts `mpicr ARGS` in the background.
    pub fn start(&self, args: &[&str]) -> Running {
        self.start_command(self.command(MPICR, args), None)
    }

    /// Starts a command in the background, with `stdin` as its input (none: /dev/null).
    pub fn start_command(&self, mut command: Command, stdin: Option<Vec<u8>>) -> Running {
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Running {
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
            marker: self.marker.clone(),
        }
    }

    /// Runs `mpicr ARGS` to its end.
    pub fn run(&self, args: &[&str]) -> Finished {
        self.start(args).wait()
    }

    /// Runs a command to its end with `stdin` as input.
    pub fn run_command(&self, command: Command, stdin: Option<Vec<u8>>) -> Finished {
        self.start_command(command, stdin).wait()
    }

    /// Pids of live processes carrying this sandbox's marker.
    pub fn marked(&self) -> Vec<i32> {
        marked_processes(&self.marker)
    }

    /// Fails unless every process with the marker is gone within the timeout.
    pub fn assert_nothing_left(&self) {
        wait_until("every process of the job to be gone", || {
            self.marked().is_empty()
        });
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        kill_marked(&self.marker);
    }
}

/// A running binary. Dropping it kills it and every process with the sandbox's marker.
pub struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    marker: String,
}

/// How a binary ended and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The lines of stderr, checked to be free of Rust panic output.
    pub fn stderr_lines(&self) -> Vec<&str> {
        assert!(
            !self.stderr.contains("panicked"),
            "a panic: {}",
            self.stderr
        );
        self.stderr.lines().collect()
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.pid()).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("the signal is sent");
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .expect("running")
            .try_wait()
            .expect("try_wait")
            .is_none()
    }

    /// Waits (at most [`TIMEOUT`]) for the end and collects the output.
    pub fn wait(mut self) -> Finished {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the command did not end within {TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = join_output(self.stdout.take());
        let stderr = join_output(self.stderr.take());
        Finished {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    /// A process not waited for (the test failed on the way) is killed with its job; one that
    /// was waited for leaves the sandbox's other processes alone.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            kill_marked(&self.marker);
        }
    }
}

fn collect(mut source: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        bytes
    })
}

/// The output of a finished process; a leftover that still holds the pipe makes this wait,
/// so it is bounded too.
fn join_output(handle: Option<JoinHandle<Vec<u8>>>) -> String {
    let handle = handle.expect("collected once");
    let deadline = Instant::now() + TIMEOUT;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "output pipes were not closed within {TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    String::from_utf8_lossy(&handle.join().expect("collector")).into_owned()
}

/// Polls `condition` until it holds; fails the test after [`TIMEOUT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(25));
    }
}

/// Live processes whose environment holds `MPICR_TEST_MARKER=<marker>`.
pub fn marked_processes(marker: &str) -> Vec<i32> {
    let needle = format!("MPICR_TEST_MARKER={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

/// Processes with the marker whose command name is `comm`.
pub fn marked_named(marker: &str, comm: &str) -> Vec<i32> {
    marked_processes(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

fn kill_marked(marker: &str) {
    for pid in marked_processes(marker) {
        if let Some(pid) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
}

/// Whether `path` exists (a dangling link counts).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The shared-memory directory of job `name` for this uid, started by launcher `pid`.
pub fn shm_dir(name: &str, pid: impl std::fmt::Display) -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    PathBuf::from(format!("/dev/shm/mpicr-{uid}-{name}-{pid}"))
}

/// The `.sock` entries of a runtime directory.
pub fn sockets(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock"))
        .collect();
    names.sort();
    names
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}
