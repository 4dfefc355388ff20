//! The manifest of a global snapshot.
//!
//! ```text
//! magic "MPCRSNAP" | version u32 | body length u32 | body (JSON, UTF-8) | crc32c u32
//! ```
//!
//! Little-endian; the crc32c covers every byte before it. `docs/snapshot-format.md` is the
//! specification.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::names;
use crate::part::{PartInfo, part_file_name};

/// First bytes of a manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"MPCRSNAP";
/// The manifest format this build writes.
pub const MANIFEST_FORMAT_VERSION: u32 = 2;
/// The oldest manifest format this build reads.
pub const MIN_MANIFEST_FORMAT_VERSION: u32 = 1;
/// Largest manifest body; a reader refuses a larger one before allocating.
pub const MAX_MANIFEST_BODY: u32 = 64 << 20;
/// The manifest's file name in a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest";

const HEADER_LEN: usize = 16;

/// What the coordinator knows about a global snapshot when it commits it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInput {
    pub job: String,
    pub epoch: u64,
    /// The job's command line (program and arguments) as `mpicr run` started it.
    pub command: Vec<String>,
    /// The environment the ranks were started with.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// (rank, node) for every rank.
    pub placement: Vec<(u32, String)>,
    /// Every rank's part, as its [`PartWriter::finish`](crate::PartWriter::finish) reported.
    pub parts: Vec<PartInfo>,
    /// Messages captured in transit (Chandy–Lamport channel state) by this checkpoint.
    pub in_transit_messages: u64,
    /// The safepoint count at which the ranks took their local snapshots.
    pub safepoint: u64,
    /// The data-plane transport the job ran on (`shm`, `tcp`).
    pub transport: String,
    /// Anything else the runtime wants to keep (options of the run, …); free-form.
    pub extra: BTreeMap<String, String>,
}

/// A committed snapshot's manifest, as read back and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format version (the same as the header's).
    pub format_version: u32,
    pub job: String,
    pub epoch: u64,
    /// When the snapshot was committed, Unix seconds.
    pub created: u64,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The working directory, as a UTF-8 string.
    pub cwd: String,
    pub placement: Vec<(u32, String)>,
    /// One entry per rank, in rank order, ranks 0 to n-1.
    pub parts: Vec<PartInfo>,
    pub in_transit_messages: u64,
    pub safepoint: u64,
    pub transport: String,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl Manifest {
    /// A whole number kept in `extra` under `key`; `None` when it is missing or not a number.
    pub fn extra_u64(&self, key: &str) -> Option<u64> {
        self.extra.get(key)?.parse().ok()
    }

    /// Number of ranks.
    pub fn ranks(&self) -> u32 {
        self.parts.len() as u32
    }

    /// The part entry of `rank`.
    pub fn part(&self, rank: u32) -> Option<&PartInfo> {
        self.parts.get(rank as usize).filter(|p| p.rank == rank)
    }

    /// The checkpointer of every rank, in rank order.
    pub fn checkpointers(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.checkpointer.clone()).collect()
    }

    /// Builds a manifest from commit input, sorting the parts by rank. The caller checks the
    /// parts against the files.
    pub(crate) fn from_input(
        input: ManifestInput,
        created: u64,
        dir: &Path,
    ) -> Result<Manifest, StoreError> {
        let bad = |what: String| StoreError::BadCommit {
            path: dir.to_owned(),
            what,
        };
        let cwd = input
            .cwd
            .to_str()
            .ok_or_else(|| {
                bad(format!(
                    "the working directory {} is not UTF-8",
                    input.cwd.display()
                ))
            })?
            .to_owned();
        let mut parts = input.parts;
        parts.sort_by_key(|p| p.rank);
        let m = Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            job: input.job,
            epoch: input.epoch,
            created,
            command: input.command,
            env: input.env,
            cwd,
            placement: input.placement,
            parts,
            in_transit_messages: input.in_transit_messages,
            safepoint: input.safepoint,
            transport: input.transport,
            extra: input.extra,
        };
        m.check_consistent().map_err(bad)?;
        Ok(m)
    }

    /// The checks every manifest passes, written or read: a well-formed job name, one part per
    /// rank 0..n-1 with its standard file name, placement (if given) of the same ranks.
    fn check_consistent(&self) -> Result<(), String> {
        names::check_job(&self.job).map_err(|e| e.to_string())?;
        if self.parts.is_empty() {
            return Err("it has no parts".into());
        }
        for (i, p) in self.parts.iter().enumerate() {
            if p.rank as usize != i {
                return Err(if (p.rank as usize) < i {
                    format!("rank {} has two parts", p.rank)
                } else {
                    format!("rank {i} has no part")
                });
            }
            if p.file != part_file_name(p.rank) {
                return Err(format!(
                    "the part of rank {} is named `{}`, not `{}`",
                    p.rank,
                    p.file,
                    part_file_name(p.rank)
                ));
            }
            names::check_checkpointer(&p.checkpointer).map_err(|e| e.to_string())?;
        }
        if !self.placement.is_empty() {
            let mut ranks: Vec<u32> = self.placement.iter().map(|(r, _)| *r).collect();
            ranks.sort_unstable();
            if ranks.iter().copied().ne(0..self.ranks()) {
                return Err(format!(
                    "the placement does not name each of the {} ranks once",
                    self.ranks()
                ));
            }
        }
        Ok(())
    }

    /// The manifest file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec_pretty(self).expect("a manifest always serializes to JSON");
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + 4);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads and checks the manifest file at `path`.
    pub fn read(path: &Path) -> Result<Manifest, StoreError> {
        let file = File::open(path).map_err(StoreError::io("open the manifest", path))?;
        let size = file
            .metadata()
            .map_err(StoreError::io("inspect the manifest", path))?
            .len();
        let cap = (HEADER_LEN + MAX_MANIFEST_BODY as usize + 4) as u64;
        if size > cap {
            return Err(StoreError::corrupt(
                path,
                format!("it has {size} bytes, more than a manifest may ({cap})"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(StoreError::io("read", path))?;
        Self::decode(path, &bytes)
    }

    /// Checks and decodes a manifest file's bytes; `path` names it in errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest, StoreError> {
        if bytes.len() < 12 {
            return Err(StoreError::truncated(
                path,
                format!("it has {} bytes, less than a manifest header", bytes.len()),
            ));
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err(StoreError::corrupt(
                path,
                "it does not start with the manifest magic MPCRSNAP",
            ));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if !(MIN_MANIFEST_FORMAT_VERSION..=MANIFEST_FORMAT_VERSION).contains(&version) {
            return Err(StoreError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
                min: MIN_MANIFEST_FORMAT_VERSION,
                max: MANIFEST_FORMAT_VERSION,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(StoreError::truncated(
                path,
                format!("it has {} bytes, less than a manifest header", bytes.len()),
            ));
        }
        let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if len > MAX_MANIFEST_BODY {
            return Err(StoreError::corrupt(
                path,
                format!("its body length {len} is over the cap of {MAX_MANIFEST_BODY}"),
            ));
        }
        let want = HEADER_LEN + len as usize + 4;
        if bytes.len() < want {
            return Err(StoreError::truncated(
                path,
                format!("it has {} bytes, its header says {want}", bytes.len()),
            ));
        }
        if bytes.len() > want {
            return Err(StoreError::corrupt(
                path,
                format!("it has {} bytes, its header says {want}", bytes.len()),
            ));
        }
        let body_end = HEADER_LEN + len as usize;
        let stored = u32::from_le_bytes([
            bytes[body_end],
            bytes[body_end + 1],
            bytes[body_end + 2],
            bytes[body_end + 3],
        ]);
        let crc = crc32c::crc32c(&bytes[..body_end]);
        if crc != stored {
            return Err(StoreError::corrupt(
                path,
                format!("its crc32c is {crc:08x}, the file says {stored:08x}"),
            ));
        }
        let m: Manifest = serde_json::from_slice(&bytes[HEADER_LEN..body_end])
            .map_err(|e| StoreError::corrupt(path, format!("its body does not decode ({e})")))?;
        if m.format_version != version {
            return Err(StoreError::corrupt(
                path,
                format!(
                    "its body says format version {}, its header {version}",
                    m.format_version
                ),
            ));
        }
        m.check_consistent()
            .map_err(|what| StoreError::corrupt(path, what))?;
        Ok(m)
    }
}
