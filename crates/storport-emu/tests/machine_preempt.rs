//! The machine's preemption model: a call below DISPATCH_LEVEL is stopped
//! after a planned number of driver instructions, parked, and resumed after
//! a call on its processor ran; code at DISPATCH_LEVEL is never stopped.
//! Exercised with hand-assembled code (an interlocked spin lock).

#![expect(
    clippy::doc_markdown,
    reason = "IRQL names are written as Microsoft's documentation writes them"
)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use storport_emu::machine::gate::{self, Limits};
use storport_emu::machine::preempt::{self, Preempted, Preemption};
use storport_emu::machine::{CodePage, Fault, irql, kpcr};

/// `holder(lock, spins)`: takes the interlocked lock at `lock` without
/// raising IRQL, counts `spins` down, releases it and returns 7.
const HOLDER: &[u8] = &[
    0x41, 0xB8, 0x01, 0x00, 0x00, 0x00, // mov r8d, 1
    0x31, 0xC0, // 1: xor eax, eax
    0xF0, 0x44, 0x0F, 0xB1, 0x01, // lock cmpxchg [rcx], r8d
    0x75, 0xF7, // jnz 1b
    0x48, 0xFF, 0xCA, // 2: dec rdx
    0x75, 0xFB, // jnz 2b
    0xC7, 0x01, 0x00, 0x00, 0x00, 0x00, // mov dword [rcx], 0
    0xB8, 0x07, 0x00, 0x00, 0x00, // mov eax, 7
    0xC3, // ret
];
/// Offset of `raised` in [`CODE`]: as `holder`, but at DISPATCH_LEVEL
/// (`mov cr8, 2`) while it holds the lock, as a kernel spin lock would.
const RAISED: usize = 0x20;
/// Both routines, `raised` at [`RAISED`].
const CODE: &[u8] = &[
    0x41, 0xB8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xC0, 0xF0, 0x44, 0x0F, 0xB1, 0x01, 0x75, 0xF7, 0x48,
    0xFF, 0xCA, 0x75, 0xFB, 0xC7, 0x01, 0x00, 0x00, 0x00, 0x00, 0xB8, 0x07, 0x00, 0x00, 0x00, 0xC3,
    // raised:
    0xB8, 0x02, 0x00, 0x00, 0x00, // mov eax, 2
    0x44, 0x0F, 0x22, 0xC0, // mov cr8, rax
    0x41, 0xB8, 0x01, 0x00, 0x00, 0x00, // mov r8d, 1
    0x31, 0xC0, // 3: xor eax, eax
    0xF0, 0x44, 0x0F, 0xB1, 0x01, // lock cmpxchg [rcx], r8d
    0x75, 0xF7, // jnz 3b
    0x48, 0xFF, 0xCA, // 4: dec rdx
    0x75, 0xFB, // jnz 4b
    0xC7, 0x01, 0x00, 0x00, 0x00, 0x00, // mov dword [rcx], 0
    0x31, 0xC0, // xor eax, eax
    0x44, 0x0F, 0x22, 0xC0, // mov cr8, rax
    0xB8, 0x07, 0x00, 0x00, 0x00, // mov eax, 7
    0xC3, // ret
];
/// Offsets in `holder`: the lock is held from the instruction after the
/// `jnz` that leaves the acquire loop (0x0F) up to the release (0x14).
const HELD: std::ops::Range<usize> = 0x0F..0x14;

const LIMIT: Duration = Duration::from_secs(10);

struct Outcome {
    preempted: Option<Preempted>,
    preempting: Result<u64, Fault>,
    released_early_at: Option<usize>,
    preempted_result: Result<u64, Fault>,
    processor: u32,
}

/// Runs `first` at PASSIVE_LEVEL with a preemption planned after `budget`
/// driver instructions; when it is parked, runs `second` at DISPATCH_LEVEL on
/// another thread with the same processor number and a soft limit of
/// `soft`, then resumes it.
fn preempt_with(
    code: &CodePage,
    first: (usize, [u64; 2]),
    second: (usize, [u64; 2]),
    budget: u64,
    soft: Duration,
) -> Outcome {
    let preemption = Preemption::new();
    std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            let preempted = preemption.wait_parked();
            let Some(at) = preempted else {
                return (None, Ok(0), None);
            };
            kpcr::set_processor_number(at.processor).expect("processor number");
            // SAFETY: hand-assembled code that touches only the lock word
            // passed to it and its registers.
            let result = unsafe {
                gate::call_with(
                    code.addr() + second.0,
                    &second.1,
                    irql::DISPATCH_LEVEL,
                    Limits {
                        timeout: LIMIT,
                        soft: Some((soft, &preemption)),
                    },
                )
            };
            let released = preemption.released_early_at();
            preemption.resume();
            (preempted, result, released)
        });
        let processor = kpcr::processor_number().expect("processor number");
        // SAFETY: the preemption outlives the call below.
        unsafe { preempt::arm(budget, &preemption) };
        // SAFETY: as above.
        let preempted_result =
            unsafe { gate::call(code.addr() + first.0, &first.1, irql::PASSIVE_LEVEL, LIMIT) };
        preemption.finish();
        let (preempted, preempting, released_early_at) = other.join().expect("preempting thread");
        Outcome {
            preempted,
            preempting,
            released_early_at,
            preempted_result,
            processor,
        }
    })
}

fn code() -> CodePage {
    assert_eq!(&CODE[..HOLDER.len()], HOLDER);
    CodePage::new("preempt-test", CODE).expect("code page")
}

#[test]
fn a_lock_holder_below_dispatch_is_preempted_and_the_spinner_on_its_processor_is_caught() {
    let code = code();
    let lock = AtomicU32::new(0);
    let lock_address = lock.as_ptr() as u64;
    // Three instructions take the lock; the fifth is inside the hold loop.
    let outcome = preempt_with(
        &code,
        (0, [lock_address, 1000]),
        (0, [lock_address, 1]),
        5,
        Duration::from_millis(200),
    );
    let preempted = outcome.preempted.expect("the call was preempted");
    assert_eq!(preempted.irql, irql::PASSIVE_LEVEL);
    assert_eq!(preempted.processor, outcome.processor);
    assert!(
        HELD.contains(&(preempted.pc - code.addr())),
        "preempted at {:#x}",
        preempted.pc - code.addr()
    );
    // The preempting call spun on the lock until its soft limit released the
    // holder, and only then got it.
    let spun_at = outcome
        .released_early_at
        .expect("the preempting call ran out of time");
    assert!(
        (0x06..0x0F).contains(&(spun_at - code.addr())),
        "spinning at {:#x}",
        spun_at - code.addr()
    );
    assert_eq!(outcome.preempting.expect("the preempting call returned"), 7);
    assert_eq!(
        outcome
            .preempted_result
            .expect("the preempted call returned"),
        7
    );
    assert_eq!(lock.load(Ordering::Relaxed), 0);
}

#[test]
fn a_preemption_outside_the_lock_costs_the_preempting_call_nothing() {
    let code = code();
    let lock = AtomicU32::new(0);
    let lock_address = lock.as_ptr() as u64;
    // Two instructions in, the lock is not taken yet.
    let outcome = preempt_with(
        &code,
        (0, [lock_address, 1000]),
        (0, [lock_address, 1]),
        2,
        Duration::from_secs(5),
    );
    let preempted = outcome.preempted.expect("the call was preempted");
    assert!(preempted.pc - code.addr() < 0x0F);
    assert_eq!(outcome.released_early_at, None);
    assert_eq!(outcome.preempting.expect("returned"), 7);
    assert_eq!(outcome.preempted_result.expect("returned"), 7);
}

#[test]
fn code_at_dispatch_level_is_not_preempted_until_it_lowers_irql() {
    let code = code();
    let lock = AtomicU32::new(0);
    let lock_address = lock.as_ptr() as u64;
    // The budget runs out while the lock is held at DISPATCH_LEVEL: the
    // preemption waits for the IRQL to drop, after the release.
    let outcome = preempt_with(
        &code,
        (RAISED, [lock_address, 1000]),
        (0, [lock_address, 1]),
        8,
        Duration::from_millis(200),
    );
    let preempted = outcome.preempted.expect("the call was preempted");
    assert_eq!(preempted.irql, irql::PASSIVE_LEVEL);
    assert!(
        preempted.pc - code.addr() >= 0x49,
        "preempted at {:#x}",
        preempted.pc - code.addr()
    );
    assert_eq!(outcome.released_early_at, None);
    assert_eq!(outcome.preempting.expect("returned"), 7);
    assert_eq!(outcome.preempted_result.expect("returned"), 7);
}

#[test]
fn a_call_that_returns_before_its_budget_is_not_preempted() {
    let code = code();
    let lock = AtomicU32::new(0);
    let outcome = preempt_with(
        &code,
        (0, [lock.as_ptr() as u64, 3]),
        (0, [lock.as_ptr() as u64, 1]),
        10_000,
        Duration::from_secs(5),
    );
    assert_eq!(outcome.preempted, None);
    assert_eq!(outcome.preempted_result.expect("returned"), 7);
}
