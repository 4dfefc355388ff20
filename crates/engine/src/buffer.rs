//! Buffers the engine reads or writes after the call that named them has returned.
//!
//! A non-blocking send or receive hands the engine a buffer that the caller keeps owning; the
//! engine touches it until the request completes. That contract cannot be written in the
//! engine's own types (requests live in a table, buffers in the caller's frame), so it is
//! written here once: a [`SendBuf`] or [`RecvBuf`] can only be made by an `unsafe` constructor
//! whose caller promises the memory stays valid, and unaliased for a `RecvBuf`, until the
//! request that carries it has completed. The `mpicr` crate keeps that promise with request
//! scopes; the engine's own collectives keep it by waiting for every request they start
//! before returning. Everything else in the engine is safe code.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::EngineError;
use crate::engine::{Engine, Status};

/// Bytes the engine may read until the request carrying them completes.
#[derive(Debug, Clone, Copy)]
pub struct SendBuf {
    ptr: *const u8,
    len: usize,
}

/// Bytes the engine may write until the request carrying them completes.
#[derive(Debug)]
pub struct RecvBuf {
    ptr: *mut u8,
    len: usize,
}

impl SendBuf {
    /// # Safety
    /// `ptr..ptr+len` must be readable, and not written by anyone, until the request this
    /// buffer is given to has completed (or for the whole call, for a blocking operation).
    pub unsafe fn from_raw(ptr: *const u8, len: usize) -> Self {
        Self { ptr, len }
    }

    /// A send buffer for a slice that outlives a blocking call that waits for its request.
    ///
    /// # Safety
    /// The caller must complete the request before the borrow of `bytes` ends.
    pub unsafe fn from_slice(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address a peer on this node reads the bytes from with cross-memory attach.
    pub fn address(&self) -> u64 {
        self.ptr as u64
    }

    /// The bytes; valid by the constructor's contract while the request is incomplete.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the constructor's caller guaranteed ptr..ptr+len readable and unmodified
        // while the request is in flight, which is whenever the engine holds this buffer.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl RecvBuf {
    /// # Safety
    /// `ptr..ptr+len` must be writable and accessed by no one else until the request this
    /// buffer is given to has completed.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Self {
        Self { ptr, len }
    }

    /// A receive buffer for a slice borrowed by a call that waits for the request.
    ///
    /// # Safety
    /// The caller must complete the request before the borrow of `bytes` ends.
    pub unsafe fn from_slice(bytes: &mut [u8]) -> Self {
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes; exclusive by the constructor's contract while the request is incomplete.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: the constructor's caller guaranteed ptr..ptr+len writable and used by no one
        // else while the request is in flight; `&mut self` makes this the only live view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl SendBuf {
    /// The first `n` bytes (at most all of them), under the same contract.
    pub(crate) fn prefix(&self, n: usize) -> Self {
        Self {
            ptr: self.ptr,
            len: n.min(self.len),
        }
    }
}

/// A blocking send of a borrowed slice: the request is finished before the borrow ends.
pub fn send(
    engine: &mut Engine,
    ctx: u32,
    dest: u32,
    tag: i32,
    data: &[u8],
) -> Result<(), EngineError> {
    // SAFETY: `Engine::send` returns once the send is complete; on an error it abandons the
    // request, which copies or drops every reference to `data` first.
    engine.send(ctx, dest, tag, unsafe { SendBuf::from_slice(data) })
}

/// A blocking receive into a borrowed slice.
pub fn recv(
    engine: &mut Engine,
    ctx: u32,
    source: Option<u32>,
    tag: Option<i32>,
    buf: &mut [u8],
) -> Result<Status, EngineError> {
    // SAFETY: as in `send`: completed or abandoned before the borrow of `buf` ends.
    engine.recv(ctx, source, tag, unsafe { RecvBuf::from_slice(buf) })
}

/// One send of an [`exchange`]: world rank, tag and bytes, on `ctx`.
#[derive(Debug)]
pub struct Out<'a> {
    pub dest: u32,
    pub tag: i32,
    pub data: &'a [u8],
}

/// One receive of an [`exchange`].
#[derive(Debug)]
pub struct In<'a> {
    pub source: u32,
    pub tag: i32,
    pub buf: &'a mut [u8],
}

/// Starts every receive, then every send, and waits for all of them: the building block of the
/// collectives. No request outlives the call, whatever happens. Returns the receives' statuses.
pub fn exchange(
    engine: &mut Engine,
    ctx: u32,
    sends: &[Out<'_>],
    recvs: &mut [In<'_>],
) -> Result<Vec<Status>, EngineError> {
    let mut ids = Vec::with_capacity(sends.len() + recvs.len());
    let started = (|| {
        for r in recvs.iter_mut() {
            // SAFETY: every id is waited for or abandoned below, before `recvs` is released.
            let b = unsafe { RecvBuf::from_slice(r.buf) };
            ids.push(engine.irecv(ctx, Some(r.source), Some(r.tag), b)?);
        }
        for s in sends {
            // SAFETY: as above, for `sends`.
            let b = unsafe { SendBuf::from_slice(s.data) };
            ids.push(engine.isend(ctx, s.dest, s.tag, b)?);
        }
        Ok(())
    })();
    let result = started.and_then(|()| engine.wait_all(&ids));
    match result {
        Ok(mut statuses) => {
            statuses.truncate(recvs.len());
            Ok(statuses)
        }
        Err(e) => {
            for &id in &ids {
                engine.abandon(id);
            }
            Err(e)
        }
    }
}

/// A region in which non-blocking operations may borrow buffers; see [`scope`].
///
/// `'s` is the lifetime of the scope itself and `'e` that of its surroundings (the engine and
/// every buffer borrowed from outside). The closure given to [`scope`] must work for every
/// `'s` within `'e`, so a buffer must be borrowed for all of `'e`: it outlives the point where
/// the scope waits for every request it started. (The same construction as `std::thread::scope`.)
pub struct Scope<'s, 'e: 's> {
    engine: &'e RefCell<Engine>,
    ids: RefCell<Vec<u64>>,
    _scope: PhantomData<&'s mut &'s ()>,
    _env: PhantomData<&'e mut &'e ()>,
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.ids.borrow().len())
            .finish()
    }
}

/// Runs `f` with a scope for non-blocking operations and, before returning (also when `f`
/// panics), completes every request started in it that `f` did not complete itself.
pub fn scope<'e, R>(
    engine: &'e RefCell<Engine>,
    f: impl for<'s> FnOnce(&'s Scope<'s, 'e>) -> R,
) -> R {
    struct Finish<'a, 'e>(&'a RefCell<Vec<u64>>, &'e RefCell<Engine>);
    impl Drop for Finish<'_, '_> {
        fn drop(&mut self) {
            let ids = std::mem::take(&mut *self.0.borrow_mut());
            let mut engine = self.1.borrow_mut();
            for id in ids {
                if engine.wait(id).is_err() {
                    engine.abandon(id);
                }
            }
        }
    }
    let scope = Scope {
        engine,
        ids: RefCell::new(Vec::new()),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let _finish = Finish(&scope.ids, engine);
    f(&scope)
}

impl<'s, 'e> Scope<'s, 'e> {
    /// Starts a send of `data`, which stays borrowed until the scope ends.
    pub fn isend(
        &'s self,
        ctx: u32,
        dest: u32,
        tag: i32,
        data: &'s [u8],
    ) -> Result<u64, EngineError> {
        // SAFETY: `data` is borrowed for 's; the scope completes or abandons the request
        // before 's ends (in `scope`'s drop guard, which also runs on unwind).
        let b = unsafe { SendBuf::from_slice(data) };
        let id = self.engine.borrow_mut().isend(ctx, dest, tag, b)?;
        self.ids.borrow_mut().push(id);
        Ok(id)
    }

    /// Starts a receive into `buf`, which stays borrowed until the scope ends.
    pub fn irecv(
        &'s self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
        buf: &'s mut [u8],
    ) -> Result<u64, EngineError> {
        // SAFETY: as in `isend`, for the exclusive borrow of `buf`.
        let b = unsafe { RecvBuf::from_slice(buf) };
        let id = self.engine.borrow_mut().irecv(ctx, source, tag, b)?;
        self.ids.borrow_mut().push(id);
        Ok(id)
    }

    /// Waits for request `id` of this scope and returns its status.
    pub fn wait(&self, id: u64) -> Result<Status, EngineError> {
        let mut engine = self.engine.borrow_mut();
        let result = engine.wait(id);
        if result.is_err() {
            engine.abandon(id);
        }
        self.ids.borrow_mut().retain(|&i| i != id);
        result
    }

    /// Waits for several requests of this scope; the first error after all have finished.
    pub fn wait_all(&self, ids: &[u64]) -> Result<Vec<Status>, EngineError> {
        let mut engine = self.engine.borrow_mut();
        let result = engine.wait_all(ids);
        if result.is_err() {
            for &id in ids {
                engine.abandon(id);
            }
        }
        self.ids.borrow_mut().retain(|i| !ids.contains(i));
        result
    }

    /// The status of request `id` if it has completed (which ends it), else `None`.
    pub fn test(&self, id: u64) -> Result<Option<Status>, EngineError> {
        let mut engine = self.engine.borrow_mut();
        match engine.test(id) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                engine.abandon(id);
                self.ids.borrow_mut().retain(|&i| i != id);
                return Err(e);
            }
        }
        let result = engine.take(id);
        self.ids.borrow_mut().retain(|&i| i != id);
        result.map(Some)
    }

    /// The engine this scope runs on.
    pub fn engine(&self) -> &'e RefCell<Engine> {
        self.engine
    }
}
