//! `#[repr(C)]` Storport and kernel types (x64 layouts).

use core::ffi::c_void;

/// `ULONG`: 32 bits on every Windows target.
pub type ULONG = u32;
/// `USHORT`.
pub type USHORT = u16;
/// `UCHAR`.
pub type UCHAR = u8;
/// `BOOLEAN`: one byte, 0 is FALSE.
pub type BOOLEAN = u8;
/// `NTSTATUS`.
pub type NTSTATUS = i32;
/// `ULONG_PTR` / `SIZE_T` on x64.
pub type ULONG_PTR = usize;
/// `PVOID`.
pub type PVOID = *mut c_void;
/// `POOL_FLAGS` (`ExAllocatePool2`).
pub type POOL_FLAGS = u64;

/// `HwInitialize` — `PHW_INITIALIZE`.
pub type PHW_INITIALIZE = Option<unsafe extern "win64" fn(device_extension: PVOID) -> BOOLEAN>;
/// `HwStartIo` — `PHW_STARTIO`.
pub type PHW_STARTIO = Option<
    unsafe extern "win64" fn(device_extension: PVOID, srb: *mut SCSI_REQUEST_BLOCK) -> BOOLEAN,
>;
/// `HwResetBus` — `PHW_RESET_BUS`.
pub type PHW_RESET_BUS =
    Option<unsafe extern "win64" fn(device_extension: PVOID, path_id: ULONG) -> BOOLEAN>;
/// Virtual `HwFindAdapter` — `PVIRTUAL_HW_FIND_ADAPTER` (seven arguments).
pub type PVIRTUAL_HW_FIND_ADAPTER = Option<
    unsafe extern "win64" fn(
        device_extension: PVOID,
        hw_context: PVOID,
        bus_information: PVOID,
        lower_device: PVOID,
        argument_string: *mut i8,
        config_info: *mut PORT_CONFIGURATION_INFORMATION,
        again: *mut BOOLEAN,
    ) -> ULONG,
>;
/// `HwAdapterControl` — `PHW_ADAPTER_CONTROL`; returns `SCSI_ADAPTER_CONTROL_STATUS`.
pub type PHW_ADAPTER_CONTROL = Option<
    unsafe extern "win64" fn(
        device_extension: PVOID,
        control_type: ULONG,
        parameters: PVOID,
    ) -> ULONG,
>;
/// `HwFreeAdapterResources` — `PHW_FREE_ADAPTER_RESOURCES`.
pub type PHW_FREE_ADAPTER_RESOURCES = Option<unsafe extern "win64" fn(device_extension: PVOID)>;
/// `HwProcessServiceRequest` — `PHW_PROCESS_SERVICE_REQUEST`.
pub type PHW_PROCESS_SERVICE_REQUEST =
    Option<unsafe extern "win64" fn(device_extension: PVOID, irp: PVOID)>;
/// `HwCompleteServiceIrp` — `PHW_COMPLETE_SERVICE_IRP`.
pub type PHW_COMPLETE_SERVICE_IRP = Option<unsafe extern "win64" fn(device_extension: PVOID)>;
/// Callback slot this crate does not type further (`HwInterrupt`, `HwDmaStarted`,
/// `HwAdapterState`, `HwBuildIo`, tracing and unit-control routines).
pub type PVOID_ROUTINE = Option<unsafe extern "win64" fn()>;

/// `HW_INITIALIZATION_DATA`, the Windows 8+ Storport version (0xD0 bytes).
///
/// Source: storport.h, "`HW_INITIALIZATION_DATA` structure (storport.h)".
/// Virtual miniports pass this structure with
/// `FeatureSupport |= STOR_FEATURE_VIRTUAL_MINIPORT`, and its `HwFindAdapter`
/// slot holds a [`PVIRTUAL_HW_FIND_ADAPTER`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HW_INITIALIZATION_DATA {
    /// `sizeof(HW_INITIALIZATION_DATA)`.
    pub HwInitializationDataSize: ULONG,
    /// `INTERFACE_TYPE`; `Internal` (0) for virtual miniports.
    pub AdapterInterfaceType: ULONG,
    /// Required.
    pub HwInitialize: PHW_INITIALIZE,
    /// Required.
    pub HwStartIo: PHW_STARTIO,
    /// Not used by virtual miniports.
    pub HwInterrupt: PVOID_ROUTINE,
    /// Required: the seven-argument virtual find-adapter routine.
    pub HwFindAdapter: PVIRTUAL_HW_FIND_ADAPTER,
    /// Required.
    pub HwResetBus: PHW_RESET_BUS,
    /// Not used by virtual miniports.
    pub HwDmaStarted: PVOID_ROUTINE,
    /// Not used by Storport.
    pub HwAdapterState: PVOID_ROUTINE,
    /// Size of the per-adapter device extension, in bytes.
    pub DeviceExtensionSize: ULONG,
    /// Size of the per-LUN extension, in bytes.
    pub SpecificLuExtensionSize: ULONG,
    /// Size of the per-SRB extension, in bytes.
    pub SrbExtensionSize: ULONG,
    /// Access ranges; 0 for virtual miniports.
    pub NumberOfAccessRanges: ULONG,
    /// Reserved.
    pub Reserved: PVOID,
    /// `STOR_MAP_*`.
    pub MapBuffers: UCHAR,
    /// Whether the miniport needs physical addresses.
    pub NeedPhysicalAddresses: BOOLEAN,
    /// Tagged queuing support.
    pub TaggedQueuing: BOOLEAN,
    /// Auto request sense support.
    pub AutoRequestSense: BOOLEAN,
    /// Multiple requests per LU.
    pub MultipleRequestPerLu: BOOLEAN,
    /// Receive event.
    pub ReceiveEvent: BOOLEAN,
    /// Length of `VendorId`.
    pub VendorIdLength: USHORT,
    /// PCI vendor id string; unused here.
    pub VendorId: PVOID,
    /// `PortVersionFlags` (union with `ReservedUshort`).
    pub PortVersionFlags: USHORT,
    /// Length of `DeviceId`.
    pub DeviceIdLength: USHORT,
    /// PCI device id string; unused here.
    pub DeviceId: PVOID,
    /// Adapter control routine.
    pub HwAdapterControl: PHW_ADAPTER_CONTROL,
    /// Not called for virtual miniports.
    pub HwBuildIo: PVOID_ROUTINE,
    /// Required for virtual miniports.
    pub HwFreeAdapterResources: PHW_FREE_ADAPTER_RESOURCES,
    /// Optional service-request routine.
    pub HwProcessServiceRequest: PHW_PROCESS_SERVICE_REQUEST,
    /// Required when `HwProcessServiceRequest` is set.
    pub HwCompleteServiceIrp: PHW_COMPLETE_SERVICE_IRP,
    /// Optional tracing initialisation.
    pub HwInitializeTracing: PVOID_ROUTINE,
    /// Required when `HwInitializeTracing` is set.
    pub HwCleanupTracing: PVOID_ROUTINE,
    /// Optional.
    pub HwTracingEnabled: PVOID_ROUTINE,
    /// `STOR_FEATURE_*`.
    pub FeatureSupport: ULONG,
    /// `SRB_TYPE_FLAG_*`.
    pub SrbTypeFlags: ULONG,
    /// `ADDRESS_TYPE_FLAG_*`.
    pub AddressTypeFlags: ULONG,
    /// Reserved.
    pub Reserved1: ULONG,
    /// Optional unit control routine.
    pub HwUnitControl: PVOID_ROUTINE,
}

/// `VIRTUAL_HW_INITIALIZATION_DATA` (0xB0 bytes): the prefix of
/// [`HW_INITIALIZATION_DATA`] up to `HwCleanupTracing`.
///
/// Source: storport.h, "`VIRTUAL_HW_INITIALIZATION_DATA` structure (storport.h)".
/// Kept for miniports written against pre-Windows 8 headers; vstor itself
/// registers with [`HW_INITIALIZATION_DATA`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VIRTUAL_HW_INITIALIZATION_DATA {
    /// `sizeof(VIRTUAL_HW_INITIALIZATION_DATA)`.
    pub HwInitializationDataSize: ULONG,
    /// `INTERFACE_TYPE`.
    pub AdapterInterfaceType: ULONG,
    /// Required.
    pub HwInitialize: PHW_INITIALIZE,
    /// Required.
    pub HwStartIo: PHW_STARTIO,
    /// Unused.
    pub HwInterrupt: PVOID_ROUTINE,
    /// Required.
    pub HwFindAdapter: PVIRTUAL_HW_FIND_ADAPTER,
    /// Required.
    pub HwResetBus: PHW_RESET_BUS,
    /// Unused.
    pub HwDmaStarted: PVOID_ROUTINE,
    /// Unused.
    pub HwAdapterState: PVOID_ROUTINE,
    /// Device extension size in bytes.
    pub DeviceExtensionSize: ULONG,
    /// LU extension size in bytes.
    pub SpecificLuExtensionSize: ULONG,
    /// SRB extension size in bytes.
    pub SrbExtensionSize: ULONG,
    /// Access ranges.
    pub NumberOfAccessRanges: ULONG,
    /// Reserved.
    pub Reserved: PVOID,
    /// `STOR_MAP_*`.
    pub MapBuffers: UCHAR,
    /// Physical addresses.
    pub NeedPhysicalAddresses: BOOLEAN,
    /// Tagged queuing.
    pub TaggedQueuing: BOOLEAN,
    /// Auto request sense.
    pub AutoRequestSense: BOOLEAN,
    /// Multiple requests per LU.
    pub MultipleRequestPerLu: BOOLEAN,
    /// Receive event.
    pub ReceiveEvent: BOOLEAN,
    /// Vendor id length.
    pub VendorIdLength: USHORT,
    /// Vendor id.
    pub VendorId: PVOID,
    /// Port version flags.
    pub PortVersionFlags: USHORT,
    /// Device id length.
    pub DeviceIdLength: USHORT,
    /// Device id.
    pub DeviceId: PVOID,
    /// Adapter control.
    pub HwAdapterControl: PHW_ADAPTER_CONTROL,
    /// Unused for virtual miniports.
    pub HwBuildIo: PVOID_ROUTINE,
    /// Required.
    pub HwFreeAdapterResources: PHW_FREE_ADAPTER_RESOURCES,
    /// Optional.
    pub HwProcessServiceRequest: PHW_PROCESS_SERVICE_REQUEST,
    /// Required with `HwProcessServiceRequest`.
    pub HwCompleteServiceIrp: PHW_COMPLETE_SERVICE_IRP,
    /// Optional.
    pub HwInitializeTracing: PVOID_ROUTINE,
    /// Required with `HwInitializeTracing`.
    pub HwCleanupTracing: PVOID_ROUTINE,
}

/// `MEMORY_REGION` (0x18 bytes), embedded in the port configuration.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MEMORY_REGION {
    /// Virtual base.
    pub VirtualBase: *mut u8,
    /// Physical base (`PHYSICAL_ADDRESS`).
    pub PhysicalBase: i64,
    /// Length in bytes.
    pub Length: ULONG,
}

/// `PHYSICAL_MEMORY_RANGE` (0x10 bytes): one entry of the array
/// `MmGetPhysicalMemoryRangesEx2` returns; the last entry is all zeros.
///
/// Source: ntddk.h, "`MmGetPhysicalMemoryRangesEx2` function (ntddk.h)".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PHYSICAL_MEMORY_RANGE {
    /// First physical address of the range (`PHYSICAL_ADDRESS`).
    pub BaseAddress: i64,
    /// Length of the range in bytes (`LARGE_INTEGER`).
    pub NumberOfBytes: i64,
}

/// `PORT_CONFIGURATION_INFORMATION`, the Storport version (0xE0 bytes on x64).
///
/// Source: storport.h, "`PORT_CONFIGURATION_INFORMATION` structure (storport.h)".
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PORT_CONFIGURATION_INFORMATION {
    /// `sizeof(PORT_CONFIGURATION_INFORMATION)`, set by the port.
    pub Length: ULONG,
    /// System I/O bus number.
    pub SystemIoBusNumber: ULONG,
    /// `INTERFACE_TYPE`.
    pub AdapterInterfaceType: ULONG,
    /// Interrupt level.
    pub BusInterruptLevel: ULONG,
    /// Interrupt vector.
    pub BusInterruptVector: ULONG,
    /// `KINTERRUPT_MODE`.
    pub InterruptMode: ULONG,
    /// Largest transfer the adapter takes, in bytes (SDV `StorPortFindAdapter`).
    pub MaximumTransferLength: ULONG,
    /// Largest number of physical breaks (SDV `StorPortFindAdapter`).
    pub NumberOfPhysicalBreaks: ULONG,
    /// DMA channel.
    pub DmaChannel: ULONG,
    /// DMA port.
    pub DmaPort: ULONG,
    /// `DMA_WIDTH`.
    pub DmaWidth: ULONG,
    /// `DMA_SPEED`.
    pub DmaSpeed: ULONG,
    /// Buffer alignment mask.
    pub AlignmentMask: ULONG,
    /// Number of access ranges.
    pub NumberOfAccessRanges: ULONG,
    /// `ACCESS_RANGE (*)[]`.
    pub AccessRanges: PVOID,
    /// Dump data.
    pub MiniportDumpData: PVOID,
    /// Number of buses.
    pub NumberOfBuses: UCHAR,
    /// Initiator id per bus.
    pub InitiatorBusId: [i8; 8],
    /// Scatter/gather.
    pub ScatterGather: BOOLEAN,
    /// Bus master.
    pub Master: BOOLEAN,
    /// Caches data.
    pub CachesData: BOOLEAN,
    /// Scans down.
    pub AdapterScansDown: BOOLEAN,
    /// Obsolete.
    pub AtdiskPrimaryClaimed: BOOLEAN,
    /// Obsolete.
    pub AtdiskSecondaryClaimed: BOOLEAN,
    /// 32-bit DMA.
    pub Dma32BitAddresses: BOOLEAN,
    /// Demand mode.
    pub DemandMode: BOOLEAN,
    /// `STOR_MAP_*`.
    pub MapBuffers: UCHAR,
    /// Physical addresses.
    pub NeedPhysicalAddresses: BOOLEAN,
    /// Tagged queuing.
    pub TaggedQueuing: BOOLEAN,
    /// Auto request sense.
    pub AutoRequestSense: BOOLEAN,
    /// Multiple requests per LU.
    pub MultipleRequestPerLu: BOOLEAN,
    /// Receive event.
    pub ReceiveEvent: BOOLEAN,
    /// Real mode initialised.
    pub RealModeInitialized: BOOLEAN,
    /// Buffer access controlled by the port.
    pub BufferAccessScsiPortControlled: BOOLEAN,
    /// Maximum number of targets per bus.
    pub MaximumNumberOfTargets: UCHAR,
    /// `SRB_TYPE_*`.
    pub SrbType: UCHAR,
    /// `STORAGE_ADDRESS_TYPE_*`.
    pub AddressType: UCHAR,
    /// Slot number.
    pub SlotNumber: ULONG,
    /// Second interrupt level.
    pub BusInterruptLevel2: ULONG,
    /// Second interrupt vector.
    pub BusInterruptVector2: ULONG,
    /// Second interrupt mode.
    pub InterruptMode2: ULONG,
    /// Second DMA channel.
    pub DmaChannel2: ULONG,
    /// Second DMA port.
    pub DmaPort2: ULONG,
    /// Second DMA width.
    pub DmaWidth2: ULONG,
    /// Second DMA speed.
    pub DmaSpeed2: ULONG,
    /// Device extension size.
    pub DeviceExtensionSize: ULONG,
    /// LU extension size.
    pub SpecificLuExtensionSize: ULONG,
    /// SRB extension size.
    pub SrbExtensionSize: ULONG,
    /// 64-bit DMA.
    pub Dma64BitAddresses: UCHAR,
    /// Target reset support.
    pub ResetTargetSupported: BOOLEAN,
    /// Maximum LUNs per target.
    pub MaximumNumberOfLogicalUnits: UCHAR,
    /// WMI provider.
    pub WmiDataProvider: BOOLEAN,
    /// `STOR_SYNCHRONIZATION_MODEL`.
    pub SynchronizationModel: ULONG,
    /// MSI routine.
    pub HwMSInterruptRoutine: PVOID_ROUTINE,
    /// `INTERRUPT_SYNCHRONIZATION_MODE`.
    pub InterruptSynchronizationMode: ULONG,
    /// Dump region.
    pub DumpRegion: MEMORY_REGION,
    /// Requested dump buffer size.
    pub RequestedDumpBufferSize: ULONG,
    /// Must be TRUE for virtual miniports (SDV `StorPortVirtualDevice2`).
    pub VirtualDevice: BOOLEAN,
    /// Dump mode.
    pub DumpMode: UCHAR,
    /// Extended flags.
    pub ExtendedFlags1: ULONG,
    /// Maximum outstanding I/O for the adapter.
    pub MaxNumberOfIO: ULONG,
    /// Maximum outstanding I/O per LUN.
    pub MaxIOsPerLun: ULONG,
    /// Initial LUN queue depth.
    pub InitialLunQueueDepth: ULONG,
    /// Bus reset hold time, in microseconds.
    pub BusResetHoldTime: ULONG,
    /// `STOR_ADAPTER_FEATURE_*`.
    pub FeatureSupport: ULONG,
}

/// `SCSI_REQUEST_BLOCK` (0x58 bytes on x64).
///
/// Source: srb.h / storport.h, "`SCSI_REQUEST_BLOCK` structure (srb.h)".
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SCSI_REQUEST_BLOCK {
    /// `sizeof(SCSI_REQUEST_BLOCK)`.
    pub Length: USHORT,
    /// `SRB_FUNCTION_*`.
    pub Function: UCHAR,
    /// `SRB_STATUS_*`, set by the miniport.
    pub SrbStatus: UCHAR,
    /// SCSI status byte, set by the miniport.
    pub ScsiStatus: UCHAR,
    /// Bus.
    pub PathId: UCHAR,
    /// Target.
    pub TargetId: UCHAR,
    /// Logical unit.
    pub Lun: UCHAR,
    /// Queue tag.
    pub QueueTag: UCHAR,
    /// Queue action.
    pub QueueAction: UCHAR,
    /// Valid bytes in `Cdb`.
    pub CdbLength: UCHAR,
    /// Size of the sense buffer.
    pub SenseInfoBufferLength: UCHAR,
    /// `SRB_FLAGS_*`.
    pub SrbFlags: ULONG,
    /// Data length in; bytes transferred out.
    pub DataTransferLength: ULONG,
    /// Timeout in seconds.
    pub TimeOutValue: ULONG,
    /// Data buffer (system address with `STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE`).
    pub DataBuffer: PVOID,
    /// Sense buffer.
    pub SenseInfoBuffer: PVOID,
    /// Next SRB.
    pub NextSrb: *mut Self,
    /// Original IRP.
    pub OriginalRequest: PVOID,
    /// Per-SRB miniport extension.
    pub SrbExtension: PVOID,
    /// `InternalStatus` / `QueueSortKey` / `LinkTimeoutValue` union.
    pub InternalStatus: ULONG,
    /// Reserved (x64 padding).
    pub Reserved: ULONG,
    /// Command descriptor block.
    pub Cdb: [UCHAR; 16],
}

/// `SCSI_SUPPORTED_CONTROL_TYPE_LIST` (header; the list has `MaxControlType` entries).
///
/// storport.h declares the list as `BOOLEAN SupportedTypeList[0]`, a
/// zero-length trailing array, so the structure is 4 bytes on x64 (bindgen
/// makes it an `__IncompleteArrayField<BOOLEAN>`). The list's entries follow
/// the header in the port's buffer; reach them through
/// [`Self::supported_type_list`], never through a reference to this struct.
///
/// Source: storport.h, "`SCSI_SUPPORTED_CONTROL_TYPE_LIST` structure (storport.h)".
#[repr(C)]
pub struct SCSI_SUPPORTED_CONTROL_TYPE_LIST {
    /// Number of entries in `SupportedTypeList`, set by the port.
    pub MaxControlType: ULONG,
    /// Zero-length trailing list of flags, pre-set to FALSE by the port.
    pub SupportedTypeList: [BOOLEAN; 0],
}

impl SCSI_SUPPORTED_CONTROL_TYPE_LIST {
    /// Byte offset of the first list entry from the start of the header.
    pub const LIST_OFFSET: usize = core::mem::offset_of!(Self, SupportedTypeList);

    /// Pointer to the first entry of the list that follows the header at
    /// `this`; computing it reads nothing. The port's buffer holds
    /// `MaxControlType` entries from there on.
    #[must_use]
    pub const fn supported_type_list(this: *mut Self) -> *mut BOOLEAN {
        this.wrapping_byte_add(Self::LIST_OFFSET).cast::<BOOLEAN>()
    }
}

/// `UNICODE_STRING` (x64).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UNICODE_STRING {
    /// Length in bytes, without terminator.
    pub Length: USHORT,
    /// Buffer capacity in bytes.
    pub MaximumLength: USHORT,
    /// UTF-16 buffer.
    pub Buffer: *mut u16,
}

/// Opaque `DRIVER_OBJECT`: the driver only hands it to `StorPortInitialize`.
#[repr(C)]
pub struct DRIVER_OBJECT {
    _opaque: [u8; 0],
}

/// `STOR_PNP_ACTION` (srb.h): a C enum, 32 bits on x64; values in
/// [`crate::stor_pnp_action`].
pub type STOR_PNP_ACTION = ULONG;
/// `STOR_DEVICE_POWER_STATE` (srb.h): a C enum, 32 bits on x64; values in
/// [`crate::stor_device_power_state`].
pub type STOR_DEVICE_POWER_STATE = ULONG;
/// `STOR_POWER_ACTION` (srb.h): a C enum, 32 bits on x64; values in
/// [`crate::stor_power_action`].
pub type STOR_POWER_ACTION = ULONG;

/// `SCSI_PNP_REQUEST_BLOCK` (0x58 bytes on x64): the layout of an SRB whose
/// `Function` is `SRB_FUNCTION_PNP`.
///
/// Source: srb.h / storport.h, "`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)".
/// The page says the miniport sets `SrbStatus`, ignores `PnPSubFunction`,
/// `SrbFlags`, `DataTransferLength`, `DataBuffer`, `SenseInfoBuffer`,
/// `NextSrb` and `OriginalRequest`, and may use `SrbExtension` only when it
/// asked for one (`SrbExtensionSize` above zero).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SCSI_PNP_REQUEST_BLOCK {
    /// `sizeof(SCSI_PNP_REQUEST_BLOCK)`.
    pub Length: USHORT,
    /// `SRB_FUNCTION_PNP`.
    pub Function: UCHAR,
    /// `SRB_STATUS_*`, set by the miniport.
    pub SrbStatus: UCHAR,
    /// Not used; the miniport ignores it.
    pub PnPSubFunction: UCHAR,
    /// Bus.
    pub PathId: UCHAR,
    /// Target.
    pub TargetId: UCHAR,
    /// Logical unit.
    pub Lun: UCHAR,
    /// `STOR_PNP_ACTION`: what is happening to the device.
    pub PnPAction: STOR_PNP_ACTION,
    /// The miniport ignores it.
    pub SrbFlags: ULONG,
    /// The miniport ignores it.
    pub DataTransferLength: ULONG,
    /// Timeout in seconds.
    pub TimeOutValue: ULONG,
    /// The miniport ignores it.
    pub DataBuffer: PVOID,
    /// The miniport ignores it.
    pub SenseInfoBuffer: PVOID,
    /// The miniport ignores it.
    pub NextSrb: *mut SCSI_REQUEST_BLOCK,
    /// The miniport ignores it.
    pub OriginalRequest: PVOID,
    /// Per-SRB miniport extension (only with `SrbExtensionSize` above zero).
    pub SrbExtension: PVOID,
    /// `SRB_PNP_FLAGS_ADAPTER_REQUEST`, or 0 for the addressed logical unit.
    pub SrbPnPFlags: ULONG,
    /// Reserved (x64: aligns what follows to 8 bytes).
    pub Reserved: ULONG,
    /// Reserved.
    pub Reserved4: [UCHAR; 16],
}

/// `SCSI_POWER_REQUEST_BLOCK` (0x58 bytes on x64): the layout of an SRB
/// whose `Function` is `SRB_FUNCTION_POWER`.
///
/// Source: srb.h / storport.h, "`SCSI_POWER_REQUEST_BLOCK` structure
/// (srb.h)". The page says the miniport sets `SrbStatus` and ignores
/// `SrbFlags`, `DataTransferLength`, `DataBuffer`, `SenseInfoBuffer`,
/// `NextSrb` and `OriginalRequest`; with `SRB_POWER_FLAGS_ADAPTER_REQUEST`
/// it ignores `PathId`, `TargetId` and `Lun` too.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SCSI_POWER_REQUEST_BLOCK {
    /// `sizeof(SCSI_POWER_REQUEST_BLOCK)`.
    pub Length: USHORT,
    /// `SRB_FUNCTION_POWER`.
    pub Function: UCHAR,
    /// `SRB_STATUS_*`, set by the miniport.
    pub SrbStatus: UCHAR,
    /// `SRB_POWER_FLAGS_ADAPTER_REQUEST`, or 0 for the addressed logical unit.
    pub SrbPowerFlags: UCHAR,
    /// Bus.
    pub PathId: UCHAR,
    /// Target.
    pub TargetId: UCHAR,
    /// Logical unit.
    pub Lun: UCHAR,
    /// `STOR_DEVICE_POWER_STATE` the device moves to.
    pub DevicePowerState: STOR_DEVICE_POWER_STATE,
    /// The miniport ignores it.
    pub SrbFlags: ULONG,
    /// The miniport ignores it.
    pub DataTransferLength: ULONG,
    /// Timeout in seconds.
    pub TimeOutValue: ULONG,
    /// The miniport ignores it.
    pub DataBuffer: PVOID,
    /// The miniport ignores it.
    pub SenseInfoBuffer: PVOID,
    /// The miniport ignores it.
    pub NextSrb: *mut SCSI_REQUEST_BLOCK,
    /// The miniport ignores it.
    pub OriginalRequest: PVOID,
    /// Per-SRB miniport extension (only with `SrbExtensionSize` above zero).
    pub SrbExtension: PVOID,
    /// `STOR_POWER_ACTION`: why (meaningful for D1, D2 and D3).
    pub PowerAction: STOR_POWER_ACTION,
    /// Reserved (x64: aligns what follows to 8 bytes).
    pub Reserved: ULONG,
    /// Reserved.
    pub Reserved5: [UCHAR; 16],
}

/// `SCSI_WMI_REQUEST_BLOCK` (0x58 bytes on x64): the layout of an SRB whose
/// `Function` is `SRB_FUNCTION_WMI`.
///
/// Source: srb.h / storport.h, "`SCSI_WMI_REQUEST_BLOCK` structure (srb.h)".
/// The miniport sets `SrbStatus` and `DataTransferLength` and fills
/// `DataBuffer`; `SrbFlags` is read-only; the `Reserved*` members are
/// "reserved for system use and not available for use by miniport
/// drivers"; with `SRB_WMI_FLAGS_ADAPTER_REQUEST` `PathId`, `TargetId` and
/// `Lun` are reserved too.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SCSI_WMI_REQUEST_BLOCK {
    /// `sizeof(SCSI_WMI_REQUEST_BLOCK)`.
    pub Length: USHORT,
    /// `SRB_FUNCTION_WMI`.
    pub Function: UCHAR,
    /// `SRB_STATUS_*`, set by the miniport.
    pub SrbStatus: UCHAR,
    /// The WMI minor IRP number (`IRP_MN_*`).
    pub WMISubFunction: UCHAR,
    /// Bus (reserved for adapter requests).
    pub PathId: UCHAR,
    /// Target (reserved for adapter requests).
    pub TargetId: UCHAR,
    /// Logical unit (reserved for adapter requests).
    pub Lun: UCHAR,
    /// Reserved.
    pub Reserved1: UCHAR,
    /// `SRB_WMI_FLAGS_ADAPTER_REQUEST`, or 0 for the addressed logical unit.
    pub WMIFlags: UCHAR,
    /// Reserved.
    pub Reserved2: [UCHAR; 2],
    /// `SRB_FLAGS_*`, read-only.
    pub SrbFlags: ULONG,
    /// Size of `DataBuffer` in; bytes returned out.
    pub DataTransferLength: ULONG,
    /// Timeout in seconds.
    pub TimeOutValue: ULONG,
    /// The WMI buffer.
    pub DataBuffer: PVOID,
    /// The WMI data path of the request.
    pub DataPath: PVOID,
    /// Reserved.
    pub Reserved3: PVOID,
    /// The IRP.
    pub OriginalRequest: PVOID,
    /// Per-SRB miniport extension (only with `SrbExtensionSize` above zero).
    pub SrbExtension: PVOID,
    /// Reserved.
    pub Reserved4: ULONG,
    /// Reserved (x64: aligns what follows to 8 bytes).
    pub Reserved6: ULONG,
    /// Reserved.
    pub Reserved5: [UCHAR; 16],
}

/// `STOR_DEVICE_CAPABILITIES_EX` (24 bytes): what a miniport may report for
/// a logical unit in answer to `StorQueryCapabilities`.
///
/// Source: storport.h / srb.h, "`STOR_DEVICE_CAPABILITIES_EX` structure
/// (storport.h)": Storport sets `Version` to
/// `STOR_DEVICE_CAPABILITIES_EX_VERSION_1` and `Size` to the structure's size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct STOR_DEVICE_CAPABILITIES_EX {
    /// `STOR_DEVICE_CAPABILITIES_EX_VERSION_1`.
    pub Version: USHORT,
    /// `sizeof(STOR_DEVICE_CAPABILITIES_EX)`.
    pub Size: USHORT,
    /// The bit fields `DeviceD1` (bit 0) to `DefaultWriteCacheEnabled` (bit 11)
    /// and `Reserved0`, as [`stor_device_capability`](crate::stor_device_capability) masks.
    pub Flags: ULONG,
    /// Address.
    pub Address: ULONG,
    /// UI number.
    pub UINumber: ULONG,
    /// Reserved.
    pub Reserved1: [ULONG; 2],
}

/// `KIRQL`: an interrupt request level (one byte).
pub type KIRQL = u8;
/// `KSPIN_LOCK`: a `ULONG_PTR` the driver provides storage for (wdm.h,
/// "`KeInitializeSpinLock`").
pub type KSPIN_LOCK = ULONG_PTR;
/// `EX_SPIN_LOCK`: a `LONG` initialised to zero ("`ExAcquireSpinLockShared`").
pub type EX_SPIN_LOCK = i32;
/// `STOR_SPINLOCK` (storport.h): which of Storport's locks
/// (`stor_spinlock::*`).
pub type STOR_SPINLOCK = ULONG;

/// `KSPIN_LOCK_QUEUE` (wdm.h): one waiter of a queued spin lock.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KSPIN_LOCK_QUEUE {
    /// The next waiter.
    pub Next: *mut Self,
    /// The spin lock this entry is queued on.
    pub Lock: *mut KSPIN_LOCK,
}

/// `KLOCK_QUEUE_HANDLE` (wdm.h, 0x18 bytes on x64): what
/// `KeAcquireInStackQueuedSpinLock` fills in and
/// `KeReleaseInStackQueuedSpinLock` takes back.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KLOCK_QUEUE_HANDLE {
    /// The caller's queue entry.
    pub LockQueue: KSPIN_LOCK_QUEUE,
    /// The IRQL the acquire raised from.
    pub OldIrql: KIRQL,
}

/// `STOR_LOCK_HANDLE` (storport.h, 0x20 bytes on x64): what
/// `StorPortAcquireSpinLock` fills in and `StorPortReleaseSpinLock` takes
/// back.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct STOR_LOCK_HANDLE {
    /// Which lock (`stor_spinlock::*`).
    pub Lock: STOR_SPINLOCK,
    /// The queued-lock handle and the IRQL to restore.
    pub Context: KLOCK_QUEUE_HANDLE,
}
