//! The real `vstor.sys` under `storemu run --non-scsi-srbs`: PNP and POWER
//! requests arrive in their own layouts (`SCSI_PNP_REQUEST_BLOCK`,
//! `SCSI_POWER_REQUEST_BLOCK`), and the port reports every member the
//! miniport changes that the layout does not give it (`NonScsiSrbWrite`),
//! and every dereference of a member the page tells it to ignore.
//!
//! vstor takes each request in the view of its SRB function before it reads
//! anything else: PNP and POWER requests are answered from their action,
//! power state and addressee and completed with `SrbStatus` alone, so every
//! run here is clean.

mod common;

use common::{Adapter, readable_sys_path, root};
use storport_emu::cli::{self, RunArgs, RunOptions};
use storport_emu::port::Finding;

// The numbers are written out from srb.h, not taken from the driver or the
// port.
/// `STOR_PNP_ACTION`: `StorSurpriseRemoval`.
const SURPRISE_REMOVAL: u32 = 0x17;
/// `STOR_DEVICE_POWER_STATE`: `StorPowerDeviceD0`, `StorPowerDeviceD3`.
const D0: u32 = 1;
const D3: u32 = 4;
/// `STOR_POWER_ACTION`: `StorPowerActionHibernate`.
const HIBERNATE: u32 = 3;
/// `SRB_POWER_FLAGS_ADAPTER_REQUEST`.
const SRB_POWER_FLAGS_ADAPTER_REQUEST: u8 = 0x01;

fn run(sets: &[&str], options: &RunOptions) -> cli::RunReport {
    let args = RunArgs {
        driver: readable_sys_path(),
        inf: Some(root().join("inf").join("vstor.inf")),
        set: sets.iter().map(|&set| set.to_owned()).collect(),
        json: true,
        pool: storport_emu::port::PoolConfig::special_pool(),
        ..RunArgs::default()
    };
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let report = cli::run_with_options(&args, &sets, &[], options);
    assert_eq!(report.load_error, None, "vstor.sys loads");
    report
}

/// Rule name, routine and parameters of each finding, in order.
fn summary(findings: &[Finding]) -> Vec<(&'static str, String, Vec<u64>)> {
    findings
        .iter()
        .map(|f| (f.rule.name(), f.routine.clone(), f.params.clone()))
        .collect()
}

fn non_scsi() -> RunOptions {
    RunOptions {
        non_scsi_srbs: true,
        ..RunOptions::default()
    }
}

#[test]
fn the_default_run_sends_no_non_scsi_request_and_stays_clean() {
    let report = run(&[], &RunOptions::default());
    assert_eq!(report.outcome, "clean", "{:#?}", report.findings);
}

#[test]
fn vstor_completes_pnp_and_power_requests_by_srb_status_alone() {
    let report = run(&["DiskCount=dword:2", "DiskSizeMiB=dword:1"], &non_scsi());
    // Per LUN: StorQueryCapabilities after the scan, D3 and D0, then
    // StorRemoveDevice, each in its own layout: nothing but SrbStatus
    // changes, and no ignored member is dereferenced.
    assert_eq!(summary(&report.findings), vec![], "{:#?}", report.findings);
    assert_eq!(report.outcome, "clean");
    assert_eq!(report.exit_status(), cli::EXIT_CLEAN);
    // The requests were sent (the port logs each one).
    let log = report.to_json()["log"].to_string();
    for request in [
        "SRB_FUNCTION_PNP StorQueryCapabilities to 0:0:1",
        "SRB_FUNCTION_POWER StorPowerDeviceD3",
        "SRB_FUNCTION_POWER StorPowerDeviceD0",
        "SRB_FUNCTION_PNP StorRemoveDevice to 0:0:0",
    ] {
        assert!(log.contains(request), "{request}: {log}");
    }
    // The disks still work: every LUN was probed and verified.
    assert_eq!(report.luns.len(), 2);
    assert!(report.luns.iter().all(|lun| lun.write_verified));
}

#[test]
fn vstor_under_the_capabilities_buffer_reading() {
    // StorQueryCapabilities carries a STOR_DEVICE_CAPABILITIES_EX buffer
    // that the miniport may fill; vstor leaves it and DataTransferLength
    // alone, which that reading allows too.
    let report = run(
        &[],
        &RunOptions {
            non_scsi_srbs: true,
            pnp_capabilities_buffer: true,
            ..RunOptions::default()
        },
    );
    assert_eq!(summary(&report.findings), vec![], "{:#?}", report.findings);
    assert_eq!(report.outcome, "clean");
}

#[test]
fn vstor_on_surprise_removal_and_adapter_power_requests() {
    let adapter = Adapter::start(&[]);
    let port = &adapter.port;
    let surprise = port
        .pnp((0, 0, 0), SURPRISE_REMOVAL, 0)
        .expect("the request completes");
    assert_eq!(surprise.status(), 0x01, "SRB_STATUS_SUCCESS");
    // An adapter request: PathId, TargetId and Lun are to be ignored (the
    // port fills them with 0xA5); vstor does not read them and answers for
    // the adapter.
    let adapter_power = port
        .power((0, 0, 0), D3, HIBERNATE, SRB_POWER_FLAGS_ADAPTER_REQUEST)
        .expect("the request completes");
    assert_eq!(adapter_power.status(), 0x01, "{adapter_power:?}");
    // A unit vstor does not have: SRB_STATUS_INVALID_LUN, still by status
    // alone.
    let missing = port
        .power((0, 0, 9), D0, HIBERNATE, 0)
        .expect("the request completes");
    assert_eq!(missing.status(), 0x20, "{missing:?}");
    port.remove().expect("free adapter resources");
    port.unload();
    assert_eq!(summary(&port.findings()), vec![], "{:#?}", port.findings());
}
