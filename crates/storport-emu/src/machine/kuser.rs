//! `KUSER_SHARED_DATA`, emulated from the host clocks.
//!
//! x64 Windows maps this page at `0xFFFFF78000000000` for kernel code; its time fields `KeQueryInterruptTime`,
//! `KeQueryTickCount` and `KeQuerySystemTime` read inline. User space can
//! never map that address, so the machine traps each load from it and
//! answers from the host clocks.
//!
//! Field offsets (identical from Windows Vista to Windows 11 24H2, per the
//! `KUSER_SHARED_DATA` definition in ntddk.h and public type dumps):
//! `TickCountLowDeprecated` 0x0, `TickCountMultiplier` 0x4, `InterruptTime`
//! 0x8, `SystemTime` 0x14, `TimeZoneBias` 0x20, `NtProductType` 0x264,
//! `ProductTypeIsValid` 0x268, `NativeProcessorArchitecture` 0x26A,
//! `NtMajorVersion` 0x26C, `NtMinorVersion` 0x270, `KdDebuggerEnabled` 0x2D4,
//! `TickCount` 0x320. Loads of any other field are not emulated: they fault,
//! so a driver that depends on one is reported rather than fed zeros.

/// Address of `KUSER_SHARED_DATA` in the x64 kernel address space.
pub const KUSER_SHARED_DATA: u64 = 0xFFFF_F780_0000_0000;
/// Length of the emulated window (one page).
pub const KUSER_SIZE: u64 = 0x1000;
/// The clock interrupt period in 100 ns units (`KeQueryTimeIncrement`): 15.625 ms.
pub const TIME_INCREMENT_100NS: u64 = 156_250;
/// `TickCountMultiplier`: milliseconds per tick as a 8.24 fixed-point number (15.625 × 2²⁴).
pub const TICK_COUNT_MULTIPLIER: u32 = 0x0FA0_0000;
/// 100 ns intervals between 1601-01-01 (Windows epoch) and 1970-01-01.
pub const EPOCH_DIFFERENCE_100NS: u64 = 116_444_736_000_000_000;

/// Byte ranges of the emulated fields.
const FIELDS: [(usize, usize); 6] = [
    (0x000, 0x02C), // tick count (low), multiplier, interrupt time, system time, time zone bias
    (0x264, 0x269), // NtProductType, ProductTypeIsValid
    (0x26A, 0x26C), // NativeProcessorArchitecture
    (0x26C, 0x274), // NtMajorVersion, NtMinorVersion
    (0x2D4, 0x2D5), // KdDebuggerEnabled
    (0x320, 0x32C), // TickCount (KSYSTEM_TIME)
];

/// Host time as the page would show it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clocks {
    /// Time since boot, 100 ns units.
    pub(crate) interrupt_time: u64,
    /// Time since 1601-01-01 UTC, 100 ns units.
    pub(crate) system_time: u64,
}

impl Clocks {
    pub(crate) fn now() -> Self {
        Self {
            interrupt_time: super::thread::monotonic_ns() / 100,
            system_time: super::thread::realtime_ns() / 100 + EPOCH_DIFFERENCE_100NS,
        }
    }
}

fn put(page: &mut [u8; 0x330], offset: usize, bytes: &[u8]) {
    page[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A `KSYSTEM_TIME`: `LowPart`, `High1Time`, `High2Time`.
fn put_system_time(page: &mut [u8; 0x330], offset: usize, value: u64) {
    let [l0, l1, l2, l3, h0, h1, h2, h3] = value.to_le_bytes();
    put(
        page,
        offset,
        &[l0, l1, l2, l3, h0, h1, h2, h3, h0, h1, h2, h3],
    );
}

/// Reads `len` (1, 2, 4 or 8) bytes at `offset` in the page, or `None` when
/// the range is not entirely inside one emulated field group.
pub(crate) fn read(offset: u64, len: u8, clocks: Clocks) -> Option<u64> {
    let offset = usize::try_from(offset).ok()?;
    let end = offset.checked_add(usize::from(len))?;
    if !FIELDS
        .iter()
        .any(|&(start, stop)| offset >= start && end <= stop)
    {
        return None;
    }
    let mut page = [0_u8; 0x330];
    let ticks = clocks.interrupt_time / TIME_INCREMENT_100NS;
    let tick_low = u32::try_from(ticks & 0xFFFF_FFFF).unwrap_or(0);
    put(&mut page, 0x0, &tick_low.to_le_bytes());
    put(&mut page, 0x4, &TICK_COUNT_MULTIPLIER.to_le_bytes());
    put_system_time(&mut page, 0x8, clocks.interrupt_time);
    put_system_time(&mut page, 0x14, clocks.system_time);
    put_system_time(&mut page, 0x20, 0);
    put(&mut page, 0x264, &1_u32.to_le_bytes()); // NtProductWinNt
    put(&mut page, 0x268, &[1]);
    put(&mut page, 0x26A, &9_u16.to_le_bytes()); // PROCESSOR_ARCHITECTURE_AMD64
    put(&mut page, 0x26C, &10_u32.to_le_bytes());
    put(&mut page, 0x270, &0_u32.to_le_bytes());
    put_system_time(&mut page, 0x320, ticks);
    let mut value = [0_u8; 8];
    value[..usize::from(len)].copy_from_slice(&page[offset..end]);
    Some(u64::from_le_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_fields_follow_the_clocks() {
        let clocks = Clocks {
            interrupt_time: 0x1_2345_6789,
            system_time: 0x01DB_0000_0000_0001,
        };
        assert_eq!(read(0x8, 8, clocks), Some(0x1_2345_6789));
        assert_eq!(read(0xC, 4, clocks), Some(1));
        assert_eq!(read(0x10, 4, clocks), Some(1));
        assert_eq!(read(0x14, 8, clocks), Some(0x01DB_0000_0000_0001));
        assert_eq!(read(0x4, 4, clocks), Some(u64::from(TICK_COUNT_MULTIPLIER)));
        let ticks = 0x1_2345_6789 / TIME_INCREMENT_100NS;
        assert_eq!(read(0x320, 8, clocks), Some(ticks));
        // TickCount × multiplier >> 24 is milliseconds.
        assert_eq!(
            (ticks * u64::from(TICK_COUNT_MULTIPLIER)) >> 24,
            ticks * 15_625 / 1000
        );
        assert_eq!(read(0x26C, 4, clocks), Some(10));
        assert_eq!(read(0x2D4, 1, clocks), Some(0));
        assert_eq!(read(0x30, 4, clocks), None, "NtSystemRoot is not emulated");
        assert_eq!(
            read(0x328, 8, clocks),
            None,
            "a read past the field group is refused"
        );
    }
}
