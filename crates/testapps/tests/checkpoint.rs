//! Coordinated checkpoints of real MPI programs: checkpointed at arbitrary moments, killed
//! with SIGKILL, restarted; the result must equal an uninterrupted run's. The jobs run with
//! the default checkpointer (`image`), although `ckpt-ring` and `selftest` can also save
//! their own state; the tests about what only the `self` checkpointer has (safepoints, the
//! messages in transit a part holds) run with `--crs self`.

mod harness;

use harness::snap::{kill_rank, rank_pid, wait_for_snapshots};
use harness::{Out, Sandbox, result_line};

const STEPS: &str = "120";

/// The snapshot name `mpicr checkpoint` printed last.
fn committed(out: &Out) -> String {
    assert_eq!(
        out.code,
        Some(0),
        "the checkpoint failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
        .lines()
        .last()
        .expect("a snapshot name")
        .trim()
        .to_owned()
}

/// Uninterrupted, checkpointed and killed, restarted: the same result.
fn kill_and_restart(n: u32, transport: &str) {
    let sandbox = Sandbox::new();
    let ranks = n.to_string();
    let reference = sandbox.mpicr(&[
        "run",
        "-n",
        &ranks,
        "--transport",
        transport,
        "--",
        "ckpt-ring",
        STEPS,
    ]);
    let expected = result_line(&reference);
    let name = format!("ring{n}{transport}");
    let job = sandbox.start_job(
        &name,
        &[
            "-n",
            &ranks,
            "--transport",
            transport,
            "--",
            "ckpt-ring",
            STEPS,
            "15",
        ],
    );
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", &name]));
    assert_eq!(snapshot, format!("{name}.1"));
    let killed = job.kill();
    assert_ne!(killed.code, Some(0), "the job was killed");
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_eq!(
        result_line(&restarted),
        expected,
        "{n} ranks over {transport}: {}",
        restarted.stderr
    );
}

#[test]
fn restart_after_sigkill_gives_the_uninterrupted_result_on_1_to_4_ranks_over_shm() {
    for n in 1..=4 {
        kill_and_restart(n, "shm");
    }
}

#[test]
fn restart_after_sigkill_gives_the_uninterrupted_result_on_1_to_4_ranks_over_tcp() {
    for n in 1..=4 {
        kill_and_restart(n, "tcp");
    }
}

#[test]
fn repeated_checkpoints_and_a_restarted_job_checkpointed_again() {
    let sandbox = Sandbox::new();
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "3", "--", "ckpt-ring", "150"]));
    let job = sandbox.start_job("again", &["-n", "3", "--", "ckpt-ring", "150", "15"]);
    assert_eq!(
        committed(&sandbox.mpicr(&["checkpoint", "again"])),
        "again.1"
    );
    assert_eq!(
        committed(&sandbox.mpicr(&["checkpoint", "again"])),
        "again.2"
    );
    job.kill();
    // The restarted job (from the latest snapshot) is checkpointed once more and killed again.
    let restarted = sandbox.start(&["restart", "again"]);
    sandbox.wait_for_job("again");
    assert_eq!(
        committed(&sandbox.mpicr(&["checkpoint", "again"])),
        "again.3"
    );
    restarted.kill();
    let last = sandbox.mpicr(&["restart", "again.3"]);
    assert_eq!(result_line(&last), expected);
}

#[test]
fn terminate_ends_the_job_after_the_commit_and_restart_finishes_it() {
    let sandbox = Sandbox::new();
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "2", "--", "ckpt-ring", STEPS]));
    let job = sandbox.start_job("term", &["-n", "2", "--", "ckpt-ring", STEPS, "15"]);
    let name = committed(&sandbox.mpicr(&["checkpoint", "--terminate", "term"]));
    let ended = job.finish();
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        !ended.stdout.contains("result "),
        "the job ended before its end: {}",
        ended.stdout
    );
    assert_eq!(result_line(&sandbox.mpicr(&["restart", &name])), expected);
}

#[test]
fn a_message_heavy_job_has_messages_in_transit_in_its_snapshot() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job(
        "transit",
        &["-n", "4", "--crs", "self", "--", "ckpt-ring", STEPS, "15"],
    );
    committed(&sandbox.mpicr(&["checkpoint", "transit"]));
    job.kill();
    let list = sandbox.mpicr(&["snapshots", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list.stdout).expect("JSON");
    let in_transit = v[0]["in_transit_messages"].as_u64().expect("a count");
    // Every rank sends one message across each safepoint, so at least one per rank is held.
    assert!(
        in_transit >= 4,
        "only {in_transit} messages in transit: {v}"
    );
}

#[test]
fn a_corrupted_snapshot_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job("rot", &["-n", "2", "--", "ckpt-ring", STEPS, "15"]);
    let name = committed(&sandbox.mpicr(&["checkpoint", "rot"]));
    job.kill();
    let part = sandbox.snapshots().join("rot/1/rank-1.part");
    let mut bytes = std::fs::read(&part).expect("the part exists");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&part, bytes).expect("rewritten");
    let out = sandbox.mpicr(&["restart", &name]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        !out.stdout.contains("result"),
        "the job ran: {}",
        out.stdout
    );
    assert!(
        out.stderr.lines().any(|l| l.contains("rank-1.part")),
        "the message names the part: {}",
        out.stderr
    );
}

#[test]
fn a_rank_blocked_in_a_receive_does_not_deadlock_a_checkpoint() {
    // ChaRM4MPI's figure 2: rank 1 waits in MPI_Recv while rank 0 computes before sending.
    let sandbox = Sandbox::new();
    let job = sandbox.start_job("fig2", &["-n", "2", "--", "selftest", "fig2"]);
    assert_eq!(committed(&sandbox.mpicr(&["checkpoint", "fig2"])), "fig2.1");
    let out = job.finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("fig2 ok"));
}

#[test]
fn an_outstanding_request_at_the_safepoint_fails_the_checkpoint_and_names_it() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job(
        "pending",
        &["-n", "2", "--crs", "self", "--", "selftest", "outstanding"],
    );
    let out = sandbox.mpicr(&["checkpoint", "pending"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("still outstanding") && out.stderr.contains("request 0x"),
        "{}",
        out.stderr
    );
    let done = job.finish();
    assert_eq!(done.code, Some(0), "the program goes on: {}", done.stderr);
    assert!(
        done.stdout.contains("safepoint refused"),
        "the program was told: {}",
        done.stdout
    );
}

#[test]
fn safepoints_that_messages_cross_fail_the_checkpoint_instead_of_hanging() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job(
        "cross",
        &["-n", "2", "--crs", "self", "--", "selftest", "crossing"],
    );
    let out = sandbox.mpicr(&["checkpoint", "cross"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("safepoints must be collective"),
        "{}",
        out.stderr
    );
    let done = job.finish();
    assert_eq!(
        done.code,
        Some(0),
        "the job still gets its result: {}",
        done.stderr
    );
}

#[test]
fn failed_ranks_are_recovered_automatically_from_the_last_snapshot() {
    let sandbox = Sandbox::new();
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "3", "--", "ckpt-ring", "150"]));
    let job = sandbox.start_job(
        "auto",
        &[
            "-n",
            "3",
            "--checkpoint-every",
            "200ms",
            "--max-restarts",
            "2",
            "--",
            "ckpt-ring",
            "150",
            "15",
        ],
    );
    wait_for_snapshots(&sandbox, "auto", 1);
    let first = kill_rank(&sandbox, "auto", 1, 0);
    // The recovered job has new processes; once they run, fail it again.
    rank_pid(&sandbox, "auto", 1, first);
    wait_for_snapshots(&sandbox, "auto", 3);
    kill_rank(&sandbox, "auto", 2, 0);
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    assert_eq!(
        out.stderr
            .matches("recovering job auto from snapshot")
            .count(),
        2,
        "{}",
        out.stderr
    );
}

#[test]
fn a_failure_with_no_snapshot_or_no_recovery_left_ends_the_job() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job(
        "nosnap",
        &[
            "-n",
            "2",
            "--max-restarts",
            "1",
            "--",
            "ckpt-ring",
            "400",
            "15",
        ],
    );
    kill_rank(&sandbox, "nosnap", 0, 0);
    let out = job.finish();
    assert_eq!(out.code, Some(137), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no snapshot of this run to recover from"),
        "{}",
        out.stderr
    );

    let job = sandbox.start_job(
        "once",
        &[
            "-n",
            "2",
            "--checkpoint-every",
            "200ms",
            "--max-restarts",
            "1",
            "--",
            "ckpt-ring",
            "400",
            "15",
        ],
    );
    wait_for_snapshots(&sandbox, "once", 1);
    let first = kill_rank(&sandbox, "once", 1, 0);
    kill_rank(&sandbox, "once", 1, first);
    let out = job.finish();
    assert_eq!(out.code, Some(137), "{}", out.stderr);
    assert!(
        out.stderr.contains("failed after 1 of 1 recoveries"),
        "{}",
        out.stderr
    );
}

/// Sends `signal` to process `pid`.
fn signal(pid: u32, signal: rustix::process::Signal) {
    let target = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(target, signal).expect("the process can be signalled");
}

/// Waits until job `name` has checkpoint 1 in progress (`mpicr status --json`).
fn wait_for_checkpoint_in_progress(sandbox: &Sandbox, name: &str) {
    let start = std::time::Instant::now();
    while start.elapsed() < harness::LIMIT {
        let out = sandbox.mpicr(&["status", name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && v["checkpoint"]["in_progress"]["epoch"] == 1
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("job {name} never began its checkpoint");
}

/// How the job's end cuts a checkpoint short.
enum Cut {
    /// Rank 1 is killed (SIGKILL).
    KillRank,
    /// `mpicr run` is interrupted (SIGINT).
    Interrupt,
}

/// A checkpoint the job's end cuts short: rank 1 is stopped (SIGSTOP) before the checkpoint
/// is asked for, so that the checkpoint cannot be committed without it, and once the
/// checkpoint is under way the job is ended by `cut`. The requester must be answered with the
/// reason (`says`) and exit with status 1; nothing is committed; the job ends with
/// `job_code`.
fn checkpoint_cut_short(name: &str, cut: Cut, says: &str, job_code: i32) {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job(name, &["-n", "3", "--", "ckpt-ring", "100000", "15"]);
    let rank1 = rank_pid(&sandbox, name, 1, 0);
    signal(rank1, rustix::process::Signal::STOP);
    let request = sandbox.start(&["checkpoint", name]);
    wait_for_checkpoint_in_progress(&sandbox, name);
    let ended = match cut {
        Cut::KillRank => {
            signal(rank1, rustix::process::Signal::KILL);
            job.finish().code
        }
        Cut::Interrupt => job.interrupt().0,
    };
    assert_eq!(ended, Some(job_code), "how job {name} ended");
    let answer = request.finish();
    assert_eq!(answer.code, Some(1), "{}{}", answer.stdout, answer.stderr);
    let reason = format!("mpicr: checkpoint 1 of job {name} failed: {says}");
    assert!(
        answer.stderr.contains(&reason),
        "the requester was not told `{reason}`: {}",
        answer.stderr
    );
    assert!(
        !sandbox.snapshots().join(name).join("1").exists(),
        "a snapshot was committed"
    );
}

#[test]
fn a_checkpoint_cut_short_by_a_killed_rank_tells_the_requester_why() {
    checkpoint_cut_short(
        "cutkill",
        Cut::KillRank,
        "rank 1 was killed by signal 9 (SIGKILL)",
        137,
    );
}

#[test]
fn a_checkpoint_cut_short_by_the_end_of_the_job_tells_the_requester_why() {
    checkpoint_cut_short(
        "cutint",
        Cut::Interrupt,
        "job cutint is ending: received SIGINT",
        130,
    );
}

/// The CPUs process `pid` may run on (0: this one).
fn allowed_cpus(pid: u32) -> Vec<usize> {
    let pid = rustix::process::Pid::from_raw(pid as i32);
    let set = rustix::thread::sched_getaffinity(pid)
        .unwrap_or_else(|e| panic!("reading the CPUs of process {pid:?}: {e}"));
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect()
}

/// Every rank of job `name` runs on one CPU of `ours`, rank i on the i-th, wrapping around;
/// `not[rank]` is a pid the rank had before (0: any).
fn assert_bound(sandbox: &Sandbox, name: &str, ours: &[usize], not: &[u32]) -> Vec<u32> {
    let pids: Vec<u32> = (0..not.len())
        .map(|rank| rank_pid(sandbox, name, rank, not[rank]))
        .collect();
    for (rank, pid) in pids.iter().enumerate() {
        assert_eq!(
            allowed_cpus(*pid),
            [ours[rank % ours.len()]],
            "{name}: rank {rank} (pid {pid}) on the launcher's CPUs {ours:?}"
        );
    }
    pids
}

#[test]
fn bound_ranks_are_bound_again_when_recovered_and_when_restarted() {
    let sandbox = Sandbox::new();
    let ours = allowed_cpus(0);
    // One rank more than CPUs, so the binding wraps around.
    let ranks = (ours.len() + 1).to_string();
    let job = sandbox.start_job(
        "bound",
        &[
            "-n",
            &ranks,
            "--bind-to",
            "hwthread",
            "--checkpoint-every",
            "200ms",
            "--max-restarts",
            "1",
            "--",
            "ckpt-ring",
            "100000",
            "15",
        ],
    );
    let none = vec![0; ours.len() + 1];
    let first = assert_bound(&sandbox, "bound", &ours, &none);
    wait_for_snapshots(&sandbox, "bound", 1);
    kill_rank(&sandbox, "bound", 1, 0);
    // The recovery starts every rank anew.
    assert_bound(&sandbox, "bound", &ours, &first);
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", "bound"]));
    job.kill();

    let restarted = sandbox.start(&["restart", &snapshot]);
    assert_bound(&sandbox, "bound", &ours, &none);
    restarted.kill();
}
