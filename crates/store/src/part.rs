//! Part files: one rank's local snapshot, as named sections with their own checksums.
//!
//! ```text
//! header   magic "MPCRPART" | version u32 | rank u32 | epoch u64
//!          | job length u16 | job | checkpointer length u16 | checkpointer
//! section  name length u16 | name | data length u64 | data | crc32c u32   (zero or more)
//! trailer  section count u32 | crc32c u32 | magic "MPCREND1"
//! ```
//!
//! Little-endian, fixed width. A section's crc32c covers its name length, name, data length and
//! data; the trailer's covers every byte of the file before it (header, sections, count).
//! `docs/snapshot-format.md` is the specification.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::names;

/// First bytes of every part file.
pub const PART_MAGIC: [u8; 8] = *b"MPCRPART";
/// Last bytes of every finished part file.
pub const PART_END_MAGIC: [u8; 8] = *b"MPCREND1";
/// The part format this build writes.
pub const PART_FORMAT_VERSION: u32 = 1;
/// The oldest part format this build reads.
pub const MIN_PART_FORMAT_VERSION: u32 = 1;
/// Most sections in one part.
pub const MAX_SECTIONS: u32 = 65_536;
/// Longest section name, in bytes.
pub const MAX_SECTION_NAME: usize = 255;

/// magic, version, rank, epoch.
const FIXED_HEADER_LEN: u64 = 8 + 4 + 4 + 8;
/// count, crc, magic.
const TRAILER_LEN: u64 = 4 + 4 + 8;
/// Streaming buffer size for checksumming and copying.
const CHUNK: usize = 1 << 20;

/// One section as recorded in a part and in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionInfo {
    pub name: String,
    /// Length of the data in bytes.
    pub len: u64,
    /// crc32c of the section's name length, name, data length and data.
    pub crc32c: u32,
}

/// What a finished [`PartWriter`] reports; the coordinator passes it to
/// [`Pending::commit`](crate::Pending::commit) in [`ManifestInput::parts`](crate::ManifestInput).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub rank: u32,
    /// The checkpointer (CRS component) that wrote the part, e.g. `self` or `image`.
    pub checkpointer: String,
    /// The file's name inside the snapshot directory, e.g. `rank-0.part`.
    pub file: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The whole-file crc32c stored in the trailer.
    pub crc32c: u32,
    pub sections: Vec<SectionInfo>,
    /// The nodes whose stores (`mpicr run --storage`) hold checked copies of the part; empty:
    /// the part is in the snapshot's directory (manifest format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// The file name of `rank`'s part inside a snapshot directory.
pub fn part_file_name(rank: u32) -> String {
    format!("rank-{rank}.part")
}

/// Writes one rank's part file: the header at creation, then sections, then the trailer at
/// [`finish`](Self::finish). The file is created 0600 and never overwrites an existing one.
#[derive(Debug)]
pub struct PartWriter {
    path: PathBuf,
    file: BufWriter<File>,
    rank: u32,
    checkpointer: String,
    crc: u32,
    size: u64,
    sections: Vec<SectionInfo>,
    names: HashSet<String>,
    /// Set when a write failed or a streamed section was left unfinished: the file is no longer
    /// well formed and the writer refuses further use.
    poisoned: bool,
}

impl PartWriter {
    /// Creates `rank`'s part in `dir` (a staging directory, see
    /// [`Pending::path`](crate::Pending::path)). This is what a rank calls in its own process;
    /// [`Pending::part_writer`](crate::Pending::part_writer) is the same for the process that
    /// holds the `Pending`.
    pub fn create(
        dir: &Path,
        job: &str,
        epoch: u64,
        rank: u32,
        checkpointer: &str,
    ) -> Result<PartWriter, StoreError> {
        names::check_job(job)?;
        names::check_checkpointer(checkpointer)?;
        let path = dir.join(part_file_name(rank));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io("create the part", &path))?;
        let mut w = PartWriter {
            path,
            file: BufWriter::with_capacity(CHUNK, file),
            rank,
            checkpointer: checkpointer.to_owned(),
            crc: 0,
            size: 0,
            sections: Vec::new(),
            names: HashSet::new(),
            poisoned: false,
        };
        w.put(&PART_MAGIC)?;
        w.put(&PART_FORMAT_VERSION.to_le_bytes())?;
        w.put(&rank.to_le_bytes())?;
        w.put(&epoch.to_le_bytes())?;
        w.put_short_str(job)?;
        w.put_short_str(checkpointer)?;
        Ok(w)
    }

    /// The part file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a section held in memory.
    pub fn section(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let mut s = self.section_writer(name, bytes.len() as u64)?;
        s.write_all(bytes)
            .map_err(StoreError::io("write", &s.part.path.clone()))?;
        s.finish()
    }

    /// Adds a section of exactly `len` bytes read from `reader` (for large regions: nothing is
    /// buffered beyond a fixed-size chunk).
    pub fn section_from_reader(
        &mut self,
        name: &str,
        len: u64,
        reader: &mut impl Read,
    ) -> Result<(), StoreError> {
        let mut s = self.section_writer(name, len)?;
        let copied = io::copy(&mut reader.take(len), &mut s)
            .map_err(StoreError::io("write", &s.part.path.clone()))?;
        if copied != len {
            return Err(StoreError::Usage {
                what: format!(
                    "section `{name}` was announced with {len} bytes but its reader gave {copied}"
                ),
            });
        }
        s.finish()
    }

    /// Starts a section of exactly `len` bytes to be written through the returned writer, which
    /// must then be [`finish`](SectionWriter::finish)ed. Dropping it unfinished spoils the part.
    pub fn section_writer(
        &mut self,
        name: &str,
        len: u64,
    ) -> Result<SectionWriter<'_>, StoreError> {
        self.check_usable()?;
        names::check_section(name)?;
        if self.names.contains(name) {
            return Err(StoreError::Usage {
                what: format!("section `{name}` is already in {}", self.path.display()),
            });
        }
        if self.sections.len() >= MAX_SECTIONS as usize {
            return Err(StoreError::Usage {
                what: format!("a part holds at most {MAX_SECTIONS} sections"),
            });
        }
        let mut head = Vec::with_capacity(2 + name.len() + 8);
        head.extend_from_slice(&(name.len() as u16).to_le_bytes());
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(&len.to_le_bytes());
        self.put(&head)?;
        self.names.insert(name.to_owned());
        Ok(SectionWriter {
            section_crc: crc32c::crc32c(&head),
            name: name.to_owned(),
            len,
            remaining: len,
            done: false,
            part: self,
        })
    }

    /// Writes the trailer, flushes and fsyncs the file, and says what was written.
    pub fn finish(mut self) -> Result<PartInfo, StoreError> {
        self.check_usable()?;
        let count = self.sections.len() as u32;
        self.put(&count.to_le_bytes())?;
        let crc = self.crc;
        let mut tail = [0u8; 12];
        tail[..4].copy_from_slice(&crc.to_le_bytes());
        tail[4..].copy_from_slice(&PART_END_MAGIC);
        self.put(&tail)?;
        let path = self.path.clone();
        let file = self.file.into_inner().map_err(|e| StoreError::Io {
            op: "write",
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(StoreError::io("fsync", &path))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(PartInfo {
            rank: self.rank,
            checkpointer: self.checkpointer,
            file: file_name,
            size: self.size,
            crc32c: crc,
            sections: self.sections,
            nodes: Vec::new(),
        })
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        if self.poisoned {
            Err(StoreError::Usage {
                what: format!(
                    "{} is spoilt by an earlier failed or unfinished section",
                    self.path.display()
                ),
            })
        } else {
            Ok(())
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if let Err(source) = self.file.write_all(bytes) {
            self.poisoned = true;
            return Err(StoreError::Io {
                op: "write",
                path: self.path.clone(),
                source,
            });
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn put_short_str(&mut self, s: &str) -> Result<(), StoreError> {
        self.put(&(s.len() as u16).to_le_bytes())?;
        self.put(s.as_bytes())
    }
}

/// The data of one section being streamed into a part; see [`PartWriter::section_writer`].
#[derive(Debug)]
pub struct SectionWriter<'a> {
    part: &'a mut PartWriter,
    name: String,
    len: u64,
    remaining: u64,
    section_crc: u32,
    done: bool,
}

impl SectionWriter<'_> {
    /// Ends the section: checks that exactly the announced length was written and writes the
    /// section's checksum.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.done = true;
        if self.remaining != 0 {
            self.part.poisoned = true;
            return Err(StoreError::Usage {
                what: format!(
                    "section `{}` was announced with {} bytes but only {} were written",
                    self.name,
                    self.len,
                    self.len - self.remaining
                ),
            });
        }
        let crc = self.section_crc;
        self.part.put(&crc.to_le_bytes())?;
        self.part.sections.push(SectionInfo {
            name: std::mem::take(&mut self.name),
            len: self.len,
            crc32c: crc,
        });
        Ok(())
    }
}

impl Write for SectionWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "section `{}` is longer than the {} bytes announced",
                    self.name, self.len
                ),
            ));
        }
        if let Err(e) = self.part.file.write_all(buf) {
            self.part.poisoned = true;
            return Err(e);
        }
        self.part.crc = crc32c::crc32c_append(self.part.crc, buf);
        self.part.size += buf.len() as u64;
        self.section_crc = crc32c::crc32c_append(self.section_crc, buf);
        self.remaining -= buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.part.file.flush()
    }
}

impl Drop for SectionWriter<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.part.poisoned = true;
        }
    }
}

/// Where a section's data is in the file.
#[derive(Debug, Clone)]
struct SectionEntry {
    info: SectionInfo,
    /// Offset of the section's first byte (its name length).
    start: u64,
    /// Offset of its data.
    data: u64,
}

/// A part file opened for reading. Opening checks the magic, the format version, the end
/// marker, the whole-file checksum and the structure; reading a section checks its own checksum.
#[derive(Debug)]
pub struct PartReader {
    path: PathBuf,
    file: File,
    version: u32,
    rank: u32,
    epoch: u64,
    job: String,
    checkpointer: String,
    size: u64,
    crc: u32,
    sections: Vec<SectionEntry>,
}

impl PartReader {
    /// Opens and checks a part on its own (without a manifest to compare with).
    pub fn open(path: &Path) -> Result<PartReader, StoreError> {
        let file = File::open(path).map_err(StoreError::io("open the part", path))?;
        let size = file
            .metadata()
            .map_err(StoreError::io("inspect the part", path))?
            .len();
        Self::open_file(path, file, size)
    }

    /// Opens a part of a committed snapshot and checks it against its manifest entry too.
    pub(crate) fn open_expected(
        path: &Path,
        expected: &PartInfo,
        job: &str,
        epoch: u64,
    ) -> Result<PartReader, StoreError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StoreError::PartMissing {
                    path: path.parent().unwrap_or(path).to_owned(),
                    rank: expected.rank,
                }
            } else {
                StoreError::Io {
                    op: "open the part",
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let size = file
            .metadata()
            .map_err(StoreError::io("inspect the part", path))?
            .len();
        if size < expected.size {
            return Err(StoreError::truncated(
                path,
                format!("it has {size} bytes, the manifest says {}", expected.size),
            ));
        }
        if size > expected.size {
            return Err(StoreError::corrupt(
                path,
                format!("it has {size} bytes, the manifest says {}", expected.size),
            ));
        }
        let reader = Self::open_file(path, file, size)?;
        reader.check_against(expected, job, epoch)?;
        Ok(reader)
    }

    fn open_file(path: &Path, file: File, size: u64) -> Result<PartReader, StoreError> {
        let mut at = Cursor {
            path,
            file: &file,
            pos: 0,
            end: size,
        };
        // Magic and version first, so that a file of another kind is named as such.
        if size < 12 {
            return Err(StoreError::truncated(
                path,
                format!("it has {size} bytes, less than a part header"),
            ));
        }
        let magic: [u8; 8] = at.array()?;
        if magic != PART_MAGIC {
            return Err(StoreError::corrupt(
                path,
                "it does not start with the part magic MPCRPART",
            ));
        }
        let version = at.u32()?;
        if !(MIN_PART_FORMAT_VERSION..=PART_FORMAT_VERSION).contains(&version) {
            return Err(StoreError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
                min: MIN_PART_FORMAT_VERSION,
                max: PART_FORMAT_VERSION,
            });
        }
        if size < FIXED_HEADER_LEN + 4 + TRAILER_LEN {
            return Err(StoreError::truncated(
                path,
                format!("it has {size} bytes, less than a header and a trailer"),
            ));
        }
        let mut tail = [0u8; TRAILER_LEN as usize];
        read_exact_at(&file, path, &mut tail, size - TRAILER_LEN)?;
        if tail[8..] != PART_END_MAGIC {
            return Err(StoreError::truncated(
                path,
                "it does not end with the end marker MPCREND1",
            ));
        }
        let count = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let stored_crc = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
        let crc = crc_range(&file, path, 0, size - 12)?;
        if crc != stored_crc {
            return Err(StoreError::corrupt(
                path,
                format!("whole-file crc32c is {crc:08x}, the trailer says {stored_crc:08x}"),
            ));
        }
        // The checksum matches: what follows can only fail for a file written wrongly.
        at.end = size - TRAILER_LEN;
        let rank = at.u32()?;
        let epoch = at.u64()?;
        let job = at.short_str("job name", names::MAX_JOB_NAME)?;
        let checkpointer = at.short_str("checkpointer name", names::MAX_CHECKPOINTER_NAME)?;
        let mut sections = Vec::new();
        while at.pos < at.end {
            if sections.len() >= MAX_SECTIONS as usize {
                return Err(StoreError::corrupt(
                    path,
                    format!("it has more than {MAX_SECTIONS} sections"),
                ));
            }
            let start = at.pos;
            let name = at.short_str("section name", MAX_SECTION_NAME)?;
            let len = at.u64()?;
            let data = at.pos;
            if len > at.end - at.pos || at.end - at.pos - len < 4 {
                return Err(StoreError::corrupt(
                    path,
                    format!("section `{name}` claims {len} bytes, past the end of the sections"),
                ));
            }
            at.pos += len;
            let crc32c = at.u32()?;
            sections.push(SectionEntry {
                info: SectionInfo { name, len, crc32c },
                start,
                data,
            });
        }
        if sections.len() as u64 != u64::from(count) {
            return Err(StoreError::corrupt(
                path,
                format!(
                    "the trailer counts {count} sections, the file holds {}",
                    sections.len()
                ),
            ));
        }
        Ok(PartReader {
            path: path.to_owned(),
            file,
            version,
            rank,
            epoch,
            job,
            checkpointer,
            size,
            crc,
            sections,
        })
    }

    fn check_against(&self, expected: &PartInfo, job: &str, epoch: u64) -> Result<(), StoreError> {
        let found = format!(
            "rank {} of job `{}` epoch {}",
            self.rank, self.job, self.epoch
        );
        if self.rank != expected.rank || self.job != job || self.epoch != epoch {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                expected: format!("rank {} of job `{job}` epoch {epoch}", expected.rank),
                found,
            });
        }
        if self.crc != expected.crc32c {
            return Err(StoreError::corrupt(
                &self.path,
                format!(
                    "whole-file crc32c is {:08x}, the manifest says {:08x}",
                    self.crc, expected.crc32c
                ),
            ));
        }
        if self.checkpointer != expected.checkpointer
            || self.section_infos().ne(expected.sections.iter())
        {
            return Err(StoreError::corrupt(
                &self.path,
                "its checkpointer or sections differ from the manifest's entry",
            ));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn format_version(&self) -> u32 {
        self.version
    }
    pub fn rank(&self) -> u32 {
        self.rank
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn job(&self) -> &str {
        &self.job
    }
    pub fn checkpointer(&self) -> &str {
        &self.checkpointer
    }
    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The whole-file crc32c.
    pub fn crc32c(&self) -> u32 {
        self.crc
    }

    /// The section names in file order.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.info.name.as_str())
    }

    /// The sections with their lengths and checksums, in file order.
    pub fn section_infos(&self) -> impl Iterator<Item = &SectionInfo> {
        self.sections.iter().map(|s| &s.info)
    }

    /// The data length of section `name`.
    pub fn section_len(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.entry(name)?.info.len)
    }

    /// Reads section `name` into memory, checking its crc32c.
    pub fn section(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let e = self.entry(name)?;
        let len = usize::try_from(e.info.len).map_err(|_| StoreError::Usage {
            what: format!("section `{name}` is too large to hold in memory here"),
        })?;
        // The length was checked against the file's size when the part was opened.
        let mut buf = vec![0u8; len];
        self.section_into_unchecked(e, &mut buf)?;
        Ok(buf)
    }

    /// Reads section `name` into `buf`, which must have exactly its length, checking its
    /// crc32c (for refilling a protected region in place).
    pub fn section_into(&self, name: &str, buf: &mut [u8]) -> Result<(), StoreError> {
        let e = self.entry(name)?;
        if e.info.len != buf.len() as u64 {
            return Err(StoreError::Usage {
                what: format!(
                    "section `{name}` of {} has {} bytes, the buffer {}",
                    self.path.display(),
                    e.info.len,
                    buf.len()
                ),
            });
        }
        self.section_into_unchecked(e, buf)
    }

    /// Streams section `name`; the reader returns an `InvalidData` error instead of its last
    /// bytes if the checksum does not match, so a caller that reads to the end has checked it.
    pub fn section_reader(&self, name: &str) -> Result<SectionReader<'_>, StoreError> {
        let e = self.entry(name)?;
        let head_len = e.data - e.start;
        let mut head = vec![0u8; head_len as usize];
        read_exact_at(&self.file, &self.path, &mut head, e.start)?;
        Ok(SectionReader {
            reader: self,
            name: e.info.name.clone(),
            pos: e.data,
            remaining: e.info.len,
            crc: crc32c::crc32c(&head),
            expected: e.info.crc32c,
        })
    }

    /// Reads every section and checks its checksum.
    pub fn verify_sections(&self) -> Result<(), StoreError> {
        for e in &self.sections {
            let mut r = self.section_reader(&e.info.name)?;
            io::copy(&mut r, &mut io::sink())
                .map_err(|source| self.read_error(&e.info.name, source))?;
        }
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&SectionEntry, StoreError> {
        self.sections
            .iter()
            .find(|s| s.info.name == name)
            .ok_or_else(|| StoreError::NoSection {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    fn section_into_unchecked(&self, e: &SectionEntry, buf: &mut [u8]) -> Result<(), StoreError> {
        let mut head = vec![0u8; (e.data - e.start) as usize];
        read_exact_at(&self.file, &self.path, &mut head, e.start)?;
        read_exact_at(&self.file, &self.path, buf, e.data)?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head), buf);
        if crc != e.info.crc32c {
            return Err(StoreError::corrupt(
                &self.path,
                format!(
                    "section `{}` has crc32c {crc:08x}, its record says {:08x}",
                    e.info.name, e.info.crc32c
                ),
            ));
        }
        Ok(())
    }

    fn read_error(&self, section: &str, source: io::Error) -> StoreError {
        if source.kind() == io::ErrorKind::InvalidData {
            StoreError::corrupt(&self.path, format!("section `{section}` fails its crc32c"))
        } else {
            StoreError::Io {
                op: "read",
                path: self.path.clone(),
                source,
            }
        }
    }
}

/// Streams one section's data; see [`PartReader::section_reader`].
#[derive(Debug)]
pub struct SectionReader<'a> {
    reader: &'a PartReader,
    name: String,
    pos: u64,
    remaining: u64,
    crc: u32,
    expected: u32,
}

impl SectionReader<'_> {
    /// Bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Read for SectionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let buf = &mut buf[..want];
        self.reader.file.read_exact_at(buf, self.pos)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.pos += want as u64;
        self.remaining -= want as u64;
        if self.remaining == 0 && self.crc != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "section `{}` of {} fails its crc32c",
                    self.name,
                    self.reader.path.display()
                ),
            ));
        }
        Ok(want)
    }
}

/// Positioned reads of a part's structure, bounded by `end`.
struct Cursor<'a> {
    path: &'a Path,
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Cursor<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        if (N as u64) > self.end - self.pos {
            return Err(StoreError::corrupt(
                self.path,
                format!(
                    "a field at offset {} runs past the end of its region",
                    self.pos
                ),
            ));
        }
        let mut b = [0u8; N];
        read_exact_at(self.file, self.path, &mut b, self.pos)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn short_str(&mut self, what: &str, max: usize) -> Result<String, StoreError> {
        let at = self.pos;
        let len = usize::from(self.u16()?);
        if len > max || len as u64 > self.end - self.pos {
            return Err(StoreError::corrupt(
                self.path,
                format!("the {what} at offset {at} claims {len} bytes (at most {max})"),
            ));
        }
        let mut b = vec![0u8; len];
        read_exact_at(self.file, self.path, &mut b, self.pos)?;
        self.pos += len as u64;
        String::from_utf8(b).map_err(|_| {
            StoreError::corrupt(self.path, format!("the {what} at offset {at} is not UTF-8"))
        })
    }
}

fn read_exact_at(file: &File, path: &Path, buf: &mut [u8], at: u64) -> Result<(), StoreError> {
    file.read_exact_at(buf, at).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            StoreError::truncated(path, format!("it ended while reading offset {at}"))
        } else {
            StoreError::Io {
                op: "read",
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// crc32c of bytes `from .. to` of `file`, streamed.
fn crc_range(file: &File, path: &Path, from: u64, to: u64) -> Result<u32, StoreError> {
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(to - from).unwrap_or(CHUNK))];
    let mut crc = 0;
    let mut pos = from;
    while pos < to {
        let n = buf
            .len()
            .min(usize::try_from(to - pos).unwrap_or(usize::MAX));
        read_exact_at(file, path, &mut buf[..n], pos)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        pos += n as u64;
    }
    Ok(crc)
}

/// The cheap check a commit makes of a part a rank reports as written: the size, the header
/// (magic, version, rank, epoch, job, checkpointer) and the trailer (count, checksum, end
/// marker) agree with `info`. The data is not re-read; [`PartReader::open`] does that.
pub(crate) fn check_written(
    path: &Path,
    info: &PartInfo,
    job: &str,
    epoch: u64,
) -> Result<(), String> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("the part of rank {} ({}) is missing", info.rank, info.file)
        } else {
            format!("cannot open the part of rank {}: {e}", info.rank)
        }
    })?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot inspect the part of rank {}: {e}", info.rank))?
        .len();
    if size != info.size {
        return Err(format!(
            "the part of rank {} has {size} bytes, its writer reported {}",
            info.rank, info.size
        ));
    }
    let mut want = Vec::new();
    want.extend_from_slice(&PART_MAGIC);
    want.extend_from_slice(&PART_FORMAT_VERSION.to_le_bytes());
    want.extend_from_slice(&info.rank.to_le_bytes());
    want.extend_from_slice(&epoch.to_le_bytes());
    want.extend_from_slice(&(job.len() as u16).to_le_bytes());
    want.extend_from_slice(job.as_bytes());
    want.extend_from_slice(&(info.checkpointer.len() as u16).to_le_bytes());
    want.extend_from_slice(info.checkpointer.as_bytes());
    want.extend_from_slice(&(info.sections.len() as u32).to_le_bytes());
    want.extend_from_slice(&info.crc32c.to_le_bytes());
    want.extend_from_slice(&PART_END_MAGIC);
    let head_len = want.len() as u64 - TRAILER_LEN;
    if size < head_len + TRAILER_LEN {
        return Err(format!("the part of rank {} is too short", info.rank));
    }
    let mut got = vec![0u8; want.len()];
    let (head, tail) = got.split_at_mut(head_len as usize);
    file.read_exact_at(head, 0)
        .and_then(|()| file.read_exact_at(tail, size - TRAILER_LEN))
        .map_err(|e| format!("cannot read the part of rank {}: {e}", info.rank))?;
    if got != want {
        return Err(format!(
            "the part of rank {} does not have the header and trailer its writer reported",
            info.rank
        ));
    }
    Ok(())
}
