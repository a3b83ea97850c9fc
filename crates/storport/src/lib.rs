//! Safe Storport layer for virtual miniports.
//!
//! A driver implements [`Miniport`] and calls [`initialize`] from
//! `DriverEntry`; this crate owns every call into Storport and every
//! callback out of it. What Storport's documentation states as rules, this
//! crate states as types:
//!
//! - the registry is reachable only in `PASSIVE_LEVEL` callbacks, through a
//!   [`Registry`](registry::Registry) capability borrowed for the
//!   callback's duration, and one registry buffer at a time
//!   ([`registry`]); a buffer whose guard was leaked is freed by the layer
//!   when the callback returns;
//! - start-io is handed a [`StartIoRequest`], a view chosen by the SRB's
//!   function before anything else in it is read: a SCSI command ([`Srb`])
//!   or a PNP, POWER, WMI or other request in its own layout, each reading
//!   only the members its layout gives and setting only those it lets the
//!   miniport set;
//! - a request is completed at most once (each view's `complete` consumes
//!   it; a view dropped without completing completes with
//!   `SRB_STATUS_INTERNAL_ERROR`, and one leaked with `core::mem::forget` is
//!   never completed);
//! - a data-out buffer is copied from, never borrowed ([`LentBytes`]), so
//!   what the miniport decides on is its own copy;
//! - the adapter state is written in find-adapter before any other callback
//!   can see it, shared (`Sync`) with concurrent start-io calls, kept when
//!   find-adapter runs again on the same device extension
//!   ([`Miniport::find_adapter_again`]), and dropped in
//!   free-adapter-resources ([`Miniport::Adapter`]);
//! - a lock is a kernel spin lock that raises the IRQL for the hold, held
//!   while its guard lives and released when the guard drops
//!   ([`spin_lock`]).
//!
//! On Windows targets it also supplies the kernel runtime: the panic handler
//! (a bug check), [`debug_print!`] and pool memory ([`PoolSlice`]).
//!
//! # Host builds
//!
//! On other targets Storport's imports forward to whatever an emulated port
//! bound with `storport_sys::host::bind`; examples in this documentation
//! that would call an import are marked `no_run`.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod lent;
mod memory;
mod miniport;
mod nonscsi;
pub mod pool;
pub mod print;
pub mod registry;
mod request;
#[cfg(target_os = "windows")]
mod rt;
pub mod shared_bytes;
pub mod spin_lock;
mod srb;
mod vtable;

pub use lent::LentBytes;
pub use miniport::{
    AdapterControl, ConfigInfo, ControlStatus, ControlType, FindAdapterContext, FindAdapterError,
    Miniport, SupportedControlTypes,
};
pub use nonscsi::{DevicePowerState, OtherSrb, PnpAction, PnpSrb, PowerAction, PowerSrb, WmiSrb};
pub use pool::{PoolAllocError, PoolSlice, PoolTag, Zeroable};
pub use request::{Addressee, StartIoRequest};
pub use shared_bytes::{SharedBytes, UniqueWords};
pub use spin_lock::{ExclusiveGuard, RwSpinLock, SharedGuard, SpinLock, SpinLockGuard};
pub use srb::{Srb, SrbData, SrbFunction, SrbIo, SrbStatus};

/// The kernel's `DRIVER_OBJECT`, as `DriverEntry` receives it (opaque).
pub type DriverObject = storport_sys::DRIVER_OBJECT;
/// The kernel's `UNICODE_STRING`, as `DriverEntry` receives the service key.
pub type UnicodeString = storport_sys::UNICODE_STRING;
/// An `NTSTATUS` code.
pub type NtStatus = storport_sys::NTSTATUS;

/// Registers miniport `T` with Storport (`StorPortInitialize`).
///
/// It registers as a virtual miniport: `AdapterInterfaceType` Internal,
/// `STOR_FEATURE_VIRTUAL_MINIPORT`, data buffers mapped to system addresses,
/// and a device extension sized for `T::Adapter`. Return its status from
/// `DriverEntry`.
///
/// ```no_run
/// # use storport::{AdapterControl, ControlStatus, DriverObject, FindAdapterContext, FindAdapterError, Miniport, NtStatus, StartIoRequest, SrbStatus, UnicodeString};
/// # struct Driver;
/// # impl Miniport for Driver {
/// #     type Adapter = ();
/// #     fn find_adapter(_: &mut FindAdapterContext<'_>) -> Result<(), FindAdapterError> { Ok(()) }
/// #     fn start_io(_: &(), request: StartIoRequest<'_>) { request.complete(SrbStatus::NO_DEVICE) }
/// #     fn reset_bus(_: &(), _: u8) -> bool { true }
/// #     fn adapter_control(_: &(), control: AdapterControl<'_>) -> ControlStatus {
/// #         control.answer_without_state()
/// #     }
/// # }
/// #[unsafe(no_mangle)]
/// pub unsafe extern "win64" fn DriverEntry(
///     driver_object: *mut DriverObject,
///     registry_path: *mut UnicodeString,
/// ) -> NtStatus {
///     // SAFETY: the kernel's own arguments, passed on once.
///     unsafe { storport::initialize::<Driver>(driver_object, registry_path) }
/// }
/// ```
///
/// # Safety
///
/// Call it from `DriverEntry` only, with the driver object and registry path
/// the kernel passed there.
#[must_use = "DriverEntry must return StorPortInitialize's status"]
pub unsafe fn initialize<T: Miniport>(
    driver_object: *mut DriverObject,
    registry_path: *mut UnicodeString,
) -> NtStatus {
    let mut data = vtable::MiniportVTable::<T>::init_data();
    // SAFETY: the caller passes DriverEntry's own arguments, and `data` is a
    // complete HW_INITIALIZATION_DATA, which Storport copies before it
    // returns.
    let status = unsafe {
        storport_sys::StorPortInitialize(
            driver_object,
            registry_path,
            &raw mut data,
            core::ptr::null_mut(),
        )
    };
    status.cast_signed()
}
