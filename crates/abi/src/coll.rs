//! Blocking collectives on user buffers and datatypes, over the engine's byte collectives.
//!
//! Data travels packed; a contiguous type goes straight from and into user memory where the
//! engine's buffer rules allow it. Reductions move spans (see `Dtype::span`) so that user
//! functions see the datatype's own layout.

use std::borrow::Cow;
use std::ffi::c_int;
use std::rc::Rc;

use engine::buffer::{In, Out, exchange};
use engine::coll;

use crate::IN_PLACE_ADDR;
use crate::dtype::Dtype;
use crate::ffi::{Res, bail, slice, user_bytes, user_bytes_mut};
use crate::handles::err;
use crate::ops::OpObj;
use crate::request::check_buffer;
use crate::state::{self, CommObj, with_engine};

const TAG_ALLTOALLW: i32 = 12;

pub(crate) fn in_place(buf: usize) -> bool {
    buf == IN_PLACE_ADDR
}

/// `count` elements at `buf`, packed (borrowed when the type is contiguous).
pub(crate) fn packed<'a>(buf: usize, count: usize, dt: &Dtype) -> Res<Cow<'a, [u8]>> {
    let len = dt.packed_len(count)?;
    if dt.contiguous {
        return Ok(Cow::Borrowed(user_bytes(buf, len)));
    }
    let mut v = Vec::with_capacity(len);
    dt.pack(buf, count, &mut v);
    Ok(Cow::Owned(v))
}

/// The span of `count` elements at `buf` (see `Dtype::span`).
pub(crate) fn span<'a>(buf: usize, count: usize, dt: &Dtype) -> &'a [u8] {
    let (off, len) = dt.span(count);
    user_bytes((buf as isize + off) as usize, len)
}

fn root_of(c: &CommObj, root: c_int) -> Res<u32> {
    if root < 0 || root as u32 >= c.comm.size() {
        bail!(
            err::ROOT,
            "invalid root {root} (communicator of {} ranks)",
            c.comm.size()
        );
    }
    Ok(root as u32)
}

pub(crate) fn barrier(comm: c_int) -> Res {
    let c = state::comm(comm)?;
    with_engine(|e| coll::barrier(e, &c.comm))??;
    Ok(())
}

pub(crate) fn bcast(buf: usize, count: c_int, dt: c_int, root: c_int, comm: c_int) -> Res {
    let c = state::comm(comm)?;
    let (t, count) = check_buffer(buf, count, dt)?;
    let root = root_of(&c, root)?;
    let len = t.packed_len(count)?;
    if t.contiguous {
        let b = user_bytes_mut(buf, len);
        with_engine(|e| coll::bcast(e, &c.comm, b, root))??;
        return Ok(());
    }
    let mut v = if c.comm.rank() == root {
        packed(buf, count, &t)?.into_owned()
    } else {
        vec![0; len]
    };
    with_engine(|e| coll::bcast(e, &c.comm, &mut v, root))??;
    if c.comm.rank() != root {
        t.unpack(&v, buf, count);
    }
    Ok(())
}

pub(crate) struct Reduction {
    pub c: Rc<CommObj>,
    pub t: Rc<Dtype>,
    pub dt: c_int,
    pub op: OpObj,
    pub count: usize,
}

pub(crate) fn reduction(
    count: c_int,
    dt: c_int,
    op: c_int,
    comm: c_int,
    recvbuf: usize,
) -> Res<Reduction> {
    let c = state::comm(comm)?;
    let (t, count) = check_buffer(recvbuf.max(1), count, dt)?;
    let op = state::op(op)?;
    op.check(&t)?;
    Ok(Reduction {
        c,
        t,
        dt,
        op,
        count,
    })
}

impl Reduction {
    /// A null send buffer with data to send is MPI_ERR_BUFFER (MPI_IN_PLACE is not null).
    pub(crate) fn check_send(&self, sendbuf: usize) -> Res {
        if sendbuf == 0 && self.count > 0 && self.t.predefined && self.t.size > 0 {
            bail!(
                err::BUFFER,
                "null send buffer with a count of {}",
                self.count
            );
        }
        Ok(())
    }

    pub(crate) fn apply(&self, input: &[u8], inout: &mut [u8]) {
        self.op.apply(&self.t, self.dt, self.count, input, inout);
    }
}

pub(crate) fn reduce(
    sendbuf: usize,
    recvbuf: usize,
    count: c_int,
    dt: c_int,
    op: c_int,
    root: c_int,
    comm: c_int,
) -> Res {
    let r = reduction(count, dt, op, comm, recvbuf)?;
    r.check_send(sendbuf)?;
    let root = root_of(&r.c, root)?;
    let at_root = r.c.comm.rank() == root;
    let data: Cow<'_, [u8]> = if in_place(sendbuf) && at_root {
        Cow::Owned(span(recvbuf, r.count, &r.t).to_vec())
    } else {
        Cow::Borrowed(span(sendbuf, r.count, &r.t))
    };
    let mut out = vec![0u8; if at_root { data.len() } else { 0 }];
    let f = |a: &[u8], b: &mut [u8]| r.apply(a, b);
    let commute = r.op.commutative();
    with_engine(|e| {
        coll::reduce(
            e,
            &r.c.comm,
            &data,
            at_root.then_some(&mut out[..]),
            &f,
            commute,
            root,
        )
    })??;
    if at_root {
        r.t.span_to_user(&out, recvbuf, r.count);
    }
    Ok(())
}

pub(crate) fn allreduce(
    sendbuf: usize,
    recvbuf: usize,
    count: c_int,
    dt: c_int,
    op: c_int,
    comm: c_int,
) -> Res {
    let r = reduction(count, dt, op, comm, recvbuf)?;
    r.check_send(sendbuf)?;
    let f = |a: &[u8], b: &mut [u8]| r.apply(a, b);
    let commute = r.op.commutative();
    if in_place(sendbuf) {
        let data = span(recvbuf, r.count, &r.t).to_vec();
        let mut out = vec![0u8; data.len()];
        with_engine(|e| coll::allreduce(e, &r.c.comm, &data, &mut out, &f, commute))??;
        r.t.span_to_user(&out, recvbuf, r.count);
        return Ok(());
    }
    let data = span(sendbuf, r.count, &r.t);
    if r.t.contiguous {
        let (off, len) = r.t.span(r.count);
        let out = user_bytes_mut((recvbuf as isize + off) as usize, len);
        with_engine(|e| coll::allreduce(e, &r.c.comm, data, out, &f, commute))??;
        return Ok(());
    }
    let mut out = vec![0u8; data.len()];
    with_engine(|e| coll::allreduce(e, &r.c.comm, data, &mut out, &f, commute))??;
    r.t.span_to_user(&out, recvbuf, r.count);
    Ok(())
}

pub(crate) fn scan(
    sendbuf: usize,
    recvbuf: usize,
    count: c_int,
    dt: c_int,
    op: c_int,
    comm: c_int,
    exclusive: bool,
) -> Res {
    let r = reduction(count, dt, op, comm, recvbuf)?;
    r.check_send(sendbuf)?;
    let f = |a: &[u8], b: &mut [u8]| r.apply(a, b);
    let data: Cow<'_, [u8]> = if in_place(sendbuf) {
        Cow::Owned(span(recvbuf, r.count, &r.t).to_vec())
    } else {
        Cow::Borrowed(span(sendbuf, r.count, &r.t))
    };
    let mut out = span(recvbuf, r.count, &r.t).to_vec();
    with_engine(|e| coll::scan(e, &r.c.comm, &data, &mut out, &f, exclusive))??;
    if !(exclusive && r.c.comm.rank() == 0) {
        r.t.span_to_user(&out, recvbuf, r.count);
    }
    Ok(())
}

/// Reduce_scatter / Reduce_scatter_block: one reduction per block, to the rank that keeps it,
/// so that no rank holds more than one block's result and a contiguous type's result lands in
/// the user's buffer. With MPI_IN_PLACE the result overwrites the input, so all blocks are
/// reduced at once into a temporary (an allreduce) and each rank keeps its own.
pub(crate) fn reduce_scatter(
    sendbuf: usize,
    recvbuf: usize,
    counts: &[c_int],
    dt: c_int,
    op: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    if counts.len() != c.comm.size() as usize {
        bail!(err::COUNT, "one count per rank is needed");
    }
    if let Some(&bad) = counts.iter().find(|&&x| x < 0) {
        bail!(err::COUNT, "count {bad} is negative");
    }
    let counts: Vec<usize> = counts.iter().map(|&k| k as usize).collect();
    let total = c_int::try_from(counts.iter().sum::<usize>())
        .map_err(|_| crate::ffi::error(err::COUNT, "the counts add up to too many elements"))?;
    let r = reduction(total, dt, op, comm, recvbuf)?;
    r.check_send(sendbuf)?;
    let me = c.comm.rank() as usize;
    let commute = r.op.commutative();
    if in_place(sendbuf) {
        return reduce_scatter_in_place(&r, recvbuf, &counts);
    }
    let mut before = 0;
    for (i, &k) in counts.iter().enumerate() {
        let data = span(
            (sendbuf as isize + before as isize * r.t.extent) as usize,
            k,
            &r.t,
        );
        before += k;
        if k == 0 {
            continue;
        }
        let f = |a: &[u8], b: &mut [u8]| r.op.apply(&r.t, r.dt, k, a, b);
        let root = i as u32;
        if i != me {
            with_engine(|e| coll::reduce(e, &c.comm, data, None, &f, commute, root))??;
        } else if r.t.contiguous {
            let (off, len) = r.t.span(k);
            let out = user_bytes_mut((recvbuf as isize + off) as usize, len);
            with_engine(|e| coll::reduce(e, &c.comm, data, Some(out), &f, commute, root))??;
        } else {
            let mut out = vec![0u8; data.len()];
            let o = Some(&mut out[..]);
            with_engine(|e| coll::reduce(e, &c.comm, data, o, &f, commute, root))??;
            r.t.span_to_user(&out, recvbuf, k);
        }
    }
    Ok(())
}

/// Reduce_scatter with MPI_IN_PLACE: the input, all blocks at `recvbuf`, is read in place; the
/// result goes to a temporary and reaches the user's buffer after the engine is done with it.
fn reduce_scatter_in_place(r: &Reduction, recvbuf: usize, counts: &[usize]) -> Res {
    let me = r.c.comm.rank() as usize;
    let data = span(recvbuf, r.count, &r.t);
    let mut out = vec![0u8; data.len()];
    let f = |a: &[u8], b: &mut [u8]| r.apply(a, b);
    let commute = r.op.commutative();
    with_engine(|e| coll::allreduce(e, &r.c.comm, data, &mut out, &f, commute))??;
    // My block starts `before` elements in; elements are `extent` apart in the span.
    let mine = counts[me];
    if mine > 0 {
        let before: usize = counts[..me].iter().sum();
        let (_, len) = r.t.span(mine);
        let start = before * r.t.extent as usize;
        r.t.span_to_user(&out[start..start + len], recvbuf, mine);
    }
    Ok(())
}

/// Packed per-rank blocks: (counts, displacements) in bytes of a packed buffer.
fn packed_layout(counts: &[usize], size: usize) -> (Vec<usize>, Vec<usize>) {
    let bytes: Vec<usize> = counts.iter().map(|&c| c * size).collect();
    let mut at = 0;
    let displs = bytes
        .iter()
        .map(|&b| {
            let d = at;
            at += b;
            d
        })
        .collect();
    (bytes, displs)
}

/// The blocks of a contiguous type's `counts` elements at `displs` (in elements, possibly
/// negative, in any order, with gaps) as one span of the user's buffer, in bytes, which the
/// engine's collectives read or write directly. Packing instead would hold a copy of the data
/// for the whole call, which is also in any process image taken during it.
struct UserBlocks {
    /// The span's first byte.
    addr: usize,
    len: usize,
    counts: Vec<usize>,
    /// From the span's start; an empty block is put at the span's end, where it overlaps no
    /// other.
    displs: Vec<usize>,
}

impl UserBlocks {
    fn new(base: usize, counts: &[usize], displs: &[isize], t: &Dtype) -> Self {
        let size = t.size;
        let counts: Vec<usize> = counts.iter().map(|&c| c * size).collect();
        let at = |i: usize| displs[i] * size as isize;
        let full = || (0..counts.len()).filter(|&i| counts[i] > 0);
        let lo = full().map(at).min().unwrap_or(0);
        let hi = full()
            .map(|i| at(i) + counts[i] as isize)
            .max()
            .unwrap_or(0);
        let displs = (0..counts.len())
            .map(|i| if counts[i] > 0 { at(i) - lo } else { hi - lo } as usize)
            .collect();
        Self {
            addr: (base as isize + lo) as usize,
            len: (hi - lo) as usize,
            counts,
            displs,
        }
    }

    fn bytes(&self) -> &[u8] {
        user_bytes(self.addr, self.len)
    }

    /// The span to write, with the blocks' byte counts and displacements.
    fn parts(&mut self) -> (&mut [u8], &[usize], &[usize]) {
        (
            user_bytes_mut(self.addr, self.len),
            &self.counts,
            &self.displs,
        )
    }
}

/// A null buffer with blocks of data is MPI_ERR_BUFFER (as `check_buffer` for one count).
pub(crate) fn check_blocks(buf: usize, counts: &[usize], t: &Dtype) -> Res {
    if buf == 0 && t.predefined && t.size > 0 && counts.iter().any(|&c| c > 0) {
        bail!(err::BUFFER, "null buffer with blocks of data");
    }
    Ok(())
}

fn counts_of(p: *const c_int, n: usize, what: &str) -> Res<Vec<usize>> {
    slice(p, n, what)?
        .iter()
        .map(|&c| {
            usize::try_from(c).map_err(|_| {
                crate::ffi::error(err::COUNT, format!("{what} holds a negative count {c}"))
            })
        })
        .collect()
}

fn displs_of(p: *const c_int, n: usize, what: &str) -> Res<Vec<isize>> {
    Ok(slice(p, n, what)?.iter().map(|&d| d as isize).collect())
}

/// Packs the blocks of `counts[i]` elements at `base + displs[i] * extent`, in rank order.
fn pack_blocks(t: &Dtype, base: usize, counts: &[usize], displs: &[isize]) -> Vec<u8> {
    let mut data = Vec::new();
    for (&k, &d) in counts.iter().zip(displs) {
        t.pack((base as isize + d * t.extent) as usize, k, &mut data);
    }
    data
}

/// Unpacks block i of a packed buffer to `base + displs[i] * extent`.
fn unpack_blocks(
    t: &Dtype,
    data: &[u8],
    base: usize,
    counts: &[usize],
    displs: &[isize],
    skip: Option<usize>,
) {
    let (bytes, pd) = packed_layout(counts, t.size);
    for i in 0..counts.len() {
        if Some(i) == skip {
            continue;
        }
        let addr = (base as isize + displs[i] * t.extent) as usize;
        t.unpack(&data[pd[i]..pd[i] + bytes[i]], addr, counts[i]);
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn gatherv(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    rcounts: Option<&[usize]>,
    displs: Option<&[isize]>,
    rtype: c_int,
    root: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let root = root_of(&c, root)?;
    let me = c.comm.rank();
    let n = c.comm.size() as usize;
    if me != root {
        let (st, sc) = check_buffer(sendbuf, scount, stype)?;
        let data = packed(sendbuf, sc, &st)?;
        with_engine(|e| coll::gatherv(e, &c.comm, &data, None, root))??;
        return Ok(());
    }
    let (rt, _) = check_buffer(recvbuf, 0, rtype)?;
    let (Some(rc), Some(rd)) = (rcounts, displs) else {
        bail!(err::ARG, "the root needs receive counts and displacements");
    };
    if rc.len() != n || rd.len() != n {
        bail!(err::COUNT, "one count and displacement per rank is needed");
    }
    check_blocks(recvbuf, rc, &rt)?;
    let inplace = in_place(sendbuf);
    let data = if inplace {
        Cow::Borrowed(&[][..])
    } else {
        let (st, sc) = check_buffer(sendbuf, scount, stype)?;
        packed(sendbuf, sc, &st)?
    };
    // In place, the root's own block is already where it belongs: it receives nothing.
    let mut rc = Cow::Borrowed(rc);
    if inplace {
        rc.to_mut()[me as usize] = 0;
    }
    if rt.contiguous {
        // Straight into the user's buffer (see `UserBlocks`).
        let mut u = UserBlocks::new(recvbuf, &rc, rd, &rt);
        let (out, bytes, pd) = u.parts();
        with_engine(|e| coll::gatherv(e, &c.comm, &data, Some((out, bytes, pd)), root))??;
        return Ok(());
    }
    let (bytes, pd) = packed_layout(&rc, rt.size);
    let mut tmp = vec![0u8; bytes.iter().sum()];
    with_engine(|e| coll::gatherv(e, &c.comm, &data, Some((&mut tmp, &bytes, &pd)), root))??;
    let skip = inplace.then_some(me as usize);
    unpack_blocks(&rt, &tmp, recvbuf, &rc, rd, skip);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn gather(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    rcount: c_int,
    rtype: c_int,
    root: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let rc = usize::try_from(rcount).unwrap_or(0);
    let counts = vec![rc; n];
    let displs: Vec<isize> = (0..n).map(|i| (i * rc) as isize).collect();
    if c.comm.rank() == root as u32 && rcount < 0 {
        bail!(err::COUNT, "count {rcount} is negative");
    }
    gatherv(
        sendbuf,
        scount,
        stype,
        recvbuf,
        Some(&counts),
        Some(&displs),
        rtype,
        root,
        comm,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn scatterv(
    sendbuf: usize,
    scounts: Option<&[usize]>,
    displs: Option<&[isize]>,
    stype: c_int,
    recvbuf: usize,
    rcount: c_int,
    rtype: c_int,
    root: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let root = root_of(&c, root)?;
    let me = c.comm.rank();
    let n = c.comm.size() as usize;
    let inplace = me == root && in_place(recvbuf);
    let recv = if inplace {
        None
    } else {
        Some(check_buffer(recvbuf, rcount, rtype)?)
    };
    if me != root {
        let (rt, rc) = recv.ok_or_else(|| crate::ffi::error(err::INTERN, "no receive type"))?;
        let len = rt.packed_len(rc)?;
        if rt.contiguous {
            let out = user_bytes_mut(recvbuf, len);
            with_engine(|e| coll::scatterv(e, &c.comm, None, out, root))??;
            return Ok(());
        }
        let mut out = vec![0u8; len];
        with_engine(|e| coll::scatterv(e, &c.comm, None, &mut out, root))??;
        rt.unpack(&out, recvbuf, rc);
        return Ok(());
    }
    let (st, _) = check_buffer(sendbuf, 0, stype)?;
    let (Some(sc), Some(sd)) = (scounts, displs) else {
        bail!(err::ARG, "the root needs send counts and displacements");
    };
    if sc.len() != n || sd.len() != n {
        bail!(err::COUNT, "one count and displacement per rank is needed");
    }
    check_blocks(sendbuf, sc, &st)?;
    // In place, the root's own block stays where it is: it sends itself nothing.
    let mut sc = Cow::Borrowed(sc);
    if inplace {
        sc.to_mut()[me as usize] = 0;
    }
    let mut tmp = Vec::new();
    let out: &mut [u8] = match &recv {
        Some((rt, rc)) if rt.contiguous => user_bytes_mut(recvbuf, rt.packed_len(*rc)?),
        Some((rt, rc)) => {
            tmp = vec![0u8; rt.packed_len(*rc)?];
            &mut tmp
        }
        None => &mut [],
    };
    if st.contiguous {
        // Straight from the user's buffer (see `UserBlocks`).
        let u = UserBlocks::new(sendbuf, &sc, sd, &st);
        let send = (u.bytes(), &u.counts[..], &u.displs[..]);
        with_engine(|e| coll::scatterv(e, &c.comm, Some(send), out, root))??;
    } else {
        let data = pack_blocks(&st, sendbuf, &sc, sd);
        let (bytes, pd) = packed_layout(&sc, st.size);
        with_engine(|e| coll::scatterv(e, &c.comm, Some((&data, &bytes, &pd)), out, root))??;
    }
    if let Some((rt, rc)) = recv.filter(|(rt, _)| !rt.contiguous) {
        rt.unpack(&tmp, recvbuf, rc);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn scatter(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    rcount: c_int,
    rtype: c_int,
    root: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let sc = usize::try_from(scount).unwrap_or(0);
    let counts = vec![sc; n];
    let displs: Vec<isize> = (0..n).map(|i| (i * sc) as isize).collect();
    scatterv(
        sendbuf,
        Some(&counts),
        Some(&displs),
        stype,
        recvbuf,
        rcount,
        rtype,
        root,
        comm,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn allgatherv(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    rcounts: &[usize],
    displs: &[isize],
    rtype: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let me = c.comm.rank() as usize;
    let (rt, _) = check_buffer(recvbuf, 0, rtype)?;
    if rcounts.len() != n || displs.len() != n {
        bail!(err::COUNT, "one count and displacement per rank is needed");
    }
    check_blocks(recvbuf, rcounts, &rt)?;
    let inplace = in_place(sendbuf);
    if rt.contiguous {
        // Straight into the user's buffer (see `UserBlocks`); in place, this rank's block is
        // already there and the ring sends it from there.
        let mut u = UserBlocks::new(recvbuf, rcounts, displs, &rt);
        let (out, bytes, pd) = u.parts();
        if inplace {
            with_engine(|e| coll::allgatherv_in_place(e, &c.comm, out, bytes, pd))??;
        } else {
            let (st, sc) = check_buffer(sendbuf, scount, stype)?;
            let data = packed(sendbuf, sc, &st)?;
            with_engine(|e| coll::allgatherv(e, &c.comm, &data, out, bytes, pd))??;
        }
        return Ok(());
    }
    let data = if inplace {
        let addr = (recvbuf as isize + displs[me] * rt.extent) as usize;
        packed(addr, rcounts[me], &rt)?
    } else {
        let (st, sc) = check_buffer(sendbuf, scount, stype)?;
        packed(sendbuf, sc, &st)?
    };
    let (bytes, pd) = packed_layout(rcounts, rt.size);
    let mut tmp = vec![0u8; bytes.iter().sum()];
    with_engine(|e| coll::allgatherv(e, &c.comm, &data, &mut tmp, &bytes, &pd))??;
    unpack_blocks(&rt, &tmp, recvbuf, rcounts, displs, None);
    Ok(())
}

pub(crate) fn allgather(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    rcount: c_int,
    rtype: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    if rcount < 0 {
        bail!(err::COUNT, "count {rcount} is negative");
    }
    let rc = rcount as usize;
    let counts = vec![rc; n];
    let displs: Vec<isize> = (0..n).map(|i| (i * rc) as isize).collect();
    allgatherv(
        sendbuf, scount, stype, recvbuf, &counts, &displs, rtype, comm,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn alltoallv(
    sendbuf: usize,
    scounts: &[usize],
    sdispls: &[isize],
    stype: c_int,
    recvbuf: usize,
    rcounts: &[usize],
    rdispls: &[isize],
    rtype: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let (rt, _) = check_buffer(recvbuf, 0, rtype)?;
    let inplace = in_place(sendbuf);
    let (st, sbase, scounts, sdispls) = if inplace {
        (rt.clone(), recvbuf, rcounts, rdispls)
    } else {
        (
            check_buffer(sendbuf, 0, stype)?.0,
            sendbuf,
            scounts,
            sdispls,
        )
    };
    if scounts.len() != n || sdispls.len() != n || rcounts.len() != n || rdispls.len() != n {
        bail!(err::COUNT, "one count and displacement per rank is needed");
    }
    if !inplace && st.contiguous && rt.contiguous {
        // Straight from and into the user's buffers: packing would hold a copy of both
        // (twice the data, for the whole call, in which a checkpoint may capture it).
        let s = UserBlocks::new(sbase, scounts, sdispls, &st);
        let mut r = UserBlocks::new(recvbuf, rcounts, rdispls, &rt);
        let (out, rbytes, rdisp) = r.parts();
        return exchange_blocks(&c, s.bytes(), (&s.counts, &s.displs), out, (rbytes, rdisp));
    }
    let data = pack_blocks(&st, sbase, scounts, sdispls);
    let (sb, spd) = packed_layout(scounts, st.size);
    let (rb, rpd) = packed_layout(rcounts, rt.size);
    let mut tmp = vec![0u8; rb.iter().sum()];
    exchange_blocks(&c, &data, (&sb, &spd), &mut tmp, (&rb, &rpd))?;
    unpack_blocks(&rt, &tmp, recvbuf, rcounts, rdispls, None);
    Ok(())
}

/// The engine's alltoallv of byte blocks, each side given as (counts, displacements).
fn exchange_blocks(
    c: &CommObj,
    data: &[u8],
    send: (&[usize], &[usize]),
    out: &mut [u8],
    recv: (&[usize], &[usize]),
) -> Res {
    let send = coll::Layout {
        counts: send.0,
        displs: send.1,
    };
    let recv = coll::Layout {
        counts: recv.0,
        displs: recv.1,
    };
    with_engine(|e| coll::alltoallv(e, &c.comm, data, send, out, recv))??;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn alltoall(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    rcount: c_int,
    rtype: c_int,
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let (rt, rc) = check_buffer(recvbuf, rcount, rtype)?;
    if !in_place(sendbuf) {
        let (st, sc) = check_buffer(sendbuf, scount, stype)?;
        if st.contiguous && rt.contiguous {
            let data = user_bytes(sendbuf, st.packed_len(sc)? * n);
            let out = user_bytes_mut(recvbuf, rt.packed_len(rc)? * n);
            with_engine(|e| coll::alltoall(e, &c.comm, data, out))??;
            return Ok(());
        }
    }
    let sc = usize::try_from(scount).unwrap_or(0);
    let scounts = vec![sc; n];
    let sd: Vec<isize> = (0..n).map(|i| (i * sc) as isize).collect();
    let rcounts = vec![rc; n];
    let rd: Vec<isize> = (0..n).map(|i| (i * rc) as isize).collect();
    alltoallv(
        sendbuf, &scounts, &sd, stype, recvbuf, &rcounts, &rd, rtype, comm,
    )
}

/// Alltoallw: per-peer types, byte displacements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn alltoallw(
    sendbuf: usize,
    scounts: &[usize],
    sdispls: &[isize],
    stypes: &[c_int],
    recvbuf: usize,
    rcounts: &[usize],
    rdispls: &[isize],
    rtypes: &[c_int],
    comm: c_int,
) -> Res {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let me = c.comm.rank() as usize;
    let inplace = in_place(sendbuf);
    let (sbase, scounts, sdispls, stypes) = if inplace {
        (recvbuf, rcounts, rdispls, rtypes)
    } else {
        (sendbuf, scounts, sdispls, stypes)
    };
    for v in [
        scounts.len(),
        sdispls.len(),
        stypes.len(),
        rcounts.len(),
        rdispls.len(),
        rtypes.len(),
    ] {
        if v != n {
            bail!(
                err::COUNT,
                "one count, displacement and type per rank is needed"
            );
        }
    }
    let mut outs_data = Vec::with_capacity(n);
    for i in 0..n {
        let (t, k) = check_buffer(sbase, scounts[i] as c_int, stypes[i])?;
        let mut v = Vec::new();
        t.pack((sbase as isize + sdispls[i]) as usize, k, &mut v);
        outs_data.push(v);
    }
    let mut rts = Vec::with_capacity(n);
    let mut bufs = Vec::with_capacity(n);
    for i in 0..n {
        let (t, k) = check_buffer(recvbuf, rcounts[i] as c_int, rtypes[i])?;
        bufs.push(vec![0u8; t.packed_len(k)?]);
        rts.push((t, k));
    }
    let own = std::mem::take(&mut outs_data[me]);
    let mut outs = Vec::new();
    for (i, d) in outs_data.iter().enumerate() {
        if i != me {
            outs.push(Out {
                dest: c.comm.world_rank(i as i64)?,
                tag: TAG_ALLTOALLW,
                data: d,
            });
        }
    }
    let mut ins = Vec::new();
    for (i, b) in bufs.iter_mut().enumerate() {
        if i == me {
            let n = own.len().min(b.len());
            b[..n].copy_from_slice(&own[..n]);
        } else {
            ins.push(In {
                source: c.comm.world_rank(i as i64)?,
                tag: TAG_ALLTOALLW,
                buf: b,
            });
        }
    }
    let ctx = c.comm.coll_ctx();
    with_engine(|e| exchange(e, ctx, &outs, &mut ins))??;
    for (i, (t, k)) in rts.iter().enumerate() {
        t.unpack(&bufs[i], (recvbuf as isize + rdispls[i]) as usize, *k);
    }
    Ok(())
}

pub(crate) fn counts_displs(
    counts: *const c_int,
    displs: *const c_int,
    n: usize,
) -> Res<(Vec<usize>, Vec<isize>)> {
    Ok((
        counts_of(counts, n, "the counts")?,
        displs_of(displs, n, "the displacements")?,
    ))
}
