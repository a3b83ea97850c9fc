//! Medium access (SBC-3): READ, WRITE, WRITE AND VERIFY, VERIFY, WRITE SAME, UNMAP,
//! SYNCHRONIZE CACHE, PRE-FETCH.
//!
//! Checks run in this order, so the first error found is the one reported: CDB fields
//! (protection fields, unsupported bits, lengths over the Block Limits page) → write
//! protection → LBA range → data buffer size. A range is out of range when LBA + length
//! exceeds the capacity (SBC-3, "LBA OUT OF RANGE"), so a zero-length command at
//! LBA = capacity is accepted, as the standard's wording gives.

use super::disk::{Disk, Handled, op};
use super::reply::{Cdb, data_in, data_out, param_be16, param_be32, param_be64};
use super::sense::{SenseData, SenseDetail, asc, sense_key};
use super::{BlockStore, DataBuffer, LentBytes, MAX_UNMAP_DESCRIPTORS, Outcome, PlainIo};

// `Disk::plain_request` tells TEST UNIT READY by the OR of two CDB bytes being zero.
const _: () = assert!(op::TEST_UNIT_READY == 0);

/// Bytes compared per step when data-out bytes meet the medium (VERIFY): a copy of each, on
/// the stack.
const COMPARE_PIECE: usize = 256;
/// Bytes of a WRITE SAME block copied per step (a 4096-byte block in eight pieces).
const SAME_PIECE: usize = 512;
/// Bytes of an UNMAP parameter list header and of one block descriptor (SBC-3).
const UNMAP_HEADER: usize = 8;
const UNMAP_DESCRIPTOR: usize = 16;
/// Largest UNMAP parameter list copied whole: the header and [`MAX_UNMAP_DESCRIPTORS`]
/// descriptors.
const UNMAP_LIST_MAX: usize = UNMAP_HEADER + UNMAP_DESCRIPTOR * MAX_UNMAP_DESCRIPTORS as usize;

/// LBA, block count and where the length field sits, for the pointer of an error.
pub(super) struct Span {
    pub(super) lba: u64,
    pub(super) blocks: u64,
    pub(super) length_at: u16,
}

/// LBA and TRANSFER/VERIFICATION LENGTH of the READ, WRITE and VERIFY families.
pub(super) fn span(cdb: &Cdb) -> Span {
    match cdb.u8(0) >> 5 {
        // READ(6) / WRITE(6): 21-bit LBA; length 0 means 256 blocks (SBC-3).
        0 => Span {
            lba: (u64::from(cdb.u8(1) & 0x1F) << 16) | u64::from(cdb.be16(2)),
            blocks: match cdb.u8(4) {
                0 => 256,
                n => u64::from(n),
            },
            length_at: 4,
        },
        1 | 2 => Span {
            lba: u64::from(cdb.be32(2)),
            blocks: u64::from(cdb.be16(7)),
            length_at: 7,
        },
        5 => Span {
            lba: u64::from(cdb.be32(2)),
            blocks: u64::from(cdb.be32(6)),
            length_at: 6,
        },
        _ => Span {
            lba: cdb.be64(2),
            blocks: u64::from(cdb.be32(10)),
            length_at: 10,
        },
    }
}

/// The byte 1 flags of the 10/12/16-byte forms (the 6-byte forms have none).
pub(super) fn flags(cdb: &Cdb) -> u8 {
    if cdb.u8(0) >> 5 == 0 { 0 } else { cdb.u8(1) }
}

/// RDPROTECT / WRPROTECT / VRPROTECT ≠ 0 without protection information (PROTECT = 0 in
/// INQUIRY): INVALID FIELD IN CDB (SBC-3, READ, WRITE, VERIFY, WRITE SAME).
pub(super) fn check_protect(cdb: &Cdb) -> Result<(), SenseData> {
    if flags(cdb) >> 5 != 0 {
        return Err(SenseData::invalid_cdb_field(1, Some(7)));
    }
    Ok(())
}

pub(super) const fn write_protected() -> SenseData {
    SenseData::new(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED)
}

/// Index of the first byte of `expected` (lent bytes, each copied once) that differs from the
/// medium at `offset`. `None` also when `expected` cannot be copied (callers check its length
/// first).
fn first_mismatch<S: BlockStore + ?Sized>(
    store: &S,
    offset: u64,
    expected: &LentBytes<'_>,
) -> Option<usize> {
    let mut sent = [0u8; COMPARE_PIECE];
    let mut medium = [0u8; COMPARE_PIECE];
    let mut done = 0usize;
    while done < expected.len() {
        let n = COMPARE_PIECE.min(expected.len() - done);
        let (sent, medium) = (sent.get_mut(..n)?, medium.get_mut(..n)?);
        if !expected.copy_to(done, sent) {
            return None;
        }
        store.read(offset.saturating_add(done as u64), medium);
        if let Some(i) = medium.iter().zip(sent.iter()).position(|(a, b)| a != b) {
            return Some(done + i);
        }
        done += n;
    }
    None
}

/// Offset, in a range of `blocks` blocks of `block` bytes at `offset`, of the first medium byte
/// that differs from the same byte of the one block `expected` (VERIFY with BYTCHK 11b). Each
/// lent byte is copied once: piece by piece, every block is compared with the copy.
fn first_mismatch_repeated<S: BlockStore + ?Sized>(
    store: &S,
    offset: u64,
    blocks: u64,
    expected: &LentBytes<'_>,
) -> Option<u64> {
    let block = expected.len() as u64;
    let mut sent = [0u8; COMPARE_PIECE];
    let mut medium = [0u8; COMPARE_PIECE];
    let mut first: Option<u64> = None;
    let mut at = 0usize;
    while at < expected.len() {
        let n = COMPARE_PIECE.min(expected.len() - at);
        let (sent, medium) = (sent.get_mut(..n)?, medium.get_mut(..n)?);
        if !expected.copy_to(at, sent) {
            return first;
        }
        for i in 0..blocks {
            let here = i * block + at as u64;
            if first.is_some_and(|found| found <= here) {
                break;
            }
            store.read(offset.saturating_add(here), medium);
            if let Some(d) = medium.iter().zip(sent.iter()).position(|(a, b)| a != b) {
                first = Some(here + d as u64);
                break;
            }
        }
        at += n;
    }
    first
}

pub(super) fn miscompare(at: usize) -> SenseData {
    SenseData {
        detail: SenseDetail::Information(u32::try_from(at).unwrap_or(u32::MAX)),
        ..SenseData::new(sense_key::MISCOMPARE, asc::MISCOMPARE_DURING_VERIFY)
    }
}

impl Disk {
    /// READ(10) or WRITE(10) when nothing about it is out of the ordinary, straight to the
    /// medium, and TEST UNIT READY (GOOD) likewise: the common requests, kept free of the
    /// general dispatcher's work (the operation-code table, the CDB copy, the unit attention
    /// and reservation steps, the handler's checks one by one). `None` leaves the request as
    /// it was for the general path ([`Disk::execute`]) whenever anything differs from the
    /// plain case: another operation code or a short CDB, a unit attention pending for any
    /// port, a reservation held, NACA or LINK, RDPROTECT/WRPROTECT, write protection, a
    /// transfer over the limit or out of range, or a data buffer of another direction (or
    /// none) or too short. In the plain case the general path does exactly this (the same
    /// checks pass, the same data, a flush after a WRITE with FUA, GOOD with the same byte
    /// count), so the outcome is the same; anything else gets the general path's outcome
    /// because it takes it.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and READ(10) / WRITE(10) pay for its frame"
    )]
    #[inline(always)]
    pub(super) fn plain_request<S: BlockStore + ?Sized, R: PlainIo>(
        &self,
        store: &S,
        io: &mut R,
    ) -> Option<Outcome> {
        // One arm per operation code, so each path knows its direction as a constant. TEST
        // UNIT READY is told by operation code and CDB byte 1 together (byte 1 is reserved in
        // it: nonzero goes to the general path), which keeps it out of the compiler's
        // comparison tree: READ(10) is then compared first, WRITE(10) second (measured,
        // vstor-bench: READ(10) two instructions fewer).
        match io.opcode() {
            op::READ_10 => self.plain_read_write::<false, false, _, _>(store, io),
            op::WRITE_10 => self.plain_read_write::<true, false, _, _>(store, io),
            _ => {
                if !self.state.is_clear_for(false) {
                    return None;
                }
                let &[code, reserved, _, _, _, control] = io.cdb::<6>()?;
                if code | reserved != op::TEST_UNIT_READY || control & 0x05 != 0 {
                    return None;
                }
                io.set_transferred(0);
                Some(Outcome::good(0))
            }
        }
    }

    /// READ(16) and WRITE(16) in the plain case, as [`Disk::plain_request`] takes the 10-byte
    /// forms, and a standard INQUIRY ([`Disk::plain_inquiry`]): the requests the plain path
    /// passes on that still need no dispatcher. Apart from [`Disk::plain_request`], so the
    /// 10-byte forms Windows sends to disks under 2 TiB keep their short dispatch.
    pub(super) fn plain_other<S: BlockStore + ?Sized, R: PlainIo>(
        &self,
        store: &S,
        io: &mut R,
    ) -> Option<Outcome> {
        match io.opcode() {
            op::READ_16 => self.plain_read_write::<false, true, _, _>(store, io),
            op::WRITE_16 => self.plain_read_write::<true, true, _, _>(store, io),
            _ => self.plain_inquiry(io),
        }
    }

    /// The READ (`WRITE` false) / WRITE (`WRITE` true) part of [`Disk::plain_request`], of
    /// the 10-byte (`LONG` false) or the 16-byte form (`LONG` true), for a CDB whose operation
    /// code says which.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and READ(10) / WRITE(10) pay for its frame"
    )]
    #[inline(always)]
    fn plain_read_write<const WRITE: bool, const LONG: bool, S, R>(
        &self,
        store: &S,
        io: &mut R,
    ) -> Option<Outcome>
    where
        S: BlockStore + ?Sized,
        R: PlainIo,
    {
        // Decoded from the CDB where they are used: the length as one load.
        let (flags, lba, blocks, control) = if LONG {
            let c = io.cdb::<16>()?;
            (
                c[1],
                u64::from_be_bytes([c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]]),
                u64::from(u32::from_be_bytes([c[10], c[11], c[12], c[13]])),
                c[15],
            )
        } else {
            let c = io.cdb::<10>()?;
            (
                c[1],
                u64::from(u32::from_be_bytes([c[2], c[3], c[4], c[5]])),
                u64::from(u16::from_be_bytes([c[7], c[8]])),
                c[9],
            )
        };
        // Write protection (for a WRITE), a reservation and a unit attention: one load.
        if flags >> 5 != 0 || control & 0x05 != 0 || !self.state.is_clear_for(WRITE) {
            return None;
        }
        let config = self.config();
        let shift = config.block_size.shift();
        // The 10-byte form's LBA and length (at most 2^32 + 2^16 blocks) cannot overflow; the
        // 16-byte form's can, which the general path reports.
        let end = if LONG {
            lba.checked_add(blocks)?
        } else {
            lba + blocks
        };
        if end > config.block_count {
            return None;
        }
        // The byte count: the 10-byte form's at most 2^16 blocks of at most 2^12 bytes fit a
        // `u32` (compared with the limit as it is kept: one instruction fewer); the 16-byte
        // form's at most 2^32 blocks make a `u64` that over the limit is no `u32`.
        let transferred = if LONG {
            u32::try_from(blocks << shift).ok()?
        } else {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "the 10-byte form's length is a u16"
            )]
            let blocks = blocks as u32;
            blocks << shift
        };
        if transferred > config.limits.max_transfer_bytes {
            return None;
        }
        let offset = lba << shift;
        // The operation code says which buffer to take; the other is never read.
        // Nothing to copy when `bytes` is 0, which the medium takes as it comes.
        if WRITE {
            store.write_lent(offset, io.data_out(transferred)?);
            // FUA as the general path has it: a flush after a write of data (empty for RAM).
            if flags & 0x08 != 0 && transferred != 0 {
                store.flush();
            }
        } else {
            store.read(offset, io.data_in(transferred)?);
        }
        Some(Outcome {
            transferred,
            ..Outcome::good(0)
        })
    }

    /// A standard INQUIRY (EVPD, CMDDT and PAGE CODE zero, no NACA or LINK, no reservation
    /// held) into a data-in buffer, as the general path answers it, without the dispatcher.
    /// INQUIRY neither reports nor clears a unit attention, so a pending one does not matter.
    /// `None` for anything else, the request left as it was: run it with [`Disk::execute`].
    #[inline(never)]
    fn plain_inquiry<R: PlainIo>(&self, io: &mut R) -> Option<Outcome> {
        let &[op::INQUIRY, flags, 0, a0, a1, control] = io.cdb::<6>()? else {
            return None;
        };
        if flags.trailing_zeros() < 2 || control & 0x05 != 0 || self.state.reservation() != 0 {
            return None;
        }
        // What `Reply` makes of the standard data, in one copy: as much as the allocation
        // length and the buffer take.
        // A buffer shorter than that goes to the general path.
        let n = u16::from_be_bytes([a0, a1]).min(u16::from(super::inquiry::STANDARD_LEN));
        io.data_in(n.into())?
            .copy_from_slice(self.standard.get(..usize::from(n))?);
        Some(Outcome {
            transferred: n.into(),
            ..Outcome::good(0)
        })
    }

    /// Byte offset and length of `blocks` blocks at `lba`, or LBA OUT OF RANGE.
    pub(super) const fn range(&self, lba: u64, blocks: u64) -> Result<(u64, u64), SenseData> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.config().block_count => {
                let shift = self.config().block_size.shift();
                Ok((lba << shift, blocks << shift))
            }
            _ => Err(SenseData::illegal(asc::LBA_OUT_OF_RANGE)),
        }
    }

    /// INVALID FIELD IN CDB at the length field when `span` exceeds MAXIMUM TRANSFER LENGTH
    /// (SBC-3).
    const fn check_transfer_length(&self, span: &Span) -> Result<(), SenseData> {
        let max =
            (self.config().limits.max_transfer_bytes as u64) >> self.config().block_size.shift();
        if span.blocks > max {
            return Err(SenseData::invalid_cdb_field(span.length_at, None));
        }
        Ok(())
    }

    /// READ(6/10/12/16) (SBC-3). DPO, FUA and RARC are accepted. A data buffer
    /// shorter than the transfer gets what fits, with `SRB_STATUS_DATA_OVERRUN`.
    pub(crate) fn read<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        let span = span(cdb);
        self.check_transfer_length(&span)?;
        let (offset, bytes) = self.range(span.lba, span.blocks)?;
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let wanted = usize::try_from(bytes).unwrap_or(usize::MAX);
        let n = wanted.min(buf.len());
        if let Some(out) = buf.get_mut(..n)
            && n > 0
        {
            store.read(offset, out);
        }
        Ok(if n < wanted {
            Outcome::data_overrun(n)
        } else {
            Outcome::good(n)
        })
    }

    /// WRITE(6/10/12/16) (SBC-3). FUA = 1 flushes the store after the write. A
    /// data buffer shorter than the transfer writes nothing (`SRB_STATUS_DATA_OVERRUN`, 0).
    /// Inlined into the dispatcher like READ: the call costs a tenth of the path.
    #[expect(
        clippy::inline_always,
        reason = "measured: out of line, the call adds 34 instructions to every WRITE SRB"
    )]
    #[inline(always)]
    pub(crate) fn write<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        let span = span(cdb);
        self.check_transfer_length(&span)?;
        if self.is_read_only() {
            return Err(write_protected());
        }
        let (offset, bytes) = self.range(span.lba, span.blocks)?;
        let buf = match data_out(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let wanted = usize::try_from(bytes).unwrap_or(usize::MAX);
        let Some(src) = buf.get(0..wanted) else {
            return Ok(Outcome::data_overrun(0));
        };
        if !src.is_empty() {
            store.write_lent(offset, src);
            if flags(cdb) & 0x08 != 0 {
                store.flush();
            }
        }
        Ok(Outcome::good(wanted))
    }

    /// WRITE AND VERIFY(10/12/16) (SBC-4). Writes like WRITE; the medium is RAM, so the
    /// data read back is the data just written and the verification (BYTCHK 01b: compare
    /// with the data-out buffer) cannot fail: nothing more is done. BYTCHK 1xb is reserved:
    /// INVALID FIELD IN CDB. The shared WRITE path treats byte 1 bit 3 (FUA in WRITE, reserved
    /// here) as FUA, which on RAM only calls [`BlockStore::flush`].
    pub(crate) fn write_and_verify<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        if cdb.bit(1, 2) {
            return Err(SenseData::invalid_cdb_field(1, Some(2)));
        }
        self.write(store, cdb, data)
    }

    /// VERIFY(10/12/16) (SBC-3). BYTCHK 00b: the medium needs no check, only the
    /// range is validated (length 0 is fine). BYTCHK 01b: the data-out buffer is compared with
    /// the medium. BYTCHK 11b: one block is compared with every block of the range. BYTCHK
    /// 10b is reserved: INVALID FIELD IN CDB. A difference ends in MISCOMPARE, MISCOMPARE
    /// DURING VERIFY OPERATION with INFORMATION = offset of the first differing byte.
    pub(crate) fn verify<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        let bytchk = (flags(cdb) >> 1) & 0x03;
        if bytchk == 0b10 {
            return Err(SenseData::invalid_cdb_field(1, Some(2)));
        }
        let span = span(cdb);
        if bytchk == 0 {
            self.range(span.lba, span.blocks)?;
            return Ok(Outcome::good(0));
        }
        self.check_transfer_length(&span)?;
        let (offset, bytes) = self.range(span.lba, span.blocks)?;
        let buf = match data_out(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        if bytes == 0 {
            return Ok(Outcome::good(0));
        }
        let block = usize::try_from(self.block_bytes()).unwrap_or(usize::MAX);
        if bytchk == 0b01 {
            let wanted = usize::try_from(bytes).unwrap_or(usize::MAX);
            let Some(expected) = buf.get(0..wanted) else {
                return Ok(Outcome::data_overrun(0));
            };
            if let Some(at) = first_mismatch(store, offset, &expected) {
                return Err(miscompare(at));
            }
            return Ok(Outcome::good(wanted));
        }
        let Some(expected) = buf.get(0..block) else {
            return Ok(Outcome::data_overrun(0));
        };
        if let Some(at) = first_mismatch_repeated(store, offset, span.blocks, &expected) {
            return Err(miscompare(usize::try_from(at).unwrap_or(usize::MAX)));
        }
        Ok(Outcome::good(block))
    }

    /// WRITE SAME(10/16) (SBC-3). NUMBER OF LOGICAL BLOCKS 0 is refused (WSNZ = 1
    /// in page B0h), as is more than MAXIMUM WRITE SAME LENGTH. ANCHOR (`ANC_SUP` = 0), PBDATA
    /// and LBDATA are not supported. A zero block (or NDOB = 1 in WRITE SAME(16), SBC-4) is
    /// stored with [`BlockStore::zero`], UNMAP or not: with LBPRZ = 1 an unmapped block reads
    /// zero, which is the data asked for. A nonzero block is written to every block even when
    /// UNMAP = 1, since unmapping would not read back that data (SBC-3).
    pub(crate) fn write_same<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        let sixteen = cdb.u8(0) == op::WRITE_SAME_16;
        for bit in [4u8, 2, 1] {
            if cdb.bit(1, u32::from(bit)) {
                return Err(SenseData::invalid_cdb_field(1, Some(bit)));
            }
        }
        let ndob = sixteen && cdb.bit(1, 0);
        let (blocks, length_at) = if sixteen {
            (u64::from(cdb.be32(10)), 10)
        } else {
            (u64::from(cdb.be16(7)), 7)
        };
        let limit = self.config().limits.max_write_same_bytes / self.block_bytes();
        if blocks == 0 || blocks > limit {
            return Err(SenseData::invalid_cdb_field(length_at, None));
        }
        if self.is_read_only() {
            return Err(write_protected());
        }
        let lba = if sixteen {
            cdb.be64(2)
        } else {
            u64::from(cdb.be32(2))
        };
        let (offset, bytes) = self.range(lba, blocks)?;
        if ndob {
            store.zero(offset, bytes);
            return Ok(Outcome::good(0));
        }
        let buf = match data_out(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let block_len = usize::try_from(self.block_bytes()).unwrap_or(usize::MAX);
        let Some(block) = buf.get(0..block_len) else {
            return Ok(Outcome::data_overrun(0));
        };
        self.replicate(store, offset, blocks, &block);
        Ok(Outcome::good(block_len))
    }

    /// Stores the one lent `block` in each of `blocks` blocks at `offset` (WRITE SAME), reading
    /// each lent byte once: the block is copied [`SAME_PIECE`] bytes at a time and each piece
    /// written to every block. Leading pieces of zeros are held back: a block that is zero
    /// throughout is stored with one [`BlockStore::zero`] of the range; otherwise the
    /// held-back zeros are zeroed in each block when the first nonzero piece comes.
    fn replicate<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        offset: u64,
        blocks: u64,
        block: &LentBytes<'_>,
    ) {
        let block_bytes = self.block_bytes();
        let mut piece = [0u8; SAME_PIECE];
        // Bytes at the start of the block seen to be zero and not stored yet; `None` once
        // something was stored.
        let mut zero_prefix = Some(0usize);
        let mut at = 0usize;
        while at < block.len() {
            let n = SAME_PIECE.min(block.len() - at);
            let Some(piece) = piece.get_mut(..n) else {
                return;
            };
            if !block.copy_to(at, piece) {
                return;
            }
            let zero = piece.iter().all(|&b| b == 0);
            match zero_prefix {
                Some(prefix) if zero => zero_prefix = Some(prefix + n),
                _ => {
                    for i in 0..blocks {
                        let start = offset + i * block_bytes;
                        if let Some(prefix) = zero_prefix.filter(|&prefix| prefix > 0) {
                            store.zero(start, prefix as u64);
                        }
                        store.write(start + at as u64, piece);
                    }
                    zero_prefix = None;
                }
            }
            at += n;
        }
        if zero_prefix.is_some() {
            store.zero(offset, blocks * block_bytes);
        }
    }

    /// UNMAP (SBC-3). ANCHOR is not supported. PARAMETER LIST LENGTH 0: nothing to do;
    /// 1–7: PARAMETER LIST LENGTH ERROR. The descriptors used are those inside both the
    /// UNMAP BLOCK DESCRIPTOR DATA LENGTH and the parameter list, whole 16-byte ones only (a
    /// trailing partial descriptor is ignored). More descriptors than MAXIMUM UNMAP BLOCK
    /// DESCRIPTOR COUNT, or more blocks in total than MAXIMUM UNMAP LBA COUNT: INVALID FIELD IN
    /// PARAMETER LIST; a range past the capacity: LBA OUT OF RANGE. Every descriptor is
    /// checked before any range is unmapped.
    ///
    /// The list is read once: its header and then its descriptors (at most
    /// [`MAX_UNMAP_DESCRIPTORS`], so at most 1032 bytes) are copied into a local buffer, and
    /// the checks and the unmapping both work from that copy, so a list that changes while
    /// the command runs cannot pass the checks in one version and be acted on in another.
    pub(crate) fn unmap<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        if cdb.bit(1, 0) {
            return Err(SenseData::invalid_cdb_field(1, Some(0)));
        }
        let plen = usize::from(cdb.be16(7));
        if self.is_read_only() {
            return Err(write_protected());
        }
        if plen == 0 {
            return Ok(Outcome::good(0));
        }
        if plen < UNMAP_HEADER {
            return Err(SenseData::illegal(asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let buf = match data_out(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        if buf.len() < plen {
            return Ok(Outcome::data_overrun(0));
        }
        let mut list = [0u8; UNMAP_LIST_MAX];
        let Some(header) = list.get_mut(..UNMAP_HEADER) else {
            return Ok(Outcome::data_overrun(0));
        };
        if !buf.copy_to(0, header) {
            return Ok(Outcome::data_overrun(0));
        }
        let descriptor_bytes =
            usize::from(param_be16(&list, 2).unwrap_or(0)).min(plen - UNMAP_HEADER);
        let count = descriptor_bytes / UNMAP_DESCRIPTOR;
        let limits = &self.config().limits;
        if u64::try_from(count).unwrap_or(u64::MAX) > u64::from(limits.max_unmap_descriptors) {
            return Err(SenseData::invalid_parameter(2, None));
        }
        // `max_unmap_descriptors` is at most MAX_UNMAP_DESCRIPTORS (DiskConfig::validate), so
        // the descriptors fit the local list.
        let end = UNMAP_HEADER + count * UNMAP_DESCRIPTOR;
        let Some(descriptors) = list.get_mut(UNMAP_HEADER..end) else {
            return Err(SenseData::invalid_parameter(2, None));
        };
        if !buf.copy_to(UNMAP_HEADER, descriptors) {
            return Ok(Outcome::data_overrun(0));
        }
        let Some(list) = list.get(..end) else {
            return Err(SenseData::invalid_parameter(2, None));
        };
        let max_blocks = limits.max_unmap_bytes / self.block_bytes();
        let descriptor = |i: usize| {
            let at = UNMAP_HEADER + UNMAP_DESCRIPTOR * i;
            let lba = param_be64(list, at).unwrap_or(0);
            let blocks = u64::from(param_be32(list, at + 8).unwrap_or(0));
            (at, lba, blocks)
        };
        let mut total = 0u64;
        for i in 0..count {
            let (at, lba, blocks) = descriptor(i);
            total = total.saturating_add(blocks);
            if total > max_blocks {
                return Err(SenseData::invalid_parameter(
                    super::reply::ptr(at + 8),
                    None,
                ));
            }
            self.range(lba, blocks)?;
        }
        for i in 0..count {
            let (_, lba, blocks) = descriptor(i);
            if let Ok((offset, bytes)) = self.range(lba, blocks)
                && bytes > 0
            {
                store.zero(offset, bytes);
            }
        }
        Ok(Outcome::good(plen))
    }

    /// SYNCHRONIZE CACHE(10/16) and PRE-FETCH(10/16) (SBC-3): range-checked (0 blocks = to
    /// the end), then SYNCHRONIZE CACHE calls [`BlockStore::flush`]. IMMED and `SYNC_NV` are
    /// accepted; the flush completes before status either way. PRE-FETCH does nothing more:
    /// the medium is RAM and there is no separate cache to load, which SBC-3 reports with
    /// GOOD (CONDITION MET would claim the blocks were moved into a cache).
    pub(crate) fn synchronize_cache<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
    ) -> Handled {
        let span = span(cdb);
        self.range(span.lba, span.blocks)?;
        if matches!(
            cdb.u8(0),
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16
        ) {
            store.flush();
        }
        Ok(Outcome::good(0))
    }
}
