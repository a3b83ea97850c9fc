//! The SRB-function level of `HwStartIo`: addressing, and the functions other than
//! `SRB_FUNCTION_EXECUTE_SCSI`.
//!
//! Addressing: an SRB for a path or target the adapter does not have completes with
//! `SRB_STATUS_NO_DEVICE`; one for a missing LUN of an existing target with
//! `SRB_STATUS_INVALID_LUN`. Both are statuses Storport's bus scan takes as "nothing here"
//! ("Error Handling in Storport Miniport Drivers" lists `SRB_STATUS_NO_DEVICE` among the statuses a
//! miniport reports; `SRB_STATUS_INVALID_LUN` is the srb.h status for a nonexistent LUN).

use super::disk::Request;
use super::{Autosense, BlockStore, DataBuffer, Disk, Outcome, srb_status};

/// `SRB_FUNCTION_*` values (srb.h) handled here.
pub mod function {
    /// `SRB_FUNCTION_EXECUTE_SCSI`.
    pub const EXECUTE_SCSI: u8 = 0x00;
    /// `SRB_FUNCTION_SHUTDOWN`.
    pub const SHUTDOWN: u8 = 0x07;
    /// `SRB_FUNCTION_FLUSH`.
    pub const FLUSH: u8 = 0x08;
    /// `SRB_FUNCTION_ABORT_COMMAND`.
    pub const ABORT_COMMAND: u8 = 0x10;
    /// `SRB_FUNCTION_RESET_BUS`.
    pub const RESET_BUS: u8 = 0x12;
    /// `SRB_FUNCTION_RESET_DEVICE`.
    pub const RESET_DEVICE: u8 = 0x13;
    /// `SRB_FUNCTION_RESET_LOGICAL_UNIT`.
    pub const RESET_LOGICAL_UNIT: u8 = 0x20;
    /// `SRB_FUNCTION_POWER`.
    pub const POWER: u8 = 0x24;
    /// `SRB_FUNCTION_PNP`.
    pub const PNP: u8 = 0x25;
}

/// A set of LUNs 0–255, ascending by construction (REPORT LUNS lists them in this order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LunSet {
    bits: [u64; 4],
}

impl LunSet {
    /// The empty set.
    #[must_use]
    pub const fn new() -> Self {
        Self { bits: [0; 4] }
    }

    /// Adds `lun`.
    pub fn insert(&mut self, lun: u8) {
        if let Some(word) = self.bits.get_mut(usize::from(lun >> 6)) {
            *word |= 1 << (lun & 63);
        }
    }

    /// Whether `lun` is in the set.
    #[must_use]
    pub const fn contains(&self, lun: u8) -> bool {
        let word = (lun >> 6) as usize;
        word < self.bits.len() && (self.bits[word] >> (lun & 63)) & 1 == 1
    }

    /// Number of LUNs.
    #[must_use]
    pub const fn len(&self) -> u32 {
        self.bits[0].count_ones()
            + self.bits[1].count_ones()
            + self.bits[2].count_ones()
            + self.bits[3].count_ones()
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The LUNs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|&lun| self.contains(lun))
    }
}

/// Where an SRB is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// `PathId`.
    pub path_id: u8,
    /// `TargetId`.
    pub target_id: u8,
    /// `Lun`.
    pub lun: u8,
}

/// One logical unit of an adapter: where it is, its disk and its medium.
#[derive(Debug)]
pub struct Unit<'a, S: ?Sized> {
    /// Its address.
    pub address: Address,
    /// Its SCSI state.
    pub disk: &'a Disk,
    /// Its medium.
    pub store: &'a S,
}

/// The adapter as the SRB level sees it: a list of units.
pub trait Adapter {
    /// The medium type of the units.
    type Store: BlockStore + ?Sized;
    /// Every unit, in any order. Called on each SRB: keep it cheap (a walk over a fixed
    /// array); it runs at `DISPATCH_LEVEL`.
    fn units(&self) -> impl Iterator<Item = Unit<'_, Self::Store>>;

    /// The unit at `address`, if any: what [`find`] looks up on every SRB. The default
    /// walks [`Adapter::units`]; an adapter that can index its units directly overrides it.
    fn unit(&self, address: Address) -> Option<Unit<'_, Self::Store>> {
        self.units().find(|unit| unit.address == address)
    }
}

/// One SRB as the driver hands it over.
#[derive(Debug)]
pub struct Srb<'a> {
    /// `Function`.
    pub function: u8,
    /// `PathId`, `TargetId`, `Lun`.
    pub address: Address,
    /// `Cdb[..CdbLength]` (ignored unless `EXECUTE_SCSI`).
    pub cdb: &'a [u8],
    /// `DataBuffer[..DataTransferLength]` with its direction.
    pub data: DataBuffer<'a>,
    /// Whether the SRB can carry sense back.
    pub autosense: Autosense,
}

/// Finds the unit at `address`, or the SRB status for its absence.
///
/// # Errors
///
/// `SRB_STATUS_NO_DEVICE` when no unit has this path and target, `SRB_STATUS_INVALID_LUN`
/// when the target exists but not the LUN.
pub fn find<A: Adapter + ?Sized>(adapter: &A, address: Address) -> Result<Unit<'_, A::Store>, u8> {
    if let Some(unit) = adapter.unit(address) {
        return Ok(unit);
    }
    let target_seen = adapter.units().any(|unit| {
        unit.address.path_id == address.path_id && unit.address.target_id == address.target_id
    });
    Err(if target_seen {
        srb_status::INVALID_LUN
    } else {
        srb_status::NO_DEVICE
    })
}

/// The LUNs of the target at `address`.
pub fn luns_of<A: Adapter + ?Sized>(adapter: &A, address: Address) -> LunSet {
    let mut set = LunSet::new();
    for unit in adapter.units() {
        if unit.address.path_id == address.path_id && unit.address.target_id == address.target_id {
            set.insert(unit.address.lun);
        }
    }
    set
}

/// The LUN list handed to commands other than REPORT LUNS, which do not read it.
static NO_LUNS: LunSet = LunSet::new();

/// Handles one SRB completely: the caller completes it with the returned outcome.
///
/// - `EXECUTE_SCSI`: the addressed disk runs the CDB ([`Disk::execute`]).
/// - `RESET_LOGICAL_UNIT`, `RESET_DEVICE`: a logical unit reset ([`Disk::reset`]) of the
///   addressed unit, or of every unit of the addressed target; `RESET_BUS`: a reset of the
///   port (the path) for every unit on it ([`Disk::reset_port`]). Success: commands never
///   stay outstanding, so there is nothing to abort.
/// - `ABORT_COMMAND`: success. Every command completes inside `HwStartIo`, so the one to
///   abort has already completed.
/// - `FLUSH`, `SHUTDOWN`: the addressed unit's store is flushed; success.
/// - `PNP`, `POWER`: success; a RAM disk has no device or power state to change.
/// - anything else: `SRB_STATUS_INVALID_REQUEST`.
///
/// Except for `RESET_BUS`, a missing path, target or LUN gets the status of [`find`].
pub fn start_io<A: Adapter + ?Sized>(adapter: &A, srb: Srb<'_>) -> Outcome {
    match srb.function {
        function::RESET_BUS => {
            // Each disk appears once on each path: reset the port of this one.
            for unit in adapter.units() {
                if unit.address.path_id == srb.address.path_id {
                    unit.disk.reset_port(srb.address.path_id);
                }
            }
            return Outcome::srb(srb_status::SUCCESS);
        }
        function::EXECUTE_SCSI
        | function::RESET_LOGICAL_UNIT
        | function::RESET_DEVICE
        | function::ABORT_COMMAND
        | function::FLUSH
        | function::SHUTDOWN
        | function::PNP
        | function::POWER => {}
        _ => return Outcome::srb(srb_status::INVALID_REQUEST),
    }
    let unit = match find(adapter, srb.address) {
        Ok(unit) => unit,
        Err(status) => return Outcome::srb(status),
    };
    match srb.function {
        function::EXECUTE_SCSI => {
            // Only REPORT LUNS needs the list; skip the walk for everything else.
            let walked;
            let luns = if srb.cdb.first() == Some(&super::op::REPORT_LUNS) {
                walked = luns_of(adapter, srb.address);
                &walked
            } else {
                &NO_LUNS
            };
            unit.disk.execute(
                unit.store,
                Request {
                    cdb: srb.cdb,
                    data: srb.data,
                    autosense: srb.autosense,
                    luns,
                    port: srb.address.path_id,
                },
            )
        }
        function::RESET_LOGICAL_UNIT => {
            unit.disk.reset();
            Outcome::srb(srb_status::SUCCESS)
        }
        function::RESET_DEVICE => {
            for other in adapter.units() {
                if other.address.path_id == srb.address.path_id
                    && other.address.target_id == srb.address.target_id
                {
                    other.disk.reset();
                }
            }
            Outcome::srb(srb_status::SUCCESS)
        }
        function::FLUSH | function::SHUTDOWN => {
            unit.store.flush();
            Outcome::srb(srb_status::SUCCESS)
        }
        _ => Outcome::srb(srb_status::SUCCESS),
    }
}
