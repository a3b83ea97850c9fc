//! MODE SENSE and MODE SELECT (SPC-4) with the caching (08h), control (0Ah) and
//! informational exceptions control (1Ch) pages.
//!
//! Saved values are not implemented: a RAM disk has nowhere to save them. PS = 0 in every
//! page, MODE SENSE with PC = 11b ends in SAVING PARAMETERS NOT SUPPORTED (SPC-4) and
//! MODE SELECT with SP = 1 in INVALID FIELD IN CDB (SPC-4). Only WCE is changeable.

use super::disk::{Disk, Handled};
use super::reply::{Cdb, Reply, data_in, data_out, param_be16, param_be32, param_be64, ptr};
use super::sense::{SenseData, asc};
use super::{DataBuffer, LentBytes, Outcome};

const CACHING: u8 = 0x08;
const CONTROL: u8 = 0x0A;
const INFORMATIONAL_EXCEPTIONS: u8 = 0x1C;
const ALL_PAGES: u8 = 0x3F;

/// Pages returned for 3Fh, in ascending page code order (SPC-4).
const PAGES: [u8; 3] = [CACHING, CONTROL, INFORMATIONAL_EXCEPTIONS];

/// Longest page (caching: 20 bytes).
const PAGE_MAX: usize = 20;

/// The page control field values that are answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Values {
    Current,
    Changeable,
    Default,
}

/// A mode page as sent by MODE SENSE, and its length.
fn page(code: u8, values: Values, wce: bool) -> Option<([u8; PAGE_MAX], usize)> {
    let mut p = [0u8; PAGE_MAX];
    let len = match code {
        // SBC-3: all zero except WCE (bit 2 of byte 2); RCD = 0, reads are cached.
        CACHING => {
            p[0] = CACHING;
            p[1] = 0x12;
            p[2] = match values {
                Values::Changeable => 0x04,
                Values::Current | Values::Default => u8::from(wce) << 2,
            };
            20
        }
        // SPC-4: GLTSD = 1 (no implicit log saving), QUEUE ALGORITHM MODIFIER = 1
        // (unrestricted reordering), BUSY TIMEOUT PERIOD FFFFh (unlimited). Nothing changeable.
        CONTROL => {
            p[0] = CONTROL;
            p[1] = 0x0A;
            if values != Values::Changeable {
                p[2] = 0x02;
                p[3] = 0x10;
                p[8] = 0xFF;
                p[9] = 0xFF;
            }
            12
        }
        // SPC-4: DEXCPT = 1 (informational exceptions disabled), MRIE 0.
        INFORMATIONAL_EXCEPTIONS => {
            p[0] = INFORMATIONAL_EXCEPTIONS;
            p[1] = 0x0A;
            if values != Values::Changeable {
                p[2] = 0x08;
            }
            12
        }
        _ => return None,
    };
    Some((p, len))
}

impl Disk {
    /// MODE SENSE(6) / MODE SENSE(10): header, block descriptor unless DBD = 1 (long LBA
    /// descriptor for MODE SENSE(10) with LLBAA = 1), then the page or all pages. The header's
    /// device-specific parameter has WP for a read-only disk and DPOFUA = 1.
    pub(crate) fn mode_sense(&self, cdb: &Cdb, ten: bool, data: DataBuffer<'_>) -> Handled {
        let dbd = cdb.bit(1, 3);
        let llbaa = ten && cdb.bit(1, 4);
        let pc = cdb.u8(2) >> 6;
        let code = cdb.u8(2) & 0x3F;
        let subpage = cdb.u8(3);
        let alloc = if ten {
            usize::from(cdb.be16(7))
        } else {
            usize::from(cdb.u8(4))
        };
        let values =
            match pc {
                0 => Values::Current,
                1 => Values::Changeable,
                2 => Values::Default,
                _ => {
                    return Err(SenseData::illegal(asc::SAVING_PARAMETERS_NOT_SUPPORTED)
                        .with_field(super::FieldPointer {
                            in_cdb: true,
                            byte: 2,
                            bit: Some(7),
                        }));
                }
            };
        // Subpage 00h is the page itself, FFh the page and all its subpages (SPC-4, MODE
        // SENSE(6)); no page here has subpages, so both return the same bytes.
        let known = (PAGES.contains(&code) || code == ALL_PAGES) && matches!(subpage, 0x00 | 0xFF);
        if !known {
            let byte = if PAGES.contains(&code) || code == ALL_PAGES {
                3
            } else {
                2
            };
            return Err(SenseData::invalid_cdb_field(byte, None));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let wce = match values {
            Values::Default => self.config().write_cache,
            _ => self.write_cache_enabled(),
        };
        let dsp = if self.is_read_only() { 0x90 } else { 0x10 };
        let descriptor_len: u8 = match (dbd, llbaa) {
            (true, _) => 0,
            (false, true) => 16,
            (false, false) => 8,
        };
        let mut reply = Reply::new(buf, alloc);
        if ten {
            reply.be16(0); // MODE DATA LENGTH, patched
            reply.byte(0); // MEDIUM TYPE
            reply.byte(dsp);
            reply.byte(u8::from(descriptor_len == 16)); // LONGLBA
            reply.byte(0);
            reply.be16(u16::from(descriptor_len));
        } else {
            reply.byte(0); // MODE DATA LENGTH, patched
            reply.byte(0);
            reply.byte(dsp);
            reply.byte(descriptor_len);
        }
        self.block_descriptor(&mut reply, descriptor_len, values);
        for code in PAGES
            .into_iter()
            .filter(|&p| p == code || code == ALL_PAGES)
        {
            if let Some((bytes, len)) = page(code, values, wce) {
                reply.bytes(bytes.get(..len).unwrap_or(&[]));
            }
        }
        // MODE DATA LENGTH excludes itself (SPC-4).
        if ten {
            let n = u16::try_from(reply.len().saturating_sub(2)).unwrap_or(u16::MAX);
            reply.patch16(0, n);
        } else {
            let n = u8::try_from(reply.len().saturating_sub(1)).unwrap_or(u8::MAX);
            reply.patch(0, n);
        }
        Ok(reply.finish())
    }

    /// Mode parameter block descriptor (SBC-3). Changeable values: all zero, nothing
    /// in it can be changed. The short form says `FFFF_FFFFh` when the block count is too large.
    fn block_descriptor(&self, reply: &mut Reply<'_>, len: u8, values: Values) {
        let (blocks, block_len) = if values == Values::Changeable {
            (0, 0)
        } else {
            (self.config().block_count, self.config().block_size.bytes())
        };
        match len {
            8 => {
                reply.be32(u32::try_from(blocks).unwrap_or(u32::MAX));
                reply.byte(0);
                let [_, a, b, c] = block_len.to_be_bytes();
                reply.bytes(&[a, b, c]);
            }
            16 => {
                reply.be64(blocks);
                reply.be32(0);
                reply.be32(block_len);
            }
            _ => {}
        }
    }

    /// MODE SELECT(6) / MODE SELECT(10) (SPC-4).
    ///
    /// PF must be 1 and SP 0. A PARAMETER LIST LENGTH of 0 is no transfer and no error. The
    /// list is checked completely before anything changes: a header or page cut short is
    /// PARAMETER LIST LENGTH ERROR; a nonzero medium type, a block descriptor that changes
    /// the geometry, an unknown page, a subpage, a wrong PAGE LENGTH or any change to a field
    /// other than WCE is INVALID FIELD IN PARAMETER LIST with a pointer to the byte. The mode
    /// data length and the device-specific parameter of the header are reserved or ignored
    /// in MODE SELECT (SPC-4, SBC-3).
    ///
    /// The list (up to 64 KiB in MODE SELECT(10)) is read once, front to back: the header,
    /// the block descriptor and each page are copied into small local buffers as the parse
    /// reaches them, and every check and the new WCE come from those copies.
    pub(crate) fn mode_select(&self, cdb: &Cdb, ten: bool, data: DataBuffer<'_>) -> Handled {
        if cdb.bit(1, 0) {
            return Err(SenseData::invalid_cdb_field(1, Some(0)));
        }
        if !cdb.bit(1, 4) {
            return Err(SenseData::invalid_cdb_field(1, Some(4)));
        }
        let plen = if ten {
            usize::from(cdb.be16(7))
        } else {
            usize::from(cdb.u8(4))
        };
        let buf = match data_out(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        if plen == 0 {
            return Ok(Outcome::good(0));
        }
        let Some(list) = buf.get(0..plen) else {
            return Ok(Outcome::data_overrun(0));
        };
        let wce = self.parse_mode_parameters(&list, ten)?;
        if let Some(wce) = wce {
            self.set_write_cache(wce);
        }
        Ok(Outcome::good(plen))
    }

    /// Validates a MODE SELECT parameter list, copying each byte of it once; returns the new
    /// WCE if a caching page came.
    fn parse_mode_parameters(
        &self,
        list: &LentBytes<'_>,
        ten: bool,
    ) -> Result<Option<bool>, SenseData> {
        let length_error = SenseData::illegal(asc::PARAMETER_LIST_LENGTH_ERROR);
        let header_len = if ten { 8 } else { 4 };
        let mut header = [0u8; 8];
        let copied = header
            .get_mut(..header_len)
            .is_some_and(|to| list.copy_to(0, to));
        if !copied {
            return Err(length_error);
        }
        let byte = |at: usize| header.get(at).copied().unwrap_or(0);
        let (medium_at, bdl, bdl_at, long) = if ten {
            (
                2,
                usize::from(param_be16(&header, 6).unwrap_or(0)),
                6,
                byte(4) & 1 == 1,
            )
        } else {
            (1, usize::from(byte(3)), 3, false)
        };
        if byte(medium_at) != 0 {
            return Err(SenseData::invalid_parameter(ptr(medium_at), None));
        }
        let expected = if long { 16 } else { 8 };
        if bdl != 0 && bdl != expected {
            return Err(SenseData::invalid_parameter(ptr(bdl_at), None));
        }
        if header_len + bdl > list.len() {
            return Err(length_error);
        }
        if bdl != 0 {
            let mut descriptor = [0u8; 16];
            let copied = descriptor
                .get_mut(..bdl)
                .is_some_and(|to| list.copy_to(header_len, to));
            if !copied {
                return Err(length_error);
            }
            self.check_block_descriptor(&descriptor, header_len, long)?;
        }
        let mut at = header_len + bdl;
        let mut wce = None;
        while at < list.len() {
            let (len, page_wce) = self.parse_mode_page(list, at)?;
            if page_wce.is_some() {
                wce = page_wce;
            }
            at += len;
        }
        Ok(wce)
    }

    /// Validates the mode page at `at` of a MODE SELECT parameter list: its header first
    /// (the code, then the length), then the rest, each byte copied once into a local page.
    /// Returns the page's length and, for the caching page, the WCE it sets.
    fn parse_mode_page(
        &self,
        list: &LentBytes<'_>,
        at: usize,
    ) -> Result<(usize, Option<bool>), SenseData> {
        let length_error = SenseData::illegal(asc::PARAMETER_LIST_LENGTH_ERROR);
        let mut sent = [0u8; PAGE_MAX];
        if !sent.get_mut(..1).is_some_and(|to| list.copy_to(at, to)) {
            return Err(length_error);
        }
        let code = sent[0] & 0x3F;
        if sent[0] & 0x40 != 0 {
            return Err(SenseData::invalid_parameter(ptr(at), Some(6)));
        }
        if at + 2 > list.len()
            || !sent
                .get_mut(1..2)
                .is_some_and(|to| list.copy_to(at + 1, to))
        {
            return Err(length_error);
        }
        let Some((current, len)) = page(code, Values::Current, self.write_cache_enabled()) else {
            return Err(SenseData::invalid_parameter(ptr(at), Some(5)));
        };
        let Some((changeable, _)) = page(code, Values::Changeable, false) else {
            return Err(SenseData::invalid_parameter(ptr(at), Some(5)));
        };
        if usize::from(sent[1]) != len - 2 {
            return Err(SenseData::invalid_parameter(ptr(at + 1), None));
        }
        if at + len > list.len()
            || !sent
                .get_mut(2..len)
                .is_some_and(|to| list.copy_to(at + 2, to))
        {
            return Err(length_error);
        }
        let Some(sent) = sent.get(..len) else {
            return Err(length_error);
        };
        for (i, ((&s, &c), &m)) in sent
            .iter()
            .zip(&current)
            .zip(&changeable)
            .enumerate()
            .skip(2)
        {
            let diff = (s ^ c) & !m;
            if diff != 0 {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "leading_zeros of a nonzero u8 is at most 7"
                )]
                let bit = 7 - diff.leading_zeros() as u8;
                return Err(SenseData::invalid_parameter(ptr(at + i), Some(bit)));
            }
        }
        let wce = (code == CACHING).then(|| sent.get(2).is_some_and(|b| b & 0x04 != 0));
        Ok((len, wce))
    }

    /// A block descriptor in MODE SELECT may repeat the geometry (or give 0 blocks, "no
    /// change"), but not change it. `descriptor` is a copy of the descriptor, which starts at
    /// byte `at` of the parameter list (for the sense pointers).
    fn check_block_descriptor(
        &self,
        descriptor: &[u8],
        at: usize,
        long: bool,
    ) -> Result<(), SenseData> {
        let count = self.config().block_count;
        let block_len = self.config().block_size.bytes();
        let (blocks, blocks_ok, len_at, sent_len) = if long {
            let b = param_be64(descriptor, 0).unwrap_or(0);
            (
                b,
                b == count,
                at + 12,
                param_be32(descriptor, 12).unwrap_or(0),
            )
        } else {
            let b = u64::from(param_be32(descriptor, 0).unwrap_or(0));
            let short = u64::from(u32::try_from(count).unwrap_or(u32::MAX));
            (
                b,
                b == short,
                at + 4,
                param_be32(descriptor, 4).unwrap_or(0) & 0x00FF_FFFF,
            )
        };
        if blocks != 0 && !blocks_ok {
            return Err(SenseData::invalid_parameter(ptr(at), None));
        }
        if sent_len != block_len {
            let pointer = if long { len_at } else { len_at + 1 };
            return Err(SenseData::invalid_parameter(ptr(pointer), None));
        }
        Ok(())
    }
}
