//! One row per command form and error path: CDB, data buffer, expected status, sense and
//! bytes. Every row runs on a fresh disk and store.

use super::cdb::{rw6, rw10, rw12, rw16, unmap, unmap_list};
use super::{HUGE_BLOCKS, Kind, MemStore, NAA, RW_BLOCKS, disk, run};
use crate::scsi::asc::{
    INVALID_COMMAND_OPERATION_CODE as BAD_OP, INVALID_FIELD_IN_CDB as BAD_CDB,
    INVALID_FIELD_IN_PARAMETER_LIST as BAD_PARAM, LBA_OUT_OF_RANGE as LBA_RANGE,
    MISCOMPARE_DURING_VERIFY, PARAMETER_LIST_LENGTH_ERROR as LIST_LEN,
    SAVING_PARAMETERS_NOT_SUPPORTED as NO_SAVE, WRITE_PROTECTED,
};
use crate::scsi::sense_key::{DATA_PROTECT, ILLEGAL_REQUEST as ILL, MISCOMPARE};
use crate::scsi::{DataBuffer, FieldPointer, Outcome, SenseDetail};

/// The data buffer of a row.
enum Data {
    None,
    In(usize),
    Out(Vec<u8>),
    /// `SRB_FLAGS_UNSPECIFIED_DIRECTION` with these bytes.
    Either(Vec<u8>),
}

/// What a row expects.
enum Exp {
    /// GOOD, `n` bytes transferred.
    Good(usize),
    /// GOOD, `n` bytes, and the predicate holds on them.
    Bytes(usize, fn(&[u8]) -> bool),
    /// CHECK CONDITION with key and code (pointer not checked).
    Check(u8, (u8, u8)),
    /// CHECK CONDITION, ILLEGAL REQUEST with code and field pointer (in CDB?, byte, bit).
    At((u8, u8), bool, u16, Option<u8>),
    /// SRB status, no SCSI status, `n` bytes transferred.
    Srb(u8, usize),
    /// RESERVATION CONFLICT: `SRB_STATUS_ERROR`, SCSI status 18h, no sense, nothing moved.
    Conflict,
}

struct Case {
    name: &'static str,
    kind: Kind,
    cdb: Vec<u8>,
    data: Data,
    exp: Exp,
}

fn case(name: &'static str, kind: Kind, cdb: &[u8], data: Data, exp: Exp) -> Case {
    Case {
        name,
        kind,
        cdb: cdb.to_vec(),
        data,
        exp,
    }
}

/// Invalid field in the CDB at `byte`/`bit`.
const fn cdb_at(byte: u16, bit: Option<u8>) -> Exp {
    Exp::At(BAD_CDB, true, byte, bit)
}

/// Invalid field in the parameter list at `byte`/`bit`.
const fn param_at(byte: u16, bit: Option<u8>) -> Exp {
    Exp::At(BAD_PARAM, false, byte, bit)
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(d[at..at + 2].try_into().unwrap())
}
fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}
fn be64(d: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(d[at..at + 8].try_into().unwrap())
}

/// The caching page as MODE SENSE reports it on a `Kind::Rw` disk, with WCE = `wce`.
pub fn caching_page(wce: bool) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x08;
    p[1] = 0x12;
    p[2] = u8::from(wce) << 2;
    p
}

/// A MODE SELECT(6) parameter list: header, optional block descriptor, pages.
pub fn select6(descriptor: Option<[u8; 8]>, pages: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, if descriptor.is_some() { 8 } else { 0 }];
    if let Some(d) = descriptor {
        v.extend_from_slice(&d);
    }
    for p in pages {
        v.extend_from_slice(p);
    }
    v
}

/// A MODE SELECT(10) parameter list.
pub fn select10(long: bool, descriptor: Option<&[u8]>, pages: &[&[u8]]) -> Vec<u8> {
    let bdl = descriptor.map_or(0, <[u8]>::len) as u8;
    let mut v = vec![0, 0, 0, 0, u8::from(long), 0, 0, bdl];
    if let Some(d) = descriptor {
        v.extend_from_slice(d);
    }
    for p in pages {
        v.extend_from_slice(p);
    }
    v
}

/// REPORT SUPPORTED OPERATION CODES with byte 2 (RCTD, REPORTING OPTIONS), the requested
/// operation code and service action, and the allocation length.
fn rsoc(options: u8, opcode: u8, sa: u16, alloc: u32) -> [u8; 12] {
    let [s0, s1] = sa.to_be_bytes();
    let [a0, a1, a2, a3] = alloc.to_be_bytes();
    [0xA3, 0x0C, options, opcode, s0, s1, a0, a1, a2, a3, 0, 0]
}

/// COMPARE AND WRITE of `blocks` at `lba` with byte 1 = `flags`.
fn caw(flags: u8, lba: u64, blocks: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

/// WRITE ATOMIC(16) of `blocks` at `lba`, with byte 1 = `flags` and ATOMIC BOUNDARY.
fn write_atomic(flags: u8, lba: u64, blocks: u16, boundary: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9C;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..12].copy_from_slice(&boundary.to_be_bytes());
    c[12..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn ms6(plen: u8) -> [u8; 6] {
    [0x15, 0x10, 0, 0, plen, 0]
}

fn ms10(plen: u16) -> [u8; 10] {
    let p = plen.to_be_bytes();
    [0x55, 0x10, 0, 0, 0, 0, 0, p[0], p[1], 0]
}

fn out(v: Vec<u8>) -> Data {
    Data::Out(v)
}

/// Rows for the non-medium commands.
#[expect(clippy::too_many_lines, reason = "a table")]
#[rustfmt::skip]
fn control_cases() -> Vec<Case> {
    use Data::{In, None};
    use Exp::{At, Bytes, Check, Good, Srb};
    use Kind::{B4k, Huge, Ro, Rw};
    vec![
        // Addressing the CDB itself.
        case("empty CDB", Rw, &[], None, Srb(0x06, 0)),
        case("CDB shorter than group", Rw, &[0x28, 0, 0, 0], In(512), Srb(0x06, 0)),
        case("unknown opcode", Rw, &[0x04, 0, 0, 0, 0, 0], None, At(BAD_OP, true, 0, Some(7))),
        case("vendor opcode", Rw, &[0xC0; 16], None, Check(ILL, BAD_OP)),
        case("variable-length opcode", Rw, &[0x7F; 16], None, Check(ILL, BAD_OP)),
        case("opcode FFh", Rw, &[0xFF; 16], None, Check(ILL, BAD_OP)),
        case("NACA set", Rw, &[0, 0, 0, 0, 0, 0x04], None, cdb_at(5, Some(2))),
        case("LINK set", Rw, &[0, 0, 0, 0, 0, 0x01], None, cdb_at(5, Some(0))),
        case("NACA in READ(16) control", Rw, &{ let mut c = rw16(0x88, 0, 0, 1); c[15] = 4; c }, In(512), cdb_at(15, Some(2))),
        // TEST UNIT READY.
        case("TUR", Rw, &[0; 6], None, Good(0)),
        case("TUR read-only", Ro, &[0; 6], None, Good(0)),
        case("TUR with a data-in buffer", Rw, &[0; 6], In(16), Good(0)),
        case("TUR longer CDB", Rw, &[0; 16], None, Good(0)),
        // REQUEST SENSE.
        case(
            "REQUEST SENSE fixed",
            Rw,
            &[0x03, 0, 0, 0, 252, 0],
            In(252),
            Bytes(18, |d| {
                d[0] == 0x70 && d[2] == 0 && d[7] == 10 && d[12] == 0 && d[13] == 0 && d[15] == 0
            }),
        ),
        case("REQUEST SENSE truncated", Rw, &[0x03, 0, 0, 0, 8, 0], In(252), Bytes(8, |d| d[0] == 0x70)),
        case("REQUEST SENSE alloc 0", Rw, &[0x03, 0, 0, 0, 0, 0], In(252), Good(0)),
        case("REQUEST SENSE descriptor", Rw, &[0x03, 1, 0, 0, 252, 0], In(252), Bytes(8, |d| d == [0x72, 0, 0, 0, 0, 0, 0, 0])),
        case("REQUEST SENSE wrong direction", Rw, &[0x03, 0, 0, 0, 18, 0], out(vec![0; 18]), Srb(0x06, 0)),
        // INQUIRY standard data.
        case(
            "INQUIRY 36",
            Rw,
            &[0x12, 0, 0, 0, 36, 0],
            In(36),
            Bytes(36, |d| {
                d[0] == 0
                    && d[1] == 0
                    && d[2] == 6
                    && d[3] == 0x12
                    && usize::from(d[4]) == 74 - 5
                    && d[7] & 0x02 != 0
                    && &d[8..16] == b"VSTOR   "
                    && &d[16..32] == b"RAM DISK        "
                    && &d[32..36] == b"0.1 "
            }),
        ),
        case(
            "INQUIRY full",
            Rw,
            &[0x12, 0, 0, 0, 255, 0],
            In(255),
            Bytes(74, |d| {
                usize::from(d[4]) == d.len() - 5
                    && be16(d, 58) == 0x00A0
                    && be16(d, 60) == 0x0460
                    && be16(d, 62) == 0x04C0
            }),
        ),
        case("INQUIRY alloc 5", Rw, &[0x12, 0, 0, 0, 5, 0], In(255), Bytes(5, |d| d[4] == 69)),
        case("INQUIRY 16-bit alloc", Rw, &[0x12, 0, 0, 1, 0, 0], In(256), Good(74)),
        case("INQUIRY buffer shorter than alloc", Rw, &[0x12, 0, 0, 0, 96, 0], In(20), Good(20)),
        case("INQUIRY alloc 0", Rw, &[0x12, 0, 0, 0, 0, 0], In(36), Good(0)),
        case("INQUIRY no buffer", Rw, &[0x12, 0, 0, 0, 36, 0], None, Good(0)),
        case("INQUIRY page without EVPD", Rw, &[0x12, 0, 0x80, 0, 255, 0], In(255), cdb_at(2, Option::None)),
        case("INQUIRY CMDDT", Rw, &[0x12, 2, 0, 0, 255, 0], In(255), cdb_at(1, Some(1))),
        case("INQUIRY unknown VPD page", Rw, &[0x12, 1, 0x89, 0, 255, 0], In(255), cdb_at(2, Option::None)),
        case("INQUIRY unspecified direction", Rw, &[0x12, 0, 0, 0, 36, 0], Data::Either(vec![0; 40]), Bytes(36, |d| d[2] == 6 && &d[8..13] == b"VSTOR")),
        case("INQUIRY wrong direction", Rw, &[0x12, 0, 0, 0, 36, 0], out(vec![0; 36]), Srb(0x06, 0)),
        // VPD pages.
        case("VPD 00h", Rw, &[0x12, 1, 0x00, 0, 255, 0], In(255), Bytes(10, |d| { d == [0, 0, 0, 6, 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2] })),
        case("VPD 80h", Rw, &[0x12, 1, 0x80, 0, 255, 0], In(255), Bytes(11, |d| { d[1] == 0x80 && be16(d, 2) == 7 && &d[4..] == b"SN-0001" })),
        case(
            "VPD 83h",
            Rw,
            &[0x12, 1, 0x83, 0, 255, 0],
            In(255),
            Bytes(4 + 12 + 4 + 31, |d| {
                be16(d, 2) as usize == d.len() - 4
                // NAA 3, binary, LU association.
                && d[4..8] == [0x01, 0x03, 0, 8]
                && be64(d, 8) == (3 << 60) | NAA
                // T10 vendor ID, ASCII, LU association.
                && d[16..20] == [0x02, 0x01, 0, 31]
                && &d[20..51] == b"VSTOR   RAM DISK        SN-0001"
            }),
        ),
        case(
            "VPD B0h",
            Rw,
            &[0x12, 1, 0xB0, 0, 255, 0],
            In(255),
            Bytes(64, |d| {
                be16(d, 2) == 0x3C
                    && d[4] & 1 == 1
                    && be32(d, 8) == 2048
                    && be32(d, 20) == 131_072
                    && be32(d, 24) == 64
                    && be32(d, 28) == 1
                    && be32(d, 32) == 0x8000_0000
                    && be64(d, 36) == 131_072
                    // MAXIMUM COMPARE AND WRITE LENGTH: 255 (half of 1 MiB is 1024 blocks).
                    && d[5] == 255
                    // MAXIMUM ATOMIC TRANSFER LENGTH: 1 MiB; no alignment, granularity, boundary.
                    && be32(d, 44) == 2048
                    && d[48..64] == [0; 16]
            }),
        ),
        case("VPD B0h 4K blocks", B4k, &[0x12, 1, 0xB0, 0, 255, 0], In(255), Bytes(64, |d| { be32(d, 8) == 256 && be32(d, 20) == 16384 && be64(d, 36) == 16384 && d[5] == 128 && be32(d, 44) == 256 })),
        case("VPD B1h", Rw, &[0x12, 1, 0xB1, 0, 255, 0], In(255), Bytes(64, |d| { d[1] == 0xB1 && be16(d, 2) == 0x3C && be16(d, 4) == 1 && d[7].trailing_zeros() >= 4 })),
        case(
            "VPD B2h",
            Rw,
            &[0x12, 1, 0xB2, 0, 255, 0],
            In(255),
            Bytes(8, |d| {
                d[1] == 0xB2
                    && be16(d, 2) == 4
                    && d[5] & 0xE0 == 0xE0
                    && (d[5] >> 2) & 7 == 1
                    && d[6] & 7 == 1
            }),
        ),
        // LOG SENSE (details in tests/log.rs).
        case("LOG SENSE supported pages", Rw, &[0x4D, 0, 0x40, 0, 0, 0, 0, 0, 255, 0], In(255), Bytes(7, |d| d == [0, 0, 0, 3, 0x00, 0x0D, 0x2F])),
        case("LOG SENSE unknown page", Rw, &[0x4D, 0, 0x4C, 0, 0, 0, 0, 0, 255, 0], In(255), cdb_at(2, Some(5))),
        case("VPD truncated keeps page length", Rw, &[0x12, 1, 0xB0, 0, 4, 0], In(255), Bytes(4, |d| be16(d, 2) == 0x3C)),
        // MODE SENSE(6).
        case(
            "MODE SENSE(6) caching",
            Rw,
            &[0x1A, 0, 0x08, 0, 255, 0],
            In(255),
            Bytes(32, |d| {
                d[0] == 31
                    && d[1] == 0
                    && d[2] == 0x10
                    && d[3] == 8
                    && be32(d, 4) == 2048
                    && d[9..12] == [0, 2, 0]
                    && d[12..14] == [0x08, 0x12]
                    && d[14] == 0
            }),
        ),
        case(
            "MODE SENSE(6) all pages DBD",
            Rw,
            &[0x1A, 0x08, 0x3F, 0, 255, 0],
            In(255),
            Bytes(48, |d| {
                d[0] == 47
                    && d[3] == 0
                    && d[4] == 0x08
                    && d[24] == 0x0A
                    && d[25] == 0x0A
                    && d[36] == 0x1C
                    && d[37] == 0x0A
            }),
        ),
        case("MODE SENSE(6) all pages and subpages", Rw, &[0x1A, 0x08, 0x3F, 0xFF, 255, 0], In(255), Good(48)),
        case("MODE SENSE(6) all pages with descriptor", Rw, &[0x1A, 0, 0x3F, 0, 255, 0], In(255), Bytes(56, |d| d[0] == 55 && d[3] == 8)),
        case("MODE SENSE(6) changeable", Rw, &[0x1A, 0x08, 0x48, 0, 255, 0], In(255), Bytes(24, |d| d[6] == 0x04 && d[7..24].iter().all(|&b| b == 0))),
        case(
            "MODE SENSE(6) changeable all",
            Rw,
            &[0x1A, 0x08, 0x7F, 0, 255, 0],
            In(255),
            Bytes(48, |d| {
                d[6] == 0x04
                    && d[26..36].iter().all(|&b| b == 0)
                    && d[38..48].iter().all(|&b| b == 0)
            }),
        ),
        case("MODE SENSE(6) default", B4k, &[0x1A, 0x08, 0x88, 0, 255, 0], In(255), Bytes(24, |d| d[6] == 0x04)),
        case("MODE SENSE(6) saved", Rw, &[0x1A, 0, 0xC8, 0, 255, 0], In(255), At(NO_SAVE, true, 2, Some(7))),
        case("MODE SENSE(6) saved all", Rw, &[0x1A, 0x08, 0xFF, 0, 255, 0], In(255), At(NO_SAVE, true, 2, Some(7))),
        case("MODE SENSE(6) control", Rw, &[0x1A, 0x08, 0x0A, 0, 255, 0], In(255), Bytes(16, |d| { d[4..8] == [0x0A, 0x0A, 0x02, 0x10] && be16(d, 12) == 0xFFFF })),
        case("MODE SENSE(6) informational exceptions", Rw, &[0x1A, 0x08, 0x1C, 0, 255, 0], In(255), Bytes(16, |d| d[4..7] == [0x1C, 0x0A, 0x08])),
        case("MODE SENSE(6) unknown page", Rw, &[0x1A, 0, 0x01, 0, 255, 0], In(255), cdb_at(2, Option::None)),
        case("MODE SENSE(6) page and all subpages", Rw, &[0x1A, 0x08, 0x08, 0xFF, 255, 0], In(255), Bytes(24, |d| d[4] == 0x08 && d[0] == 23)),
        case("MODE SENSE(6) subpage", Rw, &[0x1A, 0, 0x08, 0x01, 255, 0], In(255), cdb_at(3, Option::None)),
        case("MODE SENSE(6) all, bad subpage", Rw, &[0x1A, 0, 0x3F, 0x01, 255, 0], In(255), cdb_at(3, Option::None)),
        case("MODE SENSE(6) write protect", Ro, &[0x1A, 0x08, 0x08, 0, 255, 0], In(255), Bytes(24, |d| d[2] == 0x90)),
        case("MODE SENSE(6) truncated", Rw, &[0x1A, 0, 0x3F, 0, 4, 0], In(255), Bytes(4, |d| d[0] == 55)),
        case("MODE SENSE(6) huge disk", Huge, &[0x1A, 0, 0x08, 0, 255, 0], In(255), Bytes(32, |d| be32(d, 4) == u32::MAX)),
        case("MODE SENSE(6) wrong direction", Rw, &[0x1A, 0, 0x08, 0, 255, 0], out(vec![0; 8]), Srb(0x06, 0)),
        // MODE SENSE(10).
        case(
            "MODE SENSE(10) caching",
            Rw,
            &[0x5A, 0, 0x08, 0, 0, 0, 0, 0, 255, 0],
            In(255),
            Bytes(36, |d| {
                be16(d, 0) == 34
                    && d[3] == 0x10
                    && d[4] == 0
                    && be16(d, 6) == 8
                    && be32(d, 8) == 2048
                    && d[16] == 0x08
            }),
        ),
        case(
            "MODE SENSE(10) long LBA",
            Rw,
            &[0x5A, 0x10, 0x08, 0, 0, 0, 0, 0, 255, 0],
            In(255),
            Bytes(44, |d| {
                be16(d, 0) == 42
                    && d[4] & 1 == 1
                    && be16(d, 6) == 16
                    && be64(d, 8) == 2048
                    && be32(d, 20) == 512
            }),
        ),
        case("MODE SENSE(10) long LBA huge", Huge, &[0x5A, 0x10, 0x08, 0, 0, 0, 0, 0, 255, 0], In(255), Bytes(44, |d| be64(d, 8) == HUGE_BLOCKS)),
        case("MODE SENSE(10) DBD", Rw, &[0x5A, 0x18, 0x3F, 0, 0, 0, 0, 0, 255, 0], In(255), Bytes(52, |d| be16(d, 0) == 50 && be16(d, 6) == 0 && d[4] == 0)),
        case("MODE SENSE(10) saved", Rw, &[0x5A, 0, 0xC8, 0, 0, 0, 0, 0, 255, 0], In(255), At(NO_SAVE, true, 2, Some(7))),
        case("MODE SENSE(10) alloc 0", Rw, &[0x5A, 0, 0x08, 0, 0, 0, 0, 0, 0, 0], In(255), Good(0)),
        case("MODE SENSE(10) write protect", Ro, &[0x5A, 0x08, 0x3F, 0, 0, 0, 0, 0, 255, 0], In(255), Bytes(52, |d| d[3] == 0x90)),
        // MODE SELECT errors (successful selects: tests/mode.rs).
        case("MODE SELECT(6) SP", Rw, &[0x15, 0x11, 0, 0, 24, 0], out(select6(Option::None, &[&caching_page(true)])), cdb_at(1, Some(0))),
        case("MODE SELECT(6) PF = 0", Rw, &[0x15, 0, 0, 0, 24, 0], out(select6(Option::None, &[&caching_page(true)])), cdb_at(1, Some(4))),
        case("MODE SELECT(6) length 0", Rw, &ms6(0), None, Good(0)),
        case("MODE SELECT(6) header cut", Rw, &ms6(2), out(vec![0, 0]), Check(ILL, LIST_LEN)),
        case("MODE SELECT(6) buffer short", Rw, &ms6(24), out(vec![0; 10]), Srb(0x12, 0)),
        case("MODE SELECT(6) wrong direction", Rw, &ms6(24), In(24), Srb(0x06, 0)),
        case("MODE SELECT(6) medium type", Rw, &ms6(4), out(vec![0, 1, 0, 0]), param_at(1, Option::None)),
        case("MODE SELECT(6) descriptor length 4", Rw, &ms6(8), out(vec![0, 0, 0, 4, 0, 0, 0, 0]), param_at(3, Option::None)),
        case("MODE SELECT(6) descriptor cut", Rw, &ms6(8), out(vec![0, 0, 0, 8, 0, 0, 0, 0]), Check(ILL, LIST_LEN)),
        case("MODE SELECT(6) block length change", Rw, &ms6(12), out(select6(Some([0, 0, 8, 0, 0, 0, 0x10, 0]), &[])), param_at(9, Option::None)),
        case("MODE SELECT(6) block count change", Rw, &ms6(12), out(select6(Some([0, 0, 0, 1, 0, 0, 2, 0]), &[])), param_at(4, Option::None)),
        case("MODE SELECT(6) same geometry", Rw, &ms6(12), out(select6(Some([0, 0, 8, 0, 0, 0, 2, 0]), &[])), Good(12)),
        case("MODE SELECT(6) zero block count", Rw, &ms6(12), out(select6(Some([0, 0, 0, 0, 0, 0, 2, 0]), &[])), Good(12)),
        case("MODE SELECT(6) unknown page", Rw, &ms6(8), out(select6(Option::None, &[&[0x01, 0x02, 0, 0]])), param_at(4, Some(5))),
        case("MODE SELECT(6) subpage format", Rw, &ms6(8), out(select6(Option::None, &[&[0x48, 0x02, 0, 0]])), param_at(4, Some(6))),
        case("MODE SELECT(6) page length", Rw, &ms6(24), out(select6(Option::None, &[&{ let mut p = caching_page(true); p[1] = 0x10; p }])), param_at(5, Option::None)),
        case("MODE SELECT(6) page cut", Rw, &ms6(14), out(select6(Option::None, &[&caching_page(true)[..10]])), Check(ILL, LIST_LEN)),
        case("MODE SELECT(6) page header cut", Rw, &ms6(5), out(vec![0, 0, 0, 0, 0x08]), Check(ILL, LIST_LEN)),
        case("MODE SELECT(6) RCD change", Rw, &ms6(24), out(select6(Option::None, &[&{ let mut p = caching_page(true); p[2] |= 1; p }])), param_at(6, Some(0))),
        case("MODE SELECT(6) retention change", Rw, &ms6(24), out(select6(Option::None, &[&{ let mut p = caching_page(false); p[3] = 0x30; p }])), param_at(7, Some(5))),
        case("MODE SELECT(6) last caching byte", Rw, &ms6(24), out(select6(Option::None, &[&{ let mut p = caching_page(false); p[19] = 1; p }])), param_at(23, Some(0))),
        case("MODE SELECT(6) control unchanged", Rw, &ms6(16), out(select6(Option::None, &[&[0x0A, 0x0A, 0x02, 0x10, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0]])), Good(16)),
        case(
            "MODE SELECT(6) control changed",
            Rw,
            &ms6(16),
            out(select6(
                Option::None,
                &[&[0x0A, 0x0A, 0x06, 0x10, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0]],
            )),
            param_at(6, Some(2)),
        ),
        case("MODE SELECT(6) IE unchanged, PS ignored", Rw, &ms6(16), out(select6(Option::None, &[&[0x9C, 0x0A, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0]])), Good(16)),
        case("MODE SELECT(6) IE changed", Rw, &ms6(16), out(select6(Option::None, &[&[0x1C, 0x0A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0]])), param_at(6, Some(3))),
        case("MODE SELECT(6) read-only disk", Ro, &ms6(24), out(select6(Option::None, &[&caching_page(true)])), Good(24)),
        case("MODE SELECT(10) SP", Rw, &[0x55, 0x11, 0, 0, 0, 0, 0, 0, 28, 0], out(select10(false, Option::None, &[&caching_page(true)])), cdb_at(1, Some(0))),
        case("MODE SELECT(10) length 0", Rw, &ms10(0), None, Good(0)),
        case("MODE SELECT(10) header cut", Rw, &ms10(6), out(vec![0; 6]), Check(ILL, LIST_LEN)),
        case("MODE SELECT(10) medium type", Rw, &ms10(8), out(vec![0, 0, 5, 0, 0, 0, 0, 0]), param_at(2, Option::None)),
        case("MODE SELECT(10) long descriptor", Rw, &ms10(24), out(select10(true, Some(&[0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2, 0]), &[])), Good(24)),
        case("MODE SELECT(10) long descriptor, short length", Rw, &ms10(16), out(select10(true, Some(&[0, 0, 8, 0, 0, 0, 2, 0]), &[])), param_at(6, Option::None)),
        case(
            "MODE SELECT(10) long block length change",
            Rw,
            &ms10(24),
            out(select10(
                true,
                Some(&[0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]),
                &[],
            )),
            param_at(20, Option::None),
        ),
        case("MODE SELECT(10) caching", Rw, &ms10(28), out(select10(false, Option::None, &[&caching_page(true)])), Good(28)),
        // START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL.
        case("START UNIT", Rw, &[0x1B, 0, 0, 0, 1, 0], None, Good(0)),
        case("STOP UNIT immediate", Rw, &[0x1B, 1, 0, 0, 0, 0], None, Good(0)),
        case("START STOP UNIT eject", Rw, &[0x1B, 0, 0, 0, 2, 0], None, cdb_at(4, Some(1))),
        case("START STOP UNIT power condition", Rw, &[0x1B, 0, 0, 0, 0x31, 0], None, cdb_at(4, Some(7))),
        case("ALLOW MEDIUM REMOVAL", Rw, &[0x1E, 0, 0, 0, 0, 0], None, Good(0)),
        case("PREVENT MEDIUM REMOVAL", Rw, &[0x1E, 0, 0, 0, 1, 0], None, Good(0)),
        case("PREVENT 10b", Rw, &[0x1E, 0, 0, 0, 2, 0], None, cdb_at(4, Some(1))),
        case("PREVENT obsolete value", Rw, &[0x1E, 0, 0, 0, 3, 0], None, cdb_at(4, Some(1))),
        // READ CAPACITY.
        case("READ CAPACITY(10)", Rw, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], In(8), Bytes(8, |d| d == [0, 0, 0x07, 0xFF, 0, 0, 2, 0])),
        case("READ CAPACITY(10) 4K", B4k, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], In(8), Bytes(8, |d| d == [0, 0, 0, 0xFF, 0, 0, 0x10, 0])),
        case("READ CAPACITY(10) too large", Huge, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], In(8), Bytes(8, |d| d == [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 2, 0])),
        case("READ CAPACITY(10) LBA without PMI", Rw, &[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], In(8), cdb_at(2, Option::None)),
        case("READ CAPACITY(10) PMI", Rw, &[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0], In(8), Good(8)),
        case("READ CAPACITY(10) short buffer", Rw, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], In(4), Bytes(4, |d| d == [0, 0, 7, 0xFF])),
        case(
            "READ CAPACITY(16)",
            Rw,
            &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
            In(32),
            Bytes(32, |d| {
                be64(d, 0) == RW_BLOCKS - 1
                    && be32(d, 8) == 512
                    && d[12] == 0
                    && d[13] == 0
                    && be16(d, 14) == 0xC000
                    && d[16..].iter().all(|&b| b == 0)
            }),
        ),
        case("READ CAPACITY(16) huge", Huge, &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], In(32), Bytes(32, |d| be64(d, 0) == HUGE_BLOCKS - 1)),
        case("READ CAPACITY(16) alloc 0", Rw, &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], In(32), Good(0)),
        case("READ CAPACITY(16) alloc 0 no buffer", Rw, &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], None, Good(0)),
        case("READ CAPACITY(16) alloc 12", Rw, &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0], In(32), Bytes(12, |d| be32(d, 8) == 512)),
        case("READ CAPACITY(16) LBA without PMI", Rw, &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 32, 0, 0], In(32), cdb_at(2, Option::None)),
        case("SERVICE ACTION IN unknown action", Rw, &[0x9E, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], In(32), cdb_at(1, Some(4))),
        case(
            "GET LBA STATUS",
            Rw,
            &[0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 24, 0, 0],
            In(24),
            Bytes(24, |d| {
                be32(d, 0) == 20 && be64(d, 8) == 10 && be32(d, 16) == 2038 && d[20] == 0
            }),
        ),
        case("GET LBA STATUS out of range", Rw, &[0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 24, 0, 0], In(24), Check(ILL, LBA_RANGE)),
        case("GET LBA STATUS huge", Huge, &[0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0], In(24), Bytes(24, |d| be32(d, 16) == u32::MAX)),
        // REPORT LUNS.
        case(
            "REPORT LUNS",
            Rw,
            &[0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
            In(256),
            Bytes(32, |d| {
                be32(d, 0) == 24
                    && be64(d, 8) == 0
                    && be64(d, 16) == 1 << 48
                    && be64(d, 24) == 5 << 48
            }),
        ),
        case("REPORT LUNS select 2", Rw, &[0xA0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0], In(256), Good(32)),
        // READ DEFECT DATA.
        case("READ DEFECT DATA(10)", Rw, &[0x37, 0, 0x18, 0, 0, 0, 0, 0, 32, 0], In(32), Bytes(4, |d| d == [0, 0x18, 0, 0])),
        case("READ DEFECT DATA(10) format 5h", Rw, &[0x37, 0, 0x0D, 0, 0, 0, 0, 0, 2, 0], In(32), Bytes(2, |d| d == [0, 0x0D])),
        case("READ DEFECT DATA(10) NACA", Rw, &[0x37, 0, 0x18, 0, 0, 0, 0, 0, 32, 0x04], In(32), cdb_at(9, Some(2))),
        case("READ DEFECT DATA(10) wrong direction", Rw, &[0x37, 0, 0x18, 0, 0, 0, 0, 0, 32, 0], Data::Out(vec![0; 4]), Srb(0x06, 0)),
        case("READ DEFECT DATA(12)", Rw, &[0xB7, 0x1D, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], In(32), Bytes(8, |d| d == [0, 0x1D, 0, 0, 0, 0, 0, 0])),
        case("READ DEFECT DATA(12) LINK", Rw, &[0xB7, 0x08, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0x01], In(32), cdb_at(11, Some(0))),
        // REPORT SUPPORTED OPERATION CODES.
        case("RSOC all", Rw, &rsoc(0, 0, 0, 4096), In(4096), Bytes(4 + 45 * 8, |d| be32(d, 0) == 45 * 8 && d[4..12] == [0, 0, 0, 0, 0, 0, 0, 6] && d[12] == 0x03)),
        case("RSOC all RCTD", Rw, &rsoc(0x80, 0, 0, 4096), In(4096), Bytes(4 + 45 * 20, |d| be32(d, 0) == 45 * 20 && d[9] == 0x02 && be16(d, 12) == 0x0A && d[24] == 0x03)),
        case("RSOC all truncated", Rw, &rsoc(0, 0, 0, 6), In(4096), Bytes(6, |d| be32(d, 0) == 45 * 8)),
        case("RSOC READ(10)", Rw, &rsoc(1, 0x28, 0, 512), In(512), Bytes(14, |d| d[..6] == [0, 3, 0, 10, 0x28, 0x1C] && d[6..10] == [0xFF; 4] && d[10..14] == [0, 0xFF, 0xFF, 0])),
        case("RSOC WRITE(16) RCTD", Rw, &rsoc(0x81, 0x8A, 0, 512), In(512), Bytes(32, |d| d[..6] == [0, 0x83, 0, 16, 0x8A, 0x18] && d[6..18] == [0xFF; 12] && d[18..20] == [0, 0] && be16(d, 20) == 0x0A)),
        case("RSOC unsupported opcode", Rw, &rsoc(1, 0x83, 0, 512), In(512), Bytes(4, |d| d == [0, 1, 0, 0])),
        case("RSOC COMPARE AND WRITE", Rw, &rsoc(1, 0x89, 0, 512), In(512), Bytes(20, |d| d[..6] == [0, 3, 0, 16, 0x89, 0x18] && d[6..14] == [0xFF; 8] && d[14..17] == [0; 3] && d[17] == 0xFF && d[18..20] == [0, 0])),
        case("RSOC WRITE ATOMIC(16)", Rw, &rsoc(1, 0x9C, 0, 512), In(512), Bytes(20, |d| d[..6] == [0, 3, 0, 16, 0x9C, 0x18] && d[6..18] == [0xFF; 12])),
        case("RSOC READ CAPACITY(16)", Rw, &rsoc(2, 0x9E, 0x10, 512), In(512), Bytes(20, |d| d[..6] == [0, 3, 0, 16, 0x9E, 0x1F])),
        case("RSOC either form", Rw, &rsoc(3, 0x9E, 0x12, 512), In(512), Bytes(20, |d| d[..6] == [0, 3, 0, 16, 0x9E, 0x1F])),
        case("RSOC unsupported service action", Rw, &rsoc(2, 0x9E, 0x11, 512), In(512), Bytes(4, |d| d == [0, 1, 0, 0])),
        case("RSOC opcode with service actions", Rw, &rsoc(1, 0x9E, 0x10, 512), In(512), cdb_at(2, Some(2))),
        case("RSOC opcode without service actions", Rw, &rsoc(2, 0x28, 0, 512), In(512), cdb_at(2, Some(2))),
        case("RSOC reserved option", Rw, &rsoc(4, 0, 0, 512), In(512), cdb_at(2, Some(2))),
        // PERSISTENT RESERVE IN / OUT from the one port of the table (more: nexus.rs).
        case("PR IN READ KEYS, none", Rw, &[0x5E, 0, 0, 0, 0, 0, 0, 0, 64, 0], In(64), Bytes(8, |d| d == [0; 8])),
        case("PR IN REPORT CAPABILITIES", Rw, &[0x5E, 2, 0, 0, 0, 0, 0, 0, 64, 0], In(64), Bytes(8, |d| d == [0, 8, 0, 0x80, 0xEA, 0x01, 0, 0])),
        case("PR IN READ FULL STATUS, none", Rw, &[0x5E, 3, 0, 0, 0, 0, 0, 0, 64, 0], In(64), Bytes(8, |d| d == [0; 8])),
        case("PR IN bad service action", Rw, &[0x5E, 4, 0, 0, 0, 0, 0, 0, 64, 0], In(64), cdb_at(1, Some(4))),
        case("PR OUT REGISTER", Rw, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0], out([vec![0; 8], vec![0, 0, 0, 0, 0, 0, 0, 7], vec![0; 8]].concat()), Good(0)),
        case("PR OUT bad list length", Rw, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 23, 0], out(vec![0; 23]), Check(ILL, LIST_LEN)),
        case("PR OUT APTPL", Rw, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0], out([vec![0; 20], vec![1, 0, 0, 0]].concat()), param_at(20, Option::None)),
        case("PR OUT RESERVE unregistered", Rw, &[0x5F, 1, 1, 0, 0, 0, 0, 0, 24, 0], out(vec![0; 24]), Exp::Conflict),
        case("PR OUT RESERVE bad type", Rw, &[0x5F, 1, 2, 0, 0, 0, 0, 0, 24, 0], out(vec![0; 24]), cdb_at(2, Option::None)),
        case("PR OUT REGISTER AND MOVE", Rw, &[0x5F, 7, 0, 0, 0, 0, 0, 0, 24, 0], out(vec![0; 24]), cdb_at(1, Some(4))),
        case("MAINTENANCE IN other service action", Rw, &[0xA3, 0x05, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0], In(512), cdb_at(1, Some(4))),
        case("REPORT LUNS well known only", Rw, &[0xA0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0], In(256), Bytes(8, |d| d == [0; 8])),
        case("REPORT LUNS bad select", Rw, &[0xA0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0], In(256), cdb_at(2, Option::None)),
        case("REPORT LUNS alloc 15", Rw, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0], In(256), cdb_at(6, Option::None)),
        case("REPORT LUNS alloc 16", Rw, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], In(256), Bytes(16, |d| be32(d, 0) == 24)),
        // SYNCHRONIZE CACHE.
        case("SYNCHRONIZE CACHE(10) all", Rw, &rw10(0x35, 0, 0, 0), None, Good(0)),
        case("SYNCHRONIZE CACHE(10) IMMED", Rw, &rw10(0x35, 0x02, 0, 0), None, Good(0)),
        case("SYNCHRONIZE CACHE(10) range", Rw, &rw10(0x35, 0, 100, 100), None, Good(0)),
        case("SYNCHRONIZE CACHE(10) past end", Rw, &rw10(0x35, 0, 2000, 100), None, Check(ILL, LBA_RANGE)),
        case("SYNCHRONIZE CACHE(16)", Rw, &rw16(0x91, 0, 0, 2048), None, Good(0)),
        case("SYNCHRONIZE CACHE(16) past end", Rw, &rw16(0x91, 0, 2049, 0), None, Check(ILL, LBA_RANGE)),
        case("SYNCHRONIZE CACHE(10) read-only", Ro, &rw10(0x35, 0, 0, 0), None, Good(0)),
        // PRE-FETCH.
        case("PRE-FETCH(10)", Rw, &rw10(0x34, 0, 0, 256), None, Good(0)),
        case("PRE-FETCH(10) IMMED, to the end", Rw, &rw10(0x34, 0x02, 2047, 0), None, Good(0)),
        case("PRE-FETCH(10) zero length past capacity", Rw, &rw10(0x34, 0, 2049, 0), None, Check(ILL, LBA_RANGE)),
        case("PRE-FETCH(10) past end", Rw, &rw10(0x34, 0, 2047, 2), None, Check(ILL, LBA_RANGE)),
        case("PRE-FETCH(16)", Rw, &rw16(0x90, 0, 1792, 256), None, Good(0)),
        case("PRE-FETCH(16) LBA overflow", Rw, &rw16(0x90, 0, u64::MAX, 1), None, Check(ILL, LBA_RANGE)),
        case("PRE-FETCH(16) huge disk high LBA", Huge, &rw16(0x90, 0, HUGE_BLOCKS - 1, 1), None, Good(0)),
    ]
}

/// Rows for the medium-access commands.
#[expect(clippy::too_many_lines, reason = "a table")]
#[rustfmt::skip]
fn medium_cases() -> Vec<Case> {
    use Data::{In, None};
    use Exp::{Check, Good, Srb};
    use Kind::{B4k, Huge, Ro, Rw};
    let zeros = |n: usize| Data::Out(vec![0; n]);
    let fill = |n: usize| Data::Out(vec![0x5A; n]);
    // COMPARE AND WRITE data: `n` bytes of zeros to compare, then `n` bytes to write.
    let zeros_then_fill = |n: usize| Data::Out([vec![0; n], vec![0x5A; n]].concat());
    let list = |d: &[(u64, u32)]| Data::Out(unmap_list(d));
    vec![
        // READ.
        case("READ(10)", Rw, &rw10(0x28, 0, 0, 1), In(512), Good(512)),
        case("READ(10) last block", Rw, &rw10(0x28, 0, 2047, 1), In(512), Good(512)),
        case("READ(10) FUA DPO", Rw, &rw10(0x28, 0x18, 5, 2), In(1024), Good(1024)),
        case("READ(10) past end", Rw, &rw10(0x28, 0, 2047, 2), In(1024), Check(ILL, LBA_RANGE)),
        case("READ(10) LBA far out", Rw, &rw10(0x28, 0, u32::MAX, 1), In(512), Check(ILL, LBA_RANGE)),
        case("READ(10) zero length", Rw, &rw10(0x28, 0, 10, 0), None, Good(0)),
        case("READ(10) zero length at capacity", Rw, &rw10(0x28, 0, 2048, 0), None, Good(0)),
        case("READ(10) zero length past capacity", Rw, &rw10(0x28, 0, 2049, 0), None, Check(ILL, LBA_RANGE)),
        case("READ(10) RDPROTECT", Rw, &rw10(0x28, 0x20, 0, 1), In(512), cdb_at(1, Some(7))),
        case("READ(10) max transfer", Rw, &rw10(0x28, 0, 0, 2048), In(1 << 20), Good(1 << 20)),
        case("READ(10) over max transfer", Rw, &rw10(0x28, 0, 0, 2049), In(2049 * 512), cdb_at(7, Option::None)),
        case("READ(10) 4K", B4k, &rw10(0x28, 0, 255, 1), In(4096), Good(4096)),
        case("READ(10) 4K over max", B4k, &rw10(0x28, 0, 0, 257), In(257 * 4096), cdb_at(7, Option::None)),
        case("READ(10) short buffer", Rw, &rw10(0x28, 0, 0, 4), In(1000), Srb(0x12, 1000)),
        case("READ(10) no buffer", Rw, &rw10(0x28, 0, 0, 1), None, Srb(0x12, 0)),
        case("READ(10) larger buffer", Rw, &rw10(0x28, 0, 0, 1), In(4096), Good(512)),
        case("READ(10) wrong direction", Rw, &rw10(0x28, 0, 0, 1), zeros(512), Srb(0x06, 0)),
        case("READ(10) read-only", Ro, &rw10(0x28, 0, 0, 1), In(512), Good(512)),
        case("READ(6)", Rw, &rw6(0x08, 2047, 1), In(512), Good(512)),
        case("READ(6) length 0 = 256", Rw, &rw6(0x08, 0, 0), In(256 * 512), Good(256 * 512)),
        case("READ(6) past end", Rw, &rw6(0x08, 2047, 2), In(1024), Check(ILL, LBA_RANGE)),
        case("READ(6) 21-bit LBA", Rw, &rw6(0x08, 0x1F_FFFF, 1), In(512), Check(ILL, LBA_RANGE)),
        case("READ(12)", Rw, &rw12(0xA8, 0, 100, 8), In(4096), Good(4096)),
        case("READ(12) past end", Rw, &rw12(0xA8, 0, 2040, 9), In(9 * 512), Check(ILL, LBA_RANGE)),
        case("READ(12) over max", Rw, &rw12(0xA8, 0, 0, 1 << 20), In(512), cdb_at(6, Option::None)),
        case("READ(16)", Rw, &rw16(0x88, 0x08, 2040, 8), In(4096), Good(4096)),
        case("READ(16) LBA overflow", Rw, &rw16(0x88, 0, u64::MAX, 1), In(512), Check(ILL, LBA_RANGE)),
        case("READ(16) over max", Rw, &rw16(0x88, 0, 0, u32::MAX), In(512), cdb_at(10, Option::None)),
        case("READ(16) huge disk high LBA", Huge, &rw16(0x88, 0, HUGE_BLOCKS - 1, 1), In(512), Good(512)),
        case("READ(16) huge disk past end", Huge, &rw16(0x88, 0, HUGE_BLOCKS, 1), In(512), Check(ILL, LBA_RANGE)),
        // WRITE.
        case("WRITE(10)", Rw, &rw10(0x2A, 0, 0, 1), fill(512), Good(512)),
        case("WRITE(10) FUA", Rw, &rw10(0x2A, 0x08, 7, 1), fill(512), Good(512)),
        case("WRITE(10) past end", Rw, &rw10(0x2A, 0, 2048, 1), fill(512), Check(ILL, LBA_RANGE)),
        case("WRITE(10) WRPROTECT", Rw, &rw10(0x2A, 0xE0, 0, 1), fill(512), cdb_at(1, Some(7))),
        case("WRITE(10) zero length", Rw, &rw10(0x2A, 0, 0, 0), None, Good(0)),
        case("WRITE(10) short buffer", Rw, &rw10(0x2A, 0, 0, 2), fill(1000), Srb(0x12, 0)),
        case("WRITE(10) no buffer", Rw, &rw10(0x2A, 0, 0, 1), None, Srb(0x12, 0)),
        case("WRITE(10) unspecified direction", Rw, &rw10(0x2A, 0, 0, 1), Data::Either(vec![0x5A; 512]), Good(512)),
        case("WRITE(10) wrong direction", Rw, &rw10(0x2A, 0, 0, 1), In(512), Srb(0x06, 0)),
        case("WRITE(10) over max", Rw, &rw10(0x2A, 0, 0, 4096), fill(512), cdb_at(7, Option::None)),
        case("WRITE(10) read-only", Ro, &rw10(0x2A, 0, 0, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE(10) read-only, bad field first", Ro, &rw10(0x2A, 0x20, 0, 1), fill(512), cdb_at(1, Some(7))),
        case("WRITE(10) read-only, protection before range", Ro, &rw10(0x2A, 0, 5000, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE(6)", Rw, &rw6(0x0A, 1, 1), fill(512), Good(512)),
        case("WRITE(6) length 0 = 256", Rw, &rw6(0x0A, 0, 0), fill(256 * 512), Good(256 * 512)),
        case("WRITE(6) past end", Rw, &rw6(0x0A, 2048, 1), fill(512), Check(ILL, LBA_RANGE)),
        case("WRITE(6) read-only", Ro, &rw6(0x0A, 0, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE(12)", Rw, &rw12(0xAA, 0x08, 9, 2), fill(1024), Good(1024)),
        case("WRITE(12) past end", Rw, &rw12(0xAA, 0, 2047, 2), fill(1024), Check(ILL, LBA_RANGE)),
        case("WRITE(12) read-only", Ro, &rw12(0xAA, 0, 0, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE(16)", Rw, &rw16(0x8A, 0x08, 2047, 1), fill(512), Good(512)),
        case("WRITE(16) LBA overflow", Rw, &rw16(0x8A, 0, u64::MAX - 1, 4), fill(2048), Check(ILL, LBA_RANGE)),
        case("WRITE(16) read-only", Ro, &rw16(0x8A, 0, 0, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE(16) 4K", B4k, &rw16(0x8A, 0, 3, 2), fill(8192), Good(8192)),
        // WRITE AND VERIFY.
        case("WRITE AND VERIFY(10)", Rw, &rw10(0x2E, 0x02, 0, 1), fill(512), Good(512)),
        case("WRITE AND VERIFY(10) DPO, no BYTCHK", Rw, &rw10(0x2E, 0x10, 2047, 1), fill(512), Good(512)),
        case("WRITE AND VERIFY(10) zero length", Rw, &rw10(0x2E, 0x02, 0, 0), None, Good(0)),
        case("WRITE AND VERIFY(10) BYTCHK 1xb", Rw, &rw10(0x2E, 0x04, 0, 1), fill(512), cdb_at(1, Some(2))),
        case("WRITE AND VERIFY(10) WRPROTECT", Rw, &rw10(0x2E, 0x20, 0, 1), fill(512), cdb_at(1, Some(7))),
        case("WRITE AND VERIFY(10) past end", Rw, &rw10(0x2E, 0, 2048, 1), fill(512), Check(ILL, LBA_RANGE)),
        case("WRITE AND VERIFY(10) short buffer", Rw, &rw10(0x2E, 0, 0, 2), fill(512), Srb(0x12, 0)),
        case("WRITE AND VERIFY(10) read-only", Ro, &rw10(0x2E, 0, 0, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE AND VERIFY(12)", Rw, &rw12(0xAE, 0x02, 2046, 2), fill(1024), Good(1024)),
        case("WRITE AND VERIFY(12) past end", Rw, &rw12(0xAE, 0, 2047, 2), fill(1024), Check(ILL, LBA_RANGE)),
        case("WRITE AND VERIFY(16)", Rw, &rw16(0x8E, 0x02, 7, 1), fill(512), Good(512)),
        case("WRITE AND VERIFY(16) LBA overflow", Rw, &rw16(0x8E, 0, u64::MAX, 1), fill(512), Check(ILL, LBA_RANGE)),
        case("WRITE AND VERIFY(16) over max", Rw, &rw16(0x8E, 0, 0, 2049), fill(512), cdb_at(10, Option::None)),
        // VERIFY.
        case("VERIFY(10)", Rw, &rw10(0x2F, 0, 0, 16), None, Good(0)),
        case("VERIFY(10) zero length", Rw, &rw10(0x2F, 0, 0, 0), None, Good(0)),
        case("VERIFY(10) past capacity", Rw, &rw10(0x2F, 0, 2048, 1), None, Check(ILL, LBA_RANGE)),
        case("VERIFY(10) long past capacity", Rw, &rw10(0x2F, 0, 0, 0xFFFF), None, Check(ILL, LBA_RANGE)),
        case("VERIFY(10) VRPROTECT", Rw, &rw10(0x2F, 0x40, 0, 1), None, cdb_at(1, Some(7))),
        case("VERIFY(10) BYTCHK 10b", Rw, &rw10(0x2F, 0x04, 0, 1), zeros(512), cdb_at(1, Some(2))),
        case("VERIFY(10) BYTCHK 01b equal", Rw, &rw10(0x2F, 0x02, 0, 2), zeros(1024), Good(1024)),
        case("VERIFY(10) BYTCHK 01b differs", Rw, &rw10(0x2F, 0x02, 0, 2), fill(1024), Check(MISCOMPARE, MISCOMPARE_DURING_VERIFY)),
        case("VERIFY(10) BYTCHK 01b short buffer", Rw, &rw10(0x2F, 0x02, 0, 2), zeros(512), Srb(0x12, 0)),
        case("VERIFY(10) BYTCHK 01b wrong direction", Rw, &rw10(0x2F, 0x02, 0, 1), In(512), Srb(0x06, 0)),
        case("VERIFY(10) BYTCHK 01b over max", Rw, &rw10(0x2F, 0x02, 0, 2049), zeros(512), cdb_at(7, Option::None)),
        case("VERIFY(10) BYTCHK 01b zero length", Rw, &rw10(0x2F, 0x02, 0, 0), None, Good(0)),
        case("VERIFY(10) BYTCHK 11b equal", Rw, &rw10(0x2F, 0x06, 0, 8), zeros(512), Good(512)),
        case("VERIFY(10) BYTCHK 11b differs", Rw, &rw10(0x2F, 0x06, 0, 8), fill(512), Check(MISCOMPARE, MISCOMPARE_DURING_VERIFY)),
        case("VERIFY(10) BYTCHK 11b short", Rw, &rw10(0x2F, 0x06, 0, 8), zeros(100), Srb(0x12, 0)),
        case("VERIFY(10) read-only", Ro, &rw10(0x2F, 0, 0, 1), None, Good(0)),
        case("VERIFY(12)", Rw, &rw12(0xAF, 0, 2047, 1), None, Good(0)),
        case("VERIFY(12) past capacity", Rw, &rw12(0xAF, 0, 2047, 2), None, Check(ILL, LBA_RANGE)),
        case("VERIFY(16)", Rw, &rw16(0x8F, 0, 0, 2048), None, Good(0)),
        case("VERIFY(16) zero length", Rw, &rw16(0x8F, 0, 2048, 0), None, Good(0)),
        case("VERIFY(16) past capacity", Rw, &rw16(0x8F, 0, 2048, 1), None, Check(ILL, LBA_RANGE)),
        case("VERIFY(16) LBA overflow", Rw, &rw16(0x8F, 0, u64::MAX, 2), None, Check(ILL, LBA_RANGE)),
        case("VERIFY(16) BYTCHK 01b", Rw, &rw16(0x8F, 0x02, 5, 1), zeros(512), Good(512)),
        // RESERVE(6) / RELEASE(6) from the one port of the table (multi-port cases: nexus.rs).
        case("RESERVE(6)", Rw, &[0x16, 0, 0, 0, 0, 0], None, Good(0)),
        case("RESERVE(6) third party", Rw, &[0x16, 0x10, 0, 0, 0, 0], None, cdb_at(1, Option::None)),
        case("RESERVE(6) extent", Rw, &[0x16, 0x01, 0, 0, 0, 0], None, cdb_at(1, Option::None)),
        case("RELEASE(6) nothing reserved", Rw, &[0x17, 0, 0, 0, 0, 0], None, Good(0)),
        case("RELEASE(6) third party", Rw, &[0x17, 0x12, 0, 0, 0, 0], None, cdb_at(1, Option::None)),
        case("RESERVE(6) read-only disk", Ro, &[0x16, 0, 0, 0, 0, 0], None, Good(0)),
        // COMPARE AND WRITE: the store starts zeroed, so zeros compare equal and 0xA5 does not.
        case("COMPARE AND WRITE", Rw, &caw(0, 0, 2), zeros_then_fill(1024), Good(2048)),
        case("COMPARE AND WRITE last blocks", Rw, &caw(0x18, 2046, 2), zeros_then_fill(1024), Good(2048)),
        case("COMPARE AND WRITE max length", Rw, &caw(0, 0, 255), zeros_then_fill(255 * 512), Good(255 * 1024)),
        case("COMPARE AND WRITE miscompare", Rw, &caw(0, 0, 1), fill(1024), Check(MISCOMPARE, MISCOMPARE_DURING_VERIFY)),
        case("COMPARE AND WRITE zero blocks", Rw, &caw(0, 5, 0), None, Good(0)),
        case("COMPARE AND WRITE WRPROTECT", Rw, &caw(0x20, 0, 1), zeros(1024), cdb_at(1, Some(7))),
        case("COMPARE AND WRITE past end", Rw, &caw(0, 2047, 2), zeros(2048), Check(ILL, LBA_RANGE)),
        case("COMPARE AND WRITE LBA overflow", Rw, &caw(0, u64::MAX, 1), zeros(1024), Check(ILL, LBA_RANGE)),
        case("COMPARE AND WRITE over max 4K", B4k, &caw(0, 0, 129), zeros(4096), cdb_at(13, Option::None)),
        case("COMPARE AND WRITE short buffer", Rw, &caw(0, 0, 2), zeros(2047), Srb(0x12, 0)),
        case("COMPARE AND WRITE wrong direction", Rw, &caw(0, 0, 1), In(1024), Srb(0x06, 0)),
        case("COMPARE AND WRITE read-only", Ro, &caw(0, 0, 1), zeros(1024), Check(DATA_PROTECT, WRITE_PROTECTED)),
        // ORWRITE(16).
        case("ORWRITE(16)", Rw, &rw16(0x8B, 0x18, 0, 4), fill(2048), Good(2048)),
        case("ORWRITE(16) zero length", Rw, &rw16(0x8B, 0, 2048, 0), None, Good(0)),
        case("ORWRITE(16) ORPROTECT", Rw, &rw16(0x8B, 0x40, 0, 1), fill(512), cdb_at(1, Some(7))),
        case("ORWRITE(16) past end", Rw, &rw16(0x8B, 0, 2047, 2), fill(1024), Check(ILL, LBA_RANGE)),
        case("ORWRITE(16) over max", Rw, &rw16(0x8B, 0, 0, 2049), fill(512), cdb_at(10, Option::None)),
        case("ORWRITE(16) short buffer", Rw, &rw16(0x8B, 0, 0, 2), fill(512), Srb(0x12, 0)),
        case("ORWRITE(16) read-only", Ro, &rw16(0x8B, 0, 0, 1), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        // WRITE ATOMIC(16).
        case("WRITE ATOMIC(16)", Rw, &write_atomic(0x08, 0, 2048, 0), fill(1 << 20), Good(1 << 20)),
        case("WRITE ATOMIC(16) zero length", Rw, &write_atomic(0, 2048, 0, 0), None, Good(0)),
        case("WRITE ATOMIC(16) zero length past end", Rw, &write_atomic(0, 2049, 0, 0), None, Check(ILL, LBA_RANGE)),
        case("WRITE ATOMIC(16) boundary", Rw, &write_atomic(0, 0, 1, 1), fill(512), cdb_at(10, Option::None)),
        case("WRITE ATOMIC(16) over max", Rw, &write_atomic(0, 0, 2049, 0), fill(512), cdb_at(12, Option::None)),
        case("WRITE ATOMIC(16) over max 4K", B4k, &write_atomic(0, 0, 257, 0), fill(4096), cdb_at(12, Option::None)),
        case("WRITE ATOMIC(16) WRPROTECT", Rw, &write_atomic(0xE0, 0, 1, 0), fill(512), cdb_at(1, Some(7))),
        case("WRITE ATOMIC(16) past end", Rw, &write_atomic(0, 2047, 2, 0), fill(1024), Check(ILL, LBA_RANGE)),
        case("WRITE ATOMIC(16) read-only", Ro, &write_atomic(0, 0, 1, 0), fill(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        // WRITE SAME.
        case("WRITE SAME(10)", Rw, &rw10(0x41, 0, 0, 16), fill(512), Good(512)),
        case("WRITE SAME(10) UNMAP", Rw, &rw10(0x41, 0x08, 0, 16), zeros(512), Good(512)),
        case("WRITE SAME(10) UNMAP nonzero", Rw, &rw10(0x41, 0x08, 0, 16), fill(512), Good(512)),
        case("WRITE SAME(10) zero blocks", Rw, &rw10(0x41, 0, 0, 0), fill(512), cdb_at(7, Option::None)),
        case("WRITE SAME(10) past end", Rw, &rw10(0x41, 0, 2040, 9), fill(512), Check(ILL, LBA_RANGE)),
        case("WRITE SAME(10) read-only", Ro, &rw10(0x41, 0x08, 0, 1), zeros(512), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE SAME(10) WRPROTECT", Rw, &rw10(0x41, 0x20, 0, 1), zeros(512), cdb_at(1, Some(7))),
        case("WRITE SAME(10) ANCHOR", Rw, &rw10(0x41, 0x18, 0, 1), zeros(512), cdb_at(1, Some(4))),
        case("WRITE SAME(10) PBDATA", Rw, &rw10(0x41, 0x04, 0, 1), zeros(512), cdb_at(1, Some(2))),
        case("WRITE SAME(10) LBDATA", Rw, &rw10(0x41, 0x02, 0, 1), zeros(512), cdb_at(1, Some(1))),
        case("WRITE SAME(10) short buffer", Rw, &rw10(0x41, 0, 0, 4), fill(100), Srb(0x12, 0)),
        case("WRITE SAME(10) wrong direction", Rw, &rw10(0x41, 0, 0, 4), In(512), Srb(0x06, 0)),
        case("WRITE SAME(16)", Rw, &rw16(0x93, 0, 2000, 48), fill(512), Good(512)),
        case("WRITE SAME(16) UNMAP", Rw, &rw16(0x93, 0x08, 0, 2048), zeros(512), Good(512)),
        case("WRITE SAME(16) NDOB", Rw, &rw16(0x93, 0x09, 0, 8), None, Good(0)),
        case("WRITE SAME(16) zero blocks", Rw, &rw16(0x93, 0x08, 0, 0), zeros(512), cdb_at(10, Option::None)),
        case("WRITE SAME(16) over max", Huge, &rw16(0x93, 0x08, 0, 131_073), zeros(512), cdb_at(10, Option::None)),
        case("WRITE SAME(16) at max", Huge, &rw16(0x93, 0x08, 0, 131_072), zeros(512), Good(512)),
        case("WRITE SAME(16) past end", Rw, &rw16(0x93, 0, 2048, 1), fill(512), Check(ILL, LBA_RANGE)),
        case("WRITE SAME(16) read-only", Ro, &rw16(0x93, 0x09, 0, 1), None, Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("WRITE SAME(16) 4K", B4k, &rw16(0x93, 0, 0, 4), fill(4096), Good(4096)),
        // UNMAP.
        case("UNMAP", Rw, &unmap(24), list(&[(0, 8)]), Good(24)),
        case("UNMAP length 0", Rw, &unmap(0), None, Good(0)),
        case("UNMAP header only", Rw, &unmap(8), list(&[]), Good(8)),
        case("UNMAP length 4", Rw, &unmap(4), zeros(4), Check(ILL, LIST_LEN)),
        case("UNMAP ANCHOR", Rw, &[0x42, 1, 0, 0, 0, 0, 0, 0, 24, 0], list(&[(0, 8)]), cdb_at(1, Some(0))),
        case("UNMAP read-only", Ro, &unmap(24), list(&[(0, 8)]), Check(DATA_PROTECT, WRITE_PROTECTED)),
        case("UNMAP past end", Rw, &unmap(40), list(&[(0, 8), (2047, 2)]), Check(ILL, LBA_RANGE)),
        case("UNMAP LBA overflow", Rw, &unmap(24), list(&[(u64::MAX, 2)]), Check(ILL, LBA_RANGE)),
        case("UNMAP zero blocks at capacity", Rw, &unmap(24), list(&[(2048, 0)]), Good(24)),
        case("UNMAP too many descriptors", Rw, &unmap(8 + 65 * 16), list(&[(0, 1); 65]), param_at(2, Option::None)),
        case("UNMAP far too many descriptors", Rw, &unmap(8 + 4095 * 16), list(&[(0, 1); 4095]), param_at(2, Option::None)),
        case("UNMAP max descriptors", Rw, &unmap(8 + 64 * 16), list(&[(0, 1); 64]), Good(8 + 64 * 16)),
        case("UNMAP too many blocks", Huge, &unmap(40), list(&[(0, 100_000), (200_000, 100_000)]), param_at(32, Option::None)),
        case("UNMAP one range too long", Huge, &unmap(24), list(&[(0, 131_073)]), param_at(16, Option::None)),
        case("UNMAP partial descriptor ignored", Rw, &unmap(36), Data::Out({ let mut v = unmap_list(&[(0, 1), (5000, 1)]); v[3] = 20; v.truncate(36); v }), Good(36)),
        case("UNMAP descriptor length past list", Rw, &unmap(24), Data::Out({ let mut v = unmap_list(&[(0, 1), (5000, 1)]); v.truncate(24); v }), Good(24)),
        case("UNMAP short buffer", Rw, &unmap(40), list(&[(0, 1)]), Srb(0x12, 0)),
        case("UNMAP unspecified direction", Rw, &unmap(24), Data::Either(unmap_list(&[(0, 8)])), Good(24)),
        case("UNMAP wrong direction", Rw, &unmap(24), In(24), Srb(0x06, 0)),
        case("UNMAP 4K", B4k, &unmap(24), list(&[(255, 1)]), Good(24)),
    ]
}

#[test]
fn every_row() {
    let cases: Vec<Case> = control_cases().into_iter().chain(medium_cases()).collect();
    let mut failures = Vec::new();
    for c in &cases {
        let disk = disk(c.kind);
        let store = MemStore::for_disk(&disk);
        let mut in_buf = match c.data {
            Data::In(n) => vec![0xEE; n],
            _ => Vec::new(),
        };
        let data = match &c.data {
            Data::None => DataBuffer::None,
            Data::In(_) => DataBuffer::In(&mut in_buf),
            Data::Out(v) => DataBuffer::out(v),
            Data::Either(v) => {
                in_buf.clone_from(v);
                DataBuffer::Unspecified(&mut in_buf)
            }
        };
        let outcome = run(&disk, &store, &c.cdb, data);
        in_buf.truncate(outcome.transferred as usize);
        if let Err(why) = judge(c, &outcome, &in_buf) {
            failures.push(format!("{}: {why} (got {outcome:?})", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!("{} rows passed", cases.len());
}

fn judge(c: &Case, o: &Outcome, bytes: &[u8]) -> Result<(), String> {
    let sense_fields = |o: &Outcome| o.sense.map(|s| (s.key, (s.asc, s.ascq), s.detail));
    match &c.exp {
        Exp::Good(n) => {
            if *o != Outcome::good(*n) {
                return Err(format!("expected GOOD with {n} bytes"));
            }
        }
        Exp::Conflict => {
            if (o.srb_status, o.scsi_status, o.sense, o.transferred) != (0x04, 0x18, None, 0) {
                return Err("expected RESERVATION CONFLICT".into());
            }
        }
        Exp::Bytes(n, predicate) => {
            if *o != Outcome::good(*n) {
                return Err(format!("expected GOOD with {n} bytes"));
            }
            if !predicate(bytes) {
                return Err(format!("bytes do not match: {bytes:02X?}"));
            }
        }
        Exp::Check(key, code) => {
            if o.srb_status != 0x84 || o.scsi_status != 2 || o.transferred != 0 {
                return Err("expected CHECK CONDITION with autosense".into());
            }
            match sense_fields(o) {
                Some((k, c, _)) if k == *key && c == *code => {}
                _ => {
                    return Err(format!(
                        "expected sense {key:X}/{:02X}/{:02X}",
                        code.0, code.1
                    ));
                }
            }
        }
        Exp::At(code, in_cdb, byte, bit) => {
            if o.srb_status != 0x84 || o.scsi_status != 2 || o.transferred != 0 {
                return Err("expected CHECK CONDITION with autosense".into());
            }
            let want = SenseDetail::Field(FieldPointer {
                in_cdb: *in_cdb,
                byte: *byte,
                bit: *bit,
            });
            match sense_fields(o) {
                Some((ILL, c, d)) if c == *code && d == want => {}
                _ => {
                    return Err(format!(
                        "expected 5/{:02X}/{:02X} at {} byte {byte} bit {bit:?}",
                        code.0,
                        code.1,
                        if *in_cdb { "CDB" } else { "parameter" }
                    ));
                }
            }
        }
        Exp::Srb(status, n) => {
            let want = Outcome {
                srb_status: *status,
                scsi_status: 0,
                sense: Option::None,
                transferred: u32::try_from(*n).unwrap(),
            };
            if *o != want {
                return Err(format!("expected SRB status {status:#04X} with {n} bytes"));
            }
        }
    }
    Ok(())
}

/// The table reaches every implemented operation code.
#[test]
fn table_covers_every_opcode() {
    let cases: Vec<Case> = control_cases().into_iter().chain(medium_cases()).collect();
    for op in crate::scsi::op::ALL {
        assert!(
            cases.iter().any(|c| c.cdb.first() == Some(&op)
                && !matches!(c.exp, Exp::At(..) | Exp::Check(..) | Exp::Srb(..))),
            "no successful row for opcode {op:#04X}"
        );
        assert!(
            cases
                .iter()
                .any(|c| c.cdb.first() == Some(&op)
                    && !matches!(c.exp, Exp::Good(_) | Exp::Bytes(..))),
            "no error row for opcode {op:#04X}"
        );
    }
}
