//! Kernel runtime pieces a `no_std` driver needs: the panic handler and the
//! global allocator.

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

/// Pool tag of the blocks behind `alloc` (`Vec`, `Box`): reads `RsAl` in
/// the pool tools.
pub const ALLOCATOR_POOL_TAG: u32 = u32::from_le_bytes(*b"RsAl");

/// The global allocator of a driver built on this crate: nonpaged pool.
///
/// Allocate only where pool allocation is allowed (find-adapter, PASSIVE
/// adapter control); start-io must not allocate (SDV `SpNoWait`).
struct PoolAllocator;

// SAFETY: every block comes from ExAllocatePool2, which on x64 returns
// blocks aligned to 16 bytes (larger alignments are refused with null), and
// goes back with ExFreePoolWithTag and the same tag.
unsafe impl core::alloc::GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: a plain nonpaged allocation; `alloc` callers do not rely
        // on zeroed memory.
        let block = unsafe {
            storport_sys::ExAllocatePool2(
                storport_sys::POOL_FLAG_NON_PAGED | storport_sys::POOL_FLAG_UNINITIALIZED,
                layout.size(),
                ALLOCATOR_POOL_TAG,
            )
        };
        block.cast()
    }

    unsafe fn dealloc(&self, block: *mut u8, _layout: core::alloc::Layout) {
        // SAFETY: `block` came from `alloc` above, with this tag, and the
        // caller frees it once.
        unsafe { storport_sys::ExFreePoolWithTag(block.cast(), ALLOCATOR_POOL_TAG) }
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;
