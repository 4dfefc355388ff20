//! Requests: point-to-point operations in flight, persistent requests, non-blocking
//! collectives, and the Wait/Test families.

use std::ffi::c_int;
use std::rc::Rc;

use engine::buffer::{RecvBuf, SendBuf};

use crate::dtype::Dtype;
use crate::ffi::{Error, Res, bail, error, put, slice_mut};
use crate::handles::{self, ANY_SOURCE, ANY_TAG, PROC_NULL, err};
use crate::nbc::Nbc;
use crate::state::{self, CommObj, tables, with_engine};

/// MPI_Status as C and Fortran see it (five ints; see docs/abi.md).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MpiStatus {
    pub source: c_int,
    pub tag: c_int,
    pub error: c_int,
    pub count_lo: c_int,
    /// Bits 0..30: high bits of the byte count; bit 31: cancelled.
    pub count_hi_cancelled: c_int,
}

impl MpiStatus {
    pub(crate) fn new(source: i32, tag: i32, bytes: usize) -> Self {
        let mut s = Self {
            source,
            tag,
            ..Self::default()
        };
        s.set_bytes(bytes);
        s
    }

    pub(crate) fn empty() -> Self {
        Self::new(ANY_SOURCE, ANY_TAG, 0)
    }

    pub(crate) fn set_bytes(&mut self, bytes: usize) {
        let b = bytes as u64;
        self.count_lo = b as u32 as i32;
        self.count_hi_cancelled =
            (self.count_hi_cancelled & i32::MIN) | ((b >> 32) as i32 & i32::MAX);
    }

    pub(crate) fn bytes(&self) -> usize {
        (self.count_lo as u32 as u64 | (((self.count_hi_cancelled & i32::MAX) as u64) << 32))
            as usize
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.count_hi_cancelled < 0
    }

    pub(crate) fn set_cancelled(&mut self, c: bool) {
        self.count_hi_cancelled =
            (self.count_hi_cancelled & i32::MAX) | if c { i32::MIN } else { 0 };
    }
}

/// Where a non-contiguous receive is unpacked once it completes.
#[derive(Debug)]
pub(crate) struct Unpack {
    pub tmp: Box<[u8]>,
    pub base: usize,
    pub count: usize,
    pub dt: Rc<Dtype>,
}

#[derive(Debug)]
pub(crate) enum State {
    /// A persistent request that is not started.
    Inactive,
    /// A message the engine carries.
    Engine {
        id: u64,
        comm: Rc<CommObj>,
        unpack: Option<Unpack>,
        /// Packed send data the engine reads until completion.
        keep: Option<Box<[u8]>>,
        recv: bool,
    },
    Nbc(Box<Nbc>),
    /// Completed without the engine (PROC_NULL, cancelled).
    Done(MpiStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Standard,
    Buffered,
    Synchronous,
    Ready,
}

/// What MPI_Send_init / MPI_Recv_init recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Persist {
    pub recv: bool,
    pub mode: Mode,
    pub buf: usize,
    pub count: c_int,
    pub dt: c_int,
    pub peer: c_int,
    pub tag: c_int,
    pub comm: c_int,
}

#[derive(Debug)]
pub(crate) struct Request {
    pub state: State,
    pub persistent: Option<Persist>,
}

pub(crate) struct Checked {
    pub comm: Rc<CommObj>,
    pub dt: Rc<Dtype>,
    pub count: usize,
}

/// The checks every buffer argument gets.
pub(crate) fn check_buffer(buf: usize, count: c_int, dt: c_int) -> Res<(Rc<Dtype>, usize)> {
    if count < 0 {
        bail!(err::COUNT, "count {count} is negative");
    }
    let t = state::dtype(dt)?;
    if !t.committed {
        bail!(
            err::TYPE,
            "the datatype is not committed (call MPI_Type_commit)"
        );
    }
    if buf == 0 && count > 0 && t.predefined && t.size > 0 {
        bail!(err::BUFFER, "null buffer with a count of {count}");
    }
    Ok((t, count as usize))
}

pub(crate) fn check_rank(c: &CommObj, rank: c_int, what: &str) -> Res {
    if rank < 0 || rank as u32 >= c.comm.size() {
        bail!(
            err::RANK,
            "invalid {what} {rank} (communicator of {} ranks)",
            c.comm.size()
        );
    }
    Ok(())
}

fn check_send(
    buf: usize,
    count: c_int,
    dt: c_int,
    dest: c_int,
    tag: c_int,
    comm: c_int,
) -> Res<Checked> {
    let c = state::comm(comm)?;
    let (dt, count) = check_buffer(buf, count, dt)?;
    if dest != PROC_NULL {
        check_rank(&c, dest, "rank")?;
    }
    if !(0..=engine::TAG_UB).contains(&tag) {
        bail!(
            err::TAG,
            "invalid tag {tag} (tags run from 0 to {})",
            engine::TAG_UB
        );
    }
    Ok(Checked { comm: c, dt, count })
}

fn check_recv(
    buf: usize,
    count: c_int,
    dt: c_int,
    source: c_int,
    tag: c_int,
    comm: c_int,
) -> Res<Checked> {
    let c = state::comm(comm)?;
    let (dt, count) = check_buffer(buf, count, dt)?;
    if source != PROC_NULL && source != ANY_SOURCE {
        check_rank(&c, source, "source rank")?;
    }
    if tag != ANY_TAG && !(0..=engine::TAG_UB).contains(&tag) {
        bail!(
            err::TAG,
            "invalid tag {tag} (tags run from 0 to {})",
            engine::TAG_UB
        );
    }
    Ok(Checked { comm: c, dt, count })
}

/// Starts a send; `Buffered` always copies the data.
pub(crate) fn start_send(p: &Persist) -> Res<State> {
    let c = check_send(p.buf, p.count, p.dt, p.peer, p.tag, p.comm)?;
    if p.mode == Mode::Buffered && tables(|t| t.bsend_buffer.is_none())? {
        let len = c.dt.packed_len(c.count)?;
        if len > 0 {
            bail!(
                err::BUFFER,
                "no buffer is attached for a buffered send of {len} bytes"
            );
        }
    }
    if p.peer == PROC_NULL {
        return Ok(State::Done(MpiStatus::new(PROC_NULL, ANY_TAG, 0)));
    }
    let dest = c.comm.comm.world_rank(i64::from(p.peer))?;
    let len = c.dt.packed_len(c.count)?;
    let (buf, keep) = if c.dt.contiguous && p.mode != Mode::Buffered {
        // SAFETY: MPI forbids the program to modify a send buffer until the send completes,
        // and (buf, count, datatype) describe `len` readable bytes of a contiguous type.
        (unsafe { SendBuf::from_raw(p.buf as *const u8, len) }, None)
    } else {
        let mut v = Vec::with_capacity(len);
        c.dt.pack(p.buf, c.count, &mut v);
        let b = v.into_boxed_slice();
        // SAFETY: the box is stored in the request (`keep`) until the engine completes it, and
        // a box's heap memory never moves.
        (unsafe { SendBuf::from_raw(b.as_ptr(), b.len()) }, Some(b))
    };
    let ctx = c.comm.comm.p2p_ctx();
    let id = with_engine(|e| e.isend(ctx, dest, p.tag, buf))??;
    Ok(State::Engine {
        id,
        comm: c.comm_rc(),
        unpack: None,
        keep,
        recv: false,
    })
}

impl Checked {
    fn comm_rc(&self) -> Rc<CommObj> {
        self.comm.clone()
    }
}

pub(crate) fn start_recv(p: &Persist) -> Res<State> {
    let c = check_recv(p.buf, p.count, p.dt, p.peer, p.tag, p.comm)?;
    if p.peer == PROC_NULL {
        return Ok(State::Done(MpiStatus::new(PROC_NULL, ANY_TAG, 0)));
    }
    let source = if p.peer == ANY_SOURCE {
        None
    } else {
        Some(c.comm.comm.world_rank(i64::from(p.peer))?)
    };
    let tag = (p.tag != ANY_TAG).then_some(p.tag);
    let len = c.dt.packed_len(c.count)?;
    let (buf, unpack) = if c.dt.contiguous {
        // SAFETY: MPI forbids the program to access a receive buffer until the receive
        // completes, and (buf, count, datatype) describe `len` writable bytes.
        (unsafe { RecvBuf::from_raw(p.buf as *mut u8, len) }, None)
    } else {
        let mut tmp = vec![0u8; len].into_boxed_slice();
        // SAFETY: the box is stored in the request (`unpack`) until the engine completes it,
        // it is not read before then, and a box's heap memory never moves.
        let b = unsafe { RecvBuf::from_raw(tmp.as_mut_ptr(), len) };
        let u = Unpack {
            tmp,
            base: p.buf,
            count: c.count,
            dt: c.dt.clone(),
        };
        (b, Some(u))
    };
    let ctx = c.comm.comm.p2p_ctx();
    let id = with_engine(|e| e.irecv(ctx, source, tag, buf))??;
    Ok(State::Engine {
        id,
        comm: c.comm.clone(),
        unpack,
        keep: None,
        recv: true,
    })
}

pub(crate) fn start(p: &Persist) -> Res<State> {
    if p.recv { start_recv(p) } else { start_send(p) }
}

/// Whether `state` has completed (progressing the engine once when it has not).
pub(crate) fn ready(state: &State) -> Res<bool> {
    match state {
        State::Inactive | State::Done(_) => Ok(true),
        State::Engine { id, .. } => Ok(with_engine(|e| e.test(*id))??),
        State::Nbc(n) => n.ready(),
    }
}

/// Ends a completed operation: its status, and its error if it failed.
pub(crate) fn finish(state: State) -> (MpiStatus, Option<Error>) {
    match state {
        State::Inactive => (MpiStatus::empty(), None),
        State::Done(s) => (s, None),
        State::Engine {
            id,
            comm,
            unpack,
            keep,
            recv,
        } => {
            let r = with_engine(|e| e.take(id));
            drop(keep);
            match r {
                Ok(Ok(st)) => {
                    let source = comm
                        .comm
                        .local_rank(st.source)
                        .map_or(ANY_SOURCE, |r| r as i32);
                    if let Some(u) = unpack {
                        u.dt.unpack(&u.tmp[..st.count.min(u.tmp.len())], u.base, u.count);
                    }
                    if recv {
                        (MpiStatus::new(source, st.tag, st.count), None)
                    } else {
                        (MpiStatus::empty(), None)
                    }
                }
                Ok(Err(e)) => {
                    let e = Error::from(e);
                    let mut s = MpiStatus::empty();
                    s.error = e.class;
                    (s, Some(e))
                }
                Err(e) => (MpiStatus::empty(), Some(e)),
            }
        }
        State::Nbc(n) => match n.finish() {
            Ok(()) => (MpiStatus::empty(), None),
            Err(e) => {
                let mut s = MpiStatus::empty();
                s.error = e.class;
                (s, Some(e))
            }
        },
    }
}

/// Progresses the engine; sleeps a little after many fruitless rounds.
pub(crate) fn progress(idle: &mut u32) -> Res {
    let moved = with_engine(|e| e.progress())??;
    if moved {
        *idle = 0;
    } else {
        *idle += 1;
        if *idle > 50 {
            std::thread::yield_now();
        }
        if *idle > 5_000 {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
    }
    Ok(())
}

/// Adds a started operation to the table.
pub(crate) fn register(state: State, persistent: Option<Persist>) -> Res<c_int> {
    tables(|t| t.add_request(Request { state, persistent }))
}

/// Completes request `*h` if it is done (or blocks until it is, with `block`); writes its
/// status and sets `*h` to MPI_REQUEST_NULL unless persistent. A null or inactive request
/// completes at once with an empty status.
pub(crate) fn complete(h: &mut c_int, block: bool) -> Res<Option<(MpiStatus, Option<Error>)>> {
    if *h == 0 {
        return Ok(Some((MpiStatus::empty(), None)));
    }
    let mut req = tables(|t| t.take_request(*h))??;
    let mut idle = 0;
    loop {
        match ready(&req.state) {
            Ok(true) => break,
            Ok(false) if block => {
                if let Err(e) = progress(&mut idle) {
                    tables(|t| t.put_request(*h, req))?;
                    return Err(e);
                }
            }
            Ok(false) => {
                tables(|t| t.put_request(*h, req))?;
                return Ok(None);
            }
            Err(e) => {
                tables(|t| t.put_request(*h, req))?;
                return Err(e);
            }
        }
    }
    let state = std::mem::replace(&mut req.state, State::Inactive);
    let result = finish(state);
    if req.persistent.is_some() {
        tables(|t| t.put_request(*h, req))?;
    } else {
        tables(|t| t.release_request(*h))?;
        *h = 0;
    }
    Ok(Some(result))
}

/// Whether request `h` is done without completing it.
pub(crate) fn peek(h: c_int) -> Res<bool> {
    if h == 0 {
        return Ok(true);
    }
    let req = tables(|t| t.take_request(h))??;
    let r = ready(&req.state);
    tables(|t| t.put_request(h, req))?;
    r
}

fn out_status(statuses: *mut MpiStatus, i: usize, s: MpiStatus) {
    if !statuses.is_null() && statuses as usize != crate::STATUSES_IGNORE_ADDR {
        put(statuses.wrapping_add(i), s);
    }
}

pub(crate) fn write_status(status: *mut MpiStatus, s: MpiStatus) {
    if !status.is_null() && status as usize != crate::STATUS_IGNORE_ADDR {
        put(status, s);
    }
}

pub(crate) fn wait(h: &mut c_int, status: *mut MpiStatus) -> Res {
    let (s, e) = complete(h, true)?.unwrap_or((MpiStatus::empty(), None));
    write_status(status, s);
    e.map_or(Ok(()), Err)
}

pub(crate) fn test(h: &mut c_int, flag: &mut c_int, status: *mut MpiStatus) -> Res {
    match complete(h, false)? {
        Some((s, e)) => {
            *flag = 1;
            write_status(status, s);
            e.map_or(Ok(()), Err)
        }
        None => {
            *flag = 0;
            Ok(())
        }
    }
}

fn handles_of<'a>(n: c_int, reqs: *mut c_int) -> Res<&'a mut [c_int]> {
    if n < 0 {
        bail!(err::COUNT, "count {n} is negative");
    }
    slice_mut(reqs, n as usize, "the array of requests")
}

fn in_status(errors: Vec<(usize, Error)>) -> Res {
    match errors.into_iter().next() {
        None => Ok(()),
        Some((i, e)) => Err(error(
            err::IN_STATUS,
            format!("request {i} failed: {}", e.msg),
        )),
    }
}

pub(crate) fn waitall(n: c_int, reqs: *mut c_int, statuses: *mut MpiStatus) -> Res {
    let hs = handles_of(n, reqs)?;
    let mut errors = Vec::new();
    let mut done = vec![false; hs.len()];
    let mut left = hs.len();
    let mut idle = 0;
    while left > 0 {
        let mut any = false;
        for (i, h) in hs.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            if let Some((s, e)) = complete(h, false)? {
                done[i] = true;
                left -= 1;
                any = true;
                out_status(statuses, i, s);
                if let Some(e) = e {
                    errors.push((i, e));
                }
            }
        }
        if !any && left > 0 {
            progress(&mut idle)?;
        }
    }
    in_status(errors)
}

pub(crate) fn testall(
    n: c_int,
    reqs: *mut c_int,
    flag: &mut c_int,
    statuses: *mut MpiStatus,
) -> Res {
    let hs = handles_of(n, reqs)?;
    for &h in hs.iter() {
        if !peek(h)? {
            *flag = 0;
            return Ok(());
        }
    }
    *flag = 1;
    let mut errors = Vec::new();
    for (i, h) in hs.iter_mut().enumerate() {
        if let Some((s, e)) = complete(h, false)? {
            out_status(statuses, i, s);
            if let Some(e) = e {
                errors.push((i, e));
            }
        }
    }
    in_status(errors)
}

fn active(h: c_int) -> Res<bool> {
    if h == 0 {
        return Ok(false);
    }
    tables(|t| {
        handles::index(handles::Kind::Request, h)
            .and_then(|i| t.requests.get(i))
            .and_then(Option::as_ref)
            .is_some_and(|r| !matches!(r.state, State::Inactive))
    })
}

/// Waitany/Testany: `index` is set to the completed request or MPI_UNDEFINED.
pub(crate) fn anyof(
    n: c_int,
    reqs: *mut c_int,
    index: &mut c_int,
    flag: &mut c_int,
    status: *mut MpiStatus,
    block: bool,
) -> Res {
    let hs = handles_of(n, reqs)?;
    let mut idle = 0;
    loop {
        let mut any_active = false;
        for (i, h) in hs.iter_mut().enumerate() {
            if !active(*h)? {
                continue;
            }
            any_active = true;
            if let Some((s, e)) = complete(h, false)? {
                *index = i as c_int;
                *flag = 1;
                write_status(status, s);
                return e.map_or(Ok(()), Err);
            }
        }
        if !any_active {
            *index = handles::UNDEFINED;
            *flag = 1;
            write_status(status, MpiStatus::empty());
            return Ok(());
        }
        if !block {
            *flag = 0;
            *index = handles::UNDEFINED;
            return Ok(());
        }
        progress(&mut idle)?;
    }
}

/// Waitsome/Testsome.
pub(crate) fn someof(
    n: c_int,
    reqs: *mut c_int,
    outcount: &mut c_int,
    indices: *mut c_int,
    statuses: *mut MpiStatus,
    block: bool,
) -> Res {
    let hs = handles_of(n, reqs)?;
    let idx = slice_mut(indices, hs.len(), "the array of indices")?;
    let mut idle = 0;
    loop {
        let mut any_active = false;
        let mut k = 0;
        let mut errors = Vec::new();
        for (i, h) in hs.iter_mut().enumerate() {
            if !active(*h)? {
                continue;
            }
            any_active = true;
            if let Some((s, e)) = complete(h, false)? {
                idx[k] = i as c_int;
                out_status(statuses, k, s);
                if let Some(e) = e {
                    errors.push((i, e));
                }
                k += 1;
            }
        }
        if !any_active {
            *outcount = handles::UNDEFINED;
            return Ok(());
        }
        if k > 0 || !block {
            *outcount = k as c_int;
            return in_status(errors);
        }
        progress(&mut idle)?;
    }
}

pub(crate) fn request_free(h: &mut c_int) -> Res {
    let req = tables(|t| t.take_request(*h))??;
    tables(|t| {
        t.release_request(*h);
        if !matches!(req.state, State::Inactive | State::Done(_)) {
            t.detached.push(req);
        }
    })?;
    *h = 0;
    Ok(())
}

/// Completes every request freed while active (MPI_Finalize, MPI_Buffer_detach).
pub(crate) fn drain_detached() -> Res {
    let reqs = tables(|t| std::mem::take(&mut t.detached))?;
    let mut idle = 0;
    for r in reqs {
        while !ready(&r.state)? {
            progress(&mut idle)?;
        }
        let _ = finish(r.state);
    }
    Ok(())
}

pub(crate) fn cancel(h: c_int) -> Res {
    let mut req = tables(|t| t.take_request(h))??;
    if let State::Engine { id, recv: true, .. } = req.state
        && with_engine(|e| e.cancel_recv(id))?
    {
        let mut s = MpiStatus::empty();
        s.set_cancelled(true);
        req.state = State::Done(s);
    }
    tables(|t| t.put_request(h, req))?;
    Ok(())
}
