//! The rule checks the port makes on what the miniport hands back during
//! the start: the configuration `HwFindAdapter` filled in, and registry
//! buffers left allocated by a routine.

use storport_sys::PORT_CONFIGURATION_INFORMATION;

use crate::port::context::Routine;
use crate::port::rules::Rule;
use crate::port::state::lock;

use super::{Port, SP_UNINITIALIZED_VALUE};

impl Port {
    pub(super) fn check_find_adapter(&self, config: &PORT_CONFIGURATION_INFORMATION) {
        if config.VirtualDevice == 0 {
            self.shared.violation(
                Rule::VirtualDevice,
                Routine::FindAdapter,
                vec![],
                "HwFindAdapter returned with ConfigInfo->VirtualDevice FALSE; a virtual miniport must set it to TRUE.".to_owned(),
            );
        }
        let unset = |v: u32| v == SP_UNINITIALIZED_VALUE || v == 0;
        if unset(config.MaximumTransferLength) || unset(config.NumberOfPhysicalBreaks) {
            self.shared.violation(
                Rule::FindAdapterLimits,
                Routine::FindAdapter,
                vec![u64::from(config.MaximumTransferLength), u64::from(config.NumberOfPhysicalBreaks)],
                format!(
                    "HwFindAdapter left MaximumTransferLength = {:#x} and NumberOfPhysicalBreaks = {:#x}; both must be set to the adapter's limits.",
                    config.MaximumTransferLength, config.NumberOfPhysicalBreaks
                ),
            );
        }
        self.log(format!(
            "adapter found: {} bus(es), {} target(s), {} LUN(s) per target, maximum transfer {} bytes",
            config.NumberOfBuses, config.MaximumNumberOfTargets, config.MaximumNumberOfLogicalUnits, config.MaximumTransferLength
        ));
    }

    /// A registry buffer still allocated when the miniport routine that
    /// must have released it returned.
    pub(super) fn check_registry_buffer(&self, routine: Routine) {
        let live = lock(&self.shared.registry).buffer();
        if let Some((address, size)) = live {
            self.shared.violation(
                Rule::RegistryBufferLeak,
                routine,
                vec![address as u64, u64::from(size)],
                format!("The registry buffer {address:#x} ({size} bytes) was never freed with StorPortFreeRegistryBuffer."),
            );
        }
    }
}
