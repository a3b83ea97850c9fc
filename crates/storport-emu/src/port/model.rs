//! What the port does when driver code calls it: registration, completions
//! and notifications, pool, stalls and bug checks. The exports in
//! [`super::exports`] decode raw arguments and land here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use storport_sys::HW_INITIALIZATION_DATA;

use super::context::{self, Routine};
use super::exports::{VaArgs, ulong};
use super::locks;
use super::mem;
use super::physmem::{FailedAllocation, FailureCause};
use super::pool::{AllocError, Freed, tag_text};
use super::rules::{Finding, Rule};
use super::state::{InitRecord, Shared, TimerRequest, lock};

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: u32 = 0;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// `STATUS_REVISION_MISMATCH`.
pub const STATUS_REVISION_MISMATCH: u32 = 0xC000_0059;

/// `HwInitializationDataSize` values `StorPortInitialize` accepts.
///
/// `sizeof(HW_INITIALIZATION_DATA)` of Windows 8 and later (0xD0) and
/// `sizeof(VIRTUAL_HW_INITIALIZATION_DATA)` (0xB0). Older Storport sizes of
/// the physical structure describe miniports storemu does not emulate.
pub const ACCEPTED_INIT_SIZES: [u32; 2] = [0xD0, 0xB0];

/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;
/// The device IRQL the port uses for DIRQL callbacks.
pub const DIRQL: u8 = 5;
/// Longest stall Driver Verifier accepts, in microseconds (0.1 s).
pub const MAX_STALL_MICROS: u32 = 100_000;

/// `StorPortInitialize`: validates and records the init data.
pub fn register(
    shared: &Shared,
    routine: Routine,
    argument1: u64,
    argument2: u64,
    init: u64,
) -> u32 {
    if argument1 == 0 || argument2 == 0 || init == 0 {
        shared.phase("StorPortInitialize: a NULL argument; returned STATUS_INVALID_PARAMETER");
        return STATUS_INVALID_PARAMETER;
    }
    let Some(size) = mem::read_u32(init as usize) else {
        return STATUS_INVALID_PARAMETER;
    };
    if !ACCEPTED_INIT_SIZES.contains(&size) {
        shared.violation(
            Rule::InitDataRevision,
            routine,
            vec![u64::from(size)],
            format!("StorPortInitialize was given HwInitializationDataSize {size:#x}; expected 0xD0 (HW_INITIALIZATION_DATA) or 0xB0 (VIRTUAL_HW_INITIALIZATION_DATA), so it returned STATUS_REVISION_MISMATCH."),
        );
        return STATUS_REVISION_MISMATCH;
    }
    let Some(bytes) = mem::read(init as usize, size as usize) else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut full = [0_u8; size_of::<HW_INITIALIZATION_DATA>()];
    full[..bytes.len()].copy_from_slice(&bytes);
    // SAFETY: HW_INITIALIZATION_DATA is plain data (integers and nullable
    // function pointers); `full` has exactly its size.
    let data: HW_INITIALIZATION_DATA = unsafe { std::ptr::read_unaligned(full.as_ptr().cast()) };
    let mut problems = Vec::new();
    if data.AdapterInterfaceType != storport_sys::INTERFACE_TYPE_INTERNAL {
        problems.push(format!(
            "AdapterInterfaceType is {} instead of Internal (0)",
            data.AdapterInterfaceType
        ));
    }
    if size == 0xD0 && data.FeatureSupport & storport_sys::STOR_FEATURE_VIRTUAL_MINIPORT == 0 {
        problems.push("FeatureSupport lacks STOR_FEATURE_VIRTUAL_MINIPORT".to_owned());
    }
    for (present, name) in [
        (data.HwInitialize.is_some(), "HwInitialize"),
        (data.HwStartIo.is_some(), "HwStartIo"),
        (data.HwFindAdapter.is_some(), "HwFindAdapter"),
        (data.HwResetBus.is_some(), "HwResetBus"),
        (data.HwAdapterControl.is_some(), "HwAdapterControl"),
        (
            data.HwFreeAdapterResources.is_some(),
            "HwFreeAdapterResources",
        ),
    ] {
        if !present {
            problems.push(format!("the required {name} is NULL"));
        }
    }
    if data.HwProcessServiceRequest.is_some() && data.HwCompleteServiceIrp.is_none() {
        problems.push("HwProcessServiceRequest is set without HwCompleteServiceIrp".to_owned());
    }
    if data.HwInitializeTracing.is_some() && data.HwCleanupTracing.is_none() {
        problems.push("HwInitializeTracing is set without HwCleanupTracing".to_owned());
    }
    if !problems.is_empty() {
        shared.violation(
            Rule::InitDataInvalid,
            routine,
            vec![],
            format!("StorPortInitialize was given init data for a virtual miniport in which {}; it returned STATUS_INVALID_PARAMETER.", problems.join(", ")),
        );
        return STATUS_INVALID_PARAMETER;
    }
    *lock(&shared.init) = Some(InitRecord(data, size));
    shared.phase(format!(
        "StorPortInitialize: {} bytes of init data, device extension {} bytes, SRB extension {} bytes",
        size, data.DeviceExtensionSize, data.SrbExtensionSize
    ));
    STATUS_SUCCESS
}

/// `StorPortNotification`.
pub fn notification(shared: &Arc<Shared>, routine: Routine, _irql: u8, args: &VaArgs) {
    match ulong(args.get(0)) {
        0 => complete(shared, routine, args.get(2) as usize),
        3 => shared.phase("StorPortNotification(ResetDetected)"),
        6 => {
            let timer = args.get(2) as usize;
            let micros = u64::from(ulong(args.get(3)));
            *lock(&shared.timer) = (timer != 0 && micros != 0).then_some(TimerRequest {
                routine: timer,
                micros,
            });
        }
        7 => shared.phase("StorPortNotification(BusChangeDetected)"),
        // EnablePassiveInitialization(HwPassiveInitializeRoutine, BOOLEAN*)
        0x1000 => {
            *lock(&shared.passive_init) = Some(args.get(2) as usize);
            let _ = mem::write(args.get(3) as usize, &[1]);
        }
        // InitializeDpc(STOR_DPC*, HwDpcRoutine): the routine is kept in the DPC object.
        0x1001 => {
            let _ = mem::write(args.get(2) as usize, &args.get(3).to_le_bytes());
        }
        // IssueDpc(STOR_DPC*, SystemArgument1, SystemArgument2, BOOLEAN*)
        0x1002 => {
            let dpc = args.get(2);
            let routine_address = mem::read_u64(dpc as usize).unwrap_or(0);
            lock(&shared.dpcs).push_back([routine_address, dpc, args.get(3), args.get(4)]);
            let _ = mem::write(args.get(5) as usize, &[1]);
        }
        // AcquireSpinLock(STOR_SPINLOCK, LockContext, STOR_LOCK_HANDLE*)
        0x1003 => locks::storport_acquire(
            ulong(args.get(2)),
            args.get(3) as usize,
            args.get(4) as usize,
        ),
        // ReleaseSpinLock(STOR_LOCK_HANDLE*)
        0x1004 => locks::storport_release(args.get(2) as usize),
        other => shared.phase(format!(
            "StorPortNotification({other:#x}) is not emulated and was ignored"
        )),
    }
}

/// `RequestComplete`: the miniport hands an SRB back.
pub fn complete(shared: &Shared, routine: Routine, srb: usize) {
    let mut table = lock(&shared.srbs);
    let first = table.live_mut(srb).map(|record| {
        let first = !record.completed;
        record.completed = true;
        (first, record.supplied_len)
    });
    let (supplied, status, transferred) = match first {
        Some((true, supplied)) => {
            let (status, transferred) = table.live_status(srb).unwrap_or_default();
            (supplied, status, transferred)
        }
        Some((false, _)) => {
            drop(table);
            double_completion(shared, routine, srb);
            return;
        }
        None if table.is_retired(srb) => {
            drop(table);
            double_completion(shared, routine, srb);
            return;
        }
        None => {
            drop(table);
            shared.violation(
                Rule::ForeignSrb,
                routine,
                vec![srb as u64],
                format!("StorPortNotification(RequestComplete) named SRB {srb:#x}, which the port never started; the completion was ignored."),
            );
            return;
        }
    };
    drop(table);
    if status & 0x3F == storport_sys::srb_status::PENDING {
        shared.violation(
            Rule::StatusPending,
            routine,
            vec![srb as u64],
            format!("SRB {srb:#x} was completed with SRB_STATUS_PENDING, which is never a completion status."),
        );
    }
    if transferred > supplied {
        shared.violation(
            Rule::TransferLength,
            routine,
            vec![srb as u64, u64::from(transferred), u64::from(supplied)],
            format!("SRB {srb:#x} was completed with DataTransferLength {transferred}, larger than the {supplied}-byte buffer the port supplied."),
        );
    }
}

fn double_completion(shared: &Shared, routine: Routine, srb: usize) {
    shared.violation(
        Rule::DoubleCompletion,
        routine,
        vec![srb as u64],
        format!("SRB {srb:#x} was completed a second time with StorPortNotification(RequestComplete); the port already owned it."),
    );
}

/// Stalls (StorPortStallExecution / KeStallExecutionProcessor).
pub fn stall(export: &str, micros: u32) {
    if let Some((shared, routine, _)) = context::current() {
        if micros > MAX_STALL_MICROS {
            shared.violation(
                Rule::StallTooLong,
                routine,
                vec![u64::from(micros)],
                format!("{export} was asked to stall for {micros} microseconds; the limit is {MAX_STALL_MICROS} (0.1 s)."),
            );
        }
        if routine == Routine::StartIo {
            shared.violation(
                Rule::NoWaitInStartIo,
                routine,
                vec![u64::from(micros)],
                format!("{export} ({micros} microseconds) was called in HwStartIo, which must not stall or wait."),
            );
        }
    }
    std::thread::sleep(std::time::Duration::from_micros(u64::from(
        micros.min(MAX_STALL_MICROS),
    )));
}

/// Allocates pool for the driver.
pub fn pool_allocate(
    shared: &Shared,
    routine: Routine,
    irql: u8,
    export: &'static str,
    size: usize,
    tag: u32,
    zeroed: bool,
) -> Option<usize> {
    if routine == Routine::StartIo {
        shared.violation(
            Rule::NoWaitInStartIo,
            routine,
            vec![size as u64, u64::from(tag)],
            format!("{export} of {size} bytes with tag '{}' was called in HwStartIo (IRQL {irql}); HwStartIo must not allocate.", tag_text(tag)),
        );
    }
    let failure = |cause| FailedAllocation {
        export,
        size_bytes: size,
        tag,
        routine: routine.name().to_owned(),
        cause,
    };
    if shared.inject_fault(export, routine) {
        lock(&shared.pool).record_failure(failure(FailureCause::Injected));
        return None;
    }
    let mut pool = lock(&shared.pool);
    let result = pool.try_allocate(size, tag, zeroed, routine.name());
    let (cause, limit) = match result {
        Ok(address) => return Some(address),
        Err(AllocError::Exhausted { .. }) => (
            FailureCause::Exhausted,
            pool.config().memory.pool_limit_bytes(),
        ),
        Err(AllocError::Host) => (FailureCause::Host, 0),
    };
    pool.record_failure(failure(cause));
    drop(pool);
    let why = match result {
        Err(AllocError::Exhausted {
            needed_bytes,
            left_bytes,
        }) => format!(
            "it needs {needed_bytes} bytes of the physical memory model and the pool has {left_bytes} of its {limit} bytes left"
        ),
        _ => "the host could not provide the memory".to_owned(),
    };
    shared.phase(format!(
        "{export} of {size} bytes with tag '{}' in {} returned NULL: {why}.",
        tag_text(tag),
        routine.name()
    ));
    None
}

/// Frees driver pool, reporting frees of memory the pool does not own and
/// (special pool) bytes written next to the block while it was live.
pub fn pool_free(shared: &Shared, routine: Routine, export: &str, address: usize) {
    let result = lock(&shared.pool).free(address);
    match result {
        Err(_) => shared.violation(
            Rule::BadPoolFree,
            routine,
            vec![address as u64],
            format!("{export} was called with {address:#x}, which is not a live pool allocation (never allocated or already freed); the free was ignored."),
        ),
        Ok(Freed {
            block,
            corruption: Some(corruption),
        }) => {
            let side = if corruption.after_end {
                "after its end"
            } else {
                "before its start"
            };
            shared.report(Finding::bugcheck(
                Rule::SpecialPoolCorruption,
                super::memfault::SPECIAL_POOL_CORRUPTION,
                vec![
                    address as u64,
                    corruption.address as u64,
                    0,
                    corruption.violation_type(),
                ],
                routine.name(),
                format!(
                    "{export} freed the {}-byte pool block at {address:#x} with tag '{}' allocated in {}, and the special pool's pattern {side} changed at {:#x}: the driver wrote outside the block.",
                    block.size_bytes,
                    tag_text(block.tag),
                    block.routine,
                    corruption.address
                ),
            ));
        }
        Ok(_) => {}
    }
}

/// Builds an MDL describing `[buffer, buffer + length)` in pool.
pub fn mdl_allocate(shared: &Shared, routine: Routine, buffer: u64, length: u32) -> Option<usize> {
    let offset = buffer & 0xFFF;
    let pages = (offset + u64::from(length)).div_ceil(4096).max(1);
    let size = 0x30 + usize::try_from(pages).ok()? * 8;
    if shared.inject_fault("StorPortAllocateMdl", routine) {
        return None;
    }
    let mdl =
        lock(&shared.pool).allocate(size, u32::from_le_bytes(*b"SpMd"), true, routine.name())?;
    let mut header = [0_u8; 0x30];
    header[8..10].copy_from_slice(&u16::try_from(size).unwrap_or(u16::MAX).to_le_bytes());
    // MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL
    header[10..12].copy_from_slice(&0x0005_u16.to_le_bytes());
    header[0x18..0x20].copy_from_slice(&buffer.to_le_bytes());
    header[0x20..0x28].copy_from_slice(&(buffer & !0xFFF).to_le_bytes());
    header[0x28..0x2C].copy_from_slice(&length.to_le_bytes());
    header[0x2C..0x30].copy_from_slice(&u32::try_from(offset).unwrap_or(0).to_le_bytes());
    let _ = mem::write(mdl, &header);
    Some(mdl)
}

/// `KeBugCheckEx`: records the bug check and ends the current call.
pub fn bug_check(code: u32, params: [u64; 4]) -> ! {
    if let Some((shared, routine, _)) = context::current() {
        shared.report(Finding::bugcheck(
            Rule::KeBugCheck,
            code,
            params.to_vec(),
            routine.name(),
            format!(
                "The driver called KeBugCheckEx({code:#x}, {:#x}, {:#x}, {:#x}, {:#x}).",
                params[0], params[1], params[2], params[3]
            ),
        ));
        shared.bugchecked.store(true, Ordering::Release);
    }
    super::cpu::abort_current_call(
        code,
        params,
        format!("the driver called KeBugCheckEx({code:#x})"),
    )
}
