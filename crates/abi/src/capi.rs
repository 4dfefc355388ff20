//! The exported C functions. Each is defined under its `PMPI_` name; the `MPI_` name forwards
//! to it (see docs/abi.md on symbol names). Bodies only convert arguments and call the
//! modules; errors go through `ffi::guard`.

#![allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_double, c_int, c_void};

use crate::ckpt;
use crate::coll::{self, counts_displs};
use crate::comm;
use crate::dtype::Dtype;
use crate::env;
use crate::fast;
use crate::ffi::{
    Res, bail, c_string, error, get, guard, put, slice, slice_mut, to_usize, write_c_string,
};
use crate::handles::{self, err};
use crate::nbc;
use crate::ops::{OpObj, UserFn};
use crate::request::{self, Mode, MpiStatus, Persist, State};
use crate::state::{self, tables, with_engine};

type Aint = isize;

/// Defines `PMPI_x` with the body and `MPI_x` forwarding to it.
macro_rules! export {
    ($( fn $name:ident / $pname:ident ( $($arg:ident : $ty:ty),* $(,)? ) [$comm:expr] $body:block )*) => { $(
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C" fn $pname($($arg: $ty),*) -> c_int {
            guard(stringify!($name), $comm, || -> Res { $body })
        }
        weak_alias!($name, $pname);
    )* };
}

/// Defines `$name` as a weak symbol that jumps to `$pname` (so the arguments pass through
/// untouched). `mpi-aliases.map` exports these symbols from libmpi.so (rustc's own export list
/// holds only Rust items); in libmpi.a they are weak, so a profiling library may define them.
macro_rules! weak_alias {
    ($name:ident, $pname:ident) => {
        #[cfg(target_arch = "x86_64")]
        std::arch::global_asm!(concat!(
            ".pushsection .text.",
            stringify!($name),
            ",\"ax\",@progbits\n",
            ".weak ",
            stringify!($name),
            "\n",
            ".type ",
            stringify!($name),
            ",@function\n",
            stringify!($name),
            ":\n",
            "    jmp ",
            stringify!($pname),
            "@PLT\n",
            ".size ",
            stringify!($name),
            ", .-",
            stringify!($name),
            "\n",
            ".popsection"
        ));
        #[cfg(target_arch = "aarch64")]
        std::arch::global_asm!(concat!(
            ".pushsection .text.",
            stringify!($name),
            ",\"ax\",%progbits\n",
            ".weak ",
            stringify!($name),
            "\n",
            ".type ",
            stringify!($name),
            ",%function\n",
            stringify!($name),
            ":\n",
            "    b ",
            stringify!($pname),
            "\n",
            ".size ",
            stringify!($name),
            ", .-",
            stringify!($name),
            "\n",
            ".popsection"
        ));
    };
}

fn out<T>(p: *mut T, v: T, what: &str) -> Res {
    if p.is_null() {
        bail!(err::ARG, "{what} is a null pointer");
    }
    put(p, v);
    Ok(())
}

fn addr(p: *const c_void) -> usize {
    p as usize
}

fn p2p(
    buf: *const c_void,
    count: c_int,
    dt: c_int,
    peer: c_int,
    tag: c_int,
    comm: c_int,
    recv: bool,
    mode: Mode,
) -> Persist {
    Persist {
        recv,
        mode,
        buf: addr(buf),
        count,
        dt,
        peer,
        tag,
        comm,
    }
}

fn blocking(p: Persist, status: *mut MpiStatus) -> Res {
    let st = request::start(&p)?;
    if p.mode == Mode::Buffered {
        return tables(|t| {
            t.detached.push(request::Request {
                state: st,
                persistent: None,
            })
        });
    }
    if let State::Engine { id, .. } = &st {
        // Fast path for a send: one request, the engine's own wait (and idle strategy). `st`
        // keeps any packed copy alive until the wait is over.
        let id = *id;
        let r = with_engine(|e| {
            let r = e.wait(id).map(drop);
            if r.is_err() {
                e.abandon(id);
            }
            r
        })?;
        drop(st);
        return r.map_err(crate::ffi::Error::from);
    }
    let (s, e) = request::finish(st);
    request::write_status(status, s);
    e.map_or(Ok(()), Err)
}

fn nonblocking(p: Persist, req: *mut c_int) -> Res {
    let st = request::start(&p)?;
    out(req, request::register(st, None)?, "the request argument")
}

fn nbc_start(r: Res<nbc::Nbc>, req: *mut c_int) -> Res {
    let n = r?;
    out(
        req,
        request::register(State::Nbc(Box::new(n)), None)?,
        "the request argument",
    )
}

fn new_type(t: Res<Dtype>, newtype: *mut c_int) -> Res {
    let t = t?;
    let h = tables(|tb| tb.add_type(t))?;
    out(newtype, h, "the new datatype argument")
}

fn type_list(types: &[c_int]) -> Res<Vec<std::rc::Rc<Dtype>>> {
    types.iter().map(|&t| state::dtype(t)).collect()
}

fn counts(p: *const c_int, n: c_int, what: &str) -> Res<Vec<usize>> {
    slice(p, to_usize(n, "count")?, what)?
        .iter()
        .map(|&x| to_usize(x, what))
        .collect()
}

fn comm_size(comm: c_int) -> Res<usize> {
    Ok(state::comm(comm)?.comm.size() as usize)
}

fn recv_status(p: Persist, status: *mut MpiStatus) -> Res {
    let st = request::start(&p)?;
    if let State::Engine {
        id,
        ref comm,
        unpack: None,
        ..
    } = st
    {
        // Fast path for a contiguous receive: the engine's own wait (and idle strategy).
        let r = with_engine(|e| {
            let r = e.wait(id);
            if r.is_err() {
                e.abandon(id);
            }
            r
        })?;
        let s = r.map_err(crate::ffi::Error::from)?;
        let source = comm
            .comm
            .local_rank(s.source)
            .map_or(handles::ANY_SOURCE, |r| r as c_int);
        request::write_status(status, MpiStatus::new(source, s.tag, s.count));
        return Ok(());
    }
    let mut h = request::register(st, None)?;
    request::wait(&mut h, status)
}

fn is_root(comm: c_int, root: c_int) -> Res<bool> {
    Ok(state::comm(comm)?.comm.rank() as c_int == root)
}

export! {
    // ---------------- environment ----------------
    fn MPI_Init / PMPI_Init(_argc: *mut c_int, _argv: *mut *mut *mut c_char) [None] { env::init() }
    fn MPI_Init_thread / PMPI_Init_thread(_argc: *mut c_int, _argv: *mut *mut *mut c_char, required: c_int, provided: *mut c_int) [None] {
        env::init()?;
        let level = required.clamp(handles::THREAD_SINGLE, handles::THREAD_FUNNELED);
        THREAD_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
        put(provided, level);
        Ok(())
    }
    fn MPI_Initialized / PMPI_Initialized(flag: *mut c_int) [None] { out(flag, c_int::from(state::initialized()), "flag") }
    fn MPI_Finalized / PMPI_Finalized(flag: *mut c_int) [None] { out(flag, c_int::from(state::finalized()), "flag") }
    fn MPI_Finalize / PMPI_Finalize() [None] { env::finalize() }
    fn MPI_Abort / PMPI_Abort(_comm: c_int, code: c_int) [None] { env::abort(code) }
    fn MPI_Query_thread / PMPI_Query_thread(provided: *mut c_int) [None] { out(provided, THREAD_LEVEL.load(std::sync::atomic::Ordering::Relaxed), "provided") }
    fn MPI_Is_thread_main / PMPI_Is_thread_main(flag: *mut c_int) [None] { out(flag, 1, "flag") }
    fn MPI_Get_processor_name / PMPI_Get_processor_name(name: *mut c_char, len: *mut c_int) [None] {
        let n = write_c_string(name, handles::MAX_PROCESSOR_NAME, &env::processor_name())?;
        out(len, n as c_int, "resultlen")
    }
    fn MPI_Get_version / PMPI_Get_version(version: *mut c_int, subversion: *mut c_int) [None] {
        put(version, 3);
        put(subversion, 1);
        Ok(())
    }
    fn MPI_Get_library_version / PMPI_Get_library_version(s: *mut c_char, len: *mut c_int) [None] {
        let n = write_c_string(s, 8192, env::LIBRARY_VERSION)?;
        out(len, n as c_int, "resultlen")
    }
    fn MPI_Error_string / PMPI_Error_string(code: c_int, s: *mut c_char, len: *mut c_int) [None] {
        let n = write_c_string(s, handles::MAX_ERROR_STRING, env::error_string(code)?)?;
        out(len, n as c_int, "resultlen")
    }
    fn MPI_Error_class / PMPI_Error_class(code: c_int, class: *mut c_int) [None] {
        env::error_string(code)?;
        out(class, code, "errorclass")
    }
    fn MPI_Comm_set_errhandler / PMPI_Comm_set_errhandler(comm: c_int, eh: c_int) [Some(comm)] { comm::set_errhandler(comm, eh) }
    fn MPI_Errhandler_set / PMPI_Errhandler_set(comm: c_int, eh: c_int) [Some(comm)] { comm::set_errhandler(comm, eh) }
    fn MPI_Comm_get_errhandler / PMPI_Comm_get_errhandler(comm: c_int, eh: *mut c_int) [Some(comm)] { out(eh, comm::get_errhandler(comm)?, "errhandler") }
    fn MPI_Errhandler_get / PMPI_Errhandler_get(comm: c_int, eh: *mut c_int) [Some(comm)] { out(eh, comm::get_errhandler(comm)?, "errhandler") }
    fn MPI_Errhandler_free / PMPI_Errhandler_free(eh: *mut c_int) [None] { out(eh, 0, "errhandler") }
    fn MPI_Comm_get_attr / PMPI_Comm_get_attr(comm: c_int, key: c_int, value: *mut c_void, flag: *mut c_int) [Some(comm)] {
        attr_get(comm, key, value.cast::<*const c_int>(), flag)
    }
    fn MPI_Attr_get / PMPI_Attr_get(comm: c_int, key: c_int, value: *mut c_void, flag: *mut c_int) [Some(comm)] {
        attr_get(comm, key, value.cast::<*const c_int>(), flag)
    }
    fn MPI_Comm_set_name / PMPI_Comm_set_name(comm: c_int, name: *const c_char) [Some(comm)] {
        *state::comm(comm)?.name.borrow_mut() = c_string(name);
        Ok(())
    }
    fn MPI_Comm_get_name / PMPI_Comm_get_name(comm: c_int, name: *mut c_char, len: *mut c_int) [Some(comm)] {
        let c = state::comm(comm)?;
        let mut n = c.name.borrow().clone();
        if n.is_empty() {
            n = match comm {
                handles::COMM_WORLD => "MPI_COMM_WORLD".into(),
                handles::COMM_SELF => "MPI_COMM_SELF".into(),
                _ => String::new(),
            };
        }
        let k = write_c_string(name, 128, &n)?;
        out(len, k as c_int, "resultlen")
    }

    // ---------------- point-to-point ----------------
    fn MPI_Send / PMPI_Send(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int) [Some(comm)] {
        if let Some(done) = fast::send(buf, count, dt, dest, tag, comm) {
            return done;
        }
        blocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Standard), std::ptr::null_mut())
    }
    fn MPI_Ssend / PMPI_Ssend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int) [Some(comm)] {
        blocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Synchronous), std::ptr::null_mut())
    }
    fn MPI_Rsend / PMPI_Rsend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int) [Some(comm)] {
        blocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Ready), std::ptr::null_mut())
    }
    fn MPI_Bsend / PMPI_Bsend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int) [Some(comm)] {
        blocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Buffered), std::ptr::null_mut())
    }
    fn MPI_Recv / PMPI_Recv(buf: *mut c_void, count: c_int, dt: c_int, source: c_int, tag: c_int, comm: c_int, status: *mut MpiStatus) [Some(comm)] {
        if let Some(done) = fast::recv(buf, count, dt, source, tag, comm, status) {
            return done;
        }
        recv_status(p2p(buf, count, dt, source, tag, comm, true, Mode::Standard), status)
    }
    fn MPI_Isend / PMPI_Isend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nonblocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Standard), req)
    }
    fn MPI_Issend / PMPI_Issend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nonblocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Synchronous), req)
    }
    fn MPI_Irsend / PMPI_Irsend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nonblocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Ready), req)
    }
    fn MPI_Ibsend / PMPI_Ibsend(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nonblocking(p2p(buf, count, dt, dest, tag, comm, false, Mode::Buffered), req)
    }
    fn MPI_Irecv / PMPI_Irecv(buf: *mut c_void, count: c_int, dt: c_int, source: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nonblocking(p2p(buf, count, dt, source, tag, comm, true, Mode::Standard), req)
    }
    fn MPI_Sendrecv / PMPI_Sendrecv(sbuf: *const c_void, scount: c_int, stype: c_int, dest: c_int, stag: c_int,
        rbuf: *mut c_void, rcount: c_int, rtype: c_int, source: c_int, rtag: c_int, comm: c_int, status: *mut MpiStatus) [Some(comm)] {
        let r = request::start(&p2p(rbuf, rcount, rtype, source, rtag, comm, true, Mode::Standard))?;
        let mut rh = request::register(r, None)?;
        let s = request::start(&p2p(sbuf, scount, stype, dest, stag, comm, false, Mode::Standard));
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                let _ = request::request_free(&mut rh);
                return Err(e);
            }
        };
        let mut sh = request::register(s, None)?;
        request::wait(&mut sh, std::ptr::null_mut())?;
        request::wait(&mut rh, status)
    }
    fn MPI_Sendrecv_replace / PMPI_Sendrecv_replace(buf: *mut c_void, count: c_int, dt: c_int, dest: c_int, stag: c_int,
        source: c_int, rtag: c_int, comm: c_int, status: *mut MpiStatus) [Some(comm)] {
        let (t, n) = request::check_buffer(addr(buf), count, dt)?;
        let copy = coll::packed(addr(buf), n, &t)?.into_owned();
        let bytes = c_int::try_from(copy.len()).map_err(|_| error(err::COUNT, "message too large"))?;
        let s = request::start(&p2p(copy.as_ptr().cast(), bytes, handles::make(handles::Kind::Datatype, 4), dest, stag, comm, false, Mode::Standard))?;
        let mut sh = request::register(s, None)?;
        let r = request::start(&p2p(buf, count, dt, source, rtag, comm, true, Mode::Standard));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                request::wait(&mut sh, std::ptr::null_mut())?;
                return Err(e);
            }
        };
        let mut rh = request::register(r, None)?;
        let w = request::wait(&mut rh, status);
        request::wait(&mut sh, std::ptr::null_mut())?;
        drop(copy);
        w
    }
    fn MPI_Wait / PMPI_Wait(req: *mut c_int, status: *mut MpiStatus) [None] {
        let mut h = get(req, "the request argument")?;
        let r = request::wait(&mut h, status);
        put(req, h);
        r
    }
    fn MPI_Test / PMPI_Test(req: *mut c_int, flag: *mut c_int, status: *mut MpiStatus) [None] {
        let mut h = get(req, "the request argument")?;
        let mut f = 0;
        let r = request::test(&mut h, &mut f, status);
        put(req, h);
        put(flag, f);
        r
    }
    fn MPI_Waitall / PMPI_Waitall(n: c_int, reqs: *mut c_int, statuses: *mut MpiStatus) [None] { request::waitall(n, reqs, statuses) }
    fn MPI_Testall / PMPI_Testall(n: c_int, reqs: *mut c_int, flag: *mut c_int, statuses: *mut MpiStatus) [None] {
        let mut f = 0;
        let r = request::testall(n, reqs, &mut f, statuses);
        put(flag, f);
        r
    }
    fn MPI_Waitany / PMPI_Waitany(n: c_int, reqs: *mut c_int, index: *mut c_int, status: *mut MpiStatus) [None] {
        let (mut i, mut f) = (0, 0);
        let r = request::anyof(n, reqs, &mut i, &mut f, status, true);
        put(index, i);
        r
    }
    fn MPI_Testany / PMPI_Testany(n: c_int, reqs: *mut c_int, index: *mut c_int, flag: *mut c_int, status: *mut MpiStatus) [None] {
        let (mut i, mut f) = (0, 0);
        let r = request::anyof(n, reqs, &mut i, &mut f, status, false);
        put(index, i);
        put(flag, f);
        r
    }
    fn MPI_Waitsome / PMPI_Waitsome(n: c_int, reqs: *mut c_int, outcount: *mut c_int, indices: *mut c_int, statuses: *mut MpiStatus) [None] {
        let mut k = 0;
        let r = request::someof(n, reqs, &mut k, indices, statuses, true);
        put(outcount, k);
        r
    }
    fn MPI_Testsome / PMPI_Testsome(n: c_int, reqs: *mut c_int, outcount: *mut c_int, indices: *mut c_int, statuses: *mut MpiStatus) [None] {
        let mut k = 0;
        let r = request::someof(n, reqs, &mut k, indices, statuses, false);
        put(outcount, k);
        r
    }
    fn MPI_Request_free / PMPI_Request_free(req: *mut c_int) [None] {
        let mut h = get(req, "the request argument")?;
        request::request_free(&mut h)?;
        put(req, h);
        Ok(())
    }
    fn MPI_Cancel / PMPI_Cancel(req: *mut c_int) [None] { request::cancel(get(req, "the request argument")?) }
    fn MPI_Test_cancelled / PMPI_Test_cancelled(status: *const MpiStatus, flag: *mut c_int) [None] {
        let s = get(status, "the status argument")?;
        out(flag, c_int::from(s.cancelled()), "flag")
    }
    fn MPI_Request_get_status / PMPI_Request_get_status(req: c_int, flag: *mut c_int, status: *mut MpiStatus) [None] {
        let done = request::peek(req)?;
        put(flag, c_int::from(done));
        if done {
            request::write_status(status, MpiStatus::empty());
        }
        Ok(())
    }
    fn MPI_Probe / PMPI_Probe(source: c_int, tag: c_int, comm: c_int, status: *mut MpiStatus) [Some(comm)] {
        let mut idle = 0;
        loop {
            let mut flag = 0;
            probe(source, tag, comm, &mut flag, status)?;
            if flag != 0 {
                return Ok(());
            }
            request::progress(&mut idle)?;
        }
    }
    fn MPI_Iprobe / PMPI_Iprobe(source: c_int, tag: c_int, comm: c_int, flag: *mut c_int, status: *mut MpiStatus) [Some(comm)] {
        let mut f = 0;
        probe(source, tag, comm, &mut f, status)?;
        out(flag, f, "flag")
    }
    fn MPI_Get_count / PMPI_Get_count(status: *const MpiStatus, dt: c_int, count: *mut c_int) [None] {
        let s = get(status, "the status argument")?;
        let t = state::dtype(dt)?;
        let b = s.bytes();
        let c = if t.size == 0 {
            0
        } else if b % t.size != 0 {
            handles::UNDEFINED
        } else {
            c_int::try_from(b / t.size).unwrap_or(handles::UNDEFINED)
        };
        out(count, c, "count")
    }
    fn MPI_Get_elements / PMPI_Get_elements(status: *const MpiStatus, dt: c_int, count: *mut c_int) [None] {
        let s = get(status, "the status argument")?;
        let t = state::dtype(dt)?;
        let b = s.bytes();
        let per: usize = t.blocks.iter().map(|x| x.n).sum();
        let c = match b.checked_div(t.size) {
            None => 0,
            Some(whole) => {
                let mut elems = whole * per;
                let mut rest = b % t.size;
                for blk in &t.blocks {
                    let sz = blk.prim.size();
                    let k = (rest / sz).min(blk.n);
                    elems += k;
                    rest -= k * sz;
                    if k < blk.n {
                        break;
                    }
                }
                elems
            }
        };
        out(count, c_int::try_from(c).unwrap_or(handles::UNDEFINED), "count")
    }
    fn MPI_Send_init / PMPI_Send_init(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        persistent(p2p(buf, count, dt, dest, tag, comm, false, Mode::Standard), req)
    }
    fn MPI_Ssend_init / PMPI_Ssend_init(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        persistent(p2p(buf, count, dt, dest, tag, comm, false, Mode::Synchronous), req)
    }
    fn MPI_Bsend_init / PMPI_Bsend_init(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        persistent(p2p(buf, count, dt, dest, tag, comm, false, Mode::Buffered), req)
    }
    fn MPI_Rsend_init / PMPI_Rsend_init(buf: *const c_void, count: c_int, dt: c_int, dest: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        persistent(p2p(buf, count, dt, dest, tag, comm, false, Mode::Ready), req)
    }
    fn MPI_Recv_init / PMPI_Recv_init(buf: *mut c_void, count: c_int, dt: c_int, source: c_int, tag: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        persistent(p2p(buf, count, dt, source, tag, comm, true, Mode::Standard), req)
    }
    fn MPI_Start / PMPI_Start(req: *mut c_int) [None] { start_one(get(req, "the request argument")?) }
    fn MPI_Startall / PMPI_Startall(n: c_int, reqs: *mut c_int) [None] {
        for &h in slice(reqs, to_usize(n, "count")?, "the array of requests")? {
            start_one(h)?;
        }
        Ok(())
    }
    fn MPI_Buffer_attach / PMPI_Buffer_attach(buf: *mut c_void, size: c_int) [None] { env::bsend_attach(addr(buf), size) }
    fn MPI_Buffer_detach / PMPI_Buffer_detach(buf: *mut c_void, size: *mut c_int) [None] {
        let (a, s) = env::bsend_detach()?;
        put(buf.cast::<usize>(), a);
        put(size, s);
        Ok(())
    }

    // ---------------- collectives ----------------
    fn MPI_Barrier / PMPI_Barrier(comm: c_int) [Some(comm)] { coll::barrier(comm) }
    fn MPI_Bcast / PMPI_Bcast(buf: *mut c_void, count: c_int, dt: c_int, root: c_int, comm: c_int) [Some(comm)] {
        coll::bcast(addr(buf), count, dt, root, comm)
    }
    fn MPI_Reduce / PMPI_Reduce(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, root: c_int, comm: c_int) [Some(comm)] {
        coll::reduce(addr(s), addr(r), count, dt, op, root, comm)
    }
    fn MPI_Allreduce / PMPI_Allreduce(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, comm: c_int) [Some(comm)] {
        coll::allreduce(addr(s), addr(r), count, dt, op, comm)
    }
    fn MPI_Scan / PMPI_Scan(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, comm: c_int) [Some(comm)] {
        coll::scan(addr(s), addr(r), count, dt, op, comm, false)
    }
    fn MPI_Exscan / PMPI_Exscan(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, comm: c_int) [Some(comm)] {
        coll::scan(addr(s), addr(r), count, dt, op, comm, true)
    }
    fn MPI_Reduce_scatter_block / PMPI_Reduce_scatter_block(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, comm: c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        coll::reduce_scatter(addr(s), addr(r), &vec![count; n], dt, op, comm)
    }
    fn MPI_Reduce_scatter / PMPI_Reduce_scatter(s: *const c_void, r: *mut c_void, rcounts: *const c_int, dt: c_int, op: c_int, comm: c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        coll::reduce_scatter(addr(s), addr(r), slice(rcounts, n, "the receive counts")?, dt, op, comm)
    }
    fn MPI_Gather / PMPI_Gather(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, root: c_int, comm: c_int) [Some(comm)] {
        coll::gather(addr(s), sc, st, addr(r), rc, rt, root, comm)
    }
    fn MPI_Gatherv / PMPI_Gatherv(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rcs: *const c_int, ds: *const c_int, rt: c_int, root: c_int, comm: c_int) [Some(comm)] {
        if is_root(comm, root)? {
            let (c, d) = counts_displs(rcs, ds, comm_size(comm)?)?;
            coll::gatherv(addr(s), sc, st, addr(r), Some(&c), Some(&d), rt, root, comm)
        } else {
            coll::gatherv(addr(s), sc, st, addr(r), None, None, rt, root, comm)
        }
    }
    fn MPI_Scatter / PMPI_Scatter(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, root: c_int, comm: c_int) [Some(comm)] {
        coll::scatter(addr(s), sc, st, addr(r), rc, rt, root, comm)
    }
    fn MPI_Scatterv / PMPI_Scatterv(s: *const c_void, scs: *const c_int, ds: *const c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, root: c_int, comm: c_int) [Some(comm)] {
        if is_root(comm, root)? {
            let (c, d) = counts_displs(scs, ds, comm_size(comm)?)?;
            coll::scatterv(addr(s), Some(&c), Some(&d), st, addr(r), rc, rt, root, comm)
        } else {
            coll::scatterv(addr(s), None, None, st, addr(r), rc, rt, root, comm)
        }
    }
    fn MPI_Allgather / PMPI_Allgather(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, comm: c_int) [Some(comm)] {
        coll::allgather(addr(s), sc, st, addr(r), rc, rt, comm)
    }
    fn MPI_Allgatherv / PMPI_Allgatherv(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rcs: *const c_int, ds: *const c_int, rt: c_int, comm: c_int) [Some(comm)] {
        let (c, d) = counts_displs(rcs, ds, comm_size(comm)?)?;
        coll::allgatherv(addr(s), sc, st, addr(r), &c, &d, rt, comm)
    }
    fn MPI_Alltoall / PMPI_Alltoall(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, comm: c_int) [Some(comm)] {
        coll::alltoall(addr(s), sc, st, addr(r), rc, rt, comm)
    }
    fn MPI_Alltoallv / PMPI_Alltoallv(s: *const c_void, scs: *const c_int, sds: *const c_int, st: c_int, r: *mut c_void, rcs: *const c_int, rds: *const c_int, rt: c_int, comm: c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let (rc, rd) = counts_displs(rcs, rds, n)?;
        let (sc, sd) = if coll::in_place(addr(s)) { (rc.clone(), rd.clone()) } else { counts_displs(scs, sds, n)? };
        coll::alltoallv(addr(s), &sc, &sd, st, addr(r), &rc, &rd, rt, comm)
    }
    fn MPI_Alltoallw / PMPI_Alltoallw(s: *const c_void, scs: *const c_int, sds: *const c_int, sts: *const c_int, r: *mut c_void, rcs: *const c_int, rds: *const c_int, rts: *const c_int, comm: c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let (rc, rd) = counts_displs(rcs, rds, n)?;
        let rt = slice(rts, n, "the receive types")?;
        if coll::in_place(addr(s)) {
            coll::alltoallw(addr(s), &rc, &rd, rt, addr(r), &rc, &rd, rt, comm)
        } else {
            let (sc, sd) = counts_displs(scs, sds, n)?;
            let st = slice(sts, n, "the send types")?;
            coll::alltoallw(addr(s), &sc, &sd, st, addr(r), &rc, &rd, rt, comm)
        }
    }

    // ---------------- non-blocking collectives ----------------
    fn MPI_Ibarrier / PMPI_Ibarrier(comm: c_int, req: *mut c_int) [Some(comm)] { nbc_start(nbc::ibarrier(comm), req) }
    fn MPI_Ibcast / PMPI_Ibcast(buf: *mut c_void, count: c_int, dt: c_int, root: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nbc_start(nbc::ibcast(addr(buf), count, dt, root, comm), req)
    }
    fn MPI_Ireduce / PMPI_Ireduce(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, root: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nbc_start(nbc::ireduce(addr(s), addr(r), count, dt, op, Some(root), comm), req)
    }
    fn MPI_Iallreduce / PMPI_Iallreduce(s: *const c_void, r: *mut c_void, count: c_int, dt: c_int, op: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        nbc_start(nbc::ireduce(addr(s), addr(r), count, dt, op, None, comm), req)
    }
    fn MPI_Igather / PMPI_Igather(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, root: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let rcv = vec![rc; n];
        let ds: Vec<c_int> = (0..n as c_int).map(|i| i * rc).collect();
        nbc_start(igatherv(addr(s), sc, st, addr(r), &rcv, &ds, rt, root, comm), req)
    }
    fn MPI_Igatherv / PMPI_Igatherv(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rcs: *const c_int, ds: *const c_int, rt: c_int, root: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let (rcv, dsv) = if is_root(comm, root)? {
            (slice(rcs, n, "the receive counts")?.to_vec(), slice(ds, n, "the displacements")?.to_vec())
        } else {
            (vec![0; n], vec![0; n])
        };
        nbc_start(igatherv(addr(s), sc, st, addr(r), &rcv, &dsv, rt, root, comm), req)
    }
    fn MPI_Iscatter / PMPI_Iscatter(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, root: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let scv = vec![sc; n];
        let ds: Vec<c_int> = (0..n as c_int).map(|i| i * sc).collect();
        nbc_start(iscatterv(addr(s), &scv, &ds, st, addr(r), rc, rt, root, comm), req)
    }
    fn MPI_Iscatterv / PMPI_Iscatterv(s: *const c_void, scs: *const c_int, ds: *const c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, root: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let (scv, dsv) = if is_root(comm, root)? {
            (slice(scs, n, "the send counts")?.to_vec(), slice(ds, n, "the displacements")?.to_vec())
        } else {
            (vec![0; n], vec![0; n])
        };
        nbc_start(iscatterv(addr(s), &scv, &dsv, st, addr(r), rc, rt, root, comm), req)
    }
    fn MPI_Iallgather / PMPI_Iallgather(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let rc = to_usize(rc, "count")?;
        nbc_start(nbc::iallgatherv(addr(s), sc, st, addr(r), vec![rc; n], (0..n).map(|i| (i * rc) as isize).collect(), rt, comm), req)
    }
    fn MPI_Iallgatherv / PMPI_Iallgatherv(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rcs: *const c_int, ds: *const c_int, rt: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let (c, d) = counts_displs(rcs, ds, comm_size(comm)?)?;
        nbc_start(nbc::iallgatherv(addr(s), sc, st, addr(r), c, d, rt, comm), req)
    }
    fn MPI_Ialltoall / PMPI_Ialltoall(s: *const c_void, sc: c_int, st: c_int, r: *mut c_void, rc: c_int, rt: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        // In place, the send count and type are ignored: the blocks sent are the ones received.
        let sc = if coll::in_place(addr(s)) { rc } else { sc };
        let sd: Vec<c_int> = (0..n as c_int).map(|i| i * sc).collect();
        let rd: Vec<c_int> = (0..n as c_int).map(|i| i * rc).collect();
        nbc_start(ialltoallv(addr(s), &vec![sc; n], &sd, st, addr(r), &vec![rc; n], &rd, rt, comm), req)
    }
    fn MPI_Ialltoallv / PMPI_Ialltoallv(s: *const c_void, scs: *const c_int, sds: *const c_int, st: c_int, r: *mut c_void, rcs: *const c_int, rds: *const c_int, rt: c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let rc = slice(rcs, n, "the receive counts")?;
        let rd = slice(rds, n, "the receive displacements")?;
        let (sc, sd) = if coll::in_place(addr(s)) { (rc, rd) } else { (slice(scs, n, "the send counts")?, slice(sds, n, "the send displacements")?) };
        nbc_start(ialltoallv(addr(s), sc, sd, st, addr(r), rc, rd, rt, comm), req)
    }
    fn MPI_Ialltoallw / PMPI_Ialltoallw(s: *const c_void, scs: *const c_int, sds: *const c_int, sts: *const c_int, r: *mut c_void, rcs: *const c_int, rds: *const c_int, rts: *const c_int, comm: c_int, req: *mut c_int) [Some(comm)] {
        let n = comm_size(comm)?;
        let rc = slice(rcs, n, "the receive counts")?;
        let rd = slice(rds, n, "the receive displacements")?;
        let rt = slice(rts, n, "the receive types")?;
        let (sbase, sc, sd, st) = if coll::in_place(addr(s)) { (addr(r), rc, rd, rt) } else {
            (addr(s), slice(scs, n, "the send counts")?, slice(sds, n, "the send displacements")?, slice(sts, n, "the send types")?)
        };
        let mut p = nbc::Pattern { sends: Vec::new(), recvs: Vec::new(), shared: coll::in_place(addr(s)) };
        for i in 0..n {
            let (t, k) = request::check_buffer(sbase, sc[i], st[i])?;
            p.sends.push(Some((k, t, (sbase as isize + sd[i] as isize) as usize)));
            let (t, k) = request::check_buffer(addr(r), rc[i], rt[i])?;
            p.recvs.push(Some((k, t, (addr(r) as isize + rd[i] as isize) as usize)));
        }
        nbc_start(nbc::run_pattern(comm, p), req)
    }

    // ---------------- datatypes ----------------
    fn MPI_Type_contiguous / PMPI_Type_contiguous(count: c_int, old: c_int, new: *mut c_int) [None] {
        new_type(Dtype::contiguous_of(to_usize(count, "count")?, &*state::dtype(old)?), new)
    }
    fn MPI_Type_vector / PMPI_Type_vector(count: c_int, bl: c_int, stride: c_int, old: c_int, new: *mut c_int) [None] {
        let o = state::dtype(old)?;
        new_type(Dtype::hvector(to_usize(count, "count")?, to_usize(bl, "blocklength")?, stride as isize * o.extent, &o), new)
    }
    fn MPI_Type_create_hvector / PMPI_Type_create_hvector(count: c_int, bl: c_int, stride: Aint, old: c_int, new: *mut c_int) [None] {
        new_type(Dtype::hvector(to_usize(count, "count")?, to_usize(bl, "blocklength")?, stride, &*state::dtype(old)?), new)
    }
    fn MPI_Type_hvector / PMPI_Type_hvector(count: c_int, bl: c_int, stride: Aint, old: c_int, new: *mut c_int) [None] {
        new_type(Dtype::hvector(to_usize(count, "count")?, to_usize(bl, "blocklength")?, stride, &*state::dtype(old)?), new)
    }
    fn MPI_Type_indexed / PMPI_Type_indexed(count: c_int, bls: *const c_int, ds: *const c_int, old: c_int, new: *mut c_int) [None] {
        let o = state::dtype(old)?;
        let lens = counts(bls, count, "the block lengths")?;
        let d: Vec<isize> = slice(ds, lens.len(), "the displacements")?.iter().map(|&x| x as isize * o.extent).collect();
        new_type(Dtype::hindexed(&lens, &d, &o), new)
    }
    fn MPI_Type_create_hindexed / PMPI_Type_create_hindexed(count: c_int, bls: *const c_int, ds: *const Aint, old: c_int, new: *mut c_int) [None] {
        let lens = counts(bls, count, "the block lengths")?;
        new_type(Dtype::hindexed(&lens, slice(ds, lens.len(), "the displacements")?, &*state::dtype(old)?), new)
    }
    fn MPI_Type_hindexed / PMPI_Type_hindexed(count: c_int, bls: *const c_int, ds: *const Aint, old: c_int, new: *mut c_int) [None] {
        let lens = counts(bls, count, "the block lengths")?;
        new_type(Dtype::hindexed(&lens, slice(ds, lens.len(), "the displacements")?, &*state::dtype(old)?), new)
    }
    fn MPI_Type_create_indexed_block / PMPI_Type_create_indexed_block(count: c_int, bl: c_int, ds: *const c_int, old: c_int, new: *mut c_int) [None] {
        let o = state::dtype(old)?;
        let n = to_usize(count, "count")?;
        let d: Vec<isize> = slice(ds, n, "the displacements")?.iter().map(|&x| x as isize * o.extent).collect();
        new_type(Dtype::hindexed(&vec![to_usize(bl, "blocklength")?; n], &d, &o), new)
    }
    fn MPI_Type_create_hindexed_block / PMPI_Type_create_hindexed_block(count: c_int, bl: c_int, ds: *const Aint, old: c_int, new: *mut c_int) [None] {
        let n = to_usize(count, "count")?;
        new_type(Dtype::hindexed(&vec![to_usize(bl, "blocklength")?; n], slice(ds, n, "the displacements")?, &*state::dtype(old)?), new)
    }
    fn MPI_Type_create_struct / PMPI_Type_create_struct(count: c_int, bls: *const c_int, ds: *const Aint, ts: *const c_int, new: *mut c_int) [None] {
        let lens = counts(bls, count, "the block lengths")?;
        let types = type_list(slice(ts, lens.len(), "the types")?)?;
        let refs: Vec<&Dtype> = types.iter().map(|t| &**t).collect();
        new_type(Dtype::structure(&lens, slice(ds, lens.len(), "the displacements")?, &refs), new)
    }
    fn MPI_Type_struct / PMPI_Type_struct(count: c_int, bls: *const c_int, ds: *const Aint, ts: *const c_int, new: *mut c_int) [None] {
        let lens = counts(bls, count, "the block lengths")?;
        let types = type_list(slice(ts, lens.len(), "the types")?)?;
        let refs: Vec<&Dtype> = types.iter().map(|t| &**t).collect();
        new_type(Dtype::structure(&lens, slice(ds, lens.len(), "the displacements")?, &refs), new)
    }
    fn MPI_Type_create_subarray / PMPI_Type_create_subarray(nd: c_int, sizes: *const c_int, subs: *const c_int, starts: *const c_int, order: c_int, old: c_int, new: *mut c_int) [None] {
        let s = counts(sizes, nd, "the sizes")?;
        let b = counts(subs, nd, "the subsizes")?;
        let st = counts(starts, nd, "the starts")?;
        if order != handles::ORDER_C && order != handles::ORDER_FORTRAN {
            bail!(err::ARG, "invalid order {order}");
        }
        new_type(Dtype::subarray(&s, &b, &st, order == handles::ORDER_FORTRAN, &*state::dtype(old)?), new)
    }
    fn MPI_Type_create_resized / PMPI_Type_create_resized(old: c_int, lb: Aint, extent: Aint, new: *mut c_int) [None] {
        new_type(Ok(Dtype::resized(&*state::dtype(old)?, lb, extent)), new)
    }
    fn MPI_Type_dup / PMPI_Type_dup(old: c_int, new: *mut c_int) [None] {
        let mut t = (*state::dtype(old)?).clone();
        t.predefined = false;
        new_type(Ok(t), new)
    }
    fn MPI_Type_commit / PMPI_Type_commit(dt: *mut c_int) [None] {
        let h = get(dt, "the datatype argument")?;
        let t = state::dtype(h)?;
        if !t.committed {
            let mut c = (*t).clone();
            c.committed = true;
            tables(|tb| {
                if let Some(i) = handles::index(handles::Kind::Datatype, h) {
                    tb.types[i] = Some(std::rc::Rc::new(c));
                }
            })?;
        }
        Ok(())
    }
    fn MPI_Type_free / PMPI_Type_free(dt: *mut c_int) [None] {
        let h = get(dt, "the datatype argument")?;
        if state::dtype(h)?.predefined {
            bail!(err::TYPE, "a predefined datatype cannot be freed");
        }
        tables(|tb| {
            if let Some(i) = handles::index(handles::Kind::Datatype, h) {
                tb.types[i] = None;
            }
        })?;
        put(dt, 0);
        Ok(())
    }
    fn MPI_Type_size / PMPI_Type_size(dt: c_int, size: *mut c_int) [None] {
        out(size, c_int::try_from(state::dtype(dt)?.size).unwrap_or(handles::UNDEFINED), "size")
    }
    fn MPI_Type_get_extent / PMPI_Type_get_extent(dt: c_int, lb: *mut Aint, extent: *mut Aint) [None] {
        let t = state::dtype(dt)?;
        put(lb, t.lb);
        put(extent, t.extent);
        Ok(())
    }
    fn MPI_Type_extent / PMPI_Type_extent(dt: c_int, extent: *mut Aint) [None] { out(extent, state::dtype(dt)?.extent, "extent") }
    fn MPI_Type_get_true_extent / PMPI_Type_get_true_extent(dt: c_int, lb: *mut Aint, extent: *mut Aint) [None] {
        let t = state::dtype(dt)?;
        put(lb, t.true_lb);
        put(extent, t.true_ub - t.true_lb);
        Ok(())
    }
    fn MPI_Get_address / PMPI_Get_address(location: *const c_void, address: *mut Aint) [None] { out(address, location as Aint, "address") }
    fn MPI_Address / PMPI_Address(location: *const c_void, address: *mut Aint) [None] { out(address, location as Aint, "address") }
    fn MPI_Pack_size / PMPI_Pack_size(count: c_int, dt: c_int, _comm: c_int, size: *mut c_int) [None] {
        let n = state::dtype(dt)?.packed_len(to_usize(count, "count")?)?;
        out(size, c_int::try_from(n).map_err(|_| error(err::COUNT, "too large"))?, "size")
    }
    fn MPI_Pack / PMPI_Pack(inbuf: *const c_void, count: c_int, dt: c_int, outbuf: *mut c_void, outsize: c_int, position: *mut c_int, comm: c_int) [Some(comm)] {
        let (t, n) = request::check_buffer(addr(inbuf), count, dt)?;
        let pos = to_usize(get(position, "position")?, "position")?;
        let mut v = Vec::new();
        t.pack(addr(inbuf), n, &mut v);
        let cap = to_usize(outsize, "outsize")?;
        if pos + v.len() > cap {
            bail!(err::TRUNCATE, "packing {} bytes at {pos} overflows the {cap}-byte buffer", v.len());
        }
        slice_mut(outbuf.cast::<u8>(), cap, "outbuf")?[pos..pos + v.len()].copy_from_slice(&v);
        put(position, (pos + v.len()) as c_int);
        Ok(())
    }
    fn MPI_Unpack / PMPI_Unpack(inbuf: *const c_void, insize: c_int, position: *mut c_int, outbuf: *mut c_void, count: c_int, dt: c_int, comm: c_int) [Some(comm)] {
        let (t, n) = request::check_buffer(addr(outbuf), count, dt)?;
        let pos = to_usize(get(position, "position")?, "position")?;
        let cap = to_usize(insize, "insize")?;
        let need = t.packed_len(n)?;
        if pos + need > cap {
            bail!(err::TRUNCATE, "unpacking {need} bytes at {pos} overruns the {cap}-byte buffer");
        }
        let data = slice(inbuf.cast::<u8>(), cap, "inbuf")?;
        t.unpack(&data[pos..pos + need], addr(outbuf), n);
        put(position, (pos + need) as c_int);
        Ok(())
    }

    // ---------------- operations ----------------
    fn MPI_Op_create / PMPI_Op_create(f: Option<UserFn>, commute: c_int, op: *mut c_int) [None] {
        let Some(f) = f else { bail!(err::ARG, "the function is a null pointer") };
        let h = tables(|t| t.add_op(OpObj::User { f, commute: commute != 0 }))?;
        out(op, h, "op")
    }
    fn MPI_Op_free / PMPI_Op_free(op: *mut c_int) [None] {
        let h = get(op, "the op argument")?;
        if let OpObj::Builtin(_) = state::op(h)? {
            bail!(err::OP, "a predefined operation cannot be freed");
        }
        tables(|t| {
            if let Some(i) = handles::index(handles::Kind::Op, h) {
                t.ops[i] = None;
            }
        })?;
        put(op, 0);
        Ok(())
    }
    fn MPI_Op_commutative / PMPI_Op_commutative(op: c_int, commute: *mut c_int) [None] {
        out(commute, c_int::from(state::op(op)?.commutative()), "commute")
    }
    fn MPI_Reduce_local / PMPI_Reduce_local(inbuf: *const c_void, inout: *mut c_void, count: c_int, dt: c_int, op: c_int) [None] {
        let r = coll::reduction(count, dt, op, handles::COMM_SELF, addr(inout))?;
        let a = coll::span(addr(inbuf), r.count, &r.t).to_vec();
        let mut b = coll::span(addr(inout), r.count, &r.t).to_vec();
        r.apply(&a, &mut b);
        r.t.span_to_user(&b, addr(inout), r.count);
        Ok(())
    }

    // ---------------- communicators ----------------
    fn MPI_Comm_size / PMPI_Comm_size(comm: c_int, size: *mut c_int) [Some(comm)] { out(size, comm_size(comm)? as c_int, "size") }
    fn MPI_Comm_rank / PMPI_Comm_rank(comm: c_int, rank: *mut c_int) [Some(comm)] { out(rank, state::comm(comm)?.comm.rank() as c_int, "rank") }
    fn MPI_Comm_dup / PMPI_Comm_dup(comm: c_int, new: *mut c_int) [Some(comm)] { out(new, comm::dup(comm)?, "newcomm") }
    fn MPI_Comm_split / PMPI_Comm_split(comm: c_int, color: c_int, key: c_int, new: *mut c_int) [Some(comm)] { out(new, comm::split(comm, color, key)?, "newcomm") }
    fn MPI_Comm_split_type / PMPI_Comm_split_type(comm: c_int, kind: c_int, key: c_int, _info: c_int, new: *mut c_int) [Some(comm)] {
        out(new, comm::split_type(comm, kind, key)?, "newcomm")
    }
    fn MPI_Comm_create / PMPI_Comm_create(comm: c_int, group: c_int, new: *mut c_int) [Some(comm)] { out(new, comm::create(comm, group)?, "newcomm") }
    fn MPI_Comm_free / PMPI_Comm_free(comm: *mut c_int) [None] {
        let mut h = get(comm, "the communicator argument")?;
        comm::free(&mut h)?;
        put(comm, h);
        Ok(())
    }
    fn MPI_Comm_compare / PMPI_Comm_compare(a: c_int, b: c_int, result: *mut c_int) [Some(a)] { out(result, comm::compare(a, b)?, "result") }
    fn MPI_Comm_group / PMPI_Comm_group(comm: c_int, group: *mut c_int) [Some(comm)] { out(group, comm::group_of(comm)?, "group") }
    fn MPI_Comm_test_inter / PMPI_Comm_test_inter(comm: c_int, flag: *mut c_int) [Some(comm)] {
        state::comm(comm)?;
        out(flag, 0, "flag")
    }
    fn MPI_Group_size / PMPI_Group_size(g: c_int, size: *mut c_int) [None] { out(size, comm::group_size(g)?, "size") }
    fn MPI_Group_rank / PMPI_Group_rank(g: c_int, rank: *mut c_int) [None] { out(rank, comm::group_rank(g)?, "rank") }
    fn MPI_Group_incl / PMPI_Group_incl(g: c_int, n: c_int, ranks: *const c_int, new: *mut c_int) [None] {
        out(new, comm::group_incl(g, slice(ranks, to_usize(n, "n")?, "ranks")?)?, "newgroup")
    }
    fn MPI_Group_excl / PMPI_Group_excl(g: c_int, n: c_int, ranks: *const c_int, new: *mut c_int) [None] {
        out(new, comm::group_excl(g, slice(ranks, to_usize(n, "n")?, "ranks")?)?, "newgroup")
    }
    fn MPI_Group_union / PMPI_Group_union(a: c_int, b: c_int, new: *mut c_int) [None] { out(new, comm::group_union(a, b)?, "newgroup") }
    fn MPI_Group_intersection / PMPI_Group_intersection(a: c_int, b: c_int, new: *mut c_int) [None] { out(new, comm::group_intersection(a, b)?, "newgroup") }
    fn MPI_Group_difference / PMPI_Group_difference(a: c_int, b: c_int, new: *mut c_int) [None] { out(new, comm::group_difference(a, b)?, "newgroup") }
    fn MPI_Group_translate_ranks / PMPI_Group_translate_ranks(a: c_int, n: c_int, r1: *const c_int, b: c_int, r2: *mut c_int) [None] {
        let n = to_usize(n, "n")?;
        comm::group_translate(a, slice(r1, n, "ranks1")?, b, slice_mut(r2, n, "ranks2")?)
    }
    fn MPI_Group_compare / PMPI_Group_compare(a: c_int, b: c_int, result: *mut c_int) [None] { out(result, comm::group_compare(a, b)?, "result") }
    fn MPI_Group_free / PMPI_Group_free(g: *mut c_int) [None] {
        let mut h = get(g, "the group argument")?;
        comm::group_free(&mut h)?;
        put(g, h);
        Ok(())
    }

    // ---------------- topologies ----------------
    fn MPI_Dims_create / PMPI_Dims_create(nnodes: c_int, nd: c_int, dims: *mut c_int) [None] {
        comm::dims_create(nnodes, slice_mut(dims, to_usize(nd, "ndims")?, "dims")?)
    }
    fn MPI_Cart_create / PMPI_Cart_create(comm: c_int, nd: c_int, dims: *const c_int, periods: *const c_int, _reorder: c_int, new: *mut c_int) [Some(comm)] {
        let n = to_usize(nd, "ndims")?;
        out(new, comm::cart_create(comm, slice(dims, n, "dims")?, slice(periods, n, "periods")?)?, "comm_cart")
    }
    fn MPI_Cart_coords / PMPI_Cart_coords(comm: c_int, rank: c_int, maxdims: c_int, coords: *mut c_int) [Some(comm)] {
        comm::cart_coords(comm, rank, slice_mut(coords, to_usize(maxdims, "maxdims")?, "coords")?)
    }
    fn MPI_Cart_rank / PMPI_Cart_rank(comm: c_int, coords: *const c_int, rank: *mut c_int) [Some(comm)] {
        let n = to_usize(comm::cartdim(comm)?, "ndims")?;
        out(rank, comm::cart_rank(comm, slice(coords, n, "coords")?)?, "rank")
    }
    fn MPI_Cart_shift / PMPI_Cart_shift(comm: c_int, dir: c_int, disp: c_int, src: *mut c_int, dst: *mut c_int) [Some(comm)] {
        let (s, d) = comm::cart_shift(comm, dir, disp)?;
        put(src, s);
        put(dst, d);
        Ok(())
    }
    fn MPI_Cart_sub / PMPI_Cart_sub(comm: c_int, remain: *const c_int, new: *mut c_int) [Some(comm)] {
        let n = to_usize(comm::cartdim(comm)?, "ndims")?;
        out(new, comm::cart_sub(comm, slice(remain, n, "remain_dims")?)?, "newcomm")
    }
    fn MPI_Cart_get / PMPI_Cart_get(comm: c_int, maxdims: c_int, dims: *mut c_int, periods: *mut c_int, coords: *mut c_int) [Some(comm)] {
        let (cart, co) = comm::cart_get(comm)?;
        let n = to_usize(maxdims, "maxdims")?.min(cart.dims.len());
        slice_mut(dims, n, "dims")?.copy_from_slice(&cart.dims[..n]);
        for (o, &p) in slice_mut(periods, n, "periods")?.iter_mut().zip(&cart.periods) {
            *o = c_int::from(p);
        }
        slice_mut(coords, n, "coords")?.copy_from_slice(&co[..n]);
        Ok(())
    }
    fn MPI_Cartdim_get / PMPI_Cartdim_get(comm: c_int, nd: *mut c_int) [Some(comm)] { out(nd, comm::cartdim(comm)?, "ndims") }
    fn MPI_Topo_test / PMPI_Topo_test(comm: c_int, status: *mut c_int) [Some(comm)] { out(status, comm::topo_test(comm)?, "status") }
}

export! {
    // ---------------- the self checkpointer (MPIX_Ckpt_*, docs/abi.md) ----------------
    fn MPIX_Ckpt_protect / PMPIX_Ckpt_protect(id: c_int, ptr: *mut c_void, bytes: usize) [None] { ckpt::protect(id, ptr, bytes) }
    fn MPIX_Ckpt_unprotect / PMPIX_Ckpt_unprotect(id: c_int) [None] { ckpt::unprotect(id) }
    fn MPIX_Ckpt_restarted / PMPIX_Ckpt_restarted(flag: *mut c_int) [None] { out(flag, c_int::from(ckpt::restarted()?), "flag") }
    fn MPIX_Ckpt_recover / PMPIX_Ckpt_recover() [None] { ckpt::recover() }
    fn MPIX_Ckpt_safepoint / PMPIX_Ckpt_safepoint() [None] { ckpt::safepoint() }
    fn MPIX_Ckpt_request / PMPIX_Ckpt_request() [None] { ckpt::request() }
    fn MPIX_Ckpt_disable / PMPIX_Ckpt_disable() [None] { ckpt::disable() }
    fn MPIX_Ckpt_enable / PMPIX_Ckpt_enable() [None] { ckpt::enable() }
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn PMPI_Wtime() -> c_double {
    state::seconds()
}

weak_alias!(MPI_Wtime, PMPI_Wtime);

#[unsafe(no_mangle)]
pub(crate) extern "C" fn PMPI_Wtick() -> c_double {
    1e-9
}

weak_alias!(MPI_Wtick, PMPI_Wtick);

fn persistent(p: Persist, req: *mut c_int) -> Res {
    // Validate now, so errors show at the call that made the request.
    state::comm(p.comm)?;
    request::check_buffer(p.buf, p.count, p.dt)?;
    let h = request::register(State::Inactive, Some(p))?;
    out(req, h, "the request argument")
}

fn start_one(h: c_int) -> Res {
    let mut req = tables(|t| t.take_request(h))??;
    let r = match req.persistent {
        Some(p) if matches!(req.state, State::Inactive) => {
            request::start(&p).map(|s| req.state = s)
        }
        Some(_) => Err(error(
            err::REQUEST,
            "the persistent request is already active",
        )),
        None => Err(error(err::REQUEST, "the request is not persistent")),
    };
    tables(|t| t.put_request(h, req))?;
    r
}

fn probe(source: c_int, tag: c_int, comm: c_int, flag: &mut c_int, status: *mut MpiStatus) -> Res {
    let c = state::comm(comm)?;
    if source == handles::PROC_NULL {
        *flag = 1;
        request::write_status(
            status,
            MpiStatus::new(handles::PROC_NULL, handles::ANY_TAG, 0),
        );
        return Ok(());
    }
    let src = if source == handles::ANY_SOURCE {
        None
    } else {
        request::check_rank(&c, source, "source rank")?;
        Some(c.comm.world_rank(i64::from(source))?)
    };
    let t = (tag != handles::ANY_TAG).then_some(tag);
    let ctx = c.comm.p2p_ctx();
    match with_engine(|e| e.iprobe(ctx, src, t))?? {
        Some(s) => {
            *flag = 1;
            let src = c
                .comm
                .local_rank(s.source)
                .map_or(handles::ANY_SOURCE, |r| r as c_int);
            request::write_status(status, MpiStatus::new(src, s.tag, s.count));
        }
        None => *flag = 0,
    }
    Ok(())
}

/// The thread level MPI_Init_thread granted (MPI_Init grants SINGLE).
static THREAD_LEVEL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

static TAG_UB_VALUE: c_int = engine::TAG_UB;
static HOST_VALUE: c_int = handles::PROC_NULL;
static IO_VALUE: c_int = handles::ANY_SOURCE;
static WTIME_GLOBAL_VALUE: c_int = 0;
static APPNUM_VALUE: c_int = 0;
static UNIVERSE_SIZE_VALUE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The value of a predefined attribute, as an address C reads the int through.
fn attr_address(comm: c_int, key: c_int) -> Res<Option<*const c_int>> {
    state::comm(comm)?;
    Ok(match key {
        handles::TAG_UB => Some(&TAG_UB_VALUE),
        handles::HOST => Some(&HOST_VALUE),
        handles::IO => Some(&IO_VALUE),
        handles::WTIME_IS_GLOBAL => Some(&WTIME_GLOBAL_VALUE),
        handles::APPNUM => Some(&APPNUM_VALUE),
        handles::UNIVERSE_SIZE => {
            let n = comm_size(handles::COMM_WORLD)? as c_int;
            UNIVERSE_SIZE_VALUE.store(n, std::sync::atomic::Ordering::Relaxed);
            Some(UNIVERSE_SIZE_VALUE.as_ptr().cast_const())
        }
        _ => None,
    })
}

/// The value of a predefined attribute (Fortran gets values, not addresses).
pub(crate) fn attr_value(comm: c_int, key: c_int) -> Res<Option<c_int>> {
    Ok(match key {
        handles::UNIVERSE_SIZE => attr_address(comm, key)?
            .map(|_| comm_size(handles::COMM_WORLD).map(|n| n as c_int))
            .transpose()?,
        handles::TAG_UB => attr_address(comm, key)?.map(|_| TAG_UB_VALUE),
        handles::HOST => attr_address(comm, key)?.map(|_| HOST_VALUE),
        handles::IO => attr_address(comm, key)?.map(|_| IO_VALUE),
        handles::WTIME_IS_GLOBAL => attr_address(comm, key)?.map(|_| WTIME_GLOBAL_VALUE),
        handles::APPNUM => attr_address(comm, key)?.map(|_| APPNUM_VALUE),
        _ => {
            state::comm(comm)?;
            None
        }
    })
}

fn attr_get(comm: c_int, key: c_int, value: *mut *const c_int, flag: *mut c_int) -> Res {
    match attr_address(comm, key)? {
        Some(p) => {
            out(value, p, "attribute_val")?;
            out(flag, 1, "flag")
        }
        None => out(flag, 0, "flag"),
    }
}

#[allow(clippy::too_many_arguments)]
fn igatherv(
    s: usize,
    sc: c_int,
    st: c_int,
    r: usize,
    rcs: &[c_int],
    ds: &[c_int],
    rt: c_int,
    root: c_int,
    comm: c_int,
) -> Res<nbc::Nbc> {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    if root < 0 || root as usize >= n {
        bail!(err::ROOT, "invalid root {root} (communicator of {n} ranks)");
    }
    let me = c.comm.rank() as usize;
    let root = root as usize;
    let mut p = nbc::Pattern {
        sends: vec![None; n],
        recvs: vec![None; n],
        shared: false,
    };
    if me == root {
        let (t, _) = request::check_buffer(r, 0, rt)?;
        let counts = rcs
            .iter()
            .map(|&k| to_usize(k, "the receive counts"))
            .collect::<Res<Vec<_>>>()?;
        coll::check_blocks(r, &counts, &t)?;
        for i in 0..n {
            let k = counts[i];
            let a = (r as isize + ds[i] as isize * t.extent) as usize;
            if i == me && coll::in_place(s) {
                continue;
            }
            p.recvs[i] = Some((k, t.clone(), a));
        }
        if !coll::in_place(s) {
            let (t, k) = request::check_buffer(s, sc, st)?;
            p.sends[me] = Some((k, t, s));
        }
    } else {
        let (t, k) = request::check_buffer(s, sc, st)?;
        p.sends[root] = Some((k, t, s));
    }
    nbc::run_pattern(comm, p)
}

#[allow(clippy::too_many_arguments)]
fn iscatterv(
    s: usize,
    scs: &[c_int],
    ds: &[c_int],
    st: c_int,
    r: usize,
    rc: c_int,
    rt: c_int,
    root: c_int,
    comm: c_int,
) -> Res<nbc::Nbc> {
    let c = state::comm(comm)?;
    let n = c.comm.size() as usize;
    if root < 0 || root as usize >= n {
        bail!(err::ROOT, "invalid root {root} (communicator of {n} ranks)");
    }
    let me = c.comm.rank() as usize;
    let root = root as usize;
    let mut p = nbc::Pattern {
        sends: vec![None; n],
        recvs: vec![None; n],
        shared: false,
    };
    if me == root {
        let (t, _) = request::check_buffer(s, 0, st)?;
        let counts = scs
            .iter()
            .map(|&k| to_usize(k, "the send counts"))
            .collect::<Res<Vec<_>>>()?;
        coll::check_blocks(s, &counts, &t)?;
        for i in 0..n {
            if i == me && coll::in_place(r) {
                continue;
            }
            let k = counts[i];
            p.sends[i] = Some((
                k,
                t.clone(),
                (s as isize + ds[i] as isize * t.extent) as usize,
            ));
        }
        if !coll::in_place(r) {
            let (t, k) = request::check_buffer(r, rc, rt)?;
            p.recvs[me] = Some((k, t, r));
        }
    } else {
        let (t, k) = request::check_buffer(r, rc, rt)?;
        p.recvs[root] = Some((k, t, r));
    }
    nbc::run_pattern(comm, p)
}

#[allow(clippy::too_many_arguments)]
fn ialltoallv(
    s: usize,
    scs: &[c_int],
    sds: &[c_int],
    st: c_int,
    r: usize,
    rcs: &[c_int],
    rds: &[c_int],
    rt: c_int,
    comm: c_int,
) -> Res<nbc::Nbc> {
    let n = comm_size(comm)?;
    let (rtt, _) = request::check_buffer(r, 0, rt)?;
    let (stt, sbase) = if coll::in_place(s) {
        (rtt.clone(), r)
    } else {
        (request::check_buffer(s, 0, st)?.0, s)
    };
    let mut p = nbc::Pattern {
        sends: Vec::new(),
        recvs: Vec::new(),
        shared: coll::in_place(s),
    };
    for i in 0..n {
        p.sends.push(Some((
            to_usize(scs[i], "the send counts")?,
            stt.clone(),
            (sbase as isize + sds[i] as isize * stt.extent) as usize,
        )));
        p.recvs.push(Some((
            to_usize(rcs[i], "the receive counts")?,
            rtt.clone(),
            (r as isize + rds[i] as isize * rtt.extent) as usize,
        )));
    }
    nbc::run_pattern(comm, p)
}
