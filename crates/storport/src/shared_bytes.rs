//! Plain memory that concurrent callbacks copy in and out of with `memcpy`,
//! guarded by a reader-writer kernel spin lock.
//!
//! # Why this is free of data races
//!
//! Storport calls a virtual miniport's `HwStartIo` on several processors at
//! once, so two requests may touch the same bytes at the same time. The
//! bytes live in `AtomicU64` words (storage with interior mutability, so
//! writing through a pointer derived from a shared reference is allowed),
//! but they are copied non-atomically, with `copy_nonoverlapping`, which
//! compiles to `memcpy`. That is sound only because every access holds the
//! lock of the [`SharedBytes`] it touches, an [`RwSpinLock`]
//! (`EX_SPIN_LOCK`):
//!
//! - a copy out ([`SharedBytes::read`]) holds it shared: readers only read,
//!   so concurrent readers never race, and concurrent READs of one chunk of
//!   a RAM disk do not wait for each other;
//! - a copy in or a fill ([`SharedBytes::write`], [`SharedBytes::zero`])
//!   holds it exclusively, so no other access to the bytes runs meanwhile.
//!
//! The kernel's acquire and release order memory like any lock, so every
//! copy happens-before the next conflicting one: there is no data race in
//! Rust's (C++20's) sense. The bytes are never accessed atomically, so
//! mixing atomic and non-atomic accesses never arises either.
//! [`SharedBytes::read`], [`SharedBytes::write`] and [`SharedBytes::zero`]
//! hold the lock for one copy and never nest. [`SharedBytes::with_exclusive`]
//! lends the bytes out as `&mut [u8]` with the lock held exclusively, so a
//! caller may nest it to update several [`SharedBytes`] as one step: such
//! callers must take the locks in one agreed order (ascending address, say).
//! Since every other access holds one lock at a time, that order rules out
//! deadlock.
//!
//! The lock raises the IRQL to `DISPATCH_LEVEL` for each copy (see
//! [`crate::spin_lock`] for why a lock taken in start-io must, and for the
//! measurement behind the choice of an `EX_SPIN_LOCK`), so a copy is never
//! preempted on its processor by a request that wants the same lock; each
//! hold lasts one bounded copy.
//!
//! # Why only some storage
//!
//! The bounds check and the copies use a pointer and a length taken once,
//! when the [`SharedBytes`] is made, so they rely on the storage keeping
//! its words where they are and on nothing else reaching them: two
//! [`SharedBytes`] over the same words would each lock only its own lock
//! and race. [`SharedBytes::new`] therefore takes only [`UniqueWords`]:
//! storage that owns its one slice of words (a [`PoolSlice`], a `Box`),
//! never a shared reference or a reference-counted slice.
//!
//! ```compile_fail,E0277
//! use core::sync::atomic::AtomicU64;
//! use storport::SharedBytes;
//!
//! static WORDS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
//! let first = SharedBytes::new(&WORDS[..]);
//! ```
//!
//! ```
//! use core::sync::atomic::AtomicU64;
//! use storport::SharedBytes;
//!
//! let words: Box<[AtomicU64]> = (0..2).map(|_| AtomicU64::new(0)).collect();
//! let bytes = SharedBytes::new(words);
//! assert_eq!(bytes.len_bytes(), 16);
//! ```

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

use alloc::boxed::Box;

use crate::lent::LentBytes;
use crate::pool::PoolSlice;
use crate::spin_lock::RwSpinLock;

/// Copies `len` bytes from `from` to `to`: one `rep movsb` in line on
/// x86-64 (what the kernel's own `memcpy` and the compiler's use for a
/// copy of unknown size on processors with fast string moves, without the
/// call), `copy_nonoverlapping` elsewhere.
///
/// # Safety
///
/// `from` is readable and `to` writable for `len` bytes, and the two
/// ranges do not overlap (as for `copy_nonoverlapping`).
#[inline]
pub(crate) unsafe fn copy_bytes(from: *const u8, to: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's promise: `rep movsb` reads `len` bytes at `from`
    // and writes them at `to`, forward (the x64 ABI keeps the direction
    // flag clear at calls and returns); without `nomem` the compiler takes
    // the instruction as reading and writing any memory, so no access moves
    // across it.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") from => _,
            inout("rdi") to => _,
            options(nostack, preserves_flags),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: the caller's promise.
    unsafe {
        core::ptr::copy_nonoverlapping(from, to, len);
    }
}

mod private {
    pub trait Sealed {}
}

/// Storage a [`SharedBytes`] may be made of: one slice of words it owns.
///
/// Nothing else reaches the words, and their address does not change while
/// the storage lives. Sealed: the list is this crate's,
/// [`PoolSlice<AtomicU64>`] and `Box<[AtomicU64]>`.
///
/// # Safety
///
/// An implementing type derefs to the same slice (address and length) on
/// every call for as long as the value lives, moving the value does not move
/// the words, and no other value or reference reaches the words while it
/// lives (it owns them).
pub unsafe trait UniqueWords:
    core::ops::Deref<Target = [AtomicU64]> + private::Sealed
{
}

impl private::Sealed for PoolSlice<AtomicU64> {}
// SAFETY: a `PoolSlice` owns its pool block, which never moves and which it
// hands out only through `Deref`/`DerefMut` of itself; its slice is fixed at
// allocation.
unsafe impl UniqueWords for PoolSlice<AtomicU64> {}

impl private::Sealed for Box<[AtomicU64]> {}
// SAFETY: a boxed slice owns its heap block, which does not move when the
// box moves, and its length is fixed.
unsafe impl UniqueWords for Box<[AtomicU64]> {}

/// Bytes in words of type `C` (pool memory in a driver, boxed slices in
/// tests), copied with `memcpy` under a reader-writer kernel spin lock.
///
/// # Invariants
///
/// `bytes` and `len_bytes` are the address and size of the words `words`
/// owned when the value was made (which stay there while `words` lives, by
/// [`UniqueWords`]). The words are accessed only through `bytes` while
/// `lock` is held in the matching mode (shared to read, exclusive to write),
/// and never atomically or through references to their contents.
///
/// The lock comes first (`repr(C)`): the address of a chunk is then the
/// address of its lock, the argument of every acquire and release, which
/// saves an addition per request (measured with vstor-bench).
#[repr(C)]
pub struct SharedBytes<C> {
    lock: RwSpinLock<()>,
    bytes: NonNull<u8>,
    len_bytes: usize,
    /// Owns the words; never dereferenced after construction.
    _words: C,
    /// Fills the value to 64 bytes with pool words (`PoolSlice`, 24 bytes): a table of
    /// chunks is then indexed with a shift, and no chunk's lock shares a 64-byte line with
    /// another's.
    _pad: [u64; 2],
}

// The padding's purpose: a chunk of pool words fills 64 bytes exactly.
const _: () = assert!(size_of::<SharedBytes<PoolSlice<AtomicU64>>>() == 64);

// SAFETY: the value owns its words through `C` (moved with it when `C` is
// `Send`); `bytes` points into them.
unsafe impl<C: UniqueWords + Send> Send for SharedBytes<C> {}
// SAFETY: a shared `SharedBytes` only copies through `bytes` with the lock
// held in the matching mode (the type's invariant), and the words are
// interior-mutable atomics; `C` itself is not reached through `&self`.
unsafe impl<C: UniqueWords + Send> Sync for SharedBytes<C> {}

impl<C: UniqueWords> core::fmt::Debug for SharedBytes<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedBytes")
            .field("len_bytes", &self.len_bytes)
            .finish_non_exhaustive()
    }
}

impl<C: UniqueWords> SharedBytes<C> {
    /// Shares `words` (their current contents become the bytes, in the
    /// machine's byte order).
    pub fn new(words: C) -> Self {
        let slice: &[AtomicU64] = &words;
        let len_bytes = size_of_val(slice);
        let bytes = NonNull::from(slice).cast::<u8>();
        // INVARIANT: `words` owns the slice just read and keeps it in place
        // while it lives (`UniqueWords`); nothing else reaches it.
        Self {
            lock: RwSpinLock::new(()),
            bytes,
            len_bytes,
            _words: words,
            _pad: [0; 2],
        }
    }

    /// Number of bytes.
    #[must_use]
    pub const fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// Byte `offset` (a pointer only; callers check the range). Writable
    /// because the words are interior-mutable.
    const fn at(&self, offset: usize) -> *mut u8 {
        self.bytes.as_ptr().wrapping_add(offset)
    }

    /// Whether `offset..offset + len` lies inside the bytes.
    const fn contains(&self, offset: usize, len: usize) -> bool {
        match offset.checked_add(len) {
            Some(end) => end <= self.len_bytes,
            None => false,
        }
    }

    /// Copies the bytes at `offset` into `out`. Returns `false` (and copies
    /// nothing) when the range does not lie inside the bytes.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and READ(10) / WRITE(10) pay for its frame"
    )]
    #[inline(always)]
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        if !self.contains(offset, out.len()) {
            return false;
        }
        // The address before the lock: fewer values live across the call.
        let from = self.at(offset);
        let _guard = self.lock.lock_shared();
        // SAFETY: `offset + out.len() <= len_bytes` (checked above), so the
        // source lies inside the words; `out` is a distinct exclusive borrow,
        // so the ranges do not overlap. The shared lock is held, so no
        // writer touches these bytes during the copy (the type's invariant).
        unsafe {
            copy_bytes(from, out.as_mut_ptr(), out.len());
        }
        true
    }

    /// Copies `data` to the bytes at `offset`. Returns `false` (and copies
    /// nothing) when the range does not lie inside the bytes.
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        if !self.contains(offset, data.len()) {
            return false;
        }
        let _guard = self.lock.lock_exclusive();
        // SAFETY: the target lies inside the words (checked above); `data`
        // is a shared borrow of other memory, so the ranges do not overlap.
        // The exclusive lock is held, so no other access to these bytes runs
        // during the copy; the words are interior-mutable, so writing through
        // a pointer derived from a shared borrow is allowed.
        unsafe {
            copy_bytes(data.as_ptr(), self.at(offset), data.len());
        }
        true
    }

    /// Copies the lent bytes `data` to the bytes at `offset`, with the lock
    /// held exclusively: each lent byte is read once, straight into place.
    /// Returns `false` (and copies nothing) when the range does not lie
    /// inside the bytes.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and WRITE(10) pays for its frame"
    )]
    #[inline(always)]
    pub fn write_lent(&self, offset: usize, data: LentBytes<'_>) -> bool {
        if !self.contains(offset, data.len()) {
            return false;
        }
        // The address before the lock: fewer values live across the call.
        let to = self.at(offset);
        let _guard = self.lock.lock_exclusive();
        // SAFETY: the range lies inside the words (checked above), which are
        // interior-mutable, so a mutable view derived from a shared borrow is
        // allowed; it is unique while it lives, as in `with_exclusive`: every
        // other access to these bytes holds the lock, held exclusively until
        // the guard drops, after the slice's last use.
        let to = unsafe { core::slice::from_raw_parts_mut(to, data.len()) };
        // `to` is as long as `data`: the copy is whole.
        let _ = data.copy_to(0, to);
        true
    }

    /// Runs `f` on the `len` bytes at `offset`, lent out as one shared
    /// slice with the lock held shared: no write to any of these bytes runs
    /// until `f` returns, so `f` sees them as one snapshot. Returns `None`
    /// (and does not call `f`) when the range does not lie inside the bytes.
    ///
    /// Like [`SharedBytes::with_exclusive`], `f` may nest a hold of
    /// *another* `SharedBytes`, in the agreed lock order, to read both as
    /// one step.
    pub fn with_shared<R>(
        &self,
        offset: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if !self.contains(offset, len) {
            return None;
        }
        let _guard = self.lock.lock_shared();
        // SAFETY: the range lies inside the words (checked above). Nothing
        // writes them while the shared lock is held (every write holds it
        // exclusively, the type's invariant), which it is until the guard
        // drops after `f` returns; the slice does not escape `f`.
        let bytes = unsafe { core::slice::from_raw_parts(self.at(offset), len) };
        Some(f(bytes))
    }

    /// Runs `f` on the `len` bytes at `offset`, lent out as one mutable
    /// slice with the lock held exclusively: no other access to any of these
    /// bytes runs until `f` returns, so a read-modify-write in `f` is one
    /// indivisible step (COMPARE AND WRITE, ORWRITE). Returns `None` (and
    /// does not call `f`) when the range does not lie inside the bytes.
    ///
    /// `f` may call `with_exclusive` on *another* `SharedBytes`, to update
    /// both as one step; see the module documentation for the lock order.
    /// Calling it on the same `SharedBytes` is a recursive acquisition,
    /// which deadlocks (`SpinLockRecursive` under storemu).
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and READ(10) / WRITE(10) pay for its frame"
    )]
    #[inline(always)]
    pub fn with_exclusive<R>(
        &self,
        offset: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Option<R> {
        if !self.contains(offset, len) {
            return None;
        }
        let _guard = self.lock.lock_exclusive();
        // SAFETY: the range lies inside the words (checked above), which are
        // interior-mutable, so a mutable view derived from a shared borrow is
        // allowed. It is unique while it lives: every other access to these
        // bytes holds this lock, which stays held exclusively until the guard
        // drops after `f` returns, and the slice does not escape `f`.
        let bytes = unsafe { core::slice::from_raw_parts_mut(self.at(offset), len) };
        Some(f(bytes))
    }

    /// Sets `len` bytes at `offset` to zero. Returns `false` (and changes
    /// nothing) when the range does not lie inside the bytes.
    pub fn zero(&self, offset: usize, len: usize) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let _guard = self.lock.lock_exclusive();
        // SAFETY: as in `write`: inside the words, exclusive lock held,
        // interior-mutable storage.
        unsafe {
            core::ptr::write_bytes(self.at(offset), 0, len);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;
    use storport_emu::port::host::{Kernel, irql};

    const PASSIVE_LEVEL: u8 = 0;
    const DISPATCH_LEVEL: u8 = 2;

    fn bytes(words: usize) -> SharedBytes<Box<[AtomicU64]>> {
        SharedBytes::new((0..words).map(|_| AtomicU64::new(0)).collect())
    }

    #[test]
    fn write_read_and_zero_round_trip() {
        let kernel = Kernel::new();
        let shared = bytes(4);
        assert_eq!(shared.len_bytes(), 32);
        kernel.run(PASSIVE_LEVEL, || {
            assert!(shared.write(3, &[1, 2, 3, 4, 5]));
            let mut out = [0xEE_u8; 10];
            assert!(shared.read(0, &mut out));
            assert_eq!(out, [0, 0, 0, 1, 2, 3, 4, 5, 0, 0]);
            assert!(shared.zero(4, 2));
            assert!(shared.read(0, &mut out));
            assert_eq!(out, [0, 0, 0, 1, 0, 0, 4, 5, 0, 0]);
        });
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn the_words_stay_where_they_were_when_the_value_moves() {
        let kernel = Kernel::new();
        let shared = bytes(2);
        kernel.run(PASSIVE_LEVEL, || assert!(shared.write(0, &[9; 16])));
        let moved = Box::new(shared);
        let mut out = [0_u8; 16];
        kernel.run(PASSIVE_LEVEL, || assert!(moved.read(0, &mut out)));
        assert_eq!(out, [9; 16]);
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn every_copy_runs_at_dispatch_level_and_the_irql_comes_back() {
        // The copy itself cannot report its IRQL, but `with_exclusive`'s
        // closure runs where the copies run: inside the hold.
        let kernel = Kernel::new();
        let shared = bytes(1);
        let seen = kernel.run(PASSIVE_LEVEL, || {
            let inside = shared.with_exclusive(0, 8, |_| irql());
            let mut out = [0_u8; 8];
            assert!(shared.read(0, &mut out) && shared.write(0, &out) && shared.zero(0, 8));
            (inside, irql())
        });
        assert_eq!(seen, (Some(DISPATCH_LEVEL), PASSIVE_LEVEL));
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn with_exclusive_lends_the_range_and_refuses_out_of_range() {
        let kernel = Kernel::new();
        let shared = bytes(2);
        kernel.run(PASSIVE_LEVEL, || {
            assert!(shared.write(0, &[1, 2, 3, 4]));
            let seen = shared.with_exclusive(1, 2, |bytes| {
                let before = [bytes[0], bytes[1]];
                bytes.copy_from_slice(&[7, 8]);
                before
            });
            assert_eq!(seen, Some([2, 3]));
            let mut out = [0_u8; 5];
            assert!(shared.read(0, &mut out));
            assert_eq!(out, [1, 7, 8, 4, 0]);
            let mut called = false;
            assert_eq!(shared.with_exclusive(15, 2, |_| called = true), None);
            assert!(!called, "an out-of-range request must not run the closure");
        });
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn nested_exclusive_holds_of_two_values_release_cleanly() {
        let kernel = Kernel::new();
        let (first, second) = (bytes(1), bytes(1));
        let seen = kernel.run(PASSIVE_LEVEL, || {
            let nested = first.with_exclusive(0, 8, |a| {
                second.with_exclusive(0, 8, |b| {
                    a.fill(1);
                    b.fill(2);
                    irql()
                })
            });
            (nested, irql())
        });
        assert_eq!(seen, (Some(Some(DISPATCH_LEVEL)), PASSIVE_LEVEL));
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn concurrent_read_modify_writes_lose_no_update() {
        let kernel = Kernel::new();
        let shared = bytes(1);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    kernel.run(PASSIVE_LEVEL, || {
                        for _ in 0..500 {
                            shared.with_exclusive(0, 8, |bytes| {
                                let n = u64::from_le_bytes(bytes.try_into().unwrap());
                                std::thread::yield_now();
                                bytes.copy_from_slice(&(n + 1).to_le_bytes());
                            });
                        }
                    });
                });
            }
        });
        let mut out = [0_u8; 8];
        kernel.run(PASSIVE_LEVEL, || assert!(shared.read(0, &mut out)));
        assert_eq!(u64::from_le_bytes(out), 2000);
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn out_of_range_accesses_change_nothing() {
        let kernel = Kernel::new();
        let shared = bytes(2);
        kernel.run(PASSIVE_LEVEL, || {
            let mut out = [0xEE_u8; 4];
            assert!(!shared.read(14, &mut out));
            assert_eq!(out, [0xEE; 4]);
            assert!(!shared.write(usize::MAX, &[1]));
            assert!(!shared.zero(8, 9));
            assert!(shared.read(12, &mut out));
            assert_eq!(out, [0; 4]);
        });
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn concurrent_writers_and_readers_see_whole_writes() {
        // Each write fills the whole range with one value; a reader must
        // never see two values at once (a torn, racing copy would).
        let kernel = Kernel::new();
        let shared = bytes(512);
        std::thread::scope(|scope| {
            for thread in 1..=3_u8 {
                let (shared, kernel) = (&shared, &kernel);
                scope.spawn(move || {
                    let data = vec![thread; 4096];
                    kernel.run(PASSIVE_LEVEL, || {
                        for _ in 0..100 {
                            assert!(shared.write(0, &data));
                        }
                    });
                });
            }
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut out = vec![0_u8; 4096];
                    kernel.run(DISPATCH_LEVEL, || {
                        for _ in 0..100 {
                            assert!(shared.read(0, &mut out));
                            assert!(out.iter().all(|&byte| byte == out[0]), "a torn copy");
                        }
                    });
                });
            }
        });
        // The lock is free again: an exclusive access gets through.
        kernel.run(PASSIVE_LEVEL, || assert!(shared.zero(0, 8)));
        assert_eq!(kernel.findings(), Vec::new());
    }
}
