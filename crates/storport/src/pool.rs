//! Nonpaged pool memory: [`PoolSlice`], freed on drop.
//!
//! `ExAllocatePool2` zeroes what it returns unless asked not to, so a slice
//! of any element type whose all-zero bytes are a valid value is ready to
//! use at once. [`Zeroable`] names those types.

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use storport_sys::POOL_FLAG_NON_PAGED;

/// A pool tag: four ASCII characters that name the allocations of one
/// driver in the kernel's pool tools (`!poolused`, poolmon).
///
/// ```
/// use storport::PoolTag;
/// assert_eq!(PoolTag::new(*b"vstD").to_raw(), u32::from_le_bytes(*b"vstD"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolTag(u32);

impl PoolTag {
    /// The tag that reads as `name` in the pool tools (the kernel reads the
    /// four bytes in memory order).
    #[must_use]
    pub const fn new(name: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(name))
    }

    /// The `ULONG` passed to the pool routines.
    #[must_use]
    pub const fn to_raw(self) -> u32 {
        self.0
    }
}

mod private {
    pub trait Sealed {}
}

/// Element types whose all-zero bytes are a valid value, so zeroed pool
/// memory is an initialised slice of them. Sealed: the list is this crate's.
pub trait Zeroable: private::Sealed + Sized {}

macro_rules! zeroable {
    ($($ty:ty),*) => {$(
        impl private::Sealed for $ty {}
        impl Zeroable for $ty {}
    )*};
}
zeroable!(u8, u16, u32, u64, AtomicU8, AtomicU16, AtomicU32, AtomicU64);

/// Pool allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolAllocError {
    /// The number of bytes asked for.
    pub requested_bytes: usize,
}

impl fmt::Display for PoolAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the kernel could not allocate {} bytes of nonpaged pool; nothing was allocated",
            crate::print::Dec(self.requested_bytes as u64)
        )
    }
}

impl core::error::Error for PoolAllocError {}

/// A zeroed slice of `T` in nonpaged pool, freed with its tag on drop.
///
/// For memory shared by concurrent start-io calls, use an atomic element
/// type (`PoolSlice<AtomicU64>`): the slice derefs to `&[T]`, and atomics
/// make concurrent access through shared references race-free.
///
/// # Invariants
///
/// `data` points to `len` initialised `T`s in a nonpaged pool block that
/// `ExAllocatePool2` returned with tag `tag`, owned by this value and not yet
/// freed (or, for `len == 0`, is dangling and owns nothing).
pub struct PoolSlice<T: Zeroable> {
    data: NonNull<T>,
    len: usize,
    tag: PoolTag,
}

// SAFETY: the slice owns its elements like a `Box<[T]>`; moving it to
// another thread moves the `T`s.
unsafe impl<T: Zeroable + Send> Send for PoolSlice<T> {}
// SAFETY: a shared `PoolSlice` only gives out `&[T]`.
unsafe impl<T: Zeroable + Sync> Sync for PoolSlice<T> {}

impl<T: Zeroable> PoolSlice<T> {
    /// Allocates `len` zeroed elements of nonpaged pool with `tag`
    /// (`ExAllocatePool2(POOL_FLAG_NON_PAGED)`).
    ///
    /// Call it at IRQL ≤ `DISPATCH_LEVEL`, and never in start-io (SDV
    /// `SpNoWait`): allocate in find-adapter.
    ///
    /// # Errors
    ///
    /// [`PoolAllocError`] when the pool has no block of that size, or the
    /// size overflows.
    pub fn new_zeroed(len: usize, tag: PoolTag) -> Result<Self, PoolAllocError> {
        let requested_bytes = len.saturating_mul(size_of::<T>());
        if len == 0 || size_of::<T>() == 0 {
            // INVARIANT: nothing is owned.
            return Ok(Self {
                data: NonNull::dangling(),
                len,
                tag,
            });
        }
        if len.checked_mul(size_of::<T>()).is_none() {
            return Err(PoolAllocError { requested_bytes });
        }
        // SAFETY: a plain nonpaged allocation; the flags request zeroed memory.
        let block = unsafe {
            storport_sys::ExAllocatePool2(POOL_FLAG_NON_PAGED, requested_bytes, tag.to_raw())
        };
        let data = NonNull::new(block.cast::<T>()).ok_or(PoolAllocError { requested_bytes })?;
        // INVARIANT: the block is zeroed (no POOL_FLAG_UNINITIALIZED), and
        // all-zero bytes are valid `T`s (`Zeroable`); pool blocks are
        // aligned to 16 bytes, enough for every `Zeroable` type.
        Ok(Self { data, len, tag })
    }
}

impl<T: Zeroable> Deref for PoolSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: by the type invariant `data` holds `len` initialised `T`s
        // owned by `self`.
        unsafe { core::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for PoolSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for PoolSlice<T> {
    fn drop(&mut self) {
        if self.len == 0 || size_of::<T>() == 0 {
            return;
        }
        // SAFETY: by the type invariant the block came from ExAllocatePool2
        // with this tag and is freed only here, once. `Zeroable` types have
        // no drop glue.
        unsafe { storport_sys::ExFreePoolWithTag(self.data.as_ptr().cast(), self.tag.to_raw()) }
    }
}

impl<T: Zeroable> fmt::Debug for PoolSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSlice")
            .field("len", &self.len)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}
