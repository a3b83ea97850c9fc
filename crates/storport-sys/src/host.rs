//! Host binding of the imports (non-Windows targets only).
//!
//! Code built for the host — the safe layer's tests, a driver linked into a
//! test process — calls the same import names as on Windows. Here each one
//! forwards through this table, which an emulated port driver fills with its
//! exports by calling [`bind`]. Nothing here exists in a Windows build.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::imports::{IMPORTS, Import};

static TABLE: [AtomicPtr<c_void>; IMPORTS.len()] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; IMPORTS.len()];

/// Binds every import to the address `resolve(module, name)` returns.
///
/// Imports `resolve` does not know stay unbound; their names are returned as
/// `module!name` so the caller can report all of them at once.
///
/// # Safety
///
/// Every address returned must be an `extern "win64"` function with the
/// signature of the import it is bound to (variadic imports: a routine that
/// reads its arguments as a variadic callee does), valid for as long as any
/// code may call the import.
pub unsafe fn bind(
    mut resolve: impl FnMut(&str, &str) -> Option<*const c_void>,
    missing: &mut impl Extend<(&'static str, &'static str)>,
) {
    for (slot, &(module, name)) in TABLE.iter().zip(IMPORTS) {
        match resolve(module, name) {
            Some(address) => slot.store(address.cast_mut(), Ordering::Release),
            None => missing.extend(core::iter::once((module, name))),
        }
    }
}

/// The bound address of `import`.
///
/// # Panics
///
/// If the import was never bound: calling it would jump to address zero.
#[must_use]
pub fn address(import: Import) -> *const c_void {
    let address = TABLE[import as usize].load(Ordering::Acquire);
    assert!(
        !address.is_null(),
        "storport-sys: import {}!{} was called before storport_sys::host::bind bound it",
        IMPORTS[import as usize].0,
        IMPORTS[import as usize].1,
    );
    address
}
