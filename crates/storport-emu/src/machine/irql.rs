//! The emulated IRQL of the current thread (the value of CR8 as driver code
//! sees it through `mov reg, cr8` / `mov cr8, reg`, which the machine traps
//! and emulates).
//!
//! Each host thread is one emulated processor and has its own IRQL. The
//! call gate sets it to the level a callback runs at and restores the
//! caller's level afterwards; [`super::gate::last_exit_irql`] tells the level
//! the driver returned at.

use std::cell::Cell;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;
/// `HIGH_LEVEL`, the largest value CR8 can hold.
pub const HIGH_LEVEL: u8 = 15;

thread_local! {
    // Const-initialised and without a destructor: safe to touch from the
    // signal handler.
    static IRQL: Cell<u8> = const { Cell::new(PASSIVE_LEVEL) };
}

/// The current thread's emulated IRQL.
#[must_use]
pub fn current() -> u8 {
    IRQL.with(Cell::get)
}

/// Sets the current thread's emulated IRQL and returns the previous one.
/// Values above [`HIGH_LEVEL`] are clamped to it (CR8 holds four bits).
#[expect(
    clippy::must_use_candidate,
    reason = "callers often set the level without needing the old one"
)]
pub fn set(level: u8) -> u8 {
    IRQL.with(|irql| irql.replace(level.min(HIGH_LEVEL)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irql_is_per_thread_and_clamped() {
        set(PASSIVE_LEVEL);
        assert_eq!(set(DISPATCH_LEVEL), PASSIVE_LEVEL);
        let other = std::thread::spawn(current).join().unwrap();
        assert_eq!(other, PASSIVE_LEVEL);
        assert_eq!(current(), DISPATCH_LEVEL);
        set(200);
        assert_eq!(current(), HIGH_LEVEL);
        set(PASSIVE_LEVEL);
    }
}
