//! The steps of a commit, in order, for [`Pending::commit_with`](crate::Pending::commit_with).

use std::fmt;

/// A step of the two-phase commit; a hook given to
/// [`Pending::commit_with`](crate::Pending::commit_with) is called after each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommitStep {
    /// Every rank's part is present with the size, trailer checksum and header it reported.
    PartsChecked,
    /// The parts and the staging directory are fsynced.
    PartsSynced,
    /// The manifest is written to `manifest.tmp` and fsynced.
    ManifestWritten,
    /// `manifest.tmp` is renamed to `manifest` and the staging directory fsynced.
    ManifestInPlace,
    /// The commit point: the staging directory is renamed to `<epoch>` and the job directory
    /// fsynced. From here on the snapshot is committed.
    Renamed,
    /// `latest` names the new snapshot (unless a newer epoch was committed first) and the job
    /// directory is fsynced.
    LatestUpdated,
}

impl CommitStep {
    /// Every step, in order.
    pub const ALL: [CommitStep; 6] = [
        CommitStep::PartsChecked,
        CommitStep::PartsSynced,
        CommitStep::ManifestWritten,
        CommitStep::ManifestInPlace,
        CommitStep::Renamed,
        CommitStep::LatestUpdated,
    ];

    /// True once the snapshot is committed (the rename is done).
    pub fn is_committed(self) -> bool {
        self >= CommitStep::Renamed
    }
}

impl fmt::Display for CommitStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommitStep::PartsChecked => "parts checked",
            CommitStep::PartsSynced => "parts synced",
            CommitStep::ManifestWritten => "manifest written",
            CommitStep::ManifestInPlace => "manifest in place",
            CommitStep::Renamed => "snapshot directory renamed",
            CommitStep::LatestUpdated => "latest updated",
        })
    }
}
