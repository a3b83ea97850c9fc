//! [`LentBytes`]: a request's data-out buffer, which the miniport may copy
//! from but never borrow.
//!
//! The data buffer of an SRB is memory the port lends for the request, and
//! it is not always the port's alone: a pass-through request
//! (`IOCTL_SCSI_PASS_THROUGH_DIRECT`) maps the caller's own pages, which the
//! caller's other threads can change while the miniport runs. A parameter
//! list read twice can then say one thing when it is checked and another
//! when it is acted on (a "double fetch"). So the layer never hands out a
//! `&[u8]` of that memory: [`LentBytes::copy_to`] copies a range into memory
//! the miniport owns, and whatever the miniport decides, it decides from its
//! copy. A copy of a buffer that changes meanwhile may be torn; it is still
//! one set of bytes, which every later step sees alike. The copy is opaque
//! to the optimizer, so the compiler cannot turn a read of the copy back
//! into a second read of the lent memory.
//!
//! ```
//! use storport::LentBytes;
//! let list = [0_u8, 22, 0, 16, 0, 0, 0, 0];
//! let lent = LentBytes::from(&list[..]);
//! let mut header = [0_u8; 4];
//! assert!(lent.copy_to(0, &mut header));
//! assert_eq!(u16::from_be_bytes([header[2], header[3]]), 16);
//! assert!(!lent.copy_to(6, &mut header), "only two bytes remain at 6");
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::ops::Range;
use core::ptr::NonNull;

/// Bytes lent for one request that the miniport reads only by copying them
/// out ([`copy_to`](Self::copy_to)).
///
/// # Invariants
///
/// `start..start + len` is readable for `'a` and not written through any
/// Rust reference while the value lives: it is either a shared slice
/// ([`From<&[u8]>`]) or an SRB's data buffer, which the port lends to the
/// request until it completes and which only the port's other clients may
/// change. It is only ever read by `copy_nonoverlapping` into memory that
/// is not part of it, never through a reference.
#[derive(Clone, Copy)]
pub struct LentBytes<'a> {
    start: NonNull<u8>,
    len: usize,
    _lent: PhantomData<&'a [u8]>,
}

impl LentBytes<'_> {
    /// No bytes.
    #[must_use]
    pub const fn empty() -> Self {
        // INVARIANT: an empty range is readable anywhere.
        Self {
            start: NonNull::dangling(),
            len: 0,
            _lent: PhantomData,
        }
    }

    /// The SRB's data buffer of `len` bytes at `start`.
    ///
    /// # Safety
    ///
    /// `start..start + len` must be readable for `'a`, written by no Rust
    /// code while the value lives, and may be changed only by parties
    /// outside this driver (the port and its clients).
    pub(crate) const unsafe fn from_raw(start: NonNull<u8>, len: usize) -> Self {
        // INVARIANT: the caller's promise.
        Self {
            start,
            len,
            _lent: PhantomData,
        }
    }

    /// Number of bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes at `range`, or `None` when it does not lie inside; touches
    /// no memory.
    #[must_use]
    pub fn get(&self, range: Range<usize>) -> Option<Self> {
        let len = range.end.checked_sub(range.start)?;
        if range.end > self.len {
            return None;
        }
        // INVARIANT: a sub-range of a readable range is readable for as long.
        Some(Self {
            start: self
                .start
                .map_addr(|address| address.saturating_add(range.start)),
            len,
            _lent: PhantomData,
        })
    }

    /// Copies the bytes at `offset..offset + out.len()` into `out`. Returns
    /// `false` (and copies nothing) when that range does not lie inside.
    #[must_use = "a `false` return means nothing was copied"]
    #[inline]
    pub fn copy_to(&self, offset: usize, out: &mut [u8]) -> bool {
        let fits = offset
            .checked_add(out.len())
            .is_some_and(|end| end <= self.len);
        if !fits {
            return false;
        }
        // SAFETY: `offset + out.len() <= len` (checked above), so the source
        // lies inside the lent range, readable for `'a` (the invariant);
        // `out` is an exclusive borrow, so it is not part of the lent range,
        // which no Rust reference may write. Bytes another party changes
        // meanwhile make the copy torn, not invalid: any byte value is a
        // valid `u8`.
        unsafe {
            crate::shared_bytes::copy_bytes(
                self.start.as_ptr().wrapping_add(offset),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        // The compiler takes the lent bytes for ordinary memory that nothing else changes, so
        // it could read them again where the code reads the copy, or drop a second copy of them
        // as redundant. Past this point it must assume the copy holds anything: what the code
        // reads once is read once. On x86-64 the copy is an `asm!` block, which the compiler
        // cannot see through already.
        #[cfg(not(target_arch = "x86_64"))]
        core::hint::black_box(&mut *out);
        true
    }
}

impl<'a> From<&'a [u8]> for LentBytes<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        // SAFETY: a shared slice is readable for its lifetime and written by
        // no one while it lives.
        unsafe { Self::from_raw(NonNull::from(bytes).cast(), bytes.len()) }
    }
}

impl Default for LentBytes<'_> {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for LentBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LentBytes")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::LentBytes;

    #[test]
    fn copies_inside_and_refuses_outside() {
        let bytes = [1_u8, 2, 3, 4, 5];
        let lent = LentBytes::from(&bytes[..]);
        assert_eq!(lent.len(), 5);
        let mut out = [0_u8; 3];
        assert!(lent.copy_to(2, &mut out));
        assert_eq!(out, [3, 4, 5]);
        let mut out = [9_u8; 3];
        assert!(!lent.copy_to(3, &mut out));
        assert_eq!(out, [9; 3], "a refused copy leaves the buffer alone");
        assert!(!lent.copy_to(usize::MAX, &mut out));
        assert!(lent.copy_to(5, &mut []));
    }

    #[test]
    fn sub_ranges_are_views_of_the_same_bytes() {
        let bytes = [1_u8, 2, 3, 4, 5];
        let lent = LentBytes::from(&bytes[..]);
        let tail = lent.get(3..5).expect("inside");
        let mut out = [0_u8; 2];
        assert!(tail.copy_to(0, &mut out));
        assert_eq!(out, [4, 5]);
        assert!(lent.get(4..6).is_none());
        assert!(lent.get(5..5).is_some_and(|empty| empty.is_empty()));
        assert!(LentBytes::empty().is_empty());
    }
}
