//! Storport, SRB and kernel constants (storport.h, srb.h, scsi.h, wdm.h).

use crate::types::{NTSTATUS, POOL_FLAGS, ULONG};

/// `INTERFACE_TYPE::Internal`, the bus type of a virtual miniport.
pub const INTERFACE_TYPE_INTERNAL: ULONG = 0;

/// `STOR_FEATURE_VIRTUAL_MINIPORT` (`HW_INITIALIZATION_DATA.FeatureSupport`).
pub const STOR_FEATURE_VIRTUAL_MINIPORT: ULONG = 0x0000_0001;

/// `STOR_MAP_NO_BUFFERS`.
pub const STOR_MAP_NO_BUFFERS: u8 = 0;
/// `STOR_MAP_ALL_BUFFERS`.
pub const STOR_MAP_ALL_BUFFERS: u8 = 1;
/// `STOR_MAP_NON_READ_WRITE_BUFFERS`.
pub const STOR_MAP_NON_READ_WRITE_BUFFERS: u8 = 2;
/// `STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE`: `DataBuffer` is a system address.
pub const STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE: u8 = 3;

/// `SP_RETURN_NOT_FOUND` (`HwFindAdapter`).
pub const SP_RETURN_NOT_FOUND: ULONG = 0;
/// `SP_RETURN_FOUND`.
pub const SP_RETURN_FOUND: ULONG = 1;
/// `SP_RETURN_ERROR`.
pub const SP_RETURN_ERROR: ULONG = 2;
/// `SP_RETURN_BAD_CONFIG`.
pub const SP_RETURN_BAD_CONFIG: ULONG = 3;

/// `SCSI_ADAPTER_CONTROL_TYPE` values.
pub mod adapter_control {
    use crate::types::ULONG;
    /// `ScsiQuerySupportedControlTypes`.
    pub const QUERY_SUPPORTED_CONTROL_TYPES: ULONG = 0;
    /// `ScsiStopAdapter`.
    pub const STOP_ADAPTER: ULONG = 1;
    /// `ScsiRestartAdapter`.
    pub const RESTART_ADAPTER: ULONG = 2;
    /// `ScsiSetBootConfig`.
    pub const SET_BOOT_CONFIG: ULONG = 3;
    /// `ScsiSetRunningConfig`.
    pub const SET_RUNNING_CONFIG: ULONG = 4;
    /// `ScsiAdapterControlSuccess`.
    pub const SUCCESS: ULONG = 0;
    /// `ScsiAdapterControlUnsuccessful`.
    pub const UNSUCCESSFUL: ULONG = 1;
}

/// `SCSI_NOTIFICATION_TYPE` values (`StorPortNotification`).
pub mod notification {
    use crate::types::ULONG;
    /// `RequestComplete`: the port owns the SRB afterwards.
    pub const REQUEST_COMPLETE: ULONG = 0;
    /// `NextRequest`.
    pub const NEXT_REQUEST: ULONG = 1;
    /// `NextLuRequest`.
    pub const NEXT_LU_REQUEST: ULONG = 2;
    /// `ResetDetected`.
    pub const RESET_DETECTED: ULONG = 3;
    /// `RequestTimerCall`.
    pub const REQUEST_TIMER_CALL: ULONG = 6;
    /// `BusChangeDetected`.
    pub const BUS_CHANGE_DETECTED: ULONG = 7;
    /// `AcquireSpinLock` (`StorPortAcquireSpinLock`: `STOR_SPINLOCK`,
    /// `LockContext`, `STOR_LOCK_HANDLE*`).
    pub const ACQUIRE_SPIN_LOCK: ULONG = 0x1003;
    /// `ReleaseSpinLock` (`StorPortReleaseSpinLock`: `STOR_LOCK_HANDLE*`).
    pub const RELEASE_SPIN_LOCK: ULONG = 0x1004;
}

/// `SRB_FUNCTION_*` (srb.h).
pub mod srb_function {
    /// `SRB_FUNCTION_EXECUTE_SCSI`.
    pub const EXECUTE_SCSI: u8 = 0x00;
    /// `SRB_FUNCTION_IO_CONTROL`.
    pub const IO_CONTROL: u8 = 0x02;
    /// `SRB_FUNCTION_SHUTDOWN`.
    pub const SHUTDOWN: u8 = 0x07;
    /// `SRB_FUNCTION_FLUSH`.
    pub const FLUSH: u8 = 0x08;
    /// `SRB_FUNCTION_ABORT_COMMAND`.
    pub const ABORT_COMMAND: u8 = 0x10;
    /// `SRB_FUNCTION_RESET_BUS`.
    pub const RESET_BUS: u8 = 0x12;
    /// `SRB_FUNCTION_RESET_DEVICE`.
    pub const RESET_DEVICE: u8 = 0x13;
    /// `SRB_FUNCTION_WMI`.
    pub const WMI: u8 = 0x17;
    /// `SRB_FUNCTION_RESET_LOGICAL_UNIT`.
    pub const RESET_LOGICAL_UNIT: u8 = 0x20;
    /// `SRB_FUNCTION_POWER`.
    pub const POWER: u8 = 0x24;
    /// `SRB_FUNCTION_PNP`.
    pub const PNP: u8 = 0x25;
}

/// `SRB_STATUS_*` (srb.h).
pub mod srb_status {
    /// `SRB_STATUS_PENDING`: never a legal completion status.
    pub const PENDING: u8 = 0x00;
    /// `SRB_STATUS_SUCCESS`.
    pub const SUCCESS: u8 = 0x01;
    /// `SRB_STATUS_ABORTED`.
    pub const ABORTED: u8 = 0x02;
    /// `SRB_STATUS_ERROR`.
    pub const ERROR: u8 = 0x04;
    /// `SRB_STATUS_BUSY`.
    pub const BUSY: u8 = 0x05;
    /// `SRB_STATUS_INVALID_REQUEST`.
    pub const INVALID_REQUEST: u8 = 0x06;
    /// `SRB_STATUS_INVALID_PATH_ID`.
    pub const INVALID_PATH_ID: u8 = 0x07;
    /// `SRB_STATUS_NO_DEVICE`.
    pub const NO_DEVICE: u8 = 0x08;
    /// `SRB_STATUS_SELECTION_TIMEOUT`.
    pub const SELECTION_TIMEOUT: u8 = 0x0A;
    /// `SRB_STATUS_BUS_RESET`.
    pub const BUS_RESET: u8 = 0x0E;
    /// `SRB_STATUS_DATA_OVERRUN` (also reported for underruns).
    pub const DATA_OVERRUN: u8 = 0x12;
    /// `SRB_STATUS_INVALID_LUN`.
    pub const INVALID_LUN: u8 = 0x20;
    /// `SRB_STATUS_INVALID_TARGET_ID`.
    pub const INVALID_TARGET_ID: u8 = 0x21;
    /// `SRB_STATUS_BAD_FUNCTION`.
    pub const BAD_FUNCTION: u8 = 0x22;
    /// `SRB_STATUS_INTERNAL_ERROR`.
    pub const INTERNAL_ERROR: u8 = 0x30;
    /// `SRB_STATUS_QUEUE_FROZEN` flag bit.
    pub const QUEUE_FROZEN: u8 = 0x40;
    /// `SRB_STATUS_AUTOSENSE_VALID` flag bit.
    pub const AUTOSENSE_VALID: u8 = 0x80;
}

/// `SRB_FLAGS_*` (srb.h).
pub mod srb_flags {
    use crate::types::ULONG;
    /// `SRB_FLAGS_DISABLE_AUTOSENSE`.
    pub const DISABLE_AUTOSENSE: ULONG = 0x0000_0020;
    /// `SRB_FLAGS_DATA_IN`.
    pub const DATA_IN: ULONG = 0x0000_0040;
    /// `SRB_FLAGS_DATA_OUT`.
    pub const DATA_OUT: ULONG = 0x0000_0080;
    /// `SRB_FLAGS_NO_DATA_TRANSFER`.
    pub const NO_DATA_TRANSFER: ULONG = 0x0000_0000;
}

/// SCSI status bytes (scsi.h).
pub mod scsi_status {
    /// `SCSISTAT_GOOD`.
    pub const GOOD: u8 = 0x00;
    /// `SCSISTAT_CHECK_CONDITION`.
    pub const CHECK_CONDITION: u8 = 0x02;
    /// `SCSISTAT_BUSY`.
    pub const BUSY: u8 = 0x08;
}

/// `MINIPORT_REG_SZ`: string, converted to ANSI on read and to Unicode on write.
pub const MINIPORT_REG_SZ: ULONG = 1;
/// `MINIPORT_REG_BINARY`.
pub const MINIPORT_REG_BINARY: ULONG = 3;
/// `MINIPORT_REG_DWORD`.
pub const MINIPORT_REG_DWORD: ULONG = 4;
/// `MINIPORT_REG_MULTI_SZ`.
pub const MINIPORT_REG_MULTI_SZ: ULONG = 7;
/// `REG_QWORD`: storport.h defines no `MINIPORT_REG_QWORD`; the miniport
/// types share the `REG_*` numbering, so this is `REG_QWORD`'s number.
pub const MINIPORT_REG_QWORD: ULONG = 11;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

/// `POOL_FLAG_NON_PAGED` (`ExAllocatePool2`).
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x0000_0000_0000_0040;
/// `POOL_FLAG_UNINITIALIZED`: the pool does not zero the allocation.
pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x0000_0000_0000_0002;

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32.cast_signed();
/// `STATUS_REVISION_MISMATCH`: returned by `StorPortInitialize` for a bad
/// `HwInitializationDataSize`.
pub const STATUS_REVISION_MISMATCH: NTSTATUS = 0xC000_0059_u32.cast_signed();
/// `STATUS_NO_MEMORY`.
pub const STATUS_NO_MEMORY: NTSTATUS = 0xC000_0017_u32.cast_signed();
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32.cast_signed();

/// `DRIVER_VERIFIER_DETECTED_VIOLATION` bug check.
pub const BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION: ULONG = 0xC4;
/// `SCSI_VERIFIER_DETECTED_VIOLATION` bug check (Storport verification).
pub const BUGCHECK_SCSI_VERIFIER_DETECTED_VIOLATION: ULONG = 0xF1;

/// The bits of `STOR_DEVICE_CAPABILITIES_EX::Flags`.
///
/// storport.h declares them as one-bit `ULONG` bit fields in this order from
/// bit 0, followed by `Reserved0:20` ("`STOR_DEVICE_CAPABILITIES_EX`
/// structure (storport.h)").
pub mod stor_device_capability {
    use crate::types::ULONG;
    /// `DeviceD1`.
    pub const DEVICE_D1: ULONG = 1 << 0;
    /// `DeviceD2`.
    pub const DEVICE_D2: ULONG = 1 << 1;
    /// `LockSupported`.
    pub const LOCK_SUPPORTED: ULONG = 1 << 2;
    /// `EjectSupported`.
    pub const EJECT_SUPPORTED: ULONG = 1 << 3;
    /// `Removable`.
    pub const REMOVABLE: ULONG = 1 << 4;
    /// `DockDevice`.
    pub const DOCK_DEVICE: ULONG = 1 << 5;
    /// `UniqueID`.
    pub const UNIQUE_ID: ULONG = 1 << 6;
    /// `SilentInstall`.
    pub const SILENT_INSTALL: ULONG = 1 << 7;
    /// `RawDeviceOK`.
    pub const RAW_DEVICE_OK: ULONG = 1 << 8;
    /// `SurpriseRemovalOK`.
    pub const SURPRISE_REMOVAL_OK: ULONG = 1 << 9;
    /// `NoDisplayInUI`.
    pub const NO_DISPLAY_IN_UI: ULONG = 1 << 10;
    /// `DefaultWriteCacheEnabled`.
    pub const DEFAULT_WRITE_CACHE_ENABLED: ULONG = 1 << 11;
    /// `Reserved0`: the 20 bits left.
    pub const RESERVED0: ULONG = 0xFFFF_F000;
}

/// `STOR_PNP_ACTION` values (srb.h; "`SCSI_PNP_REQUEST_BLOCK` structure
/// (srb.h)", "`STOR_PNP_ACTION` enumeration").
pub mod stor_pnp_action {
    use crate::types::STOR_PNP_ACTION;
    /// `StorStartDevice`.
    pub const START_DEVICE: STOR_PNP_ACTION = 0x00;
    /// `StorRemoveDevice`.
    pub const REMOVE_DEVICE: STOR_PNP_ACTION = 0x02;
    /// `StorStopDevice`.
    pub const STOP_DEVICE: STOR_PNP_ACTION = 0x04;
    /// `StorQueryCapabilities`.
    pub const QUERY_CAPABILITIES: STOR_PNP_ACTION = 0x09;
    /// `StorQueryResourceRequirements`.
    pub const QUERY_RESOURCE_REQUIREMENTS: STOR_PNP_ACTION = 0x0B;
    /// `StorFilterResourceRequirements`.
    pub const FILTER_RESOURCE_REQUIREMENTS: STOR_PNP_ACTION = 0x0D;
    /// `StorSurpriseRemoval` (Windows 7 and later).
    pub const SURPRISE_REMOVAL: STOR_PNP_ACTION = 0x17;
}

/// `STOR_DEVICE_POWER_STATE` values (srb.h, "`STOR_DEVICE_POWER_STATE`
/// enumeration").
pub mod stor_device_power_state {
    use crate::types::STOR_DEVICE_POWER_STATE;
    /// `StorPowerDeviceUnspecified`.
    pub const UNSPECIFIED: STOR_DEVICE_POWER_STATE = 0;
    /// `StorPowerDeviceD0`.
    pub const D0: STOR_DEVICE_POWER_STATE = 1;
    /// `StorPowerDeviceD1`.
    pub const D1: STOR_DEVICE_POWER_STATE = 2;
    /// `StorPowerDeviceD2`.
    pub const D2: STOR_DEVICE_POWER_STATE = 3;
    /// `StorPowerDeviceD3`.
    pub const D3: STOR_DEVICE_POWER_STATE = 4;
}

/// `STOR_POWER_ACTION` values (srb.h, "`STOR_POWER_ACTION` enumeration").
pub mod stor_power_action {
    use crate::types::STOR_POWER_ACTION;
    /// `StorPowerActionNone`.
    pub const NONE: STOR_POWER_ACTION = 0;
    /// `StorPowerActionReserved`.
    pub const RESERVED: STOR_POWER_ACTION = 1;
    /// `StorPowerActionSleep`.
    pub const SLEEP: STOR_POWER_ACTION = 2;
    /// `StorPowerActionHibernate`.
    pub const HIBERNATE: STOR_POWER_ACTION = 3;
    /// `StorPowerActionShutdown`.
    pub const SHUTDOWN: STOR_POWER_ACTION = 4;
    /// `StorPowerActionShutdownReset`.
    pub const SHUTDOWN_RESET: STOR_POWER_ACTION = 5;
    /// `StorPowerActionShutdownOff`.
    pub const SHUTDOWN_OFF: STOR_POWER_ACTION = 6;
    /// `StorPowerActionWarmEject`.
    pub const WARM_EJECT: STOR_POWER_ACTION = 7;
}

/// `SRB_PNP_FLAGS_ADAPTER_REQUEST` (`SCSI_PNP_REQUEST_BLOCK.SrbPnPFlags`).
pub const SRB_PNP_FLAGS_ADAPTER_REQUEST: ULONG = 0x01;
/// `SRB_POWER_FLAGS_ADAPTER_REQUEST` (`SCSI_POWER_REQUEST_BLOCK.SrbPowerFlags`).
pub const SRB_POWER_FLAGS_ADAPTER_REQUEST: u8 = 0x01;
/// `SRB_WMI_FLAGS_ADAPTER_REQUEST` (`SCSI_WMI_REQUEST_BLOCK.WMIFlags`).
pub const SRB_WMI_FLAGS_ADAPTER_REQUEST: u8 = 0x01;

/// `STOR_DEVICE_CAPABILITIES_EX_VERSION_1`.
pub const STOR_DEVICE_CAPABILITIES_EX_VERSION_1: u16 = 0x1;

/// `IRP_MN_REGINFO_EX` (wdm.h): the WMI minor function that asks a data
/// provider for its registration information.
pub const IRP_MN_REGINFO_EX: u8 = 0x0B;
/// `WMIREGISTER` (wmistr.h): the `DataPath` of a first `IRP_MN_REGINFO_EX`.
pub const WMIREGISTER: usize = 0;

/// `STOR_SPINLOCK` values (storport.h) `StorPortAcquireSpinLock` takes.
pub mod stor_spinlock {
    use crate::types::STOR_SPINLOCK;
    /// `DpcLock`: the lock of the `STOR_DPC` passed as `LockContext`.
    pub const DPC_LOCK: STOR_SPINLOCK = 1;
    /// `StartIoLock`.
    pub const START_IO_LOCK: STOR_SPINLOCK = 2;
    /// `InterruptLock`.
    pub const INTERRUPT_LOCK: STOR_SPINLOCK = 3;
}
