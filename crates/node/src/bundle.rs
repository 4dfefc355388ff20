//! A rank's *bundle* in a node store: its part and, for a part of the `image` checkpointer, the
//! process image the part names and every link of that image's chain (the
//! `rank-<r>.base-<epoch>.image` files its PARENT sections name, newest first). Mirrors,
//! fetches and parity move bundles, never a part without its images, so a node store's epoch
//! directory that holds a rank's part holds everything its restorer reads.
//!
//! On the wire a bundle is one PART_PUT (the part's size and checksum, and the bundle's total)
//! followed by PART_DATA frames of the files' bytes, concatenated in that order. The receiver
//! splits the stream as it goes: the part's size is in PART_PUT, the image's in the part's
//! section, each link's in the PARENT section of the file before it; each file is written under
//! a temporary name, checked, fsynced and renamed, and no file is held in memory.
//!
//! A mirror *offers* its bundle: PART_PUT names the chain's links, the receiver hard-links
//! those it already holds (from its earlier epochs of the job: a link never changes) and
//! answers PART_NEED with the others, and only they follow the image. So an incremental
//! checkpoint mirrors its part, its new image and nothing of the chain the partner already has.

use std::fs::File;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use image::ImageRef;
use wire::stream::read_message;
use wire::stream::{read_frame_into, write_frame, write_message};
use wire::{ChainLink, Command, Message, PART_DATA_MAX, PartPut};

use crate::node_store::{NodeStoreError, check_file, write_durably};

/// One file of a bundle: where it is, its size and its checksum (a part's or parity file's
/// over all its bytes, an image's as its trailer records it).
#[derive(Debug, Clone)]
pub struct BundleFile {
    pub path: PathBuf,
    pub size: u64,
    pub crc32c: u32,
}

/// The files of rank `rank`'s bundle in `dir` after its part (`image`: what the part's image
/// section names, `None` for a part of another checkpointer): the image and its chain, each
/// checked as `ImageRef::check` does (size, trailer checksum, header, PARENT section), without
/// reading them whole.
pub(crate) fn image_files(
    dir: &Path,
    rank: u32,
    image: Option<&ImageRef>,
) -> Result<Vec<BundleFile>, NodeStoreError> {
    let Some(image) = image else {
        return Ok(Vec::new());
    };
    image.check(dir, rank).map_err(|why| bad(rank, why))?;
    let mut files = vec![BundleFile {
        path: dir.join(&image.file),
        size: image.size,
        crc32c: image.crc32c,
    }];
    let mut parent = parent_of(&dir.join(&image.file), rank)?;
    while let Some(link) = parent {
        let path = dir.join(&link.file);
        parent = parent_of(&path, rank)?;
        files.push(BundleFile {
            path,
            size: link.size,
            crc32c: link.crc32c,
        });
    }
    Ok(files)
}

/// The reference to the link the image at `path` is based on, whose name must be one of
/// `rank`'s chain files in the same directory.
fn parent_of(path: &Path, rank: u32) -> Result<Option<ImageRef>, NodeStoreError> {
    let parent =
        image::read_parent_ref(path).map_err(|e| bad(rank, format!("{}: {e}", path.display())))?;
    let Some(parent) = parent else {
        return Ok(None);
    };
    if link_epoch(&parent.path, rank).is_none() {
        return Err(bad(
            rank,
            format!(
                "{}: its parent `{}` is not a chain file of rank {rank}",
                path.display(),
                parent.path
            ),
        ));
    }
    Ok(Some(ImageRef {
        file: parent.path,
        size: parent.size,
        crc32c: parent.crc32c,
    }))
}

/// The epoch whose image `name` is, when it is the name of one of `rank`'s chain files
/// (`rank-<r>.base-<epoch>.image`); any other name, a path in particular, is `None`.
pub(crate) fn link_epoch(name: &str, rank: u32) -> Option<u64> {
    let digits = name
        .strip_prefix(&format!("rank-{rank}.base-"))?
        .strip_suffix(".image")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn bad(rank: u32, why: String) -> NodeStoreError {
    NodeStoreError::Image { rank, why }
}

/// The bytes of a bundle's files, one after the other.
pub(crate) fn reader(files: &[BundleFile]) -> Result<Box<dyn Read + Send>, NodeStoreError> {
    let mut chained: Box<dyn Read + Send> = Box::new(io::empty());
    for f in files {
        let file = File::open(&f.path).map_err(|source| NodeStoreError::Io {
            op: "open",
            path: f.path.clone(),
            source,
        })?;
        chained = Box::new(chained.chain(file.take(f.size)));
    }
    Ok(chained)
}

/// The total size of a bundle.
pub(crate) fn total(files: &[BundleFile]) -> u64 {
    files.iter().map(|f| f.size).sum()
}

/// Sends PART_PUT and the bundle's bytes in PART_DATA frames (`size` and `crc` are the
/// part's, the first file's; for a parity file, the file's): the answer to PART_GET.
pub(crate) fn send(
    stream: &TcpStream,
    files: &[BundleFile],
    epoch: u64,
    rank: u32,
    size: u64,
    crc: u32,
) -> io::Result<()> {
    write_message(
        &mut &*stream,
        &Message::PartPut(PartPut {
            epoch,
            rank,
            size,
            crc32c: crc,
            total: total(files),
            links: Vec::new(),
        }),
    )?;
    stream_files(stream, files)
}

/// Offers a mirror the bundle `files` of rank `rank` (part, image, chain): PART_PUT names the
/// chain's links, and when there are any the receiver's PART_NEED says which of them follow
/// the part and the image. Returns the bytes sent.
pub(crate) fn offer(
    stream: &TcpStream,
    files: &[BundleFile],
    epoch: u64,
    rank: u32,
) -> io::Result<u64> {
    let (head, chain) = files.split_at(files.len().min(2));
    let links: Vec<ChainLink> = chain
        .iter()
        .map(|f| ChainLink {
            file: file_name(&f.path),
            size: f.size,
            crc32c: f.crc32c,
        })
        .collect();
    let part = head
        .first()
        .ok_or_else(|| invalid("a bundle without a part".into()))?;
    write_message(
        &mut &*stream,
        &Message::PartPut(PartPut {
            epoch,
            rank,
            size: part.size,
            crc32c: part.crc32c,
            total: total(files),
            links: links.clone(),
        }),
    )?;
    let needed = if links.is_empty() {
        Vec::new()
    } else {
        match read_message(&mut &*stream) {
            Ok(Message::PartNeed(need)) if need.epoch == epoch && need.rank == rank => need.files,
            Ok(Message::Error(why)) => return Err(io::Error::other(why)),
            Ok(other) => {
                return Err(invalid(format!(
                    "it answered {:?} to the offer",
                    other.command()
                )));
            }
            Err(e) => return Err(invalid(crate::error_chain(&e))),
        }
    };
    if let Some(unknown) = needed.iter().find(|n| !links.iter().any(|l| &l.file == *n)) {
        return Err(invalid(format!(
            "it asked for {unknown}, which is not offered"
        )));
    }
    let sent: Vec<BundleFile> = head
        .iter()
        .chain(
            chain
                .iter()
                .filter(|f| needed.contains(&file_name(&f.path))),
        )
        .cloned()
        .collect();
    stream_files(stream, &sent)?;
    Ok(total(&sent))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The bytes of `files`, one after the other, in PART_DATA frames.
fn stream_files(stream: &TcpStream, files: &[BundleFile]) -> io::Result<()> {
    let mut buf = vec![0u8; PART_DATA_MAX.min(total(files).max(1) as usize)];
    for f in files {
        let mut file = File::open(&f.path)?;
        let mut left = f.size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            file.read_exact(&mut buf[..n])?;
            // PART_DATA's payload is the bytes themselves: the frame goes out around the buffer.
            write_frame(&mut &*stream, Command::PartData, &buf[..n])?;
            left -= n as u64;
        }
    }
    Ok(())
}

/// The PART_DATA frames of one PART_PUT as a byte stream, `left` bytes long, read through one
/// reused buffer (no allocation or copy per frame beyond the caller's).
pub(crate) struct Frames<R> {
    stream: R,
    left: u64,
    frame: Vec<u8>,
    at: std::ops::Range<usize>,
}

impl<R: Read> Frames<R> {
    pub(crate) fn new(stream: R, total: u64) -> Self {
        Self {
            stream,
            left: total,
            frame: Vec::new(),
            at: 0..0,
        }
    }

    /// Bytes announced and not read yet.
    pub(crate) fn left(&self) -> u64 {
        self.left + self.at.len() as u64
    }
}

impl<R: Read> Read for Frames<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at.is_empty() {
            if self.left == 0 {
                return Ok(0);
            }
            let payload = match read_frame_into(&mut self.stream, &mut self.frame) {
                Ok((Command::PartData, payload)) => payload,
                Ok((other, _)) => return Err(invalid(format!("it sent {other:?} inside a part"))),
                Err(e) => return Err(invalid(crate::error_chain(&e))),
            };
            if payload.is_empty() || payload.len() as u64 > self.left {
                return Err(invalid("it sent more bytes than announced".into()));
            }
            self.left -= payload.len() as u64;
            self.at = payload;
        }
        let n = out.len().min(self.at.len());
        out[..n].copy_from_slice(&self.frame[self.at.start..self.at.start + n]);
        self.at.start += n;
        Ok(n)
    }
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// What a bundle is expected to be: its job, epoch, rank and part.
pub(crate) struct Expected<'a> {
    pub(crate) job: &'a str,
    pub(crate) epoch: u64,
    pub(crate) rank: u32,
    pub(crate) size: u64,
    pub(crate) crc: u32,
}

/// Splits a bundle read from `from` into its files in `dir`, each written durably and checked
/// before it gets its final name: the part against `expected`, the image and each link
/// against the size and trailer checksum their reference records. The part comes first, so
/// the files it names are known before they arrive. The links named in `held` are in `dir`
/// already and not in the stream. Returns the names of the chain's links, newest first, and
/// the bytes taken from `from`.
pub(crate) fn split(
    from: &mut impl Read,
    dir: &Path,
    expected: &Expected<'_>,
    held: &[String],
) -> Result<(Vec<String>, u64), NodeStoreError> {
    let rank = expected.rank;
    let part = store::part_file_name(rank);
    let mut image = None;
    write_durably(
        dir,
        &part,
        |file, tmp| copy_exactly(from, file, expected.size, tmp),
        |tmp| {
            let checked = check_file(
                tmp,
                expected.job,
                expected.epoch,
                rank,
                expected.size,
                expected.crc,
            )?;
            image = checked.image;
            Ok(())
        },
    )?;
    let mut taken = expected.size;
    let mut links = Vec::new();
    let mut next = image;
    let mut is_image = true;
    while let Some(file) = next.take() {
        if links.len() > image::format::MAX_CHAIN as usize {
            return Err(bad(rank, "the chain of images does not end".into()));
        }
        let path = dir.join(&file.file);
        if is_image || !held.contains(&file.file) {
            write_durably(
                dir,
                &file.file,
                |f, tmp| copy_exactly(from, f, file.size, tmp),
                |tmp| matches_ref(tmp, &file, rank),
            )?;
            taken += file.size;
        } else {
            matches_ref(&path, &file, rank)?;
        }
        if !is_image {
            links.push(file.file.clone());
        }
        is_image = false;
        next = parent_of(&path, rank)?;
    }
    Ok((links, taken))
}

/// Whether the image file at `path` is the one `expected` names: its size and the checksum
/// its trailer records.
fn matches_ref(path: &Path, expected: &ImageRef, rank: u32) -> Result<(), NodeStoreError> {
    let found = ImageRef::of_file(path)
        .map_err(|e| bad(rank, format!("the copy of {}: {e}", expected.file)))?;
    if found.size == expected.size && found.crc32c == expected.crc32c {
        Ok(())
    } else {
        Err(bad(
            rank,
            format!(
                "the copy of {} has {} bytes and checksum {:08x}, {} bytes and {:08x} were expected",
                expected.file, found.size, found.crc32c, expected.size, expected.crc32c
            ),
        ))
    }
}

/// Copies exactly `len` bytes of `from` into `file`.
fn copy_exactly(
    from: &mut impl Read,
    file: &mut File,
    len: u64,
    path: &Path,
) -> Result<(), NodeStoreError> {
    let copied = io::copy(&mut from.take(len), file).map_err(|source| NodeStoreError::Io {
        op: "write",
        path: path.to_owned(),
        source,
    })?;
    if copied == len {
        Ok(())
    } else {
        Err(NodeStoreError::Copy {
            node: "the peer".into(),
            why: format!(
                "the data ended after {copied} of {len} bytes of {}",
                path.display()
            ),
        })
    }
}

/// XORs the `len` bytes of `from` into `file` from its start, as if the shorter of the two
/// were padded with zeros (the file grows when `from` is longer). One buffer pair of at most
/// [`PART_DATA_MAX`] bytes each, whatever the sizes.
pub(crate) fn xor_into_file(
    file: &File,
    from: &mut impl Read,
    len: u64,
    path: &Path,
) -> Result<(), NodeStoreError> {
    let io = |op: &'static str| {
        let path = path.to_owned();
        move |source| NodeStoreError::Io { op, path, source }
    };
    let chunk = PART_DATA_MAX.min(len.max(1) as usize);
    let (mut incoming, mut current) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut offset = 0u64;
    while offset < len {
        let n = ((len - offset) as usize).min(chunk);
        from.read_exact(&mut incoming[..n]).map_err(io("read"))?;
        let mut have = 0;
        while have < n {
            match file
                .read_at(&mut current[have..n], offset + have as u64)
                .map_err(io("read"))?
            {
                0 => break,
                k => have += k,
            }
        }
        current[have..n].fill(0);
        for (c, i) in current[..n].iter_mut().zip(&incoming[..n]) {
            *c ^= i;
        }
        file.write_all_at(&current[..n], offset)
            .map_err(io("write"))?;
        offset += n as u64;
    }
    Ok(())
}

/// The size and crc32c of all the bytes of the file at `path`, read in pieces.
pub(crate) fn size_and_crc(path: &Path) -> Result<(u64, u32), NodeStoreError> {
    let mut file = File::open(path).map_err(|source| NodeStoreError::Io {
        op: "open",
        path: path.to_owned(),
        source,
    })?;
    let mut buf = vec![0u8; PART_DATA_MAX];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = file.read(&mut buf).map_err(|source| NodeStoreError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
        if n == 0 {
            return Ok((size, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
}
