//! The `self` checkpointer: the application saves and restores its own state (the paper's
//! "self" component). Its part holds the sections the layers gathered: the application's
//! named states, the MPI layer's messages and the runtime layer's counters.

use store::{PartReader, PartWriter};

use crate::{Checkpointer, CrsError, CrsState, PartRequest, SnapshotRef};

/// The `self` component.
#[derive(Debug, Default)]
pub struct SelfCheckpointer {
    disabled: u32,
    /// Sections to write at the next checkpoint (set by the entry point).
    pending: Vec<(String, Vec<u8>)>,
    /// What the last write produced.
    last: Option<store::PartInfo>,
}

impl SelfCheckpointer {
    pub const NAME: &'static str = "self";

    /// Hands over the sections the next `checkpoint` writes.
    pub fn stage(&mut self, sections: Vec<(String, Vec<u8>)>) {
        self.pending = sections;
    }

    /// The part the last `checkpoint` wrote.
    pub fn last_part(&self) -> Option<&store::PartInfo> {
        self.last.as_ref()
    }

    /// Whether checkpoints are deferred right now.
    pub fn is_disabled(&self) -> bool {
        self.disabled > 0
    }
}

impl Checkpointer for SelfCheckpointer {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn checkpoint(
        &mut self,
        pid: u32,
        part: PartRequest<'_>,
    ) -> Result<(SnapshotRef, CrsState), CrsError> {
        debug_assert_eq!(
            pid,
            std::process::id(),
            "the self checkpointer saves its own process"
        );
        let mut writer = PartWriter::create(part.dir, part.job, part.epoch, part.rank, Self::NAME)?;
        for (name, bytes) in std::mem::take(&mut self.pending) {
            writer.section(&name, &bytes)?;
        }
        let info = writer.finish()?;
        let reference = SnapshotRef {
            checkpointer: Self::NAME.into(),
            file: info.file.clone(),
        };
        self.last = Some(info);
        Ok((reference, CrsState::Continue))
    }

    fn restart(
        &mut self,
        part: &PartReader,
        _spawn_child: &mut dyn FnMut() -> Result<u32, CrsError>,
    ) -> Result<u32, CrsError> {
        if part.checkpointer() != Self::NAME {
            return Err(CrsError::WrongCheckpointer {
                rank: part.rank(),
                found: part.checkpointer().into(),
                expected: Self::NAME,
            });
        }
        part.verify_sections()?;
        Ok(std::process::id())
    }

    fn disable_checkpoint(&mut self) {
        self.disabled += 1;
    }

    fn enable_checkpoint(&mut self) {
        self.disabled = self.disabled.saturating_sub(1);
    }
}
