//! `/metrics` in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use coord::CheckpointStatus;

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
    /// Restarts started from the page whose job came up.
    pub(crate) restarts: AtomicU64,
}

/// Upper bounds of the checkpoint-duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Upper bounds of the snapshot-size buckets, in bytes (4 KiB to 64 GiB, by 4).
const SIZE_BUCKETS: [f64; 12] = [
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
    68_719_476_736.0,
];

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

    // Histograms over the committed snapshots on disk (gc and --keep remove observations).
    let mut durations: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut sizes: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in snapshots.iter().rev() {
        if let Some(ms) = s.duration_ms {
            durations
                .entry(s.job.as_str())
                .or_default()
                .push(ms as f64 / 1000.0);
        }
        sizes.entry(s.job.as_str()).or_default().push(s.size as f64);
    }
    histogram(
        &mut out,
        "mpicr_checkpoint_duration_seconds",
        "Request-to-commit time of the committed snapshots on disk, by job.",
        &DURATION_BUCKETS,
        &durations,
    );
    histogram(
        &mut out,
        "mpicr_checkpoint_size_bytes",
        "Bytes on disk of each committed snapshot, by job.",
        &SIZE_BUCKETS,
        &sizes,
    );
    let newest_duration: BTreeMap<&str, f64> = snapshots
        .iter()
        .filter(|s| s.latest)
        .filter_map(|s| Some((s.job.as_str(), s.duration_ms? as f64 / 1000.0)))
        .collect();
    gauge(
        &mut out,
        "mpicr_checkpoint_last_duration_seconds",
        "Request-to-commit time of the newest snapshot, by job.",
    );
    for (job, seconds) in &newest_duration {
        let _ = writeln!(
            out,
            "mpicr_checkpoint_last_duration_seconds{{job=\"{}\"}} {seconds}",
            label(job)
        );
    }

    let _ = writeln!(
        out,
        "# HELP mpicr_recovery_duration_seconds Time from a failure's detection until every \
         rank ran again, per automatic recovery of the live job.\n\
         # TYPE mpicr_recovery_duration_seconds summary"
    );
    for job in &jobs {
        let recovered: Vec<u64> = job
            .checkpoints
            .as_ref()
            .map(|c| c.recoveries.iter().filter_map(|r| r.recovered_ms).collect())
            .unwrap_or_default();
        let sum: u64 = recovered.iter().sum();
        let name = label(&job.reply.job);
        let _ = writeln!(
            out,
            "mpicr_recovery_duration_seconds_sum{{job=\"{name}\"}} {}\n\
             mpicr_recovery_duration_seconds_count{{job=\"{name}\"}} {}",
            sum as f64 / 1000.0,
            recovered.len()
        );
    }

    migrations(&mut out, &jobs);

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
        (
            "mpicr_dashboard_restarts_total",
            "Snapshots restarted through this dashboard whose job came up.",
            &state.counters.restarts,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    out
}

/// A metric's name, help and value as a job's coordinator published it.
type Published = (&'static str, &'static str, fn(&CheckpointStatus) -> u64);

/// The migrations and the redundancy copies of each live job, as its coordinator counted them
/// since the job's last start (a recovery starts them again, which Prometheus sees as a reset).
fn migrations(out: &mut String, jobs: &[LiveJob]) {
    let published: Vec<(String, &CheckpointStatus)> = jobs
        .iter()
        .filter_map(|j| Some((label(&j.reply.job), j.checkpoints.as_ref()?)))
        .collect();
    let counters: [Published; 5] = [
        (
            "mpicr_migrations_total",
            "Migrations whose rank computes on its new node.",
            |c| c.migrations.done,
        ),
        (
            "mpicr_migrations_failed_total",
            "Migrations that started and failed (the rank computed on where it was, or a node of \
             the migration failed).",
            |c| c.migrations.failed,
        ),
        (
            "mpicr_migrated_bytes_total",
            "Bytes of the images of the done migrations, copied from node to node.",
            |c| c.migrations.bytes,
        ),
        (
            "mpicr_mirrored_bytes_total",
            "Bytes of parts copied to partner nodes (--mirror), each copy counted.",
            |c| c.redundancy_bytes.mirrored,
        ),
        (
            "mpicr_parity_bytes_total",
            "Bytes of parity files built (--parity).",
            |c| c.redundancy_bytes.parity,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (job, c) in &published {
            let _ = writeln!(out, "{name}{{job=\"{job}\"}} {}", value(c));
        }
    }
    let summaries: [Published; 2] = [
        (
            "mpicr_migration_duration_seconds",
            "Time from the request to the restored rank's arrival, per done migration.",
            |c| c.migrations.total_us,
        ),
        (
            "mpicr_migration_transfer_seconds",
            "Time of the image's copy between the nodes, per done migration.",
            |c| c.migrations.transfer_us,
        ),
    ];
    for (name, help, micros) in summaries {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for (job, c) in &published {
            let _ = writeln!(
                out,
                "{name}_sum{{job=\"{job}\"}} {}\n{name}_count{{job=\"{job}\"}} {}",
                micros(c) as f64 / 1e6,
                c.migrations.done
            );
        }
    }
}

/// A histogram per job of `values`, with cumulative buckets `le` (and `+Inf`), sum and count.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[f64],
    values: &BTreeMap<&str, Vec<f64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (job, list) in values {
        let job = label(job);
        for bound in bounds {
            let n = list.iter().filter(|v| **v <= *bound).count();
            let _ = writeln!(out, "{name}_bucket{{job=\"{job}\",le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{job=\"{job}\",le=\"+Inf\"}} {}",
            list.len()
        );
        let sum: f64 = list.iter().sum();
        let _ = writeln!(out, "{name}_sum{{job=\"{job}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{job=\"{job}\"}} {}", list.len());
    }
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
    fn histograms() {
        let mut values = BTreeMap::new();
        values.insert("j", vec![0.02, 0.3, 7.0, 400.0]);
        let mut out = String::new();
        histogram(&mut out, "h", "help", &DURATION_BUCKETS, &values);
        assert!(out.contains("# TYPE h histogram\n"), "{out}");
        assert!(out.contains("h_bucket{job=\"j\",le=\"0.01\"} 0\n"), "{out}");
        assert!(out.contains("h_bucket{job=\"j\",le=\"0.05\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{job=\"j\",le=\"0.5\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{job=\"j\",le=\"300\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{job=\"j\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_count{job=\"j\"} 4\n"), "{out}");
        assert!(out.contains("h_sum{job=\"j\"} 407.3"), "{out}");
    }

    #[test]
    fn labels() {
        assert_eq!(label("heat-1.x"), "heat-1.x");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
