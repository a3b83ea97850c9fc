//! The machine's list of code it runs: loaded images and code pages register
//! here so fault reports can name an image, section and function, and so the
//! signal handler can tell driver code from emulator code.
//!
//! Two views: a lock-free table of address ranges the signal handler reads,
//! and a mutex-protected list of full records used to build reports in
//! normal context.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::fault::{CodeLocation, FunctionRange};
use super::memory::Perms;

/// One section of a registered image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name (at most 8 bytes in the section table).
    pub name: String,
    /// Offset of the section from the image base.
    pub rva: u32,
    /// Size of the section in memory (`VirtualSize`, or the raw size when that is 0).
    pub size: u32,
    /// Protection applied to the section's pages.
    pub perms: Perms,
}

/// What the machine knows about one region of code.
#[derive(Debug)]
pub struct ImageRecord {
    pub name: String,
    pub base: usize,
    pub size: usize,
    pub sections: Vec<Section>,
    /// Sorted by `begin_rva`.
    pub functions: Vec<FunctionRange>,
}

impl ImageRecord {
    pub fn locate(&self, addr: usize) -> Option<CodeLocation> {
        let offset = addr.checked_sub(self.base).filter(|&o| o < self.size)?;
        let rva = u32::try_from(offset).ok()?;
        let section = self
            .sections
            .iter()
            .find(|s| rva >= s.rva && rva - s.rva < s.size)
            .map(|s| s.name.clone());
        let idx = self.functions.partition_point(|f| f.begin_rva <= rva);
        let function = idx
            .checked_sub(1)
            .map(|i| self.functions[i])
            .filter(|f| rva < f.end_rva);
        Some(CodeLocation {
            image: self.name.clone(),
            image_base: self.base,
            rva,
            section,
            function,
        })
    }

    /// Whether `addr` lies in an executable section.
    pub fn is_code(&self, addr: usize) -> bool {
        self.locate(addr).is_some_and(|loc| {
            self.sections
                .iter()
                .any(|s| s.perms.execute && loc.rva >= s.rva && loc.rva - s.rva < s.size)
        })
    }
}

const SLOTS: usize = 256;
const FREE: usize = 0;
const CLAIMED: usize = usize::MAX;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
}

#[expect(
    clippy::declare_interior_mutable_const,
    reason = "used only to initialise the static array"
)]
const EMPTY_SLOT: Slot = Slot {
    start: AtomicUsize::new(FREE),
    end: AtomicUsize::new(0),
};
static RANGES: [Slot; SLOTS] = [EMPTY_SLOT; SLOTS];
static RECORDS: Mutex<Vec<Arc<ImageRecord>>> = Mutex::new(Vec::new());

/// Whether `addr` lies in any registered image or code page.
/// Async-signal-safe (atomic loads only).
pub fn in_registered_code(addr: usize) -> bool {
    RANGES.iter().any(|slot| {
        let start = slot.start.load(Ordering::Acquire);
        start != FREE
            && start != CLAIMED
            && addr >= start
            && addr < slot.end.load(Ordering::Acquire)
    })
}

/// Keeps a record registered; unregisters on drop.
#[derive(Debug)]
pub struct Registration {
    record: Arc<ImageRecord>,
    slot: Option<usize>,
}

impl Registration {
    pub const fn record(&self) -> &Arc<ImageRecord> {
        &self.record
    }
}

/// Registers `record`. When the lock-free range table is full the record is
/// still used for reports, but timeouts cannot tell its code from the host's.
pub fn register(record: ImageRecord) -> Registration {
    let record = Arc::new(record);
    let slot = RANGES.iter().position(|slot| {
        slot.start
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(i) = slot {
        RANGES[i]
            .end
            .store(record.base + record.size, Ordering::Release);
        RANGES[i].start.store(record.base, Ordering::Release);
    }
    RECORDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&record));
    Registration { record, slot }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            RANGES[i].start.store(CLAIMED, Ordering::Release);
            RANGES[i].end.store(0, Ordering::Release);
            RANGES[i].start.store(FREE, Ordering::Release);
        }
        RECORDS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|r| !Arc::ptr_eq(r, &self.record));
    }
}

/// Names the registered image, section and `.pdata` function holding `addr`.
#[must_use]
pub fn locate(addr: usize) -> Option<CodeLocation> {
    let records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
    records.iter().find_map(|r| r.locate(addr))
}

/// Whether `addr` lies in an executable section of a registered image or code page.
pub fn is_registered_code(addr: usize) -> bool {
    let records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
    records.iter().any(|r| r.is_code(addr))
}
