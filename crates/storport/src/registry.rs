//! Storport's registry API as types: the [`Registry`] capability and the
//! [`RegistryBuffer`] guard.
//!
//! # The contract, and where each rule went
//!
//! Storport's registry routines (`StorPortAllocateRegistryBuffer`,
//! `StorPortFreeRegistryBuffer`, `StorPortRegistryRead`,
//! `StorPortRegistryWrite`) come with rules that C states in prose:
//!
//! | rule (storport.h, Microsoft Learn) | here |
//! | --- | --- |
//! | only at `PASSIVE_LEVEL` (SDV `StorPortIrql`) | a [`Registry`] exists only in callbacks that run at `PASSIVE_LEVEL` |
//! | one registry buffer per miniport instance at a time | [`Registry::open`] borrows the capability mutably until the guard is dropped |
//! | only a buffer the port allocated may be read into, written from or freed | the guard owns the one buffer; reads and writes are its methods |
//! | free what you allocate | dropping the guard frees it; [`RegistryBuffer::grow`] frees before it allocates; a buffer whose guard was leaked is freed by the layer (below) |
//! | value names are NUL-terminated ANSI strings | names are [`&CStr`](CStr) |
//! | FALSE + needed length means "buffer too small" | [`ReadError::BufferTooSmall`] |
//!
//! # Example
//!
//! ```no_run
//! use storport::registry::{ReadError, Registry, Scope};
//!
//! /// Reads `DiskCount`, falling back to 1 when the value cannot be read.
//! fn disk_count(registry: &mut Registry) -> u32 {
//!     let Ok(mut buffer) = registry.open(64) else { return 1 };
//!     match buffer.read_dword(Scope::Global, c"DiskCount") {
//!         Ok(count) => count,
//!         Err(ReadError::BufferTooSmall { .. } | ReadError::Failed | ReadError::Malformed { .. }) => 1,
//!     }
//! }
//! ```
//!
//! # A leaked guard
//!
//! Dropping the guard is what frees the buffer, and Rust does not promise
//! that a value is dropped: `core::mem::forget` (or a reference cycle, or
//! `Box::leak`) compiles and leaves the buffer allocated. The port then
//! refuses every later allocation for the adapter — its one buffer is
//! taken — for the adapter's lifetime. So the guard frees its buffer *at
//! most* once, and the layer catches the rest: the [`Registry`] remembers
//! the buffer it handed out until the guard frees it, and a buffer still
//! outstanding when [`Registry::open`] is called again, or when the
//! callback that opened it returns, is freed then, with one `DbgPrint` line
//! saying so. Nothing can use a leaked guard's buffer at those points: a
//! live guard borrows the capability mutably, and the capability does not
//! outlive its callback.
//!
//! Holding two buffers at once does not compile:
//!
//! ```compile_fail,E0499
//! # use storport::registry::Registry;
//! fn two(registry: &mut Registry) {
//!     let first = registry.open(16);
//!     let second = registry.open(16);
//!     drop((first, second));
//! }
//! ```
//!
//! while releasing the first before opening the second does:
//!
//! ```
//! # use storport::registry::Registry;
//! fn two(registry: &mut Registry) {
//!     let first = registry.open(16);
//!     drop(first);
//!     let second = registry.open(16);
//!     drop(second);
//! }
//! ```

use core::ffi::{CStr, c_void};
use core::fmt;
use core::ptr::NonNull;

use crate::print::Dec;

use storport_sys::{
    MINIPORT_REG_BINARY, MINIPORT_REG_DWORD, MINIPORT_REG_MULTI_SZ, MINIPORT_REG_QWORD,
    MINIPORT_REG_SZ, ULONG,
};

/// Which key a value lives under, below the service's `Parameters` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `Parameters\Device`: shared by every adapter of the miniport
    /// (`Global` = TRUE).
    Global,
    /// `Parameters\Device<N>`: this adapter's own key (`Global` = FALSE).
    /// `N` is the adapter's Storport port number ("`StorPortRegistryRead`":
    /// "the port number of a particular adapter"), which Windows assigns
    /// among all the machine's SCSI adapters: not an index of this
    /// miniport's adapters.
    Adapter,
}

impl Scope {
    /// The `Global` argument of `StorPortRegistryRead`/`Write`.
    const fn global(self) -> ULONG {
        match self {
            Self::Global => 1,
            Self::Adapter => 0,
        }
    }
}

/// The right to call Storport's registry routines, for one adapter, for the
/// duration of one `PASSIVE_LEVEL` callback.
///
/// The layer hands out `&mut Registry` in [`FindAdapterContext`] and in the
/// `PASSIVE_LEVEL` cases of [`AdapterControl`]; nothing else can make one, it
/// cannot be cloned, and it cannot leave the thread it was given on. Code
/// that runs above `PASSIVE_LEVEL` (start-io, reset-bus, stop and restart)
/// is simply never given one.
///
/// ```compile_fail,E0599
/// # use storport::registry::Registry;
/// fn copy(registry: &mut Registry) -> Registry {
///     registry.clone()
/// }
/// ```
///
/// ```
/// # use storport::registry::Registry;
/// fn reborrow(registry: &mut Registry) -> &mut Registry {
///     registry
/// }
/// ```
///
/// # Invariants
///
/// `device_extension` is the device extension Storport passed to the
/// `PASSIVE_LEVEL` callback that created this value, and that callback has not
/// returned: registry calls with it are allowed. `outstanding` is the
/// adapter's registry buffer while one is allocated (and its length), `None`
/// while none is.
///
/// [`FindAdapterContext`]: crate::FindAdapterContext
/// [`AdapterControl`]: crate::AdapterControl
pub struct Registry {
    device_extension: NonNull<c_void>,
    outstanding: Option<(NonNull<u8>, u32)>,
}

impl Registry {
    /// Makes the capability for one callback.
    ///
    /// # Safety
    ///
    /// `device_extension` must be the device extension of the callback being
    /// run, that callback must run at `PASSIVE_LEVEL` and own the adapter's
    /// single registry buffer slot (no buffer of this adapter is allocated),
    /// and the value must be dropped before the callback returns (its `Drop`
    /// frees a buffer a leaked guard left allocated).
    pub(crate) const unsafe fn new(device_extension: NonNull<c_void>) -> Self {
        // INVARIANT: the caller promised a PASSIVE_LEVEL callback's own
        // device extension, for that callback's duration, with no buffer
        // allocated.
        Self {
            device_extension,
            outstanding: None,
        }
    }

    /// Frees the buffer a leaked guard left allocated, if there is one,
    /// saying so through `DbgPrint`; `when` completes the sentence.
    fn reclaim(&mut self, when: &str) {
        let Some((buffer, length_bytes)) = self.outstanding else {
            return;
        };
        crate::debug_print!(
            "storport: the registry buffer of {} bytes was still allocated {when}: its guard \
             was leaked (for example with core::mem::forget) instead of dropped; the layer \
             frees it now, so the adapter can open a registry buffer again.\n",
            Dec(u64::from(length_bytes))
        );
        free(self, buffer);
    }

    /// Allocates the adapter's registry buffer of `length_bytes` bytes
    /// (`StorPortAllocateRegistryBuffer`).
    ///
    /// The capability stays borrowed until the returned guard is dropped, so
    /// a second buffer cannot be opened while this one is alive — the port
    /// would refuse it anyway. A buffer whose guard was leaked is freed first
    /// (see the [module documentation](self)).
    ///
    /// # Errors
    ///
    /// [`AllocError`] when the port returns no buffer (out of pool).
    /// See "`StorPortAllocateRegistryBuffer` function (storport.h)".
    pub fn open(&mut self, length_bytes: u32) -> Result<RegistryBuffer<'_>, AllocError> {
        // A live guard would hold the `&mut self` this call needs, so an
        // outstanding buffer is a leaked guard's.
        self.reclaim("when another was opened");
        let mut allocated = length_bytes;
        // SAFETY: by the type invariant registry calls are allowed for this
        // device extension now, and no buffer is allocated: `reclaim` freed
        // the one a leaked guard left.
        let buffer = unsafe {
            storport_sys::StorPortAllocateRegistryBuffer(
                self.device_extension.as_ptr(),
                &raw mut allocated,
            )
        };
        let Some(buffer) = NonNull::new(buffer) else {
            return Err(AllocError {
                requested_bytes: length_bytes,
            });
        };
        let length_bytes = allocated.min(length_bytes);
        // The port does not promise zeroed memory; Rust slices of it must be
        // initialised bytes, so clear it before anything reads it.
        // SAFETY: the port's buffer is valid for writes of the smaller of
        // the asked and the reported length, and nothing else uses it yet.
        unsafe { buffer.as_ptr().write_bytes(0, length_bytes as usize) };
        // INVARIANT: the buffer is allocated until `free` clears this.
        self.outstanding = Some((buffer, length_bytes));
        // INVARIANT: `buffer` came from the allocator just now, holds
        // `length_bytes` initialised bytes, and is not freed.
        Ok(RegistryBuffer {
            registry: self,
            buffer,
            length_bytes,
        })
    }
}

/// The adapter's one registry buffer: reads and writes go through it, and
/// dropping it frees it (`StorPortFreeRegistryBuffer`).
///
/// It borrows the [`Registry`] capability mutably, so it cannot outlive the
/// callback, be stored in the adapter state or cross to another thread,
/// and no second buffer can be opened while it is alive. It frees the buffer
/// at most once: a guard leaked instead of dropped leaves that to the layer
/// (see the [module documentation](self)).
///
/// ```compile_fail,E0382
/// # use storport::registry::{Registry, Scope};
/// fn after_free(registry: &mut Registry) {
///     let Ok(mut buffer) = registry.open(16) else { return };
///     drop(buffer);
///     let _ = buffer.read_dword(Scope::Global, c"DiskCount");
/// }
/// ```
///
/// ```
/// # use storport::registry::{Registry, Scope};
/// fn before_free(registry: &mut Registry) {
///     let Ok(mut buffer) = registry.open(16) else { return };
///     let _ = buffer.read_dword(Scope::Global, c"DiskCount");
///     drop(buffer);
/// }
/// ```
///
/// # Invariants
///
/// `buffer` is the registry buffer Storport allocated for
/// `registry.device_extension`, at least `length_bytes` long, its first
/// `length_bytes` bytes initialised, not yet freed.
#[must_use = "the registry buffer is freed as soon as the guard is dropped"]
pub struct RegistryBuffer<'r> {
    registry: &'r mut Registry,
    buffer: NonNull<u8>,
    length_bytes: u32,
}

impl<'r> RegistryBuffer<'r> {
    /// The buffer's length in bytes.
    #[must_use]
    pub const fn len_bytes(&self) -> u32 {
        self.length_bytes
    }

    /// Frees this buffer and allocates one of `length_bytes` bytes — in that
    /// order, so two buffers never exist at once.
    ///
    /// Use it after [`ReadError::BufferTooSmall`] with the length it reports:
    ///
    /// ```no_run
    /// use storport::registry::{ReadError, Registry, Scope};
    ///
    /// /// The `SerialPrefix` string, however long, or `None`.
    /// fn serial_prefix(registry: &mut Registry, out: &mut [u8; 64]) -> Option<usize> {
    ///     let mut buffer = registry.open(16).ok()?;
    ///     if let Err(ReadError::BufferTooSmall { needed_bytes }) =
    ///         buffer.read_string(Scope::Global, c"SerialPrefix")
    ///     {
    ///         buffer = buffer.grow(needed_bytes).ok()?;
    ///     }
    ///     let text = buffer.read_string(Scope::Global, c"SerialPrefix").ok()?;
    ///     let length = text.len().min(out.len());
    ///     out[..length].copy_from_slice(&text[..length]);
    ///     Some(length)
    /// }
    /// ```
    ///
    /// The old guard is consumed, so it cannot be used after the grow:
    ///
    /// ```compile_fail,E0382
    /// # use storport::registry::{Registry, Scope};
    /// fn stale(registry: &mut Registry) {
    ///     let Ok(mut small) = registry.open(16) else { return };
    ///     let larger = small.grow(256);
    ///     let _ = small.read_dword(Scope::Global, c"DiskCount");
    ///     drop(larger);
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`AllocError`] when the port returns no buffer; the old buffer is
    /// freed either way, and the capability can open another one.
    pub fn grow(self, length_bytes: u32) -> Result<Self, AllocError> {
        self.release().open(length_bytes)
    }

    /// Frees the buffer and gives the capability back.
    fn release(self) -> &'r mut Registry {
        let mut this = core::mem::ManuallyDrop::new(self);
        let buffer = this.buffer;
        free(this.registry, buffer);
        // SAFETY: `this` is never used or dropped again, so moving the
        // reference out leaves no second copy behind.
        unsafe { core::ptr::read(&raw const this.registry) }
    }

    /// The whole buffer.
    const fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: by the type invariant the buffer is `length_bytes` long and
        // allocated, and `&mut self` makes this the only view of it.
        unsafe { core::slice::from_raw_parts_mut(self.buffer.as_ptr(), self.length_bytes as usize) }
    }

    /// `StorPortRegistryRead` into the whole buffer; the data on success.
    fn read(&mut self, scope: Scope, name: &CStr, value_type: ULONG) -> Result<&[u8], ReadError> {
        let mut length = self.length_bytes;
        // SAFETY: registry calls are allowed (the capability's invariant),
        // the buffer is the port's own and `length` is its size, and `name`
        // is NUL-terminated.
        let ok = unsafe {
            storport_sys::StorPortRegistryRead(
                self.registry.device_extension.as_ptr(),
                name.as_ptr().cast::<u8>(),
                scope.global(),
                value_type,
                self.buffer.as_ptr(),
                &raw mut length,
            )
        };
        if ok == 0 {
            return Err(if length == 0 {
                ReadError::Failed
            } else {
                ReadError::BufferTooSmall {
                    needed_bytes: length,
                }
            });
        }
        // The port reports the bytes it stored; never trust more than the buffer.
        let stored = length.min(self.length_bytes) as usize;
        Ok(&self.bytes_mut()[..stored])
    }

    /// `StorPortRegistryWrite` of the first `length` bytes of the buffer.
    fn write(
        &mut self,
        scope: Scope,
        name: &CStr,
        value_type: ULONG,
        length: u32,
    ) -> Result<(), WriteError> {
        // SAFETY: registry calls are allowed (the capability's invariant),
        // the buffer is the port's own and holds `length` (≤ its size)
        // initialised bytes, and `name` is NUL-terminated.
        let ok = unsafe {
            storport_sys::StorPortRegistryWrite(
                self.registry.device_extension.as_ptr(),
                name.as_ptr().cast::<u8>(),
                scope.global(),
                value_type,
                self.buffer.as_ptr(),
                length,
            )
        };
        if ok == 0 {
            Err(WriteError::Failed)
        } else {
            Ok(())
        }
    }

    /// Copies the pieces, back to back, to the start of the buffer; the
    /// total length.
    fn fill(&mut self, pieces: &[&[u8]]) -> Result<u32, WriteError> {
        let total: usize = pieces.iter().map(|piece| piece.len()).sum();
        let needed_bytes = u32::try_from(total).map_err(|_| WriteError::TooLong)?;
        if needed_bytes > self.length_bytes {
            return Err(WriteError::BufferTooSmall { needed_bytes });
        }
        let mut at = 0;
        let bytes = self.bytes_mut();
        for piece in pieces {
            bytes[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
        Ok(needed_bytes)
    }

    /// Reads a `REG_DWORD` value.
    ///
    /// # Errors
    ///
    /// [`ReadError`]: too small a buffer (with the length needed), a value
    /// the port could not read, or data that is not four bytes.
    pub fn read_dword(&mut self, scope: Scope, name: &CStr) -> Result<u32, ReadError> {
        let data = self.read(scope, name, MINIPORT_REG_DWORD)?;
        let bytes = <[u8; 4]>::try_from(data).map_err(|_| ReadError::Malformed {
            stored_bytes: data.len(),
        })?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// Reads a `REG_QWORD` value.
    ///
    /// # Errors
    ///
    /// As [`read_dword`](Self::read_dword), for eight bytes.
    pub fn read_qword(&mut self, scope: Scope, name: &CStr) -> Result<u64, ReadError> {
        let data = self.read(scope, name, MINIPORT_REG_QWORD)?;
        let bytes = <[u8; 8]>::try_from(data).map_err(|_| ReadError::Malformed {
            stored_bytes: data.len(),
        })?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Reads a `REG_SZ` value: the ANSI bytes the port converted it to, up
    /// to (not including) the terminating NUL.
    ///
    /// The bytes live in the registry buffer, so the next read or write
    /// needs them dropped first.
    ///
    /// # Errors
    ///
    /// As [`read_dword`](Self::read_dword); a string never fails as
    /// malformed (missing terminators are tolerated).
    pub fn read_string(&mut self, scope: Scope, name: &CStr) -> Result<&[u8], ReadError> {
        let data = self.read(scope, name, MINIPORT_REG_SZ)?;
        let end = data
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(data.len());
        Ok(&data[..end])
    }

    /// Reads a `REG_MULTI_SZ` value as an iterator over its ANSI strings.
    ///
    /// # Errors
    ///
    /// As [`read_string`](Self::read_string).
    pub fn read_multi_string(
        &mut self,
        scope: Scope,
        name: &CStr,
    ) -> Result<MultiString<'_>, ReadError> {
        let data = self.read(scope, name, MINIPORT_REG_MULTI_SZ)?;
        Ok(MultiString { rest: data })
    }

    /// Reads a `REG_BINARY` value: exactly the bytes stored.
    ///
    /// # Errors
    ///
    /// As [`read_string`](Self::read_string).
    pub fn read_binary(&mut self, scope: Scope, name: &CStr) -> Result<&[u8], ReadError> {
        self.read(scope, name, MINIPORT_REG_BINARY)
    }

    /// Writes a `REG_DWORD` value.
    ///
    /// # Errors
    ///
    /// [`WriteError`]: a buffer shorter than four bytes, or the port
    /// refusing the write.
    pub fn write_dword(&mut self, scope: Scope, name: &CStr, value: u32) -> Result<(), WriteError> {
        let length = self.fill(&[&value.to_le_bytes()])?;
        self.write(scope, name, MINIPORT_REG_DWORD, length)
    }

    /// Writes a `REG_QWORD` value.
    ///
    /// # Errors
    ///
    /// As [`write_dword`](Self::write_dword), for eight bytes.
    pub fn write_qword(&mut self, scope: Scope, name: &CStr, value: u64) -> Result<(), WriteError> {
        let length = self.fill(&[&value.to_le_bytes()])?;
        self.write(scope, name, MINIPORT_REG_QWORD, length)
    }

    /// Writes a `REG_SZ` value from ANSI bytes (the port converts them to
    /// Unicode); the terminating NUL is added here.
    ///
    /// # Errors
    ///
    /// [`WriteError::InteriorNul`] for a NUL inside `value`; otherwise as
    /// [`write_dword`](Self::write_dword), needing `value.len() + 1` bytes.
    pub fn write_string(
        &mut self,
        scope: Scope,
        name: &CStr,
        value: &[u8],
    ) -> Result<(), WriteError> {
        reject_nul(value)?;
        let length = self.fill(&[value, b"\0"])?;
        self.write(scope, name, MINIPORT_REG_SZ, length)
    }

    /// Writes a `REG_MULTI_SZ` value from ANSI strings: each gets its NUL,
    /// and the list its final one.
    ///
    /// # Errors
    ///
    /// [`WriteError::InteriorNul`] for a NUL inside a string, and
    /// [`WriteError::EmptyString`] for an empty one (it would end the list
    /// early); otherwise as [`write_string`](Self::write_string).
    pub fn write_multi_string(
        &mut self,
        scope: Scope,
        name: &CStr,
        values: &[&[u8]],
    ) -> Result<(), WriteError> {
        let mut at = 0_usize;
        for value in values {
            if value.is_empty() {
                return Err(WriteError::EmptyString);
            }
            reject_nul(value)?;
            let length = self.fill_at(at, value)?;
            at = self.fill_at(length, b"\0")?;
        }
        let length = self.fill_at(at, b"\0")?;
        self.write(
            scope,
            name,
            MINIPORT_REG_MULTI_SZ,
            u32::try_from(length).map_err(|_| WriteError::TooLong)?,
        )
    }

    /// Copies `piece` to offset `at`; the offset after it.
    fn fill_at(&mut self, at: usize, piece: &[u8]) -> Result<usize, WriteError> {
        let end = at.checked_add(piece.len()).ok_or(WriteError::TooLong)?;
        let needed_bytes = u32::try_from(end).map_err(|_| WriteError::TooLong)?;
        if needed_bytes > self.length_bytes {
            return Err(WriteError::BufferTooSmall { needed_bytes });
        }
        self.bytes_mut()[at..end].copy_from_slice(piece);
        Ok(end)
    }

    /// Writes a `REG_BINARY` value.
    ///
    /// # Errors
    ///
    /// As [`write_dword`](Self::write_dword), needing `value.len()` bytes.
    pub fn write_binary(
        &mut self,
        scope: Scope,
        name: &CStr,
        value: &[u8],
    ) -> Result<(), WriteError> {
        let length = self.fill(&[value])?;
        self.write(scope, name, MINIPORT_REG_BINARY, length)
    }
}

impl Drop for RegistryBuffer<'_> {
    fn drop(&mut self) {
        free(self.registry, self.buffer);
    }
}

impl fmt::Debug for RegistryBuffer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuffer")
            .field("length_bytes", &self.length_bytes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Drop for Registry {
    /// The callback that was given the capability is returning: a buffer
    /// still allocated now belongs to a leaked guard.
    fn drop(&mut self) {
        self.reclaim("when the callback that opened it returned");
    }
}

/// `StorPortFreeRegistryBuffer` of the adapter's outstanding buffer, which
/// is then no longer outstanding. Called by the guard's `Drop` or
/// `release` (which suppresses the drop), or by [`Registry::reclaim`] for a
/// leaked guard: at most once per buffer.
fn free(registry: &mut Registry, buffer: NonNull<u8>) {
    // SAFETY: `buffer` is the live buffer the port allocated for this device
    // extension (the guard's invariant, or `outstanding`'s for a leaked
    // guard), registry calls are allowed (the capability's), and clearing
    // `outstanding` below keeps it from being freed twice.
    unsafe {
        storport_sys::StorPortFreeRegistryBuffer(
            registry.device_extension.as_ptr(),
            buffer.as_ptr(),
        );
    }
    // INVARIANT: the buffer was just freed.
    registry.outstanding = None;
}

fn reject_nul(value: &[u8]) -> Result<(), WriteError> {
    value
        .iter()
        .position(|&byte| byte == 0)
        .map_or(Ok(()), |offset| Err(WriteError::InteriorNul { offset }))
}

/// The strings of a `REG_MULTI_SZ` value, in order, as ANSI bytes without
/// their NULs. Ends at the empty string that closes the list, or at the end
/// of the data.
#[derive(Clone, Debug)]
pub struct MultiString<'a> {
    rest: &'a [u8],
}

impl<'a> MultiString<'a> {
    /// The strings not yet iterated, as stored: separated by single NULs,
    /// without the terminators that close the list.
    ///
    /// ```
    /// # use storport::registry::MultiString;
    /// let list = MultiString::from_bytes(b"64\0128\0\0");
    /// assert_eq!(list.as_bytes(), b"64\0128");
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8] {
        let end = self
            .rest
            .windows(2)
            .position(|pair| pair == b"\0\0")
            .unwrap_or(self.rest.len());
        let mut strings = &self.rest[..end];
        while let [head @ .., 0] = strings {
            strings = head;
        }
        strings
    }

    /// A list from `REG_MULTI_SZ` data: strings each ended by a NUL, and the
    /// list by one more.
    #[must_use]
    pub const fn from_bytes(data: &'a [u8]) -> Self {
        Self { rest: data }
    }
}

impl<'a> Iterator for MultiString<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self
            .rest
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(self.rest.len());
        if end == 0 {
            self.rest = &[];
            return None;
        }
        let item = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
        Some(item)
    }
}

/// Storport could not allocate a registry buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    /// The length that was asked for.
    pub requested_bytes: u32,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Storport could not allocate a registry buffer of {} bytes",
            Dec(u64::from(self.requested_bytes))
        )
    }
}

impl core::error::Error for AllocError {}

/// A registry read that produced no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The value does not fit: the port needs a buffer of `needed_bytes`
    /// (FALSE with a non-zero length). Grow the buffer and read again.
    BufferTooSmall {
        /// The buffer length the port asked for.
        needed_bytes: u32,
    },
    /// The port could not read the value (FALSE with a zero length). The
    /// API reports a missing value, a value of another type and any other
    /// failure the same way, so this cannot say which it was.
    Failed,
    /// The port read the value, but its length does not fit the type asked
    /// for (a DWORD that is not four bytes, a QWORD not eight).
    Malformed {
        /// The length the port reported.
        stored_bytes: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed_bytes } => write!(
                f,
                "the registry value needs a buffer of {} bytes; grow the buffer to that length \
                 and read it again",
                Dec(u64::from(*needed_bytes))
            ),
            Self::Failed => f.write_str(
                "the registry value could not be read: it is missing, of another type, or \
                 unreadable",
            ),
            Self::Malformed { stored_bytes } => write!(
                f,
                "the registry value has {} bytes, which is not the length of the type asked \
                 for, so it was not used",
                Dec(*stored_bytes as u64)
            ),
        }
    }
}

impl core::error::Error for ReadError {}

/// A registry write that did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The data does not fit the buffer: it needs `needed_bytes`.
    BufferTooSmall {
        /// The buffer length the data needs.
        needed_bytes: u32,
    },
    /// A string holds a NUL at `offset`, which would cut it short.
    InteriorNul {
        /// Where the NUL is, in bytes from the start of the string.
        offset: usize,
    },
    /// A multi-string holds an empty string, which would end the list early.
    EmptyString,
    /// The data is longer than a registry value can be (4 GiB).
    TooLong,
    /// The port refused the write (FALSE).
    Failed,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed_bytes } => write!(
                f,
                "the registry value needs a buffer of {} bytes; nothing was written, grow the \
                 buffer to that length and write it again",
                Dec(u64::from(*needed_bytes))
            ),
            Self::InteriorNul { offset } => write!(
                f,
                "the registry string has a NUL byte at offset {}, where a string may not end; \
                 nothing was written",
                Dec(*offset as u64)
            ),
            Self::EmptyString => f.write_str(
                "a multi-string may not hold an empty string, which would end the list; nothing \
                 was written",
            ),
            Self::TooLong => f.write_str(
                "the registry value is longer than 4 GiB, more than a registry value can hold; \
                 nothing was written",
            ),
            Self::Failed => {
                f.write_str("Storport refused to write the registry value; the key is unchanged")
            }
        }
    }
}

impl core::error::Error for WriteError {}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::{MultiString, Scope};

    #[test]
    fn multi_string_stops_at_the_empty_string() {
        let items: Vec<&[u8]> = MultiString {
            rest: b"one\0two\0\0junk\0",
        }
        .collect();
        assert_eq!(items, [&b"one"[..], b"two"]);
    }

    #[test]
    fn multi_string_without_terminators_yields_the_rest() {
        let items: Vec<&[u8]> = MultiString { rest: b"one\0two" }.collect();
        assert_eq!(items, [&b"one"[..], b"two"]);
        assert_eq!(MultiString { rest: b"" }.count(), 0);
        assert_eq!(MultiString { rest: b"\0\0" }.count(), 0);
    }

    #[test]
    fn multi_string_bytes_drop_the_terminators() {
        assert_eq!(
            MultiString::from_bytes(b"a\0bc\0\0junk").as_bytes(),
            b"a\0bc"
        );
        assert_eq!(MultiString::from_bytes(b"a\0bc\0").as_bytes(), b"a\0bc");
        assert_eq!(MultiString::from_bytes(b"a\0bc").as_bytes(), b"a\0bc");
        assert_eq!(MultiString::from_bytes(b"\0\0").as_bytes(), b"");
        let mut list = MultiString::from_bytes(b"a\0bc\0\0");
        assert_eq!(list.next(), Some(&b"a"[..]));
        assert_eq!(list.as_bytes(), b"bc");
    }

    #[test]
    fn errors_say_what_failed_and_leave_the_policy_to_the_driver() {
        use std::string::ToString;

        use super::{AllocError, ReadError};

        assert_eq!(
            AllocError {
                requested_bytes: 64
            }
            .to_string(),
            "Storport could not allocate a registry buffer of 64 bytes"
        );
        assert_eq!(
            ReadError::Failed.to_string(),
            "the registry value could not be read: it is missing, of another type, or unreadable"
        );
        assert_eq!(
            ReadError::Malformed { stored_bytes: 3 }.to_string(),
            "the registry value has 3 bytes, which is not the length of the type asked for, so \
             it was not used"
        );
    }

    #[test]
    fn scopes_map_to_the_global_flag() {
        assert_eq!(Scope::Global.global(), 1);
        assert_eq!(Scope::Adapter.global(), 0);
    }
}
