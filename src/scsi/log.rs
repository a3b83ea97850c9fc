//! LOG SENSE (SPC-4): the supported log pages, temperature and informational exceptions.
//!
//! A RAM disk measures nothing and keeps no counters, so every page is short and constant:
//!
//! - Supported Log Pages (00h/00h) and Supported Log Pages and Subpages (00h/FFh) list
//!   exactly [`LOG_PAGES`].
//! - Temperature (0Dh): TEMPERATURE (0000h) and REFERENCE TEMPERATURE (0001h), both `FFh`,
//!   which SPC-4 defines as "not available": there is no sensor to read.
//! - Informational Exceptions (2Fh): parameter 0000h with ASC and ASCQ 00h (no exception
//!   to report; the control mode page 1Ch has DEXCPT = 1) and MOST RECENT TEMPERATURE
//!   READING `FFh`.
//!
//! The Logical Block Provisioning page (0Ch) is not reported: the disks are resource
//! provisioned (VPD page B2h), with every block backed from the start, so there is no
//! provisioning resource to count and no threshold to cross.
//!
//! Nothing is saved and nothing accumulates: the parameter pages carry DS = 1 (saving not
//! supported) and each parameter TSD = 1 (never saved implicitly) with FORMAT AND LINKING
//! 11b (binary format list); SP = 1 is INVALID FIELD IN CDB, as SPC-4 requires of a logical
//! unit that does not save log parameters, and so is the obsolete PPC bit. No parameter has
//! a threshold (ETC = 0), so the page control values for threshold values (00b current, 10b
//! default) are INVALID FIELD IN CDB; cumulative values (01b) and default cumulative values
//! (11b) are answered, and are the same bytes. LOG SELECT is not implemented: SPC-4 makes
//! it optional, and nothing reported here could be changed, reset or saved by it.
//!
//! PARAMETER POINTER: the parameters with a code at or above it are returned; a pointer
//! above the largest parameter code of the page is INVALID FIELD IN CDB (SPC-4). The
//! supported pages pages have no parameters, so there any pointer but 0 is refused. The
//! reply is cut at the ALLOCATION LENGTH while PAGE LENGTH keeps the full length.

use super::DataBuffer;
use super::disk::{Disk, Handled};
use super::reply::{Cdb, Reply, data_in};
use super::sense::SenseData;

/// Supported Log Pages, and with subpage `FFh` Supported Log Pages and Subpages.
const SUPPORTED_PAGES: u8 = 0x00;
/// Temperature.
const TEMPERATURE: u8 = 0x0D;
/// Informational Exceptions.
const INFORMATIONAL_EXCEPTIONS: u8 = 0x2F;
/// The subpage code that asks for a page and all its subpages.
const ALL_SUBPAGES: u8 = 0xFF;

/// Every (page code, subpage code) LOG SENSE answers, ascending.
pub const LOG_PAGES: [(u8, u8); 4] = [
    (SUPPORTED_PAGES, 0x00),
    (SUPPORTED_PAGES, ALL_SUBPAGES),
    (TEMPERATURE, 0x00),
    (INFORMATIONAL_EXCEPTIONS, 0x00),
];

/// Parameter control byte: DU 0, TSD 1, ETC 0, TMC 00b, FORMAT AND LINKING 11b.
const BINARY_LIST: u8 = 0x23;

/// A temperature that is not available (SPC-4, Temperature log page).
const NO_TEMPERATURE: u8 = 0xFF;

/// A log parameter: parameter code and value (the bytes after its 4-byte header).
type Parameter = (u16, &'static [u8]);

/// Temperature page: TEMPERATURE and REFERENCE TEMPERATURE, each a reserved byte and `FFh`.
const TEMPERATURE_PARAMETERS: [Parameter; 2] = [
    (0x0000, &[0, NO_TEMPERATURE]),
    (0x0001, &[0, NO_TEMPERATURE]),
];

/// Informational exceptions page: ASC 00h, ASCQ 00h, MOST RECENT TEMPERATURE READING `FFh`.
const INFORMATIONAL_EXCEPTION_PARAMETERS: [Parameter; 1] = [(0x0000, &[0, 0, NO_TEMPERATURE])];

impl Disk {
    /// LOG SENSE (SPC-4); see the module notes for what each field does. Kept out of line:
    /// it is rare and would otherwise grow the dispatcher.
    #[inline(never)]
    pub(crate) fn log_sense(cdb: &Cdb, data: DataBuffer<'_>) -> Handled {
        if cdb.bit(1, 0) {
            return Err(SenseData::invalid_cdb_field(1, Some(0))); // SP: nothing is saved
        }
        if cdb.bit(1, 1) {
            return Err(SenseData::invalid_cdb_field(1, Some(1))); // PPC (obsolete)
        }
        if !cdb.bit(2, 6) {
            // PC 00b or 10b: threshold values, which no parameter here has.
            return Err(SenseData::invalid_cdb_field(2, Some(7)));
        }
        let page = cdb.u8(2) & 0x3F;
        let subpage = cdb.u8(3);
        if !LOG_PAGES.iter().any(|&(p, _)| p == page) {
            return Err(SenseData::invalid_cdb_field(2, Some(5)));
        }
        if !LOG_PAGES.contains(&(page, subpage)) {
            return Err(SenseData::invalid_cdb_field(3, None));
        }
        let parameters: &[Parameter] = match page {
            TEMPERATURE => &TEMPERATURE_PARAMETERS,
            INFORMATIONAL_EXCEPTIONS => &INFORMATIONAL_EXCEPTION_PARAMETERS,
            _ => &[],
        };
        let pointer = cdb.be16(5);
        let largest = parameters.last().map_or(0, |&(code, _)| code);
        if pointer > largest {
            return Err(SenseData::invalid_cdb_field(5, None));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let mut reply = Reply::new(buf, usize::from(cdb.be16(7)));
        if page == SUPPORTED_PAGES {
            // DS 0, SPF set for the subpage form; no parameters, so nothing to save.
            reply.byte(if subpage == ALL_SUBPAGES { 0x40 } else { 0x00 });
            reply.byte(subpage);
            reply.be16(0); // PAGE LENGTH, patched below
            for (p, s) in LOG_PAGES {
                if subpage == ALL_SUBPAGES {
                    reply.byte(p);
                    reply.byte(s);
                } else if s == 0 {
                    reply.byte(p);
                }
            }
        } else {
            reply.byte(0x80 | page); // DS = 1: saving is not supported
            reply.byte(0x00);
            reply.be16(0);
            for &(code, value) in parameters.iter().filter(|&&(code, _)| code >= pointer) {
                reply.be16(code);
                reply.byte(BINARY_LIST);
                reply.byte(u8::try_from(value.len()).unwrap_or(u8::MAX));
                reply.bytes(value);
            }
        }
        let page_len = u16::try_from(reply.len().saturating_sub(4)).unwrap_or(u16::MAX);
        reply.patch16(2, page_len);
        Ok(reply.finish())
    }
}
