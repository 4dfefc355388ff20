//! Checkpoint, kill and restart steps of the image tests (`image.rs`, `image_state.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{LIMIT, Out, Sandbox};

/// When each process [`rank_pid`] returned started (clock ticks since boot, /proc/PID/stat
/// field 22): a restored rank may have its old pid back (the restorer keeps it when it may),
/// so "another process than `not`" is told by the start time as well.
static STARTED: Mutex<Option<HashMap<u32, u64>>> = Mutex::new(None);

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(22 - 3)?.parse().ok()
}

pub fn ok(out: &Out, what: &str) {
    assert_eq!(
        out.code,
        Some(0),
        "{what} failed:\n{}{}",
        out.stdout,
        out.stderr
    );
}

/// The snapshot name `mpicr checkpoint` printed last.
pub fn committed(out: &Out) -> String {
    ok(out, "the checkpoint");
    out.stdout
        .lines()
        .last()
        .expect("a snapshot name")
        .trim()
        .to_owned()
}

/// A pause shorter than `max`, different from run to run: the checkpoint lands anywhere.
pub fn random_moment(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos) % max.as_millis().max(1) as u64)
}

/// The pid of `rank` of job `name` from `mpicr status --json` (not the process `not`, one
/// killed before, though a new process may have its pid).
pub fn rank_pid(sandbox: &Sandbox, name: &str, rank: usize, not: u32) -> u32 {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        let out = sandbox.mpicr(&["status", name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && v["ranks"][rank]["state"] == "running"
            && let Some(pid) = v["ranks"][rank]["pid"].as_u64()
            && let Some(start) = start_time(pid as u32)
        {
            let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
            let started = started.get_or_insert_with(HashMap::new);
            let same_as_not = not != 0
                && pid as u32 == not
                && started.get(&not).is_none_or(|&before| before == start);
            if !same_as_not {
                started.insert(pid as u32, start);
                return pid as u32;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("rank {rank} of job {name} never ran");
}

/// SIGKILLs `rank` of job `name` (not the process `not`); returns the pid it killed.
pub fn kill_rank(sandbox: &Sandbox, name: &str, rank: usize, not: u32) -> u32 {
    let pid = rank_pid(sandbox, name, rank, not);
    let target = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(target, rustix::process::Signal::KILL)
        .expect("the rank can be killed");
    pid
}

/// Waits until job `name` has committed at least `epochs` snapshots.
pub fn wait_for_snapshots(sandbox: &Sandbox, name: &str, epochs: usize) {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        let count = std::fs::read_dir(sandbox.snapshots().join(name))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok())
                    .count()
            })
            .unwrap_or(0);
        if count >= epochs {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("job {name} never committed {epochs} snapshots");
}

/// `restarted` is a non-empty tail of `reference`, line for line, ending in its result.
pub fn assert_continues(reference: &Out, restarted: &Out, what: &str) {
    ok(reference, "the uninterrupted run");
    ok(restarted, what);
    assert!(
        restarted.stdout.contains("result "),
        "{what}: no result:\n{}{}",
        restarted.stdout,
        restarted.stderr
    );
    assert!(
        reference.stdout.ends_with(&restarted.stdout),
        "{what}: the restarted job printed what the uninterrupted run does not end with:\n\
         restarted:\n{}\nreference tail:\n{}\n{}",
        restarted.stdout,
        &reference.stdout[reference.stdout.len().saturating_sub(400)..],
        restarted.stderr
    );
}
