//! The adapter-level half of the PnP and power steps `storemu run
//! --lifecycle` drives (the sequence itself is [`crate::cli::lifecycle`]):
//! a PnP start after a stop, and what the port checks around it.
//!
//! # A PnP start after IRP_MN_STOP_DEVICE
//!
//! "SCSI_ADAPTER_CONTROL_TYPE" says Storport calls `ScsiStopAdapter` when
//! the HBA is "removed from the system, stopped for resource
//! reconfiguration, shut down for power management", that the miniport
//! "should not free its resources" then, and that for a stop or removal
//! "the Storport driver releases resources on behalf of the miniport
//! driver"; `ScsiRestartAdapter` is for an HBA "that was shut down for power
//! management", with the device extension intact. What Storport does to a
//! *virtual* miniport when the PnP manager starts it again after a stop is
//! not written down, and the PnP manager does not even stop a device that
//! uses no hardware resources ("DF - PNP Stop (Rebalance) Device Test": it
//! sends IRP_MN_CANCEL_STOP_DEVICE instead). storemu therefore drives the
//! harder case:
//!
//! - [`PnpStartReading::FindAdapterAgain`] (default, the conservative
//!   reading): a fresh ConfigInfo, then HwFindAdapter, HwInitialize, the
//!   passive initialisation routine and ScsiQuerySupportedControlTypes again
//!   on the **same device extension with its contents intact**, as a start
//!   of the same device object. The miniport must recognise its live state:
//!   pool the extension led to must stay reachable (`LiveStateOverwritten`)
//!   and data written before the stop must read back after the start
//!   (`LifecycleDataLoss`, checked by the sequence's `io` steps).
//! - [`PnpStartReading::RestartAdapter`] (`--pnp-start restart`): the start
//!   is `HwAdapterControl(ScsiRestartAdapter)` at DIRQL, as after a power-down.

#![expect(
    clippy::doc_markdown,
    reason = "Storport's and the PnP manager's identifiers are written as Microsoft's documentation writes them"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use super::{Phase, Port, PortError, default_config};
use crate::port::context::Routine;
use crate::port::pool::{Block, tag_text};
use crate::port::rules::Rule;
use crate::port::state::lock;

/// Pool blocks larger than this are followed but not scanned for pointers
/// (they hold data, such as a disk's medium, not adapter structure).
const SCAN_BLOCK_LIMIT: usize = 1 << 20;
/// Most bytes one reachability walk reads.
const SCAN_BUDGET: usize = 64 << 20;
/// Bytes read at a time.
const SCAN_CHUNK: usize = 64 << 10;

/// How the port starts an adapter again after a PnP stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PnpStartReading {
    /// HwFindAdapter and HwInitialize again on the same, intact device
    /// extension (the conservative reading).
    #[default]
    FindAdapterAgain,
    /// `HwAdapterControl(ScsiRestartAdapter)`, as after a power-down.
    RestartAdapter,
}

/// A pool block the device extension no longer leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanedBlock {
    /// Its address.
    pub address: usize,
    /// Its size in bytes.
    pub size_bytes: usize,
    /// Its pool tag.
    pub tag: u32,
    /// The routine that allocated it.
    pub routine: String,
}

/// Every live block whose address range holds `value`, by start address.
fn containing(live: &[(usize, Block)], value: usize) -> Option<&(usize, Block)> {
    let index = live.partition_point(|(start, _)| *start <= value);
    let entry = live.get(index.checked_sub(1)?)?;
    (value < entry.0 + entry.1.size_bytes.max(1)).then_some(entry)
}

/// The live pool blocks reachable from `root` (address, length) through
/// pointer-sized, 8-byte-aligned values, following pointers into blocks of
/// up to [`SCAN_BLOCK_LIMIT`] bytes and reading at most [`SCAN_BUDGET`].
#[must_use]
pub fn reachable(root: (usize, usize), live: &[(usize, Block)]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut queue = vec![root];
    let mut budget = SCAN_BUDGET;
    let mut buffer = vec![0_u8; SCAN_CHUNK];
    while let Some((start, len)) = queue.pop() {
        let mut offset = 0;
        while offset < len && budget > 0 {
            let chunk = (len - offset).min(SCAN_CHUNK).min(budget);
            let bytes = &mut buffer[..chunk];
            if crate::machine::read_bytes(start + offset, bytes).is_err() {
                break;
            }
            budget -= chunk;
            for word in bytes.chunks_exact(8) {
                let mut value = [0_u8; 8];
                value.copy_from_slice(word);
                let value = usize::from_le_bytes(value);
                if let Some((block, info)) = containing(live, value)
                    && seen.insert(*block)
                    && info.size_bytes <= SCAN_BLOCK_LIMIT
                {
                    queue.push((*block, info.size_bytes));
                }
            }
            offset += chunk;
        }
    }
    seen
}

impl Port {
    /// Whether the miniport listed `control_type` in its answer to
    /// ScsiQuerySupportedControlTypes (Storport calls HwAdapterControl only
    /// for the types listed).
    #[must_use]
    pub fn supports_control(&self, control_type: u32) -> bool {
        lock(&self.supported_controls).contains(&control_type)
    }

    /// The device extension's address and length, while the adapter exists.
    fn extension_range(&self) -> Option<(usize, usize)> {
        let len = lock(&self.memory)
            .as_ref()
            .map(|memory| memory.extension.len() * size_of::<u128>())?;
        Some((self.shared.device_extension.load(Ordering::Acquire), len))
    }

    /// The live pool blocks the device extension leads to now.
    #[must_use]
    pub fn reachable_pool(&self) -> BTreeSet<usize> {
        let Some(root) = self.extension_range() else {
            return BTreeSet::new();
        };
        let live = lock(&self.shared.pool).live();
        reachable(root, &live)
    }

    /// The blocks of `before` that are still allocated but no longer
    /// reachable from the device extension.
    #[must_use]
    pub fn orphaned_since(&self, before: &BTreeSet<usize>) -> Vec<OrphanedBlock> {
        let now = self.reachable_pool();
        let live: BTreeMap<usize, Block> = lock(&self.shared.pool).live().into_iter().collect();
        before
            .difference(&now)
            .filter_map(|address| {
                live.get(address).map(|block| OrphanedBlock {
                    address: *address,
                    size_bytes: block.size_bytes,
                    tag: block.tag,
                    routine: block.routine.clone(),
                })
            })
            .collect()
    }

    /// The PnP start of an adapter the PnP manager stopped, as `reading`
    /// says (see the module documentation). With
    /// [`PnpStartReading::FindAdapterAgain`] a `LiveStateOverwritten`
    /// finding names the pool HwFindAdapter cut off from the extension.
    ///
    /// # Errors
    ///
    /// When the adapter is not stopped, find-adapter or initialise fails, or
    /// the driver bug-checks.
    pub fn pnp_start(&self, reading: PnpStartReading) -> Result<(), PortError> {
        self.require(&[Phase::Stopped])?;
        if reading == PnpStartReading::RestartAdapter {
            self.log("PnP start after a stop, read as a restart:");
            return self.restart().map(|_| ());
        }
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let addresses = lock(&self.memory).as_mut().map(|memory| {
            // A new start gets a new ConfigInfo; the extension stays.
            *memory.config = default_config(&init);
            (
                memory.extension.as_mut_ptr() as u64,
                std::ptr::from_mut(&mut *memory.config) as u64,
            )
        });
        let (extension, config_address) = addresses.ok_or(PortError::NotStarted)?;
        self.log(
            "PnP start after a stop: HwFindAdapter runs again on the same, intact device extension",
        );
        let before = self.reachable_pool();
        let check = || self.report_orphans(&before);
        self.find_and_initialize(&init, extension, config_address, &check)
    }

    fn report_orphans(&self, before: &BTreeSet<usize>) {
        let orphans = self.orphaned_since(before);
        let Some(first) = orphans.first() else {
            return;
        };
        let bytes: usize = orphans.iter().map(|o| o.size_bytes).sum();
        let mut tags: Vec<String> = orphans
            .iter()
            .map(|o| format!("'{}'", tag_text(o.tag)))
            .collect();
        tags.sort();
        tags.dedup();
        self.shared.violation(
            Rule::LiveStateOverwritten,
            Routine::FindAdapter,
            vec![orphans.len() as u64, bytes as u64, first.address as u64],
            format!(
                "HwFindAdapter, run again on the device extension of an adapter started before, left {} pool block(s) ({bytes} bytes, tags {}, the first allocated in {}) that the extension led to still allocated but no longer reachable from it: it overwrote live adapter state, which is lost and leaks.",
                orphans.len(),
                tags.join(", "),
                first.routine
            ),
        );
    }
}
