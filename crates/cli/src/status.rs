//! `mpicr status`: the process table of a job, or the list of running jobs.

use std::io::{self, Write};
use std::process::ExitCode;

use coord::{
    CheckpointStatus, JobRef, RuntimeDir, checkpoint_status, error_chain, job_status, live_jobs,
};
use serde_json::{Value, json};
use wire::{ProcEntry, ProcState, ReportedUsage, StatusReply};

use crate::args::StatusArgs;
use crate::time::format_utc;
use crate::{EXIT_MPICR_ERROR, say};

pub(crate) fn main(args: &StatusArgs) -> ExitCode {
    let dir = match RuntimeDir::open() {
        Ok(dir) => dir,
        Err(e) => {
            say(&error_chain(&e));
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let text = match &args.job {
        Some(job) => match one_job(&dir, job, args.json) {
            Ok(text) => text,
            Err(e) => {
                say(&error_chain(&e));
                return ExitCode::from(EXIT_MPICR_ERROR);
            }
        },
        None => {
            let jobs: Vec<(StatusReply, Option<CheckpointStatus>)> = live_jobs(&dir)
                .into_iter()
                .map(|reply| {
                    let checkpoints = checkpoint_status(&dir, &reply.job);
                    (reply, checkpoints)
                })
                .collect();
            job_list(&jobs, args.json)
        }
    };
    // A closed stdout (`mpicr status | head -1`) is not an error worth a message.
    let _ = io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn one_job(dir: &RuntimeDir, job: &JobRef, json: bool) -> Result<String, coord::ClientError> {
    let reply = job_status(dir, job)?;
    let checkpoints = checkpoint_status(dir, &reply.job);
    Ok(if json {
        format!("{:#}\n", job_json(&reply, checkpoints.as_ref()))
    } else {
        job_table(&reply, checkpoints.as_ref())
    })
}

fn job_json(reply: &StatusReply, checkpoints: Option<&CheckpointStatus>) -> Value {
    let ranks: Vec<Value> = reply
        .ranks
        .iter()
        .map(|e| rank_json(e, reply.usage.iter().find(|u| u.usage.rank == e.rank)))
        .collect();
    json!({
        "job": reply.job,
        "launcher_pid": reply.launcher_pid,
        "command": reply.command,
        "started_at": reply.started_at,
        "ranks": ranks,
        "checkpoint": checkpoints.map(checkpoint_json),
        "recoveries": checkpoints.map_or_else(Vec::new, |c| c
            .recoveries
            .iter()
            .map(|r| json!({
                "failure": r.failure,
                "snapshot": r.snapshot,
                "recovered_ms": r.recovered_ms,
            }))
            .collect()),
    })
}

/// `{snapshot_dir, last, last_path, last_duration_ms, last_stall_bound_ms, in_progress:
/// {epoch, phase, reported, ranks} | null}`.
fn checkpoint_json(status: &CheckpointStatus) -> Value {
    let (last, last_path) = match &status.last {
        Some((name, path)) => (json!(name), json!(path)),
        None => (Value::Null, Value::Null),
    };
    let info = last_info(status);
    json!({
        "snapshot_dir": status.snapshot_dir,
        "last": last,
        "last_path": last_path,
        "last_duration_ms": info.as_ref().and_then(|i| i.duration_ms),
        "last_stall_bound_ms": info.as_ref().and_then(|i| i.stall_bound_ms),
        "in_progress": status.running.as_ref().map(|p| json!({
            "epoch": p.epoch,
            "phase": p.phase,
            "reported": p.reported,
            "ranks": p.ranks,
        })),
    })
}

/// What the manifest of the job's last snapshot says (its durations); `None` if it is gone.
fn last_info(status: &CheckpointStatus) -> Option<store::SnapshotInfo> {
    let (_, path) = status.last.as_ref()?;
    store::Snapshot::open(path).ok().map(|s| s.info(true))
}

/// The checkpoint lines of `mpicr status JOB`: none for a job without snapshots.
fn checkpoint_lines(status: &CheckpointStatus) -> String {
    let took = last_info(status)
        .and_then(|i| i.duration_ms)
        .map_or_else(String::new, |ms| {
            format!(", taken in {}", crate::snapshots::show_ms(ms))
        });
    let mut out = match &status.last {
        Some((name, path)) => format!("last snapshot: {name} ({}{took})\n", path.display()),
        None => String::new(),
    };
    if let Some(p) = &status.running {
        let what = match p.phase {
            "counting" => "sent their safepoint counts",
            _ => "saved their parts",
        };
        out.push_str(&format!(
            "checkpoint in progress: epoch {}, {} of {} ranks {what}\n",
            p.epoch, p.reported, p.ranks
        ));
    }
    for (i, r) in status.recoveries.iter().enumerate() {
        let after = r.recovered_ms.map_or_else(
            || "ranks starting".to_owned(),
            |ms| format!("running again after {ms} ms"),
        );
        out.push_str(&format!(
            "recovery {}: {}; rolled back to {}; {after}\n",
            i + 1,
            r.failure,
            r.snapshot
        ));
    }
    out
}

/// A row as JSON; `usage`: what the rank's node daemon last reported (ranks on other nodes
/// than the coordinator's; null elsewhere).
fn rank_json(entry: &ProcEntry, usage: Option<&ReportedUsage>) -> Value {
    let mut value = json!({
        "rank": entry.rank,
        "node": entry.node,
        "pid": entry.pid,
        "state": entry.state.name(),
        "data_addr": entry.data_addr,
        "cpu_seconds": usage.map(|u| u.usage.cpu_us as f64 / 1e6),
        "rss_bytes": usage.map(|u| u.usage.rss_bytes),
        "usage_at_ms": usage.map(|u| u.at_ms),
    });
    match entry.state {
        ProcState::Exited(code) => value["exit_code"] = json!(code),
        ProcState::Signaled(signal) => {
            value["signal"] = json!(signal);
            if let Some(name) = node::signal_name(signal) {
                value["signal_name"] = json!(name);
            }
        }
        ProcState::Spawned | ProcState::Running | ProcState::Finalized => {}
    }
    value
}

fn state_text(state: ProcState) -> String {
    match state {
        ProcState::Exited(code) => format!("exited {code}"),
        ProcState::Signaled(signal) => match node::signal_name(signal) {
            Some(name) => format!("signaled {signal} ({name})"),
            None => format!("signaled {signal}"),
        },
        other => other.name().to_owned(),
    }
}

fn job_table(reply: &StatusReply, checkpoints: Option<&CheckpointStatus>) -> String {
    let mut out = format!(
        "job {}  launcher pid {}  started {}\ncommand: {}\n",
        reply.job,
        reply.launcher_pid,
        format_utc(reply.started_at),
        reply.command.join(" ")
    );
    if let Some(status) = checkpoints {
        out.push_str(&checkpoint_lines(status));
    }
    let rows: Vec<[String; 5]> = reply
        .ranks
        .iter()
        .map(|e| {
            let addr = if e.data_addr.is_empty() {
                "-".to_owned()
            } else {
                e.data_addr.clone()
            };
            [
                e.rank.to_string(),
                e.node.clone(),
                e.pid.to_string(),
                state_text(e.state),
                addr,
            ]
        })
        .collect();
    out.push_str(&columns(["RANK", "NODE", "PID", "STATE", "ADDRESS"], &rows));
    out
}

fn job_list(jobs: &[(StatusReply, Option<CheckpointStatus>)], json: bool) -> String {
    if json {
        let list: Vec<Value> = jobs
            .iter()
            .map(|(reply, checkpoints)| job_json(reply, checkpoints.as_ref()))
            .collect();
        return format!("{:#}\n", Value::Array(list));
    }
    if jobs.is_empty() {
        return "no mpicr jobs are running\n".to_owned();
    }
    let rows: Vec<[String; 5]> = jobs
        .iter()
        .map(|(j, _)| {
            [
                j.job.clone(),
                j.launcher_pid.to_string(),
                j.ranks.len().to_string(),
                format_utc(j.started_at),
                j.command.join(" "),
            ]
        })
        .collect();
    columns(["JOB", "PID", "RANKS", "STARTED", "COMMAND"], &rows)
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(crate) fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json() {
        let reply = StatusReply {
            job: "j".into(),
            launcher_pid: 10,
            command: vec!["sleep".into(), "5".into()],
            started_at: 0,
            ranks: vec![
                ProcEntry {
                    rank: 0,
                    node: "n".into(),
                    pid: 11,
                    state: ProcState::Running,
                    data_addr: "a".into(),
                },
                ProcEntry {
                    rank: 1,
                    node: "n".into(),
                    pid: 12,
                    state: ProcState::Signaled(9),
                    data_addr: String::new(),
                },
            ],
            usage: vec![wire::ReportedUsage {
                usage: wire::RankUsage {
                    rank: 0,
                    pid: 11,
                    cpu_us: 2_500_000,
                    rss_bytes: 4096,
                },
                at_ms: 5,
            }],
        };
        let table = job_table(&reply, None);
        assert!(table.starts_with(
            "job j  launcher pid 10  started 1970-01-01 00:00:00 UTC\ncommand: sleep 5\n"
        ));
        assert!(
            table.contains("RANK  NODE  PID  STATE                 ADDRESS\n"),
            "{table}"
        );
        assert!(
            table.contains("1     n     12   signaled 9 (SIGKILL)  -\n"),
            "{table}"
        );
        let json = job_json(&reply, None);
        assert_eq!(json["ranks"][1]["state"], "signaled");
        assert_eq!(json["ranks"][1]["signal"], 9);
        assert_eq!(json["ranks"][0]["pid"], 11);
        assert_eq!(json["ranks"][0]["cpu_seconds"], 2.5);
        assert_eq!(json["ranks"][0]["rss_bytes"], 4096);
        assert_eq!(json["ranks"][1]["rss_bytes"], Value::Null);
    }
}
