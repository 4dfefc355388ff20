//! What the dashboard shows, gathered as `mpicr status` and `mpicr snapshots` gather it. These
//! calls block (control sockets, files): the handlers run them on blocking threads.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use coord::{
    CheckpointStatus, ClientError, JobRef, MigrationOutcome, MigrationStats, checkpoint_status,
    job_status, live_jobs,
};
use serde_json::{Value, json};
use store::{SnapshotInfo, Store};
use wire::{ProcEntry, ProcState, ReportedUsage, StatusReply};

use crate::State;

/// The actions on every live job, as the page offers them: `checkpoint` and `terminate` are
/// both `POST /api/job/JOB/checkpoint` (with `{"terminate": true}` for the second). The page
/// shows a control only for the actions a job lists (see [`actions`]).
pub(crate) const JOB_ACTIONS: [&str; 2] = ["checkpoint", "terminate"];
/// `POST /api/job/JOB/migrate {"rank": R, "node": N}`, on jobs that can migrate a rank.
pub(crate) const MIGRATE: &str = "migrate";

/// The actions of `job`: [`JOB_ACTIONS`], and [`MIGRATE`] when it runs on several nodes with
/// the `image` checkpointer (what the coordinator requires of a migration).
pub(crate) fn actions(job: &LiveJob) -> Vec<&'static str> {
    let mut list = JOB_ACTIONS.to_vec();
    if migration_targets(job).len() > 1
        && job.checkpoints.as_ref().is_some_and(|c| c.crs == "image")
    {
        list.push(MIGRATE);
    }
    list
}

/// The nodes with a daemon of `job` (where its ranks can migrate to), as it published them.
pub(crate) fn migration_targets(job: &LiveJob) -> &[String] {
    job.checkpoints.as_ref().map_or(&[], |c| c.nodes.as_slice())
}

/// A live job and what it published about its checkpoints.
#[derive(Debug)]
pub(crate) struct LiveJob {
    pub(crate) reply: StatusReply,
    pub(crate) checkpoints: Option<CheckpointStatus>,
}

/// The live jobs this dashboard shows: the one of `--job`, or every job of the runtime
/// directory that answers.
pub(crate) fn jobs(state: &State) -> Vec<LiveJob> {
    let dir = &state.config.runtime_dir;
    let replies = match &state.config.job {
        Some(job) => match job_status(dir, job) {
            Ok(reply) => vec![reply],
            Err(ClientError::NotRunning(_)) => Vec::new(),
            Err(e) => {
                tracing::warn!("job {job} did not answer: {}", coord::error_chain(&e));
                Vec::new()
            }
        },
        None => live_jobs(dir),
    };
    replies
        .into_iter()
        .map(|reply| {
            let checkpoints = checkpoint_status(dir, &reply.job);
            LiveJob { reply, checkpoints }
        })
        .collect()
}

/// Whether this dashboard may show and act on `job` (with `--job`, only that one).
pub(crate) fn allowed(state: &State, job: &JobRef) -> bool {
    match &state.config.job {
        None => true,
        Some(only) if only == job => true,
        Some(only) => match job_status(&state.config.runtime_dir, only) {
            Ok(reply) => match job {
                JobRef::Name(name) => name.as_str() == reply.job,
                JobRef::Pid(pid) => *pid == reply.launcher_pid,
            },
            Err(_) => false,
        },
    }
}

/// The committed snapshots in the dashboard's snapshot directory and in the directory of each
/// of `jobs`, newest first; with `--job` only those of that job. Directories that cannot be
/// read are left out (and logged).
pub(crate) fn snapshots(state: &State, jobs: &[LiveJob]) -> Vec<SnapshotInfo> {
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    dirs.insert(state.config.snapshot_dir.clone());
    for job in jobs {
        if let Some(c) = &job.checkpoints {
            dirs.insert(c.snapshot_dir.clone());
        }
    }
    // With `--job`, only that job's snapshots: by the name of the running job, else by the
    // name given (a pid of a job that is gone names no snapshots).
    let only: Option<String> = state
        .config
        .job
        .as_ref()
        .map(|job| match (jobs.first(), job) {
            (Some(live), _) => live.reply.job.clone(),
            (None, JobRef::Name(name)) => name.as_str().to_owned(),
            (None, JobRef::Pid(_)) => String::new(),
        });
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    for dir in dirs {
        for info in list_dir(&dir) {
            if only.as_ref().is_none_or(|o| *o == info.job) && seen.insert(info.path.clone()) {
                all.push(info);
            }
        }
    }
    all.sort_by(|a, b| (b.created, b.epoch, &a.job).cmp(&(a.created, a.epoch, &b.job)));
    all
}

fn list_dir(dir: &Path) -> Vec<SnapshotInfo> {
    if !dir.exists() {
        return Vec::new();
    }
    match Store::open(Some(dir)).and_then(|s| s.list()) {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(
                "cannot list the snapshots in {}: {}",
                dir.display(),
                coord::error_chain(&e)
            );
            Vec::new()
        }
    }
}

/// The JSON of one job: what `mpicr status --json` shows, with the CPU and memory of every
/// rank (local ones read here, the others as their node daemons reported them) and the job's
/// snapshots.
pub(crate) fn job_json(state: &State, job: &LiveJob, snapshots: &[SnapshotInfo]) -> Value {
    let host = hostname();
    let ranks: Vec<Value> = job
        .reply
        .ranks
        .iter()
        .map(|e| rank_json(state, e, &job.reply.usage, &host))
        .collect();
    let c = job.checkpoints.as_ref();
    let mine: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| s.job == job.reply.job)
        .collect();
    json!({
        "job": job.reply.job,
        "launcher_pid": job.reply.launcher_pid,
        "command": job.reply.command,
        "started_at": job.reply.started_at,
        "ranks": ranks,
        "checkpoint": c.map(|c| json!({
            "snapshot_dir": c.snapshot_dir,
            "last": c.last.as_ref().map(|(name, _)| name),
            "last_path": c.last.as_ref().map(|(_, path)| path),
            "in_progress": c.running.as_ref().map(|p| json!({
                "epoch": p.epoch,
                "phase": p.phase,
                "reported": p.reported,
                "ranks": p.ranks,
            })),
        })),
        "recoveries": c.map_or_else(Vec::new, |c| c.recoveries.iter().map(|r| json!({
            "failure": r.failure,
            "snapshot": r.snapshot,
            "recovered_ms": r.recovered_ms,
        })).collect()),
        "snapshots": mine,
        "nodes": migration_targets(job),
        "migrations": c.map(|c| migrations_json(&c.migrations)),
        "redundancy_bytes": c.map(|c| json!({
            "mirrored": c.redundancy_bytes.mirrored,
            "parity": c.redundancy_bytes.parity,
        })),
        // What the page may offer on this job: each is a POST to /api/job/JOB/ACTION.
        "actions": actions(job),
    })
}

fn migrations_json(stats: &MigrationStats) -> Value {
    let recent: Vec<Value> = stats
        .recent
        .iter()
        .map(|m| {
            let mut value = json!({ "rank": m.rank, "from": m.from, "to": m.to });
            match &m.outcome {
                MigrationOutcome::Done {
                    total_us,
                    transfer_us,
                    bytes,
                } => {
                    value["total_us"] = json!(total_us);
                    value["transfer_us"] = json!(transfer_us);
                    value["bytes"] = json!(bytes);
                }
                MigrationOutcome::Failed(why) => value["failure"] = json!(why),
            }
            value
        })
        .collect();
    json!({
        "done": stats.done,
        "failed": stats.failed,
        "total_us": stats.total_us,
        "transfer_us": stats.transfer_us,
        "bytes": stats.bytes,
        "recent": recent,
    })
}

fn rank_json(state: &State, entry: &ProcEntry, reported: &[ReportedUsage], host: &str) -> Value {
    let alive = matches!(
        entry.state,
        ProcState::Spawned | ProcState::Running | ProcState::Finalized
    );
    let local = entry.node == host || entry.node == "localhost";
    let usage = if !alive || entry.pid == 0 {
        None
    } else if local {
        state
            .sampler
            .lock()
            .ok()
            .and_then(|mut s| s.usage(entry.pid))
    } else {
        // The coordinator hands on only reports about the process this row names.
        reported
            .iter()
            .find(|r| r.usage.rank == entry.rank && r.usage.pid == entry.pid)
            .and_then(|r| {
                let mut sampler = state.sampler.lock().ok()?;
                Some(sampler.reported(&entry.node, r))
            })
    };
    let mut value = json!({
        "rank": entry.rank,
        "node": entry.node,
        "pid": entry.pid,
        "state": entry.state.name(),
        "state_text": state_text(entry.state),
        "data_addr": entry.data_addr,
        "local": local,
        "cpu_seconds": usage.map(|u| u.cpu_seconds),
        "cpu_percent": usage.and_then(|u| u.cpu_percent),
        "rss_bytes": usage.map(|u| u.rss_bytes),
        "vsize_bytes": usage.and_then(|u| u.vsize_bytes),
    });
    match entry.state {
        ProcState::Exited(code) => value["exit_code"] = json!(code),
        ProcState::Signaled(signal) => value["signal"] = json!(signal),
        ProcState::Spawned | ProcState::Running | ProcState::Finalized => {}
    }
    value
}

/// The state as `mpicr status` writes it: `running`, `exited 3`, `signaled 9 (SIGKILL)`.
pub(crate) fn state_text(state: ProcState) -> String {
    match state {
        ProcState::Exited(code) => format!("exited {code}"),
        ProcState::Signaled(signal) => match node::signal_name(signal) {
            Some(name) => format!("signaled {signal} ({name})"),
            None => format!("signaled {signal}"),
        },
        other => other.name().to_owned(),
    }
}

/// This machine's name, as ranks started here report their node.
fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Everything the page shows, as one JSON object (`/api/overview` and each server-sent event).
pub(crate) fn overview(state: &State) -> Value {
    let jobs = jobs(state);
    let snapshots = snapshots(state, &jobs);
    let alive: HashSet<u32> = jobs
        .iter()
        .flat_map(|j| j.reply.ranks.iter().map(|r| r.pid))
        .collect();
    let list: Vec<Value> = jobs
        .iter()
        .map(|j| job_json(state, j, &snapshots))
        .collect();
    if let Ok(mut sampler) = state.sampler.lock() {
        sampler.retain(&alive);
    }
    json!({
        "generated_at": unix_now(),
        "snapshot_dir": state.config.snapshot_dir,
        "only_job": state.config.job.as_ref().map(|j| match j {
            JobRef::Name(name) => name.as_str().to_owned(),
            JobRef::Pid(pid) => pid.to_string(),
        }),
        "jobs": list,
        "snapshots": snapshots,
        // Whether POST /api/restart is served (not by the dashboard of `mpicr run`).
        "restart": state.config.restart_program.is_some(),
        "restarts": state.restarts.all(),
    })
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
