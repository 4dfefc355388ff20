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

use std::fs::File;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use image::ImageRef;
use wire::stream::{read_frame_into, write_frame, write_message};
use wire::{Command, Message, PART_DATA_MAX, PartPut};

use crate::node_store::{NodeStoreError, check_file, write_durably};

/// One file of a bundle: where it is and its size.
#[derive(Debug, Clone)]
pub struct BundleFile {
    pub path: PathBuf,
    pub size: u64,
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
    }];
    let mut parent = parent_of(&dir.join(&image.file), rank)?;
    while let Some(link) = parent {
        let path = dir.join(&link.file);
        parent = parent_of(&path, rank)?;
        files.push(BundleFile {
            path,
            size: link.size,
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
    let prefix = format!("rank-{rank}.base-");
    let epoch = parent
        .path
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(".image"));
    if !epoch.is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())) {
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
/// part's, the first file's; for a parity file, the file's).
pub(crate) fn send(
    stream: &TcpStream,
    files: &[BundleFile],
    epoch: u64,
    rank: u32,
    size: u64,
    crc: u32,
) -> io::Result<()> {
    let total = total(files);
    write_message(
        &mut &*stream,
        &Message::PartPut(PartPut {
            epoch,
            rank,
            size,
            crc32c: crc,
            total,
        }),
    )?;
    let mut buf = vec![0u8; PART_DATA_MAX.min(total.max(1) as usize)];
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
/// the files it names are known before they arrive. Returns the bytes taken from `from`.
pub(crate) fn split(
    from: &mut impl Read,
    dir: &Path,
    expected: &Expected<'_>,
) -> Result<u64, NodeStoreError> {
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
    let mut next = image;
    let mut hops = 0;
    while let Some(link) = next.take() {
        hops += 1;
        if hops > image::format::MAX_CHAIN + 1 {
            return Err(bad(rank, "the chain of images does not end".into()));
        }
        write_durably(
            dir,
            &link.file,
            |file, tmp| copy_exactly(from, file, link.size, tmp),
            |tmp| {
                let found = ImageRef::of_file(tmp)
                    .map_err(|e| bad(rank, format!("the copy of {}: {e}", link.file)))?;
                if found.size == link.size && found.crc32c == link.crc32c {
                    Ok(())
                } else {
                    Err(bad(
                        rank,
                        format!(
                            "the copy of {} has {} bytes and checksum {:08x}, {} bytes and {:08x} were expected",
                            link.file, found.size, found.crc32c, link.size, link.crc32c
                        ),
                    ))
                }
            },
        )?;
        taken += link.size;
        next = parent_of(&dir.join(&link.file), rank)?;
    }
    Ok(taken)
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
