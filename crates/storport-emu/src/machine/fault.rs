//! What a driver call can end in besides a normal return: the bug-check style
//! report the emulator produces instead of crashing.

use std::fmt;
use std::time::Duration;

/// NTSTATUS of an access violation (`STATUS_ACCESS_VIOLATION`).
pub const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;
/// NTSTATUS of an illegal instruction (`STATUS_ILLEGAL_INSTRUCTION`).
pub const STATUS_ILLEGAL_INSTRUCTION: u32 = 0xC000_001D;
/// NTSTATUS of a privileged instruction (`STATUS_PRIVILEGED_INSTRUCTION`).
pub const STATUS_PRIVILEGED_INSTRUCTION: u32 = 0xC000_0096;
/// NTSTATUS of an integer division by zero (`STATUS_INTEGER_DIVIDE_BY_ZERO`).
pub const STATUS_INTEGER_DIVIDE_BY_ZERO: u32 = 0xC000_0094;
/// NTSTATUS of a breakpoint (`STATUS_BREAKPOINT`).
pub const STATUS_BREAKPOINT: u32 = 0x8000_0003;
/// NTSTATUS of a stack overflow (`STATUS_STACK_OVERFLOW`).
pub const STATUS_STACK_OVERFLOW: u32 = 0xC000_00FD;
/// NTSTATUS of a misaligned access or bus error (`STATUS_DATATYPE_MISALIGNMENT`).
pub const STATUS_DATATYPE_MISALIGNMENT: u32 = 0x8000_0002;
/// NTSTATUS of `__fastfail` (`STATUS_STACK_BUFFER_OVERRUN`, the code Windows reports for it).
pub const STATUS_STACK_BUFFER_OVERRUN: u32 = 0xC000_0409;

/// Bug check `KMODE_EXCEPTION_NOT_HANDLED`.
pub const KMODE_EXCEPTION_NOT_HANDLED: u32 = 0x1E;
/// Bug check `UNEXPECTED_KERNEL_MODE_TRAP` (parameter 1 = 8: double fault, the
/// usual result of a kernel stack overflow).
pub const UNEXPECTED_KERNEL_MODE_TRAP: u32 = 0x7F;
/// Bug check `KERNEL_SECURITY_CHECK_FAILURE` (`__fastfail`).
pub const KERNEL_SECURITY_CHECK_FAILURE: u32 = 0x139;

/// A `.pdata` function range (`RUNTIME_FUNCTION`), relative to the image base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FunctionRange {
    /// RVA of the first byte of the function.
    pub begin_rva: u32,
    /// RVA one past the last byte of the function.
    pub end_rva: u32,
    /// RVA of the function's unwind information.
    pub unwind_rva: u32,
}

/// Where an address lies inside a registered image or code page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLocation {
    /// Name of the image (its file name) or code page.
    pub image: String,
    /// Address the image is mapped at.
    pub image_base: usize,
    /// Offset of the address from the image base.
    pub rva: u32,
    /// Name of the section holding the address, if any.
    pub section: Option<String>,
    /// The `.pdata` function holding the address, if the image describes one.
    pub function: Option<FunctionRange>,
}

impl fmt::Display for CodeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.image, self.rva)?;
        if let Some(section) = &self.section {
            write!(f, " ({section}")?;
            if let Some(func) = &self.function {
                write!(
                    f,
                    ", function {:#x}..{:#x} at +{:#x}",
                    func.begin_rva,
                    func.end_rva,
                    self.rva - func.begin_rva
                )?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The general-purpose registers at a fault, as a bug check's context record
/// would show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    /// rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8 .. r15 (x86 register numbering).
    pub gpr: [u64; 16],
    /// The instruction pointer.
    pub rip: u64,
    /// The flags register.
    pub rflags: u64,
}

impl Registers {
    /// The stack pointer.
    #[must_use]
    pub const fn rsp(&self) -> u64 {
        self.gpr[4]
    }
}

/// A processor exception raised by driver code (or by an emulated export it
/// called) that the machine does not emulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// The Windows exception code (`STATUS_ACCESS_VIOLATION`, ...).
    pub code: u32,
    /// The Linux signal that reported it.
    pub signal: i32,
    /// Address of the faulting instruction.
    pub pc: usize,
    /// Where `pc` lies, when it is inside a registered image or code page.
    pub location: Option<CodeLocation>,
    /// The data address that could not be accessed, for memory faults.
    pub fault_address: Option<usize>,
    /// Whether the faulting access was a write (memory faults only).
    pub write: bool,
    /// Whether the access hit the guard page below the call's kernel stack.
    pub stack_guard_hit: bool,
    /// The `__fastfail` code (rcx) when `code` is `STATUS_STACK_BUFFER_OVERRUN`.
    pub fast_fail_code: Option<u64>,
    /// The registers at the faulting instruction.
    pub registers: Registers,
    /// One sentence saying what went wrong.
    pub description: String,
}

/// A bug check raised on purpose: by an emulated `KeBugCheckEx`, or by an
/// emulated export that found a contract violation Windows would bug check on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugCheck {
    /// The bug check code (`0xF1` for Storport's verifier, ...).
    pub code: u32,
    /// The four bug check parameters.
    pub params: [u64; 4],
    /// One sentence saying why.
    pub message: String,
    /// The innermost driver return address found on the call's stack: the
    /// driver code that called the export that bug checked.
    pub caller: Option<CodeLocation>,
}

/// A call into an import bound to a trap stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnboundImport {
    /// The DLL named by the import (lower case).
    pub dll: String,
    /// The imported function.
    pub function: String,
    /// The return address of the call into the stub.
    pub return_address: usize,
    /// Where the return address lies.
    pub caller: Option<CodeLocation>,
}

/// How a driver call ended when it did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The processor raised an exception in the call.
    #[error("{}", describe_exception(.0))]
    Exception(Box<Exception>),
    /// An emulated export stopped the call with a bug check.
    #[error("{}", describe_bugcheck(.0))]
    BugCheck(Box<BugCheck>),
    /// The driver called an import that the emulator does not implement (the
    /// image was loaded with missing imports allowed).
    #[error(
        "the driver called {}!{}, which the emulator does not implement, from {}; the call was stopped",
        .0.dll,
        .0.function,
        .0.caller.as_ref().map_or_else(|| format!("{:#x}", .0.return_address), ToString::to_string)
    )]
    UnboundImport(Box<UnboundImport>),
    /// The watchdog stopped a call that ran longer than its time limit.
    #[error(
        "the driver call did not return within {} ms and was stopped at {}",
        .limit.as_millis(),
        .location.as_ref().map_or_else(|| format!("{pc:#x}"), ToString::to_string)
    )]
    Timeout {
        /// The time limit that was exceeded.
        limit: Duration,
        /// Address the call was executing when it was stopped.
        pc: usize,
        /// Where `pc` lies.
        location: Option<CodeLocation>,
    },
    /// The call could not be started.
    #[error("the driver call could not be started: {0}")]
    Setup(String),
}

fn describe_exception(e: &Exception) -> String {
    let at = e
        .location
        .as_ref()
        .map_or_else(|| format!("{:#x}", e.pc), ToString::to_string);
    let guard = if e.stack_guard_hit {
        " (the access hit the guard page below the 24 KiB kernel stack: stack overflow)"
    } else {
        ""
    };
    format!(
        "exception {:#010x} in driver code at {at}: {}{guard}; the call was stopped",
        e.code, e.description
    )
}

fn describe_bugcheck(b: &BugCheck) -> String {
    let [p1, p2, p3, p4] = b.params;
    let by = b
        .caller
        .as_ref()
        .map_or_else(String::new, |c| format!(" called from {c}"));
    format!(
        "bug check {:#x} ({p1:#x}, {p2:#x}, {p3:#x}, {p4:#x}){by}: {}",
        b.code, b.message
    )
}

impl Fault {
    /// The bug check Windows would raise for this fault, as `(code, params)`,
    /// when there is one: `KMODE_EXCEPTION_NOT_HANDLED` for exceptions,
    /// `UNEXPECTED_KERNEL_MODE_TRAP` (double fault) for stack overflows,
    /// `KERNEL_SECURITY_CHECK_FAILURE` for `__fastfail`, the raised code for a
    /// bug check. Timeouts, unbound imports and setup failures have none.
    #[must_use]
    pub fn bugcheck(&self) -> Option<(u32, [u64; 4])> {
        match self {
            Self::Exception(e) if e.stack_guard_hit => {
                Some((UNEXPECTED_KERNEL_MODE_TRAP, [8, 0, 0, 0]))
            }
            Self::Exception(e) if e.code == STATUS_STACK_BUFFER_OVERRUN => Some((
                KERNEL_SECURITY_CHECK_FAILURE,
                [e.fast_fail_code.unwrap_or(0), 0, 0, 0],
            )),
            Self::Exception(e) => Some((
                KMODE_EXCEPTION_NOT_HANDLED,
                [
                    u64::from(e.code),
                    e.pc as u64,
                    u64::from(e.write),
                    e.fault_address.unwrap_or(0) as u64,
                ],
            )),
            Self::BugCheck(b) => Some((b.code, b.params)),
            Self::UnboundImport { .. } | Self::Timeout { .. } | Self::Setup(_) => None,
        }
    }
}
