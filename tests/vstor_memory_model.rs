//! The real `vstor.sys` under storemu's physical memory model and special
//! pool: disks that fit start and run clean, disks the pool cannot hold
//! fail find-adapter the way vstor documents (every allocation checked,
//! everything allocated so far freed), neither mode of the special pool
//! finds an overrun, an underrun or a use after free in a whole run, and
//! disks that need more than half of the physical memory
//! `MmGetPhysicalMemoryRangesEx2` reports are refused before anything is
//! allocated, with one `DbgPrint` line.

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
    assert_only_find_adapter_result(report, SP_RETURN_ERROR);
}

/// `SP_RETURN_ERROR`, `SP_RETURN_BAD_CONFIG` (written out from storport.h).
const SP_RETURN_ERROR: u64 = 2;
const SP_RETURN_BAD_CONFIG: u64 = 3;

/// The one finding of a run whose find-adapter returned `status`.
fn assert_only_find_adapter_result(report: &cli::RunReport, status: u64) {
    let findings: Vec<(Rule, &str, &[u64])> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.routine.as_str(), f.params.as_slice()))
        .collect();
    assert_eq!(
        findings,
        vec![(Rule::AdapterStartFailed, "HwFindAdapter", &[status][..])],
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
    // The kernel cannot allocate MmGetPhysicalMemoryRangesEx2's array
    // either: vstor says it checks the disks against its absolute cap alone,
    // and goes on.
    let report = run(&[], BlockEnd::Aligned, 256);
    assert_only_start_failure(&report);
    assert_eq!(
        report.dbgprint,
        vec![
            "vstor: the kernel did not report the machine's physical memory \
             (MmGetPhysicalMemoryRangesEx2 failed), so the disks (64 MiB) are held only to the \
             262144 MiB one adapter may use; the start goes on."
                .to_owned(),
            "vstor: out of memory for the disk table; the adapter does not start".to_owned()
        ]
    );
    assert!(
        log(&report).contains(
            &"ExAllocatePool2 of 312 bytes with tag 'RsAl' in HwFindAdapter returned NULL: it \
              needs 4096 bytes of the physical memory model and the pool has 0 of its 0 bytes left."
                .to_owned()
        ),
        "{:#?}",
        log(&report)
    );
}

/// Two disks of 256 MiB on machines with `physical_mib` of memory, 256 MiB
/// of it the rest of the system's: the pool could hold them either way. A
/// fault plan that fails nothing makes the run log count the fallible calls
/// vstor made.
fn half_a_gib_of_disks(physical_mib: u64) -> (cli::RunReport, String) {
    let args = RunArgs {
        driver: readable_sys_path(),
        inf: Some(root().join("inf").join("vstor.inf")),
        set: vec![
            "DiskCount=dword:2".to_owned(),
            "DiskSizeMiB=dword:256".to_owned(),
        ],
        json: true,
        pool: PoolConfig {
            special: Some(BlockEnd::Aligned),
            memory: PhysicalMemory::from_mib(physical_mib, 256),
        },
        ..RunArgs::default()
    };
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let never = cli::parse_faults(&["StorPortAllocateMdl@1000000".to_owned()])
        .expect("the --fail value parses");
    let report = cli::run_with_faults(&args, &sets, &never);
    assert_eq!(report.load_error, None, "vstor.sys loads");
    let calls = log(&report)
        .into_iter()
        .find(|line| line.starts_with("fault injection: 0 failure(s) injected"))
        .expect("the run log counts the fallible calls");
    (report, calls)
}

#[test]
fn disks_that_take_half_of_physical_memory_start() {
    // 1024 MiB of memory: the disks may take 512 MiB, exactly what they need.
    let (report, calls) = half_a_gib_of_disks(1024);
    assert_eq!(report.outcome, "clean", "{:#?}", report.findings);
    assert_eq!(report.luns.len(), 2);
    assert!(
        report.luns.iter().all(|lun| lun.write_verified),
        "{:?}",
        report.luns
    );
    assert_eq!(
        report.dbgprint,
        vec!["vstor: adapter started (start 1) with 2 disk(s)".to_owned()]
    );
    assert!(
        calls.contains("ExAllocatePool2 x") && calls.contains("MmGetPhysicalMemoryRangesEx2 x1"),
        "{calls}"
    );
}

#[test]
fn disks_that_take_more_than_half_of_physical_memory_are_refused() {
    // 1022 MiB of memory: the disks may take 511 MiB. The pool (766 MiB)
    // would hold the 512 they need, but vstor refuses them before it
    // allocates anything.
    let (report, calls) = half_a_gib_of_disks(1022);
    assert_only_find_adapter_result(&report, SP_RETURN_BAD_CONFIG);
    assert_eq!(
        report.dbgprint,
        vec![
            "vstor: the disks need 512 MiB in all, more than the 511 MiB one adapter may take: \
             half of the 1022 MiB of physical memory, since disks in nonpaged pool are never \
             paged out; lower DiskCount or the disk sizes. The adapter does not start."
                .to_owned()
        ]
    );
    assert!(
        !calls.contains("ExAllocatePool2") && calls.contains("MmGetPhysicalMemoryRangesEx2 x1"),
        "no pool was allocated: {calls}"
    );
}
