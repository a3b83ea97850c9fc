//! The `storemu` command line.
//!
//! `storemu run DRIVER.sys [--inf FILE.inf] [--set [SUBKEY\]NAME=TYPE:VALUE]...
//! [--json] [--allow-missing]` loads the image, installs it into the
//! emulated registry, and drives it through the life cycle: `DriverEntry`,
//! adapter start, bus scan, LUN probe (with a write/read-back on writable
//! disks and a flush), stop, `HwFreeAdapterResources`, unload.
//!
//! `--fail CALL@N[..]` (repeatable) makes the N-th call of a fallible import
//! fail, as [`crate::port::faults`] describes.
//!
//! `--storport-lock-irql strict|unchecked` (`run` and `serve`) chooses how
//! `StorPortAcquireSpinLock` / `StorPortReleaseSpinLock` check the IRQL,
//! which their page does not state (see [`crate::port::locks`]).
//!
//! `storemu inf-lint FILE.inf` checks an INF against the rules of
//! [`crate::inf::lint`] and prints one line per finding.
//!
//! Exit status: 0 clean, 1 findings or bug check, 2 load error, 64 usage error.

pub mod scan;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use serde_json::json;

use crate::inf::{Inf, InstallOptions, install, install_default, service_name_for_image};
use crate::machine::loader;
use crate::port::cpu::GateCpu;
use crate::port::locks::StorPortLockIrql;
use crate::port::state::Event;
use crate::port::{FaultSpec, Finding, Port, PortError, PortOptions, Rule, exports};
use crate::registry::{Registry, SetSpec, apply, parse_set};
use scan::LunReport;

/// Exit status of a clean run.
pub const EXIT_CLEAN: u8 = 0;
/// Exit status when the driver broke a rule or bug-checked.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status when the image could not be loaded.
pub const EXIT_LOAD_ERROR: u8 = 2;
/// Exit status for a usage error.
pub const EXIT_USAGE: u8 = 64;

/// Largest number of targets per bus the scan visits.
const MAX_SCANNED_TARGETS: u8 = 128;
/// Largest number of buses the scan visits.
const MAX_SCANNED_BUSES: u8 = 8;

/// Arguments of `storemu run`.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// The driver image (`.sys`, PE32+ for x64).
    pub driver: PathBuf,
    /// INF to install the driver from (service, `AddReg` values).
    pub inf: Option<PathBuf>,
    /// Registry values to set after installation: `[SUBKEY\]NAME=TYPE:VALUE`,
    /// SUBKEY relative to `Parameters` (default `Device`).
    pub set: Vec<String>,
    /// Print one JSON object instead of the human report.
    pub json: bool,
    /// Bind imports storemu does not implement to stubs that report when called.
    pub allow_missing: bool,
    /// Longest a single driver callback may run before the watchdog stops it.
    pub watchdog_ms: u64,
    /// Longest the port waits for a request's completion.
    pub srb_timeout_ms: u64,
    /// How `StorPortAcquireSpinLock` / `StorPortReleaseSpinLock` check the
    /// IRQL (`--storport-lock-irql strict|unchecked`).
    pub storport_lock_irql: StorPortLockIrql,
}

/// Default watchdog limit per callback, in milliseconds.
pub const DEFAULT_WATCHDOG_MS: u64 = 10_000;
/// Default SRB completion timeout, in milliseconds.
pub const DEFAULT_SRB_TIMEOUT_MS: u64 = 10_000;

/// The command-line grammar. (The builder API is used because clap's derive
/// output carries lint allowances the workspace forbids.)
fn command() -> Command {
    Command::new("storemu")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Runs a Storport virtual miniport .sys under an emulated Storport port driver and checks it")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(Command::new("rules").about("List every verifier rule with its source and bug check"))
        .subcommand(crate::serve::command::definition())
        .subcommand(
            Command::new("inf-lint")
                .about("Check an INF for what InfVerif rejects in a Storport miniport INF")
                .arg(Arg::new("inf").value_name("FILE.inf").required(true).value_parser(value_parser!(PathBuf)).help("The INF file")),
        )
        .subcommand(
            adapter_args(
                Command::new("run")
                    .about("Load DRIVER, run its life cycle and I/O, and report every rule it breaks"),
            )
            .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print one JSON object"))
            .arg(
                Arg::new("fail")
                    .long("fail")
                    .value_name("CALL@N[..]")
                    .action(ArgAction::Append)
                    .help("Make the N-th call (and with `..` every later one) of a fallible import fail: ExAllocatePool2, ExAllocatePoolWithTag, ExAllocatePool, StorPortAllocatePool, StorPortAllocateMdl, StorPortAllocateRegistryBuffer, StorPortRegistryRead, StorPortRegistryWrite"),
            ),
        )
}

/// `command` with the arguments that load and start an adapter, which `run`
/// and `serve` share ([`run_args`] reads them back).
pub(crate) fn adapter_args(command: Command) -> Command {
    command
        .arg(Arg::new("driver").value_name("DRIVER.sys").required(true).value_parser(value_parser!(PathBuf)).help("The driver image (PE32+ for x64)"))
        .arg(Arg::new("inf").long("inf").value_name("FILE.inf").value_parser(value_parser!(PathBuf)).help("INF to install the driver from"))
        .arg(
            Arg::new("set")
                .long("set")
                .value_name("[SUBKEY\\]NAME=TYPE:VALUE")
                .action(ArgAction::Append)
                .help("Registry value to set after installation; SUBKEY is relative to Parameters (default Device); TYPE: dword, qword, sz, multi_sz (; between strings), binary (hex)"),
        )
        .arg(
            Arg::new("watchdog-ms")
                .long("watchdog-ms")
                .value_name("MS")
                .value_parser(value_parser!(u64).range(1..))
                .default_value("10000")
                .help("Longest a driver callback may run before the watchdog stops it"),
        )
        .arg(
            Arg::new("srb-timeout-ms")
                .long("srb-timeout-ms")
                .value_name("MS")
                .value_parser(value_parser!(u64).range(1..))
                .default_value("10000")
                .help("Longest the port waits for a request's completion"),
        )
        .arg(Arg::new("allow-missing").long("allow-missing").action(ArgAction::SetTrue).help("Bind unimplemented imports to stubs that report when called"))
        .arg(
            Arg::new("storport-lock-irql")
                .long("storport-lock-irql")
                .value_name("READING")
                .value_parser(["strict", "unchecked"])
                .default_value("strict")
                .help("IRQL check of StorPortAcquireSpinLock/StorPortReleaseSpinLock, which their page does not state: strict (DpcLock and StartIoLock as in-stack queued spin locks, InterruptLock at DIRQL) or unchecked"),
        )
}

/// The adapter arguments `run` and `serve` share, from their matches
/// (`serve` has no `--json`).
pub(crate) fn run_args(matches: &ArgMatches) -> RunArgs {
    RunArgs {
        driver: matches
            .get_one::<PathBuf>("driver")
            .cloned()
            .unwrap_or_default(),
        inf: matches.get_one::<PathBuf>("inf").cloned(),
        set: matches
            .get_many::<String>("set")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        json: matches
            .try_get_one::<bool>("json")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false),
        allow_missing: matches.get_flag("allow-missing"),
        watchdog_ms: matches
            .get_one::<u64>("watchdog-ms")
            .copied()
            .unwrap_or(DEFAULT_WATCHDOG_MS),
        srb_timeout_ms: matches
            .get_one::<u64>("srb-timeout-ms")
            .copied()
            .unwrap_or(DEFAULT_SRB_TIMEOUT_MS),
        storport_lock_irql: match matches
            .get_one::<String>("storport-lock-irql")
            .map(String::as_str)
        {
            Some("unchecked") => StorPortLockIrql::Unchecked,
            _ => StorPortLockIrql::Strict,
        },
    }
}

/// The result of one run.
#[derive(Debug)]
pub struct RunReport {
    /// `clean`, `violations`, `bugcheck` or `load-error`.
    pub outcome: &'static str,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// The driver's debug output lines.
    pub dbgprint: Vec<String>,
    /// The LUNs found and probed.
    pub luns: Vec<LunReport>,
    /// Life cycle, debug lines and findings in order (human output).
    pub events: Vec<Event>,
    /// Why loading failed, for `load-error`.
    pub load_error: Option<String>,
}

impl RunReport {
    /// The exit status of the command contract.
    #[must_use]
    pub fn exit_status(&self) -> u8 {
        match self.outcome {
            "clean" => EXIT_CLEAN,
            "load-error" => EXIT_LOAD_ERROR,
            _ => EXIT_FINDINGS,
        }
    }

    /// The JSON object of the command contract.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "outcome": self.outcome,
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "dbgprint": self.dbgprint,
            "luns": self.luns,
            "error": self.load_error,
            "log": self.events.iter().filter_map(|e| match e { Event::Phase(p) => Some(p.clone()), _ => None }).collect::<Vec<_>>(),
        })
    }

    /// The human report.
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(error) = &self.load_error {
            let _ = writeln!(out, "storemu: {error}");
        }
        for event in &self.events {
            let _ = match event {
                Event::Phase(text) => writeln!(out, "== {text}"),
                Event::DbgPrint(line) => writeln!(out, "   DbgPrint: {line}"),
                Event::Finding(finding) => writeln!(out, "!! {finding}"),
            };
        }
        let _ = writeln!(out, "LUNs: {}", self.luns.len());
        for lun in &self.luns {
            let _ = writeln!(
                out,
                "   {}:{}:{} type {} \"{}\" \"{}\" \"{}\": {} blocks of {} bytes{}{}",
                lun.bus,
                lun.target,
                lun.lun,
                lun.device_type,
                lun.vendor,
                lun.product,
                lun.revision,
                lun.blocks,
                lun.block_size,
                if lun.write_verified {
                    ", write verified"
                } else {
                    ""
                },
                if lun.ready { "" } else { ", not ready" }
            );
            for note in &lun.notes {
                let _ = writeln!(out, "      {note}");
            }
        }
        let _ = writeln!(
            out,
            "outcome: {} ({} finding(s))",
            self.outcome,
            self.findings.len()
        );
        out
    }
}

fn outcome_of(findings: &[Finding]) -> &'static str {
    if findings.iter().any(|f| {
        f.bugcheck.is_some()
            || matches!(
                f.rule,
                Rule::DriverFault | Rule::DriverHang | Rule::KeBugCheck | Rule::MissingImport
            )
    }) {
        "bugcheck"
    } else if findings.is_empty() {
        "clean"
    } else {
        "violations"
    }
}

const fn load_error(message: String) -> RunReport {
    RunReport {
        outcome: "load-error",
        findings: Vec::new(),
        dbgprint: Vec::new(),
        luns: Vec::new(),
        events: Vec::new(),
        load_error: Some(message),
    }
}

/// Parses every `--set`, before anything is loaded.
///
/// # Errors
///
/// The first malformed option, as a sentence.
pub fn parse_sets(specs: &[String]) -> Result<Vec<SetSpec>, String> {
    specs
        .iter()
        .map(|s| parse_set(s).map_err(|e| format!("{e} Nothing was run.")))
        .collect()
}

pub(crate) fn prepare_registry(
    args: &RunArgs,
    sets: &[SetSpec],
) -> Result<(Registry, String), String> {
    let mut registry = Registry::new();
    let service = if let Some(path) = &args.inf {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "the INF {} cannot be read ({e}); nothing was loaded.",
                path.display()
            )
        })?;
        let inf = Inf::from_bytes(&bytes).map_err(|e| {
            format!(
                "the INF {} cannot be parsed: {e}; nothing was loaded.",
                path.display()
            )
        })?;
        let installed = install(&inf, &mut registry, &InstallOptions::default()).map_err(|e| {
            format!(
                "the INF {} cannot be installed: {e}; nothing was loaded.",
                path.display()
            )
        })?;
        installed.service
    } else {
        let service = service_name_for_image(&args.driver);
        install_default(&service, &mut registry);
        service
    };
    for spec in sets {
        apply(spec, &mut registry, &service);
    }
    Ok((registry, service))
}

/// Parses every `--fail CALL@N[..]`, before anything is loaded.
///
/// # Errors
///
/// The first malformed option, as a sentence.
pub fn parse_faults(specs: &[String]) -> Result<Vec<FaultSpec>, String> {
    specs
        .iter()
        .map(|s| s.parse().map_err(|e| format!("--fail {s}: {e}")))
        .collect()
}

/// Runs `storemu run` and returns its report.
#[must_use]
pub fn run(args: &RunArgs, sets: &[SetSpec]) -> RunReport {
    run_with_faults(args, sets, &[])
}

/// Runs `storemu run` with the fault plan `faults` (`--fail`) and returns
/// its report; the log names every injected failure and, at the end, how
/// many calls of each fallible import the driver made.
#[must_use]
pub fn run_with_faults(args: &RunArgs, sets: &[SetSpec], faults: &[FaultSpec]) -> RunReport {
    let bytes = match std::fs::read(&args.driver) {
        Ok(bytes) => bytes,
        Err(e) => {
            return load_error(format!(
                "the driver image {} cannot be read ({e}); nothing was loaded.",
                args.driver.display()
            ));
        }
    };
    let (registry, service) = match prepare_registry(args, sets) {
        Ok(prepared) => prepared,
        Err(message) => return load_error(message),
    };
    let name = args
        .driver
        .file_name()
        .map_or_else(|| "driver".to_owned(), |n| n.to_string_lossy().into_owned());
    let image = match loader::load_named(&name, &bytes, &exports::resolve, args.allow_missing) {
        Ok(image) => image,
        Err(e) => return load_error(format!("{} cannot be loaded: {e}", args.driver.display())),
    };
    let Some(entry) = image.entry_point() else {
        return load_error(format!(
            "{} has no entry point (DriverEntry); nothing was run.",
            args.driver.display()
        ));
    };
    let cpu = GateCpu {
        timeout: std::time::Duration::from_millis(args.watchdog_ms),
    };
    let options = PortOptions {
        service,
        srb_timeout: std::time::Duration::from_millis(args.srb_timeout_ms),
        storport_lock_irql: args.storport_lock_irql,
        ..PortOptions::default()
    };
    let port = Port::new(entry, Arc::new(cpu), options, Some(Box::new(image)));
    port.set_registry(registry);
    port.log(format!("loaded {name}"));
    if !faults.is_empty() {
        port.inject_faults(faults.to_vec());
    }
    let luns = life_cycle(&port);
    port.unload();
    if !faults.is_empty() {
        let calls: Vec<String> = port
            .fault_calls()
            .iter()
            .map(|(call, count)| format!("{call} x{count}"))
            .collect();
        port.log(format!(
            "fault injection: {} failure(s) injected; fallible calls made: {}",
            port.injected_faults().len(),
            if calls.is_empty() {
                "none".to_owned()
            } else {
                calls.join(", ")
            }
        ));
    }
    let findings = port.findings();
    RunReport {
        outcome: outcome_of(&findings),
        findings,
        dbgprint: port.dbgprint(),
        luns,
        events: port.events(),
        load_error: None,
    }
}

fn life_cycle(port: &Port) -> Vec<LunReport> {
    match port.driver_entry() {
        Ok(()) => {}
        Err(error) => {
            if port.findings().is_empty() {
                port.report(
                    Rule::AdapterStartFailed,
                    "DriverEntry",
                    vec![],
                    error.to_string(),
                );
            }
            return Vec::new();
        }
    }
    if port.start().is_err() {
        if !port.bugchecked() {
            let _ = port.remove();
        }
        return Vec::new();
    }
    let luns = match discover(port) {
        Ok(luns) => luns,
        Err(PortError::BugCheck(_)) => return Vec::new(),
        Err(_) => Vec::new(),
    };
    if port.bugchecked() {
        return luns;
    }
    let _ = port.stop();
    let _ = port.remove();
    luns
}

fn discover(port: &Port) -> Result<Vec<LunReport>, PortError> {
    let config = port.config().ok_or(PortError::NotStarted)?;
    let buses = config.NumberOfBuses.clamp(1, MAX_SCANNED_BUSES);
    let targets = config.MaximumNumberOfTargets.clamp(1, MAX_SCANNED_TARGETS);
    let luns = config.MaximumNumberOfLogicalUnits.max(1);
    port.log(format!(
        "bus scan: {buses} bus(es) x {targets} target(s), up to {luns} LUN(s) each"
    ));
    let found = scan::scan(port, buses, targets, luns)?;
    port.log(format!("bus scan found {} LUN(s)", found.len()));
    let mut reports = Vec::new();
    for lun in &found {
        port.log(format!("probe LUN {}:{}:{}", lun.0, lun.1, lun.2));
        let (report, mismatch) = scan::probe(port, lun)?;
        if let Some(message) = mismatch {
            port.report(
                Rule::DataIntegrity,
                "HwStartIo",
                vec![u64::from(lun.0), u64::from(lun.1), u64::from(lun.2)],
                message,
            );
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The rule table `storemu rules` prints: name, bug check, source.
#[must_use]
pub fn rule_table() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (_, name, source, bugcheck) in crate::port::rules::RULES {
        let code = bugcheck.map_or_else(
            || "-".to_owned(),
            |(code, p1)| format!("0x{code:X}/0x{p1:X}"),
        );
        let _ = writeln!(out, "{name:<26} {code:<12} {source}");
    }
    out
}

/// `storemu inf-lint`: prints each finding, or that the INF passes.
fn inf_lint(path: &std::path::Path) -> ExitCode {
    match crate::inf::lint::lint_file(path) {
        Ok(findings) if findings.is_empty() => {
            println!(
                "{}: passes all {} INF rules",
                path.display(),
                crate::inf::lint::LintRule::ALL.len()
            );
            ExitCode::from(EXIT_CLEAN)
        }
        Ok(findings) => {
            for finding in &findings {
                println!("{}: {finding}", path.display());
            }
            ExitCode::from(EXIT_FINDINGS)
        }
        Err(error) => {
            eprintln!("storemu: {error}");
            ExitCode::from(EXIT_LOAD_ERROR)
        }
    }
}

/// Entry point of the `storemu` binary.
#[must_use]
pub fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => {
            let usage = error.use_stderr();
            let _ = error.print();
            return ExitCode::from(if usage { EXIT_USAGE } else { EXIT_CLEAN });
        }
    };
    let run_matches = match matches.subcommand() {
        Some(("run", run_matches)) => run_matches,
        Some(("serve", serve_matches)) => return crate::serve::command::main(serve_matches),
        Some(("rules", _)) => {
            print!("{}", rule_table());
            return ExitCode::from(EXIT_CLEAN);
        }
        Some(("inf-lint", lint_matches)) => {
            return inf_lint(
                &lint_matches
                    .get_one::<PathBuf>("inf")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        _ => return ExitCode::from(EXIT_USAGE),
    };
    let args = run_args(run_matches);
    let sets = match parse_sets(&args.set) {
        Ok(sets) => sets,
        Err(message) => {
            eprintln!("storemu: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let faults = match parse_faults(
        &run_matches
            .get_many::<String>("fail")
            .map(|v| v.cloned().collect::<Vec<_>>())
            .unwrap_or_default(),
    ) {
        Ok(faults) => faults,
        Err(message) => {
            eprintln!("storemu: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = run_with_faults(&args, &sets, &faults);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    ExitCode::from(report.exit_status())
}
