//! Non-blocking collectives, each a single round of point-to-point messages in the
//! communicator's collective context under a tag of its own, plus a local step at completion.
//!
//! All messages of a round are posted when the operation starts, so the engine moves them
//! whenever it progresses, including while the caller is blocked in any other MPI call; only
//! the local step (unpacking, combining contributions in rank order) waits for MPI_Wait or
//! MPI_Test. The flat patterns cost O(n) messages per rank, fine for the 1–64 ranks of one
//! machine; the blocking collectives keep the logarithmic algorithms.

use std::ffi::c_int;
use std::rc::Rc;

use engine::buffer::{RecvBuf, SendBuf};

use crate::coll::{Reduction, in_place, packed, reduction, span};
use crate::dtype::Dtype;
use crate::ffi::{Error, Res, bail};
use crate::handles::err;
use crate::request::check_buffer;
use crate::state::{self, CommObj, with_engine};

type Finish = Box<dyn FnOnce(&[Box<[u8]>]) -> Res>;

pub(crate) struct Nbc {
    ids: Vec<u64>,
    /// Send data the engine reads until the operation completes.
    _sends: Vec<Box<[u8]>>,
    /// One buffer per receive, in the order they were given.
    recvs: Vec<Box<[u8]>>,
    finish: Option<Finish>,
}

impl std::fmt::Debug for Nbc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nbc").field("ids", &self.ids).finish()
    }
}

const TAG_BASE: i32 = 1 << 20;

impl Nbc {
    /// Posts every receive, then every send, of one round on `c`: sends are (comm rank, data),
    /// receives (comm rank, bytes).
    fn start(
        c: &CommObj,
        sends: Vec<(u32, Vec<u8>)>,
        recvs: Vec<(u32, usize)>,
        finish: Finish,
    ) -> Res<Self> {
        let seq = c.nbc_seq.get();
        c.nbc_seq.set(seq.wrapping_add(1));
        let tag = TAG_BASE + (seq % (1 << 30)) as i32;
        let ctx = c.comm.coll_ctx();
        let mut me = Self {
            ids: Vec::new(),
            _sends: Vec::new(),
            recvs: Vec::new(),
            finish: Some(finish),
        };
        let mut recv_from = Vec::new();
        for (rank, len) in recvs {
            recv_from.push(c.comm.world_rank(i64::from(rank))?);
            me.recvs.push(vec![0u8; len].into_boxed_slice());
        }
        let mut targets = Vec::new();
        for (rank, data) in sends {
            targets.push(c.comm.world_rank(i64::from(rank))?);
            me._sends.push(data.into_boxed_slice());
        }
        let result = with_engine(|e| -> Res {
            for (i, b) in me.recvs.iter_mut().enumerate() {
                // SAFETY: the box lives in this Nbc, which the request keeps until every id
                // has completed (or abandons the ids first); its memory never moves.
                let rb = unsafe { RecvBuf::from_raw(b.as_mut_ptr(), b.len()) };
                me.ids
                    .push(e.irecv(ctx, Some(recv_from[i]), Some(tag), rb)?);
            }
            for (i, b) in me._sends.iter().enumerate() {
                // SAFETY: as for the receive buffers; nothing writes the box.
                let sb = unsafe { SendBuf::from_raw(b.as_ptr(), b.len()) };
                me.ids.push(e.isend(ctx, targets[i], tag, sb)?);
            }
            Ok(())
        })?;
        if let Err(e) = result {
            me.abandon();
            return Err(e);
        }
        Ok(me)
    }

    fn abandon(&mut self) {
        let ids = std::mem::take(&mut self.ids);
        let _ = with_engine(|e| {
            for id in ids {
                e.abandon(id);
            }
        });
    }

    pub(crate) fn ready(&self) -> Res<bool> {
        with_engine(|e| -> Res<bool> {
            for &id in &self.ids {
                if !e.test(id)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })?
    }

    pub(crate) fn finish(mut self) -> Res {
        let ids = std::mem::take(&mut self.ids);
        let mut first: Option<Error> = None;
        with_engine(|e| {
            for id in ids {
                if let Err(err) = e.take(id) {
                    first.get_or_insert(err.into());
                }
            }
        })?;
        if let Some(e) = first {
            return Err(e);
        }
        match self.finish.take() {
            Some(f) => f(&self.recvs),
            None => Ok(()),
        }
    }
}

impl Drop for Nbc {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.abandon();
        }
    }
}

fn others(c: &CommObj) -> impl Iterator<Item = u32> + use<> {
    let me = c.comm.rank();
    (0..c.comm.size()).filter(move |&r| r != me)
}

pub(crate) fn ibarrier(comm: c_int) -> Res<Nbc> {
    let c = state::comm(comm)?;
    let sends = others(&c).map(|r| (r, Vec::new())).collect();
    let recvs = others(&c).map(|r| (r, 0)).collect();
    Nbc::start(&c, sends, recvs, Box::new(|_| Ok(())))
}

pub(crate) fn ibcast(buf: usize, count: c_int, dt: c_int, root: c_int, comm: c_int) -> Res<Nbc> {
    let c = state::comm(comm)?;
    let (t, count) = check_buffer(buf, count, dt)?;
    let root = check_root(&c, root)?;
    if c.comm.rank() == root {
        let data = packed(buf, count, &t)?.into_owned();
        let sends = others(&c).map(|r| (r, data.clone())).collect();
        return Nbc::start(&c, sends, Vec::new(), Box::new(|_| Ok(())));
    }
    let len = t.packed_len(count)?;
    Nbc::start(
        &c,
        Vec::new(),
        vec![(root, len)],
        Box::new(move |r| {
            t.unpack(&r[0], buf, count);
            Ok(())
        }),
    )
}

fn check_root(c: &CommObj, root: c_int) -> Res<u32> {
    if root < 0 || root as u32 >= c.comm.size() {
        bail!(
            err::ROOT,
            "invalid root {root} (communicator of {} ranks)",
            c.comm.size()
        );
    }
    Ok(root as u32)
}

/// 16-byte aligned scratch copies of spans for user reduction functions.
fn aligned(bytes: &[u8]) -> Vec<u128> {
    let mut v = vec![0u128; bytes.len().div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
    v
}

/// d0 ∘ d1 ∘ … ∘ d(n-1), where `own` is this rank's contribution and `recvd` the others' in
/// rank order.
fn combine(r: &Reduction, me: usize, own: &[u8], recvd: &[Box<[u8]>]) -> Vec<u8> {
    let n = recvd.len() + 1;
    let part = |i: usize| -> &[u8] {
        match i.cmp(&me) {
            std::cmp::Ordering::Equal => own,
            std::cmp::Ordering::Less => &recvd[i],
            std::cmp::Ordering::Greater => &recvd[i - 1],
        }
    };
    let len = own.len();
    let mut acc = aligned(part(n - 1));
    for i in (0..n - 1).rev() {
        let input = aligned(part(i));
        let a = &bytemuck::cast_slice::<u128, u8>(&input)[..len];
        let b = &mut bytemuck::cast_slice_mut::<u128, u8>(&mut acc)[..len];
        r.apply(a, b);
    }
    bytemuck::cast_slice::<u128, u8>(&acc)[..len].to_vec()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn ireduce(
    sendbuf: usize,
    recvbuf: usize,
    count: c_int,
    dt: c_int,
    op: c_int,
    root: Option<c_int>,
    comm: c_int,
) -> Res<Nbc> {
    let r = reduction(count, dt, op, comm, recvbuf)?;
    let c = r.c.clone();
    let me = c.comm.rank();
    let src = if in_place(sendbuf) { recvbuf } else { sendbuf };
    let own = span(src, r.count, &r.t).to_vec();
    let len = own.len();
    let (targets, at_root): (Vec<u32>, bool) = match root {
        Some(root) => {
            let root = check_root(&c, root)?;
            if me == root {
                (Vec::new(), true)
            } else {
                (vec![root], false)
            }
        }
        None => (others(&c).collect(), true),
    };
    let sends = targets.into_iter().map(|t| (t, own.clone())).collect();
    let recvs = if at_root {
        others(&c).map(|o| (o, len)).collect()
    } else {
        Vec::new()
    };
    let finish: Finish = if at_root {
        Box::new(move |recvd| {
            let out = combine(&r, me as usize, &own, recvd);
            r.t.span_to_user(&out, recvbuf, r.count);
            Ok(())
        })
    } else {
        Box::new(|_| Ok(()))
    };
    Nbc::start(&c, sends, recvs, finish)
}

/// Every rank sends `blocks[i]` to rank i and receives `lens[i]` bytes from it; `finish` gets
/// all n blocks in rank order (its own block included).
fn exchange_all(
    c: &Rc<CommObj>,
    mut blocks: Vec<Option<Vec<u8>>>,
    lens: Vec<Option<usize>>,
    finish: impl FnOnce(Vec<Vec<u8>>) -> Res + 'static,
) -> Res<Nbc> {
    let me = c.comm.rank() as usize;
    let own = blocks[me].take().unwrap_or_default();
    let sends = blocks
        .into_iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|b| (i as u32, b)))
        .filter(|(i, _)| *i as usize != me)
        .collect();
    let from: Vec<usize> = (0..lens.len())
        .filter(|&i| i != me && lens[i].is_some())
        .collect();
    let recvs = from
        .iter()
        .map(|&i| (i as u32, lens[i].unwrap_or(0)))
        .collect();
    let n = lens.len();
    let want_own = lens[me].is_some();
    Nbc::start(
        c,
        sends,
        recvs,
        Box::new(move |recvd| {
            let mut all = vec![Vec::new(); n];
            for (k, &i) in from.iter().enumerate() {
                all[i] = recvd[k].to_vec();
            }
            if want_own {
                all[me] = own;
            }
            finish(all)
        }),
    )
}

fn unpack_into(t: &Dtype, blocks: &[Vec<u8>], base: usize, counts: &[usize], displs: &[isize]) {
    for (i, b) in blocks.iter().enumerate() {
        let addr = (base as isize + displs[i] * t.extent) as usize;
        t.unpack(b, addr, counts[i]);
    }
}

/// The general pattern behind the gathers, scatters and all-to-alls: (count, type, byte
/// address) of what this rank sends to each rank and receives from each rank; `None` where
/// nothing goes.
pub(crate) struct Pattern {
    pub sends: Vec<Option<(usize, Rc<Dtype>, usize)>>,
    pub recvs: Vec<Option<(usize, Rc<Dtype>, usize)>>,
}

pub(crate) fn run_pattern(comm: c_int, p: Pattern) -> Res<Nbc> {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    if p.sends.len() != n || p.recvs.len() != n {
        bail!(err::COUNT, "one block per rank is needed");
    }
    let mut blocks = Vec::with_capacity(n);
    for s in &p.sends {
        blocks.push(match s {
            Some((k, t, addr)) => Some(packed(*addr, *k, t)?.into_owned()),
            None => None,
        });
    }
    let mut lens = Vec::with_capacity(n);
    for r in &p.recvs {
        lens.push(match r {
            Some((k, t, _)) => Some(t.packed_len(*k)?),
            None => None,
        });
    }
    let recvs = p.recvs;
    exchange_all(&c, blocks, lens, move |all| {
        for (i, r) in recvs.iter().enumerate() {
            if let Some((k, t, addr)) = r {
                t.unpack(&all[i], *addr, *k);
            }
        }
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn iallgatherv(
    sendbuf: usize,
    scount: c_int,
    stype: c_int,
    recvbuf: usize,
    counts: Vec<usize>,
    displs: Vec<isize>,
    rtype: c_int,
    comm: c_int,
) -> Res<Nbc> {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let me = c.comm.rank() as usize;
    let (rt, _) = check_buffer(recvbuf, 0, rtype)?;
    if counts.len() != n || displs.len() != n {
        bail!(err::COUNT, "one count and displacement per rank is needed");
    }
    let own = if in_place(sendbuf) {
        let addr = (recvbuf as isize + displs[me] * rt.extent) as usize;
        packed(addr, counts[me], &rt)?.into_owned()
    } else {
        let (st, sc) = check_buffer(sendbuf, scount, stype)?;
        packed(sendbuf, sc, &st)?.into_owned()
    };
    let blocks = (0..n).map(|_| Some(own.clone())).collect();
    let mut lens = Vec::with_capacity(n);
    for &k in &counts {
        lens.push(Some(rt.packed_len(k)?));
    }
    exchange_all(&c, blocks, lens, move |all| {
        unpack_into(&rt, &all, recvbuf, &counts, &displs);
        Ok(())
    })
}
