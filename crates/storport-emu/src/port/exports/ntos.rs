//! `ntoskrnl.exe` and `hal.dll` exports.

use super::{VaArgs, printf, ulong, variadic_shim};
use crate::port::context;
use crate::port::mem;
use crate::port::model;
use crate::port::state::lock;

/// `POOL_FLAG_UNINITIALIZED`.
const POOL_FLAG_UNINITIALIZED: u64 = 0x2;

/// Exports of `ntoskrnl.exe`.
pub const NAMES: &[&str] = &[
    "DbgPrint",
    "DbgPrintEx",
    "vDbgPrintEx",
    "ExAllocatePool2",
    "ExAllocatePoolWithTag",
    "ExAllocatePool",
    "ExFreePoolWithTag",
    "ExFreePool",
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "strlen",
    "RtlCompareMemory",
    "RtlCopyMemory",
    "RtlZeroMemory",
    "KeBugCheckEx",
    "KeStallExecutionProcessor",
    "KeQueryPerformanceCounter",
    "__C_specific_handler",
    "RtlInitUnicodeString",
    "RtlInitAnsiString",
    "KeQuerySystemTimePrecise",
    "KeQueryTimeIncrement",
    "MmGetSystemRoutineAddress",
    "KeDelayExecutionThread",
    "_vsnprintf",
    "_snprintf",
    "MmGetPhysicalMemoryRangesEx2",
];

/// Exports of `hal.dll`.
pub const HAL_NAMES: &[&str] = &["KeStallExecutionProcessor", "KeQueryPerformanceCounter"];

/// Address of the `ntoskrnl.exe` export `name`.
pub fn lookup(name: &str) -> Option<usize> {
    Some(match name {
        "DbgPrint" => dbg_print_shim as *const () as usize,
        "DbgPrintEx" => dbg_print_ex_shim as *const () as usize,
        "vDbgPrintEx" => v_dbg_print_ex as *const () as usize,
        "ExAllocatePool2" => ex_allocate_pool2 as *const () as usize,
        "ExAllocatePoolWithTag" => ex_allocate_pool_with_tag as *const () as usize,
        "ExAllocatePool" => ex_allocate_pool as *const () as usize,
        "ExFreePoolWithTag" => ex_free_pool_with_tag as *const () as usize,
        "ExFreePool" => ex_free_pool as *const () as usize,
        "memcpy" | "memmove" | "RtlCopyMemory" => memmove as *const () as usize,
        "memset" => memset as *const () as usize,
        "RtlZeroMemory" => rtl_zero_memory as *const () as usize,
        "memcmp" => memcmp as *const () as usize,
        "strlen" => strlen as *const () as usize,
        "RtlCompareMemory" => rtl_compare_memory as *const () as usize,
        "KeBugCheckEx" => ke_bug_check_ex as *const () as usize,
        "KeQueryPerformanceCounter" => ke_query_performance_counter as *const () as usize,
        "__C_specific_handler" => c_specific_handler as *const () as usize,
        "RtlInitUnicodeString" => rtl_init_unicode_string as *const () as usize,
        "RtlInitAnsiString" => rtl_init_ansi_string as *const () as usize,
        "KeQuerySystemTimePrecise" => ke_query_system_time_precise as *const () as usize,
        "KeQueryTimeIncrement" => ke_query_time_increment as *const () as usize,
        "MmGetSystemRoutineAddress" => mm_get_system_routine_address as *const () as usize,
        "KeDelayExecutionThread" => ke_delay_execution_thread as *const () as usize,
        "_vsnprintf" => vsnprintf as *const () as usize,
        "_snprintf" => snprintf_shim as *const () as usize,
        "MmGetPhysicalMemoryRangesEx2" => mm_get_physical_memory_ranges_ex2 as *const () as usize,
        _ => return super::spinlock::lookup(name).or_else(|| lookup_hal(name)),
    })
}

/// Address of the `hal.dll` export `name`.
pub fn lookup_hal(name: &str) -> Option<usize> {
    Some(match name {
        "KeStallExecutionProcessor" => ke_stall_execution_processor as *const () as usize,
        "KeQueryPerformanceCounter" => ke_query_performance_counter as *const () as usize,
        _ => return None,
    })
}

fn print(format: u64, args: &mut impl printf::ArgSource) {
    let Some((shared, _, _)) = context::current() else {
        return;
    };
    let Some(format) = mem::read_cstr(format as usize, 4096) else {
        return;
    };
    let text = printf::format(&format, args);
    shared.debug_output(&text);
}

variadic_shim!(dbg_print_shim => dbg_print);

extern "win64" fn dbg_print(args: *const u64) -> u64 {
    // SAFETY: DbgPrint(Format, ...): the shim passes the caller's slots and
    // the format says how many follow.
    let args = unsafe { VaArgs::new(args) };
    print(args.get(0), &mut args.from(1));
    0
}

variadic_shim!(dbg_print_ex_shim => dbg_print_ex);

extern "win64" fn dbg_print_ex(args: *const u64) -> u64 {
    // SAFETY: DbgPrintEx(ComponentId, Level, Format, ...), as for DbgPrint.
    let args = unsafe { VaArgs::new(args) };
    print(args.get(2), &mut args.from(3));
    0
}

/// `vDbgPrintEx(ComponentId, Level, Format, va_list)`: an x64 `va_list` is a
/// pointer to the argument slots.
unsafe extern "win64" fn v_dbg_print_ex(
    _component: u64,
    _level: u64,
    format: u64,
    arguments: u64,
) -> u64 {
    let mut index = 0_usize;
    let mut source = std::iter::from_fn(|| {
        let value = mem::read_u64(arguments as usize + index * 8);
        index += 1;
        value
    });
    print(format, &mut source);
    0
}

unsafe extern "win64" fn ex_allocate_pool2(flags: u64, size: u64, tag: u64) -> u64 {
    let Some((shared, routine, irql)) = context::current() else {
        return 0;
    };
    let zeroed = flags & POOL_FLAG_UNINITIALIZED == 0;
    model::pool_allocate(
        &shared,
        routine,
        irql,
        "ExAllocatePool2",
        size as usize,
        ulong(tag),
        zeroed,
    )
    .map_or(0, |a| a as u64)
}

unsafe extern "win64" fn ex_allocate_pool_with_tag(_pool_type: u64, size: u64, tag: u64) -> u64 {
    let Some((shared, routine, irql)) = context::current() else {
        return 0;
    };
    model::pool_allocate(
        &shared,
        routine,
        irql,
        "ExAllocatePoolWithTag",
        size as usize,
        ulong(tag),
        false,
    )
    .map_or(0, |a| a as u64)
}

unsafe extern "win64" fn ex_allocate_pool(_pool_type: u64, size: u64) -> u64 {
    let Some((shared, routine, irql)) = context::current() else {
        return 0;
    };
    model::pool_allocate(
        &shared,
        routine,
        irql,
        "ExAllocatePool",
        size as usize,
        u32::from_le_bytes(*b"None"),
        false,
    )
    .map_or(0, |a| a as u64)
}

unsafe extern "win64" fn ex_free_pool_with_tag(address: u64, _tag: u64) {
    let Some((shared, routine, _)) = context::current() else {
        return;
    };
    model::pool_free(&shared, routine, "ExFreePoolWithTag", address as usize);
}

unsafe extern "win64" fn ex_free_pool(address: u64) {
    let Some((shared, routine, _)) = context::current() else {
        return;
    };
    model::pool_free(&shared, routine, "ExFreePool", address as usize);
}

const unsafe extern "win64" fn memmove(destination: u64, source: u64, count: u64) -> u64 {
    if count > 0 {
        // SAFETY: the C contract of memmove: both ranges are valid for
        // `count` bytes; `copy` allows overlap. A bad pointer faults as the
        // kernel's memmove would.
        unsafe { std::ptr::copy(source as *const u8, destination as *mut u8, count as usize) };
    }
    destination
}

const unsafe extern "win64" fn memset(destination: u64, value: u64, count: u64) -> u64 {
    if count > 0 {
        // SAFETY: the C contract of memset: the range is valid for writes.
        unsafe {
            std::ptr::write_bytes(destination as *mut u8, (value & 0xFF) as u8, count as usize);
        }
    }
    destination
}

const unsafe extern "win64" fn rtl_zero_memory(destination: u64, count: u64) {
    // SAFETY: the RtlZeroMemory contract: the range is valid for writes.
    unsafe { memset(destination, 0, count) };
}

unsafe extern "win64" fn memcmp(left: u64, right: u64, count: u64) -> i32 {
    if count == 0 {
        return 0;
    }
    // SAFETY: the C contract of memcmp: both ranges are readable.
    let a = unsafe { std::slice::from_raw_parts(left as *const u8, count as usize) };
    // SAFETY: as above.
    let b = unsafe { std::slice::from_raw_parts(right as *const u8, count as usize) };
    a.iter()
        .zip(b)
        .find(|(x, y)| x != y)
        .map_or(0, |(x, y)| i32::from(*x) - i32::from(*y))
}

unsafe extern "win64" fn rtl_compare_memory(left: u64, right: u64, count: u64) -> u64 {
    if count == 0 {
        return 0;
    }
    // SAFETY: the RtlCompareMemory contract: both ranges are readable.
    let a = unsafe { std::slice::from_raw_parts(left as *const u8, count as usize) };
    // SAFETY: as above.
    let b = unsafe { std::slice::from_raw_parts(right as *const u8, count as usize) };
    a.iter().zip(b).take_while(|(x, y)| x == y).count() as u64
}

unsafe extern "win64" fn strlen(text: u64) -> u64 {
    mem::read_cstr(text as usize, usize::MAX >> 1).map_or(0, |b| b.len() as u64)
}

unsafe extern "win64" fn ke_bug_check_ex(code: u64, p1: u64, p2: u64, p3: u64, p4: u64) -> u64 {
    model::bug_check(ulong(code), [p1, p2, p3, p4])
}

unsafe extern "win64" fn ke_stall_execution_processor(micros: u64) {
    model::stall("KeStallExecutionProcessor", ulong(micros));
}

unsafe extern "win64" fn ke_query_performance_counter(frequency: u64) -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    if frequency != 0 {
        let _ = mem::write(frequency as usize, &10_000_000_u64.to_le_bytes());
    }
    u64::try_from(start.elapsed().as_nanos() / 100).unwrap_or(u64::MAX)
}

/// `__C_specific_handler`: storemu does not run structured exception
/// handlers; every frame answers `ExceptionContinueSearch`.
const unsafe extern "win64" fn c_specific_handler(
    _record: u64,
    _frame: u64,
    _context: u64,
    _dispatcher: u64,
) -> u64 {
    1
}

/// `RtlInitUnicodeString` / `RtlInitAnsiString`: Length, MaximumLength, Buffer.
fn init_counted_string(destination: u64, source: u64, unit: usize) {
    let units = if source == 0 {
        0
    } else if unit == 2 {
        mem::read_wstr(source as usize, 0x7FFE).map_or(0, |s| s.len())
    } else {
        mem::read_cstr(source as usize, 0xFFFE).map_or(0, |s| s.len())
    };
    let length = u16::try_from(units * unit).unwrap_or(u16::MAX - 1);
    let maximum = if source == 0 {
        0
    } else {
        length.saturating_add(u16::try_from(unit).unwrap_or(1))
    };
    let mut header = [0_u8; 16];
    header[..2].copy_from_slice(&length.to_le_bytes());
    header[2..4].copy_from_slice(&maximum.to_le_bytes());
    header[8..].copy_from_slice(&source.to_le_bytes());
    let _ = mem::write(destination as usize, &header);
}

unsafe extern "win64" fn rtl_init_unicode_string(destination: u64, source: u64) {
    init_counted_string(destination, source, 2);
}

unsafe extern "win64" fn rtl_init_ansi_string(destination: u64, source: u64) {
    init_counted_string(destination, source, 1);
}

/// 100-ns intervals between 1601-01-01 and 1970-01-01.
const EPOCH_1601: u64 = 116_444_736_000_000_000;

unsafe extern "win64" fn ke_query_system_time_precise(time: u64) {
    let since_1970 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let now = EPOCH_1601 + u64::try_from(since_1970.as_nanos() / 100).unwrap_or(0);
    let _ = mem::write(time as usize, &now.to_le_bytes());
}

/// `KeQueryTimeIncrement`: the clock tick in 100-ns units (15.625 ms).
const unsafe extern "win64" fn ke_query_time_increment() -> u64 {
    156_250
}

/// `MmGetSystemRoutineAddress(UNICODE_STRING*)`: the emulated export of
/// that name in `ntoskrnl.exe` or `hal.dll`, or NULL.
unsafe extern "win64" fn mm_get_system_routine_address(name: u64) -> u64 {
    let Some(header) = mem::read(name as usize, 16) else {
        return 0;
    };
    let length = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let buffer = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
    let Some(bytes) = mem::read(buffer as usize, length & !1) else {
        return 0;
    };
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    let routine = String::from_utf16_lossy(&units);
    lookup(&routine)
        .or_else(|| lookup_hal(&routine))
        .map_or(0, |a| a as u64)
}

/// `KeDelayExecutionThread(WaitMode, Alertable, Interval*)`: a wait, legal
/// only at or below APC_LEVEL and never in HwStartIo.
unsafe extern "win64" fn ke_delay_execution_thread(
    _mode: u64,
    _alertable: u64,
    interval: u64,
) -> u64 {
    let ticks = mem::read_u64(interval as usize).map_or(0, u64::cast_signed);
    // Negative: relative, in 100-ns units; positive (absolute) is treated as no wait.
    let micros = if ticks < 0 {
        ticks.unsigned_abs() / 10
    } else {
        0
    };
    if let Some((shared, routine, irql)) = context::current()
        && (routine == context::Routine::StartIo || irql > 1)
    {
        shared.violation(
            crate::port::rules::Rule::NoWaitInStartIo,
            routine,
            vec![micros, u64::from(irql)],
            format!(
                "KeDelayExecutionThread ({micros} microseconds) was called in {} at IRQL {irql}; waits are not allowed there.",
                routine.name()
            ),
        );
    }
    std::thread::sleep(std::time::Duration::from_micros(micros.min(1_000_000)));
    0
}

/// Writes `text` into a `count`-byte buffer as `_vsnprintf` does: no
/// terminator when it does not fit, -1 then.
fn store_formatted(buffer: u64, count: u64, text: &str) -> i64 {
    let bytes = text.as_bytes();
    let count = usize::try_from(count).unwrap_or(0);
    if bytes.len() < count {
        let mut with_nul = bytes.to_vec();
        with_nul.push(0);
        let _ = mem::write(buffer as usize, &with_nul);
        i64::try_from(bytes.len()).unwrap_or(-1)
    } else {
        let _ = mem::write(buffer as usize, &bytes[..count]);
        if bytes.len() == count {
            i64::try_from(count).unwrap_or(-1)
        } else {
            -1
        }
    }
}

unsafe extern "win64" fn vsnprintf(buffer: u64, count: u64, format: u64, arguments: u64) -> i64 {
    let Some(format) = mem::read_cstr(format as usize, 4096) else {
        return -1;
    };
    let mut index = 0_usize;
    let mut source = std::iter::from_fn(|| {
        let value = mem::read_u64(arguments as usize + index * 8);
        index += 1;
        value
    });
    let text = printf::format(&format, &mut source);
    store_formatted(buffer, count, &text)
}

variadic_shim!(snprintf_shim => snprintf);

extern "win64" fn snprintf(args: *const u64) -> u64 {
    // SAFETY: _snprintf(Buffer, Count, Format, ...): the shim passes the
    // caller's slots and the format says how many follow.
    let args = unsafe { VaArgs::new(args) };
    let Some(format) = mem::read_cstr(args.get(2) as usize, 4096) else {
        return u64::MAX;
    };
    let (buffer, count) = (args.get(0), args.get(1));
    let text = printf::format(&format, &mut args.from(3));
    store_formatted(buffer, count, &text).cast_unsigned()
}

/// `MmGetPhysicalMemoryRangesEx2(PartitionObject, Flags)`: a pool block of
/// the caller's holding one `PHYSICAL_MEMORY_RANGE` (`0`, the physical
/// memory model's size) and the all-zero entry that ends the array; NULL
/// when the pool cannot hold it. See [`crate::port::physmem`].
unsafe extern "win64" fn mm_get_physical_memory_ranges_ex2(_partition: u64, _flags: u64) -> u64 {
    let Some((shared, routine, irql)) = context::current() else {
        return 0;
    };
    let physical_bytes = lock(&shared.pool).config().memory.physical_bytes;
    let Some(block) = model::pool_allocate(
        &shared,
        routine,
        irql,
        "MmGetPhysicalMemoryRangesEx2",
        32,
        crate::port::physmem::RANGES_TAG,
        true,
    ) else {
        return 0;
    };
    let mut ranges = [0_u8; 32];
    ranges[8..16].copy_from_slice(&physical_bytes.to_le_bytes());
    let _ = mem::write(block, &ranges);
    block as u64
}
