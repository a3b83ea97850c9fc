//! SCSI disk logic: CDB decoding, sense data, INQUIRY/VPD and mode pages, LBA arithmetic.
//!
//! Pure and FFI-free: `core` only, no allocation, no `unsafe`, no panics on any input. It runs
//! inside `HwStartIo` at `DISPATCH_LEVEL`, concurrently on several processors with no lock held,
//! so everything here works through `&self`; the little per-disk state there is (the caching
//! page's WCE bit, write protection, a sense deferred while autosense is off) lives in
//! atomics. The one type it takes from the safe layer is [`LentBytes`], the data-out buffer
//! it may only copy from (in tests, a plain slice lent as such).
//!
//! # How the driver uses it
//!
//! ```text
//! let disk = Disk::new(DiskConfig { .. })?;           // find-adapter, `PASSIVE_LEVEL`
//! // HwStartIo, any IRQL up to `DISPATCH_LEVEL`:
//! let outcome = srb::execute(&adapter, Command { address, cdb, data, autosense });
//! // copy `outcome.sense` into the SRB's sense buffer, set SrbStatus = outcome.srb_status,
//! // ScsiStatus = outcome.scsi_status, DataTransferLength = outcome.transferred; complete.
//! let status = srb::control(&adapter, Control::Flush(address)); // any other SRB function
//! // complete it with SrbStatus = status, nothing else.
//! ```
//!
//! - [`Disk::new`] checks a [`DiskConfig`] (identity strings, block size, capacity, limits).
//! - [`Disk::execute`] runs one CDB against a [`BlockStore`] and returns an [`Outcome`].
//! - [`srb::execute`] routes a SCSI command to the addressed disk, and [`srb::control`]
//!   answers the other SRB functions (resets, abort, flush, shutdown, Plug and Play, power)
//!   with an SRB status alone; both report missing targets and LUNs with the SRB status
//!   Storport expects.
//!
//! # Data-out buffers are read once
//!
//! The data-out buffer is memory the port lends and another party may change while the
//! command runs ([`LentBytes`]): it is only ever copied, never borrowed, and each byte is
//! copied once. A parameter list (UNMAP, PERSISTENT RESERVE OUT, MODE SELECT, the verify half
//! of COMPARE AND WRITE, VERIFY's data) is copied into a small local buffer and every check
//! and every action works from that copy, so what is checked is what is done. UNMAP's list is
//! copied whole, so it is bounded by [`MAX_UNMAP_DESCRIPTORS`]; MODE SELECT's is copied header,
//! block descriptor and page by page (at most 20 bytes at a time); the others in pieces of a
//! few hundred bytes. Data that only lands on the medium (WRITE, WRITE AND VERIFY, WRITE
//! ATOMIC, COMPARE AND WRITE's write half) is copied straight into it
//! ([`BlockStore::write_lent`]), once, as before.
//!
//! # Data buffers and lengths (decisions)
//!
//! The caller says the direction from the SRB flags ([`DataBuffer`]). A data-in command given a
//! non-empty data-out buffer, or the reverse, completes with `SRB_STATUS_INVALID_REQUEST` and
//! touches nothing; [`DataBuffer::None`] behaves as an empty buffer of the right direction and
//! [`DataBuffer::Unspecified`] as a buffer of the right direction.
//!
//! - Commands with an ALLOCATION LENGTH (INQUIRY, MODE SENSE, LOG SENSE, REQUEST SENSE, READ
//!   CAPACITY, REPORT LUNS, GET LBA STATUS): the device returns `min(response, allocation length)` bytes
//!   and that is not an error (SPC-4). A data buffer shorter than that is a normal
//!   truncation too: the bytes that fit are returned with `SRB_STATUS_SUCCESS` and
//!   `transferred` set, so Storport reports the residual.
//! - Commands with a TRANSFER LENGTH or PARAMETER LIST LENGTH (READ, WRITE, VERIFY with
//!   BYTCHK, WRITE SAME, UNMAP, MODE SELECT): a data buffer shorter than the CDB asks for is a
//!   host error reported as `SRB_STATUS_DATA_OVERRUN` (Storport's status for overrun *and*
//!   underrun) with `transferred` = bytes actually moved. A READ copies what fits; anything that
//!   writes moves nothing, so a short buffer never leaves a half-written block behind. A larger
//!   buffer is fine: only the bytes the CDB names are used and `transferred` says how many.
//! - A request moving more than [`Limits::max_transfer_bytes`] (1 MiB by default, the adapter's
//!   `MaximumTransferLength`, reported as MAXIMUM TRANSFER LENGTH in VPD page B0h) ends in
//!   CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN CDB pointing at the length field, as
//!   SBC-3 requires for READ and WRITE.
//! - A CDB shorter than its operation code's group size is a malformed SRB:
//!   `SRB_STATUS_INVALID_REQUEST`. Bytes past the group size are ignored.
//!
//! Errors are CHECK CONDITION with fixed-format sense (response code 70h) and
//! `SRB_STATUS_ERROR | SRB_STATUS_AUTOSENSE_VALID`. With [`Autosense::Disabled`] the sense is
//! kept instead and returned by the next REQUEST SENSE (SPC-4).
//!
//! # Other decisions (details at each command)
//!
//! - Saved mode values are not implemented (a RAM disk has nowhere to save them): PS = 0,
//!   MODE SENSE with PC = 11b is SAVING PARAMETERS NOT SUPPORTED (05/39/00), MODE SELECT with
//!   SP = 1 is INVALID FIELD IN CDB, as SPC-4 prescribes for a unit without saved pages.
//!   MODE SELECT needs PF = 1; only WCE is changeable; the whole list is checked before WCE
//!   changes.
//! - Write cache: WCE is reported and changeable but the medium is RAM, so writes are in
//!   place when they complete; SYNCHRONIZE CACHE, FUA, SRB flush and shutdown call
//!   [`BlockStore::flush`].
//! - Logical block provisioning: resource provisioned (B2h provisioning type 001b, SBC-4),
//!   since the medium is allocated in full up front and UNMAP frees nothing; LBPME = 1 (UNMAP
//!   and WRITE SAME with UNMAP are supported, which SBC-4 allows a resource provisioned unit)
//!   and LBPRZ = 1 in READ CAPACITY(16) and page B2h alike; UNMAP and WRITE SAME with a zero
//!   block call [`BlockStore::zero`]; GET LBA STATUS reports "mapped or unknown" (0h), never
//!   deallocated, which a resource provisioned unit does not have. WSNZ = 1 (WRITE SAME
//!   needs a block count); NDOB (SBC-4) accepted.
//! - LOG SENSE: supported pages (00h, 00h/FFh), temperature (0Dh, "not available") and
//!   informational exceptions (2Fh); nothing saved, no thresholds, no LOG SELECT. See the
//!   `log` module.
//! - Identification: VPD 83h carries an NAA 3 (locally assigned) designator from
//!   [`DiskConfig::naa_local_id`] and a T10 vendor ID designator (vendor, product, serial).
//! - CONTROL byte with NACA or LINK set: INVALID FIELD IN CDB (`NormACA` = 0).
//! - START STOP UNIT with START 0 or 1 is accepted and the unit stays ready; PREVENT ALLOW
//!   MEDIUM REMOVAL accepts 00b and 01b (the medium can never be removed).
//! - REPORT SUPPORTED OPERATION CODES lists every implemented command with CDB usage data
//!   from one compact table (`opcodes.rs`), which also decides which operation codes exist.
//! - WRITE AND VERIFY writes through the WRITE path; on RAM the data read back is the data
//!   written, so the verification cannot fail. PRE-FETCH is a range check answered with GOOD.
//! - COMPARE AND WRITE, ORWRITE(16) and WRITE ATOMIC(16) change the medium in one
//!   [`BlockStore::atomically`] step, so no concurrent command sees them half done; they name
//!   at most [`MAX_ATOMIC_BYTES`] (Block Limits: MAXIMUM COMPARE AND WRITE LENGTH, MAXIMUM
//!   ATOMIC TRANSFER LENGTH; no atomic alignment, granularity or boundary).
//! - Unit attentions follow resets only (not MODE SELECT, not power-on), per target port;
//!   RESERVE(6)/RELEASE(6) reserve the unit to one port. See the `nexus` module.

mod atomic;
mod config;
mod disk;
mod inquiry;
mod io;
mod log;
mod mode;
mod nexus;
mod opcodes;
mod persistent;
mod reply;
mod sense;
pub mod srb;
mod state;

#[cfg(test)]
mod tests;

pub use config::{BlockSize, ConfigError, DiskConfig, Identity, Limits, Plain};
pub use disk::{Disk, Request, op};
pub use nexus::MAX_PORTS;
pub use sense::{FieldPointer, SenseData, SenseDetail, asc, sense_key};
pub use srb::LunSet;
pub use storport::LentBytes;

/// `SRB_STATUS_*` values (srb.h) this module completes requests with.
///
/// Kept here rather than taken from `storport-sys` so the module stays FFI-free; the numbers
/// are the ABI's and must not change.
pub mod srb_status {
    /// `SRB_STATUS_SUCCESS`.
    pub const SUCCESS: u8 = 0x01;
    /// `SRB_STATUS_ERROR`: here always a CHECK CONDITION.
    pub const ERROR: u8 = 0x04;
    /// `SRB_STATUS_INVALID_REQUEST`: unsupported SRB function or malformed SRB.
    pub const INVALID_REQUEST: u8 = 0x06;
    /// `SRB_STATUS_NO_DEVICE`: no such path or target.
    pub const NO_DEVICE: u8 = 0x08;
    /// `SRB_STATUS_DATA_OVERRUN`: also used for underruns (see the module notes).
    pub const DATA_OVERRUN: u8 = 0x12;
    /// `SRB_STATUS_INVALID_LUN`: the target exists, the LUN does not.
    pub const INVALID_LUN: u8 = 0x20;
    /// `SRB_STATUS_AUTOSENSE_VALID`: flag bit, sense data was returned with the SRB.
    pub const AUTOSENSE_VALID: u8 = 0x80;
}

/// SCSI status byte values (SAM-5).
pub mod scsi_status {
    /// GOOD.
    pub const GOOD: u8 = 0x00;
    /// CHECK CONDITION: sense data describes the error.
    pub const CHECK_CONDITION: u8 = 0x02;
    /// RESERVATION CONFLICT: another `I_T` nexus holds a reservation of the logical unit.
    pub const RESERVATION_CONFLICT: u8 = 0x18;
}

/// The logical unit's medium, addressed in bytes.
///
/// The disk only calls these with ranges inside its capacity (`byte_offset + len <=
/// block_count * block_size`, no overflow), always in whole blocks, at most
/// [`Limits::max_transfer_bytes`] per call for `read`/`write` and at most
/// [`Limits::max_unmap_bytes`] or [`Limits::max_write_same_bytes`] per call for `zero`.
///
/// Implementations are called concurrently from several processors at any IRQL up to
/// `DISPATCH_LEVEL` (`HwStartIo`'s range) without any lock held by the caller. They must be
/// free of data races in Rust's sense, must not allocate or block, and must not panic. A
/// lock they take must raise the IRQL to `DISPATCH_LEVEL` for the hold (a kernel spin lock:
/// a call below it can be preempted by a request that then spins on the lock for ever) and
/// be held briefly. Concurrent overlapping writes may interleave at any granularity the
/// implementation documents; SCSI gives no ordering between concurrent commands.
pub trait BlockStore {
    /// Fills `out` with the bytes stored at `byte_offset..byte_offset + out.len()`.
    fn read(&self, byte_offset: u64, out: &mut [u8]);
    /// Stores `data` at `byte_offset..byte_offset + data.len()`.
    fn write(&self, byte_offset: u64, data: &[u8]);
    /// Stores the lent bytes `data` at `byte_offset..byte_offset + data.len()`, copying each
    /// byte once (a WRITE's payload). The default copies through a small local buffer into
    /// [`BlockStore::write`]; a store that can copy straight into its medium overrides it.
    fn write_lent(&self, byte_offset: u64, data: LentBytes<'_>) {
        let mut piece = [0_u8; 256];
        let mut done = 0_usize;
        while done < data.len() {
            let n = piece.len().min(data.len() - done);
            let Some(to) = piece.get_mut(..n) else {
                return;
            };
            if !data.copy_to(done, to) {
                return;
            }
            self.write(byte_offset.saturating_add(done as u64), to);
            done += n;
        }
    }
    /// Makes `byte_offset..byte_offset + len` read back as zeros (UNMAP, WRITE SAME with a
    /// zero block). The disk reports LBPRZ = 1, so this must really zero the range.
    fn zero(&self, byte_offset: u64, len: u64);
    /// Makes earlier writes durable (SYNCHRONIZE CACHE, FUA, SRB flush and shutdown). RAM has
    /// nothing to do, hence the default.
    fn flush(&self) {}
    /// Runs `f` on the bytes at `byte_offset..byte_offset + len` as one indivisible step: no
    /// other access to them runs until `f` returns (COMPARE AND WRITE, ORWRITE, WRITE
    /// ATOMIC). The bytes come as two slices, the second continuing the first (empty when
    /// the range is stored in one piece). `len` is at most [`MAX_ATOMIC_BYTES`]. Returns
    /// `false`, without calling `f`, when the store cannot do it (the range lies outside).
    fn atomically(
        &self,
        byte_offset: u64,
        len: usize,
        f: &mut dyn FnMut(&mut [u8], &mut [u8]),
    ) -> bool;
    /// Runs `f` once with the logical unit's lock held exclusively and returns what it
    /// returns: no other `with_unit_lock` call of this store runs until `f` returns. The
    /// disk reads and changes its persistent reservation state (several words) as one step
    /// under it (PERSISTENT RESERVE IN and OUT). `f` does not call back into the store.
    ///
    /// # Errors
    ///
    /// The sense data of the CHECK CONDITION `f` returns, unchanged.
    fn with_unit_lock(
        &self,
        f: &mut dyn FnMut() -> Result<Outcome, SenseData>,
    ) -> Result<Outcome, SenseData>;
}

/// Most bytes one [`BlockStore::atomically`] step covers, and so the most an atomic command
/// (COMPARE AND WRITE's write, ORWRITE, WRITE ATOMIC) may name.
pub const MAX_ATOMIC_BYTES: u32 = 1 << 20;

/// Most block descriptors one UNMAP may carry: MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
///
/// It is the default and the ceiling of [`Limits::max_unmap_descriptors`]. UNMAP copies its whole list
/// into a local buffer before it checks or unmaps anything, and the buffer lives on a 24 KiB
/// kernel stack: 8 + 16 × 64 = 1032 bytes. Windows builds its UNMAP lists within this count
/// (it reads it from the Block Limits page), so a list of more descriptors comes only from a
/// pass-through caller, who gets INVALID FIELD IN PARAMETER LIST as SBC-3 requires.
pub const MAX_UNMAP_DESCRIPTORS: u32 = 64;

/// The SRB's data buffer, with the direction taken from the SRB flags.
#[derive(Debug)]
pub enum DataBuffer<'a> {
    /// No data transfer (`SRB_FLAGS_NO_DATA_TRANSFER` or a zero `DataTransferLength`).
    None,
    /// `SRB_FLAGS_DATA_IN`: the device fills it.
    In(&'a mut [u8]),
    /// `SRB_FLAGS_DATA_OUT`: the device copies from it ([`LentBytes`]).
    Out(LentBytes<'a>),
    /// `SRB_FLAGS_UNSPECIFIED_DIRECTION` (both flags, as pass-through requests with
    /// `SCSI_IOCTL_DATA_UNSPECIFIED` arrive): the command's own direction decides. A
    /// data-out command copies from it as from [`DataBuffer::Out`].
    Unspecified(&'a mut [u8]),
}

impl<'a> DataBuffer<'a> {
    /// A data-out buffer of `bytes` (host tests and callers that hold the data themselves).
    #[must_use]
    pub fn out(bytes: &'a [u8]) -> Self {
        Self::Out(LentBytes::from(bytes))
    }
}

/// What the plain paths ([`srb::execute_plain`], [`srb::execute_plain_other`]) read of a request.
///
/// Each part is read only when the operation code asks for it: the CDB's first bytes, and the
/// data buffer of the one direction the command moves data in. Nothing is decoded before it
/// is needed, so a READ(10) reads the data-in buffer and nothing else.
pub trait PlainIo {
    /// CDB byte 0 when the CDB has a byte; any value otherwise (the plain paths check the
    /// length through [`PlainIo::cdb`] before they act on it).
    fn opcode(&self) -> u8;
    /// The CDB's first `N` bytes, when the CDB has at least `N`.
    fn cdb<const N: usize>(&self) -> Option<&[u8; N]>;
    /// The first `bytes` bytes of the buffer to fill, when the request gives a data-in buffer
    /// ([`DataBuffer::In`], or [`DataBuffer::Unspecified`], which the general path takes as a
    /// buffer of the right direction) of at least `bytes`; the request's transfer length,
    /// where it holds one (an SRB does), becomes `bytes`. `None` otherwise, and nothing
    /// changes.
    fn data_in(&mut self, bytes: u32) -> Option<&mut [u8]>;
    /// The first `bytes` bytes to copy, when the request gives a data-out buffer
    /// ([`DataBuffer::Out`] or [`DataBuffer::Unspecified`]) of at least `bytes`; the request's
    /// transfer length, where it holds one, becomes `bytes`. `None` otherwise, and nothing
    /// changes.
    fn data_out(&mut self, bytes: u32) -> Option<LentBytes<'_>>;
    /// Sets the request's transfer length, where it holds one, to `bytes`: for a command that
    /// moves no data. (A plain path's [`Outcome`] carries the same length.)
    fn set_transferred(&mut self, bytes: u32);
}

/// A CDB and a [`DataBuffer`] as the plain paths read them: where the general path's caller
/// holds the two already. The data goes on to the general path when the plain paths decline.
#[derive(Debug)]
pub struct PlainCommand<'c, 'a> {
    /// The CDB.
    pub cdb: &'c [u8],
    /// The data buffer.
    pub data: DataBuffer<'a>,
}

impl PlainIo for PlainCommand<'_, '_> {
    fn opcode(&self) -> u8 {
        self.cdb.first().copied().unwrap_or(u8::MAX)
    }

    fn cdb<const N: usize>(&self) -> Option<&[u8; N]> {
        self.cdb.first_chunk()
    }

    fn data_in(&mut self, bytes: u32) -> Option<&mut [u8]> {
        match &mut self.data {
            DataBuffer::In(buf) | DataBuffer::Unspecified(buf) => buf.get_mut(..bytes as usize),
            _ => None,
        }
    }

    fn data_out(&mut self, bytes: u32) -> Option<LentBytes<'_>> {
        match &self.data {
            DataBuffer::Out(lent) => lent.get(0..bytes as usize),
            DataBuffer::Unspecified(buf) => buf.get(..bytes as usize).map(LentBytes::from),
            _ => None,
        }
    }

    /// The transfer length travels in the plain path's [`Outcome`].
    fn set_transferred(&mut self, _: u32) {}
}

/// Whether sense data goes back with the failed command or waits for REQUEST SENSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Autosense {
    /// The SRB has a sense buffer: return sense in [`Outcome::sense`].
    Enabled,
    /// `SRB_FLAGS_DISABLE_AUTOSENSE` or no sense buffer: keep it for REQUEST SENSE.
    Disabled,
}

/// What the caller writes back into the SRB before completing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the SRB must be completed with this outcome"]
pub struct Outcome {
    /// `SrbStatus`, including [`srb_status::AUTOSENSE_VALID`] when `sense` is set.
    pub srb_status: u8,
    /// `ScsiStatus`.
    pub scsi_status: u8,
    /// Sense data for the SRB's sense buffer (fixed format, see [`SenseData::fixed`]).
    pub sense: Option<SenseData>,
    /// Bytes actually moved through the data buffer: the new `DataTransferLength`.
    pub transferred: u32,
}

impl Outcome {
    /// GOOD status with `transferred` bytes moved.
    pub fn good(transferred: usize) -> Self {
        Self {
            srb_status: srb_status::SUCCESS,
            scsi_status: scsi_status::GOOD,
            sense: None,
            transferred: u32::try_from(transferred).unwrap_or(u32::MAX),
        }
    }

    /// The data buffer did not hold what the CDB asked for; `transferred` bytes were moved.
    pub fn data_overrun(transferred: usize) -> Self {
        Self {
            srb_status: srb_status::DATA_OVERRUN,
            ..Self::good(transferred)
        }
    }

    /// An SRB-level status with no SCSI status, sense or data.
    pub const fn srb(srb_status: u8) -> Self {
        Self {
            srb_status,
            scsi_status: scsi_status::GOOD,
            sense: None,
            transferred: 0,
        }
    }

    /// CHECK CONDITION with autosense.
    pub const fn check(sense: SenseData) -> Self {
        Self {
            srb_status: srb_status::ERROR | srb_status::AUTOSENSE_VALID,
            scsi_status: scsi_status::CHECK_CONDITION,
            sense: Some(sense),
            transferred: 0,
        }
    }
}
