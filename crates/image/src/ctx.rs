//! The capture point: a hand-written context save, like setjmp but returning only once per
//! process.
//!
//! `mpicr_image_checkpoint(cb, arg)` pushes the callee-saved registers (rbp, rbx, r12–r15) and
//! the MXCSR and x87 control words on the stack, then calls `cb(arg, rsp, resume)` where `rsp`
//! is the stack pointer after the pushes and `resume` the address of the instruction after the
//! call. Everything the caller's frame needs is then in memory, which the callback writes to
//! the image. Normally `cb` returns and its result is returned. In a restored process the
//! restorer sets rsp to the saved value, rax to [`crate::format::RESTORED`] and jumps to
//! `resume`: the pops reload the registers from the restored stack and the function returns
//! RESTORED to its caller. To the compiler both are one ordinary call returning once, so there
//! is none of setjmp's "returns twice" hazard: the caller's frame in the image is exactly the
//! frame at the time of the call.

use std::ffi::c_void;

/// The callback run at the capture point: (arg, saved rsp, resume address) -> result.
pub(crate) type CaptureFn = extern "C" fn(*mut c_void, u64, u64) -> u64;

std::arch::global_asm!(
    ".text",
    ".globl mpicr_image_checkpoint",
    ".type mpicr_image_checkpoint,@function",
    "mpicr_image_checkpoint:",
    // At entry rsp = 8 (mod 16). Six pushes and 8 bytes for the control words keep the call
    // below 16-byte aligned.
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "stmxcsr [rsp]",
    "fnstcw [rsp + 4]",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rsi, rsp",
    "lea rdx, [rip + 2f]",
    "call rax",
    "2:",
    "ldmxcsr [rsp]",
    "fldcw [rsp + 4]",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size mpicr_image_checkpoint, . - mpicr_image_checkpoint",
);

unsafe extern "C" {
    fn mpicr_image_checkpoint(cb: CaptureFn, arg: *mut c_void) -> u64;
}

/// Runs `cb(arg, rsp, resume)` at a capture point; returns its result, or RESTORED in a
/// process brought back from an image written by `cb`.
pub(crate) fn checkpoint_here(cb: CaptureFn, arg: *mut c_void) -> u64 {
    // SAFETY: the routine above follows the System V calling convention: it preserves every
    // callee-saved register and the control words, keeps the stack aligned, and passes `arg`
    // through untouched; what `cb` does with `arg` is `cb`'s contract with our caller.
    unsafe { mpicr_image_checkpoint(cb, arg) }
}
