//! Raw x64 Storport ABI used by vstor. Do not use this crate directly: the
//! `storport` crate wraps it in a safe API, and drivers use that.
//!
//! # Why this is written by hand
//!
//! On a Windows host with the WDK these definitions come from bindgen over the
//! real `storport.h` (through `wdk-sys`). On Linux there is no WDK, and the
//! only Storport header available (mingw-w64's `ddk/storport.h`) is the old
//! ScsiPort-era one: it lacks the registry buffer API, the Windows 8
//! `HW_INITIALIZATION_DATA` and the Storport `PORT_CONFIGURATION_INFORMATION`.
//! So the subset vstor uses is written here from Microsoft's documented
//! definitions, and every layout is pinned by compile-time size and offset
//! assertions (see [`layout`]) whose values were cross-checked against type
//! dumps of `storport.sys`'s public symbols.
//!
//! # ABI spelling
//!
//! vstor targets x64 Windows only. Every function and function-pointer type
//! is spelled `extern "win64"`, which is exactly `extern "system"` on
//! `x86_64-pc-windows-msvc`; on an `x86_64` Linux host the same spelling keeps
//! the Windows calling convention, so code built for the host (unit tests,
//! the emulator's in-process mode) calls and is called exactly as the kernel
//! would.
//!
//! # Imports
//!
//! On Windows targets the imports are `raw-dylib` links to `storport.sys` and
//! `ntoskrnl.exe` (with `+verbatim`, so the import table names the real
//! modules). On other targets each import is a forwarding function that calls
//! whatever [`host::bind`] installed — an emulated port driver — so the safe
//! layer can be exercised on the host against the same emulated exports a
//! loaded `.sys` would see.
#![no_std]
#![expect(
    non_camel_case_types,
    non_snake_case,
    reason = "Storport's own names are kept so the definitions can be checked against storport.h"
)]

mod consts;
mod imports;
pub mod layout;
mod types;

pub use consts::*;
pub use imports::*;
pub use types::*;

#[cfg(not(target_os = "windows"))]
pub mod host;
