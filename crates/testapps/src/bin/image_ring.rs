//! `mpicr-image-ring STEPS [PAUSE_MS]`: the message-heavy program of `mpicr-ckpt-ring`
//! without any checkpoint code, for the transparent (`image`) checkpointer: it is
//! checkpointed wherever it happens to be, inside any MPI call. Rank 0 prints one line per
//! step and a checksum at the end; a restored job must print the rest of those lines exactly.
//!
//! Every step each rank receives the message its left neighbour sent in the previous step,
//! swaps a 200 KB block with both neighbours (rendezvous-sized), receives a small message from
//! every other rank with MPI_ANY_SOURCE, sends its running checksum to its right neighbour,
//! and the ranks agree on a sum (allreduce).
#![forbid(unsafe_code)]

use mpicr::SystemOperation;

fn mix(acc: u64, v: u64) -> u64 {
    (acc.rotate_left(5) ^ v)
        .wrapping_mul(0x100_0000_01b3)
        .wrapping_add(0x9e37_79b9)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let pause: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if let Err(e) = run(steps, pause) {
        eprintln!("mpicr-image-ring: {e}");
        std::process::exit(1);
    }
}

fn run(steps: u64, pause_ms: u64) -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    let mut acc = rank as u64 + 1;
    // Heap state that changes every step, part of what the image must bring back.
    let mut history: Vec<u64> = Vec::new();
    let block = 200_000 / 8;
    for step in 0..steps {
        if step > 0 {
            let mut carried = [0u64; 2];
            world
                .process_at_rank(prev)
                .receive_into_with_tag(&mut carried[..], 1)?;
            assert_eq!(
                carried[1],
                step - 1,
                "the carried message is the previous step's"
            );
            acc = mix(acc, carried[0]);
        }
        let out: Vec<u64> = (0..block as u64).map(|i| mix(acc, i)).collect();
        let mut from_prev = vec![0u64; block];
        let mut from_next = vec![0u64; block];
        world.send_receive_into(&out[..], next, 2, &mut from_prev[..], prev, 2)?;
        world.send_receive_into(&out[..], prev, 3, &mut from_next[..], next, 3)?;
        acc = mix(acc, from_prev[block - 1] ^ from_next[block / 2]);
        let mut sum = 0u64;
        let note = [acc ^ rank as u64];
        mpicr::request::scope(|scope| -> Result<(), mpicr::Error> {
            let mut sends = Vec::new();
            for peer in (0..size).filter(|&p| p != rank) {
                sends.push(world.process_at_rank(peer).immediate_send_with_tag(
                    scope,
                    &note[..],
                    4,
                )?);
            }
            for _ in 1..size {
                let mut v = [0u64];
                world.any_process().receive_into_with_tag(&mut v[..], 4)?;
                sum = sum.wrapping_add(v[0]);
            }
            mpicr::request::wait_all(sends).map(drop)
        })?;
        acc = mix(acc, sum);
        world
            .process_at_rank(next)
            .send_with_tag(&[acc, step][..], 1)?;
        let mut total = 0u64;
        world.all_reduce_into(&acc, &mut total, SystemOperation::sum())?;
        history.push(total);
        if rank == 0 {
            println!("step {step} {total:016x}");
        }
        if pause_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        }
    }
    let mut carried = [0u64; 2];
    world
        .process_at_rank(prev)
        .receive_into_with_tag(&mut carried[..], 1)?;
    acc = mix(acc, carried[0]);
    let folded = history.iter().fold(acc, |a, &h| mix(a, h));
    let mut total = 0u64;
    world.all_reduce_into(&folded, &mut total, SystemOperation::sum())?;
    if rank == 0 {
        println!("result {total:016x} after {steps} steps on {size} ranks");
    }
    universe.finalize()
}
