//! Preemption of driver code that runs below DISPATCH_LEVEL.
//!
//! On Windows, code running below DISPATCH_LEVEL can lose its processor at
//! any instruction: a DPC, or a thread at a higher priority, runs on that
//! processor first, and the preempted code resumes only when it is done.
//! Code at DISPATCH_LEVEL or above is never preempted on its processor
//! ("Managing Hardware Priorities"; "Introduction to Spin Locks": a spin
//! lock raises to DISPATCH_LEVEL so that its holder cannot be preempted by
//! code that would then spin on the lock forever).
//!
//! The machine models one such preemption per call, deterministically:
//!
//! 1. [`arm`] plans it for the next outermost driver call on this thread:
//!    after `budget` instructions executed in registered driver code.
//! 2. The gate runs that call with the trap flag set, so every instruction
//!    raises a single-step trap (handled in the signal handler). Steps
//!    in emulator code (emulated exports) are not counted and never
//!    preempted: emulator code may hold host locks.
//! 3. When the budget is spent and the emulated IRQL is below
//!    DISPATCH_LEVEL, the trap flag is cleared and the thread parks inside
//!    the signal handler, so every register of the preempted code stays
//!    saved. The [`Preemption`] tells the other side, which runs the
//!    preempting call on another host thread that carries the same
//!    processor number, then [`Preemption::resume`]s the parked thread.
//! 4. If the budget is spent while the IRQL is at DISPATCH_LEVEL or above
//!    (the driver raised it, for example with a spin lock), stepping pauses
//!    until the IRQL drops below DISPATCH_LEVEL (a `mov cr8` or an emulated
//!    export that lowers it), then resumes and preempts at the next driver
//!    instruction; a call that returns first is not preempted.
//!
//! Single-stepping costs one signal per instruction (a few microseconds),
//! so only a bounded number of steps ([`MAX_STEPS`]) is taken per call, and
//! emulator code is not stepped at all: when a step lands on the first
//! instruction of an emulated export called from driver code, the trap flag
//! is cleared and the export's return address is redirected through a small
//! stub that sets the flag again on the way back (the real return address
//! waits in a scratch slot of the KPCR, [`super::kpcr::KPCR_MACHINE_SCRATCH`]).
//! A `rep` string instruction traps after each iteration, so a long copy
//! counts as many steps: a preemption can land in the middle of a copy, as
//! an interrupt can on Windows.
//!
//! Everything the signal handler touches here is async-signal-safe: atomics,
//! const-initialised thread-locals, `futex` and `clock_gettime`.

#![expect(
    clippy::doc_markdown,
    reason = "IRQL names are written as Microsoft's documentation writes them"
)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::OnceLock;

use super::code::CodePage;
use super::kpcr::KPCR_MACHINE_SCRATCH;
use super::{gate, images, irql, thread};

/// Single-step traps taken per call at most, emulator code included, before
/// the machine gives up on preempting it.
pub const MAX_STEPS: u64 = 200_000;
/// The trap flag in RFLAGS.
pub(crate) const TRAP_FLAG: u64 = 0x100;
/// `si_code` of a single-step trap (`TRAP_TRACE`).
pub(crate) const TRAP_TRACE: libc::c_int = 2;
/// How long a parked call waits at most before it resumes anyway (the other
/// side vanished): far above any watchdog limit.
const LONGEST_PARK_NS: u64 = 300_000_000_000;

/// The preemption is planned; the call has not been preempted yet.
const ARMED: u32 = 0;
/// The call is parked; the preempting side may run.
const PARKED: u32 = 1;
/// The preempting side let the parked call go on.
const RESUMED: u32 = 2;
/// The call ended (preempted or not): the preempting side has nothing to do.
const FINISHED: u32 = 3;

/// One planned preemption, shared by the thread that is preempted and the
/// thread that runs the preempting call.
#[derive(Debug, Default)]
pub struct Preemption {
    state: AtomicU32,
    /// Where the preempted call was stopped.
    pc: AtomicUsize,
    /// Its emulated IRQL when it was stopped.
    irql: AtomicU8,
    /// Its processor number.
    processor: AtomicU32,
    /// Monotonic time it was parked at.
    parked_at_ns: AtomicU64,
    /// Where the preempting call was when its time ran out and the parked call
    /// was released before it returned; 0 when it returned in time.
    released_at_pc: AtomicUsize,
}

/// Where a call was preempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preempted {
    /// The instruction it was about to execute.
    pub pc: usize,
    /// Its emulated IRQL.
    pub irql: u8,
    /// The processor number of its thread.
    pub processor: u32,
}

impl Preemption {
    /// A new plan, not yet preempted.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until the planned call is parked ([`Some`]) or has ended
    /// without being preempted ([`None`]).
    #[must_use]
    pub fn wait_parked(&self) -> Option<Preempted> {
        loop {
            match self.state.load(Ordering::Acquire) {
                PARKED => return self.preempted(),
                ARMED => futex_wait(&self.state, ARMED, 50_000_000),
                _ => return None,
            }
        }
    }

    /// Where the call was preempted, once it has been.
    #[must_use]
    pub fn preempted(&self) -> Option<Preempted> {
        (self.parked_at_ns.load(Ordering::Acquire) != 0).then(|| Preempted {
            pc: self.pc.load(Ordering::Relaxed),
            irql: self.irql.load(Ordering::Relaxed),
            processor: self.processor.load(Ordering::Relaxed),
        })
    }

    /// Lets the parked call go on (the preempting call returned).
    pub fn resume(&self) {
        if self
            .state
            .compare_exchange(PARKED, RESUMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            futex_wake(&self.state);
        }
    }

    /// Where the preempting call was when its time ran out and the parked
    /// call was released before the preempting call returned.
    #[must_use]
    pub fn released_early_at(&self) -> Option<usize> {
        match self.released_at_pc.load(Ordering::Acquire) {
            0 => None,
            pc => Some(pc),
        }
    }

    /// How long the call was parked so far (0 when it never was).
    #[must_use]
    pub fn parked_for(&self) -> Duration {
        match self.parked_at_ns.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            at => Duration::from_nanos(thread::monotonic_ns().saturating_sub(at)),
        }
    }

    /// The planned call ended: the preempting side stops waiting.
    pub fn finish(&self) {
        self.state.store(FINISHED, Ordering::Release);
        futex_wake(&self.state);
    }

    /// Called from the signal handler of the preempting thread when its
    /// soft deadline passed at `pc` in driver code: releases the parked call.
    /// Async-signal-safe.
    pub(crate) fn release_early(&self, pc: usize) {
        if self.state.load(Ordering::Acquire) == PARKED {
            self.released_at_pc.store(pc.max(1), Ordering::Release);
            self.resume();
        }
    }

    /// Parks the current thread (in the signal handler) until resumed.
    /// Async-signal-safe.
    fn park(&self, pc: usize, level: u8) {
        let processor = thread::processor_number_in_handler();
        self.pc.store(pc, Ordering::Relaxed);
        self.irql.store(level, Ordering::Relaxed);
        self.processor.store(processor, Ordering::Relaxed);
        let start = thread::monotonic_ns();
        self.parked_at_ns.store(start.max(1), Ordering::Release);
        if self
            .state
            .compare_exchange(ARMED, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        futex_wake(&self.state);
        while self.state.load(Ordering::Acquire) == PARKED {
            if thread::monotonic_ns().saturating_sub(start) > LONGEST_PARK_NS {
                break;
            }
            futex_wait(&self.state, PARKED, 100_000_000);
        }
        super::gate::postpone_deadlines(thread::monotonic_ns().saturating_sub(start));
    }
}

/// The step plan of this thread's current call.
#[derive(Clone, Copy)]
struct Plan {
    /// Driver instructions left before the preemption.
    budget: u64,
    /// Traps left before stepping stops.
    steps_left: u64,
    /// The previous trap was in driver code (so a trap in emulator code is
    /// the first instruction of an export the driver called).
    from_driver: bool,
    preemption: *const Preemption,
}

const NO_PLAN: Plan = Plan {
    budget: 0,
    steps_left: 0,
    from_driver: false,
    preemption: std::ptr::null(),
};

thread_local! {
    // Const-initialised and without destructor: used by the signal handler.
    static ARMED_PLAN: Cell<Plan> = const { Cell::new(NO_PLAN) };
    static STEPPING: Cell<Plan> = const { Cell::new(NO_PLAN) };
    // A plan whose budget is spent, waiting for the IRQL to drop.
    static WAITING_FOR_IRQL: Cell<Plan> = const { Cell::new(NO_PLAN) };
}

/// `push qword ptr gs:[KPCR_MACHINE_SCRATCH]; pushfq; or qword ptr [rsp],
/// TRAP_FLAG; popfq; ret`: returns from an emulated export to the driver
/// address kept in the KPCR, with the trap flag set again (the first trap
/// comes at that address).
const RETURN_STUB_CODE: [u8; 19] = [
    0x65, 0xFF, 0x34, 0x25, 0x00, 0xF8, 0x00, 0x00, // push qword ptr gs:[0xF800]
    0x9C, // pushfq
    0x48, 0x81, 0x0C, 0x24, 0x00, 0x01, 0x00, 0x00, // or qword ptr [rsp], 0x100
    0x9D, // popfq
    0xC3, // ret
];
const _: () = assert!(KPCR_MACHINE_SCRATCH == 0xF800);

/// The return stub's page, made on the first [`arm`].
static RETURN_STUB: OnceLock<Option<CodePage>> = OnceLock::new();
/// Its address (0 until made), for the signal handler.
static RETURN_STUB_ADDRESS: AtomicUsize = AtomicUsize::new(0);

/// The address of the return stub, 0 before any preemption was planned.
/// Async-signal-safe.
pub(crate) fn return_stub() -> usize {
    RETURN_STUB_ADDRESS.load(Ordering::Acquire)
}

/// Plans a preemption of the next outermost driver call made through the
/// gate on this thread, after `budget` driver instructions (at least 1).
///
/// # Safety
///
/// `preemption` must stay alive until that call has returned: the signal
/// handler reads it while the call runs.
pub unsafe fn arm(budget: u64, preemption: &Preemption) {
    let stub =
        RETURN_STUB.get_or_init(|| CodePage::new("storemu-step-return", &RETURN_STUB_CODE).ok());
    if let Some(stub) = stub {
        RETURN_STUB_ADDRESS.store(stub.addr(), Ordering::Release);
    }
    ARMED_PLAN.with(|p| {
        p.set(Plan {
            budget: budget.max(1),
            steps_left: MAX_STEPS,
            from_driver: false,
            preemption: std::ptr::from_ref(preemption),
        });
    });
}

/// Takes the armed plan for the call the gate is about to make: whether to
/// run it with the trap flag set.
pub(crate) fn begin_call() -> bool {
    let plan = ARMED_PLAN.with(|p| p.replace(NO_PLAN));
    let active = !plan.preemption.is_null();
    STEPPING.with(|s| s.set(plan));
    active
}

/// The call ended; stepping (if any) is over.
pub(crate) fn end_call() {
    STEPPING.with(|s| s.set(NO_PLAN));
    WAITING_FOR_IRQL.with(|s| s.set(NO_PLAN));
}

/// This thread's emulated IRQL dropped below DISPATCH_LEVEL: a preemption
/// that waited for it is due at the next driver instruction. Returns whether
/// the caller must set the trap flag again (in the interrupted context, or
/// with [`set_trap_flag`] in an emulated export). Async-signal-safe.
pub(crate) fn on_irql_lowered() -> bool {
    let plan = WAITING_FOR_IRQL.with(|s| s.replace(NO_PLAN));
    if plan.preemption.is_null() {
        return false;
    }
    STEPPING.with(|s| s.set(plan));
    true
}

/// Sets the trap flag of the current thread: single-stepping resumes at the
/// next instruction. For emulated exports, when [`on_irql_lowered`] says so.
pub(crate) fn set_trap_flag() {
    // SAFETY: pushfq/popfq only change RFLAGS of this thread; with the trap
    // flag set the next instructions raise SIGTRAP, which the machine's
    // handler takes (this thread is stepping, see `on_irql_lowered`).
    unsafe {
        std::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq");
    }
}

/// Whether this thread is being single-stepped for a planned preemption.
/// Async-signal-safe.
pub(crate) fn stepping() -> bool {
    STEPPING.with(|s| !s.get().preemption.is_null())
}

/// Handles one single-step trap at `pc` with stack pointer `rsp`; returns
/// whether the trap flag must stay set. May park the thread, or redirect the
/// return of an emulated export (see the module documentation).
/// Async-signal-safe.
pub(crate) fn on_step(pc: usize, rsp: usize) -> bool {
    let mut plan = STEPPING.with(Cell::get);
    if plan.preemption.is_null() || plan.steps_left == 0 {
        STEPPING.with(|s| s.set(NO_PLAN));
        return false;
    }
    plan.steps_left -= 1;
    if !images::in_registered_code(pc) {
        let entered = plan.from_driver;
        plan.from_driver = false;
        STEPPING.with(|s| s.set(plan));
        return !(entered && detour_export_return(rsp));
    }
    plan.from_driver = true;
    STEPPING.with(|s| s.set(plan));
    {
        plan.budget = plan.budget.saturating_sub(1);
        let level = irql::current();
        if plan.budget == 0 && level < irql::DISPATCH_LEVEL {
            STEPPING.with(|s| s.set(NO_PLAN));
            // SAFETY: `arm`'s caller keeps the preemption alive until the
            // call returns, and this trap comes from that call.
            let preemption = unsafe { &*plan.preemption };
            preemption.park(pc, level);
            return false;
        }
        if plan.budget == 0 {
            // Not preemptible at this IRQL: wait for it to drop.
            STEPPING.with(|s| s.set(NO_PLAN));
            WAITING_FOR_IRQL.with(|s| s.set(plan));
            return false;
        }
    }
    STEPPING.with(|s| s.set(plan));
    true
}

/// At the first instruction of emulator code after driver code (the entry
/// of an export the driver called): when the word at `rsp` is a
/// return address into driver code (an export was just called from driver
/// code), keeps it in the KPCR's scratch slot and returns through the stub
/// instead; true when it did, and stepping may pause until the export
/// returns. Async-signal-safe.
fn detour_export_return(rsp: usize) -> bool {
    let stub = return_stub();
    let kpcr = thread::kpcr_base_in_handler();
    let frame = gate::current_frame();
    if stub == 0 || kpcr == 0 || frame.is_null() {
        return false;
    }
    // SAFETY: a non-null current frame is live while its call runs, and this
    // trap comes from that call.
    let frame = unsafe { &*frame };
    if rsp < frame.guard.1 || rsp.saturating_add(8) > frame.stack_top || !rsp.is_multiple_of(8) {
        return false;
    }
    let slot = rsp as *mut usize;
    // SAFETY: `rsp` lies in this thread's kernel stack (checked above), which
    // is mapped read-write for the whole call.
    let return_address = unsafe { slot.read() };
    if return_address == stub || !images::in_registered_code(return_address) {
        return false;
    }
    let scratch = (kpcr + KPCR_MACHINE_SCRATCH) as *mut usize;
    // SAFETY: the KPCR mapping of this thread is read-write and
    // KPCR_MACHINE_SCRATCH lies inside it.
    unsafe { scratch.write(return_address) };
    // SAFETY: as for the read above.
    unsafe { slot.write(stub) };
    true
}

/// `futex(FUTEX_WAIT_PRIVATE)` on `word` while it holds `expected`, for at
/// most `timeout_ns`. Async-signal-safe.
fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: u64) {
    let timeout = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout_ns / 1_000_000_000).unwrap_or(1),
        tv_nsec: libc::c_long::try_from(timeout_ns % 1_000_000_000).unwrap_or(0),
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAIT only reads
    // it and sleeps; `timeout` is a live local.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &raw const timeout,
        );
    }
}

/// Wakes every waiter on `word`. Async-signal-safe.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not
    // access memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}
