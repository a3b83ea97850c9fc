//! What `storemu run` and `storemu serve` share, so that neither command
//! module depends on the other.
//!
//! - [`RunArgs`] and the grammar of the adapter arguments both commands
//!   take (`adapter_args`, read back by `run_args`), with their defaults;
//! - the exit statuses ([`EXIT_CLEAN`] ...);
//! - the emulated registry set up from the INF and `--set`
//!   (`prepare_registry`, [`parse_sets`]) and the pool line of the log;
//! - the bus scan and LUN probe ([`scan`]);
//! - reports written to a standard output that may be closed or full
//!   ([`output`]).

pub mod output;
pub mod scan;

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use crate::inf::{Inf, InstallOptions, install, install_default, service_name_for_image};
use crate::port::locks::StorPortLockIrql;
use crate::port::unmap_race::RefusedUnmap;
use crate::port::{BlockEnd, PhysicalMemory, PoolConfig, PortOptions};
use crate::registry::{Registry, SetSpec, apply, parse_set};

/// Exit status of a clean run.
pub const EXIT_CLEAN: u8 = 0;
/// Exit status when the driver broke a rule or bug-checked.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status when the image could not be loaded.
pub const EXIT_LOAD_ERROR: u8 = 2;
/// Exit status for a usage error.
pub const EXIT_USAGE: u8 = 64;

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
    /// Seed of the `HwStartIo` IRQL and preemption schedule (`--seed`);
    /// `None`: every `HwStartIo` at `DISPATCH_LEVEL`.
    pub seed: Option<u64>,
    /// Longest a call that preempted another may run before the preempted
    /// call is let go on (`--dpc-watchdog-ms`).
    pub dpc_watchdog_ms: u64,
    /// Special pool and the physical memory model.
    pub pool: PoolConfig,
    /// The probe sends UNMAP with parameter lists that change while the
    /// miniport runs (`--racing-buffers`), judging a refused list as given
    /// (`--racing-partial-unmap`: it may have unmapped blocks it names).
    pub racing_buffers: Option<RefusedUnmap>,
    /// How `StorPortAcquireSpinLock` / `StorPortReleaseSpinLock` check the
    /// IRQL (`--storport-lock-irql strict|unchecked`).
    pub storport_lock_irql: StorPortLockIrql,
}

impl Default for RunArgs {
    /// No driver yet, and every option at the default `storemu run` uses.
    fn default() -> Self {
        Self {
            driver: PathBuf::new(),
            inf: None,
            set: Vec::new(),
            json: false,
            allow_missing: false,
            watchdog_ms: DEFAULT_WATCHDOG_MS,
            srb_timeout_ms: DEFAULT_SRB_TIMEOUT_MS,
            seed: None,
            dpc_watchdog_ms: DEFAULT_DPC_WATCHDOG_MS,
            pool: PoolConfig::default(),
            racing_buffers: None,
            storport_lock_irql: StorPortLockIrql::Strict,
        }
    }
}

impl RunArgs {
    /// The port options these arguments ask for, for `service`.
    #[must_use]
    pub fn port_options(&self, service: String) -> PortOptions {
        PortOptions {
            service,
            srb_timeout: std::time::Duration::from_millis(self.srb_timeout_ms),
            seed: self.seed,
            dpc_watchdog: std::time::Duration::from_millis(self.dpc_watchdog_ms),
            pool: self.pool,
            racing_buffers: self.racing_buffers,
            storport_lock_irql: self.storport_lock_irql,
            ..PortOptions::default()
        }
    }
}

/// `--seed` as given: a number, or `random` for one drawn now.
fn parse_seed(text: &str) -> Result<u64, String> {
    if text == "random" {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| {
                u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(30)
            });
        return Ok(nanos ^ u64::from(std::process::id()).rotate_left(32));
    }
    text.parse().map_err(|_| {
        format!("'{text}' is not a seed: expected a decimal number from 0 to 18446744073709551615, or `random`; nothing was run.")
    })
}

/// Default watchdog limit per callback, in milliseconds.
pub const DEFAULT_WATCHDOG_MS: u64 = 10_000;
/// Default SRB completion timeout, in milliseconds.
pub const DEFAULT_SRB_TIMEOUT_MS: u64 = 10_000;
/// Default `--dpc-watchdog-ms`.
pub const DEFAULT_DPC_WATCHDOG_MS: u64 = 1_000;

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
            Arg::new("seed")
                .long("seed")
                .value_name("N|random")
                .value_parser(parse_seed)
                .help("Run each HwStartIo at DISPATCH_LEVEL or PASSIVE_LEVEL, as HW_STARTIO allows a virtual miniport, and preempt some PASSIVE_LEVEL calls with a DISPATCH_LEVEL request on their processor, all drawn from seed N (printed, so a run repeats); without it every HwStartIo runs at DISPATCH_LEVEL"),
        )
        .arg(
            Arg::new("dpc-watchdog-ms")
                .long("dpc-watchdog-ms")
                .value_name("MS")
                .value_parser(value_parser!(u64).range(1..))
                .default_value("1000")
                .help("With --seed: longest a DISPATCH_LEVEL call that preempted another may run before the preempted call is let go on (finishing only then is a PreemptedLockHolder finding)"),
        )
        .arg(Arg::new("special-pool").long("special-pool").action(ArgAction::SetTrue).help("Place each pool block against a guard page and keep freed blocks inaccessible, as Driver Verifier's special pool does"))
        .arg(
            Arg::new("special-pool-end")
                .long("special-pool-end")
                .value_name("aligned|exact")
                .value_parser(["aligned", "exact"])
                .default_value("aligned")
                .help("Where a special-pool block under a page ends: 16-byte aligned start, at most 15 bytes before the guard page (aligned), or exactly at it (exact)"),
        )
        .arg(
            Arg::new("physical-memory-mib")
                .long("physical-memory-mib")
                .value_name("MIB")
                .value_parser(value_parser!(u64).range(1..=1 << 32))
                .default_value("4096")
                .help("Physical memory of the emulated machine; MmGetPhysicalMemoryRangesEx2 reports it and the pool holds at most this less --reserved-memory-mib"),
        )
        .arg(
            Arg::new("reserved-memory-mib")
                .long("reserved-memory-mib")
                .value_name("MIB")
                .value_parser(value_parser!(u64).range(0..=1 << 32))
                .default_value("2048")
                .help("Physical memory the rest of the system holds, which the driver's pool cannot have"),
        )
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
        seed: matches.get_one::<u64>("seed").copied(),
        dpc_watchdog_ms: matches
            .get_one::<u64>("dpc-watchdog-ms")
            .copied()
            .unwrap_or(DEFAULT_DPC_WATCHDOG_MS),
        pool: pool_config(matches),
        racing_buffers: flag(matches, "racing-buffers").then(|| {
            if flag(matches, "racing-partial-unmap") {
                RefusedUnmap::MayUnmapNamedBlocks
            } else {
                RefusedUnmap::ChangesNothing
            }
        }),
        storport_lock_irql: match matches
            .get_one::<String>("storport-lock-irql")
            .map(String::as_str)
        {
            Some("unchecked") => StorPortLockIrql::Unchecked,
            _ => StorPortLockIrql::Strict,
        },
    }
}

/// `--special-pool`, `--special-pool-end`, `--physical-memory-mib` and
/// `--reserved-memory-mib`.
fn pool_config(matches: &ArgMatches) -> PoolConfig {
    let end = match matches
        .get_one::<String>("special-pool-end")
        .map(String::as_str)
    {
        Some("exact") => BlockEnd::Exact,
        _ => BlockEnd::Aligned,
    };
    let defaults = PhysicalMemory::default();
    let mib = |name: &str, default_bytes: u64| {
        matches
            .get_one::<u64>(name)
            .copied()
            .unwrap_or(default_bytes >> 20)
    };
    PoolConfig {
        special: matches.get_flag("special-pool").then_some(end),
        memory: PhysicalMemory::from_mib(
            mib("physical-memory-mib", defaults.physical_bytes),
            mib("reserved-memory-mib", defaults.reserved_bytes),
        ),
    }
}

/// The run log's line about the pool model.
pub(crate) fn pool_log_line(pool: &PoolConfig) -> String {
    let special = match pool.special {
        None => "off".to_owned(),
        Some(BlockEnd::Aligned) => "on (blocks under a page start 16-byte aligned)".to_owned(),
        Some(BlockEnd::Exact) => {
            "on (blocks under a page end exactly at the guard page)".to_owned()
        }
    };
    format!(
        "physical memory {} MiB, {} MiB held by the rest of the system: the pool may hold {} bytes; special pool {special}",
        pool.memory.physical_bytes >> 20,
        pool.memory.reserved_bytes >> 20,
        pool.memory.pool_limit_bytes()
    )
}

/// A flag of `run` that `serve` does not have (false there).
fn flag(matches: &ArgMatches, name: &str) -> bool {
    matches
        .try_get_one::<bool>(name)
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false)
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
        let bytes = crate::files::read(path, crate::files::FileKind::Inf)
            .map_err(|e| format!("{e}; nothing was loaded."))?;
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
