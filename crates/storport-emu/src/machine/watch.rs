//! Racing data-out buffers: a buffer whose one varying byte takes another
//! value between two reads of the driver, deterministically.
//!
//! A data-out buffer can change while a miniport reads it (the caller's own
//! pages of a pass-through request, another thread): a driver that reads a
//! parameter list twice decides on one version and acts on another. A thread
//! rewriting the buffer in a loop would expose that only by luck of the
//! scheduler, so the machine does it with page protection instead:
//!
//! - [`RacingBuffer`] lays the buffer out so that its varying byte is the
//!   first byte of a page of its own mapping; the bytes before it lie on the
//!   page(s) before, which stay readable.
//! - [`RacingBuffer::arm`] makes that page inaccessible for the current
//!   thread's request. Every access to the page faults. When the fault
//!   address is the varying byte itself (an access that starts there, or one
//!   that starts before it and crosses into the page: the processor reports
//!   the first byte of the faulting page), the handler first stores the
//!   version the schedule names for that access; then, for any access to the
//!   page, it makes the page accessible, sets the trap flag and lets the one
//!   instruction run. The single-step trap that follows (`TRAP_TRACE`)
//!   protects the page again and clears the flag. So access *n* of the
//!   varying byte sees the version the schedule gives *n*, whatever code
//!   makes it: driver code, or an emulated export such as `memcpy` that runs
//!   host code on the driver's behalf.
//! - Emulated exports that read driver memory with the checked helpers
//!   (`process_vm_readv`, which fails on a protected page instead of
//!   faulting: `StorPortMoveMemory`, ...) go through `checked_access`: one
//!   checked read or write counts as one access of the varying byte.
//!
//! Since the two versions differ in that one byte only, any copy of the
//! buffer, however torn, equals one of the versions exactly: a driver that
//! fetches the buffer once always acts on a consistent snapshot.
//!
//! The state is per thread and lives in const-initialised thread-locals (no
//! allocation, no lock: the signal handler reads it). The page is watched
//! only on the thread that armed it; the port runs every routine of the
//! request (`HwStartIo`, its DPCs and timer routines) on that thread.
//!
//! If the trap flag was already set when the watch single-steps (another
//! user of single-stepping), the flag is left set and the trap is passed on.

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;

use super::memory::{Mapping, PAGE_SIZE, Perms, read_bytes};
use super::signals;

/// `si_code` of a single-step trap (`TRAP_TRACE` in `<signal.h>`).
const TRAP_TRACE: libc::c_int = 2;
/// The trap flag in RFLAGS.
const TRAP_FLAG: i64 = 0x100;

/// One thread's watch.
#[derive(Clone, Copy)]
struct State {
    /// Address of the varying byte, the first byte of the watched page; 0
    /// when nothing is watched.
    page: usize,
    /// The two versions of the varying byte.
    versions: [u8; 2],
    /// Bit `n` names the version access `n` sees (bit 63 for every later one).
    schedule: u64,
    /// Accesses of the varying byte so far.
    accesses: u32,
    /// The page is accessible for one single-stepped instruction.
    stepping: bool,
    /// The trap flag was set before the watch set it.
    foreign_trap: bool,
}

impl State {
    const IDLE: Self = Self {
        page: 0,
        versions: [0; 2],
        schedule: 0,
        accesses: 0,
        stepping: false,
        foreign_trap: false,
    };

    const fn watches(&self, address: usize) -> bool {
        self.page != 0 && address >= self.page && address - self.page < PAGE_SIZE
    }

    /// Stores the version the next access sees and counts the access.
    fn next_version(&mut self) -> u8 {
        let bit = self.accesses.min(63);
        let version = self.versions[usize::from(self.schedule >> bit & 1 == 1)];
        self.accesses = self.accesses.saturating_add(1);
        version
    }
}

thread_local! {
    // Const-initialised and without destructor: read by the signal handler.
    static STATE: Cell<State> = const { Cell::new(State::IDLE) };
}

/// Sets the protection of the watched page. Async-signal-safe.
fn protect(page: usize, accessible: bool) {
    let prot = if accessible {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_NONE
    };
    // SAFETY: `page` is the page-aligned varying byte of an armed
    // `RacingBuffer`, whose mapping lives while the watch is armed; no Rust
    // reference points into it.
    unsafe {
        libc::mprotect(page as *mut libc::c_void, PAGE_SIZE, prot);
    }
}

/// Stores `version` as the varying byte. The page must be accessible.
fn store(page: usize, version: u8) {
    // SAFETY: `page` is the varying byte of an armed `RacingBuffer`'s
    // mapping, writable now; the mapping is plain bytes no reference covers.
    unsafe { (page as *mut u8).write_volatile(version) };
}

/// Which version of the varying byte each access sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The first `n` accesses see the first version, every later one the
    /// second (`n` at most 63).
    SwitchAfter(u32),
    /// Accesses alternate, starting with the first version.
    Alternate,
}

impl Schedule {
    /// Bit `n` set: access `n` sees the second version.
    const fn mask(self) -> u64 {
        match self {
            Self::SwitchAfter(n) if n >= 63 => 1 << 63,
            Self::SwitchAfter(n) => u64::MAX << n,
            Self::Alternate => 0xAAAA_AAAA_AAAA_AAAA,
        }
    }
}

/// A data-out buffer in a mapping of its own, with its varying byte at the
/// start of a page (see the module documentation).
///
/// # Invariants
///
/// `start + varying` is page-aligned and lies inside `mapping`, as does
/// `start..start + len`.
#[derive(Debug)]
pub struct RacingBuffer {
    mapping: Mapping,
    start: usize,
    len: usize,
    varying: usize,
    versions: [u8; 2],
}

impl RacingBuffer {
    /// A buffer holding `contents`, whose byte `varying` takes the values
    /// `versions` (the byte in `contents` is replaced by the first one).
    ///
    /// # Errors
    ///
    /// When `varying` is outside `contents`, or memory cannot be mapped.
    pub fn new(contents: &[u8], varying: usize, versions: [u8; 2]) -> io::Result<Self> {
        if varying >= contents.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the varying byte {varying} is outside the {}-byte buffer; give an offset below its length",
                    contents.len()
                ),
            ));
        }
        let head = varying.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mapping = Mapping::new(head + (contents.len() - varying))?;
        let offset = head - varying;
        mapping.write(offset, contents)?;
        mapping.write(head, &versions[..1])?;
        // INVARIANT: `offset + varying == head`, a page boundary inside the
        // mapping, and the mapping holds `offset + contents.len()` bytes.
        Ok(Self {
            start: mapping.addr() + offset,
            mapping,
            len: contents.len(),
            varying,
            versions,
        })
    }

    /// The address of the buffer's first byte (what the driver is given).
    #[must_use]
    pub const fn address(&self) -> usize {
        self.start
    }

    /// The buffer's length in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never: it holds the varying byte).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's bytes as they are now.
    ///
    /// # Errors
    ///
    /// When the buffer cannot be read (it is armed on another thread).
    pub fn contents(&self) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; self.len];
        read_bytes(self.start, &mut bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        Ok(bytes)
    }

    /// Watches the varying byte on this thread until the guard is dropped:
    /// access `n` sees the version `schedule` gives it.
    ///
    /// # Errors
    ///
    /// When this thread already watches a buffer, the signal handlers cannot
    /// be installed, or the page cannot be protected.
    pub fn arm(&self, schedule: Schedule) -> io::Result<Armed<'_>> {
        signals::install().map_err(io::Error::other)?;
        if STATE.with(Cell::get).page != 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this thread already watches a racing buffer; a request has one at a time",
            ));
        }
        let page = self.start + self.varying;
        STATE.with(|state| {
            state.set(State {
                page,
                versions: self.versions,
                schedule: schedule.mask(),
                ..State::IDLE
            });
        });
        let offset = page - self.mapping.addr();
        if let Err(error) = self.mapping.protect(offset, PAGE_SIZE, Perms::NONE) {
            STATE.with(|state| state.set(State::IDLE));
            return Err(error);
        }
        Ok(Armed {
            buffer: self,
            _thread: PhantomData,
        })
    }
}

/// A watch armed on this thread; dropping it makes the page accessible again.
#[must_use = "the watch ends when the guard is dropped"]
pub struct Armed<'a> {
    buffer: &'a RacingBuffer,
    /// The watch belongs to the thread that armed it.
    _thread: PhantomData<*mut ()>,
}

impl Armed<'_> {
    /// Accesses of the varying byte so far.
    #[must_use]
    pub fn accesses(&self) -> u32 {
        STATE.with(Cell::get).accesses
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        STATE.with(|state| state.set(State::IDLE));
        let offset = self.buffer.start + self.buffer.varying - self.buffer.mapping.addr();
        let _ = self
            .buffer
            .mapping
            .protect(offset, PAGE_SIZE, Perms::READ_WRITE);
    }
}

/// Runs `access`, a checked read or write of `address..address + len` that
/// emulator code makes on the driver's behalf (it fails on a protected page
/// instead of faulting), with this thread's watched page accessible; when
/// the range covers the varying byte, that is one access of it.
/// Async-signal-safe when `access` is.
pub(crate) fn checked_access<R>(address: usize, len: usize, access: impl FnOnce() -> R) -> R {
    let mut state = STATE.with(Cell::get);
    let overlaps = state.page != 0
        && len > 0
        && address < state.page + PAGE_SIZE
        && address.saturating_add(len) > state.page;
    if !overlaps || state.stepping {
        return access();
    }
    protect(state.page, true);
    if address <= state.page {
        let version = state.next_version();
        store(state.page, version);
        STATE.with(|cell| cell.set(state));
    }
    let result = access();
    protect(state.page, false);
    result
}

/// SIGSEGV: when the fault is on this thread's watched page, lets the one
/// instruction run (storing the scheduled version first when it reads the
/// varying byte) and returns true. Signal context.
pub(crate) fn on_fault(info: *const libc::siginfo_t, context: *mut libc::c_void) -> bool {
    let mut state = STATE.with(Cell::get);
    if state.page == 0 || info.is_null() || context.is_null() {
        return false;
    }
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let info = unsafe { &*info };
    // SAFETY: for SIGSEGV raised by a fault the kernel fills si_addr.
    let address = unsafe { info.si_addr() } as usize;
    if !state.watches(address) || state.stepping {
        return false;
    }
    protect(state.page, true);
    if address == state.page {
        let version = state.next_version();
        store(state.page, version);
    }
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t
    // that only this handler invocation uses.
    let uc = unsafe { &mut *context.cast::<libc::ucontext_t>() };
    let flags = &mut uc.uc_mcontext.gregs[usize::try_from(libc::REG_EFL).unwrap_or(17)];
    state.foreign_trap = *flags & TRAP_FLAG != 0;
    *flags |= TRAP_FLAG;
    state.stepping = true;
    STATE.with(|cell| cell.set(state));
    true
}

/// SIGTRAP: when it is the single step of a watched access, protects the
/// page again and returns true (false when the trap flag belongs to someone
/// else too, so they see the trap). Signal context.
pub(crate) fn on_trace(info: *const libc::siginfo_t, context: *mut libc::c_void) -> bool {
    let mut state = STATE.with(Cell::get);
    if !state.stepping || info.is_null() || context.is_null() {
        return false;
    }
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    if unsafe { &*info }.si_code != TRAP_TRACE {
        return false;
    }
    protect(state.page, false);
    state.stepping = false;
    STATE.with(|cell| cell.set(state));
    if state.foreign_trap {
        return false;
    }
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t
    // that only this handler invocation uses.
    let uc = unsafe { &mut *context.cast::<libc::ucontext_t>() };
    uc.uc_mcontext.gregs[usize::try_from(libc::REG_EFL).unwrap_or(17)] &= !TRAP_FLAG;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(address: usize) -> u8 {
        // SAFETY: the address is inside a live RacingBuffer; the watch makes
        // the read fault and be replayed, which is what is tested.
        unsafe { (address as *const u8).read_volatile() }
    }

    #[test]
    fn each_access_of_the_varying_byte_sees_the_scheduled_version() {
        let contents: Vec<u8> = (0..40_u8).collect();
        let buffer = RacingBuffer::new(&contents, 18, [1, 0x81]).unwrap();
        let base = buffer.address();
        assert_eq!((base + 18) % PAGE_SIZE, 0);
        {
            let armed = buffer.arm(Schedule::Alternate).unwrap();
            assert_eq!(read(base + 17), 17, "bytes before the page are plain");
            assert_eq!(read(base + 19), 19, "other bytes of the page do not count");
            assert_eq!(read(base + 18), 1);
            assert_eq!(read(base + 18), 0x81);
            // SAFETY: an unaligned four-byte read across the page boundary.
            let word = unsafe { ((base + 16) as *const u32).read_unaligned() };
            assert_eq!(
                word.to_le_bytes(),
                [16, 17, 1, 19],
                "a crossing read is one access"
            );
            let mut copy = [0_u8; 8];
            read_bytes(base + 14, &mut copy).unwrap();
            assert_eq!(copy[4], 0x81, "a checked read is one access");
            assert_eq!(armed.accesses(), 4);
        }
        assert_eq!(buffer.contents().unwrap()[19], 19);
    }

    #[test]
    fn switch_after_holds_the_first_version_then_keeps_the_second() {
        let buffer = RacingBuffer::new(&[9; 8], 0, [2, 3]).unwrap();
        let armed = buffer.arm(Schedule::SwitchAfter(2)).unwrap();
        let seen: Vec<u8> = (0..5).map(|_| read(buffer.address())).collect();
        assert_eq!(seen, [2, 2, 3, 3, 3]);
        assert!(
            buffer.arm(Schedule::Alternate).is_err(),
            "one watch per thread"
        );
        drop(armed);
        assert!(RacingBuffer::new(&[0; 4], 4, [0, 1]).is_err());
    }
}
