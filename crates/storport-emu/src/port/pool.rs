//! The emulated nonpaged pool: every allocation is tagged and tracked, so a
//! leak at unload or a free of foreign memory is reported by tag and size.

use std::alloc::Layout;
use std::collections::HashMap;

/// Pool blocks are aligned like the x64 kernel pool (16 bytes).
const POOL_ALIGNMENT: usize = 16;
/// Fill byte of memory the caller asked not to be zeroed, so reads of
/// uninitialised pool stand out.
const UNINITIALISED_FILL: u8 = 0xCD;

/// One live allocation.
#[derive(Clone, Debug)]
pub struct Block {
    /// Requested size in bytes.
    pub size_bytes: usize,
    /// Pool tag (four ASCII characters, little-endian).
    pub tag: u32,
    /// The routine that allocated it.
    pub routine: String,
    layout: Layout,
}

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The address is not a live block (never allocated, or already freed).
    NotAllocated,
}

/// The pool.
///
/// # Invariants
///
/// Every key of `blocks` is the address returned by `std::alloc::alloc`
/// with the block's `layout`, not yet deallocated.
#[derive(Debug, Default)]
pub struct Pool {
    blocks: HashMap<usize, Block>,
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
    /// Allocates `size_bytes` (zeroed if `zeroed`), or `None` when the size
    /// cannot be represented.
    pub fn allocate(
        &mut self,
        size_bytes: usize,
        tag: u32,
        zeroed: bool,
        routine: &str,
    ) -> Option<usize> {
        let layout = Layout::from_size_align(size_bytes.max(1), POOL_ALIGNMENT).ok()?;
        // SAFETY: `layout` has a non-zero size.
        let address = unsafe { std::alloc::alloc(layout) };
        if address.is_null() {
            return None;
        }
        let fill = if zeroed { 0 } else { UNINITIALISED_FILL };
        // SAFETY: `address` was just allocated with `layout.size()` bytes.
        unsafe { address.write_bytes(fill, layout.size()) };
        // INVARIANT: the address is live and allocated with `layout`.
        self.blocks.insert(
            address as usize,
            Block {
                size_bytes,
                tag,
                routine: routine.to_owned(),
                layout,
            },
        );
        Some(address as usize)
    }

    /// Frees the block at `address`.
    ///
    /// # Errors
    ///
    /// [`FreeError::NotAllocated`] if `address` is not a live block.
    pub fn free(&mut self, address: usize) -> Result<Block, FreeError> {
        let block = self
            .blocks
            .remove(&address)
            .ok_or(FreeError::NotAllocated)?;
        // SAFETY: by the invariant, `address` was allocated with `block.layout`
        // and is removed from the table, so it is deallocated exactly once.
        unsafe { std::alloc::dealloc(address as *mut u8, block.layout) };
        Ok(block)
    }

    /// Whether `address` is a live block.
    #[must_use]
    pub fn contains(&self, address: usize) -> bool {
        self.blocks.contains_key(&address)
    }

    /// Every live block, ordered by address.
    #[must_use]
    pub fn live(&self) -> Vec<(usize, Block)> {
        let mut all: Vec<(usize, Block)> =
            self.blocks.iter().map(|(a, b)| (*a, b.clone())).collect();
        all.sort_by_key(|(a, _)| *a);
        all
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (address, block) in self.blocks.drain() {
            // SAFETY: by the invariant each entry is live with its layout;
            // draining removes it, so it is deallocated once.
            unsafe { std::alloc::dealloc(address as *mut u8, block.layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
