//! `bench-ckpt STATE_MIB STEPS`: the program `bench/ckpt` checkpoints to measure the cost of
//! coordinated checkpoints with the `self` checkpointer.
//!
//! Every rank holds `STATE_MIB` MiB of state and runs steps of fixed work: a safepoint (where
//! the state is saved when a checkpoint is due), a pass over an 8 MiB window of the state,
//! a 1 MiB exchange with the neighbour ranks and an allreduce. Each step is timed in three
//! parts (safepoint, compute, MPI). Rank 0 prints `ready` once the step time has settled, so
//! that `bench/ckpt` can ask for the checkpoint then.
//!
//! The job ends `AFTER_CHECKPOINT` steps after the step at which a checkpoint was taken (or
//! after the step it resumed at, when restarted), at the latest after `STEPS` steps. Then every
//! rank prints one line
//!
//! `ckpt-result rank=R state_mib=M step_ms=B checkpoint_step=S safepoint_ms=P lost_ms=L mpi_lost_ms=I`
//!
//! with B the median step time before the checkpoint, P the time the safepoint that took the
//! checkpoint lasted, and L the time the rank did not compute because of the checkpoint: the
//! sum over the checkpoint's step and the `AFTER_CHECKPOINT` steps after it of (step time − B).
//! L contains P and whatever the following MPI calls spend finishing the checkpoint (the part
//! is written once the channel state is complete); `mpi_lost_ms` is the MPI calls' share.
//!
//! A restarted run prints `resumed at step S` (rank 0) as soon as every rank has its state
//! back, and `ckpt-resume rank=R recover_ms=T` lines at the end.

#![forbid(unsafe_code)]

use std::fmt;
use std::process::ExitCode;

use mpicr::SystemOperation;
use mpicr_bench::run_main;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of the state every step computes on.
const WINDOW: usize = 8 << 20;
/// Bytes every rank sends to each neighbour per step.
const EXCHANGE: usize = 1 << 20;
/// Steps before `ready`: the baseline step time is measured over them.
const READY_AFTER: u64 = 20;
/// Steps run after the checkpoint (or after resuming).
const AFTER_CHECKPOINT: u64 = 40;

/// A byte vector that serializes as one byte string (a copy, not an element per byte).
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

#[derive(Serialize, Deserialize)]
struct State {
    step: u64,
    data: Bytes,
}

/// One step's work on the state: a pass over the window the step owns. Returns a digest.
fn compute(data: &mut [u8], step: u64, rank: u8) -> u64 {
    let window = WINDOW.min(data.len());
    let windows = (data.len() / window) as u64;
    let start = (step % windows) as usize * window;
    let salt = (step as u8) ^ rank;
    let mut digest = 0u64;
    for chunk in data[start..start + window].chunks_mut(8) {
        for b in chunk.iter_mut() {
            *b = b.wrapping_mul(5).wrapping_add(salt);
        }
        digest = digest.wrapping_add(u64::from(chunk[0]));
    }
    digest
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn arg(args: &[String], i: usize, what: &str) -> Result<u64, mpicr::Error> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| {
            mpicr::Error::InvalidArgument(format!(
                "usage: bench-ckpt STATE_MIB STEPS ({what} must be a positive number)"
            ))
        })
}

fn run() -> Result<(), mpicr::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let state_mib = arg(&args, 0, "STATE_MIB")?;
    let max_steps = arg(&args, 1, "STEPS")?;
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let ckpt = universe.checkpointing();
    let (rank, size) = (world.rank(), world.size());

    let t0 = mpicr::time();
    let recovered = ckpt.recover::<State>("bench")?;
    let resumed = recovered.is_some();
    let mut state = match recovered {
        Some(state) => state,
        None => {
            let bytes = usize::try_from(state_mib << 20).map_err(|_| {
                mpicr::Error::InvalidArgument(format!("{state_mib} MiB do not fit in memory"))
            })?;
            let mut data = vec![0u8; bytes];
            for (i, b) in data.iter_mut().enumerate() {
                *b = (i as u8) ^ (rank as u8);
            }
            State {
                step: 0,
                data: Bytes(data),
            }
        }
    };
    let recover_ms = (mpicr::time() - t0) * 1e3;
    if state.data.0.len() as u64 != state_mib << 20 {
        return Err(mpicr::Error::InvalidArgument(format!(
            "the recovered state has {} bytes, not {state_mib} MiB",
            state.data.0.len()
        )));
    }
    world.barrier()?;
    if resumed && rank == 0 {
        println!("resumed at step {}", state.step);
    }

    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    let outgoing = vec![rank as u8; EXCHANGE];
    let mut incoming = vec![0u8; EXCHANGE];
    let first_step = state.step;
    // Per step: total, safepoint, MPI (milliseconds).
    let mut steps: Vec<(f64, f64, f64)> = Vec::new();
    let mut checkpoint_at: Option<u64> = resumed.then_some(first_step);
    let mut end = max_steps;
    while state.step < end {
        let step = state.step;
        let start = mpicr::time();
        let taken = ckpt.safepoint("bench", &state)?;
        let after_safepoint = mpicr::time();
        if taken.is_some() && checkpoint_at.is_none() {
            checkpoint_at = Some(step);
        }
        if let Some(at) = checkpoint_at {
            end = end.min(at + AFTER_CHECKPOINT);
        }
        let digest = compute(&mut state.data.0, step, rank as u8);
        let before_mpi = mpicr::time();
        if size > 1 {
            world.send_receive_into(&outgoing[..], next, 7, &mut incoming[..], prev, 7)?;
        }
        let mut total = 0u64;
        world.all_reduce_into(&digest, &mut total, SystemOperation::sum())?;
        let done = mpicr::time();
        steps.push((
            (done - start) * 1e3,
            (after_safepoint - start) * 1e3,
            (done - before_mpi) * 1e3,
        ));
        state.step += 1;
        if !resumed && rank == 0 && state.step == READY_AFTER {
            println!("ready at step {}", state.step);
        }
    }

    let index = |step: u64| (step - first_step) as usize;
    if resumed {
        println!("ckpt-resume rank={rank} recover_ms={recover_ms:.1}");
    } else if let Some(at) = checkpoint_at {
        let before: Vec<f64> = steps[2.min(index(at))..index(at)]
            .iter()
            .map(|s| s.0)
            .collect();
        let base = median(&before);
        let window = &steps[index(at)..];
        let lost: f64 = window.iter().map(|s| s.0 - base).sum();
        let mpi_base = median(
            &steps[2.min(index(at))..index(at)]
                .iter()
                .map(|s| s.2)
                .collect::<Vec<_>>(),
        );
        let mpi_lost: f64 = window.iter().map(|s| s.2 - mpi_base).sum();
        println!(
            "ckpt-result rank={rank} state_mib={state_mib} step_ms={base:.3} checkpoint_step={at} safepoint_ms={:.1} lost_ms={lost:.1} mpi_lost_ms={mpi_lost:.1}",
            window[0].1
        );
    } else {
        println!("ckpt-result rank={rank} state_mib={state_mib} no checkpoint was taken");
    }
    universe.finalize()
}

fn main() -> ExitCode {
    run_main("bench-ckpt", run)
}
