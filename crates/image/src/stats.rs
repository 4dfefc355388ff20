//! Where a checkpoint's time goes: the rank's stall in the capture call, split by step, and
//! the forked writer's own account of its work.
//!
//! The writer cannot allocate or return anything but an exit status, so it keeps its account
//! in a one-page shared mapping its parent made before the fork (left out of the image like
//! the scratch mapping): monotonic timestamps of its phases and the time spent in each kind
//! of system call. The `image` checkpointer prints both with `MPICR_IMAGE_STATS=1`
//! (`bench/table2` reads them) and logs them at debug level.

use std::time::Duration;

use crate::sys::Scratch;

/// How long the capture call kept the rank from computing, by step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StallTimes {
    /// Phase A: opening the image file, the state that is not memory, the scratch mapping.
    pub prepare: Duration,
    /// The chain's hash tables and the links of an incremental image.
    pub chain: Duration,
    /// From the capture point to the parent's return from `fork`.
    pub fork: Duration,
    /// The rank's own CPU time in `fork` (the page-table copy): what `fork` costs without
    /// the wait for a core, which on a busy machine is most of it.
    pub fork_cpu: Duration,
    /// The rank's CPU time in the whole capture call.
    pub cpu: Duration,
}

/// The writer's account of its work, read once it has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// From the writer's first instruction after the fork to its last (the fsync done).
    pub total: Duration,
    /// Reading `/proc/self/maps` and `stat` and planning the regions.
    pub plan: Duration,
    /// Reading memory (the pagemap and the pages).
    pub read: Duration,
    /// Checking pages for zeros, hashing and compressing them, and the checksums.
    pub compute: Duration,
    /// `write(2)` into the page cache.
    pub write: Duration,
    /// Waiting for the disk: the final `fsync` and the pipelined write-back's waits.
    pub sync: Duration,
    /// The CPU time the writer used (user and system), which the rank's own computing
    /// competes with on a busy machine.
    pub cpu: Duration,
    /// Bytes of the image file.
    pub bytes: u64,
    /// Of them, the pages written through the page cache while direct I/O was on: those the
    /// writer still shared with the rank, and short stretches among them (`image::out`).
    pub copied: u64,
    /// From the parent's `fork` call to the writer's first instruction, and to its return
    /// from the `sched_yield` that gives the core back to the rank (the scheduler runs a new
    /// child first).
    pub first: Duration,
    pub yielded: Duration,
}

// Word indices in the shared page.
const START: usize = 0;
const PLANNED: usize = 1;
const END: usize = 2;
const READ: usize = 3;
const COMPUTE: usize = 4;
const WRITE: usize = 5;
const SYNC: usize = 6;
const BYTES: usize = 7;
const CPU: usize = 8;
const FORK_CALL: usize = 9;
const CHILD_FIRST: usize = 10;
const CHILD_YIELDED: usize = 11;
/// 1 once the writer has done its work (set just before it exits, whatever the outcome).
const DONE: usize = 12;
const COPIED: usize = 13;
const WORDS: usize = 14;

/// Nanoseconds of the monotonic clock (no allocation, no failure: what the writer may call).
pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Nanoseconds of CPU time the calling thread used.
pub(crate) fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The shared page, owned by the parent and inherited by the writer.
#[derive(Debug)]
pub(crate) struct StatsPage {
    page: Scratch,
}

impl StatsPage {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            page: Scratch::new_shared(crate::format::PAGE_SIZE as usize)?,
        })
    }

    /// Its address range (left out of the image).
    pub(crate) fn range(&self) -> (u64, u64) {
        self.page.range()
    }

    /// The parent, just before it forks (the page is fresh: every other word is 0).
    pub(crate) fn forking(&mut self) {
        self.page.words()[FORK_CALL] = now_ns();
    }

    /// The writer, first thing after the fork (`yielded` false) and after giving the core
    /// back (true).
    pub(crate) fn child_step(&mut self, yielded: bool) {
        self.page.words()[if yielded { CHILD_YIELDED } else { CHILD_FIRST }] = now_ns();
    }

    /// The writer, after its work and just before it exits.
    pub(crate) fn done(&mut self) {
        self.page.words()[DONE] = 1;
    }

    /// Whether the writer has done its work: it exits at once then, so waiting for it is
    /// short.
    pub(crate) fn writer_done(&self) -> bool {
        self.page.word(DONE) == 1
    }

    /// The writer's view: counters it adds to as it goes.
    pub(crate) fn counters(&mut self) -> Counters<'_> {
        let words = &mut self.page.words()[..WORDS];
        words[START] = now_ns();
        Counters { words }
    }

    /// What the writer recorded (after it has ended).
    pub(crate) fn report(&mut self) -> WriterReport {
        let w = self.page.words();
        let span = |a: usize, b: usize| Duration::from_nanos(w[b].saturating_sub(w[a]));
        WriterReport {
            total: span(START, END),
            plan: span(START, PLANNED),
            read: Duration::from_nanos(w[READ]),
            compute: Duration::from_nanos(w[COMPUTE]),
            write: Duration::from_nanos(w[WRITE]),
            sync: Duration::from_nanos(w[SYNC]),
            cpu: Duration::from_nanos(w[CPU]),
            bytes: w[BYTES],
            copied: w[COPIED],
            first: span(FORK_CALL, CHILD_FIRST),
            yielded: span(FORK_CALL, CHILD_YIELDED),
        }
    }

    /// In a restored process the page does not exist (it was left out of the image).
    pub(crate) fn forget(self) {
        self.page.forget();
    }
}

/// The writer's counters in the shared page.
pub(crate) struct Counters<'a> {
    words: &'a mut [u64],
}

/// What a timed step counts as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Read = READ as isize,
    Compute = COMPUTE as isize,
    Write = WRITE as isize,
    Sync = SYNC as isize,
}

impl Counters<'_> {
    /// Adds the time since `since` (a [`now_ns`] value) to `step`; returns now.
    pub(crate) fn add(&mut self, step: Step, since: u64) -> u64 {
        let now = now_ns();
        self.words[step as usize] += now.saturating_sub(since);
        now
    }
    pub(crate) fn planned(&mut self) {
        self.words[PLANNED] = now_ns();
    }
    pub(crate) fn wrote(&mut self, bytes: u64) {
        self.words[BYTES] += bytes;
    }
    pub(crate) fn copied(&mut self, bytes: u64) {
        self.words[COPIED] += bytes;
    }
    pub(crate) fn end(&mut self) {
        self.words[END] = now_ns();
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        self.words[CPU] = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
    }
}
