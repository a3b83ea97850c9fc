//! The emulated Storport port driver.
//!
//! - [`exports`]: the `storport.sys` / `ntoskrnl.exe` / `hal.dll` routines
//!   driver code imports, and [`exports::resolve`] for the loader.
//! - [`Port`]: one port instance driving one miniport through the life
//!   cycle Storport uses — `DriverEntry` → `StorPortInitialize` (validated
//!   and recorded) → PnP start (zeroed device extension, virtual
//!   HwFindAdapter at PASSIVE_LEVEL with documented ConfigInfo defaults,
//!   HwInitialize, ScsiQuerySupportedControlTypes) → requests through
//!   HwStartIo at DISPATCH_LEVEL ([`Port::execute`], callable from several
//!   threads) → Stop / Restart / SetRunningConfig / HwResetBus on request →
//!   HwFreeAdapterResources ([`Port::remove`]) → unload with leak checks.
//! - [`rules`]: every verifier rule, its stable name and its source.
//!
//! # Host-linked mode
//!
//! Driver code built for the host (for example the safe `storport` layer's
//! behaviour tests) runs through the same model: bind the host build of
//! `storport-sys` to the emulated exports once with
//! [`exports::bind_host`], then make a [`Port`] with the address of the
//! driver's `DriverEntry` (`extern "win64" fn(*mut DRIVER_OBJECT, *mut
//! UNICODE_STRING) -> NTSTATUS`) and a [`cpu::DirectCpu`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use storport_emu::port::{Port, PortOptions, cpu::DirectCpu, exports};
//! # unsafe extern "win64" fn driver_entry(_: usize, _: usize) -> i32 { 0 }
//! assert!(exports::bind_host().is_empty());
//! let port = Port::new(driver_entry as usize, Arc::new(DirectCpu), PortOptions::default(), None);
//! port.driver_entry().unwrap();
//! port.start().unwrap();
//! // port.execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
//! port.remove().unwrap();
//! port.unload();
//! assert!(port.findings().is_empty());
//! ```
//!
//! Every export finds its port instance through [`context`]: each call
//! into driver code runs inside a frame naming the instance, the routine and
//! the IRQL, on the calling thread.

#![expect(
    clippy::doc_markdown,
    reason = "Storport's identifiers (HwFindAdapter, PASSIVE_LEVEL, ...) are written as Microsoft's documentation writes them"
)]
#![expect(
    clippy::cast_possible_truncation,
    reason = "x86_64 only: driver addresses and 64-bit argument slots arrive as u64 and are usize-wide"
)]

pub mod adapter;
pub mod context;
pub mod cpu;
pub mod exports;
pub mod mem;
pub mod model;
pub mod pool;
pub mod regglue;
pub mod rules;
pub mod srb;
pub mod state;

pub use adapter::{Port, PortError, PortOptions};
pub use rules::{Finding, Rule};
pub use srb::{DataDirection, SrbResult};
