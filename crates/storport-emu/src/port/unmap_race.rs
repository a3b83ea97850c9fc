//! UNMAP with a racing parameter list, and the rule that judges its outcome
//! (`DataOutSnapshot`).
//!
//! Of a request whose data-out buffer changes, the one thing that can be
//! checked from outside is whether the outcome (status, sense, what changed
//! on the medium) is one that a consistent snapshot of the buffer produces.
//! For UNMAP the port can see the medium through READ:
//!
//! 1. It learns the limits the miniport must check (READ CAPACITY(16) LBPME,
//!    Logical Block Provisioning VPD page B2h LBPU, Block Limits VPD page
//!    B0h MAXIMUM UNMAP LBA COUNT and MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT).
//! 2. For each limit it builds a list in two versions that differ in one
//!    byte, the NUMBER OF LOGICAL BLOCKS of the last descriptor (LBA 1): the
//!    first version (1 block) is valid, the second breaks the limit:
//!    - past the end: 1 + 256^k blocks from LBA 1 run past the capacity;
//!    - too many blocks: filler descriptors on the last blocks of the disk
//!      bring the first version's total to exactly MAXIMUM UNMAP LBA COUNT,
//!      and 257 blocks take the second version past it (within the
//!      capacity, so only the total is broken).
//! 3. It writes a pattern to the first blocks of the disk (the window, up to
//!    64 blocks or 32 KiB), sends the UNMAP with the racing buffer (the
//!    first one or two accesses of the varying byte see the valid version,
//!    every later one the other), and reads the window back.
//! 4. With GOOD, only blocks of the valid version's ranges may have changed;
//!    with any other ending (CHECK CONDITION: the second version refused),
//!    none. Anything else is a finding: the miniport checked one version of
//!    the list and acted on another.
//!
//! SBC does not say whether a refused UNMAP may have unmapped some of the
//! ranges its list names before it found the bad one. storemu takes the
//! conservative reading (a refused list changes nothing);
//! [`RefusedUnmap::MayUnmapNamedBlocks`] (`--racing-partial-unmap`) takes
//! the other, and accepts changes inside either version's ranges.
//!
//! The window is restored afterwards, and so are the filler blocks when they
//! are at most 1 MiB; larger filler regions stay unmapped.

use storport_sys::srb_status;

use super::adapter::{Port, PortError};
use super::racing::{RacingDataOut, RacingSchedule};
use super::rules::Rule;
use super::srb::{DataDirection, SrbResult};

/// The LBA of the descriptor whose block count races.
const RACING_LBA: u64 = 1;
/// Most blocks in the window the check reads back.
const WINDOW_BLOCKS: u64 = 64;
/// Most bytes in the window (and in one READ or WRITE of the check).
const CHUNK_BYTES: u64 = 32 * 1024;
/// Most filler descriptors in a list.
const MAX_FILLERS: u32 = 255;
/// Largest filler region the check saves and restores.
const MAX_RESTORED_BYTES: u64 = 1 << 20;
/// How many accesses of the varying byte see the valid version, one run each.
const SCHEDULES: [RacingSchedule; 2] = [
    RacingSchedule::SwitchAfter(1),
    RacingSchedule::SwitchAfter(2),
];

/// How the check judges an UNMAP that did not end with GOOD (SBC does not
/// say whether a refused UNMAP may have unmapped part of its list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefusedUnmap {
    /// A refused list changes nothing: the conservative reading.
    #[default]
    ChangesNothing,
    /// A refused list may have unmapped blocks that either version names
    /// (`--racing-partial-unmap`).
    MayUnmapNamedBlocks,
}

/// What a logical unit reports about UNMAP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmapLimits {
    /// Number of logical blocks.
    pub blocks: u64,
    /// Bytes per logical block.
    pub block_bytes: u32,
    /// MAXIMUM UNMAP LBA COUNT (VPD B0h).
    pub max_lba_count: u32,
    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (VPD B0h).
    pub max_descriptors: u32,
}

/// The limit the second version of a list breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmapBreach {
    /// A range runs past the capacity.
    PastEnd,
    /// The blocks of all descriptors exceed MAXIMUM UNMAP LBA COUNT.
    TooManyBlocks,
}

impl UnmapBreach {
    const fn code(self) -> u64 {
        match self {
            Self::PastEnd => 0,
            Self::TooManyBlocks => 1,
        }
    }
}

/// One racing UNMAP and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmapRace {
    /// The limit the second version breaks.
    pub breach: UnmapBreach,
    /// Which accesses saw which version.
    pub schedule: RacingSchedule,
    /// How the UNMAP ended.
    pub result: SrbResult,
    /// How many times the miniport read (or wrote) the varying byte.
    pub accesses: u32,
    /// The window's blocks that changed.
    pub changed: Vec<u64>,
    /// Whether a consistent snapshot of the list gives this outcome.
    pub consistent: bool,
}

/// What [`Port::racing_unmap`] did on one logical unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnmapRaceReport {
    /// The limits the logical unit reports, when it supports UNMAP.
    pub limits: Option<UnmapLimits>,
    /// Every racing UNMAP sent.
    pub races: Vec<UnmapRace>,
    /// Checks not made, and why, as sentences.
    pub skipped: Vec<String>,
}

/// A list in its two versions.
struct Plan {
    breach: UnmapBreach,
    /// (LBA, blocks) of the filler descriptors, before the racing one.
    fillers: Vec<(u64, u32)>,
    /// The racing descriptor's block count in the second version.
    second_count: u32,
}

impl Plan {
    /// The parameter list whose racing descriptor names `count` blocks.
    fn list(&self, count: u32) -> Vec<u8> {
        let descriptors = self.fillers.len() + 1;
        let length = 8 + 16 * descriptors;
        let mut list = Vec::with_capacity(length);
        list.extend_from_slice(&u16::try_from(length - 2).unwrap_or(u16::MAX).to_be_bytes());
        list.extend_from_slice(&u16::try_from(length - 8).unwrap_or(u16::MAX).to_be_bytes());
        list.extend_from_slice(&[0; 4]);
        for &(lba, blocks) in self.fillers.iter().chain([&(RACING_LBA, count)]) {
            list.extend_from_slice(&lba.to_be_bytes());
            list.extend_from_slice(&blocks.to_be_bytes());
            list.extend_from_slice(&[0; 4]);
        }
        list
    }

    /// Whether `lba` is in a range of the version whose racing descriptor
    /// names `count` blocks.
    fn names(&self, lba: u64, count: u32) -> bool {
        self.fillers
            .iter()
            .chain([&(RACING_LBA, count)])
            .any(|&(start, blocks)| lba >= start && lba - start < u64::from(blocks))
    }

    /// Why the second version is invalid, as a clause.
    fn why_invalid(&self, limits: &UnmapLimits) -> String {
        match self.breach {
            UnmapBreach::PastEnd => format!(
                "{} blocks from LBA {RACING_LBA} run past the capacity of {} blocks",
                self.second_count, limits.blocks
            ),
            UnmapBreach::TooManyBlocks => {
                let total: u64 = self
                    .fillers
                    .iter()
                    .map(|&(_, blocks)| u64::from(blocks))
                    .sum::<u64>()
                    + u64::from(self.second_count);
                format!(
                    "{total} blocks in all exceed MAXIMUM UNMAP LBA COUNT {}",
                    limits.max_lba_count
                )
            }
        }
    }
}

/// The list whose second version runs past the capacity, if a one-byte
/// change of a block count can do that.
fn past_end(limits: &UnmapLimits) -> Result<Plan, String> {
    (1..=3)
        .map(|k| 1 + (1_u32 << (8 * k)))
        .find(|&count| RACING_LBA + u64::from(count) > limits.blocks)
        .map(|second_count| Plan {
            breach: UnmapBreach::PastEnd,
            fillers: Vec::new(),
            second_count,
        })
        .ok_or_else(|| {
            format!(
                "the capacity of {} blocks is too large for a one-byte change of a block count to pass it",
                limits.blocks
            )
        })
}

/// The list whose second version exceeds MAXIMUM UNMAP LBA COUNT, if the
/// descriptor limit and the capacity leave room for it.
fn too_many_blocks(limits: &UnmapLimits) -> Result<Plan, String> {
    let max = limits.max_lba_count;
    if max == 0 || max == u32::MAX {
        return Err(format!(
            "MAXIMUM UNMAP LBA COUNT is {max:#x}, which sets no total a list could exceed"
        ));
    }
    let fill = max - 1;
    let mut fillers = Vec::new();
    if fill > 0 {
        let slots = limits.max_descriptors.saturating_sub(1).min(MAX_FILLERS);
        let region = if slots == 0 {
            u64::MAX
        } else {
            u64::from(fill.div_ceil(slots))
        };
        if region.saturating_add(RACING_LBA + 1) > limits.blocks {
            return Err(format!(
                "{fill} filler blocks in at most {slots} descriptors do not fit beside LBA {RACING_LBA} on {} blocks",
                limits.blocks
            ));
        }
        let start = limits.blocks - region;
        let mut left = fill;
        while left > 0 {
            let blocks = left.min(u32::try_from(region).unwrap_or(u32::MAX));
            fillers.push((start, blocks));
            left -= blocks;
        }
    }
    Ok(Plan {
        breach: UnmapBreach::TooManyBlocks,
        fillers,
        second_count: 1 + 256,
    })
}

const fn good(result: &SrbResult) -> bool {
    result.status() == srb_status::SUCCESS && result.scsi_status == 0
}

/// How a request ended, for messages.
fn ending(result: &SrbResult) -> String {
    if good(result) {
        return "GOOD".to_owned();
    }
    if result.scsi_status == 0x02 && result.sense.len() >= 14 {
        return format!(
            "CHECK CONDITION (sense key {:#x}, ASC {:#04x}, ASCQ {:#04x})",
            result.sense[2] & 0x0F,
            result.sense[12],
            result.sense[13]
        );
    }
    format!(
        "SRB status {:#04x}, SCSI status {:#04x}",
        result.srb_status, result.scsi_status
    )
}

/// `first..=last` runs of `lbas` (sorted), for messages.
fn runs(lbas: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = lbas.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first} to {last}")
        });
    }
    parts.join(", ")
}

/// READ(10)/WRITE(10), or (16) past LBA 2^32.
fn rw_cdb(write: bool, lba: u64, blocks: u32) -> Vec<u8> {
    if let (Ok(lba), Ok(count)) = (u32::try_from(lba), u16::try_from(blocks))
        && u64::from(lba) + u64::from(count) <= 1 << 32
    {
        let mut cdb = vec![if write { 0x2A } else { 0x28 }, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&count.to_be_bytes());
        return cdb;
    }
    let mut cdb = vec![0_u8; 16];
    cdb[0] = if write { 0x8A } else { 0x88 };
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// Blocks per READ or WRITE of the check.
fn chunk_blocks(limits: &UnmapLimits) -> u64 {
    (CHUNK_BYTES / u64::from(limits.block_bytes)).max(1)
}

/// Reads `blocks` blocks from `lba`; `None` when a READ is not GOOD.
fn read_blocks(
    port: &Port,
    address: (u8, u8, u8),
    limits: &UnmapLimits,
    lba: u64,
    blocks: u64,
) -> Result<Option<Vec<u8>>, PortError> {
    let size = u64::from(limits.block_bytes);
    let mut data = Vec::new();
    let mut at = lba;
    while at < lba + blocks {
        let count = chunk_blocks(limits).min(lba + blocks - at);
        let bytes = usize::try_from(count * size).unwrap_or(usize::MAX);
        let cdb = rw_cdb(false, at, u32::try_from(count).unwrap_or(u32::MAX));
        let result = port.execute(address, &cdb, &DataDirection::In(bytes))?;
        if !good(&result) || result.data.len() != bytes {
            return Ok(None);
        }
        data.extend_from_slice(&result.data);
        at += count;
    }
    Ok(Some(data))
}

/// Writes `data` (whole blocks) from `lba`; false when a WRITE is not GOOD.
fn write_blocks(
    port: &Port,
    address: (u8, u8, u8),
    limits: &UnmapLimits,
    lba: u64,
    data: &[u8],
) -> Result<bool, PortError> {
    let size = usize::try_from(limits.block_bytes).unwrap_or(usize::MAX);
    let per_chunk = usize::try_from(chunk_blocks(limits)).unwrap_or(1) * size;
    for (index, chunk) in data.chunks(per_chunk).enumerate() {
        let at = lba + (index * per_chunk / size) as u64;
        let count = u32::try_from(chunk.len() / size).unwrap_or(u32::MAX);
        let cdb = rw_cdb(true, at, count);
        let result = port.execute_owned(address, &cdb, DataDirection::Out(chunk.to_vec()))?;
        if !good(&result) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The window's pattern: no zero byte, different in every block.
fn pattern(blocks: u64, block_bytes: u32) -> Vec<u8> {
    let size = u64::from(block_bytes);
    (0..blocks * size)
        .map(|i| 0x80 | u8::try_from((i / size * 31 + i % size) % 127).unwrap_or(0))
        .collect()
}

/// The limits `address` reports, or why UNMAP is not checked there.
///
/// # Errors
///
/// When the driver bug-checks.
pub fn unmap_limits(
    port: &Port,
    address: (u8, u8, u8),
) -> Result<Result<UnmapLimits, String>, PortError> {
    let mut cdb = [0_u8; 16];
    cdb[0] = 0x9E;
    cdb[1] = 0x10;
    cdb[13] = 32;
    let capacity = port.execute(address, &cdb, &DataDirection::In(32))?;
    let d = &capacity.data;
    if !good(&capacity) || d.len() < 15 {
        return Ok(Err(format!(
            "READ CAPACITY(16) ended with {}",
            ending(&capacity)
        )));
    }
    if d[14] & 0x80 == 0 {
        return Ok(Err(
            "READ CAPACITY(16) reports no logical block provisioning (LBPME 0)".to_owned(),
        ));
    }
    let blocks = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    let block_bytes = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    let provisioning = port.execute(address, &[0x12, 1, 0xB2, 0, 64, 0], &DataDirection::In(64))?;
    let p = &provisioning.data;
    if !good(&provisioning) || p.len() < 6 || p[1] != 0xB2 || p[5] & 0x80 == 0 {
        return Ok(Err(
            "the Logical Block Provisioning VPD page (B2h) does not report UNMAP (LBPU)".to_owned(),
        ));
    }
    let limits = port.execute(address, &[0x12, 1, 0xB0, 0, 64, 0], &DataDirection::In(64))?;
    let l = &limits.data;
    if !good(&limits) || l.len() < 28 || l[1] != 0xB0 {
        return Ok(Err(format!(
            "the Block Limits VPD page (B0h) ended with {} and {} bytes",
            ending(&limits),
            l.len()
        )));
    }
    let limits = UnmapLimits {
        blocks: blocks.saturating_add(1),
        block_bytes,
        max_lba_count: u32::from_be_bytes([l[20], l[21], l[22], l[23]]),
        max_descriptors: u32::from_be_bytes([l[24], l[25], l[26], l[27]]),
    };
    if block_bytes == 0 || u64::from(block_bytes) > CHUNK_BYTES || limits.blocks < 4 {
        return Ok(Err(format!(
            "{} blocks of {block_bytes} bytes leave no room for the check",
            limits.blocks
        )));
    }
    if limits.max_descriptors == 0 {
        return Ok(Err(
            "the Block Limits VPD page reports MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT 0".to_owned(),
        ));
    }
    Ok(Ok(limits))
}

impl Port {
    /// Sends UNMAP to `address` with parameter lists that change while the
    /// miniport handles them, and reports a `DataOutSnapshot` finding (at
    /// most one per limit) when the outcome is one no consistent snapshot of
    /// the list produces. Logical units that do not report UNMAP support
    /// are skipped (the report says why).
    ///
    /// # Errors
    ///
    /// When no adapter is started, the driver bug-checks, or a racing buffer
    /// cannot be set up.
    pub fn racing_unmap(&self, address: (u8, u8, u8)) -> Result<UnmapRaceReport, PortError> {
        let (bus, target, lun) = address;
        let mut report = UnmapRaceReport::default();
        let limits = match unmap_limits(self, address)? {
            Ok(limits) => limits,
            Err(why) => {
                self.log(format!(
                    "racing UNMAP: LUN {bus}:{target}:{lun} skipped: {why}"
                ));
                report.skipped.push(why);
                return Ok(report);
            }
        };
        report.limits = Some(limits);
        let mut plans = Vec::new();
        for plan in [past_end(&limits), too_many_blocks(&limits)] {
            match plan {
                Ok(plan) => plans.push(plan),
                Err(why) => {
                    self.log(format!(
                        "racing UNMAP: LUN {bus}:{target}:{lun}: a check skipped: {why}"
                    ));
                    report.skipped.push(why);
                }
            }
        }
        let window = (CHUNK_BYTES / u64::from(limits.block_bytes))
            .clamp(3, WINDOW_BLOCKS)
            .min(limits.blocks);
        let fillers = plans
            .iter()
            .find_map(|plan| plan.fillers.first())
            .map(|&(lba, _)| (lba, limits.blocks - lba))
            .filter(|&(_, blocks)| blocks * u64::from(limits.block_bytes) <= MAX_RESTORED_BYTES);
        let Some(original) = read_blocks(self, address, &limits, 0, window)? else {
            let why = format!("the first {window} blocks could not be read");
            self.log(format!(
                "racing UNMAP: LUN {bus}:{target}:{lun} skipped: {why}"
            ));
            report.skipped.push(why);
            return Ok(report);
        };
        let saved_fillers = match fillers {
            Some((lba, blocks)) => {
                read_blocks(self, address, &limits, lba, blocks)?.map(|d| (lba, d))
            }
            None => None,
        };
        for plan in &plans {
            self.race_plan(address, &limits, window, plan, &mut report)?;
        }
        let _ = write_blocks(self, address, &limits, 0, &original)?;
        if let Some((lba, data)) = saved_fillers {
            let _ = write_blocks(self, address, &limits, lba, &data)?;
        }
        Ok(report)
    }

    /// Every schedule of one list; reports the first inconsistent outcome.
    fn race_plan(
        &self,
        address: (u8, u8, u8),
        limits: &UnmapLimits,
        window: u64,
        plan: &Plan,
        report: &mut UnmapRaceReport,
    ) -> Result<(), PortError> {
        let (bus, target, lun) = address;
        let first = plan.list(1);
        let data = RacingDataOut::new(first.clone(), &plan.list(plan.second_count))
            .map_err(PortError::RequestSetup)?;
        let length = u16::try_from(first.len()).unwrap_or(u16::MAX).to_be_bytes();
        let cdb = [0x42, 0, 0, 0, 0, 0, 0, length[0], length[1], 0];
        let expected = pattern(window, limits.block_bytes);
        let size = usize::try_from(limits.block_bytes).unwrap_or(usize::MAX);
        let lenient =
            self.options().racing_buffers.unwrap_or_default() == RefusedUnmap::MayUnmapNamedBlocks;
        let mut reported = false;
        for schedule in SCHEDULES {
            if !write_blocks(self, address, limits, 0, &expected)? {
                let why = format!("the pattern could not be written to the first {window} blocks");
                self.log(format!("racing UNMAP: LUN {bus}:{target}:{lun}: {why}"));
                report.skipped.push(why);
                return Ok(());
            }
            let race = self.execute_racing(address, &cdb, &data, schedule)?;
            let Some(back) = read_blocks(self, address, limits, 0, window)? else {
                let why = format!("the first {window} blocks could not be read back");
                self.log(format!("racing UNMAP: LUN {bus}:{target}:{lun}: {why}"));
                report.skipped.push(why);
                return Ok(());
            };
            let changed: Vec<u64> = (0..window)
                .filter(|&lba| {
                    let at = usize::try_from(lba).unwrap_or(usize::MAX) * size;
                    back[at..at + size] != expected[at..at + size]
                })
                .collect();
            let ended_good = good(&race.result);
            let consistent = changed.iter().all(|&lba| {
                if ended_good {
                    plan.names(lba, 1)
                } else {
                    lenient && (plan.names(lba, 1) || plan.names(lba, plan.second_count))
                }
            });
            self.log(format!(
                "racing UNMAP ({:?}, {schedule:?}) on LUN {bus}:{target}:{lun}: {}, varying byte accessed {} time(s), blocks changed: [{}]{}",
                plan.breach,
                ending(&race.result),
                race.accesses,
                runs(&changed),
                if consistent { "" } else { ": inconsistent" }
            ));
            if !consistent && !reported {
                reported = true;
                self.report_inconsistent(address, limits, plan, &data, schedule, &race, &changed);
            }
            report.races.push(UnmapRace {
                breach: plan.breach,
                schedule,
                result: race.result,
                accesses: race.accesses,
                changed,
                consistent,
            });
        }
        Ok(())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "each argument is a part of the finding's message"
    )]
    fn report_inconsistent(
        &self,
        (bus, target, lun): (u8, u8, u8),
        limits: &UnmapLimits,
        plan: &Plan,
        data: &RacingDataOut,
        schedule: RacingSchedule,
        race: &super::racing::RacingResult,
        changed: &[u64],
    ) {
        let (held, later) = match schedule {
            RacingSchedule::SwitchAfter(1) => ("the first access".to_owned(), "every later one"),
            RacingSchedule::SwitchAfter(n) => {
                (format!("the first {n} accesses"), "every later one")
            }
            RacingSchedule::Alternate => ("every other access".to_owned(), "the others"),
        };
        let effect = if good(&race.result) {
            "blocks outside the valid version's ranges changed"
        } else {
            "a refused list changed blocks"
        };
        self.report(
            Rule::DataOutSnapshot,
            "HwStartIo",
            vec![
                u64::from(bus),
                u64::from(target),
                u64::from(lun),
                plan.breach.code(),
                u64::from(race.accesses),
            ],
            format!(
                "UNMAP on LUN {bus}:{target}:{lun} with a parameter list that changed while the miniport ran ended with {}, and {effect} (blocks {}): no consistent snapshot of the list gives that outcome. The versions differed only in byte {} of the list, the NUMBER OF LOGICAL BLOCKS of the descriptor for LBA {RACING_LBA}: 1 (a valid list) for {held}, {} for {later} ({}). The miniport accessed that byte {} times: it checked one version of the list and acted on another.",
                ending(&race.result),
                runs(changed),
                data.varying(),
                plan.second_count,
                plan.why_invalid(limits),
                race.accesses,
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: UnmapLimits = UnmapLimits {
        blocks: 16,
        block_bytes: 512,
        max_lba_count: 8,
        max_descriptors: 4,
    };

    #[test]
    fn the_versions_of_each_list_differ_in_one_byte_of_the_racing_count() {
        let plan = too_many_blocks(&FIXTURE).unwrap();
        assert_eq!(plan.fillers, vec![(13, 3), (13, 3), (13, 1)]);
        let data = RacingDataOut::new(plan.list(1), &plan.list(plan.second_count)).unwrap();
        assert_eq!(data.varying(), 8 + 16 * 3 + 8 + 2);
        assert_eq!(&data.first()[..8], &[0, 70, 0, 64, 0, 0, 0, 0]);
        let plan = past_end(&FIXTURE).unwrap();
        assert_eq!(plan.second_count, 257);
        let vstor = UnmapLimits {
            blocks: 131_072,
            block_bytes: 512,
            max_lba_count: 131_072,
            max_descriptors: 256,
        };
        assert_eq!(past_end(&vstor).unwrap().second_count, 0x0100_0001);
        let plan = too_many_blocks(&vstor).unwrap();
        assert_eq!(plan.fillers.len(), 255);
        let total: u64 = plan.fillers.iter().map(|f| u64::from(f.1)).sum();
        assert_eq!(total, 131_071);
        assert!(
            plan.fillers
                .iter()
                .all(|&(lba, n)| lba + u64::from(n) <= 131_072 && lba > 64)
        );
        assert!(
            past_end(&UnmapLimits {
                blocks: 1 << 40,
                ..vstor
            })
            .is_err()
        );
        assert!(
            too_many_blocks(&UnmapLimits {
                max_lba_count: u32::MAX,
                ..vstor
            })
            .is_err()
        );
        assert!(
            too_many_blocks(&UnmapLimits {
                max_descriptors: 1,
                ..vstor
            })
            .is_err()
        );
    }

    #[test]
    fn runs_compress_consecutive_blocks() {
        assert_eq!(runs(&[2, 3, 4, 7, 9, 10]), "2 to 4, 7, 9 to 10");
        assert_eq!(runs(&[]), "");
    }
}
