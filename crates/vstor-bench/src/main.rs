//! `vstor-bench`: what the real `vstor.sys` costs per request under storemu.
//!
//! `vstor-bench` (subcommand `run`, the default) measures, in one run:
//! 1. instructions per SRB inside the vstor.sys image, from `HwStartIo`
//!    entry to its completion, split into the data copy and everything
//!    else, counted by valgrind's callgrind on a fixed SRB sequence
//!    ([`callgrind`] says how);
//! 2. wall time per SRB against glibc `memcpy` of the same size ([`wall`]);
//! 3. adapter start time for 64 MiB and 1 GiB of disks, and the image size;
//!
//! and writes `report.md` and `ratios.svg` into `--out` (default
//! `target/bench-report`), printing where. `vstor-bench workload` is the
//! part callgrind runs.

mod callgrind;
mod driver;
mod kinds;
mod report;
mod wall;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::driver::Bench;
use crate::kinds::Kind;

/// Disk size of the per-SRB runs, in MiB (room for a 1 MiB transfer).
const SRB_DISK_MIB: u32 = 16;

/// The image and INF every subcommand uses.
#[derive(Clone)]
struct Files {
    sys: PathBuf,
    inf: PathBuf,
}

/// What to do.
enum Command {
    /// Run every measurement and write the report into `out`.
    Run { out: PathBuf },
    /// Send `count` SRBs of kind `kind` inside `measured_srb_sequence`.
    Workload { kind: String, count: usize },
    /// Only the wall-time measurement, printed (quick comparisons).
    Wall,
}

const USAGE: &str = "usage: vstor-bench [--sys FILE] [--inf FILE] [run [--out DIR] | wall | workload --kind KIND [--count N]]";

/// Parses the command line (a handful of options; see [`USAGE`]).
fn parse_args(args: impl Iterator<Item = String>) -> Result<(Files, Command), String> {
    let mut files = Files {
        sys: PathBuf::from("target/vstor/vstor.sys"),
        inf: PathBuf::from("inf/vstor.inf"),
    };
    let mut subcommand = None;
    let mut out = PathBuf::from("target/bench-report");
    let mut kind = None;
    let mut count = 16_usize;
    let mut args = args;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--sys" => files.sys = PathBuf::from(value("--sys")?),
            "--inf" => files.inf = PathBuf::from(value("--inf")?),
            "--out" => out = PathBuf::from(value("--out")?),
            "--kind" => kind = Some(value("--kind")?),
            "--count" => {
                let text = value("--count")?;
                count = text.parse().map_err(|_| {
                    format!("--count takes a whole number of SRBs, not '{text}'; {USAGE}")
                })?;
            }
            "run" | "workload" | "wall" if subcommand.is_none() => subcommand = Some(arg),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unexpected argument '{other}'; {USAGE}")),
        }
    }
    let command = match subcommand.as_deref() {
        Some("workload") => Command::Workload {
            kind: kind.ok_or_else(|| format!("workload needs --kind; {USAGE}"))?,
            count,
        },
        Some("wall") => Command::Wall,
        _ => Command::Run { out },
    };
    Ok((files, command))
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|(files, command)| match command {
        Command::Run { out } => run(&files, &out),
        Command::Workload { kind, count } => workload(&files, &kind, count),
        Command::Wall => wall_only(&files),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vstor-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workload(files: &Files, kind: &str, count: usize) -> Result<(), String> {
    let kind = Kind::parse(kind).ok_or_else(|| {
        format!(
            "unknown request kind '{kind}'; expected one of {}.",
            kinds::ALL.map(Kind::name).join(", ")
        )
    })?;
    let bench = Bench::start(&files.sys, &files.inf, SRB_DISK_MIB)?;
    let mut request = kind.request();
    // Once outside the measurement, so first-touch effects stay out of it.
    bench.start_io(&mut request);
    measured_srb_sequence(&bench, &mut request, count);
    println!(
        "image {:#x} {:#x} count {count}",
        bench.image.base, bench.image.size
    );
    let findings = bench.finish();
    if findings.is_empty() {
        Ok(())
    } else {
        Err(format!("storemu reported findings: {findings:?}"))
    }
}

/// The SRB sequence callgrind counts (`--toggle-collect` names this
/// function; never inlined so the name exists).
#[inline(never)]
fn measured_srb_sequence(bench: &Bench, request: &mut driver::Request, count: usize) {
    for _ in 0..count {
        bench.start_io(request);
    }
}

fn wall_only(files: &Files) -> Result<(), String> {
    let bench = Bench::start(&files.sys, &files.inf, SRB_DISK_MIB)?;
    println!(
        "{:<18} {:>9.1} ns/SRB  (a stub HwStartIo that only completes)",
        "floor",
        wall::floor(&bench)
    );
    for kind in kinds::ALL {
        let wall = wall::measure(&bench, kind);
        println!(
            "{:<18} {:>9.1} ns/SRB  memcpy {:>9} ns  ratio {}",
            kind.label(),
            wall.srb_ns,
            wall.memcpy_ns
                .map_or_else(|| "-".to_owned(), |ns| format!("{ns:.1}")),
            wall.ratio()
                .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}")),
        );
    }
    let findings = bench.finish();
    if findings.is_empty() {
        Ok(())
    } else {
        Err(format!("storemu reported findings: {findings:?}"))
    }
}

fn run(files: &Files, out: &std::path::Path) -> Result<(), String> {
    let sys = std::fs::canonicalize(&files.sys).map_err(|error| {
        format!(
            "cannot find the driver image {}: {error}; build it with `bash tools/build-driver.sh`.",
            files.sys.display()
        )
    })?;
    let files = Files {
        sys,
        inf: files.inf.clone(),
    };
    let mut rows = Vec::new();
    for kind in kinds::ALL {
        eprintln!("vstor-bench: counting {} under callgrind", kind.label());
        let count = callgrind::count(&files.sys, &files.inf, kind)?;
        rows.push(report::Row {
            kind,
            count,
            wall: None,
        });
    }
    let bench = Bench::start(&files.sys, &files.inf, SRB_DISK_MIB)?;
    for row in &mut rows {
        eprintln!("vstor-bench: timing {}", row.kind.label());
        row.wall = Some(wall::measure(&bench, row.kind));
    }
    let floor_ns = wall::floor(&bench);
    let findings = bench.finish();
    if !findings.is_empty() {
        return Err(format!("storemu reported findings: {findings:?}"));
    }
    let mut starts = Vec::new();
    for mib in [64_u32, 1024] {
        eprintln!("vstor-bench: starting an adapter with {mib} MiB of disk");
        let bench = Bench::start(&files.sys, &files.inf, mib)?;
        starts.push((mib, bench.start_time));
        let findings = bench.finish();
        if !findings.is_empty() {
            return Err(format!("storemu reported findings: {findings:?}"));
        }
    }
    let image_bytes = std::fs::metadata(&files.sys)
        .map_err(|error| format!("cannot stat {}: {error}.", files.sys.display()))?
        .len();
    let report = report::Report {
        rows,
        floor_ns,
        starts,
        image_bytes,
    };
    let paths = report.write(out)?;
    println!("{}", report.markdown());
    for path in paths {
        println!("vstor-bench: wrote {}", path.display());
    }
    Ok(())
}
