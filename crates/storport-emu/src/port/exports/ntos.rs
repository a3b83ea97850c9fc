//! `ntoskrnl.exe` and `hal.dll` exports.

use super::{VaArgs, printf, ulong, variadic_shim};
use crate::port::context;
use crate::port::mem;
use crate::port::model;

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
        _ => return lookup_hal(name),
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
