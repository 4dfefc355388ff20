//! The relocatable restore routine and the jump into it.
//!
//! The routine is a few dozen instructions of position-independent assembly between two
//! symbols. It uses no memory but the plan region (its records and its stack) and calls
//! nothing, so it keeps running after it has unmapped the restorer's program, libraries, heap
//! and stack. It is copied into the plan region, which is mapped at an address the image does
//! not use, and entered there with `rdi` = first record, `rsi` = top of its stack.

use crate::plan::{Built, CODE_LEN};

std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl mpicr_restore_blob_start",
    ".globl mpicr_restore_blob_end",
    "mpicr_restore_blob_start:",
    "mov rsp, rsi",
    "mov rbx, rdi",
    "3:",
    "mov rax, [rbx]",
    "cmp rax, -1",
    "je 6f",
    "mov rdi, [rbx + 8]",
    "mov rsi, [rbx + 16]",
    "mov rdx, [rbx + 24]",
    "mov r10, [rbx + 32]",
    "mov r8, [rbx + 40]",
    "mov r9, [rbx + 48]",
    "syscall",
    "cmp qword ptr [rbx + 56], 0",
    "jne 4f",
    "cmp rax, -4095",
    "jae 5f",
    "jmp 7f",
    "4:",
    "cmp rax, [rbx + 64]",
    "jne 5f",
    "7:",
    "add rbx, 88",
    "jmp 3b",
    "5:",
    "mov eax, 1",
    "mov edi, 2",
    "mov rsi, [rbx + 72]",
    "mov rdx, [rbx + 80]",
    "syscall",
    "mov eax, 231",
    "mov edi, 70",
    "syscall",
    "ud2",
    "6:",
    "mov rsp, [rbx + 8]",
    "mov rax, [rbx + 24]",
    "jmp qword ptr [rbx + 16]",
    "mpicr_restore_blob_end:",
);

unsafe extern "C" {
    static mpicr_restore_blob_start: u8;
    static mpicr_restore_blob_end: u8;
}

/// The routine's machine code.
fn code() -> &'static [u8] {
    let start = &raw const mpicr_restore_blob_start;
    let end = &raw const mpicr_restore_blob_end;
    let len = end as usize - start as usize;
    // SAFETY: both symbols delimit the routine above in this binary's text, which is mapped
    // readable for the life of the process; `end` follows `start` in the same section.
    unsafe { std::slice::from_raw_parts(start, len) }
}

/// Maps `len` bytes at exactly `base`, failing if anything is there already.
pub(crate) fn map_plan_region(base: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no memory this
    // program uses can be affected; the new mapping is only used through `launch`.
    let r = unsafe {
        libc::mmap(
            base as *mut libc::c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    if r as u64 != base {
        // An old kernel that ignores the flag: give the area back.
        // SAFETY: `r` is the mapping just created, used by nothing.
        unsafe { libc::munmap(r, len as usize) };
        return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
    }
    Ok(())
}

/// Copies the routine and the program into the plan region at `base` (mapped by
/// [`map_plan_region`] with `built.len` bytes) and jumps to it. Does not return: the process
/// becomes the image's, or exits with status 70.
pub(crate) fn launch(base: u64, built: &Built) -> ! {
    let code = code();
    assert!(code.len() as u64 <= CODE_LEN);
    assert!(CODE_LEN + built.data.len() as u64 <= built.len);
    // SAFETY: [base, base + built.len) is our fresh read-write mapping (map_plan_region) that
    // nothing else references; both copies stay inside it (asserted above).
    unsafe {
        std::ptr::copy_nonoverlapping(code.as_ptr(), base as *mut u8, code.len());
    }
    // SAFETY: as above; the data goes right after the code page.
    unsafe {
        std::ptr::copy_nonoverlapping(
            built.data.as_ptr(),
            (base + CODE_LEN) as *mut u8,
            built.data.len(),
        );
    }
    // SAFETY: changes only the protection of the code page of our own mapping.
    let r = unsafe {
        libc::mprotect(
            base as *mut libc::c_void,
            CODE_LEN as usize,
            libc::PROT_READ | libc::PROT_EXEC,
        )
    };
    if r != 0 {
        eprintln!(
            "mpicr-restore: cannot make the restore routine executable: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    type Entry = unsafe extern "C" fn(u64, u64) -> !;
    // SAFETY: `base` now holds the routine's code, copied verbatim; it is position
    // independent and follows the C calling convention for its two arguments.
    let entry: Entry = unsafe { std::mem::transmute::<usize, Entry>(base as usize) };
    // SAFETY: the records and stack it is given lie in the plan region, which the program
    // keeps mapped; everything it does is the program `plan::build` checked and wrote.
    unsafe { entry(built.records, built.stack_top) }
}
