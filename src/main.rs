//! `vstor.sys`: the kernel image. Everything the driver does lives in the
//! library; this file is only the hand-off from the kernel loader and the two
//! symbols the MSVC runtime would otherwise supply.
#![cfg_attr(target_os = "windows", no_std, no_main)]

#[cfg(target_os = "windows")]
mod kernel {
    use storport::{DriverObject, NtStatus, UnicodeString};

    /// The image entry point (`/ENTRY:DriverEntry`), called by the kernel at
    /// `PASSIVE_LEVEL` once, when the driver is loaded.
    ///
    /// # Safety
    ///
    /// Called only by the kernel loader, with the driver object and the
    /// service key path it owns.
    #[unsafe(no_mangle)]
    pub unsafe extern "win64" fn DriverEntry(
        driver_object: *mut DriverObject,
        registry_path: *mut UnicodeString,
    ) -> NtStatus {
        // SAFETY: the kernel passes its own driver object and registry path
        // to DriverEntry, once, which is what `storport::initialize` needs.
        unsafe { storport::initialize::<vstor::Vstor>(driver_object, registry_path) }
    }

    /// Referenced by compiler_builtins' float code; the MSVC CRT defines it
    /// and a driver links no CRT. Its value is never read. With the `wdk`
    /// feature, wdk-sys defines it instead.
    #[cfg(not(feature = "wdk"))]
    #[unsafe(no_mangle)]
    pub static _fltused: i32 = 0;

    /// Stack probe the compiler calls before a frame larger than a page, with
    /// the frame size in RAX: touches each page from the current stack pointer
    /// down so the guard page is hit in order. It must preserve every register
    /// but R10, R11 and flags, and does not move RSP itself (the caller does).
    /// The MSVC runtime normally supplies it; compiler_builtins has it only
    /// for the GNU targets, so it is written here.
    #[unsafe(naked)]
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn __chkstk() {
        core::arch::naked_asm!(
            "push rcx",
            "push rax",
            // RCX = the caller's RSP (above our two pushes and the return address).
            "lea rcx, [rsp + 24]",
            "cmp rax, 0x1000",
            "jb 3f",
            "2:",
            "sub rcx, 0x1000",
            "test [rcx], rcx",
            "sub rax, 0x1000",
            "cmp rax, 0x1000",
            "ja 2b",
            "3:",
            "sub rcx, rax",
            "test [rcx], rcx",
            "pop rax",
            "pop rcx",
            "ret",
        );
    }
}

#[cfg(not(target_os = "windows"))]
fn main() {
    eprintln!(
        "vstor is a Windows kernel driver, not a host program: build vstor.sys with \
         `cargo make build` and run it under the emulator with `cargo make run`."
    );
    std::process::exit(2);
}
