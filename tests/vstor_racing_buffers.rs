//! The real `vstor.sys` under `storemu run --racing-buffers`: UNMAP with a
//! parameter list that changes while the driver handles it.
//!
//! vstor's UNMAP reads the descriptors twice, and only the first pass checks
//! the total against MAXIMUM UNMAP LBA COUNT (the second pass checks each
//! range again, so a list that runs past the capacity is not acted on).
//! storemu catches it with the list whose second version exceeds the total:
//! these tests state that finding as it is today. When vstor fetches the list
//! once (a copy checked and acted on), they turn to asserting a clean run.

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
fn vstor_acts_on_an_unmap_total_it_did_not_check() {
    let report = run(&[]);
    // Today: one DataOutSnapshot on the only LUN, for the list whose second
    // version exceeds MAXIMUM UNMAP LBA COUNT (limit 1); the varying byte
    // was read twice. Fetching the list once makes this run clean.
    assert_eq!(
        findings(&report),
        vec![(
            Rule::DataOutSnapshot,
            "HwStartIo".to_owned(),
            vec![0, 0, 0, 1, 2]
        )],
        "{:#?}",
        report.findings
    );
    let message = &report.findings[0].message;
    assert!(
        message.contains("ended with GOOD")
            && message.contains("(blocks 1 to 63)")
            && message.contains("131328 blocks in all exceed MAXIMUM UNMAP LBA COUNT 131072"),
        "{message}"
    );
    assert_eq!(report.outcome, "violations");
    assert_eq!(report.exit_status(), cli::EXIT_FINDINGS);
    assert!(report.luns[0].write_verified, "{:?}", report.luns[0].notes);
}

#[test]
fn every_lun_and_block_size_shows_the_same_finding() {
    // 8 MiB of 4096-byte blocks: 2048 blocks, MAXIMUM UNMAP LBA COUNT 16384
    // (64 MiB): overlapping filler descriptors still bring a list to the
    // total, and the second pass acts on 257 blocks (window: 8 blocks).
    let report = run(&[
        "DiskCount=dword:2",
        "DiskSizeMiB=dword:8",
        "SectorSize=dword:4096",
    ]);
    assert_eq!(
        findings(&report),
        vec![
            (
                Rule::DataOutSnapshot,
                "HwStartIo".to_owned(),
                vec![0, 0, 0, 1, 2]
            ),
            (
                Rule::DataOutSnapshot,
                "HwStartIo".to_owned(),
                vec![0, 0, 1, 1, 2]
            ),
        ],
        "{:#?}",
        report.findings
    );
    assert!(
        report.findings[1]
            .message
            .contains("UNMAP on LUN 0:0:1 with a parameter list that changed while the miniport ran ended with GOOD, and blocks outside the valid version's ranges changed (blocks 1 to 7)"),
        "{}",
        report.findings[1].message
    );
}

#[test]
fn the_race_report_shows_which_version_vstor_acted_on() {
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
    assert_eq!(
        races,
        vec![
            // Past the end: the second pass reads 0x01000001 blocks, finds
            // the range bad and skips it; GOOD with nothing changed.
            (
                UnmapBreach::PastEnd,
                RacingSchedule::SwitchAfter(1),
                2,
                0,
                true
            ),
            (
                UnmapBreach::PastEnd,
                RacingSchedule::SwitchAfter(2),
                2,
                1,
                true
            ),
            // Too many blocks: the second pass unmaps 257 blocks from LBA 1.
            (
                UnmapBreach::TooManyBlocks,
                RacingSchedule::SwitchAfter(1),
                2,
                63,
                false
            ),
            (
                UnmapBreach::TooManyBlocks,
                RacingSchedule::SwitchAfter(2),
                2,
                1,
                true
            ),
        ]
    );
    assert_eq!(adapter.port.findings().len(), 1);
}
