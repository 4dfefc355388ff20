//! How a global snapshot refers to a process image: the rank's part (a store part written by
//! the `image` checkpointer) holds section [`SECTION`], naming the image file next to it in
//! the snapshot directory with its size and the crc32c its trailer carries.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::format::{TRAILER_LEN, TRAILER_MAGIC};

/// The part section that names the image.
pub const SECTION: &str = "image/file";

/// The image file of `rank` in a snapshot directory.
pub fn image_file_name(rank: u32) -> String {
    format!("rank-{rank}.image")
}

/// An image file as its part records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub file: String,
    pub size: u64,
    /// The image's whole-file checksum (the last field of its trailer).
    pub crc32c: u32,
}

impl ImageRef {
    /// The section's bytes: u16 name length, name, u64 size, u32 crc32c (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.file.len() as u16).to_le_bytes());
        out.extend_from_slice(self.file.as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.crc32c.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let bad = || format!("section {SECTION} is malformed");
        let n = u16::from_le_bytes(b.get(..2).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let n = usize::from(n);
        if b.len() != 2 + n + 12 {
            return Err(bad());
        }
        let file = std::str::from_utf8(&b[2..2 + n])
            .map_err(|_| bad())?
            .to_owned();
        let size = u64::from_le_bytes(b[2 + n..10 + n].try_into().map_err(|_| bad())?);
        let crc32c = u32::from_le_bytes(b[10 + n..14 + n].try_into().map_err(|_| bad())?);
        Ok(Self { file, size, crc32c })
    }

    /// The reference to the image at `path`, from its size and trailer (not re-read); the
    /// trailer must be one (its magic, and the body length it records matching the size).
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        let size = f.metadata()?.len();
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
        if size < TRAILER_LEN as u64 {
            return Err(bad("the image is shorter than its trailer"));
        }
        f.seek(SeekFrom::Start(size - TRAILER_LEN as u64))?;
        let mut t = [0u8; TRAILER_LEN];
        f.read_exact(&mut t)?;
        let body_len = u64::from_le_bytes(t[16..24].try_into().unwrap_or_default());
        if t[..8] != TRAILER_MAGIC || body_len != size - TRAILER_LEN as u64 {
            return Err(bad(
                "the image does not end with its trailer (truncated or overwritten)",
            ));
        }
        let crc: [u8; 4] = t[28..32].try_into().unwrap_or_default();
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            file,
            size,
            crc32c: u32::from_le_bytes(crc),
        })
    }

    /// Checks the image of `rank` in snapshot directory `dir` against this reference and
    /// validates all of it (every checksum, cap and invariant), without restoring anything.
    pub fn verify(&self, dir: &Path, rank: u32) -> Result<(), String> {
        self.check(dir, rank)?;
        let path = dir.join(&self.file);
        crate::read_image(&path)
            .map(drop)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// What a restart checks before it starts anything, without reading the images whole
    /// (the restorer reads each one whole and checks every checksum before it changes
    /// anything): the image of `rank` in `dir` and every link of its chain are there, each of
    /// the size and with the trailer checksum its reference records, with a valid header,
    /// trailer and PARENT section.
    pub fn check(&self, dir: &Path, rank: u32) -> Result<(), String> {
        if self.file != image_file_name(rank) {
            return Err(format!(
                "the part of rank {rank} names image `{}`, not {}",
                self.file,
                image_file_name(rank)
            ));
        }
        let path = dir.join(&self.file);
        let found = Self::of_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if found.size != self.size || found.crc32c != self.crc32c {
            return Err(format!(
                "{}: the image has {} bytes and checksum {:08x}, its part recorded {} bytes and {:08x}",
                path.display(),
                found.size,
                found.crc32c,
                self.size,
                self.crc32c
            ));
        }
        let mut parent =
            crate::read_parent_ref(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // An incremental image: every link down to the full image, each the file its child
        // names (size and checksum).
        let mut child = path;
        let mut hops = 0;
        while let Some(p) = parent.take() {
            hops += 1;
            if hops > crate::format::MAX_CHAIN {
                return Err(format!(
                    "{}: the chain of images does not end",
                    child.display()
                ));
            }
            let link = child.parent().unwrap_or(dir).join(&p.path);
            let found = Self::of_file(&link).map_err(|e| {
                format!(
                    "{}: the image it is based on, {}, is missing: {e}",
                    child.display(),
                    link.display()
                )
            })?;
            if found.size != p.size || found.crc32c != p.crc32c {
                return Err(format!(
                    "{}: the image it is based on, {}, is not the one it was taken against \
                     (size or checksum differ)",
                    child.display(),
                    link.display()
                ));
            }
            // Each link was read whole when its own snapshot was committed, and the restorer
            // reads every link whole again before it changes anything: here its size, its
            // trailer's checksum (above) and its own reference down the chain suffice.
            parent =
                crate::read_parent_ref(&link).map_err(|e| format!("{}: {e}", link.display()))?;
            child = link;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_round_trips_and_refuses_garbage() {
        let r = ImageRef {
            file: image_file_name(3),
            size: 12345,
            crc32c: 0xdead_beef,
        };
        assert_eq!(ImageRef::decode(&r.encode()), Ok(r.clone()));
        let mut longer = r.encode();
        longer.push(0);
        assert!(ImageRef::decode(&longer).is_err());
        assert!(ImageRef::decode(&[5]).is_err());
    }
}
