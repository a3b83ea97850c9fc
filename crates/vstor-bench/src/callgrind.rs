//! Instructions per SRB inside vstor.sys, counted by callgrind.
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
//! the mapped vstor.sys image** are vstor's: the benchmark's loop, the SRB
//! reset and the completion stub (`StorPortNotification`) lie outside and
//! drop out. Inside the image the count runs from `HwStartIo`'s first
//! instruction to its return, the completion call included (its
//! instructions in the driver; the export itself is outside).
//!
//! The data copy is the work done by the medium's `read` / `write`
//! (`vstor::ramdisk::…::read` / `::write` and `storport::shared_bytes`,
//! with whatever they call or inline: the chunk lookup, the chunk lock and
//! `memcpy`). Each address is named with `llvm-symbolizer --inlining` from
//! the image's PDB, so code of those functions inlined elsewhere still
//! counts as copy; the copy is their own instructions plus the inclusive
//! cost of every call they make into other functions of the image
//! (callgrind's call records), and everything else is the rest.

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
pub fn count(sys: &Path, inf: &Path, kind: Kind) -> Result<Count, String> {
    let (profile, base, size) = profile(sys, inf, kind)?;
    let costs = parse(&profile)?;
    tally(sys, &costs, base, size)
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

/// Procedures called only from the copy (directly or through other such procedures):
/// their instructions are the copy's. Found as a fixpoint over the call records.
fn copy_only_procedures<'a>(
    costs: &Costs,
    code: &'a HashMap<u64, Named>,
    inside: &dyn Fn(u64) -> bool,
) -> BTreeSet<&'a str> {
    let procedure = |address: &u64| code.get(address).map(|named| named.procedure.as_str());
    let mut copy_only: BTreeSet<&str> = BTreeSet::new();
    loop {
        let in_copy = |address: &u64| {
            code.get(address)
                .is_some_and(|named| named.copy || copy_only.contains(named.procedure.as_str()))
        };
        let mut callers_outside: BTreeSet<&str> = BTreeSet::new();
        let mut callers_inside: BTreeSet<&str> = BTreeSet::new();
        for call in &costs.calls {
            if !inside(call.target) || in_copy(&call.target) {
                continue;
            }
            let Some(target) = procedure(&call.target) else {
                continue;
            };
            if inside(call.site) && in_copy(&call.site) {
                callers_inside.insert(target);
            } else {
                callers_outside.insert(target);
            }
        }
        let grown: Vec<&str> = callers_inside
            .difference(&callers_outside)
            .copied()
            .collect();
        if grown.is_empty() {
            return copy_only;
        }
        copy_only.extend(grown);
    }
}

/// Splits the instructions inside the image into copy and other.
fn tally(sys: &Path, costs: &Costs, base: u64, size: u64) -> Result<Count, String> {
    let inside = |address: u64| address >= base && address < base + size;
    let mut addresses = BTreeSet::new();
    for &(address, _) in &costs.selfs {
        if inside(address) {
            addresses.insert(address);
        }
    }
    for call in &costs.calls {
        if inside(call.site) {
            addresses.insert(call.site);
        }
        if inside(call.target) {
            addresses.insert(call.target);
        }
    }
    let code = name_addresses(sys, base, &addresses)?;
    let procedure = |address: &u64| code.get(address).map(|named| named.procedure.as_str());
    let copy_only = copy_only_procedures(costs, &code, &inside);
    let in_copy = |address: &u64| {
        code.get(address)
            .is_some_and(|named| named.copy || copy_only.contains(named.procedure.as_str()))
    };
    // Procedures both the copy and the rest call (memcpy, when the CDB copy uses it too):
    // the copy's share is the inclusive cost of its calls to them.
    let mut shared: BTreeSet<&str> = BTreeSet::new();
    for call in &costs.calls {
        if inside(call.site) && inside(call.target) && in_copy(&call.site) && !in_copy(&call.target)
        {
            shared.extend(procedure(&call.target));
        }
    }
    let mut total = 0_u64;
    let mut copy = 0_u64;
    let mut other_by_function: HashMap<&str, u64> = HashMap::new();
    for &(address, ir) in &costs.selfs {
        if !inside(address) {
            continue;
        }
        total += ir;
        if in_copy(&address) {
            copy += ir;
        } else if let Some(named) = code.get(&address)
            && !shared.contains(named.procedure.as_str())
        {
            *other_by_function
                .entry(named.innermost.as_str())
                .or_default() += ir;
        }
    }
    let mut shared_by_copy = 0_u64;
    for call in &costs.calls {
        if inside(call.site) && inside(call.target) && in_copy(&call.site) && !in_copy(&call.target)
        {
            shared_by_copy += call.inclusive;
        }
    }
    copy += shared_by_copy;
    // The rest's share of the shared procedures, for the breakdown.
    let shared_total: u64 = costs
        .selfs
        .iter()
        .filter(|(address, _)| {
            inside(*address) && procedure(address).is_some_and(|p| shared.contains(p))
        })
        .map(|(_, ir)| ir)
        .sum();
    if shared_total > shared_by_copy {
        other_by_function.insert("(shared with the copy)", shared_total - shared_by_copy);
    }
    let mut top_other: Vec<(String, f64)> = other_by_function
        .into_iter()
        .map(|(name, ir)| (name.to_owned(), per_srb(ir)))
        .collect();
    top_other.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_other.truncate(6);
    Ok(Count {
        total: per_srb(total),
        copy: per_srb(copy),
        top_other,
    })
}

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

/// One call record: from `site` to `target`, with the callee's inclusive cost.
struct Call {
    site: u64,
    target: u64,
    inclusive: u64,
}

/// Self costs per instruction address, and call records.
struct Costs {
    selfs: Vec<(u64, u64)>,
    calls: Vec<Call>,
}

/// Parses a callgrind profile written with `--dump-instr=yes
/// --compress-pos=no` and the single event `Ir`.
fn parse(profile: &str) -> Result<Costs, String> {
    let mut costs = Costs {
        selfs: Vec::new(),
        calls: Vec::new(),
    };
    let mut positions = 1_usize;
    let mut pending_target: Option<u64> = None;
    for line in profile.lines() {
        if let Some(list) = line.strip_prefix("positions:") {
            positions = list.split_whitespace().count();
            continue;
        }
        if let Some(call) = line.strip_prefix("calls=") {
            let target = call
                .split_whitespace()
                .nth(1)
                .and_then(address)
                .ok_or_else(|| format!("a calls= line of the profile has no target: '{line}'"))?;
            pending_target = Some(target);
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
        match pending_target.take() {
            Some(target) => costs.calls.push(Call {
                site: at,
                target,
                inclusive: ir,
            }),
            None => costs.selfs.push((at, ir)),
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

/// Whether a function (or inlined frame) name is the medium's copy. Only the path counts,
/// not the generic arguments: `vstor::scsi::disk::Disk::write<vstor::ramdisk::RamDisk<…>>`
/// is the command's logic, not the copy.
fn is_copy_function(name: &str) -> bool {
    let path = name.split('<').next().unwrap_or(name);
    (path.contains("vstor::ramdisk::") && (path.contains("::read") || path.contains("::write")))
        || path.contains("storport::shared_bytes::")
}

/// What `llvm-symbolizer` says about one address.
struct Named {
    /// The code belongs to the copy.
    copy: bool,
    /// Innermost (inlined) function, generic arguments dropped.
    innermost: String,
    /// The procedure the address lies in, generic arguments dropped.
    procedure: String,
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
                copy: functions.iter().any(|name| is_copy_function(name)),
                innermost: strip(functions.first().copied().unwrap_or("??")),
                procedure: strip(functions.last().copied().unwrap_or("??")),
            },
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::is_copy_function;

    #[test]
    fn the_copy_is_the_medium_and_shared_bytes_not_their_callers() {
        assert!(is_copy_function(
            "vstor::ramdisk::impl$1::read<storport::pool::PoolSlice<u64> >"
        ));
        assert!(is_copy_function("vstor::ramdisk::impl$1::write::closure$0"));
        assert!(is_copy_function(
            "storport::shared_bytes::SharedBytes::lock_shared"
        ));
        assert!(!is_copy_function(
            "vstor::scsi::disk::Disk::write<vstor::ramdisk::RamDisk<storport::pool::PoolSlice<u64> > >"
        ));
        assert!(!is_copy_function("vstor::scsi::io::span"));
    }
}
