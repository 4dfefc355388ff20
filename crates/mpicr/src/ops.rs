//! Reduction operations: the built-in ones of MPI and user functions.

use bytemuck::{cast_slice, cast_slice_mut};

use crate::datatype::{Equivalence, Kind};
use crate::error::Error;

/// A reduction over elements of type `T`: `inout[i] = input[i] ∘ inout[i]`.
pub trait Operation<T: Equivalence> {
    fn apply(&self, input: &[T], inout: &mut [T]);
    /// Whether `a ∘ b == b ∘ a`; non-commutative operations are applied in rank order.
    fn is_commutative(&self) -> bool;
    /// Whether the operation is defined for `T`.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// MPI's predefined operations (MPI_SUM, MPI_MAX, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemOperation {
    Sum,
    Product,
    Max,
    Min,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

impl SystemOperation {
    pub fn sum() -> Self {
        Self::Sum
    }
    pub fn product() -> Self {
        Self::Product
    }
    pub fn max() -> Self {
        Self::Max
    }
    pub fn min() -> Self {
        Self::Min
    }
    pub fn logical_and() -> Self {
        Self::LogicalAnd
    }
    pub fn logical_or() -> Self {
        Self::LogicalOr
    }
    pub fn logical_xor() -> Self {
        Self::LogicalXor
    }
    pub fn bitwise_and() -> Self {
        Self::BitwiseAnd
    }
    pub fn bitwise_or() -> Self {
        Self::BitwiseOr
    }
    pub fn bitwise_xor() -> Self {
        Self::BitwiseXor
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Product => "product",
            Self::Max => "max",
            Self::Min => "min",
            Self::LogicalAnd => "logical and",
            Self::LogicalOr => "logical or",
            Self::LogicalXor => "logical xor",
            Self::BitwiseAnd => "bitwise and",
            Self::BitwiseOr => "bitwise or",
            Self::BitwiseXor => "bitwise xor",
        }
    }

    fn is_bitwise(self) -> bool {
        matches!(self, Self::BitwiseAnd | Self::BitwiseOr | Self::BitwiseXor)
    }
}

macro_rules! arith {
    ($op:expr, $t:ty, $a:expr, $b:expr) => {{
        let a: &[$t] = cast_slice($a);
        let b: &mut [$t] = cast_slice_mut($b);
        arith!(@apply $op, a, b)
    }};
    (@apply $op:expr, $a:ident, $b:ident) => {
        for (x, y) in $a.iter().zip($b.iter_mut()) {
            *y = match $op {
                SystemOperation::Sum => *x + *y,
                SystemOperation::Product => *x * *y,
                SystemOperation::Max => if *x > *y { *x } else { *y },
                SystemOperation::Min => if *x < *y { *x } else { *y },
                SystemOperation::LogicalAnd => bool_to(*x != zero(*x) && *y != zero(*y), *y),
                SystemOperation::LogicalOr => bool_to(*x != zero(*x) || *y != zero(*y), *y),
                SystemOperation::LogicalXor => bool_to((*x != zero(*x)) != (*y != zero(*y)), *y),
                _ => unreachable!("bitwise operations are dispatched separately"),
            };
        }
    };
}

macro_rules! bits {
    ($op:expr, $t:ty, $a:expr, $b:expr) => {{
        let a: &[$t] = cast_slice($a);
        let b: &mut [$t] = cast_slice_mut($b);
        for (x, y) in a.iter().zip(b.iter_mut()) {
            *y = match $op {
                SystemOperation::BitwiseAnd => *x & *y,
                SystemOperation::BitwiseOr => *x | *y,
                SystemOperation::BitwiseXor => *x ^ *y,
                _ => unreachable!("only bitwise operations come here"),
            };
        }
    }};
}

fn zero<T: bytemuck::Zeroable>(_: T) -> T {
    T::zeroed()
}

/// 1 or 0 in the element's own type (MPI's logical operations yield 0 or 1).
fn bool_to<T: Copy + From<bool>>(b: bool, _: T) -> T {
    T::from(b)
}

fn wrapping<T>(v: T) -> std::num::Wrapping<T> {
    std::num::Wrapping(v)
}

impl<T: Equivalence> Operation<T> for SystemOperation {
    fn apply(&self, input: &[T], inout: &mut [T]) {
        let a: &[u8] = cast_slice(input);
        let b: &mut [u8] = cast_slice_mut(inout);
        let op = *self;
        if op.is_bitwise() {
            match T::KIND {
                Kind::I8 | Kind::U8 => bits!(op, u8, a, b),
                Kind::I16 | Kind::U16 => bits!(op, u16, a, b),
                Kind::I32 | Kind::U32 => bits!(op, u32, a, b),
                Kind::I64 | Kind::U64 => bits!(op, u64, a, b),
                Kind::F32 | Kind::F64 | Kind::Opaque => unreachable!("check() refuses these"),
            }
            return;
        }
        match T::KIND {
            Kind::I8 => integers::<i8>(op, a, b),
            Kind::U8 => integers::<u8>(op, a, b),
            Kind::I16 => integers::<i16>(op, a, b),
            Kind::U16 => integers::<u16>(op, a, b),
            Kind::I32 => integers::<i32>(op, a, b),
            Kind::U32 => integers::<u32>(op, a, b),
            Kind::I64 => integers::<i64>(op, a, b),
            Kind::U64 => integers::<u64>(op, a, b),
            Kind::F32 => arith!(op, f32, a, b),
            Kind::F64 => arith!(op, f64, a, b),
            Kind::Opaque => unreachable!("check() refuses opaque types"),
        }
    }

    fn is_commutative(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), Error> {
        let bad = matches!(T::KIND, Kind::Opaque)
            || (self.is_bitwise() && matches!(T::KIND, Kind::F32 | Kind::F64));
        if bad {
            return Err(Error::InvalidOperation {
                op: self.name(),
                ty: T::NAME,
            });
        }
        Ok(())
    }
}

/// Integer arithmetic wraps on overflow, as C's unsigned arithmetic (and MPICH in practice) does.
fn integers<T>(op: SystemOperation, a: &[u8], b: &mut [u8])
where
    T: bytemuck::Pod + Ord + From<bool>,
    std::num::Wrapping<T>: std::ops::Add<Output = std::num::Wrapping<T>>
        + std::ops::Mul<Output = std::num::Wrapping<T>>,
{
    let a: &[T] = cast_slice(a);
    let b: &mut [T] = cast_slice_mut(b);
    for (x, y) in a.iter().zip(b.iter_mut()) {
        let (x, yv) = (*x, *y);
        let truth = |v: T| v != T::zeroed();
        *y = match op {
            SystemOperation::Sum => (wrapping(x) + wrapping(yv)).0,
            SystemOperation::Product => (wrapping(x) * wrapping(yv)).0,
            SystemOperation::Max => x.max(yv),
            SystemOperation::Min => x.min(yv),
            SystemOperation::LogicalAnd => T::from(truth(x) && truth(yv)),
            SystemOperation::LogicalOr => T::from(truth(x) || truth(yv)),
            SystemOperation::LogicalXor => T::from(truth(x) != truth(yv)),
            _ => unreachable!("bitwise operations are dispatched separately"),
        };
    }
}

/// A reduction written by the user (MPI_Op_create).
#[derive(Debug, Clone, Copy)]
pub struct UserOperation<F> {
    f: F,
    commutative: bool,
}

impl<F> UserOperation<F> {
    /// A commutative operation: the engine may combine contributions in any order.
    pub fn commutative(f: F) -> Self {
        Self {
            f,
            commutative: true,
        }
    }

    /// An associative but non-commutative operation: contributions combine in rank order.
    pub fn non_commutative(f: F) -> Self {
        Self {
            f,
            commutative: false,
        }
    }
}

impl<T: Equivalence, F: Fn(&[T], &mut [T])> Operation<T> for UserOperation<F> {
    fn apply(&self, input: &[T], inout: &mut [T]) {
        (self.f)(input, inout);
    }

    fn is_commutative(&self) -> bool {
        self.commutative
    }
}
