//! Collective operations on communicators and roots, in rsmpi's shapes.

use bytemuck::{cast_slice, cast_slice_mut};
use engine::coll;

use crate::communicator::{Communicator, Process};
use crate::datatype::{Buffer, BufferMut, Equivalence};
use crate::error::Error;
use crate::ops::Operation;

/// The byte-level reduction the engine applies, from a typed operation.
fn byte_op<T: Equivalence, O: Operation<T>>(op: &O) -> impl Fn(&[u8], &mut [u8]) + '_ {
    move |a: &[u8], b: &mut [u8]| op.apply(cast_slice::<u8, T>(a), cast_slice_mut::<u8, T>(b))
}

/// Element counts (and optional displacements) of a varcount operation, in bytes.
fn layout<T>(
    counts: &[i32],
    displs: Option<&[i32]>,
    n: i32,
) -> Result<(Vec<usize>, Vec<usize>), Error> {
    if counts.len() != n as usize || displs.is_some_and(|d| d.len() != n as usize) {
        return Err(Error::InvalidArgument(format!(
            "{n} counts (and displacements) are needed, one per rank"
        )));
    }
    let size = size_of::<T>();
    let to_bytes = |v: i32, what: &str| {
        usize::try_from(v)
            .map(|v| v * size)
            .map_err(|_| Error::InvalidArgument(format!("a negative {what} ({v})")))
    };
    let counts = counts
        .iter()
        .map(|&c| to_bytes(c, "count"))
        .collect::<Result<Vec<_>, _>>()?;
    let displs = match displs {
        Some(d) => d
            .iter()
            .map(|&x| to_bytes(x, "displacement"))
            .collect::<Result<Vec<_>, _>>()?,
        None => counts
            .iter()
            .scan(0, |at, &c| Some(std::mem::replace(at, *at + c)))
            .collect(),
    };
    Ok((counts, displs))
}

impl Communicator {
    /// Blocks until every member has called it (MPI_Barrier).
    pub fn barrier(&self) -> Result<(), Error> {
        Ok(coll::barrier(&mut self.engine(), &self.comm)?)
    }

    /// Combines every member's `send` with `op`; every member gets the result (MPI_Allreduce).
    pub fn all_reduce_into<T, S, R, O>(&self, send: &S, recv: &mut R, op: O) -> Result<(), Error>
    where
        T: Equivalence,
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
        O: Operation<T>,
    {
        op.check()?;
        let f = byte_op::<T, O>(&op);
        Ok(coll::allreduce(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            recv.as_bytes_mut(),
            &f,
            op.is_commutative(),
        )?)
    }

    /// Every member gets every member's `send`, in rank order (MPI_Allgather).
    pub fn all_gather_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        recv: &mut R,
    ) -> Result<(), Error> {
        Ok(coll::allgather(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            recv.as_bytes_mut(),
        )?)
    }

    /// As [`Self::all_gather_into`] with `counts[i]` elements from rank i, placed one after the
    /// other, or at `displs[i]` elements when given (MPI_Allgatherv).
    pub fn all_gather_varcount_into<T: Equivalence, S, R>(
        &self,
        send: &S,
        recv: &mut R,
        counts: &[i32],
        displs: Option<&[i32]>,
    ) -> Result<(), Error>
    where
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
    {
        let (c, d) = layout::<T>(counts, displs, self.size())?;
        Ok(coll::allgatherv(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            recv.as_bytes_mut(),
            &c,
            &d,
        )?)
    }

    /// Block i of `send` goes to rank i; block j of `recv` comes from rank j (MPI_Alltoall).
    pub fn all_to_all_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        recv: &mut R,
    ) -> Result<(), Error> {
        Ok(coll::alltoall(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            recv.as_bytes_mut(),
        )?)
    }

    /// MPI_Alltoallv, with counts and displacements in elements.
    #[allow(clippy::too_many_arguments)]
    pub fn all_to_all_varcount_into<T: Equivalence, S, R>(
        &self,
        send: &S,
        send_counts: &[i32],
        send_displs: &[i32],
        recv: &mut R,
        recv_counts: &[i32],
        recv_displs: &[i32],
    ) -> Result<(), Error>
    where
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
    {
        let n = self.size();
        let (sc, sd) = layout::<T>(send_counts, Some(send_displs), n)?;
        let (rc, rd) = layout::<T>(recv_counts, Some(recv_displs), n)?;
        let send_layout = coll::Layout {
            counts: &sc,
            displs: &sd,
        };
        let recv_layout = coll::Layout {
            counts: &rc,
            displs: &rd,
        };
        Ok(coll::alltoallv(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            send_layout,
            recv.as_bytes_mut(),
            recv_layout,
        )?)
    }

    /// Inclusive prefix reduction over ranks 0..=this one (MPI_Scan).
    pub fn scan_into<T, S, R, O>(&self, send: &S, recv: &mut R, op: O) -> Result<(), Error>
    where
        T: Equivalence,
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
        O: Operation<T>,
    {
        op.check()?;
        let f = byte_op::<T, O>(&op);
        Ok(coll::scan(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            recv.as_bytes_mut(),
            &f,
            false,
        )?)
    }

    /// Exclusive prefix reduction over ranks before this one (MPI_Exscan); rank 0's `recv` is
    /// left as it was.
    pub fn exclusive_scan_into<T, S, R, O>(
        &self,
        send: &S,
        recv: &mut R,
        op: O,
    ) -> Result<(), Error>
    where
        T: Equivalence,
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
        O: Operation<T>,
    {
        op.check()?;
        let f = byte_op::<T, O>(&op);
        Ok(coll::scan(
            &mut self.engine(),
            &self.comm,
            send.as_bytes(),
            recv.as_bytes_mut(),
            &f,
            true,
        )?)
    }

    /// Splits into communicators of the members that pass the same `color`, ordered by rank
    /// (MPI_Comm_split); `None` (MPI_UNDEFINED) takes part but gets no communicator.
    pub fn split_by_color(&self, color: Option<i32>) -> Result<Option<Communicator>, Error> {
        self.split_by_color_with_key(color, self.rank())
    }

    /// As [`Self::split_by_color`], ordering members by `key` and then by rank.
    pub fn split_by_color_with_key(
        &self,
        color: Option<i32>,
        key: i32,
    ) -> Result<Option<Communicator>, Error> {
        let color = color
            .map(|c| {
                u32::try_from(c)
                    .map_err(|_| Error::InvalidArgument(format!("color {c} is negative")))
            })
            .transpose()?;
        let split = self.comm.split(&mut self.engine(), color, key)?;
        Ok(split.map(|comm| Communicator::new(self.shared, comm)))
    }

    /// A communicator with the same members and separate traffic (MPI_Comm_dup).
    pub fn duplicate(&self) -> Result<Communicator, Error> {
        let comm = self.comm.dup(&mut self.engine())?;
        Ok(Communicator::new(self.shared, comm))
    }
}

impl Process<'_> {
    fn root(&self) -> Result<u32, Error> {
        self.comm.comm.world_rank(i64::from(self.rank))?;
        Ok(self.rank as u32)
    }

    fn is_self(&self) -> bool {
        self.rank == self.comm.rank()
    }

    /// Sends the root's `buf` to every member (MPI_Bcast); call it on every member.
    pub fn broadcast_into<B: BufferMut + ?Sized>(&self, buf: &mut B) -> Result<(), Error> {
        let root = self.root()?;
        Ok(coll::bcast(
            &mut self.comm.engine(),
            &self.comm.comm,
            buf.as_bytes_mut(),
            root,
        )?)
    }

    /// The root's side of MPI_Reduce: combines every member's `send` into `recv`.
    pub fn reduce_into_root<T, S, R, O>(&self, send: &S, recv: &mut R, op: O) -> Result<(), Error>
    where
        T: Equivalence,
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
        O: Operation<T>,
    {
        self.require_root("reduce_into_root")?;
        op.check()?;
        let f = byte_op::<T, O>(&op);
        let root = self.root()?;
        Ok(coll::reduce(
            &mut self.comm.engine(),
            &self.comm.comm,
            send.as_bytes(),
            Some(recv.as_bytes_mut()),
            &f,
            op.is_commutative(),
            root,
        )?)
    }

    /// The other members' side of MPI_Reduce.
    pub fn reduce_into<T, S, O>(&self, send: &S, op: O) -> Result<(), Error>
    where
        T: Equivalence,
        S: Buffer<Item = T> + ?Sized,
        O: Operation<T>,
    {
        self.require_non_root("reduce_into", "reduce_into_root")?;
        op.check()?;
        let f = byte_op::<T, O>(&op);
        let root = self.root()?;
        Ok(coll::reduce(
            &mut self.comm.engine(),
            &self.comm.comm,
            send.as_bytes(),
            None,
            &f,
            op.is_commutative(),
            root,
        )?)
    }

    /// The root's side of MPI_Gather.
    pub fn gather_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        recv: &mut R,
    ) -> Result<(), Error> {
        self.require_root("gather_into_root")?;
        let root = self.root()?;
        Ok(coll::gather(
            &mut self.comm.engine(),
            &self.comm.comm,
            send.as_bytes(),
            Some(recv.as_bytes_mut()),
            root,
        )?)
    }

    /// The other members' side of MPI_Gather.
    pub fn gather_into<S: Buffer + ?Sized>(&self, send: &S) -> Result<(), Error> {
        self.require_non_root("gather_into", "gather_into_root")?;
        let root = self.root()?;
        Ok(coll::gather(
            &mut self.comm.engine(),
            &self.comm.comm,
            send.as_bytes(),
            None,
            root,
        )?)
    }

    /// The root's side of MPI_Gatherv: `counts[i]` elements from rank i at `displs[i]` (packed
    /// in rank order when `displs` is `None`).
    pub fn gather_varcount_into_root<T: Equivalence, S, R>(
        &self,
        send: &S,
        recv: &mut R,
        counts: &[i32],
        displs: Option<&[i32]>,
    ) -> Result<(), Error>
    where
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
    {
        self.require_root("gather_varcount_into_root")?;
        let (c, d) = layout::<T>(counts, displs, self.comm.size())?;
        let root = self.root()?;
        Ok(coll::gatherv(
            &mut self.comm.engine(),
            &self.comm.comm,
            send.as_bytes(),
            Some((recv.as_bytes_mut(), &c, &d)),
            root,
        )?)
    }

    /// The other members' side of MPI_Gatherv.
    pub fn gather_varcount_into<S: Buffer + ?Sized>(&self, send: &S) -> Result<(), Error> {
        self.require_non_root("gather_varcount_into", "gather_varcount_into_root")?;
        let root = self.root()?;
        Ok(coll::gatherv(
            &mut self.comm.engine(),
            &self.comm.comm,
            send.as_bytes(),
            None,
            root,
        )?)
    }

    /// The root's side of MPI_Scatter: block i of `send` goes to rank i.
    pub fn scatter_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        recv: &mut R,
    ) -> Result<(), Error> {
        self.require_root("scatter_into_root")?;
        let root = self.root()?;
        Ok(coll::scatter(
            &mut self.comm.engine(),
            &self.comm.comm,
            Some(send.as_bytes()),
            recv.as_bytes_mut(),
            root,
        )?)
    }

    /// The other members' side of MPI_Scatter.
    pub fn scatter_into<R: BufferMut + ?Sized>(&self, recv: &mut R) -> Result<(), Error> {
        self.require_non_root("scatter_into", "scatter_into_root")?;
        let root = self.root()?;
        Ok(coll::scatter(
            &mut self.comm.engine(),
            &self.comm.comm,
            None,
            recv.as_bytes_mut(),
            root,
        )?)
    }

    /// The root's side of MPI_Scatterv.
    pub fn scatter_varcount_into_root<T: Equivalence, S, R>(
        &self,
        send: &S,
        counts: &[i32],
        displs: Option<&[i32]>,
        recv: &mut R,
    ) -> Result<(), Error>
    where
        S: Buffer<Item = T> + ?Sized,
        R: BufferMut<Item = T> + ?Sized,
    {
        self.require_root("scatter_varcount_into_root")?;
        let (c, d) = layout::<T>(counts, displs, self.comm.size())?;
        let root = self.root()?;
        Ok(coll::scatterv(
            &mut self.comm.engine(),
            &self.comm.comm,
            Some((send.as_bytes(), &c, &d)),
            recv.as_bytes_mut(),
            root,
        )?)
    }

    /// The other members' side of MPI_Scatterv.
    pub fn scatter_varcount_into<R: BufferMut + ?Sized>(&self, recv: &mut R) -> Result<(), Error> {
        self.require_non_root("scatter_varcount_into", "scatter_varcount_into_root")?;
        let root = self.root()?;
        Ok(coll::scatterv(
            &mut self.comm.engine(),
            &self.comm.comm,
            None,
            recv.as_bytes_mut(),
            root,
        )?)
    }

    fn require_root(&self, call: &str) -> Result<(), Error> {
        if !self.is_self() {
            return Err(Error::InvalidArgument(format!(
                "{call} is for the root (rank {}) only",
                self.rank
            )));
        }
        Ok(())
    }

    fn require_non_root(&self, call: &str, root_call: &str) -> Result<(), Error> {
        if self.is_self() {
            return Err(Error::InvalidArgument(format!(
                "the root calls {root_call}, not {call}"
            )));
        }
        Ok(())
    }
}
