//! Checkpointing with the `self` checkpointer: the program names the state it needs to go on,
//! and marks the safepoints where a checkpoint may be taken.
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize, Default)] struct State { step: u64 }
//! # fn main() -> Result<(), mpicr::Error> {
//! let universe = mpicr::initialize()?;
//! let ckpt = universe.checkpointing();
//! let mut state: State = ckpt.recover("state")?.unwrap_or_default();
//! while state.step < 1000 {
//!     ckpt.safepoint("state", &state)?;   // a checkpoint, if one is due, saves `state` here
//!     state.step += 1;                    // … compute and communicate …
//! }
//! # Ok(()) }
//! ```
//! Safepoints must be collective in effect, as in SCR and FTI: every rank passes them in the
//! same order, and no message sent after a rank's safepoint may be needed by a peer before the
//! peer's same safepoint (the checkpoint is refused, with that reason, when one is).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::universe::Shared;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// The checkpoint interface of a universe.
#[derive(Debug, Clone, Copy)]
pub struct Checkpointing {
    shared: &'static Shared,
}

impl Checkpointing {
    pub(crate) fn new(shared: &'static Shared) -> Self {
        Self { shared }
    }

    /// Whether this run continues from a snapshot (MPIX_Ckpt_restarted).
    pub fn restarted(&self) -> bool {
        self.shared.restarted.is_some()
    }

    /// The safepoint the snapshot was taken at, for a restarted run.
    pub fn restarted_at(&self) -> Option<u64> {
        self.shared.restarted.as_ref().map(|r| r.safepoints)
    }

    /// The state saved under `name` by the snapshot this run continues, or `None` for a fresh
    /// run (MPIX_Ckpt_recover).
    pub fn recover<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        let Some(r) = &self.shared.restarted else {
            return Ok(None);
        };
        let section = crs::app_section(name);
        let Some((_, bytes)) = r.sections.iter().find(|(n, _)| *n == section) else {
            return Err(Error::InvalidArgument(format!(
                "the snapshot holds no state named {name:?}"
            )));
        };
        let (value, _) = bincode::serde::decode_from_slice(bytes, config()).map_err(|e| {
            Error::InvalidArgument(format!("the saved state {name:?} does not decode: {e}"))
        })?;
        Ok(Some(value))
    }

    /// A safepoint (MPIX_Ckpt_safepoint): if the job's checkpoint is due here, `state` is saved
    /// under `name` and the epoch is returned. The channel state is completed while the
    /// program computes on.
    pub fn safepoint<T: Serialize + ?Sized>(
        &self,
        name: &str,
        state: &T,
    ) -> Result<Option<u64>, Error> {
        let mut engine = self.shared.engine.borrow_mut();
        let engine::SafepointAction::Checkpoint { epoch, dir } = engine.safepoint()? else {
            return Ok(None);
        };
        let bytes = bincode::serde::encode_to_vec(state, config()).map_err(|e| {
            Error::InvalidArgument(format!("the state {name:?} does not serialize: {e}"))
        })?;
        self.shared
            .staged
            .borrow_mut()
            .push((crs::app_section(name), bytes));
        self.shared
            .entry
            .borrow_mut()
            .checkpoint(&mut engine, epoch, &dir)
            .map_err(crs_error)?;
        Ok(Some(epoch))
    }

    /// Asks for a global checkpoint now; it is taken at an upcoming safepoint (MPIX_Ckpt_request).
    pub fn request(&self) -> Result<(), Error> {
        Ok(self.shared.engine.borrow_mut().request_checkpoint()?)
    }

    /// No snapshot is taken until [`Self::enable`] (MPIX_Ckpt_disable): a checkpoint whose
    /// safepoint falls in the region is asked again later.
    pub fn disable(&self) {
        self.shared
            .entry
            .borrow_mut()
            .disable(&mut self.shared.engine.borrow_mut());
    }

    /// Ends a region opened by [`Self::disable`] (MPIX_Ckpt_enable).
    pub fn enable(&self) -> Result<(), Error> {
        self.shared
            .entry
            .borrow_mut()
            .enable(&mut self.shared.engine.borrow_mut())
            .map_err(crs_error)
    }
}

fn crs_error(e: crs::CrsError) -> Error {
    match e {
        crs::CrsError::Engine(e) => Error::Engine(e),
        other => Error::Checkpoint(other.to_string()),
    }
}
