//! The spin-lock exports on emulated processors, called through the call
//! gate from callbacks of a port instance: every lock kind raises and
//! restores the IRQL as documented, two processors (threads) exclude each
//! other, shared holders share, and a processor that asks again for a lock it
//! holds, or waits for ever on another processor's, is stopped with a
//! finding instead of hanging.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use storport_emu::machine::irql;
use storport_emu::port::context::{self, Routine};
use storport_emu::port::cpu::{CallFault, Cpu, GateCpu};
use storport_emu::port::exports;
use storport_emu::port::locks::SPIN_LOCK_DEADLOCK;
use storport_emu::port::state::Shared;
use storport_emu::port::{Finding, Rule};
use storport_sys::{
    DISPATCH_LEVEL, KLOCK_QUEUE_HANDLE, KSPIN_LOCK, KSPIN_LOCK_QUEUE, PASSIVE_LEVEL,
    STOR_LOCK_HANDLE, notification, stor_spinlock,
};

/// The IRQL of Storport's DIRQL callbacks and of its `InterruptLock`.
const DIRQL: u8 = 5;

type KeAcquire = unsafe extern "win64" fn(*mut KSPIN_LOCK) -> u8;
type KeRelease = unsafe extern "win64" fn(*mut KSPIN_LOCK, u8);
type KeAtDpc = unsafe extern "win64" fn(*mut KSPIN_LOCK);
type QueuedAcquire = unsafe extern "win64" fn(*mut KSPIN_LOCK, *mut KLOCK_QUEUE_HANDLE);
type QueuedRelease = unsafe extern "win64" fn(*mut KLOCK_QUEUE_HANDLE);
type ExAcquire = unsafe extern "win64" fn(*mut i32) -> u8;
type ExRelease = unsafe extern "win64" fn(*mut i32, u8);
type ExAtDpc = unsafe extern "win64" fn(*mut i32);
/// `StorPortNotification` with three arguments after the extension.
type Notification = unsafe extern "win64" fn(u32, usize, u64, u64, u64);

/// The exports, typed as their documented prototypes.
struct Api {
    ke_acquire: KeAcquire,
    ke_release: KeRelease,
    ke_acquire_at_dpc: KeAtDpc,
    ke_release_from_dpc: KeAtDpc,
    queued_acquire: QueuedAcquire,
    queued_release: QueuedRelease,
    queued_acquire_at_dpc: QueuedAcquire,
    queued_release_from_dpc: QueuedRelease,
    ex_acquire_shared: ExAcquire,
    ex_release_shared: ExRelease,
    ex_acquire_exclusive: ExAcquire,
    ex_release_exclusive: ExRelease,
    ex_acquire_shared_at_dpc: ExAtDpc,
    ex_release_shared_from_dpc: ExAtDpc,
    ex_acquire_exclusive_at_dpc: ExAtDpc,
    ex_release_exclusive_from_dpc: ExAtDpc,
    notification: Notification,
}

fn address(module: &str, name: &str) -> usize {
    exports::resolve(module, name).unwrap_or_else(|| panic!("{module}!{name} is emulated"))
}

macro_rules! export {
    ($ty:ty, $module:literal, $name:literal) => {{
        let address = address($module, $name);
        // SAFETY: the emulated export of this name is a win64 routine with
        // the documented prototype `$ty` spells.
        unsafe { std::mem::transmute::<usize, $ty>(address) }
    }};
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| Api {
        ke_acquire: export!(KeAcquire, "ntoskrnl.exe", "KeAcquireSpinLockRaiseToDpc"),
        ke_release: export!(KeRelease, "ntoskrnl.exe", "KeReleaseSpinLock"),
        ke_acquire_at_dpc: export!(KeAtDpc, "ntoskrnl.exe", "KeAcquireSpinLockAtDpcLevel"),
        ke_release_from_dpc: export!(KeAtDpc, "ntoskrnl.exe", "KeReleaseSpinLockFromDpcLevel"),
        queued_acquire: export!(
            QueuedAcquire,
            "ntoskrnl.exe",
            "KeAcquireInStackQueuedSpinLock"
        ),
        queued_release: export!(
            QueuedRelease,
            "ntoskrnl.exe",
            "KeReleaseInStackQueuedSpinLock"
        ),
        queued_acquire_at_dpc: export!(
            QueuedAcquire,
            "ntoskrnl.exe",
            "KeAcquireInStackQueuedSpinLockAtDpcLevel"
        ),
        queued_release_from_dpc: export!(
            QueuedRelease,
            "ntoskrnl.exe",
            "KeReleaseInStackQueuedSpinLockFromDpcLevel"
        ),
        ex_acquire_shared: export!(ExAcquire, "ntoskrnl.exe", "ExAcquireSpinLockShared"),
        ex_release_shared: export!(ExRelease, "ntoskrnl.exe", "ExReleaseSpinLockShared"),
        ex_acquire_exclusive: export!(ExAcquire, "ntoskrnl.exe", "ExAcquireSpinLockExclusive"),
        ex_release_exclusive: export!(ExRelease, "ntoskrnl.exe", "ExReleaseSpinLockExclusive"),
        ex_acquire_shared_at_dpc: export!(
            ExAtDpc,
            "ntoskrnl.exe",
            "ExAcquireSpinLockSharedAtDpcLevel"
        ),
        ex_release_shared_from_dpc: export!(
            ExAtDpc,
            "ntoskrnl.exe",
            "ExReleaseSpinLockSharedFromDpcLevel"
        ),
        ex_acquire_exclusive_at_dpc: export!(
            ExAtDpc,
            "ntoskrnl.exe",
            "ExAcquireSpinLockExclusiveAtDpcLevel"
        ),
        ex_release_exclusive_from_dpc: export!(
            ExAtDpc,
            "ntoskrnl.exe",
            "ExReleaseSpinLockExclusiveFromDpcLevel"
        ),
        notification: export!(Notification, "storport.sys", "StorPortNotification"),
    })
}

/// Locks and handles a callback works on (its address is the callback's
/// argument).
struct Probe {
    ke: KSPIN_LOCK,
    queued: KSPIN_LOCK,
    ex: i32,
    /// A `STOR_DPC` (0x48 bytes; its `Lock` is the last word).
    dpc: [usize; 9],
    queue_handle: KLOCK_QUEUE_HANDLE,
    stor_handle: STOR_LOCK_HANDLE,
    /// What the callback saw: (step, IRQL after it, value it returned).
    seen: Vec<(&'static str, u8, u8)>,
    /// The lock words while held.
    words: Vec<(&'static str, usize)>,
}

impl Probe {
    const fn new() -> Self {
        let queue_handle = KLOCK_QUEUE_HANDLE {
            LockQueue: KSPIN_LOCK_QUEUE {
                Next: std::ptr::null_mut(),
                Lock: std::ptr::null_mut(),
            },
            OldIrql: 0xEE,
        };
        Self {
            ke: 0,
            queued: 0,
            ex: 0,
            dpc: [0; 9],
            queue_handle,
            stor_handle: STOR_LOCK_HANDLE {
                Lock: 0,
                Context: queue_handle,
            },
            seen: Vec::new(),
            words: Vec::new(),
        }
    }

    fn see(&mut self, step: &'static str, returned: u8) {
        self.seen.push((step, irql::current(), returned));
    }
}

/// An `EX_SPIN_LOCK`'s 32 bits, as stored.
fn ex_word(word: i32) -> usize {
    usize::try_from(word.cast_unsigned()).expect("32 bits fit")
}

/// Runs `body(probe)` through the gate as `routine` of `shared` at `level`
/// on this thread (one emulated processor).
fn callback(
    shared: &Arc<Shared>,
    routine: Routine,
    level: u8,
    body: extern "win64" fn(u64) -> u64,
    probe: *mut Probe,
) -> Result<u64, CallFault> {
    let _frame = context::enter(shared, routine, level);
    // SAFETY: `body` is a win64 function of this file that takes the probe's
    // address, which the caller keeps alive for the call.
    unsafe { GateCpu::default().call(body as *const () as usize, &[probe as u64], level) }
}

fn probe_of(argument: u64) -> &'static mut Probe {
    // SAFETY: every callback of this file gets the address of a live Probe
    // that no other code touches during the call.
    unsafe { &mut *(argument as *mut Probe) }
}

/// Every lock kind, taken and released with the routines that raise, on a
/// processor at the callback's IRQL.
extern "win64" fn raising_kinds(argument: u64) -> u64 {
    let api = api();
    let probe = probe_of(argument);
    // SAFETY: the documented arguments — a lock the probe owns, a handle on
    // it, and the IRQL the matching acquire returned — here and below.
    let old = unsafe { (api.ke_acquire)(&raw mut probe.ke) };
    probe.see("KeAcquireSpinLockRaiseToDpc", old);
    probe.words.push(("KSPIN_LOCK", probe.ke));
    // SAFETY: see above.
    unsafe { (api.ke_release)(&raw mut probe.ke, old) };
    probe.see("KeReleaseSpinLock", 0);

    // SAFETY: see above.
    unsafe { (api.queued_acquire)(&raw mut probe.queued, &raw mut probe.queue_handle) };
    let old = probe.queue_handle.OldIrql;
    probe.see("KeAcquireInStackQueuedSpinLock", old);
    probe.words.push(("queued KSPIN_LOCK", probe.queued));
    probe
        .words
        .push(("LockQueue.Lock", probe.queue_handle.LockQueue.Lock as usize));
    // SAFETY: see above.
    unsafe { (api.queued_release)(&raw mut probe.queue_handle) };
    probe.see("KeReleaseInStackQueuedSpinLock", 0);

    // SAFETY: see above.
    let old = unsafe { (api.ex_acquire_shared)(&raw mut probe.ex) };
    probe.see("ExAcquireSpinLockShared", old);
    probe.words.push(("shared EX_SPIN_LOCK", ex_word(probe.ex)));
    // SAFETY: see above.
    unsafe { (api.ex_release_shared)(&raw mut probe.ex, old) };
    probe.see("ExReleaseSpinLockShared", 0);

    // SAFETY: see above.
    let old = unsafe { (api.ex_acquire_exclusive)(&raw mut probe.ex) };
    probe.see("ExAcquireSpinLockExclusive", old);
    probe
        .words
        .push(("exclusive EX_SPIN_LOCK", ex_word(probe.ex)));
    // SAFETY: see above.
    unsafe { (api.ex_release_exclusive)(&raw mut probe.ex, old) };
    probe.see("ExReleaseSpinLockExclusive", 0);

    let dpc = probe.dpc.as_mut_ptr() as u64;
    for (kind, context, name) in [
        (stor_spinlock::START_IO_LOCK, 0, "StartIoLock"),
        (stor_spinlock::INTERRUPT_LOCK, 0, "InterruptLock"),
        (stor_spinlock::DPC_LOCK, dpc, "DpcLock"),
    ] {
        // SAFETY: StorPortAcquireSpinLock(SpinLock, LockContext, handle): NULL
        // or the probe's STOR_DPC.
        unsafe {
            (api.notification)(
                notification::ACQUIRE_SPIN_LOCK,
                0,
                u64::from(kind),
                context,
                &raw mut probe.stor_handle as u64,
            );
        }
        let old = probe.stor_handle.Context.OldIrql;
        probe.see(name, old);
        if kind == stor_spinlock::DPC_LOCK {
            probe.words.push(("STOR_DPC.Lock", probe.dpc[8]));
            probe.words.push((
                "DpcLock handle",
                probe.stor_handle.Context.LockQueue.Lock as usize,
            ));
        }
        // SAFETY: StorPortReleaseSpinLock(handle) with the handle just filled in.
        unsafe {
            (api.notification)(
                notification::RELEASE_SPIN_LOCK,
                0,
                &raw mut probe.stor_handle as u64,
                0,
                0,
            );
        }
        probe.see("StorPortReleaseSpinLock", 0);
    }
    probe.words.push(("KSPIN_LOCK after", probe.ke));
    probe.words.push(("EX_SPIN_LOCK after", ex_word(probe.ex)));
    probe.words.push(("STOR_DPC.Lock after", probe.dpc[8]));
    0
}

/// The `AtDpcLevel` / `FromDpcLevel` forms, which leave the IRQL alone.
extern "win64" fn dpc_level_kinds(argument: u64) -> u64 {
    let api = api();
    let probe = probe_of(argument);
    // SAFETY: a lock the probe owns, at DISPATCH_LEVEL, here and below.
    unsafe { (api.ke_acquire_at_dpc)(&raw mut probe.ke) };
    probe.see("KeAcquireSpinLockAtDpcLevel", 0);
    // SAFETY: see above.
    unsafe { (api.ke_release_from_dpc)(&raw mut probe.ke) };
    probe.see("KeReleaseSpinLockFromDpcLevel", 0);
    // SAFETY: see above.
    unsafe { (api.queued_acquire_at_dpc)(&raw mut probe.queued, &raw mut probe.queue_handle) };
    probe.see(
        "KeAcquireInStackQueuedSpinLockAtDpcLevel",
        probe.queue_handle.OldIrql,
    );
    // SAFETY: see above.
    unsafe { (api.queued_release_from_dpc)(&raw mut probe.queue_handle) };
    probe.see("KeReleaseInStackQueuedSpinLockFromDpcLevel", 0);
    // SAFETY: see above.
    unsafe { (api.ex_acquire_shared_at_dpc)(&raw mut probe.ex) };
    probe.see("ExAcquireSpinLockSharedAtDpcLevel", 0);
    // SAFETY: see above.
    unsafe { (api.ex_release_shared_from_dpc)(&raw mut probe.ex) };
    probe.see("ExReleaseSpinLockSharedFromDpcLevel", 0);
    // SAFETY: see above.
    unsafe { (api.ex_acquire_exclusive_at_dpc)(&raw mut probe.ex) };
    probe.see("ExAcquireSpinLockExclusiveAtDpcLevel", 0);
    // SAFETY: see above.
    unsafe { (api.ex_release_exclusive_from_dpc)(&raw mut probe.ex) };
    probe.see("ExReleaseSpinLockExclusiveFromDpcLevel", 0);
    0
}

#[test]
fn every_kind_raises_to_its_level_and_restores_the_callers_irql() {
    for start in [PASSIVE_LEVEL, DISPATCH_LEVEL] {
        let shared = Arc::new(Shared::default());
        let mut probe = Probe::new();
        let routine = if start == PASSIVE_LEVEL {
            Routine::FindAdapter
        } else {
            Routine::StartIo
        };
        callback(&shared, routine, start, raising_kinds, &raw mut probe).expect("no fault");
        assert_eq!(
            probe.seen,
            vec![
                ("KeAcquireSpinLockRaiseToDpc", DISPATCH_LEVEL, start),
                ("KeReleaseSpinLock", start, 0),
                ("KeAcquireInStackQueuedSpinLock", DISPATCH_LEVEL, start),
                ("KeReleaseInStackQueuedSpinLock", start, 0),
                ("ExAcquireSpinLockShared", DISPATCH_LEVEL, start),
                ("ExReleaseSpinLockShared", start, 0),
                ("ExAcquireSpinLockExclusive", DISPATCH_LEVEL, start),
                ("ExReleaseSpinLockExclusive", start, 0),
                ("StartIoLock", DISPATCH_LEVEL, start),
                ("StorPortReleaseSpinLock", start, 0),
                ("InterruptLock", DIRQL, start),
                ("StorPortReleaseSpinLock", start, 0),
                ("DpcLock", DISPATCH_LEVEL, start),
                ("StorPortReleaseSpinLock", start, 0),
            ],
            "called at IRQL {start}"
        );
        let queued = std::ptr::from_ref(&probe.queued) as usize;
        assert_eq!(
            probe.words,
            vec![
                ("KSPIN_LOCK", 1),
                (
                    "queued KSPIN_LOCK",
                    std::ptr::from_ref(&probe.queue_handle) as usize
                ),
                ("LockQueue.Lock", queued),
                ("shared EX_SPIN_LOCK", 1),
                ("exclusive EX_SPIN_LOCK", 0x8000_0000),
                ("STOR_DPC.Lock", 1),
                ("DpcLock handle", std::ptr::from_ref(&probe.dpc[8]) as usize),
                ("KSPIN_LOCK after", 0),
                ("EX_SPIN_LOCK after", 0),
                ("STOR_DPC.Lock after", 0),
            ],
            "the lock words say held while held and free after"
        );
        assert_eq!(shared.findings(), vec![], "called at IRQL {start}");
    }
}

#[test]
fn the_dpc_level_forms_keep_the_irql() {
    let shared = Arc::new(Shared::default());
    let mut probe = Probe::new();
    callback(
        &shared,
        Routine::StartIo,
        DISPATCH_LEVEL,
        dpc_level_kinds,
        &raw mut probe,
    )
    .expect("no fault");
    assert!(
        probe
            .seen
            .iter()
            .all(|(_, level, _)| *level == DISPATCH_LEVEL),
        "{:?}",
        probe.seen
    );
    assert_eq!(
        probe.seen[2].2, 0xEE,
        "the AtDpcLevel form leaves OldIrql alone"
    );
    assert_eq!(shared.findings(), vec![]);
}

/// Two processors contending: how many were inside at once, at most, and
/// how many rounds completed.
struct Contention {
    lock: Probe,
    inside: AtomicU32,
    most_inside: AtomicU32,
    rounds: AtomicU32,
}

const ROUNDS: u32 = 20;
const HOLD: Duration = Duration::from_millis(2);

fn enter_and_hold(contention: &Contention) {
    let now = contention.inside.fetch_add(1, Ordering::SeqCst) + 1;
    contention.most_inside.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(HOLD);
    contention.inside.fetch_sub(1, Ordering::SeqCst);
    contention.rounds.fetch_add(1, Ordering::SeqCst);
}

fn contention_of(argument: u64) -> &'static mut Contention {
    // SAFETY: the contention tests pass the address of a Contention that
    // outlives every thread; its locks are only touched through the exports
    // and its counters are atomic.
    unsafe { &mut *(argument as *mut Contention) }
}

extern "win64" fn ordinary_rounds(argument: u64) -> u64 {
    let c = contention_of(argument);
    for _ in 0..ROUNDS {
        // SAFETY: the shared KSPIN_LOCK, released with the IRQL the acquire returned.
        let old = unsafe { (api().ke_acquire)(&raw mut c.lock.ke) };
        enter_and_hold(c);
        // SAFETY: see above.
        unsafe { (api().ke_release)(&raw mut c.lock.ke, old) };
    }
    0
}

extern "win64" fn queued_rounds(argument: u64) -> u64 {
    let c = contention_of(argument);
    for _ in 0..ROUNDS {
        let mut handle = Probe::new().queue_handle;
        // SAFETY: the shared KSPIN_LOCK and a handle on this stack.
        unsafe { (api().queued_acquire)(&raw mut c.lock.queued, &raw mut handle) };
        enter_and_hold(c);
        // SAFETY: the handle of the acquire above.
        unsafe { (api().queued_release)(&raw mut handle) };
    }
    0
}

extern "win64" fn exclusive_rounds(argument: u64) -> u64 {
    let c = contention_of(argument);
    for _ in 0..ROUNDS {
        // SAFETY: the shared EX_SPIN_LOCK, released with the IRQL the acquire returned.
        let old = unsafe { (api().ex_acquire_exclusive)(&raw mut c.lock.ex) };
        enter_and_hold(c);
        // SAFETY: see above.
        unsafe { (api().ex_release_exclusive)(&raw mut c.lock.ex, old) };
    }
    0
}

extern "win64" fn start_io_lock_rounds(argument: u64) -> u64 {
    let c = contention_of(argument);
    for _ in 0..ROUNDS {
        let mut handle = Probe::new().stor_handle;
        // SAFETY: StorPortAcquireSpinLock(StartIoLock, NULL, handle on this stack).
        unsafe {
            (api().notification)(
                notification::ACQUIRE_SPIN_LOCK,
                0,
                u64::from(stor_spinlock::START_IO_LOCK),
                0,
                &raw mut handle as u64,
            );
        }
        enter_and_hold(c);
        // SAFETY: StorPortReleaseSpinLock with the handle filled in above.
        unsafe {
            (api().notification)(
                notification::RELEASE_SPIN_LOCK,
                0,
                &raw mut handle as u64,
                0,
                0,
            );
        }
    }
    0
}

/// Runs `body` on two threads (processors) at once, each as `HwStartIo` at
/// `DISPATCH_LEVEL` of the same port instance.
fn on_two_processors(body: extern "win64" fn(u64) -> u64) -> (Arc<Shared>, Box<Contention>) {
    let shared = Arc::new(Shared::default());
    let mut contention = Box::new(Contention {
        lock: Probe::new(),
        inside: AtomicU32::new(0),
        most_inside: AtomicU32::new(0),
        rounds: AtomicU32::new(0),
    });
    let address = std::ptr::from_mut(&mut *contention) as u64;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let shared = &shared;
            scope.spawn(move || {
                let _frame = context::enter(shared, Routine::StartIo, DISPATCH_LEVEL);
                // SAFETY: `body` is a win64 function of this file taking the
                // contention's address, alive until both threads end.
                let result = unsafe {
                    GateCpu::default().call(body as *const () as usize, &[address], DISPATCH_LEVEL)
                };
                result.expect("no fault");
            });
        }
    });
    (shared, contention)
}

#[test]
fn two_processors_exclude_each_other_for_every_exclusive_kind() {
    for (kind, body) in [
        (
            "KSPIN_LOCK",
            ordinary_rounds as extern "win64" fn(u64) -> u64,
        ),
        ("in-stack queued KSPIN_LOCK", queued_rounds),
        ("exclusive EX_SPIN_LOCK", exclusive_rounds),
        ("StartIoLock", start_io_lock_rounds),
    ] {
        let (shared, contention) = on_two_processors(body);
        assert_eq!(
            contention.rounds.load(Ordering::SeqCst),
            2 * ROUNDS,
            "{kind}"
        );
        assert_eq!(
            contention.most_inside.load(Ordering::SeqCst),
            1,
            "{kind}: never two holders at once"
        );
        assert_eq!(shared.findings(), vec![], "{kind}");
        assert_eq!(contention.lock.ke, 0, "{kind}: free at the end");
        assert_eq!(contention.lock.ex, 0, "{kind}: free at the end");
    }
}

/// Shared holders of one `EX_SPIN_LOCK` and a writer.
struct Readers {
    lock: i32,
    first_in: AtomicBool,
    second_in: AtomicBool,
    first_saw_second: AtomicBool,
    writer_waited: AtomicBool,
    first_out: AtomicBool,
}

fn readers_of(argument: u64) -> &'static mut Readers {
    // SAFETY: the readers test passes the address of a Readers that outlives
    // every thread; its lock is only touched through the exports.
    unsafe { &mut *(argument as *mut Readers) }
}

/// Holds the lock shared until the second reader is inside too (or 2 s).
extern "win64" fn first_reader(argument: u64) -> u64 {
    let r = readers_of(argument);
    // SAFETY: the shared EX_SPIN_LOCK, released with the IRQL the acquire returned.
    let old = unsafe { (api().ex_acquire_shared)(&raw mut r.lock) };
    r.first_in.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !r.second_in.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::hint::spin_loop();
    }
    r.first_saw_second
        .store(r.second_in.load(Ordering::SeqCst), Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    r.first_out.store(true, Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { (api().ex_release_shared)(&raw mut r.lock, old) };
    0
}

extern "win64" fn second_reader(argument: u64) -> u64 {
    let r = readers_of(argument);
    while !r.first_in.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    // SAFETY: the shared EX_SPIN_LOCK, released with the IRQL the acquire returned.
    let old = unsafe { (api().ex_acquire_shared)(&raw mut r.lock) };
    r.second_in.store(true, Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { (api().ex_release_shared)(&raw mut r.lock, old) };
    0
}

extern "win64" fn writer(argument: u64) -> u64 {
    let r = readers_of(argument);
    while !r.second_in.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    // SAFETY: the shared EX_SPIN_LOCK, released with the IRQL the acquire returned.
    let old = unsafe { (api().ex_acquire_exclusive)(&raw mut r.lock) };
    r.writer_waited
        .store(r.first_out.load(Ordering::SeqCst), Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { (api().ex_release_exclusive)(&raw mut r.lock, old) };
    0
}

#[test]
fn shared_holders_share_and_an_exclusive_one_waits_for_them() {
    let shared = Arc::new(Shared::default());
    let mut readers = Box::new(Readers {
        lock: 0,
        first_in: AtomicBool::new(false),
        second_in: AtomicBool::new(false),
        first_saw_second: AtomicBool::new(false),
        writer_waited: AtomicBool::new(false),
        first_out: AtomicBool::new(false),
    });
    let address = std::ptr::from_mut(&mut *readers) as u64;
    std::thread::scope(|scope| {
        for body in [
            first_reader as extern "win64" fn(u64) -> u64,
            second_reader,
            writer,
        ] {
            let shared = &shared;
            scope.spawn(move || {
                let _frame = context::enter(shared, Routine::Dpc, DISPATCH_LEVEL);
                // SAFETY: `body` is a win64 function of this file taking the
                // readers' address, alive until every thread ends.
                let result = unsafe {
                    GateCpu::default().call(body as *const () as usize, &[address], DISPATCH_LEVEL)
                };
                result.expect("no fault");
            });
        }
    });
    assert!(
        readers.first_saw_second.load(Ordering::SeqCst),
        "two shared holders at once"
    );
    assert!(
        readers.writer_waited.load(Ordering::SeqCst),
        "the exclusive acquire waited for the shared holder"
    );
    assert_eq!(readers.lock, 0);
    assert_eq!(shared.findings(), vec![]);
}

extern "win64" fn acquire_twice(argument: u64) -> u64 {
    let probe = probe_of(argument);
    // SAFETY: a lock the probe owns, at DISPATCH_LEVEL.
    let _ = unsafe { (api().ke_acquire)(&raw mut probe.ke) };
    probe.see("first", 0);
    // SAFETY: none: the second acquire of the held lock is what is tested.
    let _ = unsafe { (api().ke_acquire)(&raw mut probe.ke) };
    probe.see("second", 0);
    0
}

#[test]
fn asking_again_for_a_held_lock_ends_the_call_at_once() {
    let shared = Arc::new(Shared::default());
    let mut probe = Probe::new();
    let started = Instant::now();
    let result = callback(
        &shared,
        Routine::StartIo,
        DISPATCH_LEVEL,
        acquire_twice,
        &raw mut probe,
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no spinning on its own lock"
    );
    let fault = result.expect_err("the call ends");
    assert!(fault.reported);
    assert_eq!(
        probe.seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        ["first"]
    );
    let findings = shared.findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].rule, Rule::SpinLockRecursive);
    assert_eq!(findings[0].bugcheck, Some(0xC4));
    assert_eq!(
        findings[0].params,
        vec![0x1000, std::ptr::from_ref(&probe.ke) as u64, 0, 0]
    );
}

extern "win64" fn acquire_and_keep(argument: u64) -> u64 {
    let probe = probe_of(argument);
    // SAFETY: a lock the probe owns, at DISPATCH_LEVEL; it is kept on purpose.
    unsafe { (api().ke_acquire_at_dpc)(&raw mut probe.ke) };
    0
}

extern "win64" fn release_other(argument: u64) -> u64 {
    let probe = probe_of(argument);
    // SAFETY: a lock another processor holds: releasing it here is tested.
    unsafe { (api().ke_release_from_dpc)(&raw mut probe.ke) };
    0
}

extern "win64" fn acquire_ordinary_release_queued(argument: u64) -> u64 {
    let probe = probe_of(argument);
    // SAFETY: a lock the probe owns, at DISPATCH_LEVEL.
    unsafe { (api().ke_acquire_at_dpc)(&raw mut probe.queued) };
    probe.queue_handle.LockQueue.Lock = &raw mut probe.queued;
    // SAFETY: none: releasing an ordinary spin lock as a queued one is tested.
    unsafe { (api().queued_release_from_dpc)(&raw mut probe.queue_handle) };
    0
}

fn only_finding(shared: &Shared) -> Finding {
    let findings = shared.findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings[0].clone()
}

#[test]
fn a_release_on_another_processor_or_through_another_family_is_not_held() {
    let shared = Arc::new(Shared::default());
    let mut probe = Probe::new();
    let lock = std::ptr::from_ref(&probe.ke) as u64;
    let probe_address = &raw mut probe as u64;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                callback(
                    &shared,
                    Routine::Dpc,
                    DISPATCH_LEVEL,
                    acquire_and_keep,
                    probe_address as *mut Probe,
                )
            })
            .join()
            .expect("first processor")
            .expect("no fault");
    });
    callback(
        &shared,
        Routine::StartIo,
        DISPATCH_LEVEL,
        release_other,
        &raw mut probe,
    )
    .expect("no fault");
    let finding = only_finding(&shared);
    assert_eq!(finding.rule, Rule::SpinLockNotHeld);
    assert_eq!(finding.params[..2], [0x1004, lock]);
    assert_ne!(finding.params[2], finding.params[3], "two processors");

    let shared = Arc::new(Shared::default());
    let mut probe = Probe::new();
    callback(
        &shared,
        Routine::StartIo,
        DISPATCH_LEVEL,
        acquire_ordinary_release_queued,
        &raw mut probe,
    )
    .expect("no fault");
    let finding = only_finding(&shared);
    assert_eq!(finding.rule, Rule::SpinLockNotHeld);
    assert_eq!(
        finding.params,
        vec![0x1009, std::ptr::from_ref(&probe.queued) as u64, 0, 0]
    );
}

#[test]
fn a_lock_another_processor_never_releases_is_a_bounded_deadlock() {
    let shared = Arc::new(Shared::default());
    let mut probe = Probe::new();
    let probe_address = &raw mut probe as u64;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                callback(
                    &shared,
                    Routine::Dpc,
                    DISPATCH_LEVEL,
                    acquire_and_keep,
                    probe_address as *mut Probe,
                )
            })
            .join()
            .expect("first processor")
            .expect("no fault");
    });
    let started = Instant::now();
    let result = callback(
        &shared,
        Routine::StartIo,
        DISPATCH_LEVEL,
        acquire_and_keep,
        &raw mut probe,
    );
    let waited = started.elapsed();
    assert!(result.is_err(), "the waiting call ends");
    assert!(
        waited >= SPIN_LOCK_DEADLOCK && waited < SPIN_LOCK_DEADLOCK + Duration::from_secs(5),
        "waited {waited:?}"
    );
    let finding = only_finding(&shared);
    assert_eq!(finding.rule, Rule::DriverHang);
    assert_eq!(finding.bugcheck, Some(0x133), "DPC_WATCHDOG_VIOLATION");
}
