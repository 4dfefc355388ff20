//! The short way through MPI_Send and MPI_Recv: a standard-mode blocking send or receive of a
//! contiguous datatype with valid arguments.
//!
//! Why it exists: small messages are latency-bound, and the general path (`request::start`,
//! then `capi::blocking`) looks the communicator and the datatype up in separate accesses to
//! the thread-local tables, clones both, builds a request state and borrows the engine twice.
//! For an 8-byte ping-pong that bookkeeping cost as much as the engine's own work. Here one
//! thread-local access borrows the tables and the engine together, the tables yield a
//! [`Route`] of plain values and the engine's blocking `send` or `recv` does the rest.
//!
//! The contract with the general path: [`send`] and [`recv`] return `None` for anything they
//! do not handle (PROC_NULL, a derived non-contiguous type, any invalid argument), and the
//! caller then takes the general path, which reports the error as before. So every error
//! message and class comes from one place.

use std::ffi::{c_int, c_void};

use engine::buffer::{RecvBuf, SendBuf};

use crate::ffi::{Error, Res};
use crate::handles::{self, ANY_SOURCE, ANY_TAG, Kind};
use crate::request::{MpiStatus, write_status};
use crate::state::{CommObj, Tables, peek_with_engine};

/// Where a checked operation goes, in the engine's terms.
struct Route<'t> {
    ctx: u32,
    /// The peer's world rank; `None` for MPI_ANY_SOURCE.
    peer: Option<u32>,
    /// The message's length in bytes.
    len: usize,
    /// The communicator, to translate the sender's world rank back for a receive's status.
    comm: &'t CommObj,
}

/// Checks the arguments as `request::check_send`/`check_recv` do; `None` when the general
/// path must handle (or reject) the call. `envelope` is (peer, tag, communicator).
fn route(
    t: &Tables,
    buf: usize,
    count: c_int,
    dt: c_int,
    (peer, tag, comm): (c_int, c_int, c_int),
    recv: bool,
) -> Option<Route<'_>> {
    let count = usize::try_from(count).ok()?;
    let tag_ok = (0..=engine::TAG_UB).contains(&tag) || (recv && tag == ANY_TAG);
    if !tag_ok {
        return None;
    }
    let c = t.comms.get(handles::index(Kind::Comm, comm)?)?.as_ref()?;
    let d = t.types.get(handles::index(Kind::Datatype, dt)?)?.as_ref()?;
    if !d.committed || !d.contiguous {
        return None;
    }
    let len = count.checked_mul(d.size)?;
    if buf == 0 && len > 0 {
        return None;
    }
    let peer = if recv && peer == ANY_SOURCE {
        None
    } else {
        let local = u32::try_from(peer).ok()?;
        Some(c.comm.world_rank(i64::from(local)).ok()?)
    };
    Some(Route {
        ctx: c.comm.p2p_ctx(),
        peer,
        len,
        comm: c,
    })
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
    peek_with_engine(|t, e| {
        let r = route(t, buf as usize, count, dt, (dest, tag, comm), false)?;
        let dest = r.peer?;
        // SAFETY: `route` checked that (buf, count, datatype) describe `len` bytes of a
        // contiguous type at a non-null address (or zero bytes); MPI forbids the program to
        // modify a send buffer during the call, and `Engine::send` completes or abandons the
        // send before it returns.
        let data = unsafe { SendBuf::from_raw(buf.cast::<u8>(), r.len) };
        Some(e.send(r.ctx, dest, tag, data).map_err(Error::from))
    })
    .flatten()
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
    peek_with_engine(|t, e| {
        let r = route(t, buf as usize, count, dt, (source, tag, comm), true)?;
        // SAFETY: as in `send`, for `len` writable bytes that MPI forbids the program to touch
        // until the receive completes, which `Engine::recv` does (or abandons it) before it
        // returns.
        let data = unsafe { RecvBuf::from_raw(buf.cast::<u8>(), r.len) };
        let want = (tag != ANY_TAG).then_some(tag);
        let done = e.recv(r.ctx, r.peer, want, data).map(|s| {
            let from = match r.peer {
                Some(_) => source,
                None => r
                    .comm
                    .comm
                    .local_rank(s.source)
                    .map_or(ANY_SOURCE, |l| l as c_int),
            };
            write_status(status, MpiStatus::new(from, s.tag, s.count));
        });
        Some(done.map_err(Error::from))
    })
    .flatten()
}
