//! INF lint rule `MinimumBuild`: the `NTamd64` models decoration names at
//! least the Windows build the package needs, from the DIRIDs the INF uses
//! and the routines the image imports.

use storport_emu::inf::Inf;
use storport_emu::inf::lint::{LintFinding, LintRule, lint, lint_with_imports};
use storport_emu::inf::min_build::decoration_min_build;

const VSTOR_INF: &str = include_str!("../../../inf/vstor.inf");
const MANUFACTURER: &str = "%ManufacturerName% = vstor, NTamd64.10.0...19041";
const MODELS: &str = "[vstor.NTamd64.10.0...19041]";

/// `inf/vstor.inf` with its models decoration replaced by `decoration`.
fn decorated(decoration: &str) -> String {
    assert_eq!(VSTOR_INF.matches(MANUFACTURER).count(), 1);
    assert_eq!(VSTOR_INF.matches(MODELS).count(), 1);
    VSTOR_INF
        .replacen(
            MANUFACTURER,
            &format!("%ManufacturerName% = vstor, {decoration}"),
            1,
        )
        .replacen(MODELS, &format!("[vstor.{decoration}]"), 1)
}

fn parse(text: &str) -> Inf {
    Inf::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn imports(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

/// The line of the `[Manufacturer]` entry in `text`.
fn manufacturer_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with("%ManufacturerName% = vstor"))
        .expect("a [Manufacturer] entry")
        + 1
}

/// Exactly one finding, of `MinimumBuild`, on the `[Manufacturer]` entry.
fn one_minimum_build(text: &str, found: &[LintFinding]) -> String {
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].rule, LintRule::MinimumBuild, "{found:#?}");
    assert_eq!(found[0].line, Some(manufacturer_line(text)));
    found[0].message.clone()
}

#[test]
fn the_shipped_inf_passes_with_the_imports_of_the_driver() {
    let inf = parse(VSTOR_INF);
    assert_eq!(lint(&inf), []);
    assert_eq!(
        lint_with_imports(
            &inf,
            &imports(&[
                "ExAllocatePool2",
                "MmGetPhysicalMemoryRangesEx2",
                "StorPortInitialize"
            ])
        ),
        []
    );
}

#[test]
fn an_undecorated_models_section_is_flagged_for_dirid_13() {
    let text = decorated("NTamd64");
    let message = one_minimum_build(&text, &lint(&parse(&text)));
    assert!(message.contains("decorated `NTamd64`"), "{message}");
    assert!(message.contains("every build"), "{message}");
    assert!(message.contains("DIRID 13 needs build 16299"), "{message}");
    assert!(message.contains("NTamd64.10.0...16299"), "{message}");
}

#[test]
fn an_undecorated_models_section_is_flagged_for_the_imports() {
    let text = decorated("NTamd64");
    let found = lint_with_imports(&parse(&text), &imports(&["ExAllocatePool2"]));
    let message = one_minimum_build(&text, &found);
    assert!(
        message.contains("ExAllocatePool2 (imported by the image) needs build 19041"),
        "{message}"
    );
    assert!(message.contains("DIRID 13 needs build 16299"), "{message}");
    assert!(message.contains("NTamd64.10.0...19041"), "{message}");
}

#[test]
fn a_build_enough_for_dirid_13_is_too_old_for_the_imports() {
    let text = decorated("NTamd64.10.0...16299");
    assert_eq!(lint(&parse(&text)), []);
    for routine in ["ExAllocatePool2", "MmGetPhysicalMemoryRangesEx2"] {
        let found = lint_with_imports(&parse(&text), &imports(&[routine]));
        let message = one_minimum_build(&text, &found);
        assert!(
            message.contains(&format!(
                "{routine} (imported by the image) needs build 19041"
            )),
            "{message}"
        );
        assert!(!message.contains("DIRID 13"), "{message}");
        assert!(message.contains("builds from 16299 on"), "{message}");
    }
}

#[test]
fn windows_10_without_a_build_is_build_10240() {
    let text = decorated("NTamd64.10.0");
    let message = one_minimum_build(&text, &lint(&parse(&text)));
    assert!(message.contains("builds from 10240 on"), "{message}");
}

#[test]
fn the_oldest_of_several_decorations_counts() {
    let text = VSTOR_INF
        .replacen(
            MANUFACTURER,
            "%ManufacturerName% = vstor, NTamd64.10.0...19041, NTamd64",
            1,
        )
        .replacen(
            MODELS,
            "[vstor.NTamd64]\n%DeviceDesc% = vstor_Install, root\\vstor\n\n[vstor.NTamd64.10.0...19041]",
            1,
        );
    let message = one_minimum_build(&text, &lint(&parse(&text)));
    assert!(message.contains("every build"), "{message}");
}

#[test]
fn decorations_give_their_oldest_build() {
    assert_eq!(decoration_min_build("NTamd64"), Some(0));
    assert_eq!(decoration_min_build("ntAMD64.6.3"), Some(0));
    assert_eq!(decoration_min_build("NTamd64.10.0"), Some(10240));
    assert_eq!(decoration_min_build("NTamd64.10.0...19041"), Some(19041));
    assert_eq!(decoration_min_build("NTamd64.10.0.1..26100"), Some(26100));
    assert_eq!(decoration_min_build("NTx86.10.0...19041"), None);
    assert_eq!(decoration_min_build("NTamd64.10.0...x"), None);
    assert_eq!(decoration_min_build("NTamd64x"), None);
}

/// `storemu inf-lint [--image IMAGE] INF`: exit code, stdout, stderr.
fn storemu_inf_lint(inf: &str, image: Option<&std::path::Path>) -> (Option<i32>, String, String) {
    let path = std::env::temp_dir().join(format!("inf-min-build-{}.inf", std::process::id()));
    std::fs::write(&path, inf).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_storemu"));
    command.arg("inf-lint").arg(&path);
    if let Some(image) = image {
        command.arg("--image").arg(image);
    }
    let output = command.output().unwrap();
    let _ = std::fs::remove_file(&path);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn storemu_inf_lint_reports_an_image_it_cannot_read() {
    let not_pe = std::env::temp_dir().join(format!("inf-min-build-{}.sys", std::process::id()));
    std::fs::write(&not_pe, b"not a PE image").unwrap();
    let (code, _, stderr) = storemu_inf_lint(VSTOR_INF, Some(&not_pe));
    let _ = std::fs::remove_file(&not_pe);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("is not an x64 PE image with a readable import table"),
        "{stderr}"
    );
    let missing = std::env::temp_dir().join("inf-min-build-missing.sys");
    let (code, _, stderr) = storemu_inf_lint(VSTOR_INF, Some(&missing));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read the driver image"), "{stderr}");
}

#[test]
fn storemu_inf_lint_without_an_image_flags_the_dirid_only() {
    let (code, stdout, _) = storemu_inf_lint(&decorated("NTamd64.10.0...16299"), None);
    assert_eq!(code, Some(0), "{stdout}");
    let (code, stdout, _) = storemu_inf_lint(&decorated("NTamd64"), None);
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(": MinimumBuild (line "), "{stdout}");
}
