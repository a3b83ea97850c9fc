//! vstor's disks under I/O on the real `vstor.sys` under the emulated
//! Storport port: LUNs keep to themselves, each disk ends where its capacity
//! says, and concurrent requests from several threads (Storport calls a
//! virtual miniport's `HwStartIo` concurrently) keep every block intact.

mod common;

use std::collections::HashSet;
use std::sync::Barrier;

use common::{
    Adapter, LBA_OUT_OF_RANGE, assert_check_condition, assert_good, block, blocks, global,
};
use storport_emu::port::DataDirection;
use storport_emu::registry::RegValue;

const BLOCK: usize = 512;

/// Three disks of different sizes: 1, 2 and 3 MiB.
fn three_disks() -> Adapter {
    Adapter::start(&[
        global("DiskCount", RegValue::dword(3)),
        global("DiskSizesMiB", RegValue::multi_sz(&["1", "2", "3"])),
    ])
}

#[test]
fn each_lun_keeps_its_own_data() {
    let adapter = three_disks();
    let lbas: [u32; 3] = [0, 7, 1500];
    for lun in 0..3 {
        for &lba in &lbas {
            adapter.write_ok(lun, lba, blocks(BLOCK, lun, u64::from(lba), 4, 1), BLOCK);
        }
    }
    for lun in 0..3 {
        for &lba in &lbas {
            assert_eq!(
                adapter.read_ok(lun, lba, 4, BLOCK),
                blocks(BLOCK, lun, u64::from(lba), 4, 1),
                "LUN {lun} LBA {lba}: the same LBAs of the other LUNs were written too"
            );
        }
    }
    // A write to LUN 1 alone changes LUN 1 alone.
    adapter.write_ok(1, 7, blocks(BLOCK, 1, 7, 4, 2), BLOCK);
    assert_eq!(adapter.read_ok(1, 7, 4, BLOCK), blocks(BLOCK, 1, 7, 4, 2));
    for lun in [0, 2] {
        assert_eq!(
            adapter.read_ok(lun, 7, 4, BLOCK),
            blocks(BLOCK, lun, 7, 4, 1),
            "LUN {lun} after a write to LUN 1"
        );
    }
    // A block written on one LUN only is zero on the others.
    adapter.write_ok(2, 3000, block(BLOCK, 2, 3000, 1), BLOCK);
    for lun in [0, 1] {
        assert_eq!(adapter.read_ok(lun, 1000, 1, BLOCK), vec![0; BLOCK]);
    }
    assert_eq!(adapter.read_ok(1, 3000, 1, BLOCK), vec![0; BLOCK]);
    adapter.finish_clean();
}

#[test]
fn each_lun_has_its_own_identity() {
    let adapter = three_disks();
    let serials: HashSet<String> = (0..3).map(|lun| adapter.serial(lun)).collect();
    assert_eq!(serials.len(), 3, "distinct serial numbers: {serials:?}");
    let designators: HashSet<Vec<u8>> = (0..3)
        .map(|lun| {
            let page = adapter.vpd(lun, 0x83);
            // The first designation descriptor: header at 4, length at 7.
            let length = usize::from(page[7]);
            page[8..8 + length].to_vec()
        })
        .collect();
    assert_eq!(designators.len(), 3, "distinct device identifiers");
    adapter.finish_clean();
}

#[test]
fn each_disk_ends_at_its_own_capacity() {
    let adapter = three_disks();
    for (lun, mib) in [(0_u8, 1_u32), (1, 2), (2, 3)] {
        let blocks_total = mib * 2048;
        let last = blocks_total - 1;
        assert_eq!(
            adapter.capacity(lun),
            (u64::from(last), 512),
            "LUN {lun} has {mib} MiB"
        );
        let data = block(BLOCK, lun, u64::from(last), 5);
        adapter.write_ok(lun, last, data.clone(), BLOCK);
        assert_eq!(
            adapter.read_ok(lun, last, 1, BLOCK),
            data,
            "LUN {lun} last LBA"
        );

        let write = adapter.write10(lun, blocks_total, 1, block(BLOCK, lun, 0, 0));
        assert_check_condition(&write, LBA_OUT_OF_RANGE, "WRITE(10) at LBA = capacity");
        let read = adapter.read10(lun, blocks_total, 1, BLOCK);
        assert_check_condition(&read, LBA_OUT_OF_RANGE, "READ(10) at LBA = capacity");
        let across = adapter.write10(lun, last, 2, blocks(BLOCK, lun, u64::from(last), 2, 6));
        assert_check_condition(&across, LBA_OUT_OF_RANGE, "WRITE(10) across the end");
        assert_eq!(
            adapter.read_ok(lun, last, 1, BLOCK),
            data,
            "LUN {lun}: the refused write across the end left the last block alone"
        );
    }
    // LUN 0's capacity is not LUN 2's: LBA 2048 is beyond LUN 0 only.
    let beyond = adapter.read10(0, 2048, 1, BLOCK);
    assert_check_condition(&beyond, LBA_OUT_OF_RANGE, "READ(10) of LUN 0 at LBA 2048");
    assert_good(
        &adapter.read10(2, 2048, 1, BLOCK),
        "READ(10) of LUN 2 at LBA 2048",
    );
    adapter.finish_clean();
}

/// Threads writing and reading at once.
const THREADS: u8 = 4;
/// Rounds each thread runs.
const ROUNDS: u32 = 40;
/// Blocks each thread owns on each LUN (its private range).
const OWN_BLOCKS: u32 = 16;
/// Start of the range every thread writes.
const SHARED_LBA: u32 = 1024;
/// Blocks in the shared range: the second half of the disk's first 1 MiB
/// chunk, so that a copy of it takes long enough for others to overlap it.
const SHARED_BLOCKS: u16 = 1024;
/// Blocks per request.
const CHUNK: u16 = 4;

/// The generation a thread writes in a round: decodable to (thread, round).
fn generation(thread: u8, round: u32) -> u32 {
    (u32::from(thread) << 16) | (round + 1)
}

/// The (thread, round) of a generation, if it is one a thread wrote.
fn writer_of(generation: u32) -> Option<(u8, u32)> {
    let thread = u8::try_from(generation >> 16).ok()?;
    let round = (generation & 0xFFFF).checked_sub(1)?;
    (thread < THREADS && round < ROUNDS).then_some((thread, round))
}

/// Checks the shared range of `lun` as read. Every thread writes the whole
/// range in one WRITE(10) with its generation. vstor copies a disk's bytes
/// under the lock of the chunk they lie in (src/ramdisk.rs: 1 MiB chunks,
/// shared to read, exclusive to write), and the range lies in one chunk, so
/// a READ(10) of it sees writes whole: every block must be the block one and
/// the same write put there, or all of them still zero. A mixture of two
/// writes is a torn request; a block of another LUN or LBA was never written
/// there.
fn check_shared(lun: u8, data: &[u8]) {
    assert_eq!(
        data.len(),
        usize::from(SHARED_BLOCKS) * BLOCK,
        "the whole shared range was read"
    );
    if data.iter().all(|&b| b == 0) {
        return;
    }
    let generation = u32::from_le_bytes(data[10..14].try_into().expect("4 bytes"));
    assert!(
        writer_of(generation).is_some(),
        "LUN {lun} LBA {SHARED_LBA}: generation {generation:#x} was never written there"
    );
    let expected = blocks(
        BLOCK,
        lun,
        u64::from(SHARED_LBA),
        u64::from(SHARED_BLOCKS),
        generation,
    );
    if let Some(row) = data
        .chunks_exact(16)
        .zip(expected.chunks_exact(16))
        .position(|(got, want)| got != want)
    {
        let offset = row * 16;
        panic!(
            "LUN {lun} LBA {} byte {}: {:02x?} is not what the write of generation {generation:#x} put there \
             (a torn request, or a block that was never written there)",
            u64::from(SHARED_LBA) + (offset / BLOCK) as u64,
            offset % BLOCK,
            &data[offset..offset + 16]
        );
    }
}

/// One thread's work: in each round, write its own range of one LUN and
/// read it straight back, then write the shared range of that LUN whole and
/// read it back whole.
fn worker(adapter: &Adapter, thread: u8, barrier: &Barrier) {
    barrier.wait();
    let own_start = u32::from(thread) * OWN_BLOCKS;
    for round in 0..ROUNDS {
        let lun = u8::try_from(round % 3).expect("small");
        let generation = generation(thread, round);
        for offset in (0..OWN_BLOCKS).step_by(usize::from(CHUNK)) {
            let lba = own_start + offset;
            let data = blocks(BLOCK, lun, u64::from(lba), u64::from(CHUNK), generation);
            let write = adapter.write10(lun, lba, CHUNK, data.clone());
            assert_good(&write, "concurrent WRITE(10)");
            let read = adapter.read10(lun, lba, CHUNK, BLOCK);
            assert_good(&read, "concurrent READ(10)");
            assert_eq!(
                read.data, data,
                "thread {thread} round {round}: LUN {lun} LBA {lba} read back"
            );
        }
        {
            let data = blocks(
                BLOCK,
                lun,
                u64::from(SHARED_LBA),
                u64::from(SHARED_BLOCKS),
                generation,
            );
            assert_good(
                &adapter.write10(lun, SHARED_LBA, SHARED_BLOCKS, data),
                "concurrent WRITE(10) of the shared range",
            );
            let read = adapter.read10(lun, SHARED_LBA, SHARED_BLOCKS, BLOCK);
            assert_good(&read, "concurrent READ(10) of the shared range");
            check_shared(lun, &read.data);
        }
    }
}

#[test]
fn concurrent_io_from_four_threads_keeps_every_block() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(3)),
        global("DiskSizeMiB", RegValue::dword(1)),
    ]);
    let barrier = Barrier::new(usize::from(THREADS));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (adapter, barrier) = (&adapter, &barrier);
            scope.spawn(move || worker(adapter, thread, barrier));
        }
    });

    // Private ranges: each holds what its thread wrote last to that LUN.
    for thread in 0..THREADS {
        let own_start = u32::from(thread) * OWN_BLOCKS;
        for lun in 0..3_u8 {
            let last_round = (0..ROUNDS)
                .rev()
                .find(|round| round % 3 == u32::from(lun))
                .expect("every LUN gets rounds");
            assert_eq!(
                adapter.read_ok(
                    lun,
                    own_start,
                    u16::try_from(OWN_BLOCKS).expect("small"),
                    BLOCK
                ),
                blocks(
                    BLOCK,
                    lun,
                    u64::from(own_start),
                    u64::from(OWN_BLOCKS),
                    generation(thread, last_round)
                ),
                "thread {thread}'s range on LUN {lun}"
            );
        }
    }
    for lun in 0..3_u8 {
        check_shared(lun, &adapter.read_ok(lun, SHARED_LBA, SHARED_BLOCKS, BLOCK));
    }
    adapter.finish_clean();
}

/// The shared range as the write of `generation` to `lun` leaves it.
fn shared_as_written(lun: u8, generation: u32) -> Vec<u8> {
    blocks(
        BLOCK,
        lun,
        u64::from(SHARED_LBA),
        u64::from(SHARED_BLOCKS),
        generation,
    )
}

#[test]
fn the_shared_range_check_accepts_one_whole_write_or_none() {
    check_shared(2, &shared_as_written(2, generation(1, 3)));
    check_shared(2, &vec![0; usize::from(SHARED_BLOCKS) * BLOCK]);
}

#[test]
#[should_panic(expected = "a torn request")]
fn the_shared_range_check_rejects_blocks_of_two_writes() {
    let mut data = shared_as_written(2, generation(1, 3));
    let other = shared_as_written(2, generation(2, 5));
    data[5 * BLOCK..6 * BLOCK].copy_from_slice(&other[5 * BLOCK..6 * BLOCK]);
    check_shared(2, &data);
}

#[test]
#[should_panic(expected = "a torn request")]
fn the_shared_range_check_rejects_a_block_torn_inside() {
    let mut data = shared_as_written(2, generation(1, 3));
    let other = shared_as_written(2, generation(2, 5));
    data[BLOCK + 256..2 * BLOCK].copy_from_slice(&other[BLOCK + 256..2 * BLOCK]);
    check_shared(2, &data);
}

#[test]
#[should_panic(expected = "never written there")]
fn the_shared_range_check_rejects_a_block_of_another_lba() {
    let mut data = shared_as_written(0, generation(1, 1));
    data[..BLOCK].copy_from_slice(&block(BLOCK, 0, 7, generation(1, 1)));
    check_shared(0, &data);
}

#[test]
#[should_panic(expected = "never written there")]
fn the_shared_range_check_rejects_a_block_of_another_lun() {
    check_shared(0, &shared_as_written(1, generation(0, 0)));
}

/// COMPARE AND WRITE of `blocks` at `lba`.
fn compare_and_write(lba: u64, blocks: u8) -> [u8; 16] {
    let mut cdb = [0_u8; 16];
    cdb[0] = 0x89;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[13] = blocks;
    cdb
}

/// Four threads each add 1 to a counter 200 times with COMPARE AND WRITE (read the two
/// blocks, compare them with what was read and write the counter plus one; on MISCOMPARE
/// read again). The two blocks are the last of the first 1 MiB and the first of the second,
/// so each update crosses the disk's chunk boundary, and both blocks carry the counter:
/// every increment must count exactly once, and no read may see the two blocks disagree.
#[test]
fn concurrent_compare_and_write_increments_count_once_across_a_chunk_boundary() {
    const LBA: u64 = (1 << 20) / BLOCK as u64 - 1;
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(1)),
        global("DiskSizeMiB", RegValue::dword(2)),
    ]);
    let read_counter = |adapter: &Adapter| {
        let data = adapter.read_ok(0, u32::try_from(LBA).expect("small"), 2, BLOCK);
        let first = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let second = u64::from_le_bytes(data[BLOCK..BLOCK + 8].try_into().expect("8 bytes"));
        assert_eq!(first, second, "the two blocks of one update disagree");
        (first, data)
    };
    let misses = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (adapter, misses) = (&adapter, &misses);
            scope.spawn(move || {
                let mut done = 0;
                while done < 200 {
                    let (n, old) = read_counter(adapter);
                    let mut new = old.clone();
                    new[..8].copy_from_slice(&(n + 1).to_le_bytes());
                    new[BLOCK..BLOCK + 8].copy_from_slice(&(n + 1).to_le_bytes());
                    let result = adapter.execute(
                        0,
                        &compare_and_write(LBA, 2),
                        &DataDirection::Out([old, new].concat()),
                    );
                    if result.scsi_status == 0 {
                        done += 1;
                    } else {
                        assert_check_condition(
                            &result,
                            (0x0E, 0x1D, 0x00),
                            "COMPARE AND WRITE after a concurrent update",
                        );
                        misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(read_counter(&adapter).0, 800);
    eprintln!(
        "COMPARE AND WRITE: 800 increments, {} miscompares retried",
        misses.into_inner()
    );
    adapter.finish_clean();
}

#[test]
fn the_transfer_length_is_what_moved_when_the_buffer_is_larger() {
    // Windows may hand a buffer larger than the CDB's transfer (pass-through
    // callers do): the request reports the bytes the command moved, and the
    // rest of the buffer is left alone.
    let adapter = three_disks();
    let data = blocks(BLOCK, 0, 20, 2, 7);
    let mut out = data.clone();
    out.extend_from_slice(&[0xEE; 3 * BLOCK]);
    let write = adapter.execute(
        0,
        &[0x2A, 0, 0, 0, 0, 20, 0, 0, 2, 0],
        &DataDirection::Out(out),
    );
    assert_good(&write, "WRITE(10)");
    assert_eq!(
        write.transferred as usize,
        2 * BLOCK,
        "WRITE(10) of 2 blocks"
    );
    let read = adapter.execute(
        0,
        &[0x28, 0, 0, 0, 0, 20, 0, 0, 2, 0],
        &DataDirection::In(8 * BLOCK),
    );
    assert_good(&read, "READ(10)");
    assert_eq!(read.transferred as usize, 2 * BLOCK, "READ(10) of 2 blocks");
    assert_eq!(read.data, data);
    // Block 22 was not written: the bytes past the transfer were not taken.
    assert_eq!(adapter.read_ok(0, 22, 1, BLOCK), vec![0; BLOCK]);
    let inquiry = adapter.execute(0, &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(96));
    assert_good(&inquiry, "INQUIRY");
    assert_eq!(
        inquiry.transferred, 36,
        "standard INQUIRY, allocation length 36"
    );
    assert_eq!(inquiry.data.len(), 36);
    let ready = adapter.execute(0, &[0, 0, 0, 0, 0, 0], &DataDirection::None);
    assert_good(&ready, "TEST UNIT READY");
    assert_eq!(ready.transferred, 0, "TEST UNIT READY");
    adapter.finish_clean();
}
