//! The SRB engine: builds `SCSI_REQUEST_BLOCK`s with their buffers, hands
//! them to HwStartIo and checks how the miniport completes them.
//!
//! Rules checked on completion (see [`super::rules`]): completed exactly
//! once (bug check 0xF1 / 0x2004 otherwise), never with
//! `SRB_STATUS_PENDING` (SDV StorPortStatusPending), `DataTransferLength` no
//! larger than the buffer the port supplied and nothing written past it,
//! completed within the request's timeout.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use storport_sys::SCSI_REQUEST_BLOCK;

/// Bytes of sense buffer the port supplies (fixed-format sense needs 18).
pub const SENSE_BUFFER_BYTES: usize = 32;
/// Guard bytes after the data buffer, checked for writes past it.
pub const DATA_GUARD_BYTES: usize = 64;
/// Value of the guard bytes.
pub const GUARD_FILL: u8 = 0xFD;
/// Completed SRBs kept (and their memory not reused) to catch late second completions.
const RETIRED_KEPT: usize = 256;

/// Direction of an SRB's data phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDirection {
    /// No data.
    None,
    /// Data from the device, into a buffer of this many bytes.
    In(usize),
    /// Data to the device.
    Out(Vec<u8>),
}

/// How a request ended, as an initiator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrbResult {
    /// `SRB_STATUS_*` the miniport completed with (flag bits included).
    pub srb_status: u8,
    /// SCSI status byte.
    pub scsi_status: u8,
    /// Sense bytes the miniport returned (when `SRB_STATUS_AUTOSENSE_VALID`
    /// is set: the whole sense buffer as it reported it; else empty).
    pub sense: Vec<u8>,
    /// Data in (up to `transferred` bytes); empty for other directions.
    pub data: Vec<u8>,
    /// `DataTransferLength` at completion.
    pub transferred: u32,
}

impl SrbResult {
    /// `srb_status` without the queue-frozen and autosense flag bits.
    #[must_use]
    pub const fn status(&self) -> u8 {
        self.srb_status & 0x3F
    }
}

/// The memory one request lives in.
///
/// # Invariants
///
/// `srb.DataBuffer`, `srb.SenseInfoBuffer` and `srb.SrbExtension` point into
/// `data`, `sense` and `extension`, which are never reallocated while the
/// slot lives; the slot is boxed, so the SRB's address is stable.
#[repr(C)]
pub struct SrbSlot {
    /// The SRB handed to the miniport.
    pub srb: SCSI_REQUEST_BLOCK,
    /// Data buffer plus guard bytes.
    pub data: Vec<u8>,
    /// Length of the data phase (without guard).
    pub data_len: usize,
    /// Sense buffer.
    pub sense: Vec<u8>,
    /// SRB extension (16-byte aligned storage).
    pub extension: Vec<u128>,
}

// SAFETY: the raw pointers in `srb` point into the slot's own buffers; the
// slot moves between threads only as a whole.
unsafe impl Send for SrbSlot {}

/// What the port knows about one SRB address.
#[derive(Clone, Copy, Debug)]
pub struct SrbRecord {
    /// When it was started.
    pub started: Instant,
    /// The data length the port supplied.
    pub supplied_len: u32,
    /// Completed (once) by the miniport.
    pub completed: bool,
}

/// SRBs the miniport owns now, and ones it completed recently.
///
/// # Invariants
///
/// Every address in `live` is the address of the `srb` field of a boxed
/// [`SrbSlot`] that stays allocated until [`SrbTable::retire`] takes it
/// over ([`SrbTable::start`] is the only way in).
#[derive(Default)]
pub struct SrbTable {
    /// Address → record, for SRBs started and not yet retired.
    live: HashMap<usize, SrbRecord>,
    /// Completed SRBs whose memory is kept so a second completion is recognised.
    pub retired: VecDeque<(usize, Box<SrbSlot>)>,
}

impl std::fmt::Debug for SrbTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrbTable")
            .field("live", &self.live.len())
            .field("retired", &self.retired.len())
            .finish()
    }
}

impl SrbTable {
    /// Records a started SRB.
    ///
    /// # Safety
    ///
    /// `address` must be the address of the `srb` field of a boxed
    /// [`SrbSlot`] that stays allocated until it is passed to
    /// [`Self::retire`] with this address.
    pub unsafe fn start(&mut self, address: usize, record: SrbRecord) {
        // INVARIANT: the caller keeps the slot allocated until retire.
        self.live.insert(address, record);
    }

    /// The record of a started SRB that was not retired yet.
    #[must_use]
    pub fn live(&self, address: usize) -> Option<&SrbRecord> {
        self.live.get(&address)
    }

    /// The record of a started SRB that was not retired yet, to update.
    pub fn live_mut(&mut self, address: usize) -> Option<&mut SrbRecord> {
        self.live.get_mut(&address)
    }

    /// `SrbStatus` and `DataTransferLength` of a started SRB that was not
    /// retired yet, read from the port's own memory (no checked access
    /// needed: the table keeps the slot allocated).
    #[must_use]
    pub fn live_status(&self, address: usize) -> Option<(u8, u32)> {
        if !self.live.contains_key(&address) {
            return None;
        }
        let status = (address + std::mem::offset_of!(SCSI_REQUEST_BLOCK, SrbStatus)) as *const u8;
        let transferred =
            (address + std::mem::offset_of!(SCSI_REQUEST_BLOCK, DataTransferLength)) as *const u32;
        // SAFETY: by the invariant a live address is the `srb` field of an
        // allocated slot, so the field is readable; the miniport may write
        // it concurrently, hence a volatile read.
        let status = unsafe { status.read_volatile() };
        // SAFETY: as above, for the ULONG field (aligned: the slot is a
        // repr(C) box and the field's offset is a multiple of 4).
        let transferred = unsafe { transferred.read_volatile() };
        Some((status, transferred))
    }

    /// Keeps a finished slot alive for a while.
    pub fn retire(&mut self, address: usize, slot: Box<SrbSlot>) {
        self.live.remove(&address);
        self.retired.push_back((address, slot));
        while self.retired.len() > RETIRED_KEPT {
            self.retired.pop_front();
        }
    }

    /// Whether `address` is a retired (already completed) SRB.
    #[must_use]
    pub fn is_retired(&self, address: usize) -> bool {
        self.retired.iter().any(|(a, _)| *a == address)
    }
}

/// Builds a slot for one request.
#[must_use]
pub fn build(
    path_target_lun: (u8, u8, u8),
    function: u8,
    cdb: &[u8],
    direction: &DataDirection,
    srb_extension_size: u32,
    timeout_seconds: u32,
) -> Box<SrbSlot> {
    let data = match direction {
        DataDirection::Out(bytes) => {
            let mut data = Vec::with_capacity(bytes.len() + DATA_GUARD_BYTES);
            data.extend_from_slice(bytes);
            data
        }
        DataDirection::In(_) | DataDirection::None => Vec::new(),
    };
    build_from(
        path_target_lun,
        function,
        cdb,
        direction_kind(direction),
        data,
        srb_extension_size,
        timeout_seconds,
    )
}

/// Builds a slot for one request whose data-out bytes the slot takes over:
/// no copy when the vector has room for [`DATA_GUARD_BYTES`] more bytes.
#[must_use]
pub fn build_owned(
    path_target_lun: (u8, u8, u8),
    function: u8,
    cdb: &[u8],
    direction: DataDirection,
    srb_extension_size: u32,
    timeout_seconds: u32,
) -> Box<SrbSlot> {
    let kind = direction_kind(&direction);
    let data = match direction {
        DataDirection::Out(bytes) => bytes,
        DataDirection::In(_) | DataDirection::None => Vec::new(),
    };
    build_from(
        path_target_lun,
        function,
        cdb,
        kind,
        data,
        srb_extension_size,
        timeout_seconds,
    )
}

/// The direction's data length and `SRB_FLAGS_*`.
const fn direction_kind(direction: &DataDirection) -> (usize, u32) {
    use storport_sys::srb_flags;
    match direction {
        DataDirection::None => (0, srb_flags::NO_DATA_TRANSFER),
        DataDirection::In(len) => (*len, srb_flags::DATA_IN),
        DataDirection::Out(bytes) => (bytes.len(), srb_flags::DATA_OUT),
    }
}

/// Builds the slot; `data` holds the data-out bytes (empty otherwise) and
/// becomes the data buffer, zero-filled to `data_len` and followed by the
/// guard bytes.
fn build_from(
    path_target_lun: (u8, u8, u8),
    function: u8,
    cdb: &[u8],
    (data_len, flags): (usize, u32),
    mut data: Vec<u8>,
    srb_extension_size: u32,
    timeout_seconds: u32,
) -> Box<SrbSlot> {
    data.reserve_exact((data_len + DATA_GUARD_BYTES).saturating_sub(data.len()));
    data.resize(data_len, 0);
    data.resize(data_len + DATA_GUARD_BYTES, GUARD_FILL);
    let mut cdb16 = [0_u8; 16];
    let cdb_len = cdb.len().min(16);
    cdb16[..cdb_len].copy_from_slice(&cdb[..cdb_len]);
    let extension_units = (srb_extension_size as usize).div_ceil(16).max(1);
    let mut slot = Box::new(SrbSlot {
        srb: SCSI_REQUEST_BLOCK {
            Length: u16::try_from(size_of::<SCSI_REQUEST_BLOCK>()).unwrap_or(0x58),
            Function: function,
            SrbStatus: 0,
            ScsiStatus: 0,
            PathId: path_target_lun.0,
            TargetId: path_target_lun.1,
            Lun: path_target_lun.2,
            QueueTag: 0,
            QueueAction: 0x20,
            CdbLength: u8::try_from(cdb_len).unwrap_or(16),
            SenseInfoBufferLength: u8::try_from(SENSE_BUFFER_BYTES).unwrap_or(32),
            SrbFlags: flags,
            DataTransferLength: u32::try_from(data_len).unwrap_or(u32::MAX),
            TimeOutValue: timeout_seconds,
            DataBuffer: std::ptr::null_mut(),
            SenseInfoBuffer: std::ptr::null_mut(),
            NextSrb: std::ptr::null_mut(),
            OriginalRequest: std::ptr::null_mut(),
            SrbExtension: std::ptr::null_mut(),
            InternalStatus: 0,
            Reserved: 0,
            Cdb: cdb16,
        },
        data,
        data_len,
        sense: vec![0_u8; SENSE_BUFFER_BYTES],
        extension: vec![0_u128; extension_units],
    });
    // INVARIANT: the pointers refer to the slot's own heap buffers, which
    // keep their addresses while the slot lives (they are never resized).
    if data_len > 0 {
        slot.srb.DataBuffer = slot.data.as_mut_ptr().cast();
    }
    slot.srb.SenseInfoBuffer = slot.sense.as_mut_ptr().cast();
    if srb_extension_size > 0 {
        slot.srb.SrbExtension = slot.extension.as_mut_ptr().cast();
    }
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_out_with_room_for_the_guard_becomes_the_buffer_without_a_copy() {
        let mut bytes = Vec::with_capacity(512 + DATA_GUARD_BYTES);
        bytes.extend((0..512_u32).map(|i| i as u8));
        let address = bytes.as_ptr();
        let slot = build_owned((0, 1, 2), 0, &[0x8A], DataDirection::Out(bytes), 24, 10);
        assert_eq!(slot.data.as_ptr(), address);
        assert_eq!(slot.srb.DataBuffer.cast_const().cast::<u8>(), address);
        assert_eq!(slot.srb.DataTransferLength, 512);
        assert_eq!(
            slot.data[..512],
            (0..512_u32).map(|i| i as u8).collect::<Vec<_>>()
        );
        assert!(slot.data[512..].iter().all(|&b| b == GUARD_FILL));
        assert_eq!(slot.data.len(), 512 + DATA_GUARD_BYTES);
    }

    #[test]
    fn borrowed_and_owned_directions_build_the_same_srb() {
        let payload: Vec<u8> = (0..100_u8).collect();
        for direction in [
            DataDirection::None,
            DataDirection::In(300),
            DataDirection::Out(payload),
        ] {
            let borrowed = build((1, 2, 3), 0, &[0x28, 0, 1], &direction, 40, 7);
            let owned = build_owned((1, 2, 3), 0, &[0x28, 0, 1], direction.clone(), 40, 7);
            assert_eq!(borrowed.data, owned.data, "{direction:?}");
            assert_eq!(borrowed.data_len, owned.data_len);
            assert_eq!(borrowed.srb.SrbFlags, owned.srb.SrbFlags);
            assert_eq!(
                borrowed.srb.DataTransferLength,
                owned.srb.DataTransferLength
            );
            assert_eq!(borrowed.srb.Cdb, owned.srb.Cdb);
            assert_eq!(
                borrowed.srb.DataBuffer.is_null(),
                matches!(direction, DataDirection::None)
            );
        }
    }
}
