//! Streaming bandwidth from rank 0 to rank 1, in the style of osu_bw — the
//! twin of `bench/c/bandwidth.c`.
//!
//! For each size (1 B, 2 B … 4 MiB) one "loop" is: rank 0 starts
//! [`WINDOW`] (64) non-blocking sends of the message, rank 1 posts 64
//! non-blocking receives into 64 separate buffers; both wait for all of them;
//! then rank 1 sends a 4-byte acknowledgement that rank 0 receives. After
//! warm-up loops the ranks agree on a loop count and rank 0 times that many
//! loops. Reported: MB/s (10^6 bytes per second) = size × 64 × loops /
//! elapsed. Output: `# bandwidth MB/s` then `size_bytes value` lines.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use mpicr::Communicator;
use mpicr_bench::{
    MAX_BYTES, WINDOW, agree_iters, quick, run_main, scheduled_iters, sizes, warmup_iters,
};

const BASE_LOOPS: u64 = 1000;
const MIN_LOOPS: u64 = 4;
const BUDGET_SECONDS: f64 = 0.3;
const DATA_TAG: i32 = 2;
const ACK_TAG: i32 = 3;

/// Rank 0's side of `count` loops: a window of sends of `msg`, then the ack.
fn send_loops(world: &Communicator, msg: &[u8], count: u64) -> Result<(), mpicr::Error> {
    let peer = world.process_at_rank(1);
    let mut ack = [0_i32];
    for _ in 0..count {
        mpicr::request::scope(|scope| -> Result<(), mpicr::Error> {
            let mut requests = Vec::with_capacity(WINDOW);
            for _ in 0..WINDOW {
                requests.push(peer.immediate_send_with_tag(scope, msg, DATA_TAG)?);
            }
            mpicr::request::wait_all(requests)?;
            Ok(())
        })?;
        peer.receive_into_with_tag(&mut ack[..], ACK_TAG)?;
    }
    Ok(())
}

/// Rank 1's side of `count` loops: a window of receives of `bytes` each into
/// consecutive pieces of `slab`, then the ack.
fn receive_loops(
    world: &Communicator,
    slab: &mut [u8],
    bytes: usize,
    count: u64,
) -> Result<(), mpicr::Error> {
    let peer = world.process_at_rank(0);
    let ack = [0_i32];
    for _ in 0..count {
        mpicr::request::scope(|scope| -> Result<(), mpicr::Error> {
            let mut requests = Vec::with_capacity(WINDOW);
            for piece in slab[..bytes * WINDOW].chunks_exact_mut(bytes) {
                requests.push(peer.immediate_receive_into(scope, piece)?);
            }
            mpicr::request::wait_all(requests)?;
            Ok(())
        })?;
        peer.send_with_tag(&ack[..], ACK_TAG)?;
    }
    Ok(())
}

fn window_loops(
    world: &Communicator,
    rank: i32,
    buf: &mut [u8],
    bytes: usize,
    count: u64,
) -> Result<(), mpicr::Error> {
    match rank {
        0 => send_loops(world, &buf[..bytes], count),
        1 => receive_loops(world, buf, bytes, count),
        _ => Ok(()),
    }
}

fn run() -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let rank = world.rank();
    if world.size() < 2 {
        eprintln!("bench-bandwidth: needs at least 2 ranks");
        std::process::exit(2);
    }
    let quick = quick();
    // The sender reuses one buffer for all sends of a window; the receiver
    // gets WINDOW distinct buffers (one slab cut into WINDOW pieces).
    let len = if rank == 1 {
        MAX_BYTES * WINDOW
    } else {
        MAX_BYTES
    };
    let mut buf = vec![0xa5_u8; len];
    if rank == 0 {
        println!("# bandwidth MB/s");
    }

    for bytes in sizes(false, MAX_BYTES) {
        let scheduled = scheduled_iters(bytes, BASE_LOOPS, MIN_LOOPS, quick);
        let warmup = warmup_iters(scheduled);

        world.barrier()?;
        let t0 = mpicr::time();
        window_loops(&world, rank, &mut buf, bytes, warmup)?;
        let warm = mpicr::time() - t0;
        let loops = agree_iters(
            &world,
            warm,
            warmup,
            scheduled,
            MIN_LOOPS,
            BUDGET_SECONDS,
            quick,
        )?;

        world.barrier()?;
        let t0 = mpicr::time();
        window_loops(&world, rank, &mut buf, bytes, loops)?;
        let elapsed = mpicr::time() - t0;
        if rank == 0 {
            let total = bytes as f64 * WINDOW as f64 * loops as f64;
            println!("{bytes} {:.2}", total / elapsed / 1e6);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    run_main("bench-bandwidth", run)
}
