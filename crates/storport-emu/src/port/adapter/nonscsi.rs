//! The requests Storport sends a miniport that are not SCSI commands:
//! `SRB_FUNCTION_PNP`, `SRB_FUNCTION_POWER` and `SRB_FUNCTION_WMI`, each
//! built in its own layout ([`crate::port::layouts`]) and checked on
//! completion for writes to members the layout does not give the miniport
//! (rule `NonScsiSrbWrite`).
//!
//! When Storport sends them (what [`crate::cli`] does with `--non-scsi-srbs`):
//!
//! - `SRB_FUNCTION_PNP`: `StorQueryCapabilities` for a logical unit when
//!   its PDO gets `IRP_MN_QUERY_CAPABILITIES` (after the bus scan),
//!   `StorRemoveDevice` when it is removed, `StorSurpriseRemoval` when it is
//!   surprise-removed ("`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)",
//!   "Handling SRB_FUNCTION_PNP": notifications that need no action).
//! - `SRB_FUNCTION_POWER`: a logical unit's device power transitions
//!   ("`SCSI_POWER_REQUEST_BLOCK` structure (srb.h)").
//! - `SRB_FUNCTION_WMI`: only to a miniport that set
//!   `ConfigInfo->WmiDataProvider` ("`PORT_CONFIGURATION_INFORMATION`
//!   structure (storport.h)", "`SCSI_WMI_REQUEST_BLOCK` structure (srb.h)").

use std::mem::offset_of;

use storport_sys::{
    SCSI_PNP_REQUEST_BLOCK as Pnp, SCSI_POWER_REQUEST_BLOCK as Power,
    SCSI_WMI_REQUEST_BLOCK as Wmi, SRB_PNP_FLAGS_ADAPTER_REQUEST, SRB_POWER_FLAGS_ADAPTER_REQUEST,
    SRB_WMI_FLAGS_ADAPTER_REQUEST, STOR_DEVICE_CAPABILITIES_EX_VERSION_1, stor_pnp_action,
};

use super::{Phase, Port, PortError};
use crate::port::context::Routine;
use crate::port::cpu::Preemptive;
use crate::port::layouts::{self, Change, Context, Layout, SrbBytes};
use crate::port::model::DISPATCH_LEVEL;
use crate::port::rules::Rule;
use crate::port::srb::{self, DataDirection, SrbResult};

/// `sizeof(STOR_DEVICE_CAPABILITIES_EX)`.
const CAPABILITIES_BYTES: usize = size_of::<storport_sys::STOR_DEVICE_CAPABILITIES_EX>();

/// A request that is not a SCSI command, as [`Port::non_scsi`] sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonScsiRequest {
    /// `SRB_FUNCTION_PNP` with a `STOR_PNP_ACTION` and `SrbPnPFlags`.
    Pnp {
        /// `PnPAction` (`storport_sys::stor_pnp_action`).
        action: u32,
        /// `SrbPnPFlags` (`SRB_PNP_FLAGS_ADAPTER_REQUEST` or 0).
        flags: u32,
    },
    /// `SRB_FUNCTION_POWER`.
    Power {
        /// `DevicePowerState` (`storport_sys::stor_device_power_state`).
        state: u32,
        /// `PowerAction` (`storport_sys::stor_power_action`).
        action: u32,
        /// `SrbPowerFlags` (`SRB_POWER_FLAGS_ADAPTER_REQUEST` or 0).
        flags: u8,
    },
    /// `SRB_FUNCTION_WMI`.
    Wmi {
        /// `WMISubFunction`: the WMI minor IRP number.
        subfunction: u8,
        /// `WMIFlags` (`SRB_WMI_FLAGS_ADAPTER_REQUEST` or 0).
        flags: u8,
        /// `DataPath` (for `IRP_MN_REGINFO_EX`: `WMIREGISTER` or `WMIUPDATE`).
        data_path: usize,
        /// Bytes of the WMI buffer (`DataBuffer`, `DataTransferLength`).
        buffer: u32,
    },
}

impl NonScsiRequest {
    /// The request's layout.
    #[must_use]
    pub const fn layout(&self) -> &'static Layout {
        match self {
            Self::Pnp { .. } => &layouts::PNP,
            Self::Power { .. } => &layouts::POWER,
            Self::Wmi { .. } => &layouts::WMI,
        }
    }

    /// Whether the request is for the adapter rather than a logical unit.
    #[must_use]
    pub const fn adapter_request(&self) -> bool {
        match *self {
            Self::Pnp { flags, .. } => flags & SRB_PNP_FLAGS_ADAPTER_REQUEST != 0,
            Self::Power { flags, .. } => flags & SRB_POWER_FLAGS_ADAPTER_REQUEST != 0,
            Self::Wmi { flags, .. } => flags & SRB_WMI_FLAGS_ADAPTER_REQUEST != 0,
        }
    }

    /// The action, power state or WMI minor function (the second parameter
    /// of a `NonScsiSrbWrite` finding).
    #[must_use]
    pub fn code(&self) -> u64 {
        match *self {
            Self::Pnp { action, .. } => u64::from(action),
            Self::Power { state, .. } => u64::from(state),
            Self::Wmi { subfunction, .. } => u64::from(subfunction),
        }
    }

    /// `SRB_FUNCTION_PNP StorQueryCapabilities`, ...
    #[must_use]
    pub fn describe(&self) -> String {
        let function = self.layout().function_name;
        match *self {
            Self::Pnp { action, .. } => {
                format!("{function} {}", layouts::pnp_action_name(action))
            }
            Self::Power { state, action, .. } => format!(
                "{function} {} ({})",
                layouts::power_state_name(state),
                layouts::power_action_name(action)
            ),
            Self::Wmi { subfunction, .. } => {
                format!("{function} (WMI minor function {subfunction:#04x})")
            }
        }
    }

    /// Writes the request's own members (action, state, flags, data path)
    /// into the SRB image.
    fn write_parameters(&self, bytes: &mut SrbBytes) {
        let mut put = |offset: usize, value: &[u8]| {
            bytes[offset..offset + value.len()].copy_from_slice(value);
        };
        match *self {
            Self::Pnp { action, flags } => {
                put(offset_of!(Pnp, PnPAction), &action.to_le_bytes());
                put(offset_of!(Pnp, SrbPnPFlags), &flags.to_le_bytes());
            }
            Self::Power {
                state,
                action,
                flags,
            } => {
                put(offset_of!(Power, SrbPowerFlags), &[flags]);
                put(offset_of!(Power, DevicePowerState), &state.to_le_bytes());
                put(offset_of!(Power, PowerAction), &action.to_le_bytes());
            }
            Self::Wmi {
                subfunction,
                flags,
                data_path,
                ..
            } => {
                put(offset_of!(Wmi, WMISubFunction), &[subfunction]);
                put(offset_of!(Wmi, WMIFlags), &[flags]);
                put(offset_of!(Wmi, DataPath), &data_path.to_le_bytes());
            }
        }
    }
}

impl Port {
    /// Sends `SRB_FUNCTION_PNP` with `action` (`storport_sys::stor_pnp_action`)
    /// and `flags` (`SrbPnPFlags`) to (bus, target, lun), in the
    /// `SCSI_PNP_REQUEST_BLOCK` layout.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn pnp(
        &self,
        address: (u8, u8, u8),
        action: u32,
        flags: u32,
    ) -> Result<SrbResult, PortError> {
        self.non_scsi(address, NonScsiRequest::Pnp { action, flags })
    }

    /// Sends `SRB_FUNCTION_POWER` moving (bus, target, lun) to `state`
    /// (`storport_sys::stor_device_power_state`) for `action`
    /// (`storport_sys::stor_power_action`), in the `SCSI_POWER_REQUEST_BLOCK`
    /// layout.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn power(
        &self,
        address: (u8, u8, u8),
        state: u32,
        action: u32,
        flags: u8,
    ) -> Result<SrbResult, PortError> {
        self.non_scsi(
            address,
            NonScsiRequest::Power {
                state,
                action,
                flags,
            },
        )
    }

    /// Sends `SRB_FUNCTION_WMI` with the WMI minor function `subfunction`,
    /// `flags` (`WMIFlags`), `data_path` and a zeroed buffer of `buffer`
    /// bytes, in the `SCSI_WMI_REQUEST_BLOCK` layout. The result's `data`
    /// holds the buffer up to the `DataTransferLength` the miniport set.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn wmi(
        &self,
        address: (u8, u8, u8),
        subfunction: u8,
        flags: u8,
        data_path: usize,
        buffer: u32,
    ) -> Result<SrbResult, PortError> {
        self.non_scsi(
            address,
            NonScsiRequest::Wmi {
                subfunction,
                flags,
                data_path,
                buffer,
            },
        )
    }

    /// Sends `request` to (bus, target, lun) through HwStartIo in its own
    /// layout, waits for its completion and reports every member the
    /// miniport changed that the layout does not give it
    /// (`NonScsiSrbWrite`). The result has no SCSI status and no sense;
    /// `transferred` and `data` are the buffer's, for the requests that
    /// carry one (WMI; `StorQueryCapabilities` under
    /// [`super::PortOptions::pnp_capabilities_buffer`]), and empty otherwise.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn non_scsi(
        &self,
        address: (u8, u8, u8),
        request: NonScsiRequest,
    ) -> Result<SrbResult, PortError> {
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let layout = request.layout();
        let capabilities = self.options.pnp_capabilities_buffer
            && matches!(
                request,
                NonScsiRequest::Pnp {
                    action: stor_pnp_action::QUERY_CAPABILITIES,
                    ..
                }
            );
        let context = Context {
            adapter_request: request.adapter_request(),
            extension: init.SrbExtensionSize > 0,
            capabilities_buffer: capabilities,
        };
        let buffer = match request {
            NonScsiRequest::Wmi { buffer, .. } => Some(buffer as usize),
            NonScsiRequest::Pnp { .. } if capabilities => Some(CAPABILITIES_BYTES),
            NonScsiRequest::Pnp { .. } | NonScsiRequest::Power { .. } => None,
        };
        let direction = buffer.map_or(DataDirection::None, DataDirection::In);
        let mut slot = srb::build(
            address,
            layout.function,
            &[],
            &direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        if capabilities {
            // STOR_DEVICE_CAPABILITIES_EX: Storport sets Version and Size.
            slot.data[..2].copy_from_slice(&STOR_DEVICE_CAPABILITIES_EX_VERSION_1.to_le_bytes());
            let size = u16::try_from(CAPABILITIES_BYTES).unwrap_or(u16::MAX);
            slot.data[2..4].copy_from_slice(&size.to_le_bytes());
        }
        let mut bytes = layouts::srb_bytes(&slot.srb);
        request.write_parameters(&mut bytes);
        layouts::fill_unused(layout, &context, &mut bytes);
        layouts::set_srb_bytes(&mut slot.srb, &bytes);
        // INVARIANT (SrbSlot): the pointers the miniport is given lead to
        // the slot's own buffers, as `srb::build` set them.
        if buffer.is_some_and(|len| len > 0) {
            slot.srb.DataBuffer = slot.data.as_mut_ptr().cast();
        }
        if context.extension {
            slot.srb.SrbExtension = slot.extension.as_mut_ptr().cast();
        }
        let before = layouts::srb_bytes(&slot.srb);
        self.log(format!(
            "{} to {}:{}:{}{} ({})",
            request.describe(),
            address.0,
            address.1,
            address.2,
            if context.adapter_request {
                ", adapter request"
            } else {
                ""
            },
            layout.name
        ));
        // The TransferLength rule is about a buffer; without one any write
        // to DataTransferLength is the layout rule's.
        let supplied = buffer.map_or(u32::MAX, |len| u32::try_from(len).unwrap_or(u32::MAX));
        let check = |slot: &srb::SrbSlot| {
            self.check_layout(&request, context, address, &before, slot);
        };
        let mut result = self.run_slot_with(
            slot,
            &[],
            buffer,
            &init,
            &super::Completion {
                supplied,
                completed: &check,
            },
            (DISPATCH_LEVEL, Preemptive::No),
        )?;
        result.scsi_status = 0;
        result.sense.clear();
        if buffer.is_none() {
            result.transferred = 0;
        }
        Ok(result)
    }

    /// Reports the members of a completed non-SCSI request that changed
    /// although its layout does not give them to the miniport.
    fn check_layout(
        &self,
        request: &NonScsiRequest,
        context: Context,
        address: (u8, u8, u8),
        before: &SrbBytes,
        slot: &srb::SrbSlot,
    ) {
        let layout = request.layout();
        let after = layouts::srb_bytes(&slot.srb);
        let changes = layouts::changed_members(layout, &context, before, &after);
        if changes.is_empty() {
            return;
        }
        let mut params = vec![u64::from(layout.function), request.code()];
        params.extend(changes.iter().map(|c| c.member.offset as u64));
        let list: Vec<String> = changes.iter().map(Change::describe).collect();
        let given = if matches!(request, NonScsiRequest::Wmi { .. }) || context.capabilities_buffer
        {
            "SrbStatus, DataTransferLength and the contents of DataBuffer"
        } else {
            "SrbStatus"
        };
        self.shared.violation(
            Rule::NonScsiSrbWrite,
            Routine::StartIo,
            params,
            format!(
                "The miniport changed {} of the {} request to {}:{}:{}; {} gives the miniport only {given} to set, so the port ignores what it wrote there.",
                list.join(", "),
                request.describe(),
                address.0,
                address.1,
                address.2,
                layout.name
            ),
        );
    }
}
