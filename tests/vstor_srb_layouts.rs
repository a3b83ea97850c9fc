//! The real `vstor.sys` under `storemu run --non-scsi-srbs`: PNP and POWER
//! requests arrive in their own layouts (`SCSI_PNP_REQUEST_BLOCK`,
//! `SCSI_POWER_REQUEST_BLOCK`), and the port reports every member the
//! miniport changes that the layout does not give it.
//!
//! vstor breaks that rule today: its start-io hands every SRB to the SCSI
//! logic through `Srb::io()` and then writes `ScsiStatus` (offset 4, which is
//! `PnPSubFunction` / `SrbPowerFlags` in these layouts) and
//! `DataTransferLength` (a member the pages say the miniport ignores). The
//! tests below state exactly those findings; once vstor completes PNP and
//! POWER requests by setting only `SrbStatus`, they turn to clean and these
//! expectations change with that fix.

mod common;

use common::{Adapter, readable_sys_path, root};
use storport_emu::cli::{self, RunArgs, RunOptions};
use storport_emu::port::Finding;

// The numbers are written out from srb.h, not taken from the driver or the
// port.
/// `SRB_FUNCTION_POWER`.
const POWER: u64 = 0x24;
/// `SRB_FUNCTION_PNP`.
const PNP: u64 = 0x25;
/// `STOR_PNP_ACTION`: `StorQueryCapabilities`, `StorRemoveDevice`,
/// `StorSurpriseRemoval`.
const QUERY_CAPABILITIES: u32 = 0x09;
const REMOVE_DEVICE: u32 = 0x02;
const SURPRISE_REMOVAL: u32 = 0x17;
/// `STOR_DEVICE_POWER_STATE`: `StorPowerDeviceD0`, `StorPowerDeviceD3`.
const D0: u32 = 1;
const D3: u32 = 4;
/// `STOR_POWER_ACTION`: `StorPowerActionHibernate`.
const HIBERNATE: u32 = 3;
/// `SRB_POWER_FLAGS_ADAPTER_REQUEST`.
const SRB_POWER_FLAGS_ADAPTER_REQUEST: u8 = 0x01;
/// x64 offsets in the special layouts (srb.h): offset 4 is
/// `PnPSubFunction` / `SrbPowerFlags`, 0x10 `DataTransferLength`.
const OFFSET_4: u64 = 0x04;
const DATA_TRANSFER_LENGTH: u64 = 0x10;

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

fn write(params: &[u64]) -> (&'static str, String, Vec<u64>) {
    ("NonScsiSrbWrite", "HwStartIo".to_owned(), params.to_vec())
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
fn vstor_writes_scsi_status_and_data_transfer_length_into_pnp_and_power_requests() {
    let report = run(&["DiskCount=dword:2", "DiskSizeMiB=dword:1"], &non_scsi());
    let q = u64::from(QUERY_CAPABILITIES);
    let remove = u64::from(REMOVE_DEVICE);
    let d3 = u64::from(D3);
    let d0 = u64::from(D0);
    // Per LUN: StorQueryCapabilities after the scan, D3 and D0, then
    // StorRemoveDevice. vstor writes ScsiStatus = 0 over PnPSubFunction
    // (the port put 0xA5 there) and DataTransferLength = 0 over the
    // 0xA5A5A5A5 of an ignored member; in the POWER requests offset 4 is
    // SrbPowerFlags, which already holds 0, so only DataTransferLength shows.
    assert_eq!(
        summary(&report.findings),
        vec![
            write(&[PNP, q, OFFSET_4, DATA_TRANSFER_LENGTH]),
            write(&[PNP, q, OFFSET_4, DATA_TRANSFER_LENGTH]),
            write(&[POWER, d3, DATA_TRANSFER_LENGTH]),
            write(&[POWER, d0, DATA_TRANSFER_LENGTH]),
            write(&[POWER, d3, DATA_TRANSFER_LENGTH]),
            write(&[POWER, d0, DATA_TRANSFER_LENGTH]),
            write(&[PNP, remove, OFFSET_4, DATA_TRANSFER_LENGTH]),
            write(&[PNP, remove, OFFSET_4, DATA_TRANSFER_LENGTH]),
        ],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.outcome, "violations");
    assert!(
        report.findings[0].message.contains(
            "PnPSubFunction (offset 0x4: 0xa5 -> 0x0), DataTransferLength (offset 0x10: 0xa5a5a5a5 -> 0x0) of the SRB_FUNCTION_PNP StorQueryCapabilities request to 0:0:0"
        ),
        "{}",
        report.findings[0].message
    );
    // The disks still work: every LUN was probed and verified.
    assert_eq!(report.luns.len(), 2);
    assert!(report.luns.iter().all(|lun| lun.write_verified));
}

#[test]
fn vstor_under_the_capabilities_buffer_reading() {
    // StorQueryCapabilities carries a STOR_DEVICE_CAPABILITIES_EX buffer and
    // DataTransferLength is the miniport's to set: only offset 4 shows.
    let report = run(
        &[],
        &RunOptions {
            non_scsi_srbs: true,
            pnp_capabilities_buffer: true,
            ..RunOptions::default()
        },
    );
    let findings = summary(&report.findings);
    assert_eq!(
        findings[0],
        write(&[PNP, u64::from(QUERY_CAPABILITIES), OFFSET_4]),
        "{:#?}",
        report.findings
    );
    assert_eq!(findings.len(), 4, "{:#?}", report.findings);
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
    // port fills them with 0xA5), so vstor finds no such unit; it still
    // writes offset 4, which is SrbPowerFlags = 1 here.
    let adapter_power = port
        .power((0, 0, 0), D3, HIBERNATE, SRB_POWER_FLAGS_ADAPTER_REQUEST)
        .expect("the request completes");
    assert_ne!(adapter_power.status(), 0x01, "{adapter_power:?}");
    port.remove().expect("free adapter resources");
    port.unload();
    assert_eq!(
        summary(&port.findings()),
        vec![
            write(&[
                PNP,
                u64::from(SURPRISE_REMOVAL),
                OFFSET_4,
                DATA_TRANSFER_LENGTH
            ]),
            write(&[POWER, u64::from(D3), OFFSET_4, DATA_TRANSFER_LENGTH]),
        ],
        "{:#?}",
        port.findings()
    );
}
