//! The processor half of the machine: a handler for the signals driver code
//! raises. It emulates the privileged or kernel-only instructions the driver
//! may legitimately execute (CR8 moves, loads from `KUSER_SHARED_DATA`) and
//! turns everything else into a fault report plus a jump to the call gate's
//! recovery point. Signals that do not come from a driver call are passed to
//! the handler that was installed before (Rust's stack-overflow reporter, or
//! the default action).
//!
//! Everything here runs in signal context: no allocation, no locks; memory
//! of unknown validity is read with `process_vm_readv`.

use std::sync::OnceLock;

use super::decode::{self, Insn, Mem};
use super::fault::{
    Registers, STATUS_ACCESS_VIOLATION, STATUS_BREAKPOINT, STATUS_DATATYPE_MISALIGNMENT,
    STATUS_ILLEGAL_INSTRUCTION, STATUS_INTEGER_DIVIDE_BY_ZERO, STATUS_PRIVILEGED_INSTRUCTION,
    STATUS_STACK_BUFFER_OVERRUN, STATUS_STACK_OVERFLOW,
};
use super::gate::{self, FAULTED, Frame, RawFault, TIMED_OUT};
use super::kuser::{self, KUSER_SHARED_DATA, KUSER_SIZE};
use super::{images, irql, memory, preempt, probe, thread, watch};

/// How long the watchdog waits before trying again when it fires while the
/// thread runs emulator code (which must not be interrupted).
const RETRY_NS: u64 = 5_000_000;

/// Signals the machine handles.
fn handled_signals() -> [libc::c_int; 6] {
    [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        thread::timer_signal(),
    ]
}

/// The actions that were installed before ours, for chaining.
static PREVIOUS: OnceLock<Vec<(libc::c_int, libc::sigaction)>> = OnceLock::new();
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the machine's signal handlers once per process (idempotent and
/// thread-safe).
pub fn install() -> Result<(), String> {
    INSTALLED.get_or_init(install_once).clone()
}

fn install_once() -> Result<(), String> {
    let mut previous = Vec::new();
    for sig in handled_signals() {
        // SAFETY: sigaction is plain data for which all-zero bytes are valid.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: queries the current action into a live local.
        let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &raw mut old) };
        if rc != 0 {
            return Err(format!(
                "sigaction({sig}) query failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        previous.push((sig, old));
    }
    let _ = PREVIOUS.set(previous);
    for sig in handled_signals() {
        // SAFETY: sigaction is plain data for which all-zero bytes are valid.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: initialises the mask in a live local.
        unsafe {
            libc::sigemptyset(&raw mut action.sa_mask);
        }
        // SAFETY: adds a valid signal number to the mask in a live local.
        unsafe {
            libc::sigaddset(&raw mut action.sa_mask, thread::timer_signal());
        }
        // SAFETY: installs a handler that follows the SA_SIGINFO signature and
        // only does async-signal-safe work.
        let rc = unsafe { libc::sigaction(sig, &raw const action, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(format!(
                "sigaction({sig}) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn reg_index(reg: decode::Gpr) -> usize {
    let index = match reg & 15 {
        0 => libc::REG_RAX,
        1 => libc::REG_RCX,
        2 => libc::REG_RDX,
        3 => libc::REG_RBX,
        4 => libc::REG_RSP,
        5 => libc::REG_RBP,
        6 => libc::REG_RSI,
        7 => libc::REG_RDI,
        8 => libc::REG_R8,
        9 => libc::REG_R9,
        10 => libc::REG_R10,
        11 => libc::REG_R11,
        12 => libc::REG_R12,
        13 => libc::REG_R13,
        14 => libc::REG_R14,
        _ => libc::REG_R15,
    };
    usize::try_from(index).unwrap_or(0)
}

fn get(uc: &libc::ucontext_t, index: libc::c_int) -> u64 {
    usize::try_from(index).map_or(0, |i| uc.uc_mcontext.gregs[i].cast_unsigned())
}

fn set(uc: &mut libc::ucontext_t, index: libc::c_int, value: u64) {
    if let Ok(i) = usize::try_from(index) {
        uc.uc_mcontext.gregs[i] = value.cast_signed();
    }
}

fn gpr(uc: &libc::ucontext_t, reg: decode::Gpr) -> u64 {
    uc.uc_mcontext.gregs[reg_index(reg)].cast_unsigned()
}

fn set_gpr(uc: &mut libc::ucontext_t, reg: decode::Gpr, value: u64) {
    uc.uc_mcontext.gregs[reg_index(reg)] = value.cast_signed();
}

/// Reads the instruction at `pc` (up to 15 bytes, fewer at the end of the
/// readable range) and decodes it.
fn decode_at(pc: u64) -> Option<decode::Decoded> {
    let mut bytes = [0_u8; 15];
    let n = memory::read_partial(usize::try_from(pc).ok()?, &mut bytes);
    decode::decode(&bytes[..n])
}

/// Tries to emulate the instruction at the fault; on success the context has
/// been advanced past it. On failure, a description of why.
fn emulate(uc: &mut libc::ucontext_t) -> Result<(), &'static str> {
    let pc = get(uc, libc::REG_RIP);
    let decoded = decode_at(pc).ok_or("general protection fault")?;
    let next = pc.wrapping_add(decoded.len as u64);
    match decoded.insn {
        Insn::MovFromCr { cr: 8, reg } => set_gpr(uc, reg, u64::from(irql::current())),
        Insn::MovToCr { cr: 8, reg } => {
            let value = gpr(uc, reg);
            let level = u8::try_from(value).ok().filter(|&l| l <= irql::HIGH_LEVEL);
            let level =
                level.ok_or("mov cr8 with a value above HIGH_LEVEL (reserved CR8 bits set)")?;
            irql::set(level);
            if level < irql::DISPATCH_LEVEL && preempt::on_irql_lowered() {
                set(
                    uc,
                    libc::REG_EFL,
                    get(uc, libc::REG_EFL) | preempt::TRAP_FLAG,
                );
            }
        }
        Insn::MovFromCr { .. } | Insn::MovToCr { .. } => {
            return Err(
                "privileged instruction: move to or from a control register other than CR8",
            );
        }
        Insn::Load {
            reg,
            high_byte,
            bytes,
            extend,
            mem,
        } => {
            let addr = match mem {
                Mem::Absolute(a) => a,
                Mem::RipRelative { disp } => next.wrapping_add_signed(disp),
                Mem::Regs { base, index, disp } => {
                    let base = base.map_or(0, |b| gpr(uc, b));
                    let index =
                        index.map_or(0, |(i, scale)| gpr(uc, i).wrapping_mul(u64::from(scale)));
                    base.wrapping_add(index).wrapping_add_signed(disp)
                }
            };
            let offset = addr.wrapping_sub(KUSER_SHARED_DATA);
            if offset >= KUSER_SIZE {
                return Err("access violation");
            }
            let value = kuser::read(offset, bytes, kuser::Clocks::now())
                .ok_or("load of a KUSER_SHARED_DATA field the emulator does not provide")?;
            let merged = decode::merge(gpr(uc, reg), value, bytes, high_byte, extend);
            set_gpr(uc, reg, merged);
        }
        Insn::FastFail => return Err("__fastfail (int 0x29)"),
        Insn::Breakpoint | Insn::Ud2 => return Err("general protection fault"),
    }
    set(uc, libc::REG_RIP, next);
    Ok(())
}

/// Describes a fault the machine could not emulate.
fn classify(
    sig: libc::c_int,
    info: &libc::siginfo_t,
    uc: &libc::ucontext_t,
    frame: &Frame,
    why: &'static str,
) -> RawFault {
    let pc = usize::try_from(get(uc, libc::REG_RIP)).unwrap_or(0);
    let mut registers = Registers {
        rip: get(uc, libc::REG_RIP),
        rflags: get(uc, libc::REG_EFL),
        ..Registers::default()
    };
    for (reg, value) in (0..).zip(registers.gpr.iter_mut()) {
        *value = gpr(uc, reg);
    }
    let mut raw = RawFault {
        signal: sig,
        pc,
        registers,
        description: why,
        ..RawFault::default()
    };
    match sig {
        libc::SIGSEGV if info.si_code == libc::SI_KERNEL => {
            // A general protection fault: a privileged instruction, a
            // non-canonical address, or a load the machine would not emulate.
            raw.code = STATUS_PRIVILEGED_INSTRUCTION;
            match decode_at(pc as u64).map(|d| d.insn) {
                Some(Insn::FastFail) => {
                    raw.code = STATUS_STACK_BUFFER_OVERRUN;
                    raw.fast_fail_code = Some(get(uc, libc::REG_RCX));
                    raw.description = "__fastfail (int 0x29): the driver declared a fatal error";
                }
                Some(Insn::Load { .. }) => {
                    raw.code = STATUS_ACCESS_VIOLATION;
                    if why == "access violation" {
                        raw.description = "access violation (non-canonical address)";
                    }
                }
                _ => {}
            }
        }
        libc::SIGSEGV | libc::SIGBUS => {
            // SAFETY: for SIGSEGV/SIGBUS raised by a fault the kernel fills si_addr.
            let addr = unsafe { info.si_addr() } as usize;
            raw.code = if sig == libc::SIGBUS {
                STATUS_DATATYPE_MISALIGNMENT
            } else {
                STATUS_ACCESS_VIOLATION
            };
            raw.fault_address = Some(addr);
            raw.write = get(uc, libc::REG_ERR) & 2 != 0;
            raw.guard_hit = addr >= frame.guard.0 && addr < frame.guard.1;
            raw.description = if raw.guard_hit {
                raw.code = STATUS_STACK_OVERFLOW;
                "stack overflow"
            } else if addr as u64 >= KUSER_SHARED_DATA
                && (addr as u64) < KUSER_SHARED_DATA + KUSER_SIZE
            {
                why
            } else if addr < memory::PAGE_SIZE * 16 {
                "access violation (null pointer dereference)"
            } else if sig == libc::SIGBUS {
                "bus error"
            } else {
                "access violation"
            };
        }
        libc::SIGILL => {
            raw.code = STATUS_ILLEGAL_INSTRUCTION;
            raw.description = if matches!(decode_at(pc as u64).map(|d| d.insn), Some(Insn::Ud2)) {
                "ud2: the driver trapped on purpose (a Rust panic with panic=abort, or __debugbreak-style code)"
            } else {
                "illegal instruction"
            };
        }
        libc::SIGFPE => {
            raw.code = STATUS_INTEGER_DIVIDE_BY_ZERO;
            raw.description = "arithmetic exception (integer division by zero or overflow)";
        }
        _ => {
            raw.code = STATUS_BREAKPOINT;
            raw.description = "breakpoint (int3) with no kernel debugger attached";
            // int3 reports the address after the instruction.
            if let Some(before) = pc.checked_sub(1)
                && matches!(
                    decode_at(before as u64).map(|d| d.insn),
                    Some(Insn::Breakpoint)
                )
            {
                raw.pc = before;
            }
        }
    }
    raw
}

/// Makes the interrupted context resume at the call gate's recovery point,
/// no longer single-stepped.
fn redirect(uc: &mut libc::ucontext_t, host_rsp: usize) {
    set(uc, libc::REG_RIP, gate::resume_address() as u64);
    set(uc, libc::REG_RSP, host_rsp as u64);
    set(
        uc,
        libc::REG_EFL,
        get(uc, libc::REG_EFL) & !preempt::TRAP_FLAG,
    );
}

/// A single-step trap of a call the machine steps to preempt it.
fn on_step(uc: &mut libc::ucontext_t) {
    let pc = usize::try_from(get(uc, libc::REG_RIP)).unwrap_or(0);
    let rsp = usize::try_from(get(uc, libc::REG_RSP)).unwrap_or(0);
    if !preempt::on_step(pc, rsp) {
        set(
            uc,
            libc::REG_EFL,
            get(uc, libc::REG_EFL) & !preempt::TRAP_FLAG,
        );
    }
}

/// Restores `errno` on drop: the handler's system calls must not change the
/// `errno` the interrupted code may be about to read.
struct SavedErrno(libc::c_int);

/// This thread's `errno` slot.
fn errno_slot() -> *mut libc::c_int {
    // SAFETY: __errno_location has no preconditions and returns this
    // thread's errno slot.
    unsafe { libc::__errno_location() }
}

impl SavedErrno {
    fn save() -> Self {
        // SAFETY: the slot is valid for the life of the thread.
        Self(unsafe { *errno_slot() })
    }
}

impl Drop for SavedErrno {
    fn drop(&mut self) {
        let slot = errno_slot();
        // SAFETY: the slot is valid for the life of the thread; writing back
        // the value read in `save`.
        unsafe {
            *slot = self.0;
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let _errno = SavedErrno::save();
    let frame_ptr = gate::current_frame();
    if sig == thread::timer_signal() {
        on_timer(frame_ptr, context);
        return;
    }
    if sig == libc::SIGSEGV && watch::on_fault(info, context) {
        return;
    }
    if (sig == libc::SIGSEGV || sig == libc::SIGBUS) && probe_fault(context) {
        return;
    }
    if sig == libc::SIGTRAP && watch::on_trace(info, context) {
        return;
    }
    if frame_ptr.is_null() {
        chain(sig, info, context);
        return;
    }
    // SAFETY: a non-null current frame is live for the whole call it
    // describes, and this signal interrupted that call on this thread.
    let frame = unsafe { &*frame_ptr };
    if frame.host_rsp.get() == 0 {
        chain(sig, info, context);
        return;
    }
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t
    // that only this handler invocation uses.
    let uc = unsafe { &mut *context.cast::<libc::ucontext_t>() };
    // SAFETY: the kernel passes a valid siginfo_t.
    let info = unsafe { &*info };
    if sig == libc::SIGTRAP && info.si_code == preempt::TRAP_TRACE && preempt::stepping() {
        on_step(uc);
        return;
    }
    let why = if sig == libc::SIGSEGV {
        match emulate(uc) {
            Ok(()) => return,
            Err(why) => why,
        }
    } else {
        "exception"
    };
    frame.raw.set(classify(sig, info, uc, frame, why));
    frame.state.set(FAULTED);
    redirect(uc, frame.host_rsp.get());
}

/// A fault of a checked copy ([`probe`]): resumes at its failure exit.
fn probe_fault(context: *mut libc::c_void) -> bool {
    if context.is_null() {
        return false;
    }
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t
    // that only this handler invocation uses.
    let uc = unsafe { &mut *context.cast::<libc::ucontext_t>() };
    let pc = usize::try_from(get(uc, libc::REG_RIP)).unwrap_or(0);
    let Some(resume) = probe::fixup(pc) else {
        return false;
    };
    set(uc, libc::REG_RIP, resume as u64);
    true
}

/// The watchdog fired: end the outermost expired call if the thread is in
/// driver code, otherwise try again shortly. The gate leaves the timer armed
/// between calls, so it may fire outside any call or before the deadline of
/// the running ones: then it is re-armed for the earliest active deadline,
/// if any.
fn on_timer(frame_ptr: *const Frame, context: *mut libc::c_void) {
    thread::timer_fired();
    if frame_ptr.is_null() {
        return;
    }
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t.
    let uc = unsafe { &mut *context.cast::<libc::ucontext_t>() };
    let now = thread::monotonic_ns();
    let mut expired: *const Frame = std::ptr::null();
    let mut soft_expired: *const Frame = std::ptr::null();
    let mut walk = frame_ptr;
    while !walk.is_null() {
        // SAFETY: active frames are live while their calls run.
        let f = unsafe { &*walk };
        if f.deadline_ns.get() <= now {
            expired = walk;
        }
        if f.soft_deadline_ns.get() <= now {
            soft_expired = walk;
        }
        walk = f.outer;
    }
    let pc = usize::try_from(get(uc, libc::REG_RIP)).unwrap_or(0);
    if expired.is_null() && !soft_expired.is_null() {
        // SAFETY: `soft_expired` is one of the live frames walked above.
        let f = unsafe { &*soft_expired };
        if images::in_registered_code(pc) {
            // The preempting call ran out of time in driver code: let the
            // call it preempted go on, and note where this one was.
            f.soft_deadline_ns.set(u64::MAX);
            if !f.soft_hook.is_null() {
                // SAFETY: the hook outlives the call whose frame names it
                // (`gate::call_with` borrows it for the whole call).
                unsafe { &*f.soft_hook }.release_early(pc);
            }
        } else {
            thread::arm_timer(now + RETRY_NS);
            return;
        }
    }
    // SAFETY: the current frame is live while its call runs.
    let earliest = gate::effective_deadline(unsafe { &*frame_ptr });
    if expired.is_null() {
        thread::arm_timer(earliest);
        return;
    }
    // SAFETY: `expired` is one of the live frames walked above.
    let target = unsafe { &*expired };
    if target.host_rsp.get() == 0 || !images::in_registered_code(pc) {
        // Emulator code (an export, the gate itself) may hold locks or be
        // half-way through an update: never abandon it.
        thread::arm_timer(now + RETRY_NS);
        return;
    }
    target.raw.set(RawFault {
        signal: thread::timer_signal(),
        pc,
        description: "timeout",
        ..RawFault::default()
    });
    target.state.set(TIMED_OUT);
    redirect(uc, target.host_rsp.get());
}

/// Hands a signal that did not come from a driver call to the previous action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS
        .get()
        .and_then(|p| p.iter().find(|(s, _)| *s == sig).map(|(_, a)| a));
    let handler = previous.map_or(libc::SIG_DFL, |a| a.sa_sigaction);
    if handler == libc::SIG_IGN {
        return;
    }
    if handler == libc::SIG_DFL {
        // Restore the default action and return: the faulting instruction
        // runs again and the process ends the way it would have without us.
        // SAFETY: sigaction is plain data for which all-zero bytes are valid.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = libc::SIG_DFL;
        // SAFETY: installs the default action; async-signal-safe.
        unsafe {
            libc::sigaction(sig, &raw const action, std::ptr::null_mut());
        }
        return;
    }
    let flags = previous.map_or(0, |a| a.sa_flags);
    if flags & libc::SA_SIGINFO != 0 {
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            // SAFETY: the previous action was registered with SA_SIGINFO, so its
            // handler has this signature.
            unsafe { std::mem::transmute::<usize, _>(handler) };
        f(sig, info, context);
    } else {
        // SAFETY: a handler registered without SA_SIGINFO takes the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute::<usize, _>(handler) };
        f(sig);
    }
}
