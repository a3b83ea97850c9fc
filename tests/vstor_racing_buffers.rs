//! The real `vstor.sys` under `storemu run --racing-buffers`: UNMAP with a
//! parameter list that changes while the driver handles it.
//!
//! vstor copies the list once (its header, then its descriptors, into a
//! local buffer) and both checks and unmaps from that copy, so whichever
//! version of the varying byte it reads, the outcome is one a consistent
//! snapshot of the list gives: the runs are clean, and each racing UNMAP
//! reads the varying byte exactly once.

mod common;

use common::{Adapter, global, readable_sys_path, root};
use storport_emu::cli::{self, RunArgs};
use storport_emu::port::Rule;
use storport_emu::port::racing::RacingSchedule;
use storport_emu::port::unmap_race::{RefusedUnmap, UnmapBreach};
use storport_emu::registry::RegValue;

fn run(sets: &[&str]) -> cli::RunReport {
    let args = RunArgs {
        driver: readable_sys_path(),
        inf: Some(root().join("inf").join("vstor.inf")),
        set: sets.iter().map(|&set| set.to_owned()).collect(),
        json: true,
        pool: storport_emu::port::PoolConfig::special_pool(),
        racing_buffers: Some(RefusedUnmap::ChangesNothing),
        ..RunArgs::default()
    };
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let report = cli::run(&args, &sets);
    assert_eq!(report.load_error, None, "vstor.sys loads");
    report
}

/// Rule, routine and parameters (bus, target, LUN, limit, accesses) of
/// every finding.
fn findings(report: &cli::RunReport) -> Vec<(Rule, String, Vec<u64>)> {
    report
        .findings
        .iter()
        .map(|f| (f.rule, f.routine.clone(), f.params.clone()))
        .collect()
}

#[test]
fn vstor_checks_and_unmaps_one_copy_of_the_list() {
    let report = run(&[]);
    assert_eq!(findings(&report), vec![], "{:#?}", report.findings);
    assert_eq!(report.outcome, "clean");
    assert_eq!(report.exit_status(), cli::EXIT_CLEAN);
    assert!(report.luns[0].write_verified, "{:?}", report.luns[0].notes);
}

#[test]
fn every_lun_and_block_size_stays_clean() {
    // 8 MiB of 4096-byte blocks: 2048 blocks, MAXIMUM UNMAP LBA COUNT 16384
    // (64 MiB): overlapping filler descriptors bring a list to the total.
    let report = run(&[
        "DiskCount=dword:2",
        "DiskSizeMiB=dword:8",
        "SectorSize=dword:4096",
    ]);
    assert_eq!(findings(&report), vec![], "{:#?}", report.findings);
    assert_eq!(report.outcome, "clean");
    assert_eq!(report.luns.len(), 2);
    assert!(
        report.luns.iter().all(|lun| lun.write_verified),
        "{:?}",
        report.luns
    );
}

#[test]
fn the_race_report_shows_vstor_read_the_list_once() {
    let adapter = Adapter::start(&[global("DiskSizeMiB", RegValue::dword(64))]);
    let report = adapter.port.racing_unmap((0, 0, 0)).expect("racing UNMAP");
    let races: Vec<(UnmapBreach, RacingSchedule, u32, usize, bool)> = report
        .races
        .iter()
        .map(|r| {
            (
                r.breach,
                r.schedule,
                r.accesses,
                r.changed.len(),
                r.consistent,
            )
        })
        .collect();
    // One read of the varying byte per UNMAP, which under both schedules
    // sees the valid version (one block from LBA 1): GOOD, and exactly that
    // block of the window unmapped.
    assert_eq!(
        races,
        vec![
            (
                UnmapBreach::PastEnd,
                RacingSchedule::SwitchAfter(1),
                1,
                1,
                true
            ),
            (
                UnmapBreach::PastEnd,
                RacingSchedule::SwitchAfter(2),
                1,
                1,
                true
            ),
            (
                UnmapBreach::TooManyBlocks,
                RacingSchedule::SwitchAfter(1),
                1,
                1,
                true
            ),
            (
                UnmapBreach::TooManyBlocks,
                RacingSchedule::SwitchAfter(2),
                1,
                1,
                true
            ),
        ]
    );
    assert!(
        report
            .races
            .iter()
            .all(|race| race.result.srb_status == 0x01),
        "every racing UNMAP ends with SRB_STATUS_SUCCESS: {:?}",
        report.races
    );
    assert_eq!(adapter.port.findings(), vec![]);
}
