//! Fault-injection sweep of the real `vstor.sys`: every call of every
//! fallible import (pool, registry buffer, registry read and write) fails in
//! turn, through the whole life cycle — `DriverEntry`, start, I/O, Stop,
//! Restart, `ScsiSetRunningConfig`, `HwResetBus`, removal and unload — until
//! a run sees no injected failure.
//!
//! Every run must end without a bug check, without a leak (pool or registry
//! buffer) and with a documented outcome: the adapter does not start and
//! find-adapter returns `SP_RETURN_ERROR` (a pool allocation failed), or the
//! adapter starts and serves correct data (a registry call failed: the value
//! reads as missing and its default applies; no registry buffer at all means
//! every default applies).

mod common;

use std::collections::BTreeMap;

use common::{Adapter, Setting, assert_good, block, first_adapter, global, registry_with};
use storport_emu::cli::{self, RunArgs};
use storport_emu::port::faults::FALLIBLE_CALLS;
use storport_emu::port::{DataDirection, FaultSpec, PortError, Rule};
use storport_emu::registry::RegValue;

/// `SP_RETURN_ERROR`.
const SP_RETURN_ERROR: u32 = 2;
/// The pool allocators: failing one of them may stop the adapter.
const POOL_CALLS: [&str; 5] = [
    "ExAllocatePool2",
    "ExAllocatePoolWithTag",
    "ExAllocatePool",
    "StorPortAllocatePool",
    "StorPortAllocateMdl",
];

/// A configuration the sweep runs on.
struct Scenario {
    name: &'static str,
    settings: Vec<Setting>,
    /// LUNs the adapter has when nothing fails.
    luns: usize,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "INF defaults",
            settings: Vec::new(),
            luns: 1,
        },
        Scenario {
            name: "three disks, both scopes",
            settings: vec![
                global("DiskCount", RegValue::dword(3)),
                global("DiskSizeMiB", RegValue::dword(1)),
                first_adapter("DiskSizesMiB", RegValue::multi_sz(&["1", "2", "1"])),
                first_adapter("VendorId", RegValue::sz("FAULTS")),
                global("SerialPrefix", RegValue::sz("SWEEP")),
            ],
            luns: 3,
        },
    ]
}

/// What one run did.
struct Run {
    /// Calls of each fallible import the driver made.
    calls: BTreeMap<&'static str, u64>,
    /// Failures injected.
    injected: usize,
    /// LUNs served, or `None` when the adapter did not start.
    luns: Option<usize>,
}

/// Writes a block at the first and the last LBA of every LUN and reads them
/// back, before and after Stop, Restart, `ScsiSetRunningConfig` and `HwResetBus`.
fn exercise(adapter: &Adapter, luns: usize, context: &str) {
    let lun_numbers: Vec<u8> = (0..luns)
        .map(|lun| u8::try_from(lun).expect("few LUNs"))
        .collect();
    let mut written = Vec::new();
    for &lun in &lun_numbers {
        let (last_lba, block_bytes) = adapter.capacity(lun);
        let block_bytes = block_bytes as usize;
        for lba in [0, last_lba] {
            let lba32 = u32::try_from(lba).expect("small disks");
            let data = block(block_bytes, lun, lba, 7);
            adapter.write_ok(lun, lba32, data.clone(), block_bytes);
            assert_eq!(
                adapter.read_ok(lun, lba32, 1, block_bytes),
                data,
                "{context}: LUN {lun} LBA {lba} reads back"
            );
            written.push((lun, lba32, block_bytes, data));
        }
    }
    assert_eq!(
        adapter.port.stop(),
        Ok(common::CONTROL_SUCCESS),
        "{context}"
    );
    assert_eq!(
        adapter.port.restart(),
        Ok(common::CONTROL_SUCCESS),
        "{context}"
    );
    assert_eq!(
        adapter.port.set_running_config(),
        Ok(common::CONTROL_SUCCESS),
        "{context}"
    );
    assert_eq!(adapter.port.reset_bus(0), Ok(true), "{context}");
    // Each disk reports the bus reset once, to the next command (29h/02h).
    let mut told = std::collections::BTreeSet::new();
    for &(lun, ..) in &written {
        if told.insert(lun) {
            common::assert_check_condition(
                &adapter.execute(lun, &[0, 0, 0, 0, 0, 0], &DataDirection::None),
                (0x06, 0x29, 0x02),
                context,
            );
        }
    }
    for (lun, lba, block_bytes, data) in written {
        let result = adapter.read10(lun, lba, 1, block_bytes);
        assert_good(&result, context);
        assert_eq!(
            result.data, data,
            "{context}: LUN {lun} LBA {lba} keeps its data across Stop/Restart/SetRunningConfig/ResetBus"
        );
    }
}

/// One whole life cycle with `plan`, checked for the documented outcomes.
fn run_once(scenario: &Scenario, plan: &[FaultSpec]) -> Run {
    let context = format!("{} with --fail {plan:?}", scenario.name);
    let (registry, service) = registry_with(&scenario.settings);
    let adapter = Adapter::unentered(registry, &service);
    adapter.port.inject_faults(plan.to_vec());
    let entered = adapter.port.driver_entry();
    assert_eq!(entered, Ok(()), "{context}: DriverEntry");
    let started = adapter.port.start();
    let injected_in_start = adapter.port.injected_faults();
    let luns = match &started {
        Ok(()) => {
            let luns = adapter.report_luns().len();
            exercise(&adapter, luns, &context);
            assert_eq!(adapter.port.stop(), Ok(common::CONTROL_SUCCESS));
            adapter.port.remove().expect("HwFreeAdapterResources runs");
            Some(luns)
        }
        Err(PortError::FindAdapterFailed(SP_RETURN_ERROR)) => {
            assert!(
                injected_in_start
                    .iter()
                    .any(|fault| POOL_CALLS.contains(&fault.call)),
                "{context}: find-adapter returned SP_RETURN_ERROR, but no pool allocation failed \
                 (injected: {injected_in_start:?}); debug output: {:#?}",
                adapter.dbgprint()
            );
            None
        }
        Err(error) => panic!(
            "{context}: the adapter neither started nor failed with SP_RETURN_ERROR: {error}\n\
             injected: {injected_in_start:?}\ndebug output: {:#?}\nfindings: {:#?}",
            adapter.dbgprint(),
            adapter.findings()
        ),
    };
    adapter.port.unload();
    assert!(!adapter.port.bugchecked(), "{context}: bug check");
    let unexpected: Vec<_> = adapter
        .findings()
        .into_iter()
        .filter(|finding| !(luns.is_none() && finding.rule == Rule::AdapterStartFailed))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{context}: findings {unexpected:#?}\ndebug output: {:#?}",
        adapter.dbgprint()
    );
    assert_eq!(
        adapter.pool_blocks(),
        0,
        "{context}: pool left after unload"
    );
    assert!(
        !adapter.holds_registry_buffer(),
        "{context}: registry buffer left"
    );
    if let Some(served) = luns
        && adapter.port.injected_faults().is_empty()
    {
        assert_eq!(served, scenario.luns, "{context}: LUNs when nothing fails");
    }
    Run {
        calls: adapter.port.fault_calls(),
        injected: adapter.port.injected_faults().len(),
        luns,
    }
}

/// The sweep's figures for one scenario and mode.
#[derive(Default)]
struct Figures {
    runs: usize,
    sites: usize,
    not_started: usize,
    per_call: BTreeMap<&'static str, u64>,
}

/// Fails call N of each fallible import (with `onward`, call N and every
/// later one) for N = 1, 2, ... until a run injects nothing.
fn sweep(scenario: &Scenario, onward: bool) -> Figures {
    let baseline = run_once(scenario, &[]);
    assert_eq!(baseline.injected, 0);
    assert_eq!(baseline.luns, Some(scenario.luns), "{}", scenario.name);
    let mut figures = Figures::default();
    for call in FALLIBLE_CALLS {
        let mut swept = 0;
        for nth in 1.. {
            let run = run_once(scenario, &[FaultSpec { call, nth, onward }]);
            figures.runs += 1;
            if run.injected == 0 {
                assert_eq!(
                    run.calls, baseline.calls,
                    "{}: a run without injected failure makes the baseline's calls",
                    scenario.name
                );
                break;
            }
            swept += 1;
            if run.luns.is_none() {
                figures.not_started += 1;
            }
        }
        assert_eq!(
            swept,
            baseline.calls.get(call).copied().unwrap_or(0),
            "{}: every call of {call} was failed once",
            scenario.name
        );
        figures.sites += usize::try_from(swept).expect("small");
        if swept > 0 {
            figures.per_call.insert(call, swept);
        }
    }
    figures
}

fn report(label: &str, onward: bool) {
    for scenario in scenarios() {
        let figures = sweep(&scenario, onward);
        println!(
            "fault sweep ({label}), {}: {} runs, {} call sites failed ({} left the adapter unstarted with SP_RETURN_ERROR, the rest started and served verified data); per call: {:?}",
            scenario.name, figures.runs, figures.sites, figures.not_started, figures.per_call
        );
        assert!(
            figures.per_call.contains_key("ExAllocatePool2")
                && figures
                    .per_call
                    .contains_key("StorPortAllocateRegistryBuffer")
                && figures.per_call.contains_key("StorPortRegistryRead")
                && figures.per_call.contains_key("StorPortRegistryWrite"),
            "the sweep reached the pool and every registry call: {:?}",
            figures.per_call
        );
        assert!(
            figures.not_started > 0 && figures.not_started < figures.sites,
            "some failures stop the adapter and some do not"
        );
    }
}

#[test]
fn failing_each_fallible_call_once_ends_in_a_documented_outcome() {
    report("each call fails once", false);
}

#[test]
fn failing_every_call_from_the_nth_on_ends_in_a_documented_outcome() {
    report("every call from the N-th on fails", true);
}

#[test]
fn without_a_registry_buffer_the_adapter_starts_on_defaults() {
    let scenario = &scenarios()[1];
    let (registry, service) = registry_with(&scenario.settings);
    let adapter = Adapter::unentered(registry, &service);
    adapter.port.inject_faults(vec![
        "StorPortAllocateRegistryBuffer@1"
            .parse()
            .expect("a valid specification"),
    ]);
    adapter.port.driver_entry().expect("DriverEntry");
    adapter
        .port
        .start()
        .expect("the adapter starts on defaults");
    assert_eq!(adapter.report_luns().len(), 1, "DiskCount's default");
    assert_eq!(
        adapter.capacity(0),
        ((64 << 20) / 512 - 1, 512),
        "DiskSizeMiB's and SectorSize's defaults"
    );
    let inquiry = adapter.inquiry(0);
    assert_eq!(
        &inquiry[8..16],
        b"VSTOR   ",
        "VendorId's default, not FAULTS"
    );
    assert_eq!(adapter.port.injected_faults().len(), 1);
    adapter.finish_clean();
}

#[test]
fn start_count_is_written_even_when_no_buffer_fits_effective_config() {
    let scenario = &scenarios()[1];
    let (registry, service) = registry_with(&scenario.settings);
    let adapter = Adapter::unentered(registry, &service);
    // The first buffer (64 bytes) reads every value of this scenario; the
    // write-back then needs a larger one for EffectiveConfig, which fails.
    adapter.port.inject_faults(vec![
        "StorPortAllocateRegistryBuffer@2.."
            .parse()
            .expect("a valid specification"),
    ]);
    adapter.port.driver_entry().expect("DriverEntry");
    adapter.port.start().expect("the adapter starts");
    assert_eq!(
        adapter.port.injected_faults().len(),
        1,
        "only the write-back grew the buffer"
    );
    assert_eq!(
        adapter.value(&adapter.adapter_key(), "StartCount"),
        Some(RegValue::dword(1)),
        "StartCount is written before the buffer is grown"
    );
    assert_eq!(
        adapter.value(&adapter.adapter_key(), "EffectiveConfig"),
        None,
        "no buffer held EffectiveConfig"
    );
    assert!(
        adapter.dbgprint().iter().any(|line| line.starts_with(
            "vstor: no registry buffer large enough for EffectiveConfig; it is not written"
        )),
        "{:?}",
        adapter.dbgprint()
    );
    assert_eq!(adapter.report_luns().len(), scenario.luns);
    adapter.finish_clean();
}

#[test]
fn a_failed_disk_allocation_frees_the_disks_built_before_it() {
    let scenario = &scenarios()[1];
    let baseline = run_once(scenario, &[]);
    let pool_calls = baseline.calls["ExAllocatePool2"];
    // The last allocations of find-adapter are the last disk's chunks:
    // failing one leaves the first disks built and to be freed.
    let (registry, service) = registry_with(&scenario.settings);
    let adapter = Adapter::unentered(registry, &service);
    adapter
        .port
        .inject_faults(vec![FaultSpec::once("ExAllocatePool2", pool_calls)]);
    adapter.port.driver_entry().expect("DriverEntry");
    assert_eq!(
        adapter.port.start(),
        Err(PortError::FindAdapterFailed(SP_RETURN_ERROR))
    );
    assert!(
        adapter
            .dbgprint()
            .iter()
            .any(|line| line.contains("the adapter does not start")),
        "the driver says why: {:#?}",
        adapter.dbgprint()
    );
    assert_eq!(adapter.pool_blocks(), 0, "every disk built so far is freed");
    assert_eq!(adapter.pool_bytes(*b"vstD"), 0);
    adapter.port.unload();
    assert!(
        adapter
            .findings()
            .iter()
            .all(|finding| finding.rule == Rule::AdapterStartFailed),
        "{:#?}",
        adapter.findings()
    );
}

#[test]
fn storemu_run_fail_injects_the_named_call_and_logs_it() {
    let args = RunArgs {
        driver: common::readable_sys_path(),
        inf: Some(common::root().join("inf").join("vstor.inf")),
        set: Vec::new(),
        json: true,
        allow_missing: false,
        watchdog_ms: cli::DEFAULT_WATCHDOG_MS,
        srb_timeout_ms: cli::DEFAULT_SRB_TIMEOUT_MS,
        storport_lock_irql: storport_emu::port::locks::StorPortLockIrql::Strict,
    };
    let faults = cli::parse_faults(&["ExAllocatePool2@1".to_owned()]).expect("valid");
    let report = cli::run_with_faults(&args, &[], &faults);
    assert_eq!(report.outcome, "violations", "{:#?}", report.findings);
    assert_eq!(
        report
            .findings
            .iter()
            .map(|finding| finding.rule)
            .collect::<Vec<_>>(),
        vec![Rule::AdapterStartFailed],
        "only the start fails: no leak, no bug check"
    );
    let log = report.to_json()["log"].to_string();
    assert!(
        log.contains("fault injection: call 1 of ExAllocatePool2 (from HwFindAdapter) failed"),
        "{log}"
    );
    let faults = cli::parse_faults(&["StorPortRegistryRead@1..".to_owned()]).expect("valid");
    let report = cli::run_with_faults(&args, &[], &faults);
    assert_eq!(
        report.outcome, "clean",
        "no registry value readable: defaults, {:#?}",
        report.findings
    );
    assert_eq!(report.luns.len(), 1);
    let error = cli::parse_faults(&["ExAllocatePool2".to_owned()]).expect_err("no count");
    assert!(error.contains("CALL@N"), "{error}");
}
