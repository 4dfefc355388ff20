//! Messages of process migration (commands 48–57, ChaRM4MPI §2.2's MIGRATE): a tool asks, the
//! coordinator tells the rank and its peers, the rank's image travels from its node's daemon
//! to the target's, the target restores it, and the restored rank says it has arrived.

use serde::{Deserialize, Serialize};

/// Marker epochs of migrations carry this bit, so that they never look like a checkpoint's.
pub const MIGRATION_MARK: u64 = 1 << 63;

/// Move `rank` to `node` (tool → coordinator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    pub rank: u32,
    pub node: String,
}

/// The rank computes on its new node (coordinator → tool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateDone {
    pub rank: u32,
    pub from: String,
    pub to: String,
    /// From the request to the restored rank's arrival.
    pub total_us: u64,
    /// The image's copy from daemon to daemon.
    pub transfer_us: u64,
    pub bytes: u64,
}

/// You migrate (coordinator → the migrating rank): markers on every link, drain, capture, exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateOut {
    pub seq: u64,
}

/// `rank` migrates (coordinator → every other rank): marker on the link to it, hold what
/// follows for it, read it up to its marker, compute on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigratePeer {
    pub rank: u32,
    pub seq: u64,
}

/// The migrating rank's image is complete at `path` on its node (rank → coordinator); the
/// rank exits after sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateCaptured {
    pub rank: u32,
    pub seq: u64,
    pub path: String,
    pub size: u64,
}

/// Send the image at `path` to the daemon of `node` at `addr` (coordinator → source daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateSend {
    pub rank: u32,
    pub seq: u64,
    pub path: String,
    pub node: String,
    pub addr: String,
}

/// An image of `size` bytes follows in PART_DATA frames (daemon → daemon); the receiver
/// restores it as `rank` and answers MIGRATE_SENT or MIGRATE_FAILED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateImage {
    pub rank: u32,
    pub seq: u64,
    pub size: u64,
}

/// The image is on the target and its restorer started (target → source daemon, then source
/// daemon → coordinator with the copy's duration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateSent {
    pub rank: u32,
    pub seq: u64,
    pub bytes: u64,
    pub micros: u64,
}

/// A step of migration `seq` failed (rank or daemon → coordinator, target → source daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateFailed {
    pub rank: u32,
    pub seq: u64,
    pub reason: String,
}

/// The restored rank has its new links and computes on (rank → coordinator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateArrived {
    pub rank: u32,
    pub seq: u64,
}
