//! The machine: what it takes to run x64 Windows kernel code inside a Linux
//! process. It loads a driver image, calls into it, and contains whatever
//! the driver does wrong.
//!
//! # Public API
//!
//! Loading ([`loader`]):
//! - [`loader::load`]: `(image: &[u8], resolve: &dyn Fn(&str, &str) -> Option<usize>,
//!   allow_missing: bool) -> Result<LoadedImage, LoadError>` (and [`loader::load_named`] with an
//!   image name for reports).
//!   `resolve(dll, function)` gets the DLL name in ASCII lower case (`"storport.sys"`).
//! - [`LoadedImage`]: `base()`, `size()`, `entry_point()`, `sections()`, `functions()`,
//!   `locate(addr)`, `export(name)`, `imports()`, `name()`; unmapped and unregistered on drop.
//!
//! Calling ([`gate`]):
//! - `unsafe` [`gate::call`]: `(target: usize, args: &[u64], irql: u8, timeout: Duration)
//!   -> Result<u64, Fault>`: up to 8 integer arguments, 24 KiB kernel stack with a guard page,
//!   KPCR in GS, IRQL set for the call and restored after, watchdog.
//! - [`gate::abort_current_call`]: `(BugCheck) -> !` and [`gate::abort_current_call_with`]:
//!   `(Fault) -> !`
//!   for emulated exports; [`gate::in_call`], [`gate::last_exit_irql`], [`gate::driver_caller`],
//!   [`gate::kernel_stack`], [`gate::last_stack_usage`].
//! - [`Fault`]: `Exception`, `BugCheck`, `UnboundImport`, `Timeout`, `Setup`; `Fault::bugcheck()`
//!   gives the Windows bug check code and parameters where there is one.
//!
//! Processor state:
//! - [`irql::current`]: `() -> u8`, [`irql::set`]: `(u8) -> u8` (per thread; what `mov cr8` sees).
//! - [`kpcr::set_processor_number`], [`kpcr::current_base`].
//! - [`kuser`]: the emulated `KUSER_SHARED_DATA` fields and time constants.
//!
//! Helpers for emulated exports:
//! - [`is_readable`], [`read_bytes`], [`write_bytes`], [`read_u32`], [`read_u64`],
//!   [`read_c_string`]: checked access to driver pointers ([`BadAddress`] instead of a crash).
//! - [`probe::copy_in`], [`probe::copy_out`]: the same checks without a system call (a faulting
//!   copy resumes at a failure exit), once the signal handlers are installed.
//! - [`variadic_export!`]: `(shim, handler)`, a naked win64 shim for variadic exports.
//! - `Mapping` (crate-internal): anonymous read-write pages with per-page protection,
//!   released on drop (the port's special pool).
//! - [`CodePage`]: executable pages from bytes (trap stubs, hand-assembled test code).
//! - [`locate`]: `(addr) -> Option<CodeLocation>`, image, section and `.pdata` function of an address.
//!
//! Racing data-out buffers ([`watch`]):
//! - [`watch::RacingBuffer`]: `new(contents, varying, versions)`, `address()`, `contents()`,
//!   `arm(Schedule) -> Armed` (this thread; `Armed::accesses()`): each access of the varying
//!   byte, by driver code or host code, sees the version the [`watch::Schedule`] names; a
//!   checked read or write (the helpers above) is one access.
//!
//! # Limitations
//!
//! - Recovery from a fault skips the Rust frames between the gate and the fault without running
//!   destructors: emulated exports must validate driver pointers (with [`read_bytes`] and friends)
//!   before touching shared state, and must not hold locks while calling driver code.
//! - The watchdog interrupts only driver code (registered images and code pages); a call blocked
//!   inside an emulated export is stopped when it returns to driver code.
//! - Only the instructions listed in [`decode`](self) are emulated: CR8 moves and loads
//!   (`mov`, `movzx`, `movsx`, `movsxd`, `mov rax, moffs`) from `KUSER_SHARED_DATA`.
//! - The host's signal handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP and one real-time
//!   signal are replaced on the first call; signals that do not come from driver calls are passed
//!   on to the previous handlers. A fault on an armed racing buffer's page is handled on any code
//!   of the arming thread (it single-steps the access with the trap flag); other threads that
//!   touch that page while it is armed fault as on any inaccessible page.
//! - The watchdog timer of a thread stays armed between driver calls, so its signal may arrive
//!   while the thread runs host code (at most once per watchdog period): the handler ignores it,
//!   and system calls it interrupts are restarted (`SA_RESTART`) or fail with `EINTR`, which the
//!   standard library retries.

mod code;
mod decode;
pub mod fault;
pub mod gate;
mod images;
pub mod irql;
pub mod kpcr;
pub mod kuser;
pub mod loader;
mod memory;
pub mod preempt;
pub mod probe;
mod signals;
mod thread;
mod variadic;
pub mod watch;

pub use code::CodePage;
pub use fault::{
    BugCheck, CodeLocation, Exception, Fault, FunctionRange, Registers, UnboundImport,
};
pub use images::{Section, locate};
pub use loader::{LoadError, LoadedImage};
pub(crate) use memory::Mapping;
pub use memory::{
    BadAddress, PAGE_SIZE, Perms, is_readable, read_bytes, read_c_string, read_u32, read_u64,
    write_bytes,
};
pub use thread::KERNEL_STACK_SIZE;
pub use variadic::variadic_export;
