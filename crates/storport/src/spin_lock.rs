//! Kernel spin locks as guard types: [`SpinLock`] (a `KSPIN_LOCK`) and
//! [`RwSpinLock`] (an `EX_SPIN_LOCK`, held shared or exclusive).
//!
//! # Why a kernel lock
//!
//! `HW_STARTIO`: Storport calls a virtual miniport's `HwStartIo` "at any IRQL
//! <= `DISPATCH_LEVEL`". Below `DISPATCH_LEVEL` the call can lose its processor
//! at any instruction to a DPC, which starts another request on that
//! processor at `DISPATCH_LEVEL`. A lock that leaves the IRQL alone (an
//! interlocked loop of the driver's own) can thus be held by the preempted
//! call while the preempting one spins on it: the processor never comes
//! back to the holder, and Windows ends it with bug check 0x133
//! (`DPC_WATCHDOG_VIOLATION`). The kernel's spin locks raise the IRQL to
//! `DISPATCH_LEVEL` for the hold, so the holder keeps its processor until it
//! releases ("Introduction to Spin Locks"), and the release restores the
//! IRQL the acquire found.
//!
//! # Guards
//!
//! Acquiring returns a guard, the way Rust-for-Linux's `Lock` returns a
//! `Guard`: the lock is held while the guard lives and released when it is
//! dropped, with the IRQL the acquire found. The guard is the only way to
//! the protected data and the only way to release, so a miniport written on
//! this layer cannot forget to release or touch the data unlocked. It is
//! `#[must_use]` (an acquire whose guard is dropped at once protects
//! nothing) and not `Send`: a spin lock is released by the processor that
//! took it, at the IRQL it raised to.
//!
//! Guards held at the same time must be released in the reverse order of
//! their acquires: the second acquire found `DISPATCH_LEVEL` and gives that
//! back, the first gives back the caller's IRQL. Guards in local variables
//! or closures do this by themselves (Rust drops locals in reverse order);
//! an explicit `drop` of the first guard while the second lives would lower
//! the IRQL with a lock still held.
//!
//! # IRQL and memory
//!
//! Acquire at IRQL <= `DISPATCH_LEVEL`: in every callback of this layer but
//! the DIRQL cases of adapter control (stop and restart). An acquire above
//! `DISPATCH_LEVEL` is a bug check (Driver Verifier 0xC4 parameter 0x42;
//! `KeRaiseIrql` to a lower IRQL), not a silent failure. A lock must live in
//! nonpaged memory, which all of a miniport's memory is: its device
//! extension, its pool ([`PoolSlice`](crate::PoolSlice), the global
//! allocator) and its image. A lock is not reentrant: taking a lock the
//! processor already holds deadlocks (storemu reports `SpinLockRecursive`).
//!
//! # Which kernel lock
//!
//! Of the locks a virtual miniport may take:
//!
//! - an in-stack queued spin lock (`KeAcquireInStackQueuedSpinLock`) lives
//!   in a `KLOCK_QUEUE_HANDLE` that other processors link to while it is
//!   held, so the handle must not move: it cannot be part of a guard that is
//!   returned by value. Its gain, fairness under heavy contention ("Queued
//!   Spin Locks"), does not apply to holds of one bounded copy;
//! - `StorPortAcquireSpinLock` offers only Storport's own locks (`DpcLock`,
//!   `StartIoLock`, `InterruptLock`), one per adapter: one of them around
//!   every copy would serialize all of the adapter's I/O;
//! - an ordinary spin lock ([`SpinLock`]: `KeAcquireSpinLockRaiseToDpc`,
//!   `KeReleaseSpinLock`) is the plainest exclusive lock, "a better choice
//!   for lightly contended or shorter duration locks" (Queued Spin Locks);
//! - a reader/writer spin lock ([`RwSpinLock`]:
//!   `ExAcquireSpinLockShared/Exclusive`) lets readers hold it together,
//!   which is what data read far more often than written wants (a RAM
//!   disk's chunks under concurrent READs).
//!
//! Measured per request in vstor when the lock was chosen, before the
//! plain-request fast path (vstor-bench, callgrind, instructions
//! inside vstor.sys from `HwStartIo` to completion, the 4 KiB copy included; the kernel routine's own
//! instructions lie outside the image and are not counted), with each
//! kind guarding the RAM disk's chunks: READ(10) / WRITE(10) of 4 KiB cost
//! 4513 / 4504 with `EX_SPIN_LOCK`, 4512 / 4503 with an ordinary
//! `KSPIN_LOCK` and 4514 / 4505 with an in-stack queued one, against
//! 4483 / 4478 with the interlocked loop vstor had before (which did not
//! raise the IRQL). Calling the kernel costs 25 to 30 instructions a
//! request whichever lock it is, so the choice follows from what each
//! lock allows: `EX_SPIN_LOCK` for the chunks, since concurrent READs of
//! one chunk then proceed together, and an ordinary `KSPIN_LOCK` for
//! rare, exclusive holds (a disk's persistent-reservation state). Both
//! guards hold the lock word and the IRQL to restore, and no handle, so
//! they move freely. (The `HwStorPortProhibitedDDIs` SDV rule lists kernel
//! DDIs that *physical* Storport miniports should not call; a virtual
//! miniport is not bound by it.)

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use storport_sys::{EX_SPIN_LOCK, KIRQL, KSPIN_LOCK};

/// Makes a guard neither `Send` nor `Sync`: it belongs to the processor
/// that acquired the lock.
type NotSend = PhantomData<*mut ()>;

/// Data of type `T` behind an ordinary kernel spin lock (`KSPIN_LOCK`).
///
/// [`SpinLock::lock`] raises the IRQL to `DISPATCH_LEVEL` and returns a
/// [`SpinLockGuard`] that gives `&mut T`; dropping it releases the lock and
/// restores the IRQL. See the [module documentation](self) for the IRQL and
/// ordering rules.
///
/// ```no_run
/// use storport::SpinLock;
///
/// struct Counters { requests: u64, errors: u64 }
/// static COUNTERS: SpinLock<Counters> = SpinLock::new(Counters { requests: 0, errors: 0 });
///
/// fn count(failed: bool) {
///     let mut counters = COUNTERS.lock();
///     counters.requests += 1;
///     counters.errors += u64::from(failed);
/// } // released here, at the IRQL `lock` found
/// ```
///
/// # Invariants
///
/// `word` is a `KSPIN_LOCK` that only `KeAcquireSpinLockRaiseToDpc` and
/// `KeReleaseSpinLock` touch after construction, and `data` is accessed
/// only through a [`SpinLockGuard`], which exists only while this
/// processor holds the lock.
pub struct SpinLock<T: ?Sized> {
    word: UnsafeCell<KSPIN_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands its data to one processor at a time (the type's
// invariant), so sharing the lock moves `T` between threads, no more.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: a `SpinLock` owns its data; moving it moves the `T`.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A free lock around `data` (the word zeroed, as `KeInitializeSpinLock`
    /// leaves it).
    pub const fn new(data: T) -> Self {
        // INVARIANT: nothing has touched the word yet.
        Self {
            word: UnsafeCell::new(0),
            data: UnsafeCell::new(data),
        }
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Raises to `DISPATCH_LEVEL` and takes the lock
    /// (`KeAcquireSpinLockRaiseToDpc`), spinning while another processor
    /// holds it. Call at IRQL <= `DISPATCH_LEVEL`, not holding this lock.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        // SAFETY: `word` is a zero-initialised KSPIN_LOCK in nonpaged
        // memory (every allocation of a miniport is), touched only by the
        // kernel's spin-lock routines (the type's invariant); the routine
        // raises to `DISPATCH_LEVEL` itself.
        let old_irql = unsafe { storport_sys::KeAcquireSpinLockRaiseToDpc(self.word.get()) };
        // INVARIANT: this processor holds the lock now.
        SpinLockGuard {
            lock: self,
            old_irql,
            _not_send: PhantomData,
        }
    }

    /// The data, through a unique borrow of the lock: nobody else can hold
    /// it, so no locking is needed.
    pub const fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for SpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinLock").finish_non_exhaustive()
    }
}

/// A held [`SpinLock`]: gives the data; releases the lock and restores the
/// IRQL when dropped.
///
/// # Invariants
///
/// This processor holds `lock`, acquired by `KeAcquireSpinLockRaiseToDpc`
/// that returned `old_irql`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SpinLockGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
    old_irql: KIRQL,
    _not_send: NotSend,
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held (the guard's invariant), so no other
        // processor reaches the data; the borrow cannot outlive the guard.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow
        // of the data through this guard, which is the only guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this processor holds the lock, acquired with
        // KeAcquireSpinLockRaiseToDpc, which returned `old_irql` (the
        // guard's invariant); the guard is dropped once.
        unsafe { storport_sys::KeReleaseSpinLock(self.lock.word.get(), self.old_irql) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Data of type `T` behind a reader/writer kernel spin lock
/// (`EX_SPIN_LOCK`): any number of processors may hold it shared, or one
/// exclusively.
///
/// [`RwSpinLock::lock_shared`] (`ExAcquireSpinLockShared`) gives `&T`,
/// [`RwSpinLock::lock_exclusive`] (`ExAcquireSpinLockExclusive`) gives
/// `&mut T`; both raise to `DISPATCH_LEVEL` and their guards restore the IRQL
/// when dropped. See the [module documentation](self) for the IRQL and
/// ordering rules.
///
/// ```no_run
/// use storport::RwSpinLock;
///
/// static LIMITS: RwSpinLock<[u32; 2]> = RwSpinLock::new([512, 1 << 20]);
///
/// fn max_transfer() -> u32 {
///     LIMITS.lock_shared()[1]
/// }
///
/// fn set_max_transfer(bytes: u32) {
///     LIMITS.lock_exclusive()[1] = bytes;
/// }
/// ```
///
/// # Invariants
///
/// `word` is an `EX_SPIN_LOCK` that only the `ExAcquire/ReleaseSpinLock*`
/// routines touch after construction; `data` is read only through a
/// [`SharedGuard`] or an [`ExclusiveGuard`] and written only through an
/// [`ExclusiveGuard`], which exist only while this processor holds the
/// lock in that mode.
pub struct RwSpinLock<T: ?Sized> {
    word: UnsafeCell<EX_SPIN_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: shared holders get `&T` on several processors at once (so `T`
// must be `Sync`), an exclusive holder gets `&mut T` (so `T` must be
// `Send`); that is all sharing the lock gives (the type's invariant).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwSpinLock<T> {}
// SAFETY: an `RwSpinLock` owns its data; moving it moves the `T`.
unsafe impl<T: ?Sized + Send> Send for RwSpinLock<T> {}

impl<T> RwSpinLock<T> {
    /// A free lock around `data` (the word zeroed, as the
    /// `ExAcquireSpinLockShared` page asks).
    pub const fn new(data: T) -> Self {
        // INVARIANT: nothing has touched the word yet.
        Self {
            word: UnsafeCell::new(0),
            data: UnsafeCell::new(data),
        }
    }
}

impl<T: ?Sized> RwSpinLock<T> {
    /// Raises to `DISPATCH_LEVEL` and takes the lock shared
    /// (`ExAcquireSpinLockShared`), spinning while a processor holds it
    /// exclusively. Call at IRQL <= `DISPATCH_LEVEL`, not holding this lock.
    pub fn lock_shared(&self) -> SharedGuard<'_, T> {
        // SAFETY: `word` is a zero-initialised EX_SPIN_LOCK in nonpaged
        // memory, touched only by the kernel's EX_SPIN_LOCK routines (the
        // type's invariant); the routine raises to `DISPATCH_LEVEL` itself.
        let old_irql = unsafe { storport_sys::ExAcquireSpinLockShared(self.word.get()) };
        // INVARIANT: this processor holds the lock shared now.
        SharedGuard {
            lock: self,
            old_irql,
            _not_send: PhantomData,
        }
    }

    /// Raises to `DISPATCH_LEVEL` and takes the lock exclusively
    /// (`ExAcquireSpinLockExclusive`), spinning while any processor holds
    /// it. Call at IRQL <= `DISPATCH_LEVEL`, not holding this lock.
    pub fn lock_exclusive(&self) -> ExclusiveGuard<'_, T> {
        // SAFETY: as in `lock_shared`.
        let old_irql = unsafe { storport_sys::ExAcquireSpinLockExclusive(self.word.get()) };
        // INVARIANT: this processor holds the lock exclusively now.
        ExclusiveGuard {
            lock: self,
            old_irql,
            _not_send: PhantomData,
        }
    }

    /// The data, through a unique borrow of the lock: nobody else can hold
    /// it, so no locking is needed.
    pub const fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for RwSpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for RwSpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwSpinLock").finish_non_exhaustive()
    }
}

/// An [`RwSpinLock`] held shared: gives `&T`; releases the lock and
/// restores the IRQL when dropped.
///
/// # Invariants
///
/// This processor holds `lock` shared, acquired by
/// `ExAcquireSpinLockShared` that returned `old_irql`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SharedGuard<'a, T: ?Sized> {
    lock: &'a RwSpinLock<T>,
    old_irql: KIRQL,
    _not_send: NotSend,
}

impl<T: ?Sized> Deref for SharedGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held shared (the guard's invariant), so no
        // processor holds it exclusively and nothing writes the data; the
        // borrow cannot outlive the guard.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SharedGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this processor holds the lock shared, acquired with
        // ExAcquireSpinLockShared, which returned `old_irql` (the guard's
        // invariant); the guard is dropped once.
        unsafe { storport_sys::ExReleaseSpinLockShared(self.lock.word.get(), self.old_irql) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SharedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// An [`RwSpinLock`] held exclusively: gives `&mut T`; releases the lock
/// and restores the IRQL when dropped.
///
/// # Invariants
///
/// This processor holds `lock` exclusively, acquired by
/// `ExAcquireSpinLockExclusive` that returned `old_irql`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ExclusiveGuard<'a, T: ?Sized> {
    lock: &'a RwSpinLock<T>,
    old_irql: KIRQL,
    _not_send: NotSend,
}

impl<T: ?Sized> Deref for ExclusiveGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held exclusively (the guard's invariant), so
        // no other processor reaches the data; the borrow cannot outlive
        // the guard.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for ExclusiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow
        // of the data through this guard, which is the only guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for ExclusiveGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this processor holds the lock exclusively, acquired with
        // ExAcquireSpinLockExclusive, which returned `old_irql` (the guard's
        // invariant); the guard is dropped once.
        unsafe { storport_sys::ExReleaseSpinLockExclusive(self.lock.word.get(), self.old_irql) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ExclusiveGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::vec::Vec;
    use storport_emu::port::host::{Kernel, irql};

    const PASSIVE_LEVEL: u8 = 0;
    const DISPATCH_LEVEL: u8 = 2;

    /// The IRQL while a guard made by `acquire` lives, and after it drops,
    /// for a call entered at `entered`.
    fn irql_around<G>(kernel: &Kernel, entered: u8, acquire: impl FnOnce() -> G) -> (u8, u8) {
        kernel.run(entered, || {
            let guard = acquire();
            let held = irql();
            drop(guard);
            (held, irql())
        })
    }

    #[test]
    fn each_guard_raises_to_dispatch_level_and_restores_the_irql_it_found() {
        let kernel = Kernel::new();
        let plain = SpinLock::new(0_u32);
        let rw = RwSpinLock::new(0_u32);
        for entered in [PASSIVE_LEVEL, 1, DISPATCH_LEVEL] {
            let expected = (DISPATCH_LEVEL, entered);
            assert_eq!(irql_around(&kernel, entered, || plain.lock()), expected);
            assert_eq!(irql_around(&kernel, entered, || rw.lock_shared()), expected);
            assert_eq!(
                irql_around(&kernel, entered, || rw.lock_exclusive()),
                expected
            );
        }
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn nested_guards_dropped_in_reverse_order_restore_the_callers_irql() {
        let kernel = Kernel::new();
        let outer = RwSpinLock::new(1_u8);
        let inner = SpinLock::new(2_u8);
        let seen = kernel.run(PASSIVE_LEVEL, || {
            let a = outer.lock_exclusive();
            let b = inner.lock();
            let sum = *a + *b;
            drop(b);
            let between = irql();
            drop(a);
            (sum, between, irql())
        });
        assert_eq!(seen, (3, DISPATCH_LEVEL, PASSIVE_LEVEL));
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn a_dropped_guard_releases_so_the_lock_can_be_taken_again() {
        let kernel = Kernel::new();
        let lock = SpinLock::new(Vec::new());
        let rw = RwSpinLock::new(0_u64);
        kernel.run(PASSIVE_LEVEL, || {
            for round in 0..3 {
                lock.lock().push(round);
                *rw.lock_exclusive() += 1;
                assert_eq!(*rw.lock_shared(), round + 1);
            }
        });
        let pushed = kernel.run(PASSIVE_LEVEL, || lock.lock().clone());
        assert_eq!(pushed, [0, 1, 2]);
        assert_eq!(kernel.findings(), Vec::new());
    }

    /// Adds 1 to the counter `rounds` times from each of four processors,
    /// each time as a separate read and write with a yield between: only
    /// exclusion keeps every update.
    fn count_from_four_processors(kernel: &Kernel, rounds: u64, add: &(dyn Fn() + Sync)) {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    kernel.run(PASSIVE_LEVEL, || {
                        for _ in 0..rounds {
                            add();
                        }
                    });
                });
            }
        });
    }

    #[test]
    fn exclusive_holds_exclude_every_other_processor() {
        let kernel = Kernel::new();
        let plain = SpinLock::new(0_u64);
        count_from_four_processors(&kernel, 200, &|| {
            let mut counter = plain.lock();
            let seen = *counter;
            std::thread::yield_now();
            *counter = seen + 1;
        });
        let rw = RwSpinLock::new(0_u64);
        count_from_four_processors(&kernel, 200, &|| {
            let mut counter = rw.lock_exclusive();
            let seen = *counter;
            std::thread::yield_now();
            *counter = seen + 1;
        });
        kernel.run(PASSIVE_LEVEL, || {
            assert_eq!((*plain.lock(), *rw.lock_shared()), (800, 800));
        });
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn shared_holds_overlap() {
        // Each of two processors holds the lock shared until the other one
        // holds it too: a shared hold that excluded the other would never
        // get there (storemu ends such a spin as a deadlock).
        let kernel = Kernel::new();
        let rw = RwSpinLock::new(7_u32);
        let both = Barrier::new(2);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    kernel.run(PASSIVE_LEVEL, || {
                        let guard = rw.lock_shared();
                        both.wait();
                        assert_eq!(*guard, 7);
                    });
                });
            }
        });
        assert_eq!(kernel.findings(), Vec::new());
    }
}
