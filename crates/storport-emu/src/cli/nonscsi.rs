//! The non-SCSI requests `storemu run --non-scsi-srbs` adds to the run.
//!
//! They come where Storport sends them to a virtual miniport:
//!
//! 1. after the bus scan: `SRB_FUNCTION_WMI` `IRP_MN_REGINFO_EX`
//!    (`WMIREGISTER`) to the adapter, only when `HwFindAdapter` set
//!    `ConfigInfo->WmiDataProvider`; then `SRB_FUNCTION_PNP`
//!    `StorQueryCapabilities` to every logical unit found (its PDO's
//!    `IRP_MN_QUERY_CAPABILITIES`);
//! 2. after the probe: `SRB_FUNCTION_POWER` to every logical unit, D3 for
//!    sleep (`StorPowerActionSleep`) then D0 (`StorPowerActionNone`);
//! 3. before the adapter stops: `SRB_FUNCTION_PNP` `StorRemoveDevice` to
//!    every logical unit (its PDO's `IRP_MN_REMOVE_DEVICE`).
//!
//! Every request is built in its own layout and checked by the port
//! (`NonScsiSrbWrite`, poisoned members); see [`crate::port::layouts`]. A
//! status other than success is logged, not a finding: the pages make
//! these requests notifications that need no action.

use storport_sys::{
    IRP_MN_REGINFO_EX, SRB_WMI_FLAGS_ADAPTER_REQUEST, WMIREGISTER, srb_status,
    stor_device_power_state, stor_pnp_action, stor_power_action,
};

use crate::port::{Port, PortError, SrbResult};

/// Bytes of the WMI buffer of the registration request.
pub const WMI_BUFFER_BYTES: u32 = 4096;

/// A logical unit's address: bus, target, LUN.
pub type Address = (u8, u8, u8);

fn log_status(port: &Port, what: &str, address: Address, result: &SrbResult) {
    if result.status() != srb_status::SUCCESS {
        port.log(format!(
            "{what} to {}:{}:{} completed with SRB status {:#04x}",
            address.0, address.1, address.2, result.srb_status
        ));
    }
}

/// Step 1: the WMI registration request (WMI data providers only) and
/// `StorQueryCapabilities` for every logical unit.
///
/// # Errors
///
/// When the driver bug-checks.
pub fn after_scan(port: &Port, luns: &[Address]) -> Result<(), PortError> {
    if port.config().is_some_and(|c| c.WmiDataProvider != 0) {
        let result = port.wmi(
            (0, 0, 0),
            IRP_MN_REGINFO_EX,
            SRB_WMI_FLAGS_ADAPTER_REQUEST,
            WMIREGISTER,
            WMI_BUFFER_BYTES,
        )?;
        log_status(
            port,
            "SRB_FUNCTION_WMI IRP_MN_REGINFO_EX",
            (0, 0, 0),
            &result,
        );
    } else {
        port.log("no SRB_FUNCTION_WMI: HwFindAdapter left ConfigInfo->WmiDataProvider FALSE");
    }
    for &address in luns {
        let result = port.pnp(address, stor_pnp_action::QUERY_CAPABILITIES, 0)?;
        log_status(port, "StorQueryCapabilities", address, &result);
    }
    Ok(())
}

/// Step 2: every logical unit to D3 for sleep and back to D0.
///
/// # Errors
///
/// When the driver bug-checks.
pub fn power_cycle(port: &Port, luns: &[Address]) -> Result<(), PortError> {
    for &address in luns {
        let result = port.power(
            address,
            stor_device_power_state::D3,
            stor_power_action::SLEEP,
            0,
        )?;
        log_status(port, "SRB_FUNCTION_POWER D3", address, &result);
        let result = port.power(
            address,
            stor_device_power_state::D0,
            stor_power_action::NONE,
            0,
        )?;
        log_status(port, "SRB_FUNCTION_POWER D0", address, &result);
    }
    Ok(())
}

/// Step 3: `StorRemoveDevice` for every logical unit.
///
/// # Errors
///
/// When the driver bug-checks.
pub fn remove_luns(port: &Port, luns: &[Address]) -> Result<(), PortError> {
    for &address in luns {
        let result = port.pnp(address, stor_pnp_action::REMOVE_DEVICE, 0)?;
        log_status(port, "StorRemoveDevice", address, &result);
    }
    Ok(())
}
