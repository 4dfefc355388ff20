//! Black-box tests: `examples/imgtest.rs` runs a scenario straight through (reference), then
//! again up to its checkpoint, where it writes an image and is killed with SIGKILL;
//! `mpicr-restore` brings it back and the rest of its output must equal the reference's.
//! Damaged images and changed files must be refused with a clear message before the image's
//! code runs. Every process is killed if it outlives its deadline; no timing is asserted.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(120);
const MARKER: &str = "--- checkpoint ---\n";

fn imgtest() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/imgtest
    let exe = std::env::current_exe().expect("test harness");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("test harness")
        .join("examples/imgtest");
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test -p restore`, which builds the examples",
        p.display()
    );
    p
}

fn restorer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mpicr-restore"))
}

struct Output {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Waits for `child` (stdout and stderr piped) with a deadline; kills it if it overstays.
fn finish(mut child: Child) -> Output {
    let mut out = child.stdout.take().expect("test harness");
    let mut err = child.stderr.take().expect("test harness");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("test harness") {
            break st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        ok: status.success(),
        code: status.code(),
        stdout: t_out.join().expect("test harness"),
        stderr: t_err.join().expect("test harness"),
    }
}

fn imgtest_cmd(scenario: &str, mode: &str, dir: &Path, image: &Path) -> Command {
    let mut c = Command::new(imgtest());
    c.args([scenario, mode])
        .arg(dir)
        .arg(image)
        .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The reference run: its output after the checkpoint line.
fn reference(scenario: &str, dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("test harness");
    let out = finish(
        imgtest_cmd(scenario, "plain", dir, &dir.join("unused"))
            .spawn()
            .expect("test harness"),
    );
    assert!(out.ok, "reference run failed: {}", out.stderr);
    let at = out.stdout.find(MARKER).expect("no checkpoint line");
    out.stdout[at + MARKER.len()..].to_string()
}

/// Runs `scenario` up to its checkpoint in `mode` (`stop` or `fork`), waits for the image,
/// kills the process with SIGKILL; returns what it printed after the checkpoint line (nothing
/// is expected).
fn capture_and_kill(scenario: &str, mode: &str, dir: &Path, image: &Path) -> String {
    std::fs::create_dir_all(dir).expect("test harness");
    let out = run_until_captured(imgtest_cmd(scenario, mode, dir, image));
    let at = out.find(MARKER).expect("no checkpoint line");
    out[at + MARKER.len()..].to_string()
}

/// Runs `cmd` (stdout and stderr piped) until it prints `CAPTURED` on stderr, kills it with
/// SIGKILL and returns its stdout.
fn run_until_captured(cmd: Command) -> String {
    run_until_captured_with_stderr(cmd).0
}

/// [`run_until_captured`], with the lines it printed on stderr before `CAPTURED`.
fn run_until_captured_with_stderr(mut cmd: Command) -> (String, Vec<String>) {
    let mut child = cmd.spawn().expect("test harness");
    let err = child.stderr.take().expect("test harness");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(l) if l == "CAPTURED" => break,
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no image from {cmd:?}: {}", seen.join("\n"));
            }
        }
    }
    child.kill().expect("test harness");
    child.wait().expect("test harness");
    let mut out = String::new();
    let _ = child
        .stdout
        .take()
        .expect("test harness")
        .read_to_string(&mut out);
    (out, seen)
}

fn restore(image: &Path) -> Output {
    finish(restorer_cmd(image).spawn().expect("test harness"))
}

/// `mpicr-restore IMAGE` from `/`, its output piped.
fn restorer_cmd(image: &Path) -> Command {
    let mut c = Command::new(restorer());
    c.arg(image)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Whether the restorer may set the exe link (PR_SET_MM_MAP's exe_fd needs CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE); without it /proc/self/exe stays the restorer.
fn may_set_exe() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").expect("test harness");
    let eff = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 21) != 0 || eff & (1 << 40) != 0
}

fn round_trip(scenario: &str, mode: &str) {
    let tmp = tempfile::tempdir().expect("test harness");
    let mut expected = reference(scenario, &tmp.path().join("ref"));
    if !may_set_exe() {
        expected = expected.replace("exe \"imgtest\"", "exe \"mpicr-restore\"");
    }
    let dir = tmp.path().join("run");
    let image = dir.join("image");
    let after = capture_and_kill(scenario, mode, &dir, &image);
    assert_eq!(after, "", "the original printed past its checkpoint");
    let out = restore(&image);
    assert!(
        out.ok,
        "restore of {scenario}/{mode} failed ({:?}): {}",
        out.code, out.stderr
    );
    assert_eq!(out.stdout, expected, "restored {scenario}/{mode} differs");
}

/// `cmd` run with address-space randomisation off (`setarch -R`, util-linux).
fn without_aslr(cmd: &Command) -> Command {
    let mut c = Command::new("setarch");
    c.arg("-R").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// With randomisation off, the program and the restorer (both position-independent) load at
/// the same addresses, so most regions cannot be staged in place: the restorer stages them
/// elsewhere and its routine moves them into place. The restored program must not notice.
fn round_trip_over_the_restorer(scenario: &str) {
    let tmp = tempfile::tempdir().expect("test harness");
    let ref_dir = tmp.path().join("ref");
    std::fs::create_dir_all(&ref_dir).expect("test harness");
    let plain = finish(
        without_aslr(&imgtest_cmd(
            scenario,
            "plain",
            &ref_dir,
            &ref_dir.join("unused"),
        ))
        .spawn()
        .expect("test harness"),
    );
    assert!(plain.ok, "reference run failed: {}", plain.stderr);
    let at = plain.stdout.find(MARKER).expect("no checkpoint line");
    let mut expected = plain.stdout[at + MARKER.len()..].to_string();
    if !may_set_exe() {
        expected = expected.replace("exe \"imgtest\"", "exe \"mpicr-restore\"");
    }
    let dir = tmp.path().join("run");
    std::fs::create_dir_all(&dir).expect("test harness");
    let image = dir.join("image");
    let after = run_until_captured(without_aslr(&imgtest_cmd(scenario, "stop", &dir, &image)));
    let at = after.find(MARKER).expect("no checkpoint line");
    assert_eq!(
        &after[at + MARKER.len()..],
        "",
        "the original printed past its checkpoint"
    );
    let mut cmd = Command::new(restorer());
    cmd.arg(&image)
        .current_dir("/")
        .env("MPICR_IMAGE_STATS", "1");
    let out = finish(without_aslr(&cmd).spawn().expect("test harness"));
    assert!(
        out.ok,
        "restore of {scenario} failed ({:?}): {}",
        out.code, out.stderr
    );
    assert_eq!(out.stdout, expected, "restored {scenario} differs");
    let placed = out
        .stderr
        .lines()
        .find_map(|l| l.split_once(" staged=").map(|(_, v)| v.to_string()))
        .expect("the restorer reports where it staged");
    let (staged, in_place) = placed
        .split_once(" in_place=")
        .expect("staged=N in_place=M");
    let staged: usize = staged.parse().expect("a count");
    let in_place: usize = in_place.parse().expect("a count");
    assert!(
        in_place < staged,
        "no region of {scenario} had to be moved ({placed}): the test did not test that"
    );
}

/// The restored process has its old pid when the restorer may choose pids (root here), and
/// whoever started `mpicr-restore` still has a process that passes signals on to it and ends
/// as it ends (the keeper, docs/image-format.md); without the privilege it runs on with the
/// restorer's pid.
#[test]
fn the_restored_process_keeps_its_pid_and_its_starters_signals_reach_it() {
    let tmp = tempfile::tempdir().expect("test harness");
    let image = tmp.path().join("pid.img");
    capture_and_kill("pid", "stop", tmp.path(), &image);
    let mut child = restorer_cmd(&image).spawn().expect("test harness");
    let mut lines = BufReader::new(child.stdout.take().expect("test harness")).lines();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if line == "waiting" {
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("waiting"), "{seen:?}");
    let root = rustix::process::geteuid().is_root();
    assert!(seen.contains(&format!("pid kept {root}")), "{seen:?}");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .expect("the restorer's process is there");
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("test harness");
    assert_eq!(status.code(), Some(7), "{seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("terminated"),
        "{seen:?}"
    );
}

#[test]
fn regions_staged_where_the_restorer_was_are_moved_into_place() {
    for scenario in ["brk", "mmap", "stack", "filemap", "shared"] {
        round_trip_over_the_restorer(scenario);
    }
}

#[test]
fn heap_grown_by_brk() {
    round_trip("brk", "stop");
}

#[test]
fn heap_grown_by_mmap_with_sparse_zero_pages() {
    round_trip("mmap", "stop");
}

#[test]
fn private_file_mapping_modified_in_memory() {
    round_trip("filemap", "stop");
}

#[test]
fn shared_file_and_anonymous_mappings() {
    round_trip("shared", "stop");
}

#[test]
fn capture_inside_a_signal_handler_resumes_the_interrupted_code() {
    round_trip("handler", "stop");
}

#[test]
fn deep_recursion_and_stack_growth_after_restore() {
    round_trip("stack", "stop");
}

#[test]
fn thread_locals() {
    round_trip("tls", "stop");
}

#[test]
fn signal_handlers_blocked_and_pending_signals() {
    round_trip("signals", "stop");
}

#[test]
fn open_files_at_offsets_append_and_fd_numbers() {
    round_trip("files", "stop");
}

#[test]
fn cwd_environment_umask_cmdline() {
    round_trip("env", "stop");
}

#[test]
fn image_written_by_a_forked_child() {
    round_trip("brk", "fork");
    round_trip("files", "fork");
}

/// A forked writer writes with direct I/O, but the private pages it still shares with the
/// process (here all of them: the process waits for the writer without writing) go through
/// the page cache: a direct write would first give the writer a copy of each (docs/
/// image-format.md). The image restores.
#[test]
fn a_forked_writer_copies_the_pages_it_shares_through_the_page_cache() {
    let tmp = tempfile::tempdir().expect("test harness");
    let expected = reference("brk", &tmp.path().join("ref"));
    let dir = tmp.path().join("run");
    std::fs::create_dir_all(&dir).expect("test harness");
    let image = dir.join("image");
    let (_, stderr) = run_until_captured_with_stderr(imgtest_cmd("brk", "fork", &dir, &image));
    let copied: u64 = stderr
        .iter()
        .find_map(|l| l.strip_prefix("writer copied_bytes="))
        .expect("the writer's report")
        .parse()
        .expect("a count");
    // The brk scenario's heap holds several MiB of data in runs of at least 16 pages.
    assert!(copied >= 1 << 20, "{copied} bytes copied: {stderr:?}");
    let out = restore(&image);
    assert!(out.ok, "{}", out.stderr);
    let mut expected = expected;
    if !may_set_exe() {
        expected = expected.replace("exe \"imgtest\"", "exe \"mpicr-restore\"");
    }
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_restored_process_checkpoints_again() {
    let tmp = tempfile::tempdir().expect("test harness");
    let expected = reference("twice", &tmp.path().join("ref"));
    let second = "--- second checkpoint ---\n";
    let split = expected.find(second).expect("no second checkpoint line");
    let dir = tmp.path().join("run");
    let image = dir.join("image");
    capture_and_kill("twice", "stop", &dir, &image);
    // The restored process runs to its second checkpoint, writes image.2 and waits.
    let mut cmd = Command::new(restorer());
    cmd.arg(&image)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let first = run_until_captured(cmd);
    assert_eq!(first, expected[..split + second.len()]);
    let out = restore(&dir.join("image.2"));
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, expected[split + second.len()..]);
}

/// A valid image of the `brk` scenario, and the reference output after its checkpoint.
fn brk_image(tmp: &Path) -> (PathBuf, String) {
    let expected = reference("brk", &tmp.join("ref"));
    let dir = tmp.join("run");
    let image = dir.join("image");
    capture_and_kill("brk", "stop", &dir, &image);
    (image, expected)
}

fn assert_refused(image: &Path, needle: &str) {
    let out = restore(image);
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "", "the image's code ran");
    assert!(
        out.stderr.starts_with("mpicr-restore: ") && out.stderr.contains(needle),
        "expected {needle:?} in {:?}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn damaged_images_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().expect("test harness");
    let (image, expected) = brk_image(tmp.path());
    let good = std::fs::read(&image).expect("test harness");
    let bad = tmp.path().join("bad");

    let mut b = good.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&bad, &b).expect("test harness");
    assert_refused(&bad, "checksum mismatch");

    std::fs::write(&bad, &good[..good.len() / 2]).expect("test harness");
    assert_refused(&bad, "truncated");

    std::fs::write(&bad, &good[..good.len() - 1]).expect("test harness");
    assert_refused(&bad, "truncated");

    let mut b = good.clone();
    b.extend_from_slice(b"junk");
    std::fs::write(&bad, &b).expect("test harness");
    assert_refused(&bad, "after the trailer");

    let mut b = good.clone();
    b[0] = b'X';
    std::fs::write(&bad, &b).expect("test harness");
    assert_refused(&bad, "bad magic");

    let mut b = good.clone();
    b[8] = 9;
    std::fs::write(&bad, &b).expect("test harness");
    assert_refused(&bad, "version 9");

    // Padding that is not zero, under checksums that agree with it.
    std::fs::write(&bad, with_padding_spoiled(&good)).expect("test harness");
    assert_refused(&bad, "the padding before its pages is not zero");

    std::fs::write(&bad, b"").expect("test harness");
    assert_refused(&bad, "truncated");

    assert_refused(&tmp.path().join("missing"), "No such file");

    // The intact image still restores, and can be restored again.
    for _ in 0..2 {
        let out = restore(&image);
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout, expected);
    }
}

/// Staging needs the image's memory before the point of no return: when it cannot have it
/// (here an address-space limit), the restorer refuses with status 1 and nothing runs, where
/// mapping the image after its own memory was gone could only fail half-way (status 70).
#[test]
fn an_image_that_does_not_fit_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().expect("test harness");
    let dir = tmp.path().join("run");
    let image = dir.join("image");
    capture_and_kill("mmap", "stop", &dir, &image);
    let limited = finish(
        Command::new("prlimit")
            .arg(format!("--as={}:unlimited", 32 << 20))
            .arg(restorer())
            .arg(&image)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit (util-linux) runs"),
    );
    assert_eq!(limited.code, Some(1), "stderr: {}", limited.stderr);
    assert_eq!(limited.stdout, "", "the image's code ran");
    assert!(
        limited
            .stderr
            .starts_with("mpicr-restore: cannot stage the ")
            && limited.stderr.contains("Cannot allocate memory"),
        "{}",
        limited.stderr
    );
    // Without the limit the same image restores.
    let out = restore(&image);
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn changed_files_are_refused() {
    let tmp = tempfile::tempdir().expect("test harness");
    let dir = tmp.path().join("map");
    let image = dir.join("image");
    capture_and_kill("filemap", "stop", &dir, &image);
    let data = dir.join("data.bin");
    let mut bytes = std::fs::read(&data).expect("test harness");
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&data, &bytes).expect("test harness");
    assert_refused(&image, "changed since the checkpoint");
    std::fs::remove_file(&data).expect("test harness");
    assert_refused(&image, "is missing");

    let dir = tmp.path().join("files");
    let image = dir.join("image");
    capture_and_kill("files", "stop", &dir, &image);
    std::fs::write(dir.join("in.txt"), b"01234").expect("test harness");
    assert_refused(&image, "shorter than its saved offset");
}

#[test]
fn check_mode_validates_without_restoring() {
    let tmp = tempfile::tempdir().expect("test harness");
    let (image, _) = brk_image(tmp.path());
    let out = finish(
        Command::new(restorer())
            .arg("--check")
            .arg(&image)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("test harness"),
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("valid image"), "{}", out.stdout);
    assert!(!out.stdout.contains("sum"), "the image's code ran");
}

#[test]
fn capture_without_the_rseq_tunable_is_refused() {
    let tmp = tempfile::tempdir().expect("test harness");
    let out = finish(
        imgtest_cmd("brk", "stop", tmp.path(), &tmp.path().join("image"))
            .env_remove("GLIBC_TUNABLES")
            .spawn()
            .expect("test harness"),
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr.contains("GLIBC_TUNABLES=glibc.pthread.rseq=0"),
        "{}",
        out.stderr
    );
    assert!(!tmp.path().join("image").exists());
}

/// The offset of a raw run's data in an image of this build, whose header ends at `at`: large
/// runs start on a page boundary of the file (version 7).
fn skip_padding(at: usize, npages: u64) -> usize {
    if npages >= image::format::ALIGNED_RUN_PAGES {
        at.next_multiple_of(4096)
    } else {
        at
    }
}

/// `b` (an image of this build with raw runs) with a byte of the first non-empty padding
/// before a run's pages set, the region's and the file's checksums made to agree with it.
fn with_padding_spoiled(b: &[u8]) -> Vec<u8> {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let mut out = b.to_vec();
    let mut at = 32;
    let mut n_regions = 0;
    for _ in 0..3 {
        let len = u64_at(at + 4) as usize;
        if &b[at..at + 4] == b"LAYT" {
            n_regions = u32_at(at + 12 + len - 4);
        }
        at += 12 + len + 4;
    }
    for _ in 0..n_regions {
        let start = at;
        at += 80 + u32_at(at + 76) as usize;
        let mut spoiled = false;
        while u64_at(at) != u64::MAX {
            assert_eq!(u32_at(at + 16), 0, "a raw run");
            let data = skip_padding(at + 32, u64_at(at + 8));
            if data > at + 32 && !spoiled {
                out[at + 32] = 1;
                spoiled = true;
            }
            at = data + u64_at(at + 20) as usize;
        }
        at += 16;
        if spoiled {
            let crc = crc32c::crc32c(&out[start..at]);
            out[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            let n = out.len();
            let crc = crc32c::crc32c(&out[..n - 4]);
            out[n - 4..].copy_from_slice(&crc.to_le_bytes());
            return out;
        }
        at += 4;
    }
    panic!("no run of the image has padding before its pages");
}

/// Rewrites an image of this build with raw runs, no interval timers and no deleted files as
/// the version-1 image of the same process (no timer count or pid in META, no PARENT section,
/// runs without encoding, length, crc and padding), every checksum recomputed.
fn to_version_1(b: &[u8]) -> Vec<u8> {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    assert_eq!(u32_at(8), image::format::VERSION, "an image of this build");
    let mut out = b[..32].to_vec();
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&out[..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut at = 32;
    let mut n_regions = 0;
    for _ in 0..3 {
        let len = u64_at(at + 4) as usize;
        let section = &b[at..at + 12 + len + 4];
        match &b[at..at + 4] {
            b"PRNT" => assert_eq!(u32_at(at + 12), 0, "a full image"),
            b"META" => {
                // Version 1 knows only regular files and "other": the devices (version 4),
                // eventfds and self-pipes (version 5), timerfds, signalfds and epoll instances
                // (version 6) this process has open become "other", as a version-1 writer
                // recorded them.
                let mut decoded = image::format::decode_meta(&b[at + 12..at + 12 + len], u32_at(8))
                    .expect("the META section decodes");
                assert!(decoded.itimers.is_empty(), "no interval timers");
                for fd in &mut decoded.fds {
                    assert_ne!(fd.kind, image::format::FdKind::Deleted, "no deleted file");
                    if matches!(
                        fd.kind,
                        image::format::FdKind::Device
                            | image::format::FdKind::Eventfd
                            | image::format::FdKind::Pipe
                            | image::format::FdKind::Timerfd
                            | image::format::FdKind::Signalfd
                            | image::format::FdKind::Epoll
                    ) {
                        fd.contents.clear();
                        fd.state = image::format::FdState::None;
                        fd.kind = image::format::FdKind::Other;
                    }
                }
                let encoded = image::format::encode_meta(&decoded);
                // Version 1 ends before the timer count and the pid (version 6).
                let (body, timers_pid) = encoded.split_at(encoded.len() - 8);
                assert_eq!(timers_pid[..4], [0; 4], "no interval timers");
                let mut meta = b"META".to_vec();
                meta.extend_from_slice(&(body.len() as u64).to_le_bytes());
                meta.extend_from_slice(body);
                let crc = crc32c::crc32c(&meta);
                meta.extend_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&meta);
            }
            b"LAYT" => {
                n_regions = u32_at(at + 12 + len - 4);
                out.extend_from_slice(section);
            }
            _ => out.extend_from_slice(section),
        }
        at += 12 + len + 4;
    }
    for _ in 0..n_regions {
        let start = out.len();
        let name_len = u32_at(at + 76) as usize;
        out.extend_from_slice(&b[at..at + 80 + name_len]);
        at += 80 + name_len;
        loop {
            out.extend_from_slice(&b[at..at + 16]);
            let (page, npages) = (u64_at(at), u64_at(at + 8));
            at += 16;
            if page == u64::MAX {
                break;
            }
            assert_eq!(u32_at(at), 0, "a raw run");
            at += 16;
            at = skip_padding(at, npages);
            let len = npages as usize * 4096;
            out.extend_from_slice(&b[at..at + len]);
            at += len;
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        at += 4;
    }
    let body_len = out.len() as u64;
    out.extend_from_slice(b"MPICREND");
    out.extend_from_slice(&n_regions.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// `b` (a full image this build wrote; its raw runs are the only ones, which holds for the
/// processes the tests capture) made an incremental image based on `base_name`, the file
/// holding `b` itself; with `delta_kind`, the first region of that kind is marked delta.
fn incremental_on(b: &[u8], base_name: &str, delta_kind: Option<u32>) -> Vec<u8> {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let section = |tag: &[u8], body: &[u8]| {
        let mut sec = tag.to_vec();
        sec.extend_from_slice(&(body.len() as u64).to_le_bytes());
        sec.extend_from_slice(body);
        let crc = crc32c::crc32c(&sec);
        sec.extend_from_slice(&crc.to_le_bytes());
        sec
    };
    assert_eq!(u32_at(8), image::format::VERSION, "an image of this build");
    let mut out = image::encode_header_flags(image::HFLAG_INCREMENTAL).to_vec();
    let mut at = 32;
    let mut n_regions = 0;
    for _ in 0..3 {
        let len = u64_at(at + 4) as usize;
        match &b[at..at + 4] {
            b"PRNT" => {
                let parent = image::format::Parent {
                    path: base_name.into(),
                    size: b.len() as u64,
                    crc32c: u32_at(b.len() - 4),
                    depth: 1,
                };
                let body = image::format::encode_parent(Some(&parent));
                out.extend_from_slice(&section(b"PRNT", &body));
            }
            tag => {
                if tag == b"LAYT" {
                    n_regions = u32_at(at + 12 + len - 4);
                }
                out.extend_from_slice(&b[at..at + 12 + len + 4]);
            }
        }
        at += 12 + len + 4;
    }
    let mut marked = delta_kind.is_none();
    for _ in 0..n_regions {
        let start = out.len();
        let name_len = u32_at(at + 76) as usize;
        let mut record = b[at..at + 80 + name_len].to_vec();
        if !marked && Some(u32_at(at + 4)) == delta_kind {
            let flags = u32_at(at + 28) | image::format::RFLAG_DELTA;
            record[28..32].copy_from_slice(&flags.to_le_bytes());
            marked = true;
        }
        out.extend_from_slice(&record);
        at += 80 + name_len;
        loop {
            if u64_at(at) == u64::MAX {
                out.extend_from_slice(&b[at..at + 16]);
                at += 16;
                break;
            }
            // page u64, npages u64, enc u32, len u64, crc u32, (padding), data[len]
            let len = u64_at(at + 20) as usize;
            out.extend_from_slice(&b[at..at + 32]);
            let raw = u32_at(at + 16) == 0;
            let data = if raw {
                skip_padding(at + 32, u64_at(at + 8))
            } else {
                at + 32
            };
            if data > at + 32 {
                out.resize(out.len().next_multiple_of(4096), 0);
            }
            out.extend_from_slice(&b[data..data + len]);
            at = data + len;
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        at += 4;
    }
    assert!(marked, "no region of kind {delta_kind:?}");
    let body_len = out.len() as u64;
    out.extend_from_slice(&image::encode_trailer_prefix(n_regions, body_len));
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Only anonymous regions are deltas: the restorer does not keep a parent's file pages, so
/// an image with a file region marked delta is refused, while the same image with nothing
/// marked restores (so the refusal is the mark's).
#[test]
fn a_file_region_marked_delta_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().expect("test harness");
    let expected = reference("filemap", &tmp.path().join("ref"));
    let dir = tmp.path().join("map");
    let image = dir.join("image");
    capture_and_kill("filemap", "stop", &dir, &image);
    let full = std::fs::read(&image).expect("test harness");
    let file_private = 3;
    let marked = dir.join("marked");
    std::fs::write(&marked, incremental_on(&full, "image", Some(file_private)))
        .expect("test harness");
    assert_refused(&marked, "a file region marked delta");
    let plain = dir.join("plain");
    std::fs::write(&plain, incremental_on(&full, "image", None)).expect("test harness");
    let out = restore(&plain);
    assert!(out.ok, "{}", out.stderr);
    let mut expected = expected;
    if !may_set_exe() {
        expected = expected.replace("exe \"imgtest\"", "exe \"mpicr-restore\"");
    }
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_version_1_image_still_restores() {
    let tmp = tempfile::tempdir().expect("test harness");
    let (image, expected) = brk_image(tmp.path());
    let v1 = tmp.path().join("v1");
    let bytes = to_version_1(&std::fs::read(&image).expect("test harness"));
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    std::fs::write(&v1, &bytes).expect("test harness");
    let out = restore(&v1);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, expected);
}
