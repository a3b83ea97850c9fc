//! The indivisible writes: COMPARE AND WRITE (SBC-3), ORWRITE(16) (SBC-3) and WRITE
//! ATOMIC(16) (SBC-4).
//!
//! Each changes the medium in one [`BlockStore::atomically`] step, so no concurrent command
//! reads or writes the range half-way through: COMPARE AND WRITE's compare and its write are
//! one step, as SBC-3 requires of a caller-visible lock, and so are ORWRITE's read and OR.
//! They name at most [`MAX_ATOMIC_BYTES`] of the medium (MAXIMUM ATOMIC TRANSFER LENGTH and
//! MAXIMUM COMPARE AND WRITE LENGTH in the Block Limits page say so). Checks run in the order
//! of [`super::io`]: CDB fields → write protection → LBA range → data buffer size.

use super::disk::{Disk, Handled};
use super::io::{Span, check_protect, flags, miscompare, span, write_protected};
use super::reply::{Cdb, data_out};
use super::sense::{SenseData, asc};
use super::{BlockStore, DataBuffer, LentBytes, MAX_ATOMIC_BYTES, Outcome};

/// What an atomic command does to the medium bytes with its data-out bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Update {
    /// COMPARE AND WRITE: the first half of the data must equal the medium; then the
    /// second half replaces it.
    CompareThenWrite,
    /// ORWRITE: each medium byte becomes itself OR the data byte.
    Or,
    /// WRITE ATOMIC: the data replaces the medium.
    Replace,
}

/// Bytes of the data-out buffer copied per step when they are compared with the medium or
/// combined with it by OR: a copy on the stack.
const PIECE: usize = 256;

/// Offset in `data` (from `base` on) of the first byte that differs from `medium`, comparing
/// a copy of each lent byte; a copy that cannot be made counts as a difference at its start.
fn first_difference(data: &LentBytes<'_>, base: usize, medium: &[u8]) -> Option<usize> {
    let mut sent = [0u8; PIECE];
    for (index, chunk) in medium.chunks(PIECE).enumerate() {
        let at = base + index * PIECE;
        let sent = sent.get_mut(..chunk.len())?;
        if !data.copy_to(at, sent) {
            return Some(at);
        }
        if let Some(i) = chunk.iter().zip(sent.iter()).position(|(a, b)| a != b) {
            return Some(at + i);
        }
    }
    None
}

/// ORs a copy of the lent bytes at `base..` into `medium`.
fn or_into(data: &LentBytes<'_>, base: usize, medium: &mut [u8]) {
    let mut sent = [0u8; PIECE];
    for (index, chunk) in medium.chunks_mut(PIECE).enumerate() {
        let Some(sent) = sent.get_mut(..chunk.len()) else {
            return;
        };
        if !data.copy_to(base + index * PIECE, sent) {
            return;
        }
        for (medium, byte) in chunk.iter_mut().zip(sent.iter()) {
            *medium |= byte;
        }
    }
}

/// Applies `update` to the medium bytes `head` followed by `tail`, with `data` the whole
/// data-out buffer of the command (lent bytes: each is copied once, the compare half into a
/// local buffer, the rest straight into the medium). Returns the offset in `data` of the
/// first byte that failed the compare; the medium is then left as it was.
fn apply(update: Update, data: &LentBytes<'_>, head: &mut [u8], tail: &mut [u8]) -> Option<usize> {
    let len = head.len() + tail.len();
    let new_at = if update == Update::CompareThenWrite {
        if let Some(at) =
            first_difference(data, 0, head).or_else(|| first_difference(data, head.len(), tail))
        {
            return Some(at);
        }
        len
    } else {
        0
    };
    if update == Update::Or {
        or_into(data, new_at, head);
        or_into(data, new_at + head.len(), tail);
    } else {
        // The caller hands exactly the bytes the command names, so both copies fit.
        let _ = data.copy_to(new_at, head);
        let _ = data.copy_to(new_at + head.len(), tail);
    }
    None
}

impl Disk {
    /// MAXIMUM ATOMIC TRANSFER LENGTH in blocks: the transfer limit, capped at
    /// [`MAX_ATOMIC_BYTES`].
    pub(crate) fn max_atomic_blocks(&self) -> u32 {
        let bytes = self
            .config()
            .limits
            .max_transfer_bytes
            .min(MAX_ATOMIC_BYTES);
        bytes >> self.config().block_size.shift()
    }

    /// MAXIMUM COMPARE AND WRITE LENGTH in blocks: both halves of the data-out buffer within
    /// the transfer limit, the write within [`MAX_ATOMIC_BYTES`], and at most 255 (the
    /// NUMBER OF LOGICAL BLOCKS field is one byte).
    pub(crate) fn max_compare_and_write_blocks(&self) -> u8 {
        let half =
            (self.config().limits.max_transfer_bytes / 2) >> self.config().block_size.shift();
        u8::try_from(half.min(self.max_atomic_blocks())).unwrap_or(u8::MAX)
    }

    /// COMPARE AND WRITE (SBC-3). The data-out buffer holds NUMBER OF LOGICAL BLOCKS blocks
    /// to compare with the medium, then as many to write. A difference ends in MISCOMPARE,
    /// MISCOMPARE DURING VERIFY OPERATION, with INFORMATION = offset in the data-out buffer
    /// of the first differing byte, and nothing written. 0 blocks compares and writes
    /// nothing and is not an error. More than MAXIMUM COMPARE AND WRITE LENGTH: INVALID
    /// FIELD IN CDB. DPO is accepted; FUA flushes the store after the write.
    pub(crate) fn compare_and_write<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        let blocks = cdb.u8(13);
        if blocks > self.max_compare_and_write_blocks() {
            return Err(SenseData::invalid_cdb_field(13, None));
        }
        let span = Span {
            lba: cdb.be64(2),
            blocks: u64::from(blocks),
            length_at: 13,
        };
        self.update(store, cdb, data, &span, Update::CompareThenWrite)
    }

    /// ORWRITE(16) (SBC-3): ORs the data-out buffer into the medium, as one step. Up to
    /// MAXIMUM ATOMIC TRANSFER LENGTH blocks; more is INVALID FIELD IN CDB. DPO is accepted;
    /// FUA flushes the store after the write.
    pub(crate) fn or_write<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        let span = span(cdb);
        if span.blocks > u64::from(self.max_atomic_blocks()) {
            return Err(SenseData::invalid_cdb_field(span.length_at, None));
        }
        self.update(store, cdb, data, &span, Update::Or)
    }

    /// WRITE ATOMIC(16) (SBC-4): a WRITE that no other command sees half done. ATOMIC
    /// BOUNDARY must be 0 (MAXIMUM ATOMIC BOUNDARY SIZE is 0) and the TRANSFER LENGTH at most
    /// MAXIMUM ATOMIC TRANSFER LENGTH; otherwise INVALID FIELD IN CDB. No alignment or
    /// granularity applies (both 0 in the Block Limits page). DPO is accepted; FUA flushes
    /// the store after the write.
    pub(crate) fn write_atomic<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        check_protect(cdb)?;
        if cdb.be16(10) != 0 {
            return Err(SenseData::invalid_cdb_field(10, None));
        }
        let span = Span {
            lba: cdb.be64(2),
            blocks: u64::from(cdb.be16(12)),
            length_at: 12,
        };
        if span.blocks > u64::from(self.max_atomic_blocks()) {
            return Err(SenseData::invalid_cdb_field(span.length_at, None));
        }
        self.update(store, cdb, data, &span, Update::Replace)
    }

    /// The shared part of the three commands, after their CDB checks. A data-out buffer
    /// shorter than the command needs changes nothing (`SRB_STATUS_DATA_OVERRUN`, 0).
    fn update<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
        span: &Span,
        update: Update,
    ) -> Handled {
        if self.is_read_only() {
            return Err(write_protected());
        }
        let (offset, bytes) = self.range(span.lba, span.blocks)?;
        let buf = match data_out(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let len = usize::try_from(bytes).unwrap_or(usize::MAX);
        let wanted = if update == Update::CompareThenWrite {
            len.saturating_mul(2)
        } else {
            len
        };
        let Some(src) = buf.get(0..wanted) else {
            return Ok(Outcome::data_overrun(0));
        };
        if len == 0 {
            return Ok(Outcome::good(0));
        }
        let mut mismatch = None;
        if !store.atomically(offset, len, &mut |head, tail| {
            mismatch = apply(update, &src, head, tail);
        }) {
            // The range was checked against the capacity above; a store refusing it is
            // out of step with the disk's geometry.
            return Err(SenseData::illegal(asc::LBA_OUT_OF_RANGE));
        }
        if let Some(at) = mismatch {
            return Err(miscompare(at));
        }
        if flags(cdb) & 0x08 != 0 {
            store.flush();
        }
        Ok(Outcome::good(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::{LentBytes, Update};

    fn apply(update: Update, data: &[u8], head: &mut [u8], tail: &mut [u8]) -> Option<usize> {
        super::apply(update, &LentBytes::from(data), head, tail)
    }

    #[test]
    fn compare_then_write_across_two_pieces() {
        let mut head = *b"abc";
        let mut tail = *b"de";
        assert_eq!(
            apply(
                Update::CompareThenWrite,
                b"abcdeVWXYZ",
                &mut head,
                &mut tail
            ),
            None
        );
        assert_eq!((&head, &tail), (b"VWX", b"YZ"));
    }

    #[test]
    fn a_miscompare_names_its_offset_and_writes_nothing() {
        let mut head = *b"abc";
        let mut tail = *b"de";
        assert_eq!(
            apply(
                Update::CompareThenWrite,
                b"abcdXVWXYZ",
                &mut head,
                &mut tail
            ),
            Some(4)
        );
        assert_eq!((&head, &tail), (b"abc", b"de"));
        assert_eq!(
            apply(
                Update::CompareThenWrite,
                b"Xbcde12345",
                &mut head,
                &mut tail
            ),
            Some(0)
        );
        assert_eq!((&head, &tail), (b"abc", b"de"));
    }

    #[test]
    fn or_and_replace() {
        let mut head = [0x0F_u8, 0xF0];
        let mut tail = [0x01_u8];
        assert_eq!(
            apply(Update::Or, &[0xA0, 0x0A, 0x80], &mut head, &mut tail),
            None
        );
        assert_eq!((head, tail), ([0xAF, 0xFA], [0x81]));
        assert_eq!(
            apply(Update::Replace, &[1, 2, 3], &mut head, &mut tail),
            None
        );
        assert_eq!((head, tail), ([1, 2], [3]));
    }
}
