//! Capturing the calling process into an image.
//!
//! Two phases. Phase A (may allocate) collects the state that is not memory — the fd table,
//! signal dispositions, cwd, limits — and encodes it; it also allocates everything phase B
//! needs. Phase B runs inside the capture point (see `ctx`), in the process itself or in a
//! forked copy, and must not call the allocator from the moment it reads `/proc/self/maps`
//! until the last page is written: an allocation then could move the heap's end or change its
//! bookkeeping while the heap is being read. Its buffers are a scratch mapping (left out of the
//! image by address) and a region table whose capacity was reserved in phase A.

use std::ffi::{CStr, c_void};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::codec::{Codec, Compressor, ENC_RAW, ENC_ZERO, zstd_workspace_len};
use crate::format::*;
use crate::incr::{self, Chain};
use crate::out::Out;
use crate::procfs::{self, MapsLine};
use crate::read::{HFLAG_INCREMENTAL, encode_header_flags, encode_trailer_prefix};
use crate::stats::{StallTimes, StatsPage, Step, WriterReport, now_ns, thread_cpu_ns};
use crate::{ctx, fdstate, sys};

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error(
        "glibc registered rseq for this thread; run the program with \
         GLIBC_TUNABLES=glibc.pthread.rseq=0 (see docs/image-format.md) or checkpoint it with \
         --crs self"
    )]
    RseqRegistered,
    #[error("writing the image failed: {0}")]
    Write(WriteError),
    /// What happened to the writer: "was killed by signal 9", "exited with status 1".
    #[error("the image writer process {0}")]
    Child(String),
    #[error(
        "descriptor {} is open; it is reserved for the restorer's hand-over (see \
         docs/image-format.md)",
        crate::restart::RESTART_ENV_FD
    )]
    ReservedFd,
    #[error("the process has {0} threads, and an image holds a single-threaded process only")]
    MultiThreaded(usize),
    /// (The cause is in the message, as for `Io`: callers print this error alone.)
    #[error("cannot read the deleted file {path} open at descriptor {fd}: {cause}")]
    DeletedFile {
        fd: i32,
        path: String,
        cause: std::io::Error,
    },
}

/// What a capture leaves out besides its own buffers.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Directories whose files are neither mapped nor open in the image: shared file mappings
    /// and descriptors of files under them are left out (the MPI layer's rings and doorbells,
    /// which a restarted job recreates elsewhere). The restorer leaves those ranges unmapped.
    pub exclude_dirs: Vec<PathBuf>,
    /// How page runs are compressed.
    pub compress: Codec,
    /// The forked writer runs with SCHED_IDLE and the idle I/O class: it takes only the CPU
    /// time and disk no other process of the machine wants (a migration's writer, which must
    /// not slow the ranks that compute on; a checkpoint's writer keeps the normal priority
    /// because the job waits for its commit).
    pub background: bool,
}

/// A failed system call while memory was being written (no allocation to describe it).
#[derive(Debug, Clone, Copy)]
pub struct WriteError {
    pub what: &'static str,
    pub addr: u64,
    pub errno: Errno,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at {:#x}): {}", self.what, self.addr, self.errno)
    }
}

pub(crate) fn werr(what: &'static str, addr: u64) -> impl FnOnce(Errno) -> WriteError {
    move |errno| WriteError { what, addr, errno }
}

/// What `capture_to` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The image is written; this is the original process.
    Captured,
    /// This process was brought back from the image by the restorer.
    Restored,
}

/// What `capture_in_child` returns.
#[derive(Debug)]
pub enum ChildOutcome {
    /// A forked copy is writing the image; call [`ChildCapture::wait`].
    Started(ChildCapture),
    /// This process was brought back from the image by the restorer.
    Restored,
}

/// A forked image writer.
#[derive(Debug)]
pub struct ChildCapture {
    pid: rustix::process::Pid,
    tmp: PathBuf,
    dest: PathBuf,
    stall: StallTimes,
    stats: StatsPage,
}

impl ChildCapture {
    /// The writer's pid.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }
    /// How long the capture call took, by step.
    pub fn stall(&self) -> StallTimes {
        self.stall
    }
    /// The writer's account of its work so far (complete once it has ended).
    pub fn report(&mut self) -> WriterReport {
        self.stats.report()
    }
    /// Waits for the writer; on success the image is renamed into place.
    pub fn wait(&mut self) -> Result<(), CaptureError> {
        let status = loop {
            match rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::empty()) {
                Ok(Some((_, st))) => break st,
                Ok(None) => continue,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(CaptureError::Io("waiting for the image writer", e.into())),
            }
        };
        self.finish(status)
    }

    /// The writer's result if it has ended (the image is then renamed into place), without
    /// waiting; `None` while it still writes. A writer that says it has done its work but
    /// has not yet exited is waited for: it signalled its rank just before exiting
    /// (`attention`), and the rank looks now.
    pub fn try_wait(&mut self) -> Option<Result<(), CaptureError>> {
        match rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::NOHANG) {
            Ok(Some((_, st))) => Some(self.finish(st)),
            Ok(None) if self.stats.writer_done() => Some(self.wait()),
            Ok(None) | Err(Errno::INTR) => None,
            Err(e) => Some(Err(CaptureError::Io(
                "waiting for the image writer",
                e.into(),
            ))),
        }
    }

    fn finish(&self, status: rustix::process::WaitStatus) -> Result<(), CaptureError> {
        if status.exit_status() != Some(0) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(CaptureError::Child(writer_end(status)));
        }
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(|e| CaptureError::Io("renaming the image into place", e))
    }
}

/// How a writer that did not succeed ended, as the end of a sentence about it. A writer that
/// fails on its own says why on the rank's stderr before it exits.
fn writer_end(status: rustix::process::WaitStatus) -> String {
    if let Some(code) = status.exit_status() {
        format!("exited with status {code} (its reason is on the rank's stderr)")
    } else if let Some(signal) = status.terminating_signal() {
        format!("was killed by signal {signal}")
    } else {
        format!("ended as {status:?}")
    }
}

/// Writes an image of the calling process to `path` and returns [`Outcome::Captured`]; in a
/// process restored from that image the same call returns [`Outcome::Restored`].
///
/// The process must be single-threaded and run with `GLIBC_TUNABLES=glibc.pthread.rseq=0`.
/// The image is written to `path.tmp`, fsynced and renamed, so `path` is complete or absent.
pub fn capture_to(path: &Path) -> Result<Outcome, CaptureError> {
    let tmp = tmp_path(path);
    let mut job = prepare(&tmp, false, &CaptureOptions::default())?;
    let r = ctx::checkpoint_here(capture_cb, (&mut job as *mut Job).cast::<c_void>());
    if r == RESTORED {
        return Ok(restored(job));
    }
    let error = job.error;
    drop(job);
    if r != 0 {
        let _ = std::fs::remove_file(&tmp);
        return Err(match error {
            Some(e) => CaptureError::Write(e),
            None => CaptureError::Child(format!("failed with code {r}")),
        });
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| CaptureError::Io("renaming the image into place", e))?;
    Ok(Outcome::Captured)
}

/// Like [`capture_to`], but a forked copy-on-write child writes the image: the caller stalls
/// only for phase A and the fork.
pub fn capture_in_child(path: &Path) -> Result<ChildOutcome, CaptureError> {
    capture_in_child_with(path, &CaptureOptions::default())
}

/// [`capture_in_child`] with what `options` leaves out.
pub fn capture_in_child_with(
    path: &Path,
    options: &CaptureOptions,
) -> Result<ChildOutcome, CaptureError> {
    capture_in_child_inner(path, options, None)
}

/// [`capture_in_child_with`] as a link of `chain`: an incremental image based on the last
/// image the chain recorded, unless a full one is due. Tell the chain the outcome with
/// [`Chain::written`] or [`Chain::failed`] once the writer has ended.
pub fn capture_in_child_chained(
    path: &Path,
    options: &CaptureOptions,
    chain: &mut Chain,
) -> Result<ChildOutcome, CaptureError> {
    capture_in_child_inner(path, options, Some(chain))
}

fn capture_in_child_inner(
    path: &Path,
    options: &CaptureOptions,
    chain: Option<&mut Chain>,
) -> Result<ChildOutcome, CaptureError> {
    let started = std::time::Instant::now();
    let started_cpu = thread_cpu_ns();
    let tmp = tmp_path(path);
    let mut job = prepare(&tmp, true, options)?;
    let prepared = std::time::Instant::now();
    let mut chain = chain;
    if let Some(c) = chain.as_deref_mut() {
        job.parent = c
            .begin(path)
            .map_err(|e| CaptureError::Io("preparing the hash tables", e))?;
        job.excluded_tables = c.ranges();
        job.parent_bytes = encode_parent(job.parent.as_ref());
    }
    let r = {
        let (prev, next) = match chain.as_deref_mut() {
            Some(c) => c.tables(job.parent.is_some()),
            None => (None, None),
        };
        job.prev_table = prev.map(|t| (t.as_ptr(), t.len()));
        job.next_table = next.map(|t| (t.as_mut_ptr(), t.len()));
        job.chained = std::time::Instant::now();
        job.chained_cpu = thread_cpu_ns();
        ctx::checkpoint_here(capture_cb, (&mut job as *mut Job).cast::<c_void>())
    };
    if r == RESTORED {
        restored(job);
        if let Some(c) = chain {
            c.forget_after_restore();
        }
        return Ok(ChildOutcome::Restored);
    }
    let stall = StallTimes {
        prepare: prepared - started,
        chain: job.chained - prepared,
        fork: job.chained.elapsed(),
        fork_cpu: cpu_since(job.chained_cpu),
        cpu: cpu_since(started_cpu),
    };
    let Job {
        fork_errno,
        child_pid,
        stats,
        ..
    } = job;
    if r != 0 {
        let _ = std::fs::remove_file(&tmp);
        return Err(CaptureError::Io(
            "forking the image writer",
            std::io::Error::from_raw_os_error(fork_errno),
        ));
    }
    let pid = rustix::process::Pid::from_raw(child_pid)
        .ok_or_else(|| CaptureError::Child("was not started: fork returned no pid".into()))?;
    Ok(ChildOutcome::Started(ChildCapture {
        pid,
        tmp,
        dest: path.to_path_buf(),
        stall,
        stats,
    }))
}

fn cpu_since(ns: u64) -> std::time::Duration {
    std::time::Duration::from_nanos(thread_cpu_ns().saturating_sub(ns))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// In a restored process the image file's descriptor, the readers of deleted files and the
/// scratch mapping do not exist (they were left out of the image): forget them rather than
/// close or unmap whatever now has their number or address.
fn restored(job: Job) -> Outcome {
    let Job {
        file,
        file_copied,
        deleted,
        scratch,
        stats,
        meta_bytes,
        regions,
        exclude,
        ..
    } = job;
    std::mem::forget(file);
    std::mem::forget(file_copied);
    for (_, reader) in deleted {
        let _ = reader.into_raw_fd();
    }
    scratch.forget();
    stats.forget();
    drop((meta_bytes, regions, exclude));
    Outcome::Restored
}

/// Most mappings a capture handles.
const MAX_CAPTURE_REGIONS: usize = 16384;
const IO_BUF: usize = 1 << 20;
/// Page-aligned in the scratch mapping (it follows `IO_BUF`), as direct I/O needs.
const OUT_BUF: usize = 1 << 20;
const MAPS_BUF: usize = 2 << 20;
const STAT_BUF: usize = 8 << 10;
const CHUNK_PAGES: usize = IO_BUF / PAGE_SIZE as usize;
const PAGEMAP_BUF: usize = CHUNK_PAGES * 8;
/// Compressed output of one read (never larger than the read: else the run is stored raw).
const COMP_BUF: usize = IO_BUF;
/// The fixed part of the scratch mapping (a zstd context's workspace follows it).
const SCRATCH_FIXED: usize = IO_BUF + OUT_BUF + MAPS_BUF + STAT_BUF + PAGEMAP_BUF + COMP_BUF;

/// Whole pages, so that clipping it out of a merged mapping leaves page-aligned regions.
fn scratch_len(codec: Codec) -> usize {
    let ws = if codec == Codec::Zstd {
        zstd_workspace_len()
    } else {
        0
    };
    (SCRATCH_FIXED + ws).div_ceil(PAGE_SIZE as usize) * PAGE_SIZE as usize
}

/// A region as phase B sees it; `name` indexes the maps text in the scratch buffer.
#[derive(Debug, Clone, Copy)]
struct RegionPlan {
    start: u64,
    end: u64,
    prot: u32,
    flags: u32,
    kind: RegionKind,
    file_offset: u64,
    identity: FileIdentity,
    name: (usize, usize),
}

struct Job {
    /// The image file (`path.tmp`); its descriptor is left out of the image.
    file: File,
    /// The image file again, for buffered writes (both are left out of the image).
    file_copied: File,
    meta_bytes: Vec<u8>,
    /// The deleted files among the descriptors, in META order: the descriptor's number and
    /// a descriptor of our own that reads the file (opened before the capture point, so the
    /// writer needs no path and no allocation).
    deleted: Vec<(i32, OwnedFd)>,
    regions: Vec<RegionPlan>,
    /// Path prefixes (`DIR/`) of mappings left out.
    exclude: Vec<Vec<u8>>,
    scratch: sys::Scratch,
    /// The writer's account of its work (a shared page, left out of the image).
    stats: StatsPage,
    /// When the capture point was entered (the fork's start), and the thread's CPU time then.
    chained: std::time::Instant,
    chained_cpu: u64,
    codec: Codec,
    /// What an incremental image is based on.
    parent: Option<Parent>,
    /// The PARENT body (encoded before the capture point).
    parent_bytes: Vec<u8>,
    /// The previous image's hash table (read) and the next one (written), as (pointer,
    /// words): shared mappings the chain owns and keeps alive across the capture.
    prev_table: Option<(*const u64, usize)>,
    next_table: Option<(*mut u64, usize)>,
    /// Address ranges of the tables, left out of the image.
    excluded_tables: [(u64, u64); 2],
    fork: bool,
    background: bool,
    child_pid: i32,
    fork_errno: i32,
    error: Option<WriteError>,
}

fn prepare(tmp: &Path, fork: bool, options: &CaptureOptions) -> Result<Job, CaptureError> {
    // A restored process that never took its hand-over (it is not an MPI rank) gives it up
    // now; anything else at that number is refused.
    let _ = crate::restart::take_restart_env();
    if crate::restart::fd_open(crate::restart::RESTART_ENV_FD) {
        return Err(CaptureError::ReservedFd);
    }
    // Only the calling thread's registers and stack are captured: any other thread would be
    // missing from the restored process, so such a process is refused rather than broken.
    let threads = thread_count().map_err(|e| CaptureError::Io("listing the threads", e))?;
    if threads > 1 {
        return Err(CaptureError::MultiThreaded(threads));
    }
    let exclude: Vec<Vec<u8>> = options
        .exclude_dirs
        .iter()
        .map(|d| {
            let mut p = d.as_os_str().as_encoded_bytes().to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p
        })
        .collect();
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| CaptureError::Io("creating the image file", e))?;
    // A second open file of the image, without O_DIRECT: pages the writer still shares
    // with the rank go through the page cache (`out.rs`).
    let file_copied = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| CaptureError::Io("opening the image file", e))?;
    let meta = collect_meta(&[file.as_raw_fd(), file_copied.as_raw_fd()], &exclude)
        .map_err(|e| CaptureError::Io("reading process state", e))?;
    let deleted = open_deleted(&meta.fds)?;
    if !meta.rseq_disabled {
        let _ = std::fs::remove_file(tmp);
        return Err(CaptureError::RseqRegistered);
    }
    let scratch = sys::Scratch::new(scratch_len(options.compress))
        .map_err(|e| CaptureError::Io("mapping the capture buffers", e))?;
    let stats =
        StatsPage::new().map_err(|e| CaptureError::Io("mapping the writer's statistics", e))?;
    Ok(Job {
        file,
        file_copied,
        meta_bytes: encode_meta(&meta),
        deleted,
        regions: Vec::with_capacity(MAX_CAPTURE_REGIONS),
        exclude,
        scratch,
        stats,
        chained: std::time::Instant::now(),
        chained_cpu: 0,
        codec: options.compress,
        parent: None,
        parent_bytes: encode_parent(None),
        prev_table: None,
        next_table: None,
        excluded_tables: [(0, 0); 2],
        fork,
        background: options.background,
        child_pid: 0,
        fork_errno: 0,
        error: None,
    })
}

/// A descriptor that reads each deleted file of `fds` (through its `/proc/self/fd` link, which
/// reaches the file even though no path names it any more), close-on-exec.
fn open_deleted(fds: &[FdEntry]) -> Result<Vec<(i32, OwnedFd)>, CaptureError> {
    fds.iter()
        .filter(|f| f.kind == FdKind::Deleted)
        .map(|f| {
            let link = format!("/proc/self/fd/{}", f.fd);
            rustix::fs::open(
                link.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(|reader| (f.fd, reader))
            .map_err(|e| CaptureError::DeletedFile {
                fd: f.fd,
                path: f.path.clone(),
                cause: e.into(),
            })
        })
        .collect()
}

/// Phase A: the state that is not memory. `skip` are descriptors capture itself opened,
/// `exclude` path prefixes of files left out.
fn collect_meta(skip: &[RawFd], exclude: &[Vec<u8>]) -> std::io::Result<Meta> {
    let uts = rustix::system::uname();
    let exe_path = std::fs::read_link("/proc/self/exe")?;
    let exe_path = exe_path.to_string_lossy().into_owned();
    let mut m = Meta {
        kernel_release: uts.release().to_string_lossy().into_owned(),
        machine: uts.machine().to_string_lossy().into_owned(),
        rseq_disabled: !sys::rseq_registered(),
        exe: identity_of(Path::new(&exe_path))?,
        exe_path,
        fs_base: sys::fs_base(),
        sigmask: sys::sigmask(),
        sigpending: sys::sigpending(),
        ..Meta::default()
    };
    for sig in 1..=64u32 {
        if sig == libc::SIGKILL as u32 || sig == libc::SIGSTOP as u32 {
            continue;
        }
        if let Some(a) = sys::sigaction(sig) {
            m.sigactions.push(SigAction {
                signo: sig,
                handler: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
            });
        }
    }
    (m.altstack_sp, m.altstack_flags, m.altstack_size) = sys::sigaltstack();
    m.cwd = std::env::current_dir()?.to_string_lossy().into_owned();
    let status = std::fs::read_to_string("/proc/self/status")?;
    m.umask = procfs::keyed(&status, "Umask")
        .and_then(|v| u32::from_str_radix(v, 8).ok())
        .unwrap_or(0o022);
    for res in 0..16u32 {
        if let Some((cur, max)) = sys::getrlimit(res) {
            m.rlimits.push((res, cur, max));
        }
    }
    m.auxv = procfs::parse_auxv(&std::fs::read("/proc/self/auxv")?);
    m.fds = collect_fds(skip, exclude)?;
    m.itimers = (0..MAX_ITIMERS).filter_map(sys::getitimer).collect();
    m.pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    Ok(m)
}

fn identity_of(p: &Path) -> std::io::Result<FileIdentity> {
    let st = rustix::fs::stat(p)?;
    Ok(identity_from_stat(&st))
}

fn identity_from_stat(st: &rustix::fs::Stat) -> FileIdentity {
    FileIdentity {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_sec: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
    }
}

/// The threads of this process (the entries of /proc/self/task), listed with getdents for
/// the same reason as the descriptors in [`collect_fds`].
fn thread_count() -> std::io::Result<usize> {
    let dir = rustix::fs::open(
        "/proc/self/task",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut threads = 0;
    for e in rustix::fs::Dir::new(dir)? {
        if !e?.file_name().to_bytes().starts_with(b".") {
            threads += 1;
        }
    }
    Ok(threads)
}

/// The child processes of this process, zombies included: the pids in every thread's
/// `/proc/self/task/TID/children`. An image holds one process, so a process waiting for a
/// child (a shell in a command substitution, a `fork` before its `waitpid`) would find it
/// gone after a restart: its caller checkpoints it once they are gone.
pub fn child_processes() -> std::io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let children = match std::fs::read_to_string(task?.path().join("children")) {
            Ok(c) => c,
            // A thread that ended since the directory was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for pid in children.split_ascii_whitespace() {
            pids.push(pid.parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a child process {pid:?} that is not a number"),
                )
            })?);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The child processes an image of this process would leave behind (all of them: the
/// caller's own image writers have been waited for). Displayed as the end of a sentence about
/// the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildrenLeftBehind(pub Vec<u32>);

impl ChildrenLeftBehind {
    /// This process's children ([`child_processes`]), or None when it has none.
    pub fn find() -> std::io::Result<Option<Self>> {
        let pids = child_processes()?;
        Ok((!pids.is_empty()).then_some(Self(pids)))
    }
}

impl std::fmt::Display for ChildrenLeftBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pids: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(
            f,
            "it has child processes ({}), which an image cannot hold; it is checkpointed \
             once they have exited and been waited for",
            pids.join(", ")
        )
    }
}

/// What `/proc/self/fd/N` appends to the path of a file that was deleted.
const DELETED_SUFFIX: &str = " (deleted)";

fn collect_fds(skip: &[RawFd], exclude: &[Vec<u8>]) -> std::io::Result<Vec<FdEntry>> {
    let mut fds = Vec::new();
    let mut watched: Vec<(RawFd, Vec<u64>)> = Vec::new();
    let mut nums: Vec<RawFd> = Vec::new();
    // rustix's getdents, not `std::fs::read_dir`: glibc's opendir calls malloc, and a capture
    // may run in a signal handler that interrupted malloc (a preloaded program, crates/preload).
    let dir = rustix::fs::open(
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for e in rustix::fs::Dir::new(dir)? {
        if let Some(n) = e?.file_name().to_str().ok().and_then(|s| s.parse().ok()) {
            nums.push(n);
        }
    }
    nums.sort_unstable();
    for fd in nums {
        if skip.contains(&fd) {
            continue;
        }
        let link = format!("/proc/self/fd/{fd}");
        // The directory stream's own descriptor was in the listing and is closed by now.
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        let path = target.to_string_lossy().into_owned();
        if exclude.iter().any(|p| path.as_bytes().starts_with(p)) {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue;
        };
        let flags = procfs::keyed(&info, "flags")
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(0);
        let offset = procfs::keyed(&info, "pos")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let st = rustix::fs::stat(link.as_str()).ok();
        let is_file = st
            .as_ref()
            .is_some_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_file())
            && path.starts_with('/');
        // Stdio stays what the restorer was given (the new daemon's pipes), as for pipes.
        let is_device = fd > 2
            && st.as_ref().is_some_and(|s| {
                rustix::fs::FileType::from_raw_mode(s.st_mode)
                    == rustix::fs::FileType::CharacterDevice
            })
            && STATELESS_DEVICES.contains(&path.as_str());
        let special = fdstate::special(&path, &info, flags);
        let (kind, path) = match path.strip_suffix(DELETED_SUFFIX) {
            Some(was) if is_file && st.as_ref().is_some_and(|s| s.st_nlink == 0) => {
                (FdKind::Deleted, was.to_owned())
            }
            _ if is_file && !path.ends_with(DELETED_SUFFIX) => (FdKind::Regular, path),
            _ if is_device => (FdKind::Device, path),
            _ => (special.as_ref().map_or(FdKind::Other, |s| s.kind), path),
        };
        let cloexec = flags & libc::O_CLOEXEC as u32 != 0;
        let mut entry = FdEntry {
            fd,
            kind,
            path,
            flags: flags & !(libc::O_CLOEXEC as u32),
            cloexec,
            offset,
            identity: st.as_ref().map(identity_from_stat).unwrap_or_default(),
            contents: Vec::new(),
            state: FdState::None,
        };
        if let Some(special) = special.filter(|s| s.kind == kind) {
            entry.flags = special.flags;
            entry.offset = special.offset;
            entry.state = special.state;
            if kind == FdKind::Epoll {
                watched.push((fd, special.watched_inodes));
            }
        }
        fds.push(entry);
    }
    fdstate::mark_self_pipes(&mut fds);
    fdstate::mark_socketpairs(&mut fds);
    fdstate::keep_restorable_epolls(&mut fds, &watched);
    Ok(fds)
}

/// The callback at the capture point: writes the image here or in a forked child.
extern "C" fn capture_cb(arg: *mut c_void, rsp: u64, rip: u64) -> u64 {
    // SAFETY: `arg` is the `&mut Job` capture_to/capture_in_child passed through
    // `checkpoint_here`; it is live and not otherwise borrowed during the call.
    let job = unsafe { &mut *arg.cast::<Job>() };
    if job.fork {
        job.stats.forking();
        match sys::fork() {
            Ok(0) => {
                // The scheduler lets a new child run before its parent; the rank's stall
                // ends only when the parent runs again, so the writer gives way at once.
                job.stats.child_step(false);
                rustix::thread::sched_yield();
                job.stats.child_step(true);
                if job.background {
                    sys::background();
                }
                let code = match write_image(job, rsp, rip) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("mpicr image writer: {e}");
                        1
                    }
                };
                job.stats.done();
                crate::attention::writer_done();
                sys::exit_now(code)
            }
            Ok(pid) => {
                job.child_pid = pid;
                0
            }
            Err(e) => {
                job.fork_errno = e.raw_os_error().unwrap_or(0);
                2
            }
        }
    } else {
        match write_image(job, rsp, rip) {
            Ok(()) => 0,
            Err(e) => {
                job.error = Some(e);
                3
            }
        }
    }
}

fn open_proc(path: &CStr) -> Result<OwnedFd, WriteError> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(werr("opening a /proc/self file", 0))
}

fn pread_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8], mut off: u64) -> Result<(), Errno> {
    while !buf.is_empty() {
        match rustix::io::pread(fd, &mut *buf, off) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a whole small /proc file into `buf`; returns the length.
fn read_all(fd: BorrowedFd<'_>, buf: &mut [u8], what: &'static str) -> Result<usize, WriteError> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Err(werr(what, 0)(Errno::FBIG));
        }
        match rustix::io::read(fd, &mut buf[n..]) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(werr(what, 0)(e)),
        }
    }
}

/// A FILE section (version 4): the contents of the deleted file open at `fd`, read through
/// `reader` as they are now. A file that shrinks while it is read fails the capture.
fn write_deleted_file(
    out: &mut Out<'_>,
    fd: i32,
    reader: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(), WriteError> {
    let size = rustix::fs::fstat(reader)
        .map_err(werr("reading the size of a deleted file", 0))?
        .st_size as u64;
    if size > MAX_DELETED_FILE {
        return Err(werr("saving a deleted file", size)(Errno::FBIG));
    }
    // `buf` may hold pages a write in flight still reads.
    out.settle()?;
    out.begin_section();
    out.u32(TAG_FILE)?;
    out.u64(4 + size)?;
    out.u32(fd as u32)?;
    let mut done = 0u64;
    while done < size {
        let n = buf.len().min((size - done) as usize);
        pread_exact(reader, &mut buf[..n], done).map_err(werr("reading a deleted file", done))?;
        out.put(&buf[..n])?;
        done += n as u64;
    }
    out.end_section()
}

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
/// The page is mapped by this process only (`PM_MMAP_EXCLUSIVE`): in a forked writer, a
/// private page the rank has written since the fork (its copy-on-write gave it a copy).
const PM_EXCLUSIVE: u64 = 1 << 56;

fn page_is_zero(p: &[u8]) -> bool {
    p.chunks_exact(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// Phase B. No allocation from the maps read to the end (see the module comment).
fn write_image(job: &mut Job, rsp: u64, rip: u64) -> Result<(), WriteError> {
    let mem = open_proc(c"/proc/self/mem")?;
    let pagemap = open_proc(c"/proc/self/pagemap")?;
    let maps = open_proc(c"/proc/self/maps")?;
    let stat = open_proc(c"/proc/self/stat")?;
    let img = job.file.as_fd();
    // Ranges left out of the image, in address order.
    let mut excluded = [
        job.scratch.range(),
        job.stats.range(),
        job.excluded_tables[0],
        job.excluded_tables[1],
    ];
    excluded.sort_unstable();
    let bytes = job.scratch.bytes();
    let (io, rest) = bytes.split_at_mut(IO_BUF);
    let (outbuf, rest) = rest.split_at_mut(OUT_BUF);
    let (maps_buf, rest) = rest.split_at_mut(MAPS_BUF);
    let (stat_buf, rest) = rest.split_at_mut(STAT_BUF);
    let (pm_buf, rest) = rest.split_at_mut(PAGEMAP_BUF);
    let (comp_buf, workspace) = rest.split_at_mut(COMP_BUF);
    let mut comp = Compressor::new(job.codec, workspace)
        .ok_or_else(|| werr("setting up the compressor", 0)(Errno::NOMEM))?;
    let ctr = job.stats.counters();

    // --- From here on: no allocation. ---
    let maps_len = read_all(maps.as_fd(), maps_buf, "reading /proc/self/maps")?;
    let stat_len = read_all(stat.as_fd(), stat_buf, "reading /proc/self/stat")?;
    let mut layout = Layout {
        rsp,
        rip,
        rax: RESTORED,
        ..Layout::default()
    };
    let mut sf = [0u64; 53];
    procfs::parse_stat(&stat_buf[..stat_len], &mut sf)
        .ok_or_else(|| werr("parsing /proc/self/stat", 0)(Errno::INVAL))?;
    layout.mm = MmFields {
        start_code: sf[procfs::STAT_START_CODE],
        end_code: sf[procfs::STAT_END_CODE],
        start_data: sf[procfs::STAT_START_DATA],
        end_data: sf[procfs::STAT_END_DATA],
        start_brk: sf[procfs::STAT_START_BRK],
        brk: sys::brk(),
        start_stack: sf[procfs::STAT_START_STACK],
        arg_start: sf[procfs::STAT_ARG_START],
        arg_end: sf[procfs::STAT_ARG_END],
        env_start: sf[procfs::STAT_ENV_START],
        env_end: sf[procfs::STAT_ENV_END],
    };

    job.regions.clear();
    let text = &maps_buf[..maps_len];
    let mut line_start = 0;
    while line_start < text.len() {
        let line_end = text[line_start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |p| line_start + p);
        let line = &text[line_start..line_end];
        let base = line_start;
        line_start = line_end + 1;
        let Some(l) = procfs::parse_maps_line(line) else {
            return Err(werr("parsing /proc/self/maps", 0)(Errno::INVAL));
        };
        let name_off = base + (l.path.as_ptr() as usize - line.as_ptr() as usize);
        let name = (name_off, l.path.len());
        match l.path {
            b"[vdso]" => {
                layout.vdso = (l.start, l.end);
                continue;
            }
            b"[vvar]" => {
                layout.vvar = (l.start, l.end);
                continue;
            }
            b"[vvar_vclock]" => {
                layout.vvar_vclock = (l.start, l.end);
                continue;
            }
            b"[vsyscall]" => continue,
            p if job.exclude.iter().any(|x| p.starts_with(x)) => continue,
            _ => {}
        }
        let plan = classify(&l, name);
        // Leave the scratch mapping and the hash tables out (the kernel may have merged
        // them with a neighbour).
        let mut cursor = plan.start;
        let mut pieces = [(0u64, 0u64); 5];
        let mut np = 0;
        for (xs, xe) in excluded {
            if xs >= xe || xe <= cursor || xs >= plan.end {
                continue;
            }
            if xs > cursor {
                pieces[np] = (cursor, xs);
                np += 1;
            }
            cursor = cursor.max(xe);
        }
        if cursor < plan.end {
            pieces[np] = (cursor, plan.end);
            np += 1;
        }
        for &(s, e) in &pieces[..np] {
            if job.regions.len() == job.regions.capacity() {
                return Err(werr("too many mappings", s)(Errno::NOMEM));
            }
            let off = if plan.kind.is_file() {
                plan.file_offset + (s - plan.start)
            } else {
                0
            };
            job.regions.push(RegionPlan {
                start: s,
                end: e,
                file_offset: off,
                ..plan
            });
        }
    }
    layout.n_regions = job.regions.len() as u32;

    // The vdso's code, so the restorer can check its own is the same.
    if layout.vdso.1 > layout.vdso.0 {
        let n = (layout.vdso.1 - layout.vdso.0) as usize;
        if n <= io.len() {
            pread_exact(mem.as_fd(), &mut io[..n], layout.vdso.0)
                .map_err(werr("reading the vdso", layout.vdso.0))?;
            layout.vdso_crc = crc32c::crc32c(&io[..n]);
        }
    }

    let mut out = Out::new(img, job.file_copied.as_fd(), outbuf, ctr, true);
    out.ctr.planned();
    out.put_file_only(&encode_header_flags(if job.parent.is_some() {
        HFLAG_INCREMENTAL
    } else {
        0
    }))?;
    out.begin_section();
    out.u32(TAG_META)?;
    out.u64(job.meta_bytes.len() as u64)?;
    out.put(&job.meta_bytes)?;
    out.end_section()?;
    out.u32(TAG_LAYOUT)?;
    out.u64(LAYOUT_BODY_LEN as u64)?;
    out.put(&encode_layout(&layout))?;
    out.end_section()?;
    out.u32(TAG_PARENT)?;
    out.u64(job.parent_bytes.len() as u64)?;
    out.put(&job.parent_bytes)?;
    out.end_section()?;

    let mut bufs = Bufs {
        io,
        pm: pm_buf,
        comp: comp_buf,
        comp_state: &mut comp,
    };
    // SAFETY: the chain owns both tables (shared mappings of these lengths) and keeps them
    // mapped until the capture has returned; this process (or the forked writer, which
    // inherited them) is single-threaded, and nothing else refers to them during the write.
    let prev_table: Option<&[u64]> = job
        .prev_table
        .map(|(ptr, len)| unsafe { std::slice::from_raw_parts(ptr, len) });
    // SAFETY: as above; the next table is only written here.
    let mut next_table: Option<&mut [u64]> = job
        .next_table
        .map(|(ptr, len)| unsafe { std::slice::from_raw_parts_mut(ptr, len) });
    for r in job.regions.iter() {
        let hashed =
            matches!(r.kind, RegionKind::Anon | RegionKind::AnonShared) && r.prot & PROT_R != 0;
        let prev = prev_table
            .filter(|_| hashed)
            .and_then(|t| incr::lookup(t, r.start, r.end, r.kind));
        let next = next_table
            .as_deref_mut()
            .and_then(|t| incr::add_region(t, r.start, r.end, r.kind, hashed));
        write_region(
            &mut out,
            r,
            text,
            mem.as_fd(),
            pagemap.as_fd(),
            &mut bufs,
            prev,
            next,
        )?;
    }
    for (fd, reader) in &job.deleted {
        write_deleted_file(&mut out, *fd, reader.as_fd(), bufs.io)?;
    }
    let body_len = out.pos();
    out.put_file_only(&encode_trailer_prefix(layout.n_regions, body_len))?;
    let c = out.file_crc();
    out.append_unsummed(&c.to_le_bytes())?;
    let mut ctr = out.finish()?;
    if let Some(t) = next_table {
        incr::seal(t);
    }
    ctr.end();
    Ok(())
}

fn classify(l: &MapsLine<'_>, name: (usize, usize)) -> RegionPlan {
    let prot =
        (u32::from(l.read) * PROT_R) | (u32::from(l.write) * PROT_W) | (u32::from(l.exec) * PROT_X);
    let mut flags = 0;
    if l.path == b"[stack]" {
        flags |= RFLAG_STACK;
    }
    if l.path == b"[heap]" {
        flags |= RFLAG_HEAP;
    }
    let mut plan = RegionPlan {
        start: l.start,
        end: l.end,
        prot,
        flags,
        kind: if l.shared {
            RegionKind::AnonShared
        } else {
            RegionKind::Anon
        },
        file_offset: 0,
        identity: FileIdentity::default(),
        name,
    };
    if l.path.first() == Some(&b'/') && !l.path.ends_with(b" (deleted)") && l.ino != 0 {
        // The file still at that path must be the mapped one (same device and inode);
        // otherwise the contents are stored as anonymous memory.
        let mut cpath = [0u8; MAX_STR as usize + 1];
        if l.path.len() < cpath.len() {
            cpath[..l.path.len()].copy_from_slice(l.path);
            if let Ok(c) = CStr::from_bytes_until_nul(&cpath)
                && let Ok(st) = rustix::fs::stat(c)
                && st.st_ino == l.ino
                && rustix::fs::major(st.st_dev) == l.dev_major
                && rustix::fs::minor(st.st_dev) == l.dev_minor
                && rustix::fs::FileType::from_raw_mode(st.st_mode).is_file()
            {
                plan.kind = if l.shared {
                    RegionKind::FileShared
                } else {
                    RegionKind::FilePrivate
                };
                plan.file_offset = l.offset;
                plan.identity = identity_from_stat(&st);
            }
        }
    }
    plan
}

/// The writer's buffers (all in the scratch mapping) and its compressor.
struct Bufs<'a> {
    io: &'a mut [u8],
    pm: &'a mut [u8],
    comp: &'a mut [u8],
    comp_state: &'a mut Compressor,
}

/// Writes one run: `page u64, npages u64, enc u32, len u64, crc u32, data[len]` (the crc is
/// that of the uncompressed pages for a compressed run, 0 for a raw one).
fn put_run(
    out: &mut Out<'_>,
    page: u64,
    data: &[u8],
    shared: impl Fn(usize) -> bool,
    comp: &mut [u8],
    c: &mut Compressor,
) -> Result<(), WriteError> {
    out.u64(page)?;
    out.u64(data.len() as u64 / PAGE_SIZE)?;
    let t = now_ns();
    let compressed = c.compress(data, comp);
    out.ctr.add(Step::Compute, t);
    match compressed {
        Some(n) => {
            out.u32(c.enc())?;
            out.u64(n as u64)?;
            out.u32(crc32c::crc32c(data))?;
            out.put(&comp[..n])
        }
        None => {
            out.u32(ENC_RAW)?;
            out.u64(data.len() as u64)?;
            out.u32(0)?;
            if data.len() as u64 >= ALIGNED_RUN_PAGES * PAGE_SIZE {
                // SAFETY: `data` is memory of this process that no one changes while the
                // image is written (see `write_region`), or the read buffer, which is only
                // refilled after `Out::settle`.
                unsafe { out.put_pages(data, shared) }
            } else {
                out.put(data)
            }
        }
    }
}

/// The page classes of a chunk.
const SKIP: u8 = 0;
const DATA: u8 = 1;
const ZERO: u8 = 2;

/// Writes one region. With `prev` (the hashes the parent image recorded for the same region)
/// the region is a delta: only pages whose hash changed are stored, pages that became zero as
/// zero runs. With `next` the hashes of every page are recorded there.
#[allow(clippy::too_many_arguments)]
fn write_region(
    out: &mut Out<'_>,
    r: &RegionPlan,
    text: &[u8],
    mem: BorrowedFd<'_>,
    pagemap: BorrowedFd<'_>,
    bufs: &mut Bufs<'_>,
    prev: Option<&[u64]>,
    mut next: Option<&mut [u64]>,
) -> Result<(), WriteError> {
    let io = &mut *bufs.io;
    let pm = &mut *bufs.pm;
    let name = &text[r.name.0..r.name.0 + r.name.1.min(MAX_STR as usize)];
    let flags = if prev.is_some() {
        r.flags | RFLAG_DELTA
    } else {
        r.flags
    };
    out.begin_section();
    out.u32(TAG_REGION)?;
    out.u32(r.kind as u32)?;
    out.u64(r.start)?;
    out.u64(r.end)?;
    out.u32(r.prot)?;
    out.u32(flags)?;
    out.u64(r.file_offset)?;
    let mut idb = [0u8; IDENTITY_LEN];
    FixedEnc {
        buf: &mut idb,
        pos: 0,
    }
    .identity(&r.identity);
    out.put(&idb)?;
    out.u32(name.len() as u32)?;
    out.put(name)?;

    let hashing = prev.is_some() || next.is_some();
    // Anonymous readable memory is read in place (the writer is a copy of the process: its
    // memory is the image's), without the copy through /proc/self/mem. Through it go file
    // mappings (whose pages past the file's end must never be touched), unreadable memory,
    // and the stack the writer runs on (which changes between a page's checksum and its
    // write: the copy is taken once).
    let sp = std::ptr::addr_of!(hashing) as u64;
    let direct = matches!(r.kind, RegionKind::Anon | RegionKind::AnonShared)
        && r.prot & PROT_R != 0
        && !(r.start..r.end).contains(&sp);
    let page = PAGE_SIZE as usize;
    let pages = (r.end - r.start) / PAGE_SIZE;
    let mut p = 0u64;
    while p < pages && r.kind != RegionKind::FileShared {
        let n = (pages - p).min(CHUNK_PAGES as u64) as usize;
        let chunk_addr = r.start + p * PAGE_SIZE;
        let want = |e: u64| match r.kind {
            RegionKind::AnonShared => true,
            RegionKind::Anon => e & (PM_PRESENT | PM_SWAPPED) != 0,
            RegionKind::FilePrivate => {
                e & PM_SWAPPED != 0 || (e & PM_PRESENT != 0 && e & PM_FILE == 0)
            }
            RegionKind::FileShared => false,
        };
        let t = now_ns();
        pread_exact(pagemap, &mut pm[..n * 8], chunk_addr / PAGE_SIZE * 8)
            .map_err(werr("reading /proc/self/pagemap", chunk_addr))?;
        let entry = |pm: &[u8], i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&pm[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(b)
        };
        // The private pages read in place that the writer still shares with the rank: a
        // direct write would make the writer copy each of them first, so they are copied
        // through the page cache instead (`Out::put_pages`).
        let mut shared = [0u64; CHUNK_PAGES / 64];
        if direct && r.kind == RegionKind::Anon {
            for i in 0..n {
                if entry(pm, i) & PM_EXCLUSIVE == 0 {
                    shared[i / 64] |= 1 << (i % 64);
                }
            }
        }
        let data: &[u8] = if direct {
            // SAFETY: the chunk lies in an anonymous readable mapping of this process (the
            // maps just read, with nothing mapped or unmapped since: this single-threaded
            // writer does not allocate), so every byte is readable (an unfaulted page reads
            // as zeros, and only wanted, present pages are read); nothing writes to it while
            // the slice lives.
            unsafe { std::slice::from_raw_parts(chunk_addr as *const u8, n * page) }
        } else {
            // Read the wanted pages to their place in the chunk, once the disk has what the
            // last chunk left there.
            out.settle()?;
            let mut i = 0;
            while i < n {
                if !want(entry(pm, i)) {
                    i += 1;
                    continue;
                }
                let mut j = i + 1;
                while j < n && want(entry(pm, j)) {
                    j += 1;
                }
                let addr = chunk_addr + i as u64 * PAGE_SIZE;
                pread_exact(mem, &mut io[i * page..j * page], addr)
                    .map_err(werr("reading memory", addr))?;
                i = j;
            }
            &io[..n * page]
        };
        let t = out.ctr.add(Step::Read, t);
        // Each page's hash (0: zero or not read) replaces its pagemap entry.
        for i in 0..n {
            let h = if !want(entry(pm, i)) {
                0
            } else if hashing {
                incr::page_hash(&data[i * page..(i + 1) * page])
            } else {
                u64::from(!page_is_zero(&data[i * page..(i + 1) * page]))
            };
            pm[i * 8..i * 8 + 8].copy_from_slice(&h.to_ne_bytes());
        }
        out.ctr.add(Step::Compute, t);
        let class = |pm: &[u8], i: usize| {
            let h = entry(pm, i);
            match prev {
                Some(old) if old[p as usize + i] == h => SKIP,
                Some(_) if h == 0 => ZERO,
                None if h == 0 => SKIP,
                _ => DATA,
            }
        };
        let mut a = 0;
        while a < n {
            let c = class(pm, a);
            let mut b = a + 1;
            while b < n && class(pm, b) == c {
                b += 1;
            }
            match c {
                DATA => put_run(
                    out,
                    p + a as u64,
                    &data[a * page..b * page],
                    |i| shared[(a + i) / 64] & (1 << ((a + i) % 64)) != 0,
                    bufs.comp,
                    bufs.comp_state,
                )?,
                ZERO => {
                    out.u64(p + a as u64)?;
                    out.u64((b - a) as u64)?;
                    out.u32(ENC_ZERO)?;
                    out.u64(0)?;
                    out.u32(0)?;
                }
                _ => {}
            }
            a = b;
        }
        if let Some(slot) = next.as_deref_mut() {
            for i in 0..n {
                slot[p as usize + i] = entry(pm, i);
            }
        }
        p += n as u64;
    }
    out.u64(RUN_END)?;
    out.u64(0)?;
    out.end_section()
}

#[cfg(test)]
mod tests {
    use super::child_processes;

    #[test]
    fn child_processes_are_listed_until_they_are_waited_for() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let pid = child.id();
        assert!(child_processes().expect("the list").contains(&pid));
        child.kill().expect("the child can be killed");
        // Exited but not yet waited for: still a child, whose status a restart would lose.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(child_processes().expect("the list").contains(&pid));
        child.wait().expect("the child is waited for");
        assert!(!child_processes().expect("the list").contains(&pid));
    }
}
