//! Real jobs and a real `mpicr dashboard` for the tests: a private runtime and state directory,
//! every started process killed at the end (even when a test fails), and a small HTTP/1.1
//! client that can also send what a browser never would (`http.rs`, which the namespace tests
//! of `crates/testapps` use too).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

mod http;
pub use http::Dashboard;

/// A binary of the workspace, next to this test's own directory (`target/<profile>/`); the
/// workspace is built before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// Polls `done` every 100 ms until it holds; panics after `limit` naming `what`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private XDG_RUNTIME_DIR and XDG_STATE_HOME; every process started through it is ended
/// when it is dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    children: Mutex<Vec<(Child, bool)>>,
    /// Processes that are not our children (jobs restarted by a dashboard): SIGTERM, then
    /// SIGKILL, at the end.
    adopted: Mutex<Vec<u32>>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            children: Mutex::new(Vec::new()),
            adopted: Mutex::new(Vec::new()),
        }
    }

    /// The private directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Ends `pid` (not a child of ours) at the end, if it still runs.
    pub fn adopt(&self, pid: u32) {
        self.adopted.lock().expect("the adopted list").push(pid);
    }

    /// [`Sandbox::start_with_dashboard`] with `EXTRA... -n N -- mpicr-ckpt-ring STEPS 20`.
    pub fn start_job_with_dashboard(
        &self,
        name: &str,
        n: u32,
        steps: u32,
        extra: &[&str],
    ) -> (u32, Dashboard, std::sync::Arc<Mutex<String>>) {
        let ring = bin("mpicr-ckpt-ring").display().to_string();
        let n = n.to_string();
        let steps = steps.to_string();
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["-n", &n, "--", &ring, &steps, "20"]);
        self.start_with_dashboard(name, &args)
    }

    /// Starts `mpicr run --dashboard 127.0.0.1:0 --job-name NAME ARGS` and returns its pid, the
    /// dashboard whose URL it printed on stderr, and the rest of its stderr as it comes.
    pub fn start_with_dashboard(
        &self,
        name: &str,
        args: &[&str],
    ) -> (u32, Dashboard, std::sync::Arc<Mutex<String>>) {
        let mut c = self.command("mpicr");
        c.args(["run", "--dashboard", "127.0.0.1:0", "--job-name", name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("mpicr run starts");
        let stderr = child.stderr.take().expect("its stderr");
        let pid = self.keep(child, true);
        let mut lines = BufReader::new(stderr).lines();
        let prefix = format!("mpicr: dashboard of job {name}: ");
        let url = loop {
            let line = lines
                .next()
                .expect("a line with the dashboard's URL")
                .expect("stderr");
            if let Some(url) = line.strip_prefix(&prefix) {
                break url.to_owned();
            }
        };
        let rest = std::sync::Arc::new(Mutex::new(String::new()));
        let sink = rest.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("{line}");
                let mut text = sink.lock().expect("stderr text");
                text.push_str(&line);
                text.push('\n');
            }
        });
        (pid, Dashboard::from_url(&url), rest)
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(bin(program));
        c.env("XDG_RUNTIME_DIR", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env_remove("MPICR_SNAPSHOT_DIR")
            .current_dir(self.dir.path());
        c
    }

    /// Starts `mpicr run --job-name NAME -n N -- mpicr-ckpt-ring STEPS 20` in the background.
    pub fn start_job(&self, name: &str, n: u32, steps: u32) -> u32 {
        let ring = bin("mpicr-ckpt-ring");
        let mut c = self.command("mpicr");
        c.args(["run", "--job-name", name, "-n", &n.to_string(), "--"])
            .arg(ring)
            .args([&steps.to_string(), "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        self.keep(c.spawn().expect("mpicr run starts"), true)
    }

    /// Starts `mpicr dashboard ARGS` and returns it with the URL it printed.
    pub fn start_dashboard(&self, args: &[&str]) -> Dashboard {
        let mut c = self.command("mpicr");
        c.arg("dashboard")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("mpicr dashboard starts");
        let stdout = child.stdout.take().expect("its stdout");
        self.keep(child, false);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the dashboard's URL");
        Dashboard::from_url(line.trim())
    }

    /// Remembers a child to end at the end; `polite` ones get SIGTERM first (`mpicr run` then
    /// ends its ranks), the others SIGKILL.
    pub fn keep(&self, child: Child, polite: bool) -> u32 {
        let pid = child.id();
        self.children
            .lock()
            .expect("the child list")
            .push((child, polite));
        pid
    }

    /// Waits until the child `pid` has ended and returns its status code.
    pub fn wait_exit(&self, pid: u32, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            {
                let mut children = self.children.lock().expect("the child list");
                if let Some((child, _)) = children.iter_mut().find(|(c, _)| c.id() == pid)
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return status.code();
                }
            }
            assert!(start.elapsed() < limit, "process {pid} did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let mut children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for (child, polite) in &mut children {
            if let Ok(None) = child.try_wait()
                && let Some(pid) = Pid::from_raw(child.id() as i32)
            {
                let signal = if *polite { Signal::TERM } else { Signal::KILL };
                let _ = kill_process(pid, signal);
            }
        }
        let adopted = std::mem::take(&mut *self.adopted.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in &adopted {
            if let Some(pid) = Pid::from_raw(*pid as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
        }
        for pid in adopted {
            let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
            let start = Instant::now();
            while alive() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Some(pid) = Pid::from_raw(pid as i32)
                && alive()
            {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        for (child, _) in &mut children {
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Ends a process group we started (the browser and its driver).
pub fn kill_group(pid: u32) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// A unique job name for this test process.
pub fn job_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}
