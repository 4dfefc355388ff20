//! `mpicr-ckpt-ring STEPS [PAUSE_MS]`: a deterministic, message-heavy program that checkpoints
//! itself with the `self` checkpointer and prints one checksum at the end.
//!
//! Every step each rank (1) receives the message its left neighbour sent in the previous step,
//! which crossed the safepoint in between and so is undelivered or in transit whenever a
//! checkpoint is taken; (2) swaps a 200 KB block with both neighbours (rendezvous-sized);
//! (3) receives a small message from every other rank with MPI_ANY_SOURCE; (4) sends its
//! running checksum to its right neighbour; then passes a safepoint. The same checksum must
//! come out whether or not the job was checkpointed, killed and restarted in between.
#![forbid(unsafe_code)]

use mpicr::SystemOperation;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct State {
    step: u64,
    acc: u64,
}

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
        eprintln!("mpicr-ckpt-ring: {e}");
        std::process::exit(1);
    }
}

fn run(steps: u64, pause_ms: u64) -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let ckpt = universe.checkpointing();
    let (rank, size) = (world.rank(), world.size());
    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    let mut st: State = ckpt.recover("state")?.unwrap_or(State {
        step: 0,
        acc: rank as u64 + 1,
    });
    if let Some(at) = ckpt.restarted_at() {
        eprintln!("rank {rank}: restarted at safepoint {at}, step {}", st.step);
    }
    let block = 200_000 / 8;
    while st.step < steps {
        if st.step > 0 {
            let mut carried = [0u64; 2];
            world
                .process_at_rank(prev)
                .receive_into_with_tag(&mut carried[..], 1)?;
            assert_eq!(
                carried[1],
                st.step - 1,
                "the carried message belongs to the previous step"
            );
            st.acc = mix(st.acc, carried[0]);
        }
        let out: Vec<u64> = (0..block as u64).map(|i| mix(st.acc, i)).collect();
        let mut from_prev = vec![0u64; block];
        let mut from_next = vec![0u64; block];
        world.send_receive_into(&out[..], next, 2, &mut from_prev[..], prev, 2)?;
        world.send_receive_into(&out[..], prev, 3, &mut from_next[..], next, 3)?;
        st.acc = mix(st.acc, from_prev[block - 1] ^ from_next[block / 2]);
        let mut sum = 0u64;
        let note = [st.acc ^ rank as u64];
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
        st.acc = mix(st.acc, sum);
        world
            .process_at_rank(next)
            .send_with_tag(&[st.acc, st.step][..], 1)?;
        st.step += 1;
        ckpt.safepoint("state", &st)?;
        if pause_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        }
    }
    let mut carried = [0u64; 2];
    world
        .process_at_rank(prev)
        .receive_into_with_tag(&mut carried[..], 1)?;
    st.acc = mix(st.acc, carried[0]);
    let mut total = 0u64;
    world.all_reduce_into(&st.acc, &mut total, SystemOperation::sum())?;
    if rank == 0 {
        println!("result {total:016x} after {steps} steps on {size} ranks");
    }
    universe.finalize()
}
