//! The state of this process's MPI library: the engine and the handle tables.
//!
//! MPI_THREAD_FUNNELED at most: every call comes from the thread that initialized MPI, so the
//! state is thread-local. The engine and the tables live in separate cells so that a user
//! reduction function running inside a collective may still look up handles.

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use engine::{Comm, Engine};

use crate::ckpt::{self, Regions};
use crate::dtype::{self, Dtype};
use crate::ffi::{Res, bail, error};
use crate::handles::{self, ERRORS_ARE_FATAL, Kind, err};
use crate::ops::{self, OpObj};
use crate::request::Request;

pub(crate) struct Runtime {
    pub engine: RefCell<Engine>,
    pub control: RefCell<Option<UnixStream>>,
    /// The checkpoint/restart entry point of this rank.
    pub entry: RefCell<crs::EntryPoint>,
    /// What the snapshot this run continues from holds (MPIX_Ckpt_restarted, _recover).
    pub restarted: Option<crs::Restarted>,
    /// The regions MPIX_Ckpt_protect named; the application layer saves them.
    pub regions: Regions,
    /// Open MPIX_Ckpt_disable regions of the program.
    pub app_disabled: Cell<u32>,
}

/// 0: never initialized, 1: initialized, 2: finalized.
static PHASE: AtomicU8 = AtomicU8::new(0);

/// The thread-local state, in one place so that the short path of MPI_Send and MPI_Recv
/// reaches both the engine and the tables with one thread-local access (in a shared library
/// each access is a call into the dynamic linker).
struct Local {
    runtime: Cell<Option<&'static Runtime>>,
    tables: RefCell<Tables>,
}

thread_local! {
    static LOCAL: Local = Local {
        runtime: Cell::new(None),
        tables: RefCell::new(Tables::new()),
    };
    static START: Instant = Instant::now();
}

pub(crate) fn initialized() -> bool {
    PHASE.load(Ordering::SeqCst) >= 1
}

pub(crate) fn finalized() -> bool {
    PHASE.load(Ordering::SeqCst) == 2
}

pub(crate) fn seconds() -> f64 {
    START.with(|s| s.elapsed().as_secs_f64())
}

/// Joins the job and creates MPI_COMM_WORLD and MPI_COMM_SELF.
pub(crate) fn init() -> Res {
    if PHASE
        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        bail!(err::OTHER, "MPI was already initialized");
    }
    seconds();
    let joined = engine::join().map_err(engine::EngineError::from)?;
    let mut engine = joined.engine;
    // A restarted rank is brought back before the engine makes any progress, so that the
    // messages its snapshot holds come before anything its peers send now.
    let regions = Regions::default();
    let (mut entry, restarted) =
        crs::EntryPoint::start(&mut engine, ckpt::application_layer(regions.clone()))
            .map_err(ckpt::crs_error)?;
    crs::before_image_capture(Box::new(ckpt::flush_c_stdio));
    // MPI_Init is a disabled region: no snapshot is taken inside it.
    entry.disable(&mut engine);
    let rt: &'static Runtime = Box::leak(Box::new(Runtime {
        engine: RefCell::new(engine),
        control: RefCell::new(joined.control),
        entry: RefCell::new(entry),
        restarted,
        regions,
        app_disabled: Cell::new(0),
    }));
    LOCAL.with(|l| l.runtime.set(Some(rt)));
    let (world, me) = {
        let mut e = rt.engine.borrow_mut();
        let world = Comm::world(&e);
        let rank = world.rank();
        let me = world
            .split(&mut e, Some(rank), 0)?
            .ok_or_else(|| error(err::INTERN, "MPI_COMM_SELF could not be made"))?;
        (world, me)
    };
    tables(|t| {
        t.comms[1] = Some(Rc::new(CommObj::new(world, None)));
        t.comms[2] = Some(Rc::new(CommObj::new(me, None)));
    })?;
    rt.entry
        .borrow_mut()
        .enable(&mut rt.engine.borrow_mut())
        .map_err(ckpt::crs_error)
}

pub(crate) fn mark_finalized() {
    PHASE.store(2, Ordering::SeqCst);
}

pub(crate) fn runtime() -> Res<&'static Runtime> {
    match LOCAL.with(|l| l.runtime.get()) {
        Some(rt) if !finalized() => Ok(rt),
        Some(_) => Err(error(err::OTHER, "MPI has been finalized")),
        None => Err(error(
            err::OTHER,
            "MPI is not initialized (call MPI_Init first)",
        )),
    }
}

/// Runs `f` on the engine.
pub(crate) fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> Res<R> {
    let rt = runtime()?;
    let mut e = rt.engine.try_borrow_mut().map_err(|_| {
        error(
            err::OTHER,
            "MPI was called from inside a reduction function",
        )
    })?;
    Ok(f(&mut e))
}

/// Runs `f` on the handle tables.
pub(crate) fn tables<R>(f: impl FnOnce(&mut Tables) -> R) -> Res<R> {
    LOCAL.with(|l| {
        let mut t = l
            .tables
            .try_borrow_mut()
            .map_err(|_| error(err::INTERN, "the handle tables are busy"))?;
        Ok(f(&mut t))
    })
}

/// Runs `f` on the handle tables for reading and on the engine, in one thread-local access;
/// `None` when MPI is not running or either is busy (the caller then takes the path that
/// reports it).
pub(crate) fn peek_with_engine<R>(f: impl FnOnce(&Tables, &mut Engine) -> R) -> Option<R> {
    LOCAL.with(|l| {
        let rt = l.runtime.get().filter(|_| !finalized())?;
        let t = l.tables.try_borrow().ok()?;
        let mut e = rt.engine.try_borrow_mut().ok()?;
        Some(f(&t, &mut e))
    })
}

/// This rank in the world, for messages (0 before MPI_Init).
pub(crate) fn world_rank() -> u32 {
    LOCAL
        .with(|l| l.runtime.get())
        .and_then(|rt| rt.engine.try_borrow().ok().map(|e| e.rank()))
        .unwrap_or(0)
}

/// Ends the whole job: the coordinator is told why, then this process exits with `code`.
pub(crate) fn abort_job(code: i32, reason: &str) -> ! {
    let rank = world_rank();
    let rt = LOCAL.with(|l| l.runtime.get());
    let mut control = rt.and_then(|rt| rt.control.try_borrow_mut().ok());
    let stream = control.as_mut().and_then(|c| c.as_mut());
    engine::session::abort(stream, rank, code, reason)
}

/// The error handler of communicator `handle` (of the world if `handle` is not valid).
pub(crate) fn errhandler_of(handle: i32) -> i32 {
    LOCAL.with(|l| {
        let Ok(t) = l.tables.try_borrow() else {
            return ERRORS_ARE_FATAL;
        };
        let get = |h| {
            handles::index(Kind::Comm, h)
                .and_then(|i| t.comms.get(i).cloned().flatten())
                .map(|c| c.errhandler.get())
        };
        get(handle)
            .or_else(|| get(handles::COMM_WORLD))
            .unwrap_or(t.default_errhandler)
    })
}

/// A Cartesian topology attached to a communicator.
#[derive(Debug, Clone)]
pub(crate) struct Cart {
    pub dims: Vec<i32>,
    pub periods: Vec<bool>,
}

#[derive(Debug)]
pub(crate) struct CommObj {
    pub comm: Comm,
    pub errhandler: Cell<i32>,
    pub cart: Option<Cart>,
    /// Sequence number of the next non-blocking collective (each gets its own tag).
    pub nbc_seq: Cell<u32>,
    pub name: RefCell<String>,
}

impl CommObj {
    pub(crate) fn new(comm: Comm, cart: Option<Cart>) -> Self {
        Self {
            comm,
            errhandler: Cell::new(ERRORS_ARE_FATAL),
            cart,
            nbc_seq: Cell::new(0),
            name: RefCell::new(String::new()),
        }
    }
}

pub(crate) type Group = Rc<[u32]>;

#[derive(Debug)]
pub(crate) struct Tables {
    pub comms: Vec<Option<Rc<CommObj>>>,
    pub groups: Vec<Option<Group>>,
    pub types: Vec<Option<Rc<Dtype>>>,
    pub ops: Vec<Option<OpObj>>,
    pub requests: Vec<Option<Request>>,
    free_requests: Vec<usize>,
    /// Requests freed by MPI_Request_free while still active; completed at MPI_Finalize.
    pub detached: Vec<Request>,
    /// The buffer of MPI_Buffer_attach: (address, size).
    pub bsend_buffer: Option<(usize, usize)>,
    pub default_errhandler: i32,
}

impl Tables {
    fn new() -> Self {
        let mut types = vec![None; dtype::FIRST_USER];
        for &(i, name, prim) in dtype::PREDEFINED {
            types[i as usize] = Some(Rc::new(Dtype::primitive(name, prim)));
        }
        let mut ops = vec![None; ops::FIRST_USER];
        for b in ops::BUILTINS {
            ops[b as usize] = Some(OpObj::Builtin(b));
        }
        Self {
            comms: vec![None, None, None],
            groups: vec![None, Some(Rc::from(Vec::new()))],
            types,
            ops,
            requests: vec![None],
            free_requests: Vec::new(),
            detached: Vec::new(),
            bsend_buffer: None,
            default_errhandler: ERRORS_ARE_FATAL,
        }
    }

    pub(crate) fn comm(&self, h: i32) -> Res<Rc<CommObj>> {
        handles::index(Kind::Comm, h)
            .and_then(|i| self.comms.get(i).cloned().flatten())
            .ok_or_else(|| {
                if h == 0 {
                    error(err::COMM, "the communicator is MPI_COMM_NULL")
                } else {
                    error(err::COMM, format!("invalid communicator handle {h}"))
                }
            })
    }

    pub(crate) fn dtype(&self, h: i32) -> Res<Rc<Dtype>> {
        handles::index(Kind::Datatype, h)
            .and_then(|i| self.types.get(i).cloned().flatten())
            .ok_or_else(|| {
                if h == 0 {
                    error(err::TYPE, "the datatype is MPI_DATATYPE_NULL")
                } else {
                    error(err::TYPE, format!("invalid datatype handle {h}"))
                }
            })
    }

    pub(crate) fn group(&self, h: i32) -> Res<Group> {
        handles::index(Kind::Group, h)
            .and_then(|i| self.groups.get(i).cloned().flatten())
            .ok_or_else(|| error(err::GROUP, format!("invalid group handle {h}")))
    }

    pub(crate) fn op(&self, h: i32) -> Res<OpObj> {
        handles::index(Kind::Op, h)
            .and_then(|i| self.ops.get(i).copied().flatten())
            .ok_or_else(|| error(err::OP, format!("invalid operation handle {h}")))
    }

    fn insert<T>(v: &mut Vec<Option<T>>, first: usize, x: T) -> usize {
        if let Some(i) = (first..v.len()).find(|&i| v[i].is_none()) {
            v[i] = Some(x);
            return i;
        }
        v.push(Some(x));
        v.len() - 1
    }

    pub(crate) fn add_comm(&mut self, c: CommObj) -> i32 {
        handles::make(
            Kind::Comm,
            Self::insert(&mut self.comms, 3, Rc::new(c)) as i32,
        )
    }

    pub(crate) fn add_group(&mut self, g: Vec<u32>) -> i32 {
        if g.is_empty() {
            return handles::GROUP_EMPTY;
        }
        handles::make(
            Kind::Group,
            Self::insert(&mut self.groups, 2, Rc::from(g)) as i32,
        )
    }

    pub(crate) fn add_type(&mut self, t: Dtype) -> i32 {
        let i = Self::insert(&mut self.types, dtype::FIRST_USER, Rc::new(t));
        handles::make(Kind::Datatype, i as i32)
    }

    pub(crate) fn add_op(&mut self, op: OpObj) -> i32 {
        handles::make(
            Kind::Op,
            Self::insert(&mut self.ops, ops::FIRST_USER, op) as i32,
        )
    }

    pub(crate) fn add_request(&mut self, r: Request) -> i32 {
        let i = match self.free_requests.pop() {
            Some(i) => {
                self.requests[i] = Some(r);
                i
            }
            None => {
                self.requests.push(Some(r));
                self.requests.len() - 1
            }
        };
        handles::make(Kind::Request, i as i32)
    }

    /// Takes request `h` out of the table (its slot stays reserved until `put_request` or
    /// `release_request`).
    pub(crate) fn take_request(&mut self, h: i32) -> Res<Request> {
        handles::index(Kind::Request, h)
            .and_then(|i| self.requests.get_mut(i).and_then(Option::take))
            .ok_or_else(|| error(err::REQUEST, format!("invalid request handle {h}")))
    }

    pub(crate) fn put_request(&mut self, h: i32, r: Request) {
        if let Some(i) = handles::index(Kind::Request, h)
            && let Some(slot) = self.requests.get_mut(i)
        {
            *slot = Some(r);
        }
    }

    pub(crate) fn release_request(&mut self, h: i32) {
        if let Some(i) = handles::index(Kind::Request, h)
            && i < self.requests.len()
        {
            self.requests[i] = None;
            self.free_requests.push(i);
        }
    }
}

pub(crate) fn comm(h: i32) -> Res<Rc<CommObj>> {
    tables(|t| t.comm(h))?
}

pub(crate) fn dtype(h: i32) -> Res<Rc<Dtype>> {
    tables(|t| t.dtype(h))?
}

pub(crate) fn op(h: i32) -> Res<OpObj> {
    tables(|t| t.op(h))?
}

pub(crate) fn group(h: i32) -> Res<Group> {
    tables(|t| t.group(h))?
}
