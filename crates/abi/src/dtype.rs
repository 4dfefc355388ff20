//! Datatypes: every type is a typemap of blocks of primitive elements at byte displacements.
//! Messages travel packed (the blocks one after another); a contiguous type travels straight
//! from and into the user's memory.

use crate::ffi::{Res, bail, user_bytes, user_bytes_mut};
use crate::handles::err;

/// An element type reductions understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prim {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// C `long double` (16 bytes); copied, never reduced.
    LongDouble,
    /// C `_Bool`/C++ `bool` (one byte).
    Bool,
    /// Fortran LOGICAL (4 bytes, .TRUE. = 1).
    Logical,
    C32,
    C64,
    /// Raw bytes (MPI_BYTE, MPI_PACKED, MPI_CHARACTER): copied; only bitwise operations.
    Byte,
    /// Opaque bytes of the given size (long double complex): copied, never reduced.
    Opaque(usize),
    /// Value/index pairs for MINLOC and MAXLOC, laid out as the C structs.
    PairF32I32,
    PairF64I32,
    PairI64I32,
    PairI32I32,
    PairI16I32,
    PairLdI32,
    PairF32F32,
    PairF64F64,
}

impl Prim {
    pub(crate) fn size(self) -> usize {
        use Prim::*;
        match self {
            I8 | U8 | Bool | Byte => 1,
            I16 | U16 => 2,
            I32 | U32 | F32 | Logical => 4,
            I64 | U64 | F64 | C32 | PairF32I32 | PairI32I32 | PairI16I32 | PairF32F32 => 8,
            LongDouble | C64 | PairF64I32 | PairI64I32 | PairF64F64 => 16,
            PairLdI32 => 32,
            Opaque(n) => n,
        }
    }

    fn align(self) -> usize {
        use Prim::*;
        match self {
            LongDouble | PairLdI32 => 16,
            C32 | PairF32I32 | PairI32I32 | PairI16I32 | PairF32F32 => 4,
            C64 | PairF64I32 | PairI64I32 | PairF64F64 => 8,
            Opaque(_) => 16,
            p => p.size(),
        }
    }
}

/// `n` consecutive elements of `prim` at byte displacement `disp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub disp: isize,
    pub prim: Prim,
    pub n: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Dtype {
    pub name: String,
    pub blocks: Vec<Block>,
    /// Bytes of data (packed size).
    pub size: usize,
    pub lb: isize,
    pub extent: isize,
    pub true_lb: isize,
    pub true_ub: isize,
    pub predefined: bool,
    pub committed: bool,
    /// Whether `count` elements are exactly `count * size` bytes from the buffer's address.
    pub contiguous: bool,
    pub align: usize,
}

/// The predefined datatypes: (table index, C name, element).
pub(crate) const PREDEFINED: &[(i32, &str, Prim)] = &[
    (1, "MPI_CHAR", Prim::I8),
    (2, "MPI_SIGNED_CHAR", Prim::I8),
    (3, "MPI_UNSIGNED_CHAR", Prim::U8),
    (4, "MPI_BYTE", Prim::Byte),
    (5, "MPI_SHORT", Prim::I16),
    (6, "MPI_UNSIGNED_SHORT", Prim::U16),
    (7, "MPI_INT", Prim::I32),
    (8, "MPI_UNSIGNED", Prim::U32),
    (9, "MPI_LONG", Prim::I64),
    (10, "MPI_UNSIGNED_LONG", Prim::U64),
    (11, "MPI_LONG_LONG_INT", Prim::I64),
    (12, "MPI_UNSIGNED_LONG_LONG", Prim::U64),
    (13, "MPI_FLOAT", Prim::F32),
    (14, "MPI_DOUBLE", Prim::F64),
    (15, "MPI_LONG_DOUBLE", Prim::LongDouble),
    (16, "MPI_WCHAR", Prim::I32),
    (17, "MPI_C_BOOL", Prim::Bool),
    (18, "MPI_INT8_T", Prim::I8),
    (19, "MPI_INT16_T", Prim::I16),
    (20, "MPI_INT32_T", Prim::I32),
    (21, "MPI_INT64_T", Prim::I64),
    (22, "MPI_UINT8_T", Prim::U8),
    (23, "MPI_UINT16_T", Prim::U16),
    (24, "MPI_UINT32_T", Prim::U32),
    (25, "MPI_UINT64_T", Prim::U64),
    (26, "MPI_AINT", Prim::I64),
    (27, "MPI_OFFSET", Prim::I64),
    (28, "MPI_COUNT", Prim::I64),
    (29, "MPI_PACKED", Prim::Byte),
    (30, "MPI_C_FLOAT_COMPLEX", Prim::C32),
    (31, "MPI_C_DOUBLE_COMPLEX", Prim::C64),
    (32, "MPI_C_LONG_DOUBLE_COMPLEX", Prim::Opaque(32)),
    (33, "MPI_FLOAT_INT", Prim::PairF32I32),
    (34, "MPI_DOUBLE_INT", Prim::PairF64I32),
    (35, "MPI_LONG_INT", Prim::PairI64I32),
    (36, "MPI_2INT", Prim::PairI32I32),
    (37, "MPI_SHORT_INT", Prim::PairI16I32),
    (38, "MPI_LONG_DOUBLE_INT", Prim::PairLdI32),
    (39, "MPI_CXX_BOOL", Prim::Bool),
    (40, "MPI_CXX_FLOAT_COMPLEX", Prim::C32),
    (41, "MPI_CXX_DOUBLE_COMPLEX", Prim::C64),
    (50, "MPI_INTEGER", Prim::I32),
    (51, "MPI_REAL", Prim::F32),
    (52, "MPI_DOUBLE_PRECISION", Prim::F64),
    (53, "MPI_COMPLEX", Prim::C32),
    (54, "MPI_DOUBLE_COMPLEX", Prim::C64),
    (55, "MPI_LOGICAL", Prim::Logical),
    (56, "MPI_CHARACTER", Prim::Byte),
    (57, "MPI_2REAL", Prim::PairF32F32),
    (58, "MPI_2DOUBLE_PRECISION", Prim::PairF64F64),
    (59, "MPI_2INTEGER", Prim::PairI32I32),
    (60, "MPI_INTEGER1", Prim::I8),
    (61, "MPI_INTEGER2", Prim::I16),
    (62, "MPI_INTEGER4", Prim::I32),
    (63, "MPI_INTEGER8", Prim::I64),
    (64, "MPI_REAL4", Prim::F32),
    (65, "MPI_REAL8", Prim::F64),
    (66, "MPI_COMPLEX8", Prim::C32),
    (67, "MPI_COMPLEX16", Prim::C64),
    (68, "MPI_REAL16", Prim::LongDouble),
];

/// The first table index of a user-defined datatype.
pub(crate) const FIRST_USER: usize = 100;

/// Appends `b` to `out`, merging it into the last block when it continues it.
fn push(out: &mut Vec<Block>, b: Block) {
    if b.n == 0 {
        return;
    }
    if let Some(last) = out.last_mut()
        && last.prim == b.prim
        && last.disp + (last.n * last.prim.size()) as isize == b.disp
    {
        last.n += b.n;
        return;
    }
    out.push(b);
}

impl Dtype {
    pub(crate) fn primitive(name: &str, prim: Prim) -> Self {
        let s = prim.size();
        Self {
            name: name.into(),
            blocks: vec![Block {
                disp: 0,
                prim,
                n: 1,
            }],
            size: s,
            lb: 0,
            extent: s as isize,
            true_lb: 0,
            true_ub: s as isize,
            predefined: true,
            committed: true,
            contiguous: true,
            align: prim.align(),
        }
    }

    /// A derived type from copies of other types: (type, count, byte displacement).
    fn build(parts: &[(&Dtype, usize, isize)], is_struct: bool) -> Res<Self> {
        let mut blocks = Vec::new();
        let (mut lb, mut ub) = (isize::MAX, isize::MIN);
        let (mut tlb, mut tub) = (isize::MAX, isize::MIN);
        let mut size = 0usize;
        let mut align = 1;
        for &(t, count, disp) in parts {
            if count == 0 {
                continue;
            }
            align = align.max(t.align);
            for k in 0..count {
                let base = disp + k as isize * t.extent;
                for b in &t.blocks {
                    push(
                        &mut blocks,
                        Block {
                            disp: base + b.disp,
                            ..*b
                        },
                    );
                }
                lb = lb.min(base + t.lb);
                ub = ub.max(base + t.lb + t.extent);
                tlb = tlb.min(base + t.true_lb);
                tub = tub.max(base + t.true_ub);
            }
            size = count
                .checked_mul(t.size)
                .and_then(|s| s.checked_add(size))
                .ok_or_else(|| crate::ffi::error(err::COUNT, "the datatype is too large"))?;
        }
        if lb > ub {
            (lb, ub, tlb, tub) = (0, 0, 0, 0);
        }
        if is_struct && align > 1 {
            let ext = ub - lb;
            let rem = ext.rem_euclid(align as isize);
            if rem != 0 {
                ub += align as isize - rem;
            }
        }
        let mut t = Self {
            name: String::new(),
            blocks,
            size,
            lb,
            extent: ub - lb,
            true_lb: tlb,
            true_ub: tub,
            predefined: false,
            committed: false,
            contiguous: false,
            align,
        };
        t.contiguous = t.compute_contiguous();
        Ok(t)
    }

    fn compute_contiguous(&self) -> bool {
        match self.blocks.as_slice() {
            [] => self.extent == 0,
            [b] => b.disp == 0 && self.lb == 0 && self.extent == self.size as isize,
            _ => false,
        }
    }

    pub(crate) fn contiguous_of(count: usize, old: &Dtype) -> Res<Self> {
        let parts: Vec<_> = (0..count.min(1)).map(|_| (old, count, 0)).collect();
        Self::build(&parts, false)
    }

    pub(crate) fn hvector(count: usize, blocklen: usize, stride: isize, old: &Dtype) -> Res<Self> {
        let parts: Vec<_> = (0..count)
            .map(|i| (old, blocklen, i as isize * stride))
            .collect();
        Self::build(&parts, false)
    }

    pub(crate) fn hindexed(lens: &[usize], displs: &[isize], old: &Dtype) -> Res<Self> {
        let parts: Vec<_> = lens
            .iter()
            .zip(displs)
            .map(|(&l, &d)| (old, l, d))
            .collect();
        Self::build(&parts, false)
    }

    pub(crate) fn structure(lens: &[usize], displs: &[isize], types: &[&Dtype]) -> Res<Self> {
        let parts: Vec<_> = types
            .iter()
            .zip(lens.iter().zip(displs))
            .map(|(t, (&l, &d))| (*t, l, d))
            .collect();
        Self::build(&parts, true)
    }

    pub(crate) fn resized(old: &Dtype, lb: isize, extent: isize) -> Self {
        let mut t = old.clone();
        t.name.clear();
        t.lb = lb;
        t.extent = extent;
        t.predefined = false;
        t.committed = false;
        t.contiguous = t.compute_contiguous();
        t
    }

    pub(crate) fn subarray(
        sizes: &[usize],
        subsizes: &[usize],
        starts: &[usize],
        fortran_order: bool,
        old: &Dtype,
    ) -> Res<Self> {
        let nd = sizes.len();
        for i in 0..nd {
            if subsizes[i] == 0 || starts[i] + subsizes[i] > sizes[i] {
                bail!(
                    err::ARG,
                    "dimension {i}: a subarray of {} from {} does not fit {}",
                    subsizes[i],
                    starts[i],
                    sizes[i]
                );
            }
        }
        // Dimensions from slowest to fastest varying.
        let order: Vec<usize> = if fortran_order {
            (0..nd).rev().collect()
        } else {
            (0..nd).collect()
        };
        let mut strides = vec![0isize; nd];
        let mut s = old.extent;
        for &d in order.iter().rev() {
            strides[d] = s;
            s *= sizes[d] as isize;
        }
        let total = s;
        let mut parts = Vec::new();
        let inner = *order.last().unwrap_or(&0);
        let mut idx = vec![0usize; nd];
        if nd > 0 {
            'outer: loop {
                let mut disp = 0isize;
                for d in 0..nd {
                    let i = if d == inner { 0 } else { idx[d] };
                    disp += (starts[d] + i) as isize * strides[d];
                }
                parts.push((old, subsizes[inner], disp));
                // advance the index of every dimension but the innermost, fastest last
                let mut k = order.len() - 1;
                loop {
                    if k == 0 {
                        break 'outer;
                    }
                    k -= 1;
                    let d = order[k];
                    idx[d] += 1;
                    if idx[d] < subsizes[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        let t = Self::build(&parts, false)?;
        Ok(Self::resized(&t, 0, total))
    }

    /// Bytes `count` elements pack into.
    pub(crate) fn packed_len(&self, count: usize) -> Res<usize> {
        count
            .checked_mul(self.size)
            .ok_or_else(|| crate::ffi::error(err::COUNT, format!("count {count} is too large")))
    }

    /// Appends `count` elements at address `base` to `out`, packed.
    pub(crate) fn pack(&self, base: usize, count: usize, out: &mut Vec<u8>) {
        if self.contiguous {
            out.extend_from_slice(user_bytes(base, count * self.size));
            return;
        }
        for k in 0..count {
            let at = base as isize + k as isize * self.extent;
            for b in &self.blocks {
                let len = b.n * b.prim.size();
                out.extend_from_slice(user_bytes((at + b.disp) as usize, len));
            }
        }
    }

    /// Scatters packed bytes into `count` elements at `base`; returns the bytes consumed
    /// (stops early when `data` runs out).
    pub(crate) fn unpack(&self, data: &[u8], base: usize, count: usize) -> usize {
        if self.contiguous {
            let n = data.len().min(count * self.size);
            user_bytes_mut(base, n).copy_from_slice(&data[..n]);
            return n;
        }
        let mut used = 0;
        for k in 0..count {
            let at = base as isize + k as isize * self.extent;
            for b in &self.blocks {
                let len = (b.n * b.prim.size()).min(data.len() - used);
                if len == 0 {
                    return used;
                }
                user_bytes_mut((at + b.disp) as usize, len)
                    .copy_from_slice(&data[used..used + len]);
                used += len;
            }
        }
        used
    }

    /// The bytes `count` elements span in memory, from the first to the last byte of data:
    /// (offset of the first byte from the buffer address, length). Reductions work on spans.
    pub(crate) fn span(&self, count: usize) -> (isize, usize) {
        if count == 0 || self.size == 0 {
            return (0, 0);
        }
        let len = (count as isize - 1) * self.extent + self.true_ub - self.true_lb;
        (self.true_lb, len.max(0) as usize)
    }

    /// Copies the data of `count` elements from a span (as [`Dtype::span`] describes it) into
    /// the user's buffer at `base`, leaving the gaps of the user's buffer untouched.
    pub(crate) fn span_to_user(&self, span: &[u8], base: usize, count: usize) {
        let (off, len) = self.span(count);
        let start = (base as isize + off) as usize;
        if self.contiguous {
            user_bytes_mut(start, len).copy_from_slice(&span[..len]);
            return;
        }
        for k in 0..count {
            for b in &self.blocks {
                let rel = (k as isize * self.extent + b.disp - self.true_lb) as usize;
                let n = b.n * b.prim.size();
                user_bytes_mut(start + rel, n).copy_from_slice(&span[rel..rel + n]);
            }
        }
    }

    /// The single element type of every block, if there is one (reductions need it).
    pub(crate) fn uniform_prim(&self) -> Option<Prim> {
        let p = self.blocks.first()?.prim;
        self.blocks.iter().all(|b| b.prim == p).then_some(p)
    }
}
