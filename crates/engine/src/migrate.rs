//! Process migration, the rank's side (ChaRM4MPI §2.2's quasi-asynchronous protocol).
//!
//! **The migrating rank** (MIGRATE_OUT): queues a MARKER on every link and freezes the links
//! behind it (the image checkpointer's drain, `ckpt.rs`), reads every link up to the peer's
//! marker, and once every marker is in and its own are written captures itself into
//! `<shm dir>/migrate-<seq>/` (forked writer, waited for). It reports MIGRATE_CAPTURED and then
//! waits, computing nothing, for the coordinator's verdict: MIGRATE_ARRIVED (the copy computes
//! on the target: exit) or MIGRATE_FAILED (stay: thaw the links and compute on here).
//!
//! **The restored copy** returns from the capture with the target's environment: it listens
//! on TCP, registers through the target's daemon, receives REFRESH and accepts one connection
//! from every peer, then puts those links under its channels (its frozen packets go out on
//! them) and sends MIGRATE_ARRIVED.
//!
//! **Every other rank** (MIGRATE_PEER): queues a MARKER on its link to the migrating rank and
//! freezes that link only: later packets for it are held in memory (eager ones copied; a
//! sender whose held bytes pass [`HOLD_LIMIT`] waits in progress: back-pressure, nothing is
//! dropped); it reads the link up to the migrating rank's marker and computes on. When REFRESH
//! names the rank's new address (and the marker is in), it connects, replaces the link and the
//! held packets go out in order. A REFRESH with the old address (the migration failed) thaws
//! the old link instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use transport::{Link, LoopbackLink, TcpLink};
use wire::stream::{read_message, write_message};
use wire::{MIGRATION_MARK, Message, MigrateArrived, MigrateCaptured, MigrateFailed, Register};

use crate::EngineError;
use crate::bootstrap::{endpoint, handed_over, handshake, place_control};
use crate::channel::{Channel, Input};
use crate::ckpt::{ImageCapture, ImageRequest, Phase};
use crate::engine::Engine;

/// Bytes held for a migrating peer before a sender to it waits (`MPICR_MIGRATE_HOLD`).
pub(crate) const HOLD_LIMIT: usize = 64 << 20;

/// How long a restored rank waits for its peers' connections.
const ACCEPT_WAIT: Duration = Duration::from_secs(60);

/// A peer that migrates, as this rank sees it.
#[derive(Debug, Clone)]
pub(crate) struct PeerMove {
    pub seq: u64,
    /// Its marker was read: nothing more comes on the old link.
    pub marker_in: bool,
    /// The address REFRESH gave it (the old one if the migration failed).
    pub addr: Option<String>,
    /// Its data address when the migration began.
    pub old_addr: String,
}

#[derive(Debug, Default)]
pub(crate) struct MigState {
    /// The job's name (the data-plane handshake).
    pub job: String,
    /// This rank migrates (sequence number of the migration).
    pub outgoing: Option<u64>,
    /// Peers that migrate: (rank, state).
    pub peers: Vec<(u32, PeerMove)>,
    /// The data address of every rank as of the last REFRESH.
    pub addrs: Vec<String>,
    /// Migrations up to this sequence number are over here: their late markers are ignored.
    pub done_seq: u64,
}

/// The marker epoch of migration `seq` of `rank`: the mark bit, the migrating rank, the
/// sequence number (so that a marker that overtakes the coordinator's message still says who
/// migrates).
fn mark(rank: u32, seq: u64) -> u64 {
    MIGRATION_MARK | (u64::from(rank & 0x7fff_ffff) << 32) | (seq & 0xffff_ffff)
}

fn hold_limit() -> usize {
    std::env::var("MPICR_MIGRATE_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(HOLD_LIMIT)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    why
}

impl Engine {
    /// Control messages of a migration (MIGRATE_OUT, MIGRATE_PEER, REFRESH, and the verdict
    /// for a captured rank).
    pub(crate) fn on_migration_control(&mut self, message: Message) -> Result<(), EngineError> {
        match message {
            Message::MigrateOut(out) => self.migrate_out(out.seq),
            Message::MigratePeer(p) => self.migrate_peer(p.rank, p.seq),
            Message::Refresh(r) => {
                self.mig.addrs = r.table.iter().map(|e| e.data_addr.clone()).collect();
                let moving: Vec<u32> = self.mig.peers.iter().map(|(r, _)| *r).collect();
                for rank in moving {
                    if let Some(entry) = r.table.get(rank as usize) {
                        if let Some((_, p)) = self.mig.peers.iter_mut().find(|(r, _)| *r == rank) {
                            p.addr = Some(entry.data_addr.clone());
                        }
                        self.try_relink(rank)?;
                    }
                }
                Ok(())
            }
            other => {
                tracing::warn!("unexpected control message {:?} ignored", other.command());
                Ok(())
            }
        }
    }

    /// MIGRATE_OUT: this rank drains its links for a capture.
    fn migrate_out(&mut self, seq: u64) -> Result<(), EngineError> {
        let seq = seq & 0xffff_ffff;
        if self.mig.outgoing == Some(seq) || seq <= self.mig.done_seq {
            // A peer's marker started it already (or it is over).
            return Ok(());
        }
        let rank = self.rank();
        let refuse = |why: String| {
            Message::MigrateFailed(MigrateFailed {
                rank,
                seq,
                reason: why,
            })
        };
        let why = if self.ckpt.image.is_none() {
            Some(format!("rank {rank} does not use the image checkpointer"))
        } else if !matches!(self.ckpt.phase, Phase::Idle) || self.ckpt.writing.is_some() {
            Some(format!("rank {rank} is taking part in a checkpoint"))
        } else if self.ckpt.finalizing || self.ckpt.disabled > 0 {
            Some(format!(
                "rank {rank} is finalizing or has checkpoints disabled"
            ))
        } else if !self.mig.peers.is_empty() {
            Some(format!("rank {rank} waits for a migrating peer"))
        } else if self.shm_dir.is_none() {
            Some(format!(
                "rank {rank} has no node-local directory for its image"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return self.send_control(refuse(why));
        }
        let dir = self
            .shm_dir
            .as_ref()
            .expect("checked")
            .join(format!("migrate-{seq}"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return self.send_control(refuse(format!("cannot create {}: {e}", dir.display())));
        }
        self.mig.outgoing = Some(seq);
        self.ckpt.marker_in.iter_mut().for_each(|m| *m = false);
        self.ckpt.phase = Phase::Draining {
            epoch: mark(rank, seq),
            reported: true,
            dir: Some(dir.display().to_string()),
        };
        self.send_frozen_markers(mark(rank, seq))
    }

    /// MIGRATE_PEER: `rank` migrates; freeze and mark the link to it.
    fn migrate_peer(&mut self, rank: u32, seq: u64) -> Result<(), EngineError> {
        let seq = seq & 0xffff_ffff;
        if rank == self.rank() || rank >= self.size() || seq <= self.mig.done_seq {
            return Ok(());
        }
        if self
            .mig
            .peers
            .iter()
            .any(|(r, p)| *r == rank && p.seq == seq)
        {
            // Its marker came first and started this already.
            return Ok(());
        }
        let old_addr = self
            .mig
            .addrs
            .get(rank as usize)
            .cloned()
            .unwrap_or_default();
        self.mig.peers.retain(|(r, _)| *r != rank);
        self.mig.peers.push((
            rank,
            PeerMove {
                seq,
                marker_in: false,
                addr: None,
                old_addr,
            },
        ));
        self.queue_frozen_marker(rank as usize, mark(rank, seq))?;
        self.flush_peer(rank as usize)?;
        Ok(())
    }

    /// A migration's marker from `peer`.
    pub(crate) fn migration_marker(&mut self, peer: u32, epoch: u64) -> Result<(), EngineError> {
        let seq = epoch & 0xffff_ffff;
        let migrant = ((epoch & !MIGRATION_MARK) >> 32) as u32;
        if seq <= self.mig.done_seq {
            tracing::debug!("late marker of migration {seq} from rank {peer} ignored");
            return Ok(());
        }
        if migrant == self.rank() && self.mig.outgoing.is_none() {
            // A peer heard of this rank's migration before this rank did.
            self.migrate_out(seq)?;
        }
        if self.mig.outgoing == Some(seq) {
            // This rank migrates: the peer's channel state is all in.
            self.ckpt.marker_in[peer as usize] = true;
            self.pause_link(peer);
            return Ok(());
        }
        if migrant != peer {
            tracing::warn!("a marker of rank {migrant}'s migration from rank {peer} ignored");
            return Ok(());
        }
        if !self
            .mig
            .peers
            .iter()
            .any(|(r, p)| *r == peer && p.seq == seq)
        {
            // The data plane was faster than the coordinator's MIGRATE_PEER: start now.
            self.migrate_peer(peer, seq)?;
        }
        match self.mig.peers.iter_mut().find(|(r, _)| *r == peer) {
            Some((_, p)) if p.seq == seq => {
                p.marker_in = true;
                self.pause_link(peer);
                self.try_relink(peer)
            }
            _ => {
                tracing::warn!("stale migration marker {seq} from rank {peer} ignored");
                Ok(())
            }
        }
    }

    /// Once the migrating `rank`'s marker is in and its address known: a new link to the new
    /// address, or the old link thawed if it stayed.
    fn try_relink(&mut self, rank: u32) -> Result<(), EngineError> {
        let Some(i) = self.mig.peers.iter().position(|(r, _)| *r == rank) else {
            return Ok(());
        };
        let p = self.mig.peers[i].1.clone();
        // With the old address (the migration failed) the old link simply thaws: whatever
        // the rank sent before its marker, if it sent one, is still read in order.
        let Some(addr) = p.addr.filter(|a| p.marker_in || *a == p.old_addr) else {
            return Ok(());
        };
        self.mig.peers.remove(i);
        self.mig.done_seq = self.mig.done_seq.max(p.seq);
        let peer = rank as usize;
        if addr != p.old_addr {
            let target = endpoint(&addr, "tcp").ok_or_else(|| {
                EngineError::Checkpoint(format!("migrated rank {rank} has no TCP address: {addr}"))
            })?;
            let link_err = |e: std::io::Error| {
                EngineError::Checkpoint(format!(
                    "cannot reach migrated rank {rank} at {target}: {e}"
                ))
            };
            let mut stream = TcpStream::connect(target).map_err(link_err)?;
            stream
                .write_all(&handshake(self.rank(), &self.mig.job))
                .map_err(link_err)?;
            let link = Link::Tcp(TcpLink::new(stream).map_err(link_err)?);
            let ch = self.channel_mut(peer);
            // The old link carried everything up to the marker; it is closed now.
            drop(std::mem::replace(&mut ch.link, link));
            ch.input = Input::fresh();
            tracing::info!("rank {rank} migrated; new link to {target}");
        }
        let ch = self.channel_mut(peer);
        ch.frozen = None;
        ch.paused = false;
        ch.closed = false;
        self.flush_peer(peer)?;
        Ok(())
    }

    /// Back-pressure: a send to a migrating peer whose held bytes passed the limit waits
    /// (serving progress) until the peer's new link takes them.
    pub(crate) fn migration_backpressure(&mut self, dest: u32) -> Result<(), EngineError> {
        if !self.mig.peers.iter().any(|(r, _)| *r == dest) {
            return Ok(());
        }
        let limit = hold_limit();
        let mut idle = 0;
        loop {
            let held: usize = {
                let ch = self.channel_mut(dest as usize);
                ch.out.iter().map(|o| o.payload.bytes().len() + 64).sum()
            };
            if held <= limit || !self.mig.peers.iter().any(|(r, _)| *r == dest) {
                return Ok(());
            }
            self.progress_or_idle(&mut idle)?;
        }
    }

    /// The drain of this rank's migration is complete: capture, report, wait for the verdict.
    pub(crate) fn migration_capture(&mut self, epoch: u64, dir: &str) -> Result<(), EngineError> {
        let seq = epoch & 0xffff_ffff;
        let rank = self.rank();
        let exclude: Vec<PathBuf> = self.shm_dir.iter().cloned().collect();
        let request = ImageRequest {
            epoch: seq,
            rank,
            dir,
            exclude_dirs: &exclude,
            migration: true,
        };
        let mut checkpointer = self.ckpt.image.take().expect("an image job");
        let captured = checkpointer.capture(request);
        self.ckpt.image = Some(checkpointer);
        let written = match captured {
            Ok(ImageCapture::Restored(vars)) => {
                self.leave_drain();
                if let Err(e) = self.migrated_rejoin(&vars, seq) {
                    eprintln!(
                        "mpicr: rank {rank} was restored on its new node but could not join the job: {}",
                        chain(&e)
                    );
                    std::process::exit(1);
                }
                tracing::info!("rank {rank} migrated and joined the job");
                return Ok(());
            }
            // The image moves alone: no part is written for it.
            Ok(ImageCapture::Writing(mut writer)) => writer
                .poll(true)
                .unwrap_or_else(|| Err("the image writer gave no result".into())),
            Err(not) => Err(not.reason),
        };
        let path = PathBuf::from(dir).join(image::image_file_name(rank));
        let captured = written.and_then(|()| {
            std::fs::metadata(&path)
                .map(|m| m.len())
                .map_err(|e| format!("the image {} is missing: {e}", path.display()))
        });
        match captured {
            Ok(size) => {
                self.send_control(Message::MigrateCaptured(MigrateCaptured {
                    rank,
                    seq,
                    path: path.display().to_string(),
                    size,
                }))?;
                self.await_verdict(seq)
            }
            Err(reason) => {
                let _ = std::fs::remove_dir_all(dir);
                self.stay();
                self.send_control(Message::MigrateFailed(MigrateFailed { rank, seq, reason }))
            }
        }
    }

    /// The captured original waits for the coordinator: exit once the copy runs on the
    /// target, or stay and compute on.
    fn await_verdict(&mut self, seq: u64) -> Result<(), EngineError> {
        loop {
            let messages = match self.control_poll() {
                Some(m) => m?,
                None => return Ok(()),
            };
            for m in messages {
                match m {
                    Message::MigrateArrived(a) if a.seq == seq => {
                        // The copy computes on the target; this process leaves. Its links
                        // carry nothing more (frozen and paused).
                        std::process::exit(0);
                    }
                    Message::MigrateFailed(f) if f.seq == seq => {
                        eprintln!(
                            "mpicr: rank {} stays on its node: {}",
                            self.rank(),
                            f.reason
                        );
                        if let Some(dir) = self
                            .shm_dir
                            .as_ref()
                            .map(|d| d.join(format!("migrate-{seq}")))
                        {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                        self.stay();
                        return Ok(());
                    }
                    other => self.on_control(other)?,
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn leave_drain(&mut self) {
        if let Some(seq) = self.mig.outgoing {
            self.mig.done_seq = self.mig.done_seq.max(seq);
        }
        self.ckpt.phase = Phase::Idle;
        self.ckpt.marker_in.iter_mut().for_each(|m| *m = false);
        self.thaw_links();
        self.mig.outgoing = None;
    }

    /// The migration failed: compute on here.
    fn stay(&mut self) {
        self.leave_drain();
    }

    /// The restored copy joins the job on its new node: TCP links to every peer.
    fn migrated_rejoin(&mut self, vars: &[(String, String)], seq: u64) -> Result<(), EngineError> {
        let lookup = handed_over(vars);
        let (env, fds) = self.restored_env(&lookup)?;
        let err = |what: &str, e: std::io::Error| EngineError::Checkpoint(format!("{what}: {e}"));
        let listener = TcpListener::bind((env.bind.as_str(), 0))
            .map_err(|e| err(&format!("cannot listen on {}", env.bind), e))?;
        let addr = listener.local_addr().map_err(|e| err("listener", e))?;
        let node = lookup("MPICR_NODE").unwrap_or_default();
        let mut control = UnixStream::connect(&env.control)
            .map_err(|e| err(&format!("cannot connect to {}", env.control.display()), e))?;
        let register = Register {
            rank: env.rank,
            pid: std::process::id(),
            host: node,
            data_addr: format!("tcp:{addr}"),
        };
        write_message(&mut control, &Message::Register(register))
            .map_err(|e| err("cannot register", e))?;
        let table = match read_message(&mut control) {
            Ok(Message::Refresh(r)) => r.table,
            Ok(Message::Error(why)) => {
                return Err(EngineError::Checkpoint(format!("refused: {why}")));
            }
            Ok(other) => {
                return Err(EngineError::Checkpoint(format!(
                    "the coordinator answered {:?}",
                    other.command()
                )));
            }
            Err(e) => return Err(EngineError::Checkpoint(format!("no process table: {e}"))),
        };
        self.mig.addrs = table.iter().map(|e| e.data_addr.clone()).collect();
        let registered = Instant::now();
        // Every peer connects once it has read this rank's marker and the new address.
        let me = self.rank();
        let mut links: Vec<Option<Link>> = (0..self.size()).map(|_| None).collect();
        links[me as usize] = Some(Link::Loopback(LoopbackLink::default()));
        listener
            .set_nonblocking(true)
            .map_err(|e| err("listener", e))?;
        let deadline = Instant::now() + ACCEPT_WAIT;
        let mut missing = self.size() - 1;
        while missing > 0 {
            let (mut stream, from) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(EngineError::Checkpoint(format!(
                            "{missing} peers did not connect within {}s",
                            ACCEPT_WAIT.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(e) => return Err(err("accept", e)),
            };
            stream
                .set_nonblocking(false)
                .map_err(|e| err("accept", e))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| err("accept", e))?;
            let mut hello = [0u8; crate::bootstrap::HANDSHAKE_LEN];
            if stream.read_exact(&mut hello).is_err() {
                tracing::warn!("refused a data-plane connection from {from}: no handshake");
                continue;
            }
            let peer = u32::from_le_bytes(hello[12..16].try_into().expect("4 bytes"));
            let valid = peer < self.size()
                && peer != me
                && links[peer as usize].is_none()
                && hello == handshake(peer, &env.job);
            if !valid {
                tracing::warn!("refused a data-plane connection from {from}: bad handshake");
                continue;
            }
            stream
                .set_read_timeout(None)
                .map_err(|e| err("accept", e))?;
            links[peer as usize] =
                Some(Link::Tcp(TcpLink::new(stream).map_err(|e| err("link", e))?));
            missing -= 1;
        }
        if std::env::var_os("MPICR_IMAGE_STATS").is_some_and(|v| v == "1") {
            // How long the peers took to act on the REFRESH that gave them this address.
            eprintln!(
                "mpicr-image-stats rank={me} migration={seq} peers_connected_us={}",
                registered.elapsed().as_micros()
            );
        }
        place_control(&control, &fds)?;
        drop(control);
        let channels = links
            .into_iter()
            .map(|l| Channel::new(l.expect("every peer connected")))
            .collect();
        self.replace_links(channels, None, 1);
        self.set_launch_facts(env.shm_dir.clone(), fds);
        self.arm_attention();
        self.mig.job = env.job;
        self.send_control(Message::MigrateArrived(MigrateArrived { rank: me, seq }))
    }
}
