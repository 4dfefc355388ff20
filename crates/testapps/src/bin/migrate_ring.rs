//! `mpicr-migrate-ring STEPS PAUSE_MS [STATE_MIB]`: the program of the quasi-asynchrony test of process
//! migration. The last rank (the one a test migrates) only receives: every step, every other
//! rank sends it a small message and then swaps a block with its neighbours in a ring of the
//! other ranks, so their progress never waits for it. Rank 0 prints `progress STEP` each step.
//! At the end the last rank folds what it received (in order) into a checksum, every rank
//! adds its own, and rank 0 prints `result …`: a message lost, duplicated or reordered by a
//! migration changes it. With STATE_MIB the last rank also holds that much heap data (not
//! zero, so it is in its image), and rank 0 ends with `steps median_us M max_us X` and
//! `slow_steps END_US:DURATION_US,…` (the steps over twice the median, each with its end in
//! microseconds since the Unix epoch) on stderr: `bench/migrate` takes the stall of the other
//! ranks from them, overall and during the migration. With `MIGRATE_RING_DETAIL=1` as well,
//! every sending rank ends with `rank R detail END_US:DURATION_US:RUNQ_US:TO_LAST_US:RING_US,…`
//! for its slow steps: how long the step waited for a core (the run-queue delay of
//! `/proc/thread-self/schedstat`), spent in its send to the last rank and in its exchange
//! with the ring: what a stall during a migration waits on.
#![forbid(unsafe_code)]

use mpicr::SystemOperation;

fn mix(acc: u64, v: u64) -> u64 {
    (acc.rotate_left(7) ^ v)
        .wrapping_mul(0x100_0000_01b3)
        .wrapping_add(0x9e37_79b9)
}

/// This thread's time spent waiting for a core so far, in microseconds (0 where the kernel
/// does not say).
fn runq_us() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .map_or(0, |ns: u64| ns / 1000)
}

/// Where one step of a sending rank went, in microseconds.
struct Step {
    end: u64,
    total: u64,
    runq: u64,
    to_last: u64,
    ring: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let pause: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let state_mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if let Err(e) = run(steps, pause, state_mib) {
        eprintln!("mpicr-migrate-ring: {e}");
        std::process::exit(1);
    }
}

fn run(steps: u64, pause_ms: u64, state_mib: usize) -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    assert!(size >= 3, "needs 3 ranks or more");
    let last = size - 1;
    let mut acc = rank as u64 + 1;
    let detail = state_mib > 0 && std::env::var("MIGRATE_RING_DETAIL").is_ok_and(|v| v == "1");
    let mut record: Vec<Step> = Vec::new();
    if rank == last {
        let state: Vec<u64> = (0..(state_mib << 20) / 8)
            .map(|i| mix(acc, i as u64) | 1)
            .collect();
        acc = mix(acc, state.len() as u64);
        if state_mib > 0 {
            eprintln!("rank {rank}: state of {state_mib} MiB ready");
        }
        for step in 0..steps {
            for src in 0..last {
                let mut v = [0u64; 2];
                world
                    .process_at_rank(src)
                    .receive_into_with_tag(&mut v[..], 5)?;
                assert_eq!(v[1], step, "messages from rank {src} arrive in order");
                acc = mix(acc, v[0]);
            }
        }
    } else {
        let ring = last; // ranks 0 .. last-1
        let next = (rank + 1) % ring;
        let prev = (rank + ring - 1) % ring;
        let block = 50_000 / 8;
        for step in 0..steps {
            let began = std::time::Instant::now();
            let runq = if detail { runq_us() } else { 0 };
            world
                .process_at_rank(last)
                .send_with_tag(&[mix(acc, step), step][..], 5)?;
            let to_last = began.elapsed().as_micros() as u64;
            let out: Vec<u64> = (0..block as u64).map(|i| mix(acc, i)).collect();
            let mut from_prev = vec![0u64; block];
            let ring_began = std::time::Instant::now();
            world.send_receive_into(&out[..], next, 6, &mut from_prev[..], prev, 6)?;
            let ring_us = ring_began.elapsed().as_micros() as u64;
            acc = mix(acc, from_prev[block - 1]);
            if rank == 0 {
                println!("progress {step}");
            }
            record.push(Step {
                end: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64),
                total: began.elapsed().as_micros() as u64,
                runq: if detail { runq_us() - runq } else { 0 },
                to_last,
                ring: ring_us,
            });
            if pause_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            }
        }
    }
    let mut total = 0u64;
    world.all_reduce_into(&acc, &mut total, SystemOperation::sum())?;
    if state_mib > 0 && !record.is_empty() {
        let mut sorted: Vec<u64> = record.iter().map(|s| s.total).collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        let max = sorted[sorted.len() - 1];
        let slow: Vec<&Step> = record.iter().filter(|s| s.total > 2 * median).collect();
        if rank == 0 {
            eprintln!("steps median_us {median} max_us {max}");
            let list: Vec<String> = slow
                .iter()
                .map(|s| format!("{}:{}", s.end, s.total))
                .collect();
            eprintln!("slow_steps {}", list.join(","));
        }
        if detail {
            let list: Vec<String> = slow
                .iter()
                .map(|s| format!("{}:{}:{}:{}:{}", s.end, s.total, s.runq, s.to_last, s.ring))
                .collect();
            eprintln!("rank {rank} detail {}", list.join(","));
        }
    }
    if rank == 0 {
        println!("result {total:016x} after {steps} steps on {size} ranks");
    }
    universe.finalize()
}
