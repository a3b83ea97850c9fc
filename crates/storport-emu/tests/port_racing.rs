//! Racing data-out buffers through the port's Rust API, on the cross-built
//! broken-miniport fixture: what each access of the varying byte sees, the
//! racing UNMAP check's report, and the medium restored after it.

use storport_emu::port::racing::{RacingDataOut, RacingSchedule};
use storport_emu::port::unmap_race::{UnmapBreach, UnmapLimits};
use storport_emu::port::{DataDirection, Port, PortError, Rule};
use storport_sys::srb_status;

mod broken_port;
mod port_support;

use broken_port::{rw10, started};

fn read_disk(port: &Port) -> Vec<u8> {
    let read = port
        .execute((0, 0, 0), &rw10(0x28, 0, 16), &DataDirection::In(16 * 512))
        .expect("READ(10)");
    assert_eq!(read.status(), srb_status::SUCCESS);
    read.data
}

#[test]
fn a_copy_of_a_racing_buffer_is_the_version_its_one_access_saw() {
    let port = started("none");
    let first: Vec<u8> = (0..512_u32).map(|i| (i % 251) as u8).collect();
    let mut second = first.clone();
    second[100] ^= 0xFF;
    let data = RacingDataOut::new(first.clone(), &second).expect("one byte differs");
    for (schedule, expected) in [
        (RacingSchedule::SwitchAfter(1), &first),
        (RacingSchedule::SwitchAfter(0), &second),
        (RacingSchedule::Alternate, &first),
    ] {
        let race = port
            .execute_racing((0, 0, 0), &rw10(0x2A, 5, 1), &data, schedule)
            .expect("WRITE(10)");
        assert_eq!(race.result.status(), srb_status::SUCCESS, "{schedule:?}");
        assert_eq!(
            race.accesses, 1,
            "{schedule:?}: the copy reads the byte once"
        );
        let back = port
            .execute((0, 0, 0), &rw10(0x28, 5, 1), &DataDirection::In(512))
            .expect("READ(10)");
        assert_eq!(&back.data, expected, "{schedule:?}");
    }
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn the_racing_unmap_check_reports_every_race_and_restores_the_disk() {
    let port = started("none");
    let before: Vec<u8> = (0..16 * 512_u32).map(|i| (i * 7 % 253) as u8 + 1).collect();
    let written = port
        .execute(
            (0, 0, 0),
            &rw10(0x2A, 0, 16),
            &DataDirection::Out(before.clone()),
        )
        .expect("WRITE(10)");
    assert_eq!(written.status(), srb_status::SUCCESS);
    let report = port.racing_unmap((0, 0, 0)).expect("racing UNMAP");
    assert_eq!(
        report.limits,
        Some(UnmapLimits {
            blocks: 16,
            block_bytes: 512,
            max_lba_count: 8,
            max_descriptors: 4,
        })
    );
    assert_eq!(report.skipped, Vec::<String>::new());
    let summary: Vec<(UnmapBreach, RacingSchedule, u32, Vec<u64>, bool)> = report
        .races
        .iter()
        .map(|r| {
            (
                r.breach,
                r.schedule,
                r.accesses,
                r.changed.clone(),
                r.consistent,
            )
        })
        .collect();
    let fillers = vec![1, 13, 14, 15];
    assert_eq!(
        summary,
        vec![
            (
                UnmapBreach::PastEnd,
                RacingSchedule::SwitchAfter(1),
                1,
                vec![1],
                true
            ),
            (
                UnmapBreach::PastEnd,
                RacingSchedule::SwitchAfter(2),
                1,
                vec![1],
                true
            ),
            (
                UnmapBreach::TooManyBlocks,
                RacingSchedule::SwitchAfter(1),
                1,
                fillers.clone(),
                true
            ),
            (
                UnmapBreach::TooManyBlocks,
                RacingSchedule::SwitchAfter(2),
                1,
                fillers,
                true
            ),
        ]
    );
    assert!(
        report
            .races
            .iter()
            .all(|r| r.result.status() == srb_status::SUCCESS)
    );
    assert_eq!(
        read_disk(&port),
        before,
        "the window and the fillers are restored"
    );
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn the_racing_unmap_check_names_the_double_fetch() {
    let port = started("unmap-double-fetch");
    let report = port.racing_unmap((0, 0, 0)).expect("racing UNMAP");
    let inconsistent: Vec<(UnmapBreach, u32, Vec<u64>)> = report
        .races
        .iter()
        .filter(|r| !r.consistent)
        .map(|r| (r.breach, r.accesses, r.changed.clone()))
        .collect();
    let all: Vec<u64> = (1..16).collect();
    assert_eq!(
        inconsistent,
        vec![
            (UnmapBreach::PastEnd, 2, all.clone()),
            (UnmapBreach::TooManyBlocks, 2, all),
        ]
    );
    let findings = port.findings();
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for (finding, breach) in findings.iter().zip([0, 1]) {
        assert_eq!(finding.rule, Rule::DataOutSnapshot);
        assert_eq!(finding.routine, "HwStartIo");
        assert_eq!(finding.params, vec![0, 0, 0, breach, 2]);
    }
}

#[test]
fn a_lun_without_unmap_support_is_skipped_with_the_reason() {
    let port = started("none");
    // LUN 1 answers no request (SRB_STATUS_NO_DEVICE).
    let report = port.racing_unmap((0, 0, 1)).expect("racing UNMAP");
    assert_eq!(report.limits, None);
    assert!(report.races.is_empty());
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].starts_with("READ CAPACITY(16) ended with SRB status 0x08"),
        "{:?}",
        report.skipped
    );
    port.stop().expect("stop");
    let refused = port.execute_racing(
        (0, 0, 0),
        &rw10(0x2A, 0, 1),
        &RacingDataOut::new(vec![0, 0], &[0, 1]).expect("one byte differs"),
        RacingSchedule::Alternate,
    );
    assert_eq!(refused, Err(PortError::NotStarted));
}
