//! The IRQL each HwStartIo call runs at, and where it is preempted.
//!
//! HW_STARTIO: "For storage virtual miniport drivers, Storport calls
//! HwStorStartIo at any IRQL <= DISPATCH_LEVEL, and does not use an internal
//! spin lock." A virtual miniport must be correct at both ends of that range:
//! at DISPATCH_LEVEL it may not wait, and below it the thread may lose its
//! processor at any instruction to a DPC, which on Storport starts more
//! requests at DISPATCH_LEVEL on the same processor.
//!
//! Without a seed every call runs at DISPATCH_LEVEL, the strict end (the
//! port's behaviour before the model existed, and what runs that compare
//! timings need). With a seed, each call independently runs at
//! DISPATCH_LEVEL or PASSIVE_LEVEL, and half of the PASSIVE_LEVEL calls are
//! preempted after a number of driver instructions drawn from
//! `1..=MAX_BUDGET`; the draw for the N-th HwStartIo call of a port depends
//! only on the seed and N, so a single-threaded run repeats exactly.
//!
//! The preempting call is the one Storport's DPC would start: another
//! request for the same logical unit. For a WRITE it is the READ of the same
//! blocks ([`read_of_written_blocks`]); a request that only reads is
//! repeated ([`repeatable`]); anything else meets a standard INQUIRY to the
//! same logical unit. None of them changes what an initiator sees.

use std::sync::atomic::{AtomicU64, Ordering};

use super::model::DISPATCH_LEVEL;
use super::srb::{DataDirection, SrbSlot};

/// Most driver instructions a preempted call runs before it is preempted.
///
/// A `rep movsb` counts one per byte, so a preemption can land inside a
/// copy; each instruction stepped costs a signal, which bounds the budget.
pub const MAX_BUDGET: u64 = 2048;

/// How one HwStartIo call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartIoPlan {
    /// The IRQL of the call.
    pub irql: u8,
    /// Preempted after this many driver instructions (only below DISPATCH_LEVEL).
    pub preempt_after: Option<u64>,
}

/// The per-port schedule.
#[derive(Debug, Default)]
pub struct Schedule {
    seed: Option<u64>,
    calls: AtomicU64,
}

impl Schedule {
    /// A schedule for `seed` (none: always DISPATCH_LEVEL, never preempted).
    #[must_use]
    pub const fn new(seed: Option<u64>) -> Self {
        Self {
            seed,
            calls: AtomicU64::new(0),
        }
    }

    /// The seed, if the IRQL varies.
    #[must_use]
    pub const fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The plan of the next HwStartIo call.
    pub fn next(&self) -> StartIoPlan {
        let Some(seed) = self.seed else {
            return StartIoPlan {
                irql: DISPATCH_LEVEL,
                preempt_after: None,
            };
        };
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let draw = splitmix64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if draw & 1 == 0 {
            return StartIoPlan {
                irql: DISPATCH_LEVEL,
                preempt_after: None,
            };
        }
        let preempt_after = (draw & 2 != 0).then(|| 1 + (draw >> 16) % MAX_BUDGET);
        StartIoPlan {
            irql: 0,
            preempt_after,
        }
    }
}

/// splitmix64: a well-mixed 64-bit value from any input (Steele, Lea and
/// Flood, "Fast splittable pseudorandom number generators", 2014).
const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether a second copy of a request with this CDB, run before the first
/// finishes, changes nothing any initiator sees.
///
/// True whatever the first one's outcome when it reads, or moves no data (SBC-4 READ, SYNCHRONIZE CACHE,
/// READ CAPACITY, GET LBA STATUS; SPC-4 INQUIRY, MODE SENSE, REPORT LUNS,
/// TEST UNIT READY). A unit attention may be reported to either copy, as it
/// may to any request from the same initiator.
#[must_use]
pub fn repeatable(cdb: &[u8]) -> bool {
    match cdb.first() {
        Some(0x00 | 0x08 | 0x12 | 0x1A | 0x25 | 0x28 | 0x35 | 0x5A | 0x88 | 0x91 | 0xA0 | 0xA8) => {
            true
        }
        // SERVICE ACTION IN(16): READ CAPACITY(16) and GET LBA STATUS only.
        Some(0x9E) => matches!(cdb.get(1).map(|b| b & 0x1F), Some(0x10 | 0x12)),
        _ => false,
    }
}

/// For a WRITE(6/10/12/16): the READ of the same blocks.
///
/// Same LBA and length fields, protection and cache bits cleared. A copy of
/// the WRITE would not do: when the first WRITE fails (write protection switched on,
/// a unit attention) and the copy succeeds, the initiator's view of the
/// medium is wrong.
#[must_use]
pub fn read_of_written_blocks(cdb: &[u8]) -> Option<Vec<u8>> {
    let read = match cdb.first()? {
        0x0A => 0x08,
        0x2A => 0x28,
        0xAA => 0xA8,
        0x8A => 0x88,
        _ => return None,
    };
    let mut out = cdb.to_vec();
    out[0] = read;
    if read != 0x08
        && let Some(flags) = out.get_mut(1)
    {
        *flags = 0;
    }
    Some(out)
}

/// The request that preempts a HwStartIo call.
#[derive(Clone, Debug)]
pub struct Companion {
    /// (PathId, TargetId, Lun) of the preempted request.
    pub address: (u8, u8, u8),
    /// Its CDB.
    pub cdb: Vec<u8>,
    /// Its data phase.
    pub direction: DataDirection,
}

/// Standard INQUIRY, 36 bytes: what the port sends when the preempted
/// request cannot be repeated.
const INQUIRY: [u8; 6] = [0x12, 0, 0, 0, 36, 0];

impl Companion {
    /// The companion of the request in `slot` with `cdb`, whose data-in
    /// length (if it reads) is `data_in`: the READ of the blocks a WRITE
    /// writes, a copy of a [`repeatable`] request, or a standard INQUIRY to
    /// the same logical unit. It never carries data out, so the preempted
    /// request's data-out buffer is not read.
    #[must_use]
    pub fn of(slot: &SrbSlot, cdb: &[u8], data_in: Option<usize>) -> Self {
        let address = (slot.srb.PathId, slot.srb.TargetId, slot.srb.Lun);
        if let Some(read) = read_of_written_blocks(cdb)
            && slot.data_len > 0
        {
            return Self {
                address,
                cdb: read,
                direction: DataDirection::In(slot.data_len),
            };
        }
        if repeatable(cdb) {
            return Self {
                address,
                cdb: cdb.to_vec(),
                direction: data_in.map_or(DataDirection::None, DataDirection::In),
            };
        }
        Self {
            address,
            cdb: INQUIRY.to_vec(),
            direction: DataDirection::In(36),
        }
    }

    /// What it is, for the log.
    #[must_use]
    pub fn describe(&self) -> String {
        let (bus, target, lun) = self.address;
        format!(
            "HwStartIo of a request with CDB opcode {:#04x} to {bus}:{target}:{lun}",
            self.cdb.first().copied().unwrap_or(0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_seed_every_call_runs_at_dispatch_level() {
        let schedule = Schedule::new(None);
        for _ in 0..100 {
            assert_eq!(
                schedule.next(),
                StartIoPlan {
                    irql: DISPATCH_LEVEL,
                    preempt_after: None
                }
            );
        }
    }

    #[test]
    fn a_seed_gives_both_ends_and_preemptions_and_repeats() {
        let plans = |seed| {
            let schedule = Schedule::new(Some(seed));
            (0..400).map(|_| schedule.next()).collect::<Vec<_>>()
        };
        let first = plans(7);
        assert_eq!(first, plans(7));
        assert_ne!(first, plans(8));
        let passive = first.iter().filter(|p| p.irql == 0).count();
        let preempted = first.iter().filter(|p| p.preempt_after.is_some()).count();
        assert!(
            (150..250).contains(&passive),
            "{passive} of 400 at PASSIVE_LEVEL"
        );
        assert!(
            (50..150).contains(&preempted),
            "{preempted} of 400 preempted"
        );
        assert!(first.iter().all(|p| {
            p.preempt_after
                .is_none_or(|b| (1..=MAX_BUDGET).contains(&b))
                && (p.preempt_after.is_none() || p.irql == 0)
        }));
    }

    #[test]
    fn only_requests_without_side_effects_repeat() {
        assert!(repeatable(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
        assert!(!repeatable(&[0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
        assert!(!repeatable(&[0x2F, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
        assert!(repeatable(&[0x9E, 0x10]));
        assert!(!repeatable(&[0x9E, 0x11]));
        // UNMAP, PERSISTENT RESERVE OUT, COMPARE AND WRITE, MODE SELECT,
        // WRITE SAME, START STOP UNIT, RESERVE.
        for opcode in [0x42, 0x5F, 0x89, 0x15, 0x55, 0x41, 0x93, 0x1B, 0x16] {
            assert!(!repeatable(&[opcode, 0, 0, 0, 0, 0]), "{opcode:#04x}");
        }
        assert!(!repeatable(&[]));
    }

    #[test]
    fn a_write_is_met_by_the_read_of_its_blocks() {
        assert_eq!(
            read_of_written_blocks(&[0x2A, 0x08, 0, 0, 0x12, 0x34, 0, 0, 8, 0]),
            Some(vec![0x28, 0, 0, 0, 0x12, 0x34, 0, 0, 8, 0])
        );
        assert_eq!(
            read_of_written_blocks(&[0x0A, 0x01, 0x02, 0x03, 4, 0]),
            Some(vec![0x08, 0x01, 0x02, 0x03, 4, 0])
        );
        assert_eq!(
            read_of_written_blocks(&[0x8A, 0xE0, 1, 2]).map(|c| c[..2].to_vec()),
            Some(vec![0x88, 0])
        );
        assert_eq!(read_of_written_blocks(&[0xAA, 0x10]), Some(vec![0xA8, 0]));
        assert_eq!(read_of_written_blocks(&[0x28, 0]), None);
        assert_eq!(read_of_written_blocks(&[]), None);
    }
}
