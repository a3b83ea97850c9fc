//! The emulated nonpaged pool: every allocation is tagged and tracked, so a
//! leak at unload or a free of foreign memory is reported by tag and size.
//!
//! Blocks come from the host heap, or, with special pool on, each from pages
//! of its own between guard pages ([`super::special_pool`]). Either way the
//! live blocks may not take more than the physical memory model leaves
//! ([`super::physmem`]); past that an allocation returns NULL.

use std::alloc::Layout;
use std::collections::HashMap;

use super::physmem::{FailedAllocation, Failures, PhysicalMemory};
use super::special_pool::{self, BlockEnd, Corruption, Place, Quarantine, SpecialBlock};

/// Pool blocks are aligned like the x64 kernel pool: 16 bytes, and blocks of
/// a page or more start on a page ("ExAllocatePoolWithTag function
/// (wdm.h)", Remarks: "If NumberOfBytes is PAGE_SIZE or greater, a
/// page-aligned buffer is allocated"; smaller ones are "aligned to ...
/// 16-byte boundaries in 64-bit systems").
const POOL_ALIGNMENT: usize = 16;

/// The alignment the kernel pool gives a block of `size_bytes`.
const fn alignment_for(size_bytes: usize) -> usize {
    if size_bytes >= crate::machine::PAGE_SIZE {
        crate::machine::PAGE_SIZE
    } else {
        POOL_ALIGNMENT
    }
}
/// Fill byte of memory the caller asked not to be zeroed, so reads of
/// uninitialised pool stand out.
const UNINITIALISED_FILL: u8 = special_pool::UNINITIALISED_FILL;

/// One live allocation.
#[derive(Clone, Debug)]
pub struct Block {
    /// Requested size in bytes.
    pub size_bytes: usize,
    /// Pool tag (four ASCII characters, little-endian).
    pub tag: u32,
    /// The routine that allocated it.
    pub routine: String,
    /// Bytes of physical memory it holds (see [`super::physmem`]).
    pub charged_bytes: u64,
}

/// Where a block's memory comes from.
#[derive(Debug)]
enum Backing {
    /// `std::alloc` with this layout.
    Heap(Layout),
    /// Pages of its own between guard pages.
    Special(SpecialBlock),
}

#[derive(Debug)]
struct Entry {
    block: Block,
    backing: Backing,
}

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The address is not a live block (never allocated, or already freed).
    NotAllocated,
}

/// A block the driver freed.
#[derive(Clone, Debug)]
pub struct Freed {
    /// What it was.
    pub block: Block,
    /// Bytes outside it that changed while it was live (special pool only).
    pub corruption: Option<Corruption>,
}

/// Why an allocation returned NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The physical memory model leaves less than the block needs.
    Exhausted {
        /// What the block would hold.
        needed_bytes: u64,
        /// What the pool still had.
        left_bytes: u64,
    },
    /// The host could not provide the memory, or the size cannot be represented.
    Host,
}

/// How the pool hands out memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// Special pool, with this placement of blocks under a page; `None`: heap.
    pub special: Option<BlockEnd>,
    /// The physical memory the pool lives in.
    pub memory: PhysicalMemory,
}

impl PoolConfig {
    /// The default physical memory with special pool on (16-byte aligned
    /// blocks), as the tests run.
    #[must_use]
    pub fn special_pool() -> Self {
        Self {
            special: Some(BlockEnd::Aligned),
            ..Self::default()
        }
    }
}

/// A driver access that hit special-pool memory it may not touch.
#[derive(Clone, Debug)]
pub struct PoolHit {
    /// Where the address lies.
    pub kind: PoolHitKind,
    /// The address of the block it belongs to, as the driver got it.
    pub block_address: usize,
    /// The block.
    pub block: Block,
}

/// What a [`PoolHit`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolHitKind {
    /// The guard page after a live block.
    BeyondEnd,
    /// The guard page before a live block.
    BeforeStart,
    /// A block already freed.
    Freed,
}

/// The pool.
///
/// # Invariants
///
/// Every key of `blocks` is the address handed out for its entry: for
/// `Backing::Heap` returned by `std::alloc::alloc` with the layout, not
/// yet deallocated; for `Backing::Special` the block's own address, its
/// pages recorded in `special`. `charged_bytes` is the sum of the live
/// blocks' `charged_bytes`.
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    blocks: HashMap<usize, Entry>,
    special: special_pool::Index,
    quarantine: Quarantine<Block>,
    charged_bytes: u64,
    failures: Failures,
}

/// Renders a pool tag as its four characters.
#[must_use]
pub fn tag_text(tag: u32) -> String {
    tag.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

impl Pool {
    /// An empty pool handing out memory as `config` says.
    #[must_use]
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            blocks: HashMap::new(),
            special: special_pool::Index::default(),
            quarantine: Quarantine::default(),
            charged_bytes: 0,
            failures: Failures::default(),
        }
    }

    /// How the pool hands out memory.
    #[must_use]
    pub const fn config(&self) -> PoolConfig {
        self.config
    }

    /// Bytes of physical memory the live blocks hold.
    #[must_use]
    pub const fn charged_bytes(&self) -> u64 {
        self.charged_bytes
    }

    /// Bytes of physical memory a block of `size_bytes` holds in this pool.
    #[must_use]
    pub fn charge_for(&self, size_bytes: usize) -> u64 {
        let used = size_bytes.max(1) as u64;
        let granule = if self.config.special.is_some() {
            crate::machine::PAGE_SIZE as u64
        } else {
            POOL_ALIGNMENT as u64
        };
        used.div_ceil(granule).saturating_mul(granule)
    }

    /// Allocates `size_bytes` (zeroed if `zeroed`), or `None` when the size
    /// cannot be represented or the memory is not there.
    pub fn allocate(
        &mut self,
        size_bytes: usize,
        tag: u32,
        zeroed: bool,
        routine: &str,
    ) -> Option<usize> {
        self.try_allocate(size_bytes, tag, zeroed, routine).ok()
    }

    /// As [`Self::allocate`], saying why an allocation failed.
    ///
    /// # Errors
    ///
    /// [`AllocError::Exhausted`] when the physical memory model has not
    /// enough left, [`AllocError::Host`] when the host has not.
    pub fn try_allocate(
        &mut self,
        size_bytes: usize,
        tag: u32,
        zeroed: bool,
        routine: &str,
    ) -> Result<usize, AllocError> {
        let charged_bytes = self.charge_for(size_bytes);
        let left_bytes = self
            .config
            .memory
            .pool_limit_bytes()
            .saturating_sub(self.charged_bytes);
        if charged_bytes > left_bytes {
            return Err(AllocError::Exhausted {
                needed_bytes: charged_bytes,
                left_bytes,
            });
        }
        let (address, backing) = if let Some(end) = self.config.special {
            let block = SpecialBlock::new(size_bytes, end, zeroed).ok_or(AllocError::Host)?;
            self.special.insert(&block);
            (block.address(), Backing::Special(block))
        } else {
            let layout = Layout::from_size_align(size_bytes.max(1), alignment_for(size_bytes))
                .map_err(|_| AllocError::Host)?;
            // SAFETY: `layout` has a non-zero size.
            let address = unsafe { std::alloc::alloc(layout) };
            if address.is_null() {
                return Err(AllocError::Host);
            }
            let fill = if zeroed { 0 } else { UNINITIALISED_FILL };
            // SAFETY: `address` was just allocated with `layout.size()` bytes.
            unsafe { address.write_bytes(fill, layout.size()) };
            (address as usize, Backing::Heap(layout))
        };
        self.charged_bytes += charged_bytes;
        // INVARIANT: the address is live with its backing, and its charge is
        // added to the total.
        self.blocks.insert(
            address,
            Entry {
                block: Block {
                    size_bytes,
                    tag,
                    routine: routine.to_owned(),
                    charged_bytes,
                },
                backing,
            },
        );
        Ok(address)
    }

    /// Frees the block at `address`; a special-pool block goes to the
    /// quarantine after its unused bytes are checked.
    ///
    /// # Errors
    ///
    /// [`FreeError::NotAllocated`] if `address` is not a live block.
    pub fn free(&mut self, address: usize) -> Result<Freed, FreeError> {
        let entry = self
            .blocks
            .remove(&address)
            .ok_or(FreeError::NotAllocated)?;
        self.charged_bytes -= entry.block.charged_bytes;
        let corruption = match entry.backing {
            Backing::Heap(layout) => {
                // SAFETY: by the invariant, `address` was allocated with
                // `layout` and is removed from the table, so it is
                // deallocated exactly once.
                unsafe { std::alloc::dealloc(address as *mut u8, layout) };
                None
            }
            Backing::Special(block) => {
                self.special.remove(&block);
                let corruption = block.check_slack();
                self.quarantine.admit(block, entry.block.clone());
                corruption
            }
        };
        Ok(Freed {
            block: entry.block,
            corruption,
        })
    }

    /// Whether `address` is a live block.
    #[must_use]
    pub fn contains(&self, address: usize) -> bool {
        self.blocks.contains_key(&address)
    }

    /// Every live block, ordered by address.
    #[must_use]
    pub fn live(&self) -> Vec<(usize, Block)> {
        let mut all: Vec<(usize, Block)> = self
            .blocks
            .iter()
            .map(|(a, e)| (*a, e.block.clone()))
            .collect();
        all.sort_by_key(|(a, _)| *a);
        all
    }

    /// The special-pool memory `address` belongs to, when an access there is
    /// one the special pool exists to catch: a guard page next to a live
    /// block, or any page of a quarantined one.
    #[must_use]
    pub fn classify(&self, address: usize) -> Option<PoolHit> {
        let live = self.special.find(address, |block_address| {
            match &self.blocks.get(&block_address)?.backing {
                Backing::Special(block) => Some(block),
                Backing::Heap(_) => None,
            }
        });
        if let Some((block_address, place)) = live {
            let kind = match place {
                Place::BeyondEnd => PoolHitKind::BeyondEnd,
                Place::BeforeStart => PoolHitKind::BeforeStart,
                Place::Inside => return None,
            };
            return Some(PoolHit {
                kind,
                block_address,
                block: self.blocks.get(&block_address)?.block.clone(),
            });
        }
        let (block, what) = self.quarantine.find(address)?;
        Some(PoolHit {
            kind: PoolHitKind::Freed,
            block_address: block.address(),
            block: what.clone(),
        })
    }

    /// Remembers an allocation that returned NULL.
    pub fn record_failure(&mut self, failure: FailedAllocation) {
        self.failures.record(failure);
    }

    /// The failed allocations of the run.
    #[must_use]
    pub const fn failures(&self) -> &Failures {
        &self.failures
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new(PoolConfig::default())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (address, entry) in self.blocks.drain() {
            if let Backing::Heap(layout) = entry.backing {
                // SAFETY: by the invariant each heap entry is live with its
                // layout; draining removes it, so it is deallocated once.
                unsafe { std::alloc::dealloc(address as *mut u8, layout) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the kernel pool: a page or more starts on a page, less on 16 bytes.
    #[test]
    fn blocks_of_a_page_or_more_are_page_aligned() {
        let mut pool = Pool::default();
        let tag = u32::from_le_bytes(*b"Test");
        let page = crate::machine::PAGE_SIZE;
        for size in [page, page + 16, 1 << 20] {
            // A small block first, so the large one does not start a fresh mapping by luck.
            let small = pool.allocate(48, tag, false, "test").expect("small block");
            let large = pool
                .allocate(size, tag, false, "test")
                .expect("large block");
            assert_eq!(large % page, 0, "{size} bytes at {large:#x}");
            assert_eq!(small % POOL_ALIGNMENT, 0);
            assert!(pool.free(large).is_ok() && pool.free(small).is_ok());
        }
    }

    #[test]
    fn tracks_tags_sizes_and_refuses_double_free() {
        let mut pool = Pool::default();
        let tag = u32::from_le_bytes(*b"Test");
        let a = pool
            .allocate(100, tag, true, "HwFindAdapter")
            .expect("allocation");
        assert_eq!(a % POOL_ALIGNMENT, 0);
        let live = pool.live();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].1.size_bytes, 100);
        assert_eq!(tag_text(live[0].1.tag), "Test");
        assert!(pool.free(a).is_ok());
        assert_eq!(pool.free(a).err(), Some(FreeError::NotAllocated));
        assert!(pool.live().is_empty());
    }

    #[test]
    fn special_pool_blocks_are_charged_whole_pages_and_classified() {
        let mut pool = Pool::new(PoolConfig {
            special: Some(BlockEnd::Aligned),
            memory: PhysicalMemory::from_mib(3, 2),
        });
        let tag = u32::from_le_bytes(*b"Spcl");
        let a = pool.allocate(64, tag, true, "HwFindAdapter").expect("fits");
        assert_eq!(pool.charged_bytes(), 4096);
        assert_eq!((a + 64) % 4096, 0, "a 64-byte block touches the guard page");
        let hit = pool.classify(a + 64).expect("guard page");
        assert_eq!(
            (hit.kind, hit.block_address, hit.block.size_bytes),
            (PoolHitKind::BeyondEnd, a, 64)
        );
        assert!(pool.classify(a).is_none(), "inside the block is no hit");
        let big = pool.try_allocate(1 << 20, tag, true, "HwFindAdapter");
        assert_eq!(
            big,
            Err(AllocError::Exhausted {
                needed_bytes: 1 << 20,
                left_bytes: (1 << 20) - 4096
            })
        );
        let freed = pool.free(a).expect("live");
        assert!(freed.corruption.is_none());
        assert_eq!(pool.charged_bytes(), 0);
        assert_eq!(
            pool.classify(a + 8).map(|h| h.kind),
            Some(PoolHitKind::Freed)
        );
        assert!(
            pool.allocate((1 << 20) - 1, tag, false, "HwFindAdapter")
                .is_some()
        );
    }

    #[test]
    fn the_heap_pool_is_charged_by_sixteen_bytes_against_the_same_limit() {
        let mut pool = Pool::new(PoolConfig {
            special: None,
            memory: PhysicalMemory::from_mib(3, 2),
        });
        let a = pool.allocate(100, 1, true, "x").expect("fits");
        assert_eq!(pool.charged_bytes(), 112);
        assert!(pool.allocate(1 << 20, 1, true, "x").is_none());
        assert!(pool.classify(a + 100).is_none());
        assert!(pool.free(a).is_ok());
        assert!(pool.allocate(1 << 20, 1, true, "x").is_some());
    }
}
