//! Joining and leaving the job.

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use engine::{Comm, Engine, coll};
use wire::stream::write_message;
use wire::{Abort, Exit, Message};

use crate::communicator::Communicator;
use crate::error::Error;

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static EPOCH: OnceLock<Instant> = OnceLock::new();

pub(crate) fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// What every communicator of this process shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub engine: RefCell<Engine>,
    control: RefCell<Option<UnixStream>>,
    finalized: Cell<bool>,
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

/// Joins the job (MPI_Init). Fails if called twice in one process.
pub fn initialize() -> Result<Universe, Error> {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(Error::AlreadyInitialized);
    }
    epoch();
    let joined = engine::join().map_err(engine::EngineError::from)?;
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        engine: RefCell::new(joined.engine),
        control: RefCell::new(joined.control),
        finalized: Cell::new(false),
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
        {
            let mut engine = self.engine.borrow_mut();
            let world = Comm::world(&engine);
            coll::barrier(&mut engine, &world)?;
            engine.flush()?;
        }
        if let Some(mut control) = self.control.borrow_mut().take() {
            let rank = self.engine.borrow().rank();
            write_message(&mut control, &Message::Exit(Exit { rank })).map_err(Error::Control)?;
        }
        Ok(())
    }

    pub(crate) fn abort(&self, code: i32, reason: &str) -> ! {
        if let Ok(mut control) = self.control.try_borrow_mut()
            && let Some(stream) = control.as_mut()
        {
            let rank = self.engine.try_borrow().map(|e| e.rank()).unwrap_or(0);
            let _ = write_message(
                stream,
                &Message::Abort(Abort {
                    rank,
                    code,
                    reason: reason.into(),
                }),
            );
        }
        std::process::exit(code)
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
