//! The SCSI command as start-io sees it: [`Srb`], a handle that is
//! completed at most once, and the status and function codes every request
//! view shares.
//!
//! After `StorPortNotification(RequestComplete)` the port owns the SRB again;
//! completing it twice is Storport's bug check 0xF1 parameter 0x2004.
//! [`Srb::complete`] consumes the handle, so a second completion does not
//! compile:
//!
//! ```compile_fail,E0382
//! use storport::{Srb, SrbStatus};
//! fn twice(srb: Srb<'_>) {
//!     srb.complete(SrbStatus::SUCCESS);
//!     srb.complete(SrbStatus::SUCCESS);
//! }
//! ```
//!
//! ```
//! use storport::{Srb, SrbStatus};
//! fn once(srb: Srb<'_>) {
//!     srb.complete(SrbStatus::SUCCESS);
//! }
//! ```
//!
//! # Not completing
//!
//! A handle dropped without [`Srb::complete`] would leave the request
//! hanging until Storport's timeout resets the bus. The handle cannot
//! outlive start-io (its lifetime is the call's), so a dropped handle is
//! always such a loss: `Drop` completes it with
//! [`SrbStatus::INTERNAL_ERROR`] and reports it through `DbgPrint`, and the
//! emulator's verifier reports the status. `#[must_use]` catches the
//! simplest case at compile time.
//!
//! Rust does not promise that a value is dropped: a handle leaked with
//! `core::mem::forget` (or `Box::leak`) compiles, runs no `Drop`, and
//! leaves its request uncompleted until Storport's request timeout expires
//! and it resets the bus. A forgotten handle leaves nothing behind for the
//! layer to find, so "at most once" is all the type promises.

use core::fmt;
use core::ptr::NonNull;

use storport_sys::{SCSI_REQUEST_BLOCK, srb_flags, srb_function, srb_status};

use crate::lent::LentBytes;
use crate::request::Pending;

/// The `SRB_FUNCTION_*` of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrbFunction {
    /// `SRB_FUNCTION_EXECUTE_SCSI`: run the CDB.
    ExecuteScsi,
    /// `SRB_FUNCTION_IO_CONTROL`.
    IoControl,
    /// `SRB_FUNCTION_SHUTDOWN`.
    Shutdown,
    /// `SRB_FUNCTION_FLUSH`.
    Flush,
    /// `SRB_FUNCTION_ABORT_COMMAND`.
    AbortCommand,
    /// `SRB_FUNCTION_RESET_BUS`.
    ResetBus,
    /// `SRB_FUNCTION_RESET_DEVICE`.
    ResetDevice,
    /// `SRB_FUNCTION_WMI`.
    Wmi,
    /// `SRB_FUNCTION_RESET_LOGICAL_UNIT`.
    ResetLogicalUnit,
    /// `SRB_FUNCTION_POWER`.
    Power,
    /// `SRB_FUNCTION_PNP`.
    Pnp,
    /// Any other function code.
    Other(u8),
}

impl SrbFunction {
    /// Decodes `SCSI_REQUEST_BLOCK.Function`.
    #[must_use]
    pub const fn from_raw(function: u8) -> Self {
        match function {
            srb_function::EXECUTE_SCSI => Self::ExecuteScsi,
            srb_function::IO_CONTROL => Self::IoControl,
            srb_function::SHUTDOWN => Self::Shutdown,
            srb_function::FLUSH => Self::Flush,
            srb_function::ABORT_COMMAND => Self::AbortCommand,
            srb_function::RESET_BUS => Self::ResetBus,
            srb_function::RESET_DEVICE => Self::ResetDevice,
            srb_function::WMI => Self::Wmi,
            srb_function::RESET_LOGICAL_UNIT => Self::ResetLogicalUnit,
            srb_function::POWER => Self::Power,
            srb_function::PNP => Self::Pnp,
            other => Self::Other(other),
        }
    }
}

/// The status a request completes with (`SRB_STATUS_*`, with the
/// autosense-valid and queue-frozen bits).
///
/// There is no `PENDING`: completing with it is SDV's `StorPortStatusPending`
/// violation, so no value of this type is pending.
///
/// ```
/// use storport::SrbStatus;
/// assert_eq!(SrbStatus::ERROR.with_autosense_valid().to_raw(), 0x84);
/// assert_eq!(SrbStatus::from_raw(0x00), None);
/// assert_eq!(SrbStatus::from_raw(0x01), Some(SrbStatus::SUCCESS));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SrbStatus(u8);

impl SrbStatus {
    /// `SRB_STATUS_SUCCESS`.
    pub const SUCCESS: Self = Self(srb_status::SUCCESS);
    /// `SRB_STATUS_ABORTED`.
    pub const ABORTED: Self = Self(srb_status::ABORTED);
    /// `SRB_STATUS_ERROR`.
    pub const ERROR: Self = Self(srb_status::ERROR);
    /// `SRB_STATUS_BUSY`.
    pub const BUSY: Self = Self(srb_status::BUSY);
    /// `SRB_STATUS_INVALID_REQUEST`.
    pub const INVALID_REQUEST: Self = Self(srb_status::INVALID_REQUEST);
    /// `SRB_STATUS_INVALID_PATH_ID`.
    pub const INVALID_PATH_ID: Self = Self(srb_status::INVALID_PATH_ID);
    /// `SRB_STATUS_NO_DEVICE`.
    pub const NO_DEVICE: Self = Self(srb_status::NO_DEVICE);
    /// `SRB_STATUS_SELECTION_TIMEOUT`.
    pub const SELECTION_TIMEOUT: Self = Self(srb_status::SELECTION_TIMEOUT);
    /// `SRB_STATUS_BUS_RESET`.
    pub const BUS_RESET: Self = Self(srb_status::BUS_RESET);
    /// `SRB_STATUS_DATA_OVERRUN` (also used for underruns).
    pub const DATA_OVERRUN: Self = Self(srb_status::DATA_OVERRUN);
    /// `SRB_STATUS_INVALID_LUN`.
    pub const INVALID_LUN: Self = Self(srb_status::INVALID_LUN);
    /// `SRB_STATUS_INVALID_TARGET_ID`.
    pub const INVALID_TARGET_ID: Self = Self(srb_status::INVALID_TARGET_ID);
    /// `SRB_STATUS_BAD_FUNCTION`.
    pub const BAD_FUNCTION: Self = Self(srb_status::BAD_FUNCTION);
    /// `SRB_STATUS_INTERNAL_ERROR`.
    pub const INTERNAL_ERROR: Self = Self(srb_status::INTERNAL_ERROR);

    const FLAGS: u8 = srb_status::AUTOSENSE_VALID | srb_status::QUEUE_FROZEN;

    /// A status from its byte; `None` for `SRB_STATUS_PENDING` (a code of
    /// zero, with or without flag bits).
    #[must_use]
    pub const fn from_raw(status: u8) -> Option<Self> {
        if status & !Self::FLAGS == srb_status::PENDING {
            None
        } else {
            Some(Self(status))
        }
    }

    /// The status byte.
    #[must_use]
    pub const fn to_raw(self) -> u8 {
        self.0
    }

    /// The same status with `SRB_STATUS_AUTOSENSE_VALID`: the sense buffer
    /// holds sense data.
    #[must_use]
    pub const fn with_autosense_valid(self) -> Self {
        Self(self.0 | srb_status::AUTOSENSE_VALID)
    }
}

impl fmt::Debug for SrbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrbStatus({:#04x})", self.0)
    }
}

/// An `SRB_FUNCTION_EXECUTE_SCSI` request handed to start-io.
///
/// It comes as [`StartIoRequest::Scsi`](crate::StartIoRequest::Scsi): read
/// its CDB and address, fill or copy its data, set its SCSI status, sense
/// and transfer length, then [`complete`](Self::complete) it.
///
/// # Invariants
///
/// `pending` holds an `SRB_FUNCTION_EXECUTE_SCSI` request (a
/// `SCSI_REQUEST_BLOCK` throughout); `DataBuffer` is a system address valid
/// for the `DataTransferLength` the request had when start-io began (the
/// layer registers with `STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE`); the
/// data buffer, the sense buffer and the SRB do not overlap.
/// `DataTransferLength` never grows while the value lives: only this type
/// writes it, and never above its current value
/// ([`Srb::set_data_transfer_length`] clamps, [`Srb::data_in_exact`] and
/// [`Srb::data_out_exact`] lower it), so `DataBuffer` stays valid for the
/// current `DataTransferLength`, read where it is used.
#[must_use = "an SRB must be completed with `Srb::complete`; dropping it completes it with SRB_STATUS_INTERNAL_ERROR"]
pub struct Srb<'a> {
    pending: Pending<'a>,
}

impl<'a> Srb<'a> {
    /// Wraps an `SRB_FUNCTION_EXECUTE_SCSI` request.
    ///
    /// # Safety
    ///
    /// `pending` must hold an `SRB_FUNCTION_EXECUTE_SCSI` request whose data
    /// buffer is mapped to a system address.
    pub(crate) const unsafe fn new(pending: Pending<'a>) -> Self {
        // INVARIANT: the caller's promise; `DataTransferLength` is as the
        // request arrived.
        Self { pending }
    }
}

impl Srb<'_> {
    const fn raw(&self) -> &SCSI_REQUEST_BLOCK {
        self.pending.layout()
    }

    const fn raw_mut(&mut self) -> &mut SCSI_REQUEST_BLOCK {
        self.pending.layout_mut()
    }

    /// The bus (`PathId`).
    #[must_use]
    pub const fn path_id(&self) -> u8 {
        self.raw().PathId
    }

    /// The target (`TargetId`).
    #[must_use]
    pub const fn target_id(&self) -> u8 {
        self.raw().TargetId
    }

    /// The logical unit (`Lun`).
    #[must_use]
    pub const fn lun(&self) -> u8 {
        self.raw().Lun
    }

    /// The first byte of the CDB's room in the SRB: the operation code when
    /// `CdbLength` is at least 1 (check the length, as [`Srb::cdb_prefix`]
    /// does, before acting on it).
    #[must_use]
    pub const fn opcode(&self) -> u8 {
        self.raw().Cdb[0]
    }

    /// The CDB's first `N` bytes, when `CdbLength` is at least `N`: a
    /// fixed-size view for code that decodes one CDB form (`N` above 16,
    /// the CDB's room in the SRB, gives `None`).
    #[must_use]
    pub const fn cdb_prefix<const N: usize>(&self) -> Option<&[u8; N]> {
        let raw = self.raw();
        if (raw.CdbLength as usize) < N {
            return None;
        }
        raw.Cdb.first_chunk::<N>()
    }

    /// The CDB: `CdbLength` bytes (at most 16).
    #[must_use]
    pub fn cdb(&self) -> &[u8] {
        let raw = self.raw();
        let length = usize::from(raw.CdbLength).min(raw.Cdb.len());
        &raw.Cdb[..length]
    }

    /// Whether both `SRB_FLAGS_DATA_IN` and `SRB_FLAGS_DATA_OUT` are set
    /// (`SRB_FLAGS_UNSPECIFIED_DIRECTION`, as pass-through requests with
    /// `SCSI_IOCTL_DATA_UNSPECIFIED` arrive): the command decides the
    /// direction. [`Srb::io`] then lends the buffer as [`SrbData::In`].
    #[must_use]
    pub const fn direction_unspecified(&self) -> bool {
        let both = srb_flags::DATA_IN | srb_flags::DATA_OUT;
        self.raw().SrbFlags & both == both
    }

    /// `SRB_FLAGS_*`.
    #[must_use]
    pub const fn flags(&self) -> u32 {
        self.raw().SrbFlags
    }

    /// The data buffer's length in bytes: `DataTransferLength` as the
    /// request arrived, until a transfer length is set. Read where it is
    /// used (a request's own field, which only this type lowers), so a
    /// request that never looks at it costs no load.
    #[must_use]
    pub const fn buffer_bytes(&self) -> u32 {
        self.raw().DataTransferLength
    }

    /// The bytes the request reports as transferred (`DataTransferLength`).
    #[must_use]
    pub const fn data_transfer_length(&self) -> u32 {
        self.raw().DataTransferLength
    }

    /// Reports `bytes` as transferred (an underrun when below the buffer
    /// length). The length cannot grow past the buffer: a larger value is
    /// clamped to it, so the port never copies past the data buffer.
    pub fn set_data_transfer_length(&mut self, bytes: u32) {
        let length = bytes.min(self.buffer_bytes());
        self.raw_mut().DataTransferLength = length;
    }

    /// The data buffer and its length, if `flag` is set and the length is
    /// not 0.
    fn data(&self, flag: u32) -> Option<(NonNull<u8>, usize)> {
        self.data_toward(flag).filter(|&(_, length)| length != 0)
    }

    /// The data buffer and its length when the flags include `flag`'s
    /// direction: alone, or with the other (`SRB_FLAGS_UNSPECIFIED_DIRECTION`,
    /// a buffer mapped for both). A zero length gives an empty buffer when
    /// `DataBuffer` is set.
    fn data_toward(&self, flag: u32) -> Option<(NonNull<u8>, usize)> {
        let raw = self.raw();
        if raw.SrbFlags & flag == 0 {
            return None;
        }
        let data = NonNull::new(raw.DataBuffer.cast::<u8>())?;
        Some((data, raw.DataTransferLength as usize))
    }

    /// The first `bytes` bytes of the buffer to fill, when the flags name a
    /// device-to-host transfer (`SRB_FLAGS_DATA_IN`, alone or with
    /// `SRB_FLAGS_DATA_OUT`: the direction unspecified) and the buffer holds
    /// at least `bytes`: `DataTransferLength` becomes `bytes`, the count the
    /// request reports when it completes. `None` otherwise (no buffer, a
    /// shorter one, or the other direction alone), and nothing changes.
    ///
    /// The length is set here, before the data moves, so that code that
    /// fills the buffer and completes the request keeps nothing else live.
    pub fn data_in_exact(&mut self, bytes: u32) -> Option<&mut [u8]> {
        let (data, length) = self.data_toward(srb_flags::DATA_IN)?;
        if bytes as usize > length {
            return None;
        }
        self.raw_mut().DataTransferLength = bytes;
        // SAFETY: as in `data_in_mut`, for the first `bytes` of the
        // `length` bytes mapped (checked above).
        Some(unsafe { core::slice::from_raw_parts_mut(data.as_ptr(), bytes as usize) })
    }

    /// The first `bytes` bytes to copy, when the flags name a host-to-device
    /// transfer (`SRB_FLAGS_DATA_OUT`, alone or with `SRB_FLAGS_DATA_IN`)
    /// and the buffer holds at least `bytes`:
    /// `DataTransferLength` becomes `bytes`, as in [`Srb::data_in_exact`].
    /// `None` otherwise, and nothing changes.
    pub fn data_out_exact(&mut self, bytes: u32) -> Option<LentBytes<'_>> {
        let (data, length) = self.data_toward(srb_flags::DATA_OUT)?;
        if bytes as usize > length {
            return None;
        }
        self.raw_mut().DataTransferLength = bytes;
        // SAFETY: as in `data_out`, for the first `bytes` of the `length`
        // bytes mapped (checked above).
        Some(unsafe { LentBytes::from_raw(data, bytes as usize) })
    }

    /// The buffer to fill for a device-to-host transfer
    /// (`SRB_FLAGS_DATA_IN`); empty when the request has no such data.
    pub fn data_in_mut(&mut self) -> &mut [u8] {
        match self.data(srb_flags::DATA_IN) {
            // SAFETY: by the type invariant the buffer is mapped for the
            // current `DataTransferLength` (`length`) and belongs to this
            // request until completion;
            // `&mut self` makes the slice the only view.
            Some((data, length)) => unsafe {
                core::slice::from_raw_parts_mut(data.as_ptr(), length)
            },
            None => &mut [],
        }
    }

    /// The data of a host-to-device transfer (`SRB_FLAGS_DATA_OUT`), to copy
    /// from ([`LentBytes`]); empty when the request has no such data.
    #[must_use]
    pub fn data_out(&self) -> LentBytes<'_> {
        match self.data(srb_flags::DATA_OUT) {
            // SAFETY: as in `data_in_mut`: mapped for `length` bytes and the
            // request's until completion; the shared borrow of `self` rules
            // out a simultaneous `data_in_mut`, so no Rust reference writes
            // it while the value lives.
            Some((data, length)) => unsafe { LentBytes::from_raw(data, length) },
            None => LentBytes::empty(),
        }
    }

    /// The CDB, the data buffer and the sense buffer at once, for code that
    /// decodes the CDB while it fills the data (three distinct memory
    /// regions, so the borrows do not conflict).
    ///
    /// ```no_run
    /// use storport::{Srb, SrbData, SrbStatus};
    /// fn answer(mut srb: Srb<'_>) {
    ///     let io = srb.io();
    ///     let status = match (io.cdb.first(), io.data) {
    ///         (Some(0x12), SrbData::In(data)) => {
    ///             data.fill(0);
    ///             SrbStatus::SUCCESS
    ///         }
    ///         _ => SrbStatus::INVALID_REQUEST,
    ///     };
    ///     srb.complete(status);
    /// }
    /// ```
    pub fn io(&mut self) -> SrbIo<'_> {
        // SAFETY: `self` stays mutably borrowed for the returned value's
        // lifetime; besides the data, only the CDB and the sense buffer are
        // lent, which are other memory.
        let data = unsafe { self.data_raw() };
        let sense = self.sense_raw();
        let sense = match sense {
            // SAFETY: as in `sense_mut`; distinct from the data and the SRB.
            Some((sense, length)) => unsafe {
                core::slice::from_raw_parts_mut(sense.as_ptr(), length)
            },
            None => &mut [],
        };
        let raw = self.raw();
        let length = usize::from(raw.CdbLength).min(raw.Cdb.len());
        SrbIo {
            cdb: &raw.Cdb[..length],
            data,
            sense,
        }
    }

    /// The CDB and the data buffer at once, as [`Srb::io`] lends them, without the sense
    /// buffer: for a command that completes without sense, and so never needs it.
    pub fn cdb_and_data(&mut self) -> (&[u8], SrbData<'_>) {
        // SAFETY: as in `io`, with the CDB the only other loan.
        let data = unsafe { self.data_raw() };
        let raw = self.raw();
        let length = usize::from(raw.CdbLength).min(raw.Cdb.len());
        (&raw.Cdb[..length], data)
    }

    /// The data buffer by direction, lent for `'s`.
    ///
    /// # Safety
    ///
    /// `'s` ends before the caller's mutable borrow of `self` does, and the
    /// caller lends nothing else that reaches the data buffer meanwhile (the
    /// CDB and the sense buffer are other memory).
    unsafe fn data_raw<'s>(&self) -> SrbData<'s> {
        if let Some((data, length)) = self.data(srb_flags::DATA_IN) {
            // SAFETY: as in `data_in_mut`; the data buffer, the sense buffer
            // and the SRB (which holds the CDB) are distinct memory, so the
            // three borrows handed out together do not alias.
            SrbData::In(unsafe { core::slice::from_raw_parts_mut(data.as_ptr(), length) })
        } else if let Some((data, length)) = self.data(srb_flags::DATA_OUT) {
            // SAFETY: as in `data_out`; `self` stays mutably borrowed while
            // the value lives.
            SrbData::Out(unsafe { LentBytes::from_raw(data, length) })
        } else {
            SrbData::None
        }
    }

    /// The sense buffer, if there is one and autosense is enabled.
    fn sense_raw(&self) -> Option<(NonNull<u8>, usize)> {
        let raw = self.raw();
        let length = usize::from(raw.SenseInfoBufferLength);
        let disabled = raw.SrbFlags & srb_flags::DISABLE_AUTOSENSE != 0;
        let sense = NonNull::new(raw.SenseInfoBuffer.cast::<u8>())?;
        (length > 0 && !disabled).then_some((sense, length))
    }

    /// The autosense buffer (`SenseInfoBuffer`, `SenseInfoBufferLength`
    /// bytes); empty when there is none or autosense is disabled.
    pub fn sense_mut(&mut self) -> &mut [u8] {
        match self.sense_raw() {
            // SAFETY: the port supplies a sense buffer of
            // `SenseInfoBufferLength` bytes with the SRB, owned by the
            // request until completion; `&mut self` makes this the only view.
            Some((sense, length)) => unsafe {
                core::slice::from_raw_parts_mut(sense.as_ptr(), length)
            },
            None => &mut [],
        }
    }

    /// Sets the SCSI status byte (`ScsiStatus`), e.g. 0x02 CHECK CONDITION.
    pub const fn set_scsi_status(&mut self, status: u8) {
        self.raw_mut().ScsiStatus = status;
    }

    /// Completes the request with `status`
    /// (`StorPortNotification(RequestComplete)`). The port owns the SRB
    /// afterwards, so the handle is consumed.
    pub fn complete(self, status: SrbStatus) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.pending.finish(status);
    }
}

/// The data buffer of a request, by direction.
#[derive(Debug)]
pub enum SrbData<'s> {
    /// No data moves (or the buffer is empty).
    None,
    /// Device to host (`SRB_FLAGS_DATA_IN`): fill it. Requests with both
    /// direction flags set come here too, since the buffer is readable as
    /// well.
    In(&'s mut [u8]),
    /// Host to device (`SRB_FLAGS_DATA_OUT`): copy from it, and decide from
    /// the copy ([`LentBytes`]).
    Out(LentBytes<'s>),
}

/// A request's CDB and buffers, borrowed together ([`Srb::io`]).
#[derive(Debug)]
pub struct SrbIo<'s> {
    /// The CDB: `CdbLength` bytes (at most 16).
    pub cdb: &'s [u8],
    /// The data buffer.
    pub data: SrbData<'s>,
    /// The autosense buffer; empty when there is none or autosense is off.
    pub sense: &'s mut [u8],
}

impl Drop for Srb<'_> {
    fn drop(&mut self) {
        crate::debug_print!(
            "storport: a SCSI SRB (CDB opcode {}) was dropped without completion; \
             completing it with SRB_STATUS_INTERNAL_ERROR\n",
            crate::print::Hex(u64::from(self.cdb().first().copied().unwrap_or(0)))
        );
        self.pending.finish(SrbStatus::INTERNAL_ERROR);
    }
}

impl fmt::Debug for Srb<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Srb")
            .field("path_id", &self.path_id())
            .field("target_id", &self.target_id())
            .field("lun", &self.lun())
            .field("cdb", &self.cdb())
            .field("buffer_bytes", &self.buffer_bytes())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{SrbFunction, SrbStatus};

    #[test]
    fn pending_is_not_a_completion_status() {
        assert_eq!(SrbStatus::from_raw(0x00), None);
        assert_eq!(SrbStatus::from_raw(0x80), None);
        assert_eq!(SrbStatus::from_raw(0xC0), None);
        assert_eq!(
            SrbStatus::from_raw(0x84),
            Some(SrbStatus::ERROR.with_autosense_valid())
        );
    }

    #[test]
    fn functions_decode() {
        assert_eq!(SrbFunction::from_raw(0x00), SrbFunction::ExecuteScsi);
        assert_eq!(SrbFunction::from_raw(0x25), SrbFunction::Pnp);
        assert_eq!(SrbFunction::from_raw(0x99), SrbFunction::Other(0x99));
    }
}
