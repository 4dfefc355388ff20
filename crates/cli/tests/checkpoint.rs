//! Coordinated checkpoints as a user drives them: `mpicr checkpoint`, `restart`, `snapshots`,
//! `gc`, `--checkpoint-every`/`--keep`, and their refusals. The ranks are the fake
//! `mpicr-test-rank` in its checkpoint mode (`MPICR_TEST_CHECKPOINT=1`), which speaks the
//! rank side of the protocol and writes real parts with the store crate: parts of the `self`
//! checkpointer, so its jobs run with `--crs self` (a restart of an `image` job would look
//! for process images).

mod common;

use std::process::Command;

use common::*;
use rustix::process::Signal;
use serde_json::Value;

/// A name unique to this test process.
fn job_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// `mpicr run --crs self` of `n` checkpointing test ranks, with `env` added, started in the
/// background and waited for until every rank has registered.
fn checkpointing_job(
    sandbox: &Sandbox,
    name: &str,
    n: u32,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let ranks = n.to_string();
    let mut args = vec!["run", "-n", &ranks, "--job-name", name, "--crs", "self"];
    args.extend_from_slice(extra_args);
    args.extend_from_slice(&["--", "mpicr-test-rank"]);
    let mut command = sandbox.command(MPICR, &args);
    command.env("MPICR_TEST_CHECKPOINT", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let launcher = sandbox.start_command(command, None);
    wait_for_ranks(sandbox, name, n);
    launcher
}

/// Waits until `n` ranks of job `name` are registered and running.
fn wait_for_ranks(sandbox: &Sandbox, name: &str, n: u32) {
    wait_until("every rank to register", || {
        let done = sandbox.run(&["status", name, "--json"]);
        done.code == Some(0)
            && serde_json::from_str::<Value>(&done.stdout).is_ok_and(|json| {
                json["ranks"].as_array().is_some_and(|ranks| {
                    ranks.len() == n as usize && ranks.iter().all(|r| r["state"] == "running")
                })
            })
    });
}

fn snapshots_json(sandbox: &Sandbox) -> Vec<Value> {
    let done = sandbox.run(&["snapshots", "--json"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let list: Value =
        serde_json::from_str(&done.stdout).unwrap_or_else(|e| panic!("{e}: {done:?}"));
    list.as_array().expect("an array").clone()
}

fn snapshot_names(sandbox: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = snapshots_json(sandbox)
        .iter()
        .map(|s| s["name"].as_str().expect("a name").to_owned())
        .collect();
    names.sort();
    names
}

/// The last line of stdout of a successful checkpoint.
fn committed(done: &Finished) -> String {
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(
        done.stderr_lines().iter().all(|l| l.starts_with("mpicr: ")),
        "{done:?}"
    );
    done.lines().last().expect("a snapshot name").to_string()
}

fn end(launcher: Running) -> Finished {
    launcher.signal(Signal::TERM);
    let done = launcher.wait();
    assert_eq!(done.code, Some(143), "{done:?}");
    done
}

/// Nothing of the sandbox's jobs is left: processes, sockets, status files.
fn assert_clean(sandbox: &Sandbox) {
    sandbox.assert_nothing_left();
    let leftovers: Vec<String> = std::fs::read_dir(sandbox.runtime_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(leftovers, Vec::<String>::new());
}

#[test]
fn a_checkpoint_is_listed_and_a_restart_continues_it() {
    let sandbox = Sandbox::new("ckpt-restart");
    let name = job_name("ckpt");
    let launcher = checkpointing_job(&sandbox, &name, 2, &[], &[]);

    let done = sandbox.run(&["checkpoint", &name]);
    let first = committed(&done);
    assert_eq!(first, format!("{name}.1"));

    let list = snapshots_json(&sandbox);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], first.as_str());
    assert_eq!(list[0]["job"], name.as_str());
    assert_eq!(list[0]["epoch"], 1);
    assert_eq!(list[0]["ranks"], 2);
    assert_eq!(
        list[0]["checkpointers"],
        serde_json::json!(["self", "self"])
    );
    assert_eq!(list[0]["in_transit_messages"], 1);
    let table = sandbox.run(&["snapshots"]);
    assert!(table.lines()[0].starts_with("NAME"), "{table:?}");
    assert!(table.lines()[1].starts_with(&first), "{table:?}");

    let status = sandbox.run(&["status", &name, "--json"]);
    let json: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["checkpoint"]["last"], first.as_str());
    assert_eq!(json["checkpoint"]["in_progress"], Value::Null);
    assert!(json["checkpoint"]["last_duration_ms"].is_u64(), "{json}");
    let text = sandbox.run(&["status", &name]);
    // With the duration the coordinator recorded: `(PATH, taken in 12 ms)`.
    let last = format!(
        "last snapshot: {first} ({}, taken in ",
        list[0]["path"].as_str().unwrap()
    );
    assert!(
        text.lines().iter().any(|l| l.starts_with(&last)),
        "{text:?}"
    );
    // A restart keeps the job's name, so it waits for the running job to end, and says so.
    let early = sandbox.run(&["restart", &first]);
    assert_eq!(early.code, Some(1), "{early:?}");
    assert!(
        early.stderr.contains(&format!(
            "job `{name}` is still running, and a restart keeps its snapshot's job name"
        )),
        "{early:?}"
    );
    end(launcher);

    // The restart runs the same job from the snapshot, under the same name.
    let restarted = sandbox.start(&["restart", &first]);
    wait_for_ranks(&sandbox, &name, 2);
    let second = committed(&sandbox.run(&["checkpoint", "--terminate", &name]));
    assert_eq!(
        second,
        format!("{name}.2"),
        "epochs continue after a restart"
    );
    let done = restarted.wait();
    assert_eq!(done.code, Some(0), "{done:?}");
    let mut lines: Vec<&str> = done
        .lines()
        .into_iter()
        .filter(|l| l.contains("restarted"))
        .collect();
    lines.sort_unstable();
    // The counts were 1 and 2, so the agreed safepoint was 3.
    assert_eq!(
        lines,
        [
            "rank 0 restarted from epoch 1: rank 0 safepoint 3",
            "rank 1 restarted from epoch 1: rank 1 safepoint 3"
        ]
    );
    let line = format!("mpicr: job {name} ended after checkpoint {second}");
    assert!(done.stderr_lines().contains(&line.as_str()), "{done:?}");
    assert_eq!(snapshot_names(&sandbox), [first, second]);
    assert_clean(&sandbox);
}

#[test]
fn terminate_by_pid_with_mpi_checkpoint_ends_the_job_with_status_0() {
    let sandbox = Sandbox::new("ckpt-terminate");
    let name = job_name("term");
    let launcher = checkpointing_job(&sandbox, &name, 3, &[], &[]);
    let pid = launcher.pid().to_string();
    let done = sandbox.run_command(
        sandbox.command(MPI_CHECKPOINT, &["--terminate", &pid]),
        None,
    );
    let snapshot = committed(&done);
    assert_eq!(snapshot, format!("{name}.1"));
    let run = launcher.wait();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stderr_lines(),
        [format!("mpicr: job {name} ended after checkpoint {snapshot}").as_str()]
    );
    assert_clean(&sandbox);

    // mpi_restart takes the name too; the job checkpoints again from there.
    let restarted = sandbox.start_command(sandbox.command(MPI_RESTART, &[&name]), None);
    wait_for_ranks(&sandbox, &name, 3);
    let again = committed(&sandbox.run(&["checkpoint", "--terminate", &name]));
    assert_eq!(again, format!("{name}.2"));
    assert_eq!(restarted.wait().code, Some(0));
    assert_clean(&sandbox);
}

#[test]
fn concurrent_checkpoints_are_served_one_after_the_other() {
    let sandbox = Sandbox::new("ckpt-concurrent");
    let name = job_name("conc");
    // Slow ranks, so that the second request arrives while the first one runs.
    let launcher = checkpointing_job(
        &sandbox,
        &name,
        2,
        &[],
        &[("MPICR_TEST_CKPT_DELAY_MS", "300")],
    );
    let first = sandbox.start(&["checkpoint", &name]);
    wait_until("the first checkpoint to be in progress", || {
        let done = sandbox.run(&["status", &name, "--json"]);
        serde_json::from_str::<Value>(&done.stdout)
            .is_ok_and(|json| json["checkpoint"]["in_progress"]["epoch"] == 1)
    });
    let second = sandbox.start(&["checkpoint", &name]);
    let mut names = vec![committed(&first.wait()), committed(&second.wait())];
    names.sort();
    assert_eq!(names, [format!("{name}.1"), format!("{name}.2")]);
    assert_eq!(snapshot_names(&sandbox), names);
    let done = end(launcher);
    assert!(!done.stdout.contains("cancelled"), "{done:?}");
    assert_clean(&sandbox);
}

#[test]
fn a_rank_that_refuses_fails_the_checkpoint_and_the_job_goes_on() {
    let sandbox = Sandbox::new("ckpt-refused");
    let name = job_name("refused");
    let launcher = checkpointing_job(
        &sandbox,
        &name,
        2,
        &[],
        &[("MPICR_TEST_CKPT_FAIL", "1:it is finalizing")],
    );
    let done = sandbox.run(&["checkpoint", &name]);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert_eq!(done.stdout, "");
    let last = done
        .stderr_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        last,
        format!("mpicr: checkpoint 1 of job {name} failed: rank 1: it is finalizing")
    );
    assert_eq!(snapshot_names(&sandbox), Vec::<String>::new());
    // The job is untouched and can be asked again; the epoch is not reused.
    wait_for_ranks(&sandbox, &name, 2);
    let again = sandbox.run(&["checkpoint", &name]);
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("checkpoint 2 of job"), "{again:?}");
    let run = end(launcher);
    let mut cancelled: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.contains("cancelled"))
        .collect();
    cancelled.sort_unstable();
    assert_eq!(
        cancelled,
        [
            "rank 0: checkpoint 1 cancelled",
            "rank 0: checkpoint 2 cancelled",
            "rank 1: checkpoint 1 cancelled",
            "rank 1: checkpoint 2 cancelled"
        ]
    );
    assert_clean(&sandbox);
}

#[test]
fn checkpoints_of_a_missing_job_and_of_a_job_without_mpi_are_refused() {
    let sandbox = Sandbox::new("ckpt-nojob");
    let done = sandbox.run(&["checkpoint", "nosuchjob"]);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert_eq!(done.stdout, "");
    assert_eq!(
        done.stderr_lines(),
        ["mpicr: no job named `nosuchjob` is running"]
    );
    let done = sandbox.run_command(sandbox.command(MPI_CHECKPOINT, &["4000000"]), None);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert_eq!(
        done.stderr_lines(),
        ["mpicr: no job started by pid 4000000 is running"]
    );

    let name = job_name("sleepers");
    let launcher = sandbox.start(&["run", "-n", "2", "--job-name", &name, "--", "sleep", "1000"]);
    wait_until("the job's ranks to start", || {
        marked_named(&sandbox.marker, "sleep").len() == 2
    });
    let done = sandbox.run(&["checkpoint", &name]);
    assert_eq!(done.code, Some(1), "{done:?}");
    let last = done
        .stderr_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last.starts_with(&format!("mpicr: job {name} has no MPI ranks")),
        "{done:?}"
    );
    assert_eq!(snapshot_names(&sandbox), Vec::<String>::new());
    end(launcher);
    assert_clean(&sandbox);

    // Ranks that have left MPI (finalized) cannot be checkpointed any more.
    let name = job_name("finalized");
    let mut command = sandbox.command(
        MPICR,
        &[
            "run",
            "-n",
            "2",
            "--job-name",
            &name,
            "--",
            "mpicr-test-rank",
        ],
    );
    command.env("MPICR_TEST_LINGER", "1000");
    let launcher = sandbox.start_command(command, None);
    wait_until("both ranks to finalize", || {
        let done = sandbox.run(&["status", &name, "--json"]);
        serde_json::from_str::<Value>(&done.stdout).is_ok_and(|json| {
            json["ranks"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["state"] == "finalized"))
        })
    });
    let done = sandbox.run(&["checkpoint", &name]);
    assert_eq!(done.code, Some(1), "{done:?}");
    let last = done
        .stderr_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        last,
        format!("mpicr: job {name} is shutting down: rank 0 has finalized")
    );
    end(launcher);
    assert_clean(&sandbox);
}

#[test]
fn a_rank_can_ask_for_a_checkpoint_itself() {
    let sandbox = Sandbox::new("ckpt-app");
    let name = job_name("app");
    let launcher = checkpointing_job(&sandbox, &name, 2, &[], &[("MPICR_TEST_CKPT_REQUEST", "1")]);
    wait_until("the application's checkpoint", || {
        snapshot_names(&sandbox) == [format!("{name}.1")]
    });
    let run = end(launcher);
    assert!(!run.stderr.contains("failed"), "{run:?}");
    assert_clean(&sandbox);
}

#[test]
fn restart_refuses_a_missing_or_damaged_snapshot_and_starts_nothing() {
    let sandbox = Sandbox::new("ckpt-damaged");
    let done = sandbox.run(&["restart", "nosuchjob.3"]);
    assert_eq!(done.code, Some(1), "{done:?}");
    let lines = done.stderr_lines();
    assert_eq!(lines.len(), 1, "{done:?}");
    assert!(
        lines[0].starts_with("mpicr: no snapshot `nosuchjob.3`"),
        "{done:?}"
    );

    let name = job_name("damaged");
    let launcher = checkpointing_job(&sandbox, &name, 2, &[], &[]);
    let snapshot = committed(&sandbox.run(&["checkpoint", "--terminate", &name]));
    assert_eq!(launcher.wait().code, Some(0));
    assert_clean(&sandbox);

    // Flip one byte in the middle of rank 1's part: same size, wrong checksum.
    let part = sandbox
        .snapshot_dir()
        .join(&name)
        .join("1")
        .join("rank-1.part");
    let mut bytes = std::fs::read(&part).expect("the part");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&part, &bytes).expect("the part is rewritten");
    for how in [snapshot.as_str(), name.as_str()] {
        let done = sandbox.run(&["restart", how]);
        assert_eq!(done.code, Some(1), "{done:?}");
        assert_eq!(done.stdout, "");
        // The parts verified before the damaged one (progress), then the reason.
        let (last, before) = done.stderr_lines().split_last().map_or_else(
            || panic!("a reason: {done:?}"),
            |(last, before)| (last.to_string(), before.to_vec().join("\n")),
        );
        assert_eq!(
            before,
            format!("mpicr: snapshot {snapshot}: parts verified: 1 of 2"),
            "{done:?}"
        );
        assert!(
            last.starts_with(&format!("mpicr: snapshot {snapshot} cannot be restarted: "))
                && last.contains("rank-1.part")
                && last.ends_with("; nothing was started"),
            "{done:?}"
        );
        assert_clean(&sandbox);
    }
    // The damaged snapshot is still there, untouched.
    assert_eq!(snapshot_names(&sandbox), [snapshot]);
}

#[test]
fn periodic_checkpoints_with_keep_leave_at_most_two_snapshots() {
    let sandbox = Sandbox::new("ckpt-every");
    let name = job_name("every");
    let launcher = checkpointing_job(
        &sandbox,
        &name,
        2,
        &["--checkpoint-every", "200ms", "--keep", "2"],
        &[],
    );
    wait_until("four periodic checkpoints", || {
        snapshots_json(&sandbox)
            .iter()
            .any(|s| s["epoch"].as_u64().is_some_and(|e| e >= 4))
    });
    end(launcher);
    let list = snapshots_json(&sandbox);
    assert!(list.len() <= 2, "{list:?}");
    let newest = list.iter().filter_map(|s| s["epoch"].as_u64()).max();
    assert!(newest >= Some(4), "{list:?}");
    assert_clean(&sandbox);
}

#[test]
fn gc_keeps_the_newest_snapshots() {
    let sandbox = Sandbox::new("ckpt-gc");
    let name = job_name("gc");
    let launcher = checkpointing_job(&sandbox, &name, 1, &[], &[]);
    for _ in 0..3 {
        committed(&sandbox.run(&["checkpoint", &name]));
    }
    end(launcher);
    assert_eq!(snapshot_names(&sandbox).len(), 3);
    let done = sandbox.run(&["gc", "--keep", "1", &name]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.lines().len(), 2, "{done:?}");
    assert!(
        done.lines().iter().all(|l| l.starts_with("removed ")),
        "{done:?}"
    );
    assert_eq!(snapshot_names(&sandbox), [format!("{name}.3")]);
    let done = sandbox.run(&["gc", "--keep", "0"]);
    assert_eq!(done.code, Some(2), "{done:?}");
    let done = sandbox.run(&["gc", "--keep", "1"]);
    assert_eq!((done.code, done.stdout.as_str()), (Some(0), ""), "{done:?}");
    assert_eq!(snapshot_names(&sandbox), [format!("{name}.3")]);
    // An explicit directory works the same and holds nothing here.
    let other = sandbox.dir.path().join("elsewhere");
    let other = other.to_str().unwrap();
    let done = sandbox.run(&["snapshots", "--snapshot-dir", other]);
    assert_eq!(
        (done.code, done.stdout.as_str()),
        (Some(0), "no snapshots\n"),
        "{done:?}"
    );
}

#[test]
fn the_image_checkpointer_gives_ranks_the_rseq_tunable() {
    let sandbox = Sandbox::new("ckpt-image");
    let done = sandbox.run(&[
        "run",
        "--crs",
        "image",
        "-n",
        "1",
        "--",
        "sh",
        "-c",
        "echo \"$MPICR_CRS|$GLIBC_TUNABLES\"",
    ]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.stdout, "image|glibc.pthread.rseq=0\n", "{done:?}");
    assert!(sandbox.marked().is_empty());
}

#[test]
fn ranks_get_the_checkpoint_environment() {
    let sandbox = Sandbox::new("ckpt-env");
    let dir = sandbox.dir.path().join("snaps");
    let dir = dir.to_str().unwrap();
    let mut command: Command = sandbox.command(
        MPICR,
        &[
            "run",
            "-n",
            "1",
            "--snapshot-dir",
            dir,
            "--",
            "sh",
            "-c",
            "echo \"$MPICR_CRS|$MPICR_SNAPSHOT_DIR|${MPICR_RESTART_DIR-unset}\"",
        ],
    );
    command.env("MPICR_RESTART_DIR", "/not/a/snapshot");
    let done = sandbox.run_command(command, None);
    assert_eq!(done.code, Some(0), "{done:?}");
    // The default checkpointer; a restart variable of the launcher's own environment does not
    // leak to the ranks.
    assert_eq!(done.lines(), [format!("image|{dir}|unset").as_str()]);
}

#[test]
fn ranks_that_do_not_answer_in_time_fail_the_checkpoint() {
    let sandbox = Sandbox::new("ckpt-timeout");
    let name = job_name("timeout");
    // The ranks wait 3 s before every answer; the coordinator waits 1 s.
    let launcher = checkpointing_job(
        &sandbox,
        &name,
        2,
        &["--checkpoint-timeout", "1s"],
        &[("MPICR_TEST_CKPT_DELAY_MS", "3000")],
    );
    let done = sandbox.run(&["checkpoint", &name]);
    assert_eq!(done.code, Some(1), "{done:?}");
    let last = done
        .stderr_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        last,
        format!(
            "mpicr: checkpoint 1 of job {name} failed: rank 0 did not send its safepoint count within 1s"
        )
    );
    assert_eq!(snapshot_names(&sandbox), Vec::<String>::new());
    // The late answers are ignored and the job goes on.
    wait_for_ranks(&sandbox, &name, 2);
    end(launcher);
    assert_clean(&sandbox);
}
