//! `storport.sys` exports.

use std::sync::Arc;

use super::{VaArgs, printf, ulong, variadic_shim};
use crate::port::context::{self, Routine};
use crate::port::mem;
use crate::port::model;
use crate::port::rules::Rule;
use crate::port::state::{Shared, lock};
use crate::registry::FreeError;

/// `STOR_STATUS_SUCCESS`.
const STOR_STATUS_SUCCESS: u64 = 0;
/// `STOR_STATUS_NOT_IMPLEMENTED`.
const STOR_STATUS_NOT_IMPLEMENTED: u64 = 0xC100_0002;
/// `STOR_STATUS_INSUFFICIENT_RESOURCES`.
const STOR_STATUS_INSUFFICIENT_RESOURCES: u64 = 0xC100_0003;
/// `STOR_STATUS_INVALID_PARAMETER`.
const STOR_STATUS_INVALID_PARAMETER: u64 = 0xC100_0006;

/// Exports of this module.
pub const NAMES: &[&str] = &[
    "StorPortInitialize",
    "StorPortNotification",
    "StorPortAllocateRegistryBuffer",
    "StorPortFreeRegistryBuffer",
    "StorPortRegistryRead",
    "StorPortRegistryWrite",
    "StorPortStallExecution",
    "StorPortGetSystemAddress",
    "StorPortDebugPrint",
    "StorPortExtendedFunction",
    "StorPortGetDeviceBase",
    "StorPortFreeDeviceBase",
    "StorPortMoveMemory",
    "StorPortLogError",
    "StorPortGetLogicalUnit",
    "StorPortGetUncachedExtension",
];

/// Address of the export `name`.
pub fn lookup(name: &str) -> Option<usize> {
    Some(match name {
        "StorPortInitialize" => storport_initialize as *const () as usize,
        "StorPortNotification" => notification_shim as *const () as usize,
        "StorPortAllocateRegistryBuffer" => allocate_registry_buffer as *const () as usize,
        "StorPortFreeRegistryBuffer" => free_registry_buffer as *const () as usize,
        "StorPortRegistryRead" => registry_read as *const () as usize,
        "StorPortRegistryWrite" => registry_write as *const () as usize,
        "StorPortStallExecution" => stall_execution as *const () as usize,
        "StorPortGetSystemAddress" => get_system_address as *const () as usize,
        "StorPortDebugPrint" => debug_print_shim as *const () as usize,
        "StorPortExtendedFunction" => extended_function_shim as *const () as usize,
        "StorPortGetDeviceBase" => get_device_base as *const () as usize,
        "StorPortFreeDeviceBase" => free_device_base as *const () as usize,
        "StorPortMoveMemory" => move_memory as *const () as usize,
        "StorPortLogError" => log_error as *const () as usize,
        "StorPortGetLogicalUnit" => get_logical_unit as *const () as usize,
        "StorPortGetUncachedExtension" => get_uncached_extension as *const () as usize,
        _ => return None,
    })
}

fn current() -> Option<(Arc<Shared>, Routine, u8)> {
    context::current()
}

unsafe extern "win64" fn storport_initialize(
    argument1: u64,
    argument2: u64,
    init: u64,
    _context: u64,
) -> u32 {
    let Some((shared, routine, _)) = current() else {
        return model::STATUS_INVALID_PARAMETER;
    };
    model::register(&shared, routine, argument1, argument2, init)
}

/// Registry calls are documented for PASSIVE_LEVEL only (SDV StorPortIrql).
/// SDV judges the routine, not one run of it: HwStartIo may run at
/// DISPATCH_LEVEL (HW_STARTIO), so a call from it is refused even when this
/// run happens to be at PASSIVE_LEVEL (`--seed`).
fn registry_irql_ok(shared: &Shared, routine: Routine, irql: u8, export: &str) -> bool {
    if irql == 0 && routine != Routine::StartIo {
        return true;
    }
    shared.violation(
        Rule::RegistryIrql,
        routine,
        vec![u64::from(irql)],
        format!("{export} was called at IRQL {irql} from {}, which Storport may call above PASSIVE_LEVEL; it may only be called at PASSIVE_LEVEL, so the call failed.", routine.name()),
    );
    false
}

unsafe extern "win64" fn allocate_registry_buffer(_extension: u64, length: u64) -> u64 {
    let Some((shared, routine, irql)) = current() else {
        return 0;
    };
    let length = length as usize;
    let Some(wanted) = mem::read_u32(length) else {
        return 0;
    };
    if !registry_irql_ok(&shared, routine, irql, "StorPortAllocateRegistryBuffer") {
        return 0;
    }
    if shared.inject_fault("StorPortAllocateRegistryBuffer", routine) {
        return 0;
    }
    let allocated = lock(&shared.registry).allocate(wanted);
    match allocated {
        Some((address, size)) => {
            let _ = mem::write(length, &size.to_le_bytes());
            address as u64
        }
        None => 0,
    }
}

unsafe extern "win64" fn free_registry_buffer(_extension: u64, buffer: u64) {
    let Some((shared, routine, irql)) = current() else {
        return;
    };
    if !registry_irql_ok(&shared, routine, irql, "StorPortFreeRegistryBuffer") {
        return;
    }
    let result = lock(&shared.registry).free(buffer as usize);
    if let Err(error) = result {
        buffer_misuse(
            &shared,
            routine,
            "StorPortFreeRegistryBuffer",
            buffer,
            error,
        );
    }
}

fn buffer_misuse(shared: &Shared, routine: Routine, export: &str, buffer: u64, error: FreeError) {
    let rule = match error {
        FreeError::DoubleFree(_) => Rule::RegistryBufferDoubleFree,
        _ => Rule::RegistryBufferForeign,
    };
    shared.violation(
        rule,
        routine,
        vec![buffer],
        format!("{export} was called with {buffer:#x}, but {error}; the call failed."),
    );
}

fn value_name(address: u64) -> Option<Vec<u8>> {
    mem::read_cstr(usize::try_from(address).ok()?, 256)
}

unsafe extern "win64" fn registry_read(
    _extension: u64,
    name: u64,
    global: u64,
    value_type: u64,
    buffer: u64,
    length: u64,
) -> u8 {
    let Some((shared, routine, irql)) = current() else {
        return 0;
    };
    let length = length as usize;
    let Some(capacity) = mem::read_u32(length) else {
        return 0;
    };
    let fail = |needed: u32| {
        let _ = mem::write(length, &needed.to_le_bytes());
        0
    };
    if !registry_irql_ok(&shared, routine, irql, "StorPortRegistryRead") {
        return fail(0);
    }
    if shared.inject_fault("StorPortRegistryRead", routine) {
        return fail(0);
    }
    let Some(name) = value_name(name) else {
        return fail(0);
    };
    let outcome = lock(&shared.registry).read(
        buffer as usize,
        &name,
        ulong(global),
        ulong(value_type),
        capacity,
    );
    match outcome {
        Ok(outcome) => {
            let (ok, written) = outcome.returned();
            let _ = mem::write(length, &written.to_le_bytes());
            u8::from(ok)
        }
        Err(error) => {
            buffer_misuse(&shared, routine, "StorPortRegistryRead", buffer, error);
            fail(0)
        }
    }
}

unsafe extern "win64" fn registry_write(
    _extension: u64,
    name: u64,
    global: u64,
    value_type: u64,
    buffer: u64,
    length: u64,
) -> u8 {
    let Some((shared, routine, irql)) = current() else {
        return 0;
    };
    if !registry_irql_ok(&shared, routine, irql, "StorPortRegistryWrite") {
        return 0;
    }
    if shared.inject_fault("StorPortRegistryWrite", routine) {
        return 0;
    }
    let Some(name) = value_name(name) else {
        return 0;
    };
    let result = lock(&shared.registry).write(
        buffer as usize,
        &name,
        ulong(global),
        ulong(value_type),
        ulong(length),
    );
    match result {
        Ok(()) => 1,
        Err(Err(error)) => {
            buffer_misuse(&shared, routine, "StorPortRegistryWrite", buffer, error);
            0
        }
        Err(Ok(_refused)) => 0,
    }
}

unsafe extern "win64" fn stall_execution(delay: u64) {
    model::stall("StorPortStallExecution", ulong(delay));
}

unsafe extern "win64" fn get_system_address(_extension: u64, srb: u64) -> u64 {
    // With the port's buffers DataBuffer is already a system address.
    mem::read_u64(srb as usize + 0x18).unwrap_or(0)
}

const unsafe extern "win64" fn get_device_base(
    _e: u64,
    _b: u64,
    _s: u64,
    _a: u64,
    _l: u64,
    _i: u64,
) -> u64 {
    0
}

const unsafe extern "win64" fn free_device_base(_e: u64, _b: u64) {}

unsafe extern "win64" fn move_memory(destination: u64, source: u64, length: u64) {
    if let Some(bytes) = mem::read(source as usize, ulong(length) as usize) {
        let _ = mem::write(destination as usize, &bytes);
    }
}

unsafe extern "win64" fn log_error(
    _e: u64,
    _srb: u64,
    _p: u64,
    _t: u64,
    _l: u64,
    error_code: u64,
    unique_id: u64,
) {
    if let Some((shared, _, _)) = current() {
        shared.phase(format!(
            "StorPortLogError: error code {:#x}, unique id {:#x}",
            ulong(error_code),
            ulong(unique_id)
        ));
    }
}

const unsafe extern "win64" fn get_logical_unit(_e: u64, _p: u64, _t: u64, _l: u64) -> u64 {
    0
}

const unsafe extern "win64" fn get_uncached_extension(_e: u64, _c: u64, _n: u64) -> u64 {
    0
}

variadic_shim!(notification_shim => notification);

extern "win64" fn notification(args: *const u64) -> u64 {
    // SAFETY: called only from the shim with the caller's argument slots;
    // StorPortNotification has at least two and each type reads only the
    // slots its documented form passes.
    let args = unsafe { VaArgs::new(args) };
    let Some((shared, routine, irql)) = current() else {
        return 0;
    };
    model::notification(&shared, routine, irql, &args);
    0
}

variadic_shim!(debug_print_shim => debug_print);

extern "win64" fn debug_print(args: *const u64) -> u64 {
    // SAFETY: StorPortDebugPrint(DebugPrintLevel, Format, ...): the shim
    // passes the caller's slots, and the format names how many follow.
    let args = unsafe { VaArgs::new(args) };
    let Some((shared, _, _)) = current() else {
        return 0;
    };
    let Some(format) = mem::read_cstr(args.get(1) as usize, 4096) else {
        return 0;
    };
    let text = printf::format(&format, &mut args.from(2));
    shared.debug_output(&text);
    0
}

variadic_shim!(extended_function_shim => extended_function);

extern "win64" fn extended_function(args: *const u64) -> u64 {
    // SAFETY: StorPortExtendedFunction(FunctionCode, HwDeviceExtension, ...):
    // the shim passes the caller's slots; each function code reads only the
    // slots its documented routine passes.
    let args = unsafe { VaArgs::new(args) };
    let Some((shared, routine, irql)) = current() else {
        return STOR_STATUS_INVALID_PARAMETER;
    };
    match ulong(args.get(0)) {
        // ExtFunctionAllocatePool(NumberOfBytes, Tag, BufferPointer*)
        0 => {
            let out = args.get(4) as usize;
            if out == 0 {
                return STOR_STATUS_INVALID_PARAMETER;
            }
            let allocated = model::pool_allocate(
                &shared,
                routine,
                irql,
                "StorPortAllocatePool",
                ulong(args.get(2)) as usize,
                ulong(args.get(3)),
                true,
            );
            let _ = mem::write(out, &(allocated.unwrap_or(0) as u64).to_le_bytes());
            if allocated.is_some() {
                STOR_STATUS_SUCCESS
            } else {
                STOR_STATUS_INSUFFICIENT_RESOURCES
            }
        }
        // ExtFunctionFreePool(BufferPointer)
        1 => {
            let address = args.get(2);
            if address == 0 {
                return STOR_STATUS_INVALID_PARAMETER;
            }
            model::pool_free(&shared, routine, "StorPortFreePool", address as usize);
            STOR_STATUS_SUCCESS
        }
        // ExtFunctionAllocateMdl(BufferPointer, NumberOfBytes, Mdl*)
        2 => {
            let out = args.get(4) as usize;
            if out == 0 || args.get(2) == 0 {
                return STOR_STATUS_INVALID_PARAMETER;
            }
            model::mdl_allocate(&shared, routine, args.get(2), ulong(args.get(3))).map_or(
                STOR_STATUS_INSUFFICIENT_RESOURCES,
                |mdl| {
                    let _ = mem::write(out, &(mdl as u64).to_le_bytes());
                    STOR_STATUS_SUCCESS
                },
            )
        }
        // ExtFunctionFreeMdl(Mdl)
        3 => {
            model::pool_free(&shared, routine, "StorPortFreeMdl", args.get(2) as usize);
            STOR_STATUS_SUCCESS
        }
        // ExtFunctionBuildMdlForNonPagedPool(Mdl): the MDL already describes it.
        4 => STOR_STATUS_SUCCESS,
        // ExtFunctionGetSystemAddress(Srb, SystemAddress*)
        5 => {
            let data = mem::read_u64(args.get(2) as usize + 0x18).unwrap_or(0);
            if mem::write(args.get(3) as usize, &data.to_le_bytes()) {
                STOR_STATUS_SUCCESS
            } else {
                STOR_STATUS_INVALID_PARAMETER
            }
        }
        // ExtFunctionGetCurrentProcessorNumber(PROCESSOR_NUMBER*): group 0, processor 0.
        17 => {
            if mem::write(args.get(2) as usize, &[0_u8; 4]) {
                STOR_STATUS_SUCCESS
            } else {
                STOR_STATUS_INVALID_PARAMETER
            }
        }
        // ExtFunctionGetActiveGroupCount(USHORT*)
        18 => {
            if mem::write(args.get(2) as usize, &1_u16.to_le_bytes()) {
                STOR_STATUS_SUCCESS
            } else {
                STOR_STATUS_INVALID_PARAMETER
            }
        }
        _ => STOR_STATUS_NOT_IMPLEMENTED,
    }
}
