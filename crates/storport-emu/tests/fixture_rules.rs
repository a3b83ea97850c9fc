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
        serde_json::json!(["0x16", "0x16"])
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
