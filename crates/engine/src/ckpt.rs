//! The rank's side of coordinated checkpoints (ChaRM4MPI §2.1 on the Open MPI framework's
//! safepoints).
//!
//! 1. CHECKPOINT(epoch) arrives on the control link (read inside progress, so a rank blocked in
//!    a receive answers too: the deadlock of ChaRM4MPI's figure 2 cannot form). The rank answers
//!    with its safepoint count at once, also inside a region with checkpoints disabled: a peer
//!    that already answered waits at its next safepoint for T, and the region may need that
//!    peer (a collective), so an answer deferred to the region's end would never come.
//! 2. CHECKPOINT_AT names safepoint T = max(counts) + 1. A rank that reaches its next safepoint
//!    before T is known waits there (serving progress); no rank can pass T unknowingly. A rank
//!    whose safepoint T lies inside a disabled region gives the checkpoint up, and the
//!    coordinator asks again (`retry`).
//! 3. At safepoint T the rank takes its local snapshot: the checkpointer captures the
//!    application's state, the engine notes every message received but not yet delivered, and a
//!    MARKER goes out on every link (Chandy–Lamport). The rank then computes on.
//! 4. Until a peer's marker arrives, every message from that peer is in transit and is recorded
//!    (a copy when it completes). A message that arrives after a peer's marker but before this
//!    rank's own snapshot was sent after the peer's snapshot: it is held (not delivered) until
//!    the local snapshot, so no message is ever both in a snapshot and re-sent.
//! 5. When every marker is in and every recorded message complete, the checkpointer's
//!    continuation writes the part; PART_DONE goes to the coordinator.
//!
//! Safepoints must be collective in effect (as in SCR and FTI): between safepoints T-1 and T a
//! rank may not need a message its peer sends after T. If it does, the rank would wait for a
//! held message; instead the checkpoint is given up with a message saying so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wire::{CheckpointFailed, Message, PartDone, SafepointCount};

use crate::EngineError;
use crate::engine::Engine;

/// Why a finalizing rank fails a checkpoint (the coordinator names the rank).
pub(crate) const FINALIZING: &str = "it is finalizing; the job is shutting down";

/// A message the snapshot holds: received by this rank but not yet delivered to the
/// application, or in transit when the snapshot was taken. Sources are world ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedMessage {
    pub ctx: u32,
    pub source: u32,
    pub tag: i32,
    pub data: Vec<u8>,
}

/// Writes the part once the channel state is complete; returns what PART_DONE reports.
pub type FinishPart = Box<dyn FnOnce(Vec<SavedMessage>) -> Result<PartDone, String>>;

/// What an image checkpoint asks the checkpointer to save, at the moment the drain is complete.
#[derive(Debug)]
pub struct ImageRequest<'a> {
    pub epoch: u64,
    pub rank: u32,
    /// The staging directory of the snapshot.
    pub dir: &'a str,
    /// Directories whose shared files (the rings and doorbells) stay out of the image.
    pub exclude_dirs: &'a [PathBuf],
    /// A migration's capture: a full image (the target node has none of the chain's
    /// parents), whose writer yields to every other process (the ranks compute on while it
    /// writes, and nothing waits for it but the migrating rank).
    pub migration: bool,
}

/// What a capture gave.
#[derive(Debug)]
pub enum ImageCapture {
    /// This is the original process and a writer saves the image; the rank computes on.
    Writing(Box<dyn ImageWriter>),
    /// This process was restored from the image: the environment of the job it now belongs
    /// to (the restorer's hand-over).
    Restored(Vec<(String, String)>),
}

/// An image being written while the rank computes on.
pub trait ImageWriter: std::fmt::Debug {
    /// Whether the image was written; `None` while the writer is still at work (and `block` is
    /// false).
    fn poll(&mut self, block: bool) -> Option<Result<(), String>>;

    /// Writes the part that names the written image, beside it: what PART_DONE reports. A
    /// checkpoint's image needs it; a migration's moves alone and never gets one.
    fn write_part(&self) -> Result<PartDone, String>;
}

/// The transparent (`image`) checkpointer as the engine sees it: the capture of the whole
/// process at a moment the engine chooses (see "Image checkpoints" in the module docs).
pub trait ImageCheckpointer: std::fmt::Debug {
    /// Captures the process. The engine calls it with no image writer of its own still at
    /// work, so every child process the rank has is the program's.
    fn capture(&mut self, request: ImageRequest<'_>) -> Result<ImageCapture, NotCaptured>;
}

/// Why a capture did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCaptured {
    /// The end of a sentence about the rank ("it has ..."), or a sentence of its own.
    pub reason: String,
    /// Whether asking again in a moment may succeed (the program had a child process, which
    /// an image cannot hold).
    pub retry: bool,
}

impl NotCaptured {
    /// A capture that would fail again.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry: false,
        }
    }
}

/// Where the rank is in a checkpoint.
#[derive(Default)]
pub(crate) enum Phase {
    #[default]
    Idle,
    /// CHECKPOINT arrived; `reported` once the safepoint count went out.
    Requested { epoch: u64, reported: bool },
    /// The safepoint to save at is known.
    Scheduled { epoch: u64, at: u64 },
    /// The local snapshot is taken; waiting for markers and recorded messages.
    Recording {
        epoch: u64,
        finish: Option<FinishPart>,
    },
    /// An image checkpoint: markers are out (links frozen behind them), waiting for every
    /// peer's marker, for the links to have written ours, and for the staging directory.
    Draining {
        epoch: u64,
        reported: bool,
        dir: Option<String>,
    },
    /// An image checkpoint that reached this rank inside a disabled region: peers' markers
    /// are kept (their links paused), the drain begins when the region ends (`defer.rs`).
    /// `requested` once CHECKPOINT came; `since` when the first of it or a marker came.
    Deferred {
        epoch: u64,
        requested: bool,
        since: Instant,
    },
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idle => write!(f, "Idle"),
            Self::Requested { epoch, reported } => {
                write!(f, "Requested({epoch}, reported {reported})")
            }
            Self::Scheduled { epoch, at } => write!(f, "Scheduled({epoch} at {at})"),
            Self::Recording { epoch, .. } => write!(f, "Recording({epoch})"),
            Self::Draining {
                epoch,
                reported,
                dir,
            } => write!(
                f,
                "Draining({epoch}, reported {reported}, dir known {})",
                dir.is_some()
            ),
            Self::Deferred {
                epoch, requested, ..
            } => write!(f, "Deferred({epoch}, requested {requested})"),
        }
    }
}

/// The engine's checkpoint bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct CkptState {
    pub phase: Phase,
    pub safepoints: u64,
    pub disabled: u32,
    pub finalizing: bool,
    /// The staging directory of the scheduled snapshot.
    pub dir: String,
    /// A marker of the current epoch arrived from this peer.
    pub marker_in: Vec<bool>,
    /// Recorded messages, in arrival order; `None` until the message completes.
    pub slots: Vec<(u32, u32, i32, Option<Vec<u8>>)>,
    /// The image checkpointer, when the job uses it.
    pub image: Option<Box<dyn ImageCheckpointer>>,
    /// The image being written (epoch, writer).
    pub writing: Option<(u64, Box<dyn ImageWriter>)>,
    /// Image checkpoints up to this epoch are over (taken, failed or cancelled): their late
    /// markers and requests are ignored.
    pub done_epoch: u64,
    /// How long an image checkpoint may wait for a disabled region to end (`defer.rs`).
    pub defer_limit: Duration,
    /// Since when a complete drain has waited for the disabled region the rank entered after
    /// its drain began (`defer.rs`).
    pub held_since: Option<Instant>,
}

impl CkptState {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            marker_in: vec![false; size],
            defer_limit: crate::defer::defer_limit(),
            ..Self::default()
        }
    }

    /// The epoch whose markers are being exchanged, if any.
    pub(crate) fn marker_epoch(&self) -> Option<u64> {
        match self.phase {
            Phase::Requested { epoch, .. }
            | Phase::Scheduled { epoch, .. }
            | Phase::Recording { epoch, .. }
            | Phase::Draining { epoch, .. }
            | Phase::Deferred { epoch, .. } => Some(epoch),
            Phase::Idle => None,
        }
    }

    pub(crate) fn local_taken(&self) -> bool {
        matches!(self.phase, Phase::Recording { .. })
    }

    /// An image checkpoint's drain is under way.
    pub(crate) fn draining(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. })
    }

    /// Progress has image work to do: a drain, a deferral to bound, or a writer to look
    /// after.
    pub(crate) fn image_busy(&self) -> bool {
        self.draining() || matches!(self.phase, Phase::Deferred { .. }) || self.writing.is_some()
    }

    /// A checkpoint needs this rank's progress even where a call has nothing else to do:
    /// markers to read, a drain to end, a deferral to bound, an image's end to report.
    pub(crate) fn wants_progress(&self) -> bool {
        self.local_taken() || self.image_busy()
    }

    /// Messages from `peer` are held: its marker came before our own snapshot. (An image
    /// checkpoint holds nothing: it stops reading the peer's link at the marker instead.)
    pub(crate) fn holds(&self, peer: u32) -> bool {
        self.image.is_none() && !self.local_taken() && self.marker_in[peer as usize]
    }

    /// Messages from `peer` are in transit and must be recorded.
    pub(crate) fn records(&self, peer: u32) -> bool {
        self.local_taken() && !self.marker_in[peer as usize]
    }
}

/// What a safepoint asks of the checkpointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafepointAction {
    /// Nothing to do; compute on.
    Continue,
    /// Take the local snapshot of `epoch` now, into the staging directory `dir`.
    Checkpoint { epoch: u64, dir: String },
}

impl Engine {
    /// Handles one control message from the coordinator.
    pub(crate) fn on_control(&mut self, message: Message) -> Result<(), EngineError> {
        match message {
            Message::Checkpoint(c) if self.ckpt.image.is_some() => {
                self.image_requested(c.epoch)?;
            }
            Message::CheckpointAt(at) if self.ckpt.image.is_some() => {
                if let Phase::Draining { epoch, dir, .. } = &mut self.ckpt.phase
                    && *epoch == at.epoch
                {
                    *dir = Some(at.dir);
                }
            }
            Message::Checkpoint(c) => {
                if !matches!(self.ckpt.phase, Phase::Idle) {
                    tracing::warn!(
                        "checkpoint {} requested while {:?}; ignored",
                        c.epoch,
                        self.ckpt.phase
                    );
                    return Ok(());
                }
                self.ckpt.phase = Phase::Requested {
                    epoch: c.epoch,
                    reported: false,
                };
                self.report_count()?;
            }
            Message::CheckpointAt(at) => {
                if let Phase::Requested { epoch, .. } = self.ckpt.phase
                    && epoch == at.epoch
                {
                    self.ckpt.phase = Phase::Scheduled {
                        epoch,
                        at: at.safepoint,
                    };
                    self.ckpt.dir = at.dir;
                }
            }
            Message::CheckpointCancel(c) => {
                if self.ckpt.image.is_some() {
                    self.ckpt.done_epoch = self.ckpt.done_epoch.max(c.epoch);
                }
                if self.ckpt.marker_epoch() == Some(c.epoch) {
                    tracing::info!("checkpoint {} cancelled by the coordinator", c.epoch);
                    self.reset_checkpoint();
                }
            }
            Message::Error(reason) => tracing::warn!("the coordinator reports: {reason}"),
            m @ (Message::MigrateOut(_) | Message::MigratePeer(_) | Message::Refresh(_)) => {
                self.on_migration_control(m)?;
            }
            other => tracing::warn!("unexpected control message {:?} ignored", other.command()),
        }
        Ok(())
    }

    /// Sends the safepoint count for a pending request (inside a disabled region too: see the
    /// module's step 1).
    fn report_count(&mut self) -> Result<(), EngineError> {
        if self.ckpt.image.is_some() {
            return self.image_answer();
        }
        let Phase::Requested {
            epoch,
            reported: false,
        } = self.ckpt.phase
        else {
            return Ok(());
        };
        let rank = self.rank();
        if self.ckpt.finalizing {
            self.ckpt.phase = Phase::Idle;
            let reason = FINALIZING.to_owned();
            return self.send_control(Message::CheckpointFailed(CheckpointFailed {
                epoch,
                rank,
                reason,
                retry: false,
            }));
        }
        self.ckpt.phase = Phase::Requested {
            epoch,
            reported: true,
        };
        let count = self.ckpt.safepoints;
        self.send_control(Message::SafepointCount(SafepointCount {
            epoch,
            rank,
            count,
        }))
    }

    /// No snapshot is taken until [`Engine::enable_checkpoint`]: under `self` a checkpoint
    /// whose safepoint falls in the region is given up and asked again, under `image` the
    /// drain waits for the region's end (`defer.rs`).
    pub fn disable_checkpoint(&mut self) {
        self.ckpt.disabled += 1;
    }

    /// Ends a disabled region; an image checkpoint that arrived in it begins now.
    pub fn enable_checkpoint(&mut self) -> Result<(), EngineError> {
        self.ckpt.disabled = self.ckpt.disabled.saturating_sub(1);
        self.report_count()
    }

    /// From now on checkpoint requests fail: the rank is leaving (MPI_Finalize). A checkpoint
    /// whose safepoint this rank will now never reach fails too, and so does an image
    /// checkpoint that is deferred or draining. An image being written is waited for, so that
    /// its part is reported before the rank leaves.
    pub fn begin_finalize(&mut self) -> Result<(), EngineError> {
        self.ckpt.finalizing = true;
        self.finish_writing()?;
        match self.ckpt.phase {
            Phase::Requested {
                epoch,
                reported: true,
            }
            | Phase::Scheduled { epoch, .. } => {
                let reason = format!(
                    "rank {} is finalizing before reaching the checkpoint's safepoint",
                    self.rank()
                );
                self.fail_checkpoint(epoch, reason)
            }
            // A capture inside MPI_Finalize would leave its writer behind when the rank exits,
            // so the part would never be reported: the checkpoint is given up at once.
            Phase::Draining { epoch, .. }
                if self.ckpt.image.is_some() && self.mig.outgoing.is_none() =>
            {
                let reason = FINALIZING.to_owned();
                self.fail_checkpoint(epoch, reason)
            }
            _ => self.report_count(),
        }
    }

    /// Safepoints passed so far (restored on restart).
    pub fn safepoints(&self) -> u64 {
        self.ckpt.safepoints
    }

    /// Sets the safepoint count, for a restarted rank.
    pub fn set_safepoints(&mut self, count: u64) {
        self.ckpt.safepoints = count;
    }

    /// Asks the coordinator for a global checkpoint (the application's own request).
    pub fn request_checkpoint(&mut self) -> Result<(), EngineError> {
        self.send_control(Message::CheckpointRequest(wire::CheckpointRequest {
            terminate: false,
        }))
    }

    /// A safepoint: counts it and says whether the local snapshot is due here. When a
    /// checkpoint is requested but its safepoint not yet known, waits (serving progress) until
    /// it is, so that no rank passes the chosen safepoint.
    pub fn safepoint(&mut self) -> Result<SafepointAction, EngineError> {
        self.poll_control()?;
        if self.ckpt.image_busy() {
            self.progress()?;
        }
        self.ckpt.safepoints += 1;
        let here = self.ckpt.safepoints;
        let mut idle = 0;
        loop {
            match self.ckpt.phase {
                Phase::Requested { reported: true, .. } => self.progress_or_idle(&mut idle)?,
                Phase::Scheduled { epoch, at } if at == here && self.ckpt.disabled > 0 => {
                    self.give_up_checkpoint(
                        epoch,
                        "it reached the checkpoint's safepoint inside a region with \
                         checkpoints disabled"
                            .to_owned(),
                        true,
                    )?;
                    return Ok(SafepointAction::Continue);
                }
                Phase::Scheduled { epoch, at } if at == here => {
                    return Ok(SafepointAction::Checkpoint {
                        epoch,
                        dir: self.ckpt.dir.clone(),
                    });
                }
                Phase::Scheduled { epoch, at } if at < here => {
                    self.fail_checkpoint(
                        epoch,
                        format!(
                            "rank {} passed safepoint {at} before it was chosen",
                            self.rank()
                        ),
                    )?;
                    return Ok(SafepointAction::Continue);
                }
                _ => return Ok(SafepointAction::Continue),
            }
        }
    }

    /// Takes the local snapshot of `epoch` (at its safepoint): notes the undelivered messages,
    /// sends a marker on every link and starts recording; `finish` writes the part once the
    /// channel state is complete. Fails if a non-blocking request is still outstanding.
    pub fn take_local_snapshot(
        &mut self,
        epoch: u64,
        finish: FinishPart,
    ) -> Result<(), EngineError> {
        if let Some(id) = self.first_live_request() {
            let reason = format!(
                "rank {} reached its checkpoint safepoint with request {id:#x} still outstanding; complete every non-blocking request before a safepoint",
                self.rank()
            );
            self.fail_checkpoint(epoch, reason.clone())?;
            return Err(EngineError::Checkpoint(reason));
        }
        self.ckpt.slots = self.undelivered_messages();
        self.release_held();
        self.ckpt.phase = Phase::Recording {
            epoch,
            finish: Some(finish),
        };
        self.send_markers(epoch)?;
        self.try_finish_part()
    }

    /// Writes the part if every marker is in and every recorded message complete.
    pub(crate) fn try_finish_part(&mut self) -> Result<(), EngineError> {
        let me = self.rank() as usize;
        let markers_in = self
            .ckpt
            .marker_in
            .iter()
            .enumerate()
            .all(|(i, &m)| m || i == me);
        let complete = self.ckpt.slots.iter().all(|s| s.3.is_some());
        let Phase::Recording { epoch, finish } = &mut self.ckpt.phase else {
            return Ok(());
        };
        if !markers_in || !complete {
            return Ok(());
        }
        let epoch = *epoch;
        let finish = finish.take().expect("finished once");
        let saved = std::mem::take(&mut self.ckpt.slots)
            .into_iter()
            .map(|(ctx, source, tag, data)| SavedMessage {
                ctx,
                source,
                tag,
                data: data.unwrap_or_default(),
            })
            .collect();
        self.reset_checkpoint();
        match finish(saved) {
            Ok(done) => self.send_control(Message::PartDone(done)),
            Err(reason) => self.fail_checkpoint(epoch, reason),
        }
    }

    /// Gives checkpoint `epoch` up here and tells the coordinator why.
    pub(crate) fn fail_checkpoint(
        &mut self,
        epoch: u64,
        reason: String,
    ) -> Result<(), EngineError> {
        self.give_up_checkpoint(epoch, reason, false)
    }

    /// [`Engine::fail_checkpoint`], saying whether asking again later may succeed (`retry`).
    pub(crate) fn give_up_checkpoint(
        &mut self,
        epoch: u64,
        reason: String,
        retry: bool,
    ) -> Result<(), EngineError> {
        tracing::warn!("checkpoint {epoch} failed: {reason}");
        self.reset_checkpoint();
        let rank = self.rank();
        self.send_control(Message::CheckpointFailed(CheckpointFailed {
            epoch,
            rank,
            reason,
            retry,
        }))
    }

    fn reset_checkpoint(&mut self) {
        self.ckpt.held_since = None;
        if let Phase::Draining { epoch, .. } | Phase::Deferred { epoch, .. } = self.ckpt.phase {
            self.ckpt.done_epoch = self.ckpt.done_epoch.max(epoch);
            self.thaw_links();
        }
        self.ckpt.phase = Phase::Idle;
        self.ckpt.marker_in.iter_mut().for_each(|m| *m = false);
        self.ckpt.slots.clear();
        self.release_held();
    }

    pub(crate) fn on_marker(&mut self, peer: u32, epoch: u64) -> Result<(), EngineError> {
        if epoch & wire::MIGRATION_MARK != 0 {
            return self.migration_marker(peer, epoch);
        }
        if self.ckpt.image.is_some() {
            return self.on_image_marker(peer, epoch);
        }
        if self.ckpt.marker_epoch() != Some(epoch) {
            tracing::debug!("stale marker of checkpoint {epoch} from rank {peer} ignored");
            return Ok(());
        }
        self.ckpt.marker_in[peer as usize] = true;
        self.try_finish_part()
    }

    /// Records the message that just arrived from `peer` if it is in transit; returns its slot.
    pub(crate) fn record_arrival(&mut self, peer: u32, ctx: u32, tag: i32) -> Option<usize> {
        if !self.ckpt.records(peer) {
            return None;
        }
        self.ckpt.slots.push((ctx, peer, tag, None));
        Some(self.ckpt.slots.len() - 1)
    }

    /// Fills a recorded slot with the message's bytes once it is complete.
    pub(crate) fn fill_slot(&mut self, slot: usize, data: &[u8]) -> Result<(), EngineError> {
        if let Some(s) = self.ckpt.slots.get_mut(slot) {
            s.3 = Some(data.to_vec());
        }
        self.try_finish_part()
    }

    /// A receive would need a held message: safepoints are not collective here.
    pub(crate) fn held_message_needed(&mut self, source: u32) -> Result<(), EngineError> {
        let Some(epoch) = self.ckpt.marker_epoch() else {
            return Ok(());
        };
        let reason = format!(
            "rank {} needs a message rank {source} sent after its checkpoint safepoint; safepoints must be collective (no message may cross them)",
            self.rank()
        );
        self.fail_checkpoint(epoch, reason)
    }
}

/// Image checkpoints (the transparent checkpointer).
///
/// The snapshot point is "now, inside whatever MPI call the rank is in". When CHECKPOINT
/// arrives (or a peer's marker of a new epoch, whichever is first) the rank queues a MARKER on
/// every link after everything already queued and freezes the link behind it: packets queued
/// later stay in memory. It keeps progressing, matching and queuing as usual, so every packet a
/// peer sent before its marker ends up in this process's memory (a posted receive or the
/// unexpected queue); it reads nothing of a link past the peer's marker. When every peer's
/// marker is in, every link has written ours, and the coordinator has named the staging
/// directory (CHECKPOINT_AT), the process is captured: memory then holds the whole channel
/// state, the links hold nothing, and no message is both sent and unsent. A forked writer
/// saves the image while the rank computes on; PART_DONE follows when it is done. A rank
/// inside a region with checkpoints disabled begins its drain when the region ends, within a
/// bound (`defer.rs`).
///
/// In a process restored from the image the capture returns again, with the new job's
/// environment: the rank joins that job (new links, new registration) and the interrupted MPI
/// call continues; the packets that were frozen go out on the new links.
impl Engine {
    /// Makes this rank checkpoint with the image checkpointer.
    pub fn set_image_checkpointer(&mut self, checkpointer: Box<dyn ImageCheckpointer>) {
        self.ckpt.image = Some(checkpointer);
        self.arm_attention();
    }

    /// CHECKPOINT(epoch) in an image job.
    fn image_requested(&mut self, epoch: u64) -> Result<(), EngineError> {
        if epoch <= self.ckpt.done_epoch {
            tracing::debug!("checkpoint {epoch} is already over here; request ignored");
            return Ok(());
        }
        match self.ckpt.phase {
            Phase::Idle => {
                self.ckpt.phase = Phase::Requested {
                    epoch,
                    reported: false,
                };
                self.report_count()
            }
            Phase::Draining { epoch: e, .. } if e == epoch => self.report_drain(),
            Phase::Deferred {
                epoch: e,
                ref mut requested,
                ..
            } if e == epoch => {
                *requested = true;
                Ok(())
            }
            ref other => {
                tracing::warn!("checkpoint {epoch} requested while {other:?}; ignored");
                Ok(())
            }
        }
    }

    /// Answers CHECKPOINT once per drain (the count means nothing for image checkpoints).
    pub(crate) fn report_drain(&mut self) -> Result<(), EngineError> {
        let Phase::Draining {
            epoch,
            reported: false,
            ..
        } = self.ckpt.phase
        else {
            return Ok(());
        };
        if let Phase::Draining { reported, .. } = &mut self.ckpt.phase {
            *reported = true;
        }
        let rank = self.rank();
        let count = self.ckpt.safepoints;
        self.send_control(Message::SafepointCount(SafepointCount {
            epoch,
            rank,
            count,
        }))
    }

    /// Starts the drain of image checkpoint `epoch`: markers out, links frozen behind them.
    /// The markers a deferral kept stay in (every end of a checkpoint or migration clears
    /// them).
    pub(crate) fn begin_drain(&mut self, epoch: u64) -> Result<(), EngineError> {
        self.ckpt.phase = Phase::Draining {
            epoch,
            reported: false,
            dir: None,
        };
        self.send_frozen_markers(epoch)
    }

    /// A peer's marker in an image job.
    fn on_image_marker(&mut self, peer: u32, epoch: u64) -> Result<(), EngineError> {
        if epoch <= self.ckpt.done_epoch {
            tracing::debug!("stale marker of checkpoint {epoch} from rank {peer} ignored");
            return Ok(());
        }
        match self.ckpt.phase {
            Phase::Draining { epoch: e, .. } | Phase::Deferred { epoch: e, .. } if e == epoch => {}
            Phase::Idle | Phase::Requested { .. } => {
                // A peer started first: so does this rank (its count goes out with
                // CHECKPOINT, or now if that came already), unless it defers to the end of
                // its disabled region or fails the checkpoint because it is finalizing.
                let requested =
                    matches!(self.ckpt.phase, Phase::Requested { epoch: e, .. } if e == epoch);
                self.ckpt.phase = Phase::Deferred {
                    epoch,
                    requested,
                    since: Instant::now(),
                };
                self.image_answer()?;
                if self.ckpt.marker_epoch() != Some(epoch) {
                    return Ok(());
                }
            }
            ref other => {
                let reason = format!(
                    "rank {} got a marker of checkpoint {epoch} while {other:?}",
                    self.rank()
                );
                return self.fail_checkpoint(epoch, reason);
            }
        }
        self.ckpt.marker_in[peer as usize] = true;
        self.pause_link(peer);
        Ok(())
    }

    /// Captures the process when the drain is complete, and reports a finished image.
    /// Returns whether anything happened.
    pub(crate) fn image_step(&mut self) -> Result<bool, EngineError> {
        let mut moved = false;
        if let Some((epoch, writer)) = &mut self.ckpt.writing
            && let Some(written) = writer.poll(false)
        {
            let result = written.and_then(|()| writer.write_part());
            let epoch = *epoch;
            self.ckpt.writing = None;
            self.report_image(epoch, result)?;
            moved = true;
        }
        if self.defer_expired()? {
            return Ok(true);
        }
        let me = self.rank() as usize;
        let Phase::Draining {
            epoch,
            dir: Some(dir),
            ..
        } = &self.ckpt.phase
        else {
            return Ok(moved);
        };
        let markers_in = self
            .ckpt
            .marker_in
            .iter()
            .enumerate()
            .all(|(i, &m)| m || i == me);
        if !markers_in || !self.markers_written() {
            return Ok(moved);
        }
        let (epoch, dir) = (*epoch, dir.clone());
        if self.mig.outgoing.is_some() {
            self.migration_capture(epoch, &dir)?;
            return Ok(true);
        }
        if self.ckpt.disabled > 0 {
            return Ok(moved | self.hold_capture(epoch)?);
        }
        // The writer of an epoch given up elsewhere may still be at work: it is waited for,
        // so that every child process the capture finds is the program's.
        self.finish_writing()?;
        let exclude: Vec<PathBuf> = self.shm_dir.iter().cloned().collect();
        let request = ImageRequest {
            epoch,
            rank: self.rank(),
            dir: &dir,
            exclude_dirs: &exclude,
            migration: false,
        };
        let mut checkpointer = self.ckpt.image.take().expect("an image job");
        let captured = checkpointer.capture(request);
        self.ckpt.image = Some(checkpointer);
        match captured {
            Ok(ImageCapture::Writing(writer)) => {
                self.end_drain(epoch);
                self.ckpt.writing = Some((epoch, writer));
            }
            Ok(ImageCapture::Restored(vars)) => {
                self.end_drain(epoch);
                if let Err(e) = self.rejoin(&vars) {
                    // The old job's links are gone and no new ones exist: nothing of this
                    // process may run on (its destructors would touch the old links).
                    let mut why = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        why.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    eprintln!(
                        "mpicr: rank {} was restored from its image but could not join the job: {why}",
                        self.rank()
                    );
                    std::process::exit(1);
                }
                tracing::info!(
                    "rank {} restored from checkpoint {epoch} and joined the job",
                    self.rank()
                );
            }
            Err(not) => self.give_up_checkpoint(epoch, not.reason, not.retry)?,
        }
        Ok(true)
    }

    /// Waits for the image writer still at work, if any, and reports its part.
    fn finish_writing(&mut self) -> Result<(), EngineError> {
        if let Some((epoch, mut writer)) = self.ckpt.writing.take()
            && let Some(written) = writer.poll(true)
        {
            let result = written.and_then(|()| writer.write_part());
            self.report_image(epoch, result)?;
        }
        Ok(())
    }

    fn end_drain(&mut self, epoch: u64) {
        self.ckpt.held_since = None;
        self.ckpt.done_epoch = self.ckpt.done_epoch.max(epoch);
        self.ckpt.phase = Phase::Idle;
        self.ckpt.marker_in.iter_mut().for_each(|m| *m = false);
        self.thaw_links();
    }

    fn report_image(
        &mut self,
        epoch: u64,
        result: Result<PartDone, String>,
    ) -> Result<(), EngineError> {
        match result {
            Ok(done) => self.send_control(Message::PartDone(done)),
            Err(reason) => {
                tracing::warn!("checkpoint {epoch} failed: {reason}");
                let rank = self.rank();
                self.send_control(Message::CheckpointFailed(CheckpointFailed {
                    epoch,
                    rank,
                    reason,
                    retry: false,
                }))
            }
        }
    }
}
