//! The bounded part of the iSCSI compliance run that the test suite
//! includes: libiscsi's `iscsi-test-cu` (Debian `libiscsi-bin`) against
//! vstor.sys under `storemu serve`, for the read, write, verify, capacity,
//! inquiry, mode sense, unmap and write same suites and the iSCSI residual,
//! `CmdSN` and task management suites (`tools/compliance.sh --quick
//! --no-tgt`). Every skip must be listed in `tests/compliance/expected.toml`
//! and no test may fail. `cargo make compliance` runs every suite, with tgt
//! as the reference.

use std::process::Command;

#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod port_support;
#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod serve_support;

#[test]
fn iscsi_test_cu_quick_suites_pass_on_vstor() {
    let sys = serve_support::vstor();
    let root = port_support::root();
    let output = Command::new("bash")
        .current_dir(&root)
        .arg("tools/compliance.sh")
        .args(["--quick", "--no-tgt"])
        .env("STOREMU", env!("CARGO_BIN_EXE_storemu"))
        .env(
            "VSTOR_PACKAGE_DIR",
            sys.parent().expect("the image's directory"),
        )
        .output()
        .expect("bash runs tools/compliance.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tools/compliance.sh --quick --no-tgt failed (it needs iscsi-test-cu from the Debian \
         package libiscsi-bin, which it installs itself when run as root):\n{stdout}\n{stderr}"
    );
    let total = stdout
        .lines()
        .find(|l| l.starts_with("vstor: "))
        .expect("a total line");
    let passed: u32 = total
        .trim_start_matches("vstor: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a pass count");
    assert!(passed >= 90, "{total}");
    assert!(total.ends_with(" 0 fail"), "{total}");
}
