//! CPU and memory of ranks: of local processes from `/proc/PID/stat` and `/proc/PID/statm`,
//! of ranks on other nodes from what their node daemons reported to the coordinator.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use node::procstat::ProcSample;
use wire::ReportedUsage;

/// Samples closer together than this reuse the last CPU share instead of measuring a tiny
/// interval.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// What one process uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    /// User and system CPU time so far.
    pub(crate) cpu_seconds: f64,
    /// Share of one CPU since the previous sample, in percent; `None` at the first sample.
    pub(crate) cpu_percent: Option<f64>,
    /// Resident memory.
    pub(crate) rss_bytes: u64,
    /// Virtual memory; `None` for a rank on another node (its daemon does not report it).
    pub(crate) vsize_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The process's start time (ticks after boot), which tells a reused pid apart.
    start: u64,
    ticks: u64,
    at: Instant,
    percent: Option<f64>,
}

/// The last report of a rank on another node.
#[derive(Debug, Clone, Copy)]
struct Reported {
    cpu_us: u64,
    /// The coordinator's receipt time of the report.
    at_ms: u64,
    percent: Option<f64>,
}

/// Remembers the last sample of every pid, for CPU shares over time.
#[derive(Debug)]
pub(crate) struct Sampler {
    last: HashMap<u32, Sample>,
    /// Ranks on other nodes, by (node, pid): pids repeat across nodes.
    remote: HashMap<(String, u32), Reported>,
    ticks_per_second: f64,
    page_size: u64,
}

impl Sampler {
    pub(crate) fn new() -> Self {
        Self {
            last: HashMap::new(),
            remote: HashMap::new(),
            ticks_per_second: rustix::param::clock_ticks_per_second() as f64,
            page_size: rustix::param::page_size() as u64,
        }
    }

    /// The usage of local process `pid`, or `None` when it cannot be read (gone, or not ours
    /// to see).
    pub(crate) fn usage(&mut self, pid: u32) -> Option<Usage> {
        let ProcSample {
            ticks,
            start,
            vsize_pages,
            rss_pages,
        } = node::procstat::read(pid)?;
        let now = Instant::now();
        let percent = match self.last.get(&pid) {
            Some(prev) if prev.start == start => {
                let elapsed = now.duration_since(prev.at);
                if elapsed < MIN_INTERVAL {
                    return Some(Usage {
                        cpu_seconds: ticks as f64 / self.ticks_per_second,
                        cpu_percent: prev.percent,
                        rss_bytes: rss_pages * self.page_size,
                        vsize_bytes: Some(vsize_pages * self.page_size),
                    });
                }
                let used = ticks.saturating_sub(prev.ticks) as f64 / self.ticks_per_second;
                Some(100.0 * used / elapsed.as_secs_f64())
            }
            _ => None,
        };
        self.last.insert(
            pid,
            Sample {
                start,
                ticks,
                at: now,
                percent,
            },
        );
        Some(Usage {
            cpu_seconds: ticks as f64 / self.ticks_per_second,
            cpu_percent: percent,
            rss_bytes: rss_pages * self.page_size,
            vsize_bytes: Some(vsize_pages * self.page_size),
        })
    }

    /// The usage of process `pid` on `node` as its daemon reported it. The CPU share is over
    /// the time between the two latest reports seen (by the coordinator's receipt times, which
    /// follow the daemon's readings closely); the share of the report before is kept until a
    /// newer report arrives. Virtual memory is not reported.
    pub(crate) fn reported(&mut self, node: &str, report: &ReportedUsage) -> Usage {
        let u = report.usage;
        let key = (node.to_owned(), u.pid);
        let percent = match self.remote.get(&key) {
            Some(prev) if prev.at_ms == report.at_ms => prev.percent,
            Some(prev) if prev.at_ms < report.at_ms && prev.cpu_us <= u.cpu_us => {
                let elapsed_us = (report.at_ms - prev.at_ms) as f64 * 1000.0;
                Some(100.0 * (u.cpu_us - prev.cpu_us) as f64 / elapsed_us)
            }
            _ => None,
        };
        self.remote.insert(
            key,
            Reported {
                cpu_us: u.cpu_us,
                at_ms: report.at_ms,
                percent,
            },
        );
        Usage {
            cpu_seconds: u.cpu_us as f64 / 1e6,
            cpu_percent: percent,
            rss_bytes: u.rss_bytes,
            vsize_bytes: None,
        }
    }

    /// Forgets every pid not in `alive`.
    pub(crate) fn retain(&mut self, alive: &HashSet<u32>) {
        self.last.retain(|pid, _| alive.contains(pid));
        self.remote.retain(|(_, pid), _| alive.contains(pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::RankUsage;

    #[test]
    fn reported_usage_gives_a_share_from_two_reports() {
        let mut sampler = Sampler::new();
        let report = |pid, cpu_us, at_ms| ReportedUsage {
            usage: RankUsage {
                rank: 1,
                pid,
                cpu_us,
                rss_bytes: 8192,
            },
            at_ms,
        };
        let first = sampler.reported("n2", &report(7, 1_000_000, 10_000));
        assert_eq!(first.cpu_percent, None);
        assert_eq!(first.cpu_seconds, 1.0);
        assert_eq!((first.rss_bytes, first.vsize_bytes), (8192, None));
        // Half a CPU over two seconds.
        let second = sampler.reported("n2", &report(7, 2_000_000, 12_000));
        assert_eq!(second.cpu_percent, Some(50.0));
        // The same report seen again keeps its share.
        let again = sampler.reported("n2", &report(7, 2_000_000, 12_000));
        assert_eq!(again.cpu_percent, Some(50.0));
        // The same pid on another node is another process.
        assert_eq!(
            sampler.reported("n3", &report(7, 5, 12_000)).cpu_percent,
            None
        );
        sampler.retain(&HashSet::new());
        assert_eq!(
            sampler
                .reported("n2", &report(7, 3_000_000, 14_000))
                .cpu_percent,
            None
        );
    }

    #[test]
    fn own_process() {
        let mut sampler = Sampler::new();
        let me = std::process::id();
        let first = sampler.usage(me).expect("our own /proc entry");
        assert!(first.rss_bytes > 0 && first.vsize_bytes >= Some(first.rss_bytes));
        assert_eq!(first.cpu_percent, None);
        let t = Instant::now();
        while t.elapsed() < MIN_INTERVAL + Duration::from_millis(50) {
            std::hint::black_box(t.elapsed());
        }
        let second = sampler.usage(me).expect("our own /proc entry");
        // Only that there is a share: a busy machine may give this loop little of a CPU.
        assert!(second.cpu_percent.is_some_and(|p| p >= 0.0), "{second:?}");
        sampler.retain(&HashSet::new());
        assert_eq!(sampler.usage(me).expect("again").cpu_percent, None);
        assert_eq!(sampler.usage(u32::MAX), None);
    }
}
