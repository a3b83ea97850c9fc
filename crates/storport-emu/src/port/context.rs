//! Which port instance, routine and IRQL the current thread is running.
//!
//! Storport calls arrive on the thread that called into the driver, so every
//! call into driver code pushes a frame here, and the emulated exports look
//! at the top frame to find "their" port instance, the routine they were
//! called from (for rules such as SpNoWait) and the IRQL.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};

use super::state::Shared;
use crate::machine::{gate, irql, preempt};

/// A routine of the miniport, or a phase of the port, as findings name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routine {
    /// `DriverEntry`.
    DriverEntry,
    /// `HwFindAdapter`.
    FindAdapter,
    /// `HwInitialize`.
    Initialize,
    /// `HwStartIo`.
    StartIo,
    /// `HwAdapterControl`.
    AdapterControl,
    /// `HwResetBus`.
    ResetBus,
    /// `HwFreeAdapterResources`.
    FreeAdapterResources,
    /// A timer routine requested with `RequestTimerCall`.
    Timer,
    /// A DPC routine.
    Dpc,
    /// The port itself (unload, leak checks).
    Port,
}

impl Routine {
    /// The name findings print.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::DriverEntry => "DriverEntry",
            Self::FindAdapter => "HwFindAdapter",
            Self::Initialize => "HwInitialize",
            Self::StartIo => "HwStartIo",
            Self::AdapterControl => "HwAdapterControl",
            Self::ResetBus => "HwResetBus",
            Self::FreeAdapterResources => "HwFreeAdapterResources",
            Self::Timer => "HwTimer",
            Self::Dpc => "HwDpcRoutine",
            Self::Port => "port",
        }
    }
}

struct Frame {
    shared: Arc<Shared>,
    routine: Routine,
    irql: u8,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The port instance exports fall back to when a call arrives on a thread
/// with no frame (for example a driver-created thread).
static LAST: Mutex<Option<Weak<Shared>>> = Mutex::new(None);

/// Marks the current thread as running `routine` of `shared` at `irql` until
/// the guard is dropped.
#[must_use = "the frame ends when the guard is dropped"]
pub struct FrameGuard {
    _not_send: std::marker::PhantomData<*mut ()>,
}

/// Pushes a frame.
pub fn enter(shared: &Arc<Shared>, routine: Routine, irql: u8) -> FrameGuard {
    if let Ok(mut last) = LAST.lock() {
        *last = Some(Arc::downgrade(shared));
    }
    FRAMES.with(|frames| {
        frames.borrow_mut().push(Frame {
            shared: Arc::clone(shared),
            routine,
            irql,
        });
    });
    FrameGuard {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        FRAMES.with(|frames| frames.borrow_mut().pop());
    }
}

/// The port instance of the current call, its routine and IRQL.
#[must_use]
pub fn current() -> Option<(Arc<Shared>, Routine, u8)> {
    let top = FRAMES.with(|frames| {
        frames
            .borrow()
            .last()
            .map(|frame| (Arc::clone(&frame.shared), frame.routine, irql_of(frame)))
    });
    top.or_else(|| {
        let last = LAST.lock().ok()?.as_ref()?.upgrade()?;
        Some((last, Routine::Port, 0))
    })
}

/// Inside a gate call the IRQL is the machine's (what CR8 holds, which the
/// driver may have raised); otherwise the one the frame was entered at.
fn irql_of(frame: &Frame) -> u8 {
    if gate::in_call() {
        irql::current()
    } else {
        frame.irql
    }
}

/// Changes the IRQL of the innermost frame (spin-lock acquire and release);
/// returns the previous IRQL.
#[expect(
    clippy::must_use_candidate,
    reason = "callers that restore an IRQL ignore the old one"
)]
pub fn set_irql(irql: u8) -> u8 {
    if gate::in_call() {
        let old = irql::set(irql);
        if irql < irql::DISPATCH_LEVEL && preempt::on_irql_lowered() {
            preempt::set_trap_flag();
        }
        return old;
    }
    FRAMES.with(|frames| {
        frames
            .borrow_mut()
            .last_mut()
            .map_or(0, |frame| std::mem::replace(&mut frame.irql, irql))
    })
}
