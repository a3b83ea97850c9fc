//! The `ntoskrnl.exe` spin-lock exports: ordinary and in-stack queued
//! `KSPIN_LOCK`s and `EX_SPIN_LOCK`s. Each one describes its documented IRQL
//! contract to [`crate::port::locks`], which checks it, keeps the IRQL and
//! does the locking.
//!
//! | Routine | Called at | IRQL afterwards |
//! |---|---|---|
//! | `KeAcquireSpinLockRaiseToDpc`, `KeAcquireInStackQueuedSpinLock`, `ExAcquireSpinLockShared/Exclusive` | <= DISPATCH_LEVEL | DISPATCH_LEVEL |
//! | `KeReleaseSpinLock`, `KeReleaseInStackQueuedSpinLock`, `ExReleaseSpinLockShared/Exclusive` | DISPATCH_LEVEL | the old IRQL |
//! | the `AtDpcLevel` / `FromDpcLevel` forms | >= DISPATCH_LEVEL | unchanged |

use crate::port::locks::{
    self, ACQUIRE_ABOVE_DISPATCH, ACQUIRE_AT_DPC_BELOW, Acquire, Family, LockId,
    RELEASE_FROM_DPC_BELOW, RELEASE_NOT_AT_DISPATCH, Release,
};
use crate::port::model::DISPATCH_LEVEL;

/// `HIGH_LEVEL`.
const HIGH_LEVEL: u8 = 15;
/// Where the raising acquire routines may be called.
const UP_TO_DISPATCH: (u8, u8) = (0, DISPATCH_LEVEL);
/// Where the releases that restore an IRQL may be called.
const AT_DISPATCH: (u8, u8) = (DISPATCH_LEVEL, DISPATCH_LEVEL);
/// Where the `AtDpcLevel` / `FromDpcLevel` forms may be called.
const FROM_DISPATCH: (u8, u8) = (DISPATCH_LEVEL, HIGH_LEVEL);

/// Exports of this module (all in `ntoskrnl.exe`).
pub const NAMES: &[&str] = &[
    "KeAcquireSpinLockRaiseToDpc",
    "KeReleaseSpinLock",
    "KeAcquireSpinLockAtDpcLevel",
    "KeReleaseSpinLockFromDpcLevel",
    "KeAcquireInStackQueuedSpinLock",
    "KeReleaseInStackQueuedSpinLock",
    "KeAcquireInStackQueuedSpinLockAtDpcLevel",
    "KeReleaseInStackQueuedSpinLockFromDpcLevel",
    "ExAcquireSpinLockShared",
    "ExReleaseSpinLockShared",
    "ExAcquireSpinLockExclusive",
    "ExReleaseSpinLockExclusive",
    "ExAcquireSpinLockSharedAtDpcLevel",
    "ExReleaseSpinLockSharedFromDpcLevel",
    "ExAcquireSpinLockExclusiveAtDpcLevel",
    "ExReleaseSpinLockExclusiveFromDpcLevel",
];

/// Address of the export `name`.
pub fn lookup(name: &str) -> Option<usize> {
    Some(match name {
        "KeAcquireSpinLockRaiseToDpc" => ke_acquire_raise_to_dpc as *const () as usize,
        "KeReleaseSpinLock" => ke_release as *const () as usize,
        "KeAcquireSpinLockAtDpcLevel" => ke_acquire_at_dpc_level as *const () as usize,
        "KeReleaseSpinLockFromDpcLevel" => ke_release_from_dpc_level as *const () as usize,
        "KeAcquireInStackQueuedSpinLock" => ke_acquire_queued as *const () as usize,
        "KeReleaseInStackQueuedSpinLock" => ke_release_queued as *const () as usize,
        "KeAcquireInStackQueuedSpinLockAtDpcLevel" => {
            ke_acquire_queued_at_dpc_level as *const () as usize
        }
        "KeReleaseInStackQueuedSpinLockFromDpcLevel" => {
            ke_release_queued_from_dpc_level as *const () as usize
        }
        "ExAcquireSpinLockShared" => ex_acquire_shared as *const () as usize,
        "ExReleaseSpinLockShared" => ex_release_shared as *const () as usize,
        "ExAcquireSpinLockExclusive" => ex_acquire_exclusive as *const () as usize,
        "ExReleaseSpinLockExclusive" => ex_release_exclusive as *const () as usize,
        "ExAcquireSpinLockSharedAtDpcLevel" => ex_acquire_shared_at_dpc_level as *const () as usize,
        "ExReleaseSpinLockSharedFromDpcLevel" => {
            ex_release_shared_from_dpc_level as *const () as usize
        }
        "ExAcquireSpinLockExclusiveAtDpcLevel" => {
            ex_acquire_exclusive_at_dpc_level as *const () as usize
        }
        "ExReleaseSpinLockExclusiveFromDpcLevel" => {
            ex_release_exclusive_from_dpc_level as *const () as usize
        }
        _ => return None,
    })
}

/// A `KIRQL` argument: only its low byte is defined.
const fn kirql(raw: u64) -> u8 {
    (raw & 0xFF) as u8
}

fn ke_lock(export: &'static str, lock: u64) -> LockId {
    locks::driver_lock(export, LockId::kspin(lock as usize))
}

fn ex_lock(export: &'static str, lock: u64) -> LockId {
    locks::driver_lock(export, LockId::ex(lock as usize))
}

/// A raising acquire (`allowed` <= DISPATCH_LEVEL, 0x42 outside it).
const fn raising(export: &'static str, lock: LockId, family: Family) -> Acquire {
    Acquire {
        export,
        lock,
        family,
        allowed: UP_TO_DISPATCH,
        subcode: ACQUIRE_ABOVE_DISPATCH,
        raise_to: Some(DISPATCH_LEVEL),
        queue_entry: 0,
    }
}

/// An `AtDpcLevel` acquire (`allowed` >= DISPATCH_LEVEL, 0x40 outside it).
const fn at_dpc_level(export: &'static str, lock: LockId, family: Family) -> Acquire {
    Acquire {
        export,
        lock,
        family,
        allowed: FROM_DISPATCH,
        subcode: ACQUIRE_AT_DPC_BELOW,
        raise_to: None,
        queue_entry: 0,
    }
}

/// A release that restores `old` (at DISPATCH_LEVEL, 0x32 otherwise).
const fn restoring(export: &'static str, lock: LockId, family: Family, old: u8) -> Release {
    Release {
        export,
        lock,
        family,
        allowed: AT_DISPATCH,
        subcode: RELEASE_NOT_AT_DISPATCH,
        restore: Some(old),
    }
}

/// A `FromDpcLevel` release (>= DISPATCH_LEVEL, 0x41 otherwise).
const fn from_dpc_level(export: &'static str, lock: LockId, family: Family) -> Release {
    Release {
        export,
        lock,
        family,
        allowed: FROM_DISPATCH,
        subcode: RELEASE_FROM_DPC_BELOW,
        restore: None,
    }
}

unsafe extern "win64" fn ke_acquire_raise_to_dpc(lock: u64) -> u64 {
    const EXPORT: &str = "KeAcquireSpinLockRaiseToDpc";
    let lock = ke_lock(EXPORT, lock);
    u64::from(locks::acquire(&raising(EXPORT, lock, Family::Ordinary)))
}

unsafe extern "win64" fn ke_release(lock: u64, new_irql: u64) {
    const EXPORT: &str = "KeReleaseSpinLock";
    let lock = ke_lock(EXPORT, lock);
    locks::release(&restoring(EXPORT, lock, Family::Ordinary, kirql(new_irql)));
}

unsafe extern "win64" fn ke_acquire_at_dpc_level(lock: u64) {
    const EXPORT: &str = "KeAcquireSpinLockAtDpcLevel";
    let lock = ke_lock(EXPORT, lock);
    let _ = locks::acquire(&at_dpc_level(EXPORT, lock, Family::Ordinary));
}

unsafe extern "win64" fn ke_release_from_dpc_level(lock: u64) {
    const EXPORT: &str = "KeReleaseSpinLockFromDpcLevel";
    let lock = ke_lock(EXPORT, lock);
    locks::release(&from_dpc_level(EXPORT, lock, Family::Ordinary));
}

unsafe extern "win64" fn ke_acquire_queued(lock: u64, handle: u64) {
    const EXPORT: &str = "KeAcquireInStackQueuedSpinLock";
    let lock = ke_lock(EXPORT, lock);
    locks::acquire_queued(&raising(EXPORT, lock, Family::Queued), handle as usize);
}

unsafe extern "win64" fn ke_release_queued(handle: u64) {
    locks::release_queued("KeReleaseInStackQueuedSpinLock", handle as usize, false);
}

unsafe extern "win64" fn ke_acquire_queued_at_dpc_level(lock: u64, handle: u64) {
    const EXPORT: &str = "KeAcquireInStackQueuedSpinLockAtDpcLevel";
    let lock = ke_lock(EXPORT, lock);
    locks::acquire_queued(&at_dpc_level(EXPORT, lock, Family::Queued), handle as usize);
}

unsafe extern "win64" fn ke_release_queued_from_dpc_level(handle: u64) {
    locks::release_queued(
        "KeReleaseInStackQueuedSpinLockFromDpcLevel",
        handle as usize,
        true,
    );
}

unsafe extern "win64" fn ex_acquire_shared(lock: u64) -> u64 {
    const EXPORT: &str = "ExAcquireSpinLockShared";
    let lock = ex_lock(EXPORT, lock);
    u64::from(locks::acquire(&raising(EXPORT, lock, Family::ExShared)))
}

unsafe extern "win64" fn ex_release_shared(lock: u64, old_irql: u64) {
    const EXPORT: &str = "ExReleaseSpinLockShared";
    let lock = ex_lock(EXPORT, lock);
    locks::release(&restoring(EXPORT, lock, Family::ExShared, kirql(old_irql)));
}

unsafe extern "win64" fn ex_acquire_exclusive(lock: u64) -> u64 {
    const EXPORT: &str = "ExAcquireSpinLockExclusive";
    let lock = ex_lock(EXPORT, lock);
    u64::from(locks::acquire(&raising(EXPORT, lock, Family::ExExclusive)))
}

unsafe extern "win64" fn ex_release_exclusive(lock: u64, old_irql: u64) {
    const EXPORT: &str = "ExReleaseSpinLockExclusive";
    let lock = ex_lock(EXPORT, lock);
    locks::release(&restoring(
        EXPORT,
        lock,
        Family::ExExclusive,
        kirql(old_irql),
    ));
}

unsafe extern "win64" fn ex_acquire_shared_at_dpc_level(lock: u64) {
    const EXPORT: &str = "ExAcquireSpinLockSharedAtDpcLevel";
    let lock = ex_lock(EXPORT, lock);
    let _ = locks::acquire(&at_dpc_level(EXPORT, lock, Family::ExShared));
}

unsafe extern "win64" fn ex_release_shared_from_dpc_level(lock: u64) {
    const EXPORT: &str = "ExReleaseSpinLockSharedFromDpcLevel";
    let lock = ex_lock(EXPORT, lock);
    locks::release(&from_dpc_level(EXPORT, lock, Family::ExShared));
}

unsafe extern "win64" fn ex_acquire_exclusive_at_dpc_level(lock: u64) {
    const EXPORT: &str = "ExAcquireSpinLockExclusiveAtDpcLevel";
    let lock = ex_lock(EXPORT, lock);
    let _ = locks::acquire(&at_dpc_level(EXPORT, lock, Family::ExExclusive));
}

unsafe extern "win64" fn ex_release_exclusive_from_dpc_level(lock: u64) {
    const EXPORT: &str = "ExReleaseSpinLockExclusiveFromDpcLevel";
    let lock = ex_lock(EXPORT, lock);
    locks::release(&from_dpc_level(EXPORT, lock, Family::ExExclusive));
}
