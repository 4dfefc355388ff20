//! Test program for the image checkpointer: `imgtest SCENARIO MODE DIR IMAGE`.
//!
//! Each scenario sets up one kind of state, prints, reaches the checkpoint line
//! `--- checkpoint ---`, then uses the state and prints more. MODE:
//! - `plain`: no capture (the reference run);
//! - `stop`: capture there, print `CAPTURED` on stderr and wait to be killed;
//! - `fork`: the same with the image written by a forked child.
//!
//! In a process restored from the image the capture returns `Restored` and the scenario goes
//! on, so the restored output must equal the reference run's output after the line.
//! Run with GLIBC_TUNABLES=glibc.pthread.rseq=0.

// A test program: a panic is its failure report, and its unsafe blocks are short libc sequences.
#![allow(clippy::unwrap_used, clippy::multiple_unsafe_ops_per_block)]

use std::cell::{Cell, RefCell};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

struct Ctx {
    mode: String,
    dir: PathBuf,
    image: PathBuf,
}

impl Ctx {
    fn checkpoint(&self) {
        println!("--- checkpoint ---");
        self.capture(&self.image);
    }

    fn capture(&self, image: &Path) {
        std::io::stdout().flush().unwrap();
        match self.mode.as_str() {
            "plain" => {}
            "stop" => match image::capture_to(image) {
                Ok(image::Outcome::Captured) => wait_to_be_killed(),
                Ok(image::Outcome::Restored) => {}
                Err(e) => fail(e),
            },
            "fork" => match image::capture_in_child(image) {
                Ok(image::ChildOutcome::Started(mut c)) => {
                    c.wait().unwrap_or_else(|e| fail(e));
                    eprintln!("writer copied_bytes={}", c.report().copied);
                    wait_to_be_killed()
                }
                Ok(image::ChildOutcome::Restored) => {}
                Err(e) => fail(e),
            },
            m => fail(format!("unknown mode {m}")),
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("imgtest: {e}");
    std::process::exit(3);
}

fn wait_to_be_killed() -> ! {
    eprintln!("CAPTURED");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn sum(v: &[u8]) -> u64 {
    v.iter().enumerate().fold(0u64, |a, (i, &b)| {
        a.wrapping_mul(31).wrapping_add(u64::from(b) ^ i as u64)
    })
}

fn brk_heap(c: &Ctx) {
    let mut boxes: Vec<Box<[u64; 8]>> = (0..20_000u64).map(|i| Box::new([i * 7; 8])).collect();
    println!("boxes {}", boxes.len());
    c.checkpoint();
    let s: u64 = boxes.iter().map(|b| b.iter().sum::<u64>()).sum();
    println!("sum {s}");
    boxes.extend((0..10_000u64).map(|i| Box::new([i; 8])));
    boxes.retain(|b| b[0] % 2 == 0);
    let s: u64 = boxes.iter().map(|b| b[7]).sum();
    println!("after more allocations: {} boxes, sum {s}", boxes.len());
    // The kernel's brk must be the image's: growing it by hand lands right after it.
    // SAFETY: brk(0) only reports; growing the break by 1 MiB past glibc's heap top is unused
    // memory glibc does not know about, then given back.
    let (now, grown, back) = unsafe {
        let now = libc::syscall(libc::SYS_brk, 0usize) as usize;
        let grown = libc::syscall(libc::SYS_brk, now + (1 << 20)) as usize;
        let back = libc::syscall(libc::SYS_brk, now) as usize;
        (now, grown, back)
    };
    println!(
        "brk grows in place: {}",
        grown == now + (1 << 20) && back == now
    );
    println!("heap region ends at brk: {}", heap_end() == Some(now));
}

fn heap_end() -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps.lines().find(|l| l.ends_with("[heap]"))?;
    let range = line.split_whitespace().next()?;
    usize::from_str_radix(range.split_once('-')?.1, 16).ok()
}

fn mmap_heap(c: &Ctx) {
    let bufs: Vec<Vec<u8>> = (0..4u32)
        .map(|k| {
            (0..8u32 << 20)
                .map(|j| (j.wrapping_mul(31) ^ k) as u8)
                .collect()
        })
        .collect();
    let mut sparse = vec![0u8; 64 << 20];
    for i in (0..sparse.len()).step_by(1 << 20) {
        sparse[i] = (i >> 20) as u8;
    }
    println!("bufs {}", bufs.len());
    c.checkpoint();
    for b in &bufs {
        println!("buf {}", sum(b));
    }
    println!("sparse {}", sum(&sparse));
    let more = vec![7u8; 16 << 20];
    println!("more {}", sum(&more));
}

fn file_map(c: &Ctx) {
    let path = c.dir.join("data.bin");
    let data: Vec<u8> = (0..64u32 << 10).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    // SAFETY: a fresh private mapping of a file this program created; nothing else maps it.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            data.len(),
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE,
            &f,
            0,
        )
    }
    .unwrap();
    drop(f);
    // SAFETY: the mapping is live for the rest of the program and only used through `m`.
    let m = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), data.len()) };
    m[3 * 4096..3 * 4096 + 100].fill(0xee);
    println!("mapped {}", sum(m));
    c.checkpoint();
    println!("mapped after {}", sum(m));
    println!(
        "page 3 byte {:#x}, page 5 byte {:#x}",
        m[3 * 4096 + 5],
        m[5 * 4096 + 5]
    );
    println!("file on disk {}", sum(&std::fs::read(&path).unwrap()));
    m[9 * 4096] = 1;
    println!("written again {}", sum(m));
}

fn shared(c: &Ctx) {
    let path = c.dir.join("shared.bin");
    std::fs::write(&path, vec![b'.'; 3 * 4096]).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let rw = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    // SAFETY: a fresh shared mapping of a file this program created; only `file` uses it.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            3 * 4096,
            rw,
            rustix::mm::MapFlags::SHARED,
            &f,
            0,
        )
    }
    .unwrap();
    // SAFETY: the mapping is live for the rest of the program and only used through `file`.
    let file = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 3 * 4096) };
    // SAFETY: a fresh anonymous shared mapping.
    let q = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            4 * 4096,
            rw,
            rustix::mm::MapFlags::SHARED,
        )
    }
    .unwrap();
    // SAFETY: as above, only used through `anon`.
    let anon = unsafe { std::slice::from_raw_parts_mut(q.cast::<u8>(), 4 * 4096) };
    file[..5].copy_from_slice(b"hello");
    anon[4096..4101].copy_from_slice(b"world");
    c.checkpoint();
    println!("file {:?}", String::from_utf8_lossy(&file[..8]));
    println!("anon {:?}", String::from_utf8_lossy(&anon[4096..4104]));
    file[4096..4101].copy_from_slice(b"again");
    anon[0] = b'!';
    let disk = std::fs::read(&path).unwrap();
    println!("disk {:?}", String::from_utf8_lossy(&disk[4096..4104]));
    println!("anon first {}", anon[0] as char);
}

static ALARM_CTX: std::sync::OnceLock<Ctx> = std::sync::OnceLock::new();
static FIRED: AtomicU64 = AtomicU64::new(0);

/// Captures from inside a SIGALRM handler that interrupted a computation at an arbitrary
/// instruction. The restored process returns from the handler through sigreturn, which
/// reloads every register of the interrupted loop from the restored signal frame.
extern "C" fn on_alarm(_: libc::c_int) {
    if FIRED.fetch_add(1, Ordering::SeqCst) == 0
        && let Some(c) = ALARM_CTX.get()
    {
        c.capture(&c.image);
    }
}

fn in_handler(c: Ctx) {
    let c = ALARM_CTX.get_or_init(|| c);
    install(libc::SIGALRM, on_alarm);
    println!("--- checkpoint ---");
    std::io::stdout().flush().unwrap();
    let t = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        },
    };
    // SAFETY: arms a one-shot timer; the handler is installed.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) };
    // No allocation and no system call in this loop: the handler may run anywhere in it.
    let mut acc = 0u64;
    let mut x = 0x1234_5678u64;
    for i in 0..100_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x ^ i);
    }
    while FIRED.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = c;
    println!("acc {acc}");
    println!("alarms {}", FIRED.load(Ordering::SeqCst));
}

/// Two checkpoints: the second is taken by a process restored from the first.
fn twice(c: &Ctx) {
    let mut v: Vec<u64> = (0..1000).collect();
    c.checkpoint();
    v.iter_mut().for_each(|x| *x *= 3);
    println!("first half {}", v.iter().sum::<u64>());
    let mut second = c.image.as_os_str().to_owned();
    second.push(".2");
    println!("--- second checkpoint ---");
    c.capture(Path::new(&second));
    v.extend(0..10);
    println!("second half {} {}", v.len(), v.iter().sum::<u64>());
}

fn recurse(c: &Ctx, depth: u32, at: u32) -> u64 {
    let local = [u64::from(depth); 16];
    let below = if depth == at {
        c.checkpoint();
        0
    } else if depth < at {
        recurse(c, depth + 1, at)
    } else {
        0
    };
    std::hint::black_box(&local);
    below + local.iter().sum::<u64>() / 16
}

fn deep(d: u32) -> u64 {
    let local = [u64::from(d); 32];
    std::hint::black_box(&local);
    if d == 0 {
        0
    } else {
        deep(d - 1) + local[d as usize % 32]
    }
}

fn stack(c: &Ctx) {
    println!("recursing");
    let s = recurse(c, 0, 10_000);
    println!("recursion sum {s}");
    println!("deeper {}", deep(12_000));
}

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static NAMES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn tls(c: &Ctx) {
    COUNTER.with(|x| x.set(42));
    NAMES.with(|n| n.borrow_mut().push("first".into()));
    c.checkpoint();
    COUNTER.with(|x| x.set(x.get() + 1));
    NAMES.with(|n| n.borrow_mut().push("second".into()));
    println!("counter {}", COUNTER.with(Cell::get));
    println!("names {:?}", NAMES.with(|n| n.borrow().clone()));
}

static USR1: AtomicU64 = AtomicU64::new(0);
static USR2: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    USR1.fetch_add(1, Ordering::SeqCst);
}
extern "C" fn on_usr2(_: libc::c_int) {
    USR2.fetch_add(1, Ordering::SeqCst);
}

fn install(sig: libc::c_int, h: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction with a handler that only touches an atomic is valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = h as usize;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
}

fn mask(how: libc::c_int, sig: libc::c_int) {
    // SAFETY: plain signal-set calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        assert_eq!(libc::sigprocmask(how, &set, std::ptr::null_mut()), 0);
    }
}

fn pending(sig: libc::c_int) -> bool {
    // SAFETY: sigpending writes into a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        libc::sigismember(&set, sig) == 1
    }
}

fn signals(c: &Ctx) {
    install(libc::SIGUSR1, on_usr1);
    install(libc::SIGUSR2, on_usr2);
    mask(libc::SIG_BLOCK, libc::SIGUSR2);
    // SAFETY: raising a signal whose handler is installed.
    unsafe { libc::raise(libc::SIGUSR2) };
    println!("usr2 pending {}", pending(libc::SIGUSR2));
    c.checkpoint();
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGUSR1) };
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGUSR1) };
    println!("usr1 count {}", USR1.load(Ordering::SeqCst));
    println!("usr2 pending {}", pending(libc::SIGUSR2));
    mask(libc::SIG_UNBLOCK, libc::SIGUSR2);
    println!("usr2 count {}", USR2.load(Ordering::SeqCst));
}

fn files(c: &Ctx) {
    let input = c.dir.join("in.txt");
    std::fs::write(&input, b"0123456789abcdefghijklmnopqrstuvwxyz").unwrap();
    let mut f = std::fs::File::open(&input).unwrap();
    let mut b = [0u8; 10];
    f.read_exact(&mut b).unwrap();
    println!("read {}", String::from_utf8_lossy(&b));
    // SAFETY: dup2 onto a number this program does not use; the new File owns it.
    let mut f42 = unsafe {
        assert_eq!(libc::dup2(f.as_raw_fd(), 42), 42);
        std::fs::File::from_raw_fd(42)
    };
    drop(f);
    let log = c.dir.join("log.txt");
    let mut l = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log)
        .unwrap();
    l.write_all(b"before\n").unwrap();
    c.checkpoint();
    f42.read_exact(&mut b).unwrap();
    println!("read at fd 42: {}", String::from_utf8_lossy(&b));
    println!("offset {}", f42.stream_position().unwrap());
    l.write_all(b"after\n").unwrap();
    println!("log {:?}", std::fs::read_to_string(&log).unwrap());
}

fn env(c: &Ctx) {
    let sub = c.dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::env::set_current_dir(&sub).unwrap();
    // SAFETY: single-threaded program.
    unsafe { std::env::set_var("MPICR_TEST_VAR", "hello") };
    rustix::process::umask(rustix::fs::Mode::from_bits_retain(0o027));
    c.checkpoint();
    let cwd = std::env::current_dir().unwrap();
    println!("cwd ends with sub: {}", cwd.ends_with("sub"));
    std::fs::write("here.txt", b"x").unwrap();
    println!("relative write landed: {}", sub.join("here.txt").exists());
    println!("var {:?}", std::env::var("MPICR_TEST_VAR"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let um = status.lines().find(|l| l.starts_with("Umask")).unwrap();
    println!("{um}");
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    println!("cmdline args {}: {}", args.len(), args[1]);
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    println!("exe {:?}", exe.file_name().unwrap());
}

static TERM: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_term(_: libc::c_int) {
    TERM.fetch_add(1, Ordering::SeqCst);
}

/// After the checkpoint: whether the process id (and the thread id, which glibc caches) are
/// the ones before it, then `waiting` and up to 20 s for a SIGTERM, on which it exits with
/// status 7 (the test signals the process it started, the restorer).
fn pid(c: &Ctx) {
    let before = std::process::id();
    install(libc::SIGTERM, on_term);
    c.checkpoint();
    // SAFETY: gettid takes no arguments.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    println!("pid kept {}", std::process::id() == before && tid == before);
    println!("waiting");
    std::io::stdout().flush().unwrap();
    for _ in 0..2000 {
        if TERM.load(Ordering::SeqCst) > 0 {
            println!("terminated");
            std::io::stdout().flush().unwrap();
            std::process::exit(7);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        fail("usage: imgtest SCENARIO MODE DIR IMAGE");
    }
    let c = Ctx {
        mode: a[2].clone(),
        dir: PathBuf::from(&a[3]),
        image: PathBuf::from(&a[4]),
    };
    assert!(Path::new(&c.dir).is_dir());
    println!("scenario {}", a[1]);
    match a[1].as_str() {
        "brk" => brk_heap(&c),
        "mmap" => mmap_heap(&c),
        "filemap" => file_map(&c),
        "stack" => stack(&c),
        "shared" => shared(&c),
        "twice" => twice(&c),
        "handler" => in_handler(c),
        "tls" => tls(&c),
        "signals" => signals(&c),
        "files" => files(&c),
        "env" => env(&c),
        "pid" => pid(&c),
        s => fail(format!("unknown scenario {s}")),
    }
    println!("done");
}
