//! The adapter life cycle: `DriverEntry`, the start (`HwFindAdapter`,
//! `HwInitialize`, the supported-control-type query), adapter control
//! (stop, restart, running configuration), removal and unload with the
//! leak checks.

use std::sync::atomic::Ordering;

use storport_sys::{
    HW_INITIALIZATION_DATA, PORT_CONFIGURATION_INFORMATION, SCSI_SUPPORTED_CONTROL_TYPE_LIST,
    adapter_control,
};

use crate::port::context::Routine;
use crate::port::model::{DIRQL, STATUS_SUCCESS};
use crate::port::rules::Rule;
use crate::port::srb::GUARD_FILL;
use crate::port::state::lock;

use super::{
    AdapterMemory, CONTROL_LIST_GUARD, Phase, Port, PortError, SP_UNINITIALIZED_VALUE, bool_result,
};

impl Port {
    /// Calls `DriverEntry(DriverObject, RegistryPath)` at PASSIVE_LEVEL.
    ///
    /// # Errors
    ///
    /// [`PortError::DriverEntryFailed`] for a failure status, or a bug check.
    pub fn driver_entry(&self) -> Result<(), PortError> {
        self.log("DriverEntry");
        let rax = self.call(
            Routine::DriverEntry,
            0,
            self.entry,
            &[
                self.driver_object.as_ptr() as u64,
                self.registry_path.as_ptr() as u64,
            ],
        )?;
        let status = (rax & 0xFFFF_FFFF) as u32;
        if status != STATUS_SUCCESS {
            self.log(format!("DriverEntry returned {status:#010x}"));
            return Err(PortError::DriverEntryFailed(status));
        }
        if lock(&self.shared.init).is_none() {
            return Err(PortError::NotRegistered);
        }
        self.set_phase(Phase::Registered);
        Ok(())
    }

    /// PnP start: device extension, HwFindAdapter, HwInitialize, the
    /// passive initialisation routine and ScsiQuerySupportedControlTypes.
    ///
    /// # Errors
    ///
    /// When find-adapter or initialise fails, or the driver bug-checks.
    pub fn start(&self) -> Result<(), PortError> {
        self.require(&[Phase::Registered])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let units = (init.DeviceExtensionSize as usize).div_ceil(16).max(1);
        let mut memory = AdapterMemory {
            extension: vec![0_u128; units].into_boxed_slice(),
            config: Box::new(default_config(&init)),
        };
        let extension = memory.extension.as_mut_ptr() as u64;
        let config_address = std::ptr::from_mut(&mut *memory.config) as u64;
        self.shared
            .device_extension
            .store(extension as usize, Ordering::Release);
        // INVARIANT: the memory is stored before the miniport sees it and
        // lives until `remove`.
        *lock(&self.memory) = Some(memory);
        self.find_and_initialize(&init, extension, config_address, &|| {})
    }

    /// HwFindAdapter on `extension` with the ConfigInfo at `config_address`,
    /// then `after_find` (when find-adapter succeeded), HwInitialize, the
    /// passive initialisation routine and ScsiQuerySupportedControlTypes.
    pub(super) fn find_and_initialize(
        &self,
        init: &HW_INITIALIZATION_DATA,
        extension: u64,
        config_address: u64,
        after_find: &dyn Fn(),
    ) -> Result<(), PortError> {
        let mut again = Box::new(0_u8);
        let argument_string = Box::new(0_u8);
        self.log("HwFindAdapter (PASSIVE_LEVEL)");
        let find = init.HwFindAdapter.map_or(0, |f| f as *const () as usize);
        let found = self.call(
            Routine::FindAdapter,
            0,
            find,
            &[
                extension,
                0,
                0,
                0,
                std::ptr::from_ref(&*argument_string) as u64,
                config_address,
                std::ptr::from_mut(&mut *again) as u64,
            ],
        )?;
        let found = (found & 0xFFFF_FFFF) as u32;
        let config = self.config().ok_or(PortError::NotStarted)?;
        if found != storport_sys::SP_RETURN_FOUND {
            self.shared.violation(
                Rule::AdapterStartFailed,
                Routine::FindAdapter,
                vec![u64::from(found)],
                format!("HwFindAdapter returned {found} instead of SP_RETURN_FOUND (1); the adapter does not start."),
            );
            self.check_registry_buffer(Routine::FindAdapter);
            return Err(PortError::FindAdapterFailed(found));
        }
        self.check_find_adapter(&config);
        after_find();

        self.log("HwInitialize (DIRQL)");
        let initialize = init.HwInitialize.map_or(0, |f| f as *const () as usize);
        if !bool_result(self.call(Routine::Initialize, DIRQL, initialize, &[extension])?) {
            self.shared.violation(
                Rule::AdapterStartFailed,
                Routine::Initialize,
                vec![],
                "HwInitialize returned FALSE; the adapter does not start.".to_owned(),
            );
            return Err(PortError::InitializeFailed);
        }
        let passive = lock(&self.shared.passive_init).take();
        if let Some(routine) = passive {
            self.log("HwPassiveInitializeRoutine (PASSIVE_LEVEL)");
            if !bool_result(self.call(Routine::Initialize, 0, routine, &[extension])?) {
                self.shared.violation(
                    Rule::AdapterStartFailed,
                    Routine::Initialize,
                    vec![],
                    "HwPassiveInitializeRoutine returned FALSE; the adapter does not start."
                        .to_owned(),
                );
                return Err(PortError::InitializeFailed);
            }
        }
        self.set_phase(Phase::Started);
        self.query_supported_control_types()?;
        Ok(())
    }

    pub(super) fn query_supported_control_types(&self) -> Result<(), PortError> {
        let Some(control) = self.init_data().and_then(|i| i.HwAdapterControl) else {
            self.log("no HwAdapterControl: Stop and Restart are not supported");
            return Ok(());
        };
        // The 4-byte header (ULONG MaxControlType; storport.h's
        // `BOOLEAN SupportedTypeList[0]` adds nothing), then the BOOLEAN list
        // of MaxControlType entries, then guard bytes.
        let max_control_type = self.options.max_control_type;
        let list_start = SCSI_SUPPORTED_CONTROL_TYPE_LIST::LIST_OFFSET;
        let list_bytes = list_start + max_control_type as usize;
        let mut buffer = vec![0_u8; list_bytes + CONTROL_LIST_GUARD].into_boxed_slice();
        buffer[..size_of::<u32>()].copy_from_slice(&max_control_type.to_le_bytes());
        buffer[list_bytes..].fill(GUARD_FILL);
        self.log("HwAdapterControl(ScsiQuerySupportedControlTypes) (PASSIVE_LEVEL)");
        let _ = self.call(
            Routine::AdapterControl,
            0,
            control as *const () as usize,
            &[
                self.extension(),
                u64::from(adapter_control::QUERY_SUPPORTED_CONTROL_TYPES),
                buffer.as_mut_ptr() as u64,
            ],
        )?;
        if let Some(offset) = buffer[list_bytes..].iter().position(|&b| b != GUARD_FILL) {
            self.shared.violation(
                Rule::SupportedTypeListOverrun,
                Routine::AdapterControl,
                vec![u64::from(max_control_type), (max_control_type as usize + offset) as u64],
                format!(
                    "ScsiQuerySupportedControlTypes wrote SupportedTypeList[{}], past the {} entries MaxControlType allows.",
                    max_control_type as usize + offset,
                    max_control_type
                ),
            );
        }
        let supported: Vec<usize> = buffer[list_start..list_bytes]
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .map(|(i, _)| i)
            .collect();
        self.log(format!("supported adapter control types: {supported:?}"));
        *lock(&self.supported_controls) = supported
            .iter()
            .filter_map(|&t| u32::try_from(t).ok())
            .collect();
        Ok(())
    }

    /// Calls `HwAdapterControl(control_type, parameters)` at the IRQL
    /// Storport uses for that type; returns `SCSI_ADAPTER_CONTROL_STATUS`.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn adapter_control(&self, control_type: u32, parameters: u64) -> Result<u32, PortError> {
        self.require(&[Phase::Started, Phase::Stopped])?;
        let Some(control) = self.init_data().and_then(|i| i.HwAdapterControl) else {
            return Ok(adapter_control::UNSUCCESSFUL);
        };
        let irql = match control_type {
            adapter_control::STOP_ADAPTER | adapter_control::RESTART_ADAPTER => DIRQL,
            _ => 0,
        };
        let rax = self.call(
            Routine::AdapterControl,
            irql,
            control as *const () as usize,
            &[self.extension(), u64::from(control_type), parameters],
        )?;
        Ok((rax & 0xFFFF_FFFF) as u32)
    }

    /// ScsiStopAdapter (DIRQL).
    ///
    /// # Errors
    ///
    /// As [`Self::adapter_control`].
    pub fn stop(&self) -> Result<u32, PortError> {
        self.log("HwAdapterControl(ScsiStopAdapter) (DIRQL)");
        let status = self.adapter_control(adapter_control::STOP_ADAPTER, 0)?;
        self.set_phase(Phase::Stopped);
        Ok(status)
    }

    /// ScsiRestartAdapter (DIRQL).
    ///
    /// # Errors
    ///
    /// As [`Self::adapter_control`].
    pub fn restart(&self) -> Result<u32, PortError> {
        self.log("HwAdapterControl(ScsiRestartAdapter) (DIRQL)");
        let status = self.adapter_control(adapter_control::RESTART_ADAPTER, 0)?;
        self.set_phase(Phase::Started);
        Ok(status)
    }

    /// ScsiSetRunningConfig (PASSIVE_LEVEL).
    ///
    /// # Errors
    ///
    /// As [`Self::adapter_control`].
    pub fn set_running_config(&self) -> Result<u32, PortError> {
        self.log("HwAdapterControl(ScsiSetRunningConfig) (PASSIVE_LEVEL)");
        let status = self.adapter_control(adapter_control::SET_RUNNING_CONFIG, 0)?;
        self.check_registry_buffer(Routine::AdapterControl);
        Ok(status)
    }

    /// Surprise-free removal: HwFreeAdapterResources, then the checks that
    /// run when the adapter is gone (registry buffer released).
    ///
    /// # Errors
    ///
    /// When the driver bug-checks.
    pub fn remove(&self) -> Result<(), PortError> {
        let phase = *lock(&self.phase);
        if !matches!(phase, Phase::Started | Phase::Stopped) {
            return Ok(());
        }
        let free = self
            .init_data()
            .and_then(|i| i.HwFreeAdapterResources)
            .map_or(0, |f| f as *const () as usize);
        self.log("HwFreeAdapterResources (PASSIVE_LEVEL)");
        let _ = self.call(Routine::FreeAdapterResources, 0, free, &[self.extension()])?;
        self.check_registry_buffer(Routine::FreeAdapterResources);
        self.set_phase(Phase::Removed);
        Ok(())
    }

    /// Unload: reports pool the driver never freed.
    pub fn unload(&self) {
        if *lock(&self.phase) == Phase::Unloaded {
            return;
        }
        self.log("unload");
        // After a bug check the machine is dead: what the driver still holds
        // is not a leak it could have avoided.
        let live = if self.bugchecked() {
            Vec::new()
        } else {
            lock(&self.shared.pool).live()
        };
        for (address, block) in live {
            self.shared.violation(
                Rule::PoolLeak,
                Routine::Port,
                vec![address as u64, block.size_bytes as u64, u64::from(block.tag)],
                format!(
                    "{} bytes of pool with tag '{}' allocated in {} at {address:#x} were not freed before unload.",
                    block.size_bytes,
                    crate::port::pool::tag_text(block.tag),
                    block.routine
                ),
            );
        }
        self.set_phase(Phase::Unloaded);
    }
}

/// The ConfigInfo Storport hands HwFindAdapter: the documented defaults and
/// what the init data declared.
pub(super) fn default_config(init: &HW_INITIALIZATION_DATA) -> PORT_CONFIGURATION_INFORMATION {
    // SAFETY: PORT_CONFIGURATION_INFORMATION is plain data for which
    // all-zero bytes are a valid value (null pointers, zero counts).
    let mut config = unsafe { std::mem::zeroed::<PORT_CONFIGURATION_INFORMATION>() };
    config.Length = u32::try_from(size_of::<PORT_CONFIGURATION_INFORMATION>()).unwrap_or(0xE0);
    config.AdapterInterfaceType = init.AdapterInterfaceType;
    config.MaximumTransferLength = SP_UNINITIALIZED_VALUE;
    config.NumberOfPhysicalBreaks = SP_UNINITIALIZED_VALUE;
    config.NumberOfAccessRanges = init.NumberOfAccessRanges;
    config.NumberOfBuses = 1;
    config.InitiatorBusId = [-1; 8];
    config.MapBuffers = init.MapBuffers;
    config.NeedPhysicalAddresses = init.NeedPhysicalAddresses;
    config.TaggedQueuing = init.TaggedQueuing;
    config.AutoRequestSense = init.AutoRequestSense;
    config.MultipleRequestPerLu = init.MultipleRequestPerLu;
    config.ReceiveEvent = init.ReceiveEvent;
    config.MaximumNumberOfTargets = 128;
    config.MaximumNumberOfLogicalUnits = 8;
    config.DeviceExtensionSize = init.DeviceExtensionSize;
    config.SpecificLuExtensionSize = init.SpecificLuExtensionSize;
    config.SrbExtensionSize = init.SrbExtensionSize;
    config.Dma64BitAddresses = 0;
    config
}
