//! Where every restored page comes from, decided before the point of no return.
//!
//! The routine that unmaps the restorer can only issue system calls (see `plan`): it cannot
//! decompress, and it cannot walk a chain of incremental images. So everything that needs code
//! happens here, in ordinary Rust, while a failure still ends with a clean message:
//!
//! - compressed runs (format version 2) are decompressed into a *staging* memfd, and the
//!   routine `pread`s them from there like raw runs from an image file; zero runs of an
//!   incremental image read from a hole at the end of the staging file;
//! - for an incremental image the chain is followed to its full image: every link is read and
//!   validated completely, each must be the very file (size and crc32c) its child names, and a
//!   region marked delta takes the pages it does not store from the same region of its parent.
//!
//! The result is, per region of the image restored, a list of pieces: page ranges with the
//! source descriptor and offset to `pread` them from. Raw runs are read straight from their
//! image file (no copy), so a full uncompressed image restores as fast as before.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use image::codec::{ENC_RAW, ENC_ZERO, decompress};
use image::format::{MAX_CHAIN, PAGE_SIZE, RFLAG_DELTA};
use image::{Image, read_image_from};

/// A range of a region's pages and where to read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// First page within the region.
    pub(crate) page: u64,
    pub(crate) npages: u64,
    /// Index into [`Staged::sources`].
    pub(crate) src: usize,
    pub(crate) off: u64,
}

/// The sources (every link's image file, then the staging file) and each region's pieces.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) sources: Vec<File>,
    /// Per region of the restored image, its pieces in page order.
    pub(crate) pieces: Vec<Vec<Piece>>,
    /// Bytes decompressed into the staging file.
    pub(crate) staged_bytes: u64,
}

/// Reads the chain below `img` (found at `path`): its parent, the parent's parent, … up to the
/// full image, each validated and matched against the reference its child holds.
pub(crate) fn read_chain(path: &Path, img: &Image) -> Result<Vec<(Image, File)>, String> {
    let mut out: Vec<(Image, File)> = Vec::new();
    let mut child_path: PathBuf = path.to_path_buf();
    let mut parent = img.parent.clone();
    let mut depth = parent.as_ref().map_or(0, |p| p.depth);
    while let Some(p) = parent {
        if out.len() as u32 >= MAX_CHAIN || p.depth != depth {
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
        let link = file
            .try_clone()
            .map_err(image::FormatError::from)
            .and_then(read_image_from)
            .map_err(|e| {
                format!(
                    "{}: the image it is based on, {}, is unusable: {e}",
                    child_path.display(),
                    ppath.display()
                )
            })?;
        if link.file_len != p.size || link.crc32c != p.crc32c {
            return Err(format!(
                "{}: the image it is based on, {}, is not the one it was taken against \
                 (size or checksum differ)",
                child_path.display(),
                ppath.display()
            ));
        }
        parent = link.parent.clone();
        depth -= 1;
        if parent.is_none() && depth != 0 {
            return Err(format!(
                "{}: the chain ends {depth} links early",
                ppath.display()
            ));
        }
        child_path = ppath;
        out.push((link, file));
    }
    Ok(out)
}

/// Cuts `base` where `top` covers it and merges both (both sorted, each non-overlapping).
fn overlay(base: &[Piece], top: &[Piece]) -> Vec<Piece> {
    let mut out = Vec::with_capacity(base.len() + top.len());
    for b in base {
        // The parts of b not covered by any top piece.
        let mut at = b.page;
        let end = b.page + b.npages;
        for t in top {
            let (ts, te) = (t.page, t.page + t.npages);
            if te <= at || ts >= end {
                continue;
            }
            if ts > at {
                out.push(Piece {
                    page: at,
                    npages: ts - at,
                    src: b.src,
                    off: b.off + (at - b.page) * PAGE_SIZE,
                });
            }
            at = at.max(te);
        }
        if at < end {
            out.push(Piece {
                page: at,
                npages: end - at,
                src: b.src,
                off: b.off + (at - b.page) * PAGE_SIZE,
            });
        }
    }
    out.extend_from_slice(top);
    out.sort_unstable_by_key(|p| p.page);
    out
}

/// Decides every region's pieces, decompressing what must be into a staging memfd.
/// `main` is the image restored, read from `main_file`; `chain` its parents (from
/// [`read_chain`]).
pub(crate) fn stage(
    main: &Image,
    main_file: File,
    chain: Vec<(Image, File)>,
) -> Result<Staged, String> {
    let staging_src = chain.len() + 1;
    // Zero pieces point here until the hole's offset is known; their offset is within it.
    let zero_src = staging_src + 1;
    let (chain_imgs, chain_files): (Vec<Image>, Vec<File>) = chain.into_iter().unzip();
    let mut links: Vec<&Image> = vec![main];
    links.extend(chain_imgs.iter());
    let mut files: Vec<File> = vec![main_file];
    files.extend(chain_files);
    let staging = image::restart::memfd_with("mpicr-restore-staging", &[])
        .map_err(|e| format!("cannot create the staging file: {e}"))?;
    let staging = File::from(staging);
    let mut staged = 0u64;
    let mut max_zero = 0u64;
    let mut raw = Vec::new();
    let mut buf = Vec::new();

    // Pieces of region `ri` of link `k`, resolved through its parents.
    let mut resolved: Vec<Vec<Vec<Piece>>> = vec![Vec::new(); links.len()];
    for k in (0..links.len()).rev() {
        let img = links[k];
        let mut per_region = Vec::with_capacity(img.regions.len());
        for r in &img.regions {
            let d = &r.desc;
            let mut own = Vec::with_capacity(r.runs.len());
            for run in &r.runs {
                let bytes = run.npages * PAGE_SIZE;
                let (src, off) = match run.enc {
                    ENC_RAW => (k, run.file_offset),
                    ENC_ZERO => {
                        max_zero = max_zero.max(bytes);
                        (zero_src, 0)
                    }
                    enc => {
                        raw.resize(run.len as usize, 0);
                        files[k]
                            .read_exact_at(&mut raw, run.file_offset)
                            .map_err(|e| format!("cannot read the image: {e}"))?;
                        buf.resize(bytes as usize, 0);
                        let corrupt = |e: String| {
                            format!(
                                "image is corrupt: region {:#x}-{:#x} {}: {e}",
                                d.start, d.end, d.name
                            )
                        };
                        decompress(enc, &raw, &mut buf).map_err(|e| {
                            corrupt(format!("the compressed run at page {}: {e}", run.page))
                        })?;
                        if crc32c::crc32c(&buf) != run.raw_crc {
                            return Err(corrupt(format!(
                                "the compressed run at page {} does not decompress to the pages \
                                 it holds (checksum mismatch)",
                                run.page
                            )));
                        }
                        staging
                            .write_all_at(&buf, staged)
                            .map_err(|e| format!("cannot write the staging file: {e}"))?;
                        staged += bytes;
                        (staging_src, staged - bytes)
                    }
                };
                own.push(Piece {
                    page: run.page,
                    npages: run.npages,
                    src,
                    off,
                });
            }
            let pieces = if d.flags & RFLAG_DELTA != 0 {
                let parent = links.get(k + 1).ok_or_else(|| {
                    "image is corrupt: a delta region without a parent image".to_string()
                })?;
                let pi = parent
                    .regions
                    .iter()
                    .position(|p| {
                        p.desc.start == d.start && p.desc.end == d.end && p.desc.kind == d.kind
                    })
                    .ok_or_else(|| {
                        format!(
                            "the incremental image's region {:#x}-{:#x} {} is not in the image it is based on",
                            d.start, d.end, d.name
                        )
                    })?;
                overlay(&resolved[k + 1][pi], &own)
            } else {
                own
            };
            per_region.push(pieces);
        }
        resolved[k] = per_region;
    }
    let mut pieces = std::mem::take(&mut resolved[0]);
    // Zero runs read from the hole after the staged data.
    for p in pieces.iter_mut().flatten() {
        if p.src == zero_src {
            p.src = staging_src;
            p.off += staged;
        }
    }
    staging
        .set_len(staged + max_zero)
        .map_err(|e| format!("cannot size the staging file: {e}"))?;
    files.push(staging);
    Ok(Staged {
        sources: files,
        pieces,
        staged_bytes: staged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(page: u64, npages: u64, src: usize, off: u64) -> Piece {
        Piece {
            page,
            npages,
            src,
            off,
        }
    }

    #[test]
    fn overlay_cuts_the_base_where_the_top_covers_it() {
        let base = [p(0, 10, 1, 0), p(20, 2, 1, 40960)];
        let top = [p(2, 3, 0, 7), p(9, 12, 0, 9)];
        assert_eq!(
            overlay(&base, &top),
            vec![
                p(0, 2, 1, 0),
                p(2, 3, 0, 7),
                p(5, 4, 1, 5 * 4096),
                p(9, 12, 0, 9),
                p(21, 1, 1, 40960 + 4096),
            ]
        );
    }
}
