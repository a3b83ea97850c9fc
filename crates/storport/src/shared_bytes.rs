//! Plain memory that concurrent callbacks copy in and out of with `memcpy`,
//! guarded by a reader-writer spin lock.
//!
//! # Why this is free of data races
//!
//! Storport calls a virtual miniport's `HwStartIo` on several processors at
//! once, so two requests may touch the same bytes at the same time. The
//! bytes live in `AtomicU64` words (storage with interior mutability, so
//! writing through a pointer derived from a shared reference is allowed),
//! but they are copied non-atomically, with `copy_nonoverlapping`, which
//! compiles to `memcpy`. That is sound only because every access holds the
//! lock of the [`SharedBytes`] it touches:
//!
//! - a copy out ([`SharedBytes::read`]) holds it shared: readers only read,
//!   so concurrent readers never race;
//! - a copy in or a fill ([`SharedBytes::write`], [`SharedBytes::zero`])
//!   holds it exclusively, so no other access to the bytes runs meanwhile.
//!
//! Acquiring the lock is an `Acquire` read-modify-write and releasing it a
//! `Release` one, so every copy happens-before the next conflicting one:
//! there is no data race in Rust's (C++20's) sense. The bytes are never
//! accessed atomically, so mixing atomic and non-atomic accesses never
//! arises either. [`SharedBytes::read`], [`SharedBytes::write`] and
//! [`SharedBytes::zero`] hold the lock for one copy and never nest.
//! [`SharedBytes::with_exclusive`] lends the bytes out as `&mut [u8]` with
//! the lock held exclusively, so a caller may nest it to update several
//! [`SharedBytes`] as one step: such callers must take the locks in one
//! agreed order (ascending address, say). Since every other access holds
//! one lock at a time, that order rules out deadlock.
//!
//! It spins rather than waits, which a miniport at `DISPATCH_LEVEL` may do
//! (SDV `SpNoWait` forbids waits, not spins); each hold lasts one bounded
//! copy. A writer announces itself, and new readers let it go first, so a
//! steady stream of reads cannot starve writes.

use core::ops::Deref;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Lock word: bit 31 = a writer holds the lock, bit 30 = a writer waits,
/// bits 0..30 = readers holding it.
const WRITER: u32 = 1 << 31;
const WRITER_WAITING: u32 = 1 << 30;
const READERS: u32 = WRITER_WAITING - 1;

/// Bytes in words of type `C` (pool memory in a driver, boxed slices in
/// tests), copied with `memcpy` under a reader-writer spin lock.
///
/// # Invariants
///
/// The words are accessed only through raw byte pointers while `lock` is
/// held in the matching mode (shared to read, exclusive to write), and never
/// atomically or through references to their contents.
pub struct SharedBytes<C> {
    lock: AtomicU32,
    words: C,
}

impl<C> core::fmt::Debug for SharedBytes<C>
where
    C: Deref<Target = [AtomicU64]>,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedBytes")
            .field("len_bytes", &self.len_bytes())
            .finish_non_exhaustive()
    }
}

impl<C: Deref<Target = [AtomicU64]>> SharedBytes<C> {
    /// Shares `words` (their current contents become the bytes, in the
    /// machine's byte order).
    pub const fn new(words: C) -> Self {
        // INVARIANT: the words are owned here and nothing else can reach them.
        Self {
            lock: AtomicU32::new(0),
            words,
        }
    }

    /// Number of bytes.
    #[must_use]
    pub fn len_bytes(&self) -> usize {
        self.words.len() * size_of::<u64>()
    }

    /// Byte `offset` (a pointer only; callers check the range). Writable
    /// because the words are interior-mutable.
    fn at(&self, offset: usize) -> *mut u8 {
        self.words
            .as_ptr()
            .cast::<u8>()
            .cast_mut()
            .wrapping_add(offset)
    }

    /// Whether `offset..offset + len` lies inside the bytes.
    fn contains(&self, offset: usize, len: usize) -> bool {
        offset
            .checked_add(len)
            .is_some_and(|end| end <= self.len_bytes())
    }

    /// Copies the bytes at `offset` into `out`. Returns `false` (and copies
    /// nothing) when the range does not lie inside the bytes.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        if !self.contains(offset, out.len()) {
            return false;
        }
        let _guard = self.lock_shared();
        // SAFETY: `offset + out.len() <= len_bytes()` (checked above), so the
        // source lies inside the words; `out` is a distinct exclusive borrow,
        // so the ranges do not overlap. The shared lock is held, so no
        // writer touches these bytes during the copy (the type's invariant).
        unsafe {
            core::ptr::copy_nonoverlapping(self.at(offset), out.as_mut_ptr(), out.len());
        }
        true
    }

    /// Copies `data` to the bytes at `offset`. Returns `false` (and copies
    /// nothing) when the range does not lie inside the bytes.
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        if !self.contains(offset, data.len()) {
            return false;
        }
        let _guard = self.lock_exclusive();
        // SAFETY: the target lies inside the words (checked above); `data`
        // is a shared borrow of other memory, so the ranges do not overlap.
        // The exclusive lock is held, so no other access to these bytes runs
        // during the copy; the words are interior-mutable, so writing through
        // a pointer derived from `&self` is allowed.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.at(offset), data.len());
        }
        true
    }

    /// Runs `f` on the `len` bytes at `offset`, lent out as one mutable
    /// slice with the lock held exclusively: no other access to any of these
    /// bytes runs until `f` returns, so a read-modify-write in `f` is one
    /// indivisible step (COMPARE AND WRITE, ORWRITE). Returns `None` (and
    /// does not call `f`) when the range does not lie inside the bytes.
    ///
    /// `f` may call `with_exclusive` on *another* `SharedBytes`, to update
    /// both as one step; see the module documentation for the lock order.
    /// Calling it on the same `SharedBytes` spins forever.
    pub fn with_exclusive<R>(
        &self,
        offset: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Option<R> {
        if !self.contains(offset, len) {
            return None;
        }
        let _guard = self.lock_exclusive();
        // SAFETY: the range lies inside the words (checked above), which are
        // interior-mutable, so a mutable view derived from `&self` is allowed.
        // It is unique while it lives: every other access to these bytes
        // holds this lock, which stays held exclusively until the guard drops
        // after `f` returns, and the slice does not escape `f`.
        let bytes = unsafe { core::slice::from_raw_parts_mut(self.at(offset), len) };
        Some(f(bytes))
    }

    /// Sets `len` bytes at `offset` to zero. Returns `false` (and changes
    /// nothing) when the range does not lie inside the bytes.
    pub fn zero(&self, offset: usize, len: usize) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let _guard = self.lock_exclusive();
        // SAFETY: as in `write`: inside the words, exclusive lock held,
        // interior-mutable storage.
        unsafe {
            core::ptr::write_bytes(self.at(offset), 0, len);
        }
        true
    }

    fn lock_shared(&self) -> Guard<'_> {
        let mut state = self.lock.load(Ordering::Relaxed);
        loop {
            if state & (WRITER | WRITER_WAITING) == 0 && state & READERS < READERS {
                match self.lock.compare_exchange_weak(
                    state,
                    state + 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Guard {
                            lock: &self.lock,
                            release: 1,
                        };
                    }
                    Err(now) => state = now,
                }
            } else {
                core::hint::spin_loop();
                state = self.lock.load(Ordering::Relaxed);
            }
        }
    }

    fn lock_exclusive(&self) -> Guard<'_> {
        let mut state = self.lock.load(Ordering::Relaxed);
        loop {
            if state & (WRITER | READERS) == 0 {
                // Free (perhaps with our own or another writer's waiting
                // mark): take it and clear the mark; another waiting writer
                // sets it again on its next turn.
                match self.lock.compare_exchange_weak(
                    state,
                    WRITER,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Guard {
                            lock: &self.lock,
                            release: WRITER,
                        };
                    }
                    Err(now) => state = now,
                }
            } else {
                if state & WRITER_WAITING == 0 {
                    self.lock.fetch_or(WRITER_WAITING, Ordering::Relaxed);
                }
                core::hint::spin_loop();
                state = self.lock.load(Ordering::Relaxed);
            }
        }
    }
}

/// A held lock; released (the hold subtracted) on drop.
#[must_use = "the lock is released when the guard is dropped"]
struct Guard<'a> {
    lock: &'a AtomicU32,
    release: u32,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.lock.fetch_sub(self.release, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec;

    fn bytes(words: usize) -> SharedBytes<Box<[AtomicU64]>> {
        SharedBytes::new((0..words).map(|_| AtomicU64::new(0)).collect())
    }

    #[test]
    fn write_read_and_zero_round_trip() {
        let shared = bytes(4);
        assert_eq!(shared.len_bytes(), 32);
        assert!(shared.write(3, &[1, 2, 3, 4, 5]));
        let mut out = [0xEE_u8; 10];
        assert!(shared.read(0, &mut out));
        assert_eq!(out, [0, 0, 0, 1, 2, 3, 4, 5, 0, 0]);
        assert!(shared.zero(4, 2));
        assert!(shared.read(0, &mut out));
        assert_eq!(out, [0, 0, 0, 1, 0, 0, 4, 5, 0, 0]);
    }

    #[test]
    fn with_exclusive_lends_the_range_and_refuses_out_of_range() {
        let shared = bytes(2);
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
    }

    #[test]
    fn concurrent_read_modify_writes_lose_no_update() {
        let shared = bytes(1);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let shared = &shared;
                scope.spawn(move || {
                    for _ in 0..2000 {
                        shared.with_exclusive(0, 8, |bytes| {
                            let n = u64::from_le_bytes(bytes.try_into().unwrap());
                            bytes.copy_from_slice(&(n + 1).to_le_bytes());
                        });
                    }
                });
            }
        });
        let mut out = [0_u8; 8];
        assert!(shared.read(0, &mut out));
        assert_eq!(u64::from_le_bytes(out), 8000);
    }

    #[test]
    fn out_of_range_accesses_change_nothing() {
        let shared = bytes(2);
        let mut out = [0xEE_u8; 4];
        assert!(!shared.read(14, &mut out));
        assert_eq!(out, [0xEE; 4]);
        assert!(!shared.write(usize::MAX, &[1]));
        assert!(!shared.zero(8, 9));
        assert!(shared.read(12, &mut out));
        assert_eq!(out, [0; 4]);
    }

    #[test]
    fn concurrent_writers_and_readers_see_whole_writes() {
        // Each write fills the whole range with one value; a reader must
        // never see two values at once (a torn, racing copy would).
        let shared = bytes(512);
        std::thread::scope(|scope| {
            for thread in 1..=3_u8 {
                let shared = &shared;
                scope.spawn(move || {
                    let data = vec![thread; 4096];
                    for _ in 0..300 {
                        assert!(shared.write(0, &data));
                    }
                });
            }
            for _ in 0..2 {
                let shared = &shared;
                scope.spawn(move || {
                    let mut out = vec![0_u8; 4096];
                    for _ in 0..300 {
                        assert!(shared.read(0, &mut out));
                        assert!(out.iter().all(|&byte| byte == out[0]), "a torn copy");
                    }
                });
            }
        });
        // The lock is free again: an exclusive access gets through.
        assert!(shared.zero(0, 8));
    }
}
