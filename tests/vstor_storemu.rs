//! `storemu run` on the real `vstor.sys` with its INF and `--set` values:
//! the command a user runs must install, start, scan and probe the
//! configured disks and come out clean.

mod common;

use common::{readable_sys_path, root};
use storport_emu::cli::{self, RunArgs};

fn run(sets: &[&str]) -> cli::RunReport {
    let args = RunArgs {
        driver: readable_sys_path(),
        inf: Some(root().join("inf").join("vstor.inf")),
        set: sets.iter().map(|&set| set.to_owned()).collect(),
        json: true,
        allow_missing: false,
        watchdog_ms: cli::DEFAULT_WATCHDOG_MS,
        srb_timeout_ms: cli::DEFAULT_SRB_TIMEOUT_MS,
        storport_lock_irql: storport_emu::port::locks::StorPortLockIrql::Strict,
    };
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let report = cli::run(&args, &sets);
    assert_eq!(report.load_error, None, "vstor.sys loads");
    report
}

#[test]
fn storemu_run_serves_the_disks_the_set_values_configure() {
    let report = run(&[
        "DiskCount=dword:3",
        "DiskSizeMiB=dword:2",
        "SectorSize=dword:4096",
        "Device0\\VendorId=sz:ACME",
        "ProductId=sz:SET BY STOREMU",
    ]);
    assert_eq!(report.outcome, "clean", "{:#?}", report.findings);
    assert_eq!(report.exit_status(), cli::EXIT_CLEAN);
    let luns: Vec<(u8, u8, u8)> = report
        .luns
        .iter()
        .map(|lun| (lun.bus, lun.target, lun.lun))
        .collect();
    assert_eq!(luns, vec![(0, 0, 0), (0, 0, 1), (0, 0, 2)]);
    for lun in &report.luns {
        assert_eq!(
            (
                lun.vendor.as_str(),
                lun.product.as_str(),
                lun.revision.as_str()
            ),
            ("ACME", "SET BY STOREMU", "0001"),
            "LUN {}",
            lun.lun
        );
        assert_eq!((lun.blocks, lun.block_size), (512, 4096), "LUN {}", lun.lun);
        assert!(
            lun.ready && lun.write_verified,
            "LUN {}: {:?}",
            lun.lun,
            lun.notes
        );
    }
    assert!(
        !report
            .dbgprint
            .iter()
            .any(|line| line.starts_with("vstor: registry value ")),
        "{:#?}",
        report.dbgprint
    );
}

#[test]
fn storemu_run_reports_a_bad_value_and_still_runs_clean() {
    let report = run(&["DiskSizeMiB=dword:1", "SectorSize=dword:520"]);
    assert_eq!(report.outcome, "clean", "{:#?}", report.findings);
    assert_eq!(
        report
            .dbgprint
            .iter()
            .filter(|line| line.starts_with("vstor: registry value "))
            .collect::<Vec<_>>(),
        vec![
            "vstor: registry value SectorSize = 520 is out of range; expected 512 or 4096; \
             using the default 512."
        ]
    );
    assert_eq!(report.luns.len(), 1);
    assert_eq!(
        (report.luns[0].blocks, report.luns[0].block_size),
        (2048, 512)
    );
}

#[test]
fn storemu_run_fails_an_impossible_configuration_with_a_finding() {
    let report = run(&["DiskCount=dword:2", "DiskSizesMiB=multi_sz:1;2;3"]);
    assert_eq!(report.outcome, "violations");
    assert_eq!(report.exit_status(), cli::EXIT_FINDINGS);
    assert!(report.luns.is_empty());
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.name()).collect();
    assert_eq!(rules, vec!["AdapterStartFailed"], "{:#?}", report.findings);
    assert!(
        report
            .dbgprint
            .iter()
            .any(|line| line.starts_with("vstor: DiskCount is 2 but DiskSizesMiB lists 3 sizes")),
        "{:#?}",
        report.dbgprint
    );
}
