//! A node's checkpoint store (`--storage DIR`) and the daemon's store service: the daemon checks
//! the parts its ranks wrote, copies them to partner nodes (`--mirror K`, ChaRM4MPI §3.1's
//! "RAID-like" mirroring) and serves copies to a node that restarts ranks whose parts it lacks.
//!
//! Layout: `<storage>/<job>/<epoch>/rank-<r>.part` (the same file names as a snapshot
//! directory), with an `image` part's `rank-<r>.image` and chain beside it, plus the snapshot's
//! `manifest` when a restart needs it. What is checked, copied, XORed and fetched is a rank's
//! bundle (`bundle.rs`). A copy arrives under temporary names (`.rank-<r>.part.<pid>.…tmp`), is
//! checked (whole-file crc32c, rank, epoch, job, size; an image's size and trailer checksum)
//! and fsynced, and only then renamed to its final name: a file under its final name is always
//! complete. Which epochs are committed is the coordinator's knowledge (its manifest is
//! the commit point); it tells the daemons which epochs to keep (STORE_KEEP).
//!
//! Daemon-to-daemon connections are authenticated like every control connection
//! (`wire::auth`, role Store), then carry PART_PUT + PART_DATA… (a bundle, answered by
//! PART_ACK) or PART_GET (answered by PART_PUT + PART_DATA…, or ERROR).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use image::ImageRef;
use store::{PartReader, part_file_name};
use thiserror::Error;
use wire::stream::{read_message, write_message};
use wire::{
    ChainLink, HelloRole, Message, PartAck, PartGet, PartNeed, PartPut, PartSource, Rebuild,
    StorePeer,
};

use crate::bundle;
pub use crate::bundle::BundleFile;

/// How long connecting to another daemon may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a store connection may stay silent.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a part could not be checked, copied or fetched.
#[derive(Debug, Error)]
pub enum NodeStoreError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the part of rank {rank} is damaged or not the expected one")]
    Part {
        rank: u32,
        #[source]
        source: store::StoreError,
    },
    #[error(
        "the part of rank {rank} has {size} bytes and checksum {crc:08x}, {expected_size} bytes and {expected_crc:08x} were expected"
    )]
    Mismatch {
        rank: u32,
        size: u64,
        crc: u32,
        expected_size: u64,
        expected_crc: u32,
    },
    #[error("cannot reach the store of node {node} at {addr}")]
    Connect {
        node: String,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("the store of node {node} did not let this node in")]
    Auth {
        node: String,
        #[source]
        source: wire::auth::AuthError,
    },
    #[error("the copy to or from node {node} failed: {why}")]
    Copy { node: String, why: String },
    #[error("checkpoint {epoch} of job {job} was given up")]
    GivenUp { epoch: u64, job: String },
    #[error("no node holds a good copy of the part of rank {rank}: {tried}")]
    NoCopy { rank: u32, tried: String },
    #[error("the job's name cannot name a directory of the node store")]
    JobName(#[source] store::StoreError),
    #[error("the process image of rank {rank} is not usable: {why}")]
    Image { rank: u32, why: String },
}

/// A checked part: what the manifest records about it, and its bundle.
#[derive(Debug, Clone)]
pub struct CheckedPart {
    pub path: PathBuf,
    pub checkpointer: String,
    pub sections: Vec<(String, u64, u32)>,
    /// The image the part names (parts of the `image` checkpointer).
    pub image: Option<ImageRef>,
    /// The rank's bundle: the part, then its image and chain (empty until checked in place).
    pub files: Vec<BundleFile>,
}

/// This node's store for one job, and the identity its store connections prove.
#[derive(Debug, Clone)]
pub struct NodeStore {
    /// `<storage>/<job>`.
    root: PathBuf,
    job: String,
    node: String,
    secret: String,
    /// What STORE_KEEP said, shared by the clones that serve connections.
    pruned: Arc<std::sync::Mutex<Pruned>>,
}

/// The epochs a STORE_KEEP ended: every epoch up to `floor` that `keep` does not name is given
/// up, so that a late copy or directory of an abandoned checkpoint is refused instead of
/// left behind. Checkpoints only ever get higher epochs.
#[derive(Debug, Default)]
struct Pruned {
    floor: u64,
    keep: Vec<u64>,
    /// The highest epoch this store has made a directory for.
    seen: u64,
}

impl Pruned {
    fn given_up(&self, epoch: u64) -> bool {
        epoch <= self.floor && !self.keep.contains(&epoch)
    }
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NodeStoreError {
    let path = path.to_owned();
    move |source| NodeStoreError::Io { op, path, source }
}

fn make_dir(path: &Path) -> Result<(), NodeStoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error("create the directory", path))
}

impl NodeStore {
    /// The store of `job` under `storage` (created 0700 if missing).
    pub fn open(
        storage: &Path,
        job: &str,
        node: &str,
        secret: &str,
    ) -> Result<Self, NodeStoreError> {
        let root = storage.join(job);
        make_dir(&root)?;
        Ok(Self {
            root,
            job: job.to_owned(),
            node: node.to_owned(),
            secret: secret.to_owned(),
            pruned: Arc::default(),
        })
    }

    /// The directory of checkpoint `epoch`'s parts on this node.
    pub fn epoch_dir(&self, epoch: u64) -> PathBuf {
        self.root.join(epoch.to_string())
    }

    /// Creates the directory of checkpoint `epoch` (the ranks write their parts into it).
    pub fn begin(&self, epoch: u64) -> Result<PathBuf, NodeStoreError> {
        let mut pruned = self
            .pruned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pruned.given_up(epoch) {
            return Err(NodeStoreError::GivenUp {
                epoch,
                job: self.job.clone(),
            });
        }
        pruned.seen = pruned.seen.max(epoch);
        let dir = self.epoch_dir(epoch);
        make_dir(&dir)?;
        Ok(dir)
    }

    /// Checks rank `rank`'s bundle of `epoch` in this store: the part complete, its whole-file
    /// checksum right, the size and checksum its writer reported; the image it names and that
    /// image's chain there with their recorded sizes and trailer checksums (not read whole:
    /// the restorer does that before it changes anything).
    pub fn check(
        &self,
        epoch: u64,
        rank: u32,
        size: u64,
        crc: u32,
    ) -> Result<CheckedPart, NodeStoreError> {
        let dir = self.epoch_dir(epoch);
        let path = dir.join(part_file_name(rank));
        let mut part = check_file(&path, &self.job, epoch, rank, size, crc)?;
        let images = bundle::image_files(&dir, rank, part.image.as_ref())?;
        part.files = std::iter::once(BundleFile {
            path,
            size,
            crc32c: crc,
        })
        .chain(images)
        .collect();
        Ok(part)
    }

    /// Removes every epoch directory of the job that `keep` does not name.
    pub fn keep_only(&self, keep: &[u64]) {
        let mut pruned = self
            .pruned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let floor = pruned
            .floor
            .max(pruned.seen)
            .max(keep.iter().copied().max().unwrap_or(0));
        let epochs = self.epochs();
        pruned.floor = epochs.iter().copied().fold(floor, u64::max);
        pruned.keep = keep.to_vec();
        self.remove_given_up(&pruned, epochs);
    }

    /// Removes what is left of the checkpoints a STORE_KEEP gave up. A prune races with
    /// whatever still writes into such a directory (a rank's late part, a mirror's copy): a
    /// file made between the prune's removal of the files and of the directory keeps the
    /// directory, so the writers' ends and the daemon's end sweep again.
    pub fn sweep_given_up(&self) {
        let pruned = self
            .pruned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.remove_given_up(&pruned, self.epochs());
    }

    /// Removes the directories of `epochs` (this store's) that `pruned` gave up.
    fn remove_given_up(&self, pruned: &Pruned, epochs: Vec<u64>) {
        for epoch in epochs {
            if pruned.given_up(epoch) {
                let _ = fs::remove_dir_all(self.epoch_dir(epoch));
            }
        }
    }

    /// Copies a checked part's bundle to every node of `mirrors` (only the links of its chain
    /// a mirror does not hold yet); returns the nodes that now hold it (this one first).
    pub fn mirror(
        &self,
        epoch: u64,
        rank: u32,
        part: &CheckedPart,
        mirrors: &[StorePeer],
    ) -> Result<Vec<String>, NodeStoreError> {
        let mut nodes = vec![self.node.clone()];
        for peer in mirrors {
            let started = std::time::Instant::now();
            let stream = self.connect(peer)?;
            let fail = |why: String| NodeStoreError::Copy {
                node: peer.node.clone(),
                why,
            };
            let bytes = bundle::offer(&stream, &part.files, epoch, rank)
                .map_err(|e| fail(e.to_string()))?;
            match read_message(&mut &stream) {
                Ok(Message::PartAck(ack)) if ack.epoch == epoch && ack.rank == rank => {}
                Ok(Message::Error(why)) => return Err(fail(why)),
                Ok(other) => return Err(fail(format!("it answered {:?}", other.command()))),
                Err(e) => return Err(fail(crate::error_chain(&e))),
            }
            tracing::info!(
                epoch,
                rank,
                node = peer.node,
                bytes,
                micros = started.elapsed().as_micros() as u64,
                "part mirrored"
            );
            nodes.push(peer.node.clone());
        }
        Ok(nodes)
    }

    /// Makes sure this store holds a checked copy of `source`'s part of `epoch`: keeps a good
    /// local one, else fetches it from the first holder that has a good one.
    /// Returns how it came (`None`: the local copy was good).
    pub fn fetch(
        &self,
        epoch: u64,
        source: &PartSource,
    ) -> Result<Option<&'static str>, NodeStoreError> {
        if self
            .check(epoch, source.rank, source.size, source.crc32c)
            .is_ok()
        {
            return Ok(None);
        }
        self.begin(epoch)?;
        let mut tried = Vec::new();
        for holder in source.holders.iter().filter(|h| h.node != self.node) {
            match self.fetch_from(epoch, source, holder) {
                Ok(()) => return Ok(Some("from a mirror")),
                Err(e) => tried.push(crate::error_chain(&e)),
            }
        }
        if let Some(rebuild) = &source.rebuild {
            match self.rebuild(epoch, source, rebuild) {
                Ok(()) => return Ok(Some("from its group's parity")),
                Err(e) => tried.push(format!(
                    "rebuilding it from parity: {}",
                    crate::error_chain(&e)
                )),
            }
        }
        if tried.is_empty() {
            tried.push("no other node holds it".to_owned());
        }
        Err(NodeStoreError::NoCopy {
            rank: source.rank,
            tried: tried.join("; "),
        })
    }

    fn fetch_from(
        &self,
        epoch: u64,
        source: &PartSource,
        holder: &StorePeer,
    ) -> Result<(), NodeStoreError> {
        let started = std::time::Instant::now();
        let stream = self.connect(holder)?;
        let fail = |why: String| NodeStoreError::Copy {
            node: holder.node.clone(),
            why,
        };
        let get = PartGet {
            epoch,
            rank: source.rank,
            size: source.size,
            crc32c: source.crc32c,
            file: String::new(),
        };
        write_message(&mut &stream, &Message::PartGet(get)).map_err(|e| fail(e.to_string()))?;
        let put = match read_message(&mut &stream) {
            Ok(Message::PartPut(put)) => put,
            Ok(Message::Error(why)) => return Err(fail(why)),
            Ok(other) => return Err(fail(format!("it answered {:?}", other.command()))),
            Err(e) => return Err(fail(crate::error_chain(&e))),
        };
        if put.epoch != epoch
            || put.rank != source.rank
            || put.size != source.size
            || put.crc32c != source.crc32c
        {
            return Err(fail("it sent another part".to_owned()));
        }
        self.receive(&stream, &put)
            .map_err(|e| fail(crate::error_chain(&e)))?;
        tracing::info!(
            epoch,
            rank = source.rank,
            from = holder.node,
            bytes = put.total,
            micros = started.elapsed().as_micros() as u64,
            "part fetched"
        );
        Ok(())
    }

    /// The bundle of a rank (`file` empty) or parity file `file` of `epoch` as a stream, with
    /// its length: this store's own files when it is `peer`, else fetched from `peer` (which
    /// checks them before it sends them).
    fn open_bundle(
        &self,
        peer: &StorePeer,
        epoch: u64,
        rank: u32,
        size: u64,
        crc: u32,
        file: &str,
    ) -> Result<(Box<dyn Read + Send>, u64), NodeStoreError> {
        if peer.node == self.node {
            let files = if file.is_empty() {
                self.check(epoch, rank, size, crc)?.files
            } else {
                vec![BundleFile {
                    path: self.check_parity(epoch, file, size, crc)?,
                    size,
                    crc32c: crc,
                }]
            };
            return Ok((bundle::reader(&files)?, bundle::total(&files)));
        }
        let stream = self.connect(peer)?;
        let fail = |why: String| NodeStoreError::Copy {
            node: peer.node.clone(),
            why,
        };
        let get = PartGet {
            epoch,
            rank,
            size,
            crc32c: crc,
            file: file.to_owned(),
        };
        write_message(&mut &stream, &Message::PartGet(get)).map_err(|e| fail(e.to_string()))?;
        let total = match read_message(&mut &stream) {
            Ok(Message::PartPut(put)) if put.size == size && put.crc32c == crc => put.total,
            Ok(Message::PartPut(_)) => return Err(fail("it sent another part".to_owned())),
            Ok(Message::Error(why)) => return Err(fail(why)),
            Ok(other) => return Err(fail(format!("it answered {:?}", other.command()))),
            Err(e) => return Err(fail(crate::error_chain(&e))),
        };
        Ok((Box::new(bundle::Frames::new(stream, total)), total))
    }

    /// Builds parity file `name` of `epoch`: the XOR of the members' bundles (each zero-padded
    /// to the longest), streamed into a temporary file, fsynced and renamed. Returns its size
    /// and the crc32c of its bytes.
    pub fn build_parity(
        &self,
        epoch: u64,
        name: &str,
        members: &[PartSource],
    ) -> Result<(u64, u32), NodeStoreError> {
        check_parity_name(name)?;
        let dir = self.begin(epoch)?;
        let mut built = (0, 0);
        write_durably(
            &dir,
            name,
            |file, tmp| {
                for member in members {
                    let holder = member
                        .holders
                        .first()
                        .ok_or_else(|| NodeStoreError::NoCopy {
                            rank: member.rank,
                            tried: "no node was named".to_owned(),
                        })?;
                    let (mut from, len) = self.open_bundle(
                        holder,
                        epoch,
                        member.rank,
                        member.size,
                        member.crc32c,
                        "",
                    )?;
                    bundle::xor_into_file(file, &mut from, len, tmp)?;
                }
                Ok(())
            },
            |tmp| {
                built = bundle::size_and_crc(tmp)?;
                Ok(())
            },
        )?;
        Ok(built)
    }

    /// The path of parity file `name` of `epoch`, once its size and checksum are right.
    fn check_parity(
        &self,
        epoch: u64,
        name: &str,
        size: u64,
        crc: u32,
    ) -> Result<PathBuf, NodeStoreError> {
        check_parity_name(name)?;
        let path = self.epoch_dir(epoch).join(name);
        let (actual_size, actual) = bundle::size_and_crc(&path)?;
        if actual_size != size || actual != crc {
            return Err(NodeStoreError::Copy {
                node: self.node.clone(),
                why: format!(
                    "{} has {actual_size} bytes and checksum {actual:08x}, {size} bytes and {crc:08x} were expected",
                    path.display(),
                ),
            });
        }
        Ok(path)
    }

    /// Rebuilds `source`'s bundle from its group's parity and the group's other bundles, in a
    /// temporary file of the epoch's directory, then splits it into the part and its images,
    /// each checked like a received copy.
    fn rebuild(
        &self,
        epoch: u64,
        source: &PartSource,
        rebuild: &Rebuild,
    ) -> Result<(), NodeStoreError> {
        let started = std::time::Instant::now();
        let dir = self.begin(epoch)?;
        let tmp = dir.join(format!(
            ".rebuild-{}.{}.{}.tmp",
            source.rank,
            std::process::id(),
            thread_id()
        ));
        let result = (|| {
            let file = create_private(&tmp)?;
            let (mut parity, len) = self.open_bundle(
                &rebuild.holder,
                epoch,
                source.rank,
                rebuild.size,
                rebuild.crc32c,
                &rebuild.name,
            )?;
            bundle::xor_into_file(&file, &mut parity, len, &tmp)?;
            for other in &rebuild.others {
                let mut why = Vec::new();
                let mut opened = None;
                for holder in &other.holders {
                    match self.open_bundle(holder, epoch, other.rank, other.size, other.crc32c, "")
                    {
                        Ok(got) => {
                            opened = Some(got);
                            break;
                        }
                        Err(e) => why.push(crate::error_chain(&e)),
                    }
                }
                let (mut from, len) = opened.ok_or_else(|| NodeStoreError::NoCopy {
                    rank: other.rank,
                    tried: why.join("; "),
                })?;
                bundle::xor_into_file(&file, &mut from, len, &tmp)?;
            }
            // The bundle is the start of the XOR; what follows it is the others' padding.
            let mut from = io::BufReader::new(File::open(&tmp).map_err(io_error("open", &tmp))?);
            bundle::split(
                &mut from,
                &dir,
                &bundle::Expected {
                    job: &self.job,
                    epoch,
                    rank: source.rank,
                    size: source.size,
                    crc: source.crc32c,
                },
                &[],
            )
        })();
        let _ = fs::remove_file(&tmp);
        let (_, bytes) = result?;
        tracing::info!(
            epoch,
            rank = source.rank,
            parity = rebuild.name,
            bytes,
            micros = started.elapsed().as_micros() as u64,
            "part rebuilt from parity"
        );
        Ok(())
    }
    fn connect(&self, peer: &StorePeer) -> Result<TcpStream, NodeStoreError> {
        let connect_error = |source| NodeStoreError::Connect {
            node: peer.node.clone(),
            addr: peer.addr.clone(),
            source,
        };
        let addr: SocketAddr = peer
            .addr
            .to_socket_addrs()
            .map_err(connect_error)?
            .next()
            .ok_or_else(|| connect_error(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        wire::auth::connect(
            &stream,
            &self.secret,
            &self.job,
            &self.node,
            HelloRole::Store,
        )
        .map_err(|source| NodeStoreError::Auth {
            node: peer.node.clone(),
            source,
        })?;
        Ok(stream)
    }

    /// Receives the bundle `put` announces, splitting it into the part and its images, each
    /// checked, made durable and given its final name. When `put` names chain links (a
    /// mirror's offer), those this store holds are linked into the epoch's directory and
    /// PART_NEED asks for the others.
    fn receive(&self, stream: &TcpStream, put: &PartPut) -> Result<(), NodeStoreError> {
        let received = self.receive_files(stream, put);
        // A prune of the epoch during the copy may have left the directory behind.
        self.sweep_given_up();
        received
    }

    fn receive_files(&self, stream: &TcpStream, put: &PartPut) -> Result<(), NodeStoreError> {
        let refused = |why: String| NodeStoreError::Copy {
            node: "the peer".into(),
            why,
        };
        let dir = self.begin(put.epoch)?;
        let held = if put.links.is_empty() {
            Vec::new()
        } else {
            let held = self.hold_links(&dir, put.rank, &put.links)?;
            let files = put
                .links
                .iter()
                .filter(|l| !held.contains(&l.file))
                .map(|l| l.file.clone())
                .collect();
            write_message(
                &mut &*stream,
                &Message::PartNeed(PartNeed {
                    epoch: put.epoch,
                    rank: put.rank,
                    files,
                }),
            )
            .map_err(|e| refused(e.to_string()))?;
            held
        };
        let held_bytes: u64 = put
            .links
            .iter()
            .filter(|l| held.contains(&l.file))
            .map(|l| l.size)
            .sum();
        let coming = put.total.checked_sub(held_bytes).ok_or_else(|| {
            refused(format!(
                "it announced {} bytes for the files of rank {}, fewer than its links",
                put.total, put.rank
            ))
        })?;
        let mut frames = bundle::Frames::new(stream, coming);
        let (links, taken) = bundle::split(
            &mut frames,
            &dir,
            &bundle::Expected {
                job: &self.job,
                epoch: put.epoch,
                rank: put.rank,
                size: put.size,
                crc: put.crc32c,
            },
            &held,
        )?;
        if taken != coming || frames.left() != 0 {
            return Err(refused(format!(
                "it announced {} bytes for the files of rank {}, which have {}",
                put.total,
                put.rank,
                taken + held_bytes
            )));
        }
        if !put.links.is_empty() && put.links.iter().map(|l| &l.file).ne(links.iter()) {
            return Err(refused(format!(
                "the chain of rank {}'s image is not the one it announced",
                put.rank
            )));
        }
        Ok(())
    }

    /// Links into `dir` (checkpoint `epoch`'s directory) every link of `links` this store
    /// holds already, as its own image of that epoch or as a link in another epoch's
    /// directory, matching the announced size and trailer checksum; returns their names. A
    /// link is never changed once written, so any copy with its checksum is it.
    fn hold_links(
        &self,
        dir: &Path,
        rank: u32,
        links: &[ChainLink],
    ) -> Result<Vec<String>, NodeStoreError> {
        if links.len() > image::format::MAX_CHAIN as usize {
            return Err(NodeStoreError::Image {
                rank,
                why: format!("a chain of {} links was offered", links.len()),
            });
        }
        let epochs = self.epochs();
        let mut held = Vec::new();
        for link in links {
            let Some(base) = bundle::link_epoch(&link.file, rank) else {
                return Err(NodeStoreError::Image {
                    rank,
                    why: format!("`{}` is not a chain file of rank {rank}", link.file),
                });
            };
            let is_it = |path: &Path| {
                image::ImageRef::of_file(path)
                    .is_ok_and(|r| r.size == link.size && r.crc32c == link.crc32c)
            };
            let target = dir.join(&link.file);
            let found = is_it(&target)
                || std::iter::once(self.epoch_dir(base).join(image::image_file_name(rank)))
                    .chain(epochs.iter().map(|e| self.epoch_dir(*e).join(&link.file)))
                    .any(|from| {
                        is_it(&from) && fs::hard_link(&from, &target).is_ok() && is_it(&target)
                    });
            if found {
                held.push(link.file.clone());
            }
        }
        if !held.is_empty() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error("fsync", dir))?;
        }
        Ok(held)
    }

    /// The epochs this store has a directory for.
    fn epochs(&self) -> Vec<u64> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.parse::<u64>().ok().filter(|n| n.to_string() == name)
            })
            .collect()
    }
    /// Serves other daemons' store connections on `listener` until the process ends.
    pub fn serve(self: Arc<Self>, listener: TcpListener) {
        for connection in listener.incoming() {
            let Ok(stream) = connection else {
                thread::sleep(Duration::from_millis(100));
                continue;
            };
            let store = self.clone();
            let _ = thread::Builder::new()
                .name("store-conn".into())
                .spawn(move || {
                    let peer = stream
                        .peer_addr()
                        .map_or_else(|_| "an unknown address".to_owned(), |a| a.to_string());
                    if let Err(why) = store.serve_one(&stream) {
                        eprintln!(
                            "mpicr node {}: refused a store connection from {peer}: {why}",
                            store.node
                        );
                        let _ = write_message(&mut &stream, &Message::Error(why));
                    }
                });
        }
    }

    fn serve_one(&self, stream: &TcpStream) -> Result<(), String> {
        if !accept_peer(stream, &self.job, &self.secret)? {
            return Ok(());
        }
        loop {
            match read_message(&mut &*stream) {
                Ok(Message::PartPut(put)) => {
                    self.receive(stream, &put)
                        .map_err(|e| crate::error_chain(&e))?;
                    write_message(
                        &mut &*stream,
                        &Message::PartAck(PartAck {
                            epoch: put.epoch,
                            rank: put.rank,
                        }),
                    )
                    .map_err(|e| e.to_string())?;
                }
                Ok(Message::MigrateImage(m)) => crate::migrate::receive(stream, &m)?,
                Ok(Message::PartGet(get)) => {
                    let files = if get.file.is_empty() {
                        self.check(get.epoch, get.rank, get.size, get.crc32c)
                            .map(|part| part.files)
                    } else {
                        self.check_parity(get.epoch, &get.file, get.size, get.crc32c)
                            .map(|path| {
                                vec![BundleFile {
                                    path,
                                    size: get.size,
                                    crc32c: get.crc32c,
                                }]
                            })
                    }
                    .map_err(|e| crate::error_chain(&e))?;
                    bundle::send(stream, &files, get.epoch, get.rank, get.size, get.crc32c)
                        .map_err(|e| e.to_string())?;
                }
                Ok(other) => {
                    return Err(format!(
                        "unexpected {:?} on a store connection",
                        other.command()
                    ));
                }
                Err(wire::stream::ReadError::Closed) => return Ok(()),
                Err(e) => return Err(crate::error_chain(&e)),
            }
        }
    }
}

/// Removes the directories of `epochs` of `job` from the node store `storage`: what removed
/// snapshots kept on this node. `mpicr gc` runs it on every node of such a snapshot through
/// the job's launcher (`mpicr node-prune`). A missing directory is no error (removed before,
/// or never held here). Returns the directories removed.
pub fn remove_epochs(
    storage: &Path,
    job: &str,
    epochs: &[u64],
) -> Result<Vec<PathBuf>, NodeStoreError> {
    store::check_job_name(job).map_err(NodeStoreError::JobName)?;
    let mut removed = Vec::new();
    for epoch in epochs {
        let dir = storage.join(job).join(epoch.to_string());
        match fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NodeStoreError::Io {
                    op: "remove",
                    path: dir,
                    source,
                });
            }
        }
    }
    Ok(removed)
}

/// Admits a daemon-to-daemon connection (the store service's, or a migration's on a daemon
/// without a store): NODE_HELLO of role Store for `job`, then the mutual proof of the secret.
/// Sets the connection's timeouts. `Ok(false)`: it closed before saying anything.
pub(crate) fn accept_peer(stream: &TcpStream, job: &str, secret: &str) -> Result<bool, String> {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let hello = match read_message(&mut &*stream) {
        Ok(Message::NodeHello(hello)) => hello,
        Ok(other) => {
            return Err(format!(
                "the first message was {:?}, not NODE_HELLO",
                other.command()
            ));
        }
        Err(wire::stream::ReadError::Closed) => return Ok(false),
        Err(e) => return Err(crate::error_chain(&e)),
    };
    if hello.job != job {
        return Err(format!("it asked for job `{}`, not `{job}`", hello.job));
    }
    if hello.role != HelloRole::Store {
        return Err("only daemon-to-daemon connections reach this service".to_owned());
    }
    wire::auth::accept(stream, secret, &hello).map_err(|e| match e {
        wire::auth::AuthError::BadProof => format!(
            "node `{}` did not prove that it knows the job's secret",
            hello.node
        ),
        e => crate::error_chain(&e),
    })?;
    Ok(true)
}

/// A parity file's name: `parity-<group>-<slot>`, nothing that could leave the directory.
fn check_parity_name(name: &str) -> Result<(), NodeStoreError> {
    let ok = name.starts_with("parity-")
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NodeStoreError::Copy {
            node: "this node".into(),
            why: format!("`{name}` is not a parity file's name"),
        })
    }
}

/// Writes file `name` of `dir` so that under its final name it is always complete: `fill`
/// writes it under a temporary name (`.<name>.<pid>.<thread>.tmp`), it is fsynced, `check`
/// looks at it, and only then is it renamed into place and the directory fsynced. On any
/// failure the temporary file is removed.
pub(crate) fn write_durably(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut File, &Path) -> Result<(), NodeStoreError>,
    check: impl FnOnce(&Path) -> Result<(), NodeStoreError>,
) -> Result<(), NodeStoreError> {
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        thread_id()
    ));
    let result = (|| {
        let mut file = create_private(&tmp)?;
        fill(&mut file, &tmp)?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
        drop(file);
        check(&tmp)?;
        fs::rename(&tmp, dir.join(name)).map_err(io_error("rename", &tmp))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("fsync", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates (or empties) `path` with mode 0600, readable too: parity is XORed into a file in
/// place.
fn create_private(path: &Path) -> Result<File, NodeStoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("create", path))
}

fn thread_id() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    thread::current().id().hash(&mut h);
    h.finish()
}

/// Checks the part at `path`: complete, its whole-file checksum right, of `job`, `epoch` and
/// `rank`, with the size and checksum expected; reads the image section of an `image` part.
pub(crate) fn check_file(
    path: &Path,
    job: &str,
    epoch: u64,
    rank: u32,
    size: u64,
    crc: u32,
) -> Result<CheckedPart, NodeStoreError> {
    let reader = PartReader::open(path).map_err(|source| NodeStoreError::Part { rank, source })?;
    if reader.rank() != rank || reader.epoch() != epoch || reader.job() != job {
        return Err(NodeStoreError::Copy {
            node: "this node".into(),
            why: format!(
                "{} holds rank {} of epoch {} of job {}",
                path.display(),
                reader.rank(),
                reader.epoch(),
                reader.job()
            ),
        });
    }
    if reader.size() != size || reader.crc32c() != crc {
        return Err(NodeStoreError::Mismatch {
            rank,
            size: reader.size(),
            crc: reader.crc32c(),
            expected_size: size,
            expected_crc: crc,
        });
    }
    let image = if reader.checkpointer() == "image" {
        let bytes = reader
            .section(image::partref::SECTION)
            .map_err(|source| NodeStoreError::Part { rank, source })?;
        Some(ImageRef::decode(&bytes).map_err(|why| NodeStoreError::Image { rank, why })?)
    } else {
        None
    };
    Ok(CheckedPart {
        path: path.to_owned(),
        checkpointer: reader.checkpointer().to_owned(),
        sections: reader
            .section_infos()
            .map(|s| (s.name.clone(), s.len, s.crc32c))
            .collect(),
        image,
        files: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mpicr-node-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A store serving on localhost: its peer entry.
    fn serving(store: &NodeStore) -> StorePeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = Arc::new(store.clone());
        thread::spawn(move || served.serve(listener));
        StorePeer {
            node: store.node.clone(),
            addr,
        }
    }

    /// Writes a file that passes as a process image for the checks of a bundle (header,
    /// META, LAYOUT and PARENT sections, `filler` bytes, trailer with checksum `crc`); the
    /// restorer's full read is not part of them.
    fn fake_image(path: &Path, parent: Option<&image::format::Parent>, filler: usize, crc: u32) {
        use image::format::{TAG_LAYOUT, TAG_META, TAG_PARENT, TRAILER_LEN, encode_parent};
        let mut bytes = image::encode_header().to_vec();
        for tag in [TAG_META, TAG_LAYOUT] {
            bytes.extend_from_slice(&tag.to_le_bytes());
            bytes.extend_from_slice(&0u64.to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
        }
        let body = encode_parent(parent);
        let mut head = TAG_PARENT.to_le_bytes().to_vec();
        head.extend_from_slice(&(body.len() as u64).to_le_bytes());
        let section_crc = crc32c::crc32c_append(crc32c::crc32c(&head), &body);
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&section_crc.to_le_bytes());
        bytes.extend((0..filler).map(|i| (i % 251) as u8));
        let body_len = bytes.len() as u64;
        bytes.extend_from_slice(&image::encode_trailer_prefix(0, body_len));
        bytes.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(bytes.len() as u64, body_len + TRAILER_LEN as u64);
        fs::write(path, bytes).unwrap();
    }

    /// Rank `rank`'s image part of `epoch` in `store`, naming `rank-R.image`, whose parent is
    /// `rank-R.base-4.image` (named `link` in the PARENT section); returns the part's size and
    /// checksum.
    fn image_bundle(store: &NodeStore, epoch: u64, rank: u32, link: &str) -> (u64, u32) {
        let dir = store.begin(epoch).unwrap();
        let base = dir.join(format!("rank-{rank}.base-4.image"));
        fake_image(&base, None, 3 << 20, 0xb45e);
        let base_ref = ImageRef::of_file(&base).unwrap();
        let parent = image::format::Parent {
            path: link.to_owned(),
            size: base_ref.size,
            crc32c: base_ref.crc32c,
            depth: 1,
        };
        let top = dir.join(image::image_file_name(rank));
        fake_image(&top, Some(&parent), 5 << 20, 0x70b);
        let top_ref = ImageRef::of_file(&top).unwrap();
        let mut writer = store::PartWriter::create(&dir, "job", epoch, rank, "image").unwrap();
        writer
            .section(image::partref::SECTION, &top_ref.encode())
            .unwrap();
        let info = writer.finish().unwrap();
        (info.size, info.crc32c)
    }

    #[test]
    fn an_image_part_moves_with_its_image_and_chain_outlives_its_parent_s_epoch_and_a_foreign_link_is_refused()
     {
        let names = ["ia", "ib", "ic", "id", "ie"];
        let [a, b, c, d, e] = names.map(|n| NodeStore::open(&temp(n), "job", n, "secret").unwrap());
        let (size, crc) = image_bundle(&a, 5, 1, "rank-1.base-4.image");
        let part = a.check(5, 1, size, crc).unwrap();
        let files: Vec<String> = part
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            ["rank-1.part", "rank-1.image", "rank-1.base-4.image"]
        );
        // Mirrored: b holds the same three files.
        let b_peer = serving(&b);
        a.mirror(5, 1, &part, std::slice::from_ref(&b_peer))
            .unwrap();
        for f in &files {
            assert_eq!(
                fs::read(b.epoch_dir(5).join(f)).unwrap(),
                fs::read(a.epoch_dir(5).join(f)).unwrap(),
                "{f}"
            );
        }
        // A missing link fails the check, and a fetch brings it back from the mirror.
        fs::remove_file(a.epoch_dir(5).join(&files[2])).unwrap();
        assert!(a.check(5, 1, size, crc).is_err());
        let source = PartSource {
            rank: 1,
            size,
            crc32c: crc,
            holders: vec![b_peer.clone()],
            rebuild: None,
        };
        assert_eq!(a.fetch(5, &source).unwrap(), Some("from a mirror"));
        assert!(a.check(5, 1, size, crc).is_ok());
        // Parity of the image bundle and a shorter `self` part; the bundle rebuilt on d.
        let dir = b.begin(5).unwrap();
        let mut writer = store::PartWriter::create(&dir, "job", 5, 2, "self").unwrap();
        writer.section("data", &[9u8; 1000]).unwrap();
        let other = writer.finish().unwrap();
        let a_peer = serving(&a);
        let c_peer = serving(&c);
        let member = |rank, size, crc32c, holder: &StorePeer| PartSource {
            rank,
            size,
            crc32c,
            holders: vec![holder.clone()],
            rebuild: None,
        };
        let (psize, pcrc) = c
            .build_parity(
                5,
                "parity-0-0",
                &[
                    member(1, size, crc, &a_peer),
                    member(2, other.size, other.crc32c, &b_peer),
                ],
            )
            .unwrap();
        assert_eq!(psize, bundle::total(&part.files));
        let lost = PartSource {
            rank: 1,
            size,
            crc32c: crc,
            holders: Vec::new(),
            rebuild: Some(Box::new(Rebuild {
                name: "parity-0-0".into(),
                size: psize,
                crc32c: pcrc,
                holder: c_peer.clone(),
                others: vec![member(2, other.size, other.crc32c, &b_peer)],
            })),
        };
        assert_eq!(d.fetch(5, &lost).unwrap(), Some("from its group's parity"));
        for f in &files {
            assert_eq!(
                fs::read(d.epoch_dir(5).join(f)).unwrap(),
                fs::read(a.epoch_dir(5).join(f)).unwrap(),
                "{f}"
            );
        }
        // Epoch 7 continues the chain: its parent is epoch 5's image, hard-linked beside it with
        // the rest of the chain, as the writer does. Pruning epoch 5 (STORE_KEEP, node-prune)
        // leaves epoch 7 complete.
        let (dir5, dir7) = (a.epoch_dir(5), a.begin(7).unwrap());
        fs::hard_link(dir5.join(&files[1]), dir7.join("rank-1.base-5.image")).unwrap();
        fs::hard_link(dir5.join(&files[2]), dir7.join(&files[2])).unwrap();
        let parent = ImageRef::of_file(&dir5.join(&files[1])).unwrap();
        let parent = image::format::Parent {
            path: "rank-1.base-5.image".into(),
            size: parent.size,
            crc32c: parent.crc32c,
            depth: 2,
        };
        fake_image(&dir7.join(&files[1]), Some(&parent), 1 << 20, 0x7);
        let top = ImageRef::of_file(&dir7.join(&files[1])).unwrap();
        let mut writer = store::PartWriter::create(&dir7, "job", 7, 1, "image").unwrap();
        writer
            .section(image::partref::SECTION, &top.encode())
            .unwrap();
        let seven = writer.finish().unwrap();
        // Mirrored, epoch 7 brings only its part and new image to b, which links the chain
        // from its epoch 5 (its image there is base-5); c holds nothing of rank 1 and gets
        // the whole bundle; e's epoch-5 image of rank 1 is another one (its checksum differs),
        // so e gets base-5 too and links only base-4.
        let e_dir = e.begin(5).unwrap();
        fake_image(&e_dir.join(&files[1]), None, 1000, 0xe);
        fs::hard_link(b.epoch_dir(5).join(&files[2]), e_dir.join(&files[2])).unwrap();
        let e_peer = serving(&e);
        let seven_part = a.check(7, 1, seven.size, seven.crc32c).unwrap();
        let chain = ["rank-1.base-5.image", files[2].as_str()];
        for (store, peer, linked) in [
            (&b, &b_peer, [true, true]),
            (&c, &c_peer, [false, false]),
            (&e, &e_peer, [false, true]),
        ] {
            a.mirror(7, 1, &seven_part, std::slice::from_ref(peer))
                .unwrap();
            store.check(7, 1, seven.size, seven.crc32c).unwrap();
            for (f, linked) in chain.iter().zip(linked) {
                let got = store.epoch_dir(7).join(f);
                assert_eq!(fs::read(&got).unwrap(), fs::read(dir7.join(f)).unwrap());
                let links = fs::metadata(&got).unwrap().nlink();
                assert_eq!(links > 1, linked, "{} {f}: {links} links", store.node);
            }
        }
        a.keep_only(&[7]);
        assert!(!dir5.exists());
        let kept = a.check(7, 1, seven.size, seven.crc32c).unwrap();
        assert_eq!(kept.files.len(), 4, "{kept:?}");
        // A PARENT that names a file outside the epoch's directory is refused, even where the
        // file is there (as the chain check alone would accept it): a bundle stays in its
        // directory.
        let (size, crc) = image_bundle(&a, 8, 3, "../rank-3.base-4.image");
        fs::copy(
            a.epoch_dir(8).join("rank-3.base-4.image"),
            a.root.join("rank-3.base-4.image"),
        )
        .unwrap();
        let err = a.check(8, 3, size, crc).unwrap_err();
        assert!(
            crate::error_chain(&err).contains("is not a chain file of rank 3"),
            "{err}"
        );
        for n in names {
            let _ = fs::remove_dir_all(temp(n));
        }
    }

    /// A prune races with writers: what a late part or copy left of a given-up epoch (the
    /// directory the prune could not remove because a file appeared in it) goes at the next
    /// sweep, and nothing else does.
    #[test]
    fn what_is_left_of_a_given_up_epoch_is_swept() {
        let root = temp("sweep");
        let s = NodeStore::open(&root, "job", "n", "secret").unwrap();
        for epoch in [6, 7, 8] {
            s.begin(epoch).unwrap();
        }
        s.keep_only(&[6]);
        assert!(s.epoch_dir(6).exists() && !s.epoch_dir(7).exists());
        let late = s.epoch_dir(7);
        fs::create_dir(&late).unwrap();
        fs::write(late.join(part_file_name(0)), b"a late part").unwrap();
        let committed_later = s.begin(9).unwrap();
        s.sweep_given_up();
        assert!(!late.exists(), "the given-up epoch stayed");
        assert!(s.epoch_dir(6).exists(), "a kept epoch was removed");
        assert!(
            committed_later.exists(),
            "an epoch after the prune was removed"
        );
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn a_part_is_checked_mirrored_fetched_and_pruned() {
        let (da, db, dc) = (temp("a"), temp("b"), temp("c"));
        let a = NodeStore::open(&da, "job", "a", "secret").unwrap();
        let b = NodeStore::open(&db, "job", "b", "secret").unwrap();
        let c = NodeStore::open(&dc, "job", "c", "secret").unwrap();
        let dir = a.begin(3).unwrap();
        let mut writer = store::PartWriter::create(&dir, "job", 3, 1, "self").unwrap();
        writer.section("data", &vec![7u8; 9 << 20]).unwrap();
        let info = writer.finish().unwrap();
        // A wrong size or checksum is refused.
        assert!(a.check(3, 1, info.size + 1, info.crc32c).is_err());
        let part = a.check(3, 1, info.size, info.crc32c).unwrap();
        let b_peer = serving(&b);
        let nodes = a
            .mirror(3, 1, &part, std::slice::from_ref(&b_peer))
            .unwrap();
        assert_eq!(nodes, ["a", "b"]);
        assert!(b.check(3, 1, info.size, info.crc32c).is_ok());
        // Node c fetches it from b (a is gone).
        let source = PartSource {
            rank: 1,
            size: info.size,
            crc32c: info.crc32c,
            holders: vec![
                StorePeer {
                    node: "a".into(),
                    addr: "127.0.0.1:1".into(),
                },
                b_peer.clone(),
            ],
            rebuild: None,
        };
        assert_eq!(c.fetch(3, &source).unwrap(), Some("from a mirror"));
        assert_eq!(c.fetch(3, &source).unwrap(), None, "the good local copy");
        // A store of another secret is refused both ways.
        let intruder = NodeStore::open(&temp("d"), "job", "d", "wrong").unwrap();
        let err = intruder.fetch(3, &source).unwrap_err();
        assert!(crate::error_chain(&err).contains("secret"), "{err}");
        // Parity: a second part (of another length) on b; a's parity of both kept on c; then
        // a's part is rebuilt on a fresh node d from c's parity and b's part.
        let dir = b.begin(3).unwrap();
        let mut writer = store::PartWriter::create(&dir, "job", 3, 2, "self").unwrap();
        writer.section("data", &vec![3u8; 5 << 20]).unwrap();
        let other = writer.finish().unwrap();
        let a_peer = serving(&a);
        let c_peer = serving(&c);
        let member = |rank: u32, size: u64, crc32c: u32, holder: &StorePeer| PartSource {
            rank,
            size,
            crc32c,
            holders: vec![holder.clone()],
            rebuild: None,
        };
        let (size, crc) = c
            .build_parity(
                3,
                "parity-0-0",
                &[
                    member(1, info.size, info.crc32c, &a_peer),
                    member(2, other.size, other.crc32c, &b_peer),
                ],
            )
            .unwrap();
        assert_eq!(size, info.size.max(other.size));
        let e = NodeStore::open(&temp("e"), "job", "e", "secret").unwrap();
        let lost = PartSource {
            rank: 1,
            size: info.size,
            crc32c: info.crc32c,
            holders: Vec::new(),
            rebuild: Some(Box::new(Rebuild {
                name: "parity-0-0".into(),
                size,
                crc32c: crc,
                holder: c_peer,
                others: vec![member(2, other.size, other.crc32c, &b_peer)],
            })),
        };
        assert_eq!(e.fetch(3, &lost).unwrap(), Some("from its group's parity"));
        assert!(e.check(3, 1, info.size, info.crc32c).is_ok());
        assert!(
            e.build_parity(3, "../x", &[]).is_err(),
            "a name that leaves the directory"
        );
        // Pruning keeps only the named epochs, and refuses a late copy of a dropped one.
        b.keep_only(&[4]);
        assert!(!b.epoch_dir(3).exists());
        assert!(b.begin(3).is_err(), "epoch 3 was given up");
        assert!(b.begin(4).is_ok() && b.begin(5).is_ok());
        // Offline gc removes named epochs only, and a missing one is no error.
        assert_eq!(
            remove_epochs(&db, "job", &[4, 9]).unwrap(),
            [db.join("job").join("4")]
        );
        assert!(!b.epoch_dir(4).exists() && b.epoch_dir(5).exists());
        assert!(remove_epochs(&db, "../x", &[5]).is_err());
        for d in [da, db, dc, temp("d"), temp("e")] {
            let _ = fs::remove_dir_all(d);
        }
    }
}
