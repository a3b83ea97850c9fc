//! Every file storemu reads from a path is read through a bounded reader:
//! a device that never ends (`/dev/zero`, which reports size 0) or a file
//! over the cap is refused with a message naming the file, its size (or
//! "more than") and the cap, and nothing is loaded, served or checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use storport_emu::files::{self, FileKind, MAX_DRIVER_IMAGE_BYTES, MAX_INF_BYTES, ReadError, Size};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn storemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storemu"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("storemu runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dev_zero_is_refused_after_cap_plus_one_bytes() {
    let error = files::read_capped(Path::new("/dev/zero"), FileKind::Inf, 4096)
        .expect_err("/dev/zero never ends");
    let ReadError::TooLarge { size, cap, .. } = &error else {
        panic!("expected TooLarge, got {error}");
    };
    assert_eq!((*size, *cap), (Size::MoreThan(4096), 4096));
    assert_eq!(
        error.to_string(),
        "the INF file /dev/zero holds more than 4096 bytes (0 MiB), the most storemu reads from an INF file (it is not a regular file, or it grew while being read); expected an INF file of at most that size"
    );
}

#[test]
fn a_regular_file_over_the_cap_is_refused_with_its_size() {
    let path = std::env::temp_dir().join(format!("storemu-file-caps-{}.inf", std::process::id()));
    std::fs::write(&path, vec![b';'; 5000]).expect("temporary file");
    let error = files::read_capped(&path, FileKind::Inf, 4096).expect_err("over the cap");
    let exact = files::read_capped(&path, FileKind::Inf, 5000);
    std::fs::remove_file(&path).expect("temporary file removed");
    assert!(
        matches!(
            error,
            ReadError::TooLarge {
                size: Size::Exactly(5000),
                cap: 4096,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains(" is 5000 bytes, more than the 4096 bytes"),
        "{error}"
    );
    assert_eq!(exact.expect("exactly the cap is read").len(), 5000);
}

#[test]
fn run_refuses_dev_zero_as_driver_image() {
    let out = storemu(&["run", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "storemu: the driver image /dev/zero holds more than {MAX_DRIVER_IMAGE_BYTES} bytes (64 MiB), the most storemu reads from a driver image"
        )) && stdout.contains("; nothing was loaded."),
        "{stdout}"
    );
}

#[test]
fn run_refuses_dev_zero_as_inf() {
    // The image is read first and only loaded after the INF is installed,
    // so any small file gets the run as far as the INF.
    let out = storemu(&["run", "Cargo.toml", "--inf", "/dev/zero", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["outcome"], "load-error");
    let error = report["error"].as_str().expect("an error sentence");
    assert!(
        error.starts_with(&format!(
            "the INF file /dev/zero holds more than {MAX_INF_BYTES} bytes (16 MiB)"
        )) && error.ends_with("; nothing was loaded."),
        "{error}"
    );
}

#[test]
fn inf_lint_refuses_dev_zero_as_inf_and_as_image() {
    let out = storemu(&["inf-lint", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "storemu: the INF file /dev/zero holds more than {MAX_INF_BYTES} bytes"
        )) && stderr.trim_end().ends_with("nothing was checked."),
        "{stderr}"
    );
    let out = storemu(&["inf-lint", "inf/vstor.inf", "--image", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "storemu: the driver image /dev/zero holds more than {MAX_DRIVER_IMAGE_BYTES} bytes"
        )),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_dev_zero_as_driver_image() {
    let out = storemu(&["serve", "/dev/zero", "--no-nbd", "--no-iscsi"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "storemu: the driver image /dev/zero holds more than {MAX_DRIVER_IMAGE_BYTES} bytes"
        )) && stderr.trim_end().ends_with("; nothing was served."),
        "{stderr}"
    );
}
