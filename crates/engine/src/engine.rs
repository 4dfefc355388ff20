//! Point-to-point messaging: requests, matching and the progress loop.
//!
//! The engine is single-threaded: progress happens only inside calls. Every link is read in
//! order and every packet is handled in arrival order, which gives MPI's non-overtaking rule
//! per (source, communicator) for free; matching then walks the posted and unexpected queues
//! in the order entries were added.
//!
//! Messages shorter than `eager_limit` bytes travel whole (EAGER); the others use a
//! rendezvous: the sender announces the message (RTS) and keeps its buffer; once a receive
//! matches, either the receiver copies it straight out of the sender's memory (one copy, same
//! node) and answers FIN, or it answers CTS and the sender streams DATA into the receive buffer.
//! Either way an unmatched large message costs the receiver a header, not a copy of the data.
//! A message of exactly the limit (64 KiB by default) already takes the rendezvous: one copy by
//! cross-memory attach beats two through the ring at that size whenever the two ranks do not
//! share a core's caches, and fifteen 64 KiB messages fill a 2-rank job's 1 MiB ring.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use transport::{Doorbell, LinkError, cma};

use crate::EngineError;
use crate::buffer::{RecvBuf, SendBuf};
use crate::channel::{Channel, Input, Outgoing, Payload, Sink};
use crate::ckpt::{CkptState, SavedMessage};
use crate::control::ControlLink;
use crate::packet::{HEADER_LEN, Header, Kind};
use crate::slab::Slab;

/// What a completed receive reports (sources are world ranks at this level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub source: u32,
    pub tag: i32,
    /// Bytes received (or, from a probe, bytes the message holds).
    pub count: usize,
}

#[derive(Debug)]
enum Request {
    /// A send whose buffer is still in use: a rendezvous the receiver has not taken yet, or
    /// an eager message not yet wholly written into its link.
    Send { buf: SendBuf, status: Status },
    /// A receive, posted or already matched and filling; `slot` when a checkpoint records it.
    Recv {
        buf: RecvBuf,
        matched: Option<Status>,
        truncated_from: Option<u64>,
        slot: Option<usize>,
    },
    Done {
        status: Status,
        error: Option<EngineError>,
    },
}

#[derive(Debug)]
struct Posted {
    id: u64,
    ctx: u32,
    source: Option<u32>,
    tag: Option<i32>,
}

#[derive(Debug)]
enum Held {
    Eager(Vec<u8>),
    Rts { sreq: u64, len: u64, addr: u64 },
}

#[derive(Debug)]
struct Unexpected {
    ctx: u32,
    source: u32,
    tag: i32,
    held: Held,
    /// Sent after its sender's checkpoint marker and before this rank's snapshot: not
    /// deliverable until the local snapshot is taken.
    after_marker: bool,
    /// The checkpoint record slot this message fills when it completes.
    slot: Option<usize>,
}

impl Unexpected {
    fn len(&self) -> usize {
        match &self.held {
            Held::Eager(v) => v.len(),
            Held::Rts { len, .. } => *len as usize,
        }
    }
}

fn matches(
    ctx: u32,
    source: Option<u32>,
    tag: Option<i32>,
    m_ctx: u32,
    m_src: u32,
    m_tag: i32,
) -> bool {
    ctx == m_ctx && source.is_none_or(|s| s == m_src) && tag.is_none_or(|t| t == m_tag)
}

/// What [`Engine::recv_ready`] found in the link.
enum Ready {
    /// The short way does not apply now: take the general one.
    No(RecvBuf),
    /// Nothing has arrived on the link yet.
    Empty(RecvBuf),
    /// The message, received.
    Done(Status),
    /// The link's next packet, read, that is not this receive's message.
    Header(Header, RecvBuf),
}

/// How a rank waits when there is nothing to do.
#[derive(Debug)]
pub(crate) struct Idle {
    /// This rank's doorbell, rung by peers on the node.
    pub bell: Option<Rc<Doorbell>>,
}

/// The MPI engine of one rank.
#[derive(Debug)]
pub struct Engine {
    rank: u32,
    channels: Vec<Channel>,
    requests: Slab<Request>,
    posted: VecDeque<Posted>,
    unexpected: VecDeque<Unexpected>,
    idle: Idle,
    eager_limit: usize,
    /// Cross-memory attach works here; cleared at the first refusal.
    cma: bool,
    pub(crate) next_ctx: u32,
    pub(crate) ckpt: CkptState,
    /// Reusable scratch buffers of the collectives.
    pub(crate) scratch_pool: Vec<Vec<u128>>,
    /// Reusable buffers of unexpected eager messages.
    body_pool: Vec<Vec<u8>>,
    /// Receives completed so far: a read burst ends after one, see `read_channel_burst`.
    completed_recvs: u64,
    control: Option<ControlLink>,
    /// Progress rounds, to look at the control link every so often.
    rounds: u32,
    /// When the current stretch of fruitless progress rounds began.
    idle_since: Instant,
    /// How to wait when there is nothing to do.
    patience: Patience,
    /// The job's shared-memory directory (left out of process images).
    pub(crate) shm_dir: Option<std::path::PathBuf>,
    /// The descriptor numbers of the control connection (the front end's and the engine's),
    /// kept for a rank restored from an image.
    pub(crate) control_fds: Vec<std::os::fd::RawFd>,
    /// Process migration (`crate::migrate`).
    pub(crate) mig: crate::migrate::MigState,
}

/// The control link is read every this many progress rounds (and before sleeping), besides
/// at the first MPI call after the attention signal (`crate::attention`): the fallback for a
/// rank whose signal is not armed (`--crs self`, or a program with its own handler for it).
const CONTROL_EVERY: u32 = 512;

/// How a rank with nothing to do waits: it polls its links `polls` times, then keeps polling
/// but yields the core between polls (a peer that shares the core runs at once), and after
/// `yield_for` of that it sleeps until a peer wakes it (futex or poll), so that a long wait
/// costs no CPU. MPICH's ranks poll and yield the same way, but never sleep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Patience {
    polls: u32,
    yield_for: Duration,
}

/// Every rank of the node has a core of its own: poll long, sleep late.
const DEDICATED: Patience = Patience {
    polls: 1000,
    yield_for: Duration::from_millis(20),
};
/// More ranks than cores: give the core away soon.
const SHARED: Patience = Patience {
    polls: 100,
    yield_for: Duration::from_millis(1),
};
/// Fruitless rounds between two looks at the clock while yielding.
const CLOCK_EVERY: u32 = 16;

/// The waiting policy for `local_ranks` ranks on this node; `MPICR_SPIN_US` sets the time to
/// sleep after (for experiments). The node's CPUs are those its launcher was given
/// (`MPICR_NODE_CPUS`, set by the node): a rank bound to one core (`--bind-to`) sees only
/// that core in its own affinity mask, yet it has it to itself.
fn patience(local_ranks: usize) -> Patience {
    let cores = std::env::var("MPICR_NODE_CPUS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let base = if local_ranks > cores {
        SHARED
    } else {
        DEDICATED
    };
    match std::env::var("MPICR_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(us) => Patience {
            yield_for: Duration::from_micros(us),
            ..base
        },
        None => base,
    }
}

/// Buffers of unexpected eager messages kept for reuse.
const BODY_POOL: usize = 32;
/// How long an eager send waits for room in a full link before its message is copied.
const ROOM_WAIT: Duration = Duration::from_micros(200);
impl Engine {
    /// An engine for `rank`, with one channel per rank of the world; `local_ranks` ranks of the
    /// job (this one included) share this node's cores.
    pub(crate) fn new(
        rank: u32,
        channels: Vec<Channel>,
        idle: Idle,
        eager_limit: usize,
        control: Option<std::os::unix::net::UnixStream>,
        local_ranks: usize,
    ) -> Self {
        let size = channels.len();
        Self {
            rank,
            channels,
            requests: Slab::new(),
            posted: VecDeque::new(),
            unexpected: VecDeque::new(),
            idle,
            eager_limit,
            cma: true,
            next_ctx: crate::FIRST_FREE_CTX,
            ckpt: CkptState::new(size),
            scratch_pool: Vec::new(),
            body_pool: Vec::new(),
            completed_recvs: 0,
            control: control.map(ControlLink::new),
            rounds: 0,
            idle_since: Instant::now(),
            patience: patience(local_ranks),
            shm_dir: None,
            control_fds: Vec::new(),
            mig: crate::migrate::MigState::default(),
        }
    }

    pub(crate) fn set_launch_facts(
        &mut self,
        shm_dir: Option<std::path::PathBuf>,
        control_fds: Vec<std::os::fd::RawFd>,
    ) {
        self.shm_dir = shm_dir;
        self.control_fds = control_fds;
    }

    /// Puts new links (a rank restored from an image) under the channels, whose queued
    /// packets go out on them. The old links, doorbell and control buffer belong to the old
    /// job: forgotten, never dropped, since their descriptors and mappings are not restored.
    pub(crate) fn replace_links(
        &mut self,
        channels: Vec<Channel>,
        bell: Option<Rc<Doorbell>>,
        local_ranks: usize,
    ) {
        for (ch, new) in self.channels.iter_mut().zip(channels) {
            if matches!(ch.link, transport::Link::Loopback(_)) {
                // This rank's own link is memory, restored with the rest: bytes in it stay.
                continue;
            }
            std::mem::forget(std::mem::replace(&mut ch.link, new.link));
            ch.closed = false;
        }
        std::mem::forget(std::mem::replace(&mut self.idle.bell, bell));
        if let Some(c) = &mut self.control {
            c.forget_input();
        }
        self.cma = true;
        self.patience = patience(local_ranks);
        self.idle_since = Instant::now();
    }

    /// Sends a message to the coordinator (nothing for a singleton).
    pub(crate) fn send_control(&mut self, message: wire::Message) -> Result<(), EngineError> {
        match &mut self.control {
            Some(c) => Ok(c.send(&message)?),
            None => Ok(()),
        }
    }

    /// What the coordinator has sent, unhandled (`None` for a singleton).
    pub(crate) fn control_poll(&mut self) -> Option<Result<Vec<wire::Message>, EngineError>> {
        self.control.as_mut().map(|c| c.poll().map_err(Into::into))
    }

    /// Handles whatever the coordinator has sent.
    pub(crate) fn poll_control(&mut self) -> Result<(), EngineError> {
        let Some(c) = &mut self.control else {
            return Ok(());
        };
        for message in c.poll()? {
            self.on_control(message)?;
        }
        Ok(())
    }

    /// The control connection's descriptor (`None` for a singleton).
    pub(crate) fn control_fd(&self) -> Option<std::os::fd::RawFd> {
        self.control.as_ref().map(ControlLink::raw_fd)
    }

    pub(crate) fn first_live_request(&self) -> Option<u64> {
        self.requests.any_id()
    }

    /// Copies of the messages received but not delivered, as checkpoint record slots; large
    /// ones whose data is still at the sender get their slot filled when they are delivered.
    pub(crate) fn undelivered_messages(&mut self) -> Vec<(u32, u32, i32, Option<Vec<u8>>)> {
        let mut slots = Vec::new();
        for u in self.unexpected.iter_mut().filter(|u| !u.after_marker) {
            let data = match &u.held {
                Held::Eager(d) => Some(d.clone()),
                Held::Rts { .. } => {
                    u.slot = Some(slots.len());
                    None
                }
            };
            slots.push((u.ctx, u.source, u.tag, data));
        }
        slots
    }

    /// Makes held messages deliverable again and delivers them to receives already posted.
    pub(crate) fn release_held(&mut self) {
        if !self.unexpected.iter().any(|u| u.after_marker) {
            return;
        }
        self.unexpected
            .iter_mut()
            .for_each(|u| u.after_marker = false);
        let posted: Vec<Posted> = self.posted.drain(..).collect();
        for p in posted {
            let found = self
                .unexpected
                .iter()
                .position(|u| matches(p.ctx, p.source, p.tag, u.ctx, u.source, u.tag));
            match found {
                Some(i) => {
                    let u = self.unexpected.remove(i).expect("index from position");
                    if let Err(e) = self.deliver(p.id, u) {
                        tracing::warn!("delivering a released message failed: {e}");
                    }
                }
                None => self.posted.push_back(p),
            }
        }
    }

    /// Queues checkpoint `epoch`'s marker on every link but the loopback, after everything
    /// already queued, and freezes each link behind it (image checkpoints): what is queued
    /// later waits until the capture.
    pub(crate) fn send_frozen_markers(&mut self, epoch: u64) -> Result<(), EngineError> {
        let me = self.rank as usize;
        for peer in (0..self.channels.len()).filter(|&p| p != me) {
            self.queue_frozen_marker(peer, epoch)?;
        }
        for peer in (0..self.channels.len()).filter(|&p| p != me) {
            self.flush_channel(peer)?;
        }
        Ok(())
    }

    /// Queues `epoch`'s marker on the link to `peer` after everything already queued and
    /// freezes the link behind it.
    pub(crate) fn queue_frozen_marker(
        &mut self,
        peer: usize,
        epoch: u64,
    ) -> Result<(), EngineError> {
        self.channels[peer].frozen = Some(0);
        let mut m = Header::new(Kind::Marker);
        m.sreq = epoch;
        self.send_packet(peer as u32, m, Payload::None, None, false)?;
        let ch = &mut self.channels[peer];
        ch.frozen = Some(ch.out.len());
        Ok(())
    }

    /// The channel to `peer` (process migration replaces its link).
    pub(crate) fn channel_mut(&mut self, peer: usize) -> &mut Channel {
        &mut self.channels[peer]
    }

    /// Writes what is queued for `peer`, as far as the link takes it.
    pub(crate) fn flush_peer(&mut self, peer: usize) -> Result<bool, EngineError> {
        self.flush_channel(peer)
    }

    /// Whether every link has written its marker (and everything before it) out.
    pub(crate) fn markers_written(&self) -> bool {
        self.channels
            .iter()
            .all(|c| c.frozen.is_none_or(|n| n == 0))
    }

    /// Ends an image checkpoint's drain: queued packets may go out, links are read again.
    pub(crate) fn thaw_links(&mut self) {
        for ch in &mut self.channels {
            ch.frozen = None;
            ch.paused = false;
        }
    }

    /// Stops reading `peer`'s link until the capture (its marker was just read).
    pub(crate) fn pause_link(&mut self, peer: u32) {
        self.channels[peer as usize].paused = true;
    }

    /// Sends checkpoint `epoch`'s marker on every link but the loopback.
    pub(crate) fn send_markers(&mut self, epoch: u64) -> Result<(), EngineError> {
        let me = self.rank;
        for peer in (0..self.size()).filter(|&p| p != me) {
            let mut m = Header::new(Kind::Marker);
            m.sreq = epoch;
            self.send_packet(peer, m, Payload::None, None, false)?;
        }
        Ok(())
    }

    /// Puts messages saved by a snapshot back as received-but-undelivered, in their order,
    /// before anything new arrives (a restarted rank).
    pub fn preload(&mut self, messages: Vec<SavedMessage>) {
        for m in messages {
            self.unexpected.push_back(Unexpected {
                ctx: m.ctx,
                source: m.source,
                tag: m.tag,
                held: Held::Eager(m.data),
                after_marker: false,
                slot: None,
            });
        }
    }

    /// This rank's number in the world.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// Ranks in the world.
    pub fn size(&self) -> u32 {
        self.channels.len() as u32
    }

    fn check_rank(&self, rank: u32) -> Result<(), EngineError> {
        if rank >= self.size() {
            return Err(EngineError::InvalidRank {
                rank: i64::from(rank),
                size: self.size(),
            });
        }
        Ok(())
    }

    /// Starts a send of `buf` to world rank `dest` and returns the request id.
    pub fn isend(
        &mut self,
        ctx: u32,
        dest: u32,
        tag: i32,
        buf: SendBuf,
    ) -> Result<u64, EngineError> {
        self.attention()?;
        self.check_rank(dest)?;
        self.migration_backpressure(dest)?;
        let status = Status {
            source: dest,
            tag,
            count: buf.len(),
        };
        let id = self.requests.insert(Request::Send { buf, status });
        if buf.len() < self.eager_limit {
            // The request keeps the buffer: what the link cannot take now waits in the queue
            // as the caller's bytes (no copy, no wait for room) and the request completes when
            // its last byte is written, as the receiver makes room whether or not it has
            // posted the receive yet.
            self.send_eager(ctx, dest, tag, buf, Some(id))?;
            return Ok(id);
        }
        let mut h = Header::new(Kind::Rts);
        h.ctx = ctx;
        h.tag = tag;
        h.len = buf.len() as u64;
        h.sreq = id;
        if self.cma && self.channels[dest as usize].link.local_peer_pid().is_some() {
            h.addr = buf.address();
        }
        self.send_packet(dest, h, Payload::None, None, false)?;
        Ok(id)
    }

    /// Writes an eager message, or queues what the link cannot take now. Without a `request`
    /// (a blocking send) the queued message is a copy, so the caller may reuse `buf` once this
    /// returns; with one, the queue borrows `buf` and completes `request` when it is written.
    fn send_eager(
        &mut self,
        ctx: u32,
        dest: u32,
        tag: i32,
        buf: SendBuf,
        request: Option<u64>,
    ) -> Result<(), EngineError> {
        let mut h = Header::new(Kind::Eager);
        h.ctx = ctx;
        h.tag = tag;
        h.len = buf.len() as u64;
        self.send_packet(dest, h, Payload::Borrowed(buf), request, request.is_none())
    }

    /// A blocking standard-mode send: `isend` then `wait`, without a request for a message
    /// that goes eagerly (the common small one), which completes as it is written or copied.
    pub fn send(&mut self, ctx: u32, dest: u32, tag: i32, buf: SendBuf) -> Result<(), EngineError> {
        self.attention()?;
        if buf.len() >= self.eager_limit {
            let id = self.isend(ctx, dest, tag, buf)?;
            return self.wait(id).map(drop).inspect_err(|_| self.abandon(id));
        }
        self.check_rank(dest)?;
        self.migration_backpressure(dest)?;
        self.send_eager(ctx, dest, tag, buf, None)?;
        if self.ckpt.wants_progress() {
            // As `wait` does: a checkpoint's part waits for markers that a rank which only
            // sends would otherwise never read, and a finished image for its report.
            self.progress()?;
        }
        Ok(())
    }

    /// A blocking receive: `irecv` then `wait`, except that an eager message from `source`
    /// that is already whole in the link is read straight into `buf` (`recv_ready`).
    pub fn recv(
        &mut self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
        buf: RecvBuf,
    ) -> Result<Status, EngineError> {
        self.attention()?;
        let buf = match self.recv_unexpected(ctx, source, tag, buf) {
            Ok(status) => return Ok(status),
            Err(buf) => buf,
        };
        let buf = match source {
            None => buf,
            Some(src) => {
                self.check_rank(src)?;
                let mut buf = buf;
                let mut idle = 0;
                loop {
                    match self.recv_ready(ctx, src, tag, buf)? {
                        Ready::Done(status) => return Ok(status),
                        Ready::No(b) => break b,
                        Ready::Empty(b) => {
                            // Wait as `wait` does, reading every other link meanwhile.
                            buf = b;
                            let moved = self.progress_but(Some(src as usize))?;
                            self.after_round(moved, &mut idle)?;
                        }
                        Ready::Header(h, buf) => {
                            // The link's next packet is something else: post the receive first, then
                            // handle the packet as progress would have, so that it may match.
                            let id = self.post_recv(ctx, source, tag, buf)?;
                            let handled = self.on_header(src, h);
                            return handled
                                .and_then(|()| self.wait(id))
                                .inspect_err(|_| self.abandon(id));
                        }
                    }
                }
            }
        };
        let id = self.irecv(ctx, source, tag, buf)?;
        self.wait(id).inspect_err(|_| self.abandon(id))
    }

    /// The short way of [`Engine::recv`] for a message already received: when the first
    /// unexpected message that matches is an eager one that fits, may be delivered (not held
    /// for a checkpoint) and fills no checkpoint record, it is copied into `buf` and its entry
    /// removed, as `irecv` would have delivered it, without a request. Otherwise `buf` comes
    /// back for the general way.
    fn recv_unexpected(
        &mut self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
        mut buf: RecvBuf,
    ) -> Result<Status, RecvBuf> {
        let found = self
            .unexpected
            .iter()
            .position(|u| matches(ctx, source, tag, u.ctx, u.source, u.tag));
        let Some(i) = found else {
            return Err(buf);
        };
        let u = &self.unexpected[i];
        let fits = matches!(&u.held, Held::Eager(d) if d.len() <= buf.len());
        // During a checkpoint's recording or drain `wait` would progress once first: leave
        // those times to it.
        let busy = self.ckpt.local_taken() || self.ckpt.draining();
        if !fits || busy || u.after_marker || u.slot.is_some() {
            return Err(buf);
        }
        let u = self.unexpected.remove(i).expect("index from position");
        let Held::Eager(data) = u.held else {
            unreachable!("checked above")
        };
        buf.bytes_mut()[..data.len()].copy_from_slice(&data);
        let status = Status {
            source: u.source,
            tag: u.tag,
            count: data.len(),
        };
        self.recycle_body(data);
        self.completed_recvs += 1;
        Ok(status)
    }

    /// The short way of [`Engine::recv`] from `src`. It applies only when nothing else could
    /// claim the link's next message (no receive posted earlier, no unexpected message) and no
    /// checkpoint or migration is under way (nothing recorded or held, the link neither
    /// paused nor mid-packet); then it reads the link's next header itself, and when that is
    /// an eager message for this receive that fits `buf`, its body straight into `buf`. It
    /// counts as a progress round, so the control link is still read every `CONTROL_EVERY`.
    /// While the link is empty the caller progresses every other link between two looks
    /// (`progress_but`), so queued packets still go out and other peers' messages are still
    /// read; once something else claims the link (an unexpected message, a checkpoint) the
    /// caller takes the general way.
    fn recv_ready(
        &mut self,
        ctx: u32,
        src: u32,
        tag: Option<i32>,
        mut buf: RecvBuf,
    ) -> Result<Ready, EngineError> {
        self.rounds = self.rounds.wrapping_add(1);
        if self.rounds.is_multiple_of(CONTROL_EVERY) {
            self.poll_control()?;
        }
        if !self.posted.is_empty()
            || !self.unexpected.is_empty()
            || self.ckpt.local_taken()
            || self.ckpt.image_busy()
            || self.ckpt.holds(src)
        {
            return Ok(Ready::No(buf));
        }
        let peer = src as usize;
        let ch = &mut self.channels[peer];
        let Input::Header { bytes, got: 0 } = &mut ch.input else {
            return Ok(Ready::No(buf));
        };
        if ch.closed || ch.paused {
            return Ok(Ready::No(buf));
        }
        let n = match ch.link.read(bytes) {
            Ok(n) => n,
            Err(LinkError::Closed) => {
                ch.closed = true;
                return Ok(Ready::No(buf));
            }
            Err(e) => return Err(Self::link_error(peer, e)),
        };
        if n == 0 {
            return Ok(Ready::Empty(buf));
        }
        if n < HEADER_LEN {
            if let Input::Header { got, .. } = &mut ch.input {
                *got = n;
            }
            ch.link.after_reading();
            return Ok(Ready::No(buf));
        }
        let h =
            Header::decode(bytes).map_err(|source| EngineError::Corrupt { peer: src, source })?;
        let len = h.len as usize;
        if h.kind != Kind::Eager
            || !matches(ctx, Some(src), tag, h.ctx, src, h.tag)
            || len > buf.len()
        {
            ch.link.after_reading();
            return Ok(Ready::Header(h, buf));
        }
        let body = &mut buf.bytes_mut()[..len];
        let got = match ch.link.read(body) {
            Ok(n) => n,
            Err(e) => return Err(Self::link_error(peer, e)),
        };
        ch.link.after_reading();
        let status = Status {
            source: src,
            tag: h.tag,
            count: len,
        };
        if got == len {
            self.completed_recvs += 1;
            return Ok(Ready::Done(status));
        }
        // The body is still arriving: the rest goes through a request like any other.
        let id = self.requests.insert(Request::Recv {
            buf,
            matched: Some(status),
            truncated_from: None,
            slot: None,
        });
        self.channels[peer].input = Input::Body {
            sink: Sink::Recv(id),
            total: len,
            got,
        };
        self.wait(id)
            .inspect_err(|_| self.abandon(id))
            .map(Ready::Done)
    }

    /// Posts a receive from world rank `source` (any when `None`) with `tag` (any when `None`).
    pub fn irecv(
        &mut self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
        buf: RecvBuf,
    ) -> Result<u64, EngineError> {
        self.attention()?;
        self.post_recv(ctx, source, tag, buf)
    }

    /// [`Engine::irecv`] without the look at the attention flag, for a caller that holds a
    /// packet's header it read from a link and has not handled yet: the progress round that
    /// the flag may start would read that link on, taking the packet's body for the next
    /// header.
    fn post_recv(
        &mut self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
        buf: RecvBuf,
    ) -> Result<u64, EngineError> {
        if let Some(s) = source {
            self.check_rank(s)?;
        }
        let id = self.requests.insert(Request::Recv {
            buf,
            matched: None,
            truncated_from: None,
            slot: None,
        });
        let fits = |u: &Unexpected| matches(ctx, source, tag, u.ctx, u.source, u.tag);
        let mut found = self
            .unexpected
            .iter()
            .position(|u| fits(u) && !u.after_marker);
        if found.is_none()
            && let Some(held) = self.unexpected.iter().find(|u| fits(u)).map(|u| u.source)
        {
            self.held_message_needed(held)?;
            found = self.unexpected.iter().position(fits);
        }
        match found {
            Some(i) => {
                let u = self.unexpected.remove(i).expect("index from position");
                self.deliver(id, u)?;
            }
            None => self.posted.push_back(Posted {
                id,
                ctx,
                source,
                tag,
            }),
        }
        Ok(id)
    }

    /// Delivers an unexpected message to receive request `id`.
    fn deliver(&mut self, id: u64, u: Unexpected) -> Result<(), EngineError> {
        if let (Some(slot), Some(Request::Recv { slot: s, .. })) =
            (u.slot, self.requests.get_mut(id))
        {
            *s = Some(slot);
        }
        match u.held {
            Held::Eager(data) => {
                self.match_recv(id, u.source, u.tag, data.len() as u64);
                self.fill_and_complete(id, &data);
                self.recycle_body(data);
                Ok(())
            }
            Held::Rts { sreq, len, addr } => self.accept_rts(u.source, id, u.tag, sreq, len, addr),
        }
    }

    /// Whether request `id` has completed (progressing once if not).
    pub fn test(&mut self, id: u64) -> Result<bool, EngineError> {
        self.attention()?;
        if !self.is_done(id)? {
            self.progress()?;
        }
        self.is_done(id)
    }

    fn is_done(&self, id: u64) -> Result<bool, EngineError> {
        match self.requests.get(id) {
            Some(Request::Done { .. }) => Ok(true),
            Some(_) => Ok(false),
            None => Err(EngineError::InactiveRequest(id)),
        }
    }

    /// Takes the result of a completed request, freeing it.
    pub fn take(&mut self, id: u64) -> Result<Status, EngineError> {
        match self.requests.remove(id) {
            Some(Request::Done {
                status,
                error: None,
            }) => Ok(status),
            Some(Request::Done { error: Some(e), .. }) => Err(e),
            Some(other) => panic!("take() of an incomplete request {other:?}; call is_done first"),
            None => Err(EngineError::InactiveRequest(id)),
        }
    }

    /// Blocks until request `id` completes and returns its status.
    pub fn wait(&mut self, id: u64) -> Result<Status, EngineError> {
        self.attention()?;
        if self.ckpt.wants_progress() {
            // A checkpoint's part waits for markers, and a finished image for its report:
            // look even when this request is already complete (a rank that only sends would
            // otherwise never look).
            self.progress()?;
        }
        let mut idle = 0;
        while !self.is_done(id)? {
            self.progress_or_idle(&mut idle)?;
        }
        self.take(id)
    }

    /// Blocks until every request completes; returns the statuses, or the first error after all
    /// have completed.
    pub fn wait_all(&mut self, ids: &[u64]) -> Result<Vec<Status>, EngineError> {
        self.attention()?;
        let mut idle = 0;
        let mut pending = 0;
        while pending < ids.len() {
            if self.is_done(ids[pending])? {
                pending += 1;
            } else {
                self.progress_or_idle(&mut idle)?;
            }
        }
        // One pass and one allocation: every request is taken, the first error is kept.
        let mut statuses = Vec::with_capacity(ids.len());
        let mut first_error = None;
        for &id in ids {
            match self.take(id) {
                Ok(status) => statuses.push(status),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(statuses), Err)
    }

    /// Blocks until one of `ids` completes; returns its index and status.
    pub fn wait_any(&mut self, ids: &[u64]) -> Result<(usize, Status), EngineError> {
        self.attention()?;
        let mut idle = 0;
        loop {
            for (i, &id) in ids.iter().enumerate() {
                if self.is_done(id)? {
                    return Ok((i, self.take(id)?));
                }
            }
            self.progress_or_idle(&mut idle)?;
        }
    }

    /// The status of a matching message that has arrived, without receiving it.
    pub fn iprobe(
        &mut self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Option<Status>, EngineError> {
        self.progress()?;
        Ok(self
            .unexpected
            .iter()
            .find(|u| matches(ctx, source, tag, u.ctx, u.source, u.tag))
            .map(|u| Status {
                source: u.source,
                tag: u.tag,
                count: u.len(),
            }))
    }

    /// Blocks until a matching message has arrived and returns its status.
    pub fn probe(
        &mut self,
        ctx: u32,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Status, EngineError> {
        let mut idle = 0;
        loop {
            if let Some(s) = self.iprobe(ctx, source, tag)? {
                return Ok(s);
            }
            self.progress_or_idle(&mut idle)?;
        }
    }

    /// Writes out everything queued (used before leaving the job).
    pub fn flush(&mut self) -> Result<(), EngineError> {
        let mut idle = 0;
        while self.channels.iter().any(|c| !c.out.is_empty()) {
            self.progress_or_idle(&mut idle)?;
        }
        Ok(())
    }

    /// Forgets request `id` so that nothing touches its buffer again: used when a caller must
    /// return while the request is unfinished (an error elsewhere). Queued bytes of a borrowed
    /// send buffer are copied first, so the stream to the peer stays intact.
    pub fn abandon(&mut self, id: u64) {
        self.posted.retain(|p| p.id != id);
        for ch in &mut self.channels {
            for item in ch.out.iter_mut().filter(|o| o.on_complete == Some(id)) {
                if let Payload::Borrowed(b) = &item.payload {
                    item.payload = Payload::Owned(b.bytes().to_vec());
                }
                item.on_complete = None;
            }
        }
        self.requests.remove(id);
    }

    // --- begin: hook for the C ABI (MPI_Cancel of a receive) ---
    /// Cancels receive `id` if it is still posted and unmatched: it is removed from the posted
    /// queue and forgotten. Returns whether it was cancelled (false once a message matched it).
    pub fn cancel_recv(&mut self, id: u64) -> bool {
        let Some(i) = self.posted.iter().position(|p| p.id == id) else {
            return false;
        };
        self.posted.remove(i);
        self.requests.remove(id);
        true
    }
    // --- end: hook for the C ABI ---

    /// Live requests, for leak checks in tests and at finalize.
    pub fn live_requests(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn progress_or_idle(&mut self, idle: &mut u32) -> Result<(), EngineError> {
        let moved = self.progress()?;
        self.after_round(moved, idle)
    }

    /// Ends a progress round of a waiting call: when nothing `moved`, the `idle`-th fruitless
    /// round in a row spins, yields or sleeps as `patience` says.
    fn after_round(&mut self, moved: bool, idle: &mut u32) -> Result<(), EngineError> {
        if moved {
            *idle = 0;
            return Ok(());
        }
        *idle += 1;
        if *idle < self.patience.polls {
            std::hint::spin_loop();
            return Ok(());
        }
        if *idle == self.patience.polls {
            self.idle_since = Instant::now();
        }
        if !idle.is_multiple_of(CLOCK_EVERY) || self.idle_since.elapsed() < self.patience.yield_for
        {
            std::thread::yield_now();
            return Ok(());
        }
        self.poll_control()?;
        if self.sleep() {
            self.poll_control()?;
        }
        Ok(())
    }

    /// Sleeps until a peer wakes us or a short timeout passes. Returns whether the coordinator
    /// wrote meanwhile: a rank with TCP links waits for its control link in the same poll, so
    /// that a REFRESH or a migration's message is handled at once, not after the timeout (100
    /// ms for a rank without a doorbell, such as a migrated one).
    fn sleep(&mut self) -> bool {
        use rustix::event::{PollFd, PollFlags, poll};
        // A link frozen at its marker writes nothing more and a paused one reads nothing (a
        // checkpoint's or a migration's drain): waiting for them would return at once and
        // turn the sleep into a spin that takes the CPU from the ranks that compute. (With no
        // socket left to wait for, the poll still sleeps its timeout, which keeps the control
        // link's latency.)
        let tcp = self
            .channels
            .iter()
            .any(|c| !c.closed && c.link.pollable().is_some());
        let sockets: Vec<_> = self
            .channels
            .iter()
            .filter(|c| !c.closed)
            .filter_map(|c| {
                let mut f = PollFlags::empty();
                if !c.paused {
                    f |= PollFlags::IN;
                }
                if c.wants_to_write() {
                    f |= PollFlags::OUT;
                }
                c.link
                    .pollable()
                    .filter(|_| !f.is_empty())
                    .map(|fd| (fd, f))
            })
            .collect();
        if tcp {
            let mut fds: Vec<PollFd<'_>> =
                sockets.iter().map(|(fd, f)| PollFd::new(fd, *f)).collect();
            if let Some(c) = &self.control {
                fds.push(PollFd::from_borrowed_fd(c.as_fd(), PollFlags::IN));
            }
            let ms = if self.idle.bell.is_some() { 1 } else { 100 };
            let ts = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: ms * 1_000_000,
            };
            let _ = poll(&mut fds, Some(&ts));
            return self.control.is_some() && fds.last().is_some_and(|f| !f.revents().is_empty());
        }
        if let Some(bell) = self.idle.bell.clone() {
            let channels = &self.channels;
            // `ready` also counts room for queued output: without that, a reader that drained
            // the ring just before `sleeping` was set left the writer asleep for the whole
            // timeout with its output still queued.
            bell.sleep_unless(Duration::from_millis(100), || {
                channels.iter().any(Channel::ready)
            });
        } else {
            std::thread::yield_now();
        }
        false
    }

    /// One pass over every link: write what is queued, read what arrived. Returns whether
    /// anything moved.
    pub fn progress(&mut self) -> Result<bool, EngineError> {
        self.progress_but(None)
    }

    /// A progress round that does not read `unread`'s link: a blocking receive reads that one
    /// itself (`recv_ready`).
    fn progress_but(&mut self, unread: Option<usize>) -> Result<bool, EngineError> {
        self.attention()?;
        self.rounds = self.rounds.wrapping_add(1);
        if self.rounds.is_multiple_of(CONTROL_EVERY) {
            self.poll_control()?;
        }
        let mut moved = false;
        for peer in 0..self.channels.len() {
            moved |= self.flush_channel(peer)?;
            if unread != Some(peer) {
                moved |= self.read_channel(peer)?;
            }
        }
        if self.ckpt.image_busy() {
            moved |= self.image_step()?;
        }
        Ok(moved)
    }

    fn link_error(peer: usize, e: LinkError) -> EngineError {
        match e {
            LinkError::Closed => EngineError::PeerGone(peer as u32),
            e => EngineError::Link {
                rank: peer as u32,
                source: e,
            },
        }
    }

    /// Queues (or writes at once) one packet to `peer`. With `copy_if_queued`, a borrowed
    /// payload that cannot go out whole right now is copied so the caller may reuse its buffer.
    fn send_packet(
        &mut self,
        peer: u32,
        header: Header,
        payload: Payload,
        on_complete: Option<u64>,
        copy_if_queued: bool,
    ) -> Result<(), EngineError> {
        let peer = peer as usize;
        let header = header.encode();
        if self.channels[peer].frozen.is_some() {
            // An image checkpoint drains: nothing after this rank's marker goes out before
            // the capture (it is in the image as queued, and sent after it).
            let payload = match payload {
                Payload::Borrowed(b) if copy_if_queued => Payload::Owned(b.bytes().to_vec()),
                p => p,
            };
            self.channels[peer].out.push_back(Outgoing {
                header,
                payload,
                done: 0,
                on_complete,
            });
            return Ok(());
        }
        if !self.channels[peer].out.is_empty() {
            // Earlier packets wait for room: move them on first. A rank that only sends (a
            // broadcast root, say) may not enter the progress loop for a long time, and its
            // peer would otherwise wait for bytes that sit in this queue.
            self.flush_channel(peer)?;
            if copy_if_queued && !self.channels[peer].out.is_empty() {
                self.wait_for_room(peer)?;
            }
        }
        let ch = &mut self.channels[peer];
        let mut done = 0;
        if ch.out.is_empty() {
            let body = payload.bytes();
            done = ch
                .link
                .write(&[&header, body])
                .map_err(|e| Self::link_error(peer, e))?;
            if done == HEADER_LEN + body.len() {
                if let Some(id) = on_complete {
                    self.complete_send(id);
                }
                return Ok(());
            }
        }
        let payload = match payload {
            Payload::Borrowed(b) if copy_if_queued => Payload::Owned(b.bytes().to_vec()),
            p => p,
        };
        self.channels[peer].out.push_back(Outgoing {
            header,
            payload,
            done,
            on_complete,
        });
        Ok(())
    }

    /// Gives the peer a moment to make room before an eager message is copied into the queue:
    /// a sender that runs ahead of its receiver then keeps pace with it instead of copying
    /// every message. Bounded, so that two ranks that both send before they receive (relying
    /// on eager buffering) still get their copies and go on.
    fn wait_for_room(&mut self, peer: usize) -> Result<(), EngineError> {
        let start = Instant::now();
        while !self.channels[peer].out.is_empty() && start.elapsed() < ROOM_WAIT {
            if !self.progress()? {
                std::hint::spin_loop();
            }
        }
        Ok(())
    }

    fn flush_channel(&mut self, peer: usize) -> Result<bool, EngineError> {
        let mut moved = false;
        loop {
            let ch = &mut self.channels[peer];
            if ch.frozen == Some(0) {
                break;
            }
            let Some(item) = ch.out.front_mut() else {
                break;
            };
            let body = item.payload.bytes();
            let total = HEADER_LEN + body.len();
            let n = if item.done < HEADER_LEN {
                ch.link.write(&[&item.header[item.done..], body])
            } else {
                ch.link.write(&[&body[item.done - HEADER_LEN..]])
            }
            .map_err(|e| Self::link_error(peer, e))?;
            item.done += n;
            moved |= n > 0;
            if item.done < total {
                break;
            }
            let item = ch.out.pop_front().expect("front exists");
            if let Some(left) = &mut ch.frozen {
                *left -= 1;
            }
            if let Some(id) = item.on_complete {
                self.complete_send(id);
            }
        }
        Ok(moved)
    }

    fn complete_send(&mut self, id: u64) {
        if let Some(r) = self.requests.get_mut(id)
            && let Request::Send { status, .. } = r
        {
            let status = *status;
            *r = Request::Done {
                status,
                error: None,
            };
        }
    }

    fn read_channel(&mut self, peer: usize) -> Result<bool, EngineError> {
        let moved = self.read_channel_burst(peer)?;
        if moved {
            self.channels[peer].link.after_reading();
        }
        Ok(moved)
    }

    /// Reads and handles what has arrived from `peer`, up to the first packet that completes a
    /// receive. Stopping there leaves the next messages in the link until the caller has seen
    /// its completion and posted its next receive: a rank that runs behind a sender (the
    /// non-root ranks of a stream of broadcasts) then receives each message straight into the
    /// posted buffer instead of copying a backlog into unexpected-message buffers.
    fn read_channel_burst(&mut self, peer: usize) -> Result<bool, EngineError> {
        let mut moved = false;
        let completed_before = self.completed_recvs;
        loop {
            if self.completed_recvs != completed_before {
                return Ok(moved);
            }
            let ch = &mut self.channels[peer];
            if ch.closed || ch.paused {
                return Ok(moved);
            }
            let read = match &mut ch.input {
                Input::Header { bytes, got } => {
                    let n = ch.link.read(&mut bytes[*got..]);
                    if let Ok(n) = n {
                        *got += n;
                    }
                    n
                }
                Input::Body { sink, total, got } => {
                    let want = *total - *got;
                    let n = match sink {
                        Sink::Unexpected { data, .. } => ch.link.read(&mut data[*got..]),
                        Sink::Recv(id) => match self.requests.get_mut(*id) {
                            Some(Request::Recv { buf, .. }) if *got < buf.len() => {
                                let end = (*total).min(buf.len());
                                ch.link.read(&mut buf.bytes_mut()[*got..end])
                            }
                            _ => {
                                let mut scratch = [0u8; 4096];
                                let k = want.min(scratch.len());
                                ch.link.read(&mut scratch[..k])
                            }
                        },
                    };
                    if let Ok(n) = n {
                        *got += n;
                    }
                    n
                }
            };
            let n = match read {
                Ok(n) => n,
                Err(LinkError::Closed) => {
                    ch.closed = true;
                    return Ok(moved);
                }
                Err(e) => return Err(Self::link_error(peer, e)),
            };
            if n == 0 {
                return Ok(moved);
            }
            moved = true;
            match &ch.input {
                Input::Header { bytes, got } if *got == HEADER_LEN => {
                    let header = Header::decode(bytes).map_err(|source| EngineError::Corrupt {
                        peer: peer as u32,
                        source,
                    })?;
                    ch.input = Input::fresh();
                    self.on_header(peer as u32, header)?;
                }
                Input::Body { total, got, .. } if *got == *total => {
                    let Input::Body { sink, .. } = std::mem::replace(&mut ch.input, Input::fresh())
                    else {
                        unreachable!("matched Body above")
                    };
                    self.on_body_done(sink);
                }
                _ => {}
            }
        }
    }

    /// A zeroed buffer of `len` bytes for an unexpected message, from the pool when it has one:
    /// a fresh allocation per message costs page faults that dominate a stream of them.
    fn body_buffer(&mut self, len: usize) -> Vec<u8> {
        let mut v = self.body_pool.pop().unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }

    /// Returns an unexpected message's buffer to the pool, which keeps a few of eager size.
    fn recycle_body(&mut self, v: Vec<u8>) {
        if self.body_pool.len() < BODY_POOL && v.capacity() <= self.eager_limit {
            self.body_pool.push(v);
        }
    }

    fn take_posted(&mut self, ctx: u32, source: u32, tag: i32) -> Option<u64> {
        let i = self
            .posted
            .iter()
            .position(|p| matches(p.ctx, p.source, p.tag, ctx, source, tag))?;
        self.posted.remove(i).map(|p| p.id)
    }

    /// A posted receive for a new message from `peer`, unless the message must be held.
    fn match_arrival(&mut self, peer: u32, h: &Header) -> Result<Option<u64>, EngineError> {
        if self.ckpt.holds(peer) {
            let wanted = self
                .posted
                .iter()
                .any(|p| matches(p.ctx, p.source, p.tag, h.ctx, peer, h.tag));
            if !wanted {
                return Ok(None);
            }
            self.held_message_needed(peer)?;
        }
        Ok(self.take_posted(h.ctx, peer, h.tag))
    }

    fn on_header(&mut self, peer: u32, h: Header) -> Result<(), EngineError> {
        let unknown = |id| EngineError::UnknownRequest { peer, id };
        match h.kind {
            Kind::Eager | Kind::Rts => {
                let slot = self.record_arrival(peer, h.ctx, h.tag);
                self.on_message(peer, h, slot)?;
            }
            Kind::Cts => {
                let Some(Request::Send { buf, .. }) = self.requests.get(h.sreq) else {
                    return Err(unknown(h.sreq));
                };
                let accepted = (h.len as usize).min(buf.len());
                let prefix = buf.prefix(accepted);
                let mut d = Header::new(Kind::Data);
                d.rreq = h.rreq;
                d.len = accepted as u64;
                self.send_packet(peer, d, Payload::Borrowed(prefix), Some(h.sreq), false)?;
            }
            Kind::Data => {
                if !matches!(self.requests.get(h.rreq), Some(Request::Recv { .. })) {
                    return Err(unknown(h.rreq));
                }
                self.start_body(peer, Sink::Recv(h.rreq), h.len as usize);
            }
            Kind::Fin => {
                if !matches!(self.requests.get(h.sreq), Some(Request::Send { .. })) {
                    return Err(unknown(h.sreq));
                }
                self.complete_send(h.sreq);
            }
            Kind::Marker => self.on_marker(peer, h.sreq)?,
        }
        Ok(())
    }

    /// A new message (EAGER or RTS) from `peer`; `slot` when a checkpoint records it.
    fn on_message(&mut self, peer: u32, h: Header, slot: Option<usize>) -> Result<(), EngineError> {
        let after_marker = self.ckpt.holds(peer);
        let posted = self.match_arrival(peer, &h)?;
        if let (Some(id), Some(slot)) = (posted, slot)
            && let Some(Request::Recv { slot: s, .. }) = self.requests.get_mut(id)
        {
            *s = Some(slot);
        }
        let after_marker = after_marker && self.ckpt.holds(peer);
        if h.kind == Kind::Eager {
            let len = usize::try_from(h.len)
                .map_err(|_| EngineError::UnknownRequest { peer, id: h.len })?;
            match posted {
                Some(id) => {
                    self.match_recv(id, peer, h.tag, h.len);
                    self.start_body(peer, Sink::Recv(id), len);
                }
                None => {
                    let sink = Sink::Unexpected {
                        header: h,
                        source: peer,
                        data: self.body_buffer(len),
                        after_marker,
                        slot,
                    };
                    self.start_body(peer, sink, len);
                }
            }
            return Ok(());
        }
        match posted {
            Some(id) => self.accept_rts(peer, id, h.tag, h.sreq, h.len, h.addr),
            None => {
                self.unexpected.push_back(Unexpected {
                    ctx: h.ctx,
                    source: peer,
                    tag: h.tag,
                    held: Held::Rts {
                        sreq: h.sreq,
                        len: h.len,
                        addr: h.addr,
                    },
                    after_marker,
                    slot,
                });
                Ok(())
            }
        }
    }

    /// Begins reading a body of `len` bytes into `sink`; an empty body completes at once.
    fn start_body(&mut self, peer: u32, sink: Sink, len: usize) {
        if len == 0 {
            self.on_body_done(sink);
        } else {
            self.channels[peer as usize].input = Input::Body {
                sink,
                total: len,
                got: 0,
            };
        }
    }

    fn on_body_done(&mut self, sink: Sink) {
        match sink {
            Sink::Recv(id) => self.finish_recv(id),
            Sink::Unexpected {
                header,
                source,
                data,
                after_marker,
                slot,
            } => {
                if let Some(slot) = slot {
                    self.ckpt_fill(slot, &data);
                }
                let after_marker = after_marker && self.ckpt.holds(source);
                let posted = if after_marker {
                    None
                } else {
                    self.take_posted(header.ctx, source, header.tag)
                };
                match posted {
                    Some(id) => {
                        self.match_recv(id, source, header.tag, data.len() as u64);
                        self.fill_and_complete(id, &data);
                        self.recycle_body(data);
                    }
                    None => self.unexpected.push_back(Unexpected {
                        ctx: header.ctx,
                        source,
                        tag: header.tag,
                        held: Held::Eager(data),
                        after_marker,
                        slot: None,
                    }),
                }
            }
        }
    }

    fn match_recv(&mut self, id: u64, source: u32, tag: i32, len: u64) {
        if let Some(Request::Recv {
            buf,
            matched,
            truncated_from,
            ..
        }) = self.requests.get_mut(id)
        {
            let count = (len as usize).min(buf.len());
            *matched = Some(Status { source, tag, count });
            if len as usize > buf.len() {
                *truncated_from = Some(len);
            }
        }
    }

    fn fill_and_complete(&mut self, id: u64, data: &[u8]) {
        if let Some(Request::Recv { buf, .. }) = self.requests.get_mut(id) {
            let n = data.len().min(buf.len());
            buf.bytes_mut()[..n].copy_from_slice(&data[..n]);
        }
        self.finish_recv(id);
    }

    fn finish_recv(&mut self, id: u64) {
        let Some(r) = self.requests.get_mut(id) else {
            return;
        };
        if let Request::Recv {
            buf,
            matched,
            truncated_from,
            slot,
        } = r
        {
            let status = matched.unwrap_or(Status {
                source: 0,
                tag: 0,
                count: 0,
            });
            let error = truncated_from.map(|message| EngineError::Truncated {
                message,
                buffer: buf.len(),
            });
            let recorded = slot.map(|s| (s, buf.bytes_mut()[..status.count].to_vec()));
            *r = Request::Done { status, error };
            self.completed_recvs += 1;
            if let Some((slot, data)) = recorded {
                self.ckpt_fill(slot, &data);
            }
        }
    }

    /// Fills a checkpoint record slot; an error writing the part is reported to the coordinator
    /// by the checkpoint code and must not fail the message that completed.
    fn ckpt_fill(&mut self, slot: usize, data: &[u8]) {
        if let Err(e) = self.fill_slot(slot, data) {
            tracing::warn!("finishing the checkpoint part failed: {e}");
        }
    }

    fn accept_rts(
        &mut self,
        peer: u32,
        id: u64,
        tag: i32,
        sreq: u64,
        len: u64,
        addr: u64,
    ) -> Result<(), EngineError> {
        self.match_recv(id, peer, tag, len);
        let pid = self.channels[peer as usize].link.local_peer_pid();
        if let (true, Some(pid), Some(Request::Recv { buf, .. })) =
            (addr != 0 && self.cma, pid, self.requests.get_mut(id))
        {
            let n = (len as usize).min(buf.len());
            match cma::read_from(pid, addr, &mut buf.bytes_mut()[..n]) {
                Ok(()) => {
                    self.finish_recv(id);
                    let mut fin = Header::new(Kind::Fin);
                    fin.sreq = sreq;
                    return self.send_packet(peer, fin, Payload::None, None, false);
                }
                Err(e) => {
                    tracing::warn!(
                        "cross-memory attach refused ({e}); streaming large messages instead"
                    );
                    self.cma = false;
                }
            }
        }
        let accepted = match self.requests.get(id) {
            Some(Request::Recv { buf, .. }) => (len as usize).min(buf.len()),
            _ => 0,
        };
        let mut cts = Header::new(Kind::Cts);
        cts.sreq = sreq;
        cts.rreq = id;
        cts.len = accepted as u64;
        self.send_packet(peer, cts, Payload::None, None, false)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use transport::{Link, LoopbackLink};

    use super::*;
    use crate::buffer::scope;

    /// An engine of one rank, whose only link is to itself, with an eager limit of 64 bytes.
    fn alone() -> Engine {
        let channels = vec![Channel::new(Link::Loopback(LoopbackLink::default()))];
        Engine::new(0, channels, Idle { bell: None }, 64, None, 1)
    }

    fn send(e: &mut Engine, tag: i32, data: &[u8]) {
        crate::buffer::send(e, 7, 0, tag, data).unwrap();
    }

    fn recv(e: &mut Engine, tag: Option<i32>, buf: &mut [u8]) -> Result<Status, EngineError> {
        crate::buffer::recv(e, 7, Some(0), tag, buf)
    }

    #[test]
    fn a_receive_takes_its_message_past_others_in_the_link_and_they_keep_their_order() {
        let mut e = alone();
        send(&mut e, 1, b"first");
        send(&mut e, 2, b"second");
        send(&mut e, 1, b"third");
        let mut buf = [0u8; 16];
        let s = recv(&mut e, Some(2), &mut buf).unwrap();
        assert_eq!((s.tag, &buf[..s.count]), (2, &b"second"[..]));
        let s = recv(&mut e, Some(1), &mut buf).unwrap();
        assert_eq!(&buf[..s.count], b"first");
        let s = recv(&mut e, None, &mut buf).unwrap();
        assert_eq!(&buf[..s.count], b"third");
        send(&mut e, 3, b"straight");
        let s = recv(&mut e, Some(3), &mut buf).unwrap();
        assert_eq!(&buf[..s.count], b"straight");
        assert_eq!(e.live_requests(), 0);
    }

    /// Ranks 0 and 1 in one process, joined by 4 KiB rings (the smallest), eager limit 64 KiB.
    fn pair(dir: &std::path::Path) -> [RefCell<Engine>; 2] {
        use transport::{Ring, ShmLink};
        let ring = |from: u32, to: u32| dir.join(format!("ring-{from}-to-{to}"));
        let bell = |rank: u32| dir.join(format!("bell-{rank}"));
        for rank in 0..2 {
            Ring::create(&ring(1 - rank, rank), 4096).unwrap();
            Doorbell::create(&bell(rank)).unwrap();
        }
        [0, 1].map(|me: u32| {
            let shm = Link::Shm(ShmLink::new(
                Ring::open(&ring(me, 1 - me)).unwrap(),
                Ring::open(&ring(1 - me, me)).unwrap(),
                Doorbell::open(&bell(1 - me)).unwrap(),
                std::process::id(),
            ));
            let mut channels = vec![Channel::new(Link::Loopback(LoopbackLink::default()))];
            channels.insert(1 - me as usize, Channel::new(shm));
            RefCell::new(Engine::new(
                me,
                channels,
                Idle { bell: None },
                64 << 10,
                None,
                2,
            ))
        })
    }

    /// An isend that finds the ring without room for all of it neither copies the message nor
    /// waits: the queue borrows the caller's bytes and the request completes once the receiver
    /// has made room and the last byte is in the ring. The messages arrive whole and in order.
    #[test]
    fn an_isend_that_does_not_fit_the_ring_is_queued_uncopied_and_completes_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let [e0, e1] = pair(dir.path());
        let messages: [Vec<u8>; 3] = [vec![1; 3000], vec![2; 3000], vec![3; 100]];
        let mut bufs = [[0u8; 3000]; 3];
        scope(&e0, |s0| {
            scope(&e1, |s1| {
                let sends: Vec<u64> = messages
                    .iter()
                    .map(|m| s0.isend(7, 1, 5, m).unwrap())
                    .collect();
                {
                    let e = e0.borrow();
                    assert!(e.is_done(sends[0]).unwrap(), "the first fits the ring");
                    assert!(
                        !e.is_done(sends[1]).unwrap(),
                        "the second does not fit whole"
                    );
                    assert!(!e.is_done(sends[2]).unwrap(), "the third waits behind it");
                    let queued = &e.channels[1].out;
                    assert_eq!(queued.len(), 2);
                    assert!(
                        queued
                            .iter()
                            .all(|o| matches!(o.payload, Payload::Borrowed(_))),
                        "a queued isend is the caller's buffer, not a copy"
                    );
                }
                let recvs: Vec<u64> = bufs
                    .iter_mut()
                    .map(|b| s1.irecv(7, Some(0), Some(5), b).unwrap())
                    .collect();
                let done = |e: &RefCell<Engine>, ids: &[u64]| {
                    ids.iter().all(|&id| e.borrow().is_done(id).unwrap())
                };
                for _ in 0..1000 {
                    if done(&e0, &sends) && done(&e1, &recvs) {
                        break;
                    }
                    e1.borrow_mut().progress().unwrap();
                    e0.borrow_mut().progress().unwrap();
                }
                assert!(done(&e0, &sends) && done(&e1, &recvs), "all delivered");
                s0.wait_all(&sends).unwrap();
                s1.wait_all(&recvs).unwrap()
            })
        });
        for (i, (got, sent)) in bufs.iter().zip(&messages).enumerate() {
            assert_eq!(&got[..sent.len()], &sent[..], "message {i}");
        }
        assert_eq!(e0.borrow().live_requests() + e1.borrow().live_requests(), 0);
    }

    /// A message of exactly the eager limit takes the rendezvous: its send is not complete
    /// before a receive has matched it. One byte less goes eagerly and completes at once.
    #[test]
    fn a_message_of_exactly_the_eager_limit_takes_the_rendezvous() {
        let e = RefCell::new(alone());
        let short = [4u8; 63];
        let limit = [8u8; 64];
        let mut got = [[0u8; 64]; 2];
        scope(&e, |s| {
            let eager = s.isend(7, 0, 1, &short).unwrap();
            let rendezvous = s.isend(7, 0, 2, &limit).unwrap();
            e.borrow_mut().progress().unwrap();
            assert!(
                e.borrow().is_done(eager).unwrap(),
                "eager: written, so complete"
            );
            assert!(
                !e.borrow().is_done(rendezvous).unwrap(),
                "waits for its receive"
            );
            let [a, b] = &mut got;
            let r2 = s.irecv(7, Some(0), Some(2), a).unwrap();
            let r1 = s.irecv(7, Some(0), Some(1), b).unwrap();
            s.wait_all(&[rendezvous, r2, r1, eager]).unwrap()
        });
        assert_eq!(got[0], limit);
        assert_eq!(&got[1][..63], &short[..]);
        assert_eq!(e.borrow().live_requests(), 0);
    }

    /// `r` is the truncation of a 16-byte message into an 8-byte buffer.
    fn assert_truncated(r: &Result<Status, EngineError>) {
        assert!(
            matches!(
                r,
                Err(EngineError::Truncated {
                    message: 16,
                    buffer: 8
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn a_receive_too_small_for_the_message_reports_truncation() {
        let mut e = alone();
        send(&mut e, 1, &[9u8; 16]);
        let mut buf = [0u8; 8];
        let r = recv(&mut e, Some(1), &mut buf);
        assert_truncated(&r);
        assert_eq!(buf, [9u8; 8]);
        send(&mut e, 1, b"next");
        let s = recv(&mut e, Some(1), &mut buf).unwrap();
        assert_eq!(&buf[..s.count], b"next");
        // The same from the unexpected queue: the long message waits there while the short
        // one behind it is received.
        send(&mut e, 1, &[5u8; 16]);
        send(&mut e, 2, b"short");
        let s = recv(&mut e, Some(2), &mut buf).unwrap();
        assert_eq!(&buf[..s.count], b"short");
        let r = recv(&mut e, Some(1), &mut buf);
        assert_truncated(&r);
        assert_eq!(buf, [5u8; 8]);
        assert_eq!(e.live_requests(), 0);
    }
}
