//! Reading and validating an image. [`read_image`] streams the whole file once, checks every
//! checksum, cap and invariant, and returns the decoded state with, for each region, where its
//! stored pages are in the file. [`read_image_into`] does the same and hands each run's data
//! to a [`PageSink`] as it passes: the restorer reads every byte of an image once, straight
//! into the memory it restores, and the checksums are those of the bytes it keeps.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::codec::{ENC_LZ4, ENC_RAW, ENC_ZERO, ENC_ZSTD};
use crate::format::*;

/// Where one run of stored pages is in the image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLoc {
    /// Index of the first page within the region.
    pub page: u64,
    pub npages: u64,
    /// Offset of the first byte of the run's data in the file.
    pub file_offset: u64,
    /// How the data is stored (`codec::ENC_*`; always raw in version 1).
    pub enc: u32,
    /// Bytes of data in the file (`npages × 4096` when raw, 0 for zero pages).
    pub len: u64,
    /// crc32c of the uncompressed pages of a compressed run (checked after decompression).
    pub raw_crc: u32,
}

/// A region and where its stored pages are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub desc: RegionDesc,
    pub runs: Vec<RunLoc>,
}

impl Region {
    /// Bytes of memory this region's runs restore (uncompressed).
    pub fn stored_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.npages * PAGE_SIZE).sum()
    }
    /// Bytes its runs take in the file.
    pub fn file_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }
}

/// A fully validated image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub version: u32,
    pub meta: Meta,
    pub layout: Layout,
    /// The image an incremental image is based on (version 2); `None` for a full image.
    pub parent: Option<Parent>,
    pub regions: Vec<Region>,
    pub file_len: u64,
    /// The whole-file crc32c (the last field of the trailer).
    pub crc32c: u32,
}

/// Header flag: the image is incremental (its PARENT names the image it is based on).
pub const HFLAG_INCREMENTAL: u32 = 1;

/// The fixed header of a full image.
pub fn encode_header() -> [u8; HEADER_LEN] {
    encode_header_flags(0)
}

/// The fixed header with `flags`.
pub fn encode_header_flags(flags: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&ARCH_X86_64.to_le_bytes());
    h[16..20].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    h[20..24].copy_from_slice(&flags.to_le_bytes());
    // 24..28 reserved: zero.
    let crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The trailer's first 28 bytes; the writer appends the crc32c of everything before it.
pub fn encode_trailer_prefix(n_regions: u32, body_len: u64) -> [u8; TRAILER_LEN - 4] {
    let mut t = [0u8; TRAILER_LEN - 4];
    t[..8].copy_from_slice(&TRAILER_MAGIC);
    t[8..12].copy_from_slice(&n_regions.to_le_bytes());
    t[16..24].copy_from_slice(&body_len.to_le_bytes());
    t
}

/// Reads the file in order and checksums every byte once: bytes are added to the current
/// section's crc32c, which joins the file's (`crc32c_combine`) when the section ends.
#[derive(Debug)]
struct CrcReader {
    inner: BufReader<File>,
    /// The crc32c of the file up to the current section's start.
    file_crc: u32,
    /// The current section's crc32c and length so far.
    sec_crc: u32,
    sec_len: usize,
    pos: u64,
}

impl CrcReader {
    fn exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), FormatError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FormatError::Truncated(what)
            } else {
                FormatError::Io(e)
            }
        })?;
        self.sec_crc = crc32c::crc32c_append(self.sec_crc, buf);
        self.sec_len += buf.len();
        self.pos += buf.len() as u64;
        Ok(())
    }
    /// The checksum of everything read so far; what follows starts a new section.
    fn file_crc(&mut self) -> u32 {
        self.file_crc = crc32c::crc32c_combine(self.file_crc, self.sec_crc, self.sec_len);
        self.sec_crc = 0;
        self.sec_len = 0;
        self.file_crc
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads the zero bytes (version 7) that put the next byte on a page boundary of the file.
    fn skip_padding(&mut self, what: impl FnOnce() -> String) -> Result<(), FormatError> {
        let mut pad = [0u8; PAGE_SIZE as usize];
        let n = (self.pos.next_multiple_of(PAGE_SIZE) - self.pos) as usize;
        self.exact(&mut pad[..n], "a run's padding")?;
        if pad[..n].iter().any(|&b| b != 0) {
            return Err(FormatError::Invalid(format!(
                "{}: the padding before its pages is not zero",
                what()
            )));
        }
        Ok(())
    }
    /// Reads the section crc (which is not part of the section's own checksum) and compares.
    fn check_section(&mut self, what: impl FnOnce() -> String) -> Result<(), FormatError> {
        let want = self.sec_crc;
        self.file_crc();
        let mut b = [0u8; 4];
        self.exact(&mut b, "a section checksum")?;
        if u32::from_le_bytes(b) != want {
            return Err(FormatError::Checksum(what()));
        }
        self.file_crc();
        Ok(())
    }
    /// Reads page data into `buf`: what the buffer holds first, the rest straight from the
    /// file (no copy through the buffer), checksummed in slices that are still in the cache.
    fn data(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        let held = self.inner.buffer();
        let n = held.len().min(buf.len());
        buf[..n].copy_from_slice(&held[..n]);
        self.inner.consume(n);
        self.sec_crc = crc32c::crc32c_append(self.sec_crc, &buf[..n]);
        for chunk in buf[n..].chunks_mut(DATA_CHUNK) {
            // The buffer is empty, so the file's offset is the reader's.
            self.inner.get_mut().read_exact(chunk).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    FormatError::Truncated("page data")
                } else {
                    FormatError::Io(e)
                }
            })?;
            self.sec_crc = crc32c::crc32c_append(self.sec_crc, chunk);
        }
        self.sec_len += buf.len();
        self.pos += buf.len() as u64;
        Ok(())
    }
}

/// The read buffer for everything but page data.
const META_BUFFER: usize = 64 << 10;

/// Page data is read and checksummed this many bytes at a time.
const DATA_CHUNK: usize = 1 << 20;

/// The data of one run, read in order by a [`PageSink`]; what it does not read is skipped
/// (and still checksummed).
#[derive(Debug)]
pub struct RunData<'a> {
    reader: &'a mut CrcReader,
    left: u64,
}

impl RunData<'_> {
    /// Bytes not read yet.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Reads the next `buf.len()` bytes of the run (at most what is left of it).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        if buf.len() as u64 > self.left {
            return Err(FormatError::Sink(format!(
                "a reader asked for {} bytes of a run that has {} left",
                buf.len(),
                self.left
            )));
        }
        self.reader.data(buf)?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, scratch: &mut [u8]) -> Result<(), FormatError> {
        while self.left > 0 {
            let k = self.left.min(scratch.len() as u64) as usize;
            self.read(&mut scratch[..k])?;
        }
        Ok(())
    }
}

/// Where [`read_image_into`] delivers each run's data while it validates the image.
/// Nothing delivered is known good before the whole read returned `Ok`.
pub trait PageSink {
    /// Region `index`, described by `desc`, starts; its runs follow.
    fn region(&mut self, index: usize, desc: &RegionDesc) -> Result<(), FormatError>;
    /// One run of the current region: `data` reads its `run.len` bytes (raw or compressed,
    /// as `run.enc` says); bytes left unread are skipped.
    fn run(&mut self, run: &RunLoc, data: &mut RunData<'_>) -> Result<(), FormatError>;
    /// (Version 4) the contents of the deleted file META lists as `entry`: `data` reads its
    /// bytes; bytes left unread are skipped.
    fn file(&mut self, entry: &FdEntry, data: &mut RunData<'_>) -> Result<(), FormatError> {
        let _ = (entry, data);
        Ok(())
    }
}

/// The sink that keeps nothing: [`read_image_from`] only validates.
struct Discard;

impl PageSink for Discard {
    fn region(&mut self, _: usize, _: &RegionDesc) -> Result<(), FormatError> {
        Ok(())
    }
    fn run(&mut self, _: &RunLoc, _: &mut RunData<'_>) -> Result<(), FormatError> {
        Ok(())
    }
}

fn invalid(s: String) -> FormatError {
    FormatError::Invalid(s)
}

/// Reads and validates the image at `path`: magic, version, architecture, every section's and
/// the whole file's crc32c, caps on every length, region ordering and bounds.
pub fn read_image(path: &Path) -> Result<Image, FormatError> {
    read_image_from(File::open(path)?)
}

/// [`read_image`] from an open file, read from its current offset (the start). The restorer
/// validates the very file it later reads pages from, not whatever the path names by then.
pub fn read_image_from(file: File) -> Result<Image, FormatError> {
    read_image_into(file, &mut Discard)
}

/// [`read_image_from`], handing every run's data to `sink` as the read passes it.
pub fn read_image_into(file: File, sink: &mut dyn PageSink) -> Result<Image, FormatError> {
    let actual_len = file.metadata()?.len();
    let mut r = CrcReader {
        // Small: the buffer holds the records between runs, and the start of the next run's
        // data, which is copied out of it; the rest of a run is read straight into place.
        inner: BufReader::with_capacity(META_BUFFER, file),
        file_crc: 0,
        sec_crc: 0,
        sec_len: 0,
        pos: 0,
    };

    // Header: magic and version first, so a future format is named as such.
    let mut h = [0u8; HEADER_LEN];
    r.inner.read_exact(&mut h).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FormatError::Truncated("the header")
        } else {
            FormatError::Io(e)
        }
    })?;
    r.file_crc = crc32c::crc32c(&h);
    r.pos = HEADER_LEN as u64;
    if h[..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let field = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let version = field(8);
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(FormatError::Version(version));
    }
    if crc32c::crc32c(&h[..28]) != field(28) {
        return Err(FormatError::Checksum("the header".into()));
    }
    if field(12) != ARCH_X86_64 {
        return Err(FormatError::Arch(field(12)));
    }
    if u64::from(field(16)) != PAGE_SIZE {
        return Err(FormatError::PageSize(field(16)));
    }
    let hflags = field(20);
    if hflags & !HFLAG_INCREMENTAL != 0 || (version == 1 && hflags != 0) {
        return Err(invalid(format!("unknown header flags {hflags:#x}")));
    }

    // META.
    if r.u32("META")? != TAG_META {
        return Err(invalid("META section missing".into()));
    }
    let len = r.u64("META")?;
    if len > MAX_META_LEN {
        return Err(invalid(format!("META length {len} exceeds the cap")));
    }
    let mut body = vec![0u8; len as usize];
    r.exact(&mut body, "META")?;
    r.check_section(|| "META".into())?;
    let meta = decode_meta(&body, version)?;

    // LAYOUT.
    if r.u32("LAYOUT")? != TAG_LAYOUT {
        return Err(invalid("LAYOUT section missing".into()));
    }
    let len = r.u64("LAYOUT")?;
    if len != LAYOUT_BODY_LEN as u64 {
        return Err(invalid(format!("LAYOUT length {len} is wrong")));
    }
    let mut body = [0u8; LAYOUT_BODY_LEN];
    r.exact(&mut body, "LAYOUT")?;
    r.check_section(|| "LAYOUT".into())?;
    let layout = decode_layout(&body)?;
    if layout.n_regions > MAX_REGIONS {
        return Err(invalid(format!(
            "region count {} exceeds the cap",
            layout.n_regions
        )));
    }

    // PARENT (version 2).
    let mut parent = None;
    if version >= 2 {
        if r.u32("PARENT")? != TAG_PARENT {
            return Err(invalid("PARENT section missing".into()));
        }
        let len = r.u64("PARENT")?;
        if len > u64::from(MAX_STR) + 64 {
            return Err(invalid(format!("PARENT length {len} exceeds the cap")));
        }
        let mut body = vec![0u8; len as usize];
        r.exact(&mut body, "PARENT")?;
        r.check_section(|| "PARENT".into())?;
        parent = decode_parent(&body)?;
    }
    if parent.is_some() != (hflags & HFLAG_INCREMENTAL != 0) {
        return Err(invalid(
            "the header's incremental flag and the PARENT section disagree".into(),
        ));
    }

    // Regions.
    let mut regions: Vec<Region> = Vec::with_capacity(layout.n_regions as usize);
    let mut scratch = vec![0u8; 1 << 20];
    for i in 0..layout.n_regions {
        let what = "a region";
        if r.u32(what)? != TAG_REGION {
            return Err(invalid(format!("region {i}: bad tag")));
        }
        let kind_raw = r.u32(what)?;
        let kind = RegionKind::from_u32(kind_raw)
            .ok_or_else(|| invalid(format!("region {i}: unknown kind {kind_raw}")))?;
        let start = r.u64(what)?;
        let end = r.u64(what)?;
        let prot = r.u32(what)?;
        let flags = r.u32(what)?;
        let file_offset = r.u64(what)?;
        let mut idb = [0u8; IDENTITY_LEN];
        r.exact(&mut idb, what)?;
        let identity = Dec::new(&idb, "a region").identity()?;
        let name_len = r.u32(what)?;
        if name_len > MAX_STR {
            return Err(invalid(format!("region {i}: name length {name_len}")));
        }
        let mut name = vec![0u8; name_len as usize];
        r.exact(&mut name, what)?;
        let name = String::from_utf8(name)
            .map_err(|_| invalid(format!("region {i}: name is not UTF-8")))?;
        let desc = RegionDesc {
            start,
            end,
            prot,
            flags,
            kind,
            file_offset,
            identity,
            name,
        };
        let here = if desc.name.is_empty() {
            format!("region {i} ({start:#x}-{end:#x})")
        } else {
            format!("region {i} ({start:#x}-{end:#x} {})", desc.name)
        };
        if start >= end
            || start % PAGE_SIZE != 0
            || end % PAGE_SIZE != 0
            || end > MAX_REGION_BYTES
            || prot > 7
            || flags > (RFLAG_STACK | RFLAG_HEAP | RFLAG_DELTA)
            || (flags & RFLAG_DELTA != 0 && parent.is_none())
            || file_offset % PAGE_SIZE != 0
        {
            return Err(invalid(format!("{here}: bad bounds or protection")));
        }
        if let Some(prev) = regions.last()
            && prev.desc.end > start
        {
            return Err(invalid(format!("{here}: overlaps or is out of order")));
        }
        if kind.is_file() && !desc.name.starts_with('/') {
            return Err(invalid(format!("{here}: file region without a path")));
        }
        sink.region(i as usize, &desc)?;
        let mut runs = Vec::new();
        let mut next_page = 0u64;
        loop {
            let page = r.u64(what)?;
            let npages = r.u64(what)?;
            if page == RUN_END {
                if npages != 0 {
                    return Err(invalid(format!("{here}: bad run terminator")));
                }
                break;
            }
            if npages == 0
                || page < next_page
                || page > desc.pages()
                || npages > desc.pages() - page
                || kind == RegionKind::FileShared
            {
                return Err(invalid(format!("{here}: bad page run {page}+{npages}")));
            }
            let (enc, len, raw_crc) = if version >= 2 {
                (r.u32(what)?, r.u64(what)?, r.u32(what)?)
            } else {
                (ENC_RAW, npages * PAGE_SIZE, 0)
            };
            let raw = npages * PAGE_SIZE;
            let ok = match enc {
                ENC_RAW => len == raw,
                ENC_LZ4 | ENC_ZSTD => len > 0 && len < raw && npages <= MAX_COMPRESSED_RUN_PAGES,
                ENC_ZERO => len == 0 && flags & RFLAG_DELTA != 0,
                _ => false,
            };
            if !ok {
                return Err(invalid(format!(
                    "{here}: bad run {page}+{npages} (encoding {enc}, {len} bytes)"
                )));
            }
            if version >= 7 && enc == ENC_RAW && npages >= ALIGNED_RUN_PAGES {
                r.skip_padding(|| format!("{here}: run {page}+{npages}"))?;
            }
            let run = RunLoc {
                page,
                npages,
                file_offset: r.pos,
                enc,
                len,
                raw_crc,
            };
            let mut data = RunData {
                reader: &mut r,
                left: len,
            };
            sink.run(&run, &mut data)?;
            data.skip(&mut scratch)?;
            runs.push(run);
            next_page = page + npages;
        }
        r.check_section(|| here.clone())?;
        regions.push(Region { desc, runs });
    }

    // The deleted files' contents (version 4), in the order META lists them.
    let deleted = meta.fds.iter().filter(|f| f.kind == FdKind::Deleted);
    for f in deleted {
        let here = format!("the contents of deleted file {} (fd {})", f.path, f.fd);
        if r.u32("a FILE section")? != TAG_FILE {
            return Err(invalid(format!("{here}: FILE section missing")));
        }
        let len = r.u64("a FILE section")?;
        if !(4..=4 + MAX_DELETED_FILE).contains(&len) {
            return Err(invalid(format!("{here}: length {len} exceeds the cap")));
        }
        if r.u32("a FILE section")? as i32 != f.fd {
            return Err(invalid(format!(
                "{here}: the section is for another descriptor"
            )));
        }
        let mut data = RunData {
            reader: &mut r,
            left: len - 4,
        };
        sink.file(f, &mut data)?;
        data.skip(&mut scratch)?;
        r.check_section(|| here.clone())?;
    }

    // Trailer.
    let body_len = r.pos;
    let mut t = [0u8; TRAILER_LEN - 4];
    r.exact(&mut t, "the trailer")?;
    let want = r.file_crc();
    let mut c = [0u8; 4];
    r.inner.read_exact(&mut c).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FormatError::Truncated("the trailer")
        } else {
            FormatError::Io(e)
        }
    })?;
    if t[..8] != TRAILER_MAGIC {
        return Err(invalid("trailer missing".into()));
    }
    if u32::from_le_bytes(c) != want {
        return Err(FormatError::Checksum("the whole file".into()));
    }
    let tn = u32::from_le_bytes([t[8], t[9], t[10], t[11]]);
    let mut bl = [0u8; 8];
    bl.copy_from_slice(&t[16..24]);
    if tn != layout.n_regions || u64::from_le_bytes(bl) != body_len {
        return Err(invalid("trailer does not match the body".into()));
    }
    let file_len = body_len + TRAILER_LEN as u64;
    if actual_len != file_len {
        return Err(invalid(format!(
            "{} bytes after the trailer",
            actual_len.saturating_sub(file_len)
        )));
    }
    Ok(Image {
        version,
        meta,
        layout,
        parent,
        regions,
        file_len,
        crc32c: want,
    })
}

/// The image at `path` opened past its header, which is checked, and its format version.
fn open_checked_header(path: &Path) -> Result<(BufReader<File>, u32), FormatError> {
    let mut f = BufReader::new(File::open(path)?);
    let mut h = [0u8; HEADER_LEN];
    f.read_exact(&mut h)
        .map_err(|_| FormatError::Truncated("the header"))?;
    if h[..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let field = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let version = field(8);
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(FormatError::Version(version));
    }
    if crc32c::crc32c(&h[..28]) != field(28) {
        return Err(FormatError::Checksum("the header".into()));
    }
    Ok((f, version))
}

/// The META section of the image at `path` (header and META only are read and checked): what
/// a restorer needs to know before it reads the memory.
pub fn read_meta(path: &Path) -> Result<Meta, FormatError> {
    let (mut f, version) = open_checked_header(path)?;
    let body = read_checked_section(&mut f, TAG_META, MAX_META_LEN, "META")?;
    decode_meta(&body, version)
}

/// The body of the section `what` (tag `tag`, at most `cap` bytes) that `f` is at, its crc
/// checked.
fn read_checked_section(
    f: &mut impl Read,
    tag: u32,
    cap: u64,
    what: &'static str,
) -> Result<Vec<u8>, FormatError> {
    let mut th = [0u8; 12];
    f.read_exact(&mut th)
        .map_err(|_| FormatError::Truncated(what))?;
    let len = u64::from_le_bytes(th[4..12].try_into().unwrap_or_default());
    if u32::from_le_bytes(th[..4].try_into().unwrap_or_default()) != tag || len > cap {
        return Err(invalid(format!(
            "the {what} section is missing or too long"
        )));
    }
    let mut body = vec![0u8; len as usize + 4];
    f.read_exact(&mut body)
        .map_err(|_| FormatError::Truncated(what))?;
    let crc = body.split_off(len as usize);
    let want = crc32c::crc32c_append(crc32c::crc32c(&th), &body);
    if u32::from_le_bytes(crc.try_into().unwrap_or_default()) != want {
        return Err(FormatError::Checksum(what.into()));
    }
    Ok(body)
}

/// What the image at `path` is based on, from its header and PARENT section only (the rest is
/// not read): how a chain's links are checked without reading each one whole again.
pub fn read_parent_ref(path: &Path) -> Result<Option<Parent>, FormatError> {
    let (mut f, version) = open_checked_header(path)?;
    if version < 2 {
        return Ok(None);
    }
    for (tag, cap) in [
        (TAG_META, MAX_META_LEN),
        (TAG_LAYOUT, LAYOUT_BODY_LEN as u64),
    ] {
        let mut th = [0u8; 12];
        f.read_exact(&mut th)
            .map_err(|_| FormatError::Truncated("a section"))?;
        let len = u64::from_le_bytes(th[4..12].try_into().unwrap_or_default());
        if u32::from_le_bytes(th[..4].try_into().unwrap_or_default()) != tag || len > cap {
            return Err(invalid("a section is missing or too long".into()));
        }
        std::io::copy(&mut (&mut f).take(len + 4), &mut std::io::sink())?;
    }
    let body = read_checked_section(&mut f, TAG_PARENT, u64::from(MAX_STR) + 64, "PARENT")?;
    decode_parent(&body)
}
