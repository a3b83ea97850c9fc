//! What storport-sys declares: struct sizes and field offsets, constant
//! values and import prototypes, read from the host build of the crate.

use core::mem::{offset_of, size_of};

use storport_sys as sys;

/// One structure as storport-sys lays it out.
pub struct Struct {
    /// The C type name (the typedef name in storport.h).
    pub name: &'static str,
    /// `size_of` the Rust type.
    pub size: usize,
    /// Each field's name and `offset_of`.
    pub fields: Vec<(&'static str, usize)>,
}

macro_rules! structs {
    ($($ty:ident { $($field:ident),* $(,)? }),* $(,)?) => {
        vec![$(Struct {
            name: stringify!($ty),
            size: size_of::<sys::$ty>(),
            fields: vec![$((stringify!($field), offset_of!(sys::$ty, $field))),*],
        }),*]
    };
}

/// The structures compared: every one that storport-sys's layout module checks.
#[must_use]
#[expect(clippy::too_many_lines, reason = "one field list per structure")]
pub fn structs() -> Vec<Struct> {
    structs![
        HW_INITIALIZATION_DATA {
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
            PortVersionFlags,
            DeviceIdLength,
            DeviceId,
            HwAdapterControl,
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
            HwUnitControl
        },
        VIRTUAL_HW_INITIALIZATION_DATA {
            HwInitializationDataSize,
            AdapterInterfaceType,
            HwInitialize,
            HwStartIo,
            HwFindAdapter,
            HwResetBus,
            DeviceExtensionSize,
            SrbExtensionSize,
            MapBuffers,
            HwAdapterControl,
            HwFreeAdapterResources,
            HwProcessServiceRequest,
            HwCompleteServiceIrp,
            HwInitializeTracing,
            HwCleanupTracing
        },
        MEMORY_REGION {},
        PHYSICAL_MEMORY_RANGE {
            BaseAddress,
            NumberOfBytes
        },
        PORT_CONFIGURATION_INFORMATION {
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
            FeatureSupport
        },
        SCSI_REQUEST_BLOCK {
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
            InternalStatus,
            Reserved,
            Cdb
        },
        SCSI_SUPPORTED_CONTROL_TYPE_LIST {
            MaxControlType,
            SupportedTypeList
        },
        UNICODE_STRING {
            Length,
            MaximumLength,
            Buffer
        },
        SCSI_PNP_REQUEST_BLOCK {
            Length,
            Function,
            SrbStatus,
            PnPSubFunction,
            PathId,
            TargetId,
            Lun,
            PnPAction,
            SrbFlags,
            DataTransferLength,
            TimeOutValue,
            DataBuffer,
            SenseInfoBuffer,
            NextSrb,
            OriginalRequest,
            SrbExtension,
            SrbPnPFlags,
            Reserved,
            Reserved4
        },
        SCSI_POWER_REQUEST_BLOCK {
            Length,
            Function,
            SrbStatus,
            SrbPowerFlags,
            PathId,
            TargetId,
            Lun,
            DevicePowerState,
            SrbFlags,
            DataTransferLength,
            TimeOutValue,
            DataBuffer,
            SenseInfoBuffer,
            NextSrb,
            OriginalRequest,
            SrbExtension,
            PowerAction,
            Reserved,
            Reserved5
        },
        SCSI_WMI_REQUEST_BLOCK {
            Length,
            Function,
            SrbStatus,
            WMISubFunction,
            PathId,
            TargetId,
            Lun,
            Reserved1,
            WMIFlags,
            Reserved2,
            SrbFlags,
            DataTransferLength,
            TimeOutValue,
            DataBuffer,
            DataPath,
            Reserved3,
            OriginalRequest,
            SrbExtension,
            Reserved4,
            Reserved6,
            Reserved5
        },
        STOR_DEVICE_CAPABILITIES_EX {
            Version,
            Size,
            Flags,
            Address,
            UINumber,
            Reserved1
        },
        KSPIN_LOCK_QUEUE { Next, Lock },
        KLOCK_QUEUE_HANDLE { LockQueue, OldIrql },
        STOR_LOCK_HANDLE { Lock, Context },
    ]
}

/// One constant as storport-sys declares it.
pub struct Const {
    /// The storport-sys name.
    pub name: &'static str,
    /// The C name in the headers, where it differs from `name`.
    pub c_name: &'static str,
    /// The value.
    pub value: i128,
    /// The width of storport-sys's type, in bits.
    pub bits: u32,
}

macro_rules! c_name {
    ($name:ident) => {
        stringify!($name)
    };
    ($name:ident, $c:literal) => {
        $c
    };
}

macro_rules! consts {
    ($($name:ident $(= $c:literal)?),* $(,)?) => {
        vec![$(Const {
            name: stringify!($name),
            c_name: c_name!($name $(, $c)?),
            value: Wide::wide(sys::$name),
            bits: Wide::bits(sys::$name),
        }),*]
    };
}

/// Every constant storport-sys declares, with its value.
#[must_use]
pub fn consts() -> Vec<Const> {
    consts![
        INTERFACE_TYPE_INTERNAL = "Internal",
        STOR_FEATURE_VIRTUAL_MINIPORT,
        STOR_MAP_NO_BUFFERS,
        STOR_MAP_ALL_BUFFERS,
        STOR_MAP_NON_READ_WRITE_BUFFERS,
        STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE,
        SP_RETURN_NOT_FOUND,
        SP_RETURN_FOUND,
        SP_RETURN_ERROR,
        SP_RETURN_BAD_CONFIG,
        MINIPORT_REG_SZ,
        MINIPORT_REG_BINARY,
        MINIPORT_REG_DWORD,
        MINIPORT_REG_MULTI_SZ,
        MINIPORT_REG_QWORD = "REG_QWORD",
        PASSIVE_LEVEL,
        APC_LEVEL,
        DISPATCH_LEVEL,
        POOL_FLAG_NON_PAGED,
        POOL_FLAG_UNINITIALIZED,
        STATUS_SUCCESS,
        STATUS_INVALID_PARAMETER,
        STATUS_REVISION_MISMATCH,
        STATUS_NO_MEMORY,
        STATUS_INSUFFICIENT_RESOURCES,
        BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION = "DRIVER_VERIFIER_DETECTED_VIOLATION",
        BUGCHECK_SCSI_VERIFIER_DETECTED_VIOLATION = "SCSI_VERIFIER_DETECTED_VIOLATION",
        SRB_PNP_FLAGS_ADAPTER_REQUEST,
        SRB_POWER_FLAGS_ADAPTER_REQUEST,
        SRB_WMI_FLAGS_ADAPTER_REQUEST,
        STOR_DEVICE_CAPABILITIES_EX_VERSION_1,
        IRP_MN_REGINFO_EX,
        WMIREGISTER,
    ]
}

/// A storport-sys field that stands for a run of C bit fields.
pub struct Bitfield {
    /// The C type name.
    pub ty: &'static str,
    /// The storport-sys field (a struct field `structs` lists too).
    pub field: &'static str,
    /// Its size in bytes.
    pub size: usize,
    /// Each C bit field's name and storport-sys's mask for it.
    pub bits: Vec<(&'static str, u64)>,
}

/// The storport-sys fields that hold C bit fields, with their masks.
#[must_use]
pub fn bitfields() -> Vec<Bitfield> {
    use sys::stor_device_capability as cap;
    vec![Bitfield {
        ty: "STOR_DEVICE_CAPABILITIES_EX",
        field: "Flags",
        size: size_of::<sys::ULONG>(),
        bits: [
            ("DeviceD1", cap::DEVICE_D1),
            ("DeviceD2", cap::DEVICE_D2),
            ("LockSupported", cap::LOCK_SUPPORTED),
            ("EjectSupported", cap::EJECT_SUPPORTED),
            ("Removable", cap::REMOVABLE),
            ("DockDevice", cap::DOCK_DEVICE),
            ("UniqueID", cap::UNIQUE_ID),
            ("SilentInstall", cap::SILENT_INSTALL),
            ("RawDeviceOK", cap::RAW_DEVICE_OK),
            ("SurpriseRemovalOK", cap::SURPRISE_REMOVAL_OK),
            ("NoDisplayInUI", cap::NO_DISPLAY_IN_UI),
            ("DefaultWriteCacheEnabled", cap::DEFAULT_WRITE_CACHE_ENABLED),
            ("Reserved0", cap::RESERVED0),
        ]
        .into_iter()
        .map(|(name, mask)| (name, u64::from(mask)))
        .collect(),
    }]
}

/// Every non-variadic import: name and parameter widths.
#[must_use]
pub const fn prototypes() -> &'static [(&'static str, &'static [usize])] {
    sys::PROTOTYPES
}

/// Widens every integer type storport-sys's constants use to `i128`.
trait Wide: Sized {
    fn wide(self) -> i128;
    fn bits(self) -> u32 {
        u32::try_from(size_of::<Self>() * 8).unwrap_or(u32::MAX)
    }
}

macro_rules! wide {
    ($($t:ty),*) => {
        $(impl Wide for $t {
            fn wide(self) -> i128 {
                i128::try_from(self).unwrap_or(i128::MAX)
            }
        })*
    };
}

wide!(u8, i8, u16, i16, u32, i32, u64, i64, usize);
