//! The SRB-function level of `HwStartIo`: addressing, SCSI commands ([`execute`]) and the
//! functions other than `SRB_FUNCTION_EXECUTE_SCSI` ([`control`]).
//!
//! Addressing: an SRB for a path or target the adapter does not have completes with
//! `SRB_STATUS_NO_DEVICE`; one for a missing LUN of an existing target with
//! `SRB_STATUS_INVALID_LUN`. Both are statuses Storport's bus scan takes as "nothing here"
//! ("Error Handling in Storport Miniport Drivers" lists `SRB_STATUS_NO_DEVICE` among the statuses a
//! miniport reports; `SRB_STATUS_INVALID_LUN` is the srb.h status for a nonexistent LUN).
//!
//! The caller decides the function first and hands over only what that function's layout
//! gives: a [`Command`] (address, CDB, data, autosense) for a SCSI command, a [`Control`]
//! (the function and the address members its page makes valid) for everything else. A
//! control request is answered with an SRB status alone: no SCSI status, sense or transfer
//! length, which `SCSI_PNP_REQUEST_BLOCK`, `SCSI_POWER_REQUEST_BLOCK` and the other functions'
//! rows of "`SCSI_REQUEST_BLOCK` structure (srb.h)" do not give the miniport to set.

use super::disk::Request;
use super::{Autosense, BlockStore, DataBuffer, Disk, Outcome, PlainCommand, PlainIo, srb_status};

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

/// One SCSI command (`SRB_FUNCTION_EXECUTE_SCSI`) as the driver hands it over.
#[derive(Debug)]
pub struct Command<'a> {
    /// `PathId`, `TargetId`, `Lun`.
    pub address: Address,
    /// `Cdb[..CdbLength]`.
    pub cdb: &'a [u8],
    /// `DataBuffer[..DataTransferLength]` with its direction.
    pub data: DataBuffer<'a>,
    /// Whether the SRB can carry sense back.
    pub autosense: Autosense,
}

/// One request of another SRB function, with the address members its page makes valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// `SRB_FUNCTION_RESET_BUS`: only `PathId` is valid.
    ResetBus {
        /// `PathId`.
        path_id: u8,
    },
    /// `SRB_FUNCTION_RESET_DEVICE`: `PathId` and `TargetId` are valid, `Lun` is not.
    ResetDevice {
        /// `PathId`.
        path_id: u8,
        /// `TargetId`.
        target_id: u8,
    },
    /// `SRB_FUNCTION_RESET_LOGICAL_UNIT`.
    ResetLogicalUnit(Address),
    /// `SRB_FUNCTION_ABORT_COMMAND`.
    AbortCommand(Address),
    /// `SRB_FUNCTION_FLUSH`.
    Flush(Address),
    /// `SRB_FUNCTION_SHUTDOWN`.
    Shutdown(Address),
    /// `SRB_FUNCTION_PNP`, for a unit or (`None`) for the adapter.
    Pnp(Option<Address>),
    /// `SRB_FUNCTION_POWER`, for a unit or (`None`) for the adapter.
    Power(Option<Address>),
    /// Any other function (`IO_CONTROL`, `WMI`, ...), which this adapter does not support.
    Unsupported,
}

impl Control {
    /// The request an SRB of `function` at `address` makes, for callers that hold a plain
    /// SRB rather than the storport views (host tests, fuzzing): the address members the
    /// function's page makes valid, PNP and POWER as requests for the unit. `None` for
    /// `SRB_FUNCTION_EXECUTE_SCSI`, which is a [`Command`].
    #[must_use]
    pub const fn for_function(function: u8, address: Address) -> Option<Self> {
        Some(match function {
            0x00 => return None,
            0x07 => Self::Shutdown(address),
            0x08 => Self::Flush(address),
            0x10 => Self::AbortCommand(address),
            0x12 => Self::ResetBus {
                path_id: address.path_id,
            },
            0x13 => Self::ResetDevice {
                path_id: address.path_id,
                target_id: address.target_id,
            },
            0x20 => Self::ResetLogicalUnit(address),
            0x24 => Self::Power(Some(address)),
            0x25 => Self::Pnp(Some(address)),
            _ => Self::Unsupported,
        })
    }
}

/// Finds the unit at `address`, or the SRB status for its absence.
///
/// # Errors
///
/// `SRB_STATUS_NO_DEVICE` when no unit has this path and target, `SRB_STATUS_INVALID_LUN`
/// when the target exists but not the LUN.
#[inline]
pub fn find<A: Adapter + ?Sized>(adapter: &A, address: Address) -> Result<Unit<'_, A::Store>, u8> {
    adapter
        .unit(address)
        .ok_or_else(|| missing(adapter, address))
}

/// The SRB status for no unit at `address` (see [`find`]). Out of line: a command to a unit
/// that exists never pays for it.
#[cold]
#[inline(never)]
fn missing<A: Adapter + ?Sized>(adapter: &A, address: Address) -> u8 {
    let target_seen = adapter.units().any(|unit| {
        unit.address.path_id == address.path_id && unit.address.target_id == address.target_id
    });
    if target_seen {
        srb_status::INVALID_LUN
    } else {
        srb_status::NO_DEVICE
    }
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

/// Runs one SCSI command on the addressed disk ([`Disk::execute`]); the caller completes the
/// SRB with the returned outcome. A missing path, target or LUN gets the status of [`find`].
pub fn execute<A: Adapter + ?Sized>(adapter: &A, command: Command<'_>) -> Outcome {
    let unit = match find(adapter, command.address) {
        Ok(unit) => unit,
        Err(status) => return Outcome::srb(status),
    };
    // READ(10/16), WRITE(10/16), TEST UNIT READY and standard INQUIRY in the plain case
    // first; everything else (and those when anything about them is out of the ordinary)
    // below.
    let mut plain = PlainCommand {
        cdb: command.cdb,
        data: command.data,
    };
    if let Some(outcome) = unit
        .disk
        .plain_request(unit.store, &mut plain)
        .or_else(|| unit.disk.plain_other(unit.store, &mut plain))
    {
        return outcome;
    }
    let data = plain.data;
    // Only REPORT LUNS needs the list; skip the walk for everything else.
    let walked;
    let luns = if command.cdb.first() == Some(&super::op::REPORT_LUNS) {
        walked = luns_of(adapter, command.address);
        &walked
    } else {
        &NO_LUNS
    };
    unit.disk.execute(
        unit.store,
        Request {
            cdb: command.cdb,
            data,
            autosense: command.autosense,
            luns,
            port: command.address.path_id,
        },
    )
}

/// Runs READ(10), WRITE(10) or TEST UNIT READY at `address` in the plain case.
///
/// "Plain" is what the disk's `plain_request` says: nothing about the command is out of the
/// ordinary. The outcome is the one [`execute`] would give: always GOOD, no sense. `None`, the
/// request untouched, for everything else (another command, a missing unit, anything unusual
/// about the command): run it with [`execute`].
#[expect(
    clippy::inline_always,
    reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and READ(10) / WRITE(10) pay for its frame"
)]
#[inline(always)]
pub fn execute_plain<A: Adapter + ?Sized, R: PlainIo>(
    adapter: &A,
    address: Address,
    io: &mut R,
) -> Option<Outcome> {
    let unit = adapter.unit(address)?;
    unit.disk.plain_request(unit.store, io)
}

/// Runs READ(16), WRITE(16) or a standard INQUIRY at `address` in the plain case.
///
/// "Plain" is what the disk's `plain_other` says: nothing about the command out of the
/// ordinary. The outcome is the one [`execute`] would give: GOOD with the bytes moved, no
/// sense. `None`, the request untouched, for everything else (another command, a missing
/// unit, anything unusual about the command): run it with [`execute`].
pub fn execute_plain_other<A: Adapter + ?Sized, R: PlainIo>(
    adapter: &A,
    address: Address,
    io: &mut R,
) -> Option<Outcome> {
    let unit = adapter.unit(address)?;
    unit.disk.plain_other(unit.store, io)
}

/// Answers one request of another SRB function with its `SRB_STATUS_*`; the caller
/// completes the SRB with that status and sets nothing else.
///
/// - `RESET_LOGICAL_UNIT`: a logical unit reset ([`Disk::reset`]) of the addressed unit;
///   `RESET_DEVICE`: of every unit of the addressed target; `RESET_BUS`: a reset of the port
///   (the path) for every unit on it ([`Disk::reset_port`]). Success: commands never stay
///   outstanding, so there is nothing to abort.
/// - `ABORT_COMMAND`: success. Every command completes inside `HwStartIo`, so the one to
///   abort has already completed.
/// - `FLUSH`, `SHUTDOWN`: the addressed unit's store is flushed; success.
/// - `PNP`, `POWER`: success; a RAM disk has no device or power state to change. A request
///   for the adapter needs no unit.
/// - anything else: `SRB_STATUS_INVALID_REQUEST`.
///
/// A unit or target that does not exist gets the status of [`find`] (a target without units:
/// `SRB_STATUS_NO_DEVICE`); a bus reset succeeds for any path.
pub fn control<A: Adapter + ?Sized>(adapter: &A, control: Control) -> u8 {
    match control {
        Control::ResetBus { path_id } => {
            // Each disk appears once on each path: reset the port of this one.
            for unit in adapter.units() {
                if unit.address.path_id == path_id {
                    unit.disk.reset_port(path_id);
                }
            }
            srb_status::SUCCESS
        }
        Control::ResetDevice { path_id, target_id } => {
            let mut found = false;
            for unit in adapter.units() {
                if unit.address.path_id == path_id && unit.address.target_id == target_id {
                    unit.disk.reset();
                    found = true;
                }
            }
            if found {
                srb_status::SUCCESS
            } else {
                srb_status::NO_DEVICE
            }
        }
        Control::ResetLogicalUnit(address) => match find(adapter, address) {
            Ok(unit) => {
                unit.disk.reset();
                srb_status::SUCCESS
            }
            Err(status) => status,
        },
        Control::Flush(address) | Control::Shutdown(address) => match find(adapter, address) {
            Ok(unit) => {
                unit.store.flush();
                srb_status::SUCCESS
            }
            Err(status) => status,
        },
        Control::AbortCommand(address)
        | Control::Pnp(Some(address))
        | Control::Power(Some(address)) => match find(adapter, address) {
            Ok(_) => srb_status::SUCCESS,
            Err(status) => status,
        },
        Control::Pnp(None) | Control::Power(None) => srb_status::SUCCESS,
        Control::Unsupported => srb_status::INVALID_REQUEST,
    }
}
