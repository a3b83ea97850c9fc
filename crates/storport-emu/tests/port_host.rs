//! The port model driven by a miniport linked into the test process
//! (host-linked mode): every verifier rule that a miniport built for the
//! host can break, and a clean life cycle.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;

use storport_emu::port::cpu::DirectCpu;
use storport_emu::port::state::Event;
use storport_emu::port::{DataDirection, Port, PortError, PortOptions, Rule, exports};
use storport_emu::registry::RegValue;
use storport_sys::{
    DRIVER_OBJECT, HW_INITIALIZATION_DATA, MINIPORT_REG_DWORD, NTSTATUS,
    PORT_CONFIGURATION_INFORMATION, SCSI_REQUEST_BLOCK, UNICODE_STRING, notification, srb_status,
};

/// What the test miniport does wrong on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Break {
    Nothing,
    InitSize,
    MissingResetBus,
    DoubleComplete,
    CompletePending,
    RegistryDoubleFree,
    RegistryForeignFree,
    RegistryLeak,
    RegistryAtDispatch,
    PoolLeak,
    AllocateInStartIo,
    NoVirtualDevice,
    NoTransferLimits,
    ControlListOverrun,
    LongStall,
    TransferTooLong,
    NeverComplete,
    CompleteOnBusReset,
    CompleteFromTimer,
    CompleteFromDpc,
    CompleteForeign,
    BugCheckInStartIo,
}

thread_local! {
    static BREAK: Cell<Break> = const { Cell::new(Break::Nothing) };
    static SEEN_DISK_COUNT: Cell<u32> = const { Cell::new(0) };
    static PENDING_SRB: Cell<usize> = const { Cell::new(0) };
}

fn mode() -> Break {
    BREAK.with(Cell::get)
}

const TAG: u32 = u32::from_le_bytes(*b"Test");

fn dbg_print3(format: &[u8], a: u64, b: u64, c: u64) {
    let address = exports::resolve("ntoskrnl.exe", "DbgPrint").expect("DbgPrint is emulated");
    // SAFETY: the export is the variadic DbgPrint; three arguments follow the format.
    let f: unsafe extern "win64" fn(*const u8, u64, u64, u64) -> i32 =
        unsafe { std::mem::transmute(address) };
    // SAFETY: the format is NUL-terminated and names three arguments.
    unsafe { f(format.as_ptr(), a, b, c) };
}

unsafe extern "win64" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: all-zero is a valid HW_INITIALIZATION_DATA.
    let mut init: HW_INITIALIZATION_DATA = unsafe { std::mem::zeroed() };
    init.HwInitializationDataSize = if mode() == Break::InitSize {
        0x98
    } else {
        0xD0
    };
    init.HwInitialize = Some(hw_initialize);
    init.HwStartIo = Some(hw_start_io);
    init.HwFindAdapter = Some(hw_find_adapter);
    init.HwResetBus = if mode() == Break::MissingResetBus {
        None
    } else {
        Some(hw_reset_bus)
    };
    init.HwAdapterControl = Some(hw_adapter_control);
    init.HwFreeAdapterResources = Some(hw_free_adapter_resources);
    init.DeviceExtensionSize = 64;
    init.SrbExtensionSize = 32;
    init.MapBuffers = 3;
    init.FeatureSupport = storport_sys::STOR_FEATURE_VIRTUAL_MINIPORT;
    // SAFETY: arguments as the kernel passed them; `init` is complete.
    let status = unsafe {
        storport_sys::StorPortInitialize(driver, path, &raw mut init, std::ptr::null_mut())
    };
    status.cast_signed()
}

fn read_disk_count(extension: *mut c_void) -> Option<u32> {
    let mut length = 16_u32;
    // SAFETY: a valid length pointer.
    let buffer =
        unsafe { storport_sys::StorPortAllocateRegistryBuffer(extension, &raw mut length) };
    if buffer.is_null() {
        return None;
    }
    let mut got = length;
    // SAFETY: the buffer came from the allocator and holds `length` bytes.
    let ok = unsafe {
        storport_sys::StorPortRegistryRead(
            extension,
            c"DiskCount".as_ptr().cast(),
            1,
            MINIPORT_REG_DWORD,
            buffer,
            &raw mut got,
        )
    };
    // SAFETY: as above; `buffer` holds at least 4 bytes.
    let value = (ok != 0).then(|| unsafe { buffer.cast::<u32>().read_unaligned() });
    // Write back a value, then release the buffer.
    // SAFETY: the buffer holds 4 bytes.
    unsafe {
        buffer
            .cast::<u32>()
            .write_unaligned(value.unwrap_or(0) + 100);
    };
    // SAFETY: buffer from the allocator, 4 bytes.
    unsafe {
        storport_sys::StorPortRegistryWrite(
            extension,
            c"Echo".as_ptr().cast(),
            0,
            MINIPORT_REG_DWORD,
            buffer,
            4,
        )
    };
    match mode() {
        Break::RegistryLeak => {}
        Break::RegistryDoubleFree => {
            // SAFETY: deliberately freeing twice; the port must catch it.
            unsafe { storport_sys::StorPortFreeRegistryBuffer(extension, buffer) };
            // SAFETY: as above.
            unsafe { storport_sys::StorPortFreeRegistryBuffer(extension, buffer) };
        }
        Break::RegistryForeignFree => {
            let mut local = [0_u8; 8];
            // SAFETY: deliberately freeing a foreign pointer; the port must refuse it.
            unsafe { storport_sys::StorPortFreeRegistryBuffer(extension, local.as_mut_ptr()) };
            // SAFETY: the real buffer.
            unsafe { storport_sys::StorPortFreeRegistryBuffer(extension, buffer) };
        }
        _ => {
            // SAFETY: the buffer from the allocator, once.
            unsafe { storport_sys::StorPortFreeRegistryBuffer(extension, buffer) };
        }
    }
    value
}

unsafe extern "win64" fn hw_find_adapter(
    extension: *mut c_void,
    _context: *mut c_void,
    _bus: *mut c_void,
    _lower: *mut c_void,
    _arguments: *mut i8,
    config: *mut PORT_CONFIGURATION_INFORMATION,
    _again: *mut u8,
) -> u32 {
    // SAFETY: the port's ConfigInfo, exclusively ours during find-adapter.
    let config = unsafe { &mut *config };
    assert_eq!(
        config.Length, 0xE0,
        "ConfigInfo->Length is sizeof(PORT_CONFIGURATION_INFORMATION)"
    );
    assert_eq!(
        config.MaximumTransferLength, 0xFFFF_FFFF,
        "MaximumTransferLength starts as SP_UNINITIALIZED_VALUE"
    );
    if mode() != Break::NoVirtualDevice {
        config.VirtualDevice = 1;
    }
    if mode() != Break::NoTransferLimits {
        config.MaximumTransferLength = 64 * 1024;
        config.NumberOfPhysicalBreaks = 17;
    }
    config.NumberOfBuses = 1;
    config.MaximumNumberOfTargets = 1;
    config.MaximumNumberOfLogicalUnits = 1;
    SEEN_DISK_COUNT.with(|c| c.set(read_disk_count(extension).unwrap_or(0)));
    if mode() == Break::PoolLeak {
        // SAFETY: a plain allocation the driver then forgets.
        unsafe { storport_sys::ExAllocatePool2(storport_sys::POOL_FLAG_NON_PAGED, 100, TAG) };
    }
    dbg_print3(
        b"find adapter: %d disk(s), tag %s, %08x\n\0",
        u64::from(SEEN_DISK_COUNT.with(Cell::get)),
        c"ok".as_ptr() as u64,
        0xBEEF,
    );
    storport_sys::SP_RETURN_FOUND
}

const unsafe extern "win64" fn hw_initialize(_extension: *mut c_void) -> u8 {
    1
}

unsafe extern "win64" fn hw_start_io(extension: *mut c_void, srb: *mut SCSI_REQUEST_BLOCK) -> u8 {
    // SAFETY: the port's SRB, ours until completed.
    let request = unsafe { &mut *srb };
    if mode() == Break::AllocateInStartIo {
        // SAFETY: an allocation freed at once; the rule is about making it here.
        let p =
            unsafe { storport_sys::ExAllocatePool2(storport_sys::POOL_FLAG_NON_PAGED, 16, TAG) };
        // SAFETY: freeing what was just allocated.
        unsafe { storport_sys::ExFreePoolWithTag(p, TAG) };
    }
    if mode() == Break::RegistryAtDispatch {
        let _ = read_disk_count(extension);
    }
    if mode() == Break::LongStall {
        let stall = exports::resolve("storport.sys", "StorPortStallExecution").expect("emulated");
        // SAFETY: StorPortStallExecution(ULONG).
        let f: unsafe extern "win64" fn(u32) = unsafe { std::mem::transmute(stall) };
        // SAFETY: plain call.
        unsafe { f(200_000) };
    }
    if request.Cdb[0] == 0x12 && request.DataTransferLength >= 8 {
        // SAFETY: DataBuffer holds DataTransferLength bytes.
        let data = unsafe {
            std::slice::from_raw_parts_mut(
                request.DataBuffer.cast::<u8>(),
                request.DataTransferLength as usize,
            )
        };
        data[..8].copy_from_slice(&[0, 0, 5, 2, 31, 0, 0, 0]);
        request.SrbStatus = srb_status::SUCCESS;
        if mode() == Break::TransferTooLong {
            request.DataTransferLength += 512;
        }
    } else {
        request.SrbStatus = srb_status::INVALID_REQUEST;
        request.DataTransferLength = 0;
    }
    if mode() == Break::CompletePending {
        request.SrbStatus = srb_status::PENDING;
    }
    match mode() {
        // SAFETY: KeBugCheckEx never returns; the gate ends the call.
        Break::BugCheckInStartIo => unsafe { storport_sys::KeBugCheckEx(0xDEAD, 1, 2, 3, 4) },
        Break::NeverComplete => return 1,
        Break::CompleteOnBusReset => {
            PENDING_SRB.with(|p| p.set(srb as usize));
            return 1;
        }
        Break::CompleteFromTimer => {
            PENDING_SRB.with(|p| p.set(srb as usize));
            notify(
                notification::REQUEST_TIMER_CALL,
                extension,
                [hw_timer as *const () as u64, 1000, 0, 0],
            );
            return 1;
        }
        Break::CompleteFromDpc => {
            // STOR_DPC is opaque to the miniport; 0x80 bytes is more than it needs.
            let dpc = Box::leak(Box::new([0_u64; 16])).as_mut_ptr() as u64;
            let mut issued = 0_u8;
            notify(0x1001, extension, [dpc, hw_dpc as *const () as u64, 0, 0]);
            notify(
                0x1002,
                extension,
                [dpc, srb as u64, 0, (&raw mut issued) as u64],
            );
            assert_eq!(issued, 1, "IssueDpc reports the DPC as queued");
            return 1;
        }
        Break::CompleteForeign => {
            let mut fake = [0_u8; 0x58];
            notify(
                notification::REQUEST_COMPLETE,
                extension,
                [fake.as_mut_ptr() as u64, 0, 0, 0],
            );
        }
        _ => {}
    }
    // SAFETY: completing the SRB the port handed us.
    unsafe {
        storport_sys::StorPortNotification(notification::REQUEST_COMPLETE, extension, srb.cast());
    };
    if mode() == Break::DoubleComplete {
        // SAFETY: deliberately completing twice; the port must catch it.
        unsafe {
            storport_sys::StorPortNotification(
                notification::REQUEST_COMPLETE,
                extension,
                srb.cast(),
            );
        };
    }
    1
}

/// `StorPortNotification` with four argument slots after the extension.
fn notify(kind: u32, extension: *mut c_void, args: [u64; 4]) {
    let address = exports::resolve("storport.sys", "StorPortNotification").expect("emulated");
    // SAFETY: the variadic export reads as many slots as `kind` documents.
    let f: unsafe extern "win64" fn(u32, *mut c_void, u64, u64, u64, u64) =
        unsafe { std::mem::transmute(address) };
    // SAFETY: the arguments `kind` expects.
    unsafe { f(kind, extension, args[0], args[1], args[2], args[3]) };
}

unsafe extern "win64" fn hw_timer(extension: *mut c_void) {
    let srb = PENDING_SRB.with(|p| p.replace(0));
    notify(
        notification::REQUEST_COMPLETE,
        extension,
        [srb as u64, 0, 0, 0],
    );
}

unsafe extern "win64" fn hw_dpc(
    _dpc: *mut c_void,
    extension: *mut c_void,
    srb: *mut c_void,
    _other: *mut c_void,
) {
    notify(
        notification::REQUEST_COMPLETE,
        extension,
        [srb as u64, 0, 0, 0],
    );
}

unsafe extern "win64" fn hw_reset_bus(extension: *mut c_void, _path: u32) -> u8 {
    let held = PENDING_SRB.with(|p| p.replace(0));
    if mode() == Break::CompleteOnBusReset && held != 0 {
        let request = held as *mut SCSI_REQUEST_BLOCK;
        // SAFETY: the port handed this SRB to HwStartIo and it is not yet
        // completed, so the miniport still owns it.
        unsafe { (*request).SrbStatus = srb_status::BUS_RESET };
        notify(
            notification::REQUEST_COMPLETE,
            extension,
            [held as u64, 0, 0, 0],
        );
    }
    1
}

unsafe extern "win64" fn hw_adapter_control(
    _extension: *mut c_void,
    control: u32,
    parameters: *mut c_void,
) -> u32 {
    if control == 0 {
        let list = parameters.cast::<u8>();
        // SAFETY: MaxControlType is the first ULONG of the list.
        let max = unsafe { list.cast::<u32>().read_unaligned() } as usize;
        let end = if mode() == Break::ControlListOverrun {
            max + 1
        } else {
            3.min(max)
        };
        for i in 0..end {
            // SAFETY: within the list (or, deliberately, one past it, inside the port's guard).
            let entry = unsafe { list.add(4 + i) };
            // SAFETY: as above.
            unsafe { entry.write(1) };
        }
    }
    0
}

const unsafe extern "win64" fn hw_free_adapter_resources(_extension: *mut c_void) {}

fn port() -> Port {
    assert!(
        exports::bind_host().is_empty(),
        "every storport-sys import is emulated"
    );
    let options = PortOptions {
        service: "testmp".to_owned(),
        ..PortOptions::default()
    };
    let port = Port::new(
        driver_entry as *const () as usize,
        Arc::new(DirectCpu),
        options,
        None,
    );
    port.registry().registry.set_value(
        r"Services\testmp\Parameters\Device",
        "DiskCount",
        RegValue::dword(3),
    );
    port
}

/// Runs the whole life cycle with one INQUIRY; returns the port.
fn run(breakage: Break) -> Port {
    BREAK.with(|b| b.set(breakage));
    let port = port();
    if port.driver_entry().is_ok() && port.start().is_ok() {
        let _ = port.execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36));
        let _ = port.stop();
        let _ = port.restart();
        let _ = port.reset_bus(0);
        let _ = port.remove();
    }
    port.unload();
    port
}

fn rules(port: &Port) -> Vec<Rule> {
    port.findings().iter().map(|f| f.rule).collect()
}

#[test]
fn clean_miniport_runs_the_life_cycle_without_findings() {
    BREAK.with(|b| b.set(Break::Nothing));
    let port = port();
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    assert_eq!(
        SEEN_DISK_COUNT.with(Cell::get),
        3,
        "the registry value set before start reaches find-adapter"
    );
    let result = port
        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("INQUIRY");
    assert_eq!(result.status(), srb_status::SUCCESS);
    assert_eq!(&result.data[..4], &[0, 0, 5, 2]);
    let bad = port
        .execute((0, 0, 0), &[0xFF; 6], &DataDirection::None)
        .expect("unknown opcode");
    assert_eq!(bad.status(), srb_status::INVALID_REQUEST);
    assert_eq!(port.stop(), Ok(0));
    assert_eq!(port.restart(), Ok(0));
    assert_eq!(port.reset_bus(0), Ok(true));
    port.remove().expect("remove");
    port.unload();
    assert_eq!(port.findings(), vec![]);
    let echo = port
        .registry()
        .registry
        .value(r"Services\testmp\Parameters\Device0", "Echo")
        .cloned();
    assert_eq!(
        echo,
        Some(RegValue::dword(103)),
        "the adapter-scope write landed in Device0"
    );
    assert_eq!(
        port.dbgprint(),
        vec!["find adapter: 3 disk(s), tag ok, 0000beef".to_owned()]
    );
}

#[test]
fn requests_run_concurrently_from_several_threads() {
    BREAK.with(|b| b.set(Break::Nothing));
    let port = port();
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let result = port
                        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
                        .expect("INQUIRY");
                    assert_eq!(result.status(), srb_status::SUCCESS);
                }
            });
        }
    });
    port.remove().expect("remove");
    port.unload();
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn bad_init_size_returns_revision_mismatch() {
    BREAK.with(|b| b.set(Break::InitSize));
    let port = port();
    assert_eq!(
        port.driver_entry(),
        Err(PortError::DriverEntryFailed(0xC000_0059))
    );
    assert_eq!(rules(&port), vec![Rule::InitDataRevision]);
}

#[test]
fn missing_callback_returns_invalid_parameter() {
    BREAK.with(|b| b.set(Break::MissingResetBus));
    let port = port();
    assert_eq!(
        port.driver_entry(),
        Err(PortError::DriverEntryFailed(0xC000_000D))
    );
    assert_eq!(rules(&port), vec![Rule::InitDataInvalid]);
    assert!(port.findings()[0].message.contains("HwResetBus"));
}

#[test]
fn double_completion_is_bug_check_f1_2004() {
    let port = run(Break::DoubleComplete);
    let findings = port.findings();
    assert_eq!(rules(&port), vec![Rule::DoubleCompletion]);
    assert_eq!(findings[0].bugcheck, Some(0xF1));
    assert_eq!(findings[0].params[0], 0x2004);
    assert_eq!(findings[0].routine, "HwStartIo");
}

#[test]
fn pending_completion_is_reported() {
    assert_eq!(
        rules(&run(Break::CompletePending)),
        vec![Rule::StatusPending]
    );
}

#[test]
fn registry_buffer_misuse_is_reported() {
    assert_eq!(
        rules(&run(Break::RegistryDoubleFree)),
        vec![Rule::RegistryBufferDoubleFree]
    );
    assert_eq!(
        rules(&run(Break::RegistryForeignFree)),
        vec![Rule::RegistryBufferForeign]
    );
    assert_eq!(
        rules(&run(Break::RegistryLeak)),
        vec![Rule::RegistryBufferLeak]
    );
}

#[test]
fn registry_access_above_passive_is_storport_irql() {
    let port = run(Break::RegistryAtDispatch);
    assert!(!rules(&port).is_empty());
    assert!(
        rules(&port).iter().all(|r| *r == Rule::RegistryIrql),
        "{:?}",
        port.findings()
    );
    assert_eq!(port.findings()[0].params, vec![2]);
}

#[test]
fn pool_leak_is_reported_at_unload_with_tag_and_size() {
    let port = run(Break::PoolLeak);
    assert_eq!(rules(&port), vec![Rule::PoolLeak]);
    let finding = &port.findings()[0];
    assert_eq!(finding.bugcheck, Some(0xC4));
    assert!(
        finding.message.contains("100 bytes") && finding.message.contains("'Test'"),
        "{}",
        finding.message
    );
}

#[test]
fn allocation_in_start_io_is_sp_no_wait() {
    assert_eq!(
        rules(&run(Break::AllocateInStartIo)),
        vec![Rule::NoWaitInStartIo]
    );
}

#[test]
fn find_adapter_rules() {
    assert_eq!(
        rules(&run(Break::NoVirtualDevice)),
        vec![Rule::VirtualDevice]
    );
    assert_eq!(
        rules(&run(Break::NoTransferLimits)),
        vec![Rule::FindAdapterLimits]
    );
}

#[test]
fn write_past_supported_type_list_is_reported() {
    assert_eq!(
        rules(&run(Break::ControlListOverrun)),
        vec![Rule::SupportedTypeListOverrun]
    );
}

#[test]
fn long_stall_is_bug_check_f1_2001() {
    let port = run(Break::LongStall);
    let found = rules(&port);
    assert!(found.contains(&Rule::StallTooLong), "{found:?}");
    let stall = port
        .findings()
        .into_iter()
        .find(|f| f.rule == Rule::StallTooLong)
        .expect("stall finding");
    assert_eq!((stall.bugcheck, stall.params[0]), (Some(0xF1), 0x2001));
}

#[test]
fn transfer_length_above_buffer_is_reported() {
    assert_eq!(
        rules(&run(Break::TransferTooLong)),
        vec![Rule::TransferLength]
    );
}

/// The host-linked miniport, started on a port whose SRBs time out after
/// 50 ms.
fn started_with_short_timeout() -> Port {
    assert!(exports::bind_host().is_empty());
    let options = PortOptions {
        service: "testmp".to_owned(),
        srb_timeout: std::time::Duration::from_millis(50),
        ..PortOptions::default()
    };
    let port = Port::new(
        driver_entry as *const () as usize,
        Arc::new(DirectCpu),
        options,
        None,
    );
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    port
}

#[test]
fn a_timed_out_srb_makes_the_port_reset_its_bus_and_the_reset_completes_it() {
    BREAK.with(|b| b.set(Break::CompleteOnBusReset));
    let port = started_with_short_timeout();
    let result = port
        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("request");
    assert_eq!(
        result.srb_status,
        srb_status::BUS_RESET,
        "HwResetBus completed the held SRB"
    );
    assert_eq!(rules(&port), vec![Rule::SrbTimeout]);
    let events = port.events();
    let reset_at = events.iter().position(
        |event| matches!(event, Event::Phase(line) if line == "HwResetBus(0) (DISPATCH_LEVEL)"),
    );
    let timeout_at = events.iter().position(
        |event| matches!(event, Event::Finding(finding) if finding.rule == Rule::SrbTimeout),
    );
    assert!(
        timeout_at.is_some() && reset_at > timeout_at,
        "the bus is reset after the timeout: {events:?}"
    );
}

#[test]
fn an_srb_never_completed_is_reported_after_its_timeout() {
    BREAK.with(|b| b.set(Break::NeverComplete));
    let port = started_with_short_timeout();
    let result = port
        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("request");
    assert_eq!(
        result.srb_status,
        srb_status::PENDING,
        "no completion, no status"
    );
    assert_eq!(rules(&port), vec![Rule::SrbTimeout]);
}

#[test]
fn completion_from_a_timer_routine_is_accepted() {
    BREAK.with(|b| b.set(Break::CompleteFromTimer));
    let port = port();
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    let result = port
        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("INQUIRY");
    assert_eq!(result.status(), srb_status::SUCCESS);
    assert_eq!(&result.data[..4], &[0, 0, 5, 2]);
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn completion_from_a_dpc_is_accepted() {
    BREAK.with(|b| b.set(Break::CompleteFromDpc));
    let port = port();
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    let result = port
        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("INQUIRY");
    assert_eq!(result.status(), srb_status::SUCCESS);
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn completing_an_srb_the_port_never_started_is_reported() {
    assert_eq!(rules(&run(Break::CompleteForeign)), vec![Rule::ForeignSrb]);
}

#[test]
fn set_running_config_and_requests_after_stop() {
    BREAK.with(|b| b.set(Break::Nothing));
    let port = port();
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    assert_eq!(port.set_running_config(), Ok(0));
    assert_eq!(port.stop(), Ok(0));
    assert_eq!(
        port.execute((0, 0, 0), &[0, 0, 0, 0, 0, 0], &DataDirection::None),
        Err(PortError::NotStarted),
        "a stopped adapter takes no requests"
    );
    assert_eq!(port.restart(), Ok(0));
    assert!(
        port.execute((0, 0, 0), &[0, 0, 0, 0, 0, 0], &DataDirection::None)
            .is_ok()
    );
    port.remove().expect("remove");
    port.unload();
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn through_the_gate_a_host_linked_bug_check_ends_only_the_call() {
    BREAK.with(|b| b.set(Break::BugCheckInStartIo));
    assert!(exports::bind_host().is_empty());
    let options = PortOptions {
        service: "testmp".to_owned(),
        ..PortOptions::default()
    };
    let port = Port::new(
        driver_entry as *const () as usize,
        Arc::new(storport_emu::port::cpu::GateCpu::default()),
        options,
        None,
    );
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    let result = port.execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36));
    assert!(matches!(result, Err(PortError::BugCheck(_))), "{result:?}");
    assert!(port.bugchecked());
    let findings = port.findings();
    assert_eq!(rules(&port), vec![Rule::KeBugCheck]);
    assert_eq!(findings[0].bugcheck, Some(0xDEAD));
    assert_eq!(findings[0].params, vec![1, 2, 3, 4]);
    assert_eq!(findings[0].routine, "HwStartIo");
}

#[test]
fn adapter_scope_follows_the_adapter_number() {
    BREAK.with(|b| b.set(Break::Nothing));
    assert!(exports::bind_host().is_empty());
    let options = PortOptions {
        service: "testmp".to_owned(),
        adapter_number: 3,
        ..PortOptions::default()
    };
    let port = Port::new(
        driver_entry as *const () as usize,
        Arc::new(DirectCpu),
        options,
        None,
    );
    port.registry().registry.set_value(
        r"Services\testmp\Parameters\Device",
        "DiskCount",
        RegValue::dword(5),
    );
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    let registry = &port.registry().registry;
    assert_eq!(
        registry.value(r"Services\testmp\Parameters\Device3", "Echo"),
        Some(&RegValue::dword(105))
    );
    assert_eq!(
        registry.value(r"Services\testmp\Parameters\Device0", "Echo"),
        None
    );
}

#[test]
fn write_past_the_smallest_supported_type_list_is_reported() {
    use storport_emu::port::adapter::SMALLEST_MAX_CONTROL_TYPE;

    BREAK.with(|b| b.set(Break::ControlListOverrun));
    assert!(exports::bind_host().is_empty());
    let port = Port::new(
        driver_entry as *const () as usize,
        Arc::new(DirectCpu),
        PortOptions {
            service: "testmp".to_owned(),
            max_control_type: SMALLEST_MAX_CONTROL_TYPE,
            ..PortOptions::default()
        },
        None,
    );
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    let findings: Vec<(Rule, Vec<u64>)> = port
        .findings()
        .into_iter()
        .map(|finding| (finding.rule, finding.params))
        .collect();
    assert_eq!(
        findings,
        vec![(Rule::SupportedTypeListOverrun, vec![0x0D, 0x0D])],
        "Windows 8's list has 13 entries; entry 13 is past it"
    );
}
