//! Compile-time layout checks: every structure and every field vstor or the
//! emulator touches, at the x64 offsets of Microsoft's headers.
//!
//! Sources: the storport.h / srb.h definitions on Microsoft Learn
//! ("`HW_INITIALIZATION_DATA` structure (storport.h)",
//! "`PORT_CONFIGURATION_INFORMATION` structure (storport.h)",
//! "`SCSI_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_SUPPORTED_CONTROL_TYPE_LIST` structure (storport.h)",
//! "`VIRTUAL_HW_INITIALIZATION_DATA` structure (storport.h)",
//! "`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_POWER_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_WMI_REQUEST_BLOCK` structure (srb.h)",
//! "`STOR_DEVICE_CAPABILITIES_EX` structure (storport.h)"), with the
//! numbers cross-checked against type dumps made from storport.sys's public
//! symbols (the three special SRB layouts against the `// offset` comments
//! and `_WIN64` padding of the WDK's srb.h). A wrong offset here fails the
//! build, on every target.

use core::mem::{offset_of, size_of};

use crate::types::{
    EX_SPIN_LOCK, HW_INITIALIZATION_DATA as Hid, KLOCK_QUEUE_HANDLE, KSPIN_LOCK, KSPIN_LOCK_QUEUE,
    MEMORY_REGION, PHYSICAL_MEMORY_RANGE, PORT_CONFIGURATION_INFORMATION as Pci,
    SCSI_PNP_REQUEST_BLOCK as Pnp, SCSI_POWER_REQUEST_BLOCK as Power, SCSI_REQUEST_BLOCK as Srb,
    SCSI_SUPPORTED_CONTROL_TYPE_LIST as Sct, SCSI_WMI_REQUEST_BLOCK as Wmi,
    STOR_DEVICE_CAPABILITIES_EX as StorCaps, STOR_LOCK_HANDLE, UNICODE_STRING,
    VIRTUAL_HW_INITIALIZATION_DATA as Vhid,
};

/// Asserts `offset_of!($ty, $field) == $offset` for each pair, at compile time.
macro_rules! assert_offsets {
    ($ty:ty { $($field:ident: $offset:literal),* $(,)? }) => {
        $(const _: () = assert!(offset_of!($ty, $field) == $offset, concat!(
            stringify!($ty), ".", stringify!($field), " is not at ", stringify!($offset)
        ));)*
    };
}

/// `sizeof(HW_INITIALIZATION_DATA)` on x64, Windows 8 and later.
pub const HW_INITIALIZATION_DATA_SIZE: usize = 0xD0;
/// `sizeof(VIRTUAL_HW_INITIALIZATION_DATA)` on x64.
pub const VIRTUAL_HW_INITIALIZATION_DATA_SIZE: usize = 0xB0;
/// `sizeof(PORT_CONFIGURATION_INFORMATION)` (Storport) on x64.
pub const PORT_CONFIGURATION_INFORMATION_SIZE: usize = 0xE0;
/// `sizeof(SCSI_REQUEST_BLOCK)` on x64.
pub const SCSI_REQUEST_BLOCK_SIZE: usize = 0x58;

const _: () = assert!(size_of::<Hid>() == HW_INITIALIZATION_DATA_SIZE);
assert_offsets!(Hid {
    HwInitializationDataSize: 0x00,
    AdapterInterfaceType: 0x04,
    HwInitialize: 0x08,
    HwStartIo: 0x10,
    HwInterrupt: 0x18,
    HwFindAdapter: 0x20,
    HwResetBus: 0x28,
    HwDmaStarted: 0x30,
    HwAdapterState: 0x38,
    DeviceExtensionSize: 0x40,
    SpecificLuExtensionSize: 0x44,
    SrbExtensionSize: 0x48,
    NumberOfAccessRanges: 0x4C,
    Reserved: 0x50,
    MapBuffers: 0x58,
    NeedPhysicalAddresses: 0x59,
    TaggedQueuing: 0x5A,
    AutoRequestSense: 0x5B,
    MultipleRequestPerLu: 0x5C,
    ReceiveEvent: 0x5D,
    VendorIdLength: 0x5E,
    VendorId: 0x60,
    PortVersionFlags: 0x68,
    DeviceIdLength: 0x6A,
    DeviceId: 0x70,
    HwAdapterControl: 0x78,
    HwBuildIo: 0x80,
    HwFreeAdapterResources: 0x88,
    HwProcessServiceRequest: 0x90,
    HwCompleteServiceIrp: 0x98,
    HwInitializeTracing: 0xA0,
    HwCleanupTracing: 0xA8,
    HwTracingEnabled: 0xB0,
    FeatureSupport: 0xB8,
    SrbTypeFlags: 0xBC,
    AddressTypeFlags: 0xC0,
    Reserved1: 0xC4,
    HwUnitControl: 0xC8,
});

const _: () = assert!(size_of::<Vhid>() == VIRTUAL_HW_INITIALIZATION_DATA_SIZE);
assert_offsets!(Vhid {
    HwInitializationDataSize: 0x00,
    AdapterInterfaceType: 0x04,
    HwInitialize: 0x08,
    HwStartIo: 0x10,
    HwFindAdapter: 0x20,
    HwResetBus: 0x28,
    DeviceExtensionSize: 0x40,
    SrbExtensionSize: 0x48,
    MapBuffers: 0x58,
    HwAdapterControl: 0x78,
    HwFreeAdapterResources: 0x88,
    HwProcessServiceRequest: 0x90,
    HwCompleteServiceIrp: 0x98,
    HwInitializeTracing: 0xA0,
    HwCleanupTracing: 0xA8,
});

const _: () = assert!(size_of::<MEMORY_REGION>() == 0x18);
const _: () = assert!(size_of::<PHYSICAL_MEMORY_RANGE>() == 0x10);
assert_offsets!(PHYSICAL_MEMORY_RANGE {
    BaseAddress: 0x0,
    NumberOfBytes: 0x8,
});
const _: () = assert!(size_of::<Pci>() == PORT_CONFIGURATION_INFORMATION_SIZE);
assert_offsets!(Pci {
    Length: 0x00,
    SystemIoBusNumber: 0x04,
    AdapterInterfaceType: 0x08,
    MaximumTransferLength: 0x18,
    NumberOfPhysicalBreaks: 0x1C,
    AlignmentMask: 0x30,
    NumberOfAccessRanges: 0x34,
    AccessRanges: 0x38,
    MiniportDumpData: 0x40,
    NumberOfBuses: 0x48,
    InitiatorBusId: 0x49,
    ScatterGather: 0x51,
    Master: 0x52,
    CachesData: 0x53,
    Dma32BitAddresses: 0x57,
    MapBuffers: 0x59,
    NeedPhysicalAddresses: 0x5A,
    TaggedQueuing: 0x5B,
    AutoRequestSense: 0x5C,
    MultipleRequestPerLu: 0x5D,
    MaximumNumberOfTargets: 0x61,
    SrbType: 0x62,
    AddressType: 0x63,
    SlotNumber: 0x64,
    DeviceExtensionSize: 0x84,
    SpecificLuExtensionSize: 0x88,
    SrbExtensionSize: 0x8C,
    Dma64BitAddresses: 0x90,
    ResetTargetSupported: 0x91,
    MaximumNumberOfLogicalUnits: 0x92,
    WmiDataProvider: 0x93,
    SynchronizationModel: 0x94,
    HwMSInterruptRoutine: 0x98,
    InterruptSynchronizationMode: 0xA0,
    DumpRegion: 0xA8,
    RequestedDumpBufferSize: 0xC0,
    VirtualDevice: 0xC4,
    DumpMode: 0xC5,
    ExtendedFlags1: 0xC8,
    MaxNumberOfIO: 0xCC,
    MaxIOsPerLun: 0xD0,
    InitialLunQueueDepth: 0xD4,
    BusResetHoldTime: 0xD8,
    FeatureSupport: 0xDC,
});

const _: () = assert!(size_of::<Srb>() == SCSI_REQUEST_BLOCK_SIZE);
assert_offsets!(Srb {
    Length: 0x00,
    Function: 0x02,
    SrbStatus: 0x03,
    ScsiStatus: 0x04,
    PathId: 0x05,
    TargetId: 0x06,
    Lun: 0x07,
    QueueTag: 0x08,
    QueueAction: 0x09,
    CdbLength: 0x0A,
    SenseInfoBufferLength: 0x0B,
    SrbFlags: 0x0C,
    DataTransferLength: 0x10,
    TimeOutValue: 0x14,
    DataBuffer: 0x18,
    SenseInfoBuffer: 0x20,
    NextSrb: 0x28,
    OriginalRequest: 0x30,
    SrbExtension: 0x38,
    InternalStatus: 0x40,
    Reserved: 0x44,
    Cdb: 0x48,
});

assert_offsets!(Sct {
    MaxControlType: 0x00,
    SupportedTypeList: 0x04
});
// `BOOLEAN SupportedTypeList[0]`: the list adds nothing to the size.
const _: () = assert!(size_of::<Sct>() == 4);
const _: () = assert!(Sct::LIST_OFFSET == 4);

const _: () = assert!(size_of::<UNICODE_STRING>() == 0x10);
assert_offsets!(UNICODE_STRING {
    Length: 0x00,
    MaximumLength: 0x02,
    Buffer: 0x08
});

/// `sizeof(SCSI_PNP_REQUEST_BLOCK)`, `sizeof(SCSI_POWER_REQUEST_BLOCK)` and
/// `sizeof(SCSI_WMI_REQUEST_BLOCK)` on x64: each is an SRB, as large as
/// `SCSI_REQUEST_BLOCK`.
pub const SPECIAL_REQUEST_BLOCK_SIZE: usize = 0x58;

const _: () = assert!(size_of::<Pnp>() == SPECIAL_REQUEST_BLOCK_SIZE);
assert_offsets!(Pnp {
    Length: 0x00,
    Function: 0x02,
    SrbStatus: 0x03,
    PnPSubFunction: 0x04,
    PathId: 0x05,
    TargetId: 0x06,
    Lun: 0x07,
    PnPAction: 0x08,
    SrbFlags: 0x0C,
    DataTransferLength: 0x10,
    TimeOutValue: 0x14,
    DataBuffer: 0x18,
    SenseInfoBuffer: 0x20,
    NextSrb: 0x28,
    OriginalRequest: 0x30,
    SrbExtension: 0x38,
    SrbPnPFlags: 0x40,
    Reserved: 0x44,
    Reserved4: 0x48,
});

const _: () = assert!(size_of::<Power>() == SPECIAL_REQUEST_BLOCK_SIZE);
assert_offsets!(Power {
    Length: 0x00,
    Function: 0x02,
    SrbStatus: 0x03,
    SrbPowerFlags: 0x04,
    PathId: 0x05,
    TargetId: 0x06,
    Lun: 0x07,
    DevicePowerState: 0x08,
    SrbFlags: 0x0C,
    DataTransferLength: 0x10,
    TimeOutValue: 0x14,
    DataBuffer: 0x18,
    SenseInfoBuffer: 0x20,
    NextSrb: 0x28,
    OriginalRequest: 0x30,
    SrbExtension: 0x38,
    PowerAction: 0x40,
    Reserved: 0x44,
    Reserved5: 0x48,
});

const _: () = assert!(size_of::<Wmi>() == SPECIAL_REQUEST_BLOCK_SIZE);
assert_offsets!(Wmi {
    Length: 0x00,
    Function: 0x02,
    SrbStatus: 0x03,
    WMISubFunction: 0x04,
    PathId: 0x05,
    TargetId: 0x06,
    Lun: 0x07,
    Reserved1: 0x08,
    WMIFlags: 0x09,
    Reserved2: 0x0A,
    SrbFlags: 0x0C,
    DataTransferLength: 0x10,
    TimeOutValue: 0x14,
    DataBuffer: 0x18,
    DataPath: 0x20,
    Reserved3: 0x28,
    OriginalRequest: 0x30,
    SrbExtension: 0x38,
    Reserved4: 0x40,
    Reserved6: 0x44,
    Reserved5: 0x48,
});

const _: () = assert!(size_of::<StorCaps>() == 0x18);
assert_offsets!(StorCaps {
    Version: 0x00,
    Size: 0x02,
    Flags: 0x04,
    Address: 0x08,
    UINumber: 0x0C,
    Reserved1: 0x10,
});

// Spin locks (wdm.h: "KeInitializeSpinLock", "KeAcquireInStackQueuedSpinLock",
// "ExAcquireSpinLockShared"; storport.h: "StorPortAcquireSpinLock").
const _: () = assert!(size_of::<KSPIN_LOCK>() == 8);
const _: () = assert!(size_of::<EX_SPIN_LOCK>() == 4);
const _: () = assert!(size_of::<KSPIN_LOCK_QUEUE>() == 0x10);
assert_offsets!(KSPIN_LOCK_QUEUE {
    Next: 0x00,
    Lock: 0x08
});
/// `sizeof(KLOCK_QUEUE_HANDLE)` on x64.
pub const KLOCK_QUEUE_HANDLE_SIZE: usize = 0x18;
const _: () = assert!(size_of::<KLOCK_QUEUE_HANDLE>() == KLOCK_QUEUE_HANDLE_SIZE);
assert_offsets!(KLOCK_QUEUE_HANDLE {
    LockQueue: 0x00,
    OldIrql: 0x10
});
/// `sizeof(STOR_LOCK_HANDLE)` on x64.
pub const STOR_LOCK_HANDLE_SIZE: usize = 0x20;
const _: () = assert!(size_of::<STOR_LOCK_HANDLE>() == STOR_LOCK_HANDLE_SIZE);
assert_offsets!(STOR_LOCK_HANDLE {
    Lock: 0x00,
    Context: 0x08
});
