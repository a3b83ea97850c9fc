//! vstor under storemu's preemption model (`--seed`): HwStartIo runs at
//! either end of the IRQL range HW_STARTIO gives a virtual miniport, and a
//! call below DISPATCH_LEVEL may be preempted by a DISPATCH_LEVEL request on
//! its processor.
//!
//! vstor's data and reservation locks are interlocked spin locks that do not
//! raise IRQL (`storport::SharedBytes`, the persistent-reservation lock), so
//! a WRITE preempted while it holds a disk chunk's lock leaves the preempting
//! WRITE of the same chunk spinning: storemu reports PreemptedLockHolder.
//! These tests state that finding as vstor has it today; they turn into
//! checks of a clean run when the locks raise IRQL.

#![expect(
    clippy::doc_markdown,
    reason = "IRQL and DDI names are written as Microsoft's documentation writes them"
)]

mod common;

use std::time::Duration;

use common::Adapter;
use storport_emu::port::{DataDirection, PoolConfig, PortError, PortOptions};

/// Writes then reads 4 KiB at a different LBA each time, one request at a
/// time (so the N-th HwStartIo call, and with it the seed's plan, is the same
/// every run), until the port stops or `requests` were sent.
fn write_and_read_back(seed: u64, requests: u32) -> (Adapter, Option<PortError>) {
    let adapter = Adapter::start_with(
        PortOptions {
            seed: Some(seed),
            dpc_watchdog: Duration::from_millis(200),
            pool: PoolConfig::special_pool(),
            ..PortOptions::default()
        },
        &[],
    );
    for i in 0..requests {
        let lba = (i * 8).to_be_bytes();
        let mut write = [0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0];
        write[2..6].copy_from_slice(&lba);
        let pattern = vec![u8::try_from(i % 251).unwrap_or(0); 4096];
        let mut read = write;
        read[0] = 0x28;
        let result = adapter
            .port
            .execute((0, 0, 0), &write, &DataDirection::Out(pattern.clone()))
            .and_then(|_| {
                adapter
                    .port
                    .execute((0, 0, 0), &read, &DataDirection::In(4096))
            });
        match result {
            Ok(read) => assert_eq!(read.data, pattern, "request {i}: the data reads back"),
            Err(error) => return (adapter, Some(error)),
        }
    }
    (adapter, None)
}

#[test]
fn a_preempted_write_holding_a_chunk_lock_hangs_the_preempting_write() {
    let (adapter, stopped) = write_and_read_back(2, 64);
    let findings = adapter.port.findings();
    let rules: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f.rule.name(), f.routine.as_str()))
        .collect();
    assert_eq!(
        rules,
        vec![("PreemptedLockHolder", "HwStartIo")],
        "{findings:#?}"
    );
    assert_eq!(findings[0].bugcheck, Some(0x133));
    assert!(
        matches!(stopped, Some(PortError::BugCheck(_))),
        "the run stops at the hang: {stopped:?}"
    );
}

#[test]
fn without_a_seed_the_same_requests_run_clean() {
    let adapter = Adapter::start(&[]);
    for i in 0..64_u32 {
        let lba = (i * 8).to_be_bytes();
        let mut write = [0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0];
        write[2..6].copy_from_slice(&lba);
        let result = adapter
            .port
            .execute((0, 0, 0), &write, &DataDirection::Out(vec![7; 4096]))
            .expect("the write runs");
        assert_eq!(result.status(), 0x01, "SRB_STATUS_SUCCESS");
    }
    assert_eq!(adapter.port.findings(), vec![]);
}
