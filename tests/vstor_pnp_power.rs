//! The real `vstor.sys` under `storemu run --lifecycle`: every Plug and
//! Play and power sequence storemu defines, with the findings vstor has
//! today.
//!
//! Today vstor's find-adapter builds a new adapter over the live one when
//! Storport starts the adapter again after a Plug and Play stop (storemu's
//! conservative reading: `HwFindAdapter` on the same, intact device
//! extension): the old disks are cut off from the extension
//! (`LiveStateOverwritten`), the data written before the stop is gone
//! (`LifecycleDataLoss`) and the old disks' pool leaks (`PoolLeak`). Its
//! PNP and POWER requests are also completed with `ScsiStatus` and
//! `DataTransferLength` written (`NonScsiSrbWrite`, see
//! `vstor_srb_layouts.rs`). A vstor that keeps its adapter when
//! find-adapter runs again, and completes non-SCSI requests by `SrbStatus`
//! alone, turns all of these to clean.

mod common;

use common::{readable_sys_path, root};
use storport_emu::cli::{self, RunArgs, RunOptions, lifecycle};
use storport_emu::port::{Finding, PnpStartReading};

// Written out from srb.h, not taken from the driver or the port.
/// `SRB_FUNCTION_POWER`, `SRB_FUNCTION_PNP`.
const POWER: u64 = 0x24;
const PNP: u64 = 0x25;
/// `StorRemoveDevice`, `StorQueryCapabilities`, `StorSurpriseRemoval`.
const REMOVE: u64 = 0x02;
const QUERY_CAPABILITIES: u64 = 0x09;
const SURPRISE: u64 = 0x17;
/// `StorPowerDeviceD0`, `StorPowerDeviceD3`.
const D0: u64 = 1;
const D3: u64 = 4;
/// Offsets in the special layouts: 4 (`PnPSubFunction` / `SrbPowerFlags`),
/// 0x10 (`DataTransferLength`).
const OFFSET_4: u64 = 0x04;
const LENGTH: u64 = 0x10;

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

/// Rule, routine and the parameters that do not depend on addresses, in
/// order; the `PoolLeak` findings of unload (ordered by address) last,
/// ordered by size.
fn summary(findings: &[Finding]) -> Vec<(&'static str, String, Vec<u64>)> {
    let mut all: Vec<(&'static str, String, Vec<u64>)> = findings
        .iter()
        .map(|f| {
            let params = match f.rule.name() {
                // count, bytes (the third is the first block's address)
                "LiveStateOverwritten" => f.params[..2].to_vec(),
                // 0x62, address, size, tag: size and tag
                "PoolLeak" => f.params[2..].to_vec(),
                _ => f.params.clone(),
            };
            (f.rule.name(), f.routine.clone(), params)
        })
        .collect();
    let leaks = all
        .iter()
        .position(|f| f.0 == "PoolLeak")
        .unwrap_or(all.len());
    all[leaks..].sort();
    all
}

fn write(params: &[u64]) -> (&'static str, String, Vec<u64>) {
    ("NonScsiSrbWrite", "HwStartIo".to_owned(), params.to_vec())
}

fn pnp(action: u64) -> (&'static str, String, Vec<u64>) {
    write(&[PNP, action, OFFSET_4, LENGTH])
}

fn power(state: u64) -> (&'static str, String, Vec<u64>) {
    write(&[POWER, state, LENGTH])
}

/// `vstD`, the pool tag of vstor's disks; `RsAl`, the Rust allocator's.
const VSTD: u64 = u32::from_le_bytes(*b"vstD") as u64;
const RSAL: u64 = u32::from_le_bytes(*b"RsAl") as u64;

#[test]
fn pnp_stop_and_start_power_cycle_and_surprise_removal() {
    let report = run(
        "start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove",
        PnpStartReading::FindAdapterAgain,
    );
    assert_eq!(
        summary(&report.findings),
        vec![
            pnp(QUERY_CAPABILITIES),
            // The second find-adapter: the old adapter's disk table (240
            // bytes), its chunk table (48) and its 1 MiB medium.
            (
                "LiveStateOverwritten",
                "HwFindAdapter".to_owned(),
                vec![3, 1_048_864]
            ),
            (
                "LifecycleDataLoss",
                "HwStartIo".to_owned(),
                vec![0, 0, 0, 1]
            ),
            power(D3),
            power(D0),
            pnp(SURPRISE),
            pnp(REMOVE),
            ("PoolLeak", "port".to_owned(), vec![48, RSAL]),
            ("PoolLeak", "port".to_owned(), vec![240, RSAL]),
            ("PoolLeak", "port".to_owned(), vec![1 << 20, VSTD]),
        ],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.outcome, "bugcheck", "PoolLeak is bug check 0xC4");
}

#[test]
fn pnp_start_read_as_a_restart_keeps_vstor_data() {
    let report = run(
        "start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove",
        PnpStartReading::RestartAdapter,
    );
    assert_eq!(
        summary(&report.findings),
        vec![
            pnp(QUERY_CAPABILITIES),
            power(D3),
            power(D0),
            pnp(SURPRISE),
            pnp(REMOVE),
        ],
        "{:#?}",
        report.findings
    );
}

#[test]
fn hibernation_a_cancelled_removal_and_an_orderly_removal() {
    let report = run(
        "start,io,hibernate,d0,io,query-remove,cancel-remove,io,remove",
        PnpStartReading::FindAdapterAgain,
    );
    assert_eq!(
        summary(&report.findings),
        vec![pnp(QUERY_CAPABILITIES), power(D3), power(D0), pnp(REMOVE)],
        "{:#?}",
        report.findings
    );
}

#[test]
fn a_sleep_cycle_then_the_default_stop_and_removal() {
    let report = run("start,io,d3,d0,io", PnpStartReading::FindAdapterAgain);
    assert_eq!(
        summary(&report.findings),
        vec![pnp(QUERY_CAPABILITIES), power(D3), power(D0)],
        "{:#?}",
        report.findings
    );
    assert!(
        report.luns.iter().all(|lun| lun.write_verified),
        "{:?}",
        report.luns
    );
}
