//! Collective operations on bytes, built on point-to-point messages in the communicator's
//! collective context.
//!
//! Every function is blocking and must be called by every member in the same order, as MPI
//! requires; the messages of one collective between two ranks travel in order on one link, so
//! a fixed tag per operation is enough. Reductions take `op(input, inout)`, computing
//! `inout = input ∘ inout` element-wise, with `input` from lower ranks when the operation is not
//! commutative. Counts and displacements are in bytes.

use crate::EngineError;
use crate::buffer::{self, In, Out, exchange};
use crate::comm::Comm;
use crate::engine::Engine;

/// A reduction: `inout = input ∘ inout`.
pub type Op<'a> = &'a dyn Fn(&[u8], &mut [u8]);

const TAG_BARRIER: i32 = 1;
const TAG_BCAST: i32 = 2;
const TAG_REDUCE: i32 = 3;
const TAG_ALLREDUCE: i32 = 4;
const TAG_GATHER: i32 = 5;
const TAG_SCATTER: i32 = 6;
const TAG_ALLGATHER: i32 = 7;
const TAG_ALLTOALL: i32 = 8;
const TAG_SCAN: i32 = 9;

/// Scratch memory aligned for any element type a reduction may view it as. Buffers come from
/// and go back to the engine's pool, so a loop of large reductions does not map, fault in and
/// unmap fresh pages on every call.
struct Scratch {
    words: Vec<u128>,
    len: usize,
}

impl Scratch {
    /// A buffer of `len` bytes from the engine's pool (its contents are whatever it held).
    fn take(engine: &mut Engine, len: usize) -> Self {
        let mut words = engine.scratch_pool.pop().unwrap_or_default();
        words.resize(len.div_ceil(16), 0);
        Self { words, len }
    }

    fn copy_of(engine: &mut Engine, bytes: &[u8]) -> Self {
        let mut s = Self::take(engine, bytes.len());
        s.bytes_mut().copy_from_slice(bytes);
        s
    }

    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }

    /// Gives the buffer back to the pool, which keeps a few.
    fn recycle(self, engine: &mut Engine) {
        if engine.scratch_pool.len() < 4 {
            engine.scratch_pool.push(self.words);
        }
    }
}

/// One blocking send on the collective context: no request list, no allocation (a 2-rank
/// broadcast is one of these per call).
fn send(
    engine: &mut Engine,
    comm: &Comm,
    to: u32,
    tag: i32,
    data: &[u8],
) -> Result<(), EngineError> {
    let dest = comm.world_rank(i64::from(to))?;
    buffer::send(engine, comm.coll_ctx(), dest, tag, data)
}

/// One blocking receive on the collective context, as [`send`].
fn recv(
    engine: &mut Engine,
    comm: &Comm,
    from: u32,
    tag: i32,
    buf: &mut [u8],
) -> Result<(), EngineError> {
    let source = comm.world_rank(i64::from(from))?;
    buffer::recv(engine, comm.coll_ctx(), Some(source), Some(tag), buf).map(drop)
}

fn sendrecv(
    engine: &mut Engine,
    comm: &Comm,
    (to, data): (u32, &[u8]),
    (from, buf): (u32, &mut [u8]),
    tag: i32,
) -> Result<(), EngineError> {
    let dest = comm.world_rank(i64::from(to))?;
    let source = comm.world_rank(i64::from(from))?;
    exchange(
        engine,
        comm.coll_ctx(),
        &[Out { dest, tag, data }],
        &mut [In { source, tag, buf }],
    )
    .map(drop)
}

fn mismatch(what: String) -> EngineError {
    EngineError::BufferMismatch(what)
}

/// A reduction's receive buffer must be as long as its send buffer.
fn same_len(data: &[u8], out: &[u8]) -> Result<(), EngineError> {
    if out.len() != data.len() {
        return Err(mismatch(format!(
            "send {} bytes but receive {} bytes",
            data.len(),
            out.len()
        )));
    }
    Ok(())
}

/// Counts and displacements of `n` consecutive blocks of `block` bytes, in rank order.
fn equal_blocks(n: usize, block: usize) -> (Vec<usize>, Vec<usize>) {
    (vec![block; n], (0..n).map(|i| i * block).collect())
}

/// MPI_Barrier: dissemination, ⌈log2 n⌉ rounds.
pub fn barrier(engine: &mut Engine, comm: &Comm) -> Result<(), EngineError> {
    engine.attention()?;
    let (n, r) = (comm.size(), comm.rank());
    let mut k = 1;
    while k < n {
        sendrecv(
            engine,
            comm,
            ((r + k) % n, &[]),
            ((r + n - k) % n, &mut []),
            TAG_BARRIER,
        )?;
        k *= 2;
    }
    Ok(())
}

/// MPI_Bcast: binomial tree from `root`.
pub fn bcast(
    engine: &mut Engine,
    comm: &Comm,
    buf: &mut [u8],
    root: u32,
) -> Result<(), EngineError> {
    engine.attention()?;
    let n = comm.size();
    comm.world_rank(i64::from(root))?;
    let vr = (comm.rank() + n - root) % n;
    let mut mask = 1;
    while mask < n {
        if vr & mask != 0 {
            recv(engine, comm, (vr - mask + root) % n, TAG_BCAST, buf)?;
            break;
        }
        mask <<= 1;
    }
    mask >>= 1;
    while mask > 0 {
        if vr + mask < n {
            send(engine, comm, (vr + mask + root) % n, TAG_BCAST, buf)?;
        }
        mask >>= 1;
    }
    Ok(())
}

/// Binomial reduction to rank 0 of the relative numbering starting at `root`; returns the
/// result at the root. Correct for non-commutative operations only when `root` is 0.
fn reduce_binomial(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    op: Op<'_>,
    root: u32,
) -> Result<Option<Scratch>, EngineError> {
    let n = comm.size();
    let vr = (comm.rank() + n - root) % n;
    let mut acc = Scratch::copy_of(engine, data);
    let mut incoming = Scratch::take(engine, data.len());
    let mut mask = 1;
    while mask < n {
        if vr & mask == 0 {
            let child = vr | mask;
            if child < n {
                recv(
                    engine,
                    comm,
                    (child + root) % n,
                    TAG_REDUCE,
                    incoming.bytes_mut(),
                )?;
                op(acc.bytes(), incoming.bytes_mut());
                std::mem::swap(&mut acc, &mut incoming);
            }
        } else {
            send(
                engine,
                comm,
                (vr - mask + root) % n,
                TAG_REDUCE,
                acc.bytes(),
            )?;
            acc.recycle(engine);
            incoming.recycle(engine);
            return Ok(None);
        }
        mask <<= 1;
    }
    incoming.recycle(engine);
    Ok(Some(acc))
}

/// MPI_Reduce; `recv` is needed at the root only.
pub fn reduce(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    recv_buf: Option<&mut [u8]>,
    op: Op<'_>,
    commutative: bool,
    root: u32,
) -> Result<(), EngineError> {
    engine.attention()?;
    comm.world_rank(i64::from(root))?;
    let at_root = comm.rank() == root;
    if at_root && recv_buf.as_ref().is_none_or(|b| b.len() != data.len()) {
        return Err(mismatch(format!(
            "the root's receive buffer must hold {} bytes",
            data.len()
        )));
    }
    let tree_root = if commutative { root } else { 0 };
    let result = reduce_binomial(engine, comm, data, op, tree_root)?;
    match (result, recv_buf) {
        (Some(acc), Some(out)) if at_root => {
            out.copy_from_slice(acc.bytes());
            acc.recycle(engine);
        }
        (Some(acc), _) => {
            send(engine, comm, root, TAG_REDUCE, acc.bytes())?;
            acc.recycle(engine);
        }
        (None, Some(out)) if at_root && tree_root != root => {
            recv(engine, comm, tree_root, TAG_REDUCE, out)?
        }
        (None, _) => {}
    }
    Ok(())
}

/// MPI_Allreduce: recursive doubling for commutative operations (with the extra ranks of a
/// non-power-of-two size folded in first), reduce-then-broadcast otherwise.
pub fn allreduce(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    out: &mut [u8],
    op: Op<'_>,
    commutative: bool,
) -> Result<(), EngineError> {
    engine.attention()?;
    same_len(data, out)?;
    if !commutative {
        reduce(engine, comm, data, Some(&mut *out), op, false, 0).or_else(|e| match e {
            EngineError::BufferMismatch(_) if comm.rank() != 0 => Ok(()),
            e => Err(e),
        })?;
        return bcast(engine, comm, out, 0);
    }
    let (n, r) = (comm.size(), comm.rank());
    let pof2 = if n.is_power_of_two() {
        n
    } else {
        n.next_power_of_two() / 2
    };
    let rem = n - pof2;
    // The receive buffer accumulates; contributions of lower ranks come first in every
    // combination, so every rank computes bit for bit the same result.
    out.copy_from_slice(data);
    let mut incoming = Scratch::take(engine, data.len());
    let newrank = if r < 2 * rem {
        if r % 2 == 0 {
            send(engine, comm, r + 1, TAG_ALLREDUCE, out)?;
            None
        } else {
            recv(engine, comm, r - 1, TAG_ALLREDUCE, incoming.bytes_mut())?;
            op(incoming.bytes(), out);
            Some(r / 2)
        }
    } else {
        Some(r - rem)
    };
    if let Some(nr) = newrank {
        let mut mask = 1;
        while mask < pof2 {
            let partner = nr ^ mask;
            let real = if partner < rem {
                partner * 2 + 1
            } else {
                partner + rem
            };
            sendrecv(
                engine,
                comm,
                (real, out),
                (real, incoming.bytes_mut()),
                TAG_ALLREDUCE,
            )?;
            if real < r {
                op(incoming.bytes(), out);
            } else {
                op(out, incoming.bytes_mut());
                out.copy_from_slice(incoming.bytes());
            }
            mask <<= 1;
        }
    }
    if r < 2 * rem {
        if r % 2 == 1 {
            send(engine, comm, r - 1, TAG_ALLREDUCE, out)?;
        } else {
            recv(engine, comm, r + 1, TAG_ALLREDUCE, out)?;
        }
    }
    incoming.recycle(engine);
    Ok(())
}

/// Checks per-rank (count, displacement) pairs against a buffer of `len` bytes.
fn check_layout(counts: &[usize], displs: &[usize], len: usize, n: u32) -> Result<(), EngineError> {
    if counts.len() != n as usize || displs.len() != n as usize {
        return Err(mismatch(format!("{n} counts and displacements are needed")));
    }
    for (i, (&c, &d)) in counts.iter().zip(displs).enumerate() {
        if d.checked_add(c).is_none_or(|end| end > len) {
            return Err(mismatch(format!(
                "the block of rank {i} ({c} bytes at {d}) lies outside the {len}-byte buffer"
            )));
        }
    }
    Ok(())
}

/// MPI_Gatherv: the root receives `counts[i]` bytes from rank i at `displs[i]`.
pub fn gatherv(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    recv_buf: Option<(&mut [u8], &[usize], &[usize])>,
    root: u32,
) -> Result<(), EngineError> {
    engine.attention()?;
    let root_world = comm.world_rank(i64::from(root))?;
    if comm.rank() != root {
        return exchange(
            engine,
            comm.coll_ctx(),
            &[Out {
                dest: root_world,
                tag: TAG_GATHER,
                data,
            }],
            &mut [],
        )
        .map(drop);
    }
    let Some((buf, counts, displs)) = recv_buf else {
        return Err(mismatch("the root needs a receive buffer".into()));
    };
    check_layout(counts, displs, buf.len(), comm.size())?;
    if counts[root as usize] != data.len() {
        return Err(mismatch(format!(
            "the root sends {} bytes to itself but expects {}",
            data.len(),
            counts[root as usize]
        )));
    }
    let blocks = split_blocks(buf, counts, displs)?;
    let mut ins = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        if i as u32 == root {
            block.copy_from_slice(data);
        } else {
            ins.push(In {
                source: comm.world_rank(i as i64)?,
                tag: TAG_GATHER,
                buf: block,
            });
        }
    }
    exchange(engine, comm.coll_ctx(), &[], &mut ins).map(drop)
}

/// MPI_Gather: equal blocks of `data.len()` bytes, in rank order.
pub fn gather(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    recv_buf: Option<&mut [u8]>,
    root: u32,
) -> Result<(), EngineError> {
    engine.attention()?;
    let n = comm.size() as usize;
    let (counts, displs) = equal_blocks(n, data.len());
    gatherv(
        engine,
        comm,
        data,
        recv_buf.map(|b| (b, counts.as_slice(), displs.as_slice())),
        root,
    )
}

/// MPI_Scatterv: rank i receives `counts[i]` bytes from the root's buffer at `displs[i]`.
pub fn scatterv(
    engine: &mut Engine,
    comm: &Comm,
    send_buf: Option<(&[u8], &[usize], &[usize])>,
    out: &mut [u8],
    root: u32,
) -> Result<(), EngineError> {
    engine.attention()?;
    let root_world = comm.world_rank(i64::from(root))?;
    if comm.rank() != root {
        return exchange(
            engine,
            comm.coll_ctx(),
            &[],
            &mut [In {
                source: root_world,
                tag: TAG_SCATTER,
                buf: out,
            }],
        )
        .map(drop);
    }
    let Some((buf, counts, displs)) = send_buf else {
        return Err(mismatch("the root needs a send buffer".into()));
    };
    check_layout(counts, displs, buf.len(), comm.size())?;
    let mut outs = Vec::with_capacity(counts.len());
    for (i, (&c, &d)) in counts.iter().zip(displs).enumerate() {
        let block = &buf[d..d + c];
        if i as u32 == root {
            if out.len() != c {
                return Err(mismatch(format!(
                    "the root's own block is {c} bytes but its receive buffer {}",
                    out.len()
                )));
            }
            out.copy_from_slice(block);
        } else {
            outs.push(Out {
                dest: comm.world_rank(i as i64)?,
                tag: TAG_SCATTER,
                data: block,
            });
        }
    }
    exchange(engine, comm.coll_ctx(), &outs, &mut []).map(drop)
}

/// MPI_Scatter: equal blocks of `out.len()` bytes, in rank order.
pub fn scatter(
    engine: &mut Engine,
    comm: &Comm,
    send_buf: Option<&[u8]>,
    out: &mut [u8],
    root: u32,
) -> Result<(), EngineError> {
    engine.attention()?;
    let n = comm.size() as usize;
    let (counts, displs) = equal_blocks(n, out.len());
    scatterv(
        engine,
        comm,
        send_buf.map(|b| (b, counts.as_slice(), displs.as_slice())),
        out,
        root,
    )
}

/// Cuts `buf` into the non-overlapping blocks `(displs[i], counts[i])`, in rank order. An empty
/// block overlaps nothing, wherever its displacement points.
fn split_blocks<'a>(
    buf: &'a mut [u8],
    counts: &[usize],
    displs: &[usize],
) -> Result<Vec<&'a mut [u8]>, EngineError> {
    let mut order: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
    order.sort_by_key(|&i| displs[i]);
    let mut blocks: Vec<&'a mut [u8]> = (0..counts.len()).map(|_| Default::default()).collect();
    let mut rest = buf;
    let mut at = 0;
    for i in order {
        if displs[i] < at {
            return Err(mismatch(format!(
                "the receive block of rank {i} overlaps another"
            )));
        }
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(displs[i] - at);
        let (block, tail) = tail.split_at_mut(counts[i]);
        blocks[i] = block;
        rest = tail;
        at = displs[i] + counts[i];
    }
    Ok(blocks)
}

/// MPI_Allgatherv: every rank receives every rank's block; a ring of n-1 steps.
pub fn allgatherv(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    out: &mut [u8],
    counts: &[usize],
    displs: &[usize],
) -> Result<(), EngineError> {
    let r = comm.rank() as usize;
    check_layout(counts, displs, out.len(), comm.size())?;
    if counts[r] != data.len() {
        return Err(mismatch(format!(
            "this rank sends {} bytes but its block is {}",
            data.len(),
            counts[r]
        )));
    }
    out[displs[r]..displs[r] + data.len()].copy_from_slice(data);
    allgatherv_in_place(engine, comm, out, counts, displs)
}

/// MPI_Allgatherv with MPI_IN_PLACE: this rank's block is already in `out`. Each step sends
/// straight from `out`, so nothing but `out` holds the data (blocks must not overlap).
pub fn allgatherv_in_place(
    engine: &mut Engine,
    comm: &Comm,
    out: &mut [u8],
    counts: &[usize],
    displs: &[usize],
) -> Result<(), EngineError> {
    engine.attention()?;
    let (n, r) = (comm.size(), comm.rank());
    check_layout(counts, displs, out.len(), n)?;
    let mut blocks = split_blocks(out, counts, displs)?;
    let (right, left) = ((r + 1) % n, (r + n - 1) % n);
    for step in 0..n.saturating_sub(1) {
        let send_block = ((r + n - step) % n) as usize;
        let recv_block = ((r + n - step - 1) % n) as usize;
        let [outgoing, incoming] = blocks
            .get_disjoint_mut([send_block, recv_block])
            .map_err(|_| mismatch("the ring's blocks coincide".into()))?;
        sendrecv(
            engine,
            comm,
            (right, &**outgoing),
            (left, &mut **incoming),
            TAG_ALLGATHER,
        )?;
    }
    Ok(())
}

/// MPI_Allgather: equal blocks of `data.len()` bytes, in rank order.
pub fn allgather(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    out: &mut [u8],
) -> Result<(), EngineError> {
    engine.attention()?;
    let n = comm.size() as usize;
    let (counts, displs) = equal_blocks(n, data.len());
    allgatherv(engine, comm, data, out, &counts, &displs)
}

/// A block layout: per-rank byte counts and displacements.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    pub counts: &'a [usize],
    pub displs: &'a [usize],
}

/// MPI_Alltoallv: rank i's block j goes to rank j's block i; all at once.
pub fn alltoallv(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    send: Layout<'_>,
    out: &mut [u8],
    recv: Layout<'_>,
) -> Result<(), EngineError> {
    engine.attention()?;
    let (n, r) = (comm.size(), comm.rank() as usize);
    check_layout(send.counts, send.displs, data.len(), n)?;
    check_layout(recv.counts, recv.displs, out.len(), n)?;
    if send.counts[r] != recv.counts[r] {
        return Err(mismatch(format!(
            "this rank sends itself {} bytes but expects {}",
            send.counts[r], recv.counts[r]
        )));
    }
    let blocks = split_blocks(out, recv.counts, recv.displs)?;
    let mut ins = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        if i == r {
            block.copy_from_slice(&data[send.displs[r]..send.displs[r] + send.counts[r]]);
        } else {
            ins.push(In {
                source: comm.world_rank(i as i64)?,
                tag: TAG_ALLTOALL,
                buf: block,
            });
        }
    }
    let mut outs = Vec::with_capacity(n as usize);
    for i in (0..n as usize).filter(|&i| i != r) {
        let block = &data[send.displs[i]..send.displs[i] + send.counts[i]];
        outs.push(Out {
            dest: comm.world_rank(i as i64)?,
            tag: TAG_ALLTOALL,
            data: block,
        });
    }
    exchange(engine, comm.coll_ctx(), &outs, &mut ins).map(drop)
}

/// MPI_Alltoall: equal blocks of `data.len() / n` bytes.
pub fn alltoall(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    out: &mut [u8],
) -> Result<(), EngineError> {
    engine.attention()?;
    let n = comm.size() as usize;
    if !data.len().is_multiple_of(n) || out.len() != data.len() {
        return Err(mismatch(format!(
            "{} bytes cannot be cut into {n} equal blocks for a receive buffer of {}",
            data.len(),
            out.len()
        )));
    }
    let b = data.len() / n;
    let (counts, displs) = equal_blocks(n, b);
    let layout = Layout {
        counts: &counts,
        displs: &displs,
    };
    alltoallv(engine, comm, data, layout, out, layout)
}

/// MPI_Scan (inclusive) or, with `exclusive`, MPI_Exscan: a chain from rank 0 upward, which
/// keeps the order non-commutative operations need. Rank 0's result of an exclusive scan is
/// left untouched, as MPI leaves it undefined.
pub fn scan(
    engine: &mut Engine,
    comm: &Comm,
    data: &[u8],
    out: &mut [u8],
    op: Op<'_>,
    exclusive: bool,
) -> Result<(), EngineError> {
    engine.attention()?;
    same_len(data, out)?;
    let (n, r) = (comm.size(), comm.rank());
    let mut acc = Scratch::copy_of(engine, data);
    if r > 0 {
        let mut before = Scratch::take(engine, data.len());
        recv(engine, comm, r - 1, TAG_SCAN, before.bytes_mut())?;
        if exclusive {
            out.copy_from_slice(before.bytes());
        }
        op(before.bytes(), acc.bytes_mut());
        before.recycle(engine);
    }
    if r + 1 < n {
        send(engine, comm, r + 1, TAG_SCAN, acc.bytes())?;
    }
    if !exclusive {
        out.copy_from_slice(acc.bytes());
    }
    acc.recycle(engine);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_blocks;

    #[test]
    fn split_blocks_cuts_blocks_in_any_order_and_lets_empty_blocks_point_anywhere() {
        let mut buf: Vec<u8> = (0..10).collect();
        // Rank 0 at 6..9, rank 1 empty inside rank 0's block, rank 2 at 1..3.
        let blocks = split_blocks(&mut buf, &[3, 0, 2], &[6, 7, 1]).expect("a valid layout");
        assert_eq!(blocks[0], [6, 7, 8]);
        assert!(blocks[1].is_empty());
        assert_eq!(blocks[2], [1, 2]);
    }

    #[test]
    fn split_blocks_refuses_overlapping_blocks() {
        let mut buf = vec![0u8; 10];
        let err = split_blocks(&mut buf, &[3, 2], &[2, 4]).expect_err("rank 1 overlaps rank 0");
        assert!(err.to_string().contains("overlaps"), "{err}");
    }
}
