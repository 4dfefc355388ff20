//! The progress of long operations when stderr is not a terminal (as here: a pipe): plain
//! `mpicr: ` lines, one per step, without the carriage returns and escape sequences of a bar.
//! `mpicr checkpoint` (requested, ranks k of N, committed with its duration), `mpicr restart`
//! (parts verified k of N) and `mpicr gc` (jobs k of N, done). The ranks are the fake
//! `mpicr-test-rank` in its checkpoint mode.

mod common;

use common::*;
use rustix::process::Signal;
use serde_json::Value;

fn job_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// Every line is a plain `mpicr: ` line: nothing a terminal would interpret.
fn assert_plain(stderr: &str) {
    assert!(!stderr.contains('\r'), "a carriage return: {stderr:?}");
    assert!(!stderr.contains('\u{1b}'), "an escape sequence: {stderr:?}");
    assert!(
        stderr.lines().all(|l| l.starts_with("mpicr: ")),
        "{stderr:?}"
    );
}

fn wait_for_ranks(sandbox: &Sandbox, name: &str, n: usize) {
    wait_until("every rank to register", || {
        let done = sandbox.run(&["status", name, "--json"]);
        done.code == Some(0)
            && serde_json::from_str::<Value>(&done.stdout).is_ok_and(|json| {
                json["ranks"].as_array().is_some_and(|ranks| {
                    ranks.len() == n && ranks.iter().all(|r| r["state"] == "running")
                })
            })
    });
}

/// `rest` is `N of TOTAL` with N at most TOTAL.
fn is_count(rest: &str, total: u64) -> bool {
    rest.split_once(" of ").is_some_and(|(n, t)| {
        n.parse::<u64>().is_ok_and(|n| n <= total) && t.parse::<u64>() == Ok(total)
    })
}

#[test]
fn progress_is_plain_lines_off_a_terminal() {
    let sandbox = Sandbox::new("progress");
    let name = job_name("progress");
    let mut command = sandbox.command(
        MPICR,
        &[
            "run",
            "-n",
            "2",
            "--job-name",
            &name,
            // The test ranks write parts of the `self` checkpointer.
            "--crs",
            "self",
            "--",
            "mpicr-test-rank",
        ],
    );
    command
        .env("MPICR_TEST_CHECKPOINT", "1")
        // Slow ranks, so that the steps in between are usually seen (they are checked when
        // they are there; how many there are depends on timing).
        .env("MPICR_TEST_CKPT_DELAY_MS", "300");
    let launcher = sandbox.start_command(command, None);
    wait_for_ranks(&sandbox, &name, 2);

    for epoch in 1..=2 {
        let done = sandbox.run(&["checkpoint", &name]);
        assert_eq!(done.code, Some(0), "{done:?}");
        assert_eq!(done.lines(), [format!("{name}.{epoch}")], "{done:?}");
        assert_plain(&done.stderr);
        let lines = done.stderr_lines();
        assert_eq!(
            lines.first().copied(),
            Some(format!("mpicr: checkpoint of job {name} (2 ranks) requested").as_str()),
            "{done:?}"
        );
        let last = lines.last().expect("a last line");
        let committed = format!("mpicr: checkpoint {name}.{epoch} committed after ");
        assert!(last.starts_with(&committed), "{done:?}");
        let ms = last[committed.len()..].split(' ').next().unwrap_or("");
        assert!(ms.parse::<u64>().is_ok(), "a duration in ms: {last}");
        for middle in &lines[1..lines.len() - 1] {
            let step = middle
                .strip_prefix(&format!(
                    "mpicr: checkpoint {epoch}: ranks at their safepoint: "
                ))
                .or_else(|| {
                    middle.strip_prefix(&format!("mpicr: checkpoint {epoch}: ranks saved: "))
                })
                .unwrap_or_else(|| panic!("a step of the checkpoint: {middle}"));
            assert!(is_count(step, 2), "{middle}");
        }
    }
    launcher.signal(Signal::TERM);
    assert_eq!(launcher.wait().code, Some(143));

    // The durations are in the listing.
    let done = sandbox.run(&["snapshots", "--json"]);
    let list: Value = serde_json::from_str(&done.stdout).expect("JSON");
    for snapshot in list.as_array().expect("a list") {
        assert!(snapshot["duration_ms"].is_u64(), "{snapshot}");
        assert!(snapshot["stall_bound_ms"].is_u64(), "{snapshot}");
        assert!(
            snapshot["stall_bound_ms"].as_u64() <= snapshot["duration_ms"].as_u64(),
            "{snapshot}"
        );
    }
    let done = sandbox.run(&["snapshots"]);
    assert!(done.lines()[0].contains("DURATION"), "{done:?}");

    // A restart verifies part by part.
    let restarted = sandbox.start(&["restart", &format!("{name}.1")]);
    wait_for_ranks(&sandbox, &name, 2);
    restarted.signal(Signal::TERM);
    let done = restarted.wait();
    assert_eq!(done.code, Some(143), "{done:?}");
    let lines = done.stderr_lines();
    let verified: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("mpicr: snapshot {name}.1: parts verified: ")))
        .collect();
    assert_eq!(verified, ["1 of 2", "2 of 2"], "{done:?}");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\r') && !l.contains('\u{1b}')),
        "{done:?}"
    );

    // gc: the jobs looked at, then what was done; the removed snapshots on stdout.
    let done = sandbox.run(&["gc", "--keep", "1", &name]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_plain(&done.stderr);
    assert_eq!(
        done.stderr_lines(),
        [
            "mpicr: gc keeping 1 per job: jobs pruned: 0 of 1",
            "mpicr: gc done: snapshots removed: 1, jobs looked at: 1",
        ],
        "{done:?}"
    );
    assert_eq!(done.lines().len(), 1, "{done:?}");
}
