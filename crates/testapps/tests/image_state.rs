//! Programs without MPI under the image checkpointer (the preloaded runtime, `crates/preload`),
//! one kind of process state per program (`tests/c/state/*.c`): each runs uninterrupted, then
//! under `--crs image`, is checkpointed at a random moment, killed with SIGKILL and restarted;
//! what the restart prints must be exactly the rest of what the uninterrupted run prints.
//! The programs print with stdio into a pipe and never flush, so this also checks that
//! buffered output is written exactly once (the buffer is part of the image).

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::snap::{
    assert_continues, committed, kill_rank, ok, random_moment, rank_pid, wait_for_snapshots,
};
use harness::{Out, Sandbox, bin};

/// `tests/c/state/KIND.c` built with the system's C compiler, once per test.
fn program(kind: &str) -> PathBuf {
    harness::build_preload();
    assert!(bin("mpicr-restore").exists());
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/state/{kind}.c"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("state-{kind}-{}", std::process::id()));
    let out = std::process::Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("cc runs (a C compiler is required)");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A fresh directory for one run's files.
fn run_dir(sandbox: &Sandbox, name: &str) -> String {
    let dir = sandbox.dir().join(name);
    std::fs::create_dir_all(&dir).expect("a directory for the run");
    dir.display().to_string()
}

/// How a kind is run: steps, milliseconds per step in the checkpointed run, and the longest
/// wait before the checkpoint (well inside the checkpointed run).
struct Pace {
    steps: u32,
    slow_ms: u32,
    moment: Duration,
}

const PACE: Pace = Pace {
    steps: 30,
    slow_ms: 60,
    moment: Duration::from_millis(900),
};

/// The checkpointed run of `kind` as job `name`, checkpointed once at a random moment and its
/// rank killed; returns the snapshot and the killed run's output.
fn checkpoint_and_kill(sandbox: &Sandbox, kind: &Path, name: &str, pace: &Pace) -> (String, Out) {
    let exe = kind.display().to_string();
    let steps = pace.steps.to_string();
    let slow = pace.slow_ms.to_string();
    let dir = run_dir(sandbox, name);
    let job = sandbox.start_job(
        name,
        &["-n", "1", "--crs", "image", "--", &exe, &steps, &slow, &dir],
    );
    rank_pid(sandbox, name, 0, 0);
    std::thread::sleep(random_moment(pace.moment));
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", name]));
    kill_rank(sandbox, name, 0, 0);
    let killed = job.finish();
    assert_ne!(killed.code, Some(0), "the job ended with its killed rank");
    (snapshot, killed)
}

/// Uninterrupted; checkpointed at a random moment, killed, restarted: the restart continues.
fn state_survives(kind: &str, pace: &Pace) {
    let exe = program(kind);
    let sandbox = Sandbox::new();
    let reference_dir = run_dir(&sandbox, "reference");
    let steps = pace.steps.to_string();
    let exe_arg = exe.display().to_string();
    let reference = sandbox.mpicr(&[
        "run",
        "-n",
        "1",
        "--",
        &exe_arg,
        &steps,
        "0",
        &reference_dir,
    ]);
    ok(&reference, &format!("the uninterrupted run of {kind}"));
    let name = format!("st-{}", kind.replace('_', "-"));
    let (snapshot, _) = checkpoint_and_kill(&sandbox, &exe, &name, pace);
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(&reference, &restarted, &format!("the restart of {kind}"));
}

#[test]
fn heap_grown_by_brk_survives() {
    state_survives("heap_brk", &PACE);
}

#[test]
fn heap_blocks_malloc_maps_survive() {
    state_survives("heap_mmap", &PACE);
}

#[test]
fn a_private_file_mapping_keeps_its_changed_pages() {
    state_survives("file_private", &PACE);
}

#[test]
fn a_shared_file_mapping_survives() {
    state_survives("file_shared", &PACE);
}

#[test]
fn deep_recursion_survives() {
    state_survives("recursion", &PACE);
}

#[test]
fn thread_locals_survive() {
    state_survives("tls", &PACE);
}

#[test]
fn signal_handlers_blocked_and_pending_signals_survive() {
    state_survives("signals", &PACE);
}

#[test]
fn an_interval_timer_still_fires_after_restart() {
    state_survives("itimer", &PACE);
}

#[test]
fn open_files_continue_at_their_offsets() {
    state_survives("files", &PACE);
}

#[test]
fn an_append_only_log_keeps_appending() {
    state_survives("append", &PACE);
}

#[test]
fn the_environment_survives() {
    state_survives("env", &PACE);
}

#[test]
fn the_working_directory_survives() {
    state_survives("cwd", &PACE);
}

#[test]
fn the_umask_survives() {
    state_survives("umask", &PACE);
}

#[test]
fn lowered_resource_limits_survive() {
    state_survives("rlimit", &PACE);
}

/// Forked children inherit the signal handler and the exit hook but are not the rank: the job
/// is checkpointed and restarted as if they did not exist.
#[test]
fn a_program_that_forks_is_checkpointed_and_its_children_stay_out() {
    state_survives("fork", &PACE);
}

#[test]
fn one_gib_of_memory_survives() {
    state_survives(
        "big",
        &Pace {
            steps: 8,
            slow_ms: 400,
            moment: Duration::from_millis(1500),
        },
    );
}

/// `--checkpoint-every` checkpoints a program without MPI; the restored process joins its new
/// job and is checkpointed again there (the signal is armed on its new control connection),
/// and a restart from that second-generation image still continues the uninterrupted output.
#[test]
fn a_restored_program_is_checkpointed_again() {
    let exe = program("heap_brk");
    let sandbox = Sandbox::new();
    let exe = exe.display().to_string();
    let steps = "60";
    let reference_dir = run_dir(&sandbox, "reference");
    let reference = sandbox.mpicr(&["run", "-n", "1", "--", &exe, steps, "0", &reference_dir]);
    let dir = run_dir(&sandbox, "timer");
    let job = sandbox.start_job(
        "timer",
        &[
            "-n",
            "1",
            "--crs",
            "image",
            "--checkpoint-every",
            "300ms",
            "--",
            &exe,
            steps,
            "60",
            &dir,
        ],
    );
    wait_for_snapshots(&sandbox, "timer", 1);
    kill_rank(&sandbox, "timer", 0, 0);
    job.finish();
    let restarted = sandbox.start(&["restart", "timer"]);
    sandbox.wait_for_job("timer");
    rank_pid(&sandbox, "timer", 0, 0);
    std::thread::sleep(random_moment(PACE.moment));
    let again = committed(&sandbox.mpicr(&["checkpoint", "timer"]));
    kill_rank(&sandbox, "timer", 0, 0);
    restarted.finish();
    let last = sandbox.mpicr(&["restart", &again]);
    assert_continues(&reference, &last, "the restart of a restored program");
}

/// A file the image holds open at an offset is cut below that offset after the checkpoint:
/// the restart is refused before the program runs, with a message that names the file.
#[test]
fn a_file_cut_below_its_saved_offset_is_refused_at_restart() {
    let exe = program("files");
    let sandbox = Sandbox::new();
    let (snapshot, _) = checkpoint_and_kill(&sandbox, &exe, "cut", &PACE);
    let input = sandbox.dir().join("cut/input.dat");
    std::fs::write(&input, b"").expect("the input file is cut");
    let out = sandbox.mpicr(&["restart", &snapshot]);
    assert_ne!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the program ran: {}", out.stdout);
    assert!(
        out.stderr.contains(&input.display().to_string())
            && out.stderr.contains("shorter than its saved offset"),
        "the message names the file and why: {}",
        out.stderr
    );
}

/// The preloaded runtime changes nothing a program prints: a run under `--crs image` without
/// a checkpoint prints what a run without it does.
#[test]
fn the_preloaded_runtime_is_invisible_to_the_program() {
    let exe = program("signals");
    let sandbox = Sandbox::new();
    let exe = exe.display().to_string();
    let steps = PACE.steps.to_string();
    let plain_dir = run_dir(&sandbox, "plain");
    let plain = sandbox.mpicr(&["run", "-n", "1", "--", &exe, &steps, "0", &plain_dir]);
    let image_dir = run_dir(&sandbox, "image");
    let preloaded = sandbox.mpicr(&[
        "run", "-n", "1", "--crs", "image", "--", &exe, &steps, "0", &image_dir,
    ]);
    ok(&plain, "the plain run");
    ok(&preloaded, "the run under --crs image");
    assert_eq!(plain.stdout, preloaded.stdout);
}
