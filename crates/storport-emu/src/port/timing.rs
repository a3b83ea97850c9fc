//! Where a request's time goes inside the port, for `storemu serve
//! --stage-times`: per thread, off unless [`enable`]d (then a few clock
//! reads per SRB).
//!
//! For each SRB the port runs with `HwStartIo` on a timing thread:
//!
//! - `gate`: the port's call of `HwStartIo` less the driver's time: the
//!   call context, the call gate's setup and checks on the way in and out
//!   (kernel stack, IRQL, watchdog, stack-use measurement, lock and IRQL
//!   checks after the return), and the DPCs the call queued;
//! - `driver`: from the gate's switch into the driver to its return: the
//!   miniport's code and the emulated exports it calls, its completion
//!   notification included;
//! - `completion`: from the call's return to the result in hand: the
//!   completion check, the guard-byte check and the result taken from the
//!   SRB.
//!
//! Times add up over the SRBs of one operation until [`take`].

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::machine::gate;

/// The port's share of one operation's time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortTimes {
    /// Port and call gate around the driver call.
    pub gate: Duration,
    /// Inside the driver.
    pub driver: Duration,
    /// The completed SRB to the result.
    pub completion: Duration,
}

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static TIMES: Cell<PortTimes> = const {
        Cell::new(PortTimes {
            gate: Duration::ZERO,
            driver: Duration::ZERO,
            completion: Duration::ZERO,
        })
    };
}

/// Times the SRBs this thread runs from now on (or stops).
pub fn enable(on: bool) {
    ENABLED.with(|e| e.set(on));
    gate::time_driver_code(on);
}

/// The times added up since the last `take`, and a fresh start.
#[must_use]
pub fn take() -> PortTimes {
    TIMES.with(|t| t.replace(PortTimes::default()))
}

/// The time now when this thread times SRBs.
pub(crate) fn now() -> Option<Instant> {
    ENABLED.with(Cell::get).then(Instant::now)
}

/// Adds one SRB: the driver call from `called` to `returned`, and the
/// completion from `returned` to now.
pub(crate) fn add(called: Option<Instant>, returned: Option<Instant>) {
    let (Some(called), Some(returned)) = (called, returned) else {
        return;
    };
    let done = Instant::now();
    let driver = gate::last_driver_time();
    let call = returned.saturating_duration_since(called);
    TIMES.with(|t| {
        let mut times = t.get();
        times.gate += call.saturating_sub(driver);
        times.driver += driver.min(call);
        times.completion += done.saturating_duration_since(returned);
        t.set(times);
    });
}
