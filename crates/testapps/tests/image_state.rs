//! Programs without MPI under the image checkpointer (the preloaded runtime, `crates/preload`),
//! one kind of process state per program (`tests/c/state/*.c`): each runs uninterrupted, then
//! under `--crs image`, is checkpointed at a random moment, killed with SIGKILL and restarted;
//! what the restart prints must be exactly the rest of what the uninterrupted run prints.
//! The programs print with stdio into a pipe and never flush, so this also checks that
//! buffered output is written exactly once (the buffer is part of the image). Programs started
//! through a wrapper that executes them, and a program that executes itself, check that the
//! rank's registration is handed over across exec.

mod harness;

use std::os::unix::fs::PermissionsExt;
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
    checkpoint_and_kill_through(sandbox, &[], kind, name, pace)
}

/// [`checkpoint_and_kill`] with `kind` started by the command `wrapper` (followed by the
/// program and its arguments).
fn checkpoint_and_kill_through(
    sandbox: &Sandbox,
    wrapper: &[&str],
    kind: &Path,
    name: &str,
    pace: &Pace,
) -> (String, Out) {
    let exe = kind.display().to_string();
    let steps = pace.steps.to_string();
    let slow = pace.slow_ms.to_string();
    let dir = run_dir(sandbox, name);
    let mut args = vec!["-n", "1", "--crs", "image", "--"];
    args.extend_from_slice(wrapper);
    args.extend_from_slice(&[&exe, &steps, &slow, &dir]);
    let job = sandbox.start_job(name, &args);
    rank_pid(sandbox, name, 0, 0);
    std::thread::sleep(random_moment(pace.moment));
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", name]));
    kill_rank(sandbox, name, 0, 0);
    let killed = job.finish();
    assert_ne!(killed.code, Some(0), "the job ended with its killed rank");
    (snapshot, killed)
}

/// The uninterrupted run of `exe` (state kind `kind`), which must succeed.
fn uninterrupted(sandbox: &Sandbox, exe: &Path, kind: &str, pace: &Pace) -> Out {
    let dir = run_dir(sandbox, "reference");
    let steps = pace.steps.to_string();
    let exe = exe.display().to_string();
    let reference = sandbox.mpicr(&["run", "-n", "1", "--", &exe, &steps, "0", &dir]);
    ok(&reference, &format!("the uninterrupted run of {kind}"));
    reference
}

/// Uninterrupted; checkpointed at a random moment, killed, restarted: the restart continues.
fn state_survives(kind: &str, pace: &Pace) {
    let sandbox = Sandbox::new();
    state_survives_through(&sandbox, &[], kind, pace);
}

/// [`state_survives`] with the checkpointed run started by the command `wrapper`, which
/// executes the program (its uninterrupted run is started directly).
fn state_survives_through(sandbox: &Sandbox, wrapper: &[&str], kind: &str, pace: &Pace) {
    let exe = program(kind);
    let reference = uninterrupted(sandbox, &exe, kind, pace);
    let name = format!("st-{}", kind.replace('_', "-"));
    let (snapshot, _) = checkpoint_and_kill_through(sandbox, wrapper, &exe, &name, pace);
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
fn open_files_that_were_deleted_are_saved_whole() {
    state_survives("deleted", &PACE);
}

#[test]
fn descriptors_of_stateless_devices_are_reopened() {
    state_survives("devices", &PACE);
}

#[test]
fn eventfds_come_back_with_their_counters() {
    state_survives("eventfd", &PACE);
}

#[test]
fn a_self_pipe_comes_back_holding_its_bytes() {
    state_survives("pipe", &PACE);
}

#[test]
fn timerfds_come_back_armed_with_their_expirations() {
    state_survives("timerfd", &PACE);
}

#[test]
fn a_signalfd_comes_back_with_its_mask_and_pending_signal() {
    state_survives("signalfd", &PACE);
}

#[test]
fn socketpairs_come_back_holding_their_bytes_and_shutdowns() {
    state_survives("socketpair", &PACE);
}

/// Root may choose pids (clone3's set_tid): the restored process has its old one. Without
/// that privilege it runs on with a new pid, and says so.
#[test]
fn the_process_id_survives_where_the_restorer_may_choose_it() {
    if rustix::process::geteuid().is_root() {
        state_survives("pid", &PACE);
        return;
    }
    let sandbox = Sandbox::new();
    let exe = program("pid");
    let (snapshot, _) = checkpoint_and_kill_through(&sandbox, &[], &exe, "st-pid", &PACE);
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert!(
        restarted.stdout.contains("pid kept no"),
        "{}",
        restarted.stdout
    );
}

/// Python's asyncio (an epoll instance, a socketpair for its self-pipe, the running loop tied
/// to the pid): the event loop of a program that knows nothing of mpicr.
#[test]
fn a_python_asyncio_program_survives() {
    let sandbox = Sandbox::new();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/asyncio_loop.py");
    let reference = uninterrupted(&sandbox, &script, "asyncio", &PACE);
    let (snapshot, _) = checkpoint_and_kill(&sandbox, &script, "st-asyncio", &PACE);
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(&reference, &restarted, "the restart of an asyncio program");
}

#[test]
fn epoll_instances_come_back_watching_what_they_watched() {
    state_survives("epoll", &PACE);
}

/// The deleted files come back even when the directory they were in is gone by the restart
/// (they are then recreated in memory).
#[test]
fn deleted_files_come_back_without_their_directory() {
    let sandbox = Sandbox::new();
    let exe = program("deleted");
    let reference = uninterrupted(&sandbox, &exe, "deleted", &PACE);
    let (snapshot, _) = checkpoint_and_kill(&sandbox, &exe, "gone", &PACE);
    std::fs::remove_dir_all(sandbox.dir().join("gone")).expect("the run's directory");
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(&reference, &restarted, "the restart without the directory");
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

/// A program with a second thread cannot be saved as an image: the checkpoint is refused with
/// that reason, without the advice of `--crs self` (which needs MPI), and the program runs on
/// to the uninterrupted result.
#[test]
fn a_multi_threaded_program_is_refused_and_runs_on() {
    let sandbox = Sandbox::new();
    let exe = program("threads").display().to_string();
    let dir = run_dir(&sandbox, "threads");
    let reference = sandbox.mpicr(&["run", "-n", "1", "--", &exe, "20", "0", &dir]);
    ok(&reference, "the uninterrupted run of threads");
    let args = ["-n", "1", "--crs", "image", "--", &exe, "20", "100", &dir];
    let job = sandbox.start_job("threads", &args);
    job.wait_for_lines(1);
    let refused = sandbox.mpicr(&["checkpoint", "threads"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let reason = refused.stderr.lines().last().unwrap_or_default();
    assert!(
        reason.starts_with("mpicr: checkpoint 1 of job threads failed: rank 0")
            && reason.contains("the process has 2 threads")
            && reason.contains("single-threaded")
            && !reason.contains("--crs self"),
        "{}",
        refused.stderr
    );
    let finished = job.finish();
    ok(&finished, "the job after the refused checkpoint");
    assert_eq!(finished.stdout, reference.stdout);
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

/// A damaged byte in a deleted file's saved contents is found by its section's checksum before
/// the program runs, and the message says whose contents they are.
#[test]
fn damaged_contents_of_a_deleted_file_are_refused_at_restart() {
    let exe = program("deleted");
    let sandbox = Sandbox::new();
    let (snapshot, _) = checkpoint_and_kill(&sandbox, &exe, "dmg", &PACE);
    let epoch = snapshot.rsplit('.').next().expect("JOB.EPOCH");
    let image = sandbox
        .snapshots()
        .join("dmg")
        .join(epoch)
        .join("rank-0.image");
    let mut bytes = std::fs::read(&image).expect("the image");
    // The last FILE section ends right before the trailer (32 bytes) with its crc (4 bytes):
    // the byte before them is the log's last byte.
    let at = bytes.len() - 32 - 4 - 1;
    bytes[at] ^= 0x20;
    std::fs::write(&image, &bytes).expect("the image rewritten");
    let out = sandbox.mpicr(&["restart", &snapshot]);
    assert_ne!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the program ran: {}", out.stdout);
    assert!(
        out.stderr.contains("checksum") && out.stderr.contains("the contents of deleted file"),
        "the message names the section: {}",
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

/// A wrapper that executes the program registers as the rank and hands its control connection
/// over at the exec (ARCHITECTURE.md, "Programs without MPI"), so the program is what is
/// checkpointed. `env` reaches the program through execvp.
#[test]
fn a_program_started_through_env_is_checkpointed_and_restarted() {
    let sandbox = Sandbox::new();
    state_survives_through(&sandbox, &["env", "STATE_WRAPPED=1"], "heap_brk", &PACE);
}

/// `sh -c 'exec …'`: the shell's own exec.
#[test]
fn a_program_started_through_sh_c_exec_is_checkpointed_and_restarted() {
    let sandbox = Sandbox::new();
    state_survives_through(
        &sandbox,
        &["sh", "-c", "exec \"$0\" \"$@\""],
        "heap_brk",
        &PACE,
    );
}

/// A job script that ends by executing the program (the kernel starts the shell for it).
#[test]
fn a_program_started_by_a_script_that_executes_it_is_checkpointed_and_restarted() {
    let sandbox = Sandbox::new();
    let script = sandbox.dir().join("job.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nSTATE_WRAPPED=1\nexport STATE_WRAPPED\nexec \"$@\"\n",
    )
    .expect("the script is written");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    let script = script.display().to_string();
    state_survives_through(&sandbox, &[&script], "heap_brk", &PACE);
}

/// The same through bash, started by `env` (`#!/usr/bin/env bash`), which first runs other
/// programs in children of its own. Bash defines its own `getenv` and `unsetenv` over its
/// shell variables: the library must take itself out of `environ` directly, or bash exports
/// it to every child, each of which then tries to join as the same rank and fails the job.
#[test]
fn a_bash_script_that_runs_commands_before_executing_the_program_is_checkpointed() {
    let sandbox = Sandbox::new();
    let script = sandbox.dir().join("job.bash");
    std::fs::write(
        &script,
        "#!/usr/bin/env bash
set -e
wrapped=$(/bin/echo 1)
/bin/true
\
         export STATE_WRAPPED=$wrapped
exec \"$@\"\n",
    )
    .expect("the script is written");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    let script = script.display().to_string();
    state_survives_through(&sandbox, &[&script], "heap_brk", &PACE);
}

/// A checkpoint that reaches a shell inside a command substitution: the shell waits for a
/// child the image cannot hold, so the rank refuses the checkpoint for the moment, the
/// coordinator asks again, and the checkpoint it then takes restarts to the uninterrupted
/// result. (An image of the waiting shell would restart to an empty substitution, which
/// this script refuses to go on with.)
#[test]
fn a_checkpoint_waits_until_the_rank_has_no_child_processes() {
    let sandbox = Sandbox::new();
    let exe = program("heap_brk");
    let reference = uninterrupted(&sandbox, &exe, "heap_brk", &PACE);
    let inside = sandbox.dir().join("inside");
    let script = sandbox.dir().join("job.bash");
    std::fs::write(
        &script,
        format!(
            "#!/usr/bin/env bash
wrapped=$(touch {inside}; /bin/sleep 1; /bin/echo 1)
[ \"$wrapped\" = 1 ] || {{ echo \"the substitution came back empty\" >&2; exit 3; }}
export STATE_WRAPPED=$wrapped
exec \"$@\"\n",
            inside = inside.display()
        ),
    )
    .expect("the script is written");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    let (script, exe) = (script.display().to_string(), exe.display().to_string());
    let steps = PACE.steps.to_string();
    let slow = PACE.slow_ms.to_string();
    let dir = run_dir(&sandbox, "st-children");
    let job = sandbox.start_job(
        "st-children",
        &[
            "-n", "1", "--crs", "image", "--", &script, &exe, &steps, &slow, &dir,
        ],
    );
    let start = std::time::Instant::now();
    while !inside.exists() {
        assert!(
            start.elapsed() < harness::LIMIT,
            "the script never began its substitution"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", "st-children"]));
    kill_rank(&sandbox, "st-children", 0, 0);
    let killed = job.finish();
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(
        &reference,
        &restarted,
        "the restart of the script's program",
    );
    assert!(
        killed.stderr.contains("child processes") && killed.stderr.contains("asking again"),
        "the first attempt was not refused for the shell's child:\n{}",
        killed.stderr
    );
}

/// A program that executes itself twice (execv, then execlp) hands the connection over each
/// time: checkpointed every 250 ms through its three stages, it prints what it prints
/// uninterrupted. Its first image (stage 0) restarts, with checkpoints again, into a process
/// that executes the next stages with its new job's connection; the newest image of that job
/// restarts to the end, and prints no line of stages 0 and 1: it was taken after both execs.
#[test]
fn a_program_that_executes_itself_twice_is_checkpointed_in_every_stage() {
    let exe = program("exec").display().to_string();
    let sandbox = Sandbox::new();
    let steps = "30";
    let reference_dir = run_dir(&sandbox, "reference");
    let reference = sandbox.mpicr(&["run", "-n", "1", "--", &exe, steps, "0", &reference_dir]);
    ok(&reference, "the uninterrupted run");
    let every = ["--checkpoint-every", "250ms"];
    let dir = run_dir(&sandbox, "stages");
    let mut args = vec!["run", "--job-name", "stages", "-n", "1", "--crs", "image"];
    args.extend_from_slice(&every);
    args.extend_from_slice(&["--", &exe, steps, "200", &dir]);
    let checkpointed = sandbox.mpicr(&args);
    ok(&checkpointed, "the checkpointed run");
    assert_eq!(checkpointed.stdout, reference.stdout);
    let first = [&["restart", "stages.1"][..], &every].concat();
    let again = sandbox.mpicr(&first);
    assert_continues(&reference, &again, "the restart of the first image");
    let last = sandbox.mpicr(&["restart", "stages"]);
    assert_continues(&reference, &last, "the restart of the newest image");
    assert!(
        !last.stdout.contains("stage 0 ") && !last.stdout.contains("stage 1 "),
        "the newest image was taken before the second exec:\n{}",
        last.stdout
    );
}

/// A malformed inherited-connection variable stops the rank before the program runs, with a
/// message that names it.
#[test]
fn a_malformed_inherited_connection_variable_is_a_clear_error() {
    let exe = program("heap_brk").display().to_string();
    let sandbox = Sandbox::new();
    let dir = run_dir(&sandbox, "bad");
    let args = [
        "run", "-n", "1", "--crs", "image", "--", &exe, "3", "0", &dir,
    ];
    let out = sandbox
        .start_env(&args, &[("MPICR_CONTROL_FD", "banana".into())])
        .finish();
    assert_ne!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the program ran: {}", out.stdout);
    assert!(
        out.stderr
            .contains("MPICR_CONTROL_FD is \"banana\", which is not DESCRIPTOR:PID"),
        "{}",
        out.stderr
    );
}
