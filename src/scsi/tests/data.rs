//! Data round trips: what is written is what is read, across store page boundaries, with FUA,
//! WRITE SAME, UNMAP and VERIFY; short buffers leave the medium untouched.

use std::sync::atomic::Ordering;

use super::cdb::{rw6, rw10, rw12, rw16, unmap, unmap_list};
use super::{Kind, MemStore, PAGE, assert_check, assert_good, disk, run, run_in};
use crate::scsi::asc::MISCOMPARE_DURING_VERIFY;
use crate::scsi::sense_key::MISCOMPARE;
use crate::scsi::{DataBuffer, Outcome, SenseDetail};

/// A recognisable pattern: byte i of the disk = f(seed, i).
fn pattern(seed: u8, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (offset + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
            (x as u8) ^ seed
        })
        .collect()
}

#[test]
fn every_write_form_reads_back_through_every_read_form() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    // Ranges chosen to straddle the store's 4 KiB pages: 512-byte blocks 7..=9 cross the
    // boundary at byte 4096.
    let writes: [(&str, Vec<u8>, u64, usize); 4] = [
        ("WRITE(6)", rw6(0x0A, 7, 3).to_vec(), 7, 3),
        ("WRITE(10) FUA", rw10(0x2A, 0x08, 15, 2).to_vec(), 15, 2),
        ("WRITE(12)", rw12(0xAA, 0, 1000, 17).to_vec(), 1000, 17),
        ("WRITE(16) FUA", rw16(0x8A, 0x08, 2040, 8).to_vec(), 2040, 8),
    ];
    for (i, (name, cdb, lba, blocks)) in writes.iter().enumerate() {
        let data = pattern(i as u8 + 1, lba * 512, blocks * 512);
        let o = run(&disk, &store, cdb, DataBuffer::out(&data));
        assert_good(&o, data.len());
        assert_eq!(
            store.get(lba * 512, data.len() as u64),
            data,
            "{name} stored"
        );
        let reads = [
            rw6(0x08, *lba as u32, *blocks as u8).to_vec(),
            rw10(0x28, 0, *lba as u32, *blocks as u16).to_vec(),
            rw12(0xA8, 0x08, *lba as u32, *blocks as u32).to_vec(),
            rw16(0x88, 0x10, *lba, *blocks as u32).to_vec(),
        ];
        for read in reads {
            let (o, bytes) = run_in(&disk, &store, &read, data.len());
            assert_good(&o, data.len());
            assert_eq!(bytes, data, "{name} read back with {read:02X?}");
        }
    }
    // FUA flushed exactly for the two FUA writes.
    assert_eq!(store.flushes.load(Ordering::Relaxed), 2);
}

#[test]
fn neighbouring_blocks_are_untouched() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    store.fill(0, 20 * 512, 0x11);
    let data = vec![0x22; 512 * 2];
    assert_good(
        &run(&disk, &store, &rw10(0x2A, 0, 7, 2), DataBuffer::out(&data)),
        1024,
    );
    assert!(store.get(0, 7 * 512).iter().all(|&b| b == 0x11));
    assert!(store.get(7 * 512, 1024).iter().all(|&b| b == 0x22));
    assert!(store.get(9 * 512, 11 * 512).iter().all(|&b| b == 0x11));
}

#[test]
fn a_4k_disk_addresses_4k_blocks() {
    let disk = disk(Kind::B4k);
    let store = MemStore::for_disk(&disk);
    let data = pattern(9, 0, 2 * 4096);
    assert_good(
        &run(
            &disk,
            &store,
            &rw16(0x8A, 0, 254, 2),
            DataBuffer::out(&data),
        ),
        8192,
    );
    assert_eq!(store.get(254 * 4096, 8192), data);
    let (o, bytes) = run_in(&disk, &store, &rw10(0x28, 0, 255, 1), 4096);
    assert_good(&o, 4096);
    assert_eq!(bytes, data[4096..]);
}

#[test]
fn a_short_write_buffer_writes_nothing() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let data = vec![0x77; 1000];
    let o = run(&disk, &store, &rw10(0x2A, 0, 0, 2), DataBuffer::out(&data));
    assert_eq!(o, Outcome::data_overrun(0));
    assert_eq!(store.writes.load(Ordering::Relaxed), 0);
    assert!(store.get(0, 1024).iter().all(|&b| b == 0));
}

#[test]
fn a_short_read_buffer_gets_what_fits() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let data = pattern(3, 0, 2048);
    store.write_direct(0, &data);
    let (o, bytes) = run_in(&disk, &store, &rw10(0x28, 0, 0, 4), 1500);
    assert_eq!(o, Outcome::data_overrun(1500));
    assert_eq!(bytes, data[..1500]);
}

#[test]
fn write_same_replicates_one_block() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let block = pattern(5, 0, 512);
    let o = run(&disk, &store, &rw10(0x41, 0, 6, 5), DataBuffer::out(&block));
    assert_good(&o, 512);
    for lba in 6..11 {
        assert_eq!(store.get(lba * 512, 512), block, "block {lba}");
    }
    assert!(store.get(5 * 512, 512).iter().all(|&b| b == 0));
    assert!(store.get(11 * 512, 512).iter().all(|&b| b == 0));
    // UNMAP with a nonzero block still writes the data (it must read back).
    let o = run(
        &disk,
        &store,
        &rw16(0x93, 0x08, 20, 3),
        DataBuffer::out(&block),
    );
    assert_good(&o, 512);
    assert_eq!(store.get(22 * 512, 512), block);
    assert_eq!(store.zeroes.load(Ordering::Relaxed), 0);
}

#[test]
fn write_same_with_unmap_and_a_zero_block_reads_zero() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    store.fill(0, 64 * 512, 0xCC);
    let zero = vec![0u8; 512];
    assert_good(
        &run(
            &disk,
            &store,
            &rw10(0x41, 0x08, 3, 17),
            DataBuffer::out(&zero),
        ),
        512,
    );
    assert_eq!(store.zeroes.load(Ordering::Relaxed), 1);
    let (_, bytes) = run_in(&disk, &store, &rw10(0x28, 0, 0, 64), 64 * 512);
    for (lba, block) in bytes.chunks(512).enumerate() {
        let want = if (3..20).contains(&lba) { 0 } else { 0xCC };
        assert!(block.iter().all(|&b| b == want), "block {lba}");
    }
    // NDOB zeroes without a data buffer.
    assert_good(
        &run(&disk, &store, &rw16(0x93, 0x09, 30, 2), DataBuffer::None),
        0,
    );
    assert!(store.get(30 * 512, 1024).iter().all(|&b| b == 0));
    assert!(store.get(32 * 512, 512).iter().all(|&b| b == 0xCC));
}

#[test]
fn unmap_zeroes_every_range_and_nothing_else() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    store.fill(0, 2048 * 512, 0xAB);
    // Two ranges, one of them whole store pages, one a partial page; and a zero-length one.
    let list = unmap_list(&[(8, 16), (100, 3), (500, 0)]);
    let o = run(
        &disk,
        &store,
        &unmap(list.len() as u16),
        DataBuffer::out(&list),
    );
    assert_good(&o, list.len());
    let (_, bytes) = run_in(&disk, &store, &rw10(0x28, 0, 0, 2048), 1 << 20);
    for (lba, block) in bytes.chunks(512).enumerate() {
        let unmapped = (8..24).contains(&lba) || (100..103).contains(&lba);
        let want = if unmapped { 0 } else { 0xAB };
        assert!(block.iter().all(|&b| b == want), "block {lba}");
    }
    assert_eq!(store.zeroes.load(Ordering::Relaxed), 2);
}

#[test]
fn a_failing_unmap_changes_nothing() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    store.fill(0, 2048 * 512, 0xAB);
    let list = unmap_list(&[(0, 8), (2047, 2)]);
    let o = run(
        &disk,
        &store,
        &unmap(list.len() as u16),
        DataBuffer::out(&list),
    );
    assert!(o.sense.is_some());
    assert_eq!(store.zeroes.load(Ordering::Relaxed), 0);
    assert!(store.get(0, 8 * 512).iter().all(|&b| b == 0xAB));
}

#[test]
fn verify_compares_against_the_medium() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let data = pattern(1, 0, 4 * 512);
    store.write_direct(10 * 512, &data);
    let o = run(
        &disk,
        &store,
        &rw10(0x2F, 0x02, 10, 4),
        DataBuffer::out(&data),
    );
    assert_good(&o, data.len());
    let mut changed = data;
    changed[1234] ^= 1;
    let o = run(
        &disk,
        &store,
        &rw16(0x8F, 0x02, 10, 4),
        DataBuffer::out(&changed),
    );
    assert_check(&o, MISCOMPARE, MISCOMPARE_DURING_VERIFY);
    assert_eq!(o.sense.unwrap().detail, SenseDetail::Information(1234));
    let fixed = o.sense.unwrap().fixed();
    assert_eq!(fixed[0], 0xF0, "VALID set with the information field");
    assert_eq!(u32::from_be_bytes(fixed[3..7].try_into().unwrap()), 1234);

    // BYTCHK 11b: one block against each block of the range.
    let block = pattern(2, 0, 512);
    for lba in 40..43 {
        store.write_direct(lba * 512, &block);
    }
    assert_good(
        &run(
            &disk,
            &store,
            &rw10(0x2F, 0x06, 40, 3),
            DataBuffer::out(&block),
        ),
        512,
    );
    let o = run(
        &disk,
        &store,
        &rw10(0x2F, 0x06, 40, 4),
        DataBuffer::out(&block),
    );
    assert_check(&o, MISCOMPARE, MISCOMPARE_DURING_VERIFY);
    let first = block.iter().position(|&b| b != 0).unwrap() as u32;
    assert_eq!(
        o.sense.unwrap().detail,
        SenseDetail::Information(3 * 512 + first)
    );
}

#[test]
fn synchronize_cache_flushes_the_store() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert_good(
        &run(&disk, &store, &rw10(0x35, 0, 0, 0), DataBuffer::None),
        0,
    );
    assert_good(
        &run(&disk, &store, &rw16(0x91, 0, 0, 0), DataBuffer::None),
        0,
    );
    assert_eq!(store.flushes.load(Ordering::Relaxed), 2);
    // Out of range: no flush.
    let o = run(&disk, &store, &rw10(0x35, 0, 4000, 0), DataBuffer::None);
    assert!(o.sense.is_some());
    assert_eq!(store.flushes.load(Ordering::Relaxed), 2);
    // PRE-FETCH checks the same range but neither flushes nor touches the medium.
    let before = store.get(0, 2048 * 512);
    for cdb in [
        rw10(0x34, 0x02, 0, 0).to_vec(),
        rw16(0x90, 0, 8, 8).to_vec(),
    ] {
        assert_good(&run(&disk, &store, &cdb, DataBuffer::None), 0);
    }
    assert_eq!(store.flushes.load(Ordering::Relaxed), 2);
    assert_eq!(store.get(0, 2048 * 512), before);
}

#[test]
fn page_boundaries_of_the_store_are_invisible() {
    // One write covering pages partially at both ends and wholly in the middle.
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let first = PAGE / 512 - 1;
    let blocks = 2 * PAGE / 512 + 2;
    let data = pattern(7, first * 512, (blocks * 512) as usize);
    let cdb = rw10(0x2A, 0, first as u32, blocks as u16);
    assert_good(
        &run(&disk, &store, &cdb, DataBuffer::out(&data)),
        data.len(),
    );
    let (_, bytes) = run_in(
        &disk,
        &store,
        &rw10(0x28, 0, first as u32, blocks as u16),
        data.len(),
    );
    assert_eq!(bytes, data);
}

#[test]
fn write_and_verify_stores_what_every_read_form_returns() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let forms: [(Vec<u8>, u64, usize); 3] = [
        (rw10(0x2E, 0x02, 7, 3).to_vec(), 7, 3),
        (rw12(0xAE, 0x10, 1000, 9).to_vec(), 1000, 9),
        (rw16(0x8E, 0x02, 2040, 8).to_vec(), 2040, 8),
    ];
    for (i, (cdb, lba, blocks)) in forms.iter().enumerate() {
        let data = pattern(i as u8 + 7, lba * 512, blocks * 512);
        let o = run(&disk, &store, cdb, DataBuffer::out(&data));
        assert_good(&o, data.len());
        let (o, bytes) = run_in(
            &disk,
            &store,
            &rw16(0x88, 0, *lba, *blocks as u32),
            data.len(),
        );
        assert_good(&o, data.len());
        assert_eq!(bytes, data, "{cdb:02X?} read back");
        assert_eq!(
            store.get((lba - 1) * 512, 512),
            vec![0; 512],
            "block before untouched"
        );
    }
    // A refused BYTCHK leaves the medium as it was.
    let o = run(
        &disk,
        &store,
        &rw10(0x2E, 0x06, 0, 1),
        DataBuffer::out(&[0xA5; 512]),
    );
    assert_eq!(o.scsi_status, 2);
    assert_eq!(store.get(0, 512), vec![0; 512]);
}

/// COMPARE AND WRITE of `blocks` at `lba`.
fn caw(flags: u8, lba: u64, blocks: u8) -> [u8; 16] {
    let mut c = rw16(0x89, flags, lba, 0);
    c[13] = blocks;
    c
}

#[test]
fn compare_and_write_writes_only_when_the_medium_matches() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    // Blocks 7..=9 straddle the store's page boundary at byte 4096.
    let old = pattern(1, 7 * 512, 3 * 512);
    let new = pattern(2, 7 * 512, 3 * 512);
    store.write_direct(7 * 512, &old);
    let o = run(
        &disk,
        &store,
        &caw(0x08, 7, 3),
        DataBuffer::out(&[old.clone(), new.clone()].concat()),
    );
    assert_good(&o, 6 * 512);
    assert_eq!(store.get(7 * 512, 3 * 512), new, "the write half stored");
    assert_eq!(store.flushes.load(Ordering::Relaxed), 1, "FUA flushed");

    // Compare against the old data again: byte 1000 of the compare half now differs.
    let o = run(
        &disk,
        &store,
        &caw(0, 7, 3),
        DataBuffer::out(&[old.clone(), pattern(3, 0, 3 * 512)].concat()),
    );
    assert_check(&o, MISCOMPARE, MISCOMPARE_DURING_VERIFY);
    let first = old.iter().zip(&new).position(|(a, b)| a != b).unwrap() as u32;
    assert_eq!(o.sense.unwrap().detail, SenseDetail::Information(first));
    assert_eq!(
        store.get(7 * 512, 3 * 512),
        new,
        "a miscompare writes nothing"
    );
}

#[test]
fn orwrite_ors_the_data_into_the_medium() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    store.fill(6 * 512, 4 * 512, 0x0F);
    let data = vec![0xA0_u8; 3 * 512];
    let o = run(&disk, &store, &rw16(0x8B, 0, 7, 3), DataBuffer::out(&data));
    assert_good(&o, data.len());
    assert!(store.get(6 * 512, 512).iter().all(|&b| b == 0x0F));
    assert!(store.get(7 * 512, 3 * 512).iter().all(|&b| b == 0xAF));
    assert!(store.get(10 * 512, 512).iter().all(|&b| b == 0));
}

#[test]
fn write_atomic_stores_like_write() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let data = pattern(4, 2040 * 512, 8 * 512);
    let mut cdb = [0u8; 16];
    cdb[0] = 0x9C;
    cdb[2..10].copy_from_slice(&2040_u64.to_be_bytes());
    cdb[12..14].copy_from_slice(&8_u16.to_be_bytes());
    assert_good(
        &run(&disk, &store, &cdb, DataBuffer::out(&data)),
        data.len(),
    );
    assert_eq!(store.get(2040 * 512, 8 * 512), data);
}

/// Four threads each add 1 to a counter 500 times with COMPARE AND WRITE (read, then compare
/// the value read and write it plus one; on MISCOMPARE read again), on the driver's RAM disk.
/// Every increment must count exactly once.
#[test]
fn concurrent_compare_and_write_increments_lose_nothing() {
    use crate::ramdisk::{CHUNK_BYTES, RamDisk};
    use std::sync::atomic::AtomicU64;
    use storport_emu::port::host::{Kernel, PASSIVE_LEVEL};

    // The RAM disk takes the layer's kernel locks: each thread is an emulated processor.
    let kernel = Kernel::new();
    let kernel = &kernel;
    let disk = disk(Kind::Rw);
    let store = RamDisk::new(2 * CHUNK_BYTES as u64, |words| {
        Ok::<_, ()>((0..words).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>())
    })
    .unwrap();
    let lba = (CHUNK_BYTES as u64 / 512) - 1;
    let store = &store;
    let disk = &disk;
    let read_counter = move || {
        let mut buf = vec![0u8; 512];
        let o = disk.execute(
            store,
            super::Request {
                cdb: &rw16(0x88, 0, lba, 1),
                data: DataBuffer::In(&mut buf),
                autosense: super::Autosense::Enabled,
                luns: &super::luns(),
                port: 0,
            },
        );
        assert_good(&o, 512);
        buf
    };
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(move || {
                kernel.run(PASSIVE_LEVEL, || {
                    let mut done = 0;
                    while done < 500 {
                        let old = read_counter();
                        let n = u64::from_le_bytes(old[..8].try_into().unwrap());
                        let mut new = old.clone();
                        new[..8].copy_from_slice(&(n + 1).to_le_bytes());
                        let o = disk.execute(
                            store,
                            super::Request {
                                cdb: &caw(0, lba, 1),
                                data: DataBuffer::out(&[old, new].concat()),
                                autosense: super::Autosense::Enabled,
                                luns: &super::luns(),
                                port: 0,
                            },
                        );
                        if o.scsi_status == 0 {
                            done += 1;
                        } else {
                            assert_check(&o, MISCOMPARE, MISCOMPARE_DURING_VERIFY);
                        }
                    }
                });
            });
        }
    });
    let counter = kernel.run(PASSIVE_LEVEL, read_counter);
    assert_eq!(u64::from_le_bytes(counter[..8].try_into().unwrap()), 2000);
    assert_eq!(kernel.findings(), Vec::new());
}
