//! Black-box tests of MPI semantics: real `mpicr run` jobs of the `mpicr-selftest` program on
//! both transports and several job sizes. Each suite checks its own results inside the job and
//! the job's exit status carries the verdict.

mod harness;

use harness::{Job, run};

const SIZES: [u32; 5] = [1, 2, 3, 4, 7];

fn suite_on_all_sizes(suite: &str, transport: &str) {
    for n in SIZES {
        let out = run(
            &["-n", &n.to_string(), "--transport", transport, "--"],
            &["selftest", suite],
        );
        assert_eq!(
            out.code,
            Some(0),
            "{suite} on {n} ranks over {transport} failed:\n{}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.contains(&format!("{suite} ok")),
            "{suite} on {n} ranks: {}",
            out.stdout
        );
    }
}

#[test]
fn matching_over_shm() {
    suite_on_all_sizes("matching", "shm");
}

#[test]
fn matching_over_tcp() {
    suite_on_all_sizes("matching", "tcp");
}

#[test]
fn nonblocking_over_shm() {
    suite_on_all_sizes("nonblocking", "shm");
}

#[test]
fn nonblocking_over_tcp() {
    suite_on_all_sizes("nonblocking", "tcp");
}

#[test]
fn truncation_over_shm() {
    suite_on_all_sizes("truncation", "shm");
}

#[test]
fn truncation_over_tcp() {
    suite_on_all_sizes("truncation", "tcp");
}

#[test]
fn collectives_over_shm() {
    suite_on_all_sizes("collectives", "shm");
}

#[test]
fn collectives_over_tcp() {
    suite_on_all_sizes("collectives", "tcp");
}

#[test]
fn communicators_over_shm() {
    suite_on_all_sizes("communicators", "shm");
}

#[test]
fn communicators_over_tcp() {
    suite_on_all_sizes("communicators", "tcp");
}

fn sizes(transport: &str) {
    let out = run(
        &["-n", "2", "--transport", transport, "--"],
        &["selftest", "sizes"],
    );
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

#[test]
fn messages_from_0_bytes_to_64_mib_over_shm() {
    sizes("shm");
}

#[test]
fn messages_from_0_bytes_to_64_mib_over_tcp() {
    sizes("tcp");
}

/// The receiver of an unexpected 256 MiB message peaks near one copy of it, not two.
fn no_double_memory(transport: &str) {
    let out = run(
        &["-n", "2", "--transport", transport, "--"],
        &["selftest", "bigmem"],
    );
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("peak-rss-mib"))
        .expect("the receiver reports its memory");
    let after: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(
        after < 256 + 128,
        "the receiver peaked at {after} MiB for a 256 MiB message ({line})"
    );
}

#[test]
fn an_unexpected_large_message_is_not_buffered_twice_over_shm() {
    no_double_memory("shm");
}

#[test]
fn an_unexpected_large_message_is_not_buffered_twice_over_tcp() {
    no_double_memory("tcp");
}

#[test]
fn a_rank_killed_by_a_signal_ends_the_job_of_ranks_blocked_in_mpi() {
    let out = run(&["-n", "3", "--"], &["selftest", "crash"]);
    assert_eq!(out.code, Some(128 + 6), "{}", out.stderr);
    assert!(
        out.stderr.contains("rank 1") && out.stderr.contains("SIGABRT"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn abort_ends_the_job_with_its_code_and_names_the_rank() {
    let out = run(&["-n", "3", "--"], &["selftest", "abort"]);
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    assert!(
        out.stderr.contains("rank 2") && out.stderr.contains("abort"),
        "{}",
        out.stderr
    );
}

#[test]
fn ctrl_c_ends_a_job_blocked_in_mpi_and_leaves_no_process() {
    for transport in ["shm", "tcp"] {
        let job = Job::start(
            &["-n", "4", "--transport", transport, "--"],
            &["selftest", "block"],
        );
        job.wait_for_lines(4);
        let (code, leftovers) = job.interrupt();
        assert_eq!(code, Some(130));
        assert!(leftovers.is_empty(), "processes left behind: {leftovers:?}");
    }
}

#[test]
fn status_shows_registered_mpi_ranks() {
    let job = Job::start(
        &[
            "-n",
            "3",
            "--job-name",
            "statustest",
            "--transport",
            "tcp",
            "--",
        ],
        &["selftest", "block"],
    );
    job.wait_for_lines(3);
    let out = job.mpicr(&["status", "statustest", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("status --json prints JSON");
    let ranks = v["ranks"].as_array().expect("a ranks array");
    assert_eq!(ranks.len(), 3);
    for (i, r) in ranks.iter().enumerate() {
        assert_eq!(r["rank"], i);
        assert_eq!(r["state"], "running", "{r}");
        assert!(r["pid"].as_u64().is_some_and(|p| p > 0));
        assert!(r["node"].as_str().is_some_and(|n| !n.is_empty()));
        assert!(
            r["data_addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("tcp:")),
            "{r}"
        );
    }
    let (code, leftovers) = job.interrupt();
    assert_eq!(code, Some(130));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_demo_verifies_its_result() {
    let out = harness::mpicr_plain(&["demo"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verified"), "{}", out.stdout);
    // The demo checkpoints the job (the default image checkpointer), kills a rank, restarts
    // it from its images and compares the results.
    for expected in [
        "The job runs with mpicr's default checkpointer, `image`",
        "is committed; the job computes on",
        "the job failed, as it should: rank 2 (pid ",
        "the restarted job went on from the snapshot: its first report was sweep ",
        "same result as the uninterrupted run",
        "snapshot directory",
    ] {
        assert!(out.stdout.contains(expected), "{expected}:\n{}", out.stdout);
    }
    assert!(
        out.stderr.contains("was killed by signal 9 (SIGKILL)"),
        "{}",
        out.stderr
    );
}

/// A job name is unique within a runtime directory only (each job here has its own, as two
/// users' sessions or two test sandboxes do), and `/dev/shm` is shared: two jobs of the same
/// name started at once keep to their own shared memory and both give the right result.
#[test]
fn jobs_of_the_same_name_in_two_runtime_directories_run_at_once() {
    let args = ["--job-name", "twin", "-n", "2", "--transport", "shm", "--"];
    let prog = ["image-ring", "300", "2"];
    let jobs = [Job::start(&args, &prog), Job::start(&args, &prog)];
    let [a, b] = jobs.map(Job::finish);
    for out in [&a, &b] {
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    }
    assert_eq!(a.stdout, b.stdout);
}
