//! Host tests of code that takes the layer's kernel spin locks: `storport`'s
//! imports bound to storemu's emulated kernel, and an emulated port
//! instance whose routine and IRQL each test thread runs at (each thread is
//! one emulated processor, and storemu checks every acquire and release the
//! way Driver Verifier does).

use std::sync::{Arc, Once};

use storport_emu::port::context::{self, Routine};
use storport_emu::port::state::Shared;
use storport_emu::port::{Finding, exports};

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

/// One emulated port instance: where the kernel routines a test calls
/// report what they find.
pub struct Kernel {
    shared: Arc<Shared>,
}

impl Kernel {
    /// A fresh instance, with the imports bound.
    pub fn new() -> Self {
        static BIND: Once = Once::new();
        BIND.call_once(|| {
            let missing = exports::bind_host();
            assert!(missing.is_empty(), "storemu lacks imports: {missing:?}");
        });
        Self {
            shared: Arc::default(),
        }
    }

    /// Runs `f` on this thread as start-io of this instance, entered at
    /// `irql`.
    pub fn run<R>(&self, irql: u8, f: impl FnOnce() -> R) -> R {
        let _frame = context::enter(&self.shared, Routine::StartIo, irql);
        f()
    }

    /// The findings so far.
    pub fn findings(&self) -> Vec<Finding> {
        self.shared.findings()
    }
}

/// The emulated IRQL of this thread's current call.
pub fn irql() -> u8 {
    context::current().map_or(u8::MAX, |(_, _, irql)| irql)
}
