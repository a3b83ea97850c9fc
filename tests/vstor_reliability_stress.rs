//! Concurrent stress of the real `vstor.sys` under storemu.
//!
//! Several threads submit random READ(10/16), WRITE(10/16), UNMAP, WRITE
//! SAME(16) and SYNCHRONIZE CACHE(10) SRBs to several LUNs at once, while a
//! control thread interleaves `HwResetBus`, Stop / Restart (with the I/O
//! drained first, as Storport pauses its queues) and `ScsiSetRunningConfig`
//! toggling `ReadOnly` under running I/O.
//!
//! Each thread owns a private range of blocks on every LUN and keeps a model
//! of what each of its blocks must hold (a block naming its LUN, LBA and a
//! generation; a WRITE SAME pattern; or zeros), so every READ is verified
//! block by block. Concurrent overlapping writes would interleave at 8-byte
//! granularity (`src/ramdisk.rs`), which SCSI permits and which no model of a
//! single block could predict: private ranges keep every expectation exact.
//!
//! The run must end with zero lost or duplicated completions (every SRB
//! returns exactly once; the port reports a second completion or a timeout
//! as findings), zero data mismatches and zero findings.
//!
//! Every run goes through storemu's `HwStartIo` schedule (`--seed`): each
//! `HwStartIo` runs at either end of the IRQL range a virtual miniport gets,
//! and some `PASSIVE_LEVEL` calls are preempted by a `DISPATCH_LEVEL` request
//! on their processor, so a lock that does not raise IRQL hangs the run.
//!
//! Short by default (two schedule seeds, bounded in SRBs and time for CI).
//! Longer runs: `VSTOR_STRESS_SRBS=<per thread>`,
//! `VSTOR_STRESS_SECONDS=<limit for all runs>` and
//! `VSTOR_STRESS_SCHEDULES=<seeds, one run each>`, or `cargo make stress`
//! (20 seeds).

mod common;

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    Adapter, CONTROL_SUCCESS, SCSI_CHECK_CONDITION, SRB_SUCCESS, WRITE_PROTECTED,
    assert_check_condition, block, global,
};
use storport_emu::port::{DataDirection, PoolConfig, PortError, PortOptions, SrbResult};
use storport_emu::registry::RegValue;

/// Worker threads submitting I/O.
const THREADS: usize = 4;
/// LUNs of the adapter.
const LUNS: u8 = 3;
/// Size of each disk.
const DISK_MIB: u32 = 1;
/// Block size.
const BLOCK_BYTES: usize = 512;
/// Most blocks one request moves.
const MAX_BLOCKS: u64 = 16;
/// SRBs per worker thread in the short (CI) mode.
const SHORT_SRBS_PER_THREAD: u64 = 5000;
/// Time limit of the short mode, shared by its runs.
const SHORT_SECONDS: u64 = 20;
/// Runs of the short mode, one per seed of storemu's `HwStartIo` IRQL and
/// preemption schedule (`--seed`).
const SHORT_SCHEDULES: u64 = 2;

/// What one of a thread's blocks must read back as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    /// Zeros: never written, unmapped, or WRITE SAME of a zero block.
    Zero,
    /// `block(lun, lba, generation)` of this very LBA.
    Own(u32),
    /// The WRITE SAME pattern `block(lun, source_lba, generation)`.
    Same { source_lba: u64, generation: u32 },
}

impl Expected {
    fn bytes(self, lun: u8, lba: u64) -> Vec<u8> {
        match self {
            Self::Zero => vec![0; BLOCK_BYTES],
            Self::Own(generation) => block(BLOCK_BYTES, lun, lba, generation),
            Self::Same {
                source_lba,
                generation,
            } => block(BLOCK_BYTES, lun, source_lba, generation),
        }
    }
}

/// xorshift64*: a small deterministic generator, seeded per thread.
struct Rng(u64);

impl Rng {
    const fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    const fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Counters every thread adds to.
#[derive(Default)]
struct Totals {
    srbs: AtomicU64,
    completions: AtomicU64,
    bytes_verified: AtomicU64,
    blocks_verified: AtomicU64,
    writes_refused_read_only: AtomicU64,
    unit_attentions: AtomicU64,
    controls: AtomicU64,
}

/// Everything the workers share.
struct Shared {
    adapter: Adapter,
    /// Workers hold it shared per SRB; Stop / Restart hold it exclusively.
    queue: RwLock<()>,
    read_only: AtomicBool,
    totals: Totals,
    stop: AtomicBool,
}

/// One worker: its blocks, their model and its generator.
struct Worker<'a> {
    shared: &'a Shared,
    index: usize,
    first_lba: u64,
    blocks: u64,
    model: Vec<Vec<Expected>>,
    rng: Rng,
    generation: u32,
}

impl Worker<'_> {
    /// Sends `cdb` and, as an initiator does, sends it again when it ended in the UNIT
    /// ATTENTION a bus reset of the control thread leaves (29h/02h): that command did not run.
    fn submit(&self, lun: u8, cdb: &[u8], direction: &DataDirection) -> SrbResult {
        loop {
            let result = self.submit_once(lun, cdb, direction);
            let attention = result.scsi_status == SCSI_CHECK_CONDITION
                && result.sense.get(2).map(|key| key & 0x0F) == Some(0x06);
            if !attention {
                return result;
            }
            assert_check_condition(&result, (0x06, 0x29, 0x02), "after HwResetBus");
            self.shared
                .totals
                .unit_attentions
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn submit_once(&self, lun: u8, cdb: &[u8], direction: &DataDirection) -> SrbResult {
        let _queue = self.shared.queue.read().expect("queue lock");
        self.shared.totals.srbs.fetch_add(1, Ordering::Relaxed);
        let result = self
            .shared
            .adapter
            .port
            .execute((0, 0, lun), cdb, direction)
            .unwrap_or_else(|error: PortError| {
                panic!(
                    "thread {}: CDB {cdb:02x?} to LUN {lun}: {error}",
                    self.index
                )
            });
        assert_ne!(
            result.srb_status, 0,
            "thread {}: CDB {cdb:02x?} to LUN {lun} was never completed",
            self.index
        );
        self.shared
            .totals
            .completions
            .fetch_add(1, Ordering::Relaxed);
        result
    }

    /// A random range inside this thread's blocks: (LBA, count).
    fn range(&mut self) -> (u64, u64) {
        let count = 1 + self.rng.below(MAX_BLOCKS.min(self.blocks));
        let start = self.first_lba + self.rng.below(self.blocks - count + 1);
        (start, count)
    }

    fn model_mut(&mut self, lun: u8, lba: u64) -> &mut Expected {
        &mut self.model[usize::from(lun)][usize::try_from(lba - self.first_lba).expect("small")]
    }

    fn next_generation(&mut self) -> u32 {
        self.generation += 1;
        (u32::try_from(self.index).expect("few threads") << 24) | self.generation
    }

    /// A write-type command succeeded, or failed only because the disks are
    /// read-only right now (the model then stays as it was).
    fn wrote(&self, result: &SrbResult, what: &str) -> bool {
        if result.scsi_status == SCSI_CHECK_CONDITION {
            assert_check_condition(result, WRITE_PROTECTED, what);
            self.shared
                .totals
                .writes_refused_read_only
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        assert_eq!(result.status(), SRB_SUCCESS, "{what}: {result:?}");
        true
    }

    fn write(&mut self, lun: u8, sixteen: bool) {
        let (lba, count) = self.range();
        let generation = self.next_generation();
        let data: Vec<u8> = (lba..lba + count)
            .flat_map(|at| block(BLOCK_BYTES, lun, at, generation))
            .collect();
        let cdb = rw_cdb(if sixteen { 0x8A } else { 0x2A }, lba, count);
        let result = self.submit(lun, &cdb, &DataDirection::Out(data));
        if self.wrote(&result, "WRITE") {
            for at in lba..lba + count {
                *self.model_mut(lun, at) = Expected::Own(generation);
            }
        }
    }

    fn read(&mut self, lun: u8, sixteen: bool) {
        let (lba, count) = self.range();
        self.verify(lun, lba, count, sixteen);
    }

    fn verify(&self, lun: u8, lba: u64, count: u64, sixteen: bool) {
        let cdb = rw_cdb(if sixteen { 0x88 } else { 0x28 }, lba, count);
        let len = usize::try_from(count).expect("small") * BLOCK_BYTES;
        let result = self.submit(lun, &cdb, &DataDirection::In(len));
        assert_eq!(
            (result.status(), result.data.len()),
            (SRB_SUCCESS, len),
            "READ of {count} block(s) at LBA {lba} of LUN {lun}: {result:?}"
        );
        for (at, got) in (lba..).zip(result.data.chunks_exact(BLOCK_BYTES)) {
            let expected =
                self.model[usize::from(lun)][usize::try_from(at - self.first_lba).expect("small")];
            assert!(
                got == expected.bytes(lun, at).as_slice(),
                "thread {}: LUN {lun} LBA {at} should hold {expected:?}; it holds {:02x?}",
                self.index,
                &got[..32]
            );
        }
        self.shared
            .totals
            .bytes_verified
            .fetch_add(len as u64, Ordering::Relaxed);
        self.shared
            .totals
            .blocks_verified
            .fetch_add(count, Ordering::Relaxed);
    }

    fn unmap(&mut self, lun: u8) {
        let (lba, count) = self.range();
        let mut list = vec![0_u8; 24];
        list[0..2].copy_from_slice(&22_u16.to_be_bytes());
        list[2..4].copy_from_slice(&16_u16.to_be_bytes());
        list[8..16].copy_from_slice(&lba.to_be_bytes());
        list[16..20].copy_from_slice(&u32::try_from(count).expect("small").to_be_bytes());
        let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
        let result = self.submit(lun, &cdb, &DataDirection::Out(list));
        if self.wrote(&result, "UNMAP") {
            for at in lba..lba + count {
                *self.model_mut(lun, at) = Expected::Zero;
            }
        }
    }

    fn write_same(&mut self, lun: u8) {
        let (lba, count) = self.range();
        let zero = self.rng.below(4) == 0;
        let generation = self.next_generation();
        let pattern = if zero {
            vec![0; BLOCK_BYTES]
        } else {
            block(BLOCK_BYTES, lun, lba, generation)
        };
        let mut cdb = [0_u8; 16];
        cdb[0] = 0x93;
        cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        cdb[10..14].copy_from_slice(&u32::try_from(count).expect("small").to_be_bytes());
        let result = self.submit(lun, &cdb, &DataDirection::Out(pattern));
        if self.wrote(&result, "WRITE SAME(16)") {
            let expected = if zero {
                Expected::Zero
            } else {
                Expected::Same {
                    source_lba: lba,
                    generation,
                }
            };
            for at in lba..lba + count {
                *self.model_mut(lun, at) = expected;
            }
        }
    }

    fn synchronize_cache(&self, lun: u8) {
        let result = self.submit(
            lun,
            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &DataDirection::None,
        );
        assert_eq!(
            (result.status(), result.scsi_status),
            (SRB_SUCCESS, 0),
            "SYNCHRONIZE CACHE(10): {result:?}"
        );
    }

    fn run(mut self, srbs: u64, deadline: Instant) -> Self {
        for _ in 0..srbs {
            if Instant::now() >= deadline || self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let lun = u8::try_from(self.rng.below(u64::from(LUNS))).expect("few LUNs");
            match self.rng.below(20) {
                0..=6 => {
                    let sixteen = self.rng.below(2) == 0;
                    self.write(lun, sixteen);
                }
                7..=13 => {
                    let sixteen = self.rng.below(2) == 0;
                    self.read(lun, sixteen);
                }
                14..=15 => self.unmap(lun),
                16..=18 => self.write_same(lun),
                _ => self.synchronize_cache(lun),
            }
        }
        self
    }

    /// Reads back every block of this thread on every LUN.
    fn verify_all(&self) {
        for lun in 0..LUNS {
            let mut lba = self.first_lba;
            while lba < self.first_lba + self.blocks {
                let count = MAX_BLOCKS.min(self.first_lba + self.blocks - lba);
                self.verify(lun, lba, count, false);
                lba += count;
            }
        }
    }
}

/// A READ/WRITE(10) or (16) CDB.
fn rw_cdb(opcode: u8, lba: u64, count: u64) -> Vec<u8> {
    if opcode >= 0x80 {
        let mut cdb = vec![0_u8; 16];
        cdb[0] = opcode;
        cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        cdb[10..14].copy_from_slice(&u32::try_from(count).expect("small").to_be_bytes());
        cdb
    } else {
        common::rw10(
            opcode,
            u32::try_from(lba).expect("small"),
            u16::try_from(count).expect("small"),
        )
        .to_vec()
    }
}

/// Resets, Stop / Restart and `ReadOnly` flips until the workers are done.
fn control(shared: &Shared, seed: u64) {
    let mut rng = Rng(seed);
    let port = &shared.adapter.port;
    let key = shared.adapter.global_key();
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(2 + rng.below(8)));
        // Read-only spells last one interval: most writes must land.
        let choice = if shared.read_only.load(Ordering::Relaxed) {
            2
        } else {
            rng.below(4)
        };
        match choice {
            0 | 3 => {
                let _queue = shared.queue.read().expect("queue lock");
                assert_eq!(port.reset_bus(0), Ok(true), "HwResetBus");
            }
            1 => {
                let _drained = shared.queue.write().expect("queue lock");
                assert_eq!(port.stop(), Ok(CONTROL_SUCCESS), "ScsiStopAdapter");
                assert_eq!(port.restart(), Ok(CONTROL_SUCCESS), "ScsiRestartAdapter");
            }
            _ => {
                let read_only = !shared.read_only.load(Ordering::Relaxed);
                shared
                    .adapter
                    .set_value(&key, "ReadOnly", RegValue::dword(u32::from(read_only)));
                let _queue = shared.queue.read().expect("queue lock");
                assert_eq!(
                    port.set_running_config(),
                    Ok(CONTROL_SUCCESS),
                    "ScsiSetRunningConfig"
                );
                shared.read_only.store(read_only, Ordering::Relaxed);
            }
        }
        shared.totals.controls.fetch_add(1, Ordering::Relaxed);
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| {
        panic!("{name}={text} is not a whole number; set it to a count such as 100000 or unset it")
    }))
}

#[test]
fn concurrent_random_io_with_resets_stops_and_running_config_keeps_every_block() {
    let srbs_per_thread = env_u64("VSTOR_STRESS_SRBS").unwrap_or(SHORT_SRBS_PER_THREAD);
    let seconds = env_u64("VSTOR_STRESS_SECONDS").unwrap_or(SHORT_SECONDS);
    let seed = env_u64("VSTOR_STRESS_SEED").unwrap_or(0x5EED_0F57_AE55);
    let schedules = env_u64("VSTOR_STRESS_SCHEDULES")
        .unwrap_or(SHORT_SCHEDULES)
        .max(1);
    // Each run gets its share of the time limit.
    let seconds_per_run = (seconds / schedules).max(1);
    for schedule in 1..=schedules {
        stress(srbs_per_thread, seconds_per_run, seed ^ schedule, schedule);
    }
}

/// The adapter of a run: `LUNS` disks, under storemu's `HwStartIo`
/// schedule seeded with `schedule`, with special pool.
fn start(schedule: u64) -> Adapter {
    Adapter::start_with(
        PortOptions {
            seed: Some(schedule),
            pool: PoolConfig::special_pool(),
            ..PortOptions::default()
        },
        &[
            global("DiskCount", RegValue::dword(u32::from(LUNS))),
            global("DiskSizeMiB", RegValue::dword(DISK_MIB)),
            global("SectorSize", RegValue::dword(512)),
            global("ReadOnly", RegValue::dword(0)),
        ],
    )
}

/// One stress run with storemu's `HwStartIo` schedule seeded with
/// `schedule`: each `HwStartIo` runs at `DISPATCH_LEVEL` or `PASSIVE_LEVEL`
/// and some are preempted by a `DISPATCH_LEVEL` request on their processor.
fn stress(srbs_per_thread: u64, seconds: u64, seed: u64, schedule: u64) {
    let adapter = start(schedule);
    let disk_blocks = (u64::from(DISK_MIB) << 20) / BLOCK_BYTES as u64;
    assert_eq!(adapter.capacity(0), (disk_blocks - 1, 512));
    let shared = Shared {
        adapter,
        queue: RwLock::new(()),
        read_only: AtomicBool::new(false),
        totals: Totals::default(),
        stop: AtomicBool::new(false),
    };
    let per_thread = disk_blocks / THREADS as u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let finished = std::thread::scope(|scope| {
        let control_thread = scope.spawn(|| control(&shared, seed ^ 0xC0));
        let handles: Vec<_> = (0..THREADS)
            .map(|index| {
                let shared = &shared;
                scope.spawn(move || {
                    let worker = Worker {
                        shared,
                        index,
                        first_lba: per_thread * index as u64,
                        blocks: per_thread,
                        model: vec![
                            vec![
                                Expected::Zero;
                                usize::try_from(per_thread).expect("small")
                            ];
                            usize::from(LUNS)
                        ],
                        rng: Rng(seed
                            .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                            | 1),
                        generation: 0,
                    };
                    worker.run(srbs_per_thread, deadline)
                })
            })
            .collect();
        let workers: Vec<_> = handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|panic| {
                    shared.stop.store(true, Ordering::Relaxed);
                    std::panic::resume_unwind(panic)
                })
            })
            .collect();
        shared.stop.store(true, Ordering::Relaxed);
        control_thread.join().expect("the control thread ends");
        // Writable again, then every block of every thread is read back.
        shared
            .adapter
            .set_value(&shared.adapter.global_key(), "ReadOnly", RegValue::dword(0));
        assert_eq!(
            shared.adapter.port.set_running_config(),
            Ok(CONTROL_SUCCESS)
        );
        for worker in &workers {
            worker.verify_all();
        }
        workers.len()
    });
    assert_eq!(finished, THREADS);
    let totals = &shared.totals;
    let srbs = totals.srbs.load(Ordering::Relaxed);
    let completions = totals.completions.load(Ordering::Relaxed);
    println!(
        "stress (HwStartIo schedule seed {schedule}): {THREADS} threads, {LUNS} LUNs, {srbs} SRBs in {:.1} s, {completions} completions \
         (0 lost, 0 duplicated), {} blocks ({} bytes) verified, {} writes refused while read-only, \
         {} unit attentions after resets retried, \
         {} resets / stop-restarts / running-config changes interleaved",
        started.elapsed().as_secs_f64(),
        totals.blocks_verified.load(Ordering::Relaxed),
        totals.bytes_verified.load(Ordering::Relaxed),
        totals.writes_refused_read_only.load(Ordering::Relaxed),
        totals.unit_attentions.load(Ordering::Relaxed),
        totals.controls.load(Ordering::Relaxed),
    );
    assert_eq!(srbs, completions, "every SRB completed exactly once");
    assert!(
        totals.controls.load(Ordering::Relaxed) > 0,
        "control operations ran"
    );
    assert!(
        srbs >= (THREADS as u64) * 100,
        "the run did meaningful work in its time limit"
    );
    shared.adapter.finish_clean();
}
