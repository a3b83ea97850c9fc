//! The C peer: a minimal Storport virtual miniport in C (`cpeer/peer.c`),
//! built here with mingw-w64 and checked under `storemu run` before it is
//! measured.
//!
//! Two images come from the one source: `peer.sys` takes the disk's
//! `EX_SPIN_LOCK` around each copy as vstor takes its chunk's (shared to
//! read, exclusive to write, through the same `ntoskrnl.exe` imports), and
//! `peer-nolock.sys` takes none. The imports resolve through import
//! libraries `dlltool` makes from `cpeer/storport.def` and
//! `cpeer/ntoskrnl.def`, so the import table names `storport.sys` and
//! `ntoskrnl.exe` as vstor's does.

use std::path::{Path, PathBuf};
use std::process::Command;

use storport_emu::cli::{RunArgs, run};

/// The C compiler, as Debian's `gcc-mingw-w64-x86-64` installs it.
const GCC: &str = "x86_64-w64-mingw32-gcc";
/// Its `dlltool`.
const DLLTOOL: &str = "x86_64-w64-mingw32-dlltool";
/// Code generation options of the peer: those of a kernel driver built with
/// mingw-w64 at `-O2`.
const CFLAGS: [&str; 5] = [
    "-O2",
    "-mno-red-zone",
    "-fno-stack-protector",
    "-ffreestanding",
    "-Wall",
];
/// Link options: a native-subsystem image with relocations and no C runtime.
const LDFLAGS: [&str; 10] = [
    "-nostdlib",
    "-nostartfiles",
    "-shared",
    "-Wl,--subsystem,native",
    "-Wl,--entry,DriverEntry",
    "-Wl,--dynamicbase",
    "-Wl,--nxcompat",
    "-Wl,--image-base,0x140000000",
    "-Wl,--file-alignment,0x200",
    "-Wl,--section-alignment,0x1000",
];

/// The two built images.
#[derive(Clone, Debug)]
pub struct Images {
    /// With the per-disk `EX_SPIN_LOCK` (`PEER_LOCK=1`).
    pub locked: PathBuf,
    /// Without any lock (`PEER_LOCK=0`).
    pub unlocked: PathBuf,
}

/// Where the peer's sources are.
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cpeer")
}

fn run_tool(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|error| {
        format!(
            "cannot run {what} ({error}); install Debian's gcc-mingw-w64-x86-64 (tools/bench.sh does)."
        )
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Builds both images into `dir`.
///
/// # Errors
///
/// A sentence naming the tool that is missing or failed, with its output.
pub fn build(dir: &Path) -> Result<Images, String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}.", dir.display()))?;
    let source = source_dir();
    for module in ["storport", "ntoskrnl"] {
        run_tool(
            Command::new(DLLTOOL)
                .arg("-d")
                .arg(source.join(format!("{module}.def")))
                .arg("-l")
                .arg(dir.join(format!("lib{module}.a"))),
            &format!("{DLLTOOL} for {module}.def"),
        )?;
    }
    let build_one = |lock: bool, name: &str| -> Result<PathBuf, String> {
        let out = dir.join(name);
        run_tool(
            Command::new(GCC)
                .args(CFLAGS)
                .arg(format!("-DPEER_LOCK={}", u8::from(lock)))
                .args(LDFLAGS)
                .arg("-o")
                .arg(&out)
                .arg(source.join("peer.c"))
                .arg("-L")
                .arg(dir)
                .args(["-lstorport", "-lntoskrnl"]),
            &format!("{GCC} for {name}"),
        )?;
        Ok(out)
    };
    Ok(Images {
        locked: build_one(true, "peer.sys")?,
        unlocked: build_one(false, "peer-nolock.sys")?,
    })
}

/// Runs `sys` under `storemu run` (life cycle, bus scan, probe with a
/// write/read-back and concurrent I/O, unload) and requires a clean run in
/// which the disk's data read back as written.
///
/// # Errors
///
/// A sentence with the outcome, the findings and what the probe said.
pub fn check(sys: &Path) -> Result<(), String> {
    let report = run(
        &RunArgs {
            driver: sys.to_path_buf(),
            ..RunArgs::default()
        },
        &[],
    );
    let verified = report.luns.len() == 1 && report.luns.iter().all(|lun| lun.write_verified);
    if report.outcome == "clean" && verified {
        return Ok(());
    }
    Err(format!(
        "{} did not run clean and data-verified under storemu run: outcome {}, findings {:?}, \
         LUNs {:?}{}",
        sys.display(),
        report.outcome,
        report
            .findings
            .iter()
            .map(|finding| finding.message.as_str())
            .collect::<Vec<_>>(),
        report.luns,
        report
            .load_error
            .map_or_else(String::new, |error| format!(", load error: {error}"))
    ))
}
