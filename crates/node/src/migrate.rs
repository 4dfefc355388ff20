//! Process migration, the daemons' side: the image of a migrating rank goes from its node's
//! daemon to the target's over an authenticated daemon-to-daemon connection (role Store, the
//! same service and proof as the copies of `--mirror`), MIGRATE_IMAGE then PART_DATA frames;
//! the target writes it into its private directory, starts `mpicr-restore IMAGE` as the rank
//! (in the job's process group, watched like every rank) and answers MIGRATE_SENT, or
//! MIGRATE_FAILED with the reason. No shared file system is involved. Both ends of the copy
//! run at the lowest priority (nice 19): the ranks that compute on during the migration get a
//! core first.
//!
//! Nothing of a migration stays on disk: the source removes its image once it is sent (the
//! rank removes it when the migration fails before), and the target removes the received one
//! when the restored rank registers ([`Arrivals`]), or when the restorer ends before that, or
//! at once if the restore cannot start.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use wire::stream::{ReadError, read_message, write_message};
use wire::{
    HelloRole, Message, MigrateFailed, MigrateImage, MigrateSend, MigrateSent, PART_DATA_MAX,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the target may take to start the restorer.
const START_WAIT: Duration = Duration::from_secs(30);

/// A received image to restore as `rank`; `done` gets the restorer's pid or why it failed.
pub(crate) struct Restore {
    pub rank: u32,
    pub image: PathBuf,
    pub done: Sender<Result<u32, String>>,
}

/// The images of migrated ranks whose restorers this daemon started, by restorer pid. An image
/// is removed once its rank registers: the rank computes again, and the restorer, which read
/// the image into memory, maps nothing of the file. A restorer that ends before it registers
/// takes its image with it ([`restorer_exit`]).
#[derive(Debug, Default)]
pub(crate) struct Arrivals(Mutex<Vec<(u32, PathBuf)>>);

impl Arrivals {
    /// The restorer `pid` restores `image`.
    pub(crate) fn restoring(&self, pid: u32, image: PathBuf) {
        let mut arrivals = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        arrivals.retain(|(p, _)| *p != pid);
        arrivals.push((pid, image));
    }

    /// The process `pid` registered as its rank: the image it was restored from, if any, goes.
    pub(crate) fn registered(&self, pid: u32) {
        let image = {
            let mut arrivals = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            arrivals
                .iter()
                .position(|(p, _)| *p == pid)
                .map(|i| arrivals.swap_remove(i).1)
        };
        if let Some(image) = image {
            remove_image(&image);
        }
    }
}

/// What runs when the restorer of `image` (later: the rank it became) ends: the image goes if
/// it is still there (the restore failed), then `on_exit`.
pub(crate) fn restorer_exit(image: PathBuf, on_exit: crate::ExitCallback) -> crate::ExitCallback {
    Arc::new(move |exit: crate::RankExit| {
        remove_image(&image);
        on_exit(exit);
    })
}

fn remove_image(image: &Path) {
    match fs::remove_file(image) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "mpicr node {}: cannot remove the image of a migration, {}: {e}",
            TARGET.get().map_or("?", |t| t.node.as_str()),
            image.display()
        ),
    }
}

/// Hands a restore to the daemon's main thread (which starts ranks).
pub(crate) type Deliver = Box<dyn Fn(Restore) -> bool + Send + Sync>;

/// What the receiving side needs, set once by the daemon.
pub(crate) struct Target {
    pub job: String,
    pub node: String,
    pub secret: String,
    /// The daemon's private directory: received images go there.
    pub dir: PathBuf,
    pub deliver: Mutex<Deliver>,
}

static TARGET: OnceLock<Target> = OnceLock::new();

pub(crate) fn set_target(target: Target) {
    let _ = TARGET.set(target);
}

/// `mpicr-restore`, installed beside `mpicr`.
pub(crate) fn restorer() -> PathBuf {
    std::env::current_exe()
        .map(|exe| exe.with_file_name("mpicr-restore"))
        .unwrap_or_else(|_| PathBuf::from("mpicr-restore"))
}

/// Serves daemon-to-daemon connections that carry images (a daemon without `--storage`, whose
/// store service does not run).
pub(crate) fn serve(listener: TcpListener) {
    for connection in listener.incoming() {
        let Ok(stream) = connection else {
            thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = thread::Builder::new()
            .name("migrate-conn".into())
            .spawn(move || {
                if let Err(why) = serve_one(&stream) {
                    // The same service and line as the store's (`node_store::NodeStore::serve`).
                    let node = TARGET.get().map_or("?", |t| t.node.as_str());
                    let peer = stream
                        .peer_addr()
                        .map_or_else(|_| "an unknown address".to_owned(), |a| a.to_string());
                    eprintln!("mpicr node {node}: refused a store connection from {peer}: {why}");
                    let _ = write_message(&mut &stream, &Message::Error(why));
                }
            });
    }
}

fn serve_one(stream: &TcpStream) -> Result<(), String> {
    let target = TARGET.get().ok_or("this daemon takes no migrations")?;
    if !crate::node_store::accept_peer(stream, &target.job, &target.secret)? {
        return Ok(());
    }
    loop {
        match read_message(&mut &*stream) {
            Ok(Message::MigrateImage(m)) => receive(stream, &m)?,
            Ok(other) => return Err(format!("unexpected {:?}", other.command())),
            Err(ReadError::Closed) => return Ok(()),
            Err(e) => return Err(crate::error_chain(&e)),
        }
    }
}

/// Lowers the calling thread (the copy's, which ends with it) to nice 19. The restorer, which
/// becomes the rank, is started by the daemon's main thread at the normal priority.
fn background() {
    // Only a hint: the copy works at any priority.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
}

/// Receives the image announced by `m`, has it restored, answers MIGRATE_SENT or
/// MIGRATE_FAILED. An error is a broken connection.
pub(crate) fn receive(stream: &TcpStream, m: &MigrateImage) -> Result<(), String> {
    let target = TARGET.get().ok_or("this daemon takes no migrations")?;
    background();
    let path = target
        .dir
        .join(format!("migrate-{}-rank-{}.image", m.seq, m.rank));
    let started = Instant::now();
    let fault = Fault::injected(m.seq);
    let received = match receive_file(stream, &path, m.size, fault == Some(Fault::Copy)) {
        Ok(received) => received,
        Err(broken) => {
            remove_image(&path);
            return Err(broken);
        }
    };
    let outcome = received.and_then(|()| {
        if fault == Some(Fault::Restore) {
            spoil(&path, m.size)?;
        }
        restore(target, m.rank, &path)
    });
    let answer = match outcome {
        Ok(_) => Message::MigrateSent(MigrateSent {
            rank: m.rank,
            seq: m.seq,
            bytes: m.size,
            micros: started.elapsed().as_micros() as u64,
        }),
        Err(reason) => {
            remove_image(&path);
            Message::MigrateFailed(MigrateFailed {
                rank: m.rank,
                seq: m.seq,
                reason,
            })
        }
    };
    write_message(&mut &*stream, &answer).map_err(|e| e.to_string())
}

/// A failure the tests inject on the target of a migration through
/// `MPICR_TEST_MIGRATE_FAULT=KIND:SEQ` in the node daemons' environment (`docs/launch.md`):
/// migration SEQ of the job fails at the copy (`copy`: the image cannot be written) or at the
/// restore (`restore`: the image arrives cut in half, and the restorer refuses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Copy,
    Restore,
}

impl Fault {
    fn injected(seq: u64) -> Option<Self> {
        let value = std::env::var("MPICR_TEST_MIGRATE_FAULT").ok()?;
        let (kind, at) = value.split_once(':')?;
        if at.parse::<u64>().ok()? != seq {
            return None;
        }
        match kind {
            "copy" => Some(Self::Copy),
            "restore" => Some(Self::Restore),
            _ => None,
        }
    }
}

/// Cuts the received image at `path` to half its `size` (the injected restore failure).
fn spoil(path: &Path, size: u64) -> Result<(), String> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(size / 2))
        .map_err(|e| format!("cannot cut {}: {e}", path.display()))
}

/// Reads the `size` bytes of an image into `path`. The outer error is a broken stream; the
/// inner one a file that could not be written (the stream is read to its end regardless, so
/// that the source hears the reason).
fn receive_file(
    stream: &TcpStream,
    path: &Path,
    size: u64,
    fail_writes: bool,
) -> Result<Result<(), String>, String> {
    let cannot_write = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()));
    if fail_writes {
        file = Err(cannot_write(
            &"a fault injected by MPICR_TEST_MIGRATE_FAULT",
        ));
    }
    let mut left = size;
    while left > 0 {
        let bytes = match read_message(&mut &*stream) {
            Ok(Message::PartData(bytes)) => bytes,
            Ok(other) => return Err(format!("{:?} inside an image", other.command())),
            Err(e) => return Err(crate::error_chain(&e)),
        };
        if bytes.is_empty() || bytes.len() as u64 > left {
            return Err("more bytes than announced".into());
        }
        left -= bytes.len() as u64;
        if let Ok(f) = &mut file
            && let Err(e) = f.write_all(&bytes)
        {
            file = Err(cannot_write(&e));
        }
    }
    Ok(file.map(drop))
}

fn restore(target: &Target, rank: u32, image: &Path) -> Result<u32, String> {
    let (done, result) = mpsc::channel();
    let delivered = (target
        .deliver
        .lock()
        .unwrap_or_else(PoisonError::into_inner))(Restore {
        rank,
        image: image.to_owned(),
        done,
    });
    if !delivered {
        return Err("the daemon is shutting down".into());
    }
    result
        .recv_timeout(START_WAIT)
        .map_err(|_| "the restorer was not started in time".to_owned())?
}

/// Sends the image of `m` to the target daemon and reports to the coordinator through
/// `report` (MIGRATE_SENT with the copy's duration, or MIGRATE_FAILED), then removes the
/// image's directory on this node: the report comes first because the coordinator's answer to
/// the requester waits for it, and removing a large image takes a while.
pub(crate) fn send(m: MigrateSend, job: &str, node: &str, secret: &str, report: &dyn Fn(&Message)) {
    background();
    let started = Instant::now();
    let result = send_image(&m, job, node, secret);
    let message = match result {
        Ok(bytes) => Message::MigrateSent(MigrateSent {
            rank: m.rank,
            seq: m.seq,
            bytes,
            micros: started.elapsed().as_micros() as u64,
        }),
        Err(reason) => Message::MigrateFailed(MigrateFailed {
            rank: m.rank,
            seq: m.seq,
            reason: format!("the image could not be moved to node {}: {reason}", m.node),
        }),
    };
    report(&message);
    if let Some(dir) = Path::new(&m.path).parent() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn send_image(m: &MigrateSend, job: &str, node: &str, secret: &str) -> Result<u64, String> {
    let mut file = fs::File::open(&m.path).map_err(|e| format!("cannot open {}: {e}", m.path))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let addr: SocketAddr = m
        .addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot reach {}: {e}", m.addr))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    wire::auth::connect(&stream, secret, job, node, HelloRole::Store)
        .map_err(|e| crate::error_chain(&e))?;
    let io_err = |e: io::Error| e.to_string();
    write_message(
        &mut &stream,
        &Message::MigrateImage(MigrateImage {
            rank: m.rank,
            seq: m.seq,
            size,
        }),
    )
    .map_err(io_err)?;
    let mut buf = vec![0u8; PART_DATA_MAX.min(size.max(1) as usize)];
    let mut left = size;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n]).map_err(io_err)?;
        write_message(&mut &stream, &Message::PartData(buf[..n].to_vec())).map_err(io_err)?;
        left -= n as u64;
    }
    // The restore may take a while for a large image.
    let _ = stream.set_read_timeout(Some(START_WAIT + IO_TIMEOUT));
    match read_message(&mut &stream) {
        Ok(Message::MigrateSent(_)) => Ok(size),
        Ok(Message::MigrateFailed(f)) => Err(f.reason),
        Ok(Message::Error(why)) => Err(why),
        Ok(other) => Err(format!("it answered {:?}", other.command())),
        Err(e) => Err(crate::error_chain(&e)),
    }
}
