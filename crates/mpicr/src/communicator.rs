//! Communicators and point-to-point operations.

use engine::{Comm, buffer};

use crate::datatype::{Buffer, BufferMut, Equivalence};
use crate::error::Error;
use crate::request::{Request, Scope};
use crate::universe::Shared;

/// What a receive or probe reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    source: i32,
    tag: i32,
    count_bytes: usize,
}

impl Status {
    /// The sender's rank in the communicator.
    pub fn source(&self) -> i32 {
        self.source
    }

    pub fn tag(&self) -> i32 {
        self.tag
    }

    /// Bytes in the message (received, or waiting for a probe).
    pub fn count_bytes(&self) -> usize {
        self.count_bytes
    }

    /// Whole elements of `T` in the message (MPI_Get_count).
    pub fn count<T: Equivalence>(&self) -> usize {
        self.count_bytes / size_of::<T>().max(1)
    }
}

pub(crate) fn convert_status(comm: &Comm, s: engine::Status) -> Status {
    let source = comm.local_rank(s.source).map_or(-1, |r| r as i32);
    Status {
        source,
        tag: s.tag,
        count_bytes: s.count,
    }
}

/// The error chain of `e` as one line: "outer: inner: innermost".
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        line.push_str(": ");
        line.push_str(&s.to_string());
        next = s.source();
    }
    line
}

/// A group of ranks that talk among themselves (MPI_Comm).
#[derive(Debug, Clone)]
pub struct Communicator {
    pub(crate) shared: &'static Shared,
    pub(crate) comm: Comm,
}

fn check_tag(tag: i32) -> Result<i32, Error> {
    if tag < 0 {
        return Err(engine::EngineError::InvalidTag(tag).into());
    }
    Ok(tag)
}

impl Communicator {
    pub(crate) fn new(shared: &'static Shared, comm: Comm) -> Self {
        Self { shared, comm }
    }

    pub(crate) fn engine(&self) -> std::cell::RefMut<'static, engine::Engine> {
        self.shared.engine.borrow_mut()
    }

    /// This rank's number in the communicator.
    pub fn rank(&self) -> i32 {
        self.comm.rank() as i32
    }

    /// Ranks in the communicator.
    pub fn size(&self) -> i32 {
        self.comm.size() as i32
    }

    /// The rank `rank` of this communicator, as a destination, source or root.
    pub fn process_at_rank(&self, rank: i32) -> Process<'_> {
        Process { comm: self, rank }
    }

    /// Any rank, as the source of a receive or probe (MPI_ANY_SOURCE).
    pub fn any_process(&self) -> AnyProcess<'_> {
        AnyProcess { comm: self }
    }

    /// The rank of the world this communicator's `rank` is.
    pub fn world_rank_of(&self, rank: i32) -> Result<i32, Error> {
        Ok(self.comm.world_rank(i64::from(rank))? as i32)
    }

    /// Sends `send` to `dest` and receives into `recv` from `source` at once, so that pairs of
    /// ranks can swap without deadlock (MPI_Sendrecv).
    pub fn send_receive_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        dest: i32,
        send_tag: i32,
        recv: &mut R,
        source: i32,
        recv_tag: i32,
    ) -> Result<Status, Error> {
        let comm = self.comm.clone();
        let dest = comm.world_rank(i64::from(dest))?;
        let source = comm.world_rank(i64::from(source))?;
        let (send_tag, recv_tag) = (check_tag(send_tag)?, check_tag(recv_tag)?);
        let mut engine = self.engine();
        let mut ins = [buffer::In {
            source,
            tag: recv_tag,
            buf: recv.as_bytes_mut(),
        }];
        let outs = [buffer::Out {
            dest,
            tag: send_tag,
            data: send.as_bytes(),
        }];
        let statuses = buffer::exchange(&mut engine, comm.p2p_ctx(), &outs, &mut ins)?;
        Ok(convert_status(&comm, statuses[0]))
    }

    /// Blocks until a message from anyone with any tag is waiting, and describes it.
    pub fn probe(&self) -> Result<Status, Error> {
        self.any_process().probe()
    }
}

/// One rank of a communicator seen as a peer.
#[derive(Debug, Clone, Copy)]
pub struct Process<'c> {
    pub(crate) comm: &'c Communicator,
    pub(crate) rank: i32,
}

/// Any rank of a communicator, as a source.
#[derive(Debug, Clone, Copy)]
pub struct AnyProcess<'c> {
    comm: &'c Communicator,
}

impl Process<'_> {
    /// This peer's rank in the communicator.
    pub fn rank(&self) -> i32 {
        self.rank
    }

    fn world(&self) -> Result<u32, Error> {
        Ok(self.comm.comm.world_rank(i64::from(self.rank))?)
    }

    /// Blocking send with tag 0 (MPI_Send).
    pub fn send<B: Buffer + ?Sized>(&self, buf: &B) -> Result<(), Error> {
        self.send_with_tag(buf, 0)
    }

    /// Blocking send (MPI_Send).
    pub fn send_with_tag<B: Buffer + ?Sized>(&self, buf: &B, tag: i32) -> Result<(), Error> {
        let dest = self.world()?;
        let ctx = self.comm.comm.p2p_ctx();
        Ok(buffer::send(
            &mut self.comm.engine(),
            ctx,
            dest,
            check_tag(tag)?,
            buf.as_bytes(),
        )?)
    }

    /// Blocking receive of a message with any tag (MPI_Recv with MPI_ANY_TAG).
    pub fn receive_into<B: BufferMut + ?Sized>(&self, buf: &mut B) -> Result<Status, Error> {
        receive(self.comm, Some(self.world()?), None, buf)
    }

    /// Blocking receive (MPI_Recv).
    pub fn receive_into_with_tag<B: BufferMut + ?Sized>(
        &self,
        buf: &mut B,
        tag: i32,
    ) -> Result<Status, Error> {
        receive(self.comm, Some(self.world()?), Some(check_tag(tag)?), buf)
    }

    /// Receives one value of type `T` with any tag.
    pub fn receive<T: Equivalence>(&self) -> Result<(T, Status), Error> {
        let mut v = T::zeroed();
        let s = self.receive_into(&mut v)?;
        Ok((v, s))
    }

    /// Receives a whole message of any length into a new vector (probe, then receive).
    pub fn receive_vec<T: Equivalence>(&self) -> Result<(Vec<T>, Status), Error> {
        receive_vec(self.comm, Some(self.world()?), None)
    }

    /// As [`Self::receive_vec`], for messages with `tag`.
    pub fn receive_vec_with_tag<T: Equivalence>(
        &self,
        tag: i32,
    ) -> Result<(Vec<T>, Status), Error> {
        receive_vec(self.comm, Some(self.world()?), Some(check_tag(tag)?))
    }

    /// Starts a send with tag 0 (MPI_Isend).
    pub fn immediate_send<'s, 'e, B: Buffer + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'e>,
        buf: &'s B,
    ) -> Result<Request<'s, 'e>, Error> {
        self.immediate_send_with_tag(scope, buf, 0)
    }

    /// Starts a send (MPI_Isend).
    pub fn immediate_send_with_tag<'s, 'e, B: Buffer + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'e>,
        buf: &'s B,
        tag: i32,
    ) -> Result<Request<'s, 'e>, Error> {
        let id = scope.isend(
            self.comm.comm.p2p_ctx(),
            self.world()?,
            check_tag(tag)?,
            buf.as_bytes(),
        )?;
        Ok(Request::new(id, scope, self.comm.comm.clone()))
    }

    /// Starts a receive with any tag (MPI_Irecv).
    pub fn immediate_receive_into<'s, 'e, B: BufferMut + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'e>,
        buf: &'s mut B,
    ) -> Result<Request<'s, 'e>, Error> {
        immediate_receive(self.comm, scope, Some(self.world()?), None, buf)
    }

    /// Starts a receive (MPI_Irecv).
    pub fn immediate_receive_into_with_tag<'s, 'e, B: BufferMut + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'e>,
        buf: &'s mut B,
        tag: i32,
    ) -> Result<Request<'s, 'e>, Error> {
        immediate_receive(
            self.comm,
            scope,
            Some(self.world()?),
            Some(check_tag(tag)?),
            buf,
        )
    }

    /// Blocks until a message from this rank is waiting (MPI_Probe).
    pub fn probe(&self) -> Result<Status, Error> {
        probe(self.comm, Some(self.world()?), None)
    }

    /// As [`Self::probe`], for messages with `tag`.
    pub fn probe_with_tag(&self, tag: i32) -> Result<Status, Error> {
        probe(self.comm, Some(self.world()?), Some(check_tag(tag)?))
    }

    /// The status of a waiting message from this rank, if any (MPI_Iprobe).
    pub fn immediate_probe_with_tag(&self, tag: i32) -> Result<Option<Status>, Error> {
        iprobe(self.comm, Some(self.world()?), Some(check_tag(tag)?))
    }
}

impl AnyProcess<'_> {
    /// Blocking receive from any rank with any tag.
    pub fn receive_into<B: BufferMut + ?Sized>(&self, buf: &mut B) -> Result<Status, Error> {
        receive(self.comm, None, None, buf)
    }

    /// Blocking receive from any rank with `tag`.
    pub fn receive_into_with_tag<B: BufferMut + ?Sized>(
        &self,
        buf: &mut B,
        tag: i32,
    ) -> Result<Status, Error> {
        receive(self.comm, None, Some(check_tag(tag)?), buf)
    }

    /// Receives one value of type `T` from anyone.
    pub fn receive<T: Equivalence>(&self) -> Result<(T, Status), Error> {
        let mut v = T::zeroed();
        let s = self.receive_into(&mut v)?;
        Ok((v, s))
    }

    /// Receives a whole message from anyone into a new vector.
    pub fn receive_vec<T: Equivalence>(&self) -> Result<(Vec<T>, Status), Error> {
        receive_vec(self.comm, None, None)
    }

    /// Starts a receive from any rank with any tag.
    pub fn immediate_receive_into<'s, 'e, B: BufferMut + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'e>,
        buf: &'s mut B,
    ) -> Result<Request<'s, 'e>, Error> {
        immediate_receive(self.comm, scope, None, None, buf)
    }

    /// Starts a receive from any rank with `tag`.
    pub fn immediate_receive_into_with_tag<'s, 'e, B: BufferMut + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'e>,
        buf: &'s mut B,
        tag: i32,
    ) -> Result<Request<'s, 'e>, Error> {
        immediate_receive(self.comm, scope, None, Some(check_tag(tag)?), buf)
    }

    /// Blocks until any message is waiting.
    pub fn probe(&self) -> Result<Status, Error> {
        probe(self.comm, None, None)
    }

    /// Blocks until a message with `tag` is waiting.
    pub fn probe_with_tag(&self, tag: i32) -> Result<Status, Error> {
        probe(self.comm, None, Some(check_tag(tag)?))
    }

    /// The status of any waiting message, if there is one.
    pub fn immediate_probe(&self) -> Result<Option<Status>, Error> {
        iprobe(self.comm, None, None)
    }

    /// The status of a waiting message with `tag`, if there is one.
    pub fn immediate_probe_with_tag(&self, tag: i32) -> Result<Option<Status>, Error> {
        iprobe(self.comm, None, Some(check_tag(tag)?))
    }
}

fn receive<B: BufferMut + ?Sized>(
    c: &Communicator,
    source: Option<u32>,
    tag: Option<i32>,
    buf: &mut B,
) -> Result<Status, Error> {
    let s = buffer::recv(
        &mut c.engine(),
        c.comm.p2p_ctx(),
        source,
        tag,
        buf.as_bytes_mut(),
    )?;
    Ok(convert_status(&c.comm, s))
}

fn receive_vec<T: Equivalence>(
    c: &Communicator,
    source: Option<u32>,
    tag: Option<i32>,
) -> Result<(Vec<T>, Status), Error> {
    let mut engine = c.engine();
    let ctx = c.comm.p2p_ctx();
    let found = engine.probe(ctx, source, tag)?;
    let size = size_of::<T>().max(1);
    if !found.count.is_multiple_of(size) {
        return Err(Error::InvalidArgument(format!(
            "a message of {} bytes is not a whole number of {}-byte elements",
            found.count, size
        )));
    }
    let mut v = vec![T::zeroed(); found.count / size];
    let s = buffer::recv(
        &mut engine,
        ctx,
        Some(found.source),
        Some(found.tag),
        bytemuck::cast_slice_mut(&mut v),
    )?;
    Ok((v, convert_status(&c.comm, s)))
}

fn immediate_receive<'s, 'e, B: BufferMut + ?Sized>(
    c: &Communicator,
    scope: &'s Scope<'s, 'e>,
    source: Option<u32>,
    tag: Option<i32>,
    buf: &'s mut B,
) -> Result<Request<'s, 'e>, Error> {
    let id = scope.irecv(c.comm.p2p_ctx(), source, tag, buf.as_bytes_mut())?;
    Ok(Request::new(id, scope, c.comm.clone()))
}

fn probe(c: &Communicator, source: Option<u32>, tag: Option<i32>) -> Result<Status, Error> {
    let s = c.engine().probe(c.comm.p2p_ctx(), source, tag)?;
    Ok(convert_status(&c.comm, s))
}

fn iprobe(
    c: &Communicator,
    source: Option<u32>,
    tag: Option<i32>,
) -> Result<Option<Status>, Error> {
    let s = c.engine().iprobe(c.comm.p2p_ctx(), source, tag)?;
    Ok(s.map(|s| convert_status(&c.comm, s)))
}
