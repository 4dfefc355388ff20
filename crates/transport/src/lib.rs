//! The byte links of mpicr's data plane.
//!
//! Every link between two ranks is a reliable, ordered, non-blocking byte stream; the
//! engine's packet protocol runs on top and does not care which kind it got:
//! - [`ShmLink`]: two single-producer single-consumer rings in files under the job's shared
//!   memory directory, one per direction, for ranks on one node;
//! - [`TcpLink`]: a non-blocking TCP connection, between nodes (or on one node on request);
//! - [`LoopbackLink`]: an in-process queue for a rank's messages to itself.
//!
//! A rank that has nothing to do sleeps on its [`Doorbell`], a futex word in shared memory
//! that peers on the node ring after they write to it or make room in a ring it waits on.
//! [`cma`] reads a peer's memory directly (one copy) for large messages on one node.
//!
//! `unsafe` lives only in `mapping` (shared mappings and the atomics inside them) and in
//! `cma` (the `process_vm_readv` system call).

pub mod cma;
mod doorbell;
mod link;
mod mapping;
mod ring;
mod tcp;

pub use doorbell::Doorbell;
pub use link::{Link, LinkError, LoopbackLink, ShmLink};
pub use ring::{Ring, RingError};
pub use tcp::TcpLink;
