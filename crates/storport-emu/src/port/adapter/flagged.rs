//! [`Port::execute_flagged`]: an `SRB_FUNCTION_EXECUTE_SCSI` request whose
//! `SrbFlags` direction bits are chosen apart from its buffer (see
//! [`crate::port::flagged`]).

use std::cell::RefCell;

use crate::port::cpu::Preemptive;
use crate::port::flagged::{FlagDirection, FlaggedResult};
use crate::port::model::DISPATCH_LEVEL;
use crate::port::srb::{self, DataDirection};

use super::{Completion, Phase, Port, PortError};

impl Port {
    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` request to (bus, target, lun)
    /// with `buffer` as its data buffer (`DataBuffer`, `DataTransferLength`
    /// = its length; no `DataBuffer` when it is empty) and `flags` as the
    /// direction bits of `SrbFlags`, whatever the CDB moves. The miniport
    /// finds the initial bytes in the buffer; the result holds the whole
    /// buffer as it left it. The completion is checked as for
    /// [`Self::execute`]. `HwStartIo` runs at DISPATCH_LEVEL, outside the
    /// `--seed` schedule.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn execute_flagged(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        flags: FlagDirection,
        buffer: Vec<u8>,
    ) -> Result<FlaggedResult, PortError> {
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let len = buffer.len();
        // A data-out slot holds the initial bytes followed by the guard
        // bytes; only its flags change.
        let mut slot = srb::build_owned(
            address,
            storport_sys::srb_function::EXECUTE_SCSI,
            cdb,
            DataDirection::Out(buffer),
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        slot.srb.SrbFlags = flags.bits();
        self.log(format!(
            "CDB opcode {:#04x} to {}:{}:{} with a {len}-byte buffer flagged {}",
            cdb.first().copied().unwrap_or(0),
            address.0,
            address.1,
            address.2,
            flags.name()
        ));
        let left = RefCell::new(Vec::new());
        let snapshot = |slot: &srb::SrbSlot| {
            left.borrow_mut()
                .extend_from_slice(&slot.data[..slot.data_len]);
        };
        let result = self.run_slot_with(
            slot,
            cdb,
            Some(len),
            &init,
            &Completion {
                supplied: u32::try_from(len).unwrap_or(u32::MAX),
                completed: &snapshot,
            },
            (DISPATCH_LEVEL, Preemptive::No),
        )?;
        Ok(FlaggedResult {
            result,
            buffer: left.into_inner(),
        })
    }
}
