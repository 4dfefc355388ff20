//! The environment: init, finalize, abort, time, names, versions, error strings.

use crate::ffi::{Res, bail, error};
use crate::handles::err;
use crate::request;
use crate::state::{self, runtime, tables};

pub(crate) fn init() -> Res {
    state::init()
}

pub(crate) fn finalize() -> Res {
    let rt = runtime()?;
    // MPI_Finalize is a disabled region; `session::finalize` then refuses every request.
    if let (Ok(mut entry), Ok(mut e)) = (rt.entry.try_borrow_mut(), rt.engine.try_borrow_mut()) {
        entry.disable(&mut e);
    }
    request::drain_detached()?;
    let mut e = rt
        .engine
        .try_borrow_mut()
        .map_err(|_| error(err::INTERN, "the engine is busy"))?;
    let mut control = rt
        .control
        .try_borrow_mut()
        .map_err(|_| error(err::INTERN, "the control stream is busy"))?;
    let r = engine::session::finalize(&mut e, control.as_mut());
    control.take();
    drop(e);
    state::mark_finalized();
    r.map_err(|e| error(err::OTHER, crate::env::chain(&e)))
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

pub(crate) fn abort(code: i32) -> ! {
    let rank = state::world_rank();
    eprintln!("mpicr: MPI_Abort: rank {rank}: the program aborted the job with code {code}");
    state::abort_job(code, &format!("MPI_Abort was called with code {code}"))
}

pub(crate) fn processor_name() -> String {
    std::env::var("MPICR_NODE").unwrap_or_else(|_| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into())
    })
}

pub(crate) const LIBRARY_VERSION: &str = concat!(
    "mpicr ",
    env!("CARGO_PKG_VERSION"),
    " (MPI 3.1 C/Fortran ABI)"
);

pub(crate) fn error_string(code: i32) -> Res<&'static str> {
    if !(0..=err::LASTCODE).contains(&code) {
        bail!(err::ARG, "invalid error code {code}");
    }
    Ok(err::describe(code))
}

pub(crate) fn bsend_attach(addr: usize, size: i32) -> Res {
    if size < 0 {
        bail!(err::ARG, "buffer size {size} is negative");
    }
    tables(|t| {
        if t.bsend_buffer.is_some() {
            return Err(error(err::BUFFER, "a buffer is already attached"));
        }
        t.bsend_buffer = Some((addr, size as usize));
        Ok(())
    })?
}

pub(crate) fn bsend_detach() -> Res<(usize, i32)> {
    request::drain_detached()?;
    let b = tables(|t| t.bsend_buffer.take())?;
    Ok(b.map_or((0, 0), |(a, s)| (a, s as i32)))
}
