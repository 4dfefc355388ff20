//! Path length of a small-message round trip on the Rust API — the twin of
//! `bench/c/pathlen.c`, for `bench/pathlen`.
//!
//! Usage: `bench-pathlen FLAG_FILE [BYTES [ITERS]]` (defaults 8 and 2000) on 2 ranks.
//! Rank 1 echoes every message and after each send writes the number of echoes so far
//! into FLAG_FILE. Rank 0 sends (in `pathlen_send`), waits outside MPI until the file
//! says the echo was sent, and receives (in `pathlen_recv`); `bench/pathlen` counts the
//! instructions of those two functions only, under callgrind. The warm-up round trips
//! call the API directly and are not counted.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::Duration;

use mpicr::Communicator;
use mpicr_bench::run_main;

const TAG: i32 = 1;
const WARMUP: u64 = 200;

#[inline(never)]
fn pathlen_send(world: &Communicator, buf: &[u8]) -> Result<(), mpicr::Error> {
    world.process_at_rank(1).send_with_tag(buf, TAG)
}

#[inline(never)]
fn pathlen_recv(world: &Communicator, buf: &mut [u8]) -> Result<(), mpicr::Error> {
    world
        .process_at_rank(1)
        .receive_into_with_tag(buf, TAG)
        .map(drop)
}

/// The echo count rank 1 last wrote (0 before the first).
fn echoes(flag: &File) -> u64 {
    let mut b = [0u8; 8];
    match flag.read_at(&mut b, 0) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
    }
}

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn run() -> Result<(), mpicr::Error> {
    let universe = mpicr::initialize()?;
    let world = universe.world();
    let rank = world.rank();
    let (Some(path), 2) = (std::env::args().nth(1), world.size()) else {
        eprintln!("usage: bench-pathlen FLAG_FILE [BYTES [ITERS]] on 2 ranks");
        std::process::exit(2);
    };
    let bytes: usize = arg(2, 8);
    let iters: u64 = arg(3, 2000);
    let flag = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap_or_else(|e| {
            eprintln!("bench-pathlen: {path}: {e}");
            std::process::exit(2);
        });
    world.barrier()?;
    let mut buf = vec![0u8; bytes];
    for i in 0..WARMUP + iters {
        if rank == 0 && i < WARMUP {
            let peer = world.process_at_rank(1);
            peer.send_with_tag(&buf[..], TAG)?;
            peer.receive_into_with_tag(&mut buf[..], TAG)?;
        } else if rank == 0 {
            pathlen_send(&world, &buf)?;
            while echoes(&flag) < i + 1 {
                std::thread::sleep(Duration::from_micros(20));
            }
            pathlen_recv(&world, &mut buf)?;
        } else {
            let peer = world.process_at_rank(0);
            peer.receive_into_with_tag(&mut buf[..], TAG)?;
            peer.send_with_tag(&buf[..], TAG)?;
            if let Err(e) = flag.write_all_at(&(i + 1).to_le_bytes(), 0) {
                eprintln!("bench-pathlen: {path}: {e}");
                std::process::exit(2);
            }
        }
    }
    if rank == 0 {
        println!("pathlen: {iters} round trips of {bytes} B");
    }
    Ok(())
}

fn main() -> ExitCode {
    run_main("bench-pathlen", run)
}
