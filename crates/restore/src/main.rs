//! `mpicr-restore [--check] IMAGE` (or `--rank-image DIR`, the image of rank `MPICR_RANK` in a
//! snapshot directory): brings a process back from an image written by the
//! `image` crate (spec: docs/image-format.md).
//!
//! 1. Re-executes itself with glibc's rseq registration off (its own rseq area would vanish
//!    with its memory, and the kernel would kill the process on the next preemption).
//! 2. Reads the image and the chain it is based on once, checking every checksum, straight
//!    into staging mappings away from the image's addresses (`stage`), then validates the
//!    image against this machine (`check`). Any problem: one line on stderr, exit status 1,
//!    nothing changed but the staging mappings, which die with the process.
//! 3. Prepares the kernel-side state (`prep`) with all signals blocked.
//! 4. Builds the restore program (`plan`), maps it with the routine (`blob`) at an address
//!    neither the image nor the staging mappings use, and jumps there: the point of no return.
//!    The routine unmaps the restorer, moves the vdso, moves each staging mapping into place
//!    with `mremap` (no page is read or copied again) and maps the rest, sets the mm fields, the
//!    thread pointer, the signal mask, and returns into the captured context. A failure from
//!    there on exits with status 70.

mod blob;
mod check;
mod pid;
mod plan;
mod prep;
mod stage;
mod stats;
mod sys;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

const RSEQ_OFF: &str = "glibc.pthread.rseq=0";

fn usage() -> ! {
    eprintln!(
        "usage: mpicr-restore [--check] IMAGE\n       mpicr-restore --rank-image DIR\n       \
         mpicr-restore --keep PID   (internal: what a restore that kept the image's pid becomes)"
    );
    std::process::exit(2);
}

/// `--rank-image DIR`: the image of the rank this process is (`MPICR_RANK`), as the launcher
/// of a restarted job starts every rank: `DIR/rank-<r>.image`.
fn rank_image(dir: &OsString) -> PathBuf {
    let rank = std::env::var("MPICR_RANK").unwrap_or_default();
    match rank.parse::<u32>() {
        Ok(r) => PathBuf::from(dir).join(format!("rank-{r}.image")),
        Err(_) => fail(&format!(
            "--rank-image needs MPICR_RANK set to a rank, not {rank:?}"
        )),
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let rank_mode = args.first().is_some_and(|a| a == "--rank-image");
    if let [flag, pid] = args.as_slice()
        && flag == pid::KEEP_FLAG
    {
        pid::keep(&pid.to_string_lossy());
    }
    let (check_only, path) = match args.as_slice() {
        [flag, dir] if flag == "--rank-image" => (false, rank_image(dir)),
        [p] if p != "--check" && p != "-h" && p != "--help" => (false, PathBuf::from(p)),
        [flag, p] if flag == "--check" => (true, PathBuf::from(p)),
        _ => usage(),
    };
    if sys::rseq_registered() {
        stats::mark("exec");
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if tunables.contains(RSEQ_OFF) {
            fail("glibc registered rseq although GLIBC_TUNABLES disables it");
        }
        let value = if tunables.is_empty() {
            RSEQ_OFF.to_string()
        } else {
            format!("{tunables}:{RSEQ_OFF}")
        };
        let err = std::process::Command::new("/proc/self/exe")
            .arg0(std::env::args_os().next().unwrap_or_default())
            .args(&args)
            .env("GLIBC_TUNABLES", value)
            .exec();
        fail(&format!("cannot re-execute itself: {err}"));
    }
    stats::mark("rseq-off");
    if let Err(e) = run(check_only, path, rank_mode) {
        fail(&e);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("mpicr-restore: {msg}");
    std::process::exit(1);
}

fn run(check_only: bool, path: PathBuf, quiet: bool) -> Result<(), String> {
    // Before anything is read into memory: the memory the restorer maps itself after a fork
    // would not merge with what the program maps later (the kernel keeps a forked copy's
    // mappings apart). A damaged META is refused by the full read below.
    if !check_only && let Ok(meta) = image::read_meta(&path) {
        pid::take_back(meta.pid)?;
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Reading, checksumming, decompressing and resolving the chain happen here, before
    // anything but the staging mappings changes.
    let mut staged = stage::stage(&path, file, check_only)?;
    stats::mark("stage");
    let deleted = std::mem::take(&mut staged.deleted);
    let img = &staged.img;
    let own = check::check(img)?;
    stats::mark("check");
    if check_only {
        let chain = if staged.links > 0 {
            format!(", incremental on {} earlier image(s)", staged.links)
        } else {
            String::new()
        };
        println!(
            "{}: valid image, {} regions, {} bytes of memory stored ({} compressed), program {}{chain}",
            path.display(),
            img.regions.len(),
            staged.stored_bytes,
            staged.decompressed_bytes,
            img.meta.exe_path
        );
        return Ok(());
    }
    let at: Vec<Option<u64>> = staged
        .regions
        .iter()
        .map(|m| m.as_ref().map(|m| m.range().0))
        .collect();
    let in_place = img
        .regions
        .iter()
        .zip(&at)
        .filter(|(r, a)| **a == Some(r.desc.start))
        .count();
    stats::placement(at.iter().flatten().count(), in_place);

    // Where the plan region goes: free in the image, off the staged pages and (checked by
    // mapping it) free now.
    let mut taken = plan::image_ranges(img);
    taken.extend(plan::staged_ranges(img, &at));
    let dummy = plan::Fds {
        region: vec![-1; img.regions.len()],
        exe: None,
        close: Vec::new(),
    };
    // The size does not depend on the descriptor numbers' values, only on their count.
    let size_guess = plan::build(img, &at, &own, &dummy, 0, 0).len + 64 * 1024;
    let mut chosen = None;
    let mut cand = 0x1000_0000u64;
    while cand + size_guess < plan::TASK_END && chosen.is_none() {
        if !plan::overlaps(cand, cand + size_guess, &taken)
            && blob::map_plan_region(cand, size_guess).is_ok()
        {
            chosen = Some(cand);
        }
        cand += 0x1000_0000;
    }
    let base = chosen.ok_or("no free address range for the restore routine")?;
    // A scratch area for moving the vdso, free in the image and not the plan region.
    let vdso_span = 1 << 20;
    let mut temp = base + 0x1000_0000;
    let mut busy = taken.clone();
    busy.push((base, base + size_guess));
    for r in [own.vvar, own.vvar_vclock, own.vdso] {
        busy.push(r);
    }
    while plan::overlaps(temp, temp + vdso_span, &busy) {
        temp += 0x1000_0000;
    }

    let fds = prep::prepare(img, deleted, quiet)?;
    let built = plan::build(img, &at, &own, &fds, base, temp);
    if built.len > size_guess {
        return Err("internal error: the restore program outgrew its region".into());
    }
    stats::mark("launch");
    // The staging mappings stay mapped (`staged` is alive) for the routine to move.
    blob::launch(base, &built)
}
