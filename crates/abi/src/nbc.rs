//! Non-blocking collectives, each a single round of point-to-point messages in the
//! communicator's collective context under a tag of its own, plus a local step at completion.
//!
//! All messages of a round are posted when the operation starts, so the engine moves them
//! whenever it progresses, including while the caller is blocked in any other MPI call; only
//! the local step (unpacking, combining contributions in rank order) waits for MPI_Wait or
//! MPI_Test. The flat patterns cost O(n) messages per rank, fine for the 1–64 ranks of one
//! machine; the blocking collectives keep the logarithmic algorithms.
//!
//! A block of a contiguous type is sent from and received into the user's memory, which MPI
//! lends the request until it completes (as MPI_Isend and MPI_Irecv do); other types are
//! packed at the start and unpacked at completion.

use std::ffi::c_int;
use std::rc::Rc;

use engine::buffer::{RecvBuf, SendBuf};

use crate::coll::{Reduction, check_blocks, in_place, packed, reduction, span};
use crate::dtype::Dtype;
use crate::ffi::{Error, Res, bail};
use crate::handles::err;
use crate::request::check_buffer;
use crate::state::{self, CommObj, with_engine};

/// The local step at completion; it gets one buffer per receive, in the order they were given
/// (empty for a receive into the user's memory).
type Finish = Box<dyn FnOnce(&[Box<[u8]>]) -> Res>;

/// The bytes of one message of a round.
pub(crate) enum Block {
    /// Owned by the operation: packed send data, or a zeroed receive buffer.
    Owned(Vec<u8>),
    /// A contiguous block of the user's buffer.
    User { addr: usize, len: usize },
}

impl Block {
    fn zeroed(len: usize) -> Self {
        Self::Owned(vec![0; len])
    }
}

pub(crate) struct Nbc {
    ids: Vec<u64>,
    /// Owned send data the engine reads until the operation completes.
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
    /// receives (comm rank, buffer).
    fn start(
        c: &CommObj,
        sends: Vec<(u32, Block)>,
        recvs: Vec<(u32, Block)>,
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
        let mut posted_recvs = Vec::with_capacity(recvs.len());
        for (rank, b) in recvs {
            let from = c.comm.world_rank(i64::from(rank))?;
            let buf = match b {
                Block::Owned(v) => {
                    let mut v = v.into_boxed_slice();
                    // SAFETY: the box lives in this Nbc, which the request keeps until every
                    // id has completed (or abandons the ids first); its memory never moves.
                    let rb = unsafe { RecvBuf::from_raw(v.as_mut_ptr(), v.len()) };
                    me.recvs.push(v);
                    rb
                }
                Block::User { addr, len } => {
                    me.recvs.push(Box::default());
                    // SAFETY: MPI forbids the program to access a non-blocking collective's
                    // receive buffer until the request completes, and the caller derived
                    // `len` writable bytes at `addr` from its (buffer, count, datatype), a
                    // block no other message of the round reads or writes.
                    unsafe { RecvBuf::from_raw(addr as *mut u8, len) }
                }
            };
            posted_recvs.push((from, buf));
        }
        let mut posted_sends = Vec::with_capacity(sends.len());
        for (rank, b) in sends {
            let to = c.comm.world_rank(i64::from(rank))?;
            let buf = match b {
                Block::Owned(v) => {
                    let v = v.into_boxed_slice();
                    // SAFETY: as for owned receive buffers; nothing writes the box.
                    let sb = unsafe { SendBuf::from_raw(v.as_ptr(), v.len()) };
                    me._sends.push(v);
                    sb
                }
                // SAFETY: MPI forbids the program to modify a non-blocking collective's send
                // buffer until the request completes, and the caller derived `len` readable
                // bytes at `addr` from its (buffer, count, datatype).
                Block::User { addr, len } => unsafe { SendBuf::from_raw(addr as *const u8, len) },
            };
            posted_sends.push((to, buf));
        }
        let result = with_engine(|e| -> Res {
            for (from, rb) in posted_recvs {
                me.ids.push(e.irecv(ctx, Some(from), Some(tag), rb)?);
            }
            for (to, sb) in posted_sends {
                me.ids.push(e.isend(ctx, to, tag, sb)?);
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
    let sends = others(&c).map(|r| (r, Block::zeroed(0))).collect();
    let recvs = others(&c).map(|r| (r, Block::zeroed(0))).collect();
    Nbc::start(&c, sends, recvs, Box::new(|_| Ok(())))
}

pub(crate) fn ibcast(buf: usize, count: c_int, dt: c_int, root: c_int, comm: c_int) -> Res<Nbc> {
    let c = state::comm(comm)?;
    let (t, count) = check_buffer(buf, count, dt)?;
    let root = check_root(&c, root)?;
    let len = t.packed_len(count)?;
    if c.comm.rank() == root {
        let sends = if t.contiguous {
            others(&c)
                .map(|r| (r, Block::User { addr: buf, len }))
                .collect()
        } else {
            let data = packed(buf, count, &t)?.into_owned();
            others(&c)
                .map(|r| (r, Block::Owned(data.clone())))
                .collect()
        };
        return Nbc::start(&c, sends, Vec::new(), Box::new(|_| Ok(())));
    }
    if t.contiguous {
        let recv = vec![(root, Block::User { addr: buf, len })];
        return Nbc::start(&c, Vec::new(), recv, Box::new(|_| Ok(())));
    }
    Nbc::start(
        &c,
        Vec::new(),
        vec![(root, Block::zeroed(len))],
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
    let sends = targets
        .into_iter()
        .map(|t| (t, Block::Owned(own.clone())))
        .collect();
    let recvs = if at_root {
        others(&c).map(|o| (o, Block::zeroed(len))).collect()
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

/// One block of the general pattern: (count, type, byte address).
pub(crate) type Part = (usize, Rc<Dtype>, usize);

/// The general pattern behind the gathers, scatters and all-to-alls: what this rank sends to
/// each rank and receives from each rank; `None` where nothing goes.
pub(crate) struct Pattern {
    pub sends: Vec<Option<Part>>,
    pub recvs: Vec<Option<Part>>,
    /// The sends read memory the receives write (an all-to-all with MPI_IN_PLACE): every
    /// block is packed at the start and unpacked at completion.
    pub shared: bool,
}

pub(crate) fn run_pattern(comm: c_int, p: Pattern) -> Res<Nbc> {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    let me = c.comm.rank() as usize;
    if p.sends.len() != n || p.recvs.len() != n {
        bail!(err::COUNT, "one block per rank is needed");
    }
    let direct = |t: &Dtype| t.contiguous && !p.shared;
    // This rank's block to itself is copied now, or at completion when the memory is shared.
    let mut own = None;
    if let (Some((sk, st, sa)), Some(r)) = (&p.sends[me], &p.recvs[me]) {
        let data = packed(*sa, *sk, st)?;
        if p.shared {
            own = Some((data.into_owned(), r.clone()));
        } else {
            r.1.unpack(&data, r.2, r.0);
        }
    }
    let mut sends = Vec::new();
    for (i, s) in p.sends.iter().enumerate() {
        let Some((k, t, addr)) = s.as_ref().filter(|_| i != me) else {
            continue;
        };
        let b = if direct(t) {
            let len = t.packed_len(*k)?;
            Block::User { addr: *addr, len }
        } else {
            Block::Owned(packed(*addr, *k, t)?.into_owned())
        };
        sends.push((i as u32, b));
    }
    let mut recvs = Vec::new();
    let mut unpacks = Vec::new();
    for (i, r) in p.recvs.iter().enumerate() {
        let Some((k, t, addr)) = r.as_ref().filter(|_| i != me) else {
            continue;
        };
        let len = t.packed_len(*k)?;
        if direct(t) {
            recvs.push((i as u32, Block::User { addr: *addr, len }));
        } else {
            unpacks.push((recvs.len(), (*k, t.clone(), *addr)));
            recvs.push((i as u32, Block::zeroed(len)));
        }
    }
    let finish = move |recvd: &[Box<[u8]>]| {
        for (j, (k, t, addr)) in unpacks {
            t.unpack(&recvd[j], addr, k);
        }
        if let Some((data, (k, t, addr))) = own {
            t.unpack(&data, addr, k);
        }
        Ok(())
    };
    Nbc::start(&c, sends, recvs, Box::new(finish))
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
    check_blocks(recvbuf, &counts, &rt)?;
    let at = |i: usize| (recvbuf as isize + displs[i] * rt.extent) as usize;
    let mut recvs: Vec<Option<Part>> = (0..n)
        .map(|i| Some((counts[i], rt.clone(), at(i))))
        .collect();
    // In place, this rank's block is already in the receive buffer and is sent from there.
    let own = if in_place(sendbuf) {
        recvs[me] = None;
        (counts[me], rt.clone(), at(me))
    } else {
        let (st, sc) = check_buffer(sendbuf, scount, stype)?;
        (sc, st, sendbuf)
    };
    let mut sends: Vec<Option<Part>> = vec![Some(own); n];
    if recvs[me].is_none() {
        sends[me] = None;
    }
    run_pattern(
        comm,
        Pattern {
            sends,
            recvs,
            shared: false,
        },
    )
}
