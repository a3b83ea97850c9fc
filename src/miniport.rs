//! Registration with Storport and the adapter callbacks.

use core::ffi::c_void;

use storport_sys::{
    DRIVER_OBJECT, HW_INITIALIZATION_DATA, INTERFACE_TYPE_INTERNAL, NTSTATUS,
    PORT_CONFIGURATION_INFORMATION, SCSI_REQUEST_BLOCK, SCSI_SUPPORTED_CONTROL_TYPE_LIST,
    SP_RETURN_FOUND, STOR_FEATURE_VIRTUAL_MINIPORT, STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE,
    UNICODE_STRING, adapter_control, notification, srb_status,
};

/// Largest transfer vstor accepts in one SRB, in bytes.
const MAX_TRANSFER_BYTES: u32 = 1024 * 1024;

/// Registers vstor with Storport as a virtual miniport.
///
/// # Safety
///
/// Must be called once, from `DriverEntry`, with the kernel's driver object
/// and registry path.
pub unsafe fn driver_entry(
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    let mut init = HW_INITIALIZATION_DATA {
        HwInitializationDataSize: u32::try_from(core::mem::size_of::<HW_INITIALIZATION_DATA>())
            .unwrap_or(u32::MAX),
        AdapterInterfaceType: INTERFACE_TYPE_INTERNAL,
        HwInitialize: Some(hw_initialize),
        HwStartIo: Some(hw_start_io),
        HwInterrupt: None,
        HwFindAdapter: Some(hw_find_adapter),
        HwResetBus: Some(hw_reset_bus),
        HwDmaStarted: None,
        HwAdapterState: None,
        DeviceExtensionSize: 64,
        SpecificLuExtensionSize: 0,
        SrbExtensionSize: 0,
        NumberOfAccessRanges: 0,
        Reserved: core::ptr::null_mut(),
        MapBuffers: STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE,
        NeedPhysicalAddresses: 0,
        TaggedQueuing: 1,
        AutoRequestSense: 1,
        MultipleRequestPerLu: 1,
        ReceiveEvent: 0,
        VendorIdLength: 0,
        VendorId: core::ptr::null_mut(),
        PortVersionFlags: 0,
        DeviceIdLength: 0,
        DeviceId: core::ptr::null_mut(),
        HwAdapterControl: Some(hw_adapter_control),
        HwBuildIo: None,
        HwFreeAdapterResources: Some(hw_free_adapter_resources),
        HwProcessServiceRequest: None,
        HwCompleteServiceIrp: None,
        HwInitializeTracing: None,
        HwCleanupTracing: None,
        HwTracingEnabled: None,
        FeatureSupport: STOR_FEATURE_VIRTUAL_MINIPORT,
        SrbTypeFlags: 0,
        AddressTypeFlags: 0,
        Reserved1: 0,
        HwUnitControl: None,
    };
    // SAFETY: the arguments are the kernel's own, and `init` is a complete
    // HW_INITIALIZATION_DATA that Storport copies before returning.
    let status = unsafe {
        storport_sys::StorPortInitialize(
            driver_object,
            registry_path,
            &raw mut init,
            core::ptr::null_mut(),
        )
    };
    status.cast_signed()
}

unsafe extern "win64" fn hw_find_adapter(
    _device_extension: *mut c_void,
    _hw_context: *mut c_void,
    _bus_information: *mut c_void,
    _lower_device: *mut c_void,
    _argument_string: *mut i8,
    config_info: *mut PORT_CONFIGURATION_INFORMATION,
    _again: *mut u8,
) -> u32 {
    // SAFETY: Storport passes a valid, exclusively owned ConfigInfo for the
    // duration of HwFindAdapter.
    let config = unsafe { &mut *config_info };
    config.VirtualDevice = 1;
    config.MaximumTransferLength = MAX_TRANSFER_BYTES;
    config.NumberOfPhysicalBreaks = MAX_TRANSFER_BYTES / 4096 + 1;
    config.AlignmentMask = 0;
    config.NumberOfBuses = 1;
    config.MaximumNumberOfTargets = 1;
    config.MaximumNumberOfLogicalUnits = 1;
    config.ScatterGather = 1;
    config.Master = 1;
    config.CachesData = 0;
    config.MapBuffers = STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE;
    SP_RETURN_FOUND
}

const unsafe extern "win64" fn hw_initialize(_device_extension: *mut c_void) -> u8 {
    1
}

unsafe extern "win64" fn hw_start_io(
    device_extension: *mut c_void,
    srb: *mut SCSI_REQUEST_BLOCK,
) -> u8 {
    // SAFETY: Storport hands the miniport a valid SRB it owns until completion.
    unsafe { (*srb).SrbStatus = srb_status::NO_DEVICE };
    // SAFETY: completing an SRB Storport gave to this adapter, once.
    unsafe {
        storport_sys::StorPortNotification(
            notification::REQUEST_COMPLETE,
            device_extension,
            srb.cast::<c_void>(),
        );
    }
    1
}

const unsafe extern "win64" fn hw_reset_bus(_device_extension: *mut c_void, _path_id: u32) -> u8 {
    1
}

unsafe extern "win64" fn hw_adapter_control(
    _device_extension: *mut c_void,
    control_type: u32,
    parameters: *mut c_void,
) -> u32 {
    if control_type == adapter_control::QUERY_SUPPORTED_CONTROL_TYPES {
        let list = parameters.cast::<SCSI_SUPPORTED_CONTROL_TYPE_LIST>();
        // SAFETY: for this control type Parameters is the port's list.
        let max = unsafe { (*list).MaxControlType };
        for supported in [
            adapter_control::QUERY_SUPPORTED_CONTROL_TYPES,
            adapter_control::STOP_ADAPTER,
            adapter_control::RESTART_ADAPTER,
        ] {
            if supported < max {
                // SAFETY: `list` is the port's list for this control type.
                let entries = unsafe { &raw mut (*list).SupportedTypeList }.cast::<u8>();
                // SAFETY: the list has MaxControlType entries and `supported` is below it.
                let entry = unsafe { entries.add(supported as usize) };
                // SAFETY: `entry` is inside the list.
                unsafe { entry.write(1) };
            }
        }
    }
    adapter_control::SUCCESS
}

const unsafe extern "win64" fn hw_free_adapter_resources(_device_extension: *mut c_void) {}
