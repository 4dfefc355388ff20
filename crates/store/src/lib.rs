//! Global snapshots of mpicr on disk.
//!
//! A global snapshot is a directory holding one *part* per rank (that rank's local snapshot:
//! named sections, each with its own crc32c) and a *manifest* (the job's command line,
//! environment, placement, the epoch, and every part's size and checksum). It is written in a
//! staging directory and committed in two phases (DESIGN.md §3): every part durable, then the
//! manifest written under a temporary name, fsynced and renamed, then the staging directory
//! renamed to its final name, which is the commit point, then `latest` updated. A crash at any
//! moment leaves the previous committed snapshot usable and `latest` naming a complete one.
//!
//! ```no_run
//! # fn main() -> Result<(), store::StoreError> {
//! let store = store::Store::open(None)?;
//! let pending = store.begin("heat", 3)?;
//! let mut part = pending.part_writer(0, "self")?;
//! part.section("grid", &[0u8; 1024])?;
//! let info = part.finish()?;
//! let snap = pending.commit(store::ManifestInput {
//!     job: "heat".into(),
//!     epoch: 3,
//!     parts: vec![info],
//!     ..Default::default()
//! })?;
//! assert_eq!(store.resolve("heat")?.name(), snap.name());
//! # Ok(()) }
//! ```
//!
//! `docs/snapshot-format.md` specifies the layout and both file formats and keeps their
//! version log.
#![forbid(unsafe_code)]

mod commit;
mod error;
mod fsutil;
mod manifest;
mod names;
mod node_records;
mod part;
mod redundancy;
mod store;

#[cfg(test)]
mod tests;

pub use commit::CommitStep;
pub use error::StoreError;
pub use manifest::{
    MANIFEST_FILE, MANIFEST_FORMAT_VERSION, MANIFEST_MAGIC, MAX_MANIFEST_BODY,
    MIN_MANIFEST_FORMAT_VERSION, Manifest, ManifestInput,
};
pub use names::{MAX_CHECKPOINTER_NAME, MAX_JOB_NAME, check_job as check_job_name};
pub use node_records::{NodeRecord, NodeRecords};
pub use part::{
    MAX_SECTION_NAME, MAX_SECTIONS, MIN_PART_FORMAT_VERSION, PART_END_MAGIC, PART_FORMAT_VERSION,
    PART_MAGIC, PartInfo, PartReader, PartWriter, SectionInfo, SectionReader, SectionWriter,
    part_file_name,
};
pub use redundancy::{ParityEntry, Redundancy};
pub use store::{EXTRA_DURATION_MS, EXTRA_STALL_BOUND_MS, Pending, Snapshot, SnapshotInfo, Store};
