//! Shared file mappings and typed access to the words inside them.
//!
//! Invariants every `SharedMapping` keeps:
//! - `ptr` is the start of a live `MAP_SHARED` mapping of exactly `len` bytes, readable and
//!   writable, unmapped only in `Drop`;
//! - offsets handed to the accessors are checked against `len` and the alignment of the type.
//!
//! Other processes write to the same pages at any time. Therefore no Rust reference to the
//! mapped bytes is ever created except to atomics; plain bytes move only by raw copies, and the
//! protocols built on top (the ring) make sure two processes never copy to the same bytes at once.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap, munmap};

use crate::ring::RingError;

/// A read-write shared mapping of a whole file.
#[derive(Debug)]
pub(crate) struct SharedMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with other processes anyway; all access goes
// through atomics or raw copies whose exclusivity the ring protocol guarantees, so moving the
// handle to another thread adds no new aliasing.
unsafe impl Send for SharedMapping {}

/// Creates the file `path` (mode 0600; it must not exist yet) with `len` bytes and maps it.
pub(crate) fn create_mapped(
    path: &std::path::Path,
    len: usize,
) -> Result<SharedMapping, RingError> {
    let err = |source| RingError::File {
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.set_len(len as u64).map_err(err)?;
    SharedMapping::new(&file, len).map_err(|source| RingError::Map {
        path: path.display().to_string(),
        source,
    })
}

/// Opens the existing file `path` and maps all of it, if its size passes `valid`.
pub(crate) fn open_mapped(
    path: &std::path::Path,
    valid: impl Fn(u64) -> bool,
) -> Result<SharedMapping, RingError> {
    let err = |source| RingError::File {
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(err)?;
    let len = file.metadata().map_err(err)?.len();
    let invalid = || RingError::Invalid {
        path: path.display().to_string(),
    };
    if !valid(len) {
        return Err(invalid());
    }
    let len = usize::try_from(len).map_err(|_| invalid())?;
    SharedMapping::new(&file, len).map_err(|source| RingError::Map {
        path: path.display().to_string(),
        source,
    })
}

impl SharedMapping {
    /// Maps `len` bytes of `file` read-write and shared, and leaves the mapping out of forked
    /// children: the image writer a rank forks, and any process the program forks, cannot
    /// touch the job's data plane even by mistake (a stray write there would corrupt a live
    /// link), and the writer's copy of the address space holds nothing it must skip.
    pub(crate) fn new(file: &File, len: usize) -> std::io::Result<Self> {
        // SAFETY: a null hint lets the kernel choose a fresh address range, so no existing Rust
        // object can be overlapped; the file descriptor is valid for the call.
        let raw = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                0,
            )
        }?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(std::io::ErrorKind::AddrNotAvailable)?;
        let mapping = Self { ptr, len };
        // SAFETY: the range is exactly the mapping just created, which `mapping` owns; the
        // advice changes only what a later fork copies, not this process's view of it.
        unsafe { madvise(raw, len, Advice::LinuxDontFork) }?;
        Ok(mapping)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn checked(&self, offset: usize, size: usize, align: usize) -> *mut u8 {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len),
            "offset out of range"
        );
        assert_eq!(offset % align, 0, "misaligned offset");
        // SAFETY: offset + size <= len was just checked, so the result stays inside the mapping.
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    /// The 64-bit atomic at `offset` (8-byte aligned, inside the mapping).
    pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let p = self.checked(offset, 8, 8);
        // SAFETY: `p` is in bounds and 8-byte aligned (checked); the page is mapped for as long
        // as `self` lives, which bounds the returned reference; AtomicU64 has the layout of u64
        // and every bit pattern is valid; other processes touch this word only atomically.
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    /// The 32-bit atomic at `offset` (4-byte aligned, inside the mapping).
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let p = self.checked(offset, 4, 4);
        // SAFETY: as for `atomic_u64`, with 4-byte alignment checked.
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    /// Copies `src` into the mapping at `offset`.
    ///
    /// The caller's protocol must make sure no other process copies into or out of these bytes
    /// at the same time (the ring owns them by head and tail).
    pub(crate) fn write_bytes(&self, offset: usize, src: &[u8]) {
        let dst = self.checked(offset, src.len(), 1);
        // SAFETY: the destination range is inside the mapping (checked) and cannot overlap
        // `src`, a Rust slice that lives outside any shared mapping we hand out.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
    }

    /// Copies bytes at `offset` out of the mapping into `dst`, under the same rule.
    pub(crate) fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let src = self.checked(offset, dst.len(), 1);
        // SAFETY: the source range is inside the mapping (checked); `dst` is an exclusive Rust
        // slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe the mapping created in `new`, and no reference derived from
        // it outlives `self` (the accessors borrow `self`).
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's flags of the mapping of `path` in this process (`VmFlags` in smaps).
    fn vm_flags_of(path: &std::path::Path) -> Vec<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.display().to_string();
        let mut lines = smaps.lines().skip_while(|l| !l.ends_with(&name));
        assert!(lines.next().is_some(), "{name} is not mapped");
        let flags = lines
            .find_map(|l| l.strip_prefix("VmFlags:"))
            .expect("smaps lists VmFlags");
        flags.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn mappings_are_not_copied_into_forked_children() {
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("created");
        let opened = dir.path().join("opened");
        let _a = create_mapped(&created, 8192).unwrap();
        std::fs::write(&opened, [0u8; 4096]).unwrap();
        let _b = open_mapped(&opened, |_| true).unwrap();
        for path in [&created, &opened] {
            let flags = vm_flags_of(path);
            assert!(flags.iter().any(|f| f == "dc"), "{flags:?}");
        }
    }
}
