//! The `self` checkpointer's C API (`MPIX_Ckpt_*`, docs/abi.md): the program protects memory
//! regions, and at a safepoint where the job's checkpoint is due the application layer of the
//! checkpoint callbacks copies every protected region into the rank's part, as section
//! `app/region-<id>`. After a restart, `MPIX_Ckpt_recover` copies them back.
//!
//! The regions are raw memory of the caller's: the contract (documented in mpi.h and
//! docs/abi.md) is that a protected region stays valid, readable and writable, until it is
//! unprotected or MPI is finalized. The library reads it only inside `MPIX_Ckpt_safepoint` and
//! writes it only inside `MPIX_Ckpt_recover`, both on the thread that initialized MPI.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::rc::Rc;

use crs::{Callback, CrsError, CrsState};

use crate::ffi::{Res, bail, error};
use crate::handles::{self, err};
use crate::state::runtime;

/// A protected region: `len` bytes at `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Region {
    addr: usize,
    len: usize,
}

/// The protected regions of this process, by id.
pub(crate) type Regions = Rc<RefCell<BTreeMap<i32, Region>>>;

/// The section a region is saved as.
fn section(id: i32) -> String {
    crs::app_section(&format!("region-{id}"))
}

/// The id of a region section, if `name` is one.
fn region_id(name: &str) -> Option<i32> {
    name.strip_prefix("app/region-")?.parse().ok()
}

/// A copy of the bytes of a protected region.
fn copy_of(r: Region) -> Vec<u8> {
    if r.len == 0 {
        return Vec::new();
    }
    // SAFETY: `addr..addr+len` was given to MPIX_Ckpt_protect (checked non-null there), and
    // the caller promised that it stays valid until MPIX_Ckpt_unprotect; this is called only
    // inside MPIX_Ckpt_safepoint, on the MPI thread, while the program is not touching it,
    // and the view ends with this copy.
    let bytes = unsafe { std::slice::from_raw_parts(r.addr as *const u8, r.len) };
    bytes.to_vec()
}

/// The application layer of the checkpoint callbacks: on CHECKPOINT, copies every protected
/// region into a section of the part, then calls the layers beneath.
pub(crate) fn application_layer(regions: Regions) -> impl FnOnce(Callback) -> Callback {
    move |mut prev| {
        Box::new(move |ev| {
            if ev.state == CrsState::Checkpoint {
                let regions = regions.try_borrow().map_err(|_| {
                    CrsError::Application("the protected regions are being changed".into())
                })?;
                for (&id, &r) in regions.iter() {
                    ev.sections.push((section(id), copy_of(r)));
                }
            }
            prev(ev)
        })
    }
}

/// A CRS error as an MPI error: a checkpoint refused at a safepoint because a non-blocking
/// request is outstanding is MPI_ERR_PENDING, a snapshot that cannot be read MPI_ERR_OTHER.
pub(crate) fn crs_error(e: CrsError) -> crate::ffi::Error {
    match e {
        CrsError::Engine(engine::EngineError::Checkpoint(reason)) => error(err::PENDING, reason),
        CrsError::Engine(e) => e.into(),
        other => error(err::OTHER, crate::env::chain(&other)),
    }
}

fn regions() -> Res<&'static RefCell<BTreeMap<i32, Region>>> {
    Ok(&runtime()?.regions)
}

/// MPIX_Ckpt_protect: `bytes` at `ptr` are saved as region `id` at every checkpoint; protecting
/// an id again replaces its region.
pub(crate) fn protect(id: i32, ptr: *mut c_void, bytes: usize) -> Res {
    if id < 0 {
        bail!(err::ARG, "region id {id} is negative");
    }
    if ptr.is_null() && bytes > 0 {
        bail!(
            err::BUFFER,
            "region {id}: the pointer is null but the size is {bytes} bytes"
        );
    }
    if (ptr as usize).checked_add(bytes).is_none() || bytes > isize::MAX as usize {
        bail!(
            err::COUNT,
            "region {id}: {bytes} bytes do not fit in memory"
        );
    }
    let r = Region {
        addr: ptr as usize,
        len: bytes,
    };
    regions()?
        .try_borrow_mut()
        .map_err(|_| error(err::INTERN, "the protected regions are busy"))?
        .insert(id, r);
    Ok(())
}

/// MPIX_Ckpt_unprotect: region `id` is no longer saved.
pub(crate) fn unprotect(id: i32) -> Res {
    let removed = regions()?
        .try_borrow_mut()
        .map_err(|_| error(err::INTERN, "the protected regions are busy"))?
        .remove(&id);
    match removed {
        Some(_) => Ok(()),
        None => Err(error(err::ARG, format!("region {id} is not protected"))),
    }
}

/// MPIX_Ckpt_restarted: whether this run continues from a snapshot.
pub(crate) fn restarted() -> Res<bool> {
    Ok(runtime()?.restarted.is_some())
}

/// MPIX_Ckpt_recover: copies every region the snapshot holds back into the protected region
/// of the same id. The ids and sizes must match exactly; on a mismatch nothing is copied.
/// Does nothing in a run that is not a restart.
pub(crate) fn recover() -> Res {
    let rt = runtime()?;
    let Some(restarted) = &rt.restarted else {
        return Ok(());
    };
    let regions = rt
        .regions
        .try_borrow()
        .map_err(|_| error(err::INTERN, "the protected regions are busy"))?;
    let saved: BTreeMap<i32, &[u8]> = restarted
        .sections
        .iter()
        .filter_map(|(name, bytes)| Some((region_id(name)?, bytes.as_slice())))
        .collect();
    for (&id, bytes) in &saved {
        match regions.get(&id) {
            None => bail!(
                err::ARG,
                "the snapshot holds region {id} ({} bytes), which is not protected in this run (protected: {})",
                bytes.len(),
                list(regions.keys())
            ),
            Some(r) if r.len != bytes.len() => bail!(
                err::COUNT,
                "region {id} is protected with {} bytes, but the snapshot saved {} bytes",
                r.len,
                bytes.len()
            ),
            Some(_) => {}
        }
    }
    if let Some(id) = regions.keys().find(|id| !saved.contains_key(id)) {
        bail!(
            err::ARG,
            "region {id} is protected, but the snapshot holds no region {id} (saved: {})",
            list(saved.keys())
        );
    }
    for (id, bytes) in saved {
        let r = regions[&id];
        if r.len == 0 {
            continue;
        }
        // SAFETY: region `id` was protected with `r.len` bytes at `r.addr` (non-null, checked
        // by protect), which the caller promised are valid and writable until unprotected; the
        // program is inside MPIX_Ckpt_recover, so nothing else accesses them; `bytes` is a
        // separate heap buffer of the same length.
        let dst = unsafe { std::slice::from_raw_parts_mut(r.addr as *mut u8, r.len) };
        dst.copy_from_slice(bytes);
    }
    Ok(())
}

fn list<'a>(ids: impl Iterator<Item = &'a i32>) -> String {
    let v: Vec<String> = ids.map(i32::to_string).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Runs `f` on this rank's checkpoint entry point and engine.
fn with_entry<R>(f: impl FnOnce(&mut crs::EntryPoint, &mut engine::Engine) -> R) -> Res<R> {
    let rt = runtime()?;
    let mut engine = rt.engine.try_borrow_mut().map_err(|_| {
        error(
            err::OTHER,
            "MPI was called from inside a reduction function",
        )
    })?;
    let mut entry = rt
        .entry
        .try_borrow_mut()
        .map_err(|_| error(err::INTERN, "the checkpoint entry point is busy"))?;
    Ok(f(&mut entry, &mut engine))
}

/// MPIX_Ckpt_safepoint: counts the safepoint and, when the job's checkpoint is due here,
/// takes this rank's part (the protected regions and the channel state).
pub(crate) fn safepoint() -> Res {
    match with_entry(|entry, engine| entry.safepoint(engine))?.map_err(crs_error) {
        Ok(_) => Ok(()),
        Err(mut e) if e.class == err::PENDING => {
            // The engine names its own request id; add the program's handles.
            let active = active_requests();
            if !active.is_empty() {
                e.msg = format!("{} (active MPI_Request handles: {active})", e.msg);
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The handles of the program's requests that are still in progress.
fn active_requests() -> String {
    crate::state::tables(|t| {
        t.requests
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.as_ref().is_some_and(|r| {
                    matches!(
                        r.state,
                        crate::request::State::Engine { .. } | crate::request::State::Nbc(_)
                    )
                })
            })
            .map(|(i, _)| handles::make(handles::Kind::Request, i as i32).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// MPIX_Ckpt_request: asks the coordinator for a global checkpoint, taken at an upcoming
/// safepoint.
pub(crate) fn request() -> Res {
    crate::state::with_engine(|e| e.request_checkpoint())??;
    Ok(())
}

/// MPIX_Ckpt_disable: no snapshot is taken until MPIX_Ckpt_enable (regions nest).
pub(crate) fn disable() -> Res {
    with_entry(|entry, engine| entry.disable(engine))?;
    let rt = runtime()?;
    rt.app_disabled.set(rt.app_disabled.get().saturating_add(1));
    Ok(())
}

/// MPIX_Ckpt_enable: ends a region opened by MPIX_Ckpt_disable; a deferred image checkpoint
/// begins now.
pub(crate) fn enable() -> Res {
    let rt = runtime()?;
    let open = rt.app_disabled.get();
    if open == 0 {
        bail!(
            err::OTHER,
            "MPIX_Ckpt_enable without a matching MPIX_Ckpt_disable"
        );
    }
    rt.app_disabled.set(open - 1);
    with_entry(|entry, engine| entry.enable(engine))?.map_err(crs_error)
}

/// Flushes every C stdio stream (`fflush(NULL)`) just before a process image is captured:
/// bytes still buffered would otherwise be written once by this process and again by the
/// process restored from the image.
pub(crate) fn flush_c_stdio() {
    unsafe extern "C" {
        fn fflush(stream: *mut c_void) -> i32;
    }
    // SAFETY: fflush(NULL) flushes all open output streams; it takes no other pointer and
    // is called on the MPI thread, outside any stdio call of the program.
    unsafe {
        fflush(std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_sections_are_named_by_id() {
        assert_eq!(section(7), "app/region-7");
        assert_eq!(region_id(&section(7)), Some(7));
        assert_eq!(region_id("app/state"), None);
        assert_eq!(region_id("runtime/meta"), None);
    }
}
