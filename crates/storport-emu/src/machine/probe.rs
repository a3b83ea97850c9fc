//! Checked copies without a system call.
//!
//! Host code reads or writes memory a driver named, and an address that is
//! not mapped (or, for a write, not writable) makes the copy fail instead of
//! crashing the process.
//!
//! The copy is one `rep movsb` at a known address. When it faults, the
//! machine's SIGSEGV / SIGBUS handler sees the fault at that instruction and
//! resumes at [`probe_failed`], which returns failure to the caller: the
//! technique of the exception tables behind the Linux kernel's
//! `copy_from_user`. The answer is the one `process_vm_readv` /
//! `process_vm_writev` on this process give (the kernel checks the same page
//! tables and protections), for a fraction of the cost: no system call, no
//! page pinning.
//!
//! Only in normal context: a fault inside a signal handler that blocks
//! SIGSEGV would end the process. Before the machine's handlers are
//! installed, [`copy_in`] and [`copy_out`] refuse to run (they return `None`)
//! and the caller falls back to the system calls.

use super::signals;

/// Copies `len` bytes from `src` to `dst`; 0 when done, 1 when a fault
/// stopped it. The first instruction is the copy (the handler recognises
/// its address): `len` comes in `rcx`, the fourth System V argument.
#[unsafe(naked)]
unsafe extern "sysv64" fn probe_copy(
    dst: *mut u8,
    src: *const u8,
    _unused: u64,
    len: usize,
) -> u64 {
    core::arch::naked_asm!("rep movsb", "xor eax, eax", "ret")
}

/// Where a faulting [`probe_copy`] resumes: returns 1 to its caller (the
/// stack is as `rep movsb` left it, the return address on top).
#[unsafe(naked)]
unsafe extern "sysv64" fn probe_failed() -> u64 {
    core::arch::naked_asm!("mov eax, 1", "ret")
}

/// Length of `rep movsb` (`F3 A4`).
const COPY_INSN_BYTES: usize = 2;

/// Signal context: when the fault at `pc` is the checked copy's, the
/// address to resume at.
pub(crate) fn fixup(pc: usize) -> Option<usize> {
    let start = probe_copy as *const () as usize;
    (pc >= start && pc < start + COPY_INSN_BYTES).then_some(probe_failed as *const () as usize)
}

/// Reads `buf.len()` bytes at `address` into `buf`.
///
/// `Some(true)` when every byte was readable, `Some(false)` when one was not (`buf` then holds
/// what was copied before), `None` when the machine's signal handlers are
/// not installed (nothing was read).
#[must_use]
pub fn copy_in(address: usize, buf: &mut [u8]) -> Option<bool> {
    if signals::install().is_err() {
        return None;
    }
    if buf.is_empty() {
        return Some(true);
    }
    // SAFETY: `buf` is a live, exclusively borrowed slice of `buf.len()`
    // bytes; the source is only read, and a fault while reading it resumes
    // at `probe_failed` through the handler installed above.
    let failed = unsafe { probe_copy(buf.as_mut_ptr(), address as *const u8, 0, buf.len()) };
    Some(failed == 0)
}

/// Writes `data` at `address`.
///
/// `Some(true)` when every byte was writable,
/// `Some(false)` when one was not (the bytes before it were written, as
/// with `process_vm_writev`), `None` when the machine's signal handlers are
/// not installed (nothing was written).
///
/// # Safety
///
/// The range must not hold host objects (it is memory the driver owns or
/// named), since it is written without Rust knowing.
#[must_use]
pub unsafe fn copy_out(address: usize, data: &[u8]) -> Option<bool> {
    if signals::install().is_err() {
        return None;
    }
    if data.is_empty() {
        return Some(true);
    }
    // SAFETY: `data` is live for `data.len()` bytes and only read; the
    // caller vouches that the destination is driver memory; a fault while
    // writing it resumes at `probe_failed` through the handler installed
    // above.
    let failed = unsafe { probe_copy(address as *mut u8, data.as_ptr(), 0, data.len()) };
    Some(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::{copy_in, copy_out};

    #[test]
    fn copies_succeed_on_mapped_memory_and_fail_on_the_rest() {
        let source = *b"probe me";
        let mut buf = [0_u8; 8];
        assert_eq!(copy_in(source.as_ptr() as usize, &mut buf), Some(true));
        assert_eq!(&buf, b"probe me");
        assert_eq!(copy_in(8, &mut buf), Some(false));
        // Non-canonical: a general protection fault, not a page fault.
        assert_eq!(copy_in(0x8000_0000_0000_0000, &mut buf), Some(false));
        let mut target = [0_u8; 4];
        // SAFETY: `target` is a local byte array no reference covers now.
        let wrote = unsafe { copy_out(target.as_mut_ptr() as usize, b"abcd") };
        assert_eq!(wrote, Some(true));
        assert_eq!(&target, b"abcd");
        let text: &'static [u8] = b"read-only";
        // SAFETY: the write faults (read-only page) before changing anything.
        let wrote = unsafe { copy_out(text.as_ptr() as usize, b"x") };
        assert_eq!(wrote, Some(false));
        assert_eq!(text, b"read-only");
    }
}
