//! Non-blocking operations and the scopes that keep their buffers alive.
//!
//! As in rsmpi, every non-blocking operation belongs to a [`scope`]; buffers are borrowed for
//! the whole scope and the scope completes every request before it returns, so a buffer can
//! never be freed or reused while the engine still reads or writes it.

use crate::communicator::{Status, convert_status};
use crate::error::Error;
use crate::universe::current;
use engine::Comm;

/// A region for non-blocking operations; see [`scope`].
pub type Scope<'s, 'e> = engine::buffer::Scope<'s, 'e>;

/// Runs `f` with a scope for non-blocking operations and completes every request started in it
/// before returning.
///
/// # Panics
/// If MPI has not been initialized on this thread: a scope has no meaning without it.
pub fn scope<'e, R>(f: impl for<'s> FnOnce(&'s Scope<'s, 'e>) -> R) -> R {
    let shared = current().expect("mpicr::request::scope needs mpicr::initialize() first");
    engine::buffer::scope(&shared.engine, f)
}

/// A pending non-blocking operation.
#[derive(Debug)]
#[must_use = "a request must be waited for (the scope waits for it otherwise)"]
pub struct Request<'s, 'e> {
    id: u64,
    scope: &'s Scope<'s, 'e>,
    comm: Comm,
}

impl<'s, 'e> Request<'s, 'e> {
    pub(crate) fn new(id: u64, scope: &'s Scope<'s, 'e>, comm: Comm) -> Self {
        Self { id, scope, comm }
    }

    /// Blocks until the operation completes (MPI_Wait).
    pub fn wait(self) -> Result<Status, Error> {
        let s = self.scope.wait(self.id)?;
        Ok(convert_status(&self.comm, s))
    }

    /// The status if the operation has completed (MPI_Test); a request that reported
    /// completion is finished and must not be waited for again.
    pub fn test(&self) -> Result<Option<Status>, Error> {
        Ok(self
            .scope
            .test(self.id)?
            .map(|s| convert_status(&self.comm, s)))
    }
}

/// Blocks until every request completes (MPI_Waitall); the statuses in the same order.
pub fn wait_all(requests: Vec<Request<'_, '_>>) -> Result<Vec<Status>, Error> {
    let Some(first) = requests.first() else {
        return Ok(Vec::new());
    };
    let ids: Vec<u64> = requests.iter().map(|r| r.id).collect();
    let statuses = first.scope.wait_all(&ids)?;
    Ok(statuses
        .into_iter()
        .zip(&requests)
        .map(|(s, r)| convert_status(&r.comm, s))
        .collect())
}
