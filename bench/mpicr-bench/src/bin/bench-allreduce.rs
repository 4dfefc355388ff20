//! Allreduce latency: sum over `f64`s on every rank of the job (run it on 4
//! ranks) — the twin of `bench/c/allreduce.c`.
//!
//! For each element count 1, 2, 4 … 131072 (8 B … 1 MiB) every rank runs
//! warm-up calls, the ranks agree on an iteration count, and every rank times
//! that many calls after a barrier. Each rank's average time per call is
//! reduced with max (the slowest rank decides). Reported: microseconds per
//! call. The result is checked after the timed loop. Output: `# allreduce us`
//! then `size_bytes value` lines.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use mpicr::{Communicator, SystemOperation};
use mpicr_bench::{agree_iters, quick, run_main, scheduled_iters, sizes, warmup_iters};

const BASE_ITERS: u64 = 20_000;
const MIN_ITERS: u64 = 10;
const BUDGET_SECONDS: f64 = 0.25;
/// 131072 doubles = 1 MiB.
const MAX_COUNT: usize = 128 * 1024;

fn allreduces(
    world: &Communicator,
    send: &[f64],
    recv: &mut [f64],
    count: u64,
) -> Result<(), mpicr::Error> {
    for _ in 0..count {
        world.all_reduce_into(send, &mut recv[..], SystemOperation::sum())?;
    }
    Ok(())
}

fn run() -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let rank = world.rank();
    let size = world.size();
    let quick = quick();
    let send = vec![f64::from(rank + 1); MAX_COUNT];
    let mut recv = vec![0.0_f64; MAX_COUNT];
    let expect = f64::from(size) * f64::from(size + 1) / 2.0;
    if rank == 0 {
        println!("# allreduce us");
    }

    for n in sizes(false, MAX_COUNT) {
        let bytes = n * size_of::<f64>();
        let scheduled = scheduled_iters(bytes, BASE_ITERS, MIN_ITERS, quick);
        let warmup = warmup_iters(scheduled);

        world.barrier()?;
        let t0 = mpicr::time();
        allreduces(&world, &send[..n], &mut recv[..n], warmup)?;
        let warm = mpicr::time() - t0;
        let iters = agree_iters(
            &world,
            warm,
            warmup,
            scheduled,
            MIN_ITERS,
            BUDGET_SECONDS,
            quick,
        )?;

        world.barrier()?;
        let t0 = mpicr::time();
        allreduces(&world, &send[..n], &mut recv[..n], iters)?;
        let mine = (mpicr::time() - t0) / iters as f64;

        if recv[0] != expect || recv[n - 1] != expect {
            eprintln!(
                "bench-allreduce: wrong result {}, expected {expect}",
                recv[0]
            );
            std::process::exit(1);
        }
        let mut slowest = [0.0_f64];
        world.all_reduce_into(&[mine][..], &mut slowest[..], SystemOperation::max())?;
        if rank == 0 {
            println!("{bytes} {:.3}", slowest[0] * 1e6);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    run_main("bench-allreduce", run)
}
