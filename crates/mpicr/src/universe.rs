//! Joining and leaving the job.

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crs::{CrsState, EntryPoint, Restarted};
use engine::{Comm, Engine, session};

use crate::checkpoint::Checkpointing;
use crate::communicator::Communicator;
use crate::error::Error;

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static EPOCH: OnceLock<Instant> = OnceLock::new();

pub(crate) fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Sections the application hands to the next checkpoint (filled at a safepoint).
pub(crate) type Staged = Rc<RefCell<Vec<(String, Vec<u8>)>>>;

/// What every communicator of this process shares.
pub(crate) struct Shared {
    pub engine: RefCell<Engine>,
    control: RefCell<Option<UnixStream>>,
    finalized: Cell<bool>,
    pub entry: RefCell<EntryPoint>,
    pub staged: Staged,
    pub restarted: Option<Restarted>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("finalized", &self.finalized)
            .field("restarted", &self.restarted.is_some())
            .finish()
    }
}

/// The MPI environment of this process. Dropping it finalizes MPI.
///
/// The engine behind it lives for the rest of the process (MPI cannot be initialized twice),
/// which lets request scopes and communicators refer to it without reference counting.
#[derive(Debug)]
pub struct Universe {
    shared: &'static Shared,
}

thread_local! {
    static CURRENT: Cell<Option<&'static Shared>> = const { Cell::new(None) };
}

/// The engine of this thread's universe, if MPI was initialized on this thread.
pub(crate) fn current() -> Option<&'static Shared> {
    CURRENT.with(Cell::get)
}

/// The application layer of the checkpoint callbacks: hands over what the application staged.
fn application_layer(staged: Staged) -> impl FnOnce(crs::Callback) -> crs::Callback {
    move |mut prev| {
        Box::new(move |ev| {
            if ev.state == CrsState::Checkpoint {
                ev.sections.append(&mut staged.borrow_mut());
            }
            prev(ev)
        })
    }
}

/// Joins the job (MPI_Init); a rank of a restarted job is brought back from its snapshot
/// here, before the application runs. Fails if called twice in one process.
pub fn initialize() -> Result<Universe, Error> {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(Error::AlreadyInitialized);
    }
    epoch();
    let joined = engine::join().map_err(engine::EngineError::from)?;
    let mut engine = joined.engine;
    let staged = Staged::default();
    let (entry, restarted) = EntryPoint::start(&mut engine, application_layer(staged.clone()))?;
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        engine: RefCell::new(engine),
        control: RefCell::new(joined.control),
        finalized: Cell::new(false),
        entry: RefCell::new(entry),
        staged,
        restarted,
    }));
    CURRENT.with(|c| c.set(Some(shared)));
    Ok(Universe { shared })
}

impl Universe {
    /// MPI_COMM_WORLD.
    pub fn world(&self) -> Communicator {
        let comm = Comm::world(&self.shared.engine.borrow());
        Communicator::new(self.shared, comm)
    }

    /// Checkpointing with the `self` checkpointer: safepoints, recovery after a restart.
    pub fn checkpointing(&self) -> Checkpointing {
        Checkpointing::new(self.shared)
    }

    /// Leaves the job cleanly (MPI_Finalize): waits for every rank, sends out what is queued and
    /// tells the coordinator. Dropping the universe does this too, reporting errors on stderr.
    pub fn finalize(self) -> Result<(), Error> {
        self.shared.finalize()
    }

    /// Ends the whole job with `code` (MPI_Abort). Does not return.
    pub fn abort(&self, code: i32) -> ! {
        self.shared.abort(code, "MPI_Abort was called")
    }

    /// The name of the node this rank runs on (MPI_Get_processor_name).
    pub fn processor_name(&self) -> String {
        std::env::var("MPICR_NODE").unwrap_or_else(|_| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        })
    }
}

impl Shared {
    fn finalize(&self) -> Result<(), Error> {
        if self.finalized.replace(true) {
            return Ok(());
        }
        let mut engine = self.engine.borrow_mut();
        let mut control = self.control.borrow_mut();
        session::finalize(&mut engine, control.as_mut()).map_err(|e| match e {
            session::LeaveError::Engine(e) => Error::Engine(e),
            session::LeaveError::Control(e) => Error::Control(e),
        })
    }

    pub(crate) fn abort(&self, code: i32, reason: &str) -> ! {
        let rank = self.engine.try_borrow().map(|e| e.rank()).unwrap_or(0);
        match self.control.try_borrow_mut() {
            Ok(mut control) => session::abort(control.as_mut(), rank, code, reason),
            Err(_) => session::abort(None, rank, code, reason),
        }
    }
}

impl Drop for Universe {
    fn drop(&mut self) {
        if let Err(e) = self.shared.finalize() {
            eprintln!(
                "mpicr: MPI_Finalize failed: {}",
                crate::communicator::chain(&e)
            );
        }
    }
}
