//! Instructions per SRB inside a driver image (vstor.sys or the C peer),
//! counted by callgrind.
//!
//! # Method
//!
//! `vstor-bench workload` starts an adapter, sends one SRB of the kind
//! outside the measurement, then sends [`COUNT`] more from
//! `measured_srb_sequence`; valgrind runs it with
//! `--collect-atstart=no --toggle-collect=*measured_srb_sequence*`, so only
//! that sequence is counted, and with `--dump-instr=yes`, so every cost is
//! kept per instruction address. The workload prints where the image was
//! mapped. Of everything counted, only instructions **at addresses inside
//! the mapped image** are the driver's: the benchmark's loop, the SRB
//! reset, the completion stub (`StorPortNotification`) and the kernel's
//! spin-lock routines lie outside and drop out. Inside the image the count
//! runs from `HwStartIo`'s first instruction to its return, the calls of
//! the imports included (their instructions in the driver).
//!
//! The data copy is the string-move instruction that moves the data
//! (`rep movsb`; callgrind counts each iteration as one instruction): the
//! cost at every address of the image whose instruction is `rep movs`. Both
//! images copy with one `rep movsb`, so "outside the copy" is the same
//! measure for both: everything the driver does per request but move the
//! bytes. For vstor.sys, each remaining address is named with
//! `llvm-symbolizer --inlining` from the image's PDB, for the per-function
//! breakdown (innermost inlined frame).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};

use crate::kinds::Kind;

/// SRBs in the counted sequence.
pub const COUNT: usize = 16;

/// Instructions per SRB.
#[derive(Clone, Debug)]
pub struct Count {
    /// All instructions inside the image.
    pub total: f64,
    /// The largest parts of everything but the copy: innermost function
    /// (inlined frames included, generics dropped) and instructions per SRB.
    pub top_other: Vec<(String, f64)>,
    /// Instructions of the data copy.
    pub copy: f64,
}

impl Count {
    /// Everything but the copy.
    #[must_use]
    pub fn other(&self) -> f64 {
        self.total - self.copy
    }
}

/// Runs the workload of `kind` under callgrind and counts.
///
/// # Errors
///
/// A sentence naming what failed (valgrind or llvm-symbolizer missing, the
/// workload failing, an unreadable profile).
pub fn count(sys: &Path, inf: &Path, kind: Kind, symbolize: bool) -> Result<Count, String> {
    let (profile, base, size) = profile(sys, inf, kind)?;
    let costs = parse(&profile)?;
    tally(sys, &costs, base, size, symbolize)
}

/// Runs the workload of `kind` under callgrind: the profile's text and
/// the image's base and size.
fn profile(sys: &Path, inf: &Path, kind: Kind) -> Result<(String, u64, u64), String> {
    let exe = std::env::current_exe()
        .map_err(|error| format!("cannot find the running executable: {error}."))?;
    let out = std::env::temp_dir().join(format!(
        "vstor-bench-{}-{}.callgrind",
        std::process::id(),
        kind.name()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args([
            "--collect-atstart=no",
            "--toggle-collect=*measured_srb_sequence*",
            "--dump-instr=yes",
            "--compress-strings=no",
            "--compress-pos=no",
        ])
        .arg(&exe)
        .arg("--sys")
        .arg(sys)
        .arg("--inf")
        .arg(inf)
        .args(["workload", "--kind", &kind.name(), "--count"])
        .arg(COUNT.to_string())
        .output()
        .map_err(|error| {
            format!("cannot run valgrind: {error}; install it (tools/bench.sh does).")
        })?;
    if !output.status.success() {
        return Err(format!(
            "the callgrind run of {} failed ({}): {}",
            kind.label(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (base, size) = image_line(&stdout)
        .ok_or_else(|| format!("the workload printed no image line; its output was: {stdout}"))?;
    let profile = std::fs::read_to_string(&out)
        .map_err(|error| format!("cannot read the profile {}: {error}.", out.display()))?;
    let _ = std::fs::remove_file(&out);
    Ok((profile, base, size))
}

/// Whether the instruction at the start of `code` is the copy: `rep movsb`
/// (F3 A4), or `rep movsd` / `rep movsq` (F3 A5, F3 48 A5).
fn is_copy_instruction(code: &[u8]) -> bool {
    matches!(code, [0xF3, 0xA4 | 0xA5, ..] | [0xF3, 0x48, 0xA5, ..])
}

/// Splits the instructions inside the image into copy and other; names the
/// rest by function when `symbolize` (the image has a PDB).
fn tally(
    sys: &Path,
    costs: &Costs,
    base: u64,
    size: u64,
    symbolize: bool,
) -> Result<Count, String> {
    let inside = |address: u64| address >= base && address < base + size;
    let bytes =
        std::fs::read(sys).map_err(|error| format!("cannot read {}: {error}.", sys.display()))?;
    let pe = PeFile64::parse(&*bytes)
        .map_err(|error| format!("{} is not PE32+: {error}.", sys.display()))?;
    let sections = pe.section_table();
    let is_copy = |address: u64| {
        u32::try_from(address - base)
            .ok()
            .and_then(|rva| sections.pe_data_at(&*bytes, rva))
            .is_some_and(is_copy_instruction)
    };
    let mut total = 0_u64;
    let mut copy = 0_u64;
    let mut other_addresses = BTreeSet::new();
    for &(address, ir) in &costs.selfs {
        if !inside(address) {
            continue;
        }
        total += ir;
        if is_copy(address) {
            copy += ir;
        } else {
            other_addresses.insert(address);
        }
    }
    let mut top_other = Vec::new();
    if symbolize {
        let code = name_addresses(sys, base, &other_addresses)?;
        let mut other_by_function: HashMap<&str, u64> = HashMap::new();
        for &(address, ir) in &costs.selfs {
            if let Some(named) = code.get(&address) {
                *other_by_function
                    .entry(named.innermost.as_str())
                    .or_default() += ir;
            }
        }
        top_other = other_by_function
            .into_iter()
            .map(|(name, ir)| (name.to_owned(), per_srb(ir)))
            .collect();
        top_other.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top_other.truncate(TOP_FUNCTIONS);
    }
    Ok(Count {
        total: per_srb(total),
        copy: per_srb(copy),
        top_other,
    })
}

/// Functions listed in the breakdown of "other".
pub const TOP_FUNCTIONS: usize = 8;

#[expect(
    clippy::cast_precision_loss,
    reason = "instruction counts stay far below 2^52"
)]
fn per_srb(instructions: u64) -> f64 {
    instructions as f64 / COUNT as f64
}

fn image_line(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().find(|line| line.starts_with("image "))?;
    let mut words = line.split_whitespace().skip(1);
    let number = |word: Option<&str>| u64::from_str_radix(word?.trim_start_matches("0x"), 16).ok();
    Some((number(words.next())?, number(words.next())?))
}

/// Self costs per instruction address.
struct Costs {
    selfs: Vec<(u64, u64)>,
}

/// Parses the self costs of a callgrind profile written with
/// `--dump-instr=yes --compress-pos=no` and the single event `Ir`.
fn parse(profile: &str) -> Result<Costs, String> {
    let mut costs = Costs { selfs: Vec::new() };
    let mut positions = 1_usize;
    // The cost line after a `calls=` line is the callee's inclusive cost,
    // not the caller's own: it is skipped.
    let mut after_call = false;
    for line in profile.lines() {
        if let Some(list) = line.strip_prefix("positions:") {
            positions = list.split_whitespace().count();
            continue;
        }
        if line.starts_with("calls=") {
            after_call = true;
            continue;
        }
        let Some(first) = line.chars().next() else {
            continue;
        };
        if !first.is_ascii_digit() {
            continue;
        }
        let mut words = line.split_whitespace();
        let at = words.next().and_then(address);
        let ir = words
            .nth(positions - 1)
            .map_or(Some(0), |word| word.parse::<u64>().ok());
        let (Some(at), Some(ir)) = (at, ir) else {
            return Err(format!("cannot read the profile's cost line '{line}'"));
        };
        if !std::mem::take(&mut after_call) {
            costs.selfs.push((at, ir));
        }
    }
    Ok(costs)
}

fn address(word: &str) -> Option<u64> {
    word.strip_prefix("0x").map_or_else(
        || word.parse().ok(),
        |hex| u64::from_str_radix(hex, 16).ok(),
    )
}

/// What `llvm-symbolizer` says about one address.
struct Named {
    /// Innermost (inlined) function, generic arguments dropped.
    innermost: String,
}

/// Names each of `addresses` with `llvm-symbolizer` from the image's PDB.
fn name_addresses(
    sys: &Path,
    base: u64,
    addresses: &BTreeSet<u64>,
) -> Result<HashMap<u64, Named>, String> {
    let bytes =
        std::fs::read(sys).map_err(|error| format!("cannot read {}: {error}.", sys.display()))?;
    let pe = PeFile64::parse(&*bytes)
        .map_err(|error| format!("{} is not PE32+: {error}.", sys.display()))?;
    let preferred = pe.nt_headers().optional_header().image_base();
    let mut input = String::new();
    for address in addresses {
        let _ = writeln!(input, "{:#x}", address - base + preferred);
    }
    let mut child = Command::new("llvm-symbolizer")
        .arg(format!("--obj={}", sys.display()))
        .args(["--inlining", "--functions=linkage", "--no-demangle"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| {
            format!("cannot run llvm-symbolizer: {error}; install llvm (tools/bench.sh does).")
        })?;
    let mut stdin = child.stdin.take().ok_or("llvm-symbolizer has no stdin.")?;
    let writer =
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|error| format!("llvm-symbolizer failed: {error}."))?;
    writer
        .join()
        .map_err(|_| "the llvm-symbolizer writer thread panicked.".to_owned())?
        .map_err(|error| format!("cannot feed llvm-symbolizer: {error}."))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // One block per address, blank-line separated: function and location
    // lines alternate, innermost frame first.
    let blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .collect();
    if blocks.len() != addresses.len() {
        return Err(format!(
            "llvm-symbolizer named {} of {} addresses; is {} next to its PDB?",
            blocks.len(),
            addresses.len(),
            sys.display()
        ));
    }
    let mut names = HashMap::new();
    for (&address, block) in addresses.iter().zip(blocks) {
        let functions: Vec<&str> = block.lines().step_by(2).collect();
        let strip = |name: &str| name.split('<').next().unwrap_or(name).to_owned();
        names.insert(
            address,
            Named {
                innermost: strip(functions.first().copied().unwrap_or("??")),
            },
        );
    }
    Ok(names)
}
