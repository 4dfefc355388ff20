//! Where the restorer's time goes, for `bench/table2` and for finding what to make faster:
//! with `MPICR_IMAGE_STATS=1` each step prints `mpicr-restore-stats rank=R step=S unix_us=T`
//! on stderr (the restored rank prints `restored_unix_us` when its code runs again, so the
//! last step's distance to that is the routine's time), and `staged=N in_place=M`: how many
//! regions were staged, and how many of them at their own address (the others are moved
//! there by the routine).

fn wanted() -> bool {
    std::env::var_os("MPICR_IMAGE_STATS").is_some_and(|v| v == "1")
}

/// Prints the wall-clock time at which `step` ended, if asked to.
pub(crate) fn mark(step: &str) {
    if !wanted() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let rank = std::env::var("MPICR_RANK").unwrap_or_else(|_| "-".into());
    eprintln!("mpicr-restore-stats rank={rank} step={step} unix_us={now}");
}

/// Prints how many regions were staged and how many of them in place, if asked to.
pub(crate) fn placement(staged: usize, in_place: usize) {
    if wanted() {
        let rank = std::env::var("MPICR_RANK").unwrap_or_else(|_| "-".into());
        eprintln!("mpicr-restore-stats rank={rank} staged={staged} in_place={in_place}");
    }
}
