//! Checks shared by the test programs: each failed check prints what differed and ends the
//! program with status 1, so the black-box tests see a failure and its reason.
#![forbid(unsafe_code)]

/// Fails the program with `what` unless `ok`.
pub fn check(ok: bool, what: impl FnOnce() -> String) {
    if !ok {
        eprintln!("CHECK FAILED: {}", what());
        std::process::exit(1);
    }
}

/// A deterministic byte pattern for message `seed`, so a receiver can verify every byte.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
