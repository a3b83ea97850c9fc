//! No input makes the disk panic, touch the store out of range, or break the outcome rules:
//! millions of pseudo-random CDBs and buffers, and an exhaustive sweep of every value of every
//! CDB byte for every operation code.

use super::srb::{TestAdapter, start_io};
use super::{MemStore, config};
use crate::scsi::srb::Address;
use crate::scsi::srb::LunSet;
use crate::scsi::{
    Autosense, BlockSize, DataBuffer, Disk, DiskConfig, Outcome, Request, op, scsi_status,
    srb_status,
};

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A byte biased towards the values CDB fields care about.
    fn field_byte(&mut self) -> u8 {
        match self.below(8) {
            0..=3 => 0,
            4 => self.below(8) as u8,
            5 => 0xFF,
            _ => self.next() as u8,
        }
    }
}

fn small(block_size: BlockSize, blocks: u64, read_only: bool) -> Disk {
    Disk::new(DiskConfig {
        block_size,
        block_count: blocks,
        read_only,
        ..config(super::Kind::Rw)
    })
    .unwrap()
}

/// The rules every outcome obeys.
#[track_caller]
fn check(outcome: &Outcome, buffer_len: usize, autosense: Autosense, what: &dyn Fn() -> String) {
    assert!(
        outcome.transferred as usize <= buffer_len,
        "{}: transferred {} > buffer {buffer_len}",
        what(),
        outcome.transferred
    );
    match outcome.scsi_status {
        scsi_status::GOOD => {
            assert!(outcome.sense.is_none(), "{}", what());
            assert!(
                matches!(
                    outcome.srb_status,
                    srb_status::SUCCESS | srb_status::INVALID_REQUEST | srb_status::DATA_OVERRUN
                ),
                "{}: {outcome:?}",
                what()
            );
            if outcome.srb_status == srb_status::INVALID_REQUEST {
                assert_eq!(outcome.transferred, 0, "{}", what());
            }
        }
        scsi_status::CHECK_CONDITION => {
            assert_eq!(outcome.transferred, 0, "{}", what());
            match autosense {
                Autosense::Enabled => {
                    assert_eq!(outcome.srb_status, 0x84, "{}", what());
                    let s = outcome.sense.expect("sense");
                    assert!(
                        matches!(
                            (s.key, s.asc),
                            (5, 0x1A | 0x20 | 0x21 | 0x24 | 0x26 | 0x39)
                                | (6, 0x29)
                                | (7, 0x27)
                                | (0xE, 0x1D)
                        ),
                        "{}: unexpected sense {s:?}",
                        what()
                    );
                }
                Autosense::Disabled => {
                    assert_eq!(outcome.srb_status, 0x04, "{}", what());
                    assert!(outcome.sense.is_none(), "{}", what());
                }
            }
        }
        // Random RESERVE(6) CDBs reserve the unit to one port; the others then conflict.
        scsi_status::RESERVATION_CONFLICT => {
            assert_eq!(
                (outcome.srb_status, outcome.sense, outcome.transferred),
                (srb_status::ERROR, None, 0),
                "{}",
                what()
            );
        }
        other => panic!("{}: SCSI status {other:#04X}", what()),
    }
}

#[test]
fn two_million_random_commands() {
    let disks = [
        small(BlockSize::Bytes512, 64, false),
        small(BlockSize::Bytes4096, 9, false),
        small(BlockSize::Bytes512, 64, true),
    ];
    let stores: Vec<MemStore> = disks.iter().map(MemStore::for_disk).collect();
    let mut luns = LunSet::new();
    luns.insert(0);
    luns.insert(3);
    let mut rng = Rng(0x005E_ED0F_F00D);
    let mut cdb = [0u8; 20];
    let mut buf = vec![0u8; 70_000];
    let mut counts = [0u32; 3];
    for i in 0..2_000_000u32 {
        let which = rng.below(3) as usize;
        let (disk, store) = (&disks[which], &stores[which]);
        for b in &mut cdb {
            *b = rng.field_byte();
        }
        cdb[0] = match rng.below(20) {
            0 => rng.next() as u8,
            _ => op::ALL[rng.below(op::ALL.len() as u64) as usize],
        };
        let cdb_len = match rng.below(10) {
            0 => rng.below(21) as usize,
            _ => 16,
        };
        let len = match rng.below(8) {
            0 => 0,
            1 => rng.below(70_000) as usize,
            2 => 512 * rng.below(9) as usize,
            3 => 4096,
            _ => rng.below(600) as usize,
        };
        // Fresh parameter list headers (UNMAP, MODE SELECT) and block data; the rest of the
        // buffer keeps whatever earlier commands left there.
        for b in buf.iter_mut().take(len.min(48)) {
            *b = rng.field_byte();
        }
        let autosense = if rng.below(10) == 0 {
            Autosense::Disabled
        } else {
            Autosense::Enabled
        };
        let direction = rng.below(4);
        let data = match direction {
            0 => DataBuffer::None,
            1 => DataBuffer::In(&mut buf[..len]),
            2 => DataBuffer::Unspecified(&mut buf[..len]),
            _ => DataBuffer::out(&buf[..len]),
        };
        let buffer_len = if direction == 0 { 0 } else { len };
        let outcome = disk.execute(
            store,
            Request {
                cdb: &cdb[..cdb_len],
                data,
                autosense,
                luns: &luns,
                port: (i % 3) as u8,
            },
        );
        let what = || {
            format!(
                "iteration {i}: disk {which} CDB {:02X?} buffer {len}",
                &cdb[..cdb_len]
            )
        };
        check(&outcome, buffer_len, autosense, &what);
        counts[match outcome.srb_status & 0x3F {
            srb_status::SUCCESS => 0,
            srb_status::ERROR => 1,
            _ => 2,
        }] += 1;
    }
    // The run exercised successes, CHECK CONDITIONs and SRB-level statuses alike.
    assert!(counts.iter().all(|&c| c > 10_000), "{counts:?}");
}

#[test]
fn every_value_of_every_cdb_byte() {
    let disk = small(BlockSize::Bytes512, 64, false);
    let store = MemStore::for_disk(&disk);
    let luns = LunSet::new();
    let mut buf = vec![0u8; 1024];
    for opcode in 0..=u8::MAX {
        for at in 1..16 {
            for value in 0..=u8::MAX {
                for background in [0x00, 0x01] {
                    // A background of 01h makes every length field nonzero, so data flows.
                    let mut cdb = [background; 16];
                    cdb[0] = opcode;
                    // Keep the CONTROL byte clear (01h there is LINK) unless it is swept.
                    let control = match opcode >> 5 {
                        0 => 5,
                        1 | 2 => 9,
                        5 => 11,
                        _ => 15,
                    };
                    cdb[control] = 0;
                    cdb[at] = value;
                    for direction in 0..2 {
                        let data = if direction == 0 {
                            DataBuffer::In(&mut buf)
                        } else {
                            DataBuffer::out(&buf)
                        };
                        let outcome = disk.execute(
                            &store,
                            Request {
                                cdb: &cdb,
                                data,
                                autosense: Autosense::Enabled,
                                luns: &luns,
                                port: 0,
                            },
                        );
                        check(&outcome, 1024, Autosense::Enabled, &|| {
                            format!("{cdb:02X?}")
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn random_srbs_at_random_addresses() {
    let adapter = TestAdapter::new();
    let mut rng = Rng(0x0ADD_0E55);
    let mut buf = vec![0u8; 4096];
    let mut cdb = [0u8; 16];
    for i in 0..200_000u32 {
        for b in &mut cdb {
            *b = rng.field_byte();
        }
        cdb[0] = op::ALL[rng.below(op::ALL.len() as u64) as usize];
        let function = match rng.below(4) {
            0 => rng.next() as u8,
            _ => [0x00, 0x07, 0x08, 0x10, 0x12, 0x13, 0x20, 0x24, 0x25][rng.below(9) as usize],
        };
        let address = Address {
            path_id: rng.below(2) as u8,
            target_id: [0, 3, 7][rng.below(3) as usize],
            lun: rng.below(4) as u8,
        };
        let len = rng.below(4097) as usize;
        let data = if rng.below(2) == 0 {
            DataBuffer::In(&mut buf[..len])
        } else {
            DataBuffer::out(&buf[..len])
        };
        let outcome = start_io(&adapter, function, address, &cdb, data, Autosense::Enabled);
        let what =
            || format!("iteration {i}: function {function:#04X} at {address:?} CDB {cdb:02X?}");
        match outcome.srb_status {
            srb_status::NO_DEVICE | srb_status::INVALID_LUN => {
                assert_eq!(outcome, Outcome::srb(outcome.srb_status), "{}", what());
            }
            _ => check(&outcome, len, Autosense::Enabled, &what),
        }
    }
}
