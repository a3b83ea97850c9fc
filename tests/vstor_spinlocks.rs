//! The real `vstor.sys` under storemu's spin-lock model. vstor's locks are
//! the safe layer's kernel spin locks (`storport::spin_lock`): each RAM disk
//! chunk's `EX_SPIN_LOCK` (shared to read, exclusive to write) and each
//! disk's reservation `KSPIN_LOCK`; it takes none of Storport's own locks.
//! Its image imports exactly those routines, and a run is clean under both
//! readings of `--storport-lock-irql`: every acquire and release passes
//! Driver Verifier's checks as storemu models them.

mod common;

use common::{assert_two_disks_run_clean, readable_sys_path};
use storport_emu::cli::RunArgs;
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
            storport_lock_irql: reading,
            ..RunArgs::default()
        };
        assert_two_disks_run_clean(args, &format!("{reading:?}"));
    }
}
