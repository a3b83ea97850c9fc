//! The real `vstor.sys` under storemu's spin-lock model. vstor's locks are
//! the safe layer's kernel spin locks (`storport::spin_lock`): each RAM disk
//! chunk's `EX_SPIN_LOCK` (shared to read, exclusive to write) and each
//! disk's reservation `KSPIN_LOCK`; it takes none of Storport's own locks.
//! Its image imports exactly those routines, and a run is clean under both
//! readings of `--storport-lock-irql`: every acquire and release passes
//! Driver Verifier's checks as storemu models them.

mod common;

use common::{readable_sys_path, root};
use storport_emu::cli::{self, RunArgs};
use storport_emu::machine::loader;
use storport_emu::port::exports;
use storport_emu::port::locks::StorPortLockIrql;

#[test]
fn vstor_imports_exactly_the_kernel_spin_lock_routines_of_its_locks() {
    let bytes = std::fs::read(readable_sys_path()).expect("vstor.sys");
    let image =
        loader::load_named("vstor.sys", &bytes, &exports::resolve, false).expect("vstor.sys loads");
    let mut locks: Vec<&str> = image
        .imports()
        .iter()
        .map(|import| import.function.as_str())
        .filter(|function| function.contains("SpinLock"))
        .collect();
    locks.sort_unstable();
    assert_eq!(
        locks,
        [
            "ExAcquireSpinLockExclusive",
            "ExAcquireSpinLockShared",
            "ExReleaseSpinLockExclusive",
            "ExReleaseSpinLockShared",
            "KeAcquireSpinLockRaiseToDpc",
            "KeReleaseSpinLock",
        ]
    );
}

#[test]
fn vstor_runs_clean_under_both_storport_lock_irql_readings() {
    for reading in [StorPortLockIrql::Strict, StorPortLockIrql::Unchecked] {
        let args = RunArgs {
            driver: readable_sys_path(),
            inf: Some(root().join("inf").join("vstor.inf")),
            set: vec![
                "DiskCount=dword:2".to_owned(),
                "DiskSizeMiB=dword:2".to_owned(),
            ],
            json: true,
            pool: storport_emu::port::PoolConfig::special_pool(),
            storport_lock_irql: reading,
            ..RunArgs::default()
        };
        let sets = cli::parse_sets(&args.set).expect("the --set values parse");
        let report = cli::run(&args, &sets);
        assert_eq!(report.load_error, None, "vstor.sys loads");
        assert_eq!(
            report.outcome, "clean",
            "{reading:?}: {:#?}",
            report.findings
        );
        assert_eq!(report.luns.len(), 2, "{reading:?}");
        assert!(
            report.luns.iter().all(|lun| lun.write_verified),
            "{reading:?}"
        );
    }
}
