//! The real `vstor.sys` under storemu's physical memory model and special
//! pool: disks that fit start and run clean, disks the pool cannot hold
//! fail find-adapter the way vstor documents (every allocation checked,
//! everything allocated so far freed), and neither mode of the special pool
//! finds an overrun, an underrun or a use after free in a whole run.

mod common;

use common::{readable_sys_path, root};
use storport_emu::cli::{self, RunArgs};
use storport_emu::port::{BlockEnd, PhysicalMemory, PoolConfig, Rule};

/// `storemu run` of vstor with its INF, `sets`, special pool placed as
/// `end`, and `physical_mib` of physical memory (2048 MiB of it the rest of
/// the system's).
fn run(sets: &[&str], end: BlockEnd, physical_mib: u64) -> cli::RunReport {
    let args = RunArgs {
        driver: readable_sys_path(),
        inf: Some(root().join("inf").join("vstor.inf")),
        set: sets.iter().map(|&set| set.to_owned()).collect(),
        json: true,
        pool: PoolConfig {
            special: Some(end),
            memory: PhysicalMemory::from_mib(physical_mib, 2048),
        },
        ..RunArgs::default()
    };
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let report = cli::run(&args, &sets);
    assert_eq!(report.load_error, None, "vstor.sys loads");
    report
}

/// The run log's life-cycle lines.
fn log(report: &cli::RunReport) -> Vec<String> {
    report.to_json()["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|line| line.as_str().expect("a line").to_owned())
        .collect()
}

/// The one finding of a run whose find-adapter returned `SP_RETURN_ERROR`.
fn assert_only_start_failure(report: &cli::RunReport) {
    let findings: Vec<(Rule, &str, &[u64])> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.routine.as_str(), f.params.as_slice()))
        .collect();
    assert_eq!(
        findings,
        vec![(Rule::AdapterStartFailed, "HwFindAdapter", &[2_u64][..])],
        "{:#?}",
        report.findings
    );
    assert!(report.luns.is_empty());
}

#[test]
fn disks_that_fit_in_the_pool_run_clean_under_special_pool() {
    for end in [BlockEnd::Aligned, BlockEnd::Exact] {
        let report = run(&["DiskCount=dword:2", "DiskSizeMiB=dword:64"], end, 2304);
        assert_eq!(report.outcome, "clean", "{end:?}: {:#?}", report.findings);
        assert_eq!(report.luns.len(), 2, "{end:?}");
        assert!(
            report.luns.iter().all(|lun| lun.write_verified),
            "{end:?}: {:?}",
            report.luns
        );
    }
}

#[test]
fn disks_larger_than_the_pool_fail_find_adapter_and_free_what_they_had() {
    // 256 MiB of pool (2304 - 2048), 2 x 192 MiB of disks: the first disk's
    // 192 chunks of 1 MiB fit, the second disk's do not. vstor checks the
    // NULL, frees every chunk it built (no PoolLeak at unload) and fails
    // find-adapter with SP_RETURN_ERROR.
    let report = run(
        &["DiskCount=dword:2", "DiskSizeMiB=dword:192"],
        BlockEnd::Aligned,
        2304,
    );
    assert_only_start_failure(&report);
    assert_eq!(
        report.dbgprint,
        vec![
            "vstor: disk 1 (192 MiB): the kernel could not allocate 1048576 bytes of nonpaged \
             pool; nothing was allocated; the adapter does not start"
                .to_owned()
        ]
    );
    let failures: Vec<String> = log(&report)
        .into_iter()
        .filter(|line| line.contains("returned NULL"))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with(
            "ExAllocatePool2 of 1048576 bytes with tag 'vstD' in HwFindAdapter returned NULL: it \
             needs 1048576 bytes of the physical memory model and the pool has "
        ) && failures[0].ends_with(" of its 268435456 bytes left."),
        "{failures:#?}"
    );
}

#[test]
fn with_less_memory_than_the_system_holds_the_first_allocation_fails() {
    // 256 MiB of physical memory, all of it held by the rest of the system:
    // vstor's first allocation (the disk table) fails and find-adapter
    // returns SP_RETURN_ERROR.
    let report = run(&[], BlockEnd::Aligned, 256);
    assert_only_start_failure(&report);
    assert_eq!(
        report.dbgprint,
        vec!["vstor: out of memory for the disk table; the adapter does not start".to_owned()]
    );
    assert!(
        log(&report).contains(
            &"ExAllocatePool2 of 240 bytes with tag 'RsAl' in HwFindAdapter returned NULL: it \
              needs 4096 bytes of the physical memory model and the pool has 0 of its 0 bytes left."
                .to_owned()
        ),
        "{:#?}",
        log(&report)
    );
}
