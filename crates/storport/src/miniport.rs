//! The [`Miniport`] trait a virtual miniport implements, and what its
//! callbacks are given.

use core::ffi::CStr;

use storport_sys::{
    PORT_CONFIGURATION_INFORMATION, SP_RETURN_BAD_CONFIG, SP_RETURN_ERROR, SP_RETURN_NOT_FOUND,
    adapter_control,
};

use crate::registry::Registry;
use crate::request::StartIoRequest;

/// A Storport virtual miniport.
///
/// Implement it on a marker type and pass that type to
/// [`initialize`](crate::initialize) from `DriverEntry`. Each method is one
/// `HwStor*` routine; the layer's trampolines call them with typed views of
/// what Storport passes, at the IRQL Storport uses: find-adapter and the
/// query/boot/running adapter-control cases at `PASSIVE_LEVEL`, start-io up
/// to `DISPATCH_LEVEL`, reset-bus at `DISPATCH_LEVEL`, stop/restart at DIRQL
/// (Microsoft Learn, "`HW_FIND_ADAPTER` callback function (storport.h)",
/// "`HW_ADAPTER_CONTROL` callback function (storport.h)", "`HW_STARTIO`
/// callback function (storport.h)", "`HW_RESET_BUS` callback function
/// (storport.h)").
///
/// The registry is reachable only where the contract allows it: through
/// [`FindAdapterContext::registry`] and the `PASSIVE_LEVEL` cases of
/// [`AdapterControl`]. Start-io gets only `&Self::Adapter` and a [`StartIoRequest`],
/// and the adapter must be `Sync`, which a [`Registry`] and a
/// [`RegistryBuffer`](crate::registry::RegistryBuffer) are not:
///
/// ```compile_fail,E0277
/// use storport::{
///     AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport,
///     StartIoRequest, SrbStatus,
/// };
/// use storport::registry::Registry;
///
/// struct Driver;
/// struct Adapter { registry: &'static mut Registry }
/// impl Miniport for Driver {
///     type Adapter = Adapter;
///     fn find_adapter(_: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
///         Err(FindAdapterError::NotFound)
///     }
///     fn start_io(_: &Adapter, request: StartIoRequest<'_>) {
///         request.complete(SrbStatus::NO_DEVICE)
///     }
///     fn reset_bus(_: &Adapter, _: u8) -> bool { true }
///     fn adapter_control(_: &Adapter, control: AdapterControl<'_>) -> ControlStatus {
///         control.answer_without_state()
///     }
/// }
/// ```
///
/// ```
/// use storport::{
///     AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport,
///     StartIoRequest, SrbStatus,
/// };
///
/// struct Driver;
/// struct Adapter { disk_count: u32 }
/// impl Miniport for Driver {
///     type Adapter = Adapter;
///     fn find_adapter(_: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
///         Ok(Adapter { disk_count: 1 })
///     }
///     fn start_io(_: &Adapter, request: StartIoRequest<'_>) {
///         request.complete(SrbStatus::NO_DEVICE)
///     }
///     fn reset_bus(_: &Adapter, _: u8) -> bool { true }
///     fn adapter_control(_: &Adapter, control: AdapterControl<'_>) -> ControlStatus {
///         control.answer_without_state()
///     }
/// }
/// ```
pub trait Miniport: 'static {
    /// The per-adapter state. It lives in Storport's device extension: the
    /// value [`find_adapter`](Self::find_adapter) returns is moved there
    /// before any other callback runs, and dropped in
    /// `HwFreeAdapterResources` — so free adapter resources in its `Drop`.
    ///
    /// It is `Sync` because start-io runs on several processors at once
    /// with no lock held, and `Send` because it is dropped on whatever
    /// thread removes the adapter. Keep it small (it passes through the
    /// 24 KiB kernel stack once, on its way into the device extension): put
    /// large tables in pool ([`PoolSlice`](crate::PoolSlice)).
    ///
    /// It lives as long as the device extension does, which is longer than
    /// one start: when Storport runs find-adapter again on an extension
    /// that holds it (a Plug and Play start after a stop), the layer keeps
    /// it and calls [`find_adapter_again`](Self::find_adapter_again)
    /// instead of [`find_adapter`](Self::find_adapter).
    type Adapter: Send + Sync + 'static;

    /// `HwFindAdapter` (virtual form), at `PASSIVE_LEVEL`: configure the
    /// adapter and build its state.
    ///
    /// The layer has already set `VirtualDevice` and the buffer mapping in
    /// the configuration (SDV `StorPortVirtualDevice2`); set the transfer
    /// limits (SDV `StorPortFindAdapter`) and the bus geometry through
    /// [`FindAdapterContext::config`].
    ///
    /// # Errors
    ///
    /// [`FindAdapterError`]: what to tell Storport instead of
    /// `SP_RETURN_FOUND`.
    fn find_adapter(
        context: &mut FindAdapterContext<'_>,
    ) -> Result<Self::Adapter, FindAdapterError>;

    /// `HwFindAdapter` on a device extension that still holds `adapter`, at
    /// `PASSIVE_LEVEL`: Storport starts an adapter it stopped.
    ///
    /// Storport fills a device extension with zeros once, when it allocates
    /// it ("`HW_INITIALIZATION_DATA` structure (storport.h)",
    /// `DeviceExtensionSize`), and keeps it until the device is removed. A
    /// stop for Plug and Play (`IRP_MN_STOP_DEVICE`) reaches the miniport as
    /// `ScsiStopAdapter`, after which "the miniport driver should not free
    /// its resources" and Storport releases only what it allocated on the
    /// miniport's behalf; the start that follows (re)initialises the adapter,
    /// and a miniport without `ScsiRestartAdapter` gets `HwFindAdapter` and
    /// `HwInitialize` with its device extension intact
    /// ("`SCSI_ADAPTER_CONTROL_TYPE` enumeration (storport.h)"). So
    /// find-adapter may meet a live adapter, with every pool block it owns,
    /// and building a new one over it would lose and leak the old one. The
    /// layer keeps it instead and calls this method:
    ///
    /// - `adapter` is the adapter [`find_adapter`](Self::find_adapter) built,
    ///   exclusively: the adapter is stopped, so no other callback runs.
    /// - `context` is as for `find_adapter`: a fresh port configuration, the
    ///   registry and the argument string. The layer has already copied into
    ///   the configuration what the adapter declared at its previous start
    ///   (every value [`ConfigInfo`]'s setters set), so a miniport whose
    ///   limits do not change need not set them again.
    /// - `HwInitialize` ([`initialize`](Self::initialize)) follows as after
    ///   the first find-adapter.
    ///
    /// The default keeps the adapter as it is.
    ///
    /// # Errors
    ///
    /// [`FindAdapterError`]: the start fails with that `SP_RETURN_*`, and
    /// the layer drops the adapter at once (free its resources in `Drop`). A
    /// device whose start failed is removed next ("`IRP_MN_REMOVE_DEVICE`":
    /// the Plug and Play manager sends it "if one of the drivers in the
    /// device stack fails an `IRP_MN_START_DEVICE` request"), and whether
    /// Storport calls `HwFreeAdapterResources` for an adapter whose
    /// find-adapter failed is not documented, so dropping it here is the one
    /// way that never leaks it. A later find-adapter builds a new adapter
    /// with `find_adapter`.
    fn find_adapter_again(
        adapter: &mut Self::Adapter,
        context: &mut FindAdapterContext<'_>,
    ) -> Result<(), FindAdapterError> {
        let _ = (adapter, context);
        Ok(())
    }

    /// `HwInitialize`: the adapter is about to receive requests. Return
    /// `false` to fail the start.
    fn initialize(adapter: &Self::Adapter) -> bool {
        let _ = adapter;
        true
    }

    /// `HwStartIo`, at IRQL ≤ `DISPATCH_LEVEL`, possibly on several processors
    /// at once: handle `request` and complete it. It comes as the view of its
    /// SRB function ([`StartIoRequest`]): a SCSI command, or a PNP, POWER,
    /// WMI or other request that can be completed only with what its layout
    /// lets the miniport set. No pool allocation or wait here (SDV
    /// `SpNoWait`).
    fn start_io(adapter: &Self::Adapter, request: StartIoRequest<'_>);

    /// `HwResetBus`, at `DISPATCH_LEVEL`: reset bus `path_id` (the meaning of
    /// "bus" is the miniport's). Return `true` on success.
    fn reset_bus(adapter: &Self::Adapter, path_id: u8) -> bool;

    /// `HwAdapterControl`, which Storport requires of every miniport
    /// (`HW_ADAPTER_CONTROL`, Remarks: "a required function"), so it has no
    /// default: leaving it out is a compile-time error. A miniport with
    /// nothing to stop or re-read answers with
    /// [`AdapterControl::answer_without_state`].
    ///
    /// Stop and restart run at DIRQL and get no registry capability; the
    /// query, boot-config and running-config cases run at `PASSIVE_LEVEL` and
    /// do. Storport requires stop and restart to be supported, so mark them
    /// in [`SupportedControlTypes`].
    fn adapter_control(adapter: &Self::Adapter, control: AdapterControl<'_>) -> ControlStatus;
}

/// Why find-adapter did not find an adapter (`SP_RETURN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FindAdapterError {
    /// `SP_RETURN_NOT_FOUND`: there is no adapter to start.
    NotFound,
    /// `SP_RETURN_ERROR`: starting failed, e.g. out of memory.
    Error,
    /// `SP_RETURN_BAD_CONFIG`: the configuration cannot work.
    BadConfig,
}

impl FindAdapterError {
    /// The `SP_RETURN_*` value.
    #[must_use]
    pub const fn to_raw(self) -> u32 {
        match self {
            Self::NotFound => SP_RETURN_NOT_FOUND,
            Self::Error => SP_RETURN_ERROR,
            Self::BadConfig => SP_RETURN_BAD_CONFIG,
        }
    }
}

/// What find-adapter is given: the port configuration, the registry
/// capability and the argument string.
#[derive(Debug)]
pub struct FindAdapterContext<'a> {
    pub(crate) config: ConfigInfo<'a>,
    pub(crate) registry: &'a mut Registry,
    pub(crate) argument_string: Option<&'a CStr>,
}

impl<'a> FindAdapterContext<'a> {
    /// The adapter's `PORT_CONFIGURATION_INFORMATION`.
    pub const fn config(&mut self) -> &mut ConfigInfo<'a> {
        &mut self.config
    }

    /// The registry capability, for this callback only.
    pub const fn registry(&mut self) -> &mut Registry {
        self.registry
    }

    /// The `ArgumentString` Storport passed, if any.
    #[must_use]
    pub const fn argument_string(&self) -> Option<&'a CStr> {
        self.argument_string
    }

    /// The machine's physical memory in bytes, as
    /// `MmGetPhysicalMemoryRangesEx2` reports it now (the sum of its ranges;
    /// the array it returns is freed before this returns).
    ///
    /// `None` when the kernel does not report it (the routine returns NULL,
    /// or an array that is not well formed). Find-adapter runs at
    /// `PASSIVE_LEVEL`, the IRQL the routine needs, which is why only this
    /// context offers it.
    #[must_use]
    pub fn physical_memory_bytes(&self) -> Option<u64> {
        // SAFETY: find-adapter, the only callback given this context, runs
        // at PASSIVE_LEVEL.
        unsafe { crate::memory::physical_memory_bytes() }
    }
}

/// The parts of `PORT_CONFIGURATION_INFORMATION` a virtual miniport sets.
///
/// `VirtualDevice` is TRUE and `MapBuffers` is
/// `STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE` before and after
/// find-adapter, set by the layer: [`Srb`](crate::Srb)'s data buffers depend on the
/// mapping, so it is not adjustable.
pub struct ConfigInfo<'a> {
    pub(crate) raw: &'a mut PORT_CONFIGURATION_INFORMATION,
}

impl core::fmt::Debug for ConfigInfo<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConfigInfo")
            .field("maximum_transfer_length", &self.raw.MaximumTransferLength)
            .field(
                "number_of_physical_breaks",
                &self.raw.NumberOfPhysicalBreaks,
            )
            .field("number_of_buses", &self.raw.NumberOfBuses)
            .field(
                "maximum_number_of_targets",
                &self.raw.MaximumNumberOfTargets,
            )
            .field(
                "maximum_number_of_logical_units",
                &self.raw.MaximumNumberOfLogicalUnits,
            )
            .finish_non_exhaustive()
    }
}

/// What the adapter declared in its port configuration: every member a
/// [`ConfigInfo`] setter sets, kept in the device extension from one start
/// to the next ([`Miniport::find_adapter_again`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeclaredConfig {
    maximum_transfer_length: u32,
    number_of_physical_breaks: u32,
    alignment_mask: u32,
    max_number_of_io: u32,
    max_ios_per_lun: u32,
    number_of_buses: u8,
    maximum_number_of_targets: u8,
    maximum_number_of_logical_units: u8,
    scatter_gather: u8,
    master: u8,
    caches_data: u8,
}

impl DeclaredConfig {
    /// The members of `config` the setters set.
    pub const fn capture(config: &PORT_CONFIGURATION_INFORMATION) -> Self {
        Self {
            maximum_transfer_length: config.MaximumTransferLength,
            number_of_physical_breaks: config.NumberOfPhysicalBreaks,
            alignment_mask: config.AlignmentMask,
            max_number_of_io: config.MaxNumberOfIO,
            max_ios_per_lun: config.MaxIOsPerLun,
            number_of_buses: config.NumberOfBuses,
            maximum_number_of_targets: config.MaximumNumberOfTargets,
            maximum_number_of_logical_units: config.MaximumNumberOfLogicalUnits,
            scatter_gather: config.ScatterGather,
            master: config.Master,
            caches_data: config.CachesData,
        }
    }

    /// Writes those members back into `config`.
    pub const fn apply(self, config: &mut PORT_CONFIGURATION_INFORMATION) {
        config.MaximumTransferLength = self.maximum_transfer_length;
        config.NumberOfPhysicalBreaks = self.number_of_physical_breaks;
        config.AlignmentMask = self.alignment_mask;
        config.MaxNumberOfIO = self.max_number_of_io;
        config.MaxIOsPerLun = self.max_ios_per_lun;
        config.NumberOfBuses = self.number_of_buses;
        config.MaximumNumberOfTargets = self.maximum_number_of_targets;
        config.MaximumNumberOfLogicalUnits = self.maximum_number_of_logical_units;
        config.ScatterGather = self.scatter_gather;
        config.Master = self.master;
        config.CachesData = self.caches_data;
    }
}

impl ConfigInfo<'_> {
    /// Sets the largest transfer the adapter accepts in one request, in
    /// bytes (`MaximumTransferLength`; SDV `StorPortFindAdapter`).
    pub const fn set_maximum_transfer_length(&mut self, bytes: u32) -> &mut Self {
        self.raw.MaximumTransferLength = bytes;
        self
    }

    /// Sets the largest number of physical breaks in a data buffer
    /// (`NumberOfPhysicalBreaks`; SDV `StorPortFindAdapter`).
    pub const fn set_number_of_physical_breaks(&mut self, breaks: u32) -> &mut Self {
        self.raw.NumberOfPhysicalBreaks = breaks;
        self
    }

    /// Sets the data buffer alignment mask (`AlignmentMask`).
    pub const fn set_alignment_mask(&mut self, mask: u32) -> &mut Self {
        self.raw.AlignmentMask = mask;
        self
    }

    /// Sets the number of buses (`NumberOfBuses`).
    pub const fn set_number_of_buses(&mut self, buses: u8) -> &mut Self {
        self.raw.NumberOfBuses = buses;
        self
    }

    /// Sets the number of targets per bus (`MaximumNumberOfTargets`).
    pub const fn set_maximum_number_of_targets(&mut self, targets: u8) -> &mut Self {
        self.raw.MaximumNumberOfTargets = targets;
        self
    }

    /// Sets the number of logical units per target
    /// (`MaximumNumberOfLogicalUnits`).
    pub const fn set_maximum_number_of_logical_units(&mut self, luns: u8) -> &mut Self {
        self.raw.MaximumNumberOfLogicalUnits = luns;
        self
    }

    /// Sets `ScatterGather` and `Master`, which a miniport that takes
    /// multi-page buffers declares together.
    pub const fn set_scatter_gather(&mut self, enabled: bool) -> &mut Self {
        self.raw.ScatterGather = enabled as u8;
        self.raw.Master = enabled as u8;
        self
    }

    /// Sets `CachesData`: whether the adapter caches written data.
    pub const fn set_caches_data(&mut self, caches: bool) -> &mut Self {
        self.raw.CachesData = caches as u8;
        self
    }

    /// Sets the adapter's limit of outstanding requests (`MaxNumberOfIO`).
    pub const fn set_max_number_of_io(&mut self, requests: u32) -> &mut Self {
        self.raw.MaxNumberOfIO = requests;
        self
    }

    /// Sets the per-LUN limit of outstanding requests (`MaxIOsPerLun`).
    pub const fn set_max_ios_per_lun(&mut self, requests: u32) -> &mut Self {
        self.raw.MaxIOsPerLun = requests;
        self
    }

    /// The largest transfer in bytes, as set so far.
    #[must_use]
    pub const fn maximum_transfer_length(&self) -> u32 {
        self.raw.MaximumTransferLength
    }

    /// The number of buses, as set so far.
    #[must_use]
    pub const fn number_of_buses(&self) -> u8 {
        self.raw.NumberOfBuses
    }

    /// Targets per bus, as set so far.
    #[must_use]
    pub const fn maximum_number_of_targets(&self) -> u8 {
        self.raw.MaximumNumberOfTargets
    }

    /// Logical units per target, as set so far.
    #[must_use]
    pub const fn maximum_number_of_logical_units(&self) -> u8 {
        self.raw.MaximumNumberOfLogicalUnits
    }
}

/// An `HwAdapterControl` request.
///
/// Only the cases that run at `PASSIVE_LEVEL` carry the registry capability.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdapterControl<'a> {
    /// `ScsiQuerySupportedControlTypes` (`PASSIVE_LEVEL`): mark the supported
    /// types in `supported`.
    QuerySupportedControlTypes {
        /// The port's list, `MaxControlType` entries long.
        supported: SupportedControlTypes<'a>,
        /// The registry capability.
        registry: &'a mut Registry,
    },
    /// `ScsiStopAdapter` (DIRQL): stop; keep state for a restart.
    Stop,
    /// `ScsiRestartAdapter` (DIRQL): resume after a stop.
    Restart,
    /// `ScsiSetBootConfig` (`PASSIVE_LEVEL`).
    SetBootConfig {
        /// The registry capability.
        registry: &'a mut Registry,
    },
    /// `ScsiSetRunningConfig` (`PASSIVE_LEVEL`): re-read run-time settings.
    SetRunningConfig {
        /// The registry capability.
        registry: &'a mut Registry,
    },
    /// A type this layer does not know; its IRQL is unknown, so it carries
    /// no capability.
    Other(u32),
}

impl AdapterControl<'_> {
    /// The whole answer of a miniport whose adapter keeps no state to stop,
    /// restart or re-read: it supports the query, stop and restart, and
    /// stop and restart succeed at once; every other type is unsuccessful.
    ///
    /// ```
    /// use storport::{AdapterControl, ControlStatus};
    /// assert_eq!(AdapterControl::Stop.answer_without_state(), ControlStatus::Success);
    /// assert_eq!(AdapterControl::Other(9).answer_without_state(), ControlStatus::Unsuccessful);
    /// ```
    #[must_use]
    pub fn answer_without_state(self) -> ControlStatus {
        match self {
            Self::QuerySupportedControlTypes { mut supported, .. } => {
                for control in [
                    ControlType::QuerySupportedControlTypes,
                    ControlType::Stop,
                    ControlType::Restart,
                ] {
                    supported.set(control);
                }
                ControlStatus::Success
            }
            Self::Stop | Self::Restart => ControlStatus::Success,
            Self::SetBootConfig { .. } | Self::SetRunningConfig { .. } | Self::Other(_) => {
                ControlStatus::Unsuccessful
            }
        }
    }
}

/// The `SCSI_ADAPTER_CONTROL_TYPE` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// `ScsiQuerySupportedControlTypes`.
    QuerySupportedControlTypes,
    /// `ScsiStopAdapter`.
    Stop,
    /// `ScsiRestartAdapter`.
    Restart,
    /// `ScsiSetBootConfig`.
    SetBootConfig,
    /// `ScsiSetRunningConfig`.
    SetRunningConfig,
}

impl ControlType {
    /// The number Storport uses.
    #[must_use]
    pub const fn to_raw(self) -> u32 {
        match self {
            Self::QuerySupportedControlTypes => adapter_control::QUERY_SUPPORTED_CONTROL_TYPES,
            Self::Stop => adapter_control::STOP_ADAPTER,
            Self::Restart => adapter_control::RESTART_ADAPTER,
            Self::SetBootConfig => adapter_control::SET_BOOT_CONFIG,
            Self::SetRunningConfig => adapter_control::SET_RUNNING_CONFIG,
        }
    }
}

/// The list `ScsiQuerySupportedControlTypes` fills.
///
/// It has exactly `MaxControlType` flags, pre-set to FALSE by the port. The number of types
/// differs between Windows builds, so nothing past the port's length can be
/// written.
///
/// ```
/// use storport::{ControlType, SupportedControlTypes};
/// let mut list = [0_u8; 2];
/// let mut supported = SupportedControlTypes::new(&mut list);
/// assert!(supported.set(ControlType::Stop));
/// assert!(!supported.set(ControlType::Restart)); // past MaxControlType: ignored
/// assert_eq!(list, [0, 1]);
/// ```
#[derive(Debug)]
pub struct SupportedControlTypes<'a> {
    list: &'a mut [u8],
}

impl<'a> SupportedControlTypes<'a> {
    /// Wraps a list of `MaxControlType` flags.
    pub const fn new(list: &'a mut [u8]) -> Self {
        Self { list }
    }

    /// Marks `control` supported. Returns `false`, writing nothing, when
    /// the port's list is too short to name it.
    pub fn set(&mut self, control: ControlType) -> bool {
        let flag = self.list.get_mut(control.to_raw() as usize);
        let known = flag.is_some();
        if let Some(flag) = flag {
            *flag = 1;
        }
        known
    }

    /// `MaxControlType`: how many types the port's list has.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the port's list is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The flags themselves, for types this layer has no name for.
    pub const fn as_mut_slice(&mut self) -> &mut [u8] {
        self.list
    }
}

/// What `HwAdapterControl` returns (`SCSI_ADAPTER_CONTROL_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlStatus {
    /// `ScsiAdapterControlSuccess`.
    Success,
    /// `ScsiAdapterControlUnsuccessful`.
    Unsuccessful,
}

impl ControlStatus {
    /// The `SCSI_ADAPTER_CONTROL_STATUS` value.
    #[must_use]
    pub const fn to_raw(self) -> u32 {
        match self {
            Self::Success => adapter_control::SUCCESS,
            Self::Unsuccessful => adapter_control::UNSUCCESSFUL,
        }
    }
}

#[cfg(test)]
mod tests {
    use core::ptr::NonNull;

    use super::{AdapterControl, ControlStatus, SupportedControlTypes};
    use crate::registry::Registry;

    #[test]
    fn a_stateless_answer_supports_query_stop_and_restart_only() {
        // SAFETY: the capability is only carried in the request; nothing
        // calls the registry with it.
        let mut registry = unsafe { Registry::new(NonNull::dangling()) };
        let mut list = [0_u8; 5];
        let query = AdapterControl::QuerySupportedControlTypes {
            supported: SupportedControlTypes::new(&mut list),
            registry: &mut registry,
        };
        assert_eq!(query.answer_without_state(), ControlStatus::Success);
        assert_eq!(list, [1, 1, 1, 0, 0], "query, stop and restart");
        assert_eq!(
            AdapterControl::Restart.answer_without_state(),
            ControlStatus::Success
        );
        let running = AdapterControl::SetRunningConfig {
            registry: &mut registry,
        };
        assert_eq!(running.answer_without_state(), ControlStatus::Unsuccessful);
    }
}
