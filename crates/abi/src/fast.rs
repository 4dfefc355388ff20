//! The short way through MPI_Send and MPI_Recv: a standard-mode blocking send or receive of a
//! contiguous datatype with valid arguments.
//!
//! Why it exists: small messages are latency-bound, and the general path (`request::start`,
//! then `capi::blocking`) looks the communicator and the datatype up in separate accesses to
//! the thread-local tables, clones both, builds a request state and borrows the engine twice.
//! For an 8-byte ping-pong that bookkeeping cost as much as the engine's own work. Here one
//! borrow of the tables yields a [`Route`] of plain values and one borrow of the engine does
//! the whole operation.
//!
//! The contract with the general path: [`send`] and [`recv`] return `None` for anything they
//! do not handle (PROC_NULL, a derived non-contiguous type, any invalid argument), and the
//! caller then takes the general path, which reports the error as before. So every error
//! message and class comes from one place.

use std::ffi::{c_int, c_void};
use std::rc::Rc;

use engine::buffer::{RecvBuf, SendBuf};

use crate::ffi::{Error, Res};
use crate::handles::{self, ANY_SOURCE, ANY_TAG, Kind};
use crate::request::{MpiStatus, write_status};
use crate::state::{CommObj, peek_tables, with_engine};

/// Where a checked operation goes, in the engine's terms.
struct Route {
    ctx: u32,
    /// The peer's world rank; `None` for MPI_ANY_SOURCE.
    peer: Option<u32>,
    /// The message's length in bytes.
    len: usize,
    /// The communicator, kept only when a receive from any source must translate the sender's
    /// world rank back for its status.
    comm: Option<Rc<CommObj>>,
}

/// Checks the arguments as `request::check_send`/`check_recv` do, in one borrow of the tables;
/// `None` when the general path must handle (or reject) the call.
fn route(
    buf: usize,
    count: c_int,
    dt: c_int,
    peer: c_int,
    tag: c_int,
    comm: c_int,
    recv: bool,
) -> Option<Route> {
    let count = usize::try_from(count).ok()?;
    let tag_ok = (0..=engine::TAG_UB).contains(&tag) || (recv && tag == ANY_TAG);
    if !tag_ok {
        return None;
    }
    peek_tables(|t| {
        let c = t.comms.get(handles::index(Kind::Comm, comm)?)?.as_ref()?;
        let d = t.types.get(handles::index(Kind::Datatype, dt)?)?.as_ref()?;
        if !d.committed || !d.contiguous {
            return None;
        }
        let len = count.checked_mul(d.size)?;
        if buf == 0 && len > 0 {
            return None;
        }
        let (peer, comm) = if recv && peer == ANY_SOURCE {
            (None, Some(c.clone()))
        } else {
            let local = u32::try_from(peer).ok()?;
            (Some(c.comm.world_rank(i64::from(local)).ok()?), None)
        };
        Some(Route {
            ctx: c.comm.p2p_ctx(),
            peer,
            len,
            comm,
        })
    })
    .flatten()
}

/// MPI_Send in standard mode, or `None` for the general path.
pub(crate) fn send(
    buf: *const c_void,
    count: c_int,
    dt: c_int,
    dest: c_int,
    tag: c_int,
    comm: c_int,
) -> Option<Res> {
    let r = route(buf as usize, count, dt, dest, tag, comm, false)?;
    let dest = r.peer?;
    // SAFETY: `route` checked that (buf, count, datatype) describe `len` bytes of a contiguous
    // type at a non-null address (or zero bytes); MPI forbids the program to modify a send
    // buffer during the call, and `Engine::send` completes or abandons the send before it returns.
    let data = unsafe { SendBuf::from_raw(buf.cast::<u8>(), r.len) };
    let done = with_engine(|e| e.send(r.ctx, dest, tag, data));
    Some(done.and_then(|r| r.map_err(Error::from)))
}

/// MPI_Recv, or `None` for the general path.
pub(crate) fn recv(
    buf: *mut c_void,
    count: c_int,
    dt: c_int,
    source: c_int,
    tag: c_int,
    comm: c_int,
    status: *mut MpiStatus,
) -> Option<Res> {
    let r = route(buf as usize, count, dt, source, tag, comm, true)?;
    // SAFETY: as in `send`, for `len` writable bytes that MPI forbids the program to touch
    // until the receive completes, which `Engine::recv` does (or abandons it) before it returns.
    let data = unsafe { RecvBuf::from_raw(buf.cast::<u8>(), r.len) };
    let tag = (tag != ANY_TAG).then_some(tag);
    let done = with_engine(|e| e.recv(r.ctx, r.peer, tag, data));
    Some(done.and_then(|s| {
        let s = s.map_err(Error::from)?;
        let from = match &r.comm {
            None => source,
            Some(c) => c
                .comm
                .local_rank(s.source)
                .map_or(ANY_SOURCE, |l| l as c_int),
        };
        write_status(status, MpiStatus::new(from, s.tag, s.count));
        Ok(())
    }))
}
