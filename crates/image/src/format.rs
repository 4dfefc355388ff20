//! The on-disk format of a process image (spec: `docs/image-format.md`).
//!
//! Everything is little-endian with fixed widths. The file is a header, a META section (the
//! process state that is not memory), a LAYOUT section (registers, mm fields, vdso place, region
//! count), one REGION record per mapping and a trailer whose crc32c covers every byte before it.
//! Each section carries its own crc32c as well, so a reader can say *where* an image is damaged.
//! Every length read from a file is checked against a cap before anything is allocated.

/// First bytes of every image.
pub const MAGIC: [u8; 8] = *b"MPICRIMG";
/// First bytes of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"MPICREND";
/// The format version this build writes (7: raw runs of at least [`ALIGNED_RUN_PAGES`] pages
/// start on a page boundary of the file, so the writer can hand memory to the disk with direct
/// I/O).
pub const VERSION: u32 = 7;
/// The oldest version this build still reads (version 1: raw runs, no PARENT section).
pub const MIN_VERSION: u32 = 1;
/// `arch` value for x86-64.
pub const ARCH_X86_64: u32 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Size of the trailer.
pub const TRAILER_LEN: usize = 32;
/// The only page size this version handles.
pub const PAGE_SIZE: u64 = 4096;

/// Section tags.
pub const TAG_META: u32 = u32::from_le_bytes(*b"META");
pub const TAG_LAYOUT: u32 = u32::from_le_bytes(*b"LAYT");
pub const TAG_REGION: u32 = u32::from_le_bytes(*b"REGN");
pub const TAG_PARENT: u32 = u32::from_le_bytes(*b"PRNT");
/// (Version 4) the contents of an open file that was deleted.
pub const TAG_FILE: u32 = u32::from_le_bytes(*b"FILE");
/// Most pages in one compressed run (the writer compresses what it read at once: 1 MiB).
pub const MAX_COMPRESSED_RUN_PAGES: u64 = 256;
/// (Version 7) a raw run of at least this many pages has its data at a file offset that is a
/// multiple of [`PAGE_SIZE`], after up to a page of zero bytes that follow its header. Smaller
/// runs are copied through the writer's buffer, where padding would cost more than it saves.
pub const ALIGNED_RUN_PAGES: u64 = 16;
/// Most links in a chain of incremental images.
pub const MAX_CHAIN: u32 = 1024;
/// Page index that ends the run list of a region.
pub const RUN_END: u64 = u64::MAX;

/// Value the capture primitive returns in a process that was brought back from an image.
pub const RESTORED: u64 = 0x5245_5354_4f52_4544; // "RESTORED"

// Caps on every length read from an image.
pub const MAX_META_LEN: u64 = 16 << 20;
pub const MAX_STR: u32 = 4096;
pub const MAX_REGIONS: u32 = 1 << 16;
pub const MAX_FDS: u32 = 1 << 16;
pub const MAX_SIGNALS: u32 = 64;
pub const MAX_RLIMITS: u32 = 32;
/// Interval timers (`ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`).
pub const MAX_ITIMERS: u32 = 3;
pub const MAX_AUXV: u32 = 64;
/// Largest deleted file whose contents an image holds (version 4): 64 GiB.
pub const MAX_DELETED_FILE: u64 = 64 << 30;
/// Largest region (and run) a reader accepts: 2^47 bytes, the user address space.
pub const MAX_REGION_BYTES: u64 = 1 << 47;
/// LAYOUT body size (fixed).
pub const LAYOUT_BODY_LEN: usize = 8 * (3 + 11 + 6) + 4 + 4;

/// `prot` bits of a region.
pub const PROT_R: u32 = 1;
pub const PROT_W: u32 = 2;
pub const PROT_X: u32 = 4;
/// `flags` bits of a region.
pub const RFLAG_STACK: u32 = 1;
pub const RFLAG_HEAP: u32 = 2;
/// (Version 2, incremental images) pages in no run are the parent image's at the same address.
pub const RFLAG_DELTA: u32 = 4;

/// (Version 2) what an incremental image is based on; `None` for a full image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parent {
    /// The parent image, relative to this image's directory (`../ckpt-…/rank-N.image`).
    pub path: String,
    /// Its size and whole-file crc32c (the last field of its trailer).
    pub size: u64,
    pub crc32c: u32,
    /// Links between this image and the full image its chain starts with (1 for a parent that
    /// is full).
    pub depth: u32,
}

/// Encodes the PARENT body: `incremental u32`, then for an incremental image `path str,
/// size u64, crc32c u32, depth u32`.
pub fn encode_parent(p: Option<&Parent>) -> Vec<u8> {
    let mut e = Enc::default();
    match p {
        None => e.u32(0),
        Some(p) => {
            e.u32(1);
            e.str(&p.path);
            e.u64(p.size);
            e.u32(p.crc32c);
            e.u32(p.depth);
        }
    }
    e.buf
}

/// Decodes the PARENT body.
pub fn decode_parent(buf: &[u8]) -> Result<Option<Parent>, FormatError> {
    let mut d = Dec::new(buf, "PARENT");
    let p = match d.u32()? {
        0 => None,
        1 => {
            let p = Parent {
                path: d.str()?,
                size: d.u64()?,
                crc32c: d.u32()?,
                depth: d.u32()?,
            };
            if p.depth == 0 || p.depth > MAX_CHAIN || p.path.is_empty() {
                return Err(FormatError::Invalid(format!(
                    "PARENT names {:?} at depth {}",
                    p.path, p.depth
                )));
            }
            Some(p)
        }
        k => return Err(FormatError::Invalid(format!("PARENT kind {k}"))),
    };
    d.done()?;
    Ok(p)
}

/// Identity of a file as seen at capture time; the restorer refuses a file that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
}

/// One signal's disposition, as the kernel's `rt_sigaction` sees it (x86-64 layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigAction {
    pub signo: u32,
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// What an open file descriptor was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// A regular file: reopened by path with its flags and offset.
    Regular = 1,
    /// Anything else (pipe, socket, tty, ...): recorded, not reopened.
    Other = 2,
    /// (Version 4) a regular file that was deleted while open: its contents follow the
    /// regions (a FILE section); restored as a new deleted file with those contents.
    Deleted = 3,
    /// (Version 4) a character device without state of its own (`/dev/null`, `/dev/zero`,
    /// `/dev/full`, `/dev/random`, `/dev/urandom`) at a descriptor above 2: reopened by path
    /// with its flags (stdio is the restorer's, as for pipes).
    Device = 4,
    /// (Version 5) an eventfd: `offset` holds its counter and `flags` its eventfd flags
    /// (`EFD_SEMAPHORE`, `EFD_NONBLOCK`); restored as a new eventfd with that counter.
    Eventfd = 5,
    /// (Version 5) an end of a pipe whose two ends are both open in the process (a
    /// self-pipe): `path` (`pipe:[INODE]`) names the pipe, `flags` the end (`O_RDONLY` or
    /// `O_WRONLY`) and `O_NONBLOCK`, `offset` the pipe's capacity; one read end of each pipe
    /// carries the bytes the pipe held. Restored as a new pipe holding them.
    Pipe = 6,
    /// (Version 6) a timerfd: `flags` holds `O_NONBLOCK`, [`FdEntry::state`] its clock, time
    /// left, interval and expirations not yet read; restored as a new timerfd armed with what
    /// was left.
    Timerfd = 7,
    /// (Version 6) a signalfd: `flags` holds `O_NONBLOCK`, [`FdEntry::state`] its signal mask.
    Signalfd = 8,
    /// (Version 6) an epoll instance: [`FdEntry::state`] its interest list, every watched
    /// descriptor one of the image's restored ones; restored as a new instance watching them.
    Epoll = 9,
    /// (Version 6) an end of a connected, unnamed unix stream socket whose other end is open
    /// in the process too (a socketpair): `path` (`socket:[INODE]`) names the end, `flags`
    /// holds `O_NONBLOCK`, [`FdEntry::state`] the other end, shutdowns and send buffer, and one
    /// descriptor of each end carries the bytes waiting to be read from it. Restored as a new
    /// socketpair holding them.
    UnixStream = 10,
}

/// (Version 6) What a timerfd, signalfd or epoll descriptor holds besides its flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FdState {
    /// Nothing: every other kind.
    #[default]
    None,
    Timer(TimerfdState),
    /// The signals a signalfd accepts (bit N−1 for signal N).
    Signals(u64),
    /// The descriptors an epoll instance watches.
    Watches(Vec<EpollWatch>),
    UnixStream(UnixStreamState),
}

/// One end of a socketpair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnixStreamState {
    /// The inode of the other end (its entries' path is `socket:[PEER]`).
    pub peer: u64,
    /// `RCV_SHUTDOWN` (1) and `SEND_SHUTDOWN` (2), as the kernel has them for this end.
    pub shutdown: u32,
    /// `SO_SNDBUF` as `getsockopt` gives it (twice what was set).
    pub sndbuf: u64,
}

/// Most bytes an image keeps waiting in one end of a socketpair.
pub const MAX_SOCKET_BYTES: u32 = 4 << 20;

/// A timerfd's clock and what its timer had left when the image was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerfdState {
    /// `CLOCK_REALTIME`, `CLOCK_MONOTONIC`, `CLOCK_BOOTTIME`, ...
    pub clock: u32,
    /// The flags of its last `timerfd_settime` (`TFD_TIMER_ABSTIME`, `TFD_TIMER_CANCEL_ON_SET`).
    pub settime_flags: u32,
    /// Time left to the next expiration in nanoseconds (0: disarmed).
    pub value_ns: u64,
    pub interval_ns: u64,
    /// Expirations that happened and were not read yet.
    pub ticks: u64,
}

/// One entry of an epoll interest list: the watched descriptor's number, the events (with
/// `EPOLLET`, `EPOLLONESHOT`, ... as `epoll_ctl` takes them) and the user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollWatch {
    pub fd: i32,
    pub events: u32,
    pub data: u64,
}

/// What `/proc/self/fd/N` links to for a timerfd, a signalfd and an epoll instance.
pub const TIMERFD_LINK: &str = "anon_inode:[timerfd]";
pub const SIGNALFD_LINK: &str = "anon_inode:[signalfd]";
pub const EPOLL_LINK: &str = "anon_inode:[eventpoll]";
/// What `/proc/self/fd/N` links to for a socket, before its inode and `]`.
pub const SOCKET_LINK_PREFIX: &str = "socket:[";

/// Most bytes an image keeps of one pipe: the kernel's default `pipe-max-size`, the most an
/// unprivileged process can make a pipe hold.
pub const MAX_PIPE_BYTES: u32 = 1 << 20;

/// What `/proc/self/fd/N` links to for an eventfd.
pub const EVENTFD_LINK: &str = "anon_inode:[eventfd]";

/// The devices an image reopens by path ([`FdKind::Device`]): reading or writing them depends
/// on nothing a process could have changed.
pub const STATELESS_DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// An open file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdEntry {
    pub fd: i32,
    pub kind: FdKind,
    /// For regular files the path (for deleted ones the path it had); otherwise what
    /// `/proc/self/fd/N` links to.
    pub path: String,
    /// `open` flags (`F_GETFL`), without `O_CLOEXEC`.
    pub flags: u32,
    pub cloexec: bool,
    pub offset: u64,
    pub identity: FileIdentity,
    /// (Version 5, pipes only) the bytes the pipe held, on one read end of each pipe; empty
    /// elsewhere.
    pub contents: Vec<u8>,
    /// (Version 6) the state of a timerfd, signalfd or epoll instance.
    pub state: FdState,
}

/// The process state that is not memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// `uname -r` and `uname -m` of the capturing machine.
    pub kernel_release: String,
    pub machine: String,
    /// True when glibc did not register rseq (`GLIBC_TUNABLES=glibc.pthread.rseq=0`).
    pub rseq_disabled: bool,
    pub exe_path: String,
    pub exe: FileIdentity,
    pub fs_base: u64,
    pub sigactions: Vec<SigAction>,
    pub sigmask: u64,
    pub sigpending: u64,
    pub altstack_sp: u64,
    pub altstack_flags: u32,
    pub altstack_size: u64,
    pub cwd: String,
    pub umask: u32,
    /// (resource, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    /// `/proc/self/auxv` as (type, value) pairs, AT_NULL excluded.
    pub auxv: Vec<(u64, u64)>,
    pub fds: Vec<FdEntry>,
    /// Armed interval timers (version 3).
    pub itimers: Vec<ITimer>,
    /// (Version 6) the process id, which the restorer gives back when it is free and it may.
    pub pid: u32,
}

/// An armed interval timer (`getitimer`), in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ITimer {
    /// `ITIMER_REAL` (0), `ITIMER_VIRTUAL` (1) or `ITIMER_PROF` (2).
    pub which: u32,
    pub interval_us: u64,
    /// Time to the next expiry (never 0: a disarmed timer is not recorded).
    pub value_us: u64,
}

/// The mm fields `prctl(PR_SET_MM, PR_SET_MM_MAP)` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// Registers, mm fields and the place of the vdso: what the memory layout determines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Stack pointer and resume address of the capture point.
    pub rsp: u64,
    pub rip: u64,
    /// Value the capture primitive returns in the restored process ([`RESTORED`]).
    pub rax: u64,
    pub mm: MmFields,
    /// `[vvar]`, `[vvar_vclock]`, `[vdso]` as (start, end); (0, 0) when absent.
    pub vvar: (u64, u64),
    pub vvar_vclock: (u64, u64),
    pub vdso: (u64, u64),
    /// crc32c of the `[vdso]` bytes: the restorer's own vdso must be the same code.
    pub vdso_crc: u32,
    pub n_regions: u32,
}

/// How a region is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// Private anonymous memory (heap, stack, anything whose file is gone): mapped anonymous,
    /// stored pages copied in.
    Anon = 1,
    /// Shared anonymous memory: mapped `MAP_SHARED|MAP_ANONYMOUS`, stored pages copied in.
    AnonShared = 2,
    /// A private file mapping: the file is mapped again and the pages the process changed
    /// (stored) are copied over it.
    FilePrivate = 3,
    /// A shared file mapping: the file holds the contents; nothing is stored.
    FileShared = 4,
}

impl RegionKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Anon,
            2 => Self::AnonShared,
            3 => Self::FilePrivate,
            4 => Self::FileShared,
            _ => return None,
        })
    }
    pub fn is_file(self) -> bool {
        matches!(self, Self::FilePrivate | Self::FileShared)
    }
}

/// The fixed part of a REGION record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionDesc {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub flags: u32,
    pub kind: RegionKind,
    pub file_offset: u64,
    pub identity: FileIdentity,
    /// The path of a file region, or the maps name (`[heap]`, `[stack]`, ...), maybe empty.
    pub name: String,
}

impl RegionDesc {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    pub fn pages(&self) -> u64 {
        self.len() / PAGE_SIZE
    }
}

/// Little-endian encoder into a byte vector.
#[derive(Debug, Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        let b = s.as_bytes();
        let n = b.len().min(MAX_STR as usize);
        self.u32(n as u32);
        self.buf.extend_from_slice(&b[..n]);
    }
    pub fn identity(&mut self, id: &FileIdentity) {
        self.u64(id.dev);
        self.u64(id.ino);
        self.u64(id.size);
        self.i64(id.mtime_sec);
        self.u32(id.mtime_nsec);
    }
}

/// Little-endian encoder into a fixed slice (no allocation: used while memory is read).
#[derive(Debug)]
pub struct FixedEnc<'a> {
    pub buf: &'a mut [u8],
    pub pos: usize,
}

impl FixedEnc<'_> {
    /// Panics if the slice is too small: callers size their buffers from the format's constants.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn identity(&mut self, id: &FileIdentity) {
        self.u64(id.dev);
        self.u64(id.ino);
        self.u64(id.size);
        self.bytes(&id.mtime_sec.to_le_bytes());
        self.u32(id.mtime_nsec);
    }
}

/// Size of an encoded [`FileIdentity`].
pub const IDENTITY_LEN: usize = 8 * 4 + 4;
/// Size of a REGION record's fixed part before the name bytes.
pub const REGION_FIXED_LEN: usize = 4 + 4 + 8 + 8 + 4 + 4 + 8 + IDENTITY_LEN + 4;

/// Encodes META (without section framing).
pub fn encode_meta(m: &Meta) -> Vec<u8> {
    let mut e = Enc::default();
    e.str(&m.kernel_release);
    e.str(&m.machine);
    e.u32(u32::from(m.rseq_disabled));
    e.str(&m.exe_path);
    e.identity(&m.exe);
    e.u64(m.fs_base);
    e.u32(m.sigactions.len() as u32);
    for s in &m.sigactions {
        e.u32(s.signo);
        e.u64(s.handler);
        e.u64(s.flags);
        e.u64(s.restorer);
        e.u64(s.mask);
    }
    e.u64(m.sigmask);
    e.u64(m.sigpending);
    e.u64(m.altstack_sp);
    e.u32(m.altstack_flags);
    e.u64(m.altstack_size);
    e.str(&m.cwd);
    e.u32(m.umask);
    e.u32(m.rlimits.len() as u32);
    for &(r, cur, max) in &m.rlimits {
        e.u32(r);
        e.u64(cur);
        e.u64(max);
    }
    e.u32(m.auxv.len() as u32);
    for &(k, v) in &m.auxv {
        e.u64(k);
        e.u64(v);
    }
    e.u32(m.fds.len() as u32);
    for f in &m.fds {
        e.u32(f.fd as u32);
        e.u32(f.kind as u32);
        e.str(&f.path);
        e.u32(f.flags);
        e.u32(u32::from(f.cloexec));
        e.u64(f.offset);
        e.identity(&f.identity);
        if f.kind == FdKind::Pipe {
            let n = f.contents.len().min(MAX_PIPE_BYTES as usize);
            e.u32(n as u32);
            e.buf.extend_from_slice(&f.contents[..n]);
        }
        match &f.state {
            FdState::None => {}
            FdState::Timer(t) => {
                e.u32(t.clock);
                e.u32(t.settime_flags);
                e.u64(t.value_ns);
                e.u64(t.interval_ns);
                e.u64(t.ticks);
            }
            FdState::Signals(mask) => e.u64(*mask),
            FdState::Watches(w) => {
                e.u32(w.len() as u32);
                for w in w {
                    e.u32(w.fd as u32);
                    e.u32(w.events);
                    e.u64(w.data);
                }
            }
            FdState::UnixStream(u) => {
                e.u64(u.peer);
                e.u32(u.shutdown);
                e.u64(u.sndbuf);
                let n = f.contents.len().min(MAX_SOCKET_BYTES as usize);
                e.u32(n as u32);
                e.buf.extend_from_slice(&f.contents[..n]);
            }
        }
    }
    e.u32(m.itimers.len() as u32);
    for t in &m.itimers {
        e.u32(t.which);
        e.u64(t.interval_us);
        e.u64(t.value_us);
    }
    e.u32(m.pid);
    e.buf
}

/// Encodes the LAYOUT body into a fixed array.
pub fn encode_layout(l: &Layout) -> [u8; LAYOUT_BODY_LEN] {
    let mut out = [0u8; LAYOUT_BODY_LEN];
    let mut e = FixedEnc {
        buf: &mut out,
        pos: 0,
    };
    for v in [l.rsp, l.rip, l.rax] {
        e.u64(v);
    }
    let mm = &l.mm;
    for v in [
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
    ] {
        e.u64(v);
    }
    for (a, b) in [l.vvar, l.vvar_vclock, l.vdso] {
        e.u64(a);
        e.u64(b);
    }
    e.u32(l.vdso_crc);
    e.u32(l.n_regions);
    out
}

/// What is wrong with an image. Every variant reads as one line.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read image: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an mpicr image (bad magic)")]
    BadMagic,
    #[error(
        "image format version {0} is not supported (this build reads versions {MIN_VERSION} to {VERSION})"
    )]
    Version(u32),
    #[error("image is for architecture {0}, this is x86_64")]
    Arch(u32),
    #[error("image page size {0} is not supported")]
    PageSize(u32),
    #[error("image is truncated (in {0})")]
    Truncated(&'static str),
    #[error("image is corrupt: checksum mismatch in {0}")]
    Checksum(String),
    #[error("image is corrupt: {0}")]
    Invalid(String),
    /// A [`crate::read::PageSink`] refused what it was given; the message is the sink's.
    #[error("{0}")]
    Sink(String),
}

/// Little-endian decoder over a byte slice; every read is bounds-checked.
#[derive(Debug)]
pub struct Dec<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub what: &'static str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.buf.len() - self.pos < n {
            return Err(FormatError::Truncated(self.what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(self.u64()? as i64)
    }
    pub fn count(&mut self, cap: u32, what: &str) -> Result<usize, FormatError> {
        let n = self.u32()?;
        if n > cap {
            return Err(FormatError::Invalid(format!(
                "{what} count {n} exceeds the cap {cap}"
            )));
        }
        Ok(n as usize)
    }
    pub fn str(&mut self) -> Result<String, FormatError> {
        let n = self.count(MAX_STR, "string length")?;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| FormatError::Invalid(format!("non-UTF-8 string in {}", self.what)))
    }
    pub fn identity(&mut self) -> Result<FileIdentity, FormatError> {
        Ok(FileIdentity {
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            mtime_sec: self.i64()?,
            mtime_nsec: self.u32()?,
        })
    }
    pub fn done(&self) -> Result<(), FormatError> {
        if self.pos != self.buf.len() {
            return Err(FormatError::Invalid(format!(
                "{} has {} trailing bytes",
                self.what,
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// Decodes META of an image of format `version`.
pub fn decode_meta(buf: &[u8], version: u32) -> Result<Meta, FormatError> {
    let mut d = Dec::new(buf, "META");
    let mut m = Meta {
        kernel_release: d.str()?,
        machine: d.str()?,
        rseq_disabled: d.u32()? != 0,
        exe_path: d.str()?,
        exe: d.identity()?,
        fs_base: d.u64()?,
        ..Meta::default()
    };
    let n = d.count(MAX_SIGNALS, "signal")?;
    for _ in 0..n {
        m.sigactions.push(SigAction {
            signo: d.u32()?,
            handler: d.u64()?,
            flags: d.u64()?,
            restorer: d.u64()?,
            mask: d.u64()?,
        });
    }
    m.sigmask = d.u64()?;
    m.sigpending = d.u64()?;
    m.altstack_sp = d.u64()?;
    m.altstack_flags = d.u32()?;
    m.altstack_size = d.u64()?;
    m.cwd = d.str()?;
    m.umask = d.u32()?;
    let n = d.count(MAX_RLIMITS, "rlimit")?;
    for _ in 0..n {
        m.rlimits.push((d.u32()?, d.u64()?, d.u64()?));
    }
    let n = d.count(MAX_AUXV, "auxv")?;
    for _ in 0..n {
        m.auxv.push((d.u64()?, d.u64()?));
    }
    let n = d.count(MAX_FDS, "fd")?;
    for _ in 0..n {
        let fd = d.u32()? as i32;
        let kind = match d.u32()? {
            1 => FdKind::Regular,
            2 => FdKind::Other,
            3 if version >= 4 => FdKind::Deleted,
            4 if version >= 4 => FdKind::Device,
            5 if version >= 5 => FdKind::Eventfd,
            6 if version >= 5 => FdKind::Pipe,
            7 if version >= 6 => FdKind::Timerfd,
            8 if version >= 6 => FdKind::Signalfd,
            9 if version >= 6 => FdKind::Epoll,
            10 if version >= 6 => FdKind::UnixStream,
            k => {
                return Err(FormatError::Invalid(format!(
                    "fd {fd} has unknown kind {k}"
                )));
            }
        };
        let mut entry = FdEntry {
            fd,
            kind,
            path: d.str()?,
            flags: d.u32()?,
            cloexec: d.u32()? != 0,
            offset: d.u64()?,
            identity: d.identity()?,
            contents: Vec::new(),
            state: FdState::None,
        };
        match kind {
            FdKind::Pipe => {
                let n = d.count(MAX_PIPE_BYTES, "pipe contents length")?;
                entry.contents = d.bytes(n)?.to_vec();
            }
            FdKind::Timerfd => {
                entry.state = FdState::Timer(TimerfdState {
                    clock: d.u32()?,
                    settime_flags: d.u32()?,
                    value_ns: d.u64()?,
                    interval_ns: d.u64()?,
                    ticks: d.u64()?,
                });
            }
            FdKind::Signalfd => entry.state = FdState::Signals(d.u64()?),
            FdKind::Epoll => {
                let n = d.count(MAX_FDS, "epoll watch")?;
                let mut watches = Vec::with_capacity(n);
                for _ in 0..n {
                    watches.push(EpollWatch {
                        fd: d.u32()? as i32,
                        events: d.u32()?,
                        data: d.u64()?,
                    });
                }
                entry.state = FdState::Watches(watches);
            }
            FdKind::UnixStream => {
                entry.state = FdState::UnixStream(UnixStreamState {
                    peer: d.u64()?,
                    shutdown: d.u32()?,
                    sndbuf: d.u64()?,
                });
                let n = d.count(MAX_SOCKET_BYTES, "socket contents length")?;
                entry.contents = d.bytes(n)?.to_vec();
            }
            _ => {}
        }
        m.fds.push(entry);
    }
    if version >= 3 {
        let n = d.count(MAX_ITIMERS, "interval timer")?;
        for _ in 0..n {
            let t = ITimer {
                which: d.u32()?,
                interval_us: d.u64()?,
                value_us: d.u64()?,
            };
            if t.which >= MAX_ITIMERS || t.value_us == 0 {
                return Err(FormatError::Invalid(format!(
                    "interval timer {} with value {} is not an armed timer",
                    t.which, t.value_us
                )));
            }
            m.itimers.push(t);
        }
    }
    if version >= 6 {
        m.pid = d.u32()?;
    }
    d.done()?;
    Ok(m)
}

/// Decodes the LAYOUT body.
pub fn decode_layout(buf: &[u8]) -> Result<Layout, FormatError> {
    let mut d = Dec::new(buf, "LAYOUT");
    let mut l = Layout {
        rsp: d.u64()?,
        rip: d.u64()?,
        rax: d.u64()?,
        ..Layout::default()
    };
    let mm = &mut l.mm;
    for f in [
        &mut mm.start_code,
        &mut mm.end_code,
        &mut mm.start_data,
        &mut mm.end_data,
        &mut mm.start_brk,
        &mut mm.brk,
        &mut mm.start_stack,
        &mut mm.arg_start,
        &mut mm.arg_end,
        &mut mm.env_start,
        &mut mm.env_end,
    ] {
        *f = d.u64()?;
    }
    l.vvar = (d.u64()?, d.u64()?);
    l.vvar_vclock = (d.u64()?, d.u64()?);
    l.vdso = (d.u64()?, d.u64()?);
    l.vdso_crc = d.u32()?;
    l.n_regions = d.u32()?;
    d.done()?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let m = Meta {
            kernel_release: "6.18.0".into(),
            machine: "x86_64".into(),
            rseq_disabled: true,
            exe_path: "/bin/x".into(),
            sigactions: vec![SigAction {
                signo: 10,
                handler: 1,
                flags: 2,
                restorer: 3,
                mask: 4,
            }],
            rlimits: vec![(7, 1024, 4096)],
            auxv: vec![(6, 4096)],
            fds: vec![FdEntry {
                fd: 3,
                kind: FdKind::Regular,
                path: "/tmp/f".into(),
                flags: 2,
                cloexec: true,
                offset: 10,
                identity: FileIdentity::default(),
                contents: Vec::new(),
                state: FdState::None,
            }],
            itimers: vec![ITimer {
                which: 0,
                interval_us: 20_000,
                value_us: 7_000,
            }],
            pid: 4242,
            ..Meta::default()
        };
        assert_eq!(decode_meta(&encode_meta(&m), VERSION).unwrap(), m);
        // A version 2 META has no timers and no pid (version 6): they would be trailing bytes.
        let mut v2 = m.clone();
        v2.itimers.clear();
        v2.pid = 0;
        let bytes = encode_meta(&v2);
        assert_eq!(decode_meta(&bytes[..bytes.len() - 8], 2).unwrap(), v2);
        let refused = decode_meta(&bytes, 5).unwrap_err().to_string();
        assert!(refused.contains("trailing"), "{refused}");
    }

    #[test]
    fn deleted_files_need_version_4() {
        let m = Meta {
            fds: vec![FdEntry {
                fd: 4,
                kind: FdKind::Deleted,
                path: "/tmp/scratch".into(),
                flags: 2,
                cloexec: false,
                offset: 4096,
                identity: FileIdentity::default(),
                contents: Vec::new(),
                state: FdState::None,
            }],
            ..Meta::default()
        };
        let bytes = encode_meta(&m);
        // Before version 6 META ends without the pid.
        let old = &bytes[..bytes.len() - 4];
        assert_eq!(decode_meta(old, 4).unwrap(), m);
        let refused = decode_meta(&bytes, 3).unwrap_err().to_string();
        assert!(refused.contains("fd 4 has unknown kind 3"), "{refused}");
    }

    #[test]
    fn eventfds_need_version_5() {
        let m = Meta {
            fds: vec![FdEntry {
                fd: 5,
                kind: FdKind::Eventfd,
                path: EVENTFD_LINK.into(),
                flags: libc::EFD_SEMAPHORE as u32,
                cloexec: true,
                offset: 3,
                identity: FileIdentity::default(),
                contents: Vec::new(),
                state: FdState::None,
            }],
            ..Meta::default()
        };
        let bytes = encode_meta(&m);
        // Before version 6 META ends without the pid.
        let old = &bytes[..bytes.len() - 4];
        assert_eq!(decode_meta(old, 5).unwrap(), m);
        let refused = decode_meta(&bytes, 4).unwrap_err().to_string();
        assert!(refused.contains("fd 5 has unknown kind 5"), "{refused}");
    }

    #[test]
    fn a_self_pipe_keeps_its_contents_and_needs_version_5() {
        let end = |fd, flags: i32, contents: &[u8]| FdEntry {
            fd,
            kind: FdKind::Pipe,
            path: "pipe:[4242]".into(),
            flags: flags as u32,
            cloexec: false,
            offset: 65536,
            identity: FileIdentity::default(),
            contents: contents.to_vec(),
            state: FdState::None,
        };
        let m = Meta {
            fds: vec![
                end(3, libc::O_RDONLY | libc::O_NONBLOCK, b"wake"),
                end(4, libc::O_WRONLY, b""),
            ],
            ..Meta::default()
        };
        let bytes = encode_meta(&m);
        // Before version 6 META ends without the pid.
        let old = &bytes[..bytes.len() - 4];
        assert_eq!(decode_meta(old, 5).unwrap(), m);
        let refused = decode_meta(&bytes, 4).unwrap_err().to_string();
        assert!(refused.contains("fd 3 has unknown kind 6"), "{refused}");
        // A length above the cap is refused before anything is read.
        let at = bytes
            .windows(4)
            .position(|w| w == b"wake")
            .expect("the contents are encoded")
            - 4;
        let mut big = bytes.clone();
        big[at..at + 4].copy_from_slice(&(MAX_PIPE_BYTES + 1).to_le_bytes());
        let refused = decode_meta(&big, 5).unwrap_err().to_string();
        assert!(refused.contains("pipe contents length"), "{refused}");
    }

    #[test]
    fn timerfds_signalfds_epolls_and_socketpairs_keep_their_state_and_need_version_6() {
        let entry = |fd, kind, path: &str, state| FdEntry {
            fd,
            kind,
            path: path.into(),
            flags: libc::O_NONBLOCK as u32,
            cloexec: true,
            offset: 0,
            identity: FileIdentity::default(),
            contents: Vec::new(),
            state,
        };
        let timer = TimerfdState {
            clock: libc::CLOCK_MONOTONIC as u32,
            settime_flags: 0,
            value_ns: 1_500_000_000,
            interval_ns: 3_000_000_000,
            ticks: 2,
        };
        let watches = vec![
            EpollWatch {
                fd: 3,
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                data: u64::MAX - 1,
            },
            EpollWatch {
                fd: 4,
                events: libc::EPOLLIN as u32,
                data: 4,
            },
        ];
        let m = Meta {
            fds: vec![
                entry(3, FdKind::Timerfd, TIMERFD_LINK, FdState::Timer(timer)),
                entry(4, FdKind::Signalfd, SIGNALFD_LINK, FdState::Signals(1 << 9)),
                entry(5, FdKind::Epoll, EPOLL_LINK, FdState::Watches(watches)),
                FdEntry {
                    contents: b"queued".to_vec(),
                    ..entry(
                        6,
                        FdKind::UnixStream,
                        "socket:[77]",
                        FdState::UnixStream(UnixStreamState {
                            peer: 78,
                            shutdown: 2,
                            sndbuf: 425_984,
                        }),
                    )
                },
            ],
            ..Meta::default()
        };
        let bytes = encode_meta(&m);
        assert_eq!(decode_meta(&bytes, 6).unwrap(), m);
        let refused = decode_meta(&bytes, 5).unwrap_err().to_string();
        assert!(refused.contains("fd 3 has unknown kind 7"), "{refused}");
        // An interest list longer than the cap is refused before anything is allocated.
        let data = (u64::MAX - 1).to_le_bytes();
        let at = bytes
            .windows(8)
            .position(|w| w == data)
            .expect("the first watch is encoded")
            - 12;
        let mut big = bytes.clone();
        big[at..at + 4].copy_from_slice(&(MAX_FDS + 1).to_le_bytes());
        let refused = decode_meta(&big, 6).unwrap_err().to_string();
        assert!(refused.contains("epoll watch"), "{refused}");
        let at = bytes
            .windows(6)
            .position(|w| w == b"queued")
            .expect("the queued bytes are encoded")
            - 4;
        let mut big = bytes.clone();
        big[at..at + 4].copy_from_slice(&(MAX_SOCKET_BYTES + 1).to_le_bytes());
        let refused = decode_meta(&big, 6).unwrap_err().to_string();
        assert!(refused.contains("socket contents length"), "{refused}");
    }

    #[test]
    fn layout_round_trips() {
        let l = Layout {
            rsp: 1,
            rip: 2,
            rax: RESTORED,
            vdso: (5, 6),
            n_regions: 9,
            ..Layout::default()
        };
        assert_eq!(decode_layout(&encode_layout(&l)).unwrap(), l);
    }

    #[test]
    fn decoder_rejects_huge_counts_before_allocating() {
        let mut e = Enc::default();
        e.u32(u32::MAX);
        assert!(matches!(
            Dec::new(&e.buf, "x").str(),
            Err(FormatError::Invalid(_))
        ));
    }
}
