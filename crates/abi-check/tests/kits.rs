//! `vstor-abi-check` on small test kits laid out as the WDK lays out its
//! headers (`Include/<version>/km`, `shared`), with include names whose case
//! differs from the files' names, a compiler header in `km/crt` (where the
//! WDK keeps `excpt.h`) and bit fields. The kits declare only a few of the
//! items storport-sys declares, so most runs pass `--allow-missing`.

use std::process::Command;

fn check(kit: &str, extra: &[&str]) -> (i32, Vec<String>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/");
    let output = Command::new(env!("CARGO_BIN_EXE_vstor-abi-check"))
        .args(["--wdk", &format!("{dir}{kit}")])
        .args(extra)
        .env_remove("WDKContentRoot")
        .output()
        .expect("vstor-abi-check runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .filter(|l| !l.starts_with("missing: ") && !l.starts_with("checking "))
        .map(str::to_owned)
        .collect();
    (output.status.code().unwrap_or(-1), lines)
}

#[test]
fn planted_mismatch_is_reported_with_exit_1() {
    let (code, lines) = check("kit-mismatch", &["--allow-missing"]);
    assert_eq!(
        lines,
        [
            "bits: STOR_DEVICE_CAPABILITIES_EX.DeviceD1 is mask 0x2 in the headers, 0x1 of Flags in storport-sys",
            "bits: STOR_DEVICE_CAPABILITIES_EX.DeviceD2 is mask 0x1 in the headers, 0x2 of Flags in storport-sys",
            "constant: MINIPORT_REG_DWORD is 0x5 in the headers, 0x4 in storport-sys",
            "3 differences, 66 items not found in the headers, 35 items compared",
        ]
    );
    assert_eq!(code, 1);
}

#[test]
fn matching_headers_report_zero_differences_with_exit_0() {
    let (code, lines) = check("kit-clean", &["--allow-missing"]);
    assert_eq!(
        lines,
        ["0 differences, 67 items not found in the headers, 32 items compared"]
    );
    assert_eq!(code, 0);
}

#[test]
fn a_directory_without_a_kit_is_refused_with_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_vstor-abi-check"))
        .args(["--wdk", env!("CARGO_MANIFEST_DIR")])
        .output()
        .expect("vstor-abi-check runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("holds no Include/<version>/km/storport.h")
    );
}

#[test]
fn items_the_headers_lack_are_differences_without_allow_missing() {
    let (code, lines) = check("kit-clean", &[]);
    assert_eq!(
        lines,
        ["0 differences, 67 items not found in the headers, 32 items compared"]
    );
    assert_eq!(code, 1);
}
