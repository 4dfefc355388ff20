//! Image checkpoints that reach a rank inside a region with checkpoints disabled (MPI_Init,
//! MPI_Finalize, MPIX_Ckpt_disable).
//!
//! The rank defers: it keeps every peer's marker it reads (the link stays paused behind it,
//! as for a draining rank) but does not begin its own drain, and begins it when the region
//! ends. It keeps sending, so a peer that has not begun its drain still gets everything this
//! rank sends in the region, and a peer that has reads it all before this rank's marker.
//! What can hang is a wait inside the region for a message a draining peer only sends after
//! its marker; progress therefore gives the checkpoint up after [`DEFER_LIMIT_VAR`]
//! milliseconds, and the coordinator's cancel that follows unfreezes every link
//! (`ARCHITECTURE.md`, "Disabled regions under `image`"). A finalizing rank never
//! checkpoints again: it fails at once.
//!
//! A rank may also enter a region after its drain began (its markers are out, its links
//! frozen). The capture then waits for the region's end, under the same bound: the rank
//! holds a complete drain rather than saving itself inside the region.

use std::time::{Duration, Instant};

use crate::EngineError;
use crate::ckpt::{FINALIZING, Phase};
use crate::engine::Engine;

/// The environment variable that bounds a deferral, in milliseconds.
pub(crate) const DEFER_LIMIT_VAR: &str = "MPICR_CKPT_DEFER_MS";

/// How long a rank keeps a checkpoint waiting inside a disabled region by default: enough
/// for MPI_Init's and a short region's own traffic, short enough that a region that cannot
/// end before the checkpoint does not stall the job for long (the coordinator asks again).
const DEFAULT_DEFER_LIMIT: Duration = Duration::from_secs(1);

/// The deferral bound of this process: [`DEFER_LIMIT_VAR`], or the default when it is unset
/// or not a number of milliseconds.
pub(crate) fn defer_limit() -> Duration {
    std::env::var(DEFER_LIMIT_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(DEFAULT_DEFER_LIMIT, Duration::from_millis)
}

impl Engine {
    /// Moves a pending image checkpoint on: one that reached this rank inside a disabled
    /// region waits for its end (deferred); outside one the drain begins, and the count goes
    /// out if the coordinator's request is in. A finalizing rank fails it.
    pub(crate) fn image_answer(&mut self) -> Result<(), EngineError> {
        let (epoch, requested, since) = match self.ckpt.phase {
            Phase::Requested {
                epoch,
                reported: false,
            } => (epoch, true, None),
            Phase::Deferred {
                epoch,
                requested,
                since,
            } => (epoch, requested, Some(since)),
            _ => return Ok(()),
        };
        if self.ckpt.finalizing {
            let reason = FINALIZING.to_owned();
            self.fail_checkpoint(epoch, reason)?;
            self.ckpt.done_epoch = self.ckpt.done_epoch.max(epoch);
            return Ok(());
        }
        if self.ckpt.disabled > 0 {
            self.ckpt.phase = Phase::Deferred {
                epoch,
                requested,
                since: since.unwrap_or_else(Instant::now),
            };
            return Ok(());
        }
        self.begin_drain(epoch)?;
        if requested {
            self.report_drain()?;
        }
        Ok(())
    }

    /// Gives a deferred checkpoint up once it has waited longer than the bound: the region
    /// may wait for a message a frozen peer sends only after its capture. Returns whether it
    /// did.
    pub(crate) fn defer_expired(&mut self) -> Result<bool, EngineError> {
        let Phase::Deferred { epoch, since, .. } = self.ckpt.phase else {
            return Ok(false);
        };
        let limit = self.ckpt.defer_limit;
        if since.elapsed() < limit {
            return Ok(false);
        }
        let reason = format!(
            "it stayed in a region with checkpoints disabled (MPI_Init, MPI_Finalize or \
             MPIX_Ckpt_disable) for {} ms after the checkpoint reached it ({DEFER_LIMIT_VAR}); \
             the region may wait for a message that a peer sends only after the checkpoint",
            limit.as_millis()
        );
        // The region ends some time: the coordinator asks again.
        self.give_up_checkpoint(epoch, reason, true)?;
        Ok(true)
    }

    /// Keeps a complete drain from being captured while the rank is inside a region it
    /// entered after the drain began; gives the checkpoint up once that has lasted longer
    /// than the bound. Returns whether it gave up.
    pub(crate) fn hold_capture(&mut self, epoch: u64) -> Result<bool, EngineError> {
        let since = *self.ckpt.held_since.get_or_insert_with(Instant::now);
        let limit = self.ckpt.defer_limit;
        if since.elapsed() < limit {
            return Ok(false);
        }
        let reason = format!(
            "it entered a region with checkpoints disabled (MPIX_Ckpt_disable) during the \
             checkpoint's drain and stayed there for {} ms after the drain was complete \
             ({DEFER_LIMIT_VAR})",
            limit.as_millis()
        );
        self.give_up_checkpoint(epoch, reason, true)?;
        Ok(true)
    }
}
