//! INF lint rules: the shipped `inf/vstor.inf` passes every rule, and for
//! every rule an INF broken in exactly that way trips exactly that rule.

use storport_emu::inf::Inf;
use storport_emu::inf::lint::{LintFinding, LintRule, lint, lint_bytes};

const VSTOR_INF: &str = include_str!("../../../inf/vstor.inf");

fn findings(text: &str) -> Vec<LintFinding> {
    lint(&Inf::parse(text).unwrap_or_else(|e| panic!("{e}")))
}

/// `inf/vstor.inf` with `from` replaced by `to` (which must occur once).
fn broken(from: &str, to: &str) -> String {
    assert_eq!(
        VSTOR_INF.matches(from).count(),
        1,
        "`{from}` should occur once in inf/vstor.inf"
    );
    VSTOR_INF.replacen(from, to, 1)
}

/// The 1-based line of `text` that contains `needle` first.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the text"))
        + 1
}

/// Asserts that every finding is of `rule`, that there is at least one, and
/// returns them.
fn trips_only(text: &str, rule: LintRule) -> Vec<LintFinding> {
    let found = findings(text);
    assert!(!found.is_empty(), "expected a {rule} finding, got none");
    let others: Vec<_> = found.iter().filter(|f| f.rule != rule).collect();
    assert!(
        others.is_empty(),
        "expected only {rule} findings, also got {others:#?}"
    );
    found
}

#[test]
fn the_shipped_inf_passes_every_rule() {
    assert_eq!(findings(VSTOR_INF), []);
    assert_eq!(lint_bytes(VSTOR_INF.as_bytes()).unwrap(), []);
}

#[test]
fn utf16_text_is_linted_like_utf8() {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in broken("PnpLockdown = 1\n", "").encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    let found = lint_bytes(&bytes).unwrap();
    assert_eq!(
        found.iter().map(|f| f.rule).collect::<Vec<_>>(),
        [LintRule::PnpLockdown]
    );
}

#[test]
fn every_rule_has_a_name_a_source_and_round_trips() {
    for rule in LintRule::ALL {
        assert!(!rule.name().is_empty());
        assert!(!rule.source().is_empty(), "{rule} names no source");
        assert_eq!(LintRule::from_name(&rule.name().to_lowercase()), Some(rule));
    }
    assert_eq!(LintRule::from_name("NoSuchRule"), None);
}

#[test]
fn signature() {
    let text = broken(
        "Signature   = \"$WINDOWS NT$\"",
        "Signature = \"$WINDOWS 95$\"",
    );
    let found = trips_only(&text, LintRule::Signature);
    assert_eq!(found[0].line, Some(line_of(&text, "$WINDOWS 95$")));
    assert!(found[0].message.contains("$WINDOWS 95$"), "{}", found[0]);
}

#[test]
fn provider() {
    trips_only(
        &broken("Provider    = %ProviderName%\n", ""),
        LintRule::Provider,
    );
}

#[test]
fn pnp_lockdown_missing_or_zero() {
    let text = broken("PnpLockdown = 1\n", "");
    let found = trips_only(&text, LintRule::PnpLockdown);
    assert_eq!(
        found[0].line,
        Some(line_of(&text, "[Version]")),
        "the header line"
    );
    let text = broken("PnpLockdown = 1", "PnpLockdown = 0");
    let found = trips_only(&text, LintRule::PnpLockdown);
    let line = line_of(&text, "PnpLockdown = 0");
    assert!(
        found[0]
            .to_string()
            .starts_with(&format!("PnpLockdown (line {line}): PnpLockdown is `0`")),
        "{}",
        found[0]
    );
}

#[test]
fn driver_ver_missing_or_malformed() {
    trips_only(
        &broken("DriverVer   = 11/25/2026,0.1.0.0\n", ""),
        LintRule::DriverVer,
    );
    for bad in [
        "2026-11-25,0.1.0.0",
        "13/25/2026,0.1.0.0",
        "02/30/2024,0.1.0.0",
        "11/25/26,0.1.0.0",
        "11/25/2026",
        "11/25/2026,0.1.0",
        "11/25/2026,0.1.0.65536",
        "11/25/2026,0.1.x.0",
        "11/25/2026,0.1.0.0,extra",
    ] {
        let text = broken("11/25/2026,0.1.0.0", bad);
        let found = trips_only(&text, LintRule::DriverVer);
        assert_eq!(found.len(), 1, "{bad}");
        assert_eq!(found[0].line, Some(line_of(&text, "DriverVer")), "{bad}");
    }
    // A leap day and one-digit month and day are real dates.
    assert_eq!(
        findings(&broken("11/25/2026,0.1.0.0", "2/29/2024,1.2.3.4")),
        []
    );
}

#[test]
fn catalog_file_missing_or_not_a_plain_cat_name() {
    trips_only(
        &broken("CatalogFile = vstor.cat\n", ""),
        LintRule::CatalogFile,
    );
    for bad in ["vstor.txt", "sub\\vstor.cat", ".cat"] {
        trips_only(
            &broken("CatalogFile = vstor.cat", &format!("CatalogFile = {bad}")),
            LintRule::CatalogFile,
        );
    }
    assert_eq!(
        findings(&broken(
            "CatalogFile = vstor.cat",
            "CatalogFile.NTamd64 = vstor.cat"
        )),
        []
    );
}

#[test]
fn class_guid_must_match_the_class() {
    // The DiskDrive GUID under Class = SCSIAdapter.
    let found = trips_only(
        &broken(
            "{4d36e97b-e325-11ce-bfc1-08002be10318}",
            "{4d36e967-e325-11ce-bfc1-08002be10318}",
        ),
        LintRule::ClassGuid,
    );
    assert!(
        found[0]
            .message
            .contains("expected {4d36e97b-e325-11ce-bfc1-08002be10318}")
    );
    trips_only(
        &broken("{4d36e97b-e325-11ce-bfc1-08002be10318}", "{4d36e97b-e325}"),
        LintRule::ClassGuid,
    );
    trips_only(
        &broken("ClassGuid   = {4d36e97b-e325-11ce-bfc1-08002be10318}\n", ""),
        LintRule::ClassGuid,
    );
    // Upper-case hex is the same GUID.
    assert_eq!(
        findings(&broken(
            "{4d36e97b-e325-11ce-bfc1-08002be10318}",
            "{4D36E97B-E325-11CE-BFC1-08002BE10318}"
        )),
        []
    );
}

#[test]
fn a_storport_miniport_is_a_scsi_adapter() {
    // A made-up class with its own GUID is consistent, but not SCSIAdapter.
    let text = broken("Class       = SCSIAdapter", "Class = RamDisks").replacen(
        "{4d36e97b-e325-11ce-bfc1-08002be10318}",
        "{12345678-1234-1234-1234-123456789abc}",
        1,
    );
    let found = trips_only(&text, LintRule::ScsiAdapterClass);
    assert!(found[0].message.contains("RamDisks"));
}

#[test]
fn destination_dirs_missing_or_unknown_dirid() {
    trips_only(
        &broken("[DestinationDirs]\nDefaultDestDir = 13\n", ""),
        LintRule::DestinationDirs,
    );
    let found = trips_only(
        &broken("DefaultDestDir = 13", "DefaultDestDir = 99"),
        LintRule::DestinationDirs,
    );
    assert!(found[0].message.contains("`99`"));
    trips_only(
        &broken("DefaultDestDir = 13", "vstor_CopyFiles = 13"),
        LintRule::DestinationDirs,
    );
}

#[test]
fn files_go_to_the_driver_store() {
    let text = broken("DefaultDestDir = 13", "DefaultDestDir = 12").replacen(
        "%13%\\vstor.sys",
        "%12%\\vstor.sys",
        1,
    );
    let found = trips_only(&text, LintRule::DriverStoreDestination);
    assert!(found[0].message.contains("DIRID 12"));
}

/// The shipped `[Manufacturer]` entry and its models section header.
const MANUFACTURER: &str = "%ManufacturerName% = vstor, NTamd64.10.0...19041";
const MODELS: &str = "[vstor.NTamd64.10.0...19041]";

#[test]
fn models_are_decorated_for_ntamd64() {
    trips_only(
        &broken(MANUFACTURER, "%ManufacturerName% = vstor"),
        LintRule::Ntamd64Models,
    );
    trips_only(
        &broken(MANUFACTURER, "%ManufacturerName% = vstor, NTx86"),
        LintRule::Ntamd64Models,
    );
    trips_only(
        &broken(
            &format!("{MODELS}\n%DeviceDesc% = vstor_Install, root\\vstor\n"),
            "",
        ),
        LintRule::Ntamd64Models,
    );
    // A target OS version after the architecture is still NTamd64 (the
    // build number is MinimumBuild's concern: 16299 is enough for DIRID 13).
    assert_eq!(
        findings(
            &broken(
                MANUFACTURER,
                "%ManufacturerName% = vstor, NTamd64.10.0...16299"
            )
            .replacen(MODELS, "[vstor.NTamd64.10.0...16299]", 1)
        ),
        []
    );
}

#[test]
fn the_service_is_associated_with_the_device() {
    let found = trips_only(
        &broken(
            "AddService = vstor, 0x00000002, vstor_Service",
            "AddService = vstor, 0, vstor_Service",
        ),
        LintRule::AssociatedService,
    );
    assert!(found[0].message.contains("vstor_Install"));
}

#[test]
fn service_type_is_kernel_driver() {
    let found = trips_only(
        &broken("ServiceType    = 1 ", "ServiceType    = 2 "),
        LintRule::ServiceType,
    );
    assert!(found[0].message.contains("`2`"));
}

#[test]
fn start_type_in_range() {
    trips_only(
        &broken("StartType      = 3 ", "StartType      = 5 "),
        LintRule::StartType,
    );
    trips_only(
        &broken(
            "StartType      = 3               ; SERVICE_DEMAND_START\n",
            "",
        ),
        LintRule::StartType,
    );
    assert_eq!(
        findings(&broken("StartType      = 3 ", "StartType      = 0 ")),
        []
    );
}

#[test]
fn error_control_in_range() {
    trips_only(
        &broken("ErrorControl   = 1 ", "ErrorControl   = 4 "),
        LintRule::ErrorControl,
    );
}

#[test]
fn service_binary_under_the_driver_store_or_drivers() {
    trips_only(
        &broken("%13%\\vstor.sys", "%11%\\vstor.sys"),
        LintRule::ServiceBinary,
    );
    trips_only(
        &broken("ServiceBinary  = %13%\\vstor.sys\n", ""),
        LintRule::ServiceBinary,
    );
    trips_only(
        &broken("%13%\\vstor.sys", "%13%\\sub\\vstor.sys"),
        LintRule::ServiceBinary,
    );
    assert_eq!(findings(&broken("%13%\\vstor.sys", "%12%\\vstor.sys")), []);
}

#[test]
fn no_absolute_paths() {
    for bad in [
        "C:\\drivers\\vstor.sys",
        "\\\\server\\share\\x",
        "\\Windows\\x",
    ] {
        let text = broken(
            "HKR, \"Parameters\\Device\", \"DiskCount\",       0x00010001, 1",
            &format!("HKR, \"Parameters\\Device\", \"Image\", 0x00000000, \"{bad}\""),
        );
        let found = trips_only(&text, LintRule::NoAbsolutePaths);
        assert_eq!(found.len(), 1, "{bad}");
        assert!(found[0].message.contains(bad), "{}", found[0]);
    }
}

proptest::proptest! {
    /// Linting never panics, whatever the INF's values are (multi-byte text
    /// included); it only reports.
    #[test]
    fn lint_never_panics(value in "\\PC{0,40}", which in 0usize..6) {
        let target = ["vstor.cat", "11/25/2026,0.1.0.0", "%13%\\vstor.sys", "13", "NTamd64", "SCSIAdapter"][which];
        let text = VSTOR_INF.replacen(target, &value.replace(['\n', '\r', '"', '%', ';', '[', '\\'], "é"), 1);
        if let Ok(inf) = Inf::parse(&text) {
            let _ = lint(&inf);
        }
    }
}

/// `storemu inf-lint FILE` on `text`: exit code, stdout, stderr.
fn storemu_inf_lint(name: &str, text: Option<&str>) -> (Option<i32>, String, String) {
    let path = std::env::temp_dir().join(format!("inf-lint-{}-{name}.inf", std::process::id()));
    if let Some(text) = text {
        std::fs::write(&path, text).unwrap();
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_storemu"))
        .arg("inf-lint")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn storemu_inf_lint_passes_the_shipped_inf() {
    let (code, stdout, _) = storemu_inf_lint("clean", Some(VSTOR_INF));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("passes all 17 INF rules"), "{stdout}");
}

#[test]
fn storemu_inf_lint_prints_each_finding_and_fails() {
    let text =
        broken("PnpLockdown = 1\n", "").replacen("StartType      = 3 ", "StartType      = 9 ", 1);
    let (code, stdout, _) = storemu_inf_lint("broken", Some(&text));
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains(": PnpLockdown (line "), "{stdout}");
    assert!(lines[1].contains(": StartType (line "), "{stdout}");
    assert!(lines[1].contains("`9`"), "{stdout}");
}

#[test]
fn storemu_inf_lint_reports_an_unreadable_file() {
    let (code, _, stderr) = storemu_inf_lint("missing", None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read the INF file"), "{stderr}");
    let (code, _, stderr) = storemu_inf_lint("syntax", Some("[Version\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is not a readable INF file"), "{stderr}");
}
