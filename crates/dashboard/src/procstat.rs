//! CPU and memory of local processes, from `/proc/PID/stat` and `/proc/PID/statm`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

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
    /// Virtual memory.
    pub(crate) vsize_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The process's start time (ticks after boot), which tells a reused pid apart.
    start: u64,
    ticks: u64,
    at: Instant,
    percent: Option<f64>,
}

/// Remembers the last sample of every pid, for CPU shares over time.
#[derive(Debug)]
pub(crate) struct Sampler {
    last: HashMap<u32, Sample>,
    ticks_per_second: f64,
    page_size: u64,
}

impl Sampler {
    pub(crate) fn new() -> Self {
        Self {
            last: HashMap::new(),
            ticks_per_second: rustix::param::clock_ticks_per_second() as f64,
            page_size: rustix::param::page_size() as u64,
        }
    }

    /// The usage of local process `pid`, or `None` when it cannot be read (gone, or not ours
    /// to see).
    pub(crate) fn usage(&mut self, pid: u32) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let (ticks, start) = parse_stat(&stat)?;
        let (vsize_pages, rss_pages) = parse_statm(&statm)?;
        let now = Instant::now();
        let percent = match self.last.get(&pid) {
            Some(prev) if prev.start == start => {
                let elapsed = now.duration_since(prev.at);
                if elapsed < MIN_INTERVAL {
                    return Some(Usage {
                        cpu_seconds: ticks as f64 / self.ticks_per_second,
                        cpu_percent: prev.percent,
                        rss_bytes: rss_pages * self.page_size,
                        vsize_bytes: vsize_pages * self.page_size,
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
            vsize_bytes: vsize_pages * self.page_size,
        })
    }

    /// Forgets every pid not in `alive`.
    pub(crate) fn retain(&mut self, alive: &HashSet<u32>) {
        self.last.retain(|pid, _| alive.contains(pid));
    }
}

/// (utime + stime, starttime) in clock ticks from the text of `/proc/PID/stat`. The command
/// name in parentheses may hold spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]: field N is fields[N - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let start: u64 = fields.get(22 - 3)?.parse().ok()?;
    Some((utime + stime, start))
}

/// (size, resident) in pages from the text of `/proc/PID/statm`.
pub(crate) fn parse_statm(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let size = fields.next()?.parse().ok()?;
    let resident = fields.next()?.parse().ok()?;
    Some((size, resident))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 \
                    98765 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(parse_stat(line), Some((300, 98765)));
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_statm("2000 300 100 1 0 50 0\n"), Some((2000, 300)));
        assert_eq!(parse_statm("x"), None);
    }

    #[test]
    fn own_process() {
        let mut sampler = Sampler::new();
        let me = std::process::id();
        let first = sampler.usage(me).expect("our own /proc entry");
        assert!(first.rss_bytes > 0 && first.vsize_bytes >= first.rss_bytes);
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
