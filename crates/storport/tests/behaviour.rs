//! Behaviour of the safe layer against the emulator's Storport port model.
//!
//! A probe miniport built on this crate is linked into the test process;
//! `storport-sys`'s host imports are bound to the emulator's exports, and
//! the emulator drives the probe through `HW_INITIALIZATION_DATA` exactly as
//! it drives a loaded `.sys`. Each test seeds the emulated registry, runs a
//! scenario inside a callback, and checks what the wrappers returned, what
//! the port stored, and that the port found no rule broken.
//!
//! Callbacks cannot panic across the `extern "win64"` boundary, so scenarios
//! only record their results; the assertions run afterwards.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Once};

use storport::registry::{AllocError, ReadError, Registry, Scope, WriteError};
use storport::{
    AdapterControl, Addressee, ControlStatus, ControlType, DevicePowerState, DriverObject,
    FindAdapterContext, FindAdapterError, Miniport, NtStatus, PnpAction, PoolAllocError, PoolSlice,
    PoolTag, PowerAction, RwSpinLock, Srb, SrbData, SrbFunction, SrbStatus, StartIoRequest,
    UnicodeString,
};
use storport_emu::port::cpu::DirectCpu;
use storport_emu::port::{
    DataDirection, FaultSpec, PhysicalMemory, PnpStartReading, PoolConfig, Port, PortError,
    PortOptions,
};
use storport_emu::registry::RegValue;

type Scenario = Box<dyn FnOnce(&mut Registry) -> Box<dyn Any>>;

thread_local! {
    /// What find-adapter runs with its registry capability.
    static FIND_ADAPTER: RefCell<Option<Scenario>> = const { RefCell::new(None) };
    /// What `ScsiSetRunningConfig` runs with its registry capability.
    static RUNNING_CONFIG: RefCell<Option<Scenario>> = const { RefCell::new(None) };
    /// Results of the scenarios, in the order they ran.
    static OUTPUT: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
    /// Requests start-io saw.
    static REQUESTS: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
    /// Requests other than SCSI commands start-io saw.
    static NON_SCSI: RefCell<Vec<NonScsiSeen>> = const { RefCell::new(Vec::new()) };
    /// How many adapters were dropped.
    static DROPPED: Cell<u32> = const { Cell::new(0) };
    /// What a second find-adapter returns, and the transfer limit it saw.
    static AGAIN: Cell<Result<(), FindAdapterError>> = const { Cell::new(Ok(())) };
    static AGAIN_SAW: Cell<Option<u32>> = const { Cell::new(None) };
    /// Whether find-adapter asks for the physical memory, and the answer.
    static ASK_MEMORY: Cell<bool> = const { Cell::new(false) };
    static MEMORY: Cell<Option<u64>> = const { Cell::new(None) };
}

fn run(
    scenario: &'static std::thread::LocalKey<RefCell<Option<Scenario>>>,
    registry: &mut Registry,
) {
    if let Some(body) = scenario.with_borrow_mut(Option::take) {
        let result = body(registry);
        OUTPUT.with_borrow_mut(|output| output.push(result));
    }
}

/// One SCSI command as start-io saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    address: (u8, u8, u8),
    cdb: Vec<u8>,
    data_out: Vec<u8>,
    data_in_len: usize,
    sense_len: usize,
}

/// One request other than a SCSI command, as its view showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NonScsiSeen {
    Pnp(PnpAction, Addressee),
    Power(DevicePowerState, PowerAction, Addressee),
    Wmi(u8, Addressee),
    Other(SrbFunction, Option<Addressee>),
}

/// The probe's adapter state: counts its drops, and SYNCHRONIZE CACHE
/// requests under a reader/writer kernel spin lock.
struct ProbeAdapter {
    synchronized: RwSpinLock<u64>,
}

impl Drop for ProbeAdapter {
    fn drop(&mut self) {
        DROPPED.set(DROPPED.get() + 1);
    }
}

struct Probe;

impl Miniport for Probe {
    type Adapter = ProbeAdapter;

    fn find_adapter(
        context: &mut FindAdapterContext<'_>,
    ) -> Result<ProbeAdapter, FindAdapterError> {
        context
            .config()
            .set_maximum_transfer_length(64 * 1024)
            .set_number_of_physical_breaks(17)
            .set_maximum_number_of_targets(1)
            .set_maximum_number_of_logical_units(2);
        run(&FIND_ADAPTER, context.registry());
        if ASK_MEMORY.get() {
            MEMORY.set(context.physical_memory_bytes());
        }
        Ok(ProbeAdapter {
            synchronized: RwSpinLock::new(0),
        })
    }

    fn find_adapter_again(
        _: &mut ProbeAdapter,
        context: &mut FindAdapterContext<'_>,
    ) -> Result<(), FindAdapterError> {
        AGAIN_SAW.set(Some(context.config().maximum_transfer_length()));
        AGAIN.get()
    }

    fn start_io(adapter: &ProbeAdapter, request: StartIoRequest<'_>) {
        let seen = match request {
            StartIoRequest::Scsi(srb) => return scsi(adapter, srb),
            StartIoRequest::Pnp(srb) => {
                let seen = NonScsiSeen::Pnp(srb.action(), srb.addressee());
                srb.complete(SrbStatus::SUCCESS);
                seen
            }
            StartIoRequest::Power(srb) => {
                let seen = NonScsiSeen::Power(
                    srb.device_power_state(),
                    srb.power_action(),
                    srb.addressee(),
                );
                srb.complete(SrbStatus::SUCCESS);
                seen
            }
            StartIoRequest::Wmi(srb) => {
                let seen = NonScsiSeen::Wmi(srb.subfunction(), srb.addressee());
                srb.complete(SrbStatus::INVALID_REQUEST);
                seen
            }
            StartIoRequest::Other(srb) => {
                let seen = NonScsiSeen::Other(srb.function(), srb.addressee());
                if srb.function() == SrbFunction::Shutdown {
                    // Dropped without completion on purpose.
                    drop(srb);
                } else {
                    srb.complete(SrbStatus::SUCCESS);
                }
                seen
            }
        };
        NON_SCSI.with_borrow_mut(|requests| requests.push(seen));
    }

    fn reset_bus(_: &ProbeAdapter, _: u8) -> bool {
        true
    }

    fn adapter_control(_: &ProbeAdapter, control: AdapterControl<'_>) -> ControlStatus {
        adapter_control(control)
    }
}

/// The probe's SCSI commands.
fn scsi(adapter: &ProbeAdapter, mut srb: Srb<'_>) {
    let data_out = srb.data_out();
    let mut copy = vec![0; data_out.len()];
    if !data_out.copy_to(0, &mut copy) {
        copy.clear();
    }
    let seen = Seen {
        address: (srb.path_id(), srb.target_id(), srb.lun()),
        cdb: srb.cdb().to_vec(),
        data_out: copy,
        data_in_len: srb.data_in_mut().len(),
        sense_len: srb.sense_mut().len(),
    };
    let opcode = seen.cdb.first().copied();
    REQUESTS.with_borrow_mut(|requests| requests.push(seen));
    match opcode {
        // INQUIRY: fill the buffer with a pattern, report 8 bytes.
        Some(0x12) => {
            for (index, byte) in srb.data_in_mut().iter_mut().enumerate() {
                *byte = u8::try_from(index).unwrap_or(0) ^ 0xA5;
            }
            srb.set_data_transfer_length(8);
            srb.complete(SrbStatus::SUCCESS);
        }
        // REQUEST SENSE stands in for an error: CHECK CONDITION + sense.
        Some(0x03) => {
            let sense = [0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0];
            let buffer = srb.sense_mut();
            let length = buffer.len().min(sense.len());
            buffer[..length].copy_from_slice(&sense[..length]);
            srb.set_scsi_status(0x02);
            srb.complete(SrbStatus::ERROR.with_autosense_valid());
        }
        // TEST UNIT READY: dropped without completion on purpose.
        Some(0x00) => drop(srb),
        // READ(10): echo the CDB into the data through the split borrow.
        Some(0x28) => {
            let io = srb.io();
            let status = match io.data {
                SrbData::In(data) if !io.sense.is_empty() => {
                    let length = data.len().min(io.cdb.len());
                    data[..length].copy_from_slice(&io.cdb[..length]);
                    SrbStatus::SUCCESS
                }
                _ => SrbStatus::INVALID_REQUEST,
            };
            srb.complete(status);
        }
        // SYNCHRONIZE CACHE(10): count it, as a separate read and write
        // of the counter that only the exclusive hold keeps together.
        Some(0x35) => {
            let mut count = adapter.synchronized.lock_exclusive();
            let seen = *count;
            std::thread::yield_now();
            *count = seen + 1;
            drop(count);
            srb.complete(SrbStatus::SUCCESS);
        }
        // READ CAPACITY(10) stands in for a report: the count, read shared.
        Some(0x25) => {
            let count = *adapter.synchronized.lock_shared();
            let data = srb.data_in_mut();
            let length = data.len().min(8);
            data[..length].copy_from_slice(&count.to_le_bytes()[..length]);
            srb.set_data_transfer_length(u32::try_from(length).unwrap_or(0));
            srb.complete(SrbStatus::SUCCESS);
        }
        // Larger than the buffer: the length must stay within it.
        Some(0x2A) => {
            srb.set_data_transfer_length(u32::MAX);
            srb.complete(SrbStatus::SUCCESS);
        }
        _ => srb.complete(SrbStatus::INVALID_REQUEST),
    }
}

/// The probe's adapter control.
fn adapter_control(control: AdapterControl<'_>) -> ControlStatus {
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
        AdapterControl::SetRunningConfig { registry } => {
            run(&RUNNING_CONFIG, registry);
            ControlStatus::Success
        }
        AdapterControl::Stop | AdapterControl::Restart => ControlStatus::Success,
        _ => ControlStatus::Unsuccessful,
    }
}

/// The probe's `DriverEntry`.
///
/// # Safety
///
/// Called by the port model as `DriverEntry`, with its driver object and
/// registry path.
unsafe extern "win64" fn driver_entry(
    driver_object: *mut DriverObject,
    registry_path: *mut UnicodeString,
) -> NtStatus {
    // SAFETY: the port passes its own driver object and registry path, once
    // per port instance, as the kernel does.
    unsafe { storport::initialize::<Probe>(driver_object, registry_path) }
}

/// A registered port, its registry seeded with `(scope, name, type, data)`.
fn port_with(seed: &[(Scope, &str, RegValue)]) -> Port {
    port_with_options(seed, PortOptions::default())
}

/// [`port_with`], on a port with `options`.
fn port_with_options(seed: &[(Scope, &str, RegValue)], options: PortOptions) -> Port {
    static BIND: Once = Once::new();
    BIND.call_once(|| {
        let missing = storport_emu::port::exports::bind_host();
        assert!(
            missing.is_empty(),
            "the emulator lacks imports the layer uses: {missing:?}"
        );
    });
    let port = Port::new(
        driver_entry as *const () as usize,
        Arc::new(DirectCpu),
        options,
        None,
    );
    {
        let mut registry = port.registry();
        for (scope, name, value) in seed {
            let key = registry
                .scope
                .device_key(u32::from(*scope == Scope::Global));
            registry.registry.set_value(&key, name, value.clone());
        }
    }
    port.driver_entry()
        .expect("the probe registers with StorPortInitialize");
    port
}

/// Starts a port seeded with `seed`, running `body` inside find-adapter;
/// returns what `body` returned and the started port.
fn in_find_adapter<R: 'static>(
    seed: &[(Scope, &str, RegValue)],
    body: impl FnOnce(&mut Registry) -> R + 'static,
) -> (R, Port) {
    OUTPUT.with_borrow_mut(Vec::clear);
    FIND_ADAPTER.set(Some(Box::new(move |registry| Box::new(body(registry)))));
    let port = port_with(seed);
    port.start().expect("the probe adapter starts");
    let output = OUTPUT
        .with_borrow_mut(Vec::pop)
        .expect("find-adapter ran the scenario");
    (
        *output.downcast::<R>().expect("the scenario's result type"),
        port,
    )
}

/// Removes and unloads the adapter; the port's findings.
fn finish(port: &Port) -> Vec<String> {
    port.remove().expect("the adapter is removed");
    port.unload();
    port.findings()
        .iter()
        .map(|finding| format!("{finding:?}"))
        .collect()
}

/// The value the port's registry holds, as Windows would store it.
fn stored(port: &Port, scope: Scope, name: &str) -> Option<RegValue> {
    let registry = port.registry();
    let key = registry.scope.device_key(u32::from(scope == Scope::Global));
    registry.registry.value(&key, name).cloned()
}

#[test]
fn dwords_are_read_from_each_scope() {
    let seed = [
        (Scope::Global, "DiskCount", RegValue::dword(3)),
        (Scope::Adapter, "DiskCount", RegValue::dword(5)),
    ];
    let (read, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(64).expect("a registry buffer");
        (
            buffer.read_dword(Scope::Global, c"DiskCount"),
            buffer.read_dword(Scope::Adapter, c"DiskCount"),
        )
    });
    assert_eq!(read, (Ok(3), Ok(5)));
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn dwords_are_written_to_each_scope() {
    let (written, port) = in_find_adapter(&[], |registry| {
        let mut buffer = registry.open(16).expect("a registry buffer");
        (
            buffer.write_dword(Scope::Global, c"Shared", 0x1234_5678),
            buffer.write_dword(Scope::Adapter, c"StartCount", 7),
        )
    });
    assert_eq!(written, (Ok(()), Ok(())));
    assert_eq!(
        stored(&port, Scope::Global, "Shared"),
        Some(RegValue::dword(0x1234_5678))
    );
    assert_eq!(
        stored(&port, Scope::Adapter, "StartCount"),
        Some(RegValue::dword(7))
    );
    assert_eq!(
        stored(&port, Scope::Adapter, "Shared"),
        None,
        "scopes are separate keys"
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn qwords_round_trip() {
    let seed = [(Scope::Global, "Capacity", RegValue::qword(0x1_0000_0002))];
    let (result, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(16).expect("a registry buffer");
        let read = buffer.read_qword(Scope::Global, c"Capacity");
        let written = buffer.write_qword(Scope::Adapter, c"Blocks", u64::MAX - 1);
        (read, written)
    });
    assert_eq!(result, (Ok(0x1_0000_0002), Ok(())));
    assert_eq!(
        stored(&port, Scope::Adapter, "Blocks"),
        Some(RegValue::qword(u64::MAX - 1))
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn strings_are_read_as_ansi_and_written_as_unicode() {
    let seed = [(Scope::Global, "VendorId", RegValue::sz("ACME"))];
    let (result, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(64).expect("a registry buffer");
        let read = buffer
            .read_string(Scope::Global, c"VendorId")
            .map(<[u8]>::to_vec);
        let written = buffer.write_string(Scope::Adapter, c"EffectiveConfig", b"DiskCount=1");
        let nul = buffer.write_string(Scope::Adapter, c"Bad", b"a\0b");
        (read, written, nul)
    });
    assert_eq!(result.0, Ok(b"ACME".to_vec()));
    assert_eq!(result.1, Ok(()));
    assert_eq!(result.2, Err(WriteError::InteriorNul { offset: 1 }));
    assert_eq!(
        stored(&port, Scope::Adapter, "EffectiveConfig"),
        Some(RegValue::sz("DiskCount=1"))
    );
    assert_eq!(
        stored(&port, Scope::Adapter, "Bad"),
        None,
        "a rejected string is not written"
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn multi_strings_iterate_and_round_trip() {
    let seed = [(
        Scope::Adapter,
        "DiskSizesMiB",
        RegValue::multi_sz(&["64", "128", "1"]),
    )];
    let (result, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(64).expect("a registry buffer");
        let read: Result<Vec<Vec<u8>>, ReadError> = buffer
            .read_multi_string(Scope::Adapter, c"DiskSizesMiB")
            .map(|strings| strings.map(<[u8]>::to_vec).collect());
        let written = buffer.write_multi_string(Scope::Global, c"Names", &[b"one", b"two"]);
        let empty = buffer.write_multi_string(Scope::Global, c"Holes", &[b"one", b""]);
        (read, written, empty)
    });
    assert_eq!(
        result.0,
        Ok(vec![b"64".to_vec(), b"128".to_vec(), b"1".to_vec()])
    );
    assert_eq!(result.1, Ok(()));
    assert_eq!(result.2, Err(WriteError::EmptyString));
    assert_eq!(
        stored(&port, Scope::Global, "Names"),
        Some(RegValue::multi_sz(&["one", "two"]))
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn binary_values_round_trip() {
    let seed = [(Scope::Global, "Blob", RegValue::binary(&[1, 2, 3, 0, 255]))];
    let (result, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(32).expect("a registry buffer");
        let read = buffer
            .read_binary(Scope::Global, c"Blob")
            .map(<[u8]>::to_vec);
        let written = buffer.write_binary(Scope::Adapter, c"Copy", &[0, 0, 9]);
        (read, written)
    });
    assert_eq!(result, (Ok(vec![1, 2, 3, 0, 255]), Ok(())));
    assert_eq!(
        stored(&port, Scope::Adapter, "Copy"),
        Some(RegValue::binary(&[0, 0, 9]))
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn a_small_buffer_reports_the_length_needed_and_grows() {
    let long = "L".repeat(100);
    let seed = [(Scope::Global, "SerialPrefix", RegValue::sz(&long))];
    let (result, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(16).expect("a registry buffer");
        let first = buffer
            .read_string(Scope::Global, c"SerialPrefix")
            .map(<[u8]>::to_vec);
        let needed = match first {
            Err(ReadError::BufferTooSmall { needed_bytes }) => needed_bytes,
            _ => 4096,
        };
        let mut grown = buffer.grow(needed).expect("the larger buffer");
        let second = grown
            .read_string(Scope::Global, c"SerialPrefix")
            .map(<[u8]>::to_vec);
        (first, grown.len_bytes(), second)
    });
    assert_eq!(
        result.0,
        Err(ReadError::BufferTooSmall { needed_bytes: 101 })
    );
    assert_eq!(result.1, 101);
    assert_eq!(result.2, Ok(long.into_bytes()));
    // Growing freed the first buffer before allocating the second: the port
    // (one buffer per instance) allowed it and found nothing leaked.
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn a_write_that_does_not_fit_reports_the_length_needed() {
    let (result, port) = in_find_adapter(&[], |registry| {
        let mut buffer = registry.open(2).expect("a registry buffer");
        buffer.write_dword(Scope::Adapter, c"StartCount", 1)
    });
    assert_eq!(result, Err(WriteError::BufferTooSmall { needed_bytes: 4 }));
    assert_eq!(stored(&port, Scope::Adapter, "StartCount"), None);
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn missing_values_and_wrong_types_fail_alike() {
    let seed = [(Scope::Global, "DiskCount", RegValue::dword(2))];
    let (result, port) = in_find_adapter(&seed, |registry| {
        let mut buffer = registry.open(64).expect("a registry buffer");
        let missing = buffer.read_dword(Scope::Global, c"NoSuchValue");
        let other_scope = buffer.read_dword(Scope::Adapter, c"DiskCount");
        let wrong_type = buffer
            .read_string(Scope::Global, c"DiskCount")
            .map(<[u8]>::to_vec);
        (missing, other_scope, wrong_type)
    });
    assert_eq!(
        result,
        (
            Err(ReadError::Failed),
            Err(ReadError::Failed),
            Err(ReadError::Failed)
        )
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

/// The line the layer prints when it frees a leaked guard's 16-byte buffer
/// `when`.
fn reclaimed(when: &str) -> String {
    format!(
        "storport: the registry buffer of 16 bytes was still allocated {when}: its guard was \
         leaked (for example with core::mem::forget) instead of dropped; the layer frees it \
         now, so the adapter can open a registry buffer again."
    )
}

#[test]
fn a_refused_allocation_is_an_alloc_error() {
    OUTPUT.with_borrow_mut(Vec::clear);
    FIND_ADAPTER.set(Some(Box::new(|registry: &mut Registry| {
        Box::new(registry.open(16).map(|buffer| buffer.len_bytes()))
    })));
    let port = port_with(&[]);
    port.inject_faults(vec![FaultSpec::once("StorPortAllocateRegistryBuffer", 1)]);
    port.start().expect("the probe adapter starts");
    let output = OUTPUT
        .with_borrow_mut(Vec::pop)
        .expect("find-adapter ran the scenario");
    assert_eq!(
        *output
            .downcast::<Result<u32, AllocError>>()
            .expect("the scenario's result type"),
        Err(AllocError {
            requested_bytes: 16
        })
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn a_forgotten_guard_is_freed_before_the_next_open() {
    let (result, port) = in_find_adapter(&[], |registry| {
        let leaked = registry.open(16).expect("a registry buffer");
        std::mem::forget(leaked);
        // The port allows one buffer per adapter: this open succeeds only
        // because the layer frees the leaked one first.
        registry.open(16).map(|buffer| buffer.len_bytes())
    });
    assert_eq!(result, Ok(16));
    assert_eq!(port.dbgprint(), vec![reclaimed("when another was opened")]);
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn a_forgotten_guard_is_freed_when_its_callback_returns() {
    let seed = [(Scope::Adapter, "ReadOnly", RegValue::dword(1))];
    let ((), port) = in_find_adapter(&seed, |registry| {
        let leaked = registry.open(16).expect("a registry buffer");
        std::mem::forget(leaked);
    });
    assert_eq!(
        port.dbgprint(),
        vec![reclaimed("when the callback that opened it returned")]
    );
    // The next callback opens the adapter's one buffer again.
    RUNNING_CONFIG.set(Some(Box::new(|registry: &mut Registry| {
        Box::new(
            registry
                .open(16)
                .map(|mut buffer| buffer.read_dword(Scope::Adapter, c"ReadOnly")),
        )
    })));
    assert_eq!(port.set_running_config(), Ok(0));
    let output = OUTPUT
        .with_borrow_mut(Vec::pop)
        .expect("set-running-config ran the scenario");
    assert_eq!(
        *output
            .downcast::<Result<Result<u32, ReadError>, AllocError>>()
            .expect("an open and a DWORD result"),
        Ok(Ok(1))
    );
    // Nothing leaked, and the port never saw a second buffer requested
    // while one was allocated.
    assert_eq!(finish(&port), Vec::<String>::new());
    assert_eq!(port.dbgprint().len(), 1, "{:?}", port.dbgprint());
}

#[test]
fn running_config_reaches_the_registry() {
    let seed = [(Scope::Adapter, "ReadOnly", RegValue::dword(1))];
    let ((), port) = in_find_adapter(&seed, |_| ());
    RUNNING_CONFIG.set(Some(Box::new(|registry: &mut Registry| {
        let mut buffer = registry.open(8).expect("a registry buffer");
        Box::new(buffer.read_dword(Scope::Adapter, c"ReadOnly"))
    })));
    assert_eq!(port.set_running_config(), Ok(0));
    let output = OUTPUT
        .with_borrow_mut(Vec::pop)
        .expect("set-running-config ran the scenario");
    assert_eq!(
        *output
            .downcast::<Result<u32, ReadError>>()
            .expect("a DWORD result"),
        Ok(1)
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn the_adapter_is_dropped_once_on_removal() {
    DROPPED.set(0);
    let ((), port) = in_find_adapter(&[], |_| ());
    assert_eq!(DROPPED.get(), 0, "the adapter lives while the port runs");
    assert_eq!(finish(&port), Vec::<String>::new());
    assert_eq!(DROPPED.get(), 1);
}

#[test]
fn find_adapter_on_a_live_adapter_keeps_it_with_its_declared_configuration() {
    DROPPED.set(0);
    AGAIN.set(Ok(()));
    AGAIN_SAW.set(None);
    let ((), port) = in_find_adapter(&[], |_| ());
    assert_eq!(port.stop(), Ok(0));
    port.pnp_start(PnpStartReading::FindAdapterAgain)
        .expect("the adapter starts again");
    assert_eq!(DROPPED.get(), 0, "the live adapter is kept");
    assert_eq!(
        AGAIN_SAW.get(),
        Some(64 * 1024),
        "the miniport sees what it declared at its first start"
    );
    let config = port.config().expect("a started adapter");
    assert_eq!(
        (
            config.MaximumTransferLength,
            config.NumberOfPhysicalBreaks,
            config.MaximumNumberOfTargets,
            config.MaximumNumberOfLogicalUnits,
            config.VirtualDevice,
        ),
        (64 * 1024, 17, 1, 2, 1)
    );
    assert_eq!(finish(&port), Vec::<String>::new());
    assert_eq!(DROPPED.get(), 1, "dropped once, on removal");
}

#[test]
fn a_failed_find_adapter_on_a_live_adapter_drops_it() {
    DROPPED.set(0);
    AGAIN.set(Err(FindAdapterError::BadConfig));
    let ((), port) = in_find_adapter(&[], |_| ());
    assert_eq!(port.stop(), Ok(0));
    assert_eq!(
        port.pnp_start(PnpStartReading::FindAdapterAgain),
        Err(PortError::FindAdapterFailed(3))
    );
    AGAIN.set(Ok(()));
    assert_eq!(DROPPED.get(), 1, "dropped when the start failed");
    let findings = finish(&port);
    assert_eq!(DROPPED.get(), 1, "not dropped again on removal");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].contains("AdapterStartFailed"), "{findings:?}");
}

/// Starts the probe on a machine of `physical_mib` (`reserved_mib` of it the
/// rest of the system's) with find-adapter asking for the physical memory;
/// what it was told, and the port's findings after removal.
fn physical_memory_seen(physical_mib: u64, reserved_mib: u64) -> (Option<u64>, Vec<String>) {
    FIND_ADAPTER.set(None);
    ASK_MEMORY.set(true);
    MEMORY.set(Some(0));
    let options = PortOptions {
        pool: PoolConfig {
            special: PoolConfig::special_pool().special,
            memory: PhysicalMemory::from_mib(physical_mib, reserved_mib),
        },
        ..PortOptions::default()
    };
    let port = port_with_options(&[], options);
    port.start().expect("the probe adapter starts");
    ASK_MEMORY.set(false);
    (MEMORY.get(), finish(&port))
}

#[test]
fn physical_memory_is_the_sum_of_the_ranges_and_the_array_is_freed() {
    // Special pool: a read past the array or a use after its free faults,
    // and an array never freed is a PoolLeak at unload.
    assert_eq!(
        physical_memory_seen(3000, 1024),
        (Some(3000 << 20), Vec::<String>::new())
    );
}

#[test]
fn physical_memory_is_none_when_the_kernel_cannot_report_it() {
    // All of the memory is the rest of the system's: the kernel cannot
    // allocate the array and returns NULL.
    assert_eq!(
        physical_memory_seen(256, 2048),
        (None, Vec::<String>::new())
    );
}

#[test]
fn srb_views_show_the_request_and_completion_reports_status_and_data() {
    REQUESTS.with_borrow_mut(Vec::clear);
    let ((), port) = in_find_adapter(&[], |_| ());
    let inquiry = port
        .execute((0, 0, 1), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("INQUIRY completes");
    assert_eq!(inquiry.srb_status, SrbStatus::SUCCESS.to_raw());
    assert_eq!(inquiry.transferred, 8);
    let pattern: Vec<u8> = (0..8_u8).map(|index| index ^ 0xA5).collect();
    assert_eq!(inquiry.data, pattern);

    let error = port
        .execute((0, 0, 0), &[0x03, 0, 0, 0, 18, 0], &DataDirection::In(18))
        .expect("completes");
    assert_eq!(
        error.srb_status, 0x84,
        "SRB_STATUS_ERROR with autosense valid"
    );
    assert_eq!(error.scsi_status, 0x02);
    assert_eq!(error.sense.get(..3), Some(&[0x70, 0, 0x05][..]));

    let write = port
        .execute(
            (0, 0, 0),
            &[0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            &DataDirection::Out(vec![7; 512]),
        )
        .expect("WRITE completes");
    assert_eq!(write.srb_status, SrbStatus::SUCCESS.to_raw());
    assert_eq!(
        write.transferred, 512,
        "the transfer length cannot grow past the buffer"
    );

    let read = port
        .execute(
            (0, 0, 0),
            &[0x28, 0, 0, 0, 0, 9, 0, 0, 1, 0],
            &DataDirection::In(512),
        )
        .expect("READ completes");
    assert_eq!(read.srb_status, SrbStatus::SUCCESS.to_raw());
    assert_eq!(
        read.data.get(..10),
        Some(&[0x28, 0, 0, 0, 0, 9, 0, 0, 1, 0][..])
    );

    let dropped = port
        .execute((0, 0, 0), &[0x00; 6], &DataDirection::None)
        .expect("completes");
    assert_eq!(
        dropped.srb_status,
        SrbStatus::INTERNAL_ERROR.to_raw(),
        "a dropped SRB is completed with an error"
    );

    let seen = REQUESTS.with_borrow_mut(std::mem::take);
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen[0],
        Seen {
            address: (0, 0, 1),
            cdb: vec![0x12, 0, 0, 0, 36, 0],
            data_out: vec![],
            data_in_len: 36,
            sense_len: seen[0].sense_len,
        }
    );
    assert!(seen[1].sense_len >= 14, "the port supplies a sense buffer");
    assert_eq!(seen[2].data_out, vec![7; 512]);
    assert_eq!(
        seen[2].data_in_len, 0,
        "a data-out request has no data-in buffer"
    );
    assert_eq!(seen[3].data_in_len, 512);
    assert_eq!((seen[4].data_out.len(), seen[4].data_in_len), (0, 0));
    assert!(
        port.dbgprint()
            .iter()
            .any(|line| line.contains("dropped without completion")),
        "the lost SRB is reported: {:?}",
        port.dbgprint()
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn pool_slices_are_zeroed_tagged_and_freed() {
    let ((zeroed, written, huge), port) = in_find_adapter(&[], |_| {
        let tag = PoolTag::new(*b"Test");
        let mut slice = PoolSlice::<u64>::new_zeroed(512, tag).expect("4 KiB of pool");
        let zeroed = slice.iter().all(|&word| word == 0);
        slice[511] = 0x0123_4567_89AB_CDEF;
        let written = slice[511];
        drop(slice);
        let huge = PoolSlice::<u8>::new_zeroed(usize::MAX / 2, tag).map(|slice| slice.len());
        (zeroed, written, huge)
    });
    assert!(zeroed, "ExAllocatePool2 memory arrives zeroed");
    assert_eq!(written, 0x0123_4567_89AB_CDEF);
    assert_eq!(
        huge,
        Err(PoolAllocError {
            requested_bytes: usize::MAX / 2
        })
    );
    // Freed with its tag on drop: no pool leak at unload.
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn debug_print_formats_into_one_line_and_cuts_long_output() {
    let ((), port) = in_find_adapter(&[], |_| {
        storport::debug_print!("probe: {} disks of {:#x} bytes\n", 2, 4096);
        storport::debug_print!("{}", "x".repeat(2000));
    });
    let lines = port.dbgprint();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("probe: 2 disks of 0x1000 bytes")),
        "the formatted line reaches DbgPrint: {lines:?}"
    );
    let long = lines
        .iter()
        .find(|line| line.starts_with("xxx"))
        .expect("the long line");
    assert_eq!(long.trim_end().len(), storport::print::LINE_BYTES - 1);
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn start_io_runs_on_several_threads_at_once() {
    let ((), port) = in_find_adapter(&[], |_| ());
    let statuses: Vec<(u8, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..50)
                        .map(|_| {
                            let result = port
                                .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
                                .expect("INQUIRY completes");
                            (result.srb_status, result.transferred)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("the worker finishes"))
            .collect()
    });
    assert_eq!(statuses.len(), 200);
    assert!(
        statuses
            .iter()
            .all(|&status| status == (SrbStatus::SUCCESS.to_raw(), 8)),
        "{statuses:?}"
    );
    assert_eq!(finish(&port), Vec::<String>::new());
}

#[test]
fn a_kernel_spin_lock_in_start_io_keeps_concurrent_updates_whole() {
    let ((), port) = in_find_adapter(&[], |_| ());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let result = port
                        .execute(
                            (0, 0, 0),
                            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                            &DataDirection::None,
                        )
                        .expect("SYNCHRONIZE CACHE completes");
                    assert_eq!(result.srb_status, SrbStatus::SUCCESS.to_raw());
                }
            });
        }
    });
    let report = port
        .execute(
            (0, 0, 0),
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &DataDirection::In(8),
        )
        .expect("READ CAPACITY completes");
    assert_eq!(report.data, 200_u64.to_le_bytes());
    // Every acquire and release passed storemu's spin-lock checks.
    assert_eq!(finish(&port), Vec::<String>::new());
}
