//! The call gate, the CPU emulation and the fault containment of the machine,
//! exercised with host `extern "win64"` functions and hand-assembled code.

#![expect(
    clippy::cast_possible_truncation,
    reason = "addresses are 64-bit on the only supported target"
)]

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use storport_emu::machine::fault::{
    KERNEL_SECURITY_CHECK_FAILURE, KMODE_EXCEPTION_NOT_HANDLED, STATUS_ACCESS_VIOLATION,
    STATUS_BREAKPOINT, STATUS_ILLEGAL_INSTRUCTION, STATUS_INTEGER_DIVIDE_BY_ZERO,
    STATUS_PRIVILEGED_INSTRUCTION, STATUS_STACK_BUFFER_OVERRUN, STATUS_STACK_OVERFLOW,
    UNEXPECTED_KERNEL_MODE_TRAP,
};
use storport_emu::machine::{BugCheck, CodePage, Exception, Fault, gate, irql, kpcr, kuser};

const LIMIT: Duration = Duration::from_secs(10);

fn page(name: &str, code: &[u8]) -> CodePage {
    CodePage::new(name, code).expect("code page")
}

/// Runs `target` through the gate at `PASSIVE_LEVEL`.
fn run(target: usize, args: &[u64]) -> Result<u64, Fault> {
    // SAFETY: every target in this file is a win64 function or hand-assembled
    // code that touches only its own stack, registers and emulated state.
    unsafe { gate::call(target, args, irql::PASSIVE_LEVEL, LIMIT) }
}

fn exception(result: Result<u64, Fault>) -> Box<Exception> {
    match result {
        Err(Fault::Exception(e)) => e,
        other => panic!("expected an exception, got {other:?}"),
    }
}

const extern "win64" fn one(a: u64) -> u64 {
    a + 1
}

const extern "win64" fn four(a: u64, b: u64, c: u64, d: u64) -> u64 {
    a + 10 * b + 100 * c + 1000 * d
}

#[expect(clippy::many_single_char_names, reason = "positional arguments")]
const extern "win64" fn five(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    four(a, b, c, d) + 10_000 * e
}

#[expect(clippy::many_single_char_names, reason = "positional arguments")]
const extern "win64" fn eight(
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: u64,
    f: u64,
    g: u64,
    h: u64,
) -> u64 {
    five(a, b, c, d, e) + 100_000 * f + 1_000_000 * g + 10_000_000 * h
}

#[repr(align(16))]
struct Aligned(#[expect(dead_code, reason = "only its alignment matters")] u128);

/// Returns 1 when a 16-byte aligned local really is aligned: only true if the
/// gate called with rsp ≡ 0 (mod 16).
extern "win64" fn alignment_probe() -> u64 {
    let x = std::hint::black_box(Aligned(7));
    u64::from((&raw const x as usize).is_multiple_of(16))
}

/// Returns the address of one of its locals: where the stack is.
extern "win64" fn stack_probe() -> u64 {
    let x = std::hint::black_box(0_u8);
    &raw const x as u64
}

#[test]
fn passes_one_to_eight_arguments() {
    assert_eq!(run(one as *const () as usize, &[41]).unwrap(), 42);
    assert_eq!(
        run(four as *const () as usize, &[1, 2, 3, 4]).unwrap(),
        4321
    );
    assert_eq!(
        run(five as *const () as usize, &[1, 2, 3, 4, 5]).unwrap(),
        54321
    );
    assert_eq!(
        run(eight as *const () as usize, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
        87_654_321
    );
    let too_many = run(eight as *const () as usize, &[0; 9]);
    assert!(
        matches!(too_many, Err(Fault::Setup(ref m)) if m.contains("at most 8")),
        "{too_many:?}"
    );
}

#[test]
fn calls_run_aligned_on_a_24_kib_kernel_stack() {
    assert_eq!(run(alignment_probe as *const () as usize, &[]).unwrap(), 1);
    let host = std::hint::black_box(0_u8);
    let driver = run(stack_probe as *const () as usize, &[]).unwrap() as usize;
    let host = &raw const host as usize;
    let stack = gate::kernel_stack().unwrap();
    assert_eq!(stack.len(), storport_emu::machine::KERNEL_STACK_SIZE);
    assert!(
        stack.contains(&driver),
        "{driver:#x} is not on the kernel stack {stack:x?}"
    );
    assert!(!stack.contains(&host));
    // The same thread reuses its kernel stack.
    let again = run(stack_probe as *const () as usize, &[]).unwrap() as usize;
    assert_eq!(driver, again);
}

#[test]
fn null_dereference_is_reported_and_the_next_call_works() {
    // xor eax, eax; mov rax, [rax]; ret
    let code = page("nullderef", &[0x31, 0xC0, 0x48, 0x8B, 0x00, 0xC3]);
    let e = exception(run(code.addr(), &[0x1234]));
    assert_eq!(e.code, STATUS_ACCESS_VIOLATION);
    assert_eq!(e.fault_address, Some(0));
    assert_eq!(
        (e.registers.rip, e.registers.gpr[0], e.registers.gpr[1]),
        ((code.addr() + 2) as u64, 0, 0x1234)
    );
    assert_eq!(
        e.registers.rsp() % 16,
        8,
        "rsp after the gate's call, inside the callee"
    );
    assert!(!e.write);
    assert!(!e.stack_guard_hit);
    assert_eq!(e.pc, code.addr() + 2);
    let loc = e.location.as_ref().unwrap();
    assert_eq!(
        (loc.image.as_str(), loc.rva, loc.section.as_deref()),
        ("nullderef", 2, Some(".text"))
    );
    let fault = Fault::Exception(e);
    assert_eq!(
        fault.bugcheck(),
        Some((
            KMODE_EXCEPTION_NOT_HANDLED,
            [
                u64::from(STATUS_ACCESS_VIOLATION),
                (code.addr() + 2) as u64,
                0,
                0
            ]
        ))
    );
    assert!(fault.to_string().contains("nullderef+0x2"), "{fault}");
    assert_eq!(run(one as *const () as usize, &[1]).unwrap(), 2);
    // A write fault says so.
    // xor eax, eax; mov [rax], rcx; ret
    let code = page("nullwrite", &[0x31, 0xC0, 0x48, 0x89, 0x08, 0xC3]);
    assert!(exception(run(code.addr(), &[5])).write);
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    // again: sub rsp, 0x1000; mov [rsp], rax; jmp again
    let code = page(
        "overflow",
        &[
            0x48, 0x81, 0xEC, 0x00, 0x10, 0, 0, 0x48, 0x89, 0x04, 0x24, 0xEB, 0xF3,
        ],
    );
    let e = exception(run(code.addr(), &[]));
    assert!(e.stack_guard_hit, "{e:?}");
    assert_eq!(e.code, STATUS_STACK_OVERFLOW);
    assert!(e.write);
    assert_eq!(
        Fault::Exception(e).bugcheck(),
        Some((UNEXPECTED_KERNEL_MODE_TRAP, [8, 0, 0, 0]))
    );
    assert_eq!(
        gate::last_stack_usage(),
        storport_emu::machine::KERNEL_STACK_SIZE
    );
    // Five pages (0x5000 bytes) fit in 24 KiB; the stack is still usable.
    assert_eq!(
        run(four as *const () as usize, &[1, 1, 1, 1]).unwrap(),
        1111
    );
}

#[test]
fn cr8_reads_and_writes_are_the_emulated_irql() {
    // mov rax, cr8; ret
    let read = page("cr8read", &[0x44, 0x0F, 0x20, 0xC0, 0xC3]);
    for level in [irql::PASSIVE_LEVEL, irql::APC_LEVEL, irql::DISPATCH_LEVEL] {
        // SAFETY: the page reads CR8 and returns.
        let got = unsafe { gate::call(read.addr(), &[], level, LIMIT) }.unwrap();
        assert_eq!(got, u64::from(level));
    }
    // mov cr8, rcx; mov r9, cr8; mov rax, r9; ret
    let write = page(
        "cr8write",
        &[
            0x44, 0x0F, 0x22, 0xC1, 0x45, 0x0F, 0x20, 0xC1, 0x4C, 0x89, 0xC8, 0xC3,
        ],
    );
    irql::set(irql::PASSIVE_LEVEL);
    assert_eq!(run(write.addr(), &[13]).unwrap(), 13);
    assert_eq!(gate::last_exit_irql(), 13);
    assert_eq!(
        irql::current(),
        irql::PASSIVE_LEVEL,
        "the gate restores the caller's IRQL"
    );
    // CR8 holds four bits: a larger value is a fault, and so is any other control register.
    let e = exception(run(write.addr(), &[16]));
    assert_eq!(e.code, STATUS_PRIVILEGED_INSTRUCTION);
    assert!(e.description.contains("HIGH_LEVEL"), "{}", e.description);
    // mov rax, cr0; ret
    let cr0 = page("cr0", &[0x0F, 0x20, 0xC0, 0xC3]);
    assert_eq!(
        exception(run(cr0.addr(), &[])).code,
        STATUS_PRIVILEGED_INSTRUCTION
    );
}

#[test]
fn kuser_shared_data_time_fields_follow_the_host_clocks() {
    let k = kuser::KUSER_SHARED_DATA.to_le_bytes();
    // movabs rax, KUSER+8; mov rax, [rax]; ret   (KeQueryInterruptTime)
    let mut interrupt = vec![0x48, 0xB8];
    interrupt.extend_from_slice(&(kuser::KUSER_SHARED_DATA + 8).to_le_bytes());
    interrupt.extend_from_slice(&[0x48, 0x8B, 0x00, 0xC3]);
    let interrupt = page("interrupttime", &interrupt);
    // mov rax, [moffs64 KUSER+0x320]; ret   (KeQueryTickCount)
    let mut ticks = vec![0x48, 0xA1];
    ticks.extend_from_slice(&(kuser::KUSER_SHARED_DATA + 0x320).to_le_bytes());
    ticks.push(0xC3);
    let ticks = page("tickcount", &ticks);
    // movabs rcx, KUSER; mov rax, [rcx + 0x14]; ret   (KeQuerySystemTime)
    let mut system = vec![0x48, 0xB9];
    system.extend_from_slice(&k);
    system.extend_from_slice(&[0x48, 0x8B, 0x41, 0x14, 0xC3]);
    let system = page("systemtime", &system);
    // movabs rcx, KUSER; mov eax, [rcx + 4]; ret   (TickCountMultiplier)
    let mut multiplier = vec![0x48, 0xB9];
    multiplier.extend_from_slice(&k);
    multiplier.extend_from_slice(&[0x8B, 0x41, 0x04, 0xC3]);
    let multiplier = page("multiplier", &multiplier);

    let t0 = run(interrupt.addr(), &[]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t1 = run(interrupt.addr(), &[]).unwrap();
    let elapsed_100ns = t1 - t0;
    assert!(
        (500_000..5_000_000).contains(&elapsed_100ns),
        "50 ms read as {elapsed_100ns} × 100 ns"
    );
    let tick = run(ticks.addr(), &[]).unwrap();
    let now = run(interrupt.addr(), &[]).unwrap();
    assert!(
        now / kuser::TIME_INCREMENT_100NS - tick <= 1,
        "tick {tick} vs interrupt time {now}"
    );
    assert_eq!(
        run(multiplier.addr(), &[]).unwrap(),
        u64::from(kuser::TICK_COUNT_MULTIPLIER)
    );
    let unix_100ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        / 100;
    let windows = u128::from(run(system.addr(), &[]).unwrap());
    let expected = unix_100ns + u128::from(kuser::EPOCH_DIFFERENCE_100NS);
    assert!(
        windows.abs_diff(expected) < 10_000_000,
        "system time {windows} vs {expected}"
    );

    // movabs rcx, KUSER; mov eax, [rcx + 0x30]; ret  (NtSystemRoot: not emulated)
    let mut root = vec![0x48, 0xB9];
    root.extend_from_slice(&k);
    root.extend_from_slice(&[0x8B, 0x41, 0x30, 0xC3]);
    let root = page("systemroot", &root);
    let e = exception(run(root.addr(), &[]));
    assert_eq!(e.code, STATUS_ACCESS_VIOLATION);
    assert!(
        e.description.contains("KUSER_SHARED_DATA"),
        "{}",
        e.description
    );
}

#[test]
fn an_endless_loop_times_out_and_the_thread_recovers() {
    let spin = page("spin", &[0xEB, 0xFE]);
    let started = Instant::now();
    // SAFETY: the page loops forever without touching memory.
    let result = unsafe {
        gate::call(
            spin.addr(),
            &[],
            irql::DISPATCH_LEVEL,
            Duration::from_millis(100),
        )
    };
    let elapsed = started.elapsed();
    match result {
        Err(Fault::Timeout {
            limit,
            pc,
            location,
        }) => {
            assert_eq!(limit, Duration::from_millis(100));
            assert_eq!(pc, spin.addr());
            assert_eq!(location.unwrap().image, "spin");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(run(one as *const () as usize, &[9]).unwrap(), 10);
    // The watchdog of a finished call does not fire later.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(run(one as *const () as usize, &[10]).unwrap(), 11);
}

/// `mov rcx, count; again: dec rcx; jnz again; xor eax, eax; ret`: driver
/// code that runs for a while (about `count` processor cycles) and returns 0.
fn countdown(count: u64) -> CodePage {
    let mut code = vec![0x48, 0xB9];
    code.extend_from_slice(&count.to_le_bytes());
    code.extend_from_slice(&[0x48, 0xFF, 0xC9, 0x75, 0xFB, 0x31, 0xC0, 0xC3]);
    page("countdown", &code)
}

#[test]
fn the_watchdog_left_armed_by_a_short_call_stops_no_later_call() {
    // The 1 ms limit of this call leaves the timer armed after it returns.
    // SAFETY: `one` is a win64 function.
    let short = unsafe { gate::call(one as *const () as usize, &[1], 0, Duration::from_millis(1)) };
    assert_eq!(short.unwrap(), 2);
    // The timer fires during host code: ignored, and the sleep still lasts.
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    assert!(started.elapsed() >= Duration::from_millis(20));
    // SAFETY: as above.
    let short = unsafe { gate::call(one as *const () as usize, &[2], 0, Duration::from_millis(1)) };
    assert_eq!(short.unwrap(), 3);
    // This call runs far longer than 1 ms in driver code: the early signal
    // finds its deadline (10 s) not reached and the call ends normally.
    let long = countdown(300_000_000);
    let started = Instant::now();
    assert_eq!(run(long.addr(), &[]).unwrap(), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_short_limit_after_a_long_one_still_stops_an_endless_loop() {
    // The first call arms the watchdog for 10 s from now; the second needs it sooner.
    assert_eq!(run(one as *const () as usize, &[1]).unwrap(), 2);
    let spin = page("spin", &[0xEB, 0xFE]);
    let started = Instant::now();
    // SAFETY: the page loops forever without touching memory.
    let result = unsafe { gate::call(spin.addr(), &[], 0, Duration::from_millis(50)) };
    assert!(
        matches!(result, Err(Fault::Timeout { pc, .. }) if pc == spin.addr()),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Runs an endless loop through the gate with a 50 ms limit and returns 1
/// when it timed out.
extern "win64" fn nested_spin_export() -> u64 {
    let spin = page("innerspin", &[0xEB, 0xFE]);
    // SAFETY: the page loops forever without touching memory.
    let result = unsafe { gate::call(spin.addr(), &[], 0, Duration::from_millis(50)) };
    u64::from(matches!(result, Err(Fault::Timeout { .. })))
}

#[test]
fn after_a_nested_call_timed_out_the_watchdog_still_guards_the_outer_call() {
    // sub rsp, 40; movabs rax, nested_spin_export; call rax; add rsp, 40; jmp $
    let mut code = vec![0x48, 0x83, 0xEC, 0x28, 0x48, 0xB8];
    code.extend_from_slice(&(nested_spin_export as *const () as u64).to_le_bytes());
    code.extend_from_slice(&[0xFF, 0xD0, 0x48, 0x83, 0xC4, 0x28, 0xEB, 0xFE]);
    let driver = page("outerspin", &code);
    let started = Instant::now();
    // SAFETY: the page calls `nested_spin_export` and then spins.
    let result = unsafe { gate::call(driver.addr(), &[], 0, Duration::from_millis(300)) };
    match result {
        Err(Fault::Timeout { limit, pc, .. }) => {
            assert_eq!(limit, Duration::from_millis(300));
            assert_eq!(pc, driver.addr() + code.len() - 2);
        }
        other => panic!("expected the outer call to time out, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

extern "win64" fn bugcheck_export(code: u32, p1: u64, p2: u64, p3: u64, p4: u64) -> u64 {
    gate::abort_current_call(BugCheck {
        code,
        params: [p1, p2, p3, p4],
        message: "the test export bug checked".to_owned(),
        caller: None,
    })
}

/// `sub rsp, 40; mov [rsp+32], r9; movabs rax, target; call rax; add rsp, 40; ret`
/// with r9 (the fourth argument) passed on as the fifth: a driver routine
/// forwarding its arguments to an import. Returns the code and the offset of
/// the return address.
fn forwarder(target: usize) -> (Vec<u8>, u32) {
    let mut code = vec![
        0x48, 0x83, 0xEC, 0x28, 0x4C, 0x89, 0x4C, 0x24, 0x20, 0x48, 0xB8,
    ];
    code.extend_from_slice(&(target as u64).to_le_bytes());
    code.extend_from_slice(&[0xFF, 0xD0]);
    let ret = u32::try_from(code.len()).unwrap();
    code.extend_from_slice(&[0x48, 0x83, 0xC4, 0x28, 0xC3]);
    (code, ret)
}

#[test]
fn abort_current_call_returns_the_bug_check_with_its_caller() {
    let (code, ret) = forwarder(bugcheck_export as *const () as usize);
    let driver = page("bugchecker", &code);
    match run(driver.addr(), &[0xF1, 0x2004, 2, 3, 4]) {
        Err(Fault::BugCheck(b)) => {
            assert_eq!(b.code, 0xF1);
            assert_eq!(b.params, [0x2004, 2, 3, 3]);
            let caller = b.caller.as_ref().expect("caller found on the stack");
            assert_eq!((caller.image.as_str(), caller.rva), ("bugchecker", ret));
            assert_eq!(
                Fault::BugCheck(b).bugcheck(),
                Some((0xF1, [0x2004, 2, 3, 3]))
            );
        }
        other => panic!("expected a bug check, got {other:?}"),
    }
    assert!(!gate::in_call());
    assert_eq!(run(one as *const () as usize, &[1]).unwrap(), 2);
}

extern "win64" fn nested_export(a: u64) -> u64 {
    assert!(gate::in_call());
    // SAFETY: `one` is a win64 function.
    let inner = unsafe { gate::call(one as *const () as usize, &[a], irql::DISPATCH_LEVEL, LIMIT) };
    inner.map_or(0, |v| v * 100) + u64::from(irql::current())
}

extern "win64" fn nested_fault_export(_: u64) -> u64 {
    let code = page("nestedfault", &[0x31, 0xC0, 0x48, 0x8B, 0x00, 0xC3]);
    // SAFETY: the page dereferences null, which the gate contains.
    let inner = unsafe { gate::call(code.addr(), &[], irql::DISPATCH_LEVEL, LIMIT) };
    u64::from(matches!(inner, Err(Fault::Exception(ref e)) if e.code == STATUS_ACCESS_VIOLATION))
}

#[test]
fn nested_calls_share_the_kernel_stack_and_end_separately() {
    // The export runs at APC_LEVEL (the outer call's level), the inner call at DISPATCH_LEVEL.
    // SAFETY: `nested_export` is a win64 function.
    let got = unsafe {
        gate::call(
            nested_export as *const () as usize,
            &[4],
            irql::APC_LEVEL,
            LIMIT,
        )
    };
    assert_eq!(got.unwrap(), 501);
    assert_eq!(
        run(nested_fault_export as *const () as usize, &[0]).unwrap(),
        1
    );
}

#[test]
fn traps_are_reported_with_windows_exception_codes() {
    let ud2 = page("ud2", &[0x90, 0x0F, 0x0B]);
    let e = exception(run(ud2.addr(), &[]));
    assert_eq!((e.code, e.pc), (STATUS_ILLEGAL_INSTRUCTION, ud2.addr() + 1));
    let int3 = page("int3", &[0x90, 0xCC, 0xC3]);
    let e = exception(run(int3.addr(), &[]));
    assert_eq!((e.code, e.pc), (STATUS_BREAKPOINT, int3.addr() + 1));
    // mov ecx, 7; int 0x29
    let fastfail = page("fastfail", &[0xB9, 7, 0, 0, 0, 0xCD, 0x29]);
    let e = exception(run(fastfail.addr(), &[]));
    assert_eq!(
        (e.code, e.fast_fail_code),
        (STATUS_STACK_BUFFER_OVERRUN, Some(7))
    );
    assert_eq!(
        Fault::Exception(e).bugcheck(),
        Some((KERNEL_SECURITY_CHECK_FAILURE, [7, 0, 0, 0]))
    );
    // xor edx, edx; mov eax, 1; xor ecx, ecx; div ecx
    let div = page(
        "div0",
        &[0x31, 0xD2, 0xB8, 1, 0, 0, 0, 0x31, 0xC9, 0xF7, 0xF1, 0xC3],
    );
    assert_eq!(
        exception(run(div.addr(), &[])).code,
        STATUS_INTEGER_DIVIDE_BY_ZERO
    );
}

#[test]
fn gs_points_at_a_per_thread_kpcr() {
    // mov rax, gs:[0x18]; ret
    let self_ptr = page(
        "kpcrself",
        &[0x65, 0x48, 0x8B, 0x04, 0x25, 0x18, 0, 0, 0, 0xC3],
    );
    // mov eax, gs:[0x1A4]; ret
    let number = page(
        "kpcrnumber",
        &[0x65, 0x8B, 0x04, 0x25, 0xA4, 0x01, 0, 0, 0xC3],
    );
    kpcr::set_processor_number(5).unwrap();
    let base = kpcr::current_base().unwrap();
    assert_eq!(run(self_ptr.addr(), &[]).unwrap(), base as u64);
    assert_eq!(run(number.addr(), &[]).unwrap(), 5);
    let other = std::thread::spawn(move || {
        let base = kpcr::current_base().unwrap();
        (base, run(self_ptr.addr(), &[]).unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(other.0 as u64, other.1);
    assert_ne!(other.0, base);
}

#[test]
fn many_threads_fault_and_recover_independently() {
    let handles: Vec<_> = (0..6_u64)
        .map(|i| {
            std::thread::spawn(move || {
                let bad = page("threadfault", &[0x31, 0xC0, 0x48, 0x8B, 0x00, 0xC3]);
                let cr8 = page("threadcr8", &[0x44, 0x0F, 0x20, 0xC0, 0xC3]);
                for _ in 0..50 {
                    assert!(matches!(run(bad.addr(), &[]), Err(Fault::Exception(_))));
                    assert_eq!(run(one as *const () as usize, &[i]).unwrap(), i + 1);
                    let level = u8::try_from(i % 3).unwrap();
                    // SAFETY: the page reads CR8 and returns.
                    let got = unsafe { gate::call(cr8.addr(), &[], level, LIMIT) }.unwrap();
                    assert_eq!(got, u64::from(level));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn gs_base() -> u64 {
    let mut value: libc::c_ulong = 0;
    // SAFETY: ARCH_GET_GS (0x1004) writes one unsigned long to a live local.
    unsafe {
        libc::syscall(libc::SYS_arch_prctl, 0x1004, &raw mut value);
    }
    value
}

#[test]
fn the_host_gs_base_is_restored_after_calls() {
    let before = gs_base();
    // mov rax, gs:[0x18]; ret
    let self_ptr = page(
        "gsrestore",
        &[0x65, 0x48, 0x8B, 0x04, 0x25, 0x18, 0, 0, 0, 0xC3],
    );
    assert_ne!(run(self_ptr.addr(), &[]).unwrap(), before);
    assert_eq!(gs_base(), before);
    let bad = page("gsfault", &[0x31, 0xC0, 0x48, 0x8B, 0x00, 0xC3]);
    assert!(run(bad.addr(), &[]).is_err());
    assert_eq!(gs_base(), before, "restored after a fault too");
}

static EXPORT_FINISHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "win64" fn slow_export() -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    EXPORT_FINISHED.store(true, std::sync::atomic::Ordering::SeqCst);
    0
}

#[test]
fn the_watchdog_never_interrupts_emulator_code() {
    // sub rsp, 40; movabs rax, slow_export; call rax; add rsp, 40; jmp $
    let mut code = vec![0x48, 0x83, 0xEC, 0x28, 0x48, 0xB8];
    code.extend_from_slice(&(slow_export as *const () as u64).to_le_bytes());
    code.extend_from_slice(&[0xFF, 0xD0, 0x48, 0x83, 0xC4, 0x28, 0xEB, 0xFE]);
    let driver = page("slowcaller", &code);
    let started = Instant::now();
    // SAFETY: the page calls `slow_export` and then spins.
    let result = unsafe { gate::call(driver.addr(), &[], 0, Duration::from_millis(50)) };
    assert!(
        EXPORT_FINISHED.load(std::sync::atomic::Ordering::SeqCst),
        "the export was cut short"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    match result {
        Err(Fault::Timeout { pc, .. }) => assert_eq!(pc, driver.addr() + code.len() - 2),
        other => panic!("expected a timeout in the spin loop, got {other:?}"),
    }
}

/// Faults outside driver calls are not swallowed: a child process that
/// faults in host code after the handlers are installed dies of SIGSEGV.
#[test]
fn host_faults_outside_calls_still_kill_the_process() {
    if std::env::var_os("STOREMU_MACHINE_CHILD").is_some() {
        let bad = page("hostfault", &[0x31, 0xC0, 0x48, 0x8B, 0x00, 0xC3]);
        assert!(run(bad.addr(), &[]).is_err());
        // SAFETY: the page takes no arguments and needs no particular stack;
        // it dereferences null outside any driver call on purpose, which must
        // end this child process.
        let f: extern "C" fn() -> u64 = unsafe { std::mem::transmute(bad.addr()) };
        f();
        std::process::exit(0);
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host_faults_outside_calls_still_kill_the_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STOREMU_MACHINE_CHILD", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGSEGV), "{output:?}");
}

#[test]
fn stack_usage_of_each_call_is_measured() {
    // sub rsp, 0x2000; mov [rsp], rax; add rsp, 0x2000; ret
    let deep = page(
        "deepframe",
        &[
            0x48, 0x81, 0xEC, 0x00, 0x20, 0, 0, 0x48, 0x89, 0x04, 0x24, 0x48, 0x81, 0xC4, 0x00,
            0x20, 0, 0, 0xC3,
        ],
    );
    let shallow = page("shallow", &[0x48, 0x89, 0x4C, 0x24, 0x08, 0xC3]); // mov [rsp+8], rcx; ret
    run(deep.addr(), &[]).unwrap();
    let used = gate::last_stack_usage();
    // 0x2000 bytes of frame, the return address and the gate's 64-byte argument area.
    assert!(
        (0x2000 + 8..0x2000 + 8 + 64 + 16).contains(&used),
        "deep call used {used:#x}"
    );
    // The next call is measured on its own, after repainting.
    run(shallow.addr(), &[1]).unwrap();
    let used = gate::last_stack_usage();
    assert!((8..=64 + 16).contains(&used), "shallow call used {used:#x}");
}
