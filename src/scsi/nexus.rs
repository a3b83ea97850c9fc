//! What a logical unit keeps per `I_T` nexus: unit attentions (SAM-5) and the SPC-2
//! reservation of RESERVE(6) / RELEASE(6).
//!
//! A disk may be reached through several target ports (the adapter's buses, see
//! [`super::Request::port`]); each port stands for one `I_T` nexus. With one port, as Windows
//! uses vstor by default, the host is the only initiator: a reservation never conflicts, and a
//! unit attention only follows a reset the host asked for.
//!
//! - A logical unit reset (also each unit's part of a target reset) releases the reservation
//!   and establishes BUS DEVICE RESET FUNCTION OCCURRED (29h/03h) on every port.
//! - A port reset (`HwResetBus` for the port's bus; storemu also sends it when the `I_T` nexus
//!   behind a port ends) releases the reservation if it was made through that port and
//!   establishes SCSI BUS RESET OCCURRED (29h/02h) on that port only.
//! - Both drop a sense deferred for REQUEST SENSE (kept for the host, the one initiator that
//!   turns autosense off).
//! - A pending unit attention is reported once, to its port, by the next command other than
//!   INQUIRY and REPORT LUNS; REQUEST SENSE returns it as its data (SPC-4).
//! - While another port holds the reservation, every command but INQUIRY, REPORT LUNS, REQUEST
//!   SENSE, RELEASE(6) and REPORT SUPPORTED OPERATION CODES ends in RESERVATION CONFLICT
//!   (SPC-2, "Reservations").

use core::sync::atomic::Ordering;

use super::disk::{Disk, Handled, op};
use super::persistent::{SPC2, is_spc2, reservation_word};
use super::reply::Cdb;
use super::sense::{SenseData, asc, sense_key};
use super::state::{MAX_ATTENTION_ASCQ, Ports};
use super::{Outcome, scsi_status, srb_status};

/// Most target ports a disk keeps apart; ports beyond share the state of `port % MAX_PORTS`.
pub const MAX_PORTS: u8 = 8;

/// RESERVATION CONFLICT: no sense data (SAM-5).
pub(super) const fn conflict() -> Outcome {
    Outcome {
        srb_status: srb_status::ERROR,
        scsi_status: scsi_status::RESERVATION_CONFLICT,
        sense: None,
        transferred: 0,
    }
}

// The unit attentions this module establishes fit the state word.
const _: () = assert!(asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED.1 <= MAX_ATTENTION_ASCQ);
const _: () = assert!(asc::BUS_RESET_OCCURRED.1 <= MAX_ATTENTION_ASCQ);

impl Disk {
    /// Logical unit reset (SAM-5): drops a deferred sense and the reservation, and tells
    /// every port with BUS DEVICE RESET FUNCTION OCCURRED. Nothing else is outstanding.
    #[inline(never)] // cold: kept out of the READ/WRITE dispatcher
    pub fn reset(&self) {
        self.deferred_sense.store(0, Ordering::Relaxed);
        // An SPC-2 reservation ends; a persistent one survives resets (SPC-4).
        let word = self.state.reservation();
        if is_spc2(word) {
            let _ = self.state.exchange_reservation(word, 0);
        }
        self.state
            .raise_attention(Ports::All, asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED.1);
    }

    /// Reset of target port `port`: drops a deferred sense, releases a reservation made
    /// through the port and tells that port alone with SCSI BUS RESET OCCURRED.
    #[inline(never)] // cold: kept out of the READ/WRITE dispatcher
    pub fn reset_port(&self, port: u8) {
        self.deferred_sense.store(0, Ordering::Relaxed);
        let _ = self
            .state
            .exchange_reservation(reservation_word(SPC2, port), 0);
        self.state
            .raise_attention(Ports::One(port), asc::BUS_RESET_OCCURRED.1);
    }

    /// The port holding the SPC-2 reservation (RESERVE(6)), if any.
    #[must_use]
    pub fn reserved_by(&self) -> Option<u8> {
        let [holder, kind] = self.state.reservation().to_le_bytes();
        (kind == SPC2).then(|| holder.wrapping_sub(1))
    }

    /// Takes the unit attention pending for `port`, if any, unless `opcode` is one that
    /// neither reports nor clears it (INQUIRY, REPORT LUNS).
    pub(crate) fn take_attention(&self, opcode: u8, port: u8) -> Option<SenseData> {
        if !self.state.attention_pending(port) || opcode == op::INQUIRY || opcode == op::REPORT_LUNS
        {
            return None;
        }
        let ascq = self.state.take_attention(port)?;
        Some(SenseData::new(sense_key::UNIT_ATTENTION, (0x29, ascq)))
    }

    /// RESERVATION CONFLICT when another port holds the reservation and `opcode` is not
    /// allowed through it.
    pub(crate) fn check_reservation(&self, opcode: u8, port: u8) -> Option<Outcome> {
        let word = self.state.reservation();
        if word == 0 {
            return None;
        }
        if !is_spc2(word) {
            return self.persistent_conflict(opcode, port);
        }
        if word == reservation_word(SPC2, port)
            || matches!(
                opcode,
                op::INQUIRY
                    | op::REPORT_LUNS
                    | op::REQUEST_SENSE
                    | op::RELEASE_6
                    | op::MAINTENANCE_IN
            )
        {
            return None;
        }
        Some(conflict())
    }

    /// RESERVE(6) (SPC-2): the logical unit becomes reserved to `port`; again from the same
    /// port it stays so. Third-party and extent reservations (byte 1) are not supported:
    /// INVALID FIELD IN CDB.
    #[inline(never)] // cold: kept out of the READ/WRITE dispatcher
    pub(crate) fn reserve(&self, cdb: &Cdb, port: u8) -> Handled {
        if cdb.u8(1) & 0x1F != 0 {
            return Err(SenseData::invalid_cdb_field(1, None));
        }
        // A persistent reservation, or another port's, makes the exchange fail: conflict.
        let me = reservation_word(SPC2, port);
        match self.state.exchange_reservation(0, me) {
            Ok(_) => Ok(Outcome::good(0)),
            Err(now) if now == me => Ok(Outcome::good(0)),
            Err(_) => Ok(conflict()),
        }
    }

    /// RELEASE(6) (SPC-2): releases the reservation if `port` holds it; from another port,
    /// or with none held, GOOD and nothing changes. Byte 1 as for RESERVE(6).
    #[inline(never)] // cold: kept out of the READ/WRITE dispatcher
    pub(crate) fn release(&self, cdb: &Cdb, port: u8) -> Handled {
        if cdb.u8(1) & 0x1F != 0 {
            return Err(SenseData::invalid_cdb_field(1, None));
        }
        let _ = self
            .state
            .exchange_reservation(reservation_word(SPC2, port), 0);
        Ok(Outcome::good(0))
    }
}
