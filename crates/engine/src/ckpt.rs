//! The rank's side of coordinated checkpoints (ChaRM4MPI §2.1 on the Open MPI framework's
//! safepoints).
//!
//! 1. CHECKPOINT(epoch) arrives on the control link (read inside progress, so a rank blocked in
//!    a receive answers too: the deadlock of ChaRM4MPI's figure 2 cannot form). The rank answers
//!    with its safepoint count, unless checkpoints are disabled, in which case it answers when
//!    they are enabled again (deferred, never lost).
//! 2. CHECKPOINT_AT names safepoint T = max(counts) + 1. A rank that reaches its next safepoint
//!    before T is known waits there (serving progress); no rank can pass T unknowingly.
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

use wire::{CheckpointFailed, Message, PartDone, SafepointCount};

use crate::EngineError;
use crate::engine::Engine;

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
}

impl CkptState {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            marker_in: vec![false; size],
            ..Self::default()
        }
    }

    /// The epoch whose markers are being exchanged, if any.
    pub(crate) fn marker_epoch(&self) -> Option<u64> {
        match self.phase {
            Phase::Requested { epoch, .. }
            | Phase::Scheduled { epoch, .. }
            | Phase::Recording { epoch, .. } => Some(epoch),
            Phase::Idle => None,
        }
    }

    pub(crate) fn local_taken(&self) -> bool {
        matches!(self.phase, Phase::Recording { .. })
    }

    /// Messages from `peer` are held: its marker came before our own snapshot.
    pub(crate) fn holds(&self, peer: u32) -> bool {
        !self.local_taken() && self.marker_in[peer as usize]
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
                if self.ckpt.marker_epoch() == Some(c.epoch) {
                    tracing::info!("checkpoint {} cancelled by the coordinator", c.epoch);
                    self.reset_checkpoint();
                }
            }
            Message::Error(reason) => tracing::warn!("the coordinator reports: {reason}"),
            other => tracing::warn!("unexpected control message {:?} ignored", other.command()),
        }
        Ok(())
    }

    /// Sends the safepoint count for a pending request, unless checkpoints are disabled here.
    fn report_count(&mut self) -> Result<(), EngineError> {
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
            let reason = format!("rank {rank} is finalizing; the job is shutting down");
            return self.send_control(Message::CheckpointFailed(CheckpointFailed {
                epoch,
                rank,
                reason,
            }));
        }
        if self.ckpt.disabled > 0 {
            return Ok(());
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

    /// Checkpoints are refused (deferred) until [`Engine::enable_checkpoint`].
    pub fn disable_checkpoint(&mut self) {
        self.ckpt.disabled += 1;
    }

    /// Ends a disabled region; a request that arrived in it is answered now.
    pub fn enable_checkpoint(&mut self) -> Result<(), EngineError> {
        self.ckpt.disabled = self.ckpt.disabled.saturating_sub(1);
        self.report_count()
    }

    /// From now on checkpoint requests fail: the rank is leaving (MPI_Finalize). A checkpoint
    /// whose safepoint this rank will now never reach fails too.
    pub fn begin_finalize(&mut self) -> Result<(), EngineError> {
        self.ckpt.finalizing = true;
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
        self.ckpt.safepoints += 1;
        let here = self.ckpt.safepoints;
        let mut idle = 0;
        loop {
            match self.ckpt.phase {
                Phase::Requested { reported: true, .. } => self.progress_or_idle(&mut idle)?,
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
        tracing::warn!("checkpoint {epoch} failed: {reason}");
        self.reset_checkpoint();
        let rank = self.rank();
        self.send_control(Message::CheckpointFailed(CheckpointFailed {
            epoch,
            rank,
            reason,
        }))
    }

    fn reset_checkpoint(&mut self) {
        self.ckpt.phase = Phase::Idle;
        self.ckpt.marker_in.iter_mut().for_each(|m| *m = false);
        self.ckpt.slots.clear();
        self.release_held();
    }

    pub(crate) fn on_marker(&mut self, peer: u32, epoch: u64) -> Result<(), EngineError> {
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
