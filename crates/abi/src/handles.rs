//! Handle values and other constants shared with `mpi.h` and `mpif.h` (docs/abi.md).
//!
//! Every handle is a C `int`. The null handle of every kind is 0; other handles carry their
//! kind in bits 26..30 and a table index below, so a handle of the wrong kind is caught.

pub(crate) const KIND_SHIFT: u32 = 26;
pub(crate) const INDEX_MASK: i32 = (1 << KIND_SHIFT) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Comm = 1,
    Group = 2,
    Datatype = 3,
    Op = 4,
    Request = 5,
    Errhandler = 6,
}

pub(crate) const fn make(kind: Kind, index: i32) -> i32 {
    ((kind as i32) << KIND_SHIFT) | index
}

/// The table index of `handle` if it is of `kind`.
pub(crate) fn index(kind: Kind, handle: i32) -> Option<usize> {
    (handle > 0 && handle >> KIND_SHIFT == kind as i32).then_some((handle & INDEX_MASK) as usize)
}

pub(crate) const COMM_WORLD: i32 = make(Kind::Comm, 1);
pub(crate) const COMM_SELF: i32 = make(Kind::Comm, 2);
pub(crate) const GROUP_EMPTY: i32 = make(Kind::Group, 1);
pub(crate) const ERRORS_ARE_FATAL: i32 = make(Kind::Errhandler, 1);
pub(crate) const ERRORS_RETURN: i32 = make(Kind::Errhandler, 2);

// Special values.
pub(crate) const PROC_NULL: i32 = -1;
pub(crate) const ANY_SOURCE: i32 = -2;
pub(crate) const ANY_TAG: i32 = -1;
pub(crate) const UNDEFINED: i32 = -32766;

// Attribute keys.
pub(crate) const TAG_UB: i32 = 1;
pub(crate) const HOST: i32 = 2;
pub(crate) const IO: i32 = 3;
pub(crate) const WTIME_IS_GLOBAL: i32 = 4;
pub(crate) const UNIVERSE_SIZE: i32 = 5;
pub(crate) const APPNUM: i32 = 6;

// Comparison results.
pub(crate) const IDENT: i32 = 0;
pub(crate) const CONGRUENT: i32 = 1;
pub(crate) const SIMILAR: i32 = 2;
pub(crate) const UNEQUAL: i32 = 3;

// Thread levels.
pub(crate) const THREAD_SINGLE: i32 = 0;
pub(crate) const THREAD_FUNNELED: i32 = 1;

// Topologies.
pub(crate) const CART: i32 = 1;

pub(crate) const MAX_PROCESSOR_NAME: usize = 128;
pub(crate) const MAX_ERROR_STRING: usize = 512;
pub(crate) const COMM_TYPE_SHARED: i32 = 1;
pub(crate) const ORDER_C: i32 = 56;
pub(crate) const ORDER_FORTRAN: i32 = 57;

/// Error classes (also the codes).
pub(crate) mod err {
    pub(crate) const SUCCESS: i32 = 0;
    pub(crate) const BUFFER: i32 = 1;
    pub(crate) const COUNT: i32 = 2;
    pub(crate) const TYPE: i32 = 3;
    pub(crate) const TAG: i32 = 4;
    pub(crate) const COMM: i32 = 5;
    pub(crate) const RANK: i32 = 6;
    pub(crate) const REQUEST: i32 = 7;
    pub(crate) const ROOT: i32 = 8;
    pub(crate) const GROUP: i32 = 9;
    pub(crate) const OP: i32 = 10;
    pub(crate) const TOPOLOGY: i32 = 11;
    pub(crate) const DIMS: i32 = 12;
    pub(crate) const ARG: i32 = 13;
    pub(crate) const UNKNOWN: i32 = 14;
    pub(crate) const TRUNCATE: i32 = 15;
    pub(crate) const OTHER: i32 = 16;
    pub(crate) const INTERN: i32 = 17;
    pub(crate) const IN_STATUS: i32 = 18;
    pub(crate) const PENDING: i32 = 19;
    pub(crate) const KEYVAL: i32 = 20;
    pub(crate) const NO_MEM: i32 = 21;
    pub(crate) const LASTCODE: i32 = 21;

    /// The standard's short description of each class.
    pub(crate) fn describe(class: i32) -> &'static str {
        match class {
            SUCCESS => "no error",
            BUFFER => "invalid buffer pointer",
            COUNT => "invalid count argument",
            TYPE => "invalid datatype argument",
            TAG => "invalid tag argument",
            COMM => "invalid communicator",
            RANK => "invalid rank",
            REQUEST => "invalid request (handle)",
            ROOT => "invalid root",
            GROUP => "invalid group",
            OP => "invalid operation",
            TOPOLOGY => "invalid topology",
            DIMS => "invalid dimension argument",
            ARG => "invalid argument of some other kind",
            UNKNOWN => "unknown error",
            TRUNCATE => "message truncated on receive",
            OTHER => "known error not in this list",
            INTERN => "internal MPI (implementation) error",
            IN_STATUS => "error code is in status",
            PENDING => "pending request",
            KEYVAL => "invalid keyval",
            NO_MEM => "out of memory",
            _ => "unknown error",
        }
    }
}
