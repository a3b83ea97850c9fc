//! One logical unit: its configuration, its atomics, and the command dispatcher.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::config::{ConfigError, DiskConfig};
use super::reply::{Cdb, Reply, data_in};
use super::sense::{SenseData, asc};
use super::srb::LunSet;
use super::{Autosense, BlockStore, DataBuffer, Outcome, scsi_status, srb_status};

/// Operation codes the disk implements (SPC-4, SBC-3).
pub mod op {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE.
    pub const REQUEST_SENSE: u8 = 0x03;
    /// READ(6).
    pub const READ_6: u8 = 0x08;
    /// WRITE(6).
    pub const WRITE_6: u8 = 0x0A;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// MODE SELECT(6).
    pub const MODE_SELECT_6: u8 = 0x15;
    /// RESERVE(6) (SPC-2).
    pub const RESERVE_6: u8 = 0x16;
    /// RELEASE(6) (SPC-2).
    pub const RELEASE_6: u8 = 0x17;
    /// MODE SENSE(6).
    pub const MODE_SENSE_6: u8 = 0x1A;
    /// START STOP UNIT.
    pub const START_STOP_UNIT: u8 = 0x1B;
    /// PREVENT ALLOW MEDIUM REMOVAL.
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
    /// READ CAPACITY(10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ(10).
    pub const READ_10: u8 = 0x28;
    /// WRITE(10).
    pub const WRITE_10: u8 = 0x2A;
    /// WRITE AND VERIFY(10).
    pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
    /// VERIFY(10).
    pub const VERIFY_10: u8 = 0x2F;
    /// PRE-FETCH(10).
    pub const PRE_FETCH_10: u8 = 0x34;
    /// SYNCHRONIZE CACHE(10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// WRITE SAME(10).
    pub const WRITE_SAME_10: u8 = 0x41;
    /// UNMAP.
    pub const UNMAP: u8 = 0x42;
    /// READ DEFECT DATA(10).
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    /// LOG SENSE.
    pub const LOG_SENSE: u8 = 0x4D;
    /// MODE SELECT(10).
    pub const MODE_SELECT_10: u8 = 0x55;
    /// MODE SENSE(10).
    pub const MODE_SENSE_10: u8 = 0x5A;
    /// PERSISTENT RESERVE IN.
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
    /// PERSISTENT RESERVE OUT.
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
    /// READ(16).
    pub const READ_16: u8 = 0x88;
    /// COMPARE AND WRITE.
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    /// WRITE(16).
    pub const WRITE_16: u8 = 0x8A;
    /// ORWRITE(16).
    pub const ORWRITE_16: u8 = 0x8B;
    /// WRITE AND VERIFY(16).
    pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
    /// VERIFY(16).
    pub const VERIFY_16: u8 = 0x8F;
    /// PRE-FETCH(16).
    pub const PRE_FETCH_16: u8 = 0x90;
    /// SYNCHRONIZE CACHE(16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// WRITE SAME(16).
    pub const WRITE_SAME_16: u8 = 0x93;
    /// WRITE ATOMIC(16) (SBC-4).
    pub const WRITE_ATOMIC_16: u8 = 0x9C;
    /// SERVICE ACTION IN(16): READ CAPACITY(16) (10h), GET LBA STATUS (12h).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    /// REPORT LUNS.
    pub const REPORT_LUNS: u8 = 0xA0;
    /// MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES (0Ch).
    pub const MAINTENANCE_IN: u8 = 0xA3;
    /// READ(12).
    pub const READ_12: u8 = 0xA8;
    /// WRITE(12).
    pub const WRITE_12: u8 = 0xAA;
    /// READ DEFECT DATA(12).
    pub const READ_DEFECT_DATA_12: u8 = 0xB7;
    /// WRITE AND VERIFY(12).
    pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
    /// VERIFY(12).
    pub const VERIFY_12: u8 = 0xAF;

    /// Every operation code above, ascending.
    pub const ALL: [u8; 44] = [
        TEST_UNIT_READY,
        REQUEST_SENSE,
        READ_6,
        WRITE_6,
        INQUIRY,
        MODE_SELECT_6,
        RESERVE_6,
        RELEASE_6,
        MODE_SENSE_6,
        START_STOP_UNIT,
        PREVENT_ALLOW_MEDIUM_REMOVAL,
        READ_CAPACITY_10,
        READ_10,
        WRITE_10,
        WRITE_AND_VERIFY_10,
        VERIFY_10,
        PRE_FETCH_10,
        SYNCHRONIZE_CACHE_10,
        READ_DEFECT_DATA_10,
        WRITE_SAME_10,
        UNMAP,
        LOG_SENSE,
        MODE_SELECT_10,
        MODE_SENSE_10,
        PERSISTENT_RESERVE_IN,
        PERSISTENT_RESERVE_OUT,
        READ_16,
        COMPARE_AND_WRITE,
        WRITE_16,
        ORWRITE_16,
        WRITE_AND_VERIFY_16,
        VERIFY_16,
        PRE_FETCH_16,
        SYNCHRONIZE_CACHE_16,
        WRITE_SAME_16,
        WRITE_ATOMIC_16,
        SERVICE_ACTION_IN_16,
        REPORT_LUNS,
        MAINTENANCE_IN,
        READ_12,
        WRITE_12,
        WRITE_AND_VERIFY_12,
        VERIFY_12,
        READ_DEFECT_DATA_12,
    ];
}

/// Service actions of SERVICE ACTION IN(16).
const SA_READ_CAPACITY_16: u8 = 0x10;
const SA_GET_LBA_STATUS: u8 = 0x12;

/// A command handler's result: an outcome, or the sense of a CHECK CONDITION.
pub type Handled = Result<Outcome, SenseData>;

/// CDB length implied by the operation code's group (SPC-4).
pub const fn cdb_length(opcode: u8) -> u8 {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        5 => 12,
        _ => 16,
    }
}

/// One command sent to a disk.
#[derive(Debug)]
pub struct Request<'a> {
    /// The CDB (`Cdb[..CdbLength]` of the SRB).
    pub cdb: &'a [u8],
    /// The data buffer and its direction.
    pub data: DataBuffer<'a>,
    /// Where sense goes on CHECK CONDITION.
    pub autosense: Autosense,
    /// LUNs of this disk's target, for REPORT LUNS.
    pub luns: &'a LunSet,
    /// The target port the command came through (the SRB's `PathId`): with several ports
    /// each stands for one `I_T` nexus, whose unit attentions and reservation the disk keeps
    /// apart (see the `nexus` module).
    pub port: u8,
}

/// A RAM-backed direct-access logical unit (SBC-3).
///
/// All methods take `&self`; the mutable state is atomic, so one `Disk` serves concurrent
/// `HwStartIo` calls on several processors. Commands are independent and complete before
/// [`Disk::execute`] returns: nothing is ever outstanding.
#[derive(Debug)]
pub struct Disk {
    config: DiskConfig,
    /// Caching page WCE, current value (MODE SELECT changes it).
    write_cache: AtomicBool,
    /// Sense of a CHECK CONDITION returned with autosense disabled, packed by
    /// [`SenseData::pack`]; 0 = none. Last writer wins: there is one initiator, the OS.
    pub(super) deferred_sense: AtomicU64,
    /// Write protection (starts as `config.read_only`, follows [`Disk::set_read_only`]: the
    /// adapter's `ScsiSetRunningConfig`), the reservation word and the unit attentions.
    pub(super) state: super::state::StateWord,
    /// Persistent reservations (SPC-4): registrations and keys (the reservation itself is in
    /// `state`).
    pub(super) persistent: super::persistent::Persistent,
    /// The standard INQUIRY data, built from the identity once.
    pub(super) standard: [u8; super::inquiry::STANDARD_LEN as usize],
}

impl Disk {
    /// A disk described by `config`.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`DiskConfig::validate`].
    pub const fn new(config: DiskConfig) -> Result<Self, ConfigError> {
        if let Err(e) = config.validate() {
            return Err(e);
        }
        Ok(Self {
            write_cache: AtomicBool::new(config.write_cache),
            config,
            deferred_sense: AtomicU64::new(0),
            state: super::state::StateWord::new(config.read_only),
            persistent: super::persistent::Persistent::new(),
            standard: super::inquiry::standard_data(&config.identity),
        })
    }

    /// The configuration this disk was created with.
    pub const fn config(&self) -> &DiskConfig {
        &self.config
    }

    /// Current WCE bit of the caching mode page.
    pub fn write_cache_enabled(&self) -> bool {
        self.write_cache.load(Ordering::Relaxed)
    }

    pub(crate) fn set_write_cache(&self, on: bool) {
        self.write_cache.store(on, Ordering::Relaxed);
    }

    /// Whether the medium currently refuses writes (write protected): DATA PROTECT for
    /// writes, WP in MODE SENSE.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.state.read_only()
    }

    /// Write-protects the medium or lifts the protection, for commands that
    /// start after this call.
    pub fn set_read_only(&self, read_only: bool) {
        self.state.set_read_only(read_only);
    }

    /// Block size in bytes.
    pub(crate) const fn block_bytes(&self) -> u64 {
        self.config.block_size.bytes() as u64
    }

    /// Runs one SCSI command.
    ///
    /// Never panics, allocates or waits, whatever the CDB and buffers hold.
    pub fn execute<S: BlockStore + ?Sized>(&self, store: &S, request: Request<'_>) -> Outcome {
        let Some(&opcode) = request.cdb.first() else {
            return Outcome::srb(srb_status::INVALID_REQUEST);
        };
        if !super::opcodes::is_implemented(opcode) {
            return self.fail(
                SenseData::illegal(asc::INVALID_COMMAND_OPERATION_CODE).with_field(
                    super::FieldPointer {
                        in_cdb: true,
                        byte: 0,
                        bit: Some(7),
                    },
                ),
                request.autosense,
            );
        }
        let len = usize::from(cdb_length(opcode));
        if request.cdb.len() < len {
            return Outcome::srb(srb_status::INVALID_REQUEST);
        }
        let cdb = Cdb::new(request.cdb.get(..len).unwrap_or(&[]));
        if let Some(attention) = self.take_attention(opcode, request.port) {
            if opcode == op::REQUEST_SENSE {
                return self.request_sense(&cdb, request.data, Some(attention));
            }
            return self.fail(attention, request.autosense);
        }
        if let Some(conflict) = self.check_reservation(opcode, request.port) {
            return conflict;
        }
        match self.dispatch(store, &cdb, len, request.data, request.luns, request.port) {
            Ok(outcome) => outcome,
            Err(sense) => self.fail(sense, request.autosense),
        }
    }

    /// CHECK CONDITION, with sense returned or deferred.
    fn fail(&self, sense: SenseData, autosense: Autosense) -> Outcome {
        match autosense {
            Autosense::Enabled => Outcome::check(sense),
            Autosense::Disabled => {
                self.deferred_sense.store(sense.pack(), Ordering::Relaxed);
                Outcome {
                    srb_status: srb_status::ERROR,
                    scsi_status: scsi_status::CHECK_CONDITION,
                    sense: None,
                    transferred: 0,
                }
            }
        }
    }

    fn dispatch<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        len: usize,
        data: DataBuffer<'_>,
        luns: &LunSet,
        port: u8,
    ) -> Handled {
        // CONTROL byte (SPC-4): NACA is not supported (NormACA = 0 in INQUIRY) and
        // linked commands are obsolete, so either bit set is an invalid field.
        let control = len - 1;
        if cdb.u8(control) & 0x05 != 0 {
            let bit = if cdb.bit(control, 2) { 2 } else { 0 };
            return Err(SenseData::invalid_cdb_field(
                super::reply::ptr(control),
                Some(bit),
            ));
        }
        match cdb.u8(0) {
            op::TEST_UNIT_READY => Ok(Outcome::good(0)),
            op::REQUEST_SENSE => Ok(self.request_sense(cdb, data, None)),
            op::RESERVE_6 => self.reserve(cdb, port),
            op::RELEASE_6 => self.release(cdb, port),
            op::PERSISTENT_RESERVE_IN => self.persistent_reserve_in(store, cdb, data),
            op::PERSISTENT_RESERVE_OUT => self.persistent_reserve_out(store, cdb, data, port),
            op::INQUIRY => self.inquiry(cdb, data),
            op::LOG_SENSE => Self::log_sense(cdb, data),
            op::MODE_SENSE_6 => self.mode_sense(cdb, false, data),
            op::MODE_SENSE_10 => self.mode_sense(cdb, true, data),
            op::MODE_SELECT_6 => self.mode_select(cdb, false, data),
            op::MODE_SELECT_10 => self.mode_select(cdb, true, data),
            op::START_STOP_UNIT => Self::start_stop_unit(cdb),
            op::PREVENT_ALLOW_MEDIUM_REMOVAL => Self::prevent_allow(cdb),
            op::READ_CAPACITY_10 => self.read_capacity_10(cdb, data),
            op::SERVICE_ACTION_IN_16 => match cdb.u8(1) & 0x1F {
                SA_READ_CAPACITY_16 => self.read_capacity_16(cdb, data),
                SA_GET_LBA_STATUS => self.get_lba_status(cdb, data),
                _ => Err(SenseData::invalid_cdb_field(1, Some(4))),
            },
            op::REPORT_LUNS => Self::report_luns(cdb, data, luns),
            op::READ_DEFECT_DATA_10 | op::READ_DEFECT_DATA_12 => {
                Ok(Self::read_defect_data(cdb, data))
            }
            op::MAINTENANCE_IN => match cdb.u8(1) & 0x1F {
                super::opcodes::SA_REPORT_SUPPORTED_OPCODES => {
                    Self::report_supported_opcodes(cdb, data)
                }
                _ => Err(SenseData::invalid_cdb_field(1, Some(4))),
            },
            op::READ_6 | op::READ_10 | op::READ_12 | op::READ_16 => self.read(store, cdb, data),
            op::WRITE_6 | op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => {
                self.write(store, cdb, data)
            }
            op::WRITE_AND_VERIFY_10 | op::WRITE_AND_VERIFY_12 | op::WRITE_AND_VERIFY_16 => {
                self.write_and_verify(store, cdb, data)
            }
            op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => self.verify(store, cdb, data),
            op::COMPARE_AND_WRITE => self.compare_and_write(store, cdb, data),
            op::ORWRITE_16 => self.or_write(store, cdb, data),
            op::WRITE_ATOMIC_16 => self.write_atomic(store, cdb, data),
            op::WRITE_SAME_10 | op::WRITE_SAME_16 => self.write_same(store, cdb, data),
            op::UNMAP => self.unmap(store, cdb, data),
            op::SYNCHRONIZE_CACHE_10
            | op::SYNCHRONIZE_CACHE_16
            | op::PRE_FETCH_10
            | op::PRE_FETCH_16 => self.synchronize_cache(store, cdb),
            _ => Err(SenseData::illegal(asc::INVALID_COMMAND_OPERATION_CODE)),
        }
    }

    /// REQUEST SENSE (SPC-4): `attention` (a unit attention just taken for this port), else
    /// the deferred sense, or NO SENSE; DESC selects descriptor format (supported). The
    /// deferred sense is cleared once reported.
    fn request_sense(
        &self,
        cdb: &Cdb,
        data: DataBuffer<'_>,
        attention: Option<SenseData>,
    ) -> Outcome {
        let desc = cdb.bit(1, 0);
        let alloc = usize::from(cdb.u8(4));
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return outcome,
        };
        let sense = attention.unwrap_or_else(|| {
            let pending = self.deferred_sense.swap(0, Ordering::Relaxed);
            SenseData::unpack(pending).unwrap_or_else(SenseData::no_sense)
        });
        let mut reply = Reply::new(buf, alloc);
        if desc {
            let (bytes, len) = sense.descriptor();
            reply.bytes(bytes.get(..len).unwrap_or(&[]));
        } else {
            reply.bytes(&sense.fixed());
        }
        reply.finish()
    }

    /// START STOP UNIT (SBC-3). The RAM disk has no spindle and no removable medium, so
    /// START and IMMED are accepted and change nothing (the unit stays ready). A POWER
    /// CONDITION other than 0 (no power condition mode page is implemented) and LOEJ = 1
    /// (nothing to load or eject: RMB = 0) are invalid fields.
    fn start_stop_unit(cdb: &Cdb) -> Handled {
        if cdb.u8(4) >> 4 != 0 {
            return Err(SenseData::invalid_cdb_field(4, Some(7)));
        }
        if cdb.bit(4, 1) {
            return Err(SenseData::invalid_cdb_field(4, Some(1)));
        }
        Ok(Outcome::good(0))
    }

    /// PREVENT ALLOW MEDIUM REMOVAL (SBC-3). PREVENT = 00b asks that removal be allowed and
    /// 01b that it be prevented; the medium of this disk is not removable (RMB = 0), so it
    /// can never be removed and both requests already hold: GOOD, nothing changes (QEMU's
    /// SCSI disk answers the same way). The 1xb values are obsolete/reserved in SBC-3 and
    /// get INVALID FIELD IN CDB.
    fn prevent_allow(cdb: &Cdb) -> Handled {
        if cdb.bit(4, 1) {
            return Err(SenseData::invalid_cdb_field(4, Some(1)));
        }
        Ok(Outcome::good(0))
    }

    /// READ CAPACITY(10) (SBC-3): last LBA, or `FFFF_FFFFh` when it does not fit, and the
    /// block length. PMI = 0 requires LBA = 0; PMI = 1 (obsolete) returns the same data.
    fn read_capacity_10(&self, cdb: &Cdb, data: DataBuffer<'_>) -> Handled {
        if !cdb.bit(8, 0) && cdb.be32(2) != 0 {
            return Err(SenseData::invalid_cdb_field(2, None));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let last = self.config.block_count - 1;
        let mut reply = Reply::new(buf, 8);
        reply.be32(u32::try_from(last).unwrap_or(u32::MAX));
        reply.be32(self.config.block_size.bytes());
        Ok(reply.finish())
    }

    /// READ CAPACITY(16) (SBC-3): 32 bytes with LBPME = 1 (logical block provisioning
    /// management: UNMAP and WRITE SAME with UNMAP, on a resource provisioned unit, see VPD
    /// page B2h) and LBPRZ = 1, as page B2h reports. Allocation length 0 is not an error and
    /// transfers nothing (SPC-4).
    fn read_capacity_16(&self, cdb: &Cdb, data: DataBuffer<'_>) -> Handled {
        if !cdb.bit(14, 0) && cdb.be64(2) != 0 {
            return Err(SenseData::invalid_cdb_field(2, None));
        }
        let alloc = usize::try_from(cdb.be32(10)).unwrap_or(usize::MAX);
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let mut reply = Reply::new(buf, alloc);
        reply.be64(self.config.block_count - 1);
        reply.be32(self.config.block_size.bytes());
        reply.byte(0); // P_TYPE, PROT_EN = 0: no protection information
        reply.byte(0); // P_I_EXPONENT, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT = 0
        reply.be16(0xC000); // LBPME, LBPRZ; LOWEST ALIGNED LBA = 0
        reply.zeros(16);
        Ok(reply.finish())
    }

    /// GET LBA STATUS (SBC-3). The disk is resource provisioned (VPD page B2h): no block is
    /// ever deallocated, and it does not track which blocks UNMAP zeroed (an unmapped block
    /// reads zero either way, LBPRZ = 1), so it answers with one descriptor from the starting
    /// LBA to the end of the medium (capped at 2^32 − 1 blocks) with PROVISIONING STATUS 0h,
    /// "mapped or unknown" (SBC-4).
    fn get_lba_status(&self, cdb: &Cdb, data: DataBuffer<'_>) -> Handled {
        let lba = cdb.be64(2);
        let alloc = usize::try_from(cdb.be32(10)).unwrap_or(usize::MAX);
        if lba >= self.config.block_count {
            return Err(SenseData::illegal(asc::LBA_OUT_OF_RANGE));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let mut reply = Reply::new(buf, alloc);
        reply.be32(20); // PARAMETER DATA LENGTH: 4 reserved + one 16-byte descriptor
        reply.zeros(4);
        reply.be64(lba);
        reply.be32(u32::try_from(self.config.block_count - lba).unwrap_or(u32::MAX));
        reply.byte(0); // mapped or unknown
        reply.zeros(3);
        Ok(reply.finish())
    }

    /// READ DEFECT DATA(10/12) (SBC-3). RAM has no defects: the lists asked for (`REQ_PLIST`,
    /// `REQ_GLIST`) are reported valid and empty, in the DEFECT LIST FORMAT asked for, which
    /// needs no conversion when there is nothing to list.
    fn read_defect_data(cdb: &Cdb, data: DataBuffer<'_>) -> Outcome {
        let (flags, alloc, header) = if cdb.u8(0) == op::READ_DEFECT_DATA_12 {
            (cdb.u8(1), cdb.be32(6), 8)
        } else {
            (cdb.u8(2), u32::from(cdb.be16(7)), 4)
        };
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return outcome,
        };
        let mut reply = Reply::new(buf, usize::try_from(alloc).unwrap_or(usize::MAX));
        reply.byte(0);
        reply.byte(flags & 0x1F); // PLISTV, GLISTV, DEFECT LIST FORMAT
        reply.zeros(header - 2); // (GENERATION CODE,) DEFECT LIST LENGTH 0
        reply.finish()
    }

    /// REPORT LUNS (SPC-4). SELECT REPORT 00h and 02h list the target's LUNs, 01h (well
    /// known LUNs only) an empty list; others are invalid. An ALLOCATION LENGTH below 16 is
    /// INVALID FIELD IN CDB, as SPC-4 requires.
    fn report_luns(cdb: &Cdb, data: DataBuffer<'_>, luns: &LunSet) -> Handled {
        let select = cdb.u8(2);
        if !matches!(select, 0x00..=0x02) {
            return Err(SenseData::invalid_cdb_field(2, None));
        }
        let alloc = cdb.be32(6);
        if alloc < 16 {
            return Err(SenseData::invalid_cdb_field(6, None));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let count = if select == 0x01 { 0 } else { luns.len() };
        let mut reply = Reply::new(buf, usize::try_from(alloc).unwrap_or(usize::MAX));
        reply.be32(count * 8);
        reply.zeros(4);
        if select != 0x01 {
            for lun in luns.iter() {
                // Peripheral device addressing, single level (SAM-5).
                reply.byte(0);
                reply.byte(lun);
                reply.zeros(6);
            }
        }
        Ok(reply.finish())
    }
}
