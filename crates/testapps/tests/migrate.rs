//! Process migration on namespace nodes (`netns`): `mpicr migrate` moves a rank of a running
//! `--crs image` job to another node while the others compute on; the job's result is the
//! uninterrupted run's; bad requests are refused with a sentence; nothing is left behind (no
//! process, and no image or part on any node once a migration is over, done or failed).
//! Skipped (with a line on stderr) where namespaces cannot be made (not root).

mod harness;
mod netns;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::{LIMIT, Out, Sandbox, leftovers, placement, result_line, strs};
use netns::{Cluster, LAUNCHER, job_args, job_args_with, setup, signal};

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
    // The copy's time comes from the source daemon, possibly after the rank arrived; the
    // answer must wait for it rather than say the copy took no time.
    let copied = out
        .stdout
        .split("copied in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse::<f64>().ok());
    assert!(
        copied.is_some_and(|ms| ms > 0.0),
        "{what} printed no copy time: {}",
        out.stdout
    );
    // Not on a terminal, the progress of the wait is one plain line on stderr.
    assert!(
        out.stderr.contains("mpicr: migrating rank "),
        "{what} showed no progress: {}",
        out.stderr
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

/// The directories the daemons of job `name` keep (`node::daemon`): each node's private
/// directory and, where there is /dev/shm, its shared-memory directory.
fn node_dirs(sandbox: &Sandbox, cluster: &Cluster, name: &str) -> Vec<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let runtime = sandbox.dir().join("mpicr");
    let mut dirs = Vec::new();
    for (k, node) in cluster.nodes.iter().enumerate() {
        let pid = cluster.daemon_pid(k + 1);
        let private = [
            format!("{name}.{}.{pid}.node", node.name),
            format!("{pid}.node"),
        ]
        .into_iter()
        .map(|d| runtime.join(d))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("node {}'s daemon has no private directory", node.name));
        dirs.push(private);
        if std::path::Path::new("/dev/shm").is_dir() {
            let shm = PathBuf::from(format!("/dev/shm/mpicr-{uid}-{name}-{}-{pid}", node.name));
            assert!(shm.is_dir(), "{} is missing", shm.display());
            dirs.push(shm);
        }
    }
    dirs
}

/// What migrations left in `dirs`: entries named `migrate-*` (the source's capture
/// directory, the target's received image) or holding an image or a part; `None` once one of
/// `dirs` is gone (the job ended).
fn migration_files(dirs: &[PathBuf]) -> Option<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut todo = dirs.to_vec();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            if dirs.contains(&dir) {
                return None;
            }
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with("migrate-") || file.ends_with(".image") || file.ends_with(".part") {
                found.push(entry.path());
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            }
        }
    }
    Some(found)
}

/// Waits until nothing of the migrations of job `name` is left on its nodes. The source
/// removes its copy of the image once the target has started the restorer, which may be just
/// after the requester was answered; a leftover that stays fails the test.
fn nothing_left_on_the_nodes(sandbox: &Sandbox, cluster: &Cluster, name: &str, after: &str) {
    let dirs = node_dirs(sandbox, cluster, name);
    let start = Instant::now();
    let mut left = Vec::new();
    loop {
        let Some(now) = migration_files(&dirs) else {
            panic!("job {name} ended while {after} had left on the nodes: {left:?}");
        };
        left = now;
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{after} left on the nodes: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
        nothing_left_on_the_nodes(&sandbox, &cluster, name, &format!("migration {step}"));
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
/// migration of the same rank, or of another one, is refused meanwhile; the source daemon's
/// copy of the image runs at nice 19, below the ranks; once the daemon runs again the
/// migration completes and the job's result is the uninterrupted one's. Then `mpicr drain`
/// empties node 1.
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
    // Wait until the coordinator has the request...
    wait_until_migrating(&sandbox, name, &nodes[2]);
    refused(
        &migrate(&sandbox, name, 1, &nodes[2]),
        "one migration at a time",
    );
    // ...then the other ranks' progress must go on: 30 more steps of rank 0, which has sent a
    // message for rank 3 every step.
    let seen = job.lines();
    job.wait_for_lines(seen + 30);
    assert_eq!(
        copy_thread_nice(cluster.daemon_pid(3)),
        19,
        "the source daemon's copy thread yields to the ranks"
    );
    // The copy waits for the stopped target: the source's capture is complete, and it is the
    // image alone (a migration writes no part).
    let captured: Vec<String> = migration_files(&node_dirs(&sandbox, &cluster, name))
        .expect("the job runs")
        .iter()
        .filter(|p| p.is_dir())
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(captured, ["rank-3.image"], "what the source captured");
    signal(target, rustix::process::Signal::CONT);
    migrated(&request.finish(), "the migration during the run");
    assert_eq!(placement(&sandbox, name)[3], nodes[1]);
    nothing_left_on_the_nodes(&sandbox, &cluster, name, "the migration during the run");

    let drained = sandbox.mpicr(&["drain", name, &nodes[0]]);
    assert_eq!(
        drained.code,
        Some(0),
        "drain: {}{}",
        drained.stdout,
        drained.stderr
    );
    assert!(
        drained
            .stderr
            .contains(&format!("draining node {}: ranks moved: 0 of ", nodes[0])),
        "drain showed no progress: {}",
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

/// The nice value of daemon `pid`'s thread that sends a migration's image (`migrate-send`),
/// once it runs (it waits for the stopped target meanwhile).
fn copy_thread_nice(pid: i32) -> i64 {
    let start = Instant::now();
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon runs");
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Field 19 of stat, counted after the command's closing parenthesis (field 2).
            let nice = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(16))
                .and_then(|v| v.parse().ok());
            if comm.trim() == "migrate-send"
                && let Some(nice) = nice
            {
                return nice;
            }
        }
        assert!(
            start.elapsed() < LIMIT,
            "daemon {pid} never started the copy of the image"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the coordinator of job `name` has a migration of rank 3 under way (a second
/// request is refused for it; this probe asks for `probe_node`, the node rank 3 is on, so it
/// can never start a migration itself).
fn wait_until_migrating(sandbox: &Sandbox, name: &str, probe_node: &str) {
    let start = Instant::now();
    loop {
        let second = migrate(sandbox, name, 3, probe_node);
        if second.stderr.contains("rank 3 is already migrating") {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "the migration request never arrived: {}",
            second.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last recovery in `mpicr status --json` of job `name`, once it is complete.
fn recovered(sandbox: &Sandbox, name: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let out = sandbox.mpicr(&["status", name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && let Some(last) = v["recoveries"].as_array().and_then(|r| r.last())
            && last["recovered_ms"].is_u64()
        {
            return last.clone();
        }
        // A lost node's launcher may take the daemons' start timeout (30 s) to give up.
        assert!(
            start.elapsed() < LIMIT,
            "no recovery of job {name} in its status"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const RING_STEPS: &str = "600";

/// Job `name`: `migrate-ring` on 4 ranks over the 3 nodes (ranks 0-1, 2, 3) with `--crs
/// image` and the options `extra`, its daemons started by `launcher`; returned once every
/// rank runs, with the nodes' names and the uninterrupted run's result.
fn ring_job(
    sandbox: &Sandbox,
    cluster: &Cluster,
    name: &str,
    launcher: &str,
    extra: &[&str],
) -> (harness::Job, Vec<String>, String) {
    let reference = sandbox.mpicr(&["run", "-n", "4", "--", "migrate-ring", RING_STEPS]);
    let expected = result_line(&reference);
    let mut rest = vec!["-n", "4", "--crs", "image"];
    rest.extend_from_slice(extra);
    rest.extend(["--", "migrate-ring", RING_STEPS, "10"]);
    let args = job_args_with(sandbox, cluster, name, launcher, &rest);
    let job = sandbox.start_job(name, &strs(&args));
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    placement(sandbox, name);
    (job, nodes, expected)
}

/// A node of the migration is lost while the migration cannot complete: node `lost` (the
/// target 2 or the source 3) has its daemon stopped, so that the image never arrives, and
/// then disappears. The requester is told which node failed during the migration and that
/// rank 3 did not move; the job, which runs with `--max-restarts` and was checkpointed before
/// the migration, rolls back to that snapshot
/// with the lost node's ranks on the surviving nodes; the recovery in `mpicr status` names
/// the migration; the result is the uninterrupted run's and nothing is left behind.
fn node_lost_during_migration(lost: usize) {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let name = format!("lost{lost}");
    let (job, nodes, expected) = ring_job(
        &sandbox,
        &cluster,
        &name,
        LAUNCHER,
        &["--max-restarts", "2"],
    );
    job.wait_for_lines(10);
    // A snapshot taken on request, so that no periodic checkpoint collides with the
    // migration request (one would be refused meanwhile).
    let checkpoint = sandbox.mpicr(&["checkpoint", &name]);
    assert_eq!(checkpoint.code, Some(0), "{}", checkpoint.stderr);
    let lost_dirs: Vec<PathBuf> = node_dirs(&sandbox, &cluster, &name)
        .into_iter()
        .filter(|d| {
            let dir = d.file_name().unwrap_or_default().to_string_lossy();
            let node = &nodes[lost - 1];
            dir.contains(&format!(".{node}.")) || dir.contains(&format!("-{node}-"))
        })
        .collect();
    assert!(
        !lost_dirs.is_empty(),
        "node {lost}'s directories are not found"
    );
    signal(cluster.daemon_pid(lost), rustix::process::Signal::STOP);
    let request = sandbox.start(&["migrate", &name, "--rank", "3", "--to", &nodes[1]]);
    wait_until_migrating(&sandbox, &name, &nodes[2]);
    cluster.lose(lost);
    let answer = request.finish();
    assert_eq!(answer.code, Some(1), "{}{}", answer.stdout, answer.stderr);
    let during = format!(
        "during the migration of rank 3 from {} to {}",
        nodes[2], nodes[1]
    );
    assert!(
        answer
            .stderr
            .contains(&format!("node {} failed {during}", nodes[lost - 1]))
            && answer.stderr.contains("rank 3 did not move"),
        "the requester is not told: {}",
        answer.stderr
    );
    let recovery = recovered(&sandbox, &name);
    let failure = recovery["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains(&format!("node {} failed", nodes[lost - 1])) && failure.contains(&during),
        "the recovery does not name the migration: {recovery}"
    );
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("recovering job {name} from snapshot")),
        "{}",
        out.stderr
    );
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
    // The lost node's daemon was killed with its cleanup helper; the next process of the job
    // to start (the recovery's launch) or `mpicr status` removes its directories.
    sandbox.mpicr(&["status"]);
    let left: Vec<_> = lost_dirs.iter().filter(|d| d.exists()).collect();
    assert!(
        left.is_empty(),
        "the lost node's directories stay: {left:?}"
    );
}

#[test]
fn the_target_node_lost_during_a_migration_is_recovered_to_the_uninterrupted_result() {
    node_lost_during_migration(2);
}

#[test]
fn the_source_node_lost_during_a_migration_is_recovered_to_the_uninterrupted_result() {
    node_lost_during_migration(3);
}

/// The copy (`copy`: the target cannot write the image) or the restore (`restore`: the
/// restorer refuses the image) of the first migration fails on the target while every node
/// runs on (a fault injected with `MPICR_TEST_MIGRATE_FAULT` in the daemons' environment,
/// through the launcher). The requester is told why and that rank 3 computes on at its node,
/// `mpicr status` shows it there, a second migration of it succeeds, and the job's result is
/// the uninterrupted run's; the job's log has `logged` (what the failed process said).
fn migration_fails_on_the_target(kind: &str, says: &str, logged: Option<&str>) {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let name = format!("fault-{kind}");
    let launcher = format!("{LAUNCHER} env MPICR_TEST_MIGRATE_FAULT={kind}:1");
    let (job, nodes, expected) = ring_job(&sandbox, &cluster, &name, &launcher, &[]);
    job.wait_for_lines(10);
    let failed = migrate(&sandbox, &name, 3, &nodes[1]);
    refused(
        &failed,
        &format!("migration of rank 3 to node {} failed: ", nodes[1]),
    );
    assert!(
        failed.stderr.contains(says)
            && failed
                .stderr
                .contains(&format!("rank 3 computes on at node {}", nodes[2])),
        "{}",
        failed.stderr
    );
    assert_eq!(placement(&sandbox, &name)[3], nodes[2]);
    nothing_left_on_the_nodes(&sandbox, &cluster, &name, "the failed migration");
    // The peers' links to rank 3 thawed: the job moves on, and rank 3 can still move.
    let seen = job.lines();
    job.wait_for_lines(seen + 10);
    migrated(
        &migrate(&sandbox, &name, 3, &nodes[1]),
        "the second migration",
    );
    assert_eq!(placement(&sandbox, &name)[3], nodes[1]);
    nothing_left_on_the_nodes(&sandbox, &cluster, &name, "the second migration");
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "the job's result");
    assert!(
        out.stderr.contains(&format!(
            "migration of rank 3 from {} to {} failed",
            nodes[2], nodes[1]
        )),
        "the job's log does not say so: {}",
        out.stderr
    );
    // What the failed process said reaches the job's log, also when the target's daemon
    // forwards it after the process's end has failed the migration.
    if let Some(logged) = logged {
        assert!(
            out.stderr.contains(logged),
            "the job's log lacks `{logged}`: {}",
            out.stderr
        );
    }
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}

#[test]
fn a_migration_whose_copy_fails_leaves_the_rank_computing_on_its_node() {
    migration_fails_on_the_target("copy", "a fault injected by MPICR_TEST_MIGRATE_FAULT", None);
}

#[test]
fn a_migration_whose_restore_fails_leaves_the_rank_computing_on_its_node() {
    migration_fails_on_the_target(
        "restore",
        "the restored rank ended",
        Some("mpicr-restore: "),
    );
}

/// A checkpoint after a migration, and a restart from it: rank 3 moves to node 1, `mpicr
/// checkpoint` saves the job (rank 3's image taken on node 1), the job is killed, and `mpicr
/// restart` brings it back with the host list's placement (rank 3 on node 3 again) to the
/// uninterrupted run's result.
#[test]
fn a_job_checkpointed_after_a_migration_restarts_to_the_uninterrupted_result() {
    checkpoint_after_migration("ckmig", false);
}

/// The same with node stores (`--storage`, `--mirror 1`): the migrated rank's part and image
/// are written into its new node's store and mirrored from there, and the restart fetches
/// them back to rank 3's node of the host list.
#[test]
fn a_migrated_rank_of_a_job_with_node_stores_is_checkpointed_from_its_new_node() {
    checkpoint_after_migration("ckmigstore", true);
}

fn checkpoint_after_migration(name: &str, node_stores: bool) {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let storage = sandbox.dir().join("store-{node}").display().to_string();
    let stores: &[&str] = if node_stores {
        &["--storage", &storage, "--mirror", "1"]
    } else {
        &[]
    };
    let (job, nodes, expected) = ring_job(&sandbox, &cluster, name, LAUNCHER, stores);
    let before = placement(&sandbox, name);
    job.wait_for_lines(10);
    migrated(&migrate(&sandbox, name, 3, &nodes[0]), "the migration");
    let checkpoint = sandbox.mpicr(&["checkpoint", name]);
    assert_eq!(
        checkpoint.code,
        Some(0),
        "{}{}",
        checkpoint.stdout,
        checkpoint.stderr
    );
    let snapshot = checkpoint.stdout.trim().to_owned();
    job.kill();
    let mut restart = vec!["restart".to_owned()];
    restart.extend(job_args(&sandbox, &cluster, name, &[&snapshot]));
    let restarted = sandbox.start(&strs(&restart));
    assert_eq!(placement(&sandbox, name), before, "the restart's placement");
    let out = restarted.finish();
    assert_eq!(result_line(&out), expected, "the restarted job's result");
    assert!(
        !out.stdout.lines().any(|l| l == "progress 0"),
        "the restarted job began again instead of going on: {}",
        out.stdout
    );
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}

/// A migration after a checkpoint moves a full image: with incremental images (`--full-every`)
/// and the snapshot directory on the file system of the nodes' shared-memory directories
/// (where the migrating rank writes its image), an incremental image would name parents that
/// only the source node has, and the restore on the target would fail. Rank 3 is
/// checkpointed, moves to node 1, the job is checkpointed again and ends with the
/// uninterrupted result.
#[test]
fn a_migration_after_a_checkpoint_moves_a_full_image() {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    // The nodes' shared-memory directories are in /dev/shm, or in their runtime directory
    // (the sandbox) where there is none.
    let shm = std::path::Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        sandbox.dir().to_path_buf()
    };
    let snapshots = tempfile::Builder::new()
        .prefix("mpicr-migrate-snapshots")
        .tempdir_in(parent)
        .expect("a snapshot directory");
    // mpicr refuses a snapshot directory open to other users.
    std::fs::set_permissions(
        snapshots.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("the snapshot directory made private");
    let dir = snapshots.path().display().to_string();
    let name = "fullmig";
    let (job, nodes, expected) = ring_job(
        &sandbox,
        &cluster,
        name,
        LAUNCHER,
        &["--full-every", "8", "--snapshot-dir", &dir],
    );
    job.wait_for_lines(10);
    for round in ["before", "after"] {
        let checkpoint = sandbox.mpicr(&["checkpoint", name]);
        assert_eq!(
            checkpoint.code,
            Some(0),
            "the checkpoint {round} the migration: {}{}",
            checkpoint.stdout,
            checkpoint.stderr
        );
        if round == "before" {
            migrated(
                &migrate(&sandbox, name, 3, &nodes[0]),
                "the migration after a checkpoint",
            );
            assert_eq!(placement(&sandbox, name)[3], nodes[0]);
        }
    }
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "the migrated run's result");
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
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

/// A rank that calls MPI rarely (`tests/c/rare_calls.c`: rank 0 computes 100 ms, then sends
/// one eager message, 60 times, and never waits) is moved at its next send, told by the
/// attention signal: the migration is over while the job still has seconds to run. Its new
/// control connection raises the signal too: a checkpoint asked for right after is committed
/// while the job runs. The job ends with the uninterrupted run's output.
#[test]
fn a_rank_that_calls_mpi_rarely_migrates_at_its_next_call_and_is_checkpointed_there() {
    let Some((_guard, cluster, sandbox)) = setup(2) else {
        return;
    };
    let prog = harness::mpicc("rare_calls", &[]);
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", &prog, "send", "60", "0"]);
    assert_eq!(reference.code, Some(0), "{}", reference.stderr);
    let name = "raremig";
    let rest = [
        "-n", "2", "--crs", "image", "--", &prog, "send", "60", "100",
    ];
    let args = job_args(&sandbox, &cluster, name, &rest);
    let mut job = sandbox.start_job(name, &strs(&args));
    let before = placement(&sandbox, name);
    let target = cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .find(|n| *n != before[0])
        .expect("a node other than rank 0's");
    migrated(&migrate(&sandbox, name, 0, &target), "the migration");
    assert!(
        !job.has_ended(),
        "the rank migrated only when the job ended"
    );
    assert_eq!(placement(&sandbox, name)[0], target, "rank 0's node");
    harness::snap::ok(&sandbox.mpicr(&["checkpoint", name]), "the checkpoint");
    assert!(
        !job.has_ended(),
        "the migrated rank's checkpoint was committed only when the job ended"
    );
    let out = job.finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, reference.stdout);
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}
