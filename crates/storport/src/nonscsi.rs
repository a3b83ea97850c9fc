//! The views of requests that are not SCSI commands: [`PnpSrb`],
//! [`PowerSrb`], [`WmiSrb`] and [`OtherSrb`].
//!
//! Each reads only the members its page gives the miniport and completes
//! with `SrbStatus` alone; see [`crate::StartIoRequest`] for why.

use core::fmt;

use storport_sys::{
    SCSI_PNP_REQUEST_BLOCK, SCSI_POWER_REQUEST_BLOCK, SCSI_REQUEST_BLOCK, SCSI_WMI_REQUEST_BLOCK,
    SRB_PNP_FLAGS_ADAPTER_REQUEST, SRB_POWER_FLAGS_ADAPTER_REQUEST, SRB_WMI_FLAGS_ADAPTER_REQUEST,
    stor_device_power_state, stor_pnp_action, stor_power_action,
};

use crate::request::{Addressee, Pending};
use crate::srb::{SrbFunction, SrbStatus};

/// The unit at `PathId`, `TargetId`, `Lun` of `raw`, or the adapter when
/// `adapter_request` is set, in which case the address members are not read
/// (the pages tell the miniport to ignore them).
macro_rules! addressee {
    ($raw:expr, $adapter_request:expr) => {{
        let raw = $raw;
        if $adapter_request {
            Addressee::Adapter
        } else {
            Addressee::Unit {
                path_id: raw.PathId,
                target_id: raw.TargetId,
                lun: raw.Lun,
            }
        }
    }};
}

/// `STOR_PNP_ACTION`: what is happening to the device
/// ("`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PnpAction {
    /// `StorStartDevice`.
    StartDevice,
    /// `StorRemoveDevice`.
    RemoveDevice,
    /// `StorStopDevice`.
    StopDevice,
    /// `StorQueryCapabilities`.
    QueryCapabilities,
    /// `StorQueryResourceRequirements`.
    QueryResourceRequirements,
    /// `StorFilterResourceRequirements`.
    FilterResourceRequirements,
    /// `StorSurpriseRemoval`.
    SurpriseRemoval,
    /// Any other value.
    Other(u32),
}

impl PnpAction {
    /// Decodes `PnPAction`.
    #[must_use]
    pub const fn from_raw(action: u32) -> Self {
        match action {
            stor_pnp_action::START_DEVICE => Self::StartDevice,
            stor_pnp_action::REMOVE_DEVICE => Self::RemoveDevice,
            stor_pnp_action::STOP_DEVICE => Self::StopDevice,
            stor_pnp_action::QUERY_CAPABILITIES => Self::QueryCapabilities,
            stor_pnp_action::QUERY_RESOURCE_REQUIREMENTS => Self::QueryResourceRequirements,
            stor_pnp_action::FILTER_RESOURCE_REQUIREMENTS => Self::FilterResourceRequirements,
            stor_pnp_action::SURPRISE_REMOVAL => Self::SurpriseRemoval,
            other => Self::Other(other),
        }
    }
}

/// `STOR_DEVICE_POWER_STATE`: the state a device moves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DevicePowerState {
    /// `StorPowerDeviceUnspecified`.
    Unspecified,
    /// `StorPowerDeviceD0`: working.
    D0,
    /// `StorPowerDeviceD1`.
    D1,
    /// `StorPowerDeviceD2`.
    D2,
    /// `StorPowerDeviceD3`: off.
    D3,
    /// Any other value.
    Other(u32),
}

impl DevicePowerState {
    /// Decodes `DevicePowerState`.
    #[must_use]
    pub const fn from_raw(state: u32) -> Self {
        match state {
            stor_device_power_state::UNSPECIFIED => Self::Unspecified,
            stor_device_power_state::D0 => Self::D0,
            stor_device_power_state::D1 => Self::D1,
            stor_device_power_state::D2 => Self::D2,
            stor_device_power_state::D3 => Self::D3,
            other => Self::Other(other),
        }
    }
}

/// `STOR_POWER_ACTION`: why the power state changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerAction {
    /// `StorPowerActionNone`.
    None,
    /// `StorPowerActionSleep`.
    Sleep,
    /// `StorPowerActionHibernate`.
    Hibernate,
    /// `StorPowerActionShutdown`.
    Shutdown,
    /// `StorPowerActionShutdownReset`.
    ShutdownReset,
    /// `StorPowerActionShutdownOff`.
    ShutdownOff,
    /// `StorPowerActionWarmEject`.
    WarmEject,
    /// Any other value, `StorPowerActionReserved` included.
    Other(u32),
}

impl PowerAction {
    /// Decodes `PowerAction`.
    #[must_use]
    pub const fn from_raw(action: u32) -> Self {
        match action {
            stor_power_action::NONE => Self::None,
            stor_power_action::SLEEP => Self::Sleep,
            stor_power_action::HIBERNATE => Self::Hibernate,
            stor_power_action::SHUTDOWN => Self::Shutdown,
            stor_power_action::SHUTDOWN_RESET => Self::ShutdownReset,
            stor_power_action::SHUTDOWN_OFF => Self::ShutdownOff,
            stor_power_action::WARM_EJECT => Self::WarmEject,
            other => Self::Other(other),
        }
    }
}

/// An `SRB_FUNCTION_PNP` request: the action and who it is for.
///
/// "`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)" tells the miniport to
/// ignore `PnPSubFunction`, `SrbFlags`, `DataTransferLength`, `DataBuffer`,
/// `SenseInfoBuffer`, `NextSrb` and `OriginalRequest`, and to set only
/// `SrbStatus`, so this view has nothing else.
#[must_use = "a request must be completed; dropping it completes it with SRB_STATUS_INTERNAL_ERROR"]
pub struct PnpSrb<'a> {
    pending: Pending<'a>,
}

impl<'a> PnpSrb<'a> {
    pub(crate) const fn new(pending: Pending<'a>) -> Self {
        Self { pending }
    }

    const fn raw(&self) -> &SCSI_PNP_REQUEST_BLOCK {
        self.pending.layout()
    }

    /// `PnPAction`.
    #[must_use]
    pub const fn action(&self) -> PnpAction {
        PnpAction::from_raw(self.raw().PnPAction)
    }

    /// The adapter (`SRB_PNP_FLAGS_ADAPTER_REQUEST` in `SrbPnPFlags`) or
    /// the unit at `PathId`, `TargetId`, `Lun`.
    #[must_use]
    pub const fn addressee(&self) -> Addressee {
        let raw = self.raw();
        addressee!(raw, raw.SrbPnPFlags & SRB_PNP_FLAGS_ADAPTER_REQUEST != 0)
    }

    /// Completes the request with `status`.
    pub fn complete(self, status: SrbStatus) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.pending.finish(status);
    }
}

/// An `SRB_FUNCTION_POWER` request: the device power state, the power
/// action and who it is for.
///
/// Per "`SCSI_POWER_REQUEST_BLOCK` structure (srb.h)" the miniport ignores `SrbFlags`, `DataTransferLength`, `DataBuffer`,
/// `SenseInfoBuffer`, `NextSrb` and `OriginalRequest` (and, for an adapter
/// request, the address) and sets only `SrbStatus`.
#[must_use = "a request must be completed; dropping it completes it with SRB_STATUS_INTERNAL_ERROR"]
pub struct PowerSrb<'a> {
    pending: Pending<'a>,
}

impl<'a> PowerSrb<'a> {
    pub(crate) const fn new(pending: Pending<'a>) -> Self {
        Self { pending }
    }

    const fn raw(&self) -> &SCSI_POWER_REQUEST_BLOCK {
        self.pending.layout()
    }

    /// `DevicePowerState`.
    #[must_use]
    pub const fn device_power_state(&self) -> DevicePowerState {
        DevicePowerState::from_raw(self.raw().DevicePowerState)
    }

    /// `PowerAction`.
    #[must_use]
    pub const fn power_action(&self) -> PowerAction {
        PowerAction::from_raw(self.raw().PowerAction)
    }

    /// The adapter (`SRB_POWER_FLAGS_ADAPTER_REQUEST` in `SrbPowerFlags`)
    /// or the unit at `PathId`, `TargetId`, `Lun`.
    #[must_use]
    pub const fn addressee(&self) -> Addressee {
        let raw = self.raw();
        addressee!(
            raw,
            raw.SrbPowerFlags & SRB_POWER_FLAGS_ADAPTER_REQUEST != 0
        )
    }

    /// Completes the request with `status`.
    pub fn complete(self, status: SrbStatus) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.pending.finish(status);
    }
}

/// An `SRB_FUNCTION_WMI` request ("`SCSI_WMI_REQUEST_BLOCK` structure
/// (srb.h)").
///
/// A miniport of this layer is no WMI data provider (it leaves
/// `WmiDataProvider` FALSE), so this view offers the WMI minor function and
/// who it is for, and completion with a status; the `Reserved*` members are
/// the system's, and the data path and buffer are left alone.
#[must_use = "a request must be completed; dropping it completes it with SRB_STATUS_INTERNAL_ERROR"]
pub struct WmiSrb<'a> {
    pending: Pending<'a>,
}

impl<'a> WmiSrb<'a> {
    pub(crate) const fn new(pending: Pending<'a>) -> Self {
        Self { pending }
    }

    const fn raw(&self) -> &SCSI_WMI_REQUEST_BLOCK {
        self.pending.layout()
    }

    /// `WMISubFunction`: the WMI minor IRP number (`IRP_MN_*`).
    #[must_use]
    pub const fn subfunction(&self) -> u8 {
        self.raw().WMISubFunction
    }

    /// The adapter (`SRB_WMI_FLAGS_ADAPTER_REQUEST` in `WMIFlags`, when the
    /// address members are reserved) or the unit at `PathId`, `TargetId`,
    /// `Lun`.
    #[must_use]
    pub const fn addressee(&self) -> Addressee {
        let raw = self.raw();
        addressee!(raw, raw.WMIFlags & SRB_WMI_FLAGS_ADAPTER_REQUEST != 0)
    }

    /// Completes the request with `status`.
    pub fn complete(self, status: SrbStatus) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.pending.finish(status);
    }
}

/// A request of any other function.
///
/// That is `SRB_FUNCTION_RESET_BUS`, `RESET_DEVICE`, `RESET_LOGICAL_UNIT`,
/// `ABORT_COMMAND`, `FLUSH`, `SHUTDOWN`, `IO_CONTROL`, or one this layer
/// does not know. The
/// `Function` table of "`SCSI_REQUEST_BLOCK` structure (srb.h)" says which
/// members each of them makes valid ([`OtherSrb::addressee`]); none gives
/// the miniport `ScsiStatus`, sense or a transfer length to set, so it
/// completes with a status alone. (`ABORT_COMMAND`'s `NextSrb` and
/// `IO_CONTROL`'s buffer are valid too; this view does not offer them.)
#[must_use = "a request must be completed; dropping it completes it with SRB_STATUS_INTERNAL_ERROR"]
pub struct OtherSrb<'a> {
    pending: Pending<'a>,
}

impl<'a> OtherSrb<'a> {
    pub(crate) const fn new(pending: Pending<'a>) -> Self {
        Self { pending }
    }

    /// The request's function.
    #[must_use]
    pub const fn function(&self) -> SrbFunction {
        SrbFunction::from_raw(self.pending.function())
    }

    /// Who the request is for, from the members its function makes valid:
    /// `PathId` for a bus reset; `PathId` and `TargetId` for a device
    /// (target) reset; `PathId`, `TargetId` and `Lun` for a logical unit
    /// reset, an abort, a flush and a shutdown. `None` for I/O control and
    /// unknown functions, whose address the page does not make valid.
    #[must_use]
    pub const fn addressee(&self) -> Option<Addressee> {
        let raw: &SCSI_REQUEST_BLOCK = self.pending.layout();
        match self.function() {
            SrbFunction::ResetBus => Some(Addressee::Bus {
                path_id: raw.PathId,
            }),
            SrbFunction::ResetDevice => Some(Addressee::Target {
                path_id: raw.PathId,
                target_id: raw.TargetId,
            }),
            SrbFunction::ResetLogicalUnit
            | SrbFunction::AbortCommand
            | SrbFunction::Flush
            | SrbFunction::Shutdown => Some(Addressee::Unit {
                path_id: raw.PathId,
                target_id: raw.TargetId,
                lun: raw.Lun,
            }),
            SrbFunction::ExecuteScsi
            | SrbFunction::IoControl
            | SrbFunction::Wmi
            | SrbFunction::Power
            | SrbFunction::Pnp
            | SrbFunction::Other(_) => None,
        }
    }

    /// Completes the request with `status`.
    pub fn complete(self, status: SrbStatus) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.pending.finish(status);
    }
}

macro_rules! abandon_on_drop {
    ($($view:ident),*) => {$(
        impl Drop for $view<'_> {
            fn drop(&mut self) {
                self.pending.abandon();
            }
        }
    )*};
}
abandon_on_drop!(PnpSrb, PowerSrb, WmiSrb, OtherSrb);

impl fmt::Debug for PnpSrb<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PnpSrb")
            .field("action", &self.action())
            .field("addressee", &self.addressee())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PowerSrb<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerSrb")
            .field("device_power_state", &self.device_power_state())
            .field("power_action", &self.power_action())
            .field("addressee", &self.addressee())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for WmiSrb<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WmiSrb")
            .field("subfunction", &self.subfunction())
            .field("addressee", &self.addressee())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OtherSrb<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtherSrb")
            .field("function", &self.function())
            .field("addressee", &self.addressee())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{DevicePowerState, PnpAction, PowerAction};

    #[test]
    fn actions_and_states_decode() {
        assert_eq!(PnpAction::from_raw(0x09), PnpAction::QueryCapabilities);
        assert_eq!(PnpAction::from_raw(0x17), PnpAction::SurpriseRemoval);
        assert_eq!(PnpAction::from_raw(0x42), PnpAction::Other(0x42));
        assert_eq!(DevicePowerState::from_raw(4), DevicePowerState::D3);
        assert_eq!(PowerAction::from_raw(3), PowerAction::Hibernate);
        assert_eq!(PowerAction::from_raw(1), PowerAction::Other(1));
    }
}
