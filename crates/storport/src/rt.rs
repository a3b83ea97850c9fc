//! Kernel runtime pieces a `no_std` driver needs: the panic handler and the
//! global allocator.
//!
//! Two sources supply them, with the same effect for the driver:
//! - without the `wdk` feature (the Linux cross build): this module's own
//!   panic handler (bug check [`PANIC_BUGCHECK_CODE`]) and pool allocator
//!   (tag [`ALLOCATOR_POOL_TAG`]);
//! - with the `wdk` feature (a Windows host with the WDK): `wdk-panic`'s
//!   panic handler (bug check `'RPNC'`) and `wdk-alloc`'s `WdkAllocator`
//!   (nonpaged pool, tag `'rust'`), as windows-drivers-rs' sample drivers use
//!   them. This module then also checks, at compile time, that every
//!   `storport-sys` layout equals the WDK's own (`wdk_layout`).
//!
//! Debug output is [`debug_print!`](crate::debug_print) on both paths: it
//! makes the same `DbgPrint("%s", line)` call as `wdk::println!`.

/// Bug check code vstor raises on a Rust panic (`'VSTP'` read as ASCII is
/// not a Microsoft code, so a crash dump points at the driver at once).
#[cfg(not(feature = "wdk"))]
pub const PANIC_BUGCHECK_CODE: u32 = 0x5653_5450;

#[cfg(not(feature = "wdk"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let line = info
        .location()
        .map_or(0, |location| location.line() as usize);
    // SAFETY: KeBugCheckEx may be called at any IRQL and never returns.
    unsafe { storport_sys::KeBugCheckEx(PANIC_BUGCHECK_CODE, line, 0, 0, 0) }
}

/// Pool tag of the blocks behind `alloc` (`Vec`, `Box`): reads `RsAl` in
/// the pool tools.
#[cfg(not(feature = "wdk"))]
pub const ALLOCATOR_POOL_TAG: u32 = u32::from_le_bytes(*b"RsAl");

/// The global allocator of a driver built on this crate: nonpaged pool.
///
/// Allocate only where pool allocation is allowed (find-adapter, PASSIVE
/// adapter control); start-io must not allocate (SDV `SpNoWait`).
#[cfg(not(feature = "wdk"))]
struct PoolAllocator;

// SAFETY: every block comes from ExAllocatePool2, which on x64 returns
// blocks aligned to 16 bytes (larger alignments are refused with null), and
// goes back with ExFreePoolWithTag and the same tag.
#[cfg(not(feature = "wdk"))]
unsafe impl core::alloc::GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: a plain nonpaged allocation; `alloc` callers do not rely
        // on zeroed memory.
        let block = unsafe {
            storport_sys::ExAllocatePool2(
                storport_sys::POOL_FLAG_NON_PAGED | storport_sys::POOL_FLAG_UNINITIALIZED,
                layout.size(),
                ALLOCATOR_POOL_TAG,
            )
        };
        block.cast()
    }

    unsafe fn dealloc(&self, block: *mut u8, _layout: core::alloc::Layout) {
        // SAFETY: `block` came from `alloc` above, with this tag, and the
        // caller frees it once.
        unsafe { storport_sys::ExFreePoolWithTag(block.cast(), ALLOCATOR_POOL_TAG) }
    }
}

#[cfg(not(feature = "wdk"))]
#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;

// With the WDK: the panic handler is linked in from wdk-panic (it defines
// `#[panic_handler]` itself; naming the crate is what links it), the
// allocator is wdk-alloc's.
#[cfg(feature = "wdk")]
use wdk_panic as _;

#[cfg(feature = "wdk")]
#[global_allocator]
static ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

/// `storport-sys` layouts against the WDK's `storport.h`, as bindgen sees it
/// in `wdk-sys` (feature `storage`): the same size and the same offset for
/// every field `storport-sys` asserts in its `layout` module. Checked at
/// compile time; a difference fails the build.
#[cfg(feature = "wdk")]
mod wdk_layout {
    use core::mem::{offset_of, size_of};

    use storport_sys as ours;
    use wdk_sys as wdk;

    /// Asserts, for each field, that `$ours` and `$wdk` place it at the same
    /// offset, and that both types have the same size.
    macro_rules! same_layout {
        ($ours:ty, $wdk:ty { $($field:ident),* $(,)? }) => {
            const _: () = assert!(
                size_of::<$ours>() == size_of::<$wdk>(),
                concat!("size of ", stringify!($ours), " differs from the WDK's")
            );
            $(const _: () = assert!(
                offset_of!($ours, $field) == offset_of!($wdk, $field),
                concat!(stringify!($ours), ".", stringify!($field), " is not where the WDK puts it")
            );)*
        };
    }

    // `PortVersionFlags` (with `ReservedUshort`) and, in newer headers,
    // `HwAdapterControl` (with `HwNvmeAdapterControl`) sit in anonymous
    // unions, which bindgen names by position (`__bindgen_anon_N`); they are
    // covered by the offsets of their neighbours and the total size.
    same_layout!(
        ours::HW_INITIALIZATION_DATA,
        wdk::HW_INITIALIZATION_DATA {
            HwInitializationDataSize,
            AdapterInterfaceType,
            HwInitialize,
            HwStartIo,
            HwInterrupt,
            HwFindAdapter,
            HwResetBus,
            HwDmaStarted,
            HwAdapterState,
            DeviceExtensionSize,
            SpecificLuExtensionSize,
            SrbExtensionSize,
            NumberOfAccessRanges,
            Reserved,
            MapBuffers,
            NeedPhysicalAddresses,
            TaggedQueuing,
            AutoRequestSense,
            MultipleRequestPerLu,
            ReceiveEvent,
            VendorIdLength,
            VendorId,
            DeviceIdLength,
            DeviceId,
            HwBuildIo,
            HwFreeAdapterResources,
            HwProcessServiceRequest,
            HwCompleteServiceIrp,
            HwInitializeTracing,
            HwCleanupTracing,
            HwTracingEnabled,
            FeatureSupport,
            SrbTypeFlags,
            AddressTypeFlags,
            Reserved1,
            HwUnitControl,
        }
    );

    same_layout!(
        ours::VIRTUAL_HW_INITIALIZATION_DATA,
        wdk::VIRTUAL_HW_INITIALIZATION_DATA {
            HwInitializationDataSize,
            AdapterInterfaceType,
            HwInitialize,
            HwStartIo,
            HwFindAdapter,
            HwResetBus,
            DeviceExtensionSize,
            SrbExtensionSize,
            MapBuffers,
            HwFreeAdapterResources,
            HwProcessServiceRequest,
            HwCompleteServiceIrp,
            HwInitializeTracing,
            HwCleanupTracing,
        }
    );

    same_layout!(ours::MEMORY_REGION, wdk::MEMORY_REGION {});

    same_layout!(
        ours::PORT_CONFIGURATION_INFORMATION,
        wdk::PORT_CONFIGURATION_INFORMATION {
            Length,
            SystemIoBusNumber,
            AdapterInterfaceType,
            MaximumTransferLength,
            NumberOfPhysicalBreaks,
            AlignmentMask,
            NumberOfAccessRanges,
            AccessRanges,
            MiniportDumpData,
            NumberOfBuses,
            InitiatorBusId,
            ScatterGather,
            Master,
            CachesData,
            Dma32BitAddresses,
            MapBuffers,
            NeedPhysicalAddresses,
            TaggedQueuing,
            AutoRequestSense,
            MultipleRequestPerLu,
            MaximumNumberOfTargets,
            SrbType,
            AddressType,
            SlotNumber,
            DeviceExtensionSize,
            SpecificLuExtensionSize,
            SrbExtensionSize,
            Dma64BitAddresses,
            ResetTargetSupported,
            MaximumNumberOfLogicalUnits,
            WmiDataProvider,
            SynchronizationModel,
            HwMSInterruptRoutine,
            InterruptSynchronizationMode,
            DumpRegion,
            RequestedDumpBufferSize,
            VirtualDevice,
            DumpMode,
            ExtendedFlags1,
            MaxNumberOfIO,
            MaxIOsPerLun,
            InitialLunQueueDepth,
            BusResetHoldTime,
            FeatureSupport,
        }
    );

    // `InternalStatus` sits in an anonymous union in srb.h (with
    // `QueueSortKey` and `LinkTimeoutValue`), which bindgen names
    // `__bindgen_anon_1`; its offset is that of the union.
    same_layout!(
        ours::SCSI_REQUEST_BLOCK,
        wdk::SCSI_REQUEST_BLOCK {
            Length,
            Function,
            SrbStatus,
            ScsiStatus,
            PathId,
            TargetId,
            Lun,
            QueueTag,
            QueueAction,
            CdbLength,
            SenseInfoBufferLength,
            SrbFlags,
            DataTransferLength,
            TimeOutValue,
            DataBuffer,
            SenseInfoBuffer,
            NextSrb,
            OriginalRequest,
            SrbExtension,
            Cdb,
        }
    );
    const _: () = assert!(
        offset_of!(ours::SCSI_REQUEST_BLOCK, InternalStatus)
            == offset_of!(wdk::SCSI_REQUEST_BLOCK, __bindgen_anon_1),
        "SCSI_REQUEST_BLOCK.InternalStatus is not where the WDK puts it"
    );

    // storport.h's list is `BOOLEAN SupportedTypeList[0]`: 4 bytes on x64,
    // the list (bindgen's `__IncompleteArrayField`) starting at offset 4.
    same_layout!(
        ours::SCSI_SUPPORTED_CONTROL_TYPE_LIST,
        wdk::SCSI_SUPPORTED_CONTROL_TYPE_LIST {
            MaxControlType,
            SupportedTypeList,
        }
    );

    same_layout!(
        ours::UNICODE_STRING,
        wdk::UNICODE_STRING {
            Length,
            MaximumLength,
            Buffer,
        }
    );
}
