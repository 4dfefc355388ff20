//! Incremental images by page hashes.
//!
//! Soft-dirty bits are off on the kernels we run on (DESIGN.md §4). userfaultfd write-protect
//! with `PAGEMAP_SCAN` would tell exactly which pages were written, but every new mapping must
//! be registered, `MADV_DONTNEED`, brk shrinking and CoW after the writer's fork all interact
//! with the protection markers, and a missed write is silent corruption. Page hashes are
//! portable and only depend on what the writer already does: it reads every present page of
//! the process (to skip zero pages), so it hashes each one and compares with the hash the
//! previous image recorded for the same address. A page whose hash is unchanged is not stored;
//! the restorer takes it from the parent image. The cost is the same read of memory as a full
//! image; the gain is the write (and the disk).
//!
//! The hashes live in a *table*: a shared anonymous mapping allocated before the fork, which
//! the forked writer fills and its parent keeps for the next checkpoint (two tables alternate:
//! the previous image's, read, and the next one's, written). Tables are left out of the image
//! (like the scratch mapping); a restored process has none, so its first image is full.
//!
//! Which regions can be delta: private anonymous and shared anonymous regions that the
//! previous image had with the same start, end and kind. Private file mappings are always
//! stored whole (their unstored pages mean "the file's", which a delta cannot express for a
//! page that went back to the file's content).
//!
//! The hash is a 4-lane multiply–rotate hash over the page's 64-bit words, finalised with
//! murmur's mixer (64 bits; 0 is reserved for "zero or not present"). It is not
//! cryptographic: a collision between a page's old and new contents (probability about 2^-64
//! per changed page) would keep the old page. Every `full_every`-th image is full regardless.

use std::path::{Path, PathBuf};

use crate::format::{PAGE_SIZE, Parent, RegionKind};
use crate::partref::ImageRef;
use crate::sys::Scratch;

/// Words of the table header: valid, n_regions, hashes used, region capacity.
const HEAD: usize = 4;
/// Words per region entry: start, end, kind, offset of its hashes (u64::MAX: none).
const ENTRY: usize = 4;
/// Most regions a table describes (more are stored whole next time).
const MAX_TABLE_REGIONS: usize = 8192;
/// No hashes recorded for a region.
pub(crate) const NO_HASHES: u64 = u64::MAX;

/// The chain of images one process writes: the last image's hashes and reference, and how
/// often a full image is due.
#[derive(Debug)]
pub struct Chain {
    full_every: u32,
    prev: Option<Scratch>,
    next: Option<Scratch>,
    last: Option<Last>,
    /// The depth of the image being written (0: full).
    pending_depth: u32,
    /// The links it depends on, hard-linked into its directory.
    pending_links: Vec<String>,
}

#[derive(Debug, Clone)]
struct Last {
    path: PathBuf,
    size: u64,
    crc32c: u32,
    depth: u32,
    /// Files in its directory it depends on (its chain's links).
    links: Vec<String>,
}

impl Chain {
    /// A chain with a full image every `full_every` images (1: every image is full).
    pub fn new(full_every: u32) -> Self {
        Self {
            full_every: full_every.max(1),
            prev: None,
            next: None,
            last: None,
            pending_depth: 0,
            pending_links: Vec::new(),
        }
    }

    /// Prepares the tables for a capture to `path` and says what the image is based on:
    /// `None` for a full image. Allocates (phase A).
    ///
    /// Every link an incremental image depends on is hard-linked into its own directory as
    /// `rank-N.base-EPOCH.image` (no copy), and PARENT names that file: a snapshot directory
    /// holding an incremental image is complete by itself, so removing older snapshots (`mpicr
    /// gc`, `--keep`) never breaks a kept one.
    pub(crate) fn begin(&mut self, path: &Path) -> std::io::Result<Option<Parent>> {
        self.next = None;
        self.pending_links.clear();
        self.pending_depth = 0;
        if self.full_every == 1 {
            // Every image is full: no table, no hashing.
            self.prev = None;
            self.last = None;
            return Ok(None);
        }
        let words = table_words()?;
        // Whole pages: the table's range is clipped out of the image's regions.
        let len = (words * 8).div_ceil(PAGE_SIZE as usize) * PAGE_SIZE as usize;
        let mut next = Scratch::new_shared(len)?;
        next.words()[..HEAD].copy_from_slice(&[0, 0, 0, MAX_TABLE_REGIONS as u64]);
        self.next = Some(next);
        self.pending_depth = 0;
        let Some(last) = self.last.clone() else {
            return Ok(None);
        };
        if self.prev.is_none() || last.depth + 1 >= self.full_every {
            return Ok(None);
        }
        let Some(found) = locate(&last) else {
            return Ok(None);
        };
        let (Some(dir), Some(pdir)) = (path.parent(), found.parent()) else {
            return Ok(None);
        };
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".image").to_owned())
            .unwrap_or_default();
        let epoch = pdir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = format!("{stem}.base-{epoch}.image");
        let mut made: Vec<String> = Vec::new();
        let mut ok = true;
        for name in last.links.iter().chain([&base]) {
            let from = if *name == base {
                found.clone()
            } else {
                pdir.join(name)
            };
            if std::fs::hard_link(&from, dir.join(name)).is_err() {
                ok = false;
                break;
            }
            made.push(name.clone());
        }
        if !ok {
            for name in made {
                let _ = std::fs::remove_file(dir.join(name));
            }
            return Ok(None);
        }
        self.pending_depth = last.depth + 1;
        self.pending_links = made;
        Ok(Some(Parent {
            path: base,
            size: last.size,
            crc32c: last.crc32c,
            depth: last.depth + 1,
        }))
    }

    /// The previous image's table (only when the image being written is incremental) and
    /// the next one.
    pub(crate) fn tables(&mut self, incremental: bool) -> (Option<&[u64]>, Option<&mut [u64]>) {
        let prev = if incremental {
            self.prev.as_mut().map(|t| &*t.words())
        } else {
            None
        };
        (prev, self.next.as_mut().map(|t| t.words()))
    }

    /// Address ranges of the tables (left out of the image).
    pub(crate) fn ranges(&self) -> [(u64, u64); 2] {
        let r = |t: &Option<Scratch>| t.as_ref().map_or((0, 0), |t| t.range());
        [r(&self.prev), r(&self.next)]
    }

    /// The image at `path` was written completely: it becomes the parent of the next one.
    pub fn written(&mut self, path: &Path) {
        if let (Some(mut t), Ok(r)) = (self.next.take(), ImageRef::of_file(path))
            && t.words()[0] == 1
        {
            self.prev = Some(t);
            self.last = Some(Last {
                path: path.to_path_buf(),
                size: r.size,
                crc32c: r.crc32c,
                depth: self.pending_depth,
                links: std::mem::take(&mut self.pending_links),
            });
            return;
        }
        self.failed();
    }

    /// The image was not written (or its snapshot not kept): the next image is full.
    pub fn failed(&mut self) {
        self.next = None;
        self.prev = None;
        self.last = None;
    }

    /// In a restored process the tables do not exist (they were left out of the image):
    /// forget them without unmapping whatever may be at their addresses now.
    pub(crate) fn forget_after_restore(&mut self) {
        if let Some(t) = self.prev.take() {
            t.forget();
        }
        if let Some(t) = self.next.take() {
            t.forget();
        }
        self.last = None;
    }
}

/// Where the last image is now, as it was written: where it was written, or, once its
/// snapshot was committed, the staging directory `.staging-EPOCH-PID` renamed to `EPOCH`.
fn locate(last: &Last) -> Option<PathBuf> {
    let same = |p: &Path| {
        ImageRef::of_file(p).is_ok_and(|r| r.size == last.size && r.crc32c == last.crc32c)
    };
    if same(&last.path) {
        return Some(last.path.clone());
    }
    let dir = last.path.parent()?;
    let epoch = committed_name(&dir.file_name()?.to_string_lossy())?;
    let moved = dir.parent()?.join(epoch).join(last.path.file_name()?);
    same(&moved).then_some(moved)
}

/// The committed name of a staging directory `.staging-EPOCH-PID`.
fn committed_name(staging: &str) -> Option<String> {
    let rest = staging.strip_prefix(".staging-")?;
    let (epoch, pid) = rest.split_once('-')?;
    (epoch.parse::<u64>().is_ok() && pid.parse::<u32>().is_ok()).then(|| epoch.to_owned())
}

/// Size of a table for this process: its readable pages now, with room to grow.
fn table_words() -> std::io::Result<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut pages = 0u64;
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms)) = (it.next(), it.next()) else {
            continue;
        };
        if !perms.starts_with('r') {
            continue;
        }
        if let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            pages += (b.saturating_sub(a)) / PAGE_SIZE;
        }
    }
    let hashes = pages + pages / 4 + 65536;
    Ok(HEAD + ENTRY * MAX_TABLE_REGIONS + hashes as usize)
}

/// The hashes the table records for the region `start..end` of `kind`, if it has them.
pub(crate) fn lookup(table: &[u64], start: u64, end: u64, kind: RegionKind) -> Option<&[u64]> {
    if table[0] != 1 {
        return None;
    }
    let n = table[1] as usize;
    let cap = table[3] as usize;
    let entries = &table[HEAD..HEAD + ENTRY * n.min(cap)];
    let i = entries.chunks_exact(ENTRY).position(|e| e[0] == start)?;
    let e = &entries[i * ENTRY..i * ENTRY + ENTRY];
    if e[1] != end || e[2] != kind as u64 || e[3] == NO_HASHES {
        return None;
    }
    let base = HEAD + ENTRY * cap + e[3] as usize;
    let pages = ((end - start) / PAGE_SIZE) as usize;
    table.get(base..base + pages)
}

/// Adds a region to the table being written; returns the slot for its hashes, if it fits.
pub(crate) fn add_region(
    table: &mut [u64],
    start: u64,
    end: u64,
    kind: RegionKind,
    hashed: bool,
) -> Option<&mut [u64]> {
    let n = table[1] as usize;
    let cap = table[3] as usize;
    if n >= cap {
        return None;
    }
    let pages = ((end - start) / PAGE_SIZE) as usize;
    let used = table[2] as usize;
    let base = HEAD + ENTRY * cap;
    let fits = hashed && base + used + pages <= table.len();
    let off = if fits { used as u64 } else { NO_HASHES };
    table[HEAD + ENTRY * n..HEAD + ENTRY * n + ENTRY].copy_from_slice(&[
        start,
        end,
        kind as u64,
        off,
    ]);
    table[1] = n as u64 + 1;
    if !fits {
        return None;
    }
    table[2] = (used + pages) as u64;
    Some(&mut table[base + used..base + used + pages])
}

/// Marks a table complete (the writer's last step).
pub(crate) fn seal(table: &mut [u64]) {
    table[0] = 1;
}

/// The hash of a page: 0 for a zero page, never 0 otherwise.
pub(crate) fn page_hash(p: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = [
        0x243F_6A88_85A3_08D3u64,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut any = 0u64;
    for c in p.chunks_exact(32) {
        for k in 0..4 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[k * 8..k * 8 + 8]);
            let w = u64::from_le_bytes(w);
            any |= w;
            h[k] = (h[k] ^ w).wrapping_mul(K).rotate_left(29);
        }
    }
    if any == 0 {
        return 0;
    }
    let mut x = h[0] ^ h[1].rotate_left(17) ^ h[2].rotate_left(31) ^ h[3].rotate_left(47);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    if x == 0 { 1 } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_tell_zero_pages_and_single_changes() {
        let mut page = vec![0u8; 4096];
        assert_eq!(page_hash(&page), 0);
        page[4095] = 1;
        let a = page_hash(&page);
        assert_ne!(a, 0);
        page[4095] = 0;
        page[0] = 1;
        let b = page_hash(&page);
        assert_ne!(b, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn a_table_finds_what_was_added_and_nothing_else() {
        let mut t = vec![0u64; HEAD + ENTRY * MAX_TABLE_REGIONS + 100];
        t[3] = MAX_TABLE_REGIONS as u64;
        let slot = add_region(&mut t, 0x1000, 0x4000, RegionKind::Anon, true).unwrap();
        slot.copy_from_slice(&[7, 8, 9]);
        assert!(add_region(&mut t, 0x8000, 0x9000, RegionKind::FilePrivate, false).is_none());
        assert_eq!(
            lookup(&t, 0x1000, 0x4000, RegionKind::Anon),
            None,
            "not sealed"
        );
        seal(&mut t);
        assert_eq!(
            lookup(&t, 0x1000, 0x4000, RegionKind::Anon),
            Some(&[7u64, 8, 9][..])
        );
        assert_eq!(lookup(&t, 0x1000, 0x5000, RegionKind::Anon), None);
        assert_eq!(lookup(&t, 0x1000, 0x4000, RegionKind::AnonShared), None);
        assert_eq!(lookup(&t, 0x8000, 0x9000, RegionKind::FilePrivate), None);
    }

    #[test]
    fn staging_directories_are_found_under_their_committed_name() {
        assert_eq!(committed_name(".staging-12-345"), Some("12".into()));
        assert_eq!(committed_name("12"), None);
        assert_eq!(committed_name(".staging-x-345"), None);
    }
}
