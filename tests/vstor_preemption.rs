//! vstor under storemu's preemption model (`--seed`): HwStartIo runs at
//! either end of the IRQL range HW_STARTIO gives a virtual miniport, and a
//! call below DISPATCH_LEVEL may be preempted by a DISPATCH_LEVEL request on
//! its processor.
//!
//! vstor's locks are kernel spin locks that raise the IRQL to DISPATCH_LEVEL
//! for the hold (`storport::spin_lock`: each RAM disk chunk's
//! `EX_SPIN_LOCK`, the disk's persistent-reservation `KSPIN_LOCK`), so a
//! call is never preempted while it holds one, and the preempting request
//! never spins on a lock its own processor holds: every seed runs clean, and
//! storemu's spin-lock checks find nothing either.

#![expect(
    clippy::doc_markdown,
    reason = "IRQL and DDI names are written as Microsoft's documentation writes them"
)]

mod common;

use std::time::Duration;

use common::{Adapter, assert_two_disks_run_clean, global};
use storport_emu::cli::RunArgs;
use storport_emu::port::state::Event;
use storport_emu::port::{DataDirection, PoolConfig, PortError, PortOptions};
use storport_emu::registry::RegValue;

/// The seeds of the mixed workload (2 is the one that found the hang of the
/// interlocked chunk lock vstor had before).
const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
/// Rounds of the mixed workload.
const ROUNDS: u32 = 24;
/// The first LBA of the disk's second 1 MiB chunk (512-byte blocks).
const CHUNK_BOUNDARY_LBA: u32 = 2048;

/// READ(10) or WRITE(10) of `blocks` blocks at `lba`.
fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut cdb = [opcode, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// PERSISTENT RESERVE OUT, REGISTER AND IGNORE EXISTING KEY (SPC-4 service
/// action 6) with `key`, and its 24-byte parameter list.
fn register(key: u64) -> ([u8; 10], Vec<u8>) {
    let cdb = [0x5F, 0x06, 0, 0, 0, 0, 0, 0, 24, 0];
    let mut list = vec![0_u8; 24];
    list[8..16].copy_from_slice(&key.to_be_bytes());
    (cdb, list)
}

/// PERSISTENT RESERVE IN, READ KEYS, allocation length 64.
const READ_KEYS: [u8; 10] = [0x5E, 0x00, 0, 0, 0, 0, 0, 0, 64, 0];

/// One request at a time (so the N-th HwStartIo call, and with it the
/// seed's plan, is the same every run): per round a 4 KiB WRITE(10) and its
/// READ(10), an 8 KiB WRITE(10) and READ(10) across the disk's chunk
/// boundary (two chunk locks), and a PERSISTENT RESERVE OUT and IN (the
/// reservation lock). Stops at the first request the port could not run.
/// Returns the adapter, the error that stopped it, and how many HwStartIo
/// calls were preempted.
fn mixed_workload(seed: u64) -> (Adapter, Option<PortError>, usize) {
    let adapter = Adapter::start_with(
        PortOptions {
            seed: Some(seed),
            dpc_watchdog: Duration::from_millis(200),
            pool: PoolConfig::special_pool(),
            ..PortOptions::default()
        },
        &[global("DiskSizeMiB", RegValue::dword(2))],
    );
    let port = &adapter.port;
    let mut stopped = None;
    for round in 0..ROUNDS {
        let byte = u8::try_from(round % 251).unwrap_or(0) + 1;
        let own = vec![byte; 4096];
        let across = vec![byte ^ 0xFF; 8192];
        let lba = round * 8;
        let (pr_out, list) = register(u64::from(round) + 1);
        let steps: [(&[u8], DataDirection); 6] = [
            (&rw10(0x2A, lba, 8), DataDirection::Out(own.clone())),
            (&rw10(0x28, lba, 8), DataDirection::In(4096)),
            (
                &rw10(0x2A, CHUNK_BOUNDARY_LBA - 8, 16),
                DataDirection::Out(across.clone()),
            ),
            (
                &rw10(0x28, CHUNK_BOUNDARY_LBA - 8, 16),
                DataDirection::In(8192),
            ),
            (&pr_out, DataDirection::Out(list)),
            (&READ_KEYS, DataDirection::In(64)),
        ];
        for (index, (cdb, direction)) in steps.iter().enumerate() {
            match port.execute((0, 0, 0), cdb, direction) {
                Ok(result) => {
                    assert_eq!(
                        (result.srb_status, result.scsi_status),
                        (0x01, 0x00),
                        "seed {seed} round {round} step {index}: GOOD"
                    );
                    match index {
                        1 => assert_eq!(result.data, own, "seed {seed} round {round}"),
                        3 => assert_eq!(result.data, across, "seed {seed} round {round}"),
                        // READ KEYS: one port, so one key, the one just registered.
                        5 => assert_eq!(
                            result.data.get(8..16),
                            Some(&(u64::from(round) + 1).to_be_bytes()[..]),
                            "seed {seed} round {round}"
                        ),
                        _ => {}
                    }
                }
                Err(error) => {
                    stopped = Some(error);
                    break;
                }
            }
        }
        if stopped.is_some() {
            break;
        }
    }
    let preemptions = port
        .events()
        .iter()
        .filter(
            |event| matches!(event, Event::Phase(text) if text.starts_with("HwStartIo preempted")),
        )
        .count();
    (adapter, stopped, preemptions)
}

#[test]
fn a_mixed_workload_runs_clean_under_eight_seeds() {
    for seed in SEEDS {
        let (adapter, stopped, preemptions) = mixed_workload(seed);
        assert_eq!(adapter.findings(), vec![], "seed {seed}");
        assert!(stopped.is_none(), "seed {seed}: {stopped:?}");
        // The model did preempt: a clean run is not one that never tried.
        assert!(
            preemptions > 0,
            "seed {seed}: no HwStartIo call was preempted"
        );
    }
}

#[test]
fn storemu_run_with_a_seed_is_clean() {
    for seed in [1, 2, 3] {
        let args = RunArgs {
            seed: Some(seed),
            ..RunArgs::default()
        };
        let report = assert_two_disks_run_clean(args, &format!("seed {seed}"));
        assert_eq!(report.seed, Some(seed));
    }
}

#[test]
fn without_a_seed_the_same_requests_run_clean() {
    let adapter = Adapter::start(&[]);
    for i in 0..64_u32 {
        let result = adapter
            .port
            .execute(
                (0, 0, 0),
                &rw10(0x2A, i * 8, 8),
                &DataDirection::Out(vec![7; 4096]),
            )
            .expect("the write runs");
        assert_eq!(result.status(), 0x01, "SRB_STATUS_SUCCESS");
    }
    assert_eq!(adapter.port.findings(), vec![]);
}
