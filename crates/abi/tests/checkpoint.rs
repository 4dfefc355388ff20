//! The self checkpointer's C and Fortran API (`MPIX_Ckpt_*`) on real jobs, built with our
//! wrappers and run under `mpicr run`: a message-heavy program is checkpointed from outside
//! (`mpicr checkpoint NAME`), its launcher killed with SIGKILL, the job restarted from the
//! snapshot (`mpicr restart NAME.1`), and the result must equal an uninterrupted run's; on
//! 1, 2 and 4 ranks over shared memory and TCP, in C and Fortran. Then the rest of the API:
//! the program's own request, the restarted flag, recover, its errors, and a safepoint with an
//! outstanding request. These jobs run with `--crs self`; the Fortran ring is also restarted
//! from process images under the default checkpointer (`image`), which ignores the API, and so
//! is a C program whose images are taken inside its gathers, scatters and all-gathers.
//!
//! Every test runs in a sandbox: private XDG_RUNTIME_DIR and XDG_STATE_HOME, and a marker in
//! the environment of everything it starts, so that whatever is still alive when the test ends
//! (or fails) is found in /proc and killed. Every wait is bounded; nothing asserts on timing.
//! Without gfortran the Fortran cases are skipped with a message.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// The longest any one command or wait may take.
const LIMIT: Duration = Duration::from_secs(180);
const STEPS: &str = "120";
/// Milliseconds each step of the checkpointed run sleeps, so that it is still running when the
/// checkpoint is asked for.
const SLOW: &str = "15";

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The launcher and the test programs, built once per test run.
struct Built {
    mpicr: PathBuf,
    ring_c: PathBuf,
    ring_f: Option<PathBuf>,
    selftest: PathBuf,
    /// Non-blocking and blocking gathers, scatters and all-gathers on the user's buffers.
    vcoll: PathBuf,
}

fn compile(wrapper: &str, source: &str, exe: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ckpt")
        .join(source);
    // In the output directory, where gfortran also writes the program's module files.
    let out = Command::new(wrapper)
        .current_dir(exe.parent().expect("a directory"))
        .arg("-O1")
        .arg(&src)
        .arg("-o")
        .arg(exe)
        .output()
        .expect("the compiler wrapper runs");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(have("gcc"), "gcc is required (apt-get install gcc)");
        let dir = profile_dir();
        // Integration tests build only this crate's test targets: build the launcher and put a
        // current libmpi where the wrappers link it (a no-op when current).
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "cli", "--bin", "mpicr", "-p", "abi"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("running cargo to build the launcher");
        assert!(st.success(), "building the mpicr launcher failed");
        let mpicr = dir.join("mpicr");
        assert!(mpicr.is_file(), "{} is missing", mpicr.display());
        // One directory per test process: nextest runs tests in parallel processes, and two
        // gfortran runs writing the same module file in one directory trip over each other.
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("abi-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&out).expect("a directory for the programs");
        let ring_c = out.join("ckpt_ring");
        compile(env!("CARGO_BIN_EXE_mpicc"), "ckpt_ring.c", &ring_c);
        let selftest = out.join("ckpt_self");
        compile(env!("CARGO_BIN_EXE_mpicc"), "ckpt_self.c", &selftest);
        let vcoll = out.join("ckpt_vcoll");
        compile(env!("CARGO_BIN_EXE_mpicc"), "ckpt_vcoll.c", &vcoll);
        let ring_f = if have("gfortran") {
            let exe = out.join("ckpt_ring_f");
            compile(env!("CARGO_BIN_EXE_mpif90"), "ckpt_ring_f.f90", &exe);
            Some(exe)
        } else {
            None
        };
        Built {
            mpicr,
            ring_c,
            ring_f,
            selftest,
            vcoll,
        }
    })
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// The job's result line; the job must have succeeded.
    fn result(&self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "the job failed:\n{}{}",
            self.stdout,
            self.stderr
        );
        self.stdout
            .lines()
            .find(|l| l.starts_with("result "))
            .unwrap_or_else(|| panic!("no result line in:\n{}{}", self.stdout, self.stderr))
            .to_owned()
    }
}

/// A command started in the background, its output collected as it comes.
struct Running {
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = into.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    })
}

impl Running {
    fn text(s: &Arc<Mutex<String>>) -> String {
        s.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the command has ended.
    fn ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits (bounded) for the command to end by itself.
    fn finish(mut self) -> Out {
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
                    "the command did not end within {LIMIT:?}:\n{}{}",
                    Self::text(&self.stdout),
                    Self::text(&self.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Out {
            code: status.code(),
            stdout: Self::text(&self.stdout),
            stderr: Self::text(&self.stderr),
        }
    }

    /// SIGKILL to the launcher; returns what it printed.
    fn kill(mut self) -> Out {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
        self.finish()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private runtime and state directory and a marker for the processes of one test; every
/// marked process still alive is killed when the sandbox is dropped, even after a failure.
struct Sandbox {
    dir: tempfile::TempDir,
    marker: String,
}

impl Sandbox {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            marker: format!(
                "mpicr-abi-ckpt-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }

    /// Starts `mpicr ARGS` in the background.
    fn start(&self, args: &[&str]) -> Running {
        let mut child = Command::new(&built().mpicr)
            .args(args)
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("MPICR_TEST_MARKER", &self.marker)
            .env_remove("MPICR_SNAPSHOT_DIR")
            .env_remove("MPICR_RESTART_DIR")
            .env_remove("MPICR_JOB")
            .current_dir(self.dir.path())
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
        Running {
            child: Some(child),
            stdout,
            stderr,
            readers,
        }
    }

    /// Runs `mpicr ARGS` to its end.
    fn mpicr(&self, args: &[&str]) -> Out {
        self.start(args).finish()
    }

    /// Starts `mpicr run --job-name NAME ARGS` and waits until `mpicr status NAME` answers.
    fn start_job(&self, name: &str, args: &[&str]) -> Running {
        let mut all = vec!["run", "--job-name", name];
        all.extend_from_slice(args);
        let mut job = self.start(&all);
        let start = Instant::now();
        while self.mpicr(&["status", name]).code != Some(0) {
            assert!(
                !job.ended(),
                "job {name} ended before it could be checkpointed: {:?}",
                job.finish()
            );
            assert!(start.elapsed() < LIMIT, "job {name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        job
    }

    /// SIGKILL to a job's launcher, then waits (bounded) until its ranks are gone too.
    fn kill(&self, job: Running) -> Out {
        let out = job.kill();
        let start = Instant::now();
        let mut left = marked(&self.marker);
        while !left.is_empty() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
            left = marked(&self.marker);
        }
        assert!(
            left.is_empty(),
            "processes {left:?} outlived their killed launcher"
        );
        out
    }

    /// Waits (bounded) until snapshot NAME is committed, while `job` runs.
    fn wait_for_snapshot(&self, name: &str, job: &mut Running) {
        let quoted = format!("\"{name}\"");
        let job_name = name.rsplit_once('.').map_or(name, |(job, _)| job);
        let start = Instant::now();
        loop {
            let list = self.mpicr(&["snapshots", "--json"]);
            if list.stdout.contains(&quoted) {
                return;
            }
            assert!(
                !job.ended(),
                "the job ended without snapshot {name}:\n{}{}",
                Running::text(&job.stdout),
                Running::text(&job.stderr)
            );
            assert!(
                start.elapsed() < LIMIT,
                "snapshot {name} never appeared; the job's output:\n{}{}\nits status: {}",
                Running::text(&job.stdout),
                Running::text(&job.stderr),
                self.mpicr(&["status", job_name, "--json"]).stdout
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for pid in marked(&self.marker) {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
    }
}

/// Live processes whose environment carries `MPICR_TEST_MARKER=marker`.
fn marked(marker: &str) -> Vec<i32> {
    let needle = format!("MPICR_TEST_MARKER={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

/// The checkpointer of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crs {
    /// `--crs self`: the program's safepoints and regions.
    SelfCrs,
    /// No `--crs`: process images.
    Default,
}

/// Uninterrupted; then slowed down, checkpointed, killed with SIGKILL, restarted: the same
/// result line.
fn kill_and_restart(program: &Path, n: u32, transport: &str, crs: Crs) {
    let sandbox = Sandbox::new();
    let prog = program.to_str().expect("a UTF-8 path");
    let ranks = n.to_string();
    let mut common = vec!["-n", &ranks, "--transport", transport];
    if crs == Crs::SelfCrs {
        common.extend(["--crs", "self"]);
    }
    common.extend(["--", prog, STEPS]);
    let mut run = vec!["run"];
    run.extend_from_slice(&common);
    let expected = sandbox.mpicr(&run).result();

    let name = format!("ring{n}{transport}");
    let mut slow = common.to_vec();
    slow.push(SLOW);
    let job = sandbox.start_job(&name, &slow);
    // A request that reaches a rank still inside MPI_Init (a disabled region) waits for its
    // end under either checkpointer; under `image` one that meets the ring's region around
    // its all-to-all is given up and asked again by the coordinator.
    let ckpt = sandbox.mpicr(&["checkpoint", &name]);
    if ckpt.code != Some(0) {
        let job = sandbox.kill(job);
        panic!(
            "the checkpoint failed:\n{}{}\nthe job's output:\n{}{}",
            ckpt.stdout, ckpt.stderr, job.stdout, job.stderr
        );
    }
    let snapshot = ckpt.stdout.lines().last().unwrap_or("").trim().to_owned();
    assert!(
        snapshot.starts_with(&format!("{name}.")),
        "the checkpoint names its snapshot: {snapshot}"
    );
    let killed = sandbox.kill(job);
    assert_ne!(killed.code, Some(0), "the launcher was killed");

    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_eq!(
        restarted.result(),
        expected,
        "{} on {n} ranks over {transport}:\n{}",
        program.display(),
        restarted.stderr
    );
    // Only the `self` checkpointer's restart goes through MPIX_Ckpt_recover; a restored
    // image goes on inside the call it was captured in.
    assert_eq!(
        restarted.stderr.contains("restarted at step"),
        crs == Crs::SelfCrs,
        "how the restarted ranks got their state: {}",
        restarted.stderr
    );
}

#[test]
fn c_ring_restarts_to_the_uninterrupted_result_over_shm() {
    for n in [1, 2, 4] {
        kill_and_restart(&built().ring_c, n, "shm", Crs::SelfCrs);
    }
}

#[test]
fn c_ring_restarts_to_the_uninterrupted_result_over_tcp() {
    for n in [1, 2, 4] {
        kill_and_restart(&built().ring_c, n, "tcp", Crs::SelfCrs);
    }
}

fn fortran_ring() -> Option<&'static Path> {
    let f = built().ring_f.as_deref();
    if f.is_none() {
        eprintln!("SKIPPING the Fortran checkpoint tests: gfortran is not installed");
    }
    f
}

#[test]
fn fortran_ring_restarts_to_the_uninterrupted_result_over_shm() {
    if let Some(f) = fortran_ring() {
        for n in [1, 2, 4] {
            kill_and_restart(f, n, "shm", Crs::SelfCrs);
        }
    }
}

#[test]
fn fortran_ring_restarts_to_the_uninterrupted_result_over_tcp() {
    if let Some(f) = fortran_ring() {
        for n in [1, 2, 4] {
            kill_and_restart(f, n, "tcp", Crs::SelfCrs);
        }
    }
}

#[test]
fn fortran_ring_restarts_from_its_images_under_the_default_checkpointer() {
    if let Some(f) = fortran_ring() {
        kill_and_restart(f, 1, "shm", Crs::Default);
        kill_and_restart(f, 2, "tcp", Crs::Default);
        kill_and_restart(f, 4, "shm", Crs::Default);
    }
}

/// Images taken while non-blocking gathers, scatters and all-gathers hold the user's buffers
/// (rank 0 sleeps before it tests them, so the other ranks wait with them outstanding most of
/// each step) restore to the uninterrupted result.
#[test]
fn c_vcoll_restarts_from_images_taken_inside_its_collectives() {
    kill_and_restart(&built().vcoll, 2, "shm", Crs::Default);
    kill_and_restart(&built().vcoll, 3, "tcp", Crs::Default);
}

/// `ckpt_self`'s path, its mode file in `sandbox` and the result of its uninterrupted run of
/// `steps` steps on 2 ranks.
fn ckpt_self_reference(sandbox: &Sandbox, steps: &str) -> (String, String, String) {
    let prog = built().selftest.to_str().expect("a UTF-8 path");
    let modefile = sandbox.dir.path().join("mode");
    let modefile = modefile.to_str().expect("a UTF-8 path");
    let expected = sandbox
        .mpicr(&[
            "run", "-n", "2", "--crs", "self", "--", prog, steps, "0", "-1", modefile,
        ])
        .result();
    (prog.to_owned(), modefile.to_owned(), expected)
}

/// The program asks for its own checkpoint (MPIX_Ckpt_request); a restart from it sees the
/// restarted flag and recovers its regions; regions of another size or id are refused with
/// MPI_ERR_COUNT and MPI_ERR_ARG (returned under MPI_ERRORS_RETURN, fatal by default).
#[test]
fn request_restarted_recover_and_recover_mismatches() {
    let sandbox = Sandbox::new();
    let steps = "400";
    let (prog, modefile, expected) = ckpt_self_reference(&sandbox, steps);
    let (prog, modefile) = (prog.as_str(), modefile.as_str());

    let mut job = sandbox.start_job(
        "self",
        &[
            "-n", "2", "--crs", "self", "--", prog, steps, "20", "3", modefile,
        ],
    );
    sandbox.wait_for_snapshot("self.1", &mut job);
    sandbox.kill(job);

    let restart = |mode: &str| {
        std::fs::write(sandbox.dir.path().join("mode"), mode).expect("the mode file");
        sandbox.mpicr(&["restart", "self.1"])
    };
    let ok = restart("ok");
    assert_eq!(ok.result(), expected, "{}", ok.stderr);
    assert!(
        ok.stdout.contains("restarted at step "),
        "MPIX_Ckpt_restarted said 1: {}",
        ok.stdout
    );

    let size = restart("size");
    assert_eq!(size.code, Some(0), "{}{}", size.stdout, size.stderr);
    assert!(
        size.stdout.contains("recover failed: MPI_ERR_COUNT"),
        "{}",
        size.stdout
    );
    let id = restart("id");
    assert_eq!(id.code, Some(0), "{}{}", id.stdout, id.stderr);
    assert!(
        id.stdout.contains("recover failed: MPI_ERR_ARG"),
        "{}",
        id.stdout
    );

    let fatal = restart("fatal");
    assert_ne!(fatal.code, Some(0), "the mismatch aborts the job");
    assert!(
        fatal
            .stderr
            .lines()
            .any(|l| l.starts_with("mpicr: MPIX_Ckpt_recover: rank ")
                && l.contains(
                    "region 1 is protected with 24 bytes, but the snapshot saved 16 bytes"
                )),
        "{}",
        fatal.stderr
    );
    assert!(!fatal.stdout.contains("result "), "{}", fatal.stdout);
}

/// A request that reaches rank 0 inside its disabled region, whose reduction waits for rank 1,
/// while rank 1 answers at its safepoint and waits there for the one the coordinator chooses:
/// rank 0 answers at once (an answer deferred to the region's end never came, and the job hung
/// in the counting phase), the snapshot is taken at the next safepoint, and both the job and a
/// restart from the snapshot end with the uninterrupted result.
#[test]
fn a_request_that_meets_a_region_waiting_for_a_rank_at_its_safepoint_is_taken() {
    let sandbox = Sandbox::new();
    let steps = "40";
    let (prog, modefile, expected) = ckpt_self_reference(&sandbox, steps);
    let (prog, modefile) = (prog.as_str(), modefile.as_str());
    let hold = sandbox.dir.path().join("hold");
    let hold = hold.to_str().expect("a UTF-8 path");
    let mut job = sandbox.start_job(
        "region",
        &[
            "-n", "2", "--crs", "self", "--", prog, steps, "0", "-1", modefile, "10", hold,
        ],
    );
    let start = Instant::now();
    while !Running::text(&job.stdout).contains("rank 0 waits in its region") {
        assert!(!job.ended(), "the job ended: {:?}", job.finish());
        assert!(start.elapsed() < LIMIT, "rank 0 never reached its region");
        std::thread::sleep(Duration::from_millis(20));
    }
    let request = sandbox.start(&["checkpoint", "region"]);
    // Rank 0 answers from inside its region; then CHECKPOINT is on rank 1's connection too,
    // and rank 1 reads it at the safepoint it is let into.
    loop {
        let status = sandbox.mpicr(&["status", "region", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
        if v["checkpoint"]["in_progress"]["reported"].as_u64() >= Some(1) {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "no rank answered the checkpoint: {}{}",
            status.stdout,
            status.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(hold, "").expect("the hold file");
    let answer = request.finish();
    assert_eq!(answer.code, Some(0), "{}{}", answer.stdout, answer.stderr);
    let snapshot = answer.stdout.trim().to_owned();
    assert_eq!(job.finish().result(), expected, "the checkpointed run");
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_eq!(restarted.result(), expected, "{}", restarted.stderr);
}

/// A program whose safepoints are all inside disabled regions is never checkpointed: every
/// attempt is given up at the chosen safepoint and asked again, and the requester is told why
/// once the attempts are used up; the program goes on, and ends when told to.
#[test]
fn a_safepoint_inside_a_disabled_region_gives_the_checkpoint_up() {
    let sandbox = Sandbox::new();
    let prog = built().selftest.to_str().expect("a UTF-8 path");
    let gate = sandbox.dir.path().join("gate");
    let gate = gate.to_str().expect("a UTF-8 path");
    let job = sandbox.start_job(
        "inregion",
        &["-n", "2", "--crs", "self", "--", prog, "inregion", gate],
    );
    let ckpt = sandbox.mpicr(&["checkpoint", "inregion"]);
    assert_eq!(ckpt.code, Some(1), "{}{}", ckpt.stdout, ckpt.stderr);
    assert!(
        ckpt.stderr.contains(
            "it reached the checkpoint's safepoint inside a region with checkpoints disabled"
        ),
        "{}",
        ckpt.stderr
    );
    std::fs::write(gate, "").expect("the gate");
    let done = job.finish();
    assert_eq!(done.code, Some(0), "{}{}", done.stdout, done.stderr);
    assert_eq!(done.stdout.trim(), "done", "{}", done.stderr);
    let list = sandbox.mpicr(&["snapshots", "--json"]);
    assert!(
        list.code == Some(0) && !list.stdout.contains("\"inregion."),
        "a snapshot was committed: {}{}",
        list.stdout,
        list.stderr
    );
}

/// A safepoint where the checkpoint is due while a non-blocking request is outstanding
/// returns MPI_ERR_PENDING (under MPI_ERRORS_RETURN) and the checkpoint fails naming the
/// request; the program goes on to its end.
#[test]
fn a_safepoint_with_an_outstanding_request_returns_mpi_err_pending() {
    let sandbox = Sandbox::new();
    let prog = built().selftest.to_str().expect("a UTF-8 path");
    let job = sandbox.start_job(
        "pending",
        &["-n", "2", "--crs", "self", "--", prog, "pending"],
    );
    let ckpt = sandbox.mpicr(&["checkpoint", "pending"]);
    assert_eq!(ckpt.code, Some(1), "{}{}", ckpt.stdout, ckpt.stderr);
    assert!(
        ckpt.stderr.contains("still outstanding") && ckpt.stderr.contains("request 0x"),
        "{}",
        ckpt.stderr
    );
    let done = job.finish();
    assert_eq!(done.code, Some(0), "{}{}", done.stdout, done.stderr);
    assert_eq!(
        done.stdout.trim(),
        "safepoint refused: MPI_ERR_PENDING",
        "{}",
        done.stderr
    );
}
