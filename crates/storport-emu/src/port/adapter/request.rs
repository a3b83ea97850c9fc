//! The request path: building an SRB, running `HwBuildIo` / `HwStartIo`
//! on an emulated processor, and collecting the completion with the
//! checks made on it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use storport_sys::HW_INITIALIZATION_DATA;

use crate::machine::preempt::Preemption;
use crate::port::context::Routine;
use crate::port::cpu::Preemptive;
use crate::port::rules::Rule;
use crate::port::schedule::Companion;
use crate::port::srb::{self, DataDirection, GUARD_FILL, SrbRecord, SrbResult};
use crate::port::state::lock;
use crate::port::timing;

use super::{Phase, Port, PortError};

impl Port {
    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` request to (bus, target, lun).
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn execute(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<SrbResult, PortError> {
        self.submit(
            address,
            storport_sys::srb_function::EXECUTE_SCSI,
            cdb,
            direction,
        )
    }

    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` request to (bus, target, lun),
    /// handing the data-out bytes of `direction` to the SRB without a copy
    /// when the vector has room for [`srb::DATA_GUARD_BYTES`] more.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn execute_owned(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: DataDirection,
    ) -> Result<SrbResult, PortError> {
        let function = storport_sys::srb_function::EXECUTE_SCSI;
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let length = data_in_length(&direction);
        let slot = srb::build_owned(
            address,
            function,
            cdb,
            direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        self.run_slot(slot, cdb, length, &init)
    }

    /// Sends one request with any `SRB_FUNCTION_*`.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn submit(
        &self,
        address: (u8, u8, u8),
        function: u8,
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<SrbResult, PortError> {
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let slot = srb::build(
            address,
            function,
            cdb,
            direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        self.run_slot(slot, cdb, data_in_length(direction), &init)
    }

    /// An `SRB_FUNCTION_EXECUTE_SCSI` request for the started adapter, not
    /// sent yet, and the init data to send it with ([`Self::run_slot`]).
    pub(in crate::port) fn build_execute(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<(Box<srb::SrbSlot>, HW_INITIALIZATION_DATA), PortError> {
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let slot = srb::build(
            address,
            storport_sys::srb_function::EXECUTE_SCSI,
            cdb,
            direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        Ok((slot, init))
    }

    /// Starts a built SRB with HwStartIo, waits for its completion and
    /// collects the result; `data_in` is the data-in length asked for.
    pub(in crate::port) fn run_slot(
        &self,
        slot: Box<srb::SrbSlot>,
        cdb: &[u8],
        data_in: Option<usize>,
        init: &HW_INITIALIZATION_DATA,
    ) -> Result<SrbResult, PortError> {
        let plan = self.schedule.next();
        let Some(budget) = plan.preempt_after else {
            return self.run_slot_as(slot, cdb, data_in, init, plan.irql, Preemptive::No);
        };
        let companion = Companion::of(&slot, cdb, data_in);
        let preemption = Preemption::new();
        let (result, preempting) = std::thread::scope(|scope| {
            let preempting = scope.spawn(|| self.preempt(&preemption, &companion));
            let how = Preemptive::Preempted {
                budget,
                preemption: &preemption,
            };
            let result = self.run_slot_as(slot, cdb, data_in, init, plan.irql, how);
            (result, preempting.join())
        });
        match preempting {
            Ok(Ok(())) => result,
            Ok(Err(error)) => Err(error),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Starts `slot` with HwStartIo at `irql`, taking part in the
    /// preemption model as `how` says, waits for its completion and collects
    /// the result; `data_in` is the data-in length asked for.
    pub(super) fn run_slot_as(
        &self,
        slot: Box<srb::SrbSlot>,
        cdb: &[u8],
        data_in: Option<usize>,
        init: &HW_INITIALIZATION_DATA,
        irql: u8,
        how: Preemptive<'_>,
    ) -> Result<SrbResult, PortError> {
        let supplied = slot.srb.DataTransferLength;
        let check = Completion {
            supplied,
            completed: &|_| {},
        };
        self.run_slot_with(slot, cdb, data_in, init, &check, (irql, how))
    }

    /// [`Self::run_slot_as`] with the data length the TransferLength rule
    /// holds the completion to, and a check called with the SRB as the
    /// miniport completed it (before the port reads the result).
    pub(super) fn run_slot_with(
        &self,
        mut slot: Box<srb::SrbSlot>,
        cdb: &[u8],
        data_in: Option<usize>,
        init: &HW_INITIALIZATION_DATA,
        check: &Completion<'_>,
        (irql, how): (u8, Preemptive<'_>),
    ) -> Result<SrbResult, PortError> {
        let Completion {
            supplied,
            completed,
        } = *check;
        let timeout_seconds = slot.srb.TimeOutValue;
        let srb_address = std::ptr::from_mut(&mut slot.srb) as usize;
        let record = SrbRecord {
            started: Instant::now(),
            supplied_len: supplied,
            completed: false,
        };
        // SAFETY: `in_flight` owns the slot from here and hands it to
        // `retire` on every way out of this function, unwinding included.
        unsafe { lock(&self.shared.srbs).start(srb_address, record) };
        let mut in_flight = InFlight {
            table: &self.shared.srbs,
            address: srb_address,
            slot: Some(slot),
        };
        let start_io = init.HwStartIo.map_or(0, |f| f as *const () as usize);
        let called = timing::now();
        let call = self.call_preemptive(
            Routine::StartIo,
            irql,
            start_io,
            &[self.extension(), srb_address as u64],
            how,
        );
        match how {
            Preemptive::No => {}
            Preemptive::Preempted { preemption, .. } => preemption.finish(),
            Preemptive::Preempting { preemption, .. } => {
                let released_early_at = preemption.released_early_at();
                preemption.resume();
                if let (Ok(_), Some(spinning_pc), Some(at)) =
                    (&call, released_early_at, preemption.preempted())
                {
                    return Err(self.report_preempted_spin(at, spinning_pc));
                }
            }
        }
        let returned = timing::now();
        // On an error the miniport may still hold the SRB: `in_flight`
        // keeps its memory alive (retired).
        call?;
        let path_id = in_flight.slot.as_ref().map_or(0, |slot| slot.srb.PathId);
        let deadline = Instant::now() + self.options.srb_timeout;
        loop {
            if self.is_completed(srb_address) {
                break;
            }
            if Instant::now() >= deadline {
                self.shared.violation(
                    Rule::SrbTimeout,
                    Routine::StartIo,
                    vec![srb_address as u64, u64::from(timeout_seconds)],
                    format!(
                        "SRB {srb_address:#x} (CDB opcode {:#04x}) was not completed within {} ms of HwStartIo; the port resets bus {path_id}.",
                        cdb.first().copied().unwrap_or(0),
                        self.options.srb_timeout.as_millis()
                    ),
                );
                // HW_RESET_BUS: Storport clears the error by resetting the
                // bus, and the miniport completes the SRBs it holds for that
                // PathId (SRB_STATUS_BUS_RESET) inside HwStorResetBus.
                let _ = self.reset_bus(path_id);
                if self.is_completed(srb_address) {
                    break;
                }
                self.log(format!(
                    "SRB {srb_address:#x} is still not completed after HwResetBus({path_id})"
                ));
                return Ok(SrbResult {
                    srb_status: 0,
                    scsi_status: 0,
                    sense: Vec::new(),
                    data: Vec::new(),
                    transferred: 0,
                });
            }
            self.fire_timer()?;
            std::thread::sleep(Duration::from_micros(200));
        }
        // The completed SRB stays reserved (so a late second completion is
        // recognised) but its data buffer, which may be large, is handed to
        // the result or released.
        let Some(slot) = in_flight.slot.as_deref_mut() else {
            unreachable!("the slot leaves `in_flight` only when it is dropped");
        };
        completed(slot);
        let result = self.collect(slot, data_in, srb_address);
        slot.srb.DataBuffer = std::ptr::null_mut();
        drop(in_flight);
        timing::add(called, returned);
        Ok(result)
    }

    /// Whether the miniport has completed the SRB at `srb_address`.
    pub(super) fn is_completed(&self, srb_address: usize) -> bool {
        lock(&self.shared.srbs)
            .live(srb_address)
            .is_some_and(|r| r.completed)
    }

    /// The result of a completed SRB. Takes the slot's data buffer: its
    /// first bytes become the data-in result without a copy.
    pub(super) fn collect(
        &self,
        slot: &mut srb::SrbSlot,
        data_in: Option<usize>,
        srb_address: usize,
    ) -> SrbResult {
        let srb = slot.srb;
        let transferred = srb.DataTransferLength;
        if slot.data[slot.data_len..].iter().any(|&b| b != GUARD_FILL) {
            self.shared.violation(
                Rule::TransferLength,
                Routine::StartIo,
                vec![srb_address as u64, slot.data_len as u64],
                format!("The miniport wrote past the end of SRB {srb_address:#x}'s {}-byte data buffer.", slot.data_len),
            );
        }
        let mut data = std::mem::take(&mut slot.data);
        match data_in {
            Some(len) => data.truncate(len.min(transferred as usize).min(slot.data_len)),
            None => data = Vec::new(),
        }
        let sense = if srb.SrbStatus & storport_sys::srb_status::AUTOSENSE_VALID != 0 {
            slot.sense[..usize::from(srb.SenseInfoBufferLength).min(slot.sense.len())].to_vec()
        } else {
            Vec::new()
        };
        SrbResult {
            srb_status: srb.SrbStatus,
            scsi_status: srb.ScsiStatus,
            sense,
            data,
            transferred,
        }
    }
}

/// What the port holds a completion to: the data length the TransferLength
/// rule allows, and a check of the SRB as the miniport completed it.
#[derive(Clone, Copy)]
pub(super) struct Completion<'a> {
    pub(super) supplied: u32,
    pub(super) completed: &'a dyn Fn(&srb::SrbSlot),
}

/// The data-in length `direction` asks for.
pub(super) const fn data_in_length(direction: &DataDirection) -> Option<usize> {
    match direction {
        DataDirection::In(len) => Some(*len),
        DataDirection::Out(_) | DataDirection::None => None,
    }
}

/// A started SRB's slot; retired (kept allocated for a while, see
/// [`srb::SrbTable::retire`]) when this is dropped, however the request ended.
struct InFlight<'a> {
    table: &'a Mutex<srb::SrbTable>,
    address: usize,
    slot: Option<Box<srb::SrbSlot>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            lock(self.table).retire(self.address, slot);
        }
    }
}
