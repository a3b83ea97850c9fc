//! The state one emulated Storport instance shares between the port's own
//! code and the exports driver code calls.
//!
//! Locks here are held only for short bookkeeping, never across a call into
//! driver code.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use storport_sys::HW_INITIALIZATION_DATA;

use super::context::Routine;
use super::faults::FaultPlan;
use super::locks::SpinLocks;
use super::pool::Pool;
use super::regglue::RegistryPort;
use super::rules::{Finding, Rule};
use super::srb::SrbTable;

/// One line of the run's log, in the order things happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A step of the life cycle the port performed.
    Phase(String),
    /// One line the driver printed.
    DbgPrint(String),
    /// A finding.
    Finding(Finding),
}

/// A timer the miniport asked for with `RequestTimerCall`.
#[derive(Clone, Copy, Debug)]
pub struct TimerRequest {
    /// `PHW_TIMER` routine.
    pub routine: usize,
    /// Microseconds from the request.
    pub micros: u64,
}

/// The init data a miniport registered and the size it declared.
#[derive(Clone, Copy)]
pub struct InitRecord(pub HW_INITIALIZATION_DATA, pub u32);

// SAFETY: the record holds function addresses in driver code and pointers
// the port never dereferences; they are valid on any thread.
unsafe impl Send for InitRecord {}
// SAFETY: as above; the record is read-only once stored.
unsafe impl Sync for InitRecord {}

impl std::fmt::Debug for InitRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitRecord")
            .field("size", &self.1)
            .finish_non_exhaustive()
    }
}

/// State of one port instance (one loaded miniport with its adapter).
#[derive(Debug, Default)]
pub struct Shared {
    events: Mutex<Vec<Event>>,
    partial_line: Mutex<String>,
    /// Print log lines on stderr as they happen (for debugging a run).
    pub echo: AtomicBool,
    /// The driver's pool.
    pub pool: Mutex<Pool>,
    /// `HW_INITIALIZATION_DATA` as the miniport registered it (zero-extended
    /// to the Windows 8 size), and the size it declared.
    pub init: Mutex<Option<InitRecord>>,
    /// Address of the adapter's device extension, 0 before start.
    pub device_extension: AtomicUsize,
    /// Registry model and the instance's registry buffer.
    pub registry: Mutex<RegistryPort>,
    /// Outstanding and recently completed SRBs.
    pub srbs: Mutex<SrbTable>,
    /// The pending timer request.
    pub timer: Mutex<Option<TimerRequest>>,
    /// The spin locks the driver holds, Storport's included.
    pub spin_locks: SpinLocks,
    /// `HwPassiveInitializeRoutine` from `EnablePassiveInitialization`.
    pub passive_init: Mutex<Option<usize>>,
    /// DPCs issued and not yet run: `[routine, dpc, argument1, argument2]`.
    pub dpcs: Mutex<VecDeque<[u64; 4]>>,
    /// Set once a bug check has been raised.
    pub bugchecked: AtomicBool,
    /// Calls of fallible imports counted so far, and the ones to fail.
    pub faults: Mutex<FaultPlan>,
}

/// Locks `mutex`, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Records a finding.
    pub fn report(&self, finding: Finding) {
        if finding.bugcheck.is_some() {
            self.bugchecked.store(true, Ordering::Release);
        }
        self.push(Event::Finding(finding));
    }

    /// Records a finding for `rule` raised in `routine`.
    pub fn violation(&self, rule: Rule, routine: Routine, params: Vec<u64>, message: String) {
        self.report(Finding::new(rule, routine.name(), params, message));
    }

    /// Counts one call of the fallible import `call` made from `routine`;
    /// true when the fault plan says it fails (the failure is logged).
    pub fn inject_fault(&self, call: &'static str, routine: Routine) -> bool {
        let injected = lock(&self.faults).on_call(call, routine.name());
        injected.is_some_and(|fault| {
            self.phase(fault.to_string());
            true
        })
    }

    /// Records a life-cycle step.
    pub fn phase(&self, text: impl Into<String>) {
        self.push(Event::Phase(text.into()));
    }

    /// Appends driver debug output; complete lines become events.
    pub fn debug_output(&self, text: &str) {
        let mut lines = Vec::new();
        let mut partial = lock(&self.partial_line);
        partial.push_str(text);
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            lines.push(line.trim_end_matches(['\n', '\r']).to_owned());
        }
        drop(partial);
        for line in lines {
            self.push(Event::DbgPrint(line));
        }
    }

    /// Flushes a debug line that never got its newline.
    pub fn flush_debug_output(&self) {
        let rest = std::mem::take(&mut *lock(&self.partial_line));
        if !rest.is_empty() {
            self.push(Event::DbgPrint(rest));
        }
    }

    fn push(&self, event: Event) {
        if self.echo.load(Ordering::Relaxed) {
            // A closed standard error loses the echo, not the run.
            let mut stderr = std::io::stderr().lock();
            let _ = match &event {
                Event::Phase(text) => writeln!(stderr, "storemu: {text}"),
                Event::DbgPrint(line) => writeln!(stderr, "  dbg: {line}"),
                Event::Finding(finding) => writeln!(stderr, "  finding: {finding}"),
            };
        }
        lock(&self.events).push(event);
    }

    /// Everything logged so far.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The findings so far.
    #[must_use]
    pub fn findings(&self) -> Vec<Finding> {
        lock(&self.events)
            .iter()
            .filter_map(|event| match event {
                Event::Finding(finding) => Some(finding.clone()),
                _ => None,
            })
            .collect()
    }

    /// The driver's debug lines so far.
    #[must_use]
    pub fn dbgprint(&self) -> Vec<String> {
        lock(&self.events)
            .iter()
            .filter_map(|event| match event {
                Event::DbgPrint(line) => Some(line.clone()),
                _ => None,
            })
            .collect()
    }
}
