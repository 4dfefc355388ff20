//! `/metrics` in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::State;
use crate::gather::{self, LiveJob};

/// The states of a rank, in the order of the wire format.
const STATES: [&str; 5] = ["spawned", "running", "finalized", "exited", "signaled"];

/// Checkpoints asked for through this dashboard and how they ended.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requested: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// The metrics text (blocking: it asks every job and reads the store).
pub(crate) fn render(state: &State) -> String {
    let jobs = gather::jobs(state);
    let snapshots = gather::snapshots(state, &jobs);
    let mut out = String::new();
    gauge(
        &mut out,
        "mpicr_jobs_running",
        "Live mpicr jobs that answered their status request.",
    );
    let _ = writeln!(out, "mpicr_jobs_running {}", jobs.len());

    gauge(&mut out, "mpicr_ranks", "Ranks of each live job, by state.");
    for job in &jobs {
        for state_name in STATES {
            let n = job
                .reply
                .ranks
                .iter()
                .filter(|r| r.state.name() == state_name)
                .count();
            let _ = writeln!(
                out,
                "mpicr_ranks{{job=\"{}\",state=\"{state_name}\"}} {n}",
                label(&job.reply.job)
            );
        }
    }

    gauge(
        &mut out,
        "mpicr_checkpoint_in_progress",
        "1 while a checkpoint of the job is running.",
    );
    gauge_per_job(&mut out, &jobs, "mpicr_checkpoint_in_progress", |j| {
        u64::from(j.checkpoints.as_ref().is_some_and(|c| c.running.is_some()))
    });
    gauge(
        &mut out,
        "mpicr_recoveries",
        "Automatic recoveries (--max-restarts) of the live job so far.",
    );
    gauge_per_job(&mut out, &jobs, "mpicr_recoveries", |j| {
        j.checkpoints
            .as_ref()
            .map_or(0, |c| c.recoveries.len() as u64)
    });

    let mut per_job: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for s in &snapshots {
        let entry = per_job.entry(s.job.as_str()).or_default();
        entry.0 += 1;
        entry.1 += s.size;
        entry.2 = entry.2.max(s.epoch);
    }
    gauge(
        &mut out,
        "mpicr_snapshots",
        "Committed snapshots in the snapshot directories, by job.",
    );
    for (job, (n, _, _)) in &per_job {
        let _ = writeln!(out, "mpicr_snapshots{{job=\"{}\"}} {n}", label(job));
    }
    gauge(
        &mut out,
        "mpicr_snapshot_bytes",
        "Bytes on disk of the committed snapshots, by job.",
    );
    for (job, (_, bytes, _)) in &per_job {
        let _ = writeln!(
            out,
            "mpicr_snapshot_bytes{{job=\"{}\"}} {bytes}",
            label(job)
        );
    }
    gauge(
        &mut out,
        "mpicr_snapshot_latest_epoch",
        "The newest committed epoch, by job.",
    );
    for (job, (_, _, epoch)) in &per_job {
        let _ = writeln!(
            out,
            "mpicr_snapshot_latest_epoch{{job=\"{}\"}} {epoch}",
            label(job)
        );
    }

    let counters = [
        (
            "mpicr_dashboard_checkpoints_requested_total",
            "Checkpoints requested through this dashboard.",
            &state.counters.requested,
        ),
        (
            "mpicr_dashboard_checkpoints_committed_total",
            "Checkpoints requested through this dashboard that were committed.",
            &state.counters.committed,
        ),
        (
            "mpicr_dashboard_checkpoints_failed_total",
            "Checkpoints requested through this dashboard that failed or were refused.",
            &state.counters.failed,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    out
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn gauge_per_job(out: &mut String, jobs: &[LiveJob], name: &str, value: impl Fn(&LiveJob) -> u64) {
    for job in jobs {
        let _ = writeln!(
            out,
            "{name}{{job=\"{}\"}} {}",
            label(&job.reply.job),
            value(job)
        );
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub(crate) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label("heat-1.x"), "heat-1.x");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
