//! Reading an image (and the chain of images it is based on) once, into the memory it restores,
//! before the point of no return.
//!
//! Each image is streamed in file order by `image::read_image_into`, which checksums every byte
//! as it passes; this module is its [`PageSink`] and puts each run's pages into a *staging*
//! mapping per region, at an address the kernel chose (moved, if needed, off every range the
//! image occupies):
//!
//! - the staging mapping is at the region's own address when the restorer does not use it
//!   (`sys::Mapping` says why that is better), else anywhere;
//! - raw runs are read straight into the staging mapping (no copy through a buffer);
//! - compressed runs (format version 2) are decompressed into it, and checked against the
//!   crc32c of their pages;
//! - a region with stored pages is staged in the kind of memory it is restored as: private
//!   anonymous (growing down for the main stack), shared anonymous, or a private mapping of
//!   its file whose changed pages are written over the file's;
//! - a chain of incremental images is read from its full image up to the image restored: a
//!   `delta` region takes over the staging mapping of its parent's region with the same bounds
//!   and kind, and its runs overwrite (or zero) the pages they store. Every link is read and
//!   validated completely and must be the very file (size and crc32c) its child names.
//!
//! Nothing changes in the process but these mappings until every check has passed; a refused
//! image only unmaps them. After the point of no return the relocated routine (`plan`, `blob`)
//! moves each staging mapping to its region's address with `mremap` and sets its protection:
//! page tables move, no page is read or copied again, and the memory never needs twice the
//! image's size. Regions without stored pages are mapped fresh by the routine.
//!
//! Why not map the image file itself: raw runs are not page-aligned in the file, the file is
//! shared (a private mapping of it would still read each page on its first fault, after the
//! point of no return), and compressed runs and chains need code anyway.

use std::fs::File;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use std::path::{Path, PathBuf};

use image::codec::{ENC_RAW, ENC_ZERO, decompress};
use image::format::{
    FdEntry, FormatError, MAX_CHAIN, PAGE_SIZE, Parent, RFLAG_DELTA, RFLAG_STACK, RegionDesc,
    RegionKind,
};
use image::{Image, PageSink, RunData, RunLoc, read_image_into, read_parent_ref};

use crate::check;
use crate::sys::{Backing, Mapping};

/// A deleted file's contents are copied into the new file this many bytes at a time.
const COPY_CHUNK: usize = 1 << 20;

/// A range of a region's pages (for the account of what is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pages {
    page: u64,
    npages: u64,
}

/// One region of the link being read: its description, its staging mapping (none while
/// nothing is stored) and which pages the images store for it.
#[derive(Debug)]
struct Slot {
    desc: RegionDesc,
    /// How messages name it.
    here: String,
    mapping: Option<Mapping>,
    /// Pages stored by the links below (sorted, disjoint).
    stored: Vec<Pages>,
    /// Pages stored by this link (in run order), laid over `stored` when the region ends.
    own: Vec<Pages>,
}

impl Slot {
    fn finish(&mut self) {
        if !self.own.is_empty() {
            self.stored = overlay(&self.stored, &self.own);
            self.own.clear();
        }
    }
}

/// The image restored, read and staged.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) img: Image,
    /// Per region of `img`, the mapping holding its pages (none: the routine maps it fresh).
    pub(crate) regions: Vec<Option<Mapping>>,
    /// The deleted files of the image restored, recreated with their contents: the
    /// descriptor number they were open at, and a read-write descriptor of the new file.
    pub(crate) deleted: Vec<(i32, OwnedFd)>,
    /// Bytes of memory the images store for the regions restored.
    pub(crate) stored_bytes: u64,
    /// Bytes decompressed from compressed runs.
    pub(crate) decompressed_bytes: u64,
    /// Images below `img` in its chain.
    pub(crate) links: usize,
}

/// A link of the chain: its file and what its child says it must be.
struct Link {
    path: PathBuf,
    file: File,
    /// The reference the child holds (none for the image restored).
    expect: Option<Parent>,
    /// The child's path, for messages.
    child: PathBuf,
    /// What its own PARENT section said when the chain was followed.
    parent: Option<Parent>,
}

/// The image at `path` (open as `file`) and the images it is based on, the image first,
/// each opened and its PARENT section checked, without reading the rest.
fn chain(path: &Path, file: File) -> Result<Vec<Link>, String> {
    let mut parent = read_parent_ref(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut links = vec![Link {
        path: path.to_path_buf(),
        file,
        expect: None,
        child: path.to_path_buf(),
        parent: parent.clone(),
    }];
    let mut depth = parent.as_ref().map_or(0, |p| p.depth);
    let mut child_path = path.to_path_buf();
    while let Some(p) = parent {
        if links.len() as u32 > MAX_CHAIN || p.depth != depth {
            return Err(format!(
                "{}: the chain of incremental images is inconsistent (depth {} where {depth} was expected)",
                child_path.display(),
                p.depth
            ));
        }
        let dir = child_path.parent().unwrap_or(Path::new("."));
        let ppath = dir.join(&p.path);
        let file = File::open(&ppath).map_err(|e| {
            format!(
                "{}: the image it is based on, {}, is missing: {e}",
                child_path.display(),
                ppath.display()
            )
        })?;
        let next = read_parent_ref(&ppath).map_err(|e| unusable(&child_path, &ppath, &e))?;
        depth -= 1;
        if next.is_none() && depth != 0 {
            return Err(format!(
                "{}: the chain ends {depth} links early",
                ppath.display()
            ));
        }
        links.push(Link {
            path: ppath.clone(),
            file,
            expect: Some(p),
            child: child_path,
            parent: next.clone(),
        });
        child_path = ppath;
        parent = next;
    }
    Ok(links)
}

fn unusable(child: &Path, link: &Path, e: &FormatError) -> String {
    format!(
        "{}: the image it is based on, {}, is unusable: {e}",
        child.display(),
        link.display()
    )
}

/// Reads the image at `path` (open as `file`) and its chain, each byte once, and stages the
/// pages of the regions restored. `check_only`: validate everything, stage nothing.
pub(crate) fn stage(path: &Path, file: File, check_only: bool) -> Result<Staged, String> {
    let links = chain(path, file)?;
    let n = links.len();
    let mut sink = Stager {
        check_only,
        top: false,
        prev: Vec::new(),
        cur: Vec::new(),
        buf: Vec::new(),
        decompressed: 0,
        deleted: Vec::new(),
    };
    let mut top_img = None;
    for (k, link) in links.into_iter().enumerate().rev() {
        sink.top = k == 0;
        let read = read_image_into(link.file, &mut sink);
        let img = match read {
            Ok(img) => img,
            Err(FormatError::Sink(msg)) => return Err(msg),
            Err(e) if k == 0 => return Err(format!("{}: {e}", link.path.display())),
            Err(e) => return Err(unusable(&link.child, &link.path, &e)),
        };
        // The chain was followed by path; what was read is the file opened then.
        if img.parent != link.parent {
            return Err(format!(
                "{}: the image was replaced while it was read",
                link.path.display()
            ));
        }
        if let Some(p) = &link.expect
            && (img.file_len != p.size || img.crc32c != p.crc32c)
        {
            return Err(format!(
                "{}: the image it is based on, {}, is not the one it was taken against \
                 (size or checksum differ)",
                link.child.display(),
                link.path.display()
            ));
        }
        if let Some(last) = sink.cur.last_mut() {
            last.finish();
        }
        sink.prev = std::mem::take(&mut sink.cur);
        top_img = Some(img);
    }
    let img = top_img.ok_or("an image chain without images")?;
    let stored_bytes = sink
        .prev
        .iter()
        .flat_map(|s| &s.stored)
        .map(|p| p.npages * PAGE_SIZE)
        .sum();
    // Each either in place or off every range the image occupies, so the routine can move
    // each into place in any order.
    let avoid = crate::plan::image_ranges(&img);
    let mut regions = Vec::with_capacity(sink.prev.len());
    for slot in sink.prev {
        let mut m = slot.mapping;
        if let Some(m) = &mut m {
            let (s, e) = m.range();
            if s != slot.desc.start && crate::plan::overlaps(s, e, &avoid) {
                m.move_off(&avoid)
                    .map_err(|e| format!("cannot move a staging mapping aside: {e}"))?;
            }
        }
        regions.push(m);
    }
    Ok(Staged {
        img,
        regions,
        deleted: sink.deleted,
        stored_bytes,
        decompressed_bytes: sink.decompressed,
        links: n - 1,
    })
}

/// The [`PageSink`] that stages one link after the other.
struct Stager {
    check_only: bool,
    /// Whether the link being read is the image restored (only its file regions are staged:
    /// deltas are anonymous).
    top: bool,
    /// The previous (parent) link's regions, taken over by the current link's deltas.
    prev: Vec<Slot>,
    cur: Vec<Slot>,
    buf: Vec<u8>,
    decompressed: u64,
    /// The deleted files recreated from the image restored.
    deleted: Vec<(i32, OwnedFd)>,
}

fn sink(msg: String) -> FormatError {
    FormatError::Sink(msg)
}

fn region_name(d: &RegionDesc) -> String {
    let range = format!("{:#x}-{:#x}", d.start, d.end);
    if d.name.is_empty() {
        range
    } else {
        format!("{range} {}", d.name)
    }
}

/// The staging mapping of `slot`, made on its first stored page; none when its pages are not
/// kept (`--check`, or a file region of a link below the image restored).
fn mapping(
    slot: &mut Slot,
    check_only: bool,
    top: bool,
) -> Result<Option<&mut Mapping>, FormatError> {
    let d = &slot.desc;
    let staged = match d.kind {
        RegionKind::Anon | RegionKind::AnonShared => true,
        RegionKind::FilePrivate => top,
        RegionKind::FileShared => false,
    };
    if check_only || !staged {
        return Ok(None);
    }
    if slot.mapping.is_none() {
        let (at, len) = (d.start, d.end - d.start);
        let made = match d.kind {
            RegionKind::FilePrivate => {
                let file = open_unchanged(d)?;
                Mapping::new(
                    at,
                    len,
                    Backing::FilePrivate {
                        file: &file,
                        offset: d.file_offset,
                    },
                )
            }
            RegionKind::AnonShared => Mapping::new(at, len, Backing::AnonShared),
            _ => Mapping::new(
                at,
                len,
                Backing::Anon {
                    stack: d.flags & RFLAG_STACK != 0,
                },
            ),
        };
        let m = made.map_err(|e| {
            sink(format!(
                "cannot stage the {len} bytes of region {}: {e}",
                slot.here
            ))
        })?;
        slot.mapping = Some(m);
    }
    Ok(slot.mapping.as_mut())
}

/// Opens the file of a private file region after checking it is the version the image was
/// taken with, and checks the descriptor too (the path may have been replaced in between).
fn open_unchanged(d: &RegionDesc) -> Result<File, FormatError> {
    check::file_region(d).map_err(sink)?;
    let file = File::open(&d.name).map_err(|e| sink(format!("cannot open {}: {e}", d.name)))?;
    let st = rustix::fs::fstat(&file).map_err(|e| sink(format!("{}: {e}", d.name)))?;
    if !check::same_contents(&d.identity, &st) {
        return Err(sink(format!(
            "file {} mapped at {:#x} changed since the checkpoint: {}",
            d.name,
            d.start,
            check::how_it_changed(&d.identity, &st)
        )));
    }
    Ok(file)
}

impl PageSink for Stager {
    /// Only the image restored counts (its parents' descriptors are not restored).
    fn file(&mut self, entry: &FdEntry, data: &mut RunData<'_>) -> Result<(), FormatError> {
        if self.check_only || !self.top {
            return Ok(());
        }
        let fd = entry.fd;
        let file = deleted_file(Path::new(&entry.path))
            .map_err(|e| sink(format!("cannot recreate the deleted file of fd {fd}: {e}")))?;
        let mut left = data.left();
        let mut written = 0u64;
        self.buf.resize(COPY_CHUNK, 0);
        while left > 0 {
            let n = left.min(COPY_CHUNK as u64) as usize;
            data.read(&mut self.buf[..n])?;
            rustix::io::pwrite(&file, &self.buf[..n], written)
                .map_err(|e| sink(format!("cannot write the deleted file of fd {fd}: {e}")))
                .and_then(|k| {
                    (k == n).then_some(()).ok_or_else(|| {
                        sink(format!("a short write to the deleted file of fd {fd}"))
                    })
                })?;
            written += n as u64;
            left -= n as u64;
        }
        self.deleted.push((fd, file));
        Ok(())
    }

    fn region(&mut self, _: usize, d: &RegionDesc) -> Result<(), FormatError> {
        if let Some(last) = self.cur.last_mut() {
            last.finish();
        }
        // Regions come in address order, so a parent's region that ends here can no longer be
        // the base of a delta: its pages go now, not after the whole link.
        for p in self.prev.iter_mut().filter(|p| p.desc.end <= d.start) {
            p.mapping = None;
        }
        let mut slot = Slot {
            desc: d.clone(),
            here: region_name(d),
            mapping: None,
            stored: Vec::new(),
            own: Vec::new(),
        };
        if d.flags & RFLAG_DELTA != 0 {
            // The writer makes only anonymous regions deltas; the pages of a file region's
            // parent below the image restored are not staged.
            if d.kind.is_file() {
                return Err(FormatError::Invalid(format!(
                    "region {}: a file region marked delta",
                    slot.here
                )));
            }
            let base = self
                .prev
                .iter_mut()
                .find(|p| p.desc.start == d.start && p.desc.end == d.end && p.desc.kind == d.kind)
                .ok_or_else(|| {
                    sink(format!(
                        "the incremental image's region {} is not in the image it is based on",
                        slot.here
                    ))
                })?;
            slot.mapping = base.mapping.take();
            slot.stored = std::mem::take(&mut base.stored);
        }
        self.cur.push(slot);
        Ok(())
    }

    fn run(&mut self, run: &RunLoc, data: &mut RunData<'_>) -> Result<(), FormatError> {
        let (check_only, top) = (self.check_only, self.top);
        let Some(slot) = self.cur.last_mut() else {
            return Err(sink("a page run outside any region".into()));
        };
        slot.own.push(Pages {
            page: run.page,
            npages: run.npages,
        });
        let off = run.page * PAGE_SIZE;
        let bytes = run.npages * PAGE_SIZE;
        let here = slot.here.clone();
        let corrupt = move |e: String| FormatError::Invalid(format!("region {here}: {e}"));
        let outside = || FormatError::Sink("internal error: a run outside its region".into());
        match run.enc {
            ENC_ZERO => {
                if let Some(m) = mapping(slot, check_only, top)? {
                    m.bytes(off, bytes).ok_or_else(outside)?.fill(0);
                }
            }
            ENC_RAW => {
                if let Some(m) = mapping(slot, check_only, top)? {
                    data.read(m.bytes(off, bytes).ok_or_else(outside)?)?;
                }
            }
            enc => {
                let mut raw = std::mem::take(&mut self.buf);
                raw.resize(run.len as usize, 0);
                data.read(&mut raw)?;
                let mut scratch = Vec::new();
                let dest = match mapping(slot, check_only, top)? {
                    Some(m) => m.bytes(off, bytes).ok_or_else(outside)?,
                    None => {
                        scratch.resize(bytes as usize, 0);
                        &mut scratch[..]
                    }
                };
                decompress(enc, &raw, dest).map_err(|e| {
                    corrupt(format!("the compressed run at page {}: {e}", run.page))
                })?;
                if crc32c::crc32c(dest) != run.raw_crc {
                    return Err(corrupt(format!(
                        "the compressed run at page {} does not decompress to the pages it \
                         holds (checksum mismatch)",
                        run.page
                    )));
                }
                self.buf = raw;
                self.decompressed += bytes;
            }
        }
        Ok(())
    }
}

/// Cuts `base` where `top` covers it and merges both (both sorted, each non-overlapping).
fn overlay(base: &[Pages], top: &[Pages]) -> Vec<Pages> {
    let mut out = Vec::with_capacity(base.len() + top.len());
    for b in base {
        // The parts of b not covered by any top range.
        let mut at = b.page;
        let end = b.page + b.npages;
        for t in top {
            let (ts, te) = (t.page, t.page + t.npages);
            if te <= at || ts >= end {
                continue;
            }
            if ts > at {
                out.push(Pages {
                    page: at,
                    npages: ts - at,
                });
            }
            at = at.max(te);
        }
        if at < end {
            out.push(Pages {
                page: at,
                npages: end - at,
            });
        }
    }
    out.extend_from_slice(top);
    out.sort_unstable_by_key(|p| p.page);
    out
}

/// A new file with no name, read-write and close-on-exec, for a file that was deleted while
/// open: in the directory the file was in when that still exists (`O_TMPFILE`: the same file
/// system, as the program had it), else in memory (a memfd).
fn deleted_file(was: &Path) -> std::io::Result<OwnedFd> {
    let dir = was.parent().filter(|d| d.is_dir());
    if let Some(dir) = dir
        && let Ok(fd) = rustix::fs::open(
            dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
    {
        return Ok(fd);
    }
    Ok(rustix::fs::memfd_create(
        "mpicr-deleted",
        rustix::fs::MemfdFlags::CLOEXEC,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(page: u64, npages: u64) -> Pages {
        Pages { page, npages }
    }

    #[test]
    fn overlay_cuts_the_base_where_the_top_covers_it() {
        let base = [p(0, 10), p(20, 2)];
        let top = [p(2, 3), p(9, 12)];
        assert_eq!(
            overlay(&base, &top),
            vec![p(0, 2), p(2, 3), p(5, 4), p(9, 12), p(21, 1)]
        );
    }
}
