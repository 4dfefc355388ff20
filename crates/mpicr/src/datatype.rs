//! Which Rust values can be sent, and how a value or a slice of them is seen as a buffer.

use bytemuck::Pod;

/// The element kinds the built-in reductions know how to combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
    /// A user type: it travels as bytes; only user-defined operations can reduce it.
    Opaque,
}

/// A type whose values travel as their bytes (rsmpi's `Equivalence`). Implement it for your
/// own `#[derive(Pod, Zeroable)]` structs with `KIND = Kind::Opaque`.
pub trait Equivalence: Pod {
    const KIND: Kind;
    /// The type's name in error messages.
    const NAME: &'static str;
}

macro_rules! equivalence {
    ($($t:ty => $k:ident),* $(,)?) => {
        $(impl Equivalence for $t {
            const KIND: Kind = Kind::$k;
            const NAME: &'static str = stringify!($t);
        })*
    };
}

equivalence!(i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32, i64 => I64,
    u64 => U64, f32 => F32, f64 => F64);

impl Equivalence for isize {
    const KIND: Kind = if size_of::<isize>() == 8 {
        Kind::I64
    } else {
        Kind::I32
    };
    const NAME: &'static str = "isize";
}

impl Equivalence for usize {
    const KIND: Kind = if size_of::<usize>() == 8 {
        Kind::U64
    } else {
        Kind::U32
    };
    const NAME: &'static str = "usize";
}

/// Something that can be sent: a value, an array, a slice or a vector of [`Equivalence`] items.
pub trait Buffer {
    type Item: Equivalence;
    fn as_items(&self) -> &[Self::Item];
    fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_items())
    }
}

/// Something that can be received into.
pub trait BufferMut: Buffer {
    fn as_items_mut(&mut self) -> &mut [Self::Item];
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(self.as_items_mut())
    }
}

impl<T: Equivalence> Buffer for T {
    type Item = T;
    fn as_items(&self) -> &[T] {
        std::slice::from_ref(self)
    }
}

impl<T: Equivalence> BufferMut for T {
    fn as_items_mut(&mut self) -> &mut [T] {
        std::slice::from_mut(self)
    }
}

impl<T: Equivalence> Buffer for [T] {
    type Item = T;
    fn as_items(&self) -> &[T] {
        self
    }
}

impl<T: Equivalence> BufferMut for [T] {
    fn as_items_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Equivalence> Buffer for Vec<T> {
    type Item = T;
    fn as_items(&self) -> &[T] {
        self
    }
}

impl<T: Equivalence> BufferMut for Vec<T> {
    fn as_items_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Equivalence, const N: usize> Buffer for [T; N] {
    type Item = T;
    fn as_items(&self) -> &[T] {
        self
    }
}

impl<T: Equivalence, const N: usize> BufferMut for [T; N] {
    fn as_items_mut(&mut self) -> &mut [T] {
        self
    }
}
