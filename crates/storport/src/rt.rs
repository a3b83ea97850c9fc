//! Kernel runtime pieces a `no_std` driver needs: the panic handler.

/// Bug check code vstor raises on a Rust panic (`'VSTP'` read as ASCII is
/// not a Microsoft code, so a crash dump points at the driver at once).
pub const PANIC_BUGCHECK_CODE: u32 = 0x5653_5450;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let line = info
        .location()
        .map_or(0, |location| location.line() as usize);
    // SAFETY: KeBugCheckEx may be called at any IRQL and never returns.
    unsafe { storport_sys::KeBugCheckEx(PANIC_BUGCHECK_CODE, line, 0, 0, 0) }
}
