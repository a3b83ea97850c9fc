//! The size of physical memory, for a miniport that keeps data resident.
//!
//! Storport has no routine that tells a miniport how much memory the
//! machine has. The kernel's is `MmGetPhysicalMemoryRangesEx2`
//! ("`MmGetPhysicalMemoryRangesEx2` function (ntddk.h)": Windows 10 version
//! 2004 and later, `PASSIVE_LEVEL`): a nonpaged pool block of
//! `PHYSICAL_MEMORY_RANGE` entries ended by one whose members are both zero,
//! NULL on failure, and "it is the caller's responsibility to free this
//! block". The block carries the kernel's pool tag, not the caller's, so it
//! is freed with `ExFreePool`, which checks no tag. The layer needs no
//! newer Windows for it than `ExAllocatePool2`, which [`PoolSlice`] imports
//! already.
//!
//! The ranges can change afterwards (memory hot-add and removal), so the
//! total is a snapshot.
//!
//! [`PoolSlice`]: crate::PoolSlice

use core::ptr::NonNull;

use storport_sys::PHYSICAL_MEMORY_RANGE;

/// Most entries read before the terminating one: a machine has a handful of
/// ranges; an array without a terminator this far in is not trusted.
const MAX_RANGES: usize = 1 << 16;

/// The bytes of physical memory `MmGetPhysicalMemoryRangesEx2` reports for
/// the system (no partition object, no flags): the sum of every range's
/// `NumberOfBytes`. The array is freed before this returns.
///
/// `None` when the routine returns NULL, when the array has no terminating
/// entry within [`MAX_RANGES`] entries or a negative length, or when the
/// ranges add up to nothing.
///
/// # Safety
///
/// The caller runs at `PASSIVE_LEVEL`.
pub unsafe fn physical_memory_bytes() -> Option<u64> {
    // SAFETY: the caller runs at PASSIVE_LEVEL; a NULL partition object and
    // no flags ask for the ranges of the whole system.
    let ranges = unsafe { storport_sys::MmGetPhysicalMemoryRangesEx2(core::ptr::null_mut(), 0) };
    let ranges = NonNull::new(ranges)?;
    let total = sum_ranges(|index| {
        // SAFETY: the array holds entries up to and including one whose
        // members are both zero, and `sum_ranges` asks for entry `index`
        // only after every entry before it had a non-zero member, so it is
        // still inside the array (and `index` entries fit an allocation).
        let entry = unsafe { ranges.add(index) };
        // SAFETY: as above: the entry is inside the kernel's array, which
        // is aligned for it and not written while this reads it.
        unsafe { entry.read() }
    });
    // SAFETY: the block came from MmGetPhysicalMemoryRangesEx2, which leaves
    // freeing it to the caller; it is freed here, once, and not read again.
    unsafe { storport_sys::ExFreePool(ranges.as_ptr().cast()) };
    total
}

/// The sum of the `NumberOfBytes` of the ranges `entry(0)`, `entry(1)`, ...
/// up to the one whose members are both zero, asking for each entry once,
/// in order, and for none past that one. `None` for no terminator within
/// [`MAX_RANGES`] entries, a negative length, or a total of zero.
fn sum_ranges(mut entry: impl FnMut(usize) -> PHYSICAL_MEMORY_RANGE) -> Option<u64> {
    let mut sum: u64 = 0;
    for index in 0..MAX_RANGES {
        let range = entry(index);
        if range.BaseAddress == 0 && range.NumberOfBytes == 0 {
            return (sum > 0).then_some(sum);
        }
        sum = sum.saturating_add(u64::try_from(range.NumberOfBytes).ok()?);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use storport_sys::PHYSICAL_MEMORY_RANGE;

    use super::{MAX_RANGES, sum_ranges};

    fn range(base: i64, bytes: i64) -> PHYSICAL_MEMORY_RANGE {
        PHYSICAL_MEMORY_RANGE {
            BaseAddress: base,
            NumberOfBytes: bytes,
        }
    }

    /// `sum_ranges` over `ranges`, and the entries it read.
    fn sum(ranges: &[PHYSICAL_MEMORY_RANGE]) -> (Option<u64>, Vec<usize>) {
        let mut read = Vec::new();
        let total = sum_ranges(|index| {
            read.push(index);
            ranges.get(index).copied().unwrap_or_else(|| range(1, 1))
        });
        (total, read)
    }

    #[test]
    fn the_ranges_add_up_to_the_terminator_and_no_further() {
        let ranges = [
            range(0x1000, 0x9_f000),
            range(0x10_0000, 0xbff0_0000),
            range(0x1_0000_0000, 0x4000_0000),
            range(0, 0),
            range(0x9_0000_0000, 0x1000),
        ];
        assert_eq!(
            sum(&ranges),
            (Some(0x9_f000 + 0xbff0_0000 + 0x4000_0000), vec![0, 1, 2, 3])
        );
        assert_eq!(sum(&[range(0, 4096), range(0, 0)]).0, Some(4096));
    }

    #[test]
    fn malformed_arrays_report_nothing() {
        assert_eq!(sum(&[range(0, 0)]).0, None, "no memory at all");
        assert_eq!(sum(&[range(0x1000, -1), range(0, 0)]).0, None);
        let (total, read) = sum(&[]);
        assert_eq!(total, None, "no terminator");
        assert_eq!(read.len(), MAX_RANGES);
    }
}
