//! The machine's physical memory, as far as a miniport can see it.
//!
//! # What a driver can learn
//!
//! Storport has no routine that tells a miniport the size of physical
//! memory. The documented kernel routine is `MmGetPhysicalMemoryRangesEx2`
//! (ntddk.h, Windows 10 version 2004 and later, PASSIVE_LEVEL): it "returns
//! the virtual address of a nonpaged pool block which contains the physical
//! memory ranges in the system", an array of `PHYSICAL_MEMORY_RANGE`
//! (`BaseAddress`, `NumberOfBytes`) ended by an entry of zeros, which the
//! caller frees. storemu answers it with one range, `0..physical memory`,
//! in a pool block of the caller's (tag [`RANGES_TAG`]), so an unfreed answer
//! is a pool leak like any other. `MmQuerySystemSize` gives only a size class
//! and `ZwQuerySystemInformation` documents no field for it; neither is
//! emulated.
//!
//! # What the pool may hand out
//!
//! Nonpaged pool is resident memory, so the driver's live allocations may
//! not exceed physical memory less what the rest of the system holds:
//! [`DEFAULT_RESERVED_MIB`] (2 GiB, the memory Microsoft names as the minimum
//! for 64-bit Windows 10 — what Windows needs for itself before any driver
//! allocates), or `--reserved-memory-mib`. An allocation that does not fit
//! returns NULL, as `ExAllocatePool2` documents ("returns NULL if there is
//! insufficient memory in the free pool"), and the run log says why.
//!
//! Each live block counts what it takes from physical memory: its size
//! rounded up to the pool's 16-byte granule in the normal pool, and its whole
//! pages in the special pool (the Special Pool page: each allocation "uses
//! one page of nonpageable physical memory"). Freed blocks count nothing,
//! quarantined or not: Windows frees their physical pages and keeps only the
//! address range.

use std::collections::VecDeque;

/// Default physical memory, in MiB (`--physical-memory-mib`).
pub const DEFAULT_PHYSICAL_MIB: u64 = 4096;
/// Default memory held by the rest of the system, in MiB (`--reserved-memory-mib`).
pub const DEFAULT_RESERVED_MIB: u64 = 2048;
/// Pool tag of the blocks `MmGetPhysicalMemoryRangesEx2` returns (the
/// documentation names none).
pub const RANGES_TAG: u32 = u32::from_le_bytes(*b"MmPr");
/// Failed allocations remembered, to name the one behind a NULL access.
const FAILURES_KEPT: usize = 64;

/// The physical memory model of one port instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysicalMemory {
    /// Installed physical memory, in bytes.
    pub physical_bytes: u64,
    /// Memory the rest of the system holds, in bytes.
    pub reserved_bytes: u64,
}

impl Default for PhysicalMemory {
    fn default() -> Self {
        Self::from_mib(DEFAULT_PHYSICAL_MIB, DEFAULT_RESERVED_MIB)
    }
}

impl PhysicalMemory {
    /// `physical_mib` of memory of which `reserved_mib` is the rest of the system's.
    #[must_use]
    pub const fn from_mib(physical_mib: u64, reserved_mib: u64) -> Self {
        Self {
            physical_bytes: physical_mib.saturating_mul(1 << 20),
            reserved_bytes: reserved_mib.saturating_mul(1 << 20),
        }
    }

    /// The most the driver's pool may hold at once, in bytes.
    #[must_use]
    pub const fn pool_limit_bytes(&self) -> u64 {
        self.physical_bytes.saturating_sub(self.reserved_bytes)
    }
}

/// Why an allocation returned NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// The model's pool had not enough left.
    Exhausted,
    /// A `--fail` plan failed it.
    Injected,
    /// The host could not map it (or the size cannot be represented).
    Host,
}

/// An allocation that returned NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedAllocation {
    /// The export called (`ExAllocatePool2`, ...).
    pub export: &'static str,
    /// Bytes asked for.
    pub size_bytes: usize,
    /// Pool tag asked for.
    pub tag: u32,
    /// The routine that called it.
    pub routine: String,
    /// Why it failed.
    pub cause: FailureCause,
}

/// The failed allocations of a run, newest last, bounded.
#[derive(Clone, Debug, Default)]
pub struct Failures {
    recent: VecDeque<FailedAllocation>,
}

impl Failures {
    /// Remembers `failure`, forgetting the oldest past the bound.
    pub fn record(&mut self, failure: FailedAllocation) {
        if self.recent.len() == FAILURES_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(failure);
    }

    /// The newest failed allocation `address` lies in when its NULL result
    /// is used as a base: `0 <= address < size`.
    #[must_use]
    pub fn covering(&self, address: usize) -> Option<&FailedAllocation> {
        self.recent
            .iter()
            .rev()
            .find(|failure| address < failure.size_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_gets_what_the_rest_of_the_system_leaves() {
        let memory = PhysicalMemory::default();
        assert_eq!(memory.physical_bytes, 4 << 30);
        assert_eq!(memory.pool_limit_bytes(), 2 << 30);
        assert_eq!(PhysicalMemory::from_mib(256, 2048).pool_limit_bytes(), 0);
    }

    #[test]
    fn a_null_based_address_names_the_newest_failure_that_covers_it() {
        let mut failures = Failures::default();
        let failure = |size_bytes, tag: &[u8; 4]| FailedAllocation {
            export: "ExAllocatePool2",
            size_bytes,
            tag: u32::from_le_bytes(*tag),
            routine: "HwFindAdapter".to_owned(),
            cause: FailureCause::Exhausted,
        };
        failures.record(failure(0x1000, b"Big1"));
        failures.record(failure(0x10, b"Tiny"));
        assert_eq!(
            failures.covering(0x8).map(|f| f.tag),
            Some(u32::from_le_bytes(*b"Tiny"))
        );
        assert_eq!(
            failures.covering(0x800).map(|f| f.tag),
            Some(u32::from_le_bytes(*b"Big1"))
        );
        assert!(failures.covering(0x1000).is_none());
        for _ in 0..FAILURES_KEPT {
            failures.record(failure(1, b"Many"));
        }
        assert!(
            failures.covering(0x8).is_none(),
            "bounded, oldest forgotten"
        );
    }
}
