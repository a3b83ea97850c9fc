//! The adapter life cycle Storport drives, and the request path.
//!
//! The IRQL of each callback is the strict end of what the DDI pages allow:
//!
//! | Callback | IRQL | Source |
//! |---|---|---|
//! | `DriverEntry`, `HwFindAdapter` (virtual) | PASSIVE_LEVEL | VIRTUAL_HW_FIND_ADAPTER |
//! | `HwInitialize` | DIRQL (5) | HW_INITIALIZE: "called at DIRQL" |
//! | `HwPassiveInitializeRoutine` | PASSIVE_LEVEL | HW_PASSIVE_INITIALIZE_ROUTINE |
//! | `HwStartIo` (virtual) | DISPATCH_LEVEL | HW_STARTIO: "any IRQL <= DISPATCH_LEVEL" |
//! | `HwAdapterControl`: query, SetRunningConfig | PASSIVE_LEVEL | HW_ADAPTER_CONTROL |
//! | `HwAdapterControl`: Stop, Restart | DIRQL (5) | HW_ADAPTER_CONTROL |
//! | `HwResetBus`, timer and DPC routines | DISPATCH_LEVEL | HW_RESET_BUS, HW_TIMER, HW_DPC_ROUTINE |
//! | `HwFreeAdapterResources` | PASSIVE_LEVEL | HW_FREE_ADAPTER_RESOURCES |
//!
//! This module holds [`Port`] itself (its options, errors, phase, the
//! adapter memory it owns, and the call helpers every part uses); each
//! responsibility has a module of its own, all `impl Port` blocks:
//!
//! - `phases`: the life cycle (`DriverEntry`, start, adapter control,
//!   removal, unload with the leak checks);
//! - `lifecycle`: a PnP start after a stop, and the orphaned-pool check;
//! - `request`: the SRB request path and the checks on each completion;
//! - `timeouts`: the SRB completion timeout, the timer, the bus reset;
//! - `preemption`: preemptible `HwStartIo` calls under `--seed`;
//! - `injection`: `--fail` fault injection;
//! - `checks`: the rule checks on what `HwFindAdapter` and a routine's
//!   registry buffers leave behind;
//! - `nonscsi`: PNP, POWER and WMI requests in their own layouts.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use storport_sys::{HW_INITIALIZATION_DATA, PORT_CONFIGURATION_INFORMATION};

use super::context::Routine;
use super::cpu::{CallFault, Cpu, Preemptive};
use super::locks::StorPortLockIrql;
use super::model::DISPATCH_LEVEL;
use super::pool::{Pool, PoolConfig};
use super::regglue::RegistryPort;
use super::rules::{Finding, Rule};
use super::schedule::Schedule;
use super::state::{Event, Shared, lock};

mod checks;
mod flagged;
mod injection;
mod lifecycle;
mod nonscsi;
mod phases;
mod preemption;
mod request;
mod timeouts;

pub use lifecycle::{OrphanedBlock, PnpStartReading};
pub use nonscsi::NonScsiRequest;
use phases::default_config;
use request::{Completion, data_in_length};

/// `SP_UNINITIALIZED_VALUE`.
pub const SP_UNINITIALIZED_VALUE: u32 = 0xFFFF_FFFF;
/// Entries of the supported-control-type list the port passes by default.
///
/// `ScsiAdapterControlMax` of the newest Windows, 0x1E: the enumeration on
/// "SCSI_ADAPTER_CONTROL_TYPE enumeration (storport.h)" lists 30 types
/// before it, `ScsiQuerySupportedControlTypes` (0) to
/// `ScsiAdapterQueryStorMQInterface` (0x1D).
pub const MAX_CONTROL_TYPE: u32 = 0x1E;
/// The smallest `MaxControlType` a Storport that runs a virtual miniport
/// passes.
///
/// `ScsiAdapterControlMax` of Windows 8 (0x0D). The same page gives
/// Windows 8 as the enumeration's minimum and names every type up to
/// `ScsiAdapterSystemPowerHints` (0x0C) "valid in Windows 8 and later" and
/// `ScsiAdapterFilterResourceRequirements` (0x0D) "valid in Windows 8.1 and
/// later"; `STOR_FEATURE_VIRTUAL_MINIPORT` exists from Windows 8 on.
/// "SCSI_SUPPORTED_CONTROL_TYPE_LIST structure (storport.h)": a miniport
/// "needs to handle the case where the value of MaxControlType might be
/// larger" than the one it was compiled with — and older builds pass
/// smaller ones ([`PortOptions::max_control_type`]).
pub const SMALLEST_MAX_CONTROL_TYPE: u32 = 0x0D;
/// Guard bytes after the supported-control-type list.
const CONTROL_LIST_GUARD: usize = 16;
/// Bytes of the fake `DRIVER_OBJECT` handed to `DriverEntry`.
const DRIVER_OBJECT_BYTES: usize = 0x150;

/// Options of a port instance.
#[derive(Clone, Debug)]
pub struct PortOptions {
    /// Service name (`Services\<service>`).
    pub service: String,
    /// How long the port waits for a request's completion after HwStartIo returns.
    pub srb_timeout: Duration,
    /// Print the log on stderr as it happens.
    pub echo: bool,
    /// The adapter's port number: the `<N>` of `Parameters\Device<N>` that
    /// `Global == 0` registry calls address.
    pub adapter_number: u32,
    /// Seed of the HwStartIo IRQL schedule ([`super::schedule`]); `None`
    /// runs every HwStartIo at DISPATCH_LEVEL, never preempted.
    pub seed: Option<u64>,
    /// How long a DISPATCH_LEVEL call that preempted another on its
    /// processor may run before the port lets the preempted call go on.
    pub dpc_watchdog: Duration,
    /// How the pool hands out memory: special pool (`--special-pool`,
    /// `--special-pool-end`) and the physical memory it lives in
    /// (`--physical-memory-mib`, `--reserved-memory-mib`).
    pub pool: PoolConfig,
    /// `Some`: the LUN probe of `storemu run` sends racing data-out
    /// buffers (`--racing-buffers`, [`super::unmap_race`]), and the racing
    /// UNMAP check judges a refused list by this reading
    /// (`--racing-partial-unmap`); [`Port::racing_unmap`] uses it too (the
    /// default reading when `None`).
    pub racing_buffers: Option<super::unmap_race::RefusedUnmap>,
    /// `StorQueryCapabilities` requests carry a `STOR_DEVICE_CAPABILITIES_EX`
    /// buffer (the reading of the pages the port does not take by default;
    /// see [`super::layouts`]).
    pub pnp_capabilities_buffer: bool,
    /// How `StorPortAcquireSpinLock` / `StorPortReleaseSpinLock` check the
    /// IRQL (`--storport-lock-irql`).
    pub storport_lock_irql: StorPortLockIrql,
    /// `MaxControlType` of the list `ScsiQuerySupportedControlTypes` passes:
    /// [`MAX_CONTROL_TYPE`] (the newest Windows) by default,
    /// [`SMALLEST_MAX_CONTROL_TYPE`] for the oldest.
    pub max_control_type: u32,
}

/// Default of [`PortOptions::dpc_watchdog`].
pub const DEFAULT_DPC_WATCHDOG: Duration = Duration::from_secs(1);

impl Default for PortOptions {
    fn default() -> Self {
        Self {
            service: "miniport".to_owned(),
            adapter_number: 0,
            srb_timeout: Duration::from_secs(10),
            echo: false,
            seed: None,
            dpc_watchdog: DEFAULT_DPC_WATCHDOG,
            pool: PoolConfig::default(),
            racing_buffers: None,
            pnp_capabilities_buffer: false,
            storport_lock_irql: StorPortLockIrql::Strict,
            max_control_type: MAX_CONTROL_TYPE,
        }
    }
}

/// Why the port could not do what it was asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    /// `DriverEntry` returned a failure status.
    #[error(
        "DriverEntry returned status {0:#010x}; the driver did not register with Storport and is unloaded."
    )]
    DriverEntryFailed(u32),
    /// The driver never called `StorPortInitialize` successfully.
    #[error(
        "the driver returned from DriverEntry without registering with StorPortInitialize; there is no adapter to start."
    )]
    NotRegistered,
    /// HwFindAdapter did not return `SP_RETURN_FOUND`.
    #[error(
        "HwFindAdapter returned {0} instead of SP_RETURN_FOUND (1); the adapter does not start."
    )]
    FindAdapterFailed(u32),
    /// HwInitialize returned FALSE.
    #[error("HwInitialize returned FALSE; the adapter does not start.")]
    InitializeFailed,
    /// The operation needs a started adapter.
    #[error("the adapter is not started; start it before sending requests or control codes.")]
    NotStarted,
    /// The driver faulted or bug-checked.
    #[error("the driver stopped with a bug check: {0}")]
    BugCheck(String),
    /// The port could not set a request up (memory, page protection).
    #[error("the request could not be set up: {0}; it was not sent to the miniport.")]
    RequestSetup(String),
}

/// Life-cycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Loaded,
    Registered,
    Started,
    Stopped,
    Removed,
    Unloaded,
}

/// Driver memory the port owns for the adapter.
///
/// # Invariants
///
/// The boxes are never reallocated while the adapter exists, so the
/// addresses handed to the miniport stay valid until removal.
struct AdapterMemory {
    extension: Box<[u128]>,
    config: Box<PORT_CONFIGURATION_INFORMATION>,
}

#[expect(
    clippy::non_send_fields_in_send_ty,
    reason = "the pointers are the miniport's and are never dereferenced here"
)]
// SAFETY: the raw pointers inside PORT_CONFIGURATION_INFORMATION are owned
// by the miniport and never dereferenced by the port; it only moves the box
// as a whole.
unsafe impl Send for AdapterMemory {}

/// One emulated Storport instance driving one miniport and its adapter.
///
/// `execute` takes `&self` and may be called from several threads at once,
/// as Storport calls virtual miniports concurrently.
pub struct Port {
    shared: Arc<Shared>,
    cpu: Arc<dyn Cpu>,
    entry: usize,
    options: PortOptions,
    phase: Mutex<Phase>,
    memory: Mutex<Option<AdapterMemory>>,
    schedule: Schedule,
    /// The control types the miniport listed in ScsiQuerySupportedControlTypes.
    supported_controls: Mutex<Vec<u32>>,
    driver_object: Box<[u64]>,
    registry_path: Box<[u64; 2]>,
    _registry_path_text: Box<[u16]>,
    _keepalive: Option<Box<dyn Any + Send + Sync>>,
}

const fn bool_result(rax: u64) -> bool {
    rax & 0xFF != 0
}

impl Port {
    /// A port for the driver whose `DriverEntry` is at `entry`, called
    /// through `cpu`. `keepalive` holds whatever keeps the code mapped.
    #[must_use]
    pub fn new(
        entry: usize,
        cpu: Arc<dyn Cpu>,
        options: PortOptions,
        keepalive: Option<Box<dyn Any + Send + Sync>>,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        shared.echo.store(options.echo, Ordering::Relaxed);
        *lock(&shared.pool) = Pool::new(options.pool);
        shared
            .spin_locks
            .set_storport_irql(options.storport_lock_irql);
        *lock(&shared.registry) =
            RegistryPort::new(crate::registry::Registry::new(), &options.service);
        lock(&shared.registry).scope.adapter_number = options.adapter_number;
        let path: Vec<u16> = format!(
            "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\{}",
            options.service
        )
        .encode_utf16()
        .chain([0])
        .collect();
        let path = path.into_boxed_slice();
        let bytes = u64::try_from((path.len() - 1) * 2).unwrap_or(0);
        let registry_path = Box::new([bytes | ((bytes + 2) << 16), path.as_ptr() as u64]);
        let schedule = Schedule::new(options.seed);
        Self {
            shared,
            cpu,
            entry,
            options,
            phase: Mutex::new(Phase::Loaded),
            memory: Mutex::new(None),
            schedule,
            supported_controls: Mutex::new(Vec::new()),
            driver_object: vec![0_u64; DRIVER_OBJECT_BYTES / 8].into_boxed_slice(),
            registry_path,
            _registry_path_text: path,
            _keepalive: keepalive,
        }
    }

    /// Replaces the registry (for example one an INF was installed into).
    pub fn set_registry(&self, registry: crate::registry::Registry) {
        lock(&self.shared.registry).registry = registry;
    }

    /// The registry as the miniport will see it (set values before start).
    pub fn registry(&self) -> std::sync::MutexGuard<'_, RegistryPort> {
        lock(&self.shared.registry)
    }

    /// Everything that happened, in order.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        self.shared.events()
    }

    /// The findings so far.
    #[must_use]
    pub fn findings(&self) -> Vec<Finding> {
        self.shared.findings()
    }

    /// The driver's debug output lines so far.
    #[must_use]
    pub fn dbgprint(&self) -> Vec<String> {
        self.shared.dbgprint()
    }

    /// Whether a bug check (from the driver or the verifier) has been raised.
    #[must_use]
    pub fn bugchecked(&self) -> bool {
        self.shared.bugchecked.load(Ordering::Acquire)
    }

    /// Records a finding the caller observed (for example in the data it got back).
    pub fn report(&self, rule: Rule, routine: &str, params: Vec<u64>, message: String) {
        self.shared
            .report(Finding::new(rule, routine, params, message));
    }

    /// Records a life-cycle line.
    pub fn log(&self, text: impl Into<String>) {
        self.shared.phase(text);
    }

    /// The init data the miniport registered.
    #[must_use]
    pub fn init_data(&self) -> Option<HW_INITIALIZATION_DATA> {
        lock(&self.shared.init).map(|record| record.0)
    }

    /// The options the port was made with.
    #[must_use]
    pub const fn options(&self) -> &PortOptions {
        &self.options
    }

    /// The port configuration as HwFindAdapter left it.
    #[must_use]
    pub fn config(&self) -> Option<PORT_CONFIGURATION_INFORMATION> {
        lock(&self.memory).as_ref().map(|m| *m.config)
    }

    fn extension(&self) -> u64 {
        self.shared.device_extension.load(Ordering::Acquire) as u64
    }

    /// Calls driver code as `routine` at `irql`, then runs the DPCs it issued.
    fn call(
        &self,
        routine: Routine,
        irql: u8,
        target: usize,
        args: &[u64],
    ) -> Result<u64, PortError> {
        self.call_preemptive(routine, irql, target, args, Preemptive::No)
    }

    fn fault(&self, routine: Routine, mut fault: CallFault) -> PortError {
        if let Some(note) = super::layouts::poison_note(fault.fault_address, &fault.registers) {
            fault.message = format!("{} {note}", fault.message);
        }
        let message = fault.message.clone();
        if !fault.reported {
            self.shared.report(Finding {
                rule: fault.rule,
                bugcheck: fault.bugcheck,
                params: fault.params,
                routine: routine.name().to_owned(),
                message: fault.message,
            });
        }
        self.shared.bugchecked.store(true, Ordering::Release);
        PortError::BugCheck(message)
    }

    fn run_dpcs(&self) -> Result<(), PortError> {
        loop {
            let next = lock(&self.shared.dpcs).pop_front();
            let Some([routine, dpc, a1, a2]) = next else {
                return Ok(());
            };
            if routine == 0 {
                continue;
            }
            let _ = self.call(
                Routine::Dpc,
                DISPATCH_LEVEL,
                routine as usize,
                &[dpc, self.extension(), a1, a2],
            )?;
        }
    }

    fn set_phase(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }

    fn require(&self, allowed: &[Phase]) -> Result<(), PortError> {
        if allowed.contains(&lock(&self.phase)) {
            Ok(())
        } else {
            Err(PortError::NotStarted)
        }
    }

    /// The shared state (for the exports' tests).
    #[must_use]
    pub const fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Where driver code at `pc` is, for messages.
fn code_location(pc: usize) -> String {
    crate::machine::locate(pc).map_or_else(|| format!("{pc:#x}"), |location| location.to_string())
}

impl Drop for Port {
    fn drop(&mut self) {
        // Keep the adapter's memory alive until the miniport can no longer run.
        self.shared.device_extension.store(0, Ordering::Release);
    }
}
