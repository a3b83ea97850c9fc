//! The emulated Storport port driver.
//!
//! - [`exports`]: the `storport.sys` / `ntoskrnl.exe` / `hal.dll` routines
//!   driver code imports, and [`exports::resolve`] for the loader.
//! - [`Port`]: one port instance driving one miniport through the life
//!   cycle Storport uses — `DriverEntry` → `StorPortInitialize` (validated
//!   and recorded) → PnP start (zeroed device extension, virtual
//!   HwFindAdapter at PASSIVE_LEVEL with documented ConfigInfo defaults,
//!   HwInitialize, ScsiQuerySupportedControlTypes with the newest Windows's
//!   `MaxControlType`, or another ([`PortOptions::max_control_type`])) →
//!   requests through
//!   HwStartIo at DISPATCH_LEVEL ([`Port::execute`], callable from several
//!   threads) → Stop / Restart / SetRunningConfig / HwResetBus on request →
//!   HwFreeAdapterResources ([`Port::remove`]) → unload with leak checks.
//! - [`layouts`]: `SRB_FUNCTION_PNP`, `_POWER` and `_WMI` requests in their
//!   own layouts (`SCSI_PNP_REQUEST_BLOCK`, ...): members the miniport must
//!   ignore are poisoned (a dereference faults and the report names the
//!   member), and a change to a member the layout does not give the
//!   miniport is `NonScsiSrbWrite` ([`Port::pnp`], [`Port::power`],
//!   [`Port::wmi`], [`Port::non_scsi`]).
//! - PnP and power steps ([`Port::pnp_start`] after [`Port::stop`], with
//!   [`PnpStartReading`]; [`Port::supports_control`],
//!   [`Port::reachable_pool`]): what Storport does in each step of `storemu
//!   run --lifecycle` and which page says so is in [`crate::cli::lifecycle`].
//! - [`rules`]: every verifier rule, its stable name and its source.
//! - [`faults`]: fault injection — the N-th call of a fallible import
//!   (pool, registry buffer, registry read/write) fails
//!   ([`Port::inject_faults`], `storemu run --fail CALL@N`).
//! - [`pool`], [`special_pool`], [`physmem`], [`memfault`]: the driver's
//!   pool ([`PortOptions::pool`]): Driver Verifier's special pool (guard
//!   pages, pattern-checked slack, a quarantine of freed blocks; rules
//!   `SpecialPoolOverrun` 0xD6/0xCD, `SpecialPoolUseAfterFree` 0xD5/0xCC,
//!   `SpecialPoolCorruption` 0xC1), and the physical memory model the pool
//!   lives in (`MmGetPhysicalMemoryRangesEx2` reports it; allocations past
//!   it return NULL; rule `NullCheck` for a NULL result used unchecked).
//! - [`racing`]: data-out buffers that change while the miniport runs
//!   ([`Port::execute_racing`]: two versions differing in one byte, each
//!   access seeing the version a schedule names), and [`unmap_race`]: UNMAP
//!   with such lists, judged by the rule `DataOutSnapshot`
//!   ([`Port::racing_unmap`], `storemu run --racing-buffers`).
//! - [`flagged`]: SCSI requests whose `SrbFlags` direction bits are chosen
//!   apart from the buffer ([`Port::execute_flagged`]): both bits
//!   (`SRB_FLAGS_UNSPECIFIED_DIRECTION`, as pass-through requests with
//!   `SCSI_IOCTL_DATA_UNSPECIFIED` arrive), the other direction, or neither
//!   bit with a buffer; the result holds the whole buffer as the miniport
//!   left it.
//! - [`locks`]: spin locks — `KeAcquireSpinLockRaiseToDpc` /
//!   `KeReleaseSpinLock` and their `AtDpcLevel` forms, in-stack queued spin
//!   locks, `EX_SPIN_LOCK` shared and exclusive, `StorPortAcquireSpinLock` /
//!   `StorPortReleaseSpinLock`: real exclusion between emulated processors
//!   (threads), the IRQL raised and restored, and rules `SpinLockNotHeld`,
//!   `SpinLockReleaseIrql`, `SpinLockOldIrql`, `SpinLockRecursive`,
//!   `SpinLockHeldOnReturn`, `SpinLockAcquireIrql`.
//!
//! # Host-linked mode
//!
//! Driver code built for the host (for example the safe `storport` layer's
//! behaviour tests) runs through the same model: bind the host build of
//! `storport-sys` to the emulated exports once with
//! [`exports::bind_host`], then make a [`Port`] with the address of the
//! driver's `DriverEntry` (`extern "win64" fn(*mut DRIVER_OBJECT, *mut
//! UNICODE_STRING) -> NTSTATUS`) and a [`cpu::Cpu`]:
//!
//! - [`cpu::GateCpu`] (recommended): every callback runs on a 24 KiB kernel
//!   stack with a guard page, at the emulated IRQL, under the watchdog; a
//!   fault, a `KeBugCheckEx` (a panic in the driver) or a hang ends only that
//!   call, becomes a finding, and the port answers [`PortError::BugCheck`].
//! - [`cpu::DirectCpu`]: calls on the test thread's own stack; a fault kills
//!   the process and `KeBugCheckEx` exits it. Useful under a debugger.
//!
//! ```no_run
//! use std::sync::Arc;
//! use storport_emu::port::{DataDirection, Port, PortOptions, cpu::GateCpu, exports};
//! # unsafe extern "win64" fn driver_entry(_: usize, _: usize) -> i32 { 0 }
//! assert!(exports::bind_host().is_empty(), "every storport-sys import is emulated");
//! let options = PortOptions { service: "vstor".to_owned(), ..PortOptions::default() };
//! let port = Port::new(driver_entry as *const () as usize, Arc::new(GateCpu::default()), options, None);
//! // Registry values the driver will read (the INF's AddReg, --set):
//! port.registry().registry.set_value(
//!     r"Services\vstor\Parameters\Device",
//!     "DiskCount",
//!     storport_emu::registry::RegValue::dword(2),
//! );
//! port.driver_entry().unwrap();
//! port.start().unwrap();
//! let inquiry = port.execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36)).unwrap();
//! assert_eq!(inquiry.status(), storport_sys::srb_status::SUCCESS);
//! port.stop().unwrap();
//! port.restart().unwrap();
//! port.remove().unwrap();
//! port.unload();
//! assert_eq!(port.findings(), vec![]);
//! ```
//!
//! The rest of the API: [`Port::submit`] (any `SRB_FUNCTION_*` in the
//! `SCSI_REQUEST_BLOCK` layout), [`Port::pnp`] / [`Port::power`] /
//! [`Port::wmi`] (the non-SCSI requests in their own layouts),
//! [`Port::adapter_control`], [`Port::set_running_config`],
//! [`Port::reset_bus`], [`Port::config`] (ConfigInfo as find-adapter left
//! it), [`Port::events`] / [`Port::dbgprint`] / [`Port::findings`].
//!
//! # Decisions where the documentation leaves room
//!
//! - `StorPortInitialize` accepts `HwInitializationDataSize` 0xD0
//!   (`HW_INITIALIZATION_DATA`, Windows 8+) and 0xB0
//!   (`VIRTUAL_HW_INITIALIZATION_DATA`); anything else is
//!   `STATUS_REVISION_MISMATCH`, the documented status for a structure
//!   version the system does not take. Init data for a virtual miniport that
//!   lacks a required callback, names another interface type than
//!   `Internal` or (0xD0 form) lacks `STOR_FEATURE_VIRTUAL_MINIPORT` is
//!   `STATUS_INVALID_PARAMETER`.
//! - A registry buffer is leaked when it is still allocated after a failed
//!   HwFindAdapter, after ScsiSetRunningConfig, or at HwFreeAdapterResources:
//!   one buffer per instance at a time means a buffer kept across routines
//!   blocks every later registry access of the adapter.
//! - SpNoWait is stricter than HW_STARTIO (which allows StorPortAllocatePool
//!   in a virtual miniport's HwStartIo): any pool allocation, stall or wait in
//!   HwStartIo is reported, as the project requires.
//! - HwStartIo runs at DISPATCH_LEVEL unless [`PortOptions::seed`] is set;
//!   then [`schedule`] draws each call's IRQL and preemption
//!   (`storemu run --seed`). The preempting request reads what the
//!   preempted one reads or writes, or is an INQUIRY: it changes nothing an
//!   initiator sees.
//! - A racing UNMAP that did not end with GOOD must have changed nothing on
//!   the medium: SBC does not say whether a refused UNMAP may have unmapped
//!   part of its list. `--racing-partial-unmap`
//!   ([`unmap_race::RefusedUnmap::MayUnmapNamedBlocks`]) accepts changes to
//!   blocks either version of the list names.
//! - Verifier bug checks that Windows raises at once (0xF1/0x2004,
//!   0xF1/0x2001) are recorded and the run goes on, so one run shows every
//!   problem; a fault, `KeBugCheckEx` or hang ends the run: after it the port
//!   calls no more driver code and reports no pool leaks.
//! - Spin locks: a recursive acquire (which would spin for ever) ends the
//!   call at once; a lock another processor holds is waited for up to
//!   [`locks::SPIN_LOCK_DEADLOCK`], then `DriverHang` (0x133). Every other
//!   spin-lock finding is recorded and the call goes on: a lock still held
//!   when a callback returns stays held, as on Windows, and an acquire above
//!   the lock's level still sets that level, so its release finds what it
//!   expects. `StorPortAcquireSpinLock`'s page gives no IRQL:
//!   [`PortOptions::storport_lock_irql`] `Strict` (the default) treats
//!   `DpcLock` and `StartIoLock` as the in-stack queued spin locks their
//!   `STOR_LOCK_HANDLE` holds (acquire at IRQL <= DISPATCH_LEVEL, release at
//!   DISPATCH_LEVEL) and `InterruptLock` as raising to DIRQL; `Unchecked`
//!   checks no IRQL for them.
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
pub mod faults;
pub mod flagged;
pub mod host;
pub mod layouts;
pub mod locks;
pub mod mem;
pub mod memfault;
pub mod model;
pub mod physmem;
pub mod pool;
pub mod racing;
pub mod regglue;
pub mod rules;
pub mod schedule;
pub mod special_pool;
pub mod srb;
pub mod state;
pub mod timing;
pub mod unmap_race;

pub use adapter::{NonScsiRequest, OrphanedBlock, PnpStartReading, Port, PortError, PortOptions};
pub use faults::{FaultPlan, FaultSpec, InjectedFault};
pub use flagged::{FlagDirection, FlaggedResult};
pub use physmem::PhysicalMemory;
pub use pool::PoolConfig;
pub use rules::{Finding, Rule};
pub use special_pool::BlockEnd;
pub use srb::{DataDirection, SrbResult};
