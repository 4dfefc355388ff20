//! Shared parts of the mpicr benchmark programs `bench-latency`,
//! `bench-bandwidth` and `bench-allreduce`.
//!
//! Each program is a line-by-line twin of a C program in `bench/c/` (built
//! against MPICH): same sizes, same iteration schedule, same warm-up, same
//! output. Keep `bench/c/common.h` and this file in step.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use mpicr::Communicator;

/// Largest message: 4 MiB.
pub const MAX_BYTES: usize = 4 << 20;
/// Bandwidth: messages in flight per window.
pub const WINDOW: usize = 64;
/// `--quick` divides iteration counts and time budgets by this.
pub const QUICK_DIVISOR: u64 = 10;

/// True when the program was started with `--quick`.
pub fn quick() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--quick")
}

/// Message sizes 0 B, 1 B, 2 B, 4 B … `max` (for `from_zero`), otherwise
/// 1 B … `max`.
pub fn sizes(from_zero: bool, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if from_zero {
        out.push(0);
    }
    let mut bytes = 1;
    while bytes <= max {
        out.push(bytes);
        bytes *= 2;
    }
    out
}

/// Scheduled iteration count for a message of `bytes`: `base` up to 8 KiB,
/// then shrinking in proportion to the size (every size moves about the same
/// volume), never below `floor`; `--quick` divides by [`QUICK_DIVISOR`].
pub fn scheduled_iters(bytes: usize, base: u64, floor: u64, quick: bool) -> u64 {
    let bytes = bytes as u64;
    let mut n = base;
    if bytes > 8192 {
        n = base * 8192 / bytes;
    }
    if quick {
        n /= QUICK_DIVISOR;
    }
    n.max(floor)
}

/// Warm-up iterations: a tenth of the scheduled ones, between 1 and 100.
pub fn warmup_iters(scheduled: u64) -> u64 {
    (scheduled / 10).clamp(1, 100)
}

/// Collective: the number of timed iterations every rank will run. Rank 0
/// estimates the cost of one iteration from its warm-up (`warm_elapsed`
/// seconds for `warm_n` iterations) and caps `scheduled` so the timed loop
/// takes about `budget` seconds, never below `floor`; the count is broadcast
/// from rank 0 so every rank agrees. With a fast implementation the schedule
/// decides; the budget only keeps a slow or oversubscribed run short.
pub fn agree_iters(
    world: &Communicator,
    warm_elapsed: f64,
    warm_n: u64,
    scheduled: u64,
    floor: u64,
    budget: f64,
    quick: bool,
) -> Result<u64, mpicr::Error> {
    let budget = if quick {
        budget / QUICK_DIVISOR as f64
    } else {
        budget
    };
    let per_iter = warm_elapsed / warm_n as f64;
    let mut iters = scheduled;
    if per_iter > 0.0 && budget / per_iter < iters as f64 {
        iters = (budget / per_iter) as u64;
    }
    let mut shared = [iters.max(floor)];
    world.process_at_rank(0).broadcast_into(&mut shared[..])?;
    Ok(shared[0])
}

/// Runs a benchmark body and turns an error into a one-line message and a
/// failing exit status.
pub fn run_main(name: &str, body: impl FnOnce() -> Result<(), mpicr::Error>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cover_zero_to_four_mib() {
        let all = sizes(true, MAX_BYTES);
        assert_eq!(all.first(), Some(&0));
        assert_eq!(all.get(1), Some(&1));
        assert_eq!(all.last(), Some(&MAX_BYTES));
        assert_eq!(all.len(), 24);
        assert_eq!(sizes(false, MAX_BYTES).len(), 23);
    }

    #[test]
    fn schedule_matches_the_c_programs() {
        assert_eq!(scheduled_iters(0, 5000, 20, false), 5000);
        assert_eq!(scheduled_iters(8192, 5000, 20, false), 5000);
        assert_eq!(scheduled_iters(16384, 5000, 20, false), 2500);
        assert_eq!(scheduled_iters(MAX_BYTES, 5000, 20, false), 20);
        assert_eq!(scheduled_iters(1, 5000, 20, true), 500);
        assert_eq!(scheduled_iters(MAX_BYTES, 100, 4, false), 4);
        assert_eq!(warmup_iters(5000), 100);
        assert_eq!(warmup_iters(500), 50);
        assert_eq!(warmup_iters(4), 1);
    }
}
