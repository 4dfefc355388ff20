//! `mpicr-heat [N] [SWEEPS] [PAUSE_MS]`: 2-D heat diffusion by Jacobi iteration on an N×N plate whose
//! top edge is held at 100 degrees and the other edges at 0.
//!
//! The plate is cut into bands of rows, one per rank; every sweep each rank swaps its edge
//! rows with its neighbours and every 250 sweeps the ranks agree on the largest change.
//! At the end rank 0 collects the plate and recomputes it alone: the parallel result must be
//! identical bit for bit, which is what "verified" means in the output.
//!
//! The job can be checkpointed, killed and restarted (`mpicr checkpoint`, `mpicr restart`)
//! and still end with the same verified plate: with the default `image` checkpointer as any
//! program can, and with `--crs self` because every sweep starts at a safepoint with the
//! rank's band as its state. `PAUSE_MS` slows each sweep down, to leave time for that in a
//! demonstration (`mpicr demo`).
#![forbid(unsafe_code)]

use mpicr::{Checkpointing, Communicator, SystemOperation};
use serde::{Deserialize, Serialize};

const HOT: f64 = 100.0;

/// One Jacobi sweep over rows `1..=rows` of `cur` (with halo rows 0 and rows+1) into `next`.
/// Returns the largest change.
fn sweep(cur: &[f64], next: &mut [f64], rows: usize, n: usize) -> f64 {
    let mut change = 0f64;
    for r in 1..=rows {
        for c in 1..n - 1 {
            let i = r * n + c;
            let v = 0.25 * (cur[i - n] + cur[i + n] + cur[i - 1] + cur[i + 1]);
            change = change.max((v - cur[i]).abs());
            next[i] = v;
        }
    }
    change
}

/// The whole plate with its fixed edges.
fn initial_plate(n: usize) -> Vec<f64> {
    let mut plate = vec![0f64; n * n];
    plate[..n].fill(HOT);
    plate
}

fn serial(n: usize, sweeps: usize) -> Vec<f64> {
    let mut cur = initial_plate(n);
    let mut next = cur.clone();
    for _ in 0..sweeps {
        sweep(&cur, &mut next, n - 2, n);
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

/// What a rank needs to go on: the sweep it is at and its rows with their halos.
#[derive(Serialize, Deserialize)]
struct Progress {
    sweep: usize,
    rows: Vec<f64>,
}

struct Band {
    first_row: usize,
    rows: usize,
}

/// Rows 1..n-1 (the inner rows) shared out as evenly as possible.
fn band(n: usize, ranks: usize, rank: usize) -> Band {
    let inner = n - 2;
    let base = inner / ranks;
    let extra = inner % ranks;
    let rows = base + usize::from(rank < extra);
    let first_row = 1 + rank * base + rank.min(extra);
    Band { first_row, rows }
}

fn run(
    world: &Communicator,
    ckpt: Checkpointing,
    n: usize,
    sweeps: usize,
    pause_ms: u64,
) -> Result<(), mpicr::Error> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    if n - 2 < size {
        if rank == 0 {
            eprintln!("mpicr-heat: a {n}x{n} plate has fewer inner rows than the {size} ranks");
        }
        std::process::exit(1);
    }
    let b = band(n, size, rank);
    // Local rows: halo above, the band, halo below.
    let progress = match ckpt.recover::<Progress>("heat")? {
        Some(p) => {
            if rank == 0 {
                println!("restarted from a snapshot at sweep {}", p.sweep);
            }
            p
        }
        None => {
            let plate = initial_plate(n);
            Progress {
                sweep: 0,
                rows: plate[(b.first_row - 1) * n..(b.first_row + b.rows + 1) * n].to_vec(),
            }
        }
    };
    let first_sweep = progress.sweep;
    let mut cur = progress.rows;
    let mut next = cur.clone();
    let up = (rank > 0).then(|| rank as i32 - 1);
    let down = (rank + 1 < size).then(|| rank as i32 + 1);
    let start = mpicr::time();
    let mut last_change = 0f64;
    for s in first_sweep..sweeps {
        let state = Progress {
            sweep: s,
            rows: cur,
        };
        if let Some(epoch) = ckpt.safepoint("heat", &state)?
            && rank == 0
        {
            println!("checkpoint {epoch} taken at sweep {s}");
        }
        cur = state.rows;
        if pause_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        }
        // Swap edge rows with the neighbours: send the first band row up, the last one down.
        let (top, rest) = cur.split_at_mut(n);
        let (band_rows, bottom) = rest.split_at_mut(b.rows * n);
        if let Some(up) = up {
            world.send_receive_into(&band_rows[..n], up, 1, top, up, 2)?;
        }
        if let Some(down) = down {
            world.send_receive_into(&band_rows[(b.rows - 1) * n..], down, 2, bottom, down, 1)?;
        }
        let change = sweep(&cur, &mut next, b.rows, n);
        next[..n].copy_from_slice(&cur[..n]);
        next[(b.rows + 1) * n..].copy_from_slice(&cur[(b.rows + 1) * n..]);
        std::mem::swap(&mut cur, &mut next);
        if (s + 1) % 250 == 0 || s + 1 == sweeps {
            world.all_reduce_into(&change, &mut last_change, SystemOperation::max())?;
            if rank == 0 {
                println!("sweep {:>5}: largest change {last_change:.6}", s + 1);
            }
        }
    }
    let elapsed = mpicr::time() - start;
    let mine = &cur[n..(b.rows + 1) * n];
    let counts: Vec<i32> = (0..size)
        .map(|r| (band(n, size, r).rows * n) as i32)
        .collect();
    let root = world.process_at_rank(0);
    if rank == 0 {
        let mut inner = vec![0f64; (n - 2) * n];
        root.gather_varcount_into_root(mine, &mut inner[..], &counts, None)?;
        let reference = serial(n, sweeps);
        let identical = inner == reference[n..(n - 1) * n];
        let checksum: f64 = inner.iter().sum();
        let centre = inner[(n / 2 - 1) * n + n / 2];
        println!(
            "heat: {n}x{n} plate, {sweeps} sweeps on {size} ranks in {elapsed:.3} s: centre {centre:.6} degrees, checksum {checksum:.6}"
        );
        if identical {
            println!("verified: the parallel result is identical to a serial computation");
        } else {
            println!("MISMATCH: the parallel result differs from the serial computation");
            std::process::exit(1);
        }
    } else {
        root.gather_varcount_into(mine)?;
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>, default: usize, what: &str| {
        a.map_or(Ok(default), |v| {
            v.parse::<usize>()
                .map_err(|_| format!("mpicr-heat: {what} must be a number, not {v:?}"))
        })
    };
    let parsed = (
        parse(args.next(), 100, "N"),
        parse(args.next(), 2000, "SWEEPS"),
        parse(args.next(), 0, "PAUSE_MS"),
    );
    let (n, sweeps, pause) = match parsed {
        (Ok(n), Ok(s), Ok(p)) if n >= 3 => (n, s, p as u64),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
        _ => {
            eprintln!("mpicr-heat: N must be at least 3");
            std::process::exit(2);
        }
    };
    let result = mpicr::initialize().and_then(|universe| {
        run(
            &universe.world(),
            universe.checkpointing(),
            n,
            sweeps,
            pause,
        )?;
        universe.finalize()
    });
    if let Err(e) = result {
        let mut line = format!("mpicr-heat: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            line.push_str(&format!(": {s}"));
            source = s.source();
        }
        eprintln!("{line}");
        std::process::exit(1);
    }
}
