//! REPORT SUPPORTED OPERATION CODES (SPC-4, MAINTENANCE IN service action 0Ch).
//!
//! The CDB usage data comes from [`COMMANDS`], four bytes a command to keep the driver image
//! small: operation code, service action, the usage mask of CDB byte 1 (exact, so DPO and FUA
//! show for the commands that honour them, matching DPOFUA = 1 in MODE SENSE), and one bit
//! per CDB byte 2–9 set when the command uses that whole byte. In a 16-byte CDB, bit 7 (byte
//! 9) also stands for bytes 10–13: every implemented 16-byte command that uses byte 9 carries
//! a 32-bit length field there, except COMPARE AND WRITE, which uses only byte 13 of them. Bytes used only in part are reported whole; the CONTROL
//! byte is reported 0 (NACA and LINK are not supported). No command has a timeout beyond
//! the default: with RCTD = 1 each timeout descriptor is present with both timeouts 0
//! ("not specified").

use super::DataBuffer;
use super::disk::{Disk, Handled, cdb_length, op};
use super::reply::{Cdb, Reply, data_in};
use super::sense::SenseData;

/// Service action of MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES.
pub const SA_REPORT_SUPPORTED_OPCODES: u8 = 0x0C;

/// CDB bytes 2–9 fully used: LBA and length of the 6, 10, 12 and 16-byte forms.
const RW6: u8 = 0b0000_0111;
const RW10: u8 = 0b0110_1111;
const LBA_LEN: u8 = 0xFF;

/// Every implemented command: operation code, service action, byte 1 usage, bytes 2–9 usage.
pub const COMMANDS: [[u8; 4]; 45] = [
    [op::TEST_UNIT_READY, 0, 0, 0],
    [op::REQUEST_SENSE, 0, 0x01, 0b100],
    [op::READ_6, 0, 0x1F, RW6],
    [op::WRITE_6, 0, 0x1F, RW6],
    [op::INQUIRY, 0, 0x01, 0b111],
    [op::MODE_SELECT_6, 0, 0x11, 0b100],
    [op::RESERVE_6, 0, 0, 0],
    [op::RELEASE_6, 0, 0, 0],
    [op::MODE_SENSE_6, 0, 0x08, 0b111],
    [op::START_STOP_UNIT, 0, 0x01, 0b100],
    [op::PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0b100],
    [op::READ_CAPACITY_10, 0, 0, 0b0100_1111],
    [op::READ_10, 0, 0x1C, RW10],
    [op::WRITE_10, 0, 0x18, RW10],
    [op::WRITE_AND_VERIFY_10, 0, 0x16, RW10],
    [op::VERIFY_10, 0, 0x16, RW10],
    [op::PRE_FETCH_10, 0, 0x02, RW10],
    [op::SYNCHRONIZE_CACHE_10, 0, 0x02, RW10],
    [op::READ_DEFECT_DATA_10, 0, 0, 0b0110_0001],
    [op::WRITE_SAME_10, 0, 0x08, RW10],
    [op::UNMAP, 0, 0, 0b0110_0000],
    [op::LOG_SENSE, 0, 0x03, 0b0111_1011],
    [op::MODE_SELECT_10, 0, 0x11, 0b0110_0000],
    [op::MODE_SENSE_10, 0, 0x18, 0b0110_0011],
    // Listed without their service actions (the table keys service actions on nonzero values).
    [op::PERSISTENT_RESERVE_IN, 0, 0x1F, 0b0110_0000],
    [op::PERSISTENT_RESERVE_OUT, 0, 0x1F, 0b0111_1001],
    [op::READ_16, 0, 0x1C, LBA_LEN],
    [op::COMPARE_AND_WRITE, 0, 0x18, LBA_LEN],
    [op::WRITE_16, 0, 0x18, LBA_LEN],
    [op::ORWRITE_16, 0, 0x18, LBA_LEN],
    [op::WRITE_AND_VERIFY_16, 0, 0x16, LBA_LEN],
    [op::VERIFY_16, 0, 0x16, LBA_LEN],
    [op::PRE_FETCH_16, 0, 0x02, LBA_LEN],
    [op::SYNCHRONIZE_CACHE_16, 0, 0x02, LBA_LEN],
    [op::WRITE_SAME_16, 0, 0x09, LBA_LEN],
    [op::WRITE_ATOMIC_16, 0, 0x18, LBA_LEN],
    [op::SERVICE_ACTION_IN_16, 0x10, 0x1F, LBA_LEN],
    [op::SERVICE_ACTION_IN_16, 0x12, 0x1F, LBA_LEN],
    [op::REPORT_LUNS, 0, 0, 0b1111_0001],
    [
        op::MAINTENANCE_IN,
        SA_REPORT_SUPPORTED_OPCODES,
        0x1F,
        LBA_LEN,
    ],
    [op::READ_12, 0, 0x1C, LBA_LEN],
    [op::WRITE_12, 0, 0x18, LBA_LEN],
    [op::WRITE_AND_VERIFY_12, 0, 0x16, LBA_LEN],
    [op::VERIFY_12, 0, 0x16, LBA_LEN],
    [op::READ_DEFECT_DATA_12, 0, 0x1F, 0b1111_0000],
];

/// A 256-bit set of operation codes, built at compile time: membership is one load and a
/// bit test instead of a walk over a list.
pub const fn opcode_set(codes: &[u8]) -> [u64; 4] {
    let mut set = [0_u64; 4];
    let mut i = 0;
    while i < codes.len() {
        set[codes[i] as usize / 64] |= 1 << (codes[i] % 64);
        i += 1;
    }
    set
}

/// Whether `opcode` is in `set`.
pub const fn in_set(set: &[u64; 4], opcode: u8) -> bool {
    (set[opcode as usize / 64] >> (opcode % 64)) & 1 == 1
}

/// The operation codes of [`COMMANDS`], for the dispatcher's check of every CDB.
const IMPLEMENTED: [u64; 4] = {
    let mut codes = [0_u8; COMMANDS.len()];
    let mut i = 0;
    while i < COMMANDS.len() {
        codes[i] = COMMANDS[i][0];
        i += 1;
    }
    opcode_set(&codes)
};

/// Whether `opcode` is an implemented command.
pub const fn is_implemented(opcode: u8) -> bool {
    in_set(&IMPLEMENTED, opcode)
}

/// Whether `opcode` is one with service actions (SERVACTV).
fn has_service_actions(opcode: u8) -> bool {
    COMMANDS.iter().any(|c| c[0] == opcode && c[1] != 0)
}

impl Disk {
    /// REPORT SUPPORTED OPERATION CODES (SPC-4). REPORTING OPTIONS 000b lists every
    /// command; 001b reports one operation code without service actions, 010b one with its
    /// service action, 011b either. Asking 001b for an operation code with service actions,
    /// 010b for one without, or a reserved option is INVALID FIELD IN CDB; an operation code
    /// or service action not implemented gets SUPPORT = 001b ("not supported"). RCTD = 1
    /// adds the timeouts descriptor. Kept out of line: inlined into the dispatcher it grows
    /// the driver image by a few hundred bytes.
    #[inline(never)]
    pub(crate) fn report_supported_opcodes(cdb: &Cdb, data: DataBuffer<'_>) -> Handled {
        let rctd = cdb.bit(2, 7);
        let options = cdb.u8(2) & 0x07;
        let opcode = cdb.u8(3);
        let with_sa = has_service_actions(opcode);
        if options > 3 || (options == 1 && with_sa) || (options == 2 && !with_sa) {
            return Err(SenseData::invalid_cdb_field(2, Some(2)));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let mut reply = Reply::new(buf, usize::try_from(cdb.be32(6)).unwrap_or(usize::MAX));
        // The command timeouts descriptor: length 0Ah, both timeouts 0 ("not specified").
        let timeouts: &[u8] = if rctd {
            &[0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        } else {
            &[]
        };
        if options == 0 {
            reply.be32(u32::try_from(COMMANDS.len() * (8 + timeouts.len())).unwrap_or(0));
            for [code, action, _, _] in COMMANDS {
                // CTDP and SERVACTV; the service action fits its low byte.
                let flags = (u8::from(rctd) << 1) | u8::from(action != 0);
                reply.bytes(&[code, 0, 0, action, 0, flags, 0, cdb_length(code)]);
                reply.bytes(timeouts);
            }
            return Ok(reply.finish());
        }
        let sa = cdb.be16(4);
        let found = COMMANDS
            .iter()
            .find(|c| c[0] == opcode && (!with_sa || u16::from(c[1]) == sa));
        let Some(&[code, _, byte1, whole]) = found else {
            reply.bytes(&[0, 0x01, 0, 0]); // SUPPORT 001b: not supported; CDB SIZE 0
            return Ok(reply.finish());
        };
        let len = cdb_length(code);
        // CTDP; SUPPORT 011b: supported as the standard says; CDB SIZE.
        reply.bytes(&[0, (u8::from(rctd) << 7) | 0x03, 0, len, code, byte1]);
        for i in 2..len - 1 {
            let used = match i {
                2..=9 => (whole >> (i - 2)) & 1 == 1,
                10..=12 => whole >> 7 == 1 && code != op::COMPARE_AND_WRITE,
                13 => whole >> 7 == 1,
                _ => false,
            };
            reply.byte(if used { 0xFF } else { 0 });
        }
        reply.byte(0); // CONTROL
        reply.bytes(timeouts);
        Ok(reply.finish())
    }
}
