//! A node's checkpoint store (`--storage DIR`) and the daemon's store service: the daemon checks
//! the parts its ranks wrote, copies them to partner nodes (`--mirror K`, ChaRM4MPI §3.1's
//! "RAID-like" mirroring) and serves copies to a node that restarts ranks whose parts it lacks.
//!
//! Layout: `<storage>/<job>/<epoch>/rank-<r>.part` (the same file names as a snapshot
//! directory), plus the snapshot's `manifest` when a restart needs it. A copy arrives under a
//! temporary name (`.rank-<r>.part.<pid>.tmp`), is checked (whole-file crc32c, rank, epoch, job,
//! size) and fsynced, and only then renamed to its final name: a part under its final name is
//! always complete. Which epochs are committed is the coordinator's knowledge (its manifest is
//! the commit point); it tells the daemons which epochs to keep (STORE_KEEP).
//!
//! Daemon-to-daemon connections are authenticated like every control connection
//! (`wire::auth`, role Store), then carry PART_PUT + PART_DATA… (answered by PART_ACK) or
//! PART_GET (answered by PART_PUT + PART_DATA…, or ERROR).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use store::{PartReader, part_file_name};
use thiserror::Error;
use wire::stream::{read_message, write_message};
use wire::{HelloRole, Message, PART_DATA_MAX, PartAck, PartGet, PartPut, PartSource, StorePeer};

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
    #[error("no node holds a good copy of the part of rank {rank}: {tried}")]
    NoCopy { rank: u32, tried: String },
}

/// A checked part: what the manifest records about it.
#[derive(Debug, Clone)]
pub struct CheckedPart {
    pub path: PathBuf,
    pub checkpointer: String,
    pub sections: Vec<(String, u64, u32)>,
}

/// This node's store for one job, and the identity its store connections prove.
#[derive(Debug, Clone)]
pub struct NodeStore {
    /// `<storage>/<job>`.
    root: PathBuf,
    job: String,
    node: String,
    secret: String,
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
    pub fn open(storage: &Path, job: &str, node: &str, secret: &str) -> Result<Self, NodeStoreError> {
        let root = storage.join(job);
        make_dir(&root)?;
        Ok(Self {
            root,
            job: job.to_owned(),
            node: node.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The directory of checkpoint `epoch`'s parts on this node.
    pub fn epoch_dir(&self, epoch: u64) -> PathBuf {
        self.root.join(epoch.to_string())
    }

    /// Creates the directory of checkpoint `epoch` (the ranks write their parts into it).
    pub fn begin(&self, epoch: u64) -> Result<PathBuf, NodeStoreError> {
        let dir = self.epoch_dir(epoch);
        make_dir(&dir)?;
        Ok(dir)
    }

    /// Checks rank `rank`'s part of `epoch` in this store: complete, its whole-file checksum
    /// right, and the size and checksum its writer reported.
    pub fn check(&self, epoch: u64, rank: u32, size: u64, crc: u32) -> Result<CheckedPart, NodeStoreError> {
        let path = self.epoch_dir(epoch).join(part_file_name(rank));
        check_file(&path, &self.job, epoch, rank, size, crc)
    }

    /// Removes every epoch directory of the job that `keep` does not name.
    pub fn keep_only(&self, keep: &[u64]) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(epoch) = name.parse::<u64>()
                && epoch.to_string() == name
                && !keep.contains(&epoch)
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Copies a checked part to every node of `mirrors`; returns the nodes that now hold it
    /// (this one first).
    pub fn mirror(
        &self,
        epoch: u64,
        rank: u32,
        part: &CheckedPart,
        size: u64,
        crc: u32,
        mirrors: &[StorePeer],
    ) -> Result<Vec<String>, NodeStoreError> {
        let mut nodes = vec![self.node.clone()];
        for peer in mirrors {
            let stream = self.connect(peer)?;
            let fail = |why: String| NodeStoreError::Copy {
                node: peer.node.clone(),
                why,
            };
            send_part(&stream, &part.path, epoch, rank, size, crc).map_err(|e| fail(e.to_string()))?;
            match read_message(&mut &stream) {
                Ok(Message::PartAck(ack)) if ack.epoch == epoch && ack.rank == rank => {}
                Ok(Message::Error(why)) => return Err(fail(why)),
                Ok(other) => return Err(fail(format!("it answered {:?}", other.command()))),
                Err(e) => return Err(fail(crate::error_chain(&e))),
            }
            tracing::debug!(epoch, rank, node = peer.node, "part mirrored");
            nodes.push(peer.node.clone());
        }
        Ok(nodes)
    }

    /// Makes sure this store holds a checked copy of `source`'s part of `epoch`: keeps a good
    /// local one, else fetches it from the first holder that has a good one.
    pub fn fetch(&self, epoch: u64, source: &PartSource) -> Result<bool, NodeStoreError> {
        if self
            .check(epoch, source.rank, source.size, source.crc32c)
            .is_ok()
        {
            return Ok(false);
        }
        self.begin(epoch)?;
        let mut tried = Vec::new();
        for holder in source.holders.iter().filter(|h| h.node != self.node) {
            match self.fetch_from(epoch, source, holder) {
                Ok(()) => return Ok(true),
                Err(e) => tried.push(crate::error_chain(&e)),
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

    fn fetch_from(&self, epoch: u64, source: &PartSource, holder: &StorePeer) -> Result<(), NodeStoreError> {
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
        };
        write_message(&mut &stream, &Message::PartGet(get)).map_err(|e| fail(e.to_string()))?;
        let put = match read_message(&mut &stream) {
            Ok(Message::PartPut(put)) => put,
            Ok(Message::Error(why)) => return Err(fail(why)),
            Ok(other) => return Err(fail(format!("it answered {:?}", other.command()))),
            Err(e) => return Err(fail(crate::error_chain(&e))),
        };
        if put.epoch != epoch || put.rank != source.rank || put.size != source.size || put.crc32c != source.crc32c {
            return Err(fail("it sent another part".to_owned()));
        }
        self.receive(&stream, &put).map_err(|e| fail(crate::error_chain(&e)))?;
        tracing::info!(epoch, rank = source.rank, from = holder.node, "part fetched");
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
        wire::auth::connect(&stream, &self.secret, &self.job, &self.node, HelloRole::Store)
            .map_err(|source| NodeStoreError::Auth {
                node: peer.node.clone(),
                source,
            })?;
        Ok(stream)
    }

    /// Receives the data of `put` into a temporary file, checks it, makes it durable and gives
    /// it its final name.
    fn receive(&self, stream: &TcpStream, put: &PartPut) -> Result<(), NodeStoreError> {
        let dir = self.begin(put.epoch)?;
        let name = part_file_name(put.rank);
        let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), thread_id()));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_error("create", &tmp))?;
            let mut left = put.size;
            while left > 0 {
                let bytes = match read_message(&mut &*stream) {
                    Ok(Message::PartData(bytes)) => bytes,
                    Ok(other) => {
                        return Err(NodeStoreError::Copy {
                            node: "the peer".into(),
                            why: format!("it sent {:?} inside a part", other.command()),
                        });
                    }
                    Err(e) => {
                        return Err(NodeStoreError::Copy {
                            node: "the peer".into(),
                            why: crate::error_chain(&e),
                        });
                    }
                };
                if bytes.len() as u64 > left || bytes.is_empty() {
                    return Err(NodeStoreError::Copy {
                        node: "the peer".into(),
                        why: "it sent more bytes than announced".into(),
                    });
                }
                left -= bytes.len() as u64;
                file.write_all(&bytes).map_err(io_error("write", &tmp))?;
            }
            file.sync_all().map_err(io_error("fsync", &tmp))?;
            drop(file);
            check_file(&tmp, &self.job, put.epoch, put.rank, put.size, put.crc32c)?;
            let target = dir.join(&name);
            fs::rename(&tmp, &target).map_err(io_error("rename", &tmp))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error("fsync", &dir))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
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
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let hello = match read_message(&mut &*stream) {
            Ok(Message::NodeHello(hello)) => hello,
            Ok(other) => return Err(format!("the first message was {:?}, not NODE_HELLO", other.command())),
            Err(wire::stream::ReadError::Closed) => return Ok(()),
            Err(e) => return Err(crate::error_chain(&e)),
        };
        if hello.job != self.job {
            return Err(format!("it asked for job `{}`, not `{}`", hello.job, self.job));
        }
        if hello.role != HelloRole::Store {
            return Err("only store connections reach a node's store".to_owned());
        }
        wire::auth::accept(stream, &self.secret, &hello).map_err(|e| match e {
            wire::auth::AuthError::BadProof => format!(
                "node `{}` did not prove that it knows the job's secret",
                hello.node
            ),
            e => crate::error_chain(&e),
        })?;
        loop {
            match read_message(&mut &*stream) {
                Ok(Message::PartPut(put)) => {
                    self.receive(stream, &put).map_err(|e| crate::error_chain(&e))?;
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
                    let part = self
                        .check(get.epoch, get.rank, get.size, get.crc32c)
                        .map_err(|e| crate::error_chain(&e))?;
                    send_part(stream, &part.path, get.epoch, get.rank, get.size, get.crc32c)
                        .map_err(|e| e.to_string())?;
                }
                Ok(other) => return Err(format!("unexpected {:?} on a store connection", other.command())),
                Err(wire::stream::ReadError::Closed) => return Ok(()),
                Err(e) => return Err(crate::error_chain(&e)),
            }
        }
    }
}

fn thread_id() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    thread::current().id().hash(&mut h);
    h.finish()
}

fn check_file(path: &Path, job: &str, epoch: u64, rank: u32, size: u64, crc: u32) -> Result<CheckedPart, NodeStoreError> {
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
    Ok(CheckedPart {
        path: path.to_owned(),
        checkpointer: reader.checkpointer().to_owned(),
        sections: reader
            .section_infos()
            .map(|s| (s.name.clone(), s.len, s.crc32c))
            .collect(),
    })
}

/// Sends PART_PUT and the file's bytes in PART_DATA frames.
fn send_part(stream: &TcpStream, path: &Path, epoch: u64, rank: u32, size: u64, crc: u32) -> io::Result<()> {
    let mut file = File::open(path)?;
    write_message(
        &mut &*stream,
        &Message::PartPut(PartPut {
            epoch,
            rank,
            size,
            crc32c: crc,
        }),
    )?;
    let mut left = size;
    let mut buf = vec![0u8; PART_DATA_MAX.min(size.max(1) as usize)];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])?;
        write_message(&mut &*stream, &Message::PartData(buf[..n].to_vec()))?;
        left -= n as u64;
    }
    Ok(())
}
