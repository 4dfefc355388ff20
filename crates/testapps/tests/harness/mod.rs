//! Runs real `mpicr` jobs for the tests: a private runtime directory per job, a marker in the
//! environment of everything the job starts (so leftovers can be found in /proc), a time limit
//! that fails the test instead of hanging it, and cleanup on drop even when a test fails.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

pub mod snap;

/// The longest any one wait of a test may take. Generous: CI runs every test at once on two
/// cores, and a bound only decides how long a test that fails anyway takes to say so.
pub const LIMIT: Duration = Duration::from_secs(240);

/// A binary built next to `mpicr-selftest` (the whole workspace is built before the tests).
pub fn bin(name: &str) -> PathBuf {
    let selftest = PathBuf::from(env!("CARGO_BIN_EXE_mpicr-selftest"));
    let path = selftest.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// Builds the current `libmpi` where our `mpicc` links it. A test build compiles only the
/// tests' own targets: without this, C programs would link whatever `libmpi.so` an earlier
/// build left in the profile directory (a no-op when it is current).
pub fn build_libmpi() {
    build_package("abi");
}

/// Builds the current preloaded runtime (`libmpicr_preload.so`, beside `mpicr`), as
/// [`build_libmpi`] does for libmpi.
pub fn build_preload() {
    build_package("preload");
}

fn build_package(package: &str) {
    let dir = bin("mpicr-selftest")
        .parent()
        .expect("the profile directory")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("running cargo to build libmpi");
    assert!(st.success(), "building {package} failed");
}

/// The arguments, with the short names of the test programs replaced by their paths.
fn program(args: &[&str]) -> Vec<String> {
    args.iter()
        .map(|a| match *a {
            "selftest" => bin("mpicr-selftest").display().to_string(),
            "ckpt-ring" => bin("mpicr-ckpt-ring").display().to_string(),
            "image-ring" => bin("mpicr-image-ring").display().to_string(),
            "migrate-ring" => bin("mpicr-migrate-ring").display().to_string(),
            "heat" => bin("mpicr-heat").display().to_string(),
            other => other.to_owned(),
        })
        .collect()
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A private runtime and state directory and a marker for the processes of one test; every
/// marked process is killed when it is dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
    marker: String,
}

impl Sandbox {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let marker = format!(
            "mpicr-mpitest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            marker,
        }
    }

    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(bin("mpicr"));
        c.args(args)
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("MPICR_TEST_MARKER", &self.marker)
            .env_remove("MPICR_SNAPSHOT_DIR");
        c
    }

    /// Starts `mpicr ARGS` (with `selftest` etc. mapped to the built programs) in the background.
    pub fn start(&self, args: &[&str]) -> Job {
        self.start_env(args, &[])
    }

    /// [`start`](Self::start) with more environment variables (`PATH` with stand-ins first).
    pub fn start_env(&self, args: &[&str], env: &[(&str, std::ffi::OsString)]) -> Job {
        let args = program(args);
        let mut child = self
            .command(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpicr starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), stdout.clone()),
            collect(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Job {
            child: Some(child),
            stdout,
            readers,
            stderr,
            runtime: None,
            marker: self.marker.clone(),
            state: self.dir.path().join("state"),
        }
    }

    /// Runs `mpicr ARGS` to its end.
    pub fn mpicr(&self, args: &[&str]) -> Out {
        self.start(args).finish()
    }

    /// Waits until job `name` answers `mpicr status`.
    pub fn wait_for_job(&self, name: &str) {
        let start = Instant::now();
        while self.mpicr(&["status", name]).code != Some(0) {
            assert!(start.elapsed() < LIMIT, "job {name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `mpicr run ARGS` in the background as job `name` and waits until it is there;
    /// a launcher that ends first (a refused option, say) fails the test with its stderr at
    /// once.
    pub fn start_job(&self, name: &str, args: &[&str]) -> Job {
        let mut all = vec!["run", "--job-name", name];
        all.extend_from_slice(args);
        let mut job = self.start(&all);
        let start = Instant::now();
        while self.mpicr(&["status", name]).code != Some(0) {
            if job.has_ended() {
                let out = job.finish();
                panic!(
                    "job {name} ended before it appeared (status {:?}): {}",
                    out.code, out.stderr
                );
            }
            assert!(start.elapsed() < LIMIT, "job {name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        job
    }

    /// The sandbox's private directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The marker in the environment of every process of this sandbox.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// The snapshot directory of this sandbox.
    pub fn snapshots(&self) -> PathBuf {
        self.dir.path().join("state/mpicr/snapshots")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        kill_marked(&self.marker);
    }
}

fn kill_marked(marker: &str) {
    for pid in marked(marker) {
        if let Some(p) = Pid::from_raw(pid) {
            let _ = kill_process(p, Signal::KILL);
        }
    }
}

/// A background `mpicr` command, killed with everything it started when dropped.
pub struct Job {
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
    /// The private directory of a job started on its own (none inside a [`Sandbox`]).
    runtime: Option<tempfile::TempDir>,
    marker: String,
    state: PathBuf,
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("not poisoned")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

impl Job {
    pub fn start(mpicr_args: &[&str], prog: &[&str]) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let marker = format!(
            "mpicr-mpitest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let runtime = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new(bin("mpicr"))
            .arg("run")
            .args(mpicr_args)
            .args(program(prog))
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("XDG_STATE_HOME", runtime.path().join("state"))
            .env("MPICR_TEST_MARKER", &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpicr starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), stdout.clone()),
            collect(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        let state = runtime.path().join("state");
        Self {
            child: Some(child),
            stdout,
            readers,
            stderr,
            runtime: Some(runtime),
            marker,
            state,
        }
    }

    /// The launcher's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the launcher with SIGKILL (its ranks die with it) and waits for the job to be gone.
    pub fn kill(mut self) -> Out {
        let _ = kill_process(
            Pid::from_raw(self.pid() as i32).expect("a pid"),
            Signal::KILL,
        );
        let out = self.wait_out();
        let start = Instant::now();
        while !marked(&self.marker).is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        out
    }

    /// What the command has written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("not poisoned").clone()
    }

    /// How many lines the job has printed so far.
    pub fn lines(&self) -> usize {
        self.stdout.lock().expect("not poisoned").lines().count()
    }

    /// Waits until the job has printed `n` lines.
    pub fn wait_for_lines(&self, n: usize) {
        let start = Instant::now();
        while self.stdout.lock().expect("not poisoned").lines().count() < n {
            assert!(
                start.elapsed() < LIMIT,
                "the job printed only {:?}",
                self.stdout.lock().expect("not poisoned")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the job to end by itself.
    /// Whether the launcher has ended (it is reaped by [`Job::finish`]).
    pub fn has_ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn finish(mut self) -> Out {
        self.wait_out()
    }

    fn wait_out(&mut self) -> Out {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("waitable") {
                break s;
            }
            if start.elapsed() > LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the job did not end within {LIMIT:?}: {}",
                    self.stdout.lock().expect("not poisoned")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Out {
            code: status.code(),
            stdout: self.stdout.lock().expect("not poisoned").clone(),
            stderr: self.stderr.lock().expect("not poisoned").clone(),
        }
    }

    /// Ctrl-C to the launcher: returns its exit status and the job's processes still alive a
    /// moment after it exited.
    pub fn interrupt(mut self) -> (Option<i32>, Vec<i32>) {
        let pid = self.child.as_ref().expect("running").id();
        let _ = kill_process(Pid::from_raw(pid as i32).expect("a pid"), Signal::INT);
        let out = self.wait_out();
        let start = Instant::now();
        let mut left = marked(&self.marker);
        while !left.is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
            left = marked(&self.marker);
        }
        (out.code, left)
    }

    /// Runs another `mpicr` command against this job's runtime directory.
    pub fn mpicr(&self, args: &[&str]) -> Out {
        let runtime = self
            .state
            .parent()
            .expect("the state directory is inside the runtime one");
        let out = Command::new(bin("mpicr"))
            .args(args)
            .env("XDG_RUNTIME_DIR", runtime)
            .env("XDG_STATE_HOME", &self.state)
            .output()
            .expect("mpicr runs");
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // A test that fails while the job runs would otherwise lose what the job said:
            // under load (CI) that log is the only evidence of why.
            if std::thread::panicking() {
                eprintln!(
                    "--- the job's stdout:\n{}\n--- the job's stderr:\n{}",
                    self.stdout.lock().map(|s| s.clone()).unwrap_or_default(),
                    self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
                );
            }
        }
        // A job of its own owns its marker; inside a sandbox, the sandbox cleans up.
        if self.runtime.is_some() {
            kill_marked(&self.marker);
        }
    }
}

/// Live processes whose environment carries `marker`.
pub fn marked(marker: &str) -> Vec<i32> {
    let needle = format!("MPICR_TEST_MARKER={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            });
            alive
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

/// Runs `mpicr run ARGS PROG` to its end.
pub fn run(mpicr_args: &[&str], prog: &[&str]) -> Out {
    Job::start(mpicr_args, prog).finish()
}

/// Runs `mpicr ARGS` in a private runtime directory.
pub fn mpicr_plain(args: &[&str]) -> Out {
    let runtime = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(bin("mpicr"))
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .expect("mpicr runs");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `result …` line of a job that ended with status 0 (the test fails otherwise).
pub fn result_line(out: &Out) -> String {
    assert_eq!(
        out.code,
        Some(0),
        "the job failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .unwrap_or_else(|| panic!("no result in {}\n{}", out.stdout, out.stderr))
        .to_owned()
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The node of every rank of job `name`, once every rank runs.
pub fn placement(sandbox: &Sandbox, name: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let out = sandbox.mpicr(&["status", name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && let Some(ranks) = v["ranks"].as_array()
            && ranks.iter().all(|e| e["state"] == "running")
        {
            return ranks
                .iter()
                .map(|e| e["node"].as_str().unwrap_or_default().to_owned())
                .collect();
        }
        assert!(start.elapsed() < LIMIT, "job {name} never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes still alive with the sandbox's marker, a moment after the job ended.
pub fn leftovers(sandbox: &Sandbox) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let left = marked(sandbox.marker());
        if left.is_empty() || start.elapsed() > Duration::from_secs(30) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tests/c/NAME.c` built with our `mpicc` and `flags`; the executable's path.
pub fn mpicc(name: &str, flags: &[&str]) -> String {
    build_libmpi();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let exe =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}_c-{}", std::process::id()));
    let out = Command::new(bin("mpicc"))
        .arg("-O1")
        .args(flags)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("mpicc runs (gcc is required)");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe.display().to_string()
}
