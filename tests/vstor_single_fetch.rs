//! The real `vstor.sys` reads every data-out byte once: each command that
//! takes data gets a buffer whose one varying byte changes from the first
//! version to the second after its first access (`Port::execute_racing`,
//! the machinery behind `storemu run --racing-buffers`), and must read that
//! byte exactly once and end as the first version alone makes it end.
//!
//! The varying byte sits where a command decides something: a field MODE
//! SELECT checks and then applies, the key PERSISTENT RESERVE OUT registers,
//! a byte of COMPARE AND WRITE's verify half or of VERIFY's data, the one
//! block WRITE SAME replicates. A driver that checks one read and acts on
//! another (or re-reads the block for every copy) reads it more than once.
//! (UNMAP's list is in `vstor_racing_buffers.rs`.)

mod common;

use common::{Adapter, global};
use storport_emu::port::DataDirection;
use storport_emu::port::racing::{RacingDataOut, RacingSchedule};
use storport_emu::registry::RegValue;

const BLOCK: usize = 512;

fn adapter() -> Adapter {
    Adapter::start(&[global("DiskSizeMiB", RegValue::dword(1))])
}

/// Sends `cdb` to LUN 0 with `first` as its data-out buffer, whose byte
/// `varying` reads as `second` from the second access on; returns the SRB
/// status and how many times the byte was read.
fn racing(adapter: &Adapter, cdb: &[u8], first: &[u8], varying: usize, second: u8) -> (u8, u32) {
    let mut other = first.to_vec();
    other[varying] = second;
    let data = RacingDataOut::new(first.to_vec(), &other).expect("versions differ in one byte");
    let result = adapter
        .port
        .execute_racing((0, 0, 0), cdb, &data, RacingSchedule::SwitchAfter(1))
        .expect("the request completes");
    (result.result.srb_status, result.accesses)
}

const fn cdb10(opcode: u8, byte1: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let n = blocks.to_be_bytes();
    [opcode, byte1, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
}

fn cdb16(opcode: u8, lba: u64, length: [u8; 4]) -> [u8; 16] {
    let mut cdb = [0_u8; 16];
    cdb[0] = opcode;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&length);
    cdb
}

fn assert_clean(adapter: &Adapter) {
    assert_eq!(adapter.findings(), vec![], "no rule broken");
}

#[test]
fn mode_select_checks_and_applies_one_copy_of_the_caching_page() {
    let adapter = adapter();
    // MODE SELECT(6), PF: a 4-byte header and the caching page with WCE
    // set. The second version also sets RCD, which is not changeable.
    let mut list = vec![0_u8; 24];
    list[4] = 0x08;
    list[5] = 0x12;
    list[6] = 0x04;
    let status = racing(&adapter, &[0x15, 0x10, 0, 0, 24, 0], &list, 6, 0x05);
    assert_eq!(status, (0x01, 1), "GOOD, the byte read once");
    // MODE SENSE(6) of the caching page: WCE as the first version set it.
    let sense = adapter.execute(0, &[0x1A, 0x08, 0x08, 0, 64, 0], &DataDirection::In(64));
    assert_eq!(sense.srb_status, 0x01);
    assert_eq!(sense.data[4..7], [0x08, 0x12, 0x04], "{:02x?}", sense.data);
    assert_clean(&adapter);
}

#[test]
fn persistent_reserve_out_registers_the_key_it_read() {
    let adapter = adapter();
    // REGISTER with SERVICE ACTION RESERVATION KEY 1122334455667788h; the
    // second version ends in 99h instead.
    let mut list = vec![0_u8; 24];
    list[8..16].copy_from_slice(&0x1122_3344_5566_7788_u64.to_be_bytes());
    let cdb = [0x5F, 0x00, 0x00, 0, 0, 0, 0, 0, 24, 0];
    assert_eq!(racing(&adapter, &cdb, &list, 15, 0x99), (0x01, 1));
    // PERSISTENT RESERVE IN, READ KEYS: the first version's key.
    let keys = adapter.execute(
        0,
        &[0x5E, 0x00, 0, 0, 0, 0, 0, 0, 64, 0],
        &DataDirection::In(64),
    );
    assert_eq!(keys.srb_status, 0x01);
    assert_eq!(keys.data[4..8], [0, 0, 0, 8], "one key: {:02x?}", keys.data);
    assert_eq!(keys.data[8..16], 0x1122_3344_5566_7788_u64.to_be_bytes());
    assert_clean(&adapter);
}

#[test]
fn compare_and_write_compares_one_copy_of_its_verify_half() {
    let adapter = adapter();
    adapter.write_ok(0, 5, vec![0x11; BLOCK], BLOCK);
    // Verify half 11h (matches the medium), write half 22h; the second
    // version of verify byte 100 does not match.
    let mut data = vec![0x11_u8; BLOCK];
    data.extend_from_slice(&[0x22; BLOCK]);
    let mut cdb = [0_u8; 16];
    cdb[0] = 0x89;
    cdb[2..10].copy_from_slice(&5_u64.to_be_bytes());
    cdb[13] = 1;
    assert_eq!(racing(&adapter, &cdb, &data, 100, 0x33), (0x01, 1));
    assert_eq!(adapter.read_ok(0, 5, 1, BLOCK), vec![0x22; BLOCK]);
    assert_clean(&adapter);
}

#[test]
fn verify_compares_one_copy_of_its_data() {
    let adapter = adapter();
    adapter.write_ok(0, 8, vec![0x5C; 4 * BLOCK], BLOCK);
    // BYTCHK 01b: the data-out buffer against the medium.
    let cdb = cdb10(0x2F, 0x02, 8, 2);
    assert_eq!(
        racing(&adapter, &cdb, &[0x5C; 2 * BLOCK], 700, 0x00),
        (0x01, 1)
    );
    // BYTCHK 11b: one block against each of four.
    let cdb = cdb10(0x2F, 0x06, 8, 4);
    assert_eq!(racing(&adapter, &cdb, &[0x5C; BLOCK], 300, 0x00), (0x01, 1));
    assert_clean(&adapter);
}

#[test]
fn write_same_replicates_one_copy_of_its_block() {
    let adapter = adapter();
    let block: Vec<u8> = (0..BLOCK)
        .map(|i| u8::try_from(i % 251).unwrap_or(0) | 1)
        .collect();
    let cdb = cdb10(0x41, 0x00, 16, 4);
    assert_eq!(racing(&adapter, &cdb, &block, 7, 0xEE), (0x01, 1));
    let back = adapter.read_ok(0, 16, 4, BLOCK);
    for (index, copy) in back.chunks(BLOCK).enumerate() {
        assert_eq!(copy, &block[..], "block {index} holds the first version");
    }
    assert_clean(&adapter);
}

#[test]
fn atomic_writes_and_plain_writes_read_their_data_once() {
    let adapter = adapter();
    let data: Vec<u8> = (0..2 * BLOCK)
        .map(|i| u8::try_from(i % 253).unwrap_or(0))
        .collect();
    // WRITE(10), WRITE ATOMIC(16), ORWRITE(16) over zeroed blocks: the
    // medium ends as the first version.
    let write = cdb10(0x2A, 0, 24, 2);
    assert_eq!(racing(&adapter, &write, &data, 513, 0xFF), (0x01, 1));
    assert_eq!(adapter.read_ok(0, 24, 2, BLOCK), data);
    let atomic = cdb16(0x9C, 28, [0, 0, 0, 2]);
    assert_eq!(racing(&adapter, &atomic, &data, 1000, 0xFF), (0x01, 1));
    assert_eq!(adapter.read_ok(0, 28, 2, BLOCK), data);
    let or = cdb16(0x8B, 32, [0, 0, 0, 2]);
    assert_eq!(racing(&adapter, &or, &data, 3, 0xFF), (0x01, 1));
    assert_eq!(adapter.read_ok(0, 32, 2, BLOCK), data);
    assert_clean(&adapter);
}
