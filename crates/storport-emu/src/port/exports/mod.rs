//! The emulated `storport.sys`, `ntoskrnl.exe` and `hal.dll` exports.
//!
//! Every export is an `extern "win64"` Rust function (never `#[no_mangle]`:
//! an emulated `memcpy` must not replace the C library's). Variadic exports
//! go through a short assembly shim that spills the four register arguments
//! into the caller's home area, so the handler sees one contiguous argument
//! list. Exports find their port instance through [`super::context`].
//!
//! [`resolve`] maps `(module, name)` to an export's address; the PE loader
//! binds imports with it, and host-linked drivers bind
//! `storport_sys::host` with it.

mod ntos;
pub mod printf;
mod spinlock;
mod storport;

/// Reads argument slots of a variadic call from the caller's home area.
pub struct VaArgs {
    base: *const u64,
    next: usize,
}

impl VaArgs {
    /// # Safety
    ///
    /// `base` must point at the home area of a win64 call whose caller
    /// passed at least as many argument slots as will be read.
    #[must_use]
    pub const unsafe fn new(base: *const u64) -> Self {
        Self { base, next: 0 }
    }

    /// Argument slot `index` (0 = first argument).
    #[must_use]
    pub const fn get(&self, index: usize) -> u64 {
        // SAFETY: by the constructor's contract the caller passed this many
        // slots; the home area and stack arguments are contiguous.
        let slot = unsafe { self.base.add(index) };
        // SAFETY: as above, the slot is inside the caller's argument area.
        unsafe { slot.read() }
    }

    /// Skips the first `count` slots for [`printf::ArgSource`].
    #[must_use]
    pub const fn from(mut self, count: usize) -> Self {
        self.next = count;
        self
    }
}

impl printf::ArgSource for VaArgs {
    fn next_arg(&mut self) -> u64 {
        let value = self.get(self.next);
        self.next += 1;
        value
    }
}

/// Defines `$shim`, a win64 entry point that passes a pointer to its
/// argument slots to `$handler: extern "win64" fn(*const u64) -> u64`.
macro_rules! variadic_shim {
    ($shim:ident => $handler:path) => {
        #[unsafe(naked)]
        pub(super) unsafe extern "win64" fn $shim() {
            core::arch::naked_asm!(
                // Spill the register arguments into the caller's home area.
                "mov [rsp + 8], rcx",
                "mov [rsp + 16], rdx",
                "mov [rsp + 24], r8",
                "mov [rsp + 32], r9",
                // Home area for the handler plus alignment: RSP was 8 mod 16
                // on entry, so 40 more bytes make it 16-aligned for the call.
                "sub rsp, 40",
                "lea rcx, [rsp + 48]",
                "call {handler}",
                "add rsp, 40",
                "ret",
                handler = sym $handler,
            );
        }
    };
}
pub(crate) use variadic_shim;

/// Masks a `ULONG` argument: its upper 32 bits are undefined on x64.
#[must_use]
pub const fn ulong(raw: u64) -> u32 {
    (raw & 0xFFFF_FFFF) as u32
}

/// The address of an emulated export, or `None` if storemu does not
/// implement it. Module names compare case-insensitively.
#[must_use]
pub fn resolve(module: &str, name: &str) -> Option<usize> {
    let module = module.to_ascii_lowercase();
    match module.as_str() {
        "storport.sys" => storport::lookup(name),
        "ntoskrnl.exe" => ntos::lookup(name),
        "hal.dll" => ntos::lookup_hal(name),
        _ => None,
    }
}

/// Every export storemu implements, as `(module, name)`.
#[must_use]
pub fn implemented() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<(&str, &str)> = storport::NAMES
        .iter()
        .map(|n| ("storport.sys", *n))
        .collect();
    all.extend(ntos::NAMES.iter().map(|n| ("ntoskrnl.exe", *n)));
    all.extend(spinlock::NAMES.iter().map(|n| ("ntoskrnl.exe", *n)));
    all.extend(ntos::HAL_NAMES.iter().map(|n| ("hal.dll", *n)));
    all
}

/// Binds the host build of `storport-sys` (driver code linked into this
/// process) to the emulated exports; returns the imports left unbound.
#[must_use = "imports left unbound would panic when called"]
pub fn bind_host() -> Vec<(&'static str, &'static str)> {
    let mut missing = Vec::new();
    // SAFETY: `resolve` returns only addresses of win64 exports written for
    // the routine of that name (variadic ones through the shim), which live
    // as long as the process.
    unsafe {
        storport_sys::host::bind(
            |module, name| resolve(module, name).map(|a| a as *const core::ffi::c_void),
            &mut missing,
        );
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::resolve;

    fn export(module: &str, name: &str) -> usize {
        resolve(module, name).unwrap_or_else(|| panic!("{module}!{name} is emulated"))
    }

    #[test]
    fn snprintf_formats_through_the_variadic_shim_and_truncates_like_msvc() {
        let f: unsafe extern "win64" fn(*mut u8, u64, *const u8, u64, u64, u64) -> i64 =
            // SAFETY: `_snprintf` is variadic; three slots follow the format.
            unsafe { std::mem::transmute(export("ntoskrnl.exe", "_snprintf")) };
        let mut buffer = [0xAA_u8; 32];
        // SAFETY: a 32-byte buffer, a NUL-terminated format and its arguments.
        let n = unsafe {
            f(
                buffer.as_mut_ptr(),
                32,
                c"%s:%04x:%d".as_ptr().cast(),
                c"lun".as_ptr() as u64,
                0xBE,
                u64::MAX,
            )
        };
        assert_eq!(n, 11);
        assert_eq!(&buffer[..12], b"lun:00be:-1\0");
        // SAFETY: as above, with room for 4 bytes only.
        let n = unsafe {
            f(
                buffer.as_mut_ptr(),
                4,
                c"%s:%04x:%d".as_ptr().cast(),
                c"lun".as_ptr() as u64,
                0xBE,
                1,
            )
        };
        assert_eq!(n, -1, "a result that does not fit returns -1");
        assert_eq!(&buffer[..5], b"lun:0");
    }

    #[test]
    fn counted_strings_and_routine_lookup() {
        let text: Vec<u16> = "DbgPrint\0".encode_utf16().collect();
        let mut header = [0_u64; 2];
        let init: unsafe extern "win64" fn(*mut u64, *const u16) =
            // SAFETY: RtlInitUnicodeString(UNICODE_STRING*, PCWSTR).
            unsafe { std::mem::transmute(export("ntoskrnl.exe", "RtlInitUnicodeString")) };
        // SAFETY: a 16-byte UNICODE_STRING and a terminated string.
        unsafe { init(header.as_mut_ptr(), text.as_ptr()) };
        assert_eq!(
            header[0] & 0xFFFF_FFFF,
            16 | (18 << 16),
            "Length 16, MaximumLength 18"
        );
        assert_eq!(header[1], text.as_ptr() as u64);
        let lookup: unsafe extern "win64" fn(*const u64) -> usize =
            // SAFETY: MmGetSystemRoutineAddress(UNICODE_STRING*).
            unsafe { std::mem::transmute(export("ntoskrnl.exe", "MmGetSystemRoutineAddress")) };
        // SAFETY: the string initialised above.
        let found = unsafe { lookup(header.as_ptr()) };
        assert_eq!(found, export("ntoskrnl.exe", "DbgPrint"));
    }

    #[test]
    fn memory_routines_follow_the_c_contract() {
        let memcmp: unsafe extern "win64" fn(*const u8, *const u8, usize) -> i32 =
            // SAFETY: memcmp(const void*, const void*, size_t).
            unsafe { std::mem::transmute(export("ntoskrnl.exe", "memcmp")) };
        // SAFETY: two 3-byte arrays.
        assert!(unsafe { memcmp(b"abc".as_ptr(), b"abd".as_ptr(), 3) } < 0);
        // SAFETY: as above.
        assert_eq!(unsafe { memcmp(b"abc".as_ptr(), b"abc".as_ptr(), 3) }, 0);
        let memmove: unsafe extern "win64" fn(*mut u8, *const u8, usize) -> *mut u8 =
            // SAFETY: memmove(void*, const void*, size_t) -> void*.
            unsafe { std::mem::transmute(export("ntoskrnl.exe", "memmove")) };
        let mut overlap = *b"abcdef";
        let base = overlap.as_mut_ptr();
        // SAFETY: overlapping ranges inside one 6-byte array.
        unsafe { memmove(base.wrapping_add(1), base, 4) };
        assert_eq!(&overlap, b"aabcdf");
        assert_eq!(
            resolve("STORPORT.SYS", "StorPortNotification"),
            resolve("storport.sys", "StorPortNotification")
        );
        assert_eq!(resolve("storport.sys", "NoSuchRoutine"), None);
    }
}
