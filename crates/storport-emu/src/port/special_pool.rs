//! Driver Verifier's special pool.
//!
//! As Microsoft's "Special Pool" page (Driver Verifier) describes it with
//! **Verify End**, the default alignment: each allocation sits on pages of its own, placed so that it
//! ends where the next page — marked inaccessible — begins; the page before
//! is inaccessible too, and the unused part of the block's pages is written
//! with a pattern that is checked when the block is freed. A freed block
//! stays inaccessible for a while (the quarantine), so a use after free
//! faults too.
//!
//! # Where a block ends
//!
//! The Special Pool page says the block is placed at "the highest possible
//! address that allows the allocation to fit on the page". `ExAllocatePool2`
//! says blocks under a page are "aligned to 16-byte boundaries in 64-bit
//! systems", and bug check 0xC1 has a parameter (0x24) for "bytes occurring
//! after the end of the allocation have been overwritten", which only exists
//! if a block can end short of its page. [`BlockEnd::Aligned`] (the default)
//! keeps both contracts: the block starts 16-byte aligned at the highest such
//! address, so it ends at most 15 bytes before the guard page, and those
//! bytes are pattern-checked on free. [`BlockEnd::Exact`] is the literal
//! reading of the Special Pool page: the block ends exactly at the guard page
//! and may start at any address (a driver that relies on the documented
//! 16-byte alignment may then misbehave).
//!
//! Blocks of a page or more start on a page, as `ExAllocatePool2` documents;
//! the Special Pool page says Windows does not place them in special pool at
//! all. storemu guards them anyway (a guard page after the last page, the
//! unused end of the last page pattern-checked on free): an access past them
//! is a bug on Windows too, only one Windows does not always catch.
//!
//! # Cost
//!
//! A block is an anonymous mapping of its pages plus the two guard pages.
//! The host commits a page only when it is touched, so a 1 GiB zeroed block
//! costs nothing until used; memory the caller did not ask to be zeroed is
//! filled with [`UNINITIALISED_FILL`] only up to [`FILL_LIMIT_BYTES`], larger
//! blocks read as zero. Freed blocks give their pages back to the host at
//! once and keep only their address range, in a quarantine bounded by
//! [`QUARANTINE_BLOCKS`] and [`QUARANTINE_BYTES`] (oldest released first).

use std::collections::{BTreeMap, VecDeque};

use crate::machine::{Mapping, PAGE_SIZE, Perms};

/// Fill byte of memory the caller asked not to be zeroed.
pub const UNINITIALISED_FILL: u8 = 0xCD;
/// Largest uninitialised block that is filled with [`UNINITIALISED_FILL`].
pub const FILL_LIMIT_BYTES: usize = 1 << 20;
/// Most freed blocks kept inaccessible at once.
pub const QUARANTINE_BLOCKS: usize = 1024;
/// Most address space (bytes, guard pages included) the quarantine keeps.
pub const QUARANTINE_BYTES: usize = 256 << 20;
/// Alignment of blocks under a page with [`BlockEnd::Aligned`].
const BLOCK_ALIGNMENT: usize = 16;

/// Where a block of less than a page ends (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BlockEnd {
    /// 16-byte aligned start, at most 15 bytes before the guard page.
    #[default]
    Aligned,
    /// The last byte of the block is the last byte before the guard page.
    Exact,
}

/// The pattern byte of the unused bytes at page offset `offset`: varied, with
/// the high bit set and never 0xFF, so the values drivers write most (0, 1,
/// -1, ASCII text) always change it.
const fn pattern(offset: usize) -> u8 {
    let byte = 0x80 | ((offset as u8).wrapping_mul(0x1D) & 0x7F);
    if byte == 0xFF { 0xFE } else { byte }
}

/// Bytes written outside a block, found when it was freed (bug check 0xC1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// First address whose pattern byte changed.
    pub address: usize,
    /// Whether it lies after the end of the block (0xC1 parameter 4 = 0x24)
    /// rather than before its start (0x23).
    pub after_end: bool,
}

impl Corruption {
    /// The fourth parameter of bug check 0xC1 for this corruption.
    #[must_use]
    pub const fn violation_type(&self) -> u64 {
        if self.after_end { 0x24 } else { 0x23 }
    }
}

/// One block on pages of its own.
///
/// # Invariants
///
/// `mapping` is `[guard page][data pages][guard page]`; the block occupies
/// `address..address + size_bytes.max(1)` inside the data pages, and every
/// other byte of the data pages held its `pattern` when the block was made.
#[derive(Debug)]
pub struct SpecialBlock {
    mapping: Mapping,
    address: usize,
    size_bytes: usize,
}

impl SpecialBlock {
    /// Maps and places a block of `size_bytes`, zeroed or filled; `None`
    /// when the host cannot map it.
    #[must_use]
    pub fn new(size_bytes: usize, end: BlockEnd, zeroed: bool) -> Option<Self> {
        let used = size_bytes.max(1);
        let data_bytes = used.checked_next_multiple_of(PAGE_SIZE)?;
        let mapping = Mapping::new(data_bytes.checked_add(2 * PAGE_SIZE)?).ok()?;
        mapping.protect(0, PAGE_SIZE, Perms::NONE).ok()?;
        mapping
            .protect(PAGE_SIZE + data_bytes, PAGE_SIZE, Perms::NONE)
            .ok()?;
        let data_start = mapping.addr() + PAGE_SIZE;
        let data_end = data_start + data_bytes;
        let address = if used >= PAGE_SIZE {
            data_start
        } else {
            match end {
                BlockEnd::Aligned => (data_end - used) & !(BLOCK_ALIGNMENT - 1),
                BlockEnd::Exact => data_end - used,
            }
        };
        let head = address - data_start;
        let tail_start = address + used;
        let mut slack: Vec<u8> = (0..head).map(pattern).collect();
        mapping.write(PAGE_SIZE, &slack).ok()?;
        slack = (tail_start - data_start..data_bytes).map(pattern).collect();
        mapping.write(tail_start - mapping.addr(), &slack).ok()?;
        if !zeroed && used <= FILL_LIMIT_BYTES {
            mapping
                .write(address - mapping.addr(), &vec![UNINITIALISED_FILL; used])
                .ok()?;
        }
        // INVARIANT: guard pages on both sides, the block inside the data
        // pages, every other data byte written with its pattern.
        Some(Self {
            mapping,
            address,
            size_bytes,
        })
    }

    /// The address handed to the driver.
    #[must_use]
    pub const fn address(&self) -> usize {
        self.address
    }

    /// Bytes of memory the block holds: its whole data pages (what the
    /// Special Pool page calls "one page of nonpageable physical memory" per
    /// allocation under a page).
    #[must_use]
    pub const fn committed_bytes(&self) -> usize {
        self.mapping.len() - 2 * PAGE_SIZE
    }

    /// The first pattern byte that changed, if any: before the block (head)
    /// first, then after it (tail).
    #[must_use]
    pub fn check_slack(&self) -> Option<Corruption> {
        let data_start = self.mapping.addr() + PAGE_SIZE;
        let data_end = data_start + self.committed_bytes();
        let tail_start = self.address + self.size_bytes.max(1);
        let ranges = [
            (data_start, self.address, false),
            (tail_start, data_end, true),
        ];
        for (start, end, after_end) in ranges {
            let mut bytes = vec![0_u8; end - start];
            if crate::machine::read_bytes(start, &mut bytes).is_err() {
                return Some(Corruption {
                    address: start,
                    after_end,
                });
            }
            if let Some(index) = bytes
                .iter()
                .enumerate()
                .position(|(i, b)| *b != pattern(start - data_start + i))
            {
                return Some(Corruption {
                    address: start + index,
                    after_end,
                });
            }
        }
        None
    }

    /// Where `address` lies relative to this block's pages, if inside them.
    fn locate(&self, address: usize) -> Option<Place> {
        let start = self.mapping.addr();
        let end = start + self.mapping.len();
        if !(start..end).contains(&address) {
            return None;
        }
        Some(if address >= end - PAGE_SIZE {
            Place::BeyondEnd
        } else if address < start + PAGE_SIZE {
            Place::BeforeStart
        } else {
            Place::Inside
        })
    }

    /// Makes the whole range inaccessible and gives its pages back to the
    /// host; the range stays reserved until the value is dropped.
    fn retire(&self) {
        let data = self.committed_bytes();
        // A failure leaves the pages accessible: a later use after free then
        // goes unnoticed, which is what Windows does once the page is reused.
        let _ = self.mapping.discard(PAGE_SIZE, data);
        let _ = self.mapping.protect(PAGE_SIZE, data, Perms::NONE);
    }
}

/// Where a faulting address lies relative to a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On the guard page after the block (an overrun).
    BeyondEnd,
    /// On the guard page before the block (an underrun past its page).
    BeforeStart,
    /// On the block's own pages.
    Inside,
}

/// Freed blocks kept inaccessible, oldest first, with what they were.
#[derive(Debug)]
pub struct Quarantine<T> {
    /// By mapping start: the block and what the caller keeps about it.
    blocks: BTreeMap<usize, (SpecialBlock, T)>,
    order: VecDeque<usize>,
    bytes: usize,
}

impl<T> Default for Quarantine<T> {
    fn default() -> Self {
        Self {
            blocks: BTreeMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Quarantine<T> {
    /// Retires `block` (inaccessible from now on) and keeps it with `what`,
    /// releasing the oldest blocks past the bounds.
    pub fn admit(&mut self, block: SpecialBlock, what: T) {
        block.retire();
        let key = block.mapping.addr();
        self.bytes += block.mapping.len();
        self.order.push_back(key);
        self.blocks.insert(key, (block, what));
        while self.order.len() > QUARANTINE_BLOCKS || self.bytes > QUARANTINE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((block, _)) = self.blocks.remove(&oldest) {
                self.bytes -= block.mapping.len();
            }
        }
    }

    /// The freed block whose pages (guard pages included) hold `address`.
    #[must_use]
    pub fn find(&self, address: usize) -> Option<(&SpecialBlock, &T)> {
        let (_, (block, what)) = self.blocks.range(..=address).next_back()?;
        block.locate(address).map(|_| (block, what))
    }

    /// How many blocks are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no block is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Live special-pool blocks by mapping start, to find the block a fault
/// address belongs to.
#[derive(Debug, Default)]
pub struct Index {
    by_start: BTreeMap<usize, usize>,
}

impl Index {
    /// Records `block` (given to the driver at `block.address()`).
    pub fn insert(&mut self, block: &SpecialBlock) {
        self.by_start.insert(block.mapping.addr(), block.address);
    }

    /// Forgets `block`.
    pub fn remove(&mut self, block: &SpecialBlock) {
        self.by_start.remove(&block.mapping.addr());
    }

    /// The address of the live block whose pages hold `address`, and where.
    #[must_use]
    pub fn find<'a>(
        &self,
        address: usize,
        block_at: impl Fn(usize) -> Option<&'a SpecialBlock>,
    ) -> Option<(usize, Place)> {
        let (_, &block_address) = self.by_start.range(..=address).next_back()?;
        let place = block_at(block_address)?.locate(address)?;
        Some((block_address, place))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_blocks_end_within_fifteen_bytes_of_the_guard_page() {
        let block = SpecialBlock::new(100, BlockEnd::Aligned, true).expect("mapped");
        assert_eq!(block.address() % 16, 0);
        let end = block.address() + 100;
        assert!(end.is_multiple_of(PAGE_SIZE) || PAGE_SIZE - end % PAGE_SIZE <= 15);
        assert_eq!(block.committed_bytes(), PAGE_SIZE);
        assert!(crate::machine::is_readable(block.address(), 100));
        let guard = end.next_multiple_of(PAGE_SIZE);
        assert!(!crate::machine::is_readable(guard, 1));
        assert_eq!(block.locate(guard), Some(Place::BeyondEnd));
        assert_eq!(block.check_slack(), None);
        // A write into the tail slack is found on free.
        assert!(crate::machine::write_bytes(end, &[0]).is_ok());
        assert_eq!(
            block.check_slack(),
            Some(Corruption {
                address: end,
                after_end: true
            })
        );
    }

    #[test]
    fn exact_blocks_touch_the_guard_page_and_head_writes_are_found() {
        let block = SpecialBlock::new(100, BlockEnd::Exact, false).expect("mapped");
        assert_eq!((block.address() + 100) % PAGE_SIZE, 0);
        let mut bytes = [0_u8; 100];
        crate::machine::read_bytes(block.address(), &mut bytes).expect("readable");
        assert!(bytes.iter().all(|&b| b == UNINITIALISED_FILL));
        crate::machine::write_bytes(block.address() - 1, &[0]).expect("the head slack is writable");
        let corruption = block.check_slack().expect("the head pattern changed");
        assert!(!corruption.after_end);
        assert_eq!(corruption.violation_type(), 0x23);
    }

    #[test]
    fn large_blocks_start_on_a_page_and_freed_blocks_stay_inaccessible() {
        let size = 3 * PAGE_SIZE + 5;
        let block = SpecialBlock::new(size, BlockEnd::Aligned, true).expect("mapped");
        assert_eq!(block.address() % PAGE_SIZE, 0);
        assert_eq!(block.committed_bytes(), 4 * PAGE_SIZE);
        let address = block.address();
        let mut quarantine = Quarantine::default();
        quarantine.admit(block, "first");
        assert!(!crate::machine::is_readable(address, 1));
        assert_eq!(
            quarantine.find(address + 7).map(|(_, what)| *what),
            Some("first")
        );
        assert!(quarantine.find(address + 64 * PAGE_SIZE).is_none());
        for _ in 0..QUARANTINE_BLOCKS {
            let small = SpecialBlock::new(16, BlockEnd::Aligned, true).expect("mapped");
            quarantine.admit(small, "later");
        }
        assert_eq!(quarantine.len(), QUARANTINE_BLOCKS);
        assert!(
            quarantine.find(address).is_none(),
            "the oldest block is released first"
        );
    }
}
