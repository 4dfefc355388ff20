//! CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/statm`: what a node
//! daemon reports of its ranks in its heartbeats, and what the dashboard reads of ranks on its
//! own machine.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use wire::RankUsage;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// User and system CPU time so far, in clock ticks.
    pub ticks: u64,
    /// The process's start time (ticks after boot), which tells a reused pid apart.
    pub start: u64,
    /// Virtual memory, in pages.
    pub vsize_pages: u64,
    /// Resident memory, in pages.
    pub rss_pages: u64,
}

/// Reads process `pid`; `None` when it is gone, a zombie, or not ours to see.
pub fn read(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    if process_state(&stat) == Some('Z') {
        // A zombie has no memory left; its last CPU time is of no use to a live table.
        return None;
    }
    let (ticks, start) = parse_stat(&stat)?;
    let (vsize_pages, rss_pages) = parse_statm(&statm)?;
    Some(ProcSample {
        ticks,
        start,
        vsize_pages,
        rss_pages,
    })
}

/// The state letter (field 3) of a `/proc/PID/stat` text.
fn process_state(text: &str) -> Option<char> {
    text[text.rfind(')')? + 1..].trim_start().chars().next()
}

/// (utime + stime, starttime) in clock ticks from the text of `/proc/PID/stat`. The command
/// name in parentheses may hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]: field N is fields[N - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let start: u64 = fields.get(22 - 3)?.parse().ok()?;
    Some((utime + stime, start))
}

/// (size, resident) in pages from the text of `/proc/PID/statm`.
pub fn parse_statm(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let size = fields.next()?.parse().ok()?;
    let resident = fields.next()?.parse().ok()?;
    Some((size, resident))
}

/// The process a node daemon measures for each of its ranks.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// rank → (the pid the daemon started, the pid to measure). The second is the process that
    /// registered once the rank registered: the coordinator's table names that one, and it may
    /// be a descendant of the started one.
    ranks: Mutex<BTreeMap<u32, (u32, u32)>>,
}

impl Watched {
    /// The daemon started `rank` as `pid` (again, after a migration back here).
    pub(crate) fn started(&self, rank: u32, pid: u32) {
        self.lock().insert(rank, (pid, pid));
    }

    /// `rank`'s process `pid` registered (the daemon checked that it descends from the
    /// started one).
    pub(crate) fn registered(&self, rank: u32, pid: u32) {
        if let Some(entry) = self.lock().get_mut(&rank) {
            entry.1 = pid;
        }
    }

    /// The process started as `rank` ended: a later reading of its pid could be another
    /// process's.
    pub(crate) fn ended(&self, rank: u32, pid: u32) {
        let mut ranks = self.lock();
        if ranks.get(&rank).is_some_and(|(started, _)| *started == pid) {
            ranks.remove(&rank);
        }
    }

    /// What every watched rank uses now, at most `limit` of them (those that cannot be read
    /// are left out).
    pub(crate) fn usage(&self, limit: usize) -> Vec<RankUsage> {
        let watched: Vec<(u32, u32)> = self.lock().iter().map(|(r, (_, p))| (*r, *p)).collect();
        let ticks_per_second = rustix::param::clock_ticks_per_second().max(1);
        let page_size = rustix::param::page_size() as u64;
        watched
            .into_iter()
            .filter_map(|(rank, pid)| {
                let sample = read(pid)?;
                Some(RankUsage {
                    rank,
                    pid,
                    cpu_us: sample.ticks.saturating_mul(1_000_000) / ticks_per_second,
                    rss_bytes: sample.rss_pages.saturating_mul(page_size),
                })
            })
            .take(limit)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, (u32, u32)>> {
        self.ranks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 \
                    98765 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(parse_stat(line), Some((300, 98765)));
        assert_eq!(process_state(line), Some('S'));
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_statm("2000 300 100 1 0 50 0\n"), Some((2000, 300)));
        assert_eq!(parse_statm("x"), None);
    }

    #[test]
    fn watched_ranks_report_their_registered_process_until_it_ends() {
        let watched = Watched::default();
        let me = std::process::id();
        watched.started(2, me);
        let usage = watched.usage(10);
        assert_eq!(usage.len(), 1);
        assert_eq!((usage[0].rank, usage[0].pid), (2, me));
        assert!(usage[0].rss_bytes > 0, "{usage:?}");
        watched.registered(2, u32::MAX);
        assert!(
            watched.usage(10).is_empty(),
            "an unreadable pid is left out"
        );
        watched.registered(2, me);
        assert_eq!(watched.usage(0), Vec::new());
        watched.ended(2, 1);
        assert_eq!(
            watched.usage(10).len(),
            1,
            "another pid's end is not the rank's"
        );
        watched.ended(2, me);
        assert!(watched.usage(10).is_empty());
    }
}
