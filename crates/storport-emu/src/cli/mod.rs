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
//! `--seed N|random` draws each `HwStartIo` call's IRQL and preemption from N
//! ([`crate::port::schedule`]); `--dpc-watchdog-ms` bounds a call that
//! preempted another before the preempted call is let go on.
//!
//! `--special-pool` places every pool block against a guard page and keeps
//! freed blocks inaccessible ([`crate::port::special_pool`];
//! `--special-pool-end aligned|exact` chooses where a block under a page
//! ends). `--physical-memory-mib N` (default 4096) and
//! `--reserved-memory-mib N` (default 2048) set the physical memory model
//! ([`crate::port::physmem`]): what `MmGetPhysicalMemoryRangesEx2` reports,
//! and the most the driver's pool may hold before allocations return NULL.
//!
//! `--racing-buffers` adds a step to the probe of every LUN that reports
//! UNMAP support: UNMAP with parameter lists that change while the miniport
//! runs, judged by the rule `DataOutSnapshot`
//! ([`crate::port::unmap_race`]); `--racing-partial-unmap` lets a refused
//! list have unmapped blocks it names.
//!
//! `--non-scsi-srbs` adds the PNP, POWER and WMI requests Storport sends
//! ([`nonscsi`]), each in its own SRB layout; `--pnp-capabilities-buffer`
//! gives `StorQueryCapabilities` a `STOR_DEVICE_CAPABILITIES_EX` buffer
//! (see [`crate::port::layouts`]). `storemu run` sends them unless
//! `--no-non-scsi-srbs` is given.
//!
//! `--lifecycle SEQ` replaces the run's sequence with Plug and Play and power steps
//! ([`lifecycle`], e.g. `start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove`);
//! `--pnp-start find-adapter|restart` chooses how a `pnp-start` restarts the
//! adapter ([`crate::port::PnpStartReading`]).
//!
//! `--storport-lock-irql strict|unchecked` (`run` and `serve`) chooses how
//! `StorPortAcquireSpinLock` / `StorPortReleaseSpinLock` check the IRQL,
//! which their page does not state (see [`crate::port::locks`]).
//!
//! `storemu inf-lint FILE.inf [--image DRIVER.sys]` checks an INF against
//! the rules of [`crate::inf::lint`] and prints one line per finding; with
//! `--image`, rule `MinimumBuild` also weighs the routines the image imports
//! ([`crate::inf::min_build`]).
//!
//! Every file read from a path (driver image, INF) goes through
//! [`crate::files`], with a cap per kind of file.
//!
//! Exit status: 0 clean, 1 findings or bug check, 2 load error, 64 usage
//! error, 74 standard output closed or full ([`output`]: one line on
//! standard error says so; `serve` still stops the adapter and writes its
//! findings on standard error).

pub mod lifecycle;
pub mod nonscsi;

pub use crate::setup::{
    DEFAULT_DPC_WATCHDOG_MS, DEFAULT_SRB_TIMEOUT_MS, DEFAULT_WATCHDOG_MS, EXIT_CLEAN,
    EXIT_FINDINGS, EXIT_LOAD_ERROR, EXIT_USAGE, RunArgs, output, parse_sets, scan,
};
use crate::setup::{adapter_args, pool_log_line, prepare_registry, run_args};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Arg, ArgAction, Command, value_parser};
use serde_json::json;

use crate::machine::loader;
use crate::port::cpu::GateCpu;
use crate::port::state::Event;
use crate::port::{
    FaultSpec, Finding, PnpStartReading, Port, PortError, PortOptions, Rule, exports,
};
use crate::registry::SetSpec;
use output::Report;
use scan::LunReport;

/// Largest number of targets per bus the scan visits.
const MAX_SCANNED_TARGETS: u8 = 128;
/// Largest number of buses the scan visits.
const MAX_SCANNED_BUSES: u8 = 8;

/// What `storemu run` does beyond the adapter arguments ([`RunArgs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Send the PNP, POWER and WMI requests of [`nonscsi`] (true unless
    /// `--no-non-scsi-srbs`).
    pub non_scsi_srbs: bool,
    /// `--pnp-capabilities-buffer`: `StorQueryCapabilities` carries a
    /// `STOR_DEVICE_CAPABILITIES_EX` buffer.
    pub pnp_capabilities_buffer: bool,
    /// `--lifecycle SEQ`: the Plug and Play and power sequence to run instead of the
    /// default one.
    pub lifecycle: Option<Vec<lifecycle::Step>>,
    /// `--pnp-start`: how a `pnp-start` step starts the adapter again.
    pub pnp_start: PnpStartReading,
}

impl Default for RunOptions {
    /// What `storemu run` does without options: the default sequence, with
    /// the non-SCSI requests Storport sends.
    fn default() -> Self {
        Self {
            non_scsi_srbs: true,
            pnp_capabilities_buffer: false,
            lifecycle: None,
            pnp_start: PnpStartReading::default(),
        }
    }
}

/// The command-line grammar. (The builder API is used because clap's derive
/// output carries lint allowances the workspace forbids.)
fn command() -> Command {
    Command::new("storemu")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Runs a Storport virtual miniport .sys under an emulated Storport port driver and checks it")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .after_help("Exit status: 0 clean, 1 findings or bug check, 2 load error (a file that cannot be read, is too large or does not load), 64 usage error, 74 standard output closed or full (one line on standard error says so; `serve` still stops the adapter, runs the leak checks and writes its findings on standard error).")
        .subcommand(Command::new("rules").about("List every verifier rule with its source and bug check"))
        .subcommand(crate::serve::command::definition())
        .subcommand(
            Command::new("inf-lint")
                .about("Check an INF for what InfVerif rejects in a Storport miniport INF")
                .arg(Arg::new("inf").value_name("FILE.inf").required(true).value_parser(value_parser!(PathBuf)).help("The INF file"))
                .arg(
                    Arg::new("image")
                        .long("image")
                        .value_name("DRIVER.sys")
                        .value_parser(value_parser!(PathBuf))
                        .help("Also check the models decoration against the routines this driver image imports"),
                ),
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
            )
            .arg(Arg::new("racing-buffers").long("racing-buffers").action(ArgAction::SetTrue).help("Probe UNMAP with parameter lists that change while the miniport runs (rule DataOutSnapshot)"))
            .arg(Arg::new("racing-partial-unmap").long("racing-partial-unmap").action(ArgAction::SetTrue).requires("racing-buffers").help("With --racing-buffers: accept a refused UNMAP that unmapped blocks its list names"))
            .arg(Arg::new("non-scsi-srbs").long("non-scsi-srbs").action(ArgAction::SetTrue).overrides_with("no-non-scsi-srbs").help("Send the SRB_FUNCTION_PNP (StorQueryCapabilities, StorRemoveDevice), SRB_FUNCTION_POWER (D3, D0) and, to WMI data providers, SRB_FUNCTION_WMI requests Storport sends, each in its own layout with the members the miniport must ignore poisoned (the default)"))
            .arg(Arg::new("no-non-scsi-srbs").long("no-non-scsi-srbs").action(ArgAction::SetTrue).overrides_with("non-scsi-srbs").help("Send SCSI commands only: no PNP, POWER or WMI requests"))
            .arg(
                Arg::new("lifecycle")
                    .long("lifecycle")
                    .value_name("SEQ")
                    .help("Run this PnP and power sequence instead of the default one: comma-separated steps start, io, pnp-stop, pnp-start, d3, hibernate, d0, query-remove, cancel-remove, remove, surprise-remove (for example start,io,pnp-stop,pnp-start,io,d3,d0,io,surprise-remove)"),
            )
            .arg(
                Arg::new("pnp-start")
                    .long("pnp-start")
                    .value_name("READING")
                    .value_parser(["find-adapter", "restart"])
                    .default_value("find-adapter")
                    .help("How a pnp-start step starts the adapter again (the pages are silent): find-adapter runs HwFindAdapter and HwInitialize again on the same, intact device extension; restart sends ScsiRestartAdapter"),
            )
            .arg(Arg::new("pnp-capabilities-buffer").long("pnp-capabilities-buffer").action(ArgAction::SetTrue).help("With --non-scsi-srbs: give StorQueryCapabilities a STOR_DEVICE_CAPABILITIES_EX buffer in DataBuffer instead of poisoning it (the pages disagree; the poisoned reading is the default)")),
        )
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
    /// The seed of the `HwStartIo` schedule, if one was used.
    pub seed: Option<u64>,
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
            "seed": self.seed,
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
        seed: None,
    }
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
    run_with_options(args, sets, faults, &RunOptions::default())
}

/// Runs `storemu run` with the fault plan `faults` and the run `options`.
#[must_use]
pub fn run_with_options(
    args: &RunArgs,
    sets: &[SetSpec],
    faults: &[FaultSpec],
    run_options: &RunOptions,
) -> RunReport {
    let bytes = match crate::files::read(&args.driver, crate::files::FileKind::DriverImage) {
        Ok(bytes) => bytes,
        Err(e) => return load_error(format!("{e}; nothing was loaded.")),
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
        pnp_capabilities_buffer: run_options.pnp_capabilities_buffer,
        ..args.port_options(service)
    };
    let port = Port::new(entry, Arc::new(cpu), options, Some(Box::new(image)));
    port.set_registry(registry);
    port.log(format!("loaded {name}"));
    if let Some(seed) = args.seed {
        port.log(format!(
            "HwStartIo IRQL and preemption schedule: seed {seed} (repeat the run with --seed {seed})"
        ));
    }
    port.log(pool_log_line(&args.pool));
    if !faults.is_empty() {
        port.inject_faults(faults.to_vec());
    }
    let luns = run_options.lifecycle.as_ref().map_or_else(
        || life_cycle(&port, run_options),
        |steps| lifecycle_sequence(&port, steps, run_options),
    );
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
        seed: args.seed,
    }
}

/// `DriverEntry`, then the `--lifecycle` steps.
fn lifecycle_sequence(
    port: &Port,
    steps: &[lifecycle::Step],
    options: &RunOptions,
) -> Vec<LunReport> {
    match port.driver_entry() {
        Ok(()) => lifecycle::run(port, steps, options),
        Err(error) => {
            if port.findings().is_empty() {
                port.report(
                    Rule::AdapterStartFailed,
                    "DriverEntry",
                    vec![],
                    error.to_string(),
                );
            }
            Vec::new()
        }
    }
}

fn life_cycle(port: &Port, options: &RunOptions) -> Vec<LunReport> {
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
    let luns = match discover(port, options) {
        Ok(luns) => luns,
        Err(PortError::BugCheck(_)) => return Vec::new(),
        Err(_) => Vec::new(),
    };
    if port.bugchecked() {
        return luns;
    }
    if options.non_scsi_srbs {
        let addresses: Vec<nonscsi::Address> =
            luns.iter().map(|l| (l.bus, l.target, l.lun)).collect();
        let steps = nonscsi::power_cycle(port, &addresses)
            .and_then(|()| nonscsi::remove_luns(port, &addresses));
        if steps.is_err() || port.bugchecked() {
            return luns;
        }
    }
    let _ = port.stop();
    let _ = port.remove();
    luns
}

fn discover(port: &Port, options: &RunOptions) -> Result<Vec<LunReport>, PortError> {
    let config = port.config().ok_or(PortError::NotStarted)?;
    let buses = config.NumberOfBuses.clamp(1, MAX_SCANNED_BUSES);
    let targets = config.MaximumNumberOfTargets.clamp(1, MAX_SCANNED_TARGETS);
    let luns = config.MaximumNumberOfLogicalUnits.max(1);
    port.log(format!(
        "bus scan: {buses} bus(es) x {targets} target(s), up to {luns} LUN(s) each"
    ));
    let found = scan::scan(port, buses, targets, luns)?;
    port.log(format!("bus scan found {} LUN(s)", found.len()));
    if options.non_scsi_srbs {
        let addresses: Vec<nonscsi::Address> = found.iter().map(|l| (l.0, l.1, l.2)).collect();
        nonscsi::after_scan(port, &addresses)?;
    }
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
fn inf_lint(path: &std::path::Path, image: Option<&std::path::Path>) -> ExitCode {
    let mut out = Report::new("the rest of the findings are lost");
    let status = match crate::inf::lint::lint_file_with_image(path, image) {
        Ok(findings) if findings.is_empty() => {
            out.line(&format!(
                "{}: passes all {} INF rules",
                path.display(),
                crate::inf::lint::LintRule::ALL.len()
            ));
            EXIT_CLEAN
        }
        Ok(findings) => {
            for finding in &findings {
                out.line(&format!("{}: {finding}", path.display()));
            }
            EXIT_FINDINGS
        }
        Err(error) => {
            output::warn(&format!("storemu: {error}"));
            EXIT_LOAD_ERROR
        }
    };
    ExitCode::from(out.status(status))
}

/// Entry point of the `storemu` binary.
#[must_use]
pub fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => {
            let usage = error.use_stderr();
            if error.print().is_err() && !usage {
                output::warn(&format!(
                    "storemu: standard output cannot be written: it is closed or full; the help is lost, and the exit status is {}.",
                    output::EXIT_OUTPUT_ERROR
                ));
                return ExitCode::from(output::EXIT_OUTPUT_ERROR);
            }
            return ExitCode::from(if usage { EXIT_USAGE } else { EXIT_CLEAN });
        }
    };
    let run_matches = match matches.subcommand() {
        Some(("run", run_matches)) => run_matches,
        Some(("serve", serve_matches)) => return crate::serve::command::main(serve_matches),
        Some(("rules", _)) => {
            let mut out = Report::new("the rule table is lost");
            out.write(&rule_table());
            return ExitCode::from(out.status(EXIT_CLEAN));
        }
        Some(("inf-lint", lint_matches)) => {
            return inf_lint(
                &lint_matches
                    .get_one::<PathBuf>("inf")
                    .cloned()
                    .unwrap_or_default(),
                lint_matches
                    .get_one::<PathBuf>("image")
                    .map(PathBuf::as_path),
            );
        }
        _ => return ExitCode::from(EXIT_USAGE),
    };
    let args = run_args(run_matches);
    let sets = match parse_sets(&args.set) {
        Ok(sets) => sets,
        Err(message) => {
            output::warn(&format!("storemu: {message}"));
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
            output::warn(&format!("storemu: {message}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let lifecycle = match run_matches
        .get_one::<String>("lifecycle")
        .map(|seq| lifecycle::parse(seq))
        .transpose()
    {
        Ok(steps) => steps,
        Err(message) => {
            output::warn(&format!("storemu: {message}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let options = RunOptions {
        non_scsi_srbs: !run_matches.get_flag("no-non-scsi-srbs"),
        pnp_capabilities_buffer: run_matches.get_flag("pnp-capabilities-buffer"),
        lifecycle,
        pnp_start: match run_matches
            .get_one::<String>("pnp-start")
            .map(String::as_str)
        {
            Some("restart") => PnpStartReading::RestartAdapter,
            _ => PnpStartReading::FindAdapterAgain,
        },
    };
    let report = run_with_options(&args, &sets, &faults, &options);
    let mut out = Report::new("the report is lost");
    if args.json {
        out.line(&report.to_json().to_string());
    } else {
        out.write(&report.to_text());
    }
    ExitCode::from(out.status(report.exit_status()))
}
