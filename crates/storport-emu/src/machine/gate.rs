//! The call gate: runs driver code and contains what goes wrong in it.
//!
//! A win64 function of the driver runs on the current thread's emulated
//! processor (24 KiB kernel stack with a guard page, KPCR in GS, emulated
//! IRQL, watchdog), and anything that goes wrong in it becomes a [`Fault`]
//! instead of a crashed process.
//!
//! # Recovery
//!
//! On entry the gate saves the host's callee-saved registers, MXCSR and x87
//! control word on the host stack and records that stack pointer in the call's
//! frame. A fault (from the signal handler), a watchdog expiry (from the
//! timer signal's handler) or [`abort_current_call`] (from an emulated export)
//! resumes at `gate_resume` with the stack pointer reset to that record: the
//! registers are restored and `gate_enter` returns to [`call`] as if the
//! driver had returned. Every Rust frame between the gate and the fault is
//! skipped without running destructors, so emulated exports must validate
//! driver pointers before touching shared state and must not hold a lock
//! while calling driver code.
//!
//! # Nested calls
//!
//! An emulated export may call back into the driver (for example
//! `StorPortSynchronizeAccess`): the nested call runs on the same kernel
//! stack below the export's frame, as on Windows, so its stack use adds up.
//! A fault in a nested call ends only the nested call; a watchdog expiry ends
//! the outermost call whose time limit passed.

use std::cell::Cell;
use std::time::Duration;

use super::fault::{BugCheck, Exception, Fault, Registers};
use super::preempt::{self, Preemption};
use super::{images, irql, memory, signals, thread};

/// The most integer arguments [`call`] passes (four in registers, four on the stack).
pub const MAX_ARGS: usize = 8;
/// How deeply calls may nest (driver → export → driver ...).
const MAX_DEPTH: usize = 8;

pub(crate) const RUNNING: u32 = 0;
pub(crate) const FAULTED: u32 = 1;
pub(crate) const TIMED_OUT: u32 = 2;
pub(crate) const ABORTED: u32 = 3;

/// What the signal handler records about a fault; turned into a [`Fault`]
/// after recovery, in normal context.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawFault {
    pub(crate) signal: i32,
    pub(crate) code: u32,
    pub(crate) pc: usize,
    pub(crate) fault_address: Option<usize>,
    pub(crate) write: bool,
    pub(crate) guard_hit: bool,
    pub(crate) fast_fail_code: Option<u64>,
    pub(crate) registers: Registers,
    pub(crate) description: &'static str,
}

/// One active driver call. Lives on the host stack of [`call`] and is linked
/// from the thread-local `CURRENT_FRAME` while the call runs.
#[repr(C)]
pub(crate) struct Frame {
    /// Host stack pointer to resume at; written by `gate_enter` (offset 0).
    pub(crate) host_rsp: Cell<usize>,
    pub(crate) state: Cell<u32>,
    pub(crate) raw: Cell<RawFault>,
    pub(crate) aborted: Cell<Option<Fault>>,
    pub(crate) guard: (usize, usize),
    pub(crate) stack_top: usize,
    pub(crate) deadline_ns: Cell<u64>,
    /// When the call, which preempted another on its processor, has run too
    /// long: the watchdog then releases the preempted call ([`Limits::soft`]).
    pub(crate) soft_deadline_ns: Cell<u64>,
    pub(crate) soft_hook: *const Preemption,
    pub(crate) outer: *const Self,
}

/// The time limits of one driver call.
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    /// Longest the call may run before the watchdog ends it.
    pub timeout: Duration,
    /// For a call that preempted another on its processor: how long it may
    /// run before the watchdog releases the preempted call (which then goes
    /// on beside it), and the preemption to release. The call itself goes on
    /// until it returns or `timeout` passes.
    pub soft: Option<(Duration, &'a Preemption)>,
}

thread_local! {
    // Const-initialised and without destructor: read by the signal handler.
    static CURRENT_FRAME: Cell<*const Frame> = const { Cell::new(std::ptr::null()) };
    static LAST_EXIT_IRQL: Cell<u8> = const { Cell::new(0) };
    static LAST_STACK_USAGE: Cell<usize> = const { Cell::new(0) };
    // Whether outermost calls on this thread time the driver code
    // ([`time_driver_code`]), and the time of the last one in ns.
    static TIME_DRIVER: Cell<bool> = const { Cell::new(false) };
    static LAST_DRIVER_NS: Cell<u64> = const { Cell::new(0) };
}

/// Makes this thread's outermost calls measure the time spent between the
/// gate's switch into driver code and its return ([`last_driver_time`]).
/// Off by default: two clock reads per call.
pub fn time_driver_code(on: bool) {
    TIME_DRIVER.with(|t| t.set(on));
}

/// How long the most recent outermost call on this thread ran inside the gate.
///
/// That is driver code and the emulated exports it called, without the
/// gate's own setup and checks; with [`time_driver_code`] on, zero otherwise.
#[must_use]
pub fn last_driver_time() -> Duration {
    Duration::from_nanos(LAST_DRIVER_NS.with(Cell::get))
}

/// The innermost active frame of this thread (null outside driver calls).
/// Async-signal-safe.
pub(crate) fn current_frame() -> *const Frame {
    CURRENT_FRAME.with(Cell::get)
}

/// Whether the current thread is inside a driver call.
#[must_use]
pub fn in_call() -> bool {
    !current_frame().is_null()
}

/// The IRQL at which the most recent driver call on this thread returned.
///
/// Also set when the call was stopped. The gate restores the caller's IRQL after each call, so this
/// is the way to check that a callback returned at the level it was called at.
#[must_use]
pub fn last_exit_irql() -> u8 {
    LAST_EXIT_IRQL.with(Cell::get)
}

/// Bytes of kernel stack the most recent outermost driver call used.
///
/// Measured on this thread down to the deepest word written, nested calls
/// and emulated exports included, by painting the stack before the call; a
/// call that hit the guard page counts as the whole stack. Windows gives a
/// driver callback what is left of the same 24 KiB, so values close to
/// [`super::KERNEL_STACK_SIZE`] mean the driver would likely overflow there.
#[must_use]
pub fn last_stack_usage() -> usize {
    LAST_STACK_USAGE.with(Cell::get)
}

/// The current thread's kernel stack (the usable 24 KiB above the guard
/// page), where outermost driver calls run. Creates the thread's machine
/// state if needed.
///
/// # Errors
///
/// The error from creating the thread's machine state.
pub fn kernel_stack() -> std::io::Result<std::ops::Range<usize>> {
    thread::with_env(|env| env.guard().1..env.stack_top())
}

/// Earliest deadline, hard or soft, of `frame` and the frames around it.
/// Async-signal-safe.
pub(crate) fn effective_deadline(frame: &Frame) -> u64 {
    let mut deadline = frame.deadline_ns.get().min(frame.soft_deadline_ns.get());
    let mut outer = frame.outer;
    while !outer.is_null() {
        // SAFETY: outer frames are live: each lives on the host stack of a
        // `call` that is still waiting for the inner call to end.
        let f = unsafe { &*outer };
        deadline = deadline
            .min(f.deadline_ns.get())
            .min(f.soft_deadline_ns.get());
        outer = f.outer;
    }
    deadline
}

/// Moves the deadlines of this thread's active calls `ns` later: the time a
/// preempted call spent parked is not its own. Async-signal-safe.
pub(crate) fn postpone_deadlines(ns: u64) {
    let mut walk = current_frame();
    while !walk.is_null() {
        // SAFETY: active frames are live while their calls run.
        let f = unsafe { &*walk };
        f.deadline_ns
            .set(f.deadline_ns.get().saturating_add(ns).min(u64::MAX - 1));
        if f.soft_deadline_ns.get() != u64::MAX {
            f.soft_deadline_ns.set(
                f.soft_deadline_ns
                    .get()
                    .saturating_add(ns)
                    .min(u64::MAX - 1),
            );
        }
        walk = f.outer;
    }
}

/// Calls the win64 function at `target` with `args` (at most [`MAX_ARGS`])
/// at emulated IRQL `irql`, and returns its `rax`.
///
/// The outermost call on a thread switches to the thread's 24 KiB kernel
/// stack and points GS at the thread's KPCR; nested calls (from an emulated
/// export the driver called) continue on the current kernel stack. The stack
/// is 16-byte aligned at the `call` instruction with 32 bytes of home space
/// above the return address, as the x64 calling convention requires.
///
/// # Errors
///
/// [`Fault`] when the code faults, bug checks through
/// [`abort_current_call`], calls an unimplemented import, runs longer than
/// `timeout`, or when the call cannot be set up (too many arguments, nesting
/// too deep, no memory for the thread's machine state).
///
/// # Safety
///
/// `target` must be the address of code that follows the win64 calling
/// convention and may be run with `args`: the machine contains processor
/// faults and hangs, not memory corruption, so code that scribbles over host
/// memory breaks the process as it would break Windows.
pub unsafe fn call(target: usize, args: &[u64], irql: u8, timeout: Duration) -> Result<u64, Fault> {
    // SAFETY: the caller's contract is this function's.
    unsafe {
        call_with(
            target,
            args,
            irql,
            Limits {
                timeout,
                soft: None,
            },
        )
    }
}

/// [`call`] with [`Limits`] (the watchdog's limit and a soft limit).
///
/// The soft limit is for a call that preempted another: when it passes, the
/// preempted call is released. An outermost call for which
/// [`preempt::arm`] planned a preemption runs single-stepped (see
/// [`preempt`]).
///
/// # Errors
///
/// As [`call`].
///
/// # Safety
///
/// As [`call`].
pub unsafe fn call_with(
    target: usize,
    args: &[u64],
    irql: u8,
    limits: Limits<'_>,
) -> Result<u64, Fault> {
    let timeout = limits.timeout;
    if args.len() > MAX_ARGS {
        return Err(Fault::Setup(format!(
            "{} arguments were given, but the call gate passes at most {MAX_ARGS}",
            args.len()
        )));
    }
    let mut arg_block = [0_u64; MAX_ARGS];
    arg_block[..args.len()].copy_from_slice(args);
    signals::install()
        .map_err(|e| Fault::Setup(format!("installing the signal handlers failed: {e}")))?;
    let outer = current_frame();
    let (stack_top, guard, kpcr) = thread::with_env(|env| {
        if outer.is_null() {
            env.paint_stack();
        }
        (env.stack_top(), env.guard(), env.kpcr.base())
    })
    .map_err(|e| {
        Fault::Setup(format!(
            "creating the thread's kernel stack and KPCR failed: {e}"
        ))
    })?;
    let depth = nesting_depth(outer);
    if depth >= MAX_DEPTH {
        return Err(Fault::Setup(format!(
            "driver calls are nested {depth} deep, the limit"
        )));
    }
    let now = thread::monotonic_ns();
    let after = |limit: Duration| {
        now.saturating_add(u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX))
            .min(u64::MAX - 1)
    };
    let (soft_deadline_ns, soft_hook) = limits
        .soft
        .map_or((u64::MAX, std::ptr::null()), |(limit, hook)| {
            (after(limit), std::ptr::from_ref(hook))
        });
    let frame = Frame {
        host_rsp: Cell::new(0),
        state: Cell::new(RUNNING),
        raw: Cell::new(RawFault::default()),
        aborted: Cell::new(None),
        guard,
        stack_top,
        deadline_ns: Cell::new(after(timeout)),
        soft_deadline_ns: Cell::new(soft_deadline_ns),
        soft_hook,
        outer,
    };
    let outermost = outer.is_null();
    let saved_gs = if outermost {
        Some(super::kpcr::gs_base())
    } else {
        None
    };
    if outermost {
        super::kpcr::set_gs_base(kpcr)
            .map_err(|e| Fault::Setup(format!("setting GS to the KPCR failed: {e}")))?;
    }
    let trace = outermost && preempt::begin_call();
    let caller_irql = irql::set(irql);
    // The frame is current before the watchdog check: a timer signal that
    // arrives in between sees the call and re-arms for its deadline.
    CURRENT_FRAME.with(|c| c.set(&raw const frame));
    thread::arm_timer_by(effective_deadline(&frame));
    let switch_to = if outermost { stack_top } else { 0 };
    let timed = outermost && TIME_DRIVER.with(Cell::get);
    let entered_ns = if timed { thread::monotonic_ns() } else { 0 };
    // SAFETY: `frame` outlives the call; `arg_block` holds MAX_ARGS values;
    // `switch_to` is the top of this thread's kernel stack or 0 (stay on the
    // current kernel stack); the caller vouches for `target`.
    let rax = unsafe {
        gate_enter(
            &raw const frame,
            target,
            &raw const arg_block,
            switch_to,
            u64::from(trace),
        )
    };
    if timed {
        let returned_ns = thread::monotonic_ns();
        LAST_DRIVER_NS.with(|c| c.set(returned_ns.saturating_sub(entered_ns)));
    }
    if outermost {
        preempt::end_call();
    }
    CURRENT_FRAME.with(|c| c.set(outer));
    // The watchdog stays armed after the call (re-arming it per call would
    // cost two system calls); if it fires outside a call, the handler only
    // notes that. A nested call that timed out consumed the timer: make sure
    // it still covers the calls around this one.
    if !outermost {
        // SAFETY: the outer frame is live (its call is waiting for this one).
        thread::arm_timer_by(effective_deadline(unsafe { &*outer }));
    }
    LAST_EXIT_IRQL.with(|c| c.set(irql::current()));
    if outermost {
        note_stack_usage(&frame);
    }
    irql::set(caller_irql);
    if let Some(gs) = saved_gs {
        let _ = super::kpcr::set_gs_base(gs);
    }
    outcome(&frame, rax, timeout)
}

/// Records the kernel stack the outermost call that ended in `frame` used.
fn note_stack_usage(frame: &Frame) {
    let measured = thread::with_env(thread::ThreadEnv::stack_used).unwrap_or(0);
    let used = if frame.state.get() == FAULTED && frame.raw.get().guard_hit {
        thread::KERNEL_STACK_SIZE
    } else {
        measured
    };
    LAST_STACK_USAGE.with(|c| c.set(used));
}

/// How many driver calls are active around a call whose outer frame is `outer`.
const fn nesting_depth(outer: *const Frame) -> usize {
    let mut depth = 0;
    let mut walk = outer;
    while !walk.is_null() {
        depth += 1;
        // SAFETY: outer frames are live while the inner call runs.
        walk = unsafe { &*walk }.outer;
    }
    depth
}

/// What a call whose frame ended in `frame`'s state amounts to.
fn outcome(frame: &Frame, rax: u64, timeout: Duration) -> Result<u64, Fault> {
    match frame.state.get() {
        RUNNING => Ok(rax),
        ABORTED => Err(frame
            .aborted
            .take()
            .unwrap_or_else(|| Fault::Setup("the call was aborted without a reason".to_owned()))),
        TIMED_OUT => {
            let raw = frame.raw.get();
            Err(Fault::Timeout {
                limit: timeout,
                pc: raw.pc,
                location: images::locate(raw.pc),
            })
        }
        _ => Err(exception_from_raw(frame.raw.get())),
    }
}

fn exception_from_raw(raw: RawFault) -> Fault {
    let mut description = raw.description.to_owned();
    if let Some(addr) = raw.fault_address {
        let access = if raw.write { "writing" } else { "reading" };
        description = format!("{description} ({access} address {addr:#x})");
    }
    Fault::Exception(Box::new(Exception {
        code: raw.code,
        signal: raw.signal,
        pc: raw.pc,
        location: images::locate(raw.pc),
        fault_address: raw.fault_address,
        write: raw.write,
        stack_guard_hit: raw.guard_hit,
        fast_fail_code: raw.fast_fail_code,
        registers: raw.registers,
        description,
    }))
}

/// Ends the current driver call at once: [`call`] returns
/// `Err(Fault::BugCheck(bugcheck))`. For emulated exports such as
/// `KeBugCheckEx` and for verifier checks that bug check on Windows.
///
/// When `bugcheck.caller` is `None` it is filled with the innermost return
/// address into a registered image found on the kernel stack.
///
/// Rust frames between the gate and this point are discarded without
/// running their destructors (their heap memory leaks).
///
/// # Panics
///
/// When the current thread is not inside a driver call (a bug in the
/// emulator, not in the driver).
pub fn abort_current_call(mut bugcheck: BugCheck) -> ! {
    if bugcheck.caller.is_none() {
        bugcheck.caller = driver_caller();
    }
    abort_current_call_with(Fault::BugCheck(Box::new(bugcheck)))
}

/// Ends the current driver call at once with any [`Fault`]; see
/// [`abort_current_call`].
///
/// # Panics
///
/// When the current thread is not inside a driver call.
pub fn abort_current_call_with(fault: Fault) -> ! {
    let frame = current_frame();
    assert!(
        !frame.is_null(),
        "abort_current_call was called outside a driver call"
    );
    // SAFETY: the current frame is live while its call runs, and this code
    // runs inside that call.
    let frame = unsafe { &*frame };
    frame.aborted.set(Some(fault));
    frame.state.set(ABORTED);
    let rsp = frame.host_rsp.get();
    // SAFETY: `rsp` is the host stack pointer `gate_enter` saved for this
    // frame; everything above the current stack pointer that is discarded
    // belongs to the driver call being ended.
    unsafe { abort_to(rsp) }
}

/// The innermost return address into an executable section of a registered
/// image found on the current call's kernel stack, between the current stack
/// pointer and the stack top.
#[must_use]
pub fn driver_caller() -> Option<super::fault::CodeLocation> {
    let frame = current_frame();
    if frame.is_null() {
        return None;
    }
    // SAFETY: the current frame is live while its call runs.
    let top = unsafe { &*frame }.stack_top;
    let marker = 0_u8;
    let here = std::hint::black_box(&raw const marker) as usize & !7;
    if here >= top || top - here > thread::KERNEL_STACK_SIZE {
        return None;
    }
    let mut words = vec![0_u8; top - here];
    memory::read_bytes(here, &mut words).ok()?;
    // A return address the machine redirected through its single-step stub
    // waits in the KPCR (see `preempt`).
    let stub = preempt::return_stub();
    let detoured = || {
        let scratch = thread::kpcr_base_in_handler() + super::kpcr::KPCR_MACHINE_SCRATCH;
        memory::read_u64(scratch)
            .ok()
            .and_then(|a| usize::try_from(a).ok())
    };
    words
        .chunks_exact(8)
        .filter_map(|w| usize::try_from(u64::from_le_bytes(w.try_into().ok()?)).ok())
        .filter_map(|addr| {
            if addr == stub && stub != 0 {
                detoured()
            } else {
                Some(addr)
            }
        })
        .find(|&addr| images::is_registered_code(addr) && follows_call(addr))
        .and_then(images::locate)
}

/// Whether the bytes before `addr` end with a `call` instruction, as they do
/// before a return address (`call rel32`, `call reg`, `call [reg+disp8]`,
/// `call [rip+disp32]` and `call [reg+disp32]`, with or without REX).
fn follows_call(addr: usize) -> bool {
    let Some(start) = addr.checked_sub(7) else {
        return false;
    };
    let mut b = [0_u8; 7];
    if memory::read_bytes(start, &mut b).is_err() {
        return false;
    }
    let call_modrm = |op: u8, modrm: u8| op == 0xFF && (modrm >> 3) & 7 == 2;
    b[2] == 0xE8
        || (call_modrm(b[5], b[6])
            && (b[6] >> 6 == 3 || (b[6] >> 6 == 0 && !matches!(b[6] & 7, 4 | 5))))
        || (call_modrm(b[4], b[5]) && b[5] >> 6 == 1)
        || (call_modrm(b[1], b[2]) && (b[2] >> 6 == 2 || b[2] & 0xC7 == 0x05))
}

/// Address execution resumes at after a fault: see the module documentation.
pub(crate) fn resume_address() -> usize {
    gate_resume as *const () as usize
}

/// Saves the host context, switches stacks and calls `target` with win64
/// arguments; returns its `rax` through [`gate_resume`].
///
/// In: rdi = frame, rsi = target, rdx = eight arguments, rcx = kernel stack
/// top or 0 to stay on the current stack, r8 = nonzero to call with the trap
/// flag set (single-stepping, see [`preempt`]).
#[unsafe(naked)]
unsafe extern "sysv64" fn gate_enter(
    frame: *const Frame,
    target: usize,
    args: *const [u64; MAX_ARGS],
    stack: usize,
    trace: u64,
) -> u64 {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "stmxcsr [rsp]",
        "fnstcw [rsp + 4]",
        "mov [rdi], rsp",
        "mov rbx, rdi",
        "mov r12, r8",
        "test rcx, rcx",
        "jnz 2f",
        "mov rcx, rsp",
        "2:",
        "and rcx, -16",
        "mov rsp, rcx",
        // Home space for four register arguments, then arguments 5..8.
        "sub rsp, 64",
        "mov rax, rsi",
        "mov r10, rdx",
        "mov r11, [r10 + 32]",
        "mov [rsp + 32], r11",
        "mov r11, [r10 + 40]",
        "mov [rsp + 40], r11",
        "mov r11, [r10 + 48]",
        "mov [rsp + 48], r11",
        "mov r11, [r10 + 56]",
        "mov [rsp + 56], r11",
        "mov rcx, [r10]",
        "mov rdx, [r10 + 8]",
        "mov r8, [r10 + 16]",
        "mov r9, [r10 + 24]",
        "cld",
        // r12 is nonvolatile in both conventions: the trace flag.
        "test r12, r12",
        "jz 3f",
        // The trap flag takes effect after the instruction that follows
        // popfq: the first trap comes at the target's first instruction.
        "pushfq",
        "or qword ptr [rsp], 0x100",
        "popfq",
        "3:",
        "call rax",
        // rbx is nonvolatile in the win64 convention: still the frame.
        "mov rsp, [rbx]",
        "jmp {resume}",
        resume = sym gate_resume,
    )
}

/// Restores the context `gate_enter` saved (rsp must equal the saved host
/// stack pointer) and returns from `gate_enter`.
#[unsafe(naked)]
unsafe extern "sysv64" fn gate_resume() {
    core::arch::naked_asm!(
        // Single-stepping (if any) ends with the call.
        "pushfq",
        "and qword ptr [rsp], -0x101",
        "popfq",
        "ldmxcsr [rsp]",
        "fldcw [rsp + 4]",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "cld",
        "ret",
    )
}

/// Resets the stack pointer to `rsp` and resumes at [`gate_resume`].
#[unsafe(naked)]
unsafe extern "sysv64" fn abort_to(rsp: usize) -> ! {
    core::arch::naked_asm!("mov rsp, rdi", "jmp {resume}", resume = sym gate_resume)
}
