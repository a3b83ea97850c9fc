//! Per-thread machine state: each host thread that calls driver code is one
//! emulated processor with its own kernel stack (24 KiB above a guard page),
//! alternate signal stack, KPCR and watchdog timer.

use std::cell::{Cell, RefCell};
use std::io;

use super::kpcr::Kpcr;
use super::memory::{Mapping, PAGE_SIZE, Perms};

/// Size of the stack driver code runs on: `KERNEL_STACK_SIZE` of x64 Windows.
pub const KERNEL_STACK_SIZE: usize = 0x6000;
/// Size of the alternate stack the signal handler runs on.
const ALT_STACK_SIZE: usize = 0x10000;
/// Processor numbers handed to threads in creation order.
static NEXT_PROCESSOR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The signal the watchdog timer delivers.
pub fn timer_signal() -> libc::c_int {
    libc::SIGRTMIN() + 7
}

/// Monotonic clock in nanoseconds.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Wall clock in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a live local; it is
    // async-signal-safe.
    unsafe {
        libc::clock_gettime(clock, &raw mut ts);
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

thread_local! {
    // Const-initialised and without destructor: read by the signal handler.
    // Holds the timer id plus one, 0 meaning "no timer": the kernel hands
    // out timer id 0 to a process's first timer, so the id itself cannot
    // double as the "none" marker.
    static TIMER: Cell<usize> = const { Cell::new(0) };
    // When the watchdog timer fires next (monotonic ns), u64::MAX when it is
    // not armed. Read and written by the gate and by the signal handler of
    // the same thread.
    static ARMED_AT: Cell<u64> = const { Cell::new(u64::MAX) };
    static ENV: RefCell<Option<ThreadEnv>> = const { RefCell::new(None) };
    // The processor number this thread's KPCR reports; read by the signal
    // handler.
    static PROCESSOR: Cell<u32> = const { Cell::new(0) };
    // The base of this thread's KPCR (0 before it exists); read by the
    // signal handler.
    static KPCR_BASE: Cell<usize> = const { Cell::new(0) };
}

/// The base of this thread's KPCR, 0 before it exists. Async-signal-safe.
pub fn kpcr_base_in_handler() -> usize {
    KPCR_BASE.with(Cell::get)
}

/// The processor number this thread's KPCR reports. Async-signal-safe.
pub fn processor_number_in_handler() -> u32 {
    PROCESSOR.with(Cell::get)
}

/// Records the processor number this thread's KPCR reports.
pub fn note_processor_number(number: u32) {
    PROCESSOR.with(|p| p.set(number));
}

/// Arms the current thread's watchdog timer to fire at the monotonic time
/// `deadline_ns`, or disarms it when `deadline_ns` is `u64::MAX`.
/// Async-signal-safe.
pub fn arm_timer(deadline_ns: u64) {
    let Some(timer) = TIMER.with(Cell::get).checked_sub(1) else {
        return;
    };
    let value = if deadline_ns == u64::MAX {
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }
    } else {
        libc::timespec {
            tv_sec: libc::time_t::try_from(deadline_ns / 1_000_000_000)
                .unwrap_or(libc::time_t::MAX),
            // Never all-zero, which would disarm.
            tv_nsec: libc::c_long::try_from(deadline_ns % 1_000_000_000)
                .unwrap_or(0)
                .max(1),
        }
    };
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: value,
    };
    // SAFETY: `timer` was created by timer_create on this thread and is
    // deleted only when the thread's state is dropped, after which TIMER is 0.
    unsafe {
        libc::timer_settime(
            timer as libc::timer_t,
            libc::TIMER_ABSTIME,
            &raw const spec,
            std::ptr::null_mut(),
        );
    }
    ARMED_AT.with(|a| a.set(deadline_ns));
}

/// Makes sure the current thread's watchdog fires no later than
/// `deadline_ns`: re-arms the timer only when it is not armed or armed for
/// later. A timer that fires before a call's deadline costs one signal,
/// whose handler re-arms it for the earliest deadline of the active calls.
/// Async-signal-safe.
pub fn arm_timer_by(deadline_ns: u64) {
    if ARMED_AT.with(Cell::get) > deadline_ns {
        arm_timer(deadline_ns);
    }
}

/// Records that the watchdog timer fired (a one-shot timer is disarmed
/// once it expired). Async-signal-safe; called by the signal handler.
pub fn timer_fired() {
    ARMED_AT.with(|a| a.set(u64::MAX));
}

/// The machine state of one host thread.
///
/// # Invariants
///
/// `timer` is a live POSIX timer created for this thread and `altstack` is
/// installed as this thread's alternate signal stack until drop.
#[derive(Debug)]
pub struct ThreadEnv {
    stack: Mapping,
    altstack: Mapping,
    pub kpcr: Kpcr,
    timer: libc::timer_t,
    /// Lowest kernel stack address that may differ from [`STACK_PAINT`].
    dirty_low: Cell<usize>,
}

/// The pattern unused kernel stack is filled with, to measure stack use.
const STACK_PAINT: u64 = 0x5354_4B50_4149_4E54;

impl ThreadEnv {
    fn new() -> io::Result<Self> {
        let stack = Mapping::new(PAGE_SIZE + KERNEL_STACK_SIZE)?;
        stack.protect(0, PAGE_SIZE, Perms::NONE)?;
        let altstack = Mapping::new(ALT_STACK_SIZE)?;
        let processor = NEXT_PROCESSOR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kpcr = Kpcr::new(processor)?;
        note_processor_number(processor);
        KPCR_BASE.with(|b| b.set(kpcr.base()));
        let timer = create_timer()?;
        let dirty_low = Cell::new(stack.addr() + PAGE_SIZE);
        let env = Self {
            stack,
            altstack,
            kpcr,
            timer,
            dirty_low,
        };
        env.paint_stack();
        let alt = libc::stack_t {
            ss_sp: env.altstack.addr() as *mut libc::c_void,
            ss_flags: 0,
            ss_size: env.altstack.len(),
        };
        // SAFETY: the alternate stack is a live mapping owned by `env`, which
        // uninstalls it before unmapping (Drop).
        let rc = unsafe { libc::sigaltstack(&raw const alt, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        TIMER.with(|t| t.set((env.timer as usize).wrapping_add(1)));
        // INVARIANT: timer created and alternate stack installed above.
        Ok(env)
    }

    /// One past the highest address of the kernel stack (16-byte aligned).
    pub const fn stack_top(&self) -> usize {
        self.stack.addr() + self.stack.len()
    }

    /// The guard page below the kernel stack.
    pub const fn guard(&self) -> (usize, usize) {
        (self.stack.addr(), self.stack.addr() + PAGE_SIZE)
    }

    /// Refills the part of the kernel stack dirtied since the last paint with
    /// [`STACK_PAINT`]. Only between outermost calls: nothing may run on the
    /// kernel stack.
    pub fn paint_stack(&self) {
        let low = self.dirty_low.get();
        let top = self.stack_top();
        if low >= top {
            return;
        }
        // SAFETY: [low, top) lies in the usable part of the kernel stack
        // mapping this value owns (read-write), and no call runs on it, so no
        // other reference to that memory exists.
        let words = unsafe { std::slice::from_raw_parts_mut(low as *mut u64, (top - low) / 8) };
        words.fill(STACK_PAINT);
        self.dirty_low.set(top);
    }

    /// Bytes of kernel stack used since the last paint: from the top down to
    /// the lowest word that no longer holds the paint. Only between
    /// outermost calls.
    pub fn stack_used(&self) -> usize {
        let (_, bottom) = self.guard();
        let top = self.stack_top();
        // SAFETY: [bottom, top) is the usable, read-write part of the kernel
        // stack mapping this value owns, and no call runs on it.
        let words = unsafe { std::slice::from_raw_parts(bottom as *const u64, (top - bottom) / 8) };
        let low = bottom + painted_prefix(words) * 8;
        self.dirty_low.set(low.min(self.dirty_low.get()));
        top - low
    }
}

/// How many words at the start of `words` still hold [`STACK_PAINT`].
///
/// Runs after every outermost call over the whole stack, most of which is
/// untouched: with AVX2 where the processor has it (twice as fast).
fn painted_prefix(words: &[u64]) -> usize {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        unsafe { painted_prefix_avx2(words) }
    } else {
        painted_prefix_blocks(words)
    }
}

#[target_feature(enable = "avx2")]
fn painted_prefix_avx2(words: &[u64]) -> usize {
    painted_prefix_blocks(words)
}

/// [`painted_prefix`], comparing blocks of 32 words at a time, a form the
/// compiler turns into vector compares.
#[inline(always)]
fn painted_prefix_blocks(words: &[u64]) -> usize {
    const BLOCK: usize = 32;
    let clean_blocks = words
        .chunks_exact(BLOCK)
        .take_while(|block| {
            let mut lanes = [0_u64; 4];
            for quad in block.chunks_exact(4) {
                for (lane, &w) in lanes.iter_mut().zip(quad) {
                    *lane |= w ^ STACK_PAINT;
                }
            }
            (lanes[0] | lanes[1]) | (lanes[2] | lanes[3]) == 0
        })
        .count();
    let start = clean_blocks * BLOCK;
    start
        + words[start..]
            .iter()
            .take_while(|&&w| w == STACK_PAINT)
            .count()
}

fn create_timer() -> io::Result<libc::timer_t> {
    // SAFETY: sigevent is plain data for which all-zero bytes are valid.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = timer_signal();
    // SAFETY: gettid has no preconditions.
    event.sigev_notify_thread_id = unsafe { libc::gettid() };
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: both pointers refer to live locals; the timer targets this thread.
    let rc = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &raw mut event, &raw mut timer) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(timer)
}

impl Drop for ThreadEnv {
    fn drop(&mut self) {
        KPCR_BASE.with(|b| b.set(0));
        TIMER.with(|t| t.set(0));
        ARMED_AT.with(|a| a.set(u64::MAX));
        // SAFETY: by the invariant the timer is live; it is not used again.
        unsafe {
            libc::timer_delete(self.timer);
        }
        let mut current = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: 0,
            ss_size: 0,
        };
        // SAFETY: only queries the alternate stack into a live local.
        unsafe {
            libc::sigaltstack(std::ptr::null(), &raw mut current);
        }
        if current.ss_sp as usize == self.altstack.addr() {
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling the alternate stack before its memory is unmapped.
            unsafe {
                libc::sigaltstack(&raw const off, std::ptr::null_mut());
            }
        }
    }
}

/// Runs `f` with the current thread's machine state, creating it first if
/// needed.
pub fn with_env<R>(f: impl FnOnce(&ThreadEnv) -> R) -> io::Result<R> {
    ENV.with(|cell| {
        if cell.borrow().is_none() {
            let env = ThreadEnv::new()?;
            *cell.borrow_mut() = Some(env);
        }
        let env = cell.borrow();
        let env = env
            .as_ref()
            .ok_or_else(|| io::Error::other("thread machine state vanished"))?;
        Ok(f(env))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_painted_prefix_ends_at_the_first_changed_word() {
        let mut words = vec![STACK_PAINT; KERNEL_STACK_SIZE / 8];
        let last = words.len() - 1;
        assert_eq!(painted_prefix(&words), words.len());
        for changed in [0, 1, 31, 32, 33, 100, 2047, last] {
            words.fill(STACK_PAINT);
            words[changed] = 0;
            // A later change does not hide an earlier one.
            words[last] ^= 1;
            assert_eq!(painted_prefix(&words), changed, "changed word {changed}");
        }
        // Lengths that are not a multiple of the block size.
        assert_eq!(painted_prefix(&words[..5]), 5);
        words[40] = 7;
        assert_eq!(painted_prefix(&words[..45]), 40);
        assert_eq!(painted_prefix_blocks(&words), 40);
    }
}
