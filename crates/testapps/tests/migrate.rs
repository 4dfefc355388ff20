//! Process migration on namespace nodes (`netns`): `mpicr migrate` moves a rank of a running
//! `--crs image` job to another node while the others compute on; the job's result is the
//! uninterrupted run's; bad requests are refused with a sentence; nothing is left behind.
//! Skipped (with a line on stderr) where namespaces cannot be made (not root).

mod harness;
mod netns;

use std::time::{Duration, Instant};

use harness::{Out, Sandbox, leftovers, placement, result_line, strs};
use netns::{job_args, setup, signal};

fn migrate(sandbox: &Sandbox, name: &str, rank: u32, node: &str) -> Out {
    sandbox.mpicr(&["migrate", name, "--rank", &rank.to_string(), "--to", node])
}

fn migrated(out: &Out, what: &str) {
    assert_eq!(
        out.code,
        Some(0),
        "{what} failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains(" moved from ") && out.stdout.contains(" in "),
        "{what} printed no time: {}",
        out.stdout
    );
}

fn refused(out: &Out, says: &str) {
    assert_eq!(
        out.code,
        Some(1),
        "not refused: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains(says),
        "the refusal does not say `{says}`: {}",
        out.stderr
    );
}

const STEPS: &str = "300";

/// A message-heavy image-ring job on 3 nodes (ranks 0-1, 2, 3): rank 3 moves to node 1, then
/// to node 2, then back to node 3; the result is the uninterrupted one's; `mpicr status`
/// shows each placement. Bad requests are refused meanwhile, and the job runs on. The peers
/// hold at most 100 bytes for the migrating rank, so their sends to it wait during migrations.
#[test]
fn a_rank_migrates_twice_and_back_during_a_message_heavy_run() {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let reference = sandbox.mpicr(&["run", "-n", "4", "--", "image-ring", STEPS]);
    let expected = result_line(&reference);
    let name = "mig";
    let args = job_args(
        &sandbox,
        &cluster,
        name,
        // A tiny hold limit: senders to the migrating rank wait (back-pressure) and must
        // still get through once it has moved.
        &[
            "-n",
            "4",
            "--crs",
            "image",
            "--",
            "env",
            "MPICR_MIGRATE_HOLD=100",
            "image-ring",
            STEPS,
            "20",
        ],
    );
    let job = sandbox.start_job(name, &strs(&args));
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let before = placement(&sandbox, name);
    assert_eq!(
        before,
        [
            nodes[0].clone(),
            nodes[0].clone(),
            nodes[1].clone(),
            nodes[2].clone()
        ]
    );
    job.wait_for_lines(5);

    refused(&migrate(&sandbox, name, 9, &nodes[0]), "has no rank 9");
    refused(
        &migrate(&sandbox, name, 3, "nowhere"),
        "node nowhere is not a node of job mig",
    );
    refused(
        &migrate(&sandbox, name, 3, &nodes[2]),
        "rank 3 is already on node",
    );

    for (step, to) in [&nodes[0], &nodes[1], &nodes[2]].into_iter().enumerate() {
        migrated(
            &migrate(&sandbox, name, 3, to),
            &format!("migration {step}"),
        );
        let now = placement(&sandbox, name);
        assert_eq!(&now[3], to, "status shows rank 3 on {to}: {now:?}");
        assert_eq!(now[..3], before[..3], "the other ranks stayed");
    }
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "the migrated run's result");
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}

/// Quasi-asynchrony: while rank 3 migrates to node 2 (whose daemon is stopped, so the
/// migration cannot complete), rank 0 (node 1) keeps printing its progress; a second
/// migration of the same rank, or of another one, is refused meanwhile; once the daemon
/// runs again the migration completes and the job's result is the uninterrupted one's.
/// Then `mpicr drain` empties node 1.
#[test]
fn the_other_ranks_compute_on_while_a_rank_migrates_and_drain_empties_a_node() {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let reference = sandbox.mpicr(&["run", "-n", "4", "--", "migrate-ring", "400"]);
    let expected = result_line(&reference);
    let name = "quasi";
    let args = job_args(
        &sandbox,
        &cluster,
        name,
        &[
            "-n",
            "4",
            "--crs",
            "image",
            "--",
            "migrate-ring",
            "400",
            "10",
        ],
    );
    let job = sandbox.start_job(name, &strs(&args));
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    placement(&sandbox, name);
    job.wait_for_lines(10);
    let target = cluster.daemon_pid(2);
    signal(target, rustix::process::Signal::STOP);
    let request = sandbox.start(&["migrate", name, "--rank", "3", "--to", &nodes[1]]);
    // Wait until the coordinator has the request (a second one is refused for it; this probe
    // asks for the node rank 3 is on, so it can never start a migration itself)...
    let start = Instant::now();
    loop {
        let second = migrate(&sandbox, name, 3, &nodes[2]);
        if second.stderr.contains("rank 3 is already migrating") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            second.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    refused(
        &migrate(&sandbox, name, 1, &nodes[2]),
        "one migration at a time",
    );
    // ...then the other ranks' progress must go on: 30 more steps of rank 0, which has sent a
    // message for rank 3 every step.
    let seen = job_lines(&job);
    job.wait_for_lines(seen + 30);
    signal(target, rustix::process::Signal::CONT);
    migrated(&request.finish(), "the migration during the run");
    assert_eq!(placement(&sandbox, name)[3], nodes[1]);

    let drained = sandbox.mpicr(&["drain", name, &nodes[0]]);
    assert_eq!(
        drained.code,
        Some(0),
        "drain: {}{}",
        drained.stdout,
        drained.stderr
    );
    let after = placement(&sandbox, name);
    assert!(
        after.iter().all(|n| *n != nodes[0]),
        "node 1 still runs ranks: {after:?}"
    );
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "the migrated run's result");
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}

fn job_lines(job: &harness::Job) -> usize {
    job.lines()
}

/// A node of the migration fails while it cannot complete (the target's daemon is stopped):
/// node `lost` (the target 2 or the source 3) disappears; the migration's requester is told
/// which node failed during the migration, the job ends like on any node failure, and
/// nothing is left behind.
fn node_lost_during_migration(lost: usize) {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let name = format!("lost{lost}");
    let args = job_args(
        &sandbox,
        &cluster,
        &name,
        &[
            "-n",
            "4",
            "--crs",
            "image",
            "--",
            "migrate-ring",
            "100000",
            "5",
        ],
    );
    let job = sandbox.start_job(&name, &strs(&args));
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    placement(&sandbox, &name);
    job.wait_for_lines(5);
    let target = cluster.daemon_pid(2);
    signal(target, rustix::process::Signal::STOP);
    let request = sandbox.start(&["migrate", &name, "--rank", "3", "--to", &nodes[1]]);
    let start = Instant::now();
    while !migrate(&sandbox, &name, 3, &nodes[2])
        .stderr
        .contains("rank 3 is already migrating")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the request never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if lost != 2 {
        signal(target, rustix::process::Signal::CONT);
    }
    cluster.lose(lost);
    let answer = request.finish();
    assert_eq!(answer.code, Some(1), "{}{}", answer.stdout, answer.stderr);
    assert!(
        answer.stderr.contains(&format!(
            "node {} failed during the migration of rank 3",
            nodes[lost - 1]
        )),
        "the requester is not told: {}",
        answer.stderr
    );
    let out = job.finish();
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("node {}", nodes[lost - 1])) && out.stderr.contains("failed"),
        "no node failure reported: {}",
        out.stderr
    );
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}

#[test]
fn the_target_node_lost_during_a_migration_ends_the_job_with_that_reason() {
    node_lost_during_migration(2);
}

#[test]
fn the_source_node_lost_during_a_migration_ends_the_job_with_that_reason() {
    node_lost_during_migration(3);
}

/// A job on one machine cannot migrate: the request is refused with a sentence and the job
/// runs on to its result. (No namespaces needed.)
#[test]
fn a_job_on_one_machine_refuses_migration_and_runs_on() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job(
        "onebox",
        &[
            "-n",
            "3",
            "--crs",
            "image",
            "--",
            "migrate-ring",
            "200",
            "5",
        ],
    );
    job.wait_for_lines(3);
    refused(
        &migrate(&sandbox, "onebox", 2, "elsewhere"),
        "job onebox runs on one machine; migration needs a job on several nodes",
    );
    let out = job.finish();
    result_line(&out);
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}
