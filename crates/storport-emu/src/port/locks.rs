//! Spin locks: which emulated processor holds which lock, real exclusion
//! between processors, and Driver Verifier's checks of every acquire and
//! release.
//!
//! Each host thread that calls driver code is one emulated processor. A
//! processor that asks for a lock another one holds spins, as on Windows,
//! where the holder runs at DISPATCH_LEVEL or above and cannot be preempted;
//! the spin is bounded ([`SPIN_LOCK_DEADLOCK`]), because the watchdog stops
//! only driver code, never an export. A processor that asks again for a lock
//! it already holds would spin for ever on Windows: that is reported at once
//! and ends the call.
//!
//! The ntoskrnl exports (`Ke*SpinLock*`, `Ex*SpinLock*`) and
//! `StorPortNotification(AcquireSpinLock / ReleaseSpinLock)` describe each
//! call as an [`Acquire`] or a [`Release`] and land here. The port calls
//! [`check_returned`] when a callback returns.
//!
//! # IRQL
//!
//! An acquire that raises (`KeAcquireSpinLockRaiseToDpc`,
//! `KeAcquireInStackQueuedSpinLock`, `ExAcquireSpinLockShared/Exclusive`,
//! `StorPortAcquireSpinLock`) sets the emulated IRQL to the lock's level
//! before it spins and returns the IRQL it found; a release restores the IRQL
//! it is given. An acquire called above the lock's level is reported and
//! still sets the lock's level, so the matching release finds the level it
//! expects and gives the caller its IRQL back: one mistake, one finding.
//!
//! # Lock words
//!
//! A `KSPIN_LOCK` or `EX_SPIN_LOCK` in driver memory is non-zero while held
//! (1 for an ordinary spin lock, the queue entry for a queued one, bit 31 for
//! an exclusive `EX_SPIN_LOCK`, the count of shared owners otherwise) and
//! zero when free. A lock the driver zeroed again (`KeInitializeSpinLock`)
//! while storemu thought it held is free, as it would be on Windows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use std::mem::offset_of;

use storport_sys::{
    KLOCK_QUEUE_HANDLE, KSPIN_LOCK, KSPIN_LOCK_QUEUE, STOR_LOCK_HANDLE, stor_spinlock,
};

use super::context::{self, Routine};
use super::mem;
use super::model::{DIRQL, DISPATCH_LEVEL};
use super::rules::{Finding, Rule};
use super::state::{Shared, lock};

/// How long an acquire spins on a lock another processor holds before the
/// port calls it a deadlock.
pub const SPIN_LOCK_DEADLOCK: Duration = Duration::from_secs(5);
/// `DPC_WATCHDOG_VIOLATION`: what Windows raises for a processor stuck at
/// DISPATCH_LEVEL.
const DPC_WATCHDOG_VIOLATION: u32 = 0x133;
/// `DRIVER_VERIFIER_DETECTED_VIOLATION`.
const DRIVER_VERIFIER: u32 = 0xC4;
/// `PAGE_FAULT_IN_NONPAGED_AREA`: a kernel routine touched an address that
/// is not mapped.
const PAGE_FAULT_IN_NONPAGED_AREA: u32 = 0x50;
/// `HIGH_LEVEL`.
const HIGH_LEVEL: u8 = 15;

/// 0xC4 parameter 1: self-deadlock, a thread acquires a lock it holds.
pub const SELF_DEADLOCK: u64 = 0x1000;
/// 0xC4 parameter 1: the wrong thread releases a resource.
pub const UNEXPECTED_THREAD: u64 = 0x1004;
/// 0xC4 parameter 1: a resource released before it was acquired.
pub const UNACQUIRED_RELEASE: u64 = 0x1007;
/// 0xC4 parameter 1: a lock released through a routine of another lock type.
pub const MISMATCHED_RELEASE: u64 = 0x1009;
/// 0xC4 parameter 1: DDI compliance rule IrqlKeReleaseSpinLock.
pub const IRQL_KE_RELEASE_SPIN_LOCK: u64 = 0x0002_0015;
/// 0xC4 parameter 1: DDI compliance rule QueuedSpinLockRelease.
pub const QUEUED_SPIN_LOCK_RELEASE: u64 = 0x0004_0007;
/// 0xC4 parameter 1: DDI compliance rule SpinLock.
pub const SPIN_LOCK_RULE: u64 = 0x0004_0009;
/// 0xC4 parameter 1: `KeReleaseSpinLock` at an IRQL other than DISPATCH_LEVEL.
pub const RELEASE_NOT_AT_DISPATCH: u64 = 0x32;
/// 0xC4 parameter 1: `KeAcquireSpinLockAtDpcLevel` below DISPATCH_LEVEL.
pub const ACQUIRE_AT_DPC_BELOW: u64 = 0x40;
/// 0xC4 parameter 1: `KeReleaseSpinLockFromDpcLevel` below DISPATCH_LEVEL.
pub const RELEASE_FROM_DPC_BELOW: u64 = 0x41;
/// 0xC4 parameter 1: `KeAcquireSpinLock` above DISPATCH_LEVEL.
pub const ACQUIRE_ABOVE_DISPATCH: u64 = 0x42;

/// Offset of `STOR_DPC.Lock` (after the 0x40-byte `DPC_BUFFER`): the
/// `KSPIN_LOCK` behind `DpcLock`.
const STOR_DPC_LOCK_OFFSET: usize = 0x40;
/// `sizeof(STOR_DPC)` on x64.
const STOR_DPC_BYTES: usize = STOR_DPC_LOCK_OFFSET + size_of::<KSPIN_LOCK>();
/// Offsets in `KLOCK_QUEUE_HANDLE`: `LockQueue.Lock`, `OldIrql`.
const QUEUE_HANDLE_LOCK: usize =
    offset_of!(KLOCK_QUEUE_HANDLE, LockQueue) + offset_of!(KSPIN_LOCK_QUEUE, Lock);
const QUEUE_HANDLE_OLD_IRQL: usize = offset_of!(KLOCK_QUEUE_HANDLE, OldIrql);
/// Offsets in `STOR_LOCK_HANDLE`: `Context.LockQueue.Lock`, `Context.OldIrql`.
const STOR_HANDLE_LOCK: usize = offset_of!(STOR_LOCK_HANDLE, Context) + QUEUE_HANDLE_LOCK;
const STOR_HANDLE_OLD_IRQL: usize = offset_of!(STOR_LOCK_HANDLE, Context) + QUEUE_HANDLE_OLD_IRQL;

/// How a lock is taken, and so which routines may release it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A `KSPIN_LOCK` through `KeAcquireSpinLock*` / `KeReleaseSpinLock*`.
    Ordinary,
    /// A `KSPIN_LOCK` as an in-stack queued spin lock.
    Queued,
    /// An `EX_SPIN_LOCK` for shared access.
    ExShared,
    /// An `EX_SPIN_LOCK` for exclusive access.
    ExExclusive,
    /// One of Storport's locks (`StorPortAcquireSpinLock`).
    StorPort,
}

impl Family {
    /// How findings name the kind.
    const fn describe(self) -> &'static str {
        match self {
            Self::Ordinary => "an ordinary spin lock",
            Self::Queued => "an in-stack queued spin lock",
            Self::ExShared => "an EX_SPIN_LOCK held shared",
            Self::ExExclusive => "an EX_SPIN_LOCK held exclusive",
            Self::StorPort => "a Storport lock",
        }
    }
}

/// Which lock: its address (driver memory, or the port's own word for
/// `StartIoLock` and `InterruptLock`) and how findings name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockId {
    /// The lock's address, the key of the lock table.
    pub address: usize,
    /// What the address is.
    pub kind: LockKind,
}

/// What a [`LockId`]'s address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// A `KSPIN_LOCK` in driver memory.
    KSpinLock,
    /// An `EX_SPIN_LOCK` in driver memory.
    ExSpinLock,
    /// `DpcLock`: the `KSPIN_LOCK` inside a `STOR_DPC`.
    StorDpc,
    /// Storport's `StartIoLock`.
    StartIo,
    /// Storport's `InterruptLock`.
    Interrupt,
}

impl LockId {
    /// A `KSPIN_LOCK` at `address`.
    #[must_use]
    pub const fn kspin(address: usize) -> Self {
        Self {
            address,
            kind: LockKind::KSpinLock,
        }
    }

    /// An `EX_SPIN_LOCK` at `address`.
    #[must_use]
    pub const fn ex(address: usize) -> Self {
        Self {
            address,
            kind: LockKind::ExSpinLock,
        }
    }

    fn describe(self) -> String {
        let address = self.address;
        match self.kind {
            LockKind::KSpinLock => format!("the KSPIN_LOCK at {address:#x}"),
            LockKind::ExSpinLock => format!("the EX_SPIN_LOCK at {address:#x}"),
            LockKind::StorDpc => format!(
                "the DpcLock of the STOR_DPC at {:#x}",
                address.wrapping_sub(STOR_DPC_LOCK_OFFSET)
            ),
            LockKind::StartIo => "Storport's StartIoLock".to_owned(),
            LockKind::Interrupt => "Storport's InterruptLock".to_owned(),
        }
    }

    /// Bytes of the lock word in driver memory, if it lives there.
    const fn word_bytes(self) -> Option<usize> {
        match self.kind {
            LockKind::KSpinLock | LockKind::StorDpc => Some(8),
            LockKind::ExSpinLock => Some(4),
            LockKind::StartIo | LockKind::Interrupt => None,
        }
    }
}

/// One acquire routine's call.
#[derive(Clone, Copy, Debug)]
pub struct Acquire {
    /// The export, as findings name it.
    pub export: &'static str,
    /// The lock.
    pub lock: LockId,
    /// How it is taken.
    pub family: Family,
    /// Lowest and highest IRQL the routine may be called at.
    pub allowed: (u8, u8),
    /// 0xC4 parameter 1 for a call outside `allowed`.
    pub subcode: u64,
    /// The IRQL the routine raises to (`None`: the `AtDpcLevel` forms).
    pub raise_to: Option<u8>,
    /// For a queued lock: the caller's queue entry (the lock word's value
    /// while held).
    pub queue_entry: usize,
}

/// One release routine's call.
#[derive(Clone, Copy, Debug)]
pub struct Release {
    /// The export, as findings name it.
    pub export: &'static str,
    /// The lock.
    pub lock: LockId,
    /// How the routine expects it to be held.
    pub family: Family,
    /// Lowest and highest IRQL the routine may be called at.
    pub allowed: (u8, u8),
    /// 0xC4 parameter 1 for a call outside `allowed`.
    pub subcode: u64,
    /// The IRQL the routine restores (`None`: the `FromDpcLevel` forms).
    pub restore: Option<u8>,
}

/// One processor's hold on a lock.
#[derive(Clone, Copy, Debug)]
struct Holder {
    processor: u64,
    family: Family,
    export: &'static str,
    routine: Routine,
    irql_before: u8,
    raised: bool,
    sequence: u64,
}

/// A held lock and its holders (more than one only for shared holds).
#[derive(Debug)]
struct Entry {
    lock: LockId,
    holders: Vec<Holder>,
    /// The lock word in driver memory says "held" (storemu wrote it).
    word_written: bool,
}

/// The locks of one port instance.
#[derive(Debug, Default)]
pub struct SpinLocks {
    table: Mutex<HashMap<usize, Entry>>,
    /// The words that stand for `StartIoLock` and `InterruptLock`: their
    /// addresses are the locks' identities.
    storport_words: Box<[u64; 2]>,
    /// `--storport-lock-irql unchecked`: the StorPortAcquireSpinLock page
    /// gives no IRQL, so only the strict reading checks one.
    storport_irql_unchecked: AtomicBool,
}

static NEXT_PROCESSOR: AtomicU64 = AtomicU64::new(1);
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static PROCESSOR: u64 = NEXT_PROCESSOR.fetch_add(1, Ordering::Relaxed);
}

/// The emulated processor number of the current thread (1, 2, ... in the
/// order threads first touch a lock).
#[must_use]
pub fn processor() -> u64 {
    PROCESSOR.with(|p| *p)
}

/// A mark in the order of acquisitions: locks acquired after it have a
/// larger sequence number.
#[must_use]
pub fn mark() -> u64 {
    SEQUENCE.load(Ordering::Acquire)
}

/// How `StorPortAcquireSpinLock` / `StorPortReleaseSpinLock` check the IRQL,
/// which the StorPortAcquireSpinLock page does not state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorPortLockIrql {
    /// `DpcLock` and `StartIoLock` as the in-stack queued spin locks their
    /// `STOR_LOCK_HANDLE` describes (acquire at IRQL <= DISPATCH_LEVEL,
    /// release at DISPATCH_LEVEL), `InterruptLock` at or below DIRQL.
    #[default]
    Strict,
    /// No IRQL check; an acquire never lowers the IRQL.
    Unchecked,
}

impl SpinLocks {
    /// Chooses how Storport's locks check the IRQL.
    pub fn set_storport_irql(&self, reading: StorPortLockIrql) {
        self.storport_irql_unchecked
            .store(reading == StorPortLockIrql::Unchecked, Ordering::Relaxed);
    }

    fn storport_lock(&self, kind: u32, dpc_lock: usize) -> Option<(LockId, u8)> {
        let word = |index: usize| std::ptr::from_ref(&self.storport_words[index]) as usize;
        match kind {
            stor_spinlock::DPC_LOCK => Some((
                LockId {
                    address: dpc_lock,
                    kind: LockKind::StorDpc,
                },
                DISPATCH_LEVEL,
            )),
            stor_spinlock::START_IO_LOCK => Some((
                LockId {
                    address: word(0),
                    kind: LockKind::StartIo,
                },
                DISPATCH_LEVEL,
            )),
            stor_spinlock::INTERRUPT_LOCK => Some((
                LockId {
                    address: word(1),
                    kind: LockKind::Interrupt,
                },
                DIRQL,
            )),
            _ => None,
        }
    }

    /// Takes `request.lock` for this processor if it is free.
    fn take(&self, request: &Acquire, routine: Routine, irql_before: u8) -> Take {
        take_in(&mut lock(&self.table), request, routine, irql_before)
    }

    /// Removes this processor's hold on `lock`.
    fn drop_hold(&self, lock_id: LockId) -> Hold {
        drop_in(&mut lock(&self.table), lock_id)
    }

    /// The locks this processor acquired after `since` and still holds.
    fn held_since(&self, since: u64) -> Vec<(LockId, Holder)> {
        let me = processor();
        let mut held: Vec<(LockId, Holder)> = lock(&self.table)
            .values()
            .flat_map(|entry| {
                entry
                    .holders
                    .iter()
                    .filter(|h| h.processor == me && h.sequence >= since)
                    .map(|h| (entry.lock, *h))
            })
            .collect();
        held.sort_by_key(|(_, h)| h.sequence);
        held
    }
}

/// [`SpinLocks::take`] on the locked table.
fn take_in(
    table: &mut HashMap<usize, Entry>,
    request: &Acquire,
    routine: Routine,
    irql_before: u8,
) -> Take {
    let me = processor();
    let address = request.lock.address;
    if table
        .get(&address)
        .is_some_and(|entry| entry.word_written && word_is_free(entry.lock))
    {
        // The driver zeroed the lock word again (KeInitializeSpinLock):
        // on Windows the lock is free now.
        table.remove(&address);
    }
    let entry = table.entry(address).or_insert_with(|| Entry {
        lock: request.lock,
        holders: Vec::new(),
        word_written: false,
    });
    if let Some(mine) = entry.holders.iter().find(|h| h.processor == me) {
        return Take::Mine(*mine);
    }
    let free = entry.holders.is_empty()
        || (request.family == Family::ExShared
            && entry.holders.iter().all(|h| h.family == Family::ExShared));
    if !free {
        return Take::Busy;
    }
    entry.holders.push(Holder {
        processor: me,
        family: request.family,
        export: request.export,
        routine,
        irql_before,
        raised: request.raise_to.is_some_and(|level| irql_before < level),
        sequence: SEQUENCE.fetch_add(1, Ordering::AcqRel),
    });
    entry.word_written = write_word(entry, request.queue_entry);
    Take::Taken
}

/// [`SpinLocks::drop_hold`] on the locked table.
fn drop_in(table: &mut HashMap<usize, Entry>, lock_id: LockId) -> Hold {
    let me = processor();
    let Some(entry) = table.get_mut(&lock_id.address) else {
        return Hold::Free;
    };
    let Some(index) = entry.holders.iter().position(|h| h.processor == me) else {
        return entry
            .holders
            .first()
            .map_or(Hold::Free, |h| Hold::Other(h.processor));
    };
    let holder = entry.holders.remove(index);
    entry.word_written = write_word(entry, 0) && !entry.holders.is_empty();
    if entry.holders.is_empty() {
        table.remove(&lock_id.address);
    }
    Hold::Mine(holder)
}

/// What an attempt to take a lock found.
enum Take {
    /// The lock is this processor's now.
    Taken,
    /// Another processor holds it.
    Busy,
    /// This processor already holds it.
    Mine(Holder),
}

/// What a release found.
enum Hold {
    /// Nobody holds the lock.
    Free,
    /// Another processor holds it.
    Other(u64),
    /// This processor held it; the hold is gone now.
    Mine(Holder),
}

/// Whether the driver's lock word says the lock is free.
fn word_is_free(lock_id: LockId) -> bool {
    lock_id.word_bytes().is_some_and(|bytes| {
        mem::read(lock_id.address, bytes).is_some_and(|word| word.iter().all(|&b| b == 0))
    })
}

/// Writes the lock word that `entry`'s holders stand for; false when the
/// lock has no word in driver memory or it could not be written.
fn write_word(entry: &Entry, queue_entry: usize) -> bool {
    let Some(bytes) = entry.lock.word_bytes() else {
        return false;
    };
    let value: u64 = match entry.holders.first().map(|h| h.family) {
        None => 0,
        Some(Family::ExShared) => entry.holders.len() as u64,
        Some(Family::ExExclusive) => 0x8000_0000,
        Some(Family::Queued) if queue_entry != 0 => queue_entry as u64,
        Some(_) => 1,
    };
    mem::write(entry.lock.address, &value.to_le_bytes()[..bytes])
}

/// The port instance, routine and IRQL of the current call; a spare
/// instance when the call comes from no port at all.
fn caller() -> (Arc<Shared>, Routine, u8) {
    static SPARE: LazyLock<Arc<Shared>> = LazyLock::new(Arc::default);
    context::current().unwrap_or_else(|| (Arc::clone(&SPARE), Routine::Port, 0))
}

/// Ends the call the way the kernel would when a routine touches memory the
/// driver named and that is not there.
fn bad_address(shared: &Shared, routine: Routine, export: &str, what: &str, address: usize) -> ! {
    let message = format!(
        "{export} in {} was given {what} at {address:#x}, which is not mapped: the kernel faults there.",
        routine.name()
    );
    let params = [address as u64, 0, 0, 0];
    shared.report(Finding::bugcheck(
        Rule::DriverFault,
        PAGE_FAULT_IN_NONPAGED_AREA,
        params.to_vec(),
        routine.name(),
        message.clone(),
    ));
    super::cpu::abort_current_call(PAGE_FAULT_IN_NONPAGED_AREA, params, message)
}

/// Checks that `len` bytes at `address` are readable (and writable when
/// `write`), before anything is locked; ends the call otherwise.
fn require(
    shared: &Shared,
    routine: Routine,
    export: &str,
    what: &str,
    address: usize,
    len: usize,
    write: bool,
) {
    let ok = match mem::read(address, len) {
        Some(bytes) if write => mem::write(address, &bytes),
        Some(_) => true,
        None => false,
    };
    if !ok {
        bad_address(shared, routine, export, what, address);
    }
}

fn violation(shared: &Shared, rule: Rule, routine: Routine, params: [u64; 4], message: String) {
    shared.report(Finding::bugcheck(
        rule,
        DRIVER_VERIFIER,
        params.to_vec(),
        routine.name(),
        message,
    ));
}

/// A spin lock that stays held by another processor: on Windows this one
/// spins at DISPATCH_LEVEL until the DPC watchdog fires. Ends the call.
pub fn deadlock(shared: &Shared, routine: Routine, export: &str, lock_id: LockId) -> ! {
    let message = format!(
        "{export} in {} spun for {} s on {}, which another processor never released (a deadlock).",
        routine.name(),
        SPIN_LOCK_DEADLOCK.as_secs(),
        lock_id.describe()
    );
    let params = [lock_id.address as u64, 0, 0, 0];
    shared.report(Finding::bugcheck(
        Rule::DriverHang,
        DPC_WATCHDOG_VIOLATION,
        vec![params[0]],
        routine.name(),
        message.clone(),
    ));
    super::cpu::abort_current_call(DPC_WATCHDOG_VIOLATION, params, message)
}

/// Runs an acquire routine: checks the IRQL, raises it, then takes the lock
/// (spinning while another processor holds it). Returns the IRQL found on
/// entry.
#[must_use]
pub fn acquire(request: &Acquire) -> u8 {
    let (shared, routine, irql) = caller();
    let address = request.lock.address as u64;
    let (low, high) = request.allowed;
    if irql < low || irql > high {
        let range = if low == high {
            format!("at IRQL {low}")
        } else if low == 0 {
            format!("at IRQL <= {high}")
        } else {
            format!("at IRQL >= {low}")
        };
        violation(
            &shared,
            Rule::SpinLockAcquireIrql,
            routine,
            [request.subcode, u64::from(irql), address, 0],
            format!(
                "{} was called for {} in {} at IRQL {irql}; it may only be called {range}.",
                request.export,
                request.lock.describe(),
                routine.name()
            ),
        );
    }
    let old = request
        .raise_to
        .map_or(irql, |level| context::set_irql(level).min(HIGH_LEVEL));
    let started = Instant::now();
    let mut spins: u32 = 0;
    loop {
        match shared.spin_locks.take(request, routine, irql) {
            Take::Taken => return old,
            Take::Mine(mine) => recursive(&shared, routine, request, &mine),
            Take::Busy => {}
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
            if started.elapsed() >= SPIN_LOCK_DEADLOCK {
                deadlock(&shared, routine, request.export, request.lock);
            }
        } else {
            std::hint::spin_loop();
        }
    }
}

fn recursive(shared: &Shared, routine: Routine, request: &Acquire, mine: &Holder) -> ! {
    let message = format!(
        "{} in {} asked for {}, which this processor already holds ({} in {}); recursive acquisition deadlocks on Windows.",
        request.export,
        routine.name(),
        request.lock.describe(),
        mine.export,
        mine.routine.name()
    );
    let params = [SELF_DEADLOCK, request.lock.address as u64, 0, 0];
    violation(
        shared,
        Rule::SpinLockRecursive,
        routine,
        params,
        message.clone(),
    );
    super::cpu::abort_current_call(DRIVER_VERIFIER, params, message)
}

/// Runs a release routine: checks that this processor holds the lock as
/// `request.family`, the IRQL, and the IRQL to restore, then releases it and
/// restores that IRQL.
pub fn release(request: &Release) {
    let (shared, routine, irql) = caller();
    let hold = shared.spin_locks.drop_hold(request.lock);
    let who = Who(request.export, routine);
    check_hold(&shared, routine, request, &hold, &who);
    let (low, high) = request.allowed;
    if irql < low || irql > high {
        let range = if low == high {
            format!("at IRQL {low}")
        } else {
            format!("at IRQL >= {low}")
        };
        violation(
            &shared,
            Rule::SpinLockReleaseIrql,
            routine,
            [
                request.subcode,
                u64::from(irql),
                request.lock.address as u64,
                0,
            ],
            format!(
                "{who} released {} at IRQL {irql}; it may only be called {range}.",
                request.lock.describe()
            ),
        );
    }
    if let Hold::Mine(holder) = &hold
        && holder.family == request.family
    {
        check_restore(&shared, routine, request, holder, irql, &who);
    }
    if let Some(new) = request.restore {
        context::set_irql(new.min(HIGH_LEVEL));
    }
}

/// The export and the routine that called it, for messages (formatted only
/// when a message is made).
struct Who<'a>(&'a str, Routine);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.0, self.1.name())
    }
}

/// A release of a lock this processor does not hold as `request.family`.
fn check_hold(shared: &Shared, routine: Routine, request: &Release, hold: &Hold, who: &Who<'_>) {
    let lock_id = request.lock;
    let address = lock_id.address as u64;
    let (params, message) = match hold {
        Hold::Free => (
            [UNACQUIRED_RELEASE, address, 0, 0],
            format!(
                "{who} released {}, which no processor holds.",
                lock_id.describe()
            ),
        ),
        Hold::Other(owner) => (
            [UNEXPECTED_THREAD, address, *owner, processor()],
            format!(
                "{who} released {} on processor {}, but processor {owner} holds it.",
                lock_id.describe(),
                processor()
            ),
        ),
        Hold::Mine(holder) if holder.family != request.family => (
            [MISMATCHED_RELEASE, address, 0, 0],
            format!(
                "{who} released {} as {}, but it was acquired as {} ({} in {}); a lock is released by the routine family that acquired it.",
                lock_id.describe(),
                request.family.describe(),
                holder.family.describe(),
                holder.export,
                holder.routine.name()
            ),
        ),
        Hold::Mine(_) => return,
    };
    violation(shared, Rule::SpinLockNotHeld, routine, params, message);
}

/// A release that does not give back the IRQL its acquire found.
fn check_restore(
    shared: &Shared,
    routine: Routine,
    request: &Release,
    holder: &Holder,
    irql: u8,
    who: &Who<'_>,
) {
    let lock_id = request.lock;
    let (restored, message) = match request.restore {
        Some(new) if new != holder.irql_before => (
            new,
            format!(
                "{who} restored IRQL {new} on releasing {}, but {} in {} was called at IRQL {}; the release must restore that IRQL.",
                lock_id.describe(),
                holder.export,
                holder.routine.name(),
                holder.irql_before
            ),
        ),
        None if holder.raised => (
            irql,
            format!(
                "{who} released {}, which {} in {} acquired by raising the IRQL from {}; the FromDpcLevel release does not restore it.",
                lock_id.describe(),
                holder.export,
                holder.routine.name(),
                holder.irql_before
            ),
        ),
        _ => return,
    };
    violation(
        shared,
        Rule::SpinLockOldIrql,
        routine,
        [
            IRQL_KE_RELEASE_SPIN_LOCK,
            lock_id.address as u64,
            u64::from(restored),
            u64::from(holder.irql_before),
        ],
        message,
    );
}

/// After `routine` returned: every lock this processor acquired since
/// `since` and still holds is a finding. The locks stay held, as they would
/// on Windows.
pub fn check_returned(shared: &Shared, routine: Routine, since: u64) {
    for (lock_id, holder) in shared.spin_locks.held_since(since) {
        let subcode = if holder.family == Family::Queued {
            QUEUED_SPIN_LOCK_RELEASE
        } else {
            SPIN_LOCK_RULE
        };
        violation(
            shared,
            Rule::SpinLockHeldOnReturn,
            routine,
            [subcode, lock_id.address as u64, 0, 0],
            format!(
                "{} returned while holding {}, acquired with {} in {}; it stays held, so the next acquire of it spins.",
                routine.name(),
                lock_id.describe(),
                holder.export,
                holder.routine.name()
            ),
        );
    }
}

/// An ordinary or queued `KSPIN_LOCK`, or an `EX_SPIN_LOCK`, named by the
/// driver: checked to be mapped before anything is locked.
#[must_use]
pub fn driver_lock(export: &str, lock_id: LockId) -> LockId {
    let (shared, routine, _) = caller();
    let bytes = lock_id.word_bytes().unwrap_or(8);
    // Only read: writing the word back would race with its holders.
    require(
        &shared,
        routine,
        export,
        "a spin lock",
        lock_id.address,
        bytes,
        false,
    );
    lock_id
}

/// `KeAcquireInStackQueuedSpinLock(AtDpcLevel)`: the handle's queue entry
/// is filled in (and `OldIrql` when the routine raised).
pub fn acquire_queued(request: &Acquire, handle: usize) {
    let (shared, routine, _) = caller();
    require(
        &shared,
        routine,
        request.export,
        "a KLOCK_QUEUE_HANDLE",
        handle,
        size_of::<KLOCK_QUEUE_HANDLE>(),
        true,
    );
    let old = acquire(&Acquire {
        queue_entry: handle,
        ..*request
    });
    // LockQueue: Next = NULL, Lock = the spin lock.
    let mut entry = [0_u8; size_of::<KSPIN_LOCK_QUEUE>()];
    entry[offset_of!(KSPIN_LOCK_QUEUE, Lock)..]
        .copy_from_slice(&(request.lock.address as u64).to_le_bytes());
    let _ = mem::write(handle, &entry);
    if request.raise_to.is_some() {
        let _ = mem::write(handle + QUEUE_HANDLE_OLD_IRQL, &[old]);
    }
}

/// `KeReleaseInStackQueuedSpinLock(FromDpcLevel)`: the lock and the IRQL to
/// restore come from the handle.
pub fn release_queued(export: &'static str, handle: usize, from_dpc: bool) {
    let (shared, routine, _) = caller();
    require(
        &shared,
        routine,
        export,
        "a KLOCK_QUEUE_HANDLE",
        handle,
        size_of::<KLOCK_QUEUE_HANDLE>(),
        false,
    );
    let lock_address = mem::read_u64(handle + QUEUE_HANDLE_LOCK).unwrap_or(0) as usize;
    let old = mem::read(handle + QUEUE_HANDLE_OLD_IRQL, 1).map_or(0, |b| b[0]);
    release(&Release {
        export,
        lock: LockId::kspin(lock_address),
        family: Family::Queued,
        allowed: if from_dpc {
            (DISPATCH_LEVEL, HIGH_LEVEL)
        } else {
            (DISPATCH_LEVEL, DISPATCH_LEVEL)
        },
        subcode: if from_dpc {
            RELEASE_FROM_DPC_BELOW
        } else {
            RELEASE_NOT_AT_DISPATCH
        },
        restore: (!from_dpc).then_some(old),
    });
}

/// `StorPortAcquireSpinLock(DeviceExtension, SpinLock, LockContext,
/// LockHandle)` (`StorPortNotification(AcquireSpinLock)`).
pub fn storport_acquire(kind: u32, lock_context: usize, handle: usize) {
    const EXPORT: &str = "StorPortAcquireSpinLock";
    let (shared, routine, irql) = caller();
    let dpc_lock = lock_context.wrapping_add(STOR_DPC_LOCK_OFFSET);
    let Some((lock_id, level)) = shared.spin_locks.storport_lock(kind, dpc_lock) else {
        shared.phase(format!(
            "{EXPORT} in {} named STOR_SPINLOCK {kind}, which is not DpcLock, StartIoLock or InterruptLock; nothing was acquired.",
            routine.name()
        ));
        return;
    };
    if kind == stor_spinlock::DPC_LOCK {
        require(
            &shared,
            routine,
            EXPORT,
            "a STOR_DPC",
            lock_context,
            STOR_DPC_BYTES,
            true,
        );
    }
    require(
        &shared,
        routine,
        EXPORT,
        "a STOR_LOCK_HANDLE",
        handle,
        size_of::<STOR_LOCK_HANDLE>(),
        true,
    );
    let unchecked = shared
        .spin_locks
        .storport_irql_unchecked
        .load(Ordering::Relaxed);
    let old = acquire(&Acquire {
        export: EXPORT,
        lock: lock_id,
        family: Family::StorPort,
        allowed: if unchecked {
            (0, HIGH_LEVEL)
        } else {
            (0, level)
        },
        subcode: ACQUIRE_ABOVE_DISPATCH,
        raise_to: Some(if unchecked { irql.max(level) } else { level }),
        queue_entry: 0,
    });
    let mut bytes = [0_u8; size_of::<STOR_LOCK_HANDLE>()];
    bytes[..4].copy_from_slice(&kind.to_le_bytes());
    bytes[STOR_HANDLE_LOCK..STOR_HANDLE_LOCK + 8]
        .copy_from_slice(&(lock_id.address as u64).to_le_bytes());
    bytes[STOR_HANDLE_OLD_IRQL] = old;
    let _ = mem::write(handle, &bytes);
}

/// `StorPortReleaseSpinLock(DeviceExtension, LockHandle)`
/// (`StorPortNotification(ReleaseSpinLock)`).
pub fn storport_release(handle: usize) {
    const EXPORT: &str = "StorPortReleaseSpinLock";
    let (shared, routine, _) = caller();
    require(
        &shared,
        routine,
        EXPORT,
        "a STOR_LOCK_HANDLE",
        handle,
        size_of::<STOR_LOCK_HANDLE>(),
        false,
    );
    let kind = mem::read_u32(handle).unwrap_or(0);
    let dpc_lock = mem::read_u64(handle + STOR_HANDLE_LOCK).unwrap_or(0) as usize;
    let old = mem::read(handle + STOR_HANDLE_OLD_IRQL, 1).map_or(0, |b| b[0]);
    let Some((lock_id, level)) = shared.spin_locks.storport_lock(kind, dpc_lock) else {
        shared.phase(format!(
            "{EXPORT} in {} was given a handle for STOR_SPINLOCK {kind}, which is not DpcLock, StartIoLock or InterruptLock; nothing was released.",
            routine.name()
        ));
        return;
    };
    let unchecked = shared
        .spin_locks
        .storport_irql_unchecked
        .load(Ordering::Relaxed);
    release(&Release {
        export: EXPORT,
        lock: lock_id,
        family: Family::StorPort,
        allowed: if unchecked {
            (0, HIGH_LEVEL)
        } else {
            (level, level)
        },
        subcode: RELEASE_NOT_AT_DISPATCH,
        restore: Some(old),
    });
}
