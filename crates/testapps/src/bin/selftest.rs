//! `mpicr-selftest SUITE`: MPI semantics checked from inside a real job.
//!
//! Every suite checks its results against values computed locally and prints `SUITE ok` on
//! rank 0 when all ranks passed. Suites: matching, nonblocking, truncation, collectives,
//! sizes, communicators, bigmem, abort, crash, block, hello, and for checkpoints fig2,
//! outstanding, crossing.
#![forbid(unsafe_code)]

use mpicr::{Communicator, SystemOperation, UserOperation};
use testapps::{check, pattern};

type R = Result<(), mpicr::Error>;

/// How two elements combine under an operation, computed locally for the expected value.
type Combine = fn(u32, u32) -> u32;

fn main() {
    let suite = std::env::args().nth(1).unwrap_or_default();
    let universe = match mpicr::initialize() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("selftest: cannot initialize MPI: {e}");
            std::process::exit(2);
        }
    };
    let world = universe.world();
    let result = match suite.as_str() {
        "matching" => matching(&world),
        "nonblocking" => nonblocking(&world),
        "truncation" => truncation(&world),
        "collectives" => collectives(&world),
        "sizes" => sizes(&world),
        "communicators" => communicators(&world),
        "abort" => {
            if world.rank() == world.size() - 1 {
                universe.abort(7);
            }
            world.barrier()
        }
        "crash" => {
            world.barrier().ok();
            if world.rank() == 1 {
                std::process::abort();
            }
            // The others wait for a message that never comes; the launcher must end them.
            let mut x = 0u8;
            world.process_at_rank(1).receive_into(&mut x).map(drop)
        }
        "block" => {
            // Every rank waits for a message nobody sends: for tests that end a job from outside.
            println!("rank {} blocked", world.rank());
            let mut x = 0u8;
            world.any_process().receive_into(&mut x).map(drop)
        }
        "bigmem" => bigmem(&world),
        "fig2" => fig2(&world, universe.checkpointing()),
        "outstanding" => outstanding(&world, universe.checkpointing()),
        "crossing" => crossing(&world, universe.checkpointing()),
        "hello" => {
            println!("hello from rank {} of {}", world.rank(), world.size());
            Ok(())
        }
        other => {
            eprintln!("selftest: unknown suite {other:?}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("selftest {suite}: rank {}: {e}", world.rank());
        std::process::exit(1);
    }
    if let Err(e) = universe.finalize() {
        eprintln!("selftest {suite}: finalize failed: {e}");
        std::process::exit(1);
    }
    if world.rank() == 0 {
        println!("{suite} ok");
    }
}

/// Non-overtaking order per (source, tag), wildcards, probe and status.
fn matching(world: &Communicator) -> R {
    let (rank, size) = (world.rank(), world.size());
    if size < 2 {
        return Ok(());
    }
    const N: i32 = 200;
    if rank != 0 {
        // Interleave two tags; each tag's sequence must arrive in order.
        for i in 0..N {
            world.process_at_rank(0).send_with_tag(&[rank, i], i % 2)?;
        }
        // A message rank 0 probes for first, with a size it learns from the probe.
        let v: Vec<u64> = (0..(rank as u64 + 3)).collect();
        world.process_at_rank(0).send_with_tag(&v[..], 99)?;
        return Ok(());
    }
    // Tag 1 first: these overtake tag 0 messages (allowed, different tag), in order per source.
    for src in 1..size {
        for i in (1..N).step_by(2) {
            let mut m = [0i32; 2];
            let s = world
                .process_at_rank(src)
                .receive_into_with_tag(&mut m[..], 1)?;
            check(m == [src, i] && s.source() == src && s.tag() == 1, || {
                format!("tag 1 from {src}: got {m:?}, wanted [{src}, {i}]")
            });
        }
    }
    // Then tag 0 from any source: per source, still in order.
    let mut next = vec![0i32; size as usize];
    for _ in 0..(size - 1) * N / 2 {
        let mut m = [0i32; 2];
        let s = world.any_process().receive_into_with_tag(&mut m[..], 0)?;
        let src = s.source();
        check(m[0] == src, || {
            format!("status source {src} but payload from {}", m[0])
        });
        check(m[1] == next[src as usize], || {
            format!("from {src}: got #{} before #{}", m[1], next[src as usize])
        });
        next[src as usize] += 2;
        check(s.count::<i32>() == 2, || {
            format!("count {}", s.count::<i32>())
        });
    }
    // Probe: learn the size, then receive exactly that.
    for _ in 1..size {
        let s = world.any_process().probe_with_tag(99)?;
        check(s.count::<u64>() == s.source() as usize + 3, || {
            format!("probe count {} from {}", s.count::<u64>(), s.source())
        });
        let (v, s2) = world
            .process_at_rank(s.source())
            .receive_vec_with_tag::<u64>(99)?;
        check(
            v == (0..(s.source() as u64 + 3)).collect::<Vec<_>>() && s2.source() == s.source(),
            || "probed message content".into(),
        );
    }
    check(world.any_process().immediate_probe()?.is_none(), || {
        "no message should be left".into()
    });
    Ok(())
}

/// Non-blocking requests completed in any order, test, wait_all, sendrecv, self-messages.
fn nonblocking(world: &Communicator) -> R {
    let (rank, size) = (world.rank(), world.size());
    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    let sizes = [0usize, 1, 100, 70_000, 300_000];
    let outgoing: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern((rank * 10 + i as i32) as u64, n))
        .collect();
    let mut incoming: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();
    mpicr::request::scope(|scope| -> R {
        let mut recvs = Vec::new();
        for (i, buf) in incoming.iter_mut().enumerate() {
            recvs.push(
                world
                    .process_at_rank(prev)
                    .immediate_receive_into_with_tag(scope, &mut buf[..], i as i32)?,
            );
        }
        // Send in reverse order: receives are matched by tag, not by order.
        let mut sends = Vec::new();
        for (i, buf) in outgoing.iter().enumerate().rev() {
            sends.push(world.process_at_rank(next).immediate_send_with_tag(
                scope,
                &buf[..],
                i as i32,
            )?);
        }
        // Complete the receives last-first, polling with test on the way.
        while let Some(r) = recvs.pop() {
            let i = recvs.len();
            let s = loop {
                if let Some(s) = r.test()? {
                    break s;
                }
            };
            check(
                s.tag() == i as i32 && s.source() == prev && s.count_bytes() == sizes[i],
                || format!("status {s:?} for #{i}"),
            );
        }
        mpicr::request::wait_all(sends)?;
        Ok(())
    })?;
    for (i, buf) in incoming.iter().enumerate() {
        check(
            *buf == pattern((prev * 10 + i as i32) as u64, sizes[i]),
            || format!("payload #{i} from {prev}"),
        );
    }
    // Sendrecv around the ring, and a message to oneself.
    let mut got = -1i32;
    let s = world.send_receive_into(&rank, next, 5, &mut got, prev, 5)?;
    check(got == prev && s.source() == prev, || {
        format!("sendrecv got {got}")
    });
    let big = pattern(42, 200_000);
    let mut back = vec![0u8; big.len()];
    mpicr::request::scope(|scope| -> R {
        let r = world
            .process_at_rank(rank)
            .immediate_receive_into(scope, &mut back[..])?;
        world.process_at_rank(rank).send(&big[..])?;
        r.wait().map(drop)
    })?;
    check(back == big, || "self message".into());
    Ok(())
}

/// A receive buffer that is too small is an error, for eager and rendezvous messages alike,
/// and the job keeps working afterwards.
fn truncation(world: &Communicator) -> R {
    let (rank, size) = (world.rank(), world.size());
    if size < 2 {
        return Ok(());
    }
    for n in [10usize, 1 << 20] {
        if rank == 0 {
            world.process_at_rank(1).send(&pattern(n as u64, n)[..])?;
            world.process_at_rank(1).send(&[1u8, 2, 3][..])?;
        } else if rank == 1 {
            let mut small = vec![0u8; n / 2];
            match world.process_at_rank(0).receive_into(&mut small[..]) {
                Err(mpicr::Error::Engine(engine_error)) => {
                    let text = engine_error.to_string();
                    check(text.contains("does not fit"), || {
                        format!("unexpected error text {text:?}")
                    });
                }
                other => check(false, || {
                    format!("a {n}-byte message into {} bytes gave {other:?}", n / 2)
                }),
            }
            check(small[..] == pattern(n as u64, n)[..n / 2], || {
                "the part that fits is delivered".into()
            });
            let mut after = [0u8; 3];
            world.process_at_rank(0).receive_into(&mut after[..])?;
            check(after == [1, 2, 3], || {
                "the next message after a truncation".into()
            });
        }
    }
    Ok(())
}

/// Every collective against locally computed results.
fn collectives(world: &Communicator) -> R {
    let (rank, size) = (world.rank(), world.size());
    let n = size as usize;
    world.barrier()?;
    for root in 0..size {
        // Broadcast, small and large.
        for len in [1usize, 5000, 300_000] {
            let mut buf = if rank == root {
                pattern(root as u64 + len as u64, len)
            } else {
                vec![0u8; len]
            };
            world.process_at_rank(root).broadcast_into(&mut buf[..])?;
            check(buf == pattern(root as u64 + len as u64, len), || {
                format!("bcast root {root} len {len}")
            });
        }
        // Reduce with sum (commutative) and a non-commutative user operation.
        let mine: Vec<i64> = (0..5).map(|i| i64::from(rank) * 10 + i).collect();
        let expect: Vec<i64> = (0..5)
            .map(|i| (0..i64::from(size)).map(|r| r * 10 + i).sum())
            .collect();
        if rank == root {
            let mut out = vec![0i64; 5];
            world.process_at_rank(root).reduce_into_root(
                &mine[..],
                &mut out[..],
                SystemOperation::sum(),
            )?;
            check(out == expect, || {
                format!("reduce root {root}: {out:?} vs {expect:?}")
            });
        } else {
            world
                .process_at_rank(root)
                .reduce_into(&mine[..], SystemOperation::sum())?;
        }
        // Appending decimal numbers, (value, 10^digits), is associative but not commutative:
        // the result spells the ranks in order.
        let digit = [i64::from(rank), 10];
        let concat = UserOperation::non_commutative(|a: &[i64], b: &mut [i64]| {
            b[0] += a[0] * b[1];
            b[1] *= a[1];
        });
        let spelled = (0..i64::from(size)).fold(0, |acc, r| acc * 10 + r);
        if rank == root {
            let mut out = [0i64; 2];
            world
                .process_at_rank(root)
                .reduce_into_root(&digit[..], &mut out[..], concat)?;
            check(out[0] == spelled, || {
                format!(
                    "non-commutative reduce root {root}: {} vs {spelled}",
                    out[0]
                )
            });
        } else {
            world
                .process_at_rank(root)
                .reduce_into(&digit[..], concat)?;
        }
        // Gather / scatter and their v variants (rank r contributes r+1 elements).
        let block: Vec<i32> = (0..3).map(|i| rank * 100 + i).collect();
        let all: Vec<i32> = (0..size)
            .flat_map(|r| (0..3).map(move |i| r * 100 + i))
            .collect();
        let counts: Vec<i32> = (0..size).map(|r| r + 1).collect();
        let vmine: Vec<i32> = (0..=rank).map(|i| rank * 1000 + i).collect();
        let vall: Vec<i32> = (0..size)
            .flat_map(|r| (0..=r).map(move |i| r * 1000 + i))
            .collect();
        let mut got = vec![0i32; 3];
        let mut vgot = vec![0i32; vmine.len()];
        if rank == root {
            let mut out = vec![0i32; 3 * n];
            world
                .process_at_rank(root)
                .gather_into_root(&block[..], &mut out[..])?;
            check(out == all, || format!("gather root {root}"));
            let mut vout = vec![0i32; vall.len()];
            world.process_at_rank(root).gather_varcount_into_root(
                &vmine[..],
                &mut vout[..],
                &counts,
                None,
            )?;
            check(vout == vall, || format!("gatherv root {root}"));
            world
                .process_at_rank(root)
                .scatter_into_root(&all[..], &mut got[..])?;
            world.process_at_rank(root).scatter_varcount_into_root(
                &vall[..],
                &counts,
                None,
                &mut vgot[..],
            )?;
        } else {
            world.process_at_rank(root).gather_into(&block[..])?;
            world
                .process_at_rank(root)
                .gather_varcount_into(&vmine[..])?;
            world.process_at_rank(root).scatter_into(&mut got[..])?;
            world
                .process_at_rank(root)
                .scatter_varcount_into(&mut vgot[..])?;
        }
        check(got == block, || format!("scatter root {root}: {got:?}"));
        check(vgot == vmine, || format!("scatterv root {root}: {vgot:?}"));
    }
    // Allreduce with every system operation on integers, sum/max/min/prod on floats, and a
    // user function; sizes from one element to beyond the eager limit.
    for len in [1usize, 3, 1000, 40_000] {
        let mine: Vec<u32> = (0..len as u32)
            .map(|i| (i % 7 + 1) * (rank as u32 + 1))
            .collect();
        let column = |i: u32| (0..size as u32).map(move |r| (i % 7 + 1) * (r + 1));
        let ops: [(SystemOperation, Combine); 9] = [
            (SystemOperation::sum(), |a, b| a.wrapping_add(b)),
            (SystemOperation::product(), |a, b| a.wrapping_mul(b)),
            (SystemOperation::max(), u32::max),
            (SystemOperation::min(), u32::min),
            (SystemOperation::bitwise_and(), |a, b| a & b),
            (SystemOperation::bitwise_or(), |a, b| a | b),
            (SystemOperation::bitwise_xor(), |a, b| a ^ b),
            (SystemOperation::logical_and(), |a, b| {
                u32::from(a != 0 && b != 0)
            }),
            (SystemOperation::logical_or(), |a, b| {
                u32::from(a != 0 || b != 0)
            }),
        ];
        for (op, f) in ops {
            let mut out = vec![0u32; len];
            world.all_reduce_into(&mine[..], &mut out[..], op)?;
            for (i, v) in out.iter().enumerate() {
                let want = column(i as u32).reduce(f).expect("at least one rank");
                check(*v == want, || {
                    format!("allreduce {op:?} len {len} [{i}]: {v} vs {want}")
                });
            }
        }
        let fmine: Vec<f64> = mine.iter().map(|&v| f64::from(v) * 0.5).collect();
        let mut fout = vec![0f64; len];
        world.all_reduce_into(&fmine[..], &mut fout[..], SystemOperation::max())?;
        check(
            fout.iter()
                .enumerate()
                .all(|(i, v)| *v == f64::from((i as u32 % 7 + 1) * size as u32) * 0.5),
            || "allreduce max f64".into(),
        );
        let user = UserOperation::commutative(|a: &[f64], b: &mut [f64]| {
            b.iter_mut().zip(a).for_each(|(y, x)| *y += 2.0 * x)
        });
        world.all_reduce_into(&fmine[..], &mut fout[..], user)?;
        check(fout.iter().all(|v| v.is_finite()), || {
            "user allreduce".into()
        });
    }
    let mut bad = [0f64];
    let refused = world.all_reduce_into(&[1.0f64], &mut bad, SystemOperation::bitwise_and());
    check(
        matches!(refused, Err(mpicr::Error::InvalidOperation { .. })),
        || "bitwise and on f64 must be refused".into(),
    );
    // Allgather(v), alltoall(v), scan, exscan.
    let mut everyone = vec![0i32; n];
    world.all_gather_into(&rank, &mut everyone[..])?;
    check(everyone == (0..size).collect::<Vec<_>>(), || {
        format!("allgather {everyone:?}")
    });
    let counts: Vec<i32> = (0..size).map(|r| r % 3).collect();
    let vmine: Vec<i32> = (0..rank % 3).map(|i| rank * 10 + i).collect();
    let vall: Vec<i32> = (0..size)
        .flat_map(|r| (0..r % 3).map(move |i| r * 10 + i))
        .collect();
    let mut vout = vec![0i32; vall.len()];
    world.all_gather_varcount_into(&vmine[..], &mut vout[..], &counts, None)?;
    check(vout == vall, || "allgatherv".into());
    let send: Vec<i32> = (0..size).flat_map(|to| [rank * 100 + to, -1]).collect();
    let mut recv = vec![0i32; 2 * n];
    world.all_to_all_into(&send[..], &mut recv[..])?;
    check(
        recv == (0..size)
            .flat_map(|from| [from * 100 + rank, -1])
            .collect::<Vec<_>>(),
        || "alltoall".into(),
    );
    // Alltoallv: rank r sends j+1 copies of r to rank j.
    let scounts: Vec<i32> = (0..size).map(|j| j + 1).collect();
    let sdispls: Vec<i32> = scounts
        .iter()
        .scan(0, |a, &c| Some(std::mem::replace(a, *a + c)))
        .collect();
    let vsend: Vec<i32> = (0..size)
        .flat_map(|j| std::iter::repeat_n(rank, j as usize + 1))
        .collect();
    let rcounts = vec![rank + 1; n];
    let rdispls: Vec<i32> = (0..size).map(|i| i * (rank + 1)).collect();
    let mut vrecv = vec![0i32; n * (rank as usize + 1)];
    world.all_to_all_varcount_into(
        &vsend[..],
        &scounts,
        &sdispls,
        &mut vrecv[..],
        &rcounts,
        &rdispls,
    )?;
    check(
        vrecv
            == (0..size)
                .flat_map(|i| std::iter::repeat_n(i, rank as usize + 1))
                .collect::<Vec<_>>(),
        || "alltoallv".into(),
    );
    let mut prefix = 0i64;
    world.scan_into(&i64::from(rank + 1), &mut prefix, SystemOperation::sum())?;
    check(prefix == i64::from((rank + 1) * (rank + 2) / 2), || {
        format!("scan {prefix}")
    });
    let mut before = -7i64;
    world.exclusive_scan_into(&i64::from(rank + 1), &mut before, SystemOperation::sum())?;
    check(
        rank == 0 || before == i64::from(rank * (rank + 1) / 2),
        || format!("exscan {before}"),
    );
    world.barrier()
}

/// Messages of 0 B to 64 MiB both ways between pairs, every byte checked.
fn sizes(world: &Communicator) -> R {
    let (rank, size) = (world.rank(), world.size());
    if size < 2 || rank >= 2 {
        return Ok(());
    }
    let peer = 1 - rank;
    let mut len = 0usize;
    while len <= 64 << 20 {
        for round in 0..2 {
            let sender = round;
            if rank == sender {
                world
                    .process_at_rank(peer)
                    .send(&pattern(len as u64, len)[..])?;
            } else {
                let mut buf = vec![0u8; len];
                let s = world.process_at_rank(peer).receive_into(&mut buf[..])?;
                check(s.count_bytes() == len, || {
                    format!("count {} for {len}", s.count_bytes())
                });
                check(buf == pattern(len as u64, len), || {
                    format!("payload of {len} bytes")
                });
            }
        }
        len = if len == 0 {
            1
        } else if len < 1 << 16 {
            len * 4 + 1
        } else {
            len * 4
        };
    }
    let top = 64 << 20;
    if rank == 0 {
        world.process_at_rank(peer).send(&pattern(9, top)[..])?;
    } else {
        let mut buf = vec![0u8; top];
        world.process_at_rank(peer).receive_into(&mut buf[..])?;
        check(buf == pattern(9, top), || "64 MiB payload".into());
    }
    Ok(())
}

/// Split and dup: separate traffic, right membership, collectives inside.
fn communicators(world: &Communicator) -> R {
    let (rank, size) = (world.rank(), world.size());
    let dup = world.duplicate()?;
    // A message on the duplicate must not match a receive on the world, and vice versa.
    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    let mut on_world = -1i32;
    let mut on_dup = -1i32;
    mpicr::request::scope(|scope| -> R {
        let a = world
            .process_at_rank(prev)
            .immediate_receive_into(scope, &mut on_world)?;
        let b = dup
            .process_at_rank(prev)
            .immediate_receive_into(scope, &mut on_dup)?;
        dup.process_at_rank(next).send(&(rank + 1000))?;
        world.process_at_rank(next).send(&rank)?;
        mpicr::request::wait_all(vec![a, b]).map(drop)
    })?;
    check(on_world == prev && on_dup == prev + 1000, || {
        format!("world {on_world} dup {on_dup}")
    });
    // Odd and even ranks, reverse order by key; the highest rank opts out.
    let color = if rank == size - 1 && size > 2 {
        None
    } else {
        Some(rank % 2)
    };
    let half = world.split_by_color_with_key(color, -rank)?;
    match half {
        None => check(color.is_none(), || "a member got no communicator".into()),
        Some(half) => {
            let members: Vec<i32> = (0..size)
                .filter(|r| r % 2 == rank % 2 && !(*r == size - 1 && size > 2))
                .rev()
                .collect();
            check(half.size() as usize == members.len(), || {
                format!("split size {}", half.size())
            });
            check(members[half.rank() as usize] == rank, || {
                format!("split rank {}", half.rank())
            });
            let mut sum = 0i32;
            half.all_reduce_into(&rank, &mut sum, SystemOperation::sum())?;
            check(sum == members.iter().sum::<i32>(), || {
                format!("sum in half {sum}")
            });
            let mut world_ranks = vec![0i32; members.len()];
            half.all_gather_into(&rank, &mut world_ranks[..])?;
            check(world_ranks == members, || {
                format!("allgather in half {world_ranks:?}")
            });
        }
    }
    world.barrier()
}

/// The peak resident memory of this process in MiB (VmHWM).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A 256 MiB message that arrives before its receive is posted: the receiver must not hold a
/// second copy of it (rendezvous), so its peak memory stays near one message.
fn bigmem(world: &Communicator) -> R {
    const LEN: usize = 256 << 20;
    if world.size() < 2 || world.rank() >= 2 {
        return Ok(());
    }
    if world.rank() == 0 {
        let data = vec![7u8; LEN];
        world.process_at_rank(1).send(&data[..])?;
    } else {
        // Let the message arrive (as far as it can) before the receive exists.
        std::thread::sleep(std::time::Duration::from_millis(300));
        while world.any_process().immediate_probe()?.is_none() {}
        let before = peak_rss_mib();
        let mut buf = vec![0u8; LEN];
        world.process_at_rank(0).receive_into(&mut buf[..])?;
        check(buf.iter().all(|&b| b == 7), || "payload".into());
        println!("peak-rss-mib before {before} after {}", peak_rss_mib());
    }
    Ok(())
}

/// ChaRM4MPI's figure 2: rank 1 is blocked in a receive while rank 0 computes before the send.
/// A checkpoint requested meanwhile must complete, not deadlock. The 24 rounds take 6 s, so
/// that a request from a test on a loaded machine still comes before the end of the job.
fn fig2(world: &Communicator, ckpt: mpicr::Checkpointing) -> R {
    if world.size() < 2 || world.rank() >= 2 {
        return Ok(());
    }
    let mut taken = 0;
    for round in 0..24u64 {
        if ckpt.safepoint("round", &round)?.is_some() {
            taken += 1;
        }
        if world.rank() == 0 {
            std::thread::sleep(std::time::Duration::from_millis(250));
            world.process_at_rank(1).send(&round)?;
        } else {
            let (got, _) = world.process_at_rank(0).receive::<u64>()?;
            check(got == round, || format!("round {round} got {got}"));
        }
    }
    println!("rank {} took {taken} checkpoints", world.rank());
    Ok(())
}

/// A safepoint reached with a receive still outstanding: the checkpoint fails with a message
/// naming the request, the program is told, and it goes on to the right result.
fn outstanding(world: &Communicator, ckpt: mpicr::Checkpointing) -> R {
    if world.size() < 2 || world.rank() >= 2 {
        return Ok(());
    }
    for round in 0..10u64 {
        if world.rank() == 0 {
            let mut got = 0u64;
            mpicr::request::scope(|scope| -> R {
                let r = world
                    .process_at_rank(1)
                    .immediate_receive_into(scope, &mut got)?;
                if let Err(e) = ckpt.safepoint("round", &round) {
                    println!("safepoint refused: {e}");
                }
                r.wait().map(drop)
            })?;
            check(got == round * 3, || format!("round {round} got {got}"));
        } else {
            ckpt.safepoint("round", &round)?;
            std::thread::sleep(std::time::Duration::from_millis(200));
            world.process_at_rank(0).send(&(round * 3))?;
        }
    }
    Ok(())
}

/// Safepoints that are not collective: rank 1 needs, before its safepoint, a message rank 0
/// sends after its own. The checkpoint must be given up (never a hang, never a wrong result).
fn crossing(world: &Communicator, ckpt: mpicr::Checkpointing) -> R {
    if world.size() < 2 || world.rank() >= 2 {
        return Ok(());
    }
    let mut sum = 0u64;
    for round in 0..10u64 {
        if world.rank() == 0 {
            ckpt.safepoint("round", &round)?;
            std::thread::sleep(std::time::Duration::from_millis(150));
            world.process_at_rank(1).send(&round)?;
        } else {
            let (got, _) = world.process_at_rank(0).receive::<u64>()?;
            sum += got;
            ckpt.safepoint("round", &round)?;
        }
    }
    check(world.rank() == 0 || sum == 45, || format!("sum {sum}"));
    Ok(())
}
