//! `vstor-bench`: what the real `vstor.sys` costs per request under storemu.
//!
//! `vstor-bench` (subcommand `run`, the default) builds the C peer
//! ([`peer`]: a minimal Storport virtual miniport in C, with and without
//! its lock), checks it clean and data-verified under `storemu run`, and
//! measures vstor.sys and the peer side by side, per request kind:
//! 1. instructions per SRB inside each image, from `HwStartIo` entry to its
//!    return, outside the data copy and in total, counted by valgrind's
//!    callgrind on a fixed SRB sequence ([`callgrind`] says how), with
//!    vstor's largest functions;
//! 2. wall time per SRB of both, loaded in this one process, and their
//!    ratio ([`wall`]);
//! 3. adapter start time for 64 MiB and 1 GiB of disks, the images' sizes
//!    and the driver profile's opt-level;
//!
//! and writes `report.md` and `ratios.svg` into `--out` (default
//! `target/bench-report`), printing where; `--no-wall` keeps to the
//! instruction counts. `vstor-bench workload` is the part callgrind runs.

mod callgrind;
mod driver;
mod kinds;
mod peer;
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
    /// Run every measurement (or, without `wall`, only the instruction
    /// counts) and write the report into `out`.
    Run { out: PathBuf, wall: bool },
    /// Send `count` SRBs of kind `kind` inside `measured_srb_sequence`.
    Workload { kind: String, count: usize },
    /// Only the wall-time measurement, printed (quick comparisons).
    Wall,
}

const USAGE: &str = "usage: vstor-bench [--sys FILE] [--inf FILE] [run [--out DIR] [--no-wall] | wall | workload --kind KIND [--count N]]";

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
    let mut with_wall = true;
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
            "--no-wall" => with_wall = false,
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
        _ => Command::Run {
            out,
            wall: with_wall,
        },
    };
    Ok((files, command))
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|(files, command)| match command {
        Command::Run { out, wall } => run(&files, &out, wall),
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
    let peers = peer::build(
        &std::env::temp_dir().join(format!("vstor-bench-peer-{}", std::process::id())),
    )?;
    let vstor = Bench::start(&files.sys, &files.inf, SRB_DISK_MIB)?;
    let peer = Bench::start(&peers.locked, &files.inf, SRB_DISK_MIB)?;
    println!(
        "{:<18} {:>9.1} ns/SRB  (a stub HwStartIo that only completes)",
        "floor",
        wall::floor(&vstor)
    );
    for kind in kinds::ALL {
        let wall = wall::measure(&vstor, &peer, kind);
        println!(
            "{:<18} vstor {:>9.1} ns/SRB  C peer {:>9.1} ns/SRB  ratio {:.2}",
            kind.label(),
            wall.vstor_ns,
            wall.peer_ns,
            wall.ratio,
        );
    }
    for bench in [vstor, peer] {
        let findings = bench.finish();
        if !findings.is_empty() {
            return Err(format!("storemu reported findings: {findings:?}"));
        }
    }
    Ok(())
}

/// Size of an image file and its `SizeOfImage`.
fn image_size(name: &str, sys: &std::path::Path) -> Result<report::ImageSize, String> {
    use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
    let bytes =
        std::fs::read(sys).map_err(|error| format!("cannot read {}: {error}.", sys.display()))?;
    let pe = PeFile64::parse(&*bytes)
        .map_err(|error| format!("{} is not PE32+: {error}.", sys.display()))?;
    Ok(report::ImageSize {
        name: name.to_owned(),
        file_bytes: bytes.len() as u64,
        size_of_image: u64::from(pe.nt_headers().optional_header().size_of_image()),
    })
}

/// The `opt-level` of the `driver` profile in the workspace's Cargo.toml.
fn driver_opt_level() -> String {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    text.split("[profile.driver]")
        .nth(1)
        .and_then(|section| {
            section
                .lines()
                .take_while(|line| !line.starts_with('['))
                .find_map(|line| line.trim().strip_prefix("opt-level"))
        })
        .map_or_else(
            || "unknown".to_owned(),
            |value| value.trim_start_matches([' ', '=']).trim().to_owned(),
        )
}

fn run(files: &Files, out: &std::path::Path, with_wall: bool) -> Result<(), String> {
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
    eprintln!("vstor-bench: building the C peer");
    let peers = peer::build(&out.join("peer"))?;
    for image in [&peers.locked, &peers.unlocked] {
        eprintln!(
            "vstor-bench: checking {} under storemu run",
            image.display()
        );
        peer::check(image)?;
    }
    let mut rows = Vec::new();
    for kind in kinds::ALL {
        eprintln!("vstor-bench: counting {} under callgrind", kind.label());
        rows.push(report::Row {
            kind,
            vstor: callgrind::count(&files.sys, &files.inf, kind, true)?,
            peer: callgrind::count(&peers.locked, &files.inf, kind, false)?,
            peer_unlocked: callgrind::count(&peers.unlocked, &files.inf, kind, false)?,
            wall: None,
        });
    }
    let mut floor_ns = f64::NAN;
    let mut starts = Vec::new();
    if with_wall {
        let vstor = Bench::start(&files.sys, &files.inf, SRB_DISK_MIB)?;
        let peer = Bench::start(&peers.locked, &files.inf, SRB_DISK_MIB)?;
        for row in &mut rows {
            eprintln!("vstor-bench: timing {}", row.kind.label());
            row.wall = Some(wall::measure(&vstor, &peer, row.kind));
        }
        floor_ns = wall::floor(&vstor);
        for (name, bench) in [("vstor.sys", vstor), ("the C peer", peer)] {
            let findings = bench.finish();
            if !findings.is_empty() {
                return Err(format!("storemu reported findings on {name}: {findings:?}"));
            }
        }
        for mib in [64_u32, 1024] {
            eprintln!("vstor-bench: starting an adapter with {mib} MiB of disk");
            let bench = Bench::start(&files.sys, &files.inf, mib)?;
            starts.push((mib, bench.start_time));
            let findings = bench.finish();
            if !findings.is_empty() {
                return Err(format!("storemu reported findings: {findings:?}"));
            }
        }
    }
    let report = report::Report {
        rows,
        floor_ns,
        starts,
        images: vec![
            image_size("vstor.sys", &files.sys)?,
            image_size("C peer (peer.sys)", &peers.locked)?,
            image_size("C peer without lock (peer-nolock.sys)", &peers.unlocked)?,
        ],
        opt_level: driver_opt_level(),
    };
    let paths = report.write(out)?;
    println!("{}", report.markdown());
    for path in paths {
        println!("vstor-bench: wrote {}", path.display());
    }
    Ok(())
}
