//! SRBs whose `SrbFlags` direction bits are unspecified or contradict the CDB, sent to the
//! real `vstor.sys` through storemu's `Port::execute_flagged`.
//!
//! Each command gets the buffer its operation code moves data in (READ, INQUIRY: a data-in
//! buffer whose initial bytes are [`FILL`]; WRITE: the payload; TEST UNIT READY: a 512-byte
//! buffer of [`FILL`] although it moves none) under each form of the direction bits:
//! `SRB_FLAGS_NO_DATA_TRANSFER` (neither bit, with `DataTransferLength` and `DataBuffer` set),
//! `SRB_FLAGS_DATA_IN`, `SRB_FLAGS_DATA_OUT` and `SRB_FLAGS_UNSPECIFIED_DIRECTION` (both).
//!
//! The expected outcomes are what the SCSI logic documents (`src/scsi/mod.rs`, "Data buffers
//! and lengths"), not what it happens to do. The flags name the buffer's direction
//! (`DataBuffer`: neither bit is `None`, both bits `Unspecified`); "a data-in command given a
//! non-empty data-out buffer, or the reverse, completes with `SRB_STATUS_INVALID_REQUEST` and
//! touches nothing; `DataBuffer::None` behaves as an empty buffer of the right direction and
//! `DataBuffer::Unspecified` as a buffer of the right direction". An empty buffer is short for
//! a READ or WRITE (`SRB_STATUS_DATA_OVERRUN`, nothing moved, nothing written) and a normal
//! truncation for INQUIRY's allocation length (GOOD, 0 bytes); TEST UNIT READY moves no data
//! whatever the buffer. None of these is a CHECK CONDITION, so no sense is returned:
//!
//! | command            | neither bit     | `DATA_IN`       | `DATA_OUT`      | both            |
//! |--------------------|-----------------|-----------------|-----------------|-----------------|
//! | READ(10), READ(16) | 12h, 0, initial | 01h, 512, block | 06h, 0, initial | 01h, 512, block |
//! | WRITE(10), (16)    | 12h, 0, kept    | 06h, 0, kept    | 01h, 512, new   | 01h, 512, new   |
//! | INQUIRY (96)       | 01h, 0, initial | 01h, 74, data   | 06h, 0, initial | 01h, 74, data   |
//! | TEST UNIT READY    | 01h, 0, initial | 01h, 0, initial | 01h, 0, initial | 01h, 0, initial |
//!
//! (SRB status, `DataTransferLength`, then the buffer afterwards: its initial bytes, or the
//! block read / the standard INQUIRY data followed by the initial bytes; for WRITE, what an
//! ordinary READ(10) finds: the block as it was, or the new one. SCSI status GOOD
//! throughout; a WRITE's buffer keeps its bytes.) A CDB error comes before the buffer is
//! looked at (`src/scsi/io.rs`: CDB fields, write protection, LBA range, then the data
//! buffer), so a range error is the same CHECK CONDITION under every form. The plain
//! direction and the unspecified one give the same bytes.

mod common;

use common::{Adapter, LBA_OUT_OF_RANGE, SCSI_GOOD, assert_check_condition, block, global, rw10};
use storport_emu::port::{DataDirection, FlagDirection, FlaggedResult, SrbResult};
use storport_emu::registry::RegValue;

/// `SRB_STATUS_SUCCESS` (srb.h).
const SUCCESS: u8 = 0x01;
/// `SRB_STATUS_INVALID_REQUEST` (srb.h).
const INVALID_REQUEST: u8 = 0x06;
/// `SRB_STATUS_DATA_OVERRUN` (srb.h), also an underrun.
const DATA_OVERRUN: u8 = 0x12;
/// Bytes per block (the INF's `SectorSize`).
const BLOCK: usize = 512;
/// The initial bytes of every buffer a command would fill.
const FILL: u8 = 0xA5;
/// Standard INQUIRY's allocation length in these tests.
const INQUIRY_ALLOCATION: usize = 96;
/// Bytes of vstor's standard INQUIRY data (ADDITIONAL LENGTH + 5).
const INQUIRY_BYTES: usize = 74;

/// One 1 MiB disk.
fn one_disk() -> Adapter {
    Adapter::start(&[
        global("DiskCount", RegValue::dword(1)),
        global("DiskSizeMiB", RegValue::dword(1)),
    ])
}

/// A READ(16)/WRITE(16) CDB.
fn rw16(opcode: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0_u8; 16];
    cdb[0] = opcode;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// The commands under test, each moving one block where it moves any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Read10,
    Read16,
    Write10,
    Write16,
    Inquiry,
    TestUnitReady,
}

impl Command {
    fn cdb(self, lba: u32) -> Vec<u8> {
        match self {
            Self::Read10 => rw10(0x28, lba, 1).to_vec(),
            Self::Write10 => rw10(0x2A, lba, 1).to_vec(),
            Self::Read16 => rw16(0x88, u64::from(lba), 1).to_vec(),
            Self::Write16 => rw16(0x8A, u64::from(lba), 1).to_vec(),
            Self::Inquiry => vec![0x12, 0, 0, 0, 96, 0],
            Self::TestUnitReady => vec![0; 6],
        }
    }

    const fn writes(self) -> bool {
        matches!(self, Self::Write10 | Self::Write16)
    }

    /// The buffer the command gets: the payload for a write, [`FILL`] otherwise.
    fn buffer(self, lba: u32) -> Vec<u8> {
        match self {
            Self::Write10 | Self::Write16 => new_block(lba),
            Self::Inquiry => vec![FILL; INQUIRY_ALLOCATION],
            Self::Read10 | Self::Read16 | Self::TestUnitReady => vec![FILL; BLOCK],
        }
    }
}

/// What the medium holds at a write's LBA before the write.
fn old_block(lba: u32) -> Vec<u8> {
    block(BLOCK, 0, u64::from(lba), 1)
}

/// What a write sends.
fn new_block(lba: u32) -> Vec<u8> {
    block(BLOCK, 0, u64::from(lba), 2)
}

/// What the buffer holds after the command.
#[derive(Clone, Copy, Debug)]
enum Buffer {
    /// Its initial bytes: the miniport wrote nothing into it.
    Initial,
    /// The command's data (the block read, the standard INQUIRY data), then the initial bytes.
    Data,
}

/// What a following ordinary READ(10) finds at a write's LBA.
#[derive(Clone, Copy, Debug)]
enum Medium {
    /// The command is no write.
    NoWrite,
    /// The block as it was.
    NotWritten,
    /// The block the write sent.
    Written,
}

/// One row of the table in the module documentation.
struct Row {
    command: Command,
    flags: FlagDirection,
    srb_status: u8,
    transferred: usize,
    buffer: Buffer,
    medium: Medium,
}

const fn row(
    command: Command,
    flags: FlagDirection,
    (srb_status, transferred): (u8, usize),
    buffer: Buffer,
    medium: Medium,
) -> Row {
    Row {
        command,
        flags,
        srb_status,
        transferred,
        buffer,
        medium,
    }
}

/// The rows of `command`, one per flag form.
const fn rows(command: Command) -> [Row; 4] {
    use Buffer::{Data, Initial};
    use FlagDirection::{In, NoData, Out, Unspecified};
    use Medium::{NoWrite, NotWritten, Written};
    let block = BLOCK;
    match command {
        Command::Read10 | Command::Read16 => [
            row(command, NoData, (DATA_OVERRUN, 0), Initial, NoWrite),
            row(command, In, (SUCCESS, block), Data, NoWrite),
            row(command, Out, (INVALID_REQUEST, 0), Initial, NoWrite),
            row(command, Unspecified, (SUCCESS, block), Data, NoWrite),
        ],
        Command::Write10 | Command::Write16 => [
            row(command, NoData, (DATA_OVERRUN, 0), Initial, NotWritten),
            row(command, In, (INVALID_REQUEST, 0), Initial, NotWritten),
            row(command, Out, (SUCCESS, block), Initial, Written),
            row(command, Unspecified, (SUCCESS, block), Initial, Written),
        ],
        Command::Inquiry => [
            row(command, NoData, (SUCCESS, 0), Initial, NoWrite),
            row(command, In, (SUCCESS, INQUIRY_BYTES), Data, NoWrite),
            row(command, Out, (INVALID_REQUEST, 0), Initial, NoWrite),
            row(
                command,
                Unspecified,
                (SUCCESS, INQUIRY_BYTES),
                Data,
                NoWrite,
            ),
        ],
        Command::TestUnitReady => [
            row(command, NoData, (SUCCESS, 0), Initial, NoWrite),
            row(command, In, (SUCCESS, 0), Initial, NoWrite),
            row(command, Out, (SUCCESS, 0), Initial, NoWrite),
            row(command, Unspecified, (SUCCESS, 0), Initial, NoWrite),
        ],
    }
}

fn flagged(adapter: &Adapter, cdb: &[u8], flags: FlagDirection, buffer: Vec<u8>) -> FlaggedResult {
    adapter
        .port
        .execute_flagged((0, 0, 0), cdb, flags, buffer)
        .unwrap_or_else(|error| panic!("CDB {cdb:02x?} flagged {flags:?}: {error}"))
}

/// Runs every row of `command` on a fresh disk, each at its own LBA, and checks the
/// outcome, the buffer and the medium exactly.
fn check(command: Command) {
    let adapter = one_disk();
    // The command's data, as an ordinary request of the plain direction gets it.
    let standard = adapter.inquiry(0);
    assert_eq!(standard.len(), INQUIRY_BYTES, "standard INQUIRY data");
    assert_eq!(
        usize::from(standard[4]) + 5,
        INQUIRY_BYTES,
        "ADDITIONAL LENGTH"
    );
    for (lba, row) in (16_u32..).step_by(16).zip(rows(command)) {
        let what = format!("{:?} flagged {:?}", row.command, row.flags);
        adapter.write_ok(0, lba, old_block(lba), BLOCK);
        let initial = command.buffer(lba);
        let outcome = flagged(&adapter, &command.cdb(lba), row.flags, initial.clone());
        let result = &outcome.result;
        assert_eq!(
            (result.srb_status, result.scsi_status, result.transferred),
            (
                row.srb_status,
                SCSI_GOOD,
                u32::try_from(row.transferred).expect("small")
            ),
            "{what}: SRB status, SCSI status, DataTransferLength (sense {:02x?})",
            result.sense
        );
        assert_eq!(result.sense, Vec::<u8>::new(), "{what}: no sense");
        let mut expected = initial.clone();
        if matches!(row.buffer, Buffer::Data) {
            let data = match command {
                Command::Inquiry => standard.clone(),
                _ => old_block(lba),
            };
            expected[..data.len()].copy_from_slice(&data);
        }
        assert_eq!(outcome.buffer, expected, "{what}: the buffer afterwards");
        assert_eq!(
            result.data,
            expected[..row.transferred],
            "{what}: the data returned"
        );
        let on_medium = adapter.read_ok(0, lba, 1, BLOCK);
        match row.medium {
            Medium::NoWrite | Medium::NotWritten => {
                assert_eq!(on_medium, old_block(lba), "{what}: the medium is unchanged");
            }
            Medium::Written => {
                assert_eq!(
                    on_medium,
                    new_block(lba),
                    "{what}: the medium holds the write"
                );
            }
        }
        assert_eq!(
            matches!(row.medium, Medium::NoWrite),
            !command.writes(),
            "{what}: table row"
        );
    }
    adapter.finish_clean();
}

#[test]
fn read10_under_each_direction_flag_form() {
    check(Command::Read10);
}

#[test]
fn read16_under_each_direction_flag_form() {
    check(Command::Read16);
}

#[test]
fn write10_under_each_direction_flag_form() {
    check(Command::Write10);
}

#[test]
fn write16_under_each_direction_flag_form() {
    check(Command::Write16);
}

#[test]
fn standard_inquiry_under_each_direction_flag_form() {
    check(Command::Inquiry);
}

#[test]
fn test_unit_ready_with_a_buffer_under_each_direction_flag_form() {
    check(Command::TestUnitReady);
}

/// The parts of an outcome both kinds of request report.
fn reported(result: &SrbResult) -> (u8, u8, Vec<u8>, u32) {
    (
        result.srb_status,
        result.scsi_status,
        result.sense.clone(),
        result.transferred,
    )
}

#[test]
fn the_unspecified_direction_gives_the_bytes_of_the_plain_one() {
    let adapter = one_disk();
    adapter.write_ok(0, 40, old_block(40), BLOCK);
    // Data in: an ordinary data-in request and one with both bits, on a zeroed buffer as the
    // ordinary one is.
    for command in [Command::Read10, Command::Read16, Command::Inquiry] {
        let cdb = command.cdb(40);
        let len = command.buffer(40).len();
        let plain = adapter.execute(0, &cdb, &DataDirection::In(len));
        let unspecified = flagged(&adapter, &cdb, FlagDirection::Unspecified, vec![0; len]);
        assert_eq!(plain.status(), SUCCESS, "{command:?}");
        assert_eq!(unspecified.result, plain, "{command:?}");
    }
    // Data out: the same payload at two LBAs, then both read back.
    for (command, plain_lba, unspecified_lba) in
        [(Command::Write10, 50, 51), (Command::Write16, 52, 53)]
    {
        let payload = new_block(60);
        let plain = adapter.execute(
            0,
            &command.cdb(plain_lba),
            &DataDirection::Out(payload.clone()),
        );
        let unspecified = flagged(
            &adapter,
            &command.cdb(unspecified_lba),
            FlagDirection::Unspecified,
            payload.clone(),
        );
        assert_eq!(plain.status(), SUCCESS, "{command:?}");
        assert_eq!(
            reported(&unspecified.result),
            reported(&plain),
            "{command:?}"
        );
        assert_eq!(adapter.read_ok(0, plain_lba, 1, BLOCK), payload);
        assert_eq!(adapter.read_ok(0, unspecified_lba, 1, BLOCK), payload);
    }
    // No data.
    let tur = Command::TestUnitReady.cdb(0);
    let plain = adapter.execute(0, &tur, &DataDirection::None);
    let unspecified = flagged(
        &adapter,
        &tur,
        FlagDirection::Unspecified,
        vec![FILL; BLOCK],
    );
    assert_eq!(reported(&unspecified.result), reported(&plain));
    adapter.finish_clean();
}

#[test]
fn a_range_error_comes_before_the_buffer_under_each_form() {
    let adapter = one_disk();
    let (last_lba, block_bytes) = adapter.capacity(0);
    assert_eq!(block_bytes as usize, BLOCK);
    let beyond = u32::try_from(last_lba + 1).expect("1 MiB disk");
    for command in [
        Command::Read10,
        Command::Read16,
        Command::Write10,
        Command::Write16,
    ] {
        for flags in FlagDirection::ALL {
            let what = format!("{command:?} at LBA {beyond} flagged {flags:?}");
            let initial = command.buffer(beyond);
            let outcome = flagged(&adapter, &command.cdb(beyond), flags, initial.clone());
            assert_check_condition(&outcome.result, LBA_OUT_OF_RANGE, &what);
            assert_eq!(outcome.result.transferred, 0, "{what}");
            assert_eq!(outcome.buffer, initial, "{what}: the buffer is untouched");
        }
    }
    adapter.finish_clean();
}
