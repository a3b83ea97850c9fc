//! The vstor adapter: its state and its Storport callbacks, written on the
//! safe `storport` layer (no `unsafe` here).
//!
//! Find-adapter reads the configuration through the registry capability,
//! allocates each disk's medium in nonpaged pool, and writes `StartCount`
//! and `EffectiveConfig` back in the adapter scope. Start-io takes each
//! request in the view of its SRB function: SCSI commands go to the pure
//! SCSI logic ([`crate::scsi`]) and complete with status, sense and length;
//! PNP, POWER, WMI and the other functions are answered from the members
//! their layouts give and complete with an `SrbStatus` alone. It allocates
//! nothing and waits for nothing. The disks live until
//! free-adapter-resources, so Stop / Restart keep their data, and so does a
//! Plug and Play stop and start, which runs find-adapter again on the same
//! adapter ([`Miniport::find_adapter_again`]).

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use alloc::vec::Vec;
use storport::print::{Dec, ZeroPadded};
use storport::{
    AdapterControl, Addressee, ControlStatus, ControlType, FindAdapterContext, FindAdapterError,
    LentBytes, Miniport, PoolSlice, PoolTag, Srb, SrbData, SrbFunction, SrbStatus, StartIoRequest,
    debug_print,
};

use crate::config::{BadValue, Config, MAX_TOTAL_SIZE_MIB};
use crate::ramdisk::RamDisk;
use crate::registry_source::{Occasion, RegistrySource};
use crate::scsi::srb::{Address, Command, Control, Unit};
use crate::scsi::{
    Autosense, BlockSize, DataBuffer, Disk, DiskConfig, Identity, Limits, PlainIo, srb as scsi_srb,
};

/// Largest transfer vstor accepts in one SRB, in bytes.
const MAX_TRANSFER_BYTES: u32 = 1024 * 1024;
/// Page size the physical-break count is expressed in.
const PAGE_BYTES: u32 = 4096;
/// Pool tag of the disks' memory: reads `vstD` in the pool tools.
const DISK_POOL_TAG: PoolTag = PoolTag::new(*b"vstD");
/// Outstanding requests Storport may queue to the adapter and to each LUN.
const MAX_IO: u32 = 256;

/// The vstor miniport (registered with [`storport::initialize`]).
#[derive(Debug)]
pub struct Vstor;

/// The medium of one disk.
type Medium = RamDisk<PoolSlice<AtomicU64>>;

/// One logical unit: its SCSI state and its medium.
struct Lun {
    disk: Disk,
    medium: Medium,
}

/// One vstor adapter's state, shared by concurrent start-io calls: the
/// run-time setting is an atomic, and the rest does not change after
/// find-adapter (the media are atomics, see [`crate::ramdisk`]).
pub struct Adapter {
    /// The configuration read at start.
    config: Config,
    /// `ReadOnly`, re-read by `ScsiSetRunningConfig`.
    read_only: AtomicBool,
    /// `StartCount` as written back at this start.
    start_count: AtomicU32,
    /// The disks, LUN 0 first, on target 0 of every path (`config.target_ports`).
    luns: Vec<Lun>,
}

impl core::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Adapter")
            .field("config", &self.config)
            .field("read_only", &self.read_only)
            .field("start_count", &self.start_count)
            .field("luns", &self.luns.len())
            .finish()
    }
}

impl Adapter {
    /// The configuration read at start.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the disks currently reject writes.
    #[must_use]
    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// How many times this adapter has started, as written to `StartCount`.
    #[must_use]
    pub fn start_count(&self) -> u32 {
        self.start_count.load(Ordering::Relaxed)
    }
}

impl scsi_srb::Adapter for Adapter {
    type Store = Medium;

    /// Every disk on every path (target port), target 0.
    fn units(&self) -> impl Iterator<Item = Unit<'_, Medium>> {
        // One flat index over paths × LUNs (at most 8 × 16): smaller code than nested
        // iterators.
        let count = self.luns.len();
        (0..count * usize::from(self.config.target_ports)).filter_map(move |index| {
            let lun = self.luns.get(index % count)?;
            Some(Unit {
                address: Address {
                    path_id: u8::try_from(index / count).ok()?,
                    target_id: 0,
                    lun: u8::try_from(index % count).ok()?,
                },
                disk: &lun.disk,
                store: &lun.medium,
            })
        })
    }

    /// LUN `n` is entry `n` of the table on every path, target 0: an index, not a walk.
    fn unit(&self, address: Address) -> Option<Unit<'_, Medium>> {
        // PathId below the port count and TargetId 0 in one comparison: TargetId is the high
        // byte, so any other target is at least 256, past every port count.
        if u16::from_le_bytes([address.path_id, address.target_id])
            >= u16::from(self.config.target_ports)
        {
            return None;
        }
        let lun = self.luns.get(usize::from(address.lun))?;
        Some(Unit {
            address,
            disk: &lun.disk,
            store: &lun.medium,
        })
    }
}

impl Miniport for Vstor {
    type Adapter = Adapter;

    fn find_adapter(context: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
        let physical_bytes = context.physical_memory_bytes();
        let mut source = RegistrySource::open(context.registry(), Occasion::Start);
        let config = Config::load(&mut source, &mut report_bad_value).map_err(|error| {
            debug_print!("{error}\n");
            FindAdapterError::BadConfig
        })?;
        check_memory(&config, physical_bytes)?;
        let luns = build_luns(&config)?;
        let start_count = source.next_start_count().unwrap_or(1);
        source.write_back(&config, start_count);
        drop(source);
        let lun_count = u8::try_from(luns.len()).unwrap_or(u8::MAX);
        context
            .config()
            .set_maximum_transfer_length(MAX_TRANSFER_BYTES)
            .set_number_of_physical_breaks(MAX_TRANSFER_BYTES / PAGE_BYTES + 1)
            .set_alignment_mask(0)
            .set_number_of_buses(config.target_ports)
            .set_maximum_number_of_targets(1)
            .set_maximum_number_of_logical_units(lun_count)
            .set_scatter_gather(true)
            .set_caches_data(false)
            .set_max_number_of_io(MAX_IO)
            .set_max_ios_per_lun(MAX_IO);
        debug_print!(
            "vstor: adapter started (start {}) with {} disk(s)\n",
            Dec(start_count.into()),
            Dec(lun_count.into())
        );
        Ok(Adapter {
            read_only: AtomicBool::new(config.read_only),
            start_count: AtomicU32::new(start_count),
            config,
            luns,
        })
    }

    /// Storport starts the adapter again after a Plug and Play stop, on the
    /// device extension that still holds it (see
    /// [`Miniport::find_adapter_again`]): the disks and their data stay as
    /// they are. The start re-reads what may change — `ReadOnly` — and
    /// counts itself in `StartCount`; settings that would reshape the disks
    /// are reported, not applied, since applying them would drop the data
    /// Windows kept across the stop. They apply when the adapter is next
    /// added. The transfer limits and bus geometry the adapter declared at
    /// its first start are given back by the layer and do not change.
    fn find_adapter_again(
        adapter: &mut Adapter,
        context: &mut FindAdapterContext<'_>,
    ) -> Result<(), FindAdapterError> {
        let mut source = RegistrySource::open(context.registry(), Occasion::Start);
        let mut config = adapter.config;
        config.load_runtime(&mut source, &mut report_bad_value);
        // The layout is compared, not applied: a bad value among those
        // settings was reported by the start that used it, so this read is
        // silent.
        match Config::load(&mut source, &mut |_| {}) {
            Ok(wanted) => {
                let changes = adapter.config.layout_changes(&wanted);
                if !changes.is_empty() {
                    debug_print!(
                        "vstor: the registry no longer describes the disks this adapter has \
                         (changed: {changes}); it keeps its {} disk(s) and their data as they \
                         are, and the new values apply when the adapter is next added.\n",
                        Dec(adapter.luns.len() as u64)
                    );
                }
            }
            Err(error) => debug_print!(
                "vstor: the disk settings in the registry cannot be honoured: {}. The adapter \
                 keeps its {} disk(s) and their data as they are.\n",
                error.problem_text(),
                Dec(adapter.luns.len() as u64)
            ),
        }
        let start_count = source
            .next_start_count()
            .unwrap_or_else(|| adapter.start_count().wrapping_add(1));
        source.write_back(&config, start_count);
        drop(source);
        adapter.config = config;
        adapter.read_only.store(config.read_only, Ordering::Relaxed);
        for lun in &adapter.luns {
            lun.disk.set_read_only(config.read_only);
        }
        adapter.start_count.store(start_count, Ordering::Relaxed);
        debug_print!(
            "vstor: adapter started again (start {}) with its {} disk(s) and their data\n",
            Dec(start_count.into()),
            Dec(adapter.luns.len() as u64)
        );
        Ok(())
    }

    /// The request's function decides what is read: a SCSI command goes to the SCSI logic
    /// with its CDB and buffers and completes with status, sense and length; every other
    /// request is answered from the members its layout gives and completes with an
    /// `SrbStatus` alone.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): the layer calls this for SCSI commands and, out of line, for the rest; inlined into the first, the match folds away and READ(10) runs in the trampoline's frame"
    )]
    #[inline(always)]
    fn start_io(adapter: &Adapter, request: StartIoRequest<'_>) {
        match request {
            StartIoRequest::Scsi(srb) => execute(adapter, srb),
            other => control_request(adapter, other),
        }
    }

    /// A reset of bus `path_id` is a reset of that target port on every disk.
    fn reset_bus(adapter: &Adapter, path_id: u8) -> bool {
        for lun in &adapter.luns {
            lun.disk.reset_port(path_id);
        }
        true
    }

    fn adapter_control(adapter: &Adapter, control: AdapterControl<'_>) -> ControlStatus {
        match control {
            AdapterControl::QuerySupportedControlTypes { mut supported, .. } => {
                for control_type in [
                    ControlType::QuerySupportedControlTypes,
                    ControlType::Stop,
                    ControlType::Restart,
                    ControlType::SetRunningConfig,
                ] {
                    supported.set(control_type);
                }
                ControlStatus::Success
            }
            // The disks live in pool that outlives a stop: nothing to do.
            AdapterControl::Stop | AdapterControl::Restart => ControlStatus::Success,
            AdapterControl::SetRunningConfig { registry } => {
                let mut config = adapter.config;
                config.load_runtime(
                    &mut RegistrySource::open(registry, Occasion::RunningConfig),
                    &mut report_bad_value,
                );
                adapter.read_only.store(config.read_only, Ordering::Relaxed);
                for lun in &adapter.luns {
                    lun.disk.set_read_only(config.read_only);
                }
                ControlStatus::Success
            }
            _ => ControlStatus::Unsuccessful,
        }
    }
}

/// Runs one SCSI command and completes it with its outcome: READ(10), WRITE(10) and TEST UNIT
/// READY in the plain case straight away ([`scsi_srb::execute_plain`]: GOOD, no sense),
/// everything else through [`execute_passed_on`].
#[expect(
    clippy::inline_always,
    reason = "measured (vstor-bench, callgrind): out of line, the SRB handle goes through memory and READ(10) pays for a second frame"
)]
#[inline(always)]
fn execute(adapter: &Adapter, mut srb: Srb<'_>) {
    let address = Address {
        path_id: srb.path_id(),
        target_id: srb.target_id(),
        lun: srb.lun(),
    };
    if let Some(outcome) = scsi_srb::execute_plain(adapter, address, &mut srb) {
        // The plain path set the transfer length through `PlainIo`.
        srb.set_scsi_status(outcome.scsi_status);
        srb.complete(SrbStatus::from_raw(outcome.srb_status).unwrap_or(SrbStatus::ERROR));
        return;
    }
    execute_passed_on(adapter, srb);
}

/// The SRB as the plain paths read it: the CDB's first bytes, and the buffer of the
/// command's direction (its flag set, alone or with the other: an unspecified direction).
impl PlainIo for Srb<'_> {
    fn opcode(&self) -> u8 {
        Srb::opcode(self)
    }

    fn cdb<const N: usize>(&self) -> Option<&[u8; N]> {
        self.cdb_prefix()
    }

    fn data_in(&mut self, bytes: u32) -> Option<&mut [u8]> {
        self.data_in_exact(bytes)
    }

    fn data_out(&mut self, bytes: u32) -> Option<LentBytes<'_>> {
        self.data_out_exact(bytes)
    }

    fn set_transferred(&mut self, bytes: u32) {
        self.set_data_transfer_length(bytes);
    }
}

/// The SRB's data buffer as the SCSI logic takes it.
const fn data_buffer(data: SrbData<'_>, unspecified: bool) -> DataBuffer<'_> {
    match data {
        SrbData::In(buf) if unspecified => DataBuffer::Unspecified(buf),
        SrbData::In(buf) => DataBuffer::In(buf),
        SrbData::Out(lent) => DataBuffer::Out(lent),
        SrbData::None => DataBuffer::None,
    }
}

/// Runs a SCSI command the plain path passed on: READ(16), WRITE(16) and a standard INQUIRY
/// in the plain case ([`scsi_srb::execute_plain_other`]: GOOD, no sense) without the sense
/// buffer and the dispatcher, everything else through [`execute_general`]. Out of line, so
/// the plain path keeps its registers; apart from the general path, so an INQUIRY does not
/// pay for its frame (measured). Its completion is written out as in [`execute`] rather than shared
/// through a generic helper: the helper cost INQUIRY 17 instructions (vstor-bench, 359 →
/// 376).
#[inline(never)]
fn execute_passed_on(adapter: &Adapter, mut srb: Srb<'_>) {
    let address = Address {
        path_id: srb.path_id(),
        target_id: srb.target_id(),
        lun: srb.lun(),
    };
    if let Some(outcome) = scsi_srb::execute_plain_other(adapter, address, &mut srb) {
        // The plain path set the transfer length through `PlainIo`.
        srb.set_scsi_status(outcome.scsi_status);
        srb.complete(SrbStatus::from_raw(outcome.srb_status).unwrap_or(SrbStatus::ERROR));
        return;
    }
    execute_general(adapter, srb);
}

/// Runs one SCSI command through the SCSI logic's general path and completes it with its
/// outcome, sense included. Out of line, so the plain path keeps its registers.
#[inline(never)]
fn execute_general(adapter: &Adapter, mut srb: Srb<'_>) {
    let address = Address {
        path_id: srb.path_id(),
        target_id: srb.target_id(),
        lun: srb.lun(),
    };
    let unspecified = srb.direction_unspecified();
    // The CDB, data and sense buffers borrowed together, without copies.
    let io = srb.io();
    let autosense = if io.sense.is_empty() {
        Autosense::Disabled
    } else {
        Autosense::Enabled
    };
    let data = data_buffer(io.data, unspecified);
    let outcome = scsi_srb::execute(
        adapter,
        Command {
            address,
            cdb: io.cdb,
            data,
            autosense,
        },
    );
    if let Some(sense) = outcome.sense {
        let fixed = sense.fixed();
        let buffer = srb.sense_mut();
        let len = buffer.len().min(fixed.len());
        if let (Some(to), Some(from)) = (buffer.get_mut(..len), fixed.get(..len)) {
            to.copy_from_slice(from);
        }
    }
    srb.set_scsi_status(outcome.scsi_status);
    srb.set_data_transfer_length(outcome.transferred);
    let status = SrbStatus::from_raw(outcome.srb_status).unwrap_or(SrbStatus::ERROR);
    srb.complete(status);
}

/// A request of another function than `SRB_FUNCTION_EXECUTE_SCSI`, answered from the members
/// its layout gives and completed with an `SrbStatus` alone. Out of line: SCSI commands, the
/// common requests, do not carry its code.
#[inline(never)]
fn control_request(adapter: &Adapter, request: StartIoRequest<'_>) {
    let control = match &request {
        StartIoRequest::Pnp(srb) => Control::Pnp(unit(srb.addressee())),
        StartIoRequest::Power(srb) => Control::Power(unit(srb.addressee())),
        StartIoRequest::Other(srb) => other_control(srb.function(), srb.addressee()),
        // vstor is no WMI data provider.
        StartIoRequest::Wmi(_) | StartIoRequest::Scsi(_) => Control::Unsupported,
    };
    let status = scsi_srb::control(adapter, control);
    request.complete(SrbStatus::from_raw(status).unwrap_or(SrbStatus::ERROR));
}

/// The unit a PNP or POWER request is for; `None` for the adapter.
const fn unit(addressee: Addressee) -> Option<Address> {
    match addressee {
        Addressee::Unit {
            path_id,
            target_id,
            lun,
        } => Some(Address {
            path_id,
            target_id,
            lun,
        }),
        Addressee::Adapter | Addressee::Bus { .. } | Addressee::Target { .. } => None,
    }
}

/// What the SCSI logic is asked for a request of another function, from the address members
/// its page makes valid.
const fn other_control(function: SrbFunction, addressee: Option<Addressee>) -> Control {
    match (function, addressee) {
        (SrbFunction::ResetBus, Some(Addressee::Bus { path_id })) => Control::ResetBus { path_id },
        (SrbFunction::ResetDevice, Some(Addressee::Target { path_id, target_id })) => {
            Control::ResetDevice { path_id, target_id }
        }
        (function, Some(addressee)) => match (function, unit(addressee)) {
            (SrbFunction::ResetLogicalUnit, Some(address)) => Control::ResetLogicalUnit(address),
            (SrbFunction::AbortCommand, Some(address)) => Control::AbortCommand(address),
            (SrbFunction::Flush, Some(address)) => Control::Flush(address),
            (SrbFunction::Shutdown, Some(address)) => Control::Shutdown(address),
            _ => Control::Unsupported,
        },
        _ => Control::Unsupported,
    }
}

fn report_bad_value(bad: &BadValue) {
    debug_print!("{bad}\n");
}

/// Refuses disks that need more than their share of physical memory
/// ([`crate::config::PHYSICAL_MEMORY_DIVISOR`]). Where the kernel does not
/// report the memory, only the absolute cap `Config::load` applied holds.
/// `MmGetPhysicalMemoryRangesEx2` exists wherever vstor loads (it needs
/// Windows 10 version 2004, as `ExAllocatePool2` does), so that means the
/// routine failed.
///
/// # Errors
///
/// `FindAdapterError::BadConfig` for disks larger than the share, said once
/// through `DbgPrint`.
fn check_memory(config: &Config, physical_bytes: Option<u64>) -> Result<(), FindAdapterError> {
    let Some(physical_bytes) = physical_bytes else {
        debug_print!(
            "vstor: the kernel did not report the machine's physical memory \
             (MmGetPhysicalMemoryRangesEx2 failed), so the disks ({} MiB) are held only to the {} \
             MiB one adapter may use; the start goes on.\n",
            Dec(config.total_mib()),
            Dec(MAX_TOTAL_SIZE_MIB)
        );
        return Ok(());
    };
    config
        .check_physical_memory(physical_bytes)
        .map_err(|error| {
            debug_print!("{error}\n");
            FindAdapterError::BadConfig
        })
}

/// Builds every disk of `config`, its medium zeroed in nonpaged pool.
///
/// # Errors
///
/// `FindAdapterError::Error` when the pool cannot hold a disk (everything
/// allocated so far is freed on the way out); `FindAdapterError::BadConfig`
/// when a disk's description is impossible.
fn build_luns(config: &Config) -> Result<Vec<Lun>, FindAdapterError> {
    let block_size =
        BlockSize::from_bytes(config.sector_size).ok_or(FindAdapterError::BadConfig)?;
    let mut luns = Vec::new();
    if luns.try_reserve_exact(config.sizes_mib().len()).is_err() {
        debug_print!("vstor: out of memory for the disk table; the adapter does not start\n");
        return Err(FindAdapterError::Error);
    }
    for (index, &size_mib) in config.sizes_mib().iter().enumerate() {
        let size_bytes = u64::from(size_mib) << 20;
        let medium = RamDisk::new(size_bytes, |words| {
            PoolSlice::<AtomicU64>::new_zeroed(words, DISK_POOL_TAG)
        })
        .map_err(|error| {
            match error {
                Some(error) => debug_print!(
                    "vstor: disk {} ({} MiB): {error}; the adapter does not start\n",
                    Dec(index as u64),
                    Dec(size_mib.into())
                ),
                None => debug_print!(
                    "vstor: disk {} ({} MiB): out of memory for its chunk table; the adapter \
                     does not start\n",
                    Dec(index as u64),
                    Dec(size_mib.into())
                ),
            }
            FindAdapterError::Error
        })?;
        let disk =
            Disk::new(disk_config(config, index, block_size, size_bytes)?).map_err(|error| {
                debug_print!(
                    "vstor: disk {}: {error} The adapter does not start\n",
                    Dec(index as u64)
                );
                FindAdapterError::BadConfig
            })?;
        luns.push(Lun { disk, medium });
    }
    Ok(luns)
}

/// The SCSI description of disk `index`.
fn disk_config(
    config: &Config,
    index: usize,
    block_size: BlockSize,
    size_bytes: u64,
) -> Result<DiskConfig, FindAdapterError> {
    let mut serial = crate::registry_source::Text::<40>::new();
    let _ = write!(
        serial,
        "{}{}",
        config.serial_prefix,
        ZeroPadded(index as u64, 4)
    );
    let identity = Identity::new(
        config.vendor_id.as_bytes(),
        config.product_id.as_bytes(),
        config.product_revision.as_bytes(),
        serial.as_bytes(),
    )
    .map_err(|error| {
        debug_print!(
            "vstor: disk {}: {error} The adapter does not start\n",
            Dec(index as u64)
        );
        FindAdapterError::BadConfig
    })?;
    Ok(DiskConfig {
        identity,
        block_size,
        block_count: size_bytes >> block_size.shift(),
        read_only: config.read_only,
        naa_local_id: naa_local_id(serial.as_bytes()) & ((1 << 60) - 1),
        write_cache: false,
        limits: Limits::DEFAULT,
    })
}

/// A locally administered NAA identifier for a disk, from its serial number
/// (FNV-1a), so page 83h names each disk of an adapter differently.
fn naa_local_id(serial: &[u8]) -> u64 {
    serial
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
