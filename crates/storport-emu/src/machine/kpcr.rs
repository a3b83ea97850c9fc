//! The fake processor control region (KPCR) behind GS.
//!
//! x64 kernel code reads it through GS (`gs:[0x18]` is the KPCR itself,
//! `gs:[0x20]` the PRCB, `gs:[0x188]` the current thread, `gs:[0x1A4]` the
//! processor number).
//!
//! One page range per host thread, created on the thread's first driver call
//! and installed for the duration of each outermost call with `wrgsbase`,
//! or with `arch_prctl(ARCH_SET_GS)` where the kernel does not enable
//! FSGSBASE (the host's own GS base is saved and restored around it; glibc
//! and Rust use FS, not GS). Offsets: KPCR and KPRCB type dumps for x64
//! Windows 10/11 (`KPCR.Self` 0x18, `KPCR.CurrentPrcb` 0x20,
//! `KPCR.Prcb` 0x180; in the KPRCB `LegacyNumber` 0x4, `CurrentThread` 0x8,
//! `Number` 0x24).

use std::io;
use std::sync::OnceLock;

use super::memory::Mapping;

/// Offset of `KPCR.Self`.
pub const KPCR_SELF: usize = 0x18;
/// Offset of `KPCR.CurrentPrcb`.
pub const KPCR_CURRENT_PRCB: usize = 0x20;
/// Offset of the KPRCB embedded in the KPCR.
pub const KPCR_PRCB: usize = 0x180;
/// Offset of `KPRCB.LegacyNumber` (a byte) from the KPCR.
pub const KPCR_PRCB_LEGACY_NUMBER: usize = KPCR_PRCB + 0x4;
/// Offset of `KPRCB.CurrentThread` from the KPCR.
pub const KPCR_PRCB_CURRENT_THREAD: usize = KPCR_PRCB + 0x8;
/// Offset of `KPRCB.Number` from the KPCR.
pub const KPCR_PRCB_NUMBER: usize = KPCR_PRCB + 0x24;
/// Bytes reserved for the KPCR and PRCB (the x64 PRCB is tens of KiB on
/// current Windows; unused fields read as zero).
pub const KPCR_SIZE: usize = 0x10000;
/// Offset of the zeroed fake KTHREAD `KPRCB.CurrentThread` points to.
const FAKE_THREAD_OFFSET: usize = 0xE000;
/// Offset of a word the machine itself uses while it single-steps a call
/// (see [`super::preempt`]); far past any KPRCB field a driver reads.
pub const KPCR_MACHINE_SCRATCH: usize = 0xF800;

/// A zero-filled KPCR with its self pointers set.
#[derive(Debug)]
pub(crate) struct Kpcr {
    mapping: Mapping,
}

impl Kpcr {
    pub(crate) fn new(processor: u32) -> io::Result<Self> {
        let mapping = Mapping::new(KPCR_SIZE)?;
        let base = mapping.addr() as u64;
        mapping.write(KPCR_SELF, &base.to_le_bytes())?;
        mapping.write(KPCR_CURRENT_PRCB, &(base + KPCR_PRCB as u64).to_le_bytes())?;
        mapping.write(
            KPCR_PRCB_CURRENT_THREAD,
            &(base + FAKE_THREAD_OFFSET as u64).to_le_bytes(),
        )?;
        let kpcr = Self { mapping };
        kpcr.set_processor_number(processor)?;
        Ok(kpcr)
    }

    pub(crate) const fn base(&self) -> usize {
        self.mapping.addr()
    }

    pub(crate) fn set_processor_number(&self, number: u32) -> io::Result<()> {
        self.mapping
            .write(KPCR_PRCB_NUMBER, &number.to_le_bytes())?;
        let legacy = u8::try_from(number).unwrap_or(u8::MAX);
        self.mapping.write(KPCR_PRCB_LEGACY_NUMBER, &[legacy])
    }
}

/// `HWCAP2_FSGSBASE` in `AT_HWCAP2`: the kernel lets user code run
/// `rdgsbase` / `wrgsbase` (Linux 5.9 and later on processors with the
/// instructions).
const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;

/// Whether the FSGSBASE instructions may be used; read once from the
/// auxiliary vector.
fn fsgsbase() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        // SAFETY: getauxval only reads the process's auxiliary vector.
        let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
        hwcap2 & HWCAP2_FSGSBASE != 0
    })
}

/// Reads the calling thread's GS base: `rdgsbase` where the kernel allows
/// it, `arch_prctl(ARCH_GET_GS)` otherwise.
pub(crate) fn gs_base() -> usize {
    if fsgsbase() {
        let value: usize;
        // SAFETY: the kernel enabled FSGSBASE (HWCAP2_FSGSBASE), so rdgsbase
        // runs in user mode; it only reads the GS base into a register.
        unsafe {
            std::arch::asm!("rdgsbase {}", out(reg) value, options(nomem, nostack, preserves_flags));
        }
        return value;
    }
    gs_base_syscall()
}

fn gs_base_syscall() -> usize {
    let mut value: libc::c_ulong = 0;
    // SAFETY: ARCH_GET_GS writes one unsigned long to the pointer, which
    // points at a live local.
    unsafe {
        libc::syscall(libc::SYS_arch_prctl, ARCH_GET_GS, &raw mut value);
    }
    usize::try_from(value).unwrap_or(0)
}

/// Sets the calling thread's GS base: `wrgsbase` where the kernel allows it
/// (no system call; the kernel saves and restores the value on context
/// switches), `arch_prctl(ARCH_SET_GS)` otherwise.
pub(crate) fn set_gs_base(base: usize) -> io::Result<()> {
    if fsgsbase() {
        if !is_canonical(base) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        // SAFETY: the kernel enabled FSGSBASE, and `base` is canonical (a
        // non-canonical value would raise #GP). Only this thread's GS base
        // changes, which neither glibc nor Rust use (both address
        // thread-local storage via FS).
        unsafe {
            std::arch::asm!("wrgsbase {}", in(reg) base, options(nomem, nostack, preserves_flags));
        }
        return Ok(());
    }
    set_gs_base_syscall(base)
}

fn set_gs_base_syscall(base: usize) -> io::Result<()> {
    // SAFETY: ARCH_SET_GS only changes this thread's GS base register, which
    // neither glibc nor Rust use (both address thread-local storage via FS).
    let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, base) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `address` is a canonical 48-bit x86-64 address (bits 63..47 all
/// equal), as `wrgsbase` requires. 57-bit addresses are never handed to
/// user space unless it asks for them with a hint above 47 bits.
const fn is_canonical(address: usize) -> bool {
    let top = address >> 47;
    top == 0 || top == (usize::MAX >> 47)
}

const ARCH_SET_GS: libc::c_int = 0x1001;
const ARCH_GET_GS: libc::c_int = 0x1004;

/// Sets the processor number the current thread's KPCR reports
/// (`KeGetCurrentProcessorNumberEx`, `gs:[0x1A4]`). Creates the thread's
/// machine state if this thread has not called the driver yet.
///
/// # Errors
///
/// The error from creating the thread's machine state.
pub fn set_processor_number(number: u32) -> io::Result<()> {
    super::thread::with_env(|env| env.kpcr.set_processor_number(number))??;
    super::thread::note_processor_number(number);
    Ok(())
}

/// The processor number the current thread's KPCR reports. Creates the
/// thread's machine state if needed.
///
/// # Errors
///
/// The error from creating the thread's machine state.
pub fn processor_number() -> io::Result<u32> {
    super::thread::with_env(|_| super::thread::processor_number_in_handler())
}

/// Address of the current thread's KPCR (what GS points at during a driver
/// call). Creates the thread's machine state if needed.
///
/// # Errors
///
/// The error from creating the thread's machine state.
pub fn current_base() -> io::Result<usize> {
    super::thread::with_env(|env| env.kpcr.base())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instructions_and_the_system_call_agree_on_the_gs_base() {
        // In a thread of its own: the test harness's thread keeps its GS.
        std::thread::spawn(|| {
            let host = gs_base();
            let kpcr = Kpcr::new(0).unwrap();
            set_gs_base(kpcr.base()).unwrap();
            assert_eq!(gs_base(), kpcr.base());
            assert_eq!(gs_base_syscall(), kpcr.base());
            set_gs_base_syscall(kpcr.base() + 0x40).unwrap();
            assert_eq!(gs_base(), kpcr.base() + 0x40);
            set_gs_base(host).unwrap();
            assert_eq!(gs_base_syscall(), host);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn non_canonical_bases_are_refused() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x7FFF_FFFF_F000));
        assert!(is_canonical(0xFFFF_8000_0000_0000));
        assert!(!is_canonical(0x8000_0000_0000));
        assert!(!is_canonical(0x0001_0000_0000_0000));
        std::thread::spawn(|| {
            let host = gs_base();
            assert!(set_gs_base(0x8000_0000_0000).is_err());
            assert_eq!(gs_base(), host);
        })
        .join()
        .unwrap();
    }
}
