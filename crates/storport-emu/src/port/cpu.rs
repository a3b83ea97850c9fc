//! How the port calls driver code.
//!
//! The port never calls a miniport routine directly: it asks a [`Cpu`] to
//! call an address with integer arguments at an IRQL. [`DirectCpu`] calls
//! on the current thread's stack (enough for drivers linked into the process
//! and well-behaved images); [`GateCpu`] calls through the machine's gate
//! with its own guarded stack and fault recovery.

use std::io::Write as _;
use std::time::Duration;

use super::context;
use super::rules::Rule;
use crate::machine::preempt::{self, Preemption};
use crate::machine::{BugCheck, Fault, gate};

/// A call into driver code that did not return normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFault {
    /// The rule the fault is reported under.
    pub rule: Rule,
    /// Bug check code the fault amounts to (e.g. 0x1E, 0x7E, or the driver's own).
    pub bugcheck: Option<u32>,
    /// Bug check parameters.
    pub params: Vec<u64>,
    /// What happened, as a complete sentence (faulting offset, section, function).
    pub message: String,
    /// The finding was already recorded (a bug check raised by an export).
    pub reported: bool,
    /// For a processor exception: the data address the processor reported,
    /// when it reported one.
    pub fault_address: Option<u64>,
    /// For a processor exception: the general-purpose registers at the
    /// faulting instruction (x86 numbering); empty otherwise.
    pub registers: Vec<u64>,
}

/// Calls through the machine's call gate: a 24 KiB kernel stack with a
/// guard page, KPCR in GS, emulated IRQL, fault recovery and a watchdog.
#[derive(Clone, Copy, Debug)]
pub struct GateCpu {
    /// Longest a single callback may run.
    pub timeout: Duration,
}

impl Default for GateCpu {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
        }
    }
}

impl Cpu for GateCpu {
    unsafe fn call(&self, target: usize, args: &[u64], irql: u8) -> Result<u64, CallFault> {
        // SAFETY: the caller's contract is this method's.
        unsafe { self.call_preemptive(target, args, irql, Preemptive::No) }
    }

    unsafe fn call_preemptive(
        &self,
        target: usize,
        args: &[u64],
        irql: u8,
        how: Preemptive<'_>,
    ) -> Result<u64, CallFault> {
        let soft = match how {
            Preemptive::No => None,
            Preemptive::Preempted { budget, preemption } => {
                // SAFETY: `preemption` is borrowed for this whole method,
                // which returns only after the call it is planned for.
                unsafe { preempt::arm(budget, preemption) };
                None
            }
            Preemptive::Preempting { soft, preemption } => Some((soft, preemption)),
        };
        let limits = gate::Limits {
            timeout: self.timeout,
            soft,
        };
        // SAFETY: the caller's contract is the gate's: `target` is win64
        // code that may run with `args`.
        let result = unsafe { gate::call_with(target, args, irql, limits) };
        let exit_irql = gate::last_exit_irql();
        if result.is_ok()
            && exit_irql != irql
            && let Some((shared, routine, _)) = context::current()
        {
            shared.violation(
                Rule::IrqlNotRestored,
                routine,
                vec![u64::from(irql), u64::from(exit_irql)],
                format!(
                    "{} was called at IRQL {irql} and returned at IRQL {exit_irql}.",
                    routine.name()
                ),
            );
        }
        result.map_err(|fault| {
            let (bugcheck, params) = fault
                .bugcheck()
                .map_or((None, Vec::new()), |(code, p)| (Some(code), p.to_vec()));
            let (rule, reported) = match &fault {
                Fault::BugCheck(_) => (Rule::KeBugCheck, true),
                Fault::UnboundImport { .. } => (Rule::MissingImport, false),
                Fault::Timeout { .. } => (Rule::DriverHang, false),
                Fault::Exception(_) | Fault::Setup(_) => (Rule::DriverFault, false),
            };
            let (fault_address, registers) = match &fault {
                Fault::Exception(e) => {
                    (e.fault_address.map(|a| a as u64), e.registers.gpr.to_vec())
                }
                _ => (None, Vec::new()),
            };
            let mut message = fault.to_string();
            if let Some(first) = message.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            message.push('.');
            let call_fault = CallFault {
                rule,
                bugcheck,
                params,
                message,
                reported,
                fault_address,
                registers,
            };
            match (&fault, context::current()) {
                (Fault::Exception(exception), Some((shared, _, _))) => {
                    super::memfault::refine(&shared, exception, call_fault)
                }
                _ => call_fault,
            }
        })
    }
}

/// Calls driver code.
pub trait Cpu: Send + Sync {
    /// Calls the `extern "win64"` routine at `target` with up to seven
    /// integer arguments, at `irql`, and returns RAX.
    ///
    /// # Errors
    ///
    /// A [`CallFault`] when the routine faulted, bug-checked or hung.
    ///
    /// # Safety
    ///
    /// `target` must be the address of a routine taking `args.len()`
    /// integer-class arguments in the Windows x64 convention, and each
    /// argument must satisfy that routine's contract.
    unsafe fn call(&self, target: usize, args: &[u64], irql: u8) -> Result<u64, CallFault>;

    /// [`Self::call`], preempted after a number of driver instructions or
    /// preempting another call on its processor (see
    /// [`crate::machine::preempt`]). A processor that cannot preempt
    /// (the default) makes a plain call.
    ///
    /// # Errors
    ///
    /// As [`Self::call`].
    ///
    /// # Safety
    ///
    /// As [`Self::call`].
    unsafe fn call_preemptive(
        &self,
        target: usize,
        args: &[u64],
        irql: u8,
        how: Preemptive<'_>,
    ) -> Result<u64, CallFault> {
        let _ = how;
        // SAFETY: the caller's contract is this method's.
        unsafe { self.call(target, args, irql) }
    }
}

/// How a call takes part in the preemption model.
#[derive(Clone, Copy, Debug)]
pub enum Preemptive<'a> {
    /// Neither preempted nor preempting.
    No,
    /// Preempted after `budget` driver instructions if it runs below
    /// DISPATCH_LEVEL then; the other side runs through `preemption`.
    Preempted {
        /// Driver instructions before the preemption.
        budget: u64,
        /// The plan both sides share.
        preemption: &'a Preemption,
    },
    /// Preempting the call `preemption` parked; after `soft` the parked call
    /// is released while this one goes on.
    Preempting {
        /// How long this call may hold the processor.
        soft: Duration,
        /// The plan both sides share.
        preemption: &'a Preemption,
    },
}

/// Calls on the current thread, without a private stack or fault recovery.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectCpu;

type F0 = unsafe extern "win64" fn() -> u64;
type F1 = unsafe extern "win64" fn(u64) -> u64;
type F2 = unsafe extern "win64" fn(u64, u64) -> u64;
type F3 = unsafe extern "win64" fn(u64, u64, u64) -> u64;
type F4 = unsafe extern "win64" fn(u64, u64, u64, u64) -> u64;
type F5 = unsafe extern "win64" fn(u64, u64, u64, u64, u64) -> u64;
type F6 = unsafe extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64;
type F7 = unsafe extern "win64" fn(u64, u64, u64, u64, u64, u64, u64) -> u64;

impl Cpu for DirectCpu {
    unsafe fn call(&self, target: usize, args: &[u64], _irql: u8) -> Result<u64, CallFault> {
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        let address = target as *const ();
        // SAFETY (all arms): the caller promised `target` is a win64 routine
        // taking `args.len()` integer arguments; a routine declared with
        // fewer integer arguments ignores the extra registers, and one
        // returning less than 64 bits leaves bits the port masks.
        let rax = match args.len() {
            0 => {
                // SAFETY: see above.
                let f: F0 = unsafe { std::mem::transmute::<*const (), F0>(address) };
                // SAFETY: see above.
                unsafe { f() }
            }
            1 => {
                // SAFETY: see above.
                let f: F1 = unsafe { std::mem::transmute::<*const (), F1>(address) };
                // SAFETY: see above.
                unsafe { f(a(0)) }
            }
            2 => {
                // SAFETY: see above.
                let f: F2 = unsafe { std::mem::transmute::<*const (), F2>(address) };
                // SAFETY: see above.
                unsafe { f(a(0), a(1)) }
            }
            3 => {
                // SAFETY: see above.
                let f: F3 = unsafe { std::mem::transmute::<*const (), F3>(address) };
                // SAFETY: see above.
                unsafe { f(a(0), a(1), a(2)) }
            }
            4 => {
                // SAFETY: see above.
                let f: F4 = unsafe { std::mem::transmute::<*const (), F4>(address) };
                // SAFETY: see above.
                unsafe { f(a(0), a(1), a(2), a(3)) }
            }
            5 => {
                // SAFETY: see above.
                let f: F5 = unsafe { std::mem::transmute::<*const (), F5>(address) };
                // SAFETY: see above.
                unsafe { f(a(0), a(1), a(2), a(3), a(4)) }
            }
            6 => {
                // SAFETY: see above.
                let f: F6 = unsafe { std::mem::transmute::<*const (), F6>(address) };
                // SAFETY: see above.
                unsafe { f(a(0), a(1), a(2), a(3), a(4), a(5)) }
            }
            _ => {
                // SAFETY: see above.
                let f: F7 = unsafe { std::mem::transmute::<*const (), F7>(address) };
                // SAFETY: see above.
                unsafe { f(a(0), a(1), a(2), a(3), a(4), a(5), a(6)) }
            }
        };
        Ok(rax)
    }
}

/// Ends the current call into driver code after a bug check.
///
/// Inside a gate call the gate's recovery point ends it; [`DirectCpu`] has
/// none, so the process reports and exits.
pub fn abort_current_call(code: u32, params: [u64; 4], message: String) -> ! {
    if gate::in_call() {
        gate::abort_current_call(BugCheck {
            code,
            params,
            message,
            caller: None,
        });
    }
    let _ = writeln!(
        std::io::stderr(),
        "storemu: {message} Without a recovery point the run stops here."
    );
    std::process::exit(1)
}
