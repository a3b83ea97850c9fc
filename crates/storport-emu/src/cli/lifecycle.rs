//! `storemu run --lifecycle SEQ`: PnP and power sequences.
//!
//! SEQ is a comma-separated list of steps, for example
//! `start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove`. Each step is
//! driven the way Storport drives a virtual miniport; `io` steps check
//! that data written before the steps in between reads back, and after the
//! last step the adapter is stopped and removed (unless a step removed it)
//! and unloaded with the usual leak checks. The default `storemu run` keeps
//! its own sequence.
//!
//! | step | what Windows does | what storemu calls | source |
//! |---|---|---|---|
//! | `start` | IRP_MN_START_DEVICE, bus enumeration, IRP_MN_QUERY_CAPABILITIES of each LUN | HwFindAdapter, HwInitialize, ScsiQuerySupportedControlTypes; the bus scan and probe of `storemu run`; `SRB_FUNCTION_PNP` `StorQueryCapabilities` to each LUN (and `SRB_FUNCTION_WMI` to WMI data providers) | VIRTUAL_HW_FIND_ADAPTER, HW_INITIALIZE, SCSI_PNP_REQUEST_BLOCK |
//! | `io` | class-driver I/O | per LUN: READ(10) of the marker block (LBA 1) checked against what the last `io` wrote (`LifecycleDataLoss`), then a new pattern written and read back (`DataIntegrity`) | SCSI_ADAPTER_CONTROL_TYPE (state kept across stop/restart) |
//! | `pnp-stop` | IRP_MN_QUERY_STOP_DEVICE, IRP_MN_STOP_DEVICE | HwAdapterControl(ScsiStopAdapter) at DIRQL, with no request outstanding | SCSI_ADAPTER_CONTROL_TYPE: ScsiStopAdapter "stopped for resource reconfiguration"; the PnP manager skips the stop for a device without hardware resources ("DF - PNP Stop (Rebalance) Device Test"), storemu drives it anyway |
//! | `pnp-start` | IRP_MN_START_DEVICE after a stop | silent pages; default: HwFindAdapter, HwInitialize and ScsiQuerySupportedControlTypes again on the same, intact device extension (`LiveStateOverwritten`), then a bus rescan; `--pnp-start restart`: HwAdapterControl(ScsiRestartAdapter) | [`crate::port::PnpStartReading`] |
//! | `d3`, `hibernate` | system sleep / hibernation: each LUN and the adapter to D3 | per LUN `SRB_FUNCTION_POWER` StorPowerDeviceD3 (StorPowerActionSleep / StorPowerActionHibernate); HwAdapterControl(ScsiStopAdapter) at DIRQL | SCSI_POWER_REQUEST_BLOCK; SCSI_ADAPTER_CONTROL_TYPE: ScsiStopAdapter "shut down for power management" |
//! | `d0` | wake | HwAdapterControl(ScsiRestartAdapter) at DIRQL; per LUN `SRB_FUNCTION_POWER` StorPowerDeviceD0 | SCSI_ADAPTER_CONTROL_TYPE: ScsiRestartAdapter, device extension intact; SCSI_POWER_REQUEST_BLOCK |
//! | `query-remove`, `cancel-remove` | IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_CANCEL_REMOVE_DEVICE | nothing: the pages name no miniport callback for them | Handling SRB_FUNCTION_PNP (PnP notifications the miniport receives are the SRB_FUNCTION_PNP actions) |
//! | `remove` | IRP_MN_REMOVE_DEVICE of each LUN, then of the adapter | per LUN `SRB_FUNCTION_PNP` StorRemoveDevice; ScsiStopAdapter ("removed from the system"); HwFreeAdapterResources | SCSI_PNP_REQUEST_BLOCK, SCSI_ADAPTER_CONTROL_TYPE, HW_FREE_ADAPTER_RESOURCES |
//! | `surprise-remove` | IRP_MN_SURPRISE_REMOVAL, then IRP_MN_REMOVE_DEVICE | per LUN StorSurpriseRemoval; HwAdapterControl(ScsiAdapterSurpriseRemoval) if the miniport listed it; then as `remove` | SCSI_PNP_REQUEST_BLOCK (StorSurpriseRemoval), SCSI_ADAPTER_CONTROL_TYPE |
//!
//! Every step's PNP and POWER requests are sent in their own layouts
//! ([`crate::port::layouts`]) whatever `--non-scsi-srbs` says. A request
//! completed twice, before and after a step, is `DoubleCompletion`: the
//! port keeps completed requests to recognise it.

#![expect(
    clippy::doc_markdown,
    reason = "Storport's and the PnP manager's identifiers are written as Microsoft's documentation writes them"
)]

use storport_sys::{stor_device_power_state, stor_pnp_action, stor_power_action};

use super::scan::{self, LunReport};
use super::{MAX_SCANNED_BUSES, MAX_SCANNED_TARGETS, RunOptions, discover};
use crate::port::{DataDirection, Port, PortError, Rule};

/// Most steps one sequence may have.
pub const MAX_STEPS: usize = 64;
/// The block each `io` step writes and the next one checks.
const MARKER_LBA: u32 = 1;
/// `ScsiAdapterSurpriseRemoval` (SCSI_ADAPTER_CONTROL_TYPE).
const SCSI_ADAPTER_SURPRISE_REMOVAL: u32 = 16;

/// One step of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `start`.
    Start,
    /// `io`.
    Io,
    /// `pnp-stop`.
    PnpStop,
    /// `pnp-start`.
    PnpStart,
    /// `d3`: sleep.
    D3,
    /// `hibernate`.
    Hibernate,
    /// `d0`.
    D0,
    /// `query-remove`.
    QueryRemove,
    /// `cancel-remove`.
    CancelRemove,
    /// `remove`.
    Remove,
    /// `surprise-remove`.
    SurpriseRemove,
}

const STEPS: [(Step, &str); 11] = [
    (Step::Start, "start"),
    (Step::Io, "io"),
    (Step::PnpStop, "pnp-stop"),
    (Step::PnpStart, "pnp-start"),
    (Step::D3, "d3"),
    (Step::Hibernate, "hibernate"),
    (Step::D0, "d0"),
    (Step::QueryRemove, "query-remove"),
    (Step::CancelRemove, "cancel-remove"),
    (Step::Remove, "remove"),
    (Step::SurpriseRemove, "surprise-remove"),
];

/// The device's state between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Loaded,
    Started,
    PnpStopped,
    Sleeping,
    RemovePending,
    Removed,
}

impl Step {
    /// The step's name in SEQ.
    #[must_use]
    pub fn name(self) -> &'static str {
        STEPS
            .iter()
            .find(|(step, _)| *step == self)
            .map_or("?", |(_, name)| name)
    }

    /// The state after the step from `state`, or what must come first.
    const fn next(self, state: State) -> Result<State, &'static str> {
        match (self, state) {
            (Self::Start, State::Loaded)
            | (Self::Io, State::Started)
            | (Self::PnpStart, State::PnpStopped)
            | (Self::D0, State::Sleeping)
            | (Self::CancelRemove, State::RemovePending) => Ok(State::Started),
            (Self::Start, _) => Err("start comes first, once"),
            (_, State::Loaded) => Err("the sequence begins with start"),
            (_, State::Removed) => Err("nothing follows remove or surprise-remove"),
            (Self::PnpStop, State::Started) => Ok(State::PnpStopped),
            (Self::D3 | Self::Hibernate, State::Started) => Ok(State::Sleeping),
            (Self::QueryRemove, State::Started) => Ok(State::RemovePending),
            (Self::Io, _) => Err("io needs a started adapter"),
            (Self::PnpStop | Self::D3 | Self::Hibernate | Self::QueryRemove, _) => {
                Err("it needs a started adapter")
            }
            (Self::PnpStart, _) => Err("pnp-start comes after pnp-stop"),
            (Self::D0, _) => Err("d0 comes after d3 or hibernate"),
            (Self::CancelRemove, _) => Err("cancel-remove comes after query-remove"),
            (Self::Remove | Self::SurpriseRemove, State::Started | State::RemovePending) => {
                Ok(State::Removed)
            }
            (Self::Remove | Self::SurpriseRemove, _) => {
                Err("removal needs a started adapter (after d0 or pnp-start)")
            }
        }
    }
}

/// Parses and checks SEQ.
///
/// # Errors
///
/// A sentence naming the bad step, what was expected, and that nothing was run.
pub fn parse(sequence: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut state = State::Loaded;
    let mut previous = "the beginning";
    for (index, word) in sequence.split(',').map(str::trim).enumerate() {
        if index >= MAX_STEPS {
            return Err(format!(
                "--lifecycle has more than {MAX_STEPS} steps; split the sequence. Nothing was run."
            ));
        }
        let Some((step, name)) = STEPS.iter().find(|(_, name)| *name == word) else {
            let names: Vec<&str> = STEPS.iter().map(|(_, name)| *name).collect();
            return Err(format!(
                "--lifecycle step {} is '{word}', which is not one of {}. Nothing was run.",
                index + 1,
                names.join(", ")
            ));
        };
        state = step.next(state).map_err(|why| {
            format!(
                "--lifecycle step {} '{name}' cannot follow {previous}: {why}. Nothing was run.",
                index + 1
            )
        })?;
        previous = name;
        steps.push(*step);
    }
    if steps.is_empty() {
        return Err("--lifecycle needs at least the step start. Nothing was run.".to_owned());
    }
    Ok(steps)
}

/// The pattern the `io` step number `step` writes to a LUN.
fn pattern(size: usize, step: usize, lun: (u8, u8, u8)) -> Vec<u8> {
    let salt = u8::try_from(step % 251).unwrap_or(0) ^ lun.2 ^ (lun.0 << 4) ^ lun.1;
    (0..size)
        .map(|i| u8::try_from(i % 253).unwrap_or(0).wrapping_mul(7) ^ salt ^ 0x3C)
        .collect()
}

fn rw10(opcode: u8, lba: u32) -> [u8; 10] {
    let mut cdb = [0_u8; 10];
    cdb[0] = opcode;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[8] = 1;
    cdb
}

/// What the sequence remembers of one LUN.
struct Lun {
    address: (u8, u8, u8),
    block_size: usize,
    /// The marker block as the last `io` wrote it, and the steps since.
    written: Option<(Vec<u8>, Vec<&'static str>)>,
}

/// Runs `steps` on `port` (after `DriverEntry`); returns the LUN reports of
/// the start's probe.
pub fn run(port: &Port, steps: &[Step], options: &RunOptions) -> Vec<LunReport> {
    port.log(format!(
        "lifecycle: {}",
        steps.iter().map(|s| s.name()).collect::<Vec<_>>().join(",")
    ));
    let mut reports = Vec::new();
    let mut luns: Vec<Lun> = Vec::new();
    let mut removed = false;
    for (index, step) in steps.iter().enumerate() {
        port.log(format!("lifecycle step {} {}", index + 1, step.name()));
        let done = match step {
            Step::Start => start(port, &mut reports, &mut luns),
            Step::Io => io(port, index, &mut luns),
            _ => {
                for lun in &mut luns {
                    if let Some((_, since)) = &mut lun.written {
                        since.push(step.name());
                    }
                }
                other(port, *step, options, &luns)
            }
        };
        removed |= matches!(step, Step::Remove | Step::SurpriseRemove);
        if done.is_err() || port.bugchecked() {
            return reports;
        }
    }
    if !removed {
        let _ = port.stop();
        let _ = port.remove();
    }
    reports
}

fn start(port: &Port, reports: &mut Vec<LunReport>, luns: &mut Vec<Lun>) -> Result<(), PortError> {
    if let Err(error) = port.start() {
        if !port.bugchecked() {
            let _ = port.remove();
        }
        return Err(error);
    }
    let non_scsi = RunOptions {
        non_scsi_srbs: true,
        ..RunOptions::default()
    };
    *reports = discover(port, &non_scsi)?;
    *luns = reports
        .iter()
        .filter(|r| r.device_type == 0 && r.blocks > u64::from(MARKER_LBA) && r.block_size > 0)
        .filter(|r| r.block_size <= 64 * 1024)
        .map(|r| Lun {
            address: (r.bus, r.target, r.lun),
            block_size: r.block_size as usize,
            written: None,
        })
        .collect();
    Ok(())
}

fn io(port: &Port, index: usize, luns: &mut [Lun]) -> Result<(), PortError> {
    for lun in luns {
        let (b, t, l) = lun.address;
        if let Some((expected, since)) = lun.written.take() {
            let read = port.execute(
                lun.address,
                &rw10(0x28, MARKER_LBA),
                &DataDirection::In(lun.block_size),
            )?;
            let lost = if read.status() != storport_sys::srb_status::SUCCESS {
                Some(format!(
                    "LUN {b}:{t}:{l} did not return block {MARKER_LBA} after {} (SRB status {:#04x}): the data written and completed with SUCCESS before them is gone, though Windows keeps the adapter's memory across these steps.",
                    since.join(", "),
                    read.srb_status
                ))
            } else if read.data != expected {
                Some(format!(
                    "LUN {b}:{t}:{l} returned other data for block {MARKER_LBA} after {} than was written and completed with SUCCESS before them; Windows keeps the adapter's memory across these steps.",
                    since.join(", ")
                ))
            } else {
                None
            };
            if let Some(message) = lost {
                port.report(
                    Rule::LifecycleDataLoss,
                    "HwStartIo",
                    vec![
                        u64::from(b),
                        u64::from(t),
                        u64::from(l),
                        u64::from(MARKER_LBA),
                    ],
                    message,
                );
            }
        }
        let data = pattern(lun.block_size, index, lun.address);
        let written = port.execute(
            lun.address,
            &rw10(0x2A, MARKER_LBA),
            &DataDirection::Out(data.clone()),
        )?;
        if written.status() != storport_sys::srb_status::SUCCESS {
            port.log(format!(
                "io: LUN {b}:{t}:{l} refused the write of block {MARKER_LBA} (SRB status {:#04x})",
                written.srb_status
            ));
            continue;
        }
        let back = port.execute(
            lun.address,
            &rw10(0x28, MARKER_LBA),
            &DataDirection::In(lun.block_size),
        )?;
        if back.data != data {
            port.report(
                Rule::DataIntegrity,
                "HwStartIo",
                vec![u64::from(b), u64::from(t), u64::from(l)],
                format!(
                    "LUN {b}:{t}:{l} accepted a write of block {MARKER_LBA} but read back different data."
                ),
            );
        }
        lun.written = Some((data, Vec::new()));
    }
    Ok(())
}

/// The bus rescan Storport does after a start.
fn rescan(port: &Port) -> Result<(), PortError> {
    let config = port.config().ok_or(PortError::NotStarted)?;
    let found = scan::scan(
        port,
        config.NumberOfBuses.clamp(1, MAX_SCANNED_BUSES),
        config.MaximumNumberOfTargets.clamp(1, MAX_SCANNED_TARGETS),
        config.MaximumNumberOfLogicalUnits.max(1),
    )?;
    port.log(format!("bus rescan found {} LUN(s)", found.len()));
    Ok(())
}

fn power_luns(port: &Port, luns: &[Lun], state: u32, action: u32) -> Result<(), PortError> {
    for lun in luns {
        let _ = port.power(lun.address, state, action, 0)?;
    }
    Ok(())
}

fn pnp_luns(port: &Port, luns: &[Lun], action: u32) -> Result<(), PortError> {
    for lun in luns {
        let _ = port.pnp(lun.address, action, 0)?;
    }
    Ok(())
}

fn other(port: &Port, step: Step, options: &RunOptions, luns: &[Lun]) -> Result<(), PortError> {
    match step {
        Step::PnpStop => {
            port.log("IRP_MN_QUERY_STOP_DEVICE, IRP_MN_STOP_DEVICE: no request outstanding");
            port.stop().map(|_| ())
        }
        Step::PnpStart => {
            port.pnp_start(options.pnp_start)?;
            rescan(port)
        }
        Step::D3 | Step::Hibernate => {
            let action = if step == Step::D3 {
                stor_power_action::SLEEP
            } else {
                stor_power_action::HIBERNATE
            };
            power_luns(port, luns, stor_device_power_state::D3, action)?;
            port.stop().map(|_| ())
        }
        Step::D0 => {
            let _ = port.restart()?;
            power_luns(
                port,
                luns,
                stor_device_power_state::D0,
                stor_power_action::NONE,
            )
        }
        Step::QueryRemove | Step::CancelRemove => {
            port.log("answered by Storport: no miniport callback");
            Ok(())
        }
        Step::Remove | Step::SurpriseRemove => {
            if step == Step::SurpriseRemove {
                pnp_luns(port, luns, stor_pnp_action::SURPRISE_REMOVAL)?;
                if port.supports_control(SCSI_ADAPTER_SURPRISE_REMOVAL) {
                    port.log("HwAdapterControl(ScsiAdapterSurpriseRemoval) (PASSIVE_LEVEL)");
                    let _ = port.adapter_control(SCSI_ADAPTER_SURPRISE_REMOVAL, 0)?;
                }
            }
            pnp_luns(port, luns, stor_pnp_action::REMOVE_DEVICE)?;
            let _ = port.stop()?;
            port.remove()
        }
        Step::Start | Step::Io => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse("start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove"),
            Ok(vec![
                Step::Start,
                Step::Io,
                Step::PnpStop,
                Step::PnpStart,
                Step::Io,
                Step::D3,
                Step::D0,
                Step::Io,
                Step::SurpriseRemove
            ])
        );
        for (bad, needle) in [
            (
                "io",
                "step 1 'io' cannot follow the beginning: the sequence begins with start",
            ),
            (
                "start,d0",
                "step 2 'd0' cannot follow start: d0 comes after d3 or hibernate",
            ),
            (
                "start,pnp-stop,io",
                "step 3 'io' cannot follow pnp-stop: io needs a started adapter",
            ),
            ("start,remove,io", "nothing follows remove"),
            (
                "start,frobnicate",
                "step 2 is 'frobnicate', which is not one of start, io",
            ),
            ("", "step 1 is ''"),
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(
                error.contains(needle) && error.ends_with("Nothing was run."),
                "{bad}: {error}"
            );
        }
        let long = vec!["start"]
            .into_iter()
            .chain(std::iter::repeat_n("io", MAX_STEPS))
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            parse(&long)
                .expect_err("too long")
                .contains("more than 64 steps")
        );
    }
}
