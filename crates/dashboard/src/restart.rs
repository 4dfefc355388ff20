//! "Restart from this snapshot" on the page: the dashboard runs `mpicr restart` (the same
//! code as on the command line) as a process of its own, in its own process group, so that
//! the restarted job lives on when the dashboard ends. Its output goes to a log file in the
//! (private) runtime directory. The request is answered once the restarted job answers on its
//! control socket, or with the last line `mpicr restart` wrote if it ended first.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coord::{JobName, JobRef, job_status};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::Snapshot;
use thiserror::Error;

use crate::State;
use crate::gather;

/// How long a restart may take to bring its job up before the request is answered anyway.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How often the restarted job is looked for.
const START_POLL: Duration = Duration::from_millis(100);

/// The body of a restart request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestartBody {
    /// `JOB.EPOCH`, or `JOB` for the newest snapshot of that job.
    pub(crate) snapshot: String,
}

/// Reads a restart request's body, or the sentence that refuses it.
pub(crate) fn parse_restart_body(body: &[u8]) -> Result<RestartBody, String> {
    let refuse = |why: String| {
        format!("the body must be a JSON object like {{\"snapshot\": \"JOB.EPOCH\"}}: {why}")
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(refuse("it is empty".to_owned()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| refuse(e.to_string()))?;
    if !value.is_object() {
        return Err(refuse(format!("this is {value}")));
    }
    let parsed: RestartBody = serde_json::from_value(value).map_err(|e| refuse(e.to_string()))?;
    // Names only, never paths: the page restarts what it lists.
    JobName::parse(&parsed.snapshot).map_err(|e| {
        format!(
            "`{}` is not a snapshot name (JOB.EPOCH or JOB): {e}",
            parsed.snapshot
        )
    })?;
    Ok(parsed)
}

/// Why a restart was refused or failed; each maps to a status code.
#[derive(Debug, Error)]
pub(crate) enum RestartError {
    #[error(
        "this dashboard belongs to one `mpicr run` and ends with it; restart from \
         `mpicr dashboard` or with `mpicr restart {0}`"
    )]
    Disabled(String),
    #[error("there is no committed snapshot {0} in the snapshot directories of this dashboard")]
    UnknownSnapshot(String),
    #[error(
        "job {job} is running; a snapshot can be restarted once its job has ended \
         (`mpicr checkpoint --terminate` ends it with a snapshot)"
    )]
    JobRunning { job: String },
    #[error("snapshot {name} cannot be restarted: {why}; nothing was started")]
    Damaged { name: String, why: String },
    #[error("cannot write the restart's log {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{} restart`", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mpicr restart {snapshot} ended ({status}) before its job ran: {last_line}")]
    Ended {
        snapshot: String,
        status: String,
        last_line: String,
    },
    #[error(
        "mpicr restart {snapshot} (pid {pid}) has not brought job {job} up within {}s; its \
         output goes to {}",
        START_LIMIT.as_secs(),
        log.display()
    )]
    Slow {
        snapshot: String,
        job: String,
        pid: u32,
        log: PathBuf,
    },
}

/// One restart started from the page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RestartRecord {
    pub(crate) snapshot: String,
    pub(crate) job: String,
    /// The pid of `mpicr restart`, which is the restarted job's launcher.
    pub(crate) launcher_pid: u32,
    /// Unix seconds.
    pub(crate) started_at: u64,
    /// Where its output goes.
    pub(crate) log: PathBuf,
    /// How `mpicr restart` ended (`exit status 0`, …), once it has.
    pub(crate) ended: Option<String>,
}

/// The restarts of this dashboard, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    list: Arc<Mutex<Vec<RestartRecord>>>,
}

impl Restarts {
    pub(crate) fn all(&self) -> Vec<RestartRecord> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn ended(&self, pid: u32) -> Option<String> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|r| r.launcher_pid == pid)
            .and_then(|r| r.ended.clone())
    }
}

/// Restarts `name` (blocking): finds it among the snapshots the dashboard shows, checks that
/// its job is not running and that every part verifies, starts `mpicr restart` and waits until
/// the job answers.
pub(crate) fn restart(state: &State, name: &str) -> Result<RestartRecord, RestartError> {
    let Some(program) = &state.config.restart_program else {
        return Err(RestartError::Disabled(name.to_owned()));
    };
    let jobs = gather::jobs(state);
    let snapshots = gather::snapshots(state, &jobs);
    let info = snapshots
        .iter()
        .find(|s| s.name == name)
        .or_else(|| snapshots.iter().find(|s| s.job == name && s.latest))
        .ok_or_else(|| RestartError::UnknownSnapshot(name.to_owned()))?;
    if jobs.iter().any(|j| j.reply.job == info.job) {
        return Err(RestartError::JobRunning {
            job: info.job.clone(),
        });
    }
    let damaged = |why: String| RestartError::Damaged {
        name: info.name.clone(),
        why,
    };
    let snapshot = Snapshot::open(&info.path).map_err(|e| damaged(coord::error_chain(&e)))?;
    snapshot
        .verify()
        .map_err(|e| damaged(coord::error_chain(&e)))?;
    // The store's layout is ROOT/JOB/EPOCH; the restarted job checkpoints into the same root.
    let root =
        info.path.parent().and_then(Path::parent).ok_or_else(|| {
            damaged("its directory is not inside a snapshot directory".to_owned())
        })?;
    let started_at = gather::unix_now();
    let log = state.config.runtime_dir.path().join(format!(
        "restart-{}-{}-{started_at}.log",
        info.job, info.epoch
    ));
    let out = File::create(&log).map_err(|source| RestartError::Log {
        path: log.clone(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| RestartError::Log {
        path: log.clone(),
        source,
    })?;
    let mut child = Command::new(program)
        .arg("restart")
        .arg("--snapshot-dir")
        .arg(root)
        .arg(&info.name)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: Ctrl-C in the dashboard's terminal does not end the job.
        .process_group(0)
        .spawn()
        .map_err(|source| RestartError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let record = RestartRecord {
        snapshot: info.name.clone(),
        job: info.job.clone(),
        launcher_pid: pid,
        started_at,
        log: log.clone(),
        ended: None,
    };
    state
        .restarts
        .list
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(record.clone());
    // Reaps it whenever it ends and notes how.
    let list = state.restarts.list.clone();
    let reaper = std::thread::Builder::new()
        .name("restart-reaper".into())
        .spawn(move || {
            let ended = match child.wait() {
                Ok(status) => status.to_string(),
                Err(e) => format!("cannot be waited for: {e}"),
            };
            if let Some(r) = list
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter_mut()
                .find(|r| r.launcher_pid == pid)
            {
                r.ended = Some(ended);
            }
        });
    if let Err(e) = reaper {
        tracing::warn!("cannot watch mpicr restart (pid {pid}): {e}");
    }
    let start = Instant::now();
    loop {
        if let Ok(reply) = job_status(&state.config.runtime_dir, &JobRef::Pid(pid))
            && reply.job == record.job
        {
            return Ok(record);
        }
        if let Some(status) = state.restarts.ended(pid) {
            return Err(RestartError::Ended {
                snapshot: record.snapshot,
                status,
                last_line: last_line(&log),
            });
        }
        if start.elapsed() > START_LIMIT {
            return Err(RestartError::Slow {
                snapshot: record.snapshot,
                job: record.job,
                pid,
                log,
            });
        }
        std::thread::sleep(START_POLL);
    }
}

/// The last non-empty line of a log, without mpicr's `mpicr: ` prefix.
fn last_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("it wrote nothing");
    line.strip_prefix("mpicr: ").unwrap_or(line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_bodies() {
        assert_eq!(
            parse_restart_body(br#"{"snapshot": "heat.3"}"#)
                .expect("a name")
                .snapshot,
            "heat.3"
        );
        assert_eq!(
            parse_restart_body(br#"{"snapshot": "heat"}"#)
                .expect("a job")
                .snapshot,
            "heat"
        );
        for bad in [
            &b""[..],
            b"{",
            b"{}",
            b"[]",
            br#"{"snapshot": 3}"#,
            br#"{"snapshot": "heat.3", "now": true}"#,
        ] {
            let sentence = parse_restart_body(bad).expect_err("refused");
            assert!(sentence.starts_with("the body must be"), "{sentence}");
        }
        for bad in [
            br#"{"snapshot": "../etc"}"#.as_slice(),
            br#"{"snapshot": "/tmp/x"}"#,
            br#"{"snapshot": ""}"#,
            br#"{"snapshot": "a b"}"#,
        ] {
            let sentence = parse_restart_body(bad).expect_err("refused");
            assert!(sentence.contains("is not a snapshot name"), "{sentence}");
        }
    }
}
