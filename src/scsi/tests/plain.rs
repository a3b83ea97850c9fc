//! The plain paths (`Disk::plain_request`: READ(10), WRITE(10) and TEST UNIT READY;
//! `Disk::plain_other`: READ(16), WRITE(16) and standard INQUIRY; each when nothing about it
//! is unusual) give what the general path gives: for a grid of CDBs, buffers and disk
//! states, running the plain paths first (falling back to `Disk::execute`, as `srb::execute`
//! does) and running `Disk::execute` alone on a twin disk end with the same outcome, the same
//! data-in bytes, the same medium and the same disk state afterwards.

use super::{Kind, MemStore, config};
use crate::scsi::{
    Autosense, DataBuffer, Disk, Limits, LunSet, Outcome, PlainCommand, Request, op,
};

/// Blocks the transfer limit allows in this test (kept small so "over the limit" is cheap).
const LIMIT_BLOCKS: u32 = 8;
/// The largest buffer of the grid: two blocks past the limit on the 4096-byte disk.
const MAX_BUFFER: usize = 4096 * (LIMIT_BLOCKS as usize + 2);

/// Disk states a command can meet.
#[derive(Clone, Copy, Debug)]
enum State {
    Clean,
    /// A unit attention pending for every port (a logical unit reset).
    Attention,
    /// RESERVE(6) held through port 1; the commands come through port 0.
    ReservedElsewhere,
    /// RESERVE(6) held through port 0, which the commands come through.
    ReservedHere,
}

/// The data buffer of one run.
#[derive(Clone, Copy, Debug)]
enum Buffer {
    None,
    In(usize),
    Out(usize),
    Unspecified(usize),
}

fn twin(kind: Kind, state: State) -> (Disk, MemStore) {
    let mut config = config(kind);
    config.limits = Limits {
        max_transfer_bytes: LIMIT_BLOCKS * config.block_size.bytes(),
        ..Limits::DEFAULT
    };
    let disk = Disk::new(config).expect("a valid test disk");
    let store = MemStore::for_disk(&disk);
    let block = u64::from(disk.config().block_size.bytes());
    let blocks = disk.config().block_count;
    store.write_direct(0, &[0x5A; 512]);
    store.write_direct((blocks - 1) * block, &[0xC3; 512]);
    let reserve = |port| {
        let outcome = general(
            &disk,
            &store,
            &[op::RESERVE_6, 0, 0, 0, 0, 0],
            DataBuffer::None,
            port,
        );
        assert_eq!(outcome, Outcome::good(0), "RESERVE(6) through port {port}");
    };
    match state {
        State::Clean => {}
        State::Attention => disk.reset(),
        State::ReservedElsewhere => reserve(1),
        State::ReservedHere => reserve(0),
    }
    (disk, store)
}

fn general(disk: &Disk, store: &MemStore, cdb: &[u8], data: DataBuffer<'_>, port: u8) -> Outcome {
    disk.execute(
        store,
        Request {
            cdb,
            data,
            autosense: Autosense::Enabled,
            luns: &LunSet::new(),
            port,
        },
    )
}

/// Runs `cdb` with a buffer made from `buffer` (data-out bytes from `out`, data-in bytes 0xAA),
/// the plain path first when `plain`: the outcome, whether the plain path took it, and the
/// data-in buffer afterwards.
fn run(
    (disk, store): (&Disk, &MemStore),
    cdb: &[u8],
    (buffer, out): (Buffer, &[u8]),
    plain: bool,
) -> (Outcome, bool, Vec<u8>) {
    let mut inb = vec![0xAA_u8; out.len()];
    let data = match buffer {
        Buffer::None => DataBuffer::None,
        Buffer::In(n) => DataBuffer::In(&mut inb[..n]),
        Buffer::Out(n) => DataBuffer::out(&out[..n]),
        Buffer::Unspecified(n) => DataBuffer::Unspecified(&mut inb[..n]),
    };
    let (outcome, took) = if plain {
        let mut command = PlainCommand { cdb, data };
        match disk
            .plain_request(store, &mut command)
            .or_else(|| disk.plain_other(store, &mut command))
        {
            Some(outcome) => (outcome, true),
            None => (general(disk, store, cdb, command.data, 0), false),
        }
    } else {
        (general(disk, store, cdb, data, 0), false)
    };
    (outcome, took, inb)
}

/// What is left of a disk and its medium after a command: the medium's bytes where the
/// commands land, its call counts, and what TEST UNIT READY and REQUEST SENSE say through
/// each port (unit attentions, reservations, deferred sense).
fn after(disk: &Disk, store: &MemStore) -> (Vec<u8>, usize, usize, Vec<Outcome>) {
    let block = u64::from(disk.config().block_size.bytes());
    let blocks = disk.config().block_count;
    let mut medium = store.get(0, 10 * block);
    medium.extend(store.get((blocks - 8) * block, 8 * block));
    let writes = store.writes.load(std::sync::atomic::Ordering::Relaxed);
    let flushes = store.flushes.load(std::sync::atomic::Ordering::Relaxed);
    let mut probes = Vec::new();
    for port in [0, 1] {
        probes.push(general(
            disk,
            store,
            &[op::TEST_UNIT_READY, 0, 0, 0, 0, 0],
            DataBuffer::None,
            port,
        ));
        let mut sense = [0_u8; 18];
        probes.push(general(
            disk,
            store,
            &[op::REQUEST_SENSE, 0, 0, 0, 18, 0],
            DataBuffer::In(&mut sense),
            port,
        ));
    }
    (medium, writes, flushes, probes)
}

/// The CDBs of the grid for a disk of `capacity` blocks: every opcode, flag, control, LBA,
/// length and CDB length combination that matters to the plain path's decision.
fn cdbs(capacity: u64) -> Vec<Vec<u8>> {
    let mut cdbs = Vec::new();
    for control in [0_u8, 0x01, 0x04] {
        for cdb_len in [5_usize, 6] {
            let mut cdb = vec![op::TEST_UNIT_READY, 0, 0, 0, 0, 0];
            cdb[5] = control;
            cdb.truncate(cdb_len);
            cdbs.push(cdb);
        }
    }
    // Byte 1 of TEST UNIT READY is reserved (SCSI-2 put the LUN there).
    cdbs.push(vec![op::TEST_UNIT_READY, 0x20, 0, 0, 0, 0]);
    for flags in [0_u8, 0x01, 0x02, 0x04] {
        for page in [0_u8, 0x80] {
            for alloc in [0_u16, 5, 96, 0x1FF] {
                for control in [0_u8, 0x04] {
                    let [a0, a1] = alloc.to_be_bytes();
                    cdbs.push(vec![op::INQUIRY, flags, page, a0, a1, control]);
                    cdbs.push(vec![op::INQUIRY, flags, page, a0, a1]);
                }
            }
        }
    }
    let lbas = [0, capacity - 8, capacity - 1, u64::from(u32::MAX)];
    for opcode in [op::READ_10, op::WRITE_10, op::READ_16] {
        for flags in [0_u8, 0x08, 0x20] {
            for control in [0_u8, 0x04] {
                for lba in lbas {
                    for blocks in [0_u16, 1, 8, 9] {
                        for cdb_len in [9_usize, 10] {
                            let mut cdb = vec![0_u8; 16];
                            cdb[0] = opcode;
                            cdb[1] = flags;
                            cdb[2..6].copy_from_slice(&u32::try_from(lba).unwrap().to_be_bytes());
                            // GROUP NUMBER, next to the length: set on every other length, so
                            // a decode that reads the wrong byte shows.
                            cdb[6] = if blocks % 2 == 1 { 0x1F } else { 0 };
                            cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
                            cdb[9] = control;
                            cdb.truncate(cdb_len);
                            cdbs.push(cdb);
                        }
                    }
                }
            }
        }
    }
    // The 16-byte forms: LBAs past 2^32 and near 2^64 (LBA + length overflows), lengths past
    // 2^16, and the CDB one byte short.
    let lbas16 = [
        0,
        capacity - 8,
        capacity - 1,
        u64::from(u32::MAX) + 1,
        u64::MAX - 3,
    ];
    for opcode in [op::READ_16, op::WRITE_16] {
        for flags in [0_u8, 0x08, 0x20] {
            for control in [0_u8, 0x04] {
                for lba in lbas16 {
                    for blocks in [0_u32, 1, 8, 9, 0x1_0001] {
                        for cdb_len in [15_usize, 16] {
                            let mut cdb = vec![0_u8; 16];
                            cdb[0] = opcode;
                            cdb[1] = flags;
                            cdb[2..10].copy_from_slice(&lba.to_be_bytes());
                            cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
                            // GROUP NUMBER, next to the length, as above; with no blocks 1,
                            // which a length read one byte late takes for one block, and the
                            // one-block-longer buffer holds.
                            cdb[14] = match blocks {
                                0 => 0x01,
                                _ if blocks % 2 == 1 => 0x1F,
                                _ => 0,
                            };
                            cdb[15] = control;
                            cdb.truncate(cdb_len);
                            cdbs.push(cdb);
                        }
                    }
                }
            }
        }
    }
    cdbs
}

/// The buffers of the grid for `cdb` on disks of `block` bytes per block: none, and each
/// direction with no bytes, one block short, exactly the transfer and one block more.
fn buffers(cdb: &[u8], block: usize) -> Vec<Buffer> {
    let blocks = match cdb.first() {
        Some(&(op::READ_16 | op::WRITE_16)) => cdb.get(10..14).map_or(0, |n| {
            usize::try_from(u32::from_be_bytes([n[0], n[1], n[2], n[3]])).unwrap()
        }),
        _ => cdb
            .get(7..9)
            .map_or(0, |n| usize::from(u16::from_be_bytes([n[0], n[1]]))),
    };
    let bytes = blocks * block;
    let mut all = vec![Buffer::None];
    // 36 bytes: less than the standard INQUIRY data, more than some allocation lengths.
    let short = if cdb.first() == Some(&op::INQUIRY) {
        36
    } else {
        0
    };
    let mut sizes = vec![0, short, bytes.saturating_sub(block), bytes, bytes + block];
    // Lengths far past the limit get the largest buffer instead.
    for size in &mut sizes {
        *size = (*size).min(MAX_BUFFER);
    }
    sizes.dedup();
    for size in sizes {
        all.extend([
            Buffer::In(size),
            Buffer::Out(size),
            Buffer::Unspecified(size),
        ]);
    }
    all
}

#[test]
fn the_plain_path_gives_what_the_general_path_gives() {
    let states = [
        State::Clean,
        State::Attention,
        State::ReservedElsewhere,
        State::ReservedHere,
    ];
    let (mut taken, mut passed_on) = (0_usize, 0_usize);
    let out: Vec<u8> = (0..MAX_BUFFER).map(|i| (i % 253) as u8 ^ 0x11).collect();
    // Every state on the writable 512-byte disk; the read-only and 4096-byte disks clean.
    for (kind, states) in [
        (Kind::Rw, &states[..]),
        (Kind::Ro, &states[..1]),
        (Kind::B4k, &states[..1]),
    ] {
        let probe = twin(kind, State::Clean).0;
        let block = probe.config().block_size.bytes() as usize;
        for cdb in cdbs(probe.config().block_count) {
            for buffer in buffers(&cdb, block) {
                for &state in states {
                    let (plain_disk, plain_store) = twin(kind, state);
                    let (general_disk, general_store) = twin(kind, state);
                    let (outcome, took, data) =
                        run((&plain_disk, &plain_store), &cdb, (buffer, &out), true);
                    let expected =
                        run((&general_disk, &general_store), &cdb, (buffer, &out), false);
                    let what = format!("{kind:?} {state:?} CDB {cdb:02X?} buffer {buffer:?}");
                    assert_eq!((outcome, &data), (expected.0, &expected.2), "{what}");
                    let (plain_after, general_after) = (
                        after(&plain_disk, &plain_store),
                        after(&general_disk, &general_store),
                    );
                    // Compared apart, so a failure does not print kilobytes of medium.
                    assert!(
                        plain_after.0 == general_after.0,
                        "{what}: the medium afterwards"
                    );
                    assert_eq!(
                        (plain_after.1, plain_after.2, plain_after.3),
                        (general_after.1, general_after.2, general_after.3),
                        "{what}: writes, flushes and the disk's answers afterwards"
                    );
                    if took {
                        taken += 1;
                    } else {
                        passed_on += 1;
                    }
                }
            }
        }
    }
    assert!(
        taken > 100 && passed_on > 1000,
        "plain {taken}, general {passed_on}"
    );
}
