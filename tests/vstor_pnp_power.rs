//! The real `vstor.sys` under `storemu run --lifecycle`: every Plug and
//! Play and power sequence storemu defines runs clean, and a Plug and Play
//! stop and start driven step by step keeps the disks.
//!
//! When Storport starts the adapter again after a Plug and Play stop,
//! storemu's conservative reading runs `HwFindAdapter` on the same, intact
//! device extension. vstor keeps its adapter then (the disks and their data
//! survive, `ReadOnly` is re-read and `StartCount` counts the start), so no
//! sequence loses data (`LifecycleDataLoss`), cuts pool off from the
//! extension (`LiveStateOverwritten`) or leaks it (`PoolLeak`); its PNP and
//! POWER requests (`StorQueryCapabilities`, D3, D0, `StorSurpriseRemoval`,
//! `StorRemoveDevice`) are completed by `SrbStatus` alone
//! (`NonScsiSrbWrite`, see `vstor_srb_layouts.rs`).

mod common;

use common::{
    Adapter, WRITE_PROTECTED, assert_check_condition, block, global, readable_sys_path, root,
};
use storport_emu::cli::{self, RunArgs, RunOptions, lifecycle};
use storport_emu::port::PnpStartReading;
use storport_emu::registry::RegValue;

fn run(sequence: &str, reading: PnpStartReading) -> cli::RunReport {
    let args = RunArgs {
        driver: readable_sys_path(),
        inf: Some(root().join("inf").join("vstor.inf")),
        set: vec!["DiskSizeMiB=dword:1".to_owned()],
        json: true,
        pool: storport_emu::port::PoolConfig::special_pool(),
        ..RunArgs::default()
    };
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let options = RunOptions {
        lifecycle: Some(lifecycle::parse(sequence).expect("the sequence parses")),
        pnp_start: reading,
        ..RunOptions::default()
    };
    let report = cli::run_with_options(&args, &sets, &[], &options);
    assert_eq!(report.load_error, None, "vstor.sys loads");
    report
}

#[test]
fn pnp_stop_and_start_power_cycle_and_surprise_removal() {
    let report = run(
        "start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove",
        PnpStartReading::FindAdapterAgain,
    );
    // The second find-adapter keeps the adapter: the data written before
    // the stop reads back, and nothing leaks.
    assert_eq!(report.findings, vec![], "{:#?}", report.findings);
    assert_eq!(report.outcome, "clean");
    assert_eq!(
        report.dbgprint,
        vec![
            "vstor: adapter started (start 1) with 1 disk(s)".to_owned(),
            "vstor: adapter started again (start 2) with its 1 disk(s) and their data".to_owned(),
        ]
    );
}

#[test]
fn two_pnp_stops_and_starts_then_an_orderly_removal() {
    let report = run(
        "start,io,pnp-stop,pnp-start,io,pnp-stop,pnp-start,io,remove",
        PnpStartReading::FindAdapterAgain,
    );
    assert_eq!(report.findings, vec![], "{:#?}", report.findings);
    assert_eq!(
        report.dbgprint,
        vec![
            "vstor: adapter started (start 1) with 1 disk(s)".to_owned(),
            "vstor: adapter started again (start 2) with its 1 disk(s) and their data".to_owned(),
            "vstor: adapter started again (start 3) with its 1 disk(s) and their data".to_owned(),
        ]
    );
}

#[test]
fn pnp_start_read_as_a_restart_keeps_vstor_data() {
    let report = run(
        "start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove",
        PnpStartReading::RestartAdapter,
    );
    assert_eq!(report.findings, vec![], "{:#?}", report.findings);
}

#[test]
fn hibernation_a_cancelled_removal_and_an_orderly_removal() {
    let report = run(
        "start,io,hibernate,d0,io,query-remove,cancel-remove,io,remove",
        PnpStartReading::FindAdapterAgain,
    );
    assert_eq!(report.findings, vec![], "{:#?}", report.findings);
}

#[test]
fn a_sleep_cycle_then_the_default_stop_and_removal() {
    let report = run("start,io,d3,d0,io", PnpStartReading::FindAdapterAgain);
    assert_eq!(report.findings, vec![], "{:#?}", report.findings);
    assert!(
        report.luns.iter().all(|lun| lun.write_verified),
        "{:?}",
        report.luns
    );
}

/// One Plug and Play stop and start after another, driven through the port
/// with the registry changed in between: what the second find-adapter keeps,
/// re-reads and reports.
#[test]
fn a_pnp_start_keeps_the_disks_rereads_read_only_and_counts_the_start() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizeMiB", RegValue::dword(1)),
    ]);
    for lun in 0..2 {
        adapter.write_ok(lun, 7, block(512, lun, 7, 1), 512);
    }
    let disk_bytes = adapter.pool_bytes(*b"vstD");
    let blocks = adapter.pool_blocks();
    let limits = |adapter: &Adapter| {
        let config = adapter.port.config().expect("a started adapter");
        (
            config.MaximumTransferLength,
            config.NumberOfPhysicalBreaks,
            config.NumberOfBuses,
            config.MaximumNumberOfTargets,
            config.MaximumNumberOfLogicalUnits,
        )
    };
    let declared = limits(&adapter);

    // ReadOnly may change at a start; DiskCount would reshape the disks.
    let key = adapter.adapter_key();
    adapter.set_value(&key, "ReadOnly", RegValue::dword(1));
    adapter.set_value(&adapter.global_key(), "DiskCount", RegValue::dword(3));
    assert_eq!(adapter.port.stop(), Ok(0));
    adapter
        .port
        .pnp_start(PnpStartReading::FindAdapterAgain)
        .expect("the adapter starts again");
    assert_eq!(adapter.report_luns(), vec![0, 1 << 48], "still two disks");
    for lun in 0..2 {
        assert_eq!(adapter.read_ok(lun, 7, 1, 512), block(512, lun, 7, 1));
        let refused = adapter.write10(lun, 7, 1, block(512, lun, 7, 2));
        assert_check_condition(&refused, WRITE_PROTECTED, "WRITE(10) after ReadOnly=1");
    }
    assert_eq!(adapter.pool_bytes(*b"vstD"), disk_bytes, "the same media");
    assert_eq!(adapter.pool_blocks(), blocks, "nothing allocated or lost");
    assert_eq!(
        limits(&adapter),
        declared,
        "the limits declared at the first start"
    );
    assert_eq!(adapter.value(&key, "StartCount"), Some(RegValue::dword(2)));
    assert_eq!(
        adapter.value(&key, "EffectiveConfig"),
        Some(RegValue::sz(
            "DiskCount=2;DiskSizesMiB=1,1;SectorSize=512;ReadOnly=1;VendorId=VSTOR;\
             ProductId=RAM DISK;ProductRevision=0001;SerialPrefix=VST;TargetPorts=1"
        ))
    );

    // A configuration that cannot be honoured at all is reported the same
    // way, and the disks stay.
    adapter.set_value(&key, "ReadOnly", RegValue::dword(0));
    adapter.set_value(
        &adapter.global_key(),
        "DiskSizesMiB",
        RegValue::multi_sz(&["1", "1", "1", "1"]),
    );
    assert_eq!(adapter.port.stop(), Ok(0));
    adapter
        .port
        .pnp_start(PnpStartReading::FindAdapterAgain)
        .expect("the adapter starts a third time");
    for lun in 0..2 {
        assert_eq!(adapter.read_ok(lun, 7, 1, 512), block(512, lun, 7, 1));
        adapter.write_ok(lun, 8, block(512, lun, 8, 3), 512);
    }
    assert_eq!(adapter.value(&key, "StartCount"), Some(RegValue::dword(3)));
    assert_eq!(
        adapter.dbgprint(),
        vec![
            "vstor: adapter started (start 1) with 2 disk(s)".to_owned(),
            "vstor: the registry no longer describes the disks this adapter has (changed: \
             DiskCount); it keeps its 2 disk(s) and their data as they are, and the new values \
             apply when the adapter is next added."
                .to_owned(),
            "vstor: adapter started again (start 2) with its 2 disk(s) and their data".to_owned(),
            "vstor: the disk settings in the registry cannot be honoured: DiskCount is 3 but \
             DiskSizesMiB lists 4 sizes; set one size per disk or remove one of the two values. \
             The adapter keeps its 2 disk(s) and their data as they are."
                .to_owned(),
            "vstor: adapter started again (start 3) with its 2 disk(s) and their data".to_owned(),
        ]
    );
    adapter.finish_clean();
}

/// Sequences that together take every transition `--lifecycle` allows:
/// each step from each state it may follow, and the end without removal.
const EVERY_TRANSITION: [&str; 8] = [
    "start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove",
    "start,io,hibernate,d0,io,query-remove,cancel-remove,io,remove",
    "start,io,query-remove,surprise-remove",
    "start,io,query-remove,remove",
    "start,io,pnp-stop,pnp-start,remove",
    "start,io,d3,d0,pnp-stop,pnp-start,io,hibernate,d0,io",
    "start,remove",
    "start,surprise-remove",
];

#[test]
fn every_transition_keeps_the_data_under_both_readings_of_a_pnp_start() {
    for reading in [
        PnpStartReading::FindAdapterAgain,
        PnpStartReading::RestartAdapter,
    ] {
        for sequence in EVERY_TRANSITION {
            let report = run(sequence, reading);
            assert_eq!(
                report.findings,
                vec![],
                "{sequence} ({reading:?}): {:#?}",
                report.findings
            );
            let restarts = sequence.split(',').filter(|step| *step == "pnp-start");
            let mut lines = vec!["vstor: adapter started (start 1) with 1 disk(s)".to_owned()];
            if reading == PnpStartReading::FindAdapterAgain {
                lines.extend(restarts.enumerate().map(|(index, _)| {
                    format!(
                        "vstor: adapter started again (start {}) with its 1 disk(s) and their data",
                        index + 2
                    )
                }));
            }
            assert_eq!(report.dbgprint, lines, "{sequence} ({reading:?})");
        }
    }
}
