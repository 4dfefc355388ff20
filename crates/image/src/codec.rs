//! Compression of page runs (format version 2).
//!
//! The writer compresses while it reads memory, and from the maps read to the last page it must
//! not call the allocator (see `capture`). So compression uses C libraries whose state can live
//! in memory the caller provides: lz4's `LZ4_compress_fast` keeps its 16 KiB hash table on the
//! stack (lz4 is built with `LZ4_HEAPMODE=0`, its default), and zstd runs on a *static* context
//! (`ZSTD_initStaticCCtx`) placed in the capture's scratch mapping, which never allocates.
//! (`lz4_flex`'s compressor boxes its hash table on every call, so it serves only for
//! decompression, where allocating is fine and a safe Rust decoder is what hostile input
//! deserves.)

use std::ffi::c_void;

/// How a run's pages are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Raw pages.
    #[default]
    None,
    /// An LZ4 block.
    Lz4,
    /// A zstd frame.
    Zstd,
}

impl Codec {
    /// The run encoding written for this codec (`docs/image-format.md`).
    pub fn enc(self) -> u32 {
        match self {
            Codec::None => ENC_RAW,
            Codec::Lz4 => ENC_LZ4,
            Codec::Zstd => ENC_ZSTD,
        }
    }
    /// The name `--compress` takes.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" | "" => Ok(Codec::None),
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd),
            other => Err(format!(
                "unknown compression {other:?} (expected zstd, lz4 or none)"
            )),
        }
    }
}

/// Run encodings.
pub const ENC_RAW: u32 = 0;
pub const ENC_LZ4: u32 = 1;
pub const ENC_ZSTD: u32 = 2;
/// Pages that are zero (only in incremental images: they were not zero in the parent).
pub const ENC_ZERO: u32 = 3;

/// The zstd level the writer uses: the fastest non-negative level.
const ZSTD_LEVEL: i32 = 1;

/// Bytes of scratch memory a static zstd context needs.
pub(crate) fn zstd_workspace_len() -> usize {
    // SAFETY: a pure function of its argument.
    unsafe { zstd_sys::ZSTD_estimateCCtxSize(ZSTD_LEVEL) }
}

/// A compressor whose state lives in memory the caller owns (no allocation per call).
#[derive(Debug)]
pub(crate) struct Compressor {
    codec: Codec,
    cctx: *mut zstd_sys::ZSTD_CCtx,
}

impl Compressor {
    /// `workspace` must stay mapped and untouched while the compressor is used and be at least
    /// [`zstd_workspace_len`] bytes for zstd (unused otherwise).
    pub(crate) fn new(codec: Codec, workspace: &mut [u8]) -> Option<Self> {
        let mut cctx = std::ptr::null_mut();
        if codec == Codec::Zstd {
            // SAFETY: the workspace is a live, writable, 8-byte aligned (page-aligned scratch)
            // buffer of the given length that the caller keeps for the compressor's lifetime.
            cctx = unsafe {
                zstd_sys::ZSTD_initStaticCCtx(
                    workspace.as_mut_ptr().cast::<c_void>(),
                    workspace.len(),
                )
            };
            if cctx.is_null() {
                return None;
            }
        }
        Some(Self { codec, cctx })
    }

    /// The run encoding of what [`Compressor::compress`] returns.
    pub(crate) fn enc(&self) -> u32 {
        self.codec.enc()
    }

    /// Compresses `src` into `dst`; `None` when the result would not be smaller than `src`
    /// (the run is then stored raw) or the codec is `None`.
    pub(crate) fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        let cap = dst.len().min(src.len().saturating_sub(1));
        match self.codec {
            Codec::None => None,
            Codec::Lz4 => {
                let n = i32::try_from(src.len()).ok()?;
                let cap = i32::try_from(cap).ok()?;
                // SAFETY: src and dst are live slices of at least n and cap bytes; lz4 reads
                // n bytes and writes at most cap bytes, keeping its state on the stack.
                let r = unsafe {
                    lz4_sys::LZ4_compress_fast(
                        src.as_ptr().cast(),
                        dst.as_mut_ptr().cast(),
                        n,
                        cap,
                        1,
                    )
                };
                (r > 0).then_some(r as usize)
            }
            Codec::Zstd => {
                // SAFETY: cctx is the static context built on the caller's workspace; src and
                // dst are live slices, zstd writes at most `cap` bytes into dst.
                let r = unsafe {
                    zstd_sys::ZSTD_compressCCtx(
                        self.cctx,
                        dst.as_mut_ptr().cast(),
                        cap,
                        src.as_ptr().cast(),
                        src.len(),
                        ZSTD_LEVEL,
                    )
                };
                // SAFETY: a pure function of the return code.
                let err = unsafe { zstd_sys::ZSTD_isError(r) } != 0;
                (!err && r > 0 && r <= cap).then_some(r)
            }
        }
    }
}

/// Decompresses a run stored with `enc` into `dst`, which must come out exactly full.
pub fn decompress(enc: u32, src: &[u8], dst: &mut [u8]) -> Result<(), String> {
    match enc {
        ENC_LZ4 => match lz4_flex::block::decompress_into(src, dst) {
            Ok(n) if n == dst.len() => Ok(()),
            Ok(n) => Err(format!("lz4 run holds {n} bytes, not {}", dst.len())),
            Err(e) => Err(format!("lz4 run does not decompress: {e}")),
        },
        ENC_ZSTD => {
            // SAFETY: both are live slices; zstd reads src.len() bytes and writes at most
            // dst.len() bytes, allocating its own decompression context.
            let r = unsafe {
                zstd_sys::ZSTD_decompress(
                    dst.as_mut_ptr().cast(),
                    dst.len(),
                    src.as_ptr().cast(),
                    src.len(),
                )
            };
            // SAFETY: a pure function of the return code.
            if unsafe { zstd_sys::ZSTD_isError(r) } != 0 {
                return Err("zstd run does not decompress".into());
            }
            if r != dst.len() {
                return Err(format!("zstd run holds {r} bytes, not {}", dst.len()));
            }
            Ok(())
        }
        other => Err(format!("run encoding {other} is not compressed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..64 * 1024u32).map(|i| (i / 7 % 13) as u8).collect()
    }

    #[test]
    fn both_codecs_round_trip_without_heap_state() {
        let src = sample();
        for codec in [Codec::Lz4, Codec::Zstd] {
            let mut ws = vec![0u64; zstd_workspace_len() / 8 + 1];
            // SAFETY-free view of the u64 buffer as bytes (aligned workspace).
            let ws_bytes: &mut [u8] = bytemuck_bytes(&mut ws);
            let mut c = Compressor::new(codec, ws_bytes).expect("context");
            let mut dst = vec![0u8; src.len()];
            let n = c.compress(&src, &mut dst).expect("compressible");
            assert!(n < src.len() / 4, "{codec:?} compressed to {n}");
            let mut back = vec![0u8; src.len()];
            decompress(codec.enc(), &dst[..n], &mut back).unwrap();
            assert_eq!(back, src);
            // A damaged stream is an error or different bytes, never a crash.
            dst[n / 2] ^= 0xff;
            let r = decompress(codec.enc(), &dst[..n], &mut back);
            assert!(
                r.is_err() || back != src,
                "{codec:?} accepted a damaged run"
            );
        }
    }

    #[test]
    fn incompressible_data_is_not_compressed() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let src: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut dst = vec![0u8; src.len()];
        let mut c = Compressor::new(Codec::Lz4, &mut []).unwrap();
        assert_eq!(c.compress(&src, &mut dst), None);
    }

    fn bytemuck_bytes(v: &mut [u64]) -> &mut [u8] {
        let len = v.len() * 8;
        // SAFETY: u64 has no padding and any byte pattern is valid; the slice covers exactly
        // the vector's memory and borrows it mutably.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
    }
}
