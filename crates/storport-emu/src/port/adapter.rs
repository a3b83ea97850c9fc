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

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use storport_sys::{
    HW_INITIALIZATION_DATA, PORT_CONFIGURATION_INFORMATION, SCSI_SUPPORTED_CONTROL_TYPE_LIST,
    adapter_control,
};

use super::context::{self, Routine};
use super::cpu::{CallFault, Cpu, Preemptive};
use super::faults::{FaultPlan, FaultSpec, InjectedFault};
use super::locks::{self, StorPortLockIrql};
use super::model::{DIRQL, DISPATCH_LEVEL, STATUS_SUCCESS};
use super::pool::{Pool, PoolConfig};
use super::regglue::RegistryPort;
use super::rules::{Finding, Rule};
use super::schedule::{Companion, Schedule};
use super::srb::{self, DataDirection, GUARD_FILL, SrbRecord, SrbResult};
use super::state::{Event, Shared, lock};
use crate::machine::preempt::{Preempted, Preemption};

mod lifecycle;
mod nonscsi;

pub use lifecycle::{OrphanedBlock, PnpStartReading};
pub use nonscsi::NonScsiRequest;

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

    /// Installs a fault plan: the calls `specs` name will fail (see
    /// [`super::faults`]). Call counts start again from zero.
    pub fn inject_faults(&self, specs: Vec<FaultSpec>) {
        for spec in &specs {
            self.log(format!("fault injection planned: {spec}"));
        }
        *lock(&self.shared.faults) = FaultPlan::new(specs);
    }

    /// How many calls of each fallible import the driver made so far
    /// (names never called are absent).
    #[must_use]
    pub fn fault_calls(&self) -> std::collections::BTreeMap<&'static str, u64> {
        lock(&self.shared.faults).calls()
    }

    /// The failures the fault plan injected so far, in order.
    #[must_use]
    pub fn injected_faults(&self) -> Vec<InjectedFault> {
        lock(&self.shared.faults).injected().to_vec()
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

    /// [`Self::call`], taking part in the preemption model as `how` says.
    fn call_preemptive(
        &self,
        routine: Routine,
        irql: u8,
        target: usize,
        args: &[u64],
        how: Preemptive<'_>,
    ) -> Result<u64, PortError> {
        let acquired_since = locks::mark();
        let result = {
            let _frame = context::enter(&self.shared, routine, irql);
            // SAFETY: `target` is a routine the miniport registered for
            // `routine`, and `args` are the arguments its documented
            // prototype takes, pointing at memory the port keeps alive.
            unsafe { self.cpu.call_preemptive(target, args, irql, how) }
        };
        if result.is_ok() {
            locks::check_returned(&self.shared, routine, acquired_since);
        }
        self.shared.flush_debug_output();
        let rax = result.map_err(|fault| self.fault(routine, fault))?;
        self.run_dpcs()?;
        Ok(rax)
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

    /// Calls `DriverEntry(DriverObject, RegistryPath)` at PASSIVE_LEVEL.
    ///
    /// # Errors
    ///
    /// [`PortError::DriverEntryFailed`] for a failure status, or a bug check.
    pub fn driver_entry(&self) -> Result<(), PortError> {
        self.log("DriverEntry");
        let rax = self.call(
            Routine::DriverEntry,
            0,
            self.entry,
            &[
                self.driver_object.as_ptr() as u64,
                self.registry_path.as_ptr() as u64,
            ],
        )?;
        let status = (rax & 0xFFFF_FFFF) as u32;
        if status != STATUS_SUCCESS {
            self.log(format!("DriverEntry returned {status:#010x}"));
            return Err(PortError::DriverEntryFailed(status));
        }
        if lock(&self.shared.init).is_none() {
            return Err(PortError::NotRegistered);
        }
        self.set_phase(Phase::Registered);
        Ok(())
    }

    /// PnP start: device extension, HwFindAdapter, HwInitialize, the
    /// passive initialisation routine and ScsiQuerySupportedControlTypes.
    ///
    /// # Errors
    ///
    /// When find-adapter or initialise fails, or the driver bug-checks.
    pub fn start(&self) -> Result<(), PortError> {
        self.require(&[Phase::Registered])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let units = (init.DeviceExtensionSize as usize).div_ceil(16).max(1);
        let mut memory = AdapterMemory {
            extension: vec![0_u128; units].into_boxed_slice(),
            config: Box::new(default_config(&init)),
        };
        let extension = memory.extension.as_mut_ptr() as u64;
        let config_address = std::ptr::from_mut(&mut *memory.config) as u64;
        self.shared
            .device_extension
            .store(extension as usize, Ordering::Release);
        // INVARIANT: the memory is stored before the miniport sees it and
        // lives until `remove`.
        *lock(&self.memory) = Some(memory);
        self.find_and_initialize(&init, extension, config_address, &|| {})
    }

    /// HwFindAdapter on `extension` with the ConfigInfo at `config_address`,
    /// then `after_find` (when find-adapter succeeded), HwInitialize, the
    /// passive initialisation routine and ScsiQuerySupportedControlTypes.
    fn find_and_initialize(
        &self,
        init: &HW_INITIALIZATION_DATA,
        extension: u64,
        config_address: u64,
        after_find: &dyn Fn(),
    ) -> Result<(), PortError> {
        let mut again = Box::new(0_u8);
        let argument_string = Box::new(0_u8);
        self.log("HwFindAdapter (PASSIVE_LEVEL)");
        let find = init.HwFindAdapter.map_or(0, |f| f as *const () as usize);
        let found = self.call(
            Routine::FindAdapter,
            0,
            find,
            &[
                extension,
                0,
                0,
                0,
                std::ptr::from_ref(&*argument_string) as u64,
                config_address,
                std::ptr::from_mut(&mut *again) as u64,
            ],
        )?;
        let found = (found & 0xFFFF_FFFF) as u32;
        let config = self.config().ok_or(PortError::NotStarted)?;
        if found != storport_sys::SP_RETURN_FOUND {
            self.shared.violation(
                Rule::AdapterStartFailed,
                Routine::FindAdapter,
                vec![u64::from(found)],
                format!("HwFindAdapter returned {found} instead of SP_RETURN_FOUND (1); the adapter does not start."),
            );
            self.check_registry_buffer(Routine::FindAdapter);
            return Err(PortError::FindAdapterFailed(found));
        }
        self.check_find_adapter(&config);
        after_find();

        self.log("HwInitialize (DIRQL)");
        let initialize = init.HwInitialize.map_or(0, |f| f as *const () as usize);
        if !bool_result(self.call(Routine::Initialize, DIRQL, initialize, &[extension])?) {
            self.shared.violation(
                Rule::AdapterStartFailed,
                Routine::Initialize,
                vec![],
                "HwInitialize returned FALSE; the adapter does not start.".to_owned(),
            );
            return Err(PortError::InitializeFailed);
        }
        let passive = lock(&self.shared.passive_init).take();
        if let Some(routine) = passive {
            self.log("HwPassiveInitializeRoutine (PASSIVE_LEVEL)");
            if !bool_result(self.call(Routine::Initialize, 0, routine, &[extension])?) {
                self.shared.violation(
                    Rule::AdapterStartFailed,
                    Routine::Initialize,
                    vec![],
                    "HwPassiveInitializeRoutine returned FALSE; the adapter does not start."
                        .to_owned(),
                );
                return Err(PortError::InitializeFailed);
            }
        }
        self.set_phase(Phase::Started);
        self.query_supported_control_types()?;
        Ok(())
    }

    fn check_find_adapter(&self, config: &PORT_CONFIGURATION_INFORMATION) {
        if config.VirtualDevice == 0 {
            self.shared.violation(
                Rule::VirtualDevice,
                Routine::FindAdapter,
                vec![],
                "HwFindAdapter returned with ConfigInfo->VirtualDevice FALSE; a virtual miniport must set it to TRUE.".to_owned(),
            );
        }
        let unset = |v: u32| v == SP_UNINITIALIZED_VALUE || v == 0;
        if unset(config.MaximumTransferLength) || unset(config.NumberOfPhysicalBreaks) {
            self.shared.violation(
                Rule::FindAdapterLimits,
                Routine::FindAdapter,
                vec![u64::from(config.MaximumTransferLength), u64::from(config.NumberOfPhysicalBreaks)],
                format!(
                    "HwFindAdapter left MaximumTransferLength = {:#x} and NumberOfPhysicalBreaks = {:#x}; both must be set to the adapter's limits.",
                    config.MaximumTransferLength, config.NumberOfPhysicalBreaks
                ),
            );
        }
        self.log(format!(
            "adapter found: {} bus(es), {} target(s), {} LUN(s) per target, maximum transfer {} bytes",
            config.NumberOfBuses, config.MaximumNumberOfTargets, config.MaximumNumberOfLogicalUnits, config.MaximumTransferLength
        ));
    }

    /// A registry buffer still allocated when the miniport routine that
    /// must have released it returned.
    fn check_registry_buffer(&self, routine: Routine) {
        let live = lock(&self.shared.registry).buffer();
        if let Some((address, size)) = live {
            self.shared.violation(
                Rule::RegistryBufferLeak,
                routine,
                vec![address as u64, u64::from(size)],
                format!("The registry buffer {address:#x} ({size} bytes) was never freed with StorPortFreeRegistryBuffer."),
            );
        }
    }

    fn query_supported_control_types(&self) -> Result<(), PortError> {
        let Some(control) = self.init_data().and_then(|i| i.HwAdapterControl) else {
            self.log("no HwAdapterControl: Stop and Restart are not supported");
            return Ok(());
        };
        // The 4-byte header (ULONG MaxControlType; storport.h's
        // `BOOLEAN SupportedTypeList[0]` adds nothing), then the BOOLEAN list
        // of MaxControlType entries, then guard bytes.
        let max_control_type = self.options.max_control_type;
        let list_start = SCSI_SUPPORTED_CONTROL_TYPE_LIST::LIST_OFFSET;
        let list_bytes = list_start + max_control_type as usize;
        let mut buffer = vec![0_u8; list_bytes + CONTROL_LIST_GUARD].into_boxed_slice();
        buffer[..size_of::<u32>()].copy_from_slice(&max_control_type.to_le_bytes());
        buffer[list_bytes..].fill(GUARD_FILL);
        self.log("HwAdapterControl(ScsiQuerySupportedControlTypes) (PASSIVE_LEVEL)");
        let _ = self.call(
            Routine::AdapterControl,
            0,
            control as *const () as usize,
            &[
                self.extension(),
                u64::from(adapter_control::QUERY_SUPPORTED_CONTROL_TYPES),
                buffer.as_mut_ptr() as u64,
            ],
        )?;
        if let Some(offset) = buffer[list_bytes..].iter().position(|&b| b != GUARD_FILL) {
            self.shared.violation(
                Rule::SupportedTypeListOverrun,
                Routine::AdapterControl,
                vec![u64::from(max_control_type), (max_control_type as usize + offset) as u64],
                format!(
                    "ScsiQuerySupportedControlTypes wrote SupportedTypeList[{}], past the {} entries MaxControlType allows.",
                    max_control_type as usize + offset,
                    max_control_type
                ),
            );
        }
        let supported: Vec<usize> = buffer[list_start..list_bytes]
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .map(|(i, _)| i)
            .collect();
        self.log(format!("supported adapter control types: {supported:?}"));
        *lock(&self.supported_controls) = supported
            .iter()
            .filter_map(|&t| u32::try_from(t).ok())
            .collect();
        Ok(())
    }

    /// Calls `HwAdapterControl(control_type, parameters)` at the IRQL
    /// Storport uses for that type; returns `SCSI_ADAPTER_CONTROL_STATUS`.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn adapter_control(&self, control_type: u32, parameters: u64) -> Result<u32, PortError> {
        self.require(&[Phase::Started, Phase::Stopped])?;
        let Some(control) = self.init_data().and_then(|i| i.HwAdapterControl) else {
            return Ok(adapter_control::UNSUCCESSFUL);
        };
        let irql = match control_type {
            adapter_control::STOP_ADAPTER | adapter_control::RESTART_ADAPTER => DIRQL,
            _ => 0,
        };
        let rax = self.call(
            Routine::AdapterControl,
            irql,
            control as *const () as usize,
            &[self.extension(), u64::from(control_type), parameters],
        )?;
        Ok((rax & 0xFFFF_FFFF) as u32)
    }

    /// ScsiStopAdapter (DIRQL).
    ///
    /// # Errors
    ///
    /// As [`Self::adapter_control`].
    pub fn stop(&self) -> Result<u32, PortError> {
        self.log("HwAdapterControl(ScsiStopAdapter) (DIRQL)");
        let status = self.adapter_control(adapter_control::STOP_ADAPTER, 0)?;
        self.set_phase(Phase::Stopped);
        Ok(status)
    }

    /// ScsiRestartAdapter (DIRQL).
    ///
    /// # Errors
    ///
    /// As [`Self::adapter_control`].
    pub fn restart(&self) -> Result<u32, PortError> {
        self.log("HwAdapterControl(ScsiRestartAdapter) (DIRQL)");
        let status = self.adapter_control(adapter_control::RESTART_ADAPTER, 0)?;
        self.set_phase(Phase::Started);
        Ok(status)
    }

    /// ScsiSetRunningConfig (PASSIVE_LEVEL).
    ///
    /// # Errors
    ///
    /// As [`Self::adapter_control`].
    pub fn set_running_config(&self) -> Result<u32, PortError> {
        self.log("HwAdapterControl(ScsiSetRunningConfig) (PASSIVE_LEVEL)");
        let status = self.adapter_control(adapter_control::SET_RUNNING_CONFIG, 0)?;
        self.check_registry_buffer(Routine::AdapterControl);
        Ok(status)
    }

    /// HwResetBus(PathId) at DISPATCH_LEVEL; returns its BOOLEAN.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn reset_bus(&self, path_id: u8) -> Result<bool, PortError> {
        self.require(&[Phase::Started])?;
        let reset = self
            .init_data()
            .and_then(|i| i.HwResetBus)
            .map_or(0, |f| f as *const () as usize);
        self.log(format!("HwResetBus({path_id}) (DISPATCH_LEVEL)"));
        Ok(bool_result(self.call(
            Routine::ResetBus,
            DISPATCH_LEVEL,
            reset,
            &[self.extension(), u64::from(path_id)],
        )?))
    }

    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` request to (bus, target, lun).
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn execute(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<SrbResult, PortError> {
        self.submit(
            address,
            storport_sys::srb_function::EXECUTE_SCSI,
            cdb,
            direction,
        )
    }

    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` request to (bus, target, lun),
    /// handing the data-out bytes of `direction` to the SRB without a copy
    /// when the vector has room for [`srb::DATA_GUARD_BYTES`] more.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn execute_owned(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: DataDirection,
    ) -> Result<SrbResult, PortError> {
        let function = storport_sys::srb_function::EXECUTE_SCSI;
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let length = data_in_length(&direction);
        let slot = srb::build_owned(
            address,
            function,
            cdb,
            direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        self.run_slot(slot, cdb, length, &init)
    }

    /// Sends one request with any `SRB_FUNCTION_*`.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn submit(
        &self,
        address: (u8, u8, u8),
        function: u8,
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<SrbResult, PortError> {
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let slot = srb::build(
            address,
            function,
            cdb,
            direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        self.run_slot(slot, cdb, data_in_length(direction), &init)
    }

    /// An `SRB_FUNCTION_EXECUTE_SCSI` request for the started adapter, not
    /// sent yet, and the init data to send it with ([`Self::run_slot`]).
    pub(super) fn build_execute(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<(Box<srb::SrbSlot>, HW_INITIALIZATION_DATA), PortError> {
        self.require(&[Phase::Started])?;
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let slot = srb::build(
            address,
            storport_sys::srb_function::EXECUTE_SCSI,
            cdb,
            direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        Ok((slot, init))
    }

    /// `TimeOutValue` of the SRBs the port builds.
    fn srb_timeout_seconds(&self) -> u32 {
        u32::try_from(self.options.srb_timeout.as_secs())
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Starts a built SRB with HwStartIo, waits for its completion and
    /// collects the result; `data_in` is the data-in length asked for.
    pub(super) fn run_slot(
        &self,
        slot: Box<srb::SrbSlot>,
        cdb: &[u8],
        data_in: Option<usize>,
        init: &HW_INITIALIZATION_DATA,
    ) -> Result<SrbResult, PortError> {
        let plan = self.schedule.next();
        let Some(budget) = plan.preempt_after else {
            return self.run_slot_as(slot, cdb, data_in, init, plan.irql, Preemptive::No);
        };
        let companion = Companion::of(&slot, cdb, data_in);
        let preemption = Preemption::new();
        let (result, preempting) = std::thread::scope(|scope| {
            let preempting = scope.spawn(|| self.preempt(&preemption, &companion));
            let how = Preemptive::Preempted {
                budget,
                preemption: &preemption,
            };
            let result = self.run_slot_as(slot, cdb, data_in, init, plan.irql, how);
            (result, preempting.join())
        });
        match preempting {
            Ok(Ok(())) => result,
            Ok(Err(error)) => Err(error),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs the request that preempts the HwStartIo call `preemption`
    /// plans for, once that call is parked: at DISPATCH_LEVEL, on the
    /// parked call's processor (see [`super::schedule`]).
    fn preempt(&self, preemption: &Preemption, companion: &Companion) -> Result<(), PortError> {
        let Some(at) = preemption.wait_parked() else {
            return Ok(());
        };
        let _resume = ResumeOnDrop(preemption);
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let _ = crate::machine::kpcr::set_processor_number(at.processor);
        self.log(format!(
            "HwStartIo preempted at IRQL {} on processor {} at {}; {} runs at DISPATCH_LEVEL on that processor",
            at.irql,
            at.processor,
            code_location(at.pc),
            companion.describe()
        ));
        let slot = srb::build(
            companion.address,
            storport_sys::srb_function::EXECUTE_SCSI,
            &companion.cdb,
            &companion.direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        let how = Preemptive::Preempting {
            soft: self.options.dpc_watchdog,
            preemption,
        };
        let data_in = data_in_length(&companion.direction);
        self.run_slot_as(slot, &companion.cdb, data_in, &init, DISPATCH_LEVEL, how)
            .map(|_| ())
    }

    /// Reports a DISPATCH_LEVEL call that finished only after the call it
    /// preempted on its processor was let go on.
    fn report_preempted_spin(&self, at: Preempted, spinning_pc: usize) -> PortError {
        let limit_ms = u64::try_from(self.options.dpc_watchdog.as_millis()).unwrap_or(u64::MAX);
        let message = format!(
            "HwStartIo at DISPATCH_LEVEL on processor {processor} was still running after {limit_ms} ms, at {spinning}, \
             while HwStartIo preempted at IRQL {irql} on the same processor at {preempted} was parked; \
             it finished only after the port let the preempted call go on, so it was waiting for something the preempted call held. \
             On Windows the preempted call never gets the processor back: the processor hangs and the DPC watchdog \
             bug-checks (0x133). Data that HwStartIo shares must be guarded by a lock that raises IRQL to DISPATCH_LEVEL \
             (KeAcquireSpinLockRaiseToDpc, KeAcquireInStackQueuedSpinLock, ExAcquireSpinLockExclusive, StorPortAcquireSpinLock).",
            processor = at.processor,
            spinning = code_location(spinning_pc),
            irql = at.irql,
            preempted = code_location(at.pc),
        );
        self.shared.violation(
            Rule::PreemptedLockHolder,
            Routine::StartIo,
            vec![limit_ms, limit_ms, u64::from(at.processor)],
            message.clone(),
        );
        PortError::BugCheck(message)
    }

    /// Starts `slot` with HwStartIo at `irql`, taking part in the
    /// preemption model as `how` says, waits for its completion and collects
    /// the result; `data_in` is the data-in length asked for.
    fn run_slot_as(
        &self,
        slot: Box<srb::SrbSlot>,
        cdb: &[u8],
        data_in: Option<usize>,
        init: &HW_INITIALIZATION_DATA,
        irql: u8,
        how: Preemptive<'_>,
    ) -> Result<SrbResult, PortError> {
        let supplied = slot.srb.DataTransferLength;
        let check = Completion {
            supplied,
            completed: &|_| {},
        };
        self.run_slot_with(slot, cdb, data_in, init, &check, (irql, how))
    }

    /// [`Self::run_slot_as`] with the data length the TransferLength rule
    /// holds the completion to, and a check called with the SRB as the
    /// miniport completed it (before the port reads the result).
    fn run_slot_with(
        &self,
        mut slot: Box<srb::SrbSlot>,
        cdb: &[u8],
        data_in: Option<usize>,
        init: &HW_INITIALIZATION_DATA,
        check: &Completion<'_>,
        (irql, how): (u8, Preemptive<'_>),
    ) -> Result<SrbResult, PortError> {
        let Completion {
            supplied,
            completed,
        } = *check;
        let timeout_seconds = slot.srb.TimeOutValue;
        let srb_address = std::ptr::from_mut(&mut slot.srb) as usize;
        let record = SrbRecord {
            started: Instant::now(),
            supplied_len: supplied,
            completed: false,
        };
        // SAFETY: `in_flight` owns the slot from here and hands it to
        // `retire` on every way out of this function, unwinding included.
        unsafe { lock(&self.shared.srbs).start(srb_address, record) };
        let mut in_flight = InFlight {
            table: &self.shared.srbs,
            address: srb_address,
            slot: Some(slot),
        };
        let start_io = init.HwStartIo.map_or(0, |f| f as *const () as usize);
        let call = self.call_preemptive(
            Routine::StartIo,
            irql,
            start_io,
            &[self.extension(), srb_address as u64],
            how,
        );
        match how {
            Preemptive::No => {}
            Preemptive::Preempted { preemption, .. } => preemption.finish(),
            Preemptive::Preempting { preemption, .. } => {
                let released_early_at = preemption.released_early_at();
                preemption.resume();
                if let (Ok(_), Some(spinning_pc), Some(at)) =
                    (&call, released_early_at, preemption.preempted())
                {
                    return Err(self.report_preempted_spin(at, spinning_pc));
                }
            }
        }
        // On an error the miniport may still hold the SRB: `in_flight`
        // keeps its memory alive (retired).
        call?;
        let path_id = in_flight.slot.as_ref().map_or(0, |slot| slot.srb.PathId);
        let deadline = Instant::now() + self.options.srb_timeout;
        loop {
            if self.is_completed(srb_address) {
                break;
            }
            if Instant::now() >= deadline {
                self.shared.violation(
                    Rule::SrbTimeout,
                    Routine::StartIo,
                    vec![srb_address as u64, u64::from(timeout_seconds)],
                    format!(
                        "SRB {srb_address:#x} (CDB opcode {:#04x}) was not completed within {} ms of HwStartIo; the port resets bus {path_id}.",
                        cdb.first().copied().unwrap_or(0),
                        self.options.srb_timeout.as_millis()
                    ),
                );
                // HW_RESET_BUS: Storport clears the error by resetting the
                // bus, and the miniport completes the SRBs it holds for that
                // PathId (SRB_STATUS_BUS_RESET) inside HwStorResetBus.
                let _ = self.reset_bus(path_id);
                if self.is_completed(srb_address) {
                    break;
                }
                self.log(format!(
                    "SRB {srb_address:#x} is still not completed after HwResetBus({path_id})"
                ));
                return Ok(SrbResult {
                    srb_status: 0,
                    scsi_status: 0,
                    sense: Vec::new(),
                    data: Vec::new(),
                    transferred: 0,
                });
            }
            self.fire_timer()?;
            std::thread::sleep(Duration::from_micros(200));
        }
        // The completed SRB stays reserved (so a late second completion is
        // recognised) but its data buffer, which may be large, is handed to
        // the result or released.
        let Some(slot) = in_flight.slot.as_deref_mut() else {
            unreachable!("the slot leaves `in_flight` only when it is dropped");
        };
        completed(slot);
        let result = self.collect(slot, data_in, srb_address);
        slot.srb.DataBuffer = std::ptr::null_mut();
        Ok(result)
    }

    /// Whether the miniport has completed the SRB at `srb_address`.
    fn is_completed(&self, srb_address: usize) -> bool {
        lock(&self.shared.srbs)
            .live(srb_address)
            .is_some_and(|r| r.completed)
    }

    fn fire_timer(&self) -> Result<(), PortError> {
        let timer = lock(&self.shared.timer).take();
        if let Some(timer) = timer {
            std::thread::sleep(Duration::from_micros(timer.micros.min(100_000)));
            let _ = self.call(
                Routine::Timer,
                DISPATCH_LEVEL,
                timer.routine,
                &[self.extension()],
            )?;
        }
        Ok(())
    }

    /// The result of a completed SRB. Takes the slot's data buffer: its
    /// first bytes become the data-in result without a copy.
    fn collect(
        &self,
        slot: &mut srb::SrbSlot,
        data_in: Option<usize>,
        srb_address: usize,
    ) -> SrbResult {
        let srb = slot.srb;
        let transferred = srb.DataTransferLength;
        if slot.data[slot.data_len..].iter().any(|&b| b != GUARD_FILL) {
            self.shared.violation(
                Rule::TransferLength,
                Routine::StartIo,
                vec![srb_address as u64, slot.data_len as u64],
                format!("The miniport wrote past the end of SRB {srb_address:#x}'s {}-byte data buffer.", slot.data_len),
            );
        }
        let mut data = std::mem::take(&mut slot.data);
        match data_in {
            Some(len) => data.truncate(len.min(transferred as usize).min(slot.data_len)),
            None => data = Vec::new(),
        }
        let sense = if srb.SrbStatus & storport_sys::srb_status::AUTOSENSE_VALID != 0 {
            slot.sense[..usize::from(srb.SenseInfoBufferLength).min(slot.sense.len())].to_vec()
        } else {
            Vec::new()
        };
        SrbResult {
            srb_status: srb.SrbStatus,
            scsi_status: srb.ScsiStatus,
            sense,
            data,
            transferred,
        }
    }

    /// Surprise-free removal: HwFreeAdapterResources, then the checks that
    /// run when the adapter is gone (registry buffer released).
    ///
    /// # Errors
    ///
    /// When the driver bug-checks.
    pub fn remove(&self) -> Result<(), PortError> {
        let phase = *lock(&self.phase);
        if !matches!(phase, Phase::Started | Phase::Stopped) {
            return Ok(());
        }
        let free = self
            .init_data()
            .and_then(|i| i.HwFreeAdapterResources)
            .map_or(0, |f| f as *const () as usize);
        self.log("HwFreeAdapterResources (PASSIVE_LEVEL)");
        let _ = self.call(Routine::FreeAdapterResources, 0, free, &[self.extension()])?;
        self.check_registry_buffer(Routine::FreeAdapterResources);
        self.set_phase(Phase::Removed);
        Ok(())
    }

    /// Unload: reports pool the driver never freed.
    pub fn unload(&self) {
        if *lock(&self.phase) == Phase::Unloaded {
            return;
        }
        self.log("unload");
        // After a bug check the machine is dead: what the driver still holds
        // is not a leak it could have avoided.
        let live = if self.bugchecked() {
            Vec::new()
        } else {
            lock(&self.shared.pool).live()
        };
        for (address, block) in live {
            self.shared.violation(
                Rule::PoolLeak,
                Routine::Port,
                vec![address as u64, block.size_bytes as u64, u64::from(block.tag)],
                format!(
                    "{} bytes of pool with tag '{}' allocated in {} at {address:#x} were not freed before unload.",
                    block.size_bytes,
                    super::pool::tag_text(block.tag),
                    block.routine
                ),
            );
        }
        self.set_phase(Phase::Unloaded);
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

/// What the port holds a completion to: the data length the TransferLength
/// rule allows, and a check of the SRB as the miniport completed it.
#[derive(Clone, Copy)]
struct Completion<'a> {
    supplied: u32,
    completed: &'a dyn Fn(&srb::SrbSlot),
}

/// Lets a parked call go on however the preempting side ends.
struct ResumeOnDrop<'a>(&'a Preemption);

impl Drop for ResumeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.resume();
    }
}

/// The ConfigInfo Storport hands HwFindAdapter: the documented defaults and
/// what the init data declared.
fn default_config(init: &HW_INITIALIZATION_DATA) -> PORT_CONFIGURATION_INFORMATION {
    // SAFETY: PORT_CONFIGURATION_INFORMATION is plain data for which
    // all-zero bytes are a valid value (null pointers, zero counts).
    let mut config = unsafe { std::mem::zeroed::<PORT_CONFIGURATION_INFORMATION>() };
    config.Length = u32::try_from(size_of::<PORT_CONFIGURATION_INFORMATION>()).unwrap_or(0xE0);
    config.AdapterInterfaceType = init.AdapterInterfaceType;
    config.MaximumTransferLength = SP_UNINITIALIZED_VALUE;
    config.NumberOfPhysicalBreaks = SP_UNINITIALIZED_VALUE;
    config.NumberOfAccessRanges = init.NumberOfAccessRanges;
    config.NumberOfBuses = 1;
    config.InitiatorBusId = [-1; 8];
    config.MapBuffers = init.MapBuffers;
    config.NeedPhysicalAddresses = init.NeedPhysicalAddresses;
    config.TaggedQueuing = init.TaggedQueuing;
    config.AutoRequestSense = init.AutoRequestSense;
    config.MultipleRequestPerLu = init.MultipleRequestPerLu;
    config.ReceiveEvent = init.ReceiveEvent;
    config.MaximumNumberOfTargets = 128;
    config.MaximumNumberOfLogicalUnits = 8;
    config.DeviceExtensionSize = init.DeviceExtensionSize;
    config.SpecificLuExtensionSize = init.SpecificLuExtensionSize;
    config.SrbExtensionSize = init.SrbExtensionSize;
    config.Dma64BitAddresses = 0;
    config
}

/// The data-in length `direction` asks for.
const fn data_in_length(direction: &DataDirection) -> Option<usize> {
    match direction {
        DataDirection::In(len) => Some(*len),
        DataDirection::Out(_) | DataDirection::None => None,
    }
}

/// A started SRB's slot; retired (kept allocated for a while, see
/// [`srb::SrbTable::retire`]) when this is dropped, however the request ended.
struct InFlight<'a> {
    table: &'a Mutex<srb::SrbTable>,
    address: usize,
    slot: Option<Box<srb::SrbSlot>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            lock(self.table).retire(self.address, slot);
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // Keep the adapter's memory alive until the miniport can no longer run.
        self.shared.device_extension.store(0, Ordering::Release);
    }
}
