//! Every verifier rule against the deliberately broken miniport
//! (`crates/storport-emu/fixtures/broken-miniport`), cross-built to a real
//! `.sys` and run through `storemu run --json`: each breakage must produce
//! exactly its rule, and the unbroken fixture must run clean.
//!
//! The fixture images are built by `tools/build-driver.sh` when they are
//! missing or older than the fixture's sources (the first build of `core`
//! for the Windows target takes about a minute; later ones a few seconds).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod port_support;

use port_support::fixture;

struct Run {
    code: i32,
    json: Value,
}

fn storemu(image: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .arg("run")
        .arg(image)
        .args(args)
        .arg("--special-pool")
        .arg("--json")
        .output()
        .expect("storemu runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "storemu printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    Run {
        code: output.status.code().unwrap_or(-1),
        json,
    }
}

fn rules(run: &Run) -> Vec<String> {
    let mut rules: Vec<String> = run.json["findings"]
        .as_array()
        .expect("findings list")
        .iter()
        .map(|f| f["rule"].as_str().expect("rule name").to_owned())
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

/// Runs the fixture with `Break=<breakage>` and checks that exactly `rule`
/// was found, with the outcome and exit status of the command contract.
fn expect_rule(breakage: &str, rule: &str, outcome: &str) -> Run {
    expect_rule_with(breakage, &[], rule, outcome)
}

/// As [`expect_rule`], with more `storemu run` options.
fn expect_rule_with(breakage: &str, options: &[&str], rule: &str, outcome: &str) -> Run {
    let set = format!("Break=sz:{breakage}");
    let mut args = vec!["--set", set.as_str()];
    args.extend_from_slice(options);
    let run = storemu(&fixture(""), &args);
    assert_eq!(
        rules(&run),
        vec![rule.to_owned()],
        "breakage {breakage}: {}",
        run.json
    );
    assert_eq!(run.json["outcome"], outcome, "breakage {breakage}");
    assert_eq!(run.code, 1, "breakage {breakage}: exit status");
    run
}

#[test]
fn unbroken_fixture_runs_clean_and_its_disk_is_probed() {
    let run = storemu(&fixture(""), &[]);
    assert_eq!(run.json["outcome"], "clean", "{}", run.json);
    assert_eq!(run.code, 0);
    let luns = run.json["luns"].as_array().expect("luns");
    assert_eq!(luns.len(), 1, "{}", run.json);
    assert_eq!(luns[0]["vendor"], "BROKEN");
    assert_eq!(luns[0]["product"], "FIXTURE DISK");
    assert_eq!(luns[0]["block_size"], 512);
    assert_eq!(luns[0]["blocks"], 16);
    assert_eq!(luns[0]["write_verified"], true);
    let dbgprint = run.json["dbgprint"].as_array().expect("dbgprint");
    assert_eq!(
        dbgprint,
        &vec![Value::from(
            "broken-miniport: break= (mode 0), 8192-byte disk"
        )]
    );
}

#[test]
fn the_break_value_reaches_the_driver_and_its_dbgprint() {
    let run = expect_rule("registry-leak", "RegistryBufferLeak", "violations");
    assert_eq!(
        run.json["dbgprint"][0],
        "broken-miniport: break=registry-leak (mode 9), 8192-byte disk"
    );
}

#[test]
fn double_completion() {
    let run = expect_rule("double-complete", "DoubleCompletion", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(finding["bugcheck"], "0xF1");
    assert_eq!(finding["params"][0], "0x2004");
    assert_eq!(finding["routine"], "HwStartIo");
}

#[test]
fn completing_a_request_the_port_never_started() {
    let run = expect_rule("complete-foreign", "ForeignSrb", "violations");
    assert_eq!(run.json["findings"][0]["routine"], "HwStartIo");
}

#[test]
fn status_pending() {
    expect_rule("status-pending", "StorPortStatusPending", "violations");
}

#[test]
fn registry_above_passive() {
    expect_rule("registry-irql", "StorPortIrql", "violations");
}

#[test]
fn virtual_device_not_set() {
    expect_rule("no-virtual-device", "StorPortVirtualDevice2", "violations");
}

#[test]
fn transfer_limits_not_set() {
    expect_rule("no-transfer-limits", "StorPortFindAdapter", "violations");
}

#[test]
fn allocation_in_start_io() {
    expect_rule("alloc-in-startio", "SpNoWait", "violations");
}

#[test]
fn registry_buffer_freed_twice() {
    expect_rule(
        "registry-double-free",
        "RegistryBufferDoubleFree",
        "violations",
    );
}

#[test]
fn foreign_registry_buffer_freed() {
    expect_rule(
        "registry-foreign-free",
        "RegistryBufferForeign",
        "violations",
    );
}

#[test]
fn supported_type_list_overrun() {
    let run = expect_rule(
        "control-list-overrun",
        "SupportedTypeListOverrun",
        "violations",
    );
    assert_eq!(
        run.json["findings"][0]["params"],
        serde_json::json!(["0x1E", "0x1E"])
    );
}

#[test]
fn pool_leak_at_unload() {
    let run = expect_rule("pool-leak", "PoolLeak", "bugcheck");
    let message = run.json["findings"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("64 bytes") && message.contains("'Brkn'"),
        "{message}"
    );
}

#[test]
fn bad_pool_free() {
    expect_rule("bad-pool-free", "BadPoolFree", "bugcheck");
}

#[test]
fn stall_over_a_tenth_of_a_second() {
    let run = expect_rule("long-stall", "StallTooLong", "bugcheck");
    assert_eq!(
        run.json["findings"][0]["params"],
        serde_json::json!(["0x2001", "0x30D40"])
    );
}

#[test]
fn transfer_length_beyond_the_buffer() {
    expect_rule("transfer-too-long", "TransferLength", "violations");
}

#[test]
fn panic_is_a_bug_check_through_ke_bug_check_ex() {
    let run = expect_rule("panic", "KeBugCheckEx", "bugcheck");
    assert_eq!(run.json["findings"][0]["bugcheck"], "0x42524B4E");
}

#[test]
fn access_violation_in_start_io_is_contained() {
    let run = expect_rule("fault", "DriverFault", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(finding["routine"], "HwStartIo");
    assert!(
        finding["message"]
            .as_str()
            .expect("message")
            .contains("broken-miniport.sys+0x"),
        "{finding}"
    );
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    let run = expect_rule("stack-overflow", "DriverFault", "bugcheck");
    assert!(
        run.json["findings"][0]["message"]
            .as_str()
            .expect("message")
            .contains("stack overflow")
    );
}

#[test]
fn bad_init_size_fails_driver_entry_with_revision_mismatch() {
    let run = storemu(&fixture("init-size"), &[]);
    assert_eq!(
        rules(&run),
        vec!["InitDataRevision".to_owned()],
        "{}",
        run.json
    );
    assert!(
        run.json["findings"][0]["message"]
            .as_str()
            .expect("message")
            .contains("STATUS_REVISION_MISMATCH")
    );
    assert_eq!(run.code, 1);
}

/// Runs the fixture built with `feature`, which must fail `DriverEntry`
/// with one `InitDataInvalid` finding whose message contains `needle`.
fn expect_invalid_init_data(feature: &str, needle: &str) {
    let run = storemu(&fixture(feature), &[]);
    assert_eq!(
        rules(&run),
        vec!["InitDataInvalid".to_owned()],
        "{}",
        run.json
    );
    assert!(
        run.json["findings"][0]["message"]
            .as_str()
            .expect("message")
            .contains(needle),
        "{}",
        run.json
    );
    assert_eq!(run.code, 1);
}

#[test]
fn missing_callback_fails_driver_entry() {
    expect_invalid_init_data("missing-callback", "HwResetBus");
}

#[test]
fn missing_adapter_control_fails_driver_entry() {
    expect_invalid_init_data(
        "missing-adapter-control",
        "the required HwAdapterControl is NULL",
    );
}

#[test]
fn usage_and_load_errors_have_their_exit_statuses() {
    let usage = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .args(["run"])
        .output()
        .expect("storemu runs");
    assert_eq!(usage.status.code(), Some(64));
    let bad_set = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .args(["run", "x.sys", "--set", "NoEquals"])
        .output()
        .expect("storemu runs");
    assert_eq!(bad_set.status.code(), Some(64));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let run = storemu(&manifest, &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.json["outcome"], "load-error");
}

#[test]
fn endless_loop_is_stopped_by_the_watchdog() {
    let run = expect_rule_with("hang", &["--watchdog-ms", "200"], "DriverHang", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(finding["routine"], "HwFindAdapter");
    assert!(
        finding["message"]
            .as_str()
            .expect("message")
            .contains("200 ms"),
        "{finding}"
    );
}

#[test]
fn request_never_completed_times_out() {
    let run = expect_rule_with(
        "never-complete",
        &["--srb-timeout-ms", "100"],
        "SrbTimeout",
        "violations",
    );
    assert_eq!(
        run.json["luns"],
        serde_json::json!([]),
        "no LUN answered the scan"
    );
}

#[test]
fn missing_import_is_a_load_error_unless_allowed() {
    let image = fixture("missing-import");
    let refused = storemu(&image, &[]);
    assert_eq!(refused.code, 2);
    assert_eq!(refused.json["outcome"], "load-error");
    assert!(
        refused.json["error"]
            .as_str()
            .expect("error")
            .contains("ntoskrnl.exe!ZwYieldExecution"),
        "{}",
        refused.json
    );
    let allowed = storemu(&image, &["--allow-missing"]);
    assert_eq!(
        rules(&allowed),
        vec!["MissingImport".to_owned()],
        "{}",
        allowed.json
    );
    assert_eq!(allowed.json["outcome"], "bugcheck");
    assert_eq!(allowed.json["findings"][0]["routine"], "HwStartIo");
    assert_eq!(allowed.code, 1);
}

#[test]
fn data_that_does_not_read_back_is_a_finding() {
    let run = expect_rule("drop-writes", "DataIntegrity", "violations");
    assert_eq!(run.json["luns"][0]["write_verified"], false);
}

#[test]
fn find_adapter_failure_stops_the_start() {
    let run = expect_rule("not-found", "AdapterStartFailed", "violations");
    assert!(
        run.json["findings"][0]["message"]
            .as_str()
            .expect("message")
            .contains("returned 0")
    );
    assert_eq!(run.json["luns"], serde_json::json!([]));
}

#[test]
fn returning_at_a_raised_irql_is_reported() {
    let run = expect_rule("raise-irql", "IrqlNotRestored", "violations");
    assert_eq!(run.json["findings"][0]["routine"], "HwFindAdapter");
    assert_eq!(
        run.json["findings"][0]["params"],
        serde_json::json!(["0x0", "0x2"])
    );
}

#[test]
fn a_spin_lock_never_released_is_held_on_return_then_taken_again() {
    // HwStartIo keeps StartIoLock: reported when it returns; the next
    // request, on the same processor, asks for it again (a deadlock on
    // Windows), which ends the run.
    let run = storemu(&fixture(""), &["--set", "Break=sz:lock-held"]);
    let findings = run.json["findings"].as_array().expect("findings");
    let rules: Vec<&str> = findings
        .iter()
        .map(|f| f["rule"].as_str().expect("rule"))
        .collect();
    assert_eq!(
        rules,
        ["SpinLockHeldOnReturn", "SpinLockRecursive"],
        "{}",
        run.json
    );
    assert!(findings.iter().all(|f| f["routine"] == "HwStartIo"));
    assert_eq!(
        findings[0]["params"][1], findings[1]["params"][1],
        "one lock"
    );
    assert_eq!(run.json["outcome"], "bugcheck");
    assert_eq!(run.code, 1);
}

/// Runs `breakage`, which must produce exactly one finding of `rule`, a 0xC4
/// bug check with parameter 1 `subcode`, in `routine`; returns the finding.
fn expect_spin_finding(breakage: &str, rule: &str, subcode: &str, routine: &str) -> Value {
    let run = expect_rule(breakage, rule, "bugcheck");
    let findings = run.json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{}", run.json);
    let finding = findings[0].clone();
    assert_eq!(finding["bugcheck"], "0xC4", "{finding}");
    assert_eq!(finding["params"][0], subcode, "{finding}");
    assert_eq!(finding["routine"], routine, "{finding}");
    finding
}

#[test]
fn releasing_an_ex_spin_lock_nobody_holds() {
    let finding = expect_spin_finding(
        "spin-release-not-held",
        "SpinLockNotHeld",
        "0x1007",
        "HwStartIo",
    );
    let message = finding["message"].as_str().expect("message");
    assert!(
        message.contains("ExReleaseSpinLockShared") && message.contains("no processor holds"),
        "{message}"
    );
}

#[test]
fn releasing_storports_start_io_lock_without_holding_it() {
    let finding = expect_spin_finding(
        "spin-storport-release-not-held",
        "SpinLockNotHeld",
        "0x1007",
        "HwStartIo",
    );
    assert!(
        finding["message"]
            .as_str()
            .expect("message")
            .contains("StorPortReleaseSpinLock in HwStartIo released Storport's StartIoLock"),
        "{finding}"
    );
}

#[test]
fn releasing_a_queued_spin_lock_below_dispatch_level() {
    let finding = expect_spin_finding(
        "spin-release-wrong-irql",
        "SpinLockReleaseIrql",
        "0x32",
        "HwFindAdapter",
    );
    assert_eq!(finding["params"][1], "0x0", "released at PASSIVE_LEVEL");
}

#[test]
fn releasing_an_ex_spin_lock_with_another_old_irql() {
    let finding = expect_spin_finding(
        "spin-old-irql",
        "SpinLockOldIrql",
        "0x20015",
        "HwFindAdapter",
    );
    assert_eq!(finding["params"][2], "0x1", "APC_LEVEL was passed");
    assert_eq!(
        finding["params"][3], "0x0",
        "the acquire found PASSIVE_LEVEL"
    );
}

#[test]
fn acquiring_a_held_spin_lock_again_is_reported_at_once() {
    let finding = expect_spin_finding("spin-recursive", "SpinLockRecursive", "0x1000", "HwStartIo");
    assert!(
        finding["message"]
            .as_str()
            .expect("message")
            .contains("already holds"),
        "{finding}"
    );
}

#[test]
fn returning_from_start_io_with_a_spin_lock_held() {
    let finding = expect_spin_finding(
        "spin-held-on-return",
        "SpinLockHeldOnReturn",
        "0x40009",
        "HwStartIo",
    );
    assert!(
        finding["message"]
            .as_str()
            .expect("message")
            .contains("acquired with ExAcquireSpinLockExclusiveAtDpcLevel in HwStartIo"),
        "{finding}"
    );
}

#[test]
fn acquiring_a_spin_lock_above_dispatch_level() {
    let finding = expect_spin_finding(
        "spin-acquire-above-irql",
        "SpinLockAcquireIrql",
        "0x42",
        "HwInitialize",
    );
    assert_eq!(finding["params"][1], "0x5", "HwInitialize runs at DIRQL");
}

#[test]
fn acquiring_a_spin_lock_at_dpc_level_from_passive_level() {
    let finding = expect_spin_finding(
        "spin-acquire-below-dispatch",
        "SpinLockAcquireIrql",
        "0x40",
        "HwFindAdapter",
    );
    assert_eq!(finding["params"][1], "0x0");
}

#[test]
fn storports_start_io_lock_at_dirql_depends_on_the_irql_reading() {
    let finding = expect_spin_finding(
        "spin-storport-above-irql",
        "SpinLockAcquireIrql",
        "0x42",
        "HwInitialize",
    );
    assert_eq!(finding["params"][1], "0x5");
    for breakage in ["spin-storport-above-irql", "none"] {
        let set = format!("Break=sz:{breakage}");
        let run = storemu(
            &fixture(""),
            &["--set", &set, "--storport-lock-irql", "unchecked"],
        );
        assert_eq!(run.json["outcome"], "clean", "{breakage}: {}", run.json);
        assert_eq!(run.code, 0);
    }
}

#[test]
fn a_spin_lock_that_does_not_raise_irql_hangs_a_preempted_processor() {
    // Seed 1 preempts HwStartIo at PASSIVE_LEVEL while the fixture holds its
    // interlocked lock; the DISPATCH_LEVEL request on the same processor
    // spins on it until the port lets the preempted call go on.
    let run = expect_rule_with(
        "preempt-spin",
        &["--seed", "1", "--dpc-watchdog-ms", "200"],
        "PreemptedLockHolder",
        "bugcheck",
    );
    assert_eq!(run.json["seed"], 1);
    let finding = &run.json["findings"][0];
    assert_eq!(finding["bugcheck"], "0x133");
    assert_eq!(finding["params"][0], "0x0");
    assert_eq!(finding["routine"], "HwStartIo");
    let message = finding["message"].as_str().expect("message");
    assert!(
        message.matches("broken-miniport.sys+0x").count() == 2,
        "both calls' places are named: {message}"
    );
    let log = run.json["log"].as_array().expect("log");
    assert!(
        log.iter().any(|line| line
            .as_str()
            .is_some_and(|l| l.starts_with("HwStartIo preempted at IRQL 0 on processor"))),
        "{log:?}"
    );
}

#[test]
fn without_a_seed_every_start_io_runs_at_dispatch_level_and_nothing_is_preempted() {
    // The strict end of HwStartIo's range alone cannot see the same fixture.
    let run = storemu(&fixture(""), &["--set", "Break=sz:preempt-spin"]);
    assert_eq!(run.json["outcome"], "clean", "{}", run.json);
    assert_eq!(run.json["seed"], Value::Null);
}

#[test]
fn the_unbroken_fixture_runs_clean_under_several_seeds() {
    for seed in ["1", "2", "3"] {
        let run = storemu(&fixture(""), &["--seed", seed, "--dpc-watchdog-ms", "200"]);
        assert_eq!(run.json["outcome"], "clean", "seed {seed}: {}", run.json);
        let log = run.json["log"].as_array().expect("log");
        assert!(
            log.iter().any(|line| line
                .as_str()
                .is_some_and(|l| l.contains("preempted at IRQL 0"))),
            "seed {seed} preempts at least one call: {log:?}"
        );
    }
}

#[test]
fn registry_calls_from_start_io_break_storport_irql_at_either_end_of_its_range() {
    for seed in ["1", "2"] {
        expect_rule_with(
            "registry-irql",
            &["--seed", seed],
            "StorPortIrql",
            "violations",
        );
    }
}

#[test]
fn a_seed_that_is_not_a_number_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .args(["run", "x.sys", "--seed", "soon"])
        .output()
        .expect("storemu runs");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'soon' is not a seed"), "{stderr}");
}

/// The message of the first finding of `run`.
fn first_message(run: &Run) -> String {
    run.json["findings"][0]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[test]
fn one_byte_past_a_pool_block_hits_the_special_pool_guard_page() {
    let run = expect_rule("pool-overrun", "SpecialPoolOverrun", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(
        finding["bugcheck"], "0xD6",
        "driver code: DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION"
    );
    assert_eq!(finding["params"][1], "0x1", "a write");
    assert_eq!(finding["routine"], "HwFindAdapter");
    let message = first_message(&run);
    for needle in [
        "offset 0x40 of the 64-byte pool block",
        "tag 'Brkn'",
        "broken-miniport.sys+0x",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

#[test]
fn a_write_into_the_aligned_slack_is_found_on_free_and_exact_blocks_fault_at_once() {
    let run = expect_rule("pool-slack-overrun", "SpecialPoolCorruption", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(finding["bugcheck"], "0xC1");
    assert_eq!(
        finding["params"][3], "0x24",
        "bytes after the end were overwritten"
    );
    let exact = expect_rule_with(
        "pool-slack-overrun",
        &["--special-pool-end", "exact"],
        "SpecialPoolOverrun",
        "bugcheck",
    );
    assert_eq!(exact.json["findings"][0]["bugcheck"], "0xD6");
    assert!(
        first_message(&exact).contains("offset 0x64 of the 100-byte pool block"),
        "{}",
        exact.json
    );
}

#[test]
fn a_write_before_a_pool_block_is_found_on_free() {
    let run = expect_rule("pool-underrun", "SpecialPoolCorruption", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(finding["bugcheck"], "0xC1");
    assert_eq!(
        finding["params"][3], "0x23",
        "bytes before the start were overwritten"
    );
    assert!(
        first_message(&run).contains("before its start"),
        "{}",
        run.json
    );
}

#[test]
fn reading_a_freed_pool_block_faults() {
    let run = expect_rule("pool-use-after-free", "SpecialPoolUseAfterFree", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(
        finding["bugcheck"], "0xD5",
        "driver code: DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL"
    );
    assert_eq!(finding["params"][1], "0x0", "a read");
    let message = first_message(&run);
    assert!(
        message.contains("32-byte pool block") && message.contains("already freed"),
        "{message}"
    );
}

#[test]
fn a_kernel_routine_given_a_freed_block_faults_as_the_system() {
    let run = expect_rule(
        "pool-use-after-free-kernel",
        "SpecialPoolUseAfterFree",
        "bugcheck",
    );
    assert_eq!(
        run.json["findings"][0]["bugcheck"], "0xCC",
        "a kernel routine: PAGE_FAULT_IN_FREED_SPECIAL_POOL"
    );
    assert!(
        first_message(&run).contains("A kernel routine"),
        "{}",
        run.json
    );
}

#[test]
fn a_pool_block_as_large_as_physical_memory_fails_and_its_null_use_names_it() {
    let run = expect_rule("pool-unchecked", "NullCheck", "bugcheck");
    let finding = &run.json["findings"][0];
    assert_eq!(finding["bugcheck"], "0x1E");
    assert_eq!(finding["params"][3], "0x100", "the NULL-based address");
    let message = first_message(&run);
    for needle in [
        "NULL + 0x100",
        "4294967296 bytes that ExAllocatePool2 with tag 'Brkn' in HwFindAdapter",
        "not enough pool left",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    let log = run.json["log"].as_array().expect("log");
    assert!(
        log.iter().any(|line| line
            == "ExAllocatePool2 of 4294967296 bytes with tag 'Brkn' in HwFindAdapter returned NULL: it needs 4294967296 bytes of the physical memory model and the pool has 2147479552 of its 2147483648 bytes left."),
        "{log:?}"
    );
    // The learned size follows --physical-memory-mib.
    let small = expect_rule_with(
        "pool-unchecked",
        &["--physical-memory-mib", "3072"],
        "NullCheck",
        "bugcheck",
    );
    assert!(
        first_message(&small).contains("3221225472 bytes that ExAllocatePool2"),
        "{}",
        small.json
    );
}

#[test]
fn the_unbroken_fixture_is_clean_in_every_pool_model() {
    for options in [
        &["--special-pool-end", "exact"][..],
        &["--physical-memory-mib", "2049"][..],
    ] {
        let run = storemu(&fixture(""), options);
        assert_eq!(run.json["outcome"], "clean", "{options:?}: {}", run.json);
    }
}

#[test]
fn pool_options_are_checked_and_logged() {
    let bad = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .args(["run", "x.sys", "--physical-memory-mib", "0"])
        .output()
        .expect("storemu runs");
    assert_eq!(bad.status.code(), Some(64));
    let run = storemu(&fixture(""), &[]);
    assert_eq!(
        run.json["log"][1],
        "physical memory 4096 MiB, 2048 MiB held by the rest of the system: the pool may hold 2147483648 bytes; special pool on (blocks under a page start 16-byte aligned)"
    );
}

/// The `racing UNMAP` lines of a run's log.
fn racing_lines(run: &Run) -> Vec<String> {
    run.json["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|line| line.as_str())
        .filter(|line| line.starts_with("racing UNMAP"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_unmap_list_read_twice_acts_on_another_version_than_it_checked() {
    let run = expect_rule_with(
        "unmap-double-fetch",
        &["--racing-buffers"],
        "DataOutSnapshot",
        "violations",
    );
    let findings = run.json["findings"].as_array().expect("findings");
    // One finding per limit the second version breaks: 0 past the end,
    // 1 more blocks than MAXIMUM UNMAP LBA COUNT; the byte was read twice.
    let params: Vec<&Value> = findings.iter().map(|f| &f["params"]).collect();
    assert_eq!(
        params,
        vec![
            &serde_json::json!(["0x0", "0x0", "0x0", "0x0", "0x2"]),
            &serde_json::json!(["0x0", "0x0", "0x0", "0x1", "0x2"]),
        ],
        "{}",
        run.json
    );
    for finding in findings {
        assert_eq!(finding["routine"], "HwStartIo");
        let message = finding["message"].as_str().expect("message");
        assert!(
            message.contains("ended with GOOD")
                && message.contains("(blocks 1 to 15)")
                && message
                    .contains("1 (a valid list) for the first access, 257 for every later one"),
            "{message}"
        );
    }
    // Without the racing step the same driver looks correct.
    let quiet = storemu(&fixture(""), &["--set", "Break=sz:unmap-double-fetch"]);
    assert_eq!(quiet.json["outcome"], "clean", "{}", quiet.json);
    assert!(racing_lines(&quiet).is_empty());
}

#[test]
fn the_unbroken_fixture_runs_clean_under_racing_buffers() {
    for options in [
        &["--racing-buffers"][..],
        &["--racing-buffers", "--racing-partial-unmap"][..],
    ] {
        let run = storemu(&fixture(""), options);
        assert_eq!(run.json["outcome"], "clean", "{options:?}: {}", run.json);
        assert_eq!(run.code, 0);
        let lines = racing_lines(&run);
        // Two limits, two schedules each; the byte is read once, and only
        // the valid version's blocks change (LBA 1, fillers on 13..15).
        assert_eq!(lines.len(), 4, "{lines:#?}");
        for line in &lines {
            assert!(
                line.contains(": GOOD, varying byte accessed 1 time(s), blocks changed: [1")
                    && !line.contains("inconsistent"),
                "{line}"
            );
        }
        assert_eq!(run.json["luns"][0]["write_verified"], true);
    }
}

#[test]
fn a_refused_unmap_that_changed_blocks_is_judged_by_the_chosen_reading() {
    // Checked once, then read again and checked while acting: the fillers
    // (blocks 13..15) are unmapped before the second version of the last
    // descriptor is refused.
    let run = expect_rule_with(
        "unmap-double-fetch-refuse",
        &["--racing-buffers"],
        "DataOutSnapshot",
        "violations",
    );
    let findings = run.json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{}", run.json);
    assert_eq!(
        findings[0]["params"],
        serde_json::json!(["0x0", "0x0", "0x0", "0x1", "0x2"])
    );
    let message = findings[0]["message"].as_str().expect("message");
    assert!(
        message.contains("ended with CHECK CONDITION (sense key 0x5, ASC 0x26, ASCQ 0x00)")
            && message.contains("a refused list changed blocks (blocks 13 to 15)"),
        "{message}"
    );
    // SBC does not say a refused UNMAP leaves every block mapped: the other
    // reading accepts blocks that either version names ...
    let lenient = storemu(
        &fixture(""),
        &[
            "--set",
            "Break=sz:unmap-double-fetch-refuse",
            "--racing-buffers",
            "--racing-partial-unmap",
        ],
    );
    assert_eq!(lenient.json["outcome"], "clean", "{}", lenient.json);
    assert!(
        racing_lines(&lenient)
            .iter()
            .any(|line| line.contains("CHECK CONDITION") && line.contains("[13 to 15]")),
        "{}",
        lenient.json
    );
    // ... but not GOOD with blocks only the invalid version names.
    let run = expect_rule_with(
        "unmap-double-fetch",
        &["--racing-buffers", "--racing-partial-unmap"],
        "DataOutSnapshot",
        "violations",
    );
    assert_eq!(run.json["findings"].as_array().expect("findings").len(), 2);
}

#[test]
fn racing_partial_unmap_needs_racing_buffers() {
    let output = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .arg("run")
        .arg(fixture(""))
        .arg("--racing-partial-unmap")
        .output()
        .expect("storemu runs");
    assert_eq!(output.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--racing-buffers"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The phase lines of a run's log.
fn log_lines(run: &Run) -> Vec<String> {
    run.json["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|line| line.as_str().expect("log line").to_owned())
        .collect()
}

#[test]
fn unbroken_fixture_runs_clean_with_non_scsi_srbs_in_their_layouts() {
    let run = storemu(&fixture(""), &["--non-scsi-srbs"]);
    assert_eq!(run.json["outcome"], "clean", "{}", run.json);
    assert_eq!(run.code, 0);
    let log = log_lines(&run);
    for expected in [
        "SRB_FUNCTION_WMI (WMI minor function 0x0b) to 0:0:0, adapter request (SCSI_WMI_REQUEST_BLOCK)",
        "SRB_FUNCTION_PNP StorQueryCapabilities to 0:0:0 (SCSI_PNP_REQUEST_BLOCK)",
        "SRB_FUNCTION_POWER StorPowerDeviceD3 (StorPowerActionSleep) to 0:0:0 (SCSI_POWER_REQUEST_BLOCK)",
        "SRB_FUNCTION_POWER StorPowerDeviceD0 (StorPowerActionNone) to 0:0:0 (SCSI_POWER_REQUEST_BLOCK)",
        "SRB_FUNCTION_PNP StorRemoveDevice to 0:0:0 (SCSI_PNP_REQUEST_BLOCK)",
    ] {
        assert!(
            log.iter().any(|line| line == expected),
            "{expected}: {log:#?}"
        );
    }
}

#[test]
fn non_scsi_srbs_are_sent_unless_turned_off() {
    let broken = ["--set", "Break=sz:pnp-write-scsi-status"];
    let default = storemu(&fixture(""), &broken);
    assert_eq!(
        rules(&default),
        vec!["NonScsiSrbWrite".to_owned()],
        "{}",
        default.json
    );
    let run = storemu(
        &fixture(""),
        &[
            "--set",
            "Break=sz:pnp-write-scsi-status",
            "--no-non-scsi-srbs",
        ],
    );
    assert_eq!(run.json["outcome"], "clean", "{}", run.json);
    assert!(
        !log_lines(&run)
            .iter()
            .any(|line| line.contains("SRB_FUNCTION_")),
        "{}",
        run.json
    );
}

#[test]
fn writing_scsi_status_into_a_pnp_request() {
    let run = expect_rule_with(
        "pnp-write-scsi-status",
        &["--non-scsi-srbs"],
        "NonScsiSrbWrite",
        "violations",
    );
    let findings = run.json["findings"].as_array().expect("findings");
    // StorQueryCapabilities after the scan and StorRemoveDevice before the stop.
    let params: Vec<&Value> = findings.iter().map(|f| &f["params"]).collect();
    assert_eq!(
        params,
        [
            &serde_json::json!(["0x25", "0x9", "0x4"]),
            &serde_json::json!(["0x25", "0x2", "0x4"]),
        ],
        "{}",
        run.json
    );
    assert_eq!(findings[0]["routine"], "HwStartIo");
    let message = findings[0]["message"].as_str().expect("message");
    assert!(
        message.contains("PnPSubFunction (offset 0x4: 0xa5 -> 0x0)")
            && message.contains("SRB_FUNCTION_PNP StorQueryCapabilities request to 0:0:0")
            && message.contains("SCSI_PNP_REQUEST_BLOCK gives the miniport only SrbStatus"),
        "{message}"
    );
}

#[test]
fn dereferencing_the_data_buffer_of_a_pnp_request_names_the_member() {
    let run = expect_rule_with(
        "pnp-read-data-buffer",
        &["--non-scsi-srbs"],
        "DriverFault",
        "bugcheck",
    );
    let finding = &run.json["findings"][0];
    assert_eq!(finding["routine"], "HwStartIo");
    let message = finding["message"].as_str().expect("message");
    assert!(
        message.contains("SCSI_PNP_REQUEST_BLOCK.DataBuffer of an SRB_FUNCTION_PNP request")
            && message.contains("miniport drivers should ignore"),
        "{message}"
    );
}

#[test]
fn the_capabilities_buffer_reading_gives_query_capabilities_a_buffer() {
    // Under the other reading StorQueryCapabilities carries a real
    // STOR_DEVICE_CAPABILITIES_EX buffer: the clean fixture stays clean, and
    // the dereference of DataBuffer faults only at the first POWER request.
    let clean = storemu(
        &fixture(""),
        &["--non-scsi-srbs", "--pnp-capabilities-buffer"],
    );
    assert_eq!(clean.json["outcome"], "clean", "{}", clean.json);
    let run = expect_rule_with(
        "pnp-read-data-buffer",
        &["--non-scsi-srbs", "--pnp-capabilities-buffer"],
        "DriverFault",
        "bugcheck",
    );
    let message = run.json["findings"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("SCSI_POWER_REQUEST_BLOCK.DataBuffer of an SRB_FUNCTION_POWER request"),
        "{message}"
    );
}

#[test]
fn writing_a_reserved_member_of_a_wmi_request() {
    let run = expect_rule_with(
        "wmi-write-reserved",
        &["--non-scsi-srbs"],
        "NonScsiSrbWrite",
        "violations",
    );
    let findings = run.json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{}", run.json);
    assert_eq!(
        findings[0]["params"],
        serde_json::json!(["0x17", "0xB", "0x48"])
    );
    let message = findings[0]["message"].as_str().expect("message");
    assert!(
        message.contains("Reserved5 (offset 0x48: a5a5"),
        "{message}"
    );
}

/// The sequence of the lifecycle tests: every step kind but hibernate,
/// query-remove and cancel-remove, which [`the_unbroken_fixture_survives_every_lifecycle_step`]
/// adds.
const LIFECYCLE: &str = "start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove";

#[test]
fn the_unbroken_fixture_survives_every_lifecycle_step() {
    for sequence in [
        LIFECYCLE,
        "start,io,hibernate,d0,io,query-remove,cancel-remove,io,pnp-stop,pnp-start,io,remove",
        "start,io,d3,d0,io",
    ] {
        for reading in ["find-adapter", "restart"] {
            let run = storemu(
                &fixture(""),
                &["--lifecycle", sequence, "--pnp-start", reading],
            );
            assert_eq!(
                run.json["outcome"], "clean",
                "{sequence} {reading}: {}",
                run.json
            );
            assert_eq!(run.code, 0);
        }
    }
}

#[test]
fn a_bad_lifecycle_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .args(["run", "x.sys", "--lifecycle", "start,d0"])
        .output()
        .expect("storemu runs");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("step 2 'd0' cannot follow start: d0 comes after d3 or hibernate"),
        "{stderr}"
    );
}

#[test]
fn a_find_adapter_that_reinitialises_the_disk_loses_data_across_a_pnp_stop() {
    let run = expect_rule_with(
        "refind-loses-disk",
        &["--lifecycle", LIFECYCLE],
        "LifecycleDataLoss",
        "violations",
    );
    let findings = run.json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{}", run.json);
    assert_eq!(
        findings[0]["params"],
        serde_json::json!(["0x0", "0x0", "0x0", "0x1"])
    );
    assert!(
        findings[0]["message"]
            .as_str()
            .expect("message")
            .contains("block 1 after pnp-stop, pnp-start"),
        "{}",
        run.json
    );
    // Under the other reading the start is ScsiRestartAdapter: find-adapter
    // does not run again and nothing is lost.
    let restart = storemu(
        &fixture(""),
        &[
            "--set",
            "Break=sz:refind-loses-disk",
            "--lifecycle",
            LIFECYCLE,
            "--pnp-start",
            "restart",
        ],
    );
    assert_eq!(restart.json["outcome"], "clean", "{}", restart.json);
}

#[test]
fn a_find_adapter_that_overwrites_its_pool_pointer_drops_live_state() {
    let set = "Break=sz:refind-overwrites-pool";
    let run = storemu(&fixture(""), &["--set", set, "--lifecycle", LIFECYCLE]);
    // The overwrite at the second HwFindAdapter, and the block it orphaned
    // still allocated at unload.
    assert_eq!(
        rules(&run),
        vec!["LiveStateOverwritten".to_owned(), "PoolLeak".to_owned()],
        "{}",
        run.json
    );
    let findings = run.json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 2, "{}", run.json);
    assert_eq!(findings[0]["rule"], "LiveStateOverwritten");
    assert_eq!(findings[0]["routine"], "HwFindAdapter");
    assert_eq!(findings[0]["params"][0], "0x1");
    assert_eq!(findings[0]["params"][1], "0x40");
    assert_eq!(
        findings[0]["params"][2], findings[1]["params"][1],
        "the same block"
    );
    assert_eq!(run.code, 1);
}

#[test]
fn completing_a_request_again_after_a_power_cycle() {
    let run = expect_rule_with(
        "complete-again-on-restart",
        &["--lifecycle", LIFECYCLE],
        "DoubleCompletion",
        "bugcheck",
    );
    assert_eq!(run.json["findings"][0]["routine"], "HwAdapterControl");
}
