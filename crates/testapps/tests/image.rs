//! The transparent (`image`) checkpointer on real MPI jobs: `mpicr-image-ring`, which has no
//! checkpoint code at all, is checkpointed at a random moment (inside whatever MPI call each
//! rank is in), a rank is killed with SIGKILL, the job is restarted from the process images,
//! and what it prints must be exactly the rest of what an uninterrupted run prints.

mod harness;

use std::time::Duration;

use harness::snap::{
    assert_continues, committed, kill_rank, ok, random_moment, rank_pid, wait_for_snapshots,
};
use harness::{Out, Sandbox, bin, mpicc};
use std::sync::OnceLock;

const STEPS: &str = "400";
/// Milliseconds each step of a checkpointed run sleeps, so that it is still running when the
/// checkpoint is asked for.
const SLOW: &str = "3";
/// The checkpoint is asked for this long (at most) after the job started.
const MOMENT: Duration = Duration::from_millis(400);

fn image_job<'a>(n: &'a str, transport: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-n", n, "--transport", transport, "--crs", "image"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "image-ring", STEPS, SLOW]);
    args
}

/// Uninterrupted; then checkpointed at a random moment, a rank SIGKILLed, restarted.
fn kill_and_restart(n: u32, transport: &str) {
    assert!(bin("mpicr-restore").exists());
    let sandbox = Sandbox::new();
    let ranks = n.to_string();
    let reference = sandbox.mpicr(&[
        "run",
        "-n",
        &ranks,
        "--transport",
        transport,
        "--",
        "image-ring",
        STEPS,
    ]);
    let name = format!("img{n}{transport}");
    let job = sandbox.start_job(&name, &image_job(&ranks, transport, &[]));
    std::thread::sleep(random_moment(MOMENT));
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", &name]));
    assert_eq!(snapshot, format!("{name}.1"));
    kill_rank(&sandbox, &name, n as usize - 1, 0);
    let killed = job.finish();
    assert_ne!(killed.code, Some(0), "the job failed with its rank");
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(
        &reference,
        &restarted,
        &format!("{n} ranks over {transport}"),
    );
}

#[test]
fn image_restart_after_sigkill_continues_the_output_on_2_and_4_ranks_over_shm() {
    kill_and_restart(2, "shm");
    kill_and_restart(4, "shm");
}

#[test]
fn image_restart_after_sigkill_continues_the_output_on_2_and_4_ranks_over_tcp() {
    kill_and_restart(2, "tcp");
    kill_and_restart(4, "tcp");
}

#[test]
fn a_restored_job_is_checkpointed_again_and_restored_again() {
    let sandbox = Sandbox::new();
    let reference = sandbox.mpicr(&["run", "-n", "3", "--", "image-ring", STEPS]);
    let job = sandbox.start_job("again", &image_job("3", "shm", &[]));
    assert_eq!(
        committed(&sandbox.mpicr(&["checkpoint", "again"])),
        "again.1"
    );
    std::thread::sleep(random_moment(MOMENT));
    assert_eq!(
        committed(&sandbox.mpicr(&["checkpoint", "again"])),
        "again.2"
    );
    job.kill();
    // The restarted job, made of restored processes, is imaged again and killed again.
    let restarted = sandbox.start(&["restart", "again"]);
    sandbox.wait_for_job("again");
    std::thread::sleep(random_moment(MOMENT));
    assert_eq!(
        committed(&sandbox.mpicr(&["checkpoint", "again"])),
        "again.3"
    );
    restarted.kill();
    let last = sandbox.mpicr(&["restart", "again.3"]);
    assert_continues(&reference, &last, "the restart of a restart");
}

#[test]
fn a_failed_rank_is_recovered_from_the_images_of_the_last_checkpoint() {
    let sandbox = Sandbox::new();
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", "image-ring", STEPS]);
    let job = sandbox.start_job(
        "auto",
        &image_job(
            "2",
            "shm",
            &["--checkpoint-every", "300ms", "--max-restarts", "1"],
        ),
    );
    wait_for_snapshots(&sandbox, "auto", 1);
    kill_rank(&sandbox, "auto", 1, 0);
    let out = job.finish();
    ok(&out, "the recovered job");
    assert_eq!(
        out.stderr
            .matches("recovering job auto from snapshot")
            .count(),
        1,
        "{}",
        out.stderr
    );
    let result = |o: &Out| {
        o.stdout
            .lines()
            .find(|l| l.starts_with("result "))
            .map(str::to_owned)
    };
    assert_eq!(result(&out), result(&reference), "{}", out.stderr);
    // What the recovered ranks printed continues the run: the last lines are the reference's.
    let tail: Vec<&str> = out.stdout.lines().rev().take(5).collect();
    let want: Vec<&str> = reference.stdout.lines().rev().take(5).collect();
    assert_eq!(tail, want);
}

#[test]
fn a_corrupted_image_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job("rot", &image_job("2", "shm", &[]));
    let name = committed(&sandbox.mpicr(&["checkpoint", "rot"]));
    job.kill();
    let image = sandbox.snapshots().join("rot/1/rank-1.image");
    let original = std::fs::read(&image).expect("the image exists");
    // A flipped bit inside the memory: `mpicr restart` checks sizes and trailers only, rank
    // 1's restorer reads its image whole and refuses it before it changes anything, and the
    // job ends with that rank's status before any program code ran.
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&image, &bytes).expect("rewritten");
    let out = sandbox.mpicr(&["restart", &name]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the job ran: {}", out.stdout);
    assert!(
        out.stderr.lines().any(|l| l.contains("mpicr-restore")
            && l.contains("rank-1.image")
            && l.contains("checksum mismatch")),
        "the restorer names the image and the damage: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("mpicr: the restore of rank 1 failed")
                && l.contains("mpicr-restore (pid")
                && l.contains("exited with status 1")),
        "the launcher says which rank's restore failed: {}",
        out.stderr
    );
    // A truncated image is refused by `mpicr restart` itself, before any rank starts.
    std::fs::write(&image, &original[..original.len() - 4096]).expect("truncated");
    let out = sandbox.mpicr(&["restart", &name]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the job ran: {}", out.stdout);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("rank-1.image") && l.contains("nothing was started")),
        "the message names the image: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("mpicr-restore"),
        "a restorer was started: {}",
        out.stderr
    );
    // A missing image is refused the same way.
    std::fs::write(&image, &original).expect("restored");
    std::fs::remove_file(sandbox.snapshots().join("rot/1/rank-0.image")).expect("removed");
    let out = sandbox.mpicr(&["restart", &name]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("rank-0.image"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was started"), "{}", out.stderr);
}

/// `tests/c/image_ring.c` built with our `mpicc` (once per test process).
fn c_ring() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| mpicc("image_ring", &[]))
}

/// A rank with a second thread cannot be saved as an image: the default checkpointer refuses
/// the checkpoint with that reason and names `--crs self`, and the job computes on to the
/// result of an uninterrupted run.
#[test]
fn a_multi_threaded_rank_is_refused_naming_crs_self_and_the_job_goes_on() {
    let sandbox = Sandbox::new();
    let prog = mpicc("threaded", &["-pthread"]);
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", &prog, "500"]);
    ok(&reference, "the uninterrupted run");
    let job = sandbox.start_job("threads", &["-n", "2", "--", &prog, "500", "10"]);
    job.wait_for_lines(1);
    let refused = sandbox.mpicr(&["checkpoint", "threads"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let reason = refused.stderr.lines().last().unwrap_or_default();
    assert!(
        reason.starts_with("mpicr: checkpoint 1 of job threads failed: rank ")
            && reason.contains("the process has 2 threads")
            && reason.contains("single-threaded")
            && reason.ends_with("checkpoint this program with --crs self"),
        "{}",
        refused.stderr
    );
    let finished = job.finish();
    ok(&finished, "the job after the refused checkpoint");
    assert_eq!(finished.stdout, reference.stdout);
}

/// A checkpoint that reaches a rank while a child it forked lives (`tests/c/forked_child.c`):
/// an image cannot hold the child, so the rank refuses the checkpoint for the moment, the
/// coordinator asks again, and the checkpoint it then takes restarts to the uninterrupted
/// result. (An image taken while the child lived restarts into a rank with no child to wait
/// for, which the program reports and exits 3 for.)
#[test]
fn a_checkpoint_waits_until_the_rank_s_forked_child_has_been_waited_for() {
    let sandbox = Sandbox::new();
    let prog = mpicc("forked_child", &[]);
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", &prog, "400"]);
    ok(&reference, "the uninterrupted run");
    assert!(
        reference
            .stdout
            .contains("the forked child exited with status 7"),
        "{}",
        reference.stdout
    );
    let name = "forked";
    let job = sandbox.start_job(
        name,
        &["-n", "2", "--crs", "image", "--", &prog, "400", "10"],
    );
    wait_until_said(&job, name, "forked");
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", name]));
    kill_rank(&sandbox, name, 0, 0);
    let killed = job.finish();
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(&reference, &restarted, "the restart of the forking program");
    assert!(
        killed.stderr.contains("child processes") && killed.stderr.contains("asking again"),
        "the first attempt was not refused for the rank's child:\n{}",
        killed.stderr
    );
}

/// The C program through libmpi: checkpointed at a random moment, a rank killed, restarted.
fn c_kill_and_restart(n: &str, transport: &str) {
    let sandbox = Sandbox::new();
    let prog = c_ring();
    let reference = sandbox.mpicr(&["run", "-n", n, "--transport", transport, "--", prog, STEPS]);
    let name = format!("c{n}{transport}");
    let job = sandbox.start_job(
        &name,
        &[
            "-n",
            n,
            "--transport",
            transport,
            "--crs",
            "image",
            "--",
            prog,
            STEPS,
            SLOW,
        ],
    );
    std::thread::sleep(random_moment(MOMENT));
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", &name]));
    kill_rank(&sandbox, &name, 0, 0);
    job.finish();
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(
        &reference,
        &restarted,
        &format!("C on {n} ranks over {transport}"),
    );
}

#[test]
fn a_c_program_through_libmpi_restarts_from_its_images_over_shm_and_tcp() {
    c_kill_and_restart("2", "shm");
    c_kill_and_restart("4", "shm");
    c_kill_and_restart("2", "tcp");
    c_kill_and_restart("4", "tcp");
}

/// `tests/c/isend_flood.c`: every step each of two ranks starts 3 MiB of non-blocking 32 KiB
/// (eager) sends to the other, stays out of MPI, then receives; most sends find the 1 MiB ring
/// full and wait in the sender's queue as the program's own buffers. Every word is checked
/// inside the job. The shared-memory run must print what the TCP run prints.
#[test]
fn isends_that_overflow_the_ring_arrive_whole_and_in_order_over_shm_as_over_tcp() {
    let sandbox = Sandbox::new();
    let prog = mpicc("isend_flood", &[]);
    let run = |transport| {
        let out = sandbox.mpicr(&[
            "run",
            "-n",
            "2",
            "--transport",
            transport,
            "--",
            &prog,
            "12",
            "5",
        ]);
        ok(&out, transport);
        out
    };
    let (shm, tcp) = (run("shm"), run("tcp"));
    assert_eq!(shm.stdout.lines().count(), 13, "{}", shm.stdout);
    assert_eq!(shm.stdout, tcp.stdout);
}

/// The same program checkpointed at a random moment (mostly while its sends wait in the queue
/// for a peer that is away, so the drain must write them out before its marker), a rank
/// SIGKILLed, restarted from the images: it prints the rest of the uninterrupted run's output.
#[test]
fn isends_queued_for_a_full_ring_restart_from_images_taken_while_they_wait() {
    let sandbox = Sandbox::new();
    let prog = mpicc("isend_flood", &[]);
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", &prog, "100"]);
    let job = sandbox.start_job(
        "flood",
        &["-n", "2", "--crs", "image", "--", &prog, "100", "10"],
    );
    std::thread::sleep(random_moment(MOMENT));
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", "flood"]));
    kill_rank(&sandbox, "flood", 1, 0);
    job.finish();
    let restarted = sandbox.mpicr(&["restart", &snapshot]);
    assert_continues(
        &reference,
        &restarted,
        "the flood restarted from its images",
    );
}

/// `mpicr-restore --check IMAGE`.
fn check_image(image: &std::path::Path) -> std::process::Output {
    std::process::Command::new(bin("mpicr-restore"))
        .arg("--check")
        .arg(image)
        .output()
        .expect("mpicr-restore runs")
}

/// The bytes `--check` says it decompressed: "(N compressed)".
fn compressed_bytes(check: &std::process::Output) -> u64 {
    let text = String::from_utf8_lossy(&check.stdout);
    let after = text.split(" bytes of memory stored (").nth(1).unwrap_or("");
    after
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no compressed count in {text:?}"))
}

#[test]
fn every_compression_restarts_to_the_uninterrupted_output() {
    let sandbox = Sandbox::new();
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", "image-ring", STEPS]);
    for codec in ["zstd", "lz4", "none"] {
        let name = format!("z{codec}");
        // `none` also with every image full (no hash tables at all).
        let every = if codec == "none" { "1" } else { "8" };
        let job = sandbox.start_job(
            &name,
            &image_job("2", "shm", &["--compress", codec, "--full-every", every]),
        );
        std::thread::sleep(random_moment(MOMENT));
        let snapshot = committed(&sandbox.mpicr(&["checkpoint", &name]));
        kill_rank(&sandbox, &name, 1, 0);
        job.finish();
        let image = sandbox.snapshots().join(&name).join("1/rank-0.image");
        let check = check_image(&image);
        assert!(check.status.success(), "{check:?}");
        let staged = compressed_bytes(&check);
        if codec == "none" {
            assert_eq!(staged, 0, "{codec}: {check:?}");
        } else {
            assert!(staged > 0, "{codec}: nothing was compressed: {check:?}");
        }
        let restarted = sandbox.mpicr(&["restart", &snapshot]);
        assert_continues(&reference, &restarted, &format!("--compress {codec}"));
    }
}

/// Per region record: (record start, crc offset).
type RegionSpans = Vec<(usize, usize)>;
/// Per run: (data offset, length, encoding).
type RunSpans = Vec<(usize, usize, u32)>;

/// Walks an image of this build: where its region records and its runs are (FILE sections
/// follow the regions).
fn image_records(b: &[u8]) -> (RegionSpans, RunSpans) {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    assert_eq!(
        u32_at(8),
        image_format::format::VERSION,
        "an image of this build"
    );
    let mut at = 32;
    let mut n_regions = 0;
    for _ in 0..3 {
        // META, LAYOUT, PARENT: tag, len, body, crc.
        let len = u64_at(at + 4) as usize;
        if &b[at..at + 4] == b"LAYT" {
            n_regions = u32_at(at + 12 + len - 4);
        }
        at += 12 + len + 4;
    }
    let (mut regions, mut runs) = (Vec::new(), Vec::new());
    for _ in 0..n_regions {
        let start = at;
        let name_len = u32_at(at + 40 + 36) as usize;
        at += 40 + 36 + 4 + name_len;
        loop {
            let (page, npages) = (u64_at(at), u64_at(at + 8));
            at += 16;
            if page == u64::MAX {
                break;
            }
            let enc = u32_at(at);
            let len = u64_at(at + 4) as usize;
            at += 16;
            // Version 7: a large raw run's pages start on a page boundary of the file.
            if enc == 0 && npages >= image_format::format::ALIGNED_RUN_PAGES {
                at = at.next_multiple_of(4096);
            }
            runs.push((at, len, enc));
            at += len;
        }
        regions.push((start, at));
        at += 4;
    }
    (regions, runs)
}

#[test]
fn a_compressed_run_that_does_not_decompress_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let job = sandbox.start_job("zrot", &image_job("2", "shm", &["--compress", "zstd"]));
    committed(&sandbox.mpicr(&["checkpoint", "zrot"]));
    job.kill();
    let image = sandbox.snapshots().join("zrot/1/rank-1.image");
    let mut b = std::fs::read(&image).expect("the image exists");
    let (regions, runs) = image_records(&b);
    let &(data, len, _) = runs
        .iter()
        .find(|r| r.2 == 2 && r.1 > 64)
        .expect("a zstd run");
    // Damage the compressed stream, then make every checksum agree again: only the
    // decompressor can notice.
    for byte in &mut b[data + len / 2..data + len / 2 + 16] {
        *byte ^= 0x5a;
    }
    let &(start, crc_at) = regions
        .iter()
        .find(|&&(s, c)| s < data && data < c)
        .expect("its region");
    let crc = crc32c::crc32c(&b[start..crc_at]);
    b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let end = b.len() - 4;
    let crc = crc32c::crc32c(&b[..end]);
    b[end..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&image, &b).expect("rewritten");
    let check = check_image(&image);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    // The decoder either fails on the damaged stream or decodes pages whose checksum is not
    // the run's (which one depends on the bytes damaged): both refuse the image.
    assert!(
        stderr.contains("image is corrupt")
            && (stderr.contains("compressed run")
                || stderr.contains("zstd run does not decompress")),
        "{stderr}"
    );
    // The job is refused too (its part names the image as it was) and nothing runs.
    let out = sandbox.mpicr(&["restart", "zrot.1"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the job ran: {}", out.stdout);
}

#[test]
fn an_incremental_chain_restores_from_its_last_link_and_survives_gc() {
    let sandbox = Sandbox::new();
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", "image-ring", STEPS]);
    let job = sandbox.start_job(
        "chain",
        &image_job("2", "shm", &["--compress", "lz4", "--full-every", "8"]),
    );
    for epoch in 1..=3 {
        std::thread::sleep(random_moment(MOMENT));
        assert_eq!(
            committed(&sandbox.mpicr(&["checkpoint", "chain"])),
            format!("chain.{epoch}")
        );
    }
    kill_rank(&sandbox, "chain", 0, 0);
    job.finish();
    let dir = sandbox.snapshots().join("chain");
    // The first image is full, the next two are incremental, chained to it.
    for (epoch, links) in [(1, None), (2, Some(1)), (3, Some(2))] {
        let check = check_image(&dir.join(format!("{epoch}/rank-1.image")));
        assert!(check.status.success(), "{check:?}");
        let text = String::from_utf8_lossy(&check.stdout);
        match links {
            None => assert!(!text.contains("incremental"), "{text}"),
            Some(n) => assert!(
                text.contains(&format!("incremental on {n} earlier image(s)")),
                "{text}"
            ),
        }
    }
    // The older snapshots go; the kept one holds its chain.
    ok(&sandbox.mpicr(&["gc", "--keep", "1", "chain"]), "gc");
    assert!(!dir.join("1").exists() && !dir.join("2").exists());
    let restarted = sandbox.mpicr(&["restart", "chain.3"]);
    assert_continues(
        &reference,
        &restarted,
        "a restart from the last link of a chain",
    );

    // A corrupted link is refused before any image code runs (its size and trailer are intact,
    // so the restorer, which reads every link whole, refuses it), and a missing one before any
    // rank starts.
    let link = dir.join("3/rank-0.base-2.image");
    let mut bytes = std::fs::read(&link).expect("the link is in the kept snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::remove_file(&link).expect("unlinked");
    std::fs::write(&link, &bytes).expect("rewritten");
    let out = sandbox.mpicr(&["restart", "chain.3"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the job ran: {}", out.stdout);
    assert!(
        out.stderr.contains("rank-0.base-2.image") && out.stderr.contains("image is corrupt"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(&link).expect("removed");
    let out = sandbox.mpicr(&["restart", "chain.3"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "the job ran: {}", out.stdout);
    assert!(
        out.stderr.contains("rank-0.base-2.image") && out.stderr.contains("missing"),
        "{}",
        out.stderr
    );
}

#[test]
fn image_options_reach_the_ranks_and_bad_ones_are_refused() {
    let sandbox = Sandbox::new();
    let out = sandbox.mpicr(&[
        "run",
        "-n",
        "1",
        "--crs",
        "image",
        "--compress",
        "zstd",
        "--full-every",
        "3",
        "--",
        "sh",
        "-c",
        "echo \"$MPICR_IMAGE_COMPRESS|$MPICR_IMAGE_FULL_EVERY\"",
    ]);
    ok(&out, "the run");
    assert_eq!(out.stdout, "zstd|3\n");
    for bad in [["--compress", "gzip"], ["--full-every", "0"]] {
        let out = sandbox.mpicr(&[
            "run", "-n", "1", "--crs", "image", bad[0], bad[1], "--", "true",
        ]);
        assert_eq!(out.code, Some(2), "{bad:?}: {}", out.stderr);
    }
}

/// Steps of `tests/c/disabled_region.c`: half before its region, half after.
const REGION_STEPS: &str = "40";

/// What [`checkpoint_in_region`] saw: the uninterrupted run, the answer to the request and
/// the checkpointed job's end.
struct RegionRun {
    sandbox: Sandbox,
    reference: Out,
    answer: Out,
    finished: Out,
}

/// The uninterrupted run of `tests/c/disabled_region.c` on 2 ranks in `mode` (its gates
/// open from the start), and the program.
fn region_reference(sandbox: &Sandbox, mode: &str) -> (Out, String) {
    let prog = mpicc("disabled_region", &[]);
    let open = sandbox.dir().join("open");
    std::fs::write(&open, "").expect("the gate is created");
    for also in ["open.after", "open.peer"] {
        std::fs::write(sandbox.dir().join(also), "").expect("the gate is created");
    }
    let open = open.display().to_string();
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", &prog, mode, &open, REGION_STEPS]);
    ok(&reference, "the uninterrupted run");
    (reference, prog)
}

/// Waits until `job`'s stderr says `ready`.
fn wait_until_said(job: &harness::Job, name: &str, ready: &str) {
    let start = std::time::Instant::now();
    while !job.stderr().contains(ready) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "job {name} never said `{ready}`: {}",
            job.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the checkpoint under way in job `name` satisfies `reached` (given its `mpicr
/// status --json` entry), or `request` has ended.
fn wait_for_checkpoint(
    sandbox: &Sandbox,
    name: &str,
    request: &mut harness::Job,
    what: &str,
    reached: impl Fn(&serde_json::Value) -> bool,
) {
    let start = std::time::Instant::now();
    loop {
        let out = sandbox.mpicr(&["status", name, "--json"]);
        let now = serde_json::from_str::<serde_json::Value>(&out.stdout)
            .is_ok_and(|v| reached(&v["checkpoint"]["in_progress"]));
        if now || request.has_ended() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the checkpoint of job {name} never reached {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The job's run of `tests/c/disabled_region.c`, with deferrals bounded by `defer_ms`.
fn start_region_job(
    sandbox: &Sandbox,
    prog: &str,
    mode: &str,
    name: &str,
    defer_ms: &str,
) -> (harness::Job, String) {
    let gate = sandbox.dir().join(format!("{name}.gate"));
    let gate = gate.display().to_string();
    let run = [
        "run",
        "--job-name",
        name,
        "-n",
        "2",
        "--",
        prog,
        mode,
        &gate,
        REGION_STEPS,
    ];
    let job = sandbox.start_env(&run, &[("MPICR_CKPT_DEFER_MS", defer_ms.into())]);
    (job, gate)
}

/// Job `name` runs `tests/c/disabled_region.c` on 2 ranks in `mode` with deferrals bounded
/// by `defer_ms`, after an uninterrupted run. Once the job's stderr says `ready`, a
/// checkpoint is asked for; the gate opens once a rank has answered (`mpicr status`) or the
/// request has ended. When a rank answers, the coordinator has sent every rank its request
/// (rank 0, the one in its region, first) and the answering rank has sent its markers, so
/// rank 0 reads both before it sees the gate.
fn checkpoint_in_region(mode: &str, name: &str, defer_ms: &str, ready: &str) -> RegionRun {
    let sandbox = Sandbox::new();
    let (reference, prog) = region_reference(&sandbox, mode);
    let (job, gate) = start_region_job(&sandbox, &prog, mode, name, defer_ms);
    wait_until_said(&job, name, ready);
    let mut request = sandbox.start(&["checkpoint", name]);
    wait_for_checkpoint(&sandbox, name, &mut request, "a rank's answer", |p| {
        p["reported"].as_u64() >= Some(1)
    });
    std::fs::write(&gate, "").expect("the gate is created");
    let answer = request.finish();
    std::fs::write(format!("{gate}.after"), "").expect("the gate is created");
    let finished = job.finish();
    RegionRun {
        sandbox,
        reference,
        answer,
        finished,
    }
}

impl RegionRun {
    /// The checkpoint committed `snapshot`; the job ended with the uninterrupted output, and
    /// a restart from the snapshot prints the rest of it. Returns the restart.
    fn assert_committed_and_restarts(&self, snapshot: &str) -> Out {
        assert_eq!(committed(&self.answer), snapshot);
        ok(&self.finished, "the checkpointed job");
        assert_eq!(self.finished.stdout, self.reference.stdout);
        let restarted = self.sandbox.mpicr(&["restart", snapshot]);
        assert_continues(&self.reference, &restarted, "a restart from the snapshot");
        assert!(
            restarted.stdout.len() < self.reference.stdout.len(),
            "the restart began at the start: {}",
            restarted.stdout
        );
        restarted
    }

    /// The checkpoint failed, its reason (the requester's last line) containing each of
    /// `says`; nothing was committed; the job ended with the uninterrupted output.
    fn assert_failed_and_job_went_on(&self, name: &str, says: &[&str]) {
        let answer = &self.answer;
        assert_eq!(answer.code, Some(1), "{}{}", answer.stdout, answer.stderr);
        let reason = answer.stderr.lines().last().unwrap_or_default();
        for part in says {
            assert!(
                reason.contains(part),
                "`{part}` is not in: {}",
                answer.stderr
            );
        }
        assert!(
            !self.sandbox.snapshots().join(name).join("1").exists(),
            "a snapshot was committed"
        );
        ok(&self.finished, "the job after the failed checkpoint");
        assert_eq!(self.finished.stdout, self.reference.stdout);
    }
}

/// A checkpoint that reaches a rank inside MPIX_Ckpt_disable while its peer has begun its
/// drain waits for the region's end instead of failing; the job then ends as an
/// uninterrupted run does, and a restart from the snapshot prints the rest of that run.
#[test]
fn a_checkpoint_inside_a_disabled_region_is_taken_when_the_region_ends() {
    let run = checkpoint_in_region("wait", "region", "600000", "rank 0 is in its region");
    run.assert_committed_and_restarts("region.1");
}

/// A region that waits for a message its frozen peer sends only after the checkpoint cannot
/// end before it: the deferral runs out, the checkpoint is given up with that reason, every
/// link thaws, the region ends, and the coordinator asks again, which succeeds with rank 0
/// outside its region. The job ends with the uninterrupted output (nothing lost or
/// reordered), and a restart from the second attempt's snapshot prints the rest of it.
#[test]
fn a_region_that_needs_a_frozen_peer_gives_the_checkpoint_up_after_the_bound_and_it_is_taken_again()
{
    let run = checkpoint_in_region("needs", "needs", "3000", "rank 0 is in its region");
    for part in [
        "mpicr: checkpoint 1 of job needs failed: rank 0: it stayed in a region with \
         checkpoints disabled",
        "for 3000 ms after the checkpoint reached it (MPICR_CKPT_DEFER_MS)",
        "; asking again in 200 ms (1 of 5)",
    ] {
        assert!(
            run.finished.stderr.contains(part),
            "`{part}` is not in the job's stderr: {}",
            run.finished.stderr
        );
    }
    run.assert_committed_and_restarts("needs.2");
}

/// A rank that enters MPIX_Ckpt_disable after its drain began (its markers out) holds its
/// complete drain until the region ends instead of saving itself inside the region or
/// failing the checkpoint: rank 1 stays out of MPI until rank 0 is in its region, so rank 0
/// alone answers and begins its drain; it then enters its region, and reads
/// rank 1's marker and where to save while still in it (`saving` is published once every
/// rank has been told, and rank 0 reads its links once more after it sees the gate). The
/// checkpoint commits after the region (a restart does not leave the region again), and a
/// restart from it prints the rest of the uninterrupted run.
#[test]
fn a_rank_that_enters_a_disabled_region_during_its_drain_is_captured_when_the_region_ends() {
    let sandbox = Sandbox::new();
    let (reference, prog) = region_reference(&sandbox, "late");
    let (job, gate) = start_region_job(&sandbox, &prog, "late", "late", "600000");
    wait_until_said(&job, "late", "rank 0 waits for the gate");
    wait_until_said(&job, "late", "rank 1 waits for the gate outside MPI");
    let mut request = sandbox.start(&["checkpoint", "late"]);
    wait_for_checkpoint(&sandbox, "late", &mut request, "rank 0's answer", |p| {
        p["reported"].as_u64() >= Some(1)
    });
    std::fs::write(&gate, "").expect("the gate is created");
    wait_until_said(&job, "late", "rank 0 is in its region");
    std::fs::write(format!("{gate}.peer"), "").expect("the gate is created");
    wait_for_checkpoint(&sandbox, "late", &mut request, "its saving phase", |p| {
        p["phase"] == "saving"
    });
    std::fs::write(format!("{gate}.after"), "").expect("the gate is created");
    let run = RegionRun {
        answer: request.finish(),
        finished: job.finish(),
        sandbox,
        reference,
    };
    let restarted = run.assert_committed_and_restarts("late.1");
    assert!(
        !restarted.stderr.contains("rank 0 left its region"),
        "rank 0 was saved inside its region: {}",
        restarted.stderr
    );
}

/// The first child process of `pid` (a rank's only children are its image writers).
fn first_child(pid: u32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A checkpoint whose image writer dies (SIGKILLed here while it writes) fails with that
/// reason, and the rank and the job go on to the uninterrupted output. The writer lives for a
/// short while only, so checkpoints are asked for until one's writer is caught.
#[test]
fn a_checkpoint_whose_image_writer_is_killed_fails_and_the_job_goes_on() {
    let sandbox = Sandbox::new();
    let steps = "1500";
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", "image-ring", steps]);
    ok(&reference, "the uninterrupted run");
    let job = sandbox.start_job("wkill", &["-n", "2", "--", "image-ring", steps, "2"]);
    let rank0 = rank_pid(&sandbox, "wkill", 0, 0);
    let mut caught = false;
    for _ in 0..40 {
        let mut request = sandbox.start(&["checkpoint", "wkill"]);
        while !caught && !request.has_ended() {
            if let Some(writer) = first_child(rank0).and_then(rustix::process::Pid::from_raw) {
                caught =
                    rustix::process::kill_process(writer, rustix::process::Signal::KILL).is_ok();
            }
        }
        let answer = request.finish();
        if caught {
            assert_eq!(answer.code, Some(1), "{}{}", answer.stdout, answer.stderr);
            assert!(
                answer
                    .stderr
                    .contains("rank 0 failed: the image writer process was killed by signal 9"),
                "{}",
                answer.stderr
            );
            break;
        }
        ok(&answer, "a checkpoint whose writer was not caught");
    }
    assert!(caught, "no image writer was caught in 40 checkpoints");
    let finished = job.finish();
    ok(&finished, "the job after the failed checkpoint");
    assert_eq!(finished.stdout, reference.stdout);
}

/// A rank in MPI_Finalize never checkpoints again: a checkpoint that reaches it fails at once
/// with that reason, and the job exits with the uninterrupted output.
#[test]
fn a_checkpoint_that_reaches_a_finalizing_rank_fails_and_the_job_exits() {
    let run = checkpoint_in_region("finalize", "fin", "600000", "rank 1 finalizes");
    run.assert_failed_and_job_went_on(
        "fin",
        &["mpicr: checkpoint 1 of job fin failed: rank 1: it is finalizing"],
    );
}

/// An MPI program that a preloaded wrapper executes takes over the rank's registration in
/// `engine::join` (ARCHITECTURE.md, "Programs without MPI"): under `--crs image` in a job of
/// one rank, `sh -c 'exec env X=1 PROG'` (two hand-overs) runs the Rust ring and the C ring
/// (libmpi, found by the preloaded runtime through `PMPI_Init`) to the output of a direct run.
/// Without the hand-over the program could not register: the wrapper would have.
#[test]
fn an_mpi_program_executed_by_a_preloaded_wrapper_takes_over_the_registration() {
    harness::build_preload();
    let sandbox = Sandbox::new();
    let wrapper = ["sh", "-c", "exec env RING_WRAPPED=1 \"$0\" \"$@\""];
    for prog in ["image-ring", c_ring()] {
        let direct = sandbox.mpicr(&["run", "-n", "1", "--", prog, "30"]);
        ok(&direct, "the direct run");
        let mut args = vec!["run", "-n", "1", "--crs", "image", "--"];
        args.extend_from_slice(&wrapper);
        args.extend_from_slice(&[prog, "30"]);
        let wrapped = sandbox.mpicr(&args);
        ok(&wrapped, "the run through the wrapper");
        assert_eq!(wrapped.stdout, direct.stdout);
    }
}

/// A one-rank MPI job started through `sh -c` is checkpointed at a random moment, killed and
/// restarted to the output of a direct run: under the default checkpointer (nothing preloaded:
/// the program registers itself), and under `--crs image` (preloaded: the shell registers, and
/// the program it executes through `env` takes the registration over). A one-rank rank reads
/// its control link only every few hundred progress rounds, so the ring pauses between steps
/// to run long enough for the checkpoint to land before its end.
#[test]
fn a_one_rank_mpi_job_through_sh_c_is_checkpointed_with_and_without_the_preload() {
    assert!(bin("mpicr-restore").exists());
    harness::build_preload();
    let sandbox = Sandbox::new();
    // 10 ms between steps: the job outlives the random moment and the rank's next read of its
    // control link by seconds, however fast the machine (600 steps without a pause ended
    // before the request on an idle one).
    let (steps, pause) = ("600", "10");
    let reference = sandbox.mpicr(&["run", "-n", "1", "--", "image-ring", steps, pause]);
    let cases: [(&str, &[&str], &str); 2] = [
        ("shdefault", &[], "\"$0\" \"$@\""),
        (
            "shimage",
            &["--crs", "image"],
            "exec env RING_WRAPPED=1 \"$0\" \"$@\"",
        ),
    ];
    for (name, crs, script) in cases {
        let mut args = vec!["-n", "1"];
        args.extend_from_slice(crs);
        args.extend_from_slice(&["--", "sh", "-c", script, "image-ring", steps, pause]);
        let job = sandbox.start_job(name, &args);
        rank_pid(&sandbox, name, 0, 0);
        std::thread::sleep(random_moment(MOMENT));
        let snapshot = committed(&sandbox.mpicr(&["checkpoint", name]));
        kill_rank(&sandbox, name, 0, 0);
        let killed = job.finish();
        assert_ne!(
            killed.code,
            Some(0),
            "{name}: the job ended with its killed rank"
        );
        let restarted = sandbox.mpicr(&["restart", &snapshot]);
        assert_continues(&reference, &restarted, name);
    }
}

/// `engine::join` refuses an inherited-connection variable that names a descriptor which is
/// not a socket, with a message that names it (libmpi's MPI_Init prints it).
#[test]
fn an_mpi_program_refuses_an_inherited_descriptor_that_is_not_a_socket() {
    let sandbox = Sandbox::new();
    let script = "exec 7</dev/null; MPICR_CONTROL_FD=7:$$ exec \"$0\" 3";
    let out = sandbox.mpicr(&["run", "-n", "1", "--", "sh", "-c", script, c_ring()]);
    assert_ne!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("MPICR_CONTROL_FD names descriptor 7, which is not a stream socket"),
        "{}",
        out.stderr
    );
}

/// `tests/c/rare_calls.c` in `mode`: rank 0 computes 100 ms between two MPI calls that never
/// wait (an eager MPI_Send; an MPI_Test of a receive whose message comes only at the end), 60
/// times. A checkpoint asked for at the start must be answered at rank 0's next MPI call (the
/// attention signal), so it is committed while the job still has seconds to run, not at its
/// end (where it failed: "it is finalizing"); the job is then killed and restarted from it.
/// The restarted job's ranks are restored processes on new control connections, which must
/// raise the signal too: it is checkpointed the same way, killed, and restarted again.
fn rare_calls_are_checkpointed_at_the_next_call(mode: &str) {
    let sandbox = Sandbox::new();
    let prog = mpicc("rare_calls", &[]);
    let reference = sandbox.mpicr(&["run", "-n", "2", "--", &prog, mode, "60", "0"]);
    ok(&reference, "the uninterrupted run");
    let name = format!("rare{mode}");
    let mut job = sandbox.start_job(
        &name,
        &["-n", "2", "--crs", "image", "--", &prog, mode, "60", "100"],
    );
    let snapshot = committed(&sandbox.mpicr(&["checkpoint", &name]));
    assert!(
        !job.has_ended(),
        "{mode}: the checkpoint was committed only when the job ended"
    );
    kill_rank(&sandbox, &name, 1, 0);
    let killed = job.finish();
    assert_ne!(killed.code, Some(0), "{mode}: the job failed with its rank");
    let mut restored = sandbox.start(&["restart", &snapshot]);
    sandbox.wait_for_job(&name);
    let again = committed(&sandbox.mpicr(&["checkpoint", &name]));
    assert_eq!(again, format!("{name}.2"));
    assert!(
        !restored.has_ended(),
        "{mode}: the restored job's checkpoint was committed only when it ended"
    );
    restored.kill();
    let restarted = sandbox.mpicr(&["restart", &again]);
    assert_continues(&reference, &restarted, &format!("rare calls ({mode})"));
}

#[test]
fn a_rank_that_only_sends_between_long_computations_answers_a_checkpoint_at_its_next_send() {
    rare_calls_are_checkpointed_at_the_next_call("send");
}

#[test]
fn a_rank_that_only_polls_with_mpi_test_answers_a_checkpoint_at_its_next_test() {
    rare_calls_are_checkpointed_at_the_next_call("test");
}

/// A program with a handler of its own for the attention signal (`rare_calls own`: installed
/// before MPI_Init) keeps it, and its control connection is not armed: its handler never
/// runs, and a checkpoint asked of the rank that only sends is read as without the signal,
/// not before that rank's MPI_Finalize, where it fails. The job ends normally.
#[test]
fn a_program_s_own_handler_for_the_attention_signal_is_kept_and_never_called() {
    let sandbox = Sandbox::new();
    let prog = mpicc("rare_calls", &[]);
    let job = sandbox.start_job(
        "rareown",
        &["-n", "2", "--crs", "image", "--", &prog, "own", "30", "100"],
    );
    let refused = sandbox.mpicr(&["checkpoint", "rareown"]);
    assert_eq!(
        refused.code,
        Some(1),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stderr.contains("it is finalizing"),
        "{}",
        refused.stderr
    );
    let out = job.finish();
    ok(&out, "the job");
    assert!(
        out.stdout.contains("rank 0: own handler kept, ran 0 times"),
        "{}",
        out.stdout
    );
}
