//! Ping-pong latency between ranks 0 and 1 — the twin of `bench/c/latency.c`.
//!
//! For each size (0 B, then 1 B, 2 B, 4 B … 4 MiB) rank 0 sends a message to
//! rank 1, which sends it straight back. After warm-up round trips the ranks
//! agree on an iteration count and rank 0 times that many round trips.
//! Reported: one-way latency in microseconds = round-trip time / 2. Ranks
//! other than 0 and 1 only take part in the collectives.
//! Output: `# latency us` then `size_bytes value` lines.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use mpicr::Communicator;
use mpicr_bench::{MAX_BYTES, agree_iters, quick, run_main, scheduled_iters, sizes, warmup_iters};

const BASE_ITERS: u64 = 50_000;
const MIN_ITERS: u64 = 20;
const BUDGET_SECONDS: f64 = 0.2;
const TAG: i32 = 1;

fn round_trips(
    world: &Communicator,
    rank: i32,
    buf: &mut [u8],
    count: u64,
) -> Result<(), mpicr::Error> {
    for _ in 0..count {
        if rank == 0 {
            let peer = world.process_at_rank(1);
            peer.send_with_tag(&buf[..], TAG)?;
            peer.receive_into_with_tag(&mut buf[..], TAG)?;
        } else if rank == 1 {
            let peer = world.process_at_rank(0);
            peer.receive_into_with_tag(&mut buf[..], TAG)?;
            peer.send_with_tag(&buf[..], TAG)?;
        }
    }
    Ok(())
}

fn run() -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let rank = world.rank();
    if world.size() < 2 {
        eprintln!("bench-latency: needs at least 2 ranks");
        std::process::exit(2);
    }
    let quick = quick();
    let mut buf = vec![0xa5_u8; MAX_BYTES];
    if rank == 0 {
        println!("# latency us");
    }

    for bytes in sizes(true, MAX_BYTES) {
        let scheduled = scheduled_iters(bytes, BASE_ITERS, MIN_ITERS, quick);
        let warmup = warmup_iters(scheduled);
        let msg = &mut buf[..bytes];

        world.barrier()?;
        let t0 = mpicr::time();
        round_trips(&world, rank, msg, warmup)?;
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
        round_trips(&world, rank, msg, iters)?;
        let elapsed = mpicr::time() - t0;
        if rank == 0 {
            println!("{bytes} {:.3}", elapsed * 1e6 / (2.0 * iters as f64));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    run_main("bench-latency", run)
}
