//! Whether the process joins the job by itself, so that the preloaded runtime stays out.

use std::ffi::CStr;

/// libmpi's entry point: present when the program is linked with libmpi.so.
const LIBMPI_SYMBOL: &CStr = c"PMPI_Init";

/// Whether something else in this process joins the job: libmpi.so is loaded, or the
/// executable carries the engine ([`engine::RUNTIME_MARKER`]: a Rust program on the `mpicr`
/// crate, a C program linked with the static libmpi). A program without MPI that happens to
/// contain those 32 bytes is taken for an MPI program and is not preloaded.
pub(crate) fn runtime_present() -> bool {
    crate::sys::global_symbol(LIBMPI_SYMBOL)
        || std::fs::read("/proc/self/exe").is_ok_and(|exe| contains(&exe, &engine::RUNTIME_MARKER))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut at = 0;
    while let Some(i) = haystack[at..].iter().position(|&b| b == first) {
        let start = at + i;
        if haystack[start + 1..].starts_with(rest) {
            return true;
        }
        at = start + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn finds_a_needle_anywhere_and_only_whole() {
        assert!(contains(b"xxmpicr!", b"mpicr!"));
        assert!(contains(b"mmpicr!", b"mpicr!"));
        assert!(!contains(b"mpicr", b"mpicr!"));
        assert!(!contains(b"", b"a"));
    }
}
