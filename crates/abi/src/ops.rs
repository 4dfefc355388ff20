//! Reduction operations: the predefined ones on primitive elements, and user functions.

use std::ffi::{c_int, c_void};

use crate::dtype::{Dtype, Prim};
use crate::ffi::{Res, bail};
use crate::handles::err;

/// `void fn(void *invec, void *inoutvec, int *len, MPI_Datatype *datatype)`; the Fortran
/// convention (everything by reference) has the same shape.
pub(crate) type UserFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int, *mut c_int);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Max = 1,
    Min,
    Sum,
    Prod,
    Land,
    Band,
    Lor,
    Bor,
    Lxor,
    Bxor,
    MinLoc,
    MaxLoc,
    Replace,
    NoOp,
}

pub(crate) const BUILTINS: [Builtin; 14] = [
    Builtin::Max,
    Builtin::Min,
    Builtin::Sum,
    Builtin::Prod,
    Builtin::Land,
    Builtin::Band,
    Builtin::Lor,
    Builtin::Bor,
    Builtin::Lxor,
    Builtin::Bxor,
    Builtin::MinLoc,
    Builtin::MaxLoc,
    Builtin::Replace,
    Builtin::NoOp,
];

/// The first table index of a user-defined operation.
pub(crate) const FIRST_USER: usize = 32;

#[derive(Debug, Clone, Copy)]
pub(crate) enum OpObj {
    Builtin(Builtin),
    User { f: UserFn, commute: bool },
}

impl OpObj {
    pub(crate) fn commutative(&self) -> bool {
        match self {
            OpObj::Builtin(_) => true,
            OpObj::User { commute, .. } => *commute,
        }
    }

    /// Checks that the operation applies to `t`, before any message moves.
    pub(crate) fn check(&self, t: &Dtype) -> Res {
        let OpObj::Builtin(op) = self else {
            return Ok(());
        };
        if t.size == 0 {
            return Ok(());
        }
        let Some(p) = t.uniform_prim() else {
            bail!(
                err::OP,
                "predefined operations need a datatype of one element type"
            );
        };
        if !supports(*op, p) {
            bail!(
                err::OP,
                "the operation {op:?} is not defined for the datatype {}",
                if t.name.is_empty() { "given" } else { &t.name }
            );
        }
        Ok(())
    }

    /// `inout = input ∘ inout` on spans of `count` elements of `t` (see `Dtype::span`);
    /// `handle` is passed to user functions.
    pub(crate) fn apply(
        &self,
        t: &Dtype,
        handle: i32,
        count: usize,
        input: &[u8],
        inout: &mut [u8],
    ) {
        match *self {
            OpObj::Builtin(op) => {
                if t.contiguous {
                    if let Some(p) = t.uniform_prim() {
                        apply_prim(op, p, input, inout);
                    }
                    return;
                }
                for k in 0..count {
                    for b in &t.blocks {
                        let rel = (k as isize * t.extent + b.disp - t.true_lb) as usize;
                        let n = b.n * b.prim.size();
                        if rel + n <= input.len() && rel + n <= inout.len() {
                            apply_prim(op, b.prim, &input[rel..rel + n], &mut inout[rel..rel + n]);
                        }
                    }
                }
            }
            OpObj::User { f, .. } => {
                let mut len = c_int::try_from(count).unwrap_or(c_int::MAX);
                let mut dt = handle;
                let shift = t.true_lb;
                let a = input.as_ptr().wrapping_offset(-shift) as *mut c_void;
                let b = inout.as_mut_ptr().wrapping_offset(-shift) as *mut c_void;
                // SAFETY: `a` and `b` address `count` elements of `t` whose data lies inside
                // `input` and `inout` (spans start at the true lower bound, hence the shift);
                // the function pointer was registered by MPI_Op_create with this signature.
                unsafe { f(a, b, &mut len, &mut dt) }
            }
        }
    }
}

fn supports(op: Builtin, p: Prim) -> bool {
    use Builtin::*;
    use Prim::*;
    let int = matches!(p, I8 | U8 | I16 | U16 | I32 | U32 | I64 | U64);
    let float = matches!(p, F32 | F64);
    let complex = matches!(p, C32 | C64);
    let logical = matches!(p, Bool | Logical);
    let pair = matches!(
        p,
        PairF32I32 | PairF64I32 | PairI64I32 | PairI32I32 | PairI16I32 | PairF32F32 | PairF64F64
    );
    match op {
        Max | Min => int || float,
        Sum | Prod => int || float || complex,
        Land | Lor | Lxor => int || logical,
        Band | Bor | Bxor => int || p == Byte,
        MinLoc | MaxLoc => pair,
        Replace | NoOp => true,
    }
}

macro_rules! each {
    ($t:ty, $input:expr, $inout:expr, |$a:ident, $b:ident| $e:expr) => {{
        const S: usize = std::mem::size_of::<$t>();
        for (i, o) in $input.chunks_exact(S).zip($inout.chunks_exact_mut(S)) {
            let $a = <$t>::from_ne_bytes(i.try_into().expect("chunk of the element size"));
            let $b = <$t>::from_ne_bytes((&*o).try_into().expect("chunk of the element size"));
            o.copy_from_slice(&($e).to_ne_bytes());
        }
    }};
}

macro_rules! int_op {
    ($t:ty, $op:expr, $input:expr, $inout:expr) => {{
        match $op {
            Builtin::Max => each!($t, $input, $inout, |a, b| a.max(b)),
            Builtin::Min => each!($t, $input, $inout, |a, b| a.min(b)),
            Builtin::Sum => each!($t, $input, $inout, |a, b| a.wrapping_add(b)),
            Builtin::Prod => each!($t, $input, $inout, |a, b| a.wrapping_mul(b)),
            Builtin::Land => each!($t, $input, $inout, |a, b| <$t>::from(a != 0 && b != 0)),
            Builtin::Lor => each!($t, $input, $inout, |a, b| <$t>::from(a != 0 || b != 0)),
            Builtin::Lxor => each!($t, $input, $inout, |a, b| <$t>::from((a != 0) != (b != 0))),
            Builtin::Band => each!($t, $input, $inout, |a, b| a & b),
            Builtin::Bor => each!($t, $input, $inout, |a, b| a | b),
            Builtin::Bxor => each!($t, $input, $inout, |a, b| a ^ b),
            _ => {}
        }
    }};
}

macro_rules! float_op {
    ($t:ty, $op:expr, $input:expr, $inout:expr) => {{
        match $op {
            Builtin::Max => each!($t, $input, $inout, |a, b| if a > b { a } else { b }),
            Builtin::Min => each!($t, $input, $inout, |a, b| if a < b { a } else { b }),
            Builtin::Sum => each!($t, $input, $inout, |a, b| a + b),
            Builtin::Prod => each!($t, $input, $inout, |a, b| a * b),
            _ => {}
        }
    }};
}

fn complex_op<const W: usize>(op: Builtin, input: &[u8], inout: &mut [u8]) {
    let rd = |b: &[u8]| -> f64 {
        if W == 4 {
            f64::from(f32::from_ne_bytes(b.try_into().expect("4 bytes")))
        } else {
            f64::from_ne_bytes(b.try_into().expect("8 bytes"))
        }
    };
    let wr = |b: &mut [u8], v: f64| {
        if W == 4 {
            b.copy_from_slice(&(v as f32).to_ne_bytes());
        } else {
            b.copy_from_slice(&v.to_ne_bytes());
        }
    };
    for (i, o) in input.chunks_exact(2 * W).zip(inout.chunks_exact_mut(2 * W)) {
        let (ar, ai) = (rd(&i[..W]), rd(&i[W..]));
        let (br, bi) = (rd(&o[..W]), rd(&o[W..]));
        let (r, im) = match op {
            Builtin::Sum => (ar + br, ai + bi),
            Builtin::Prod => (ar * br - ai * bi, ar * bi + ai * br),
            _ => (br, bi),
        };
        wr(&mut o[..W], r);
        wr(&mut o[W..], im);
    }
}

/// MINLOC/MAXLOC on pairs of (value, index) at offsets 0 and `io` of `size`-byte elements.
fn loc_op<V: PartialOrd + Copy, I: Ord + Copy>(
    max: bool,
    size: usize,
    io: usize,
    input: &[u8],
    inout: &mut [u8],
    rv: impl Fn(&[u8]) -> V,
    ri: impl Fn(&[u8]) -> I,
) {
    for (i, o) in input.chunks_exact(size).zip(inout.chunks_exact_mut(size)) {
        let (av, ai) = (rv(i), ri(&i[io..]));
        let (bv, bi) = (rv(o), ri(&o[io..]));
        let take_a = if av == bv {
            ai < bi
        } else if max {
            av > bv
        } else {
            av < bv
        };
        if take_a {
            o.copy_from_slice(i);
        }
    }
}

fn f32_at(b: &[u8]) -> f32 {
    f32::from_ne_bytes(b[..4].try_into().expect("4 bytes"))
}
fn f64_at(b: &[u8]) -> f64 {
    f64::from_ne_bytes(b[..8].try_into().expect("8 bytes"))
}
fn i32_at(b: &[u8]) -> i32 {
    i32::from_ne_bytes(b[..4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8]) -> i64 {
    i64::from_ne_bytes(b[..8].try_into().expect("8 bytes"))
}
fn i16_at(b: &[u8]) -> i16 {
    i16::from_ne_bytes(b[..2].try_into().expect("2 bytes"))
}

/// A total order on floats for index comparison of 2REAL/2DOUBLE_PRECISION pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fidx(f64);
impl Eq for Fidx {}
impl PartialOrd for Fidx {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Fidx {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

pub(crate) fn apply_prim(op: Builtin, p: Prim, input: &[u8], inout: &mut [u8]) {
    use Prim::*;
    if op == Builtin::Replace {
        inout.copy_from_slice(input);
        return;
    }
    if op == Builtin::NoOp {
        return;
    }
    match p {
        I8 => int_op!(i8, op, input, inout),
        U8 | Byte => int_op!(u8, op, input, inout),
        I16 => int_op!(i16, op, input, inout),
        U16 => int_op!(u16, op, input, inout),
        I32 | Logical => int_op!(i32, op, input, inout),
        U32 => int_op!(u32, op, input, inout),
        I64 => int_op!(i64, op, input, inout),
        U64 => int_op!(u64, op, input, inout),
        Bool => int_op!(u8, op, input, inout),
        F32 => float_op!(f32, op, input, inout),
        F64 => float_op!(f64, op, input, inout),
        C32 => complex_op::<4>(op, input, inout),
        C64 => complex_op::<8>(op, input, inout),
        PairF32I32 | PairF64I32 | PairI64I32 | PairI32I32 | PairI16I32 | PairF32F32
        | PairF64F64 => {
            let max = match op {
                Builtin::MaxLoc => true,
                Builtin::MinLoc => false,
                _ => return,
            };
            let s = p.size();
            match p {
                PairF32I32 => loc_op(max, s, 4, input, inout, f32_at, i32_at),
                PairF64I32 => loc_op(max, s, 8, input, inout, f64_at, i32_at),
                PairI64I32 => loc_op(max, s, 8, input, inout, i64_at, i32_at),
                PairI32I32 => loc_op(max, s, 4, input, inout, i32_at, i32_at),
                PairI16I32 => loc_op(max, s, 4, input, inout, i16_at, i32_at),
                PairF32F32 => loc_op(max, s, 4, input, inout, f32_at, |b| {
                    Fidx(f64::from(f32_at(b)))
                }),
                _ => loc_op(max, s, 8, input, inout, f64_at, |b| Fidx(f64_at(b))),
            }
        }
        LongDouble | Opaque(_) | PairLdI32 => {}
    }
}
