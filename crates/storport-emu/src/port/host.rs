//! Host-linked driver code under storemu's kernel, for unit tests and fuzz
//! targets.
//!
//! `storport-sys`'s imports bound to the emulated exports
//! ([`exports::bind_host`]), and an emulated port instance whose routine and
//! IRQL each calling thread runs at (each thread is one emulated processor,
//! and the exports check every call, spin locks included, as they do for a
//! loaded image).

use std::sync::{Arc, Once};

use super::context::{self, Routine};
use super::exports;
use super::rules::Finding;
use super::state::Shared;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

/// One emulated port instance: where the kernel routines host code calls
/// report what they find.
#[derive(Default)]
pub struct Kernel {
    shared: Arc<Shared>,
}

impl Kernel {
    /// A fresh instance, with the imports bound.
    ///
    /// # Panics
    ///
    /// When storemu does not emulate an import `storport-sys` declares.
    #[must_use]
    pub fn new() -> Self {
        static BIND: Once = Once::new();
        BIND.call_once(|| {
            let missing = exports::bind_host();
            assert!(missing.is_empty(), "storemu lacks imports: {missing:?}");
        });
        Self::default()
    }

    /// Runs `f` on this thread as start-io of this instance, entered at
    /// `irql`.
    pub fn run<R>(&self, irql: u8, f: impl FnOnce() -> R) -> R {
        let _frame = context::enter(&self.shared, Routine::StartIo, irql);
        f()
    }

    /// The findings so far.
    #[must_use]
    pub fn findings(&self) -> Vec<Finding> {
        self.shared.findings()
    }
}

/// The emulated IRQL of this thread's current call (`u8::MAX` outside one).
#[must_use]
pub fn irql() -> u8 {
    context::current().map_or(u8::MAX, |(_, _, irql)| irql)
}
