//! Shared by the port's integration tests: building driver images with
//! `tools/build-driver.sh` when they are missing or stale.
//!
//! Test runners such as nextest run every test in its own process, so the
//! check-and-build step holds an exclusive file lock: one process builds,
//! the others wait and then find the image fresh.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn newest(path: &Path) -> SystemTime {
    let Ok(meta) = std::fs::metadata(path) else {
        return SystemTime::UNIX_EPOCH;
    };
    if !meta.is_dir() {
        return meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    }
    std::fs::read_dir(path).map_or(SystemTime::UNIX_EPOCH, |entries| {
        entries
            .flatten()
            .map(|e| newest(&e.path()))
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    })
}

/// `<out>/<package>.sys`, built with `features` when it is missing or older
/// than anything under `sources` (paths relative to the workspace root).
pub fn driver_image(package: &str, out: &str, features: &str, sources: &[&str]) -> PathBuf {
    let root = root();
    let image = root.join(out).join(format!("{package}.sys"));
    std::fs::create_dir_all(root.join("target")).expect("target directory");
    let lock = std::fs::File::create(root.join("target/.driver-build.lock")).expect("lock file");
    lock.lock().expect("exclusive build lock");
    let source_time = sources
        .iter()
        .map(|s| newest(&root.join(s)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let built = std::fs::metadata(&image).and_then(|m| m.modified()).ok();
    if built.is_none_or(|time| time < source_time) {
        let mut command = Command::new("bash");
        command.current_dir(&root).args([
            "tools/build-driver.sh",
            "--package",
            package,
            "--out",
            out,
        ]);
        if !features.is_empty() {
            command.args(["--features", features]);
        }
        let status = command.status().expect("tools/build-driver.sh runs");
        assert!(status.success(), "building {out}/{package}.sys failed");
    }
    lock.unlock().expect("release the build lock");
    image
}

/// The broken-miniport fixture built with `features` ("" for the run-time
/// breakages).
pub fn fixture(features: &str) -> PathBuf {
    let out = if features.is_empty() {
        "target/fixtures/broken-miniport".to_owned()
    } else {
        format!("target/fixtures/broken-miniport-{features}")
    };
    driver_image(
        "broken-miniport",
        &out,
        features,
        &[
            "crates/storport-emu/fixtures/broken-miniport",
            "crates/storport-sys/src",
        ],
    )
}
