//! Prototypes of every kernel import vstor uses.
//!
//! One list generates both bindings: `raw-dylib` imports on Windows targets,
//! and on other targets forwarding functions that call through the table
//! [`crate::host`] fills in.

use crate::types::{
    BOOLEAN, DRIVER_OBJECT, EX_SPIN_LOCK, HW_INITIALIZATION_DATA, KIRQL, KLOCK_QUEUE_HANDLE,
    KSPIN_LOCK, NTSTATUS, PHYSICAL_MEMORY_RANGE, POOL_FLAGS, PVOID, ULONG, ULONG_PTR,
    UNICODE_STRING,
};

macro_rules! imports {
    ($(
        $dll:literal {
            $(
                $(#[$meta:meta])*
                fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
            )*
        }
    )*) => {
        #[cfg(target_os = "windows")]
        mod windows {
            #[allow(clippy::wildcard_imports, reason = "the prototypes name many ABI types")]
            use super::*;
            $(
                #[link(name = $dll, kind = "raw-dylib", modifiers = "+verbatim")]
                unsafe extern "win64" {
                    $(
                        $(#[$meta])*
                        pub fn $name($($arg: $ty),*) $(-> $ret)?;
                    )*
                }
            )*
        }
        #[cfg(target_os = "windows")]
        pub use windows::*;

        /// Every import as `(module, name)`, in [`Import`] order.
        pub const IMPORTS: &[(&str, &str)] = &[
            $($(($dll, stringify!($name)),)*)*
            ("storport.sys", "StorPortNotification"),
            ("ntoskrnl.exe", "DbgPrint"),
        ];

        /// Every non-variadic import as `(name, parameter widths in bytes)`,
        /// in [`Import`] order: what an ABI check compares with the headers'
        /// prototypes.
        pub const PROTOTYPES: &[(&str, &[usize])] = &[
            $($((stringify!($name), &[$(core::mem::size_of::<$ty>()),*]),)*)*
        ];

        /// Index of each import in [`IMPORTS`] and in the host binding table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Import {
            $($(
                #[doc = concat!("`", $dll, "!", stringify!($name), "`.")]
                $name,
            )*)*
            /// `storport.sys!StorPortNotification` (variadic).
            StorPortNotification,
            /// `ntoskrnl.exe!DbgPrint` (variadic).
            DbgPrint,
        }

        $($(
            $(#[$meta])*
            ///
            /// # Safety
            ///
            /// The contract of the Storport or kernel routine of the same name;
            /// on this host the import must have been bound with
            /// [`crate::host::bind`].
            #[cfg(not(target_os = "windows"))]
            pub unsafe extern "win64" fn $name($($arg: $ty),*) $(-> $ret)? {
                let address = crate::host::address(Import::$name);
                let f: unsafe extern "win64" fn($($ty),*) $(-> $ret)? =
                    // SAFETY: `host::address` returns a non-null address that the
                    // binder promised is a function with this import's signature.
                    unsafe { core::mem::transmute::<*const core::ffi::c_void, _>(address) };
                // SAFETY: the caller upholds the routine's contract.
                unsafe { f($($arg),*) }
            }
        )*)*
    };
}

imports! {
    "storport.sys" {
        /// `StorPortInitialize`: registers the miniport; returns an NTSTATUS.
        fn StorPortInitialize(
            argument1: *mut DRIVER_OBJECT,
            argument2: *mut UNICODE_STRING,
            hw_initialization_data: *mut HW_INITIALIZATION_DATA,
            hw_context: PVOID,
        ) -> ULONG;
        /// `StorPortAllocateRegistryBuffer`: one buffer per miniport instance;
        /// `length` is wanted on input, allocated on output; NULL on failure.
        fn StorPortAllocateRegistryBuffer(hw_device_extension: PVOID, length: *mut ULONG) -> *mut u8;
        /// `StorPortFreeRegistryBuffer`.
        fn StorPortFreeRegistryBuffer(hw_device_extension: PVOID, buffer: *mut u8);
        /// `StorPortRegistryRead`: FALSE with `*buffer_length != 0` means the
        /// buffer is too small and that many bytes are needed.
        fn StorPortRegistryRead(
            hw_device_extension: PVOID,
            value_name: *const u8,
            global: ULONG,
            value_type: ULONG,
            buffer: *mut u8,
            buffer_length: *mut ULONG,
        ) -> BOOLEAN;
        /// `StorPortStallExecution`: busy-waits `delay` microseconds (Driver
        /// Verifier limits a stall to 0.1 s).
        fn StorPortStallExecution(delay: ULONG);
        /// `StorPortRegistryWrite`.
        fn StorPortRegistryWrite(
            hw_device_extension: PVOID,
            value_name: *const u8,
            global: ULONG,
            value_type: ULONG,
            buffer: *mut u8,
            buffer_length: ULONG,
        ) -> BOOLEAN;
    }
    "ntoskrnl.exe" {
        /// `ExAllocatePool2`.
        fn ExAllocatePool2(flags: POOL_FLAGS, number_of_bytes: usize, tag: ULONG) -> PVOID;
        /// `ExFreePoolWithTag`.
        fn ExFreePoolWithTag(p: PVOID, tag: ULONG);
        /// `KeBugCheckEx`: does not return.
        fn KeBugCheckEx(
            bug_check_code: ULONG,
            parameter1: ULONG_PTR,
            parameter2: ULONG_PTR,
            parameter3: ULONG_PTR,
            parameter4: ULONG_PTR,
        ) -> !;
        /// `MmGetPhysicalMemoryRangesEx2` (Windows 10 version 2004+,
        /// `PASSIVE_LEVEL`): a nonpaged pool block of ranges ended by an
        /// all-zero entry, which the caller frees; NULL on failure.
        fn MmGetPhysicalMemoryRangesEx2(
            partition_object: PVOID,
            flags: ULONG,
        ) -> *mut PHYSICAL_MEMORY_RANGE;
        /// `KeAcquireSpinLockRaiseToDpc` (`KeAcquireSpinLock` on x64): at
        /// IRQL <= `DISPATCH_LEVEL`; raises to `DISPATCH_LEVEL`, returns the old IRQL.
        fn KeAcquireSpinLockRaiseToDpc(spin_lock: *mut KSPIN_LOCK) -> KIRQL;
        /// `KeReleaseSpinLock`: at `DISPATCH_LEVEL`; restores `new_irql`, the
        /// value the acquire returned.
        fn KeReleaseSpinLock(spin_lock: *mut KSPIN_LOCK, new_irql: KIRQL);
        /// `KeAcquireSpinLockAtDpcLevel`: at IRQL >= `DISPATCH_LEVEL`.
        fn KeAcquireSpinLockAtDpcLevel(spin_lock: *mut KSPIN_LOCK);
        /// `KeReleaseSpinLockFromDpcLevel`: at IRQL >= `DISPATCH_LEVEL`.
        fn KeReleaseSpinLockFromDpcLevel(spin_lock: *mut KSPIN_LOCK);
        /// `KeAcquireInStackQueuedSpinLock`: at IRQL <= `DISPATCH_LEVEL`;
        /// raises to `DISPATCH_LEVEL` and keeps the old IRQL in the handle.
        fn KeAcquireInStackQueuedSpinLock(
            spin_lock: *mut KSPIN_LOCK,
            lock_handle: *mut KLOCK_QUEUE_HANDLE,
        );
        /// `KeReleaseInStackQueuedSpinLock`: at `DISPATCH_LEVEL`; restores the
        /// handle's old IRQL.
        fn KeReleaseInStackQueuedSpinLock(lock_handle: *mut KLOCK_QUEUE_HANDLE);
        /// `KeAcquireInStackQueuedSpinLockAtDpcLevel`: at `DISPATCH_LEVEL`.
        fn KeAcquireInStackQueuedSpinLockAtDpcLevel(
            spin_lock: *mut KSPIN_LOCK,
            lock_handle: *mut KLOCK_QUEUE_HANDLE,
        );
        /// `KeReleaseInStackQueuedSpinLockFromDpcLevel`: at `DISPATCH_LEVEL`.
        fn KeReleaseInStackQueuedSpinLockFromDpcLevel(lock_handle: *mut KLOCK_QUEUE_HANDLE);
        /// `ExAcquireSpinLockShared`: at IRQL <= `DISPATCH_LEVEL`; raises to
        /// `DISPATCH_LEVEL`, returns the old IRQL.
        fn ExAcquireSpinLockShared(spin_lock: *mut EX_SPIN_LOCK) -> KIRQL;
        /// `ExReleaseSpinLockShared`: at `DISPATCH_LEVEL`; restores `old_irql`.
        fn ExReleaseSpinLockShared(spin_lock: *mut EX_SPIN_LOCK, old_irql: KIRQL);
        /// `ExAcquireSpinLockExclusive`: at IRQL <= `DISPATCH_LEVEL`; raises to
        /// `DISPATCH_LEVEL`, returns the old IRQL.
        fn ExAcquireSpinLockExclusive(spin_lock: *mut EX_SPIN_LOCK) -> KIRQL;
        /// `ExReleaseSpinLockExclusive`: at `DISPATCH_LEVEL`; restores `old_irql`.
        fn ExReleaseSpinLockExclusive(spin_lock: *mut EX_SPIN_LOCK, old_irql: KIRQL);
        /// `ExAcquireSpinLockSharedAtDpcLevel`: at IRQL >= `DISPATCH_LEVEL`.
        fn ExAcquireSpinLockSharedAtDpcLevel(spin_lock: *mut EX_SPIN_LOCK);
        /// `ExReleaseSpinLockSharedFromDpcLevel`: at IRQL >= `DISPATCH_LEVEL`.
        fn ExReleaseSpinLockSharedFromDpcLevel(spin_lock: *mut EX_SPIN_LOCK);
        /// `ExAcquireSpinLockExclusiveAtDpcLevel`: at IRQL >= `DISPATCH_LEVEL`.
        fn ExAcquireSpinLockExclusiveAtDpcLevel(spin_lock: *mut EX_SPIN_LOCK);
        /// `ExReleaseSpinLockExclusiveFromDpcLevel`: at IRQL >= `DISPATCH_LEVEL`.
        fn ExReleaseSpinLockExclusiveFromDpcLevel(spin_lock: *mut EX_SPIN_LOCK);
        /// `ExFreePool`: frees pool whatever its tag, such as the block
        /// `MmGetPhysicalMemoryRangesEx2` returns (the kernel's tag, which
        /// the caller does not know).
        fn ExFreePool(p: PVOID);
    }
}

#[cfg(target_os = "windows")]
#[link(name = "storport.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "win64" {
    /// `StorPortNotification` (variadic; the arguments depend on the type).
    pub fn StorPortNotification(notification_type: ULONG, hw_device_extension: PVOID, ...);
}

#[cfg(target_os = "windows")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "win64" {
    /// `DbgPrint` (variadic, printf-style).
    pub fn DbgPrint(format: *const u8, ...) -> NTSTATUS;
}

/// `StorPortNotification` with one argument after the device extension —
/// the form every notification vstor sends takes (`RequestComplete`, SRB).
///
/// # Safety
///
/// The contract of `StorPortNotification` for `notification_type`; the
/// import must have been bound with [`crate::host::bind`].
#[cfg(not(target_os = "windows"))]
pub unsafe extern "win64" fn StorPortNotification(
    notification_type: ULONG,
    hw_device_extension: PVOID,
    argument: PVOID,
) {
    let address = crate::host::address(Import::StorPortNotification);
    // SAFETY: the binder promised a win64 routine that reads its arguments
    // the way a variadic callee does (integer registers, then home area).
    let f: unsafe extern "win64" fn(ULONG, PVOID, PVOID) =
        unsafe { core::mem::transmute::<*const core::ffi::c_void, _>(address) };
    // SAFETY: the caller upholds the routine's contract.
    unsafe { f(notification_type, hw_device_extension, argument) }
}

/// `DbgPrint` with one argument after the format (`"%s"` and a string).
///
/// # Safety
///
/// `format` and `argument` must satisfy `DbgPrint`'s printf contract; the
/// import must have been bound with [`crate::host::bind`].
#[cfg(not(target_os = "windows"))]
#[must_use]
pub unsafe extern "win64" fn DbgPrint(format: *const u8, argument: *const u8) -> NTSTATUS {
    let address = crate::host::address(Import::DbgPrint);
    // SAFETY: the binder promised a win64 `DbgPrint`.
    let f: unsafe extern "win64" fn(*const u8, *const u8) -> NTSTATUS =
        unsafe { core::mem::transmute::<*const core::ffi::c_void, _>(address) };
    // SAFETY: the caller upholds the routine's contract.
    unsafe { f(format, argument) }
}
